//! Arma 3: its config sections (server.cfg, basic.cfg, the difficulty profile, launch
//! parameters, BattlEye RCon), their validation through the shared models, the files
//! through the shared planner (`languard_shared::arma::plan`, the one the agent uses),
//! import of server.cfg / basic.cfg, the spec, ports and executables.

use std::path::Path;

use languard_shared::arma::config::{
    Arma3Profile, BasicConfig, BattlEyeConfig, ConfigError, ImportWarning, ServerArch,
    ServerConfig as ArmaServerConfig,
};
use languard_shared::arma::launch::{GamePorts, LaunchError, check_extra};
use languard_shared::arma::plan::{self, BATTLEYE_DIR, plan};
use languard_shared::arma::spec::{Arma3Launch, Arma3Spec, EXECUTABLES};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::fields::{canonical, deser, stored, unknown_keys};
use super::{FileView, Game, GameKind, GameSpec, Imported, RenderedFile, Section, Sections};
use crate::error::{Error, FieldError, Result};
use crate::store::Server;

/// The registry entry.
pub struct Arma3;

const SERVER: &str = "server";
const BASIC: &str = "basic";
const PROFILE: &str = "profile";
const LAUNCH: &str = "launch";
const RCON: &str = "rcon";

static SECTIONS: &[Section] = &[
    Section {
        name: SERVER,
        secrets: &["password", "password_admin", "server_command_password"],
        description: "server.cfg: name, passwords, missions, voting, security",
    },
    Section {
        name: BASIC,
        secrets: &[],
        description: "basic.cfg: bandwidth and network tuning",
    },
    Section {
        name: PROFILE,
        secrets: &[],
        description: "The difficulty profile (.Arma3Profile)",
    },
    Section {
        name: LAUNCH,
        secrets: &[],
        description: "Launch parameters: mods, server mods, FPS limit, extra parameters",
    },
    Section {
        name: RCON,
        secrets: &["password"],
        description: "BattlEye RCon: password, MaxPing, RestrictRCon",
    },
];

/// Stands in for an RCon password not set yet, so a preview can show the BattlEye
/// config; the preview's mask hides it and the real files leave that file out.
const PASSWORD_PLACEHOLDER: &str = "unset";

/// The `launch` section: what the admin controls of the command line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LaunchSection {
    /// `-mod=` entries.
    pub mods: Vec<String>,
    /// `-serverMod=` entries.
    pub server_mods: Vec<String>,
    /// `-limitFPS=`.
    pub limit_fps: Option<u32>,
    /// `-autoInit`.
    pub auto_init: bool,
    /// `-loadMissionToMemory`.
    pub load_mission_to_memory: bool,
    /// Further parameters (validated with `check_extra`).
    pub extra: Vec<String>,
}

/// An absent section (and absent fields) start the rotation by themselves, as a
/// dedicated server without an admin needs.
impl Default for LaunchSection {
    fn default() -> Self {
        Self {
            mods: Vec::new(),
            server_mods: Vec::new(),
            limit_fps: None,
            auto_init: true,
            load_mission_to_memory: false,
            extra: Vec::new(),
        }
    }
}

/// The `rcon` section: BattlEye's config minus the port (which is the server's `rcon_port`).
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RconSection {
    /// `RConPassword` (secret).
    pub password: Option<String>,
    /// `MaxPing`.
    pub max_ping: Option<u32>,
    /// `RestrictRCon`.
    pub restrict_rcon: Option<bool>,
}

impl std::fmt::Debug for RconSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RconSection")
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("max_ping", &self.max_ping)
            .field("restrict_rcon", &self.restrict_rcon)
            .finish()
    }
}

fn cfg_err(prefix_from: &str, prefix_to: &str, e: &ConfigError) -> FieldError {
    let field = e
        .field_path()
        .map(|p| p.replacen(prefix_from, prefix_to, 1))
        .unwrap_or_else(|| prefix_to.to_owned());
    let message = match e {
        ConfigError::Field { problem, .. } | ConfigError::Import { problem, .. } => {
            problem.to_string()
        }
        other => other.to_string(),
    };
    FieldError { field, message }
}

fn launch_error(e: &LaunchError) -> FieldError {
    let field = match e {
        LaunchError::InvalidValue { param, .. } => {
            if let Some(rest) = param.strip_prefix("-mod") {
                format!("launch.mods{rest}")
            } else if let Some(rest) = param.strip_prefix("-serverMod") {
                format!("launch.server_mods{rest}")
            } else if param == "-limitFPS" {
                "launch.limit_fps".to_owned()
            } else {
                "launch".to_owned()
            }
        }
        _ => "launch.extra".to_owned(),
    };
    FieldError {
        field,
        message: e.to_string(),
    }
}

/// The launch parameters of a launch section (the agent's profile name, the host's log
/// source).
fn arma_launch(c: LaunchSection) -> Arma3Launch {
    Arma3Launch {
        profile_name: "server".into(),
        mods: c.mods,
        server_mods: c.server_mods,
        limit_fps: c.limit_fps,
        auto_init: c.auto_init,
        load_mission_to_memory: c.load_mission_to_memory,
        extra: c.extra,
        log_source: None,
    }
}

/// A typed model checked for unknown keys and by its own `validate`.
fn checked<T, V>(
    name: &str,
    merged: &Value,
    validate: V,
) -> std::result::Result<Value, Vec<FieldError>>
where
    T: Serialize + serde::de::DeserializeOwned,
    V: FnOnce(&T) -> std::result::Result<(), ConfigError>,
{
    let c: T = deser(name, merged).map_err(|e| vec![e])?;
    let unk = unknown_keys(name, &c, merged);
    if !unk.is_empty() {
        return Err(unk);
    }
    validate(&c).map_err(|e| vec![cfg_err(name, name, &e)])?;
    canonical(name, &c)
}

fn port(v: i64, field: &str) -> Result<u16> {
    super::port(field, v).map_err(|e| Error::Validation(vec![e]))
}

/// The Arma spec of `server` with `password` as the RCon password.
fn arma_spec(server: &Server, sections: &Sections, password: String) -> Result<Arma3Spec> {
    let launch: LaunchSection = stored(sections.get(LAUNCH))?.unwrap_or_default();
    let rcon: RconSection = stored(sections.get(RCON))?.unwrap_or_default();
    Ok(Arma3Spec {
        executable: server.executable_path.clone(),
        game_port: port(server.game_port, "game_port")?,
        rcon_port: port(server.rcon_port, "rcon_port")?,
        rcon_password: password,
        max_ping: rcon.max_ping,
        restrict_rcon: rcon.restrict_rcon,
        server: stored::<ArmaServerConfig>(sections.get(SERVER))?.unwrap_or_default(),
        basic: stored::<BasicConfig>(sections.get(BASIC))?.unwrap_or_default(),
        profile: stored::<Arma3Profile>(sections.get(PROFILE))?,
        launch: arma_launch(launch),
    })
}

fn rcon_password(sections: &Sections) -> Result<Option<String>> {
    let rcon: RconSection = stored(sections.get(RCON))?.unwrap_or_default();
    Ok(rcon.password.filter(|p| !p.is_empty()))
}

impl Game for Arma3 {
    fn kind(&self) -> GameKind {
        GameKind::Arma3
    }

    fn sections(&self) -> &'static [Section] {
        SECTIONS
    }

    fn validate(
        &self,
        section: &Section,
        merged: &Value,
        server: &Server,
    ) -> std::result::Result<Value, Vec<FieldError>> {
        let name = section.name;
        if !merged.is_object() {
            return Err(vec![FieldError {
                field: name.into(),
                message: "must be an object".into(),
            }]);
        }
        match name {
            SERVER => checked::<ArmaServerConfig, _>(name, merged, ArmaServerConfig::validate),
            BASIC => checked::<BasicConfig, _>(name, merged, BasicConfig::validate),
            PROFILE => checked::<Arma3Profile, _>(name, merged, Arma3Profile::validate),
            LAUNCH => {
                let c: LaunchSection = deser(name, merged).map_err(|e| vec![e])?;
                let mut errs = Vec::new();
                for (i, x) in c.extra.iter().enumerate() {
                    if let Err(e) = check_extra(x) {
                        errs.push(FieldError {
                            field: format!("launch.extra[{i}]"),
                            message: e.to_string(),
                        });
                    }
                }
                let game_port = u16::try_from(server.game_port).unwrap_or(0);
                if errs.is_empty()
                    && let Err(e) =
                        plan::launch_args(&arma_launch(c.clone()), game_port, Path::new("")).build()
                {
                    errs.push(launch_error(&e));
                }
                if !errs.is_empty() {
                    return Err(errs);
                }
                canonical(name, &c)
            }
            RCON => {
                let c: RconSection = deser(name, merged).map_err(|e| vec![e])?;
                let Some(pw) = &c.password else {
                    return Err(vec![FieldError {
                        field: "rcon.password".into(),
                        message: "is required".into(),
                    }]);
                };
                let mut b = BattlEyeConfig::new(pw, u16::try_from(server.rcon_port).unwrap_or(0));
                b.max_ping = c.max_ping;
                b.restrict_rcon = c.restrict_rcon;
                b.validate()
                    .map_err(|e| vec![cfg_err("battleye.rcon_password", "rcon.password", &e)])?;
                canonical(name, &c)
            }
            other => Err(vec![FieldError {
                field: other.into(),
                message: "not an Arma 3 section".into(),
            }]),
        }
    }

    fn spec(&self, server: &Server, sections: &Sections) -> Result<GameSpec> {
        let Some(password) = rcon_password(sections)? else {
            return Err(Error::field(
                "rcon.password",
                "set an RCon password before starting: the agent controls the game over RCon",
            ));
        };
        Ok(GameSpec::Arma3(Box::new(arma_spec(
            server, sections, password,
        )?)))
    }

    fn files(
        &self,
        server: &Server,
        sections: &Sections,
        view: FileView,
    ) -> Result<Vec<RenderedFile>> {
        let password = rcon_password(sections)?;
        let has_password = password.is_some();
        let spec = arma_spec(
            server,
            sections,
            password.unwrap_or_else(|| PASSWORD_PLACEHOLDER.into()),
        )?;
        let planned = plan(&spec, Path::new(""), view).map_err(|e| {
            Error::Validation(vec![FieldError {
                field: e.field.unwrap_or_default(),
                message: e.message,
            }])
        })?;
        let mut files: Vec<RenderedFile> = planned
            .files
            .into_iter()
            // Real files without a password would carry the placeholder as if it were one.
            .filter(|f| {
                has_password || view == FileView::Masked || !f.path.starts_with(BATTLEYE_DIR)
            })
            .map(|f| RenderedFile {
                name: f.path.display().to_string(),
                content: String::from_utf8_lossy(&f.contents).into_owned(),
            })
            .collect();
        files.push(RenderedFile {
            name: "launch.args".into(),
            content: planned.args.join("\n") + "\n",
        });
        Ok(files)
    }

    fn importable(&self) -> &'static [&'static str] {
        &["server.cfg", "basic.cfg"]
    }

    fn import(&self, file: &str, text: &str) -> std::result::Result<Imported, FieldError> {
        let err = |e: ConfigError| FieldError {
            field: format!("files.{file}"),
            message: e.to_string(),
        };
        let warn =
            |w: &[ImportWarning]| w.iter().map(|w| format!("{file}: {w}")).collect::<Vec<_>>();
        let to_value = |v: serde_json::Result<Value>| {
            v.map_err(|e| FieldError {
                field: format!("files.{file}"),
                message: e.to_string(),
            })
        };
        match file {
            "server.cfg" => {
                let (c, w) = ArmaServerConfig::parse(text).map_err(err)?;
                Ok(Imported {
                    section: SERVER,
                    content: to_value(serde_json::to_value(&c))?,
                    warnings: warn(&w),
                })
            }
            "basic.cfg" => {
                let (c, w) = BasicConfig::parse(text).map_err(err)?;
                Ok(Imported {
                    section: BASIC,
                    content: to_value(serde_json::to_value(&c))?,
                    warnings: warn(&w),
                })
            }
            other => Err(FieldError {
                field: format!("files.{other}"),
                message: format!("Arma 3 imports {}", self.importable().join(" and ")),
            }),
        }
    }

    fn ports(
        &self,
        game_port: i64,
        rcon_port: i64,
    ) -> std::result::Result<Vec<u16>, Vec<FieldError>> {
        let gp = super::port("game_port", game_port);
        let rp = super::port("rcon_port", rcon_port);
        let (gp, rp) = match (gp, rp) {
            (Ok(g), Ok(r)) => (g, r),
            (g, r) => return Err(g.err().into_iter().chain(r.err()).collect()),
        };
        GamePorts::new(gp, Some(rp))
            .map(|p| p.reserved_ports())
            .map_err(|e| {
                let field = match e {
                    LaunchError::GamePortRange(_) => "game_port",
                    _ => "rcon_port",
                };
                vec![FieldError {
                    field: field.into(),
                    message: e.to_string(),
                }]
            })
    }

    fn executables(&self) -> &'static [&'static str] {
        EXECUTABLES
    }

    fn accepts_executable(&self, file_name: &str) -> bool {
        EXECUTABLES.contains(&file_name) && ServerArch::from_executable(file_name).is_some()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn server() -> Server {
        Server {
            id: uuid::Uuid::nil(),
            host_id: uuid::Uuid::nil(),
            name: "main".into(),
            game: GameKind::Arma3,
            game_port: 2302,
            rcon_port: 2312,
            executable_path: "/srv/arma3/arma3server_x64".into(),
            restart_policy: json!({}),
            desired_running: false,
            revision: 1,
            config_revision: 0,
            created_at: time::OffsetDateTime::UNIX_EPOCH,
            updated_at: time::OffsetDateTime::UNIX_EPOCH,
        }
    }

    fn section(name: &str) -> &'static Section {
        Arma3.section(name).unwrap()
    }

    #[test]
    fn rcon_section_debug_redacts_password() {
        let r = RconSection {
            password: Some("RCON-SECRET".into()),
            max_ping: Some(200),
            restrict_rcon: None,
        };
        let d = format!("{r:?}");
        assert!(!d.contains("RCON-SECRET"), "{d}");
        assert!(d.contains("<redacted>") && d.contains("200"));
    }

    #[test]
    fn validation_errors_carry_field_paths() {
        let s = server();
        let e = Arma3
            .validate(
                section("server"),
                &json!({"hostname": "x", "max_players": 100000}),
                &s,
            )
            .unwrap_err();
        assert_eq!(e[0].field, "server.max_players");
        let e = Arma3
            .validate(section("launch"), &json!({"extra": ["-port=1"]}), &s)
            .unwrap_err();
        assert_eq!(e[0].field, "launch.extra[0]");
        let e = Arma3
            .validate(section("basic"), &json!({"nonsense": 1}), &s)
            .unwrap_err();
        assert_eq!(e[0].field, "basic.nonsense");
        let e = Arma3.validate(section("rcon"), &json!({}), &s).unwrap_err();
        assert_eq!(e[0].field, "rcon.password");
    }

    #[test]
    fn the_spec_needs_an_rcon_password_and_carries_the_sections() {
        let s = server();
        let mut sections = Sections::new();
        assert!(
            matches!(Arma3.spec(&s, &sections), Err(Error::Validation(e)) if e[0].field == "rcon.password")
        );
        sections.insert(
            "rcon".into(),
            json!({"password": "Secret42", "max_ping": 300}),
        );
        sections.insert("launch".into(), json!({"mods": ["@cba"]}));
        let GameSpec::Arma3(a) = Arma3.spec(&s, &sections).unwrap();
        assert_eq!(
            (a.game_port, a.rcon_port, a.max_ping),
            (2302, 2312, Some(300))
        );
        assert_eq!(a.rcon_password, "Secret42");
        assert_eq!(a.launch.mods, ["@cba"]);
        assert!(a.launch.auto_init, "absent fields keep the default");
    }

    #[test]
    fn preview_masks_secrets_and_real_files_omit_an_unset_password() {
        let s = server();
        let mut sections = Sections::new();
        sections.insert(
            "server".into(),
            json!({"hostname": "Alpha", "password_admin": "ADMIN-SECRET"}),
        );
        let masked = Arma3.files(&s, &sections, FileView::Masked).unwrap();
        let all: String = masked.iter().map(|f| f.content.clone()).collect();
        assert!(
            !all.contains("ADMIN-SECRET") && !all.contains(PASSWORD_PLACEHOLDER),
            "{all}"
        );
        assert!(masked.iter().any(|f| f.name.starts_with(BATTLEYE_DIR)));
        let clear = Arma3.files(&s, &sections, FileView::Clear).unwrap();
        assert!(
            clear
                .iter()
                .any(|f| f.name == "server.cfg" && f.content.contains("ADMIN-SECRET"))
        );
        assert!(!clear.iter().any(|f| f.name.starts_with(BATTLEYE_DIR)));
        sections.insert("rcon".into(), json!({"password": "Rcon123"}));
        let clear = Arma3.files(&s, &sections, FileView::Clear).unwrap();
        assert!(
            clear
                .iter()
                .any(|f| f.name.starts_with(BATTLEYE_DIR) && f.content.contains("Rcon123"))
        );
        let args = clear.iter().find(|f| f.name == "launch.args").unwrap();
        assert!(args.content.contains("-port=2302"), "{}", args.content);
    }

    #[test]
    fn ports_and_executables_follow_the_agent() {
        assert_eq!(
            Arma3.ports(2302, 2312).unwrap(),
            [2302, 2303, 2304, 2305, 2306, 2312]
        );
        assert_eq!(Arma3.ports(2302, 2304).unwrap_err()[0].field, "rcon_port");
        let e = Arma3.ports(0, 70000).unwrap_err();
        assert_eq!(e.len(), 2);
        for ok in EXECUTABLES {
            assert!(Arma3.accepts_executable(ok), "{ok}");
        }
        for bad in [
            "arma3serverprofiling_x64",
            "Arma3Server_x64",
            "arma3server_x64.sh",
        ] {
            assert!(!Arma3.accepts_executable(bad), "{bad}");
        }
    }

    #[test]
    fn import_reads_server_and_basic_cfg_only() {
        let i = Arma3
            .import("server.cfg", "hostname = \"Imported\";\nfooBar = 3;\n")
            .unwrap();
        assert_eq!(i.section, "server");
        assert_eq!(i.content["hostname"], "Imported");
        assert!(!i.warnings.is_empty());
        assert!(Arma3.import("server.cfg", "hostname = \"broken").is_err());
        assert_eq!(
            Arma3.import("mission.sqm", "").unwrap_err().field,
            "files.mission.sqm"
        );
    }
}
