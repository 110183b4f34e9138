//! Languard agent library: everything that touches the game host. The binary in
//! `main.rs` only parses configuration and wires these parts together, so tests drive
//! the same code in-process.
//!
//! - [`config`]: the one typed configuration (file + environment + flags).
//! - [`outbox`]: the durable, bounded on-disk queue of events awaiting acknowledgement.

pub mod config;
pub mod outbox;
