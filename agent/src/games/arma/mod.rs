//! Arma 3: the files, argv and ports come from the shared plan
//! ([`languard_shared::arma::plan::plan`], the one place they are computed, so the
//! agent writes what the controller's preview shows); the log is the console capture
//! on Linux or the newest `.rpt` on Windows, read with the RPT parser ([`log`]); the
//! server is controlled over BattlEye RCon ([`control`]: readiness = RCon login works,
//! liveness = RCon or A2S answers) and its players are tracked from `players` polls
//! and BattlEye messages ([`players`]).

pub mod a2s;
pub mod commands;
pub mod control;
pub mod log;
pub mod players;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use languard_shared::arma::plan::plan;
use languard_shared::arma::rcon::client::RconPassword;
use languard_shared::arma::spec::{Arma3Spec, EXECUTABLES};
use languard_shared::games::{FileView, GameKind, LogPlan};
use languard_shared::wire::ServerSpec;
use languard_shared::wire::request::{AgentError, ErrorCode};
use languard_shared::wire::spec::GameSpec;

use self::control::ArmaControl;
use self::log::{RptFiles, RptParser};
use super::{CONSOLE_DIR, GameAdapter, LogSourceSpec, Prepared};
use crate::supervisor::{LaunchPlan, PortCheck};
use crate::telemetry::tail::LogFilePattern;

/// The Arma 3 adapter.
#[derive(Debug, Clone, Copy, Default)]
pub struct Arma3Adapter;

impl GameAdapter for Arma3Adapter {
    fn kind(&self) -> GameKind {
        GameKind::Arma3
    }

    fn default_executables(&self) -> &'static [&'static str] {
        EXECUTABLES
    }

    fn prepare(&self, spec: &ServerSpec, server_dir: &Path) -> Result<Prepared, AgentError> {
        // The registry only hands this adapter Arma specs; the match stays total so a
        // new game's variant is a compile error here rather than a silent fallthrough.
        #[allow(unreachable_patterns)]
        let arma = match &spec.game {
            GameSpec::Arma3(arma) => arma,
            _ => {
                return Err(AgentError::new(ErrorCode::Internal, "not an Arma 3 spec"));
            }
        };
        prepare(spec, arma, server_dir)
    }
}

/// Builds the launch plan, log source and RCon control for an Arma 3 spec.
fn prepare(spec: &ServerSpec, arma: &Arma3Spec, cwd: &Path) -> Result<Prepared, AgentError> {
    let invalid = |message: String| AgentError::new(ErrorCode::InvalidSpec, message);
    let executable = PathBuf::from(&arma.executable);
    if !executable.is_absolute() {
        return Err(invalid(format!(
            "executable must be an absolute path, got {:?}",
            arma.executable
        )));
    }
    let planned = plan(arma, cwd, FileView::Clear).map_err(|e| match &e.field {
        Some(field) if !e.message.contains(field.as_str()) => {
            invalid(format!("{field}: {}", e.message))
        }
        _ => invalid(e.message),
    })?;

    let mut ports: Vec<PortCheck> = planned
        .ports
        .reserved_ports()
        .into_iter()
        .map(PortCheck::udp)
        .collect();
    ports.dedup();

    let console_dir = cwd.join(CONSOLE_DIR);
    let parser = Arc::new(RptParser::new(planned.timestamps));
    let log = match planned.log {
        LogPlan::Console => LogSourceSpec {
            dir: console_dir.clone(),
            pattern: LogFilePattern::console(),
            parser,
        },
        // The plan names the profiles folder and `.rpt`; the game's own names carry
        // the start time, which [`RptFiles`] ranks by.
        LogPlan::Files { dir, .. } => LogSourceSpec {
            dir: cwd.join(dir),
            pattern: LogFilePattern::Ranked(Arc::new(RptFiles)),
            parser,
        },
    };

    let plan = LaunchPlan {
        server_id: spec.id.to_string(),
        executable,
        args: planned.args,
        cwd: cwd.to_path_buf(),
        env: spec
            .environment
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        files: planned.files,
        ports,
        console_dir,
    };
    let control = Arc::new(ArmaControl::new(
        SocketAddr::from((Ipv4Addr::LOCALHOST, arma.rcon_port)),
        SocketAddr::from((Ipv4Addr::LOCALHOST, planned.ports.query())),
        RconPassword::from(arma.rcon_password.as_str()),
    ));
    Ok(Prepared { plan, log, control })
}

#[cfg(test)]
mod tests {
    use languard_shared::arma::config::{BasicConfig, ServerConfig};
    use languard_shared::arma::spec::Arma3Launch;
    use languard_shared::wire::ServerId;
    use languard_shared::wire::spec::{RestartPolicy, Timing};

    use super::*;

    fn spec(rcon_port: u16) -> ServerSpec {
        ServerSpec {
            id: ServerId::new("alpha").unwrap(),
            name: "Alpha".into(),
            game: GameSpec::Arma3(Box::new(Arma3Spec {
                executable: "/srv/arma3/arma3server_x64".into(),
                game_port: 2302,
                rcon_port,
                rcon_password: "Secret42".into(),
                max_ping: None,
                restrict_rcon: None,
                server: ServerConfig {
                    hostname: "Alpha \"quoted\"".into(),
                    password_admin: Some("adminpw".into()),
                    ..ServerConfig::default()
                },
                basic: BasicConfig::default(),
                profile: Some(Default::default()),
                launch: Arma3Launch {
                    mods: vec!["@cba_a3".into()],
                    ..Arma3Launch::default()
                },
            })),
            restart: RestartPolicy::default(),
            timing: Timing::default(),
            environment: Default::default(),
        }
    }

    fn prepare_spec(spec: &ServerSpec) -> Result<Prepared, AgentError> {
        Arma3Adapter.prepare(spec, Path::new("/srv/languard/servers/alpha"))
    }

    #[test]
    fn plan_renders_every_file_and_the_real_argv() {
        let prepared = prepare_spec(&spec(2312)).unwrap();
        let plan = &prepared.plan;
        assert_eq!(plan.cwd, Path::new("/srv/languard/servers/alpha"));
        let names: Vec<_> = plan.files.iter().map(|f| f.path.clone()).collect();
        assert_eq!(
            names,
            vec![
                PathBuf::from("server.cfg"),
                PathBuf::from("basic.cfg"),
                PathBuf::from("battleye/beserver_x64.cfg"),
                PathBuf::from("profiles/home/server/server.Arma3Profile"),
            ]
        );
        let secret: Vec<_> = plan.files.iter().map(|f| f.secret).collect();
        assert_eq!(secret, vec![true, false, true, false]);
        let be = String::from_utf8(plan.files[2].contents.clone()).unwrap();
        assert!(be.contains("RConPassword Secret42"), "{be}");
        assert!(be.contains("RConPort 2312"));
        assert!(be.contains("RConIP 127.0.0.1"));
        assert!(plan.args.contains(&"-port=2302".to_string()));
        assert!(plan.args.contains(&"-config=server.cfg".to_string()));
        assert!(
            plan.args
                .contains(&"-bepath=/srv/languard/servers/alpha/battleye".to_string())
        );
        assert!(plan.args.iter().any(|a| a.starts_with("-mod=@cba_a3")));
        let ports: Vec<u16> = plan.ports.iter().map(|p| p.port).collect();
        assert_eq!(ports, vec![2302, 2303, 2304, 2305, 2306, 2312]);
        assert_eq!(
            prepared.log.dir,
            Path::new("/srv/languard/servers/alpha/console")
        );
    }

    #[test]
    fn rcon_port_inside_the_game_range_is_refused() {
        for port in 2302..=2306 {
            let err = prepare_spec(&spec(port)).err().unwrap();
            assert_eq!(err.code, ErrorCode::InvalidSpec);
        }
    }

    #[test]
    fn relative_executable_and_unsafe_values_are_refused() {
        let mut s = spec(2312);
        let GameSpec::Arma3(arma) = &mut s.game;
        arma.executable = "arma3server_x64".into();
        assert_eq!(prepare_spec(&s).err().unwrap().code, ErrorCode::InvalidSpec);

        let mut s = spec(2312);
        let GameSpec::Arma3(arma) = &mut s.game;
        arma.server.hostname = "line\nbreak".into();
        let err = prepare_spec(&s).err().unwrap();
        assert_eq!(err.code, ErrorCode::InvalidSpec);
        assert!(err.message.contains("hostname"), "{}", err.message);

        let mut s = spec(2312);
        let GameSpec::Arma3(arma) = &mut s.game;
        arma.launch.extra = vec!["-config=/etc/passwd".into()];
        assert_eq!(prepare_spec(&s).err().unwrap().code, ErrorCode::InvalidSpec);
    }

    #[test]
    fn errors_never_carry_the_rcon_password() {
        let mut s = spec(2312);
        let GameSpec::Arma3(arma) = &mut s.game;
        arma.rcon_password = "bad pass word".into();
        let err = prepare_spec(&s).err().unwrap();
        assert!(!err.message.contains("bad pass word"), "{}", err.message);
    }

    #[test]
    fn windows_servers_tail_their_rpt() {
        let mut s = spec(2312);
        let GameSpec::Arma3(arma) = &mut s.game;
        arma.executable = "/srv/arma3/arma3server_x64.exe".into();
        let prepared = prepare_spec(&s).unwrap();
        assert_eq!(
            prepared.log.pattern,
            LogFilePattern::Ranked(Arc::new(RptFiles))
        );
        assert_eq!(
            prepared.log.dir,
            Path::new("/srv/languard/servers/alpha/profiles")
        );
        assert!(
            prepared
                .plan
                .files
                .iter()
                .any(|f| f.path == Path::new("battleye/BEServer_x64.cfg"))
        );
    }

    fn full_prepare(spec: &ServerSpec) -> Result<Prepared, AgentError> {
        crate::games::prepare(spec, Path::new("/srv/languard/servers"))
    }

    #[test]
    fn huge_or_zero_timing_values_are_refused_with_the_field_name() {
        assert!(full_prepare(&spec(2312)).is_ok());
        type Edit = fn(&mut ServerSpec, u64);
        let cases: [(&str, Edit, u64); 9] = [
            (
                "timing.start_timeout_secs",
                |s, v| s.timing.start_timeout_secs = v,
                u64::MAX,
            ),
            (
                "timing.start_timeout_secs",
                |s, v| s.timing.start_timeout_secs = v,
                0,
            ),
            (
                "timing.stop_timeout_secs",
                |s, v| s.timing.stop_timeout_secs = v,
                u64::MAX,
            ),
            (
                "timing.probe_interval_secs",
                |s, v| s.timing.probe_interval_secs = v,
                u64::MAX,
            ),
            (
                "timing.probe_interval_secs",
                |s, v| s.timing.probe_interval_secs = v,
                3601,
            ),
            (
                "timing.players_poll_secs",
                |s, v| s.timing.players_poll_secs = v,
                u64::MAX,
            ),
            (
                "restart.backoff_initial_ms",
                |s, v| s.restart.backoff_initial_ms = v,
                u64::MAX,
            ),
            (
                "restart.backoff_max_ms",
                |s, v| s.restart.backoff_max_ms = v,
                u64::MAX,
            ),
            (
                "restart.crash_loop_window_secs",
                |s, v| s.restart.crash_loop_window_secs = v,
                u64::MAX,
            ),
        ];
        for (field, edit, value) in cases {
            let mut s = spec(2312);
            edit(&mut s, value);
            let err = full_prepare(&s).err().unwrap();
            assert_eq!(err.code, ErrorCode::InvalidSpec, "{field}");
            assert!(err.message.contains(field), "{field}: {}", err.message);
        }
    }

    #[test]
    fn environment_names_values_and_loader_variables_are_checked() {
        let with = |name: &str, value: &str| {
            let mut s = spec(2312);
            s.environment.insert(name.into(), value.into());
            full_prepare(&s).map(|_| ())
        };
        assert!(with("STEAM_COMPAT", "1").is_ok());
        assert!(with("_x1", "").is_ok());
        assert!(with("LD_LIBRARY_PATH", "/srv/arma3:/srv/arma3/linux64").is_ok());
        assert!(with("LD_LIBRARY_PATH", "/srv/languard/servers/alpha/lib").is_ok());
        for (name, value) in [
            ("1ABC", "x"),
            ("A-B", "x"),
            ("", "x"),
            ("A=B", "x"),
            ("OK", "nul\0inside"),
            ("LD_PRELOAD", "/tmp/evil.so"),
            ("LD_AUDIT", "/tmp/evil.so"),
            ("LD_BIND_NOW", "1"),
            ("GCONV_PATH", "/tmp"),
            ("LD_LIBRARY_PATH", "/tmp"),
            ("LD_LIBRARY_PATH", "lib"),
            ("LD_LIBRARY_PATH", "/srv/arma3/../../tmp"),
            ("LD_LIBRARY_PATH", "/srv/arma3:"),
            ("LD_LIBRARY_PATH", "/srv/languard/servers/beta"),
        ] {
            let value = value.to_owned();
            let err = with(name, &value).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidSpec, "{name}={value:?}");
        }
    }
}
