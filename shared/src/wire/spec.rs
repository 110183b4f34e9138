//! The desired state of one game server: everything the agent needs to render its
//! files, launch it, supervise it and talk to it, with no reference to the controller's
//! database. The agent keeps the last spec it received on disk so it can keep running
//! (and restarting) servers while the controller is away.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ids::ServerId;
use crate::arma::config::{Arma3Profile, BasicConfig, ServerConfig};

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

/// Game-specific part of a spec; one variant per game adapter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GameSpec {
    /// Arma 3 dedicated server.
    Arma3(Box<Arma3Spec>),
}

/// Everything specific to an Arma 3 server. `Debug` leaves out the RCon password
/// (the server config's own `Debug` masks its passwords).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Arma3Spec {
    /// Absolute path of `arma3server_x64` (or another allow-listed name).
    pub executable: String,
    /// Game port P; the server also uses P+1 .. P+4.
    pub game_port: u16,
    /// BattlEye RCon port, outside P .. P+4.
    pub rcon_port: u16,
    /// RCon password (a secret: never logged; the agent writes it with mode 0600).
    pub rcon_password: String,
    /// `MaxPing` in the BattlEye config.
    #[serde(default)]
    pub max_ping: Option<u32>,
    /// `RestrictRCon` in the BattlEye config.
    #[serde(default)]
    pub restrict_rcon: Option<bool>,
    /// server.cfg.
    pub server: ServerConfig,
    /// basic.cfg.
    #[serde(default)]
    pub basic: BasicConfig,
    /// Custom difficulty; `None` leaves the profile file alone.
    #[serde(default)]
    pub profile: Option<Arma3Profile>,
    /// Launch parameters beyond the files.
    #[serde(default)]
    pub launch: Arma3Launch,
}

impl std::fmt::Debug for Arma3Spec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Arma3Spec")
            .field("executable", &self.executable)
            .field("game_port", &self.game_port)
            .field("rcon_port", &self.rcon_port)
            .field("rcon_password", &"<redacted>")
            .field("max_ping", &self.max_ping)
            .field("restrict_rcon", &self.restrict_rcon)
            .field("server", &self.server)
            .field("basic", &self.basic)
            .field("profile", &self.profile)
            .field("launch", &self.launch)
            .finish()
    }
}

/// Arma 3 launch parameters the controller manages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Arma3Launch {
    /// `-name=`: the profile name (folder under `-profiles`).
    pub profile_name: String,
    /// `-mod=` entries, relative to the server folder or absolute.
    pub mods: Vec<String>,
    /// `-serverMod=` entries.
    pub server_mods: Vec<String>,
    /// `-limitFPS=`.
    pub limit_fps: Option<u32>,
    /// `-autoInit`: start the rotation's first mission without an admin.
    pub auto_init: bool,
    /// `-loadMissionToMemory`.
    pub load_mission_to_memory: bool,
    /// Further parameters, validated by the launch builder.
    pub extra: Vec<String>,
    /// Where the log comes from; `None` picks the host OS's way (Linux: the console,
    /// Windows: the newest `.rpt` in the profiles folder).
    pub log_source: Option<LogSource>,
}

impl Default for Arma3Launch {
    fn default() -> Self {
        Self {
            profile_name: "server".into(),
            mods: Vec::new(),
            server_mods: Vec::new(),
            limit_fps: None,
            auto_init: true,
            load_mission_to_memory: false,
            extra: Vec::new(),
            log_source: None,
        }
    }
}

/// Where a game's log lines are read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogSource {
    /// The process's stdout/stderr, captured by the agent.
    Console,
    /// The newest `.rpt` file the game writes into its profiles folder.
    RptFile,
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
    pub crash_loop_max: u32,
    /// Window for counting crashes.
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

/// When the agent restarts a server by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestartMode {
    /// Never; a crash leaves the server crashed.
    Never,
    /// After a crash or a hang, not after a clean exit.
    #[default]
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
