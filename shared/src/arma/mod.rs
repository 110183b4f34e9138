//! Arma 3: BattlEye RCon (codec, client, response parsers), the config files the
//! dedicated server reads, its launch arguments and its RPT log format.

pub mod config;
pub mod guid;
pub mod launch;
pub mod plan;
pub mod rcon;
pub mod rpt;
pub mod spec;
