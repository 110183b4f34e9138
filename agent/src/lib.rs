//! Languard agent library: everything that touches the game host. The binary in
//! `main.rs` only parses configuration and wires these parts together, so tests drive
//! the same code in-process.
//!
//! - [`config`]: the one typed configuration (file + environment + flags).
//! - [`fs_beneath`]: race-free file access below a server folder the game can write to.
//! - [`outbox`]: the durable, bounded on-disk queue of events awaiting acknowledgement.
//! - [`supervisor`]: process lifecycle, restart policy, adoption after an agent restart.
//! - [`games`]: one adapter per game (files, launch, log source, control client).
//! - [`telemetry`]: log capture and tailing, host/process metrics, player polling.
//! - [`host`]: the agent itself: the typed request/event interface the controller link
//!   ([`link`]) and the in-process tests drive.
//! - [`link`]: the mTLS client to the controller, enrollment and certificate renewal.

pub mod config;
pub mod fs_beneath;
pub mod games;
pub mod host;
pub mod link;
pub mod outbox;
pub mod supervisor;
pub mod telemetry;
