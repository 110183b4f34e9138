//! Languard controller library: API, auth, storage and fleet management live here (see
//! DESIGN.md); the binary in `main.rs` only wires them up.
//!
//! - [`store`]: persistence behind one trait, on SQLite (default) or PostgreSQL.

pub mod store;
