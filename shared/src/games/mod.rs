//! The games Languard runs, as both sides must agree on them: which games exist, what
//! each can be asked to do, and the per-game spec payload the link carries. The wire
//! protocol (`crate::wire`) stays game-neutral and refers to games only through this
//! module.
//!
//! Adding a game: a module `crate::<game>` with its config model and spec, a
//! [`GameKind`] variant with its operations, a [`GameSpec`] variant, and the match arms
//! below (the compiler lists them).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::arma;
use crate::wire::operation::OperationKind;

/// A game.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GameKind {
    /// Arma 3 dedicated server (BattlEye RCon).
    Arma3,
    /// Palworld dedicated server (REST API).
    Palworld,
}

impl GameKind {
    /// Every game.
    pub const ALL: [GameKind; 2] = [GameKind::Arma3, GameKind::Palworld];

    /// The snake_case name used on the wire, in the store and in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Arma3 => "arma3",
            Self::Palworld => "palworld",
        }
    }

    /// Parses [`GameKind::as_str`]'s names.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == s)
    }

    /// A name for people.
    pub fn title(self) -> &'static str {
        match self {
            Self::Arma3 => "Arma 3",
            Self::Palworld => "Palworld",
        }
    }

    /// The admin operations this game has. Both sides refuse the others before
    /// anything is sent to the game.
    pub fn operations(self) -> &'static [OperationKind] {
        use OperationKind::*;
        match self {
            // BattlEye RCon: no save; announcements are global chat.
            Self::Arma3 => &[
                Players,
                Say,
                SayToPlayer,
                Announce,
                Kick,
                BanPlayer,
                BanAccount,
                BanAddress,
                Unban,
                Lock,
                Unlock,
                Shutdown,
                Mission,
                Console,
            ],
            // The REST API: broadcast only, bans by user id, no console or missions.
            Self::Palworld => &[Players, Announce, Kick, BanAccount, Unban, Save, Shutdown],
        }
    }

    /// Whether the game has `op`.
    pub fn supports(self, op: OperationKind) -> bool {
        self.operations().contains(&op)
    }
}

impl std::fmt::Display for GameKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Game-specific part of a spec; one variant per game the agent has an adapter for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GameSpec {
    /// Arma 3 dedicated server.
    Arma3(Box<arma::spec::Arma3Spec>),
}

impl GameSpec {
    /// Which game.
    pub fn kind(&self) -> GameKind {
        match self {
            Self::Arma3(_) => GameKind::Arma3,
        }
    }

    /// The executable the spec asks for (absolute path).
    pub fn executable(&self) -> &str {
        match self {
            Self::Arma3(a) => &a.executable,
        }
    }

    /// The files the server needs, relative to its folder `server_dir` (the agent
    /// writes them; the controller's preview shows them masked).
    pub fn files(&self, server_dir: &Path, view: FileView) -> Result<Vec<PlannedFile>, PlanError> {
        match self {
            Self::Arma3(a) => arma::plan::plan(a, server_dir, view).map(|p| p.files),
        }
    }
}

/// Whether a rendered file shows its secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileView {
    /// As written to disk.
    Clear,
    /// Every secret replaced by a mask, for previews.
    Masked,
}

/// One file a server needs.
#[derive(Clone, PartialEq, Eq)]
pub struct PlannedFile {
    /// Relative to the server folder.
    pub path: PathBuf,
    /// Exact bytes.
    pub contents: Vec<u8>,
    /// Holds secrets: written 0600, never served back.
    pub secret: bool,
}

/// The contents may hold secrets; only their size is shown.
impl std::fmt::Debug for PlannedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlannedFile")
            .field("path", &self.path)
            .field("contents", &format_args!("<{} bytes>", self.contents.len()))
            .field("secret", &self.secret)
            .finish()
    }
}

/// Where a running server's log lines come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogPlan {
    /// The process's stdout and stderr, captured by the agent.
    Console,
    /// The newest file in `dir` (relative to the server folder) whose name starts
    /// with `prefix` and ends with `suffix`, re-opened when the game starts a new one.
    Files {
        dir: PathBuf,
        prefix: String,
        suffix: String,
    },
}

/// Why a spec cannot be planned; safe to show (never carries a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PlanError {
    /// The field at fault, as a path into the spec's sections (e.g. `server.motd[2]`).
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for g in GameKind::ALL {
            assert_eq!(GameKind::parse(g.as_str()), Some(g));
            assert_eq!(serde_json::to_value(g).unwrap().as_str(), Some(g.as_str()));
        }
        assert_eq!(GameKind::parse("Arma3"), None);
    }

    #[test]
    fn capabilities_differ_where_the_games_differ() {
        assert!(GameKind::Arma3.supports(OperationKind::Console));
        assert!(!GameKind::Arma3.supports(OperationKind::Save));
        assert!(GameKind::Palworld.supports(OperationKind::Save));
        assert!(!GameKind::Palworld.supports(OperationKind::BanAddress));
        assert!(!GameKind::Palworld.supports(OperationKind::Console));
    }
}
