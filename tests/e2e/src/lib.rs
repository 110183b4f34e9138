//! End-to-end suites live in `tests/`. This crate ships the simulator under the real
//! Arma 3 server's executable name (`arma3server_x64`) and [`fleet`], a harness that runs
//! the real `languard` and `languard-agent` binaries the way an admin would (also used by
//! the benchmarks and the local demo).

pub mod fleet;
