//! `arma3server-sim`: the Arma 3 dedicated server stand-in. See the crate docs.

pub mod a2s;
pub mod args;
pub mod commands;
pub mod compat;
pub mod configs;
pub mod players;
pub mod rcon_server;
pub mod rpt_writer;
pub mod server;
pub mod world;
