//! Languard agent library: process supervision, game adapters, the controller link and
//! telemetry live here (see DESIGN.md); the binary in `main.rs` only wires them up.
