//! The config files the Arma 3 dedicated server reads: `server.cfg`,
//! `basic.cfg`, the server profile's custom difficulty and BattlEye's
//! `beserver_x64.cfg`. Each has a typed model (serde) that validates every
//! field, a renderer that escapes values the way Arma's parser reads them
//! (see [`escape`]) and an importer for files admins already have.

pub mod basic_cfg;
pub mod battleye;
pub mod error;
pub mod escape;
mod fields;
pub mod profile;
pub mod server_cfg;
pub mod syntax;

pub use basic_cfg::BasicConfig;
pub use battleye::{BattlEyeConfig, ServerArch};
pub use error::{ConfigError, FieldProblem, ImportWarning, Pos, WarningKind};
pub use fields::{Flag01, RawEntry};
pub use profile::{Arma3Profile, CustomAiLevel, CustomDifficulty, DifficultyOptions};
pub use server_cfg::{
    AdvancedOptions, Mission, MissionParam, ParamValue, ServerConfig, TimeStampFormat, Timeout,
};
pub use syntax::Value;

/// The operating system of the game host; file names and folders differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HostOs {
    /// Linux dedicated server (case-sensitive paths, lowercase BattlEye files).
    Linux,
    /// Windows dedicated server.
    Windows,
}

#[cfg(test)]
mod tests;
