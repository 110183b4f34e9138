//! End-to-end suites live in `tests/`. This crate ships the simulator under the real
//! Arma 3 server's executable name (`arma3server_x64`) and [`fleet`], a harness that runs
//! the real `languard` and `languard-agent` binaries the way an admin would (also used by
//! the benchmarks; the demo has its own, non-panicking driver in `src/bin/demo`).

pub mod fleet;
