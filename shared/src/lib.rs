//! Languard's shared crate: everything the controller and the agent must agree on
//! byte for byte. It depends on neither of them, so both can trust it as the single
//! definition of wire formats, game config files and log formats.

pub mod arma;
pub mod games;
pub mod lines;
pub mod wire;
