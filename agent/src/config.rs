//! The agent's one typed configuration, layered: built-in defaults, then a TOML file,
//! then `LANGUARD_AGENT_*` environment variables, then command-line flags. Everything
//! is validated once at start-up and all problems are reported together, so an admin
//! fixes a broken config in one round.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The effective agent configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    /// Where the agent keeps its state: identity, outbox, last specs, run records.
    pub data_dir: PathBuf,
    /// Parent folder of the game servers' folders (one folder per server id).
    pub servers_dir: PathBuf,
    /// The controller's link address, `host:port` (default port 7443; `tls://` prefix
    /// accepted). When unset, the link uses the address `enroll` stored.
    pub controller: Option<String>,
    /// What the agent may start: absolute paths of executables, or install folders
    /// (e.g. `/srv/steam/arma3`), where a folder allows the game adapters' executable
    /// names anywhere below it. Compared after resolving symlinks; empty (the default)
    /// means no server can start, because no path is a safe guess on every host.
    pub allowed_executables: Vec<PathBuf>,
    /// Which user the game processes run as.
    pub run_as: RunAsConfig,
    /// Resource limits.
    pub limits: Limits,
    /// Telemetry intervals.
    pub telemetry: TelemetryConfig,
    /// `tracing` filter, e.g. `info` or `languard_agent=debug`.
    pub log_level: String,
    /// Emit logs as JSON lines instead of text.
    pub log_json: bool,
}

/// Upper bound of `limits.max_log_line_bytes`: a log batch must fit an outbox record
/// and a link frame (16 MiB) with room to spare.
pub const MAX_LOG_LINE_BYTES: usize = 1024 * 1024;
/// Upper bound of `limits.max_upload_bytes`: file contents travel as a JSON array of
/// numbers (up to ~3.5 bytes per byte), and must fit a 16 MiB link frame.
pub const MAX_UPLOAD_BYTES: u64 = 4 * 1024 * 1024;

/// Resource limits, so one misbehaving game cannot exhaust the host's agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Upper bound of the on-disk outbox (events awaiting acknowledgement).
    pub outbox_max_bytes: u64,
    /// Longest log line kept whole; longer lines are split (at most
    /// [`MAX_LOG_LINE_BYTES`]).
    pub max_log_line_bytes: usize,
    /// Most game servers this agent runs.
    pub max_servers: usize,
    /// Largest file accepted by a file write request or returned by a read (at most
    /// [`MAX_UPLOAD_BYTES`]).
    pub max_upload_bytes: u64,
    /// Console capture files kept per server (older ones are deleted at start).
    pub console_files_kept: usize,
}

/// The user game processes run as. A game loads third-party mods, so it must not
/// share the agent's user: it could read the agent's key and every stored password.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunAsConfig {
    /// User name (or numeric uid) the games run as when the agent runs as root; its
    /// primary group is used. Unset: [`DEFAULT_GAME_USER`]. A non-root agent cannot
    /// switch users, so setting another user there is a configuration error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Lets an agent that does not run as root start games under its own user (a
    /// single-user test box). Without it such an agent refuses every server start.
    /// No effect when the agent runs as root.
    pub allow_agent_user: bool,
}

/// The game user when `run_as.user` is unset (the install script creates it).
pub const DEFAULT_GAME_USER: &str = "languard-game";

impl RunAsConfig {
    /// The configured user, or [`DEFAULT_GAME_USER`].
    pub fn user_name(&self) -> &str {
        self.user.as_deref().unwrap_or(DEFAULT_GAME_USER)
    }
}

/// Telemetry intervals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Metrics sampling interval in seconds.
    pub metrics_interval_secs: u64,
}

impl Default for AgentConfig {
    fn default() -> Self {
        let data_dir = PathBuf::from("/var/lib/languard-agent");
        Self {
            servers_dir: data_dir.join("servers"),
            data_dir,
            controller: None,
            allowed_executables: Vec::new(),
            run_as: RunAsConfig::default(),
            limits: Limits::default(),
            telemetry: TelemetryConfig::default(),
            log_level: "info".into(),
            log_json: false,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            outbox_max_bytes: 256 * 1024 * 1024,
            max_log_line_bytes: 1024 * 1024,
            max_servers: 64,
            max_upload_bytes: MAX_UPLOAD_BYTES,
            console_files_kept: 20,
        }
    }
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            metrics_interval_secs: 5,
        }
    }
}

/// Values given on the command line or in the environment; `None` leaves the file's
/// (or the default) value in place.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    /// `--data-dir` / `LANGUARD_AGENT_DATA_DIR`.
    pub data_dir: Option<PathBuf>,
    /// `--servers-dir` / `LANGUARD_AGENT_SERVERS_DIR`.
    pub servers_dir: Option<PathBuf>,
    /// `--controller` / `LANGUARD_AGENT_CONTROLLER`.
    pub controller: Option<String>,
    /// `--allow-executable` (repeatable) / `LANGUARD_AGENT_ALLOWED_EXECUTABLES`
    /// (comma-separated); replaces the list.
    pub allowed_executables: Option<Vec<PathBuf>>,
    /// `--game-user` / `LANGUARD_AGENT_GAME_USER`.
    pub game_user: Option<String>,
    /// `--allow-agent-user` / `LANGUARD_AGENT_ALLOW_AGENT_USER`.
    pub allow_agent_user: Option<bool>,
    /// `--log-level` / `LANGUARD_AGENT_LOG_LEVEL`.
    pub log_level: Option<String>,
}

/// Why the configuration cannot be used.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with line and column.
        message: String,
    },
    /// One or more values are invalid; all are listed.
    #[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
    Invalid(Vec<String>),
}

impl AgentConfig {
    /// Builds the effective configuration: defaults, then `file` (if any), then
    /// `overrides`; a `servers_dir` not given anywhere follows `data_dir`.
    pub fn load(file: Option<&Path>, overrides: Overrides) -> Result<Self, ConfigError> {
        let mut config = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                Self::from_toml(&text).map_err(|message| ConfigError::Parse {
                    path: path.to_path_buf(),
                    message,
                })?
            }
            None => Self::default(),
        };
        let servers_dir_given = overrides.servers_dir.is_some()
            || file.is_some_and(|_| config.servers_dir != Self::default().servers_dir);
        if let Some(dir) = overrides.data_dir {
            config.data_dir = dir;
        }
        if let Some(dir) = overrides.servers_dir {
            config.servers_dir = dir;
        } else if !servers_dir_given {
            config.servers_dir = config.data_dir.join("servers");
        }
        if let Some(url) = overrides.controller {
            config.controller = Some(url);
        }
        if let Some(list) = overrides.allowed_executables {
            config.allowed_executables = list;
        }
        if let Some(user) = overrides.game_user {
            config.run_as.user = Some(user);
        }
        if let Some(allow) = overrides.allow_agent_user {
            config.run_as.allow_agent_user = allow;
        }
        if let Some(level) = overrides.log_level {
            config.log_level = level;
        }
        config.validate()?;
        Ok(config)
    }

    /// Parses a TOML document (unknown keys are errors, so typos do not pass silently).
    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// The effective configuration as TOML, for `--dump-config`.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }

    /// Checks every value; returns all problems at once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if !self.data_dir.is_absolute() {
            problems.push(format!(
                "data_dir must be an absolute path, got {}",
                self.data_dir.display()
            ));
        }
        if !self.servers_dir.is_absolute() {
            problems.push(format!(
                "servers_dir must be an absolute path, got {}",
                self.servers_dir.display()
            ));
        }
        for entry in &self.allowed_executables {
            if let Some(problem) = allowed_entry_problem(entry) {
                problems.push(problem);
            }
        }
        if let Some(user) = &self.run_as.user
            && (user.trim().is_empty() || user.chars().any(char::is_control) || user.len() > 64)
        {
            problems.push(format!(
                "run_as.user must be a user name or numeric uid, got {user:?}"
            ));
        }
        if let Some(addr) = &self.controller
            && let Err(e) = crate::link::ControllerAddr::parse(addr)
        {
            problems.push(format!("controller: {e}"));
        }
        let limits = &self.limits;
        if limits.outbox_max_bytes < 1024 * 1024 {
            problems.push("limits.outbox_max_bytes must be at least 1 MiB".into());
        }
        if !(1024..=MAX_LOG_LINE_BYTES).contains(&limits.max_log_line_bytes) {
            problems.push("limits.max_log_line_bytes must be between 1 KiB and 1 MiB".into());
        }
        if !(1..=MAX_UPLOAD_BYTES).contains(&limits.max_upload_bytes) {
            problems.push("limits.max_upload_bytes must be between 1 byte and 4 MiB".into());
        }
        if limits.max_servers == 0 {
            problems.push("limits.max_servers must be at least 1".into());
        }
        if limits.console_files_kept == 0 {
            problems.push("limits.console_files_kept must be at least 1".into());
        }
        if self.telemetry.metrics_interval_secs == 0 {
            problems.push("telemetry.metrics_interval_secs must be at least 1".into());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// The metrics interval as a duration.
    pub fn metrics_interval(&self) -> Duration {
        Duration::from_secs(self.telemetry.metrics_interval_secs)
    }
}

/// What is wrong with one `allowed_executables` entry. A bare file name is refused:
/// it would allow a file of that name anywhere on the host, including folders other
/// users can write to.
fn allowed_entry_problem(entry: &Path) -> Option<String> {
    let shown = entry.display();
    if !entry.is_absolute() {
        return Some(format!(
            "allowed_executables entries must be absolute paths of an executable or of its \
             install folder (e.g. /srv/steam/arma3), got {shown:?}"
        ));
    }
    if entry
        .components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Some(format!(
            "allowed_executables entries must not contain `..`, got {shown:?}"
        ));
    }
    if entry.parent().is_none() {
        return Some("allowed_executables must not allow the whole file system (`/`)".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_allow_no_executable() {
        let c = AgentConfig::default();
        c.validate().unwrap();
        assert!(c.allowed_executables.is_empty());
        assert_eq!(c.run_as.user_name(), DEFAULT_GAME_USER);
        assert!(!c.run_as.allow_agent_user);
    }

    /// A bare file name used to allow that name anywhere on the host; entries are now
    /// absolute paths (of a file or an install folder) and nothing else.
    #[test]
    fn allowed_executables_are_absolute_paths_not_names() {
        for good in ["/srv/steam/arma3", "/opt/a3/arma3server_x64"] {
            let c = AgentConfig {
                allowed_executables: vec![good.into()],
                ..AgentConfig::default()
            };
            c.validate().unwrap();
        }
        for bad in ["arma3server_x64", "relative/dir", "/srv/../etc", "/", ""] {
            let c = AgentConfig {
                allowed_executables: vec![bad.into()],
                ..AgentConfig::default()
            };
            let ConfigError::Invalid(problems) = c.validate().unwrap_err() else {
                panic!("expected Invalid for {bad:?}");
            };
            assert!(
                problems.iter().any(|p| p.contains("allowed_executables")),
                "{bad:?}: {problems:?}"
            );
        }
        let c = AgentConfig {
            allowed_executables: vec!["arma3server_x64".into()],
            ..AgentConfig::default()
        };
        let message = c.validate().unwrap_err().to_string();
        assert!(message.contains("install folder"), "{message}");
    }

    #[test]
    fn run_as_is_layered_from_file_and_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("agent.toml");
        std::fs::write(
            &file,
            "allowed_executables = [\"/srv/steam/arma3\"]\n[run_as]\nuser = \"gamer\"\n",
        )
        .unwrap();
        let c = AgentConfig::load(Some(&file), Overrides::default()).unwrap();
        assert_eq!(c.run_as.user_name(), "gamer");
        assert_eq!(
            c.allowed_executables,
            vec![PathBuf::from("/srv/steam/arma3")]
        );
        let c = AgentConfig::load(
            Some(&file),
            Overrides {
                game_user: Some("nobody".into()),
                allow_agent_user: Some(true),
                allowed_executables: Some(vec!["/opt/a3".into()]),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!(c.run_as.user_name(), "nobody");
        assert!(c.run_as.allow_agent_user);
        assert_eq!(c.allowed_executables, vec![PathBuf::from("/opt/a3")]);
        let bad = AgentConfig {
            run_as: RunAsConfig {
                user: Some("bad\nname".into()),
                allow_agent_user: false,
            },
            ..AgentConfig::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("run_as.user")
        );
    }

    #[test]
    fn payload_limits_are_capped_below_the_frame_size() {
        let mut c = AgentConfig::default();
        c.limits.max_log_line_bytes = MAX_LOG_LINE_BYTES;
        c.limits.max_upload_bytes = MAX_UPLOAD_BYTES;
        c.validate().unwrap();
        c.limits.max_log_line_bytes = MAX_LOG_LINE_BYTES + 1;
        c.limits.max_upload_bytes = MAX_UPLOAD_BYTES + 1;
        let ConfigError::Invalid(problems) = c.validate().unwrap_err() else {
            panic!("expected Invalid");
        };
        assert!(
            problems.iter().any(|p| p.contains("max_log_line_bytes")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("max_upload_bytes")),
            "{problems:?}"
        );
    }

    #[test]
    fn layers_file_then_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("agent.toml");
        std::fs::write(
            &file,
            "data_dir = \"/data/agent\"\nlog_level = \"debug\"\n[limits]\nmax_servers = 3\n",
        )
        .unwrap();
        let c = AgentConfig::load(
            Some(&file),
            Overrides {
                log_level: Some("warn".into()),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/data/agent"));
        assert_eq!(c.servers_dir, PathBuf::from("/data/agent/servers"));
        assert_eq!(c.limits.max_servers, 3);
        assert_eq!(c.log_level, "warn");
        // A flag beats the file.
        let c = AgentConfig::load(
            Some(&file),
            Overrides {
                data_dir: Some("/other".into()),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!(c.servers_dir, PathBuf::from("/other/servers"));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_reported_together() {
        let err = AgentConfig::from_toml("data_dri = \"/x\"\n").unwrap_err();
        assert!(err.contains("data_dri"), "{err}");
        let c = AgentConfig {
            data_dir: "relative".into(),
            allowed_executables: vec!["arma3server_x64".into()],
            controller: Some("https://controller:7443".into()),
            ..AgentConfig::default()
        };
        let ConfigError::Invalid(problems) = c.validate().unwrap_err() else {
            panic!("expected Invalid");
        };
        assert_eq!(problems.len(), 3, "{problems:?}");
    }

    #[test]
    fn dump_round_trips() {
        let c = AgentConfig::default();
        assert_eq!(AgentConfig::from_toml(&c.to_toml()).unwrap(), c);
        let c = AgentConfig {
            allowed_executables: vec!["/srv/steam/arma3".into()],
            run_as: RunAsConfig {
                user: Some("gamer".into()),
                allow_agent_user: true,
            },
            ..AgentConfig::default()
        };
        assert_eq!(AgentConfig::from_toml(&c.to_toml()).unwrap(), c);
    }
}
