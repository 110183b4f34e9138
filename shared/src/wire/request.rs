//! Controller → agent requests. Each request carries a correlation id on the link and
//! gets exactly one [`Response`] or one [`AgentError`].

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::event::ServerStatus;
use super::ids::ServerId;
use super::operation::Operation;
use super::player::Player;
use super::spec::ServerSpec;

/// What the controller asks an agent to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// The status of every server the agent knows.
    Inventory,
    /// Store (or replace) a server's spec. A stopped server's files are rendered at
    /// its next start; a running server keeps its old files until it is restarted.
    ApplySpec { spec: Box<ServerSpec> },
    /// Forget a server (it must be stopped). Its folder stays on disk.
    RemoveServer { server: ServerId },
    /// The status of one server.
    Status { server: ServerId },
    /// Render files and launch. With `spec`, that spec is applied first, so a start
    /// with the current configuration is one round trip.
    Start {
        server: ServerId,
        #[serde(default)]
        spec: Option<Box<ServerSpec>>,
    },
    /// Graceful stop through the game's admin interface, then signals after the stop
    /// timeout.
    Stop { server: ServerId },
    /// Stop, then start (applying `spec` first, as [`Request::Start`]).
    Restart {
        server: ServerId,
        #[serde(default)]
        spec: Option<Box<ServerSpec>>,
    },
    /// Kill at once.
    Kill { server: ServerId },
    /// An admin operation on the running game.
    Operate {
        server: ServerId,
        operation: Operation,
    },
    /// List a folder inside the server's folder (`""` is the folder itself).
    ListFiles { server: ServerId, dir: String },
    /// Read a file inside the server's folder.
    ReadFile { server: ServerId, path: String },
    /// Write a file inside the server's folder (atomically).
    WriteFile {
        server: ServerId,
        path: String,
        data: Vec<u8>,
    },
    /// Delete a file inside the server's folder.
    DeleteFile { server: ServerId, path: String },
}

impl Request {
    /// The server the request is about (`None` for the host-wide ones).
    pub fn server(&self) -> Option<&ServerId> {
        match self {
            Self::Inventory => None,
            Self::ApplySpec { spec } => Some(&spec.id),
            Self::RemoveServer { server }
            | Self::Status { server }
            | Self::Start { server, .. }
            | Self::Stop { server }
            | Self::Restart { server, .. }
            | Self::Kill { server }
            | Self::Operate { server, .. }
            | Self::ListFiles { server, .. }
            | Self::ReadFile { server, .. }
            | Self::WriteFile { server, .. }
            | Self::DeleteFile { server, .. } => Some(server),
        }
    }
}

/// A successful answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Response {
    /// Done; nothing to report.
    Done,
    /// Text, e.g. the game's answer to a console command.
    Text(String),
    /// One server's status.
    Status(ServerStatus),
    /// Every server's status.
    Inventory(Vec<ServerStatus>),
    /// Players online.
    Players(Vec<Player>),
    /// Folder listing.
    Files(Vec<FileEntry>),
    /// File contents.
    File(Vec<u8>),
}

/// One entry of a folder listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Base name.
    pub name: String,
    /// A folder rather than a file.
    pub dir: bool,
    /// Size in bytes (0 for folders).
    pub size: u64,
    /// Last modification.
    pub modified_ms: i64,
}

/// Why a request failed. The message is safe to show to users: it never carries a
/// secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Error)]
#[error("{code:?}: {message}")]
pub struct AgentError {
    /// Machine-readable reason.
    pub code: ErrorCode,
    /// Human-readable detail.
    pub message: String,
}

impl AgentError {
    /// Builds an error.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// Machine-readable reasons a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// No server with that id on this agent.
    UnknownServer,
    /// The spec is invalid (field errors in the message).
    InvalidSpec,
    /// The executable is not allow-listed or does not exist.
    ExecutableRefused,
    /// A port the server needs is taken.
    PortInUse,
    /// A file name with a path, `..`, or outside the server's folder.
    InvalidPath,
    /// Writing files or another I/O step failed.
    Io,
    /// The request needs a running server.
    NotRunning,
    /// The request needs a stopped server.
    NotStopped,
    /// The game refused or did not answer an admin command.
    Game,
    /// The server's game does not have this operation.
    Unsupported,
    /// No answer in time.
    Timeout,
    /// The agent is not connected, or its link dropped before it answered (set by the
    /// controller, never sent by an agent).
    HostOffline,
    /// Anything else.
    Internal,
}
