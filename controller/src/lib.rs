//! Languard controller library: API, auth, storage and fleet management live here (see
//! DESIGN.md); the binary in `main.rs` only wires them up.
