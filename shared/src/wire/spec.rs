//! The desired state of one game server: everything the agent needs to render its
//! files, launch it, supervise it and talk to it, with no reference to the controller's
//! database. The agent keeps the last spec it received on disk so it can keep running
//! (and restarting) servers while the controller is away.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ids::ServerId;
pub use crate::games::GameSpec;

/// One game server as the controller wants it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerSpec {
    /// Identity and folder name on the agent.
    pub id: ServerId,
    /// Human name, for logs and the console only.
    pub name: String,
    /// The game and its game-specific settings.
    pub game: GameSpec,
    /// What to do when the game exits or stops answering.
    #[serde(default)]
    pub restart: RestartPolicy,
    /// Timeouts and liveness checks.
    #[serde(default)]
    pub timing: Timing,
    /// Extra environment variables for the game process (e.g. `LD_LIBRARY_PATH`).
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
}

/// Restart behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RestartPolicy {
    /// When to restart.
    pub mode: RestartMode,
    /// First backoff delay after a crash, doubled on each further crash.
    pub backoff_initial_ms: u64,
    /// Upper bound of the backoff delay.
    pub backoff_max_ms: u64,
    /// This many crashes within `crash_loop_window_secs` stop retrying (state error).
    #[serde(alias = "max_restarts")]
    pub crash_loop_max: u32,
    /// Window for counting crashes.
    #[serde(alias = "window_secs")]
    pub crash_loop_window_secs: u64,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            mode: RestartMode::OnCrash,
            backoff_initial_ms: 2_000,
            backoff_max_ms: 60_000,
            crash_loop_max: 5,
            crash_loop_window_secs: 600,
        }
    }
}

/// When the agent restarts a server by itself. The one spelling on every layer
/// (`on-failure`, the API's stored name before protocol version 2, and `on_failure` are
/// read as `on_crash`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestartMode {
    /// Never; a crash leaves the server crashed.
    Never,
    /// After a crash or a hang, not after a clean exit.
    #[default]
    #[serde(alias = "on_failure", alias = "on-failure")]
    OnCrash,
    /// After any exit the agent did not ask for.
    Always,
}

/// Timeouts and liveness checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Timing {
    /// How long a start may take until the game answers (RCon login).
    pub start_timeout_secs: u64,
    /// How long a graceful stop (`#shutdown`) may take before signals follow.
    pub stop_timeout_secs: u64,
    /// Interval of liveness checks (RCon keepalive, A2S query) while running.
    pub probe_interval_secs: u64,
    /// Consecutive failed checks that make a live process `hung`.
    pub probe_failures_for_hung: u32,
    /// Interval of `players` polls.
    pub players_poll_secs: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            start_timeout_secs: 300,
            stop_timeout_secs: 30,
            probe_interval_secs: 10,
            probe_failures_for_hung: 6,
            players_poll_secs: 10,
        }
    }
}
