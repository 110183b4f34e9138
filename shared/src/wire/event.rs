//! Agent → controller events. Each is wrapped in an [`EventEnvelope`] with a per-agent
//! sequence number; the agent keeps an event in its durable outbox until the controller
//! acknowledges it, and the controller drops sequence numbers it has already stored.

use serde::{Deserialize, Serialize};

use super::UnixMillis;
use super::ids::ServerId;
pub use super::player::PlayerEvent;

/// An event with its sequence number and the time the agent recorded it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventEnvelope {
    /// Per-agent sequence number: starts at 1, never repeats.
    pub seq: u64,
    /// When the agent recorded the event.
    pub at: UnixMillis,
    /// The event.
    pub event: Event,
}

/// Something the controller should know.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A server changed state (never dropped).
    Status(ServerStatus),
    /// Log lines, in order (may be dropped under a very long outage; then a
    /// [`Event::Gap`] says what was lost).
    Log {
        server: ServerId,
        lines: Vec<LogLine>,
    },
    /// A metrics sample for the host (`server: None`) or one server's process.
    Metrics {
        server: Option<ServerId>,
        sample: MetricsSample,
    },
    /// Player activity (never dropped).
    Player {
        server: ServerId,
        event: PlayerEvent,
    },
    /// Log lines the outbox had to drop during a long outage.
    Gap {
        records: u64,
        lines: u64,
        first: UnixMillis,
        last: UnixMillis,
    },
}

/// A server's state as the agent sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerState {
    /// Not running, as asked.
    Stopped,
    /// Launched, not yet answering.
    Starting,
    /// Answering (RCon login works or the log says so).
    Running,
    /// Shutting down.
    Stopping,
    /// Exited without being asked to.
    Crashed,
    /// Alive but not answering.
    Hung,
    /// Cannot run (refused, config write failed, crash loop); `detail` says why.
    Error,
}

impl ServerState {
    /// The snake_case name used on the wire, in the store and in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stopped => "stopped",
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Stopping => "stopping",
            Self::Crashed => "crashed",
            Self::Hung => "hung",
            Self::Error => "error",
        }
    }

    /// Parses [`ServerState::as_str`]'s names.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Stopped,
            Self::Starting,
            Self::Running,
            Self::Stopping,
            Self::Crashed,
            Self::Hung,
            Self::Error,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }

    /// No process exists: the server may be reconfigured or removed freely.
    pub fn is_down(self) -> bool {
        matches!(self, Self::Stopped | Self::Crashed | Self::Error)
    }

    /// A process exists and is meant to keep running.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Starting | Self::Running | Self::Hung)
    }
}

/// A server's status: state plus what explains it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerStatus {
    /// Which server.
    pub server: ServerId,
    /// Its state.
    pub state: ServerState,
    /// Process id while a process exists.
    pub pid: Option<u32>,
    /// When the state was entered.
    pub since: UnixMillis,
    /// Why (error reason, crash detail).
    pub detail: Option<String>,
    /// How the last process ended, if it did.
    pub exit: Option<ExitInfo>,
    /// Restarts since the last start by request.
    pub restarts: u32,
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    /// Exit code, when it exited.
    pub code: Option<i32>,
    /// Signal number, when a signal ended it.
    pub signal: Option<i32>,
}

/// How severe a log line is. Games rarely write a level field; each adapter's line
/// parser decides (Arma 3: the RPT message's first word).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    /// Chatter below info, where a game marks it.
    Debug,
    /// Everything without a level.
    #[default]
    Info,
    /// Warnings. (`warning` is read too: version 1 of the protocol spelled it so.)
    #[serde(alias = "warning")]
    Warn,
    /// Errors.
    Error,
}

impl LogLevel {
    /// The snake_case name used on the wire, in the store and in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }
}

/// One log line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    /// When the agent read it.
    pub at: UnixMillis,
    /// Severity, as the game's log line parser read it.
    pub level: LogLevel,
    /// The text (without the game's timestamp prefix).
    pub text: String,
}

/// Host or process metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct MetricsSample {
    /// CPU use in percent of one core (process) or of all cores (host).
    pub cpu_percent: f32,
    /// Resident memory (process) or used memory (host), bytes.
    pub memory_bytes: u64,
    /// Total memory (host only).
    pub memory_total_bytes: Option<u64>,
    /// Threads (process only).
    pub threads: Option<u32>,
    /// Used / total disk bytes of the servers' filesystem (host only).
    pub disk_used_bytes: Option<u64>,
    /// Total disk bytes (host only).
    pub disk_total_bytes: Option<u64>,
    /// Network receive rate, bytes/s (host only).
    pub net_rx_bytes_per_s: Option<u64>,
    /// Network transmit rate, bytes/s (host only).
    pub net_tx_bytes_per_s: Option<u64>,
    /// Players online (server only).
    pub players: Option<u32>,
}
