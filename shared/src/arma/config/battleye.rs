//! BattlEye's server config (`BEServer_x64.cfg` / `beserver_x64.cfg`). Not
//! Arma syntax: one `Key value` per line.

use std::net::IpAddr;

use super::HostOs;
use super::error::{ConfigError, FieldProblem, ImportWarning, Pos, WarningKind};

const PREFIX: &str = "battleye";

/// Which server binary runs; BattlEye's file name depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerArch {
    /// `arma3server[.exe]`, `arma3serverprofiling[.exe]`.
    X86,
    /// `arma3server_x64[.exe]`, `arma3serverprofiling_x64[.exe]`.
    X64,
}

impl ServerArch {
    /// Derives the architecture from the executable's file name (a path is
    /// fine; case-insensitive; `.exe` optional). `None` for unknown binaries.
    pub fn from_executable(name: &str) -> Option<Self> {
        let base = name
            .rsplit(['/', '\\'])
            .next()
            .unwrap_or(name)
            .to_ascii_lowercase();
        let stem = base.strip_suffix(".exe").unwrap_or(&base);
        match stem {
            "arma3server" | "arma3serverprofiling" => Some(Self::X86),
            "arma3server_x64" | "arma3serverprofiling_x64" => Some(Self::X64),
            _ => None,
        }
    }
}

/// BattlEye looks for this file in its working dir (`-bepath=`):
/// `BEServer_x64.cfg` / `BEServer.cfg` on Windows, lowercase on Linux
/// (case-sensitive file system).
pub fn config_file_name(os: HostOs, arch: ServerArch) -> &'static str {
    match (os, arch) {
        (HostOs::Windows, ServerArch::X64) => "BEServer_x64.cfg",
        (HostOs::Windows, ServerArch::X86) => "BEServer.cfg",
        (HostOs::Linux, ServerArch::X64) => "beserver_x64.cfg",
        (HostOs::Linux, ServerArch::X86) => "beserver.cfg",
    }
}

/// The BattlEye server config.
#[derive(Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BattlEyeConfig {
    /// `RConPassword` (secret). 1–32 ASCII letters and digits only. BattlEye
    /// documents "no spaces or special symbols" without listing which symbols
    /// break; the file format is whitespace-separated and some RCon clients
    /// mangle other characters, so we accept only what is certainly safe.
    /// Generated passwords from `[A-Za-z0-9]` with 32 characters carry ~190 bits.
    pub rcon_password: String,
    /// `RConPort`: must lie outside game port..=game port+4 (checked by
    /// [`crate::arma::launch::GamePorts`]).
    pub rcon_port: u16,
    /// `RConIP`: bind address; omitted when `None`.
    pub rcon_ip: Option<IpAddr>,
    /// `MaxPing` in ms; omitted when `None`.
    pub max_ping: Option<u32>,
    /// `RestrictRCon` (written 0/1): limit RCon to read-only commands.
    pub restrict_rcon: Option<bool>,
}

impl std::fmt::Debug for BattlEyeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BattlEyeConfig")
            .field("rcon_password", &"********")
            .field("rcon_port", &self.rcon_port)
            .field("rcon_ip", &self.rcon_ip)
            .field("max_ping", &self.max_ping)
            .field("restrict_rcon", &self.restrict_rcon)
            .finish()
    }
}

/// Longest password BattlEye accepts.
pub const MAX_PASSWORD_LEN: usize = 32;

/// Checks an RCon password against the rule of [`BattlEyeConfig::rcon_password`].
pub fn check_rcon_password(pw: &str) -> Result<(), ConfigError> {
    let field = format!("{PREFIX}.rcon_password");
    if pw.is_empty() || pw.len() > MAX_PASSWORD_LEN {
        return Err(ConfigError::field(
            field,
            FieldProblem::Invalid(format!("must be 1 to {MAX_PASSWORD_LEN} characters")),
        ));
    }
    // The error names only the position and the rule, never the character:
    // errors end up in logs and API responses, and even one character of a
    // secret should not.
    if let Some(index) = pw.chars().position(|c| !c.is_ascii_alphanumeric()) {
        return Err(ConfigError::field(
            field,
            FieldProblem::Invalid(format!(
                "only ASCII letters and digits allowed; character {} is not one",
                index + 1
            )),
        ));
    }
    Ok(())
}

impl BattlEyeConfig {
    /// A config with only the required keys.
    pub fn new(rcon_password: impl Into<String>, rcon_port: u16) -> Self {
        Self {
            rcon_password: rcon_password.into(),
            rcon_port,
            rcon_ip: None,
            max_ping: None,
            restrict_rcon: None,
        }
    }

    /// Checks password and port; errors name `battleye.<field>`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_rcon_password(&self.rcon_password)?;
        if self.rcon_port == 0 {
            return Err(ConfigError::field(
                format!("{PREFIX}.rcon_port"),
                FieldProblem::OutOfRange {
                    value: "0".into(),
                    range: "1..=65535".into(),
                },
            ));
        }
        Ok(())
    }

    /// Renders the file (secret included; the agent writes it with mode 0600).
    pub fn render(&self) -> Result<String, ConfigError> {
        self.validate()?;
        let mut out = format!(
            "RConPassword {}\nRConPort {}\n",
            self.rcon_password, self.rcon_port
        );
        if let Some(ip) = self.rcon_ip {
            out.push_str(&format!("RConIP {ip}\n"));
        }
        if let Some(p) = self.max_ping {
            out.push_str(&format!("MaxPing {p}\n"));
        }
        if let Some(r) = self.restrict_rcon {
            out.push_str(&format!("RestrictRCon {}\n", u8::from(r)));
        }
        Ok(out)
    }

    /// Parses a BattlEye server config: `Key value` lines, keys matched
    /// case-insensitively, blank lines and `//` comment lines skipped, unknown
    /// keys reported and dropped. `RConPassword` and `RConPort` are required.
    pub fn parse(text: &str) -> Result<(Self, Vec<ImportWarning>), ConfigError> {
        let mut warnings = Vec::new();
        let mut password = None;
        let mut port = None;
        let mut cfg = Self::new(String::new(), 0);
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim_start_matches('\u{feff}').trim();
            let pos = Pos {
                line: n + 1,
                column: 1,
            };
            if line.is_empty() || line.starts_with("//") {
                continue;
            }
            let (key, value) = match line.split_once(char::is_whitespace) {
                Some((k, v)) => (k, v.trim()),
                None => (line, ""),
            };
            let field_err = |f: &str, p: FieldProblem| ConfigError::Import {
                pos,
                field: format!("{PREFIX}.{f}"),
                problem: p,
            };
            if !matches!(
                key.to_ascii_lowercase().as_str(),
                "rconpassword" | "rconport" | "rconip" | "maxping" | "restrictrcon"
            ) {
                warnings.push(ImportWarning {
                    pos,
                    kind: WarningKind::Dropped(key.to_owned()),
                });
                continue;
            }
            match key.to_ascii_lowercase().as_str() {
                "rconpassword" => {
                    check_rcon_password(value).map_err(|e| e.at(pos))?;
                    password = Some(value.to_owned());
                }
                "rconport" => {
                    let p: u16 = value.parse().map_err(|_| {
                        field_err("rcon_port", FieldProblem::WrongType("a port number"))
                    })?;
                    port = Some(p);
                }
                "rconip" => {
                    cfg.rcon_ip = Some(value.parse().map_err(|_| {
                        field_err("rcon_ip", FieldProblem::WrongType("an IP address"))
                    })?);
                }
                "maxping" => {
                    cfg.max_ping = Some(value.parse().map_err(|_| {
                        field_err("max_ping", FieldProblem::WrongType("milliseconds"))
                    })?);
                }
                _ => {
                    cfg.restrict_rcon = Some(match value {
                        "0" => false,
                        "1" => true,
                        _ => {
                            return Err(field_err(
                                "restrict_rcon",
                                FieldProblem::WrongType("0 or 1"),
                            ));
                        }
                    });
                }
            }
        }
        let missing = |f: &str| {
            ConfigError::field(
                format!("{PREFIX}.{f}"),
                FieldProblem::Invalid("missing".into()),
            )
        };
        cfg.rcon_password = password.ok_or_else(|| missing("rcon_password"))?;
        cfg.rcon_port = port.ok_or_else(|| missing("rcon_port"))?;
        cfg.validate()?;
        Ok((cfg, warnings))
    }
}
