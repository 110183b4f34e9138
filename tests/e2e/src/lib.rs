//! End-to-end suites live in `tests/`; this crate only ships the simulator under the
//! real Arma 3 server's executable name (`arma3server_x64`).
