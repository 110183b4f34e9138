//! What an Arma 3 server's spec carries: the config file models, the ports, the RCon
//! password and the launch parameters the controller manages. The agent turns it into
//! files and a command line through [`super::plan`].

use serde::{Deserialize, Serialize};

use super::config::{Arma3Profile, BasicConfig, ServerConfig};

/// The Arma 3 dedicated server binaries on Linux and Windows: the executable names an
/// agent starts by default and the controller accepts for an Arma 3 server.
pub const EXECUTABLES: &[&str] = &[
    "arma3server",
    "arma3server_x64",
    "arma3server.exe",
    "arma3server_x64.exe",
];

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
