//! Arma 3: renders server.cfg, basic.cfg, the profile and the BattlEye config from a
//! spec, builds the launch argv, names the log to tail, and controls the server over
//! BattlEye RCon (readiness = RCon login works; liveness = RCon or A2S answers).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use languard_shared::arma::config::battleye::config_file_name;
use languard_shared::arma::config::profile::profile_path;
use languard_shared::arma::config::{BattlEyeConfig, HostOs, ServerArch, TimeStampFormat};
use languard_shared::arma::launch::{GamePorts, LaunchArgs};
use languard_shared::arma::rcon::client::{ClientOptions, RconClient, RconError, RconPassword};
use languard_shared::wire::ServerSpec;
use languard_shared::wire::request::{AgentError, ErrorCode};
use languard_shared::wire::spec::{Arma3Spec, LogSource};
use tokio::sync::mpsc;

use super::{GameControl, LogSourceSpec, Prepared, a2s};
use crate::supervisor::{GameHooks, HookFuture, LaunchPlan, PlannedFile, PortCheck};

/// Folder (inside the server folder) for `-profiles`: RPT on Windows, the profile.
const PROFILES_DIR: &str = "profiles";
/// Folder for `-bepath`: the BattlEye config, bans and filters.
const BATTLEYE_DIR: &str = "battleye";
/// Folder the supervisor writes the console capture into.
const CONSOLE_DIR: &str = "console";
/// Buffered console messages between the RCon client and the agent's event pump.
const MESSAGE_BUFFER: usize = 4096;

/// Builds the launch plan, log source and RCon control for an Arma 3 spec.
pub fn prepare(
    spec: &ServerSpec,
    arma: &Arma3Spec,
    servers_dir: &Path,
) -> Result<Prepared, AgentError> {
    let invalid = |message: String| AgentError::new(ErrorCode::InvalidSpec, message);
    let ports =
        GamePorts::new(arma.game_port, Some(arma.rcon_port)).map_err(|e| invalid(e.to_string()))?;
    let executable = PathBuf::from(&arma.executable);
    if !executable.is_absolute() {
        return Err(invalid(format!(
            "executable must be an absolute path, got {:?}",
            arma.executable
        )));
    }
    let exe_name = executable
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_owned();
    let host_os = if exe_name.ends_with(".exe") {
        HostOs::Windows
    } else {
        HostOs::Linux
    };
    // Unknown names (refused later by the allow-list anyway) are treated as 64-bit.
    let arch = ServerArch::from_executable(&exe_name).unwrap_or(ServerArch::X64);

    let cwd = servers_dir.join(spec.id.as_str());
    let profiles = cwd.join(PROFILES_DIR);
    let battleye_dir = cwd.join(BATTLEYE_DIR);

    let render_err = |e: languard_shared::arma::config::ConfigError| invalid(e.to_string());
    let mut files = vec![
        PlannedFile {
            path: "server.cfg".into(),
            contents: arma.server.render().map_err(render_err)?.into_bytes(),
            // Holds the join and admin passwords.
            secret: true,
        },
        PlannedFile {
            path: "basic.cfg".into(),
            contents: arma.basic.render().map_err(render_err)?.into_bytes(),
            secret: false,
        },
    ];
    let mut battleye = BattlEyeConfig::new(arma.rcon_password.clone(), arma.rcon_port);
    // RCon only needs to reach the agent on this host; nothing else should see it.
    battleye.rcon_ip = Some(Ipv4Addr::LOCALHOST.into());
    battleye.max_ping = arma.max_ping;
    battleye.restrict_rcon = arma.restrict_rcon;
    files.push(PlannedFile {
        path: Path::new(BATTLEYE_DIR).join(config_file_name(host_os, arch)),
        contents: battleye.render().map_err(render_err)?.into_bytes(),
        secret: true,
    });
    if let Some(profile) = &arma.profile {
        let path = profile_path(Path::new(PROFILES_DIR), &arma.launch.profile_name, host_os)
            .map_err(render_err)?;
        files.push(PlannedFile {
            path,
            contents: profile.render().map_err(render_err)?.into_bytes(),
            secret: false,
        });
    }

    let launch = &arma.launch;
    let mut args = LaunchArgs::new(arma.game_port)
        .config("server.cfg")
        .cfg("basic.cfg")
        // Absolute: some Linux builds ignore a relative -bepath.
        .profiles(profiles.display().to_string())
        .bepath(battleye_dir.display().to_string())
        .name(launch.profile_name.clone())
        .auto_init(launch.auto_init)
        .load_mission_to_memory(launch.load_mission_to_memory);
    for m in &launch.mods {
        args = args.add_mod(m.clone());
    }
    for m in &launch.server_mods {
        args = args.add_server_mod(m.clone());
    }
    if let Some(fps) = launch.limit_fps {
        args = args.limit_fps(fps);
    }
    for extra in &launch.extra {
        args = args.extra(extra.clone());
    }
    let args = args.build().map_err(|e| invalid(e.to_string()))?;

    let mut port_checks: Vec<PortCheck> = ports
        .reserved_ports()
        .into_iter()
        .map(PortCheck::udp)
        .collect();
    port_checks.dedup();

    let timestamps = arma
        .server
        .time_stamp_format
        .unwrap_or(TimeStampFormat::None);
    let log_source = launch.log_source.unwrap_or(match host_os {
        HostOs::Linux => LogSource::Console,
        HostOs::Windows => LogSource::RptFile,
    });
    let console_dir = cwd.join(CONSOLE_DIR);
    let log = match log_source {
        LogSource::Console => LogSourceSpec {
            dir: console_dir.clone(),
            prefix: "console_".into(),
            suffix: ".log".into(),
            timestamps,
        },
        LogSource::RptFile => LogSourceSpec {
            dir: profiles.clone(),
            prefix: String::new(),
            suffix: ".rpt".into(),
            timestamps,
        },
    };

    let plan = LaunchPlan {
        server_id: spec.id.to_string(),
        executable,
        args,
        cwd,
        env: spec
            .environment
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        files,
        ports: port_checks,
        console_dir,
    };
    let control = Arc::new(ArmaControl::new(
        SocketAddr::from((Ipv4Addr::LOCALHOST, arma.rcon_port)),
        SocketAddr::from((Ipv4Addr::LOCALHOST, ports.query())),
        RconPassword::from(arma.rcon_password.as_str()),
    ));
    Ok(Prepared { plan, log, control })
}

/// BattlEye RCon control of one Arma 3 server, reconnecting after every start.
pub struct ArmaControl {
    rcon_addr: SocketAddr,
    query_addr: SocketAddr,
    password: RconPassword,
    client: Mutex<Option<RconClient>>,
    messages_tx: mpsc::Sender<String>,
    messages_rx: Mutex<Option<mpsc::Receiver<String>>>,
}

impl ArmaControl {
    fn new(rcon_addr: SocketAddr, query_addr: SocketAddr, password: RconPassword) -> Self {
        let (messages_tx, messages_rx) = mpsc::channel(MESSAGE_BUFFER);
        Self {
            rcon_addr,
            query_addr,
            password,
            client: Mutex::new(None),
            messages_tx,
            messages_rx: Mutex::new(Some(messages_rx)),
        }
    }

    fn options() -> ClientOptions {
        ClientOptions {
            login_timeout: Duration::from_millis(800),
            login_attempts: 1,
            command_timeout: Duration::from_millis(1500),
            command_attempts: 2,
            ..ClientOptions::default()
        }
    }

    fn current(&self) -> Option<RconClient> {
        self.client.lock().ok().and_then(|c| c.clone())
    }

    /// Logs in, keeps the client and forwards its console messages to the agent.
    async fn connect(&self) -> Result<RconClient, RconError> {
        let (client, mut rx) =
            RconClient::connect(self.rcon_addr, self.password.clone(), Self::options()).await?;
        let tx = self.messages_tx.clone();
        tokio::spawn(async move {
            while let Some(message) = rx.recv().await {
                if tx.send(message.text).await.is_err() {
                    break;
                }
            }
        });
        if let Ok(mut slot) = self.client.lock()
            && let Some(old) = slot.replace(client.clone())
        {
            tokio::spawn(async move { old.close().await });
        }
        Ok(client)
    }
}

fn rcon_error(e: RconError) -> AgentError {
    let code = match e {
        RconError::Disconnected | RconError::Closed => ErrorCode::NotRunning,
        RconError::CommandTimeout { .. } | RconError::LoginTimeout { .. } => ErrorCode::Timeout,
        _ => ErrorCode::Rcon,
    };
    AgentError::new(code, e.to_string())
}

impl GameHooks for ArmaControl {
    fn wait_ready(&self) -> HookFuture<'_, Result<(), String>> {
        Box::pin(async move {
            loop {
                match self.connect().await {
                    Ok(_) => return Ok(()),
                    Err(RconError::WrongPassword) => {
                        return Err("the server refused the RCon password".into());
                    }
                    // Not listening yet (still loading): try again shortly. The
                    // supervisor bounds the whole wait with its start timeout.
                    Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
                }
            }
        })
    }

    fn graceful_stop(&self) -> HookFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let client = match self.current() {
                Some(c) => c,
                None => self.connect().await.map_err(|e| e.to_string())?,
            };
            match client.command("#shutdown").await {
                // The server may exit before its ack arrives.
                Ok(_) | Err(RconError::CommandTimeout { .. }) | Err(RconError::Disconnected) => {
                    Ok(())
                }
                Err(e) => Err(e.to_string()),
            }
        })
    }

    fn probe(&self) -> HookFuture<'_, bool> {
        Box::pin(async move {
            if let Some(client) = self.current()
                && client.command("").await.is_ok()
            {
                return true;
            }
            a2s::info_answers(self.query_addr, Duration::from_secs(2)).await
        })
    }
}

impl GameControl for ArmaControl {
    fn command<'a>(&'a self, command: &'a str) -> HookFuture<'a, Result<String, AgentError>> {
        Box::pin(async move {
            let Some(client) = self.current() else {
                return Err(AgentError::new(
                    ErrorCode::NotRunning,
                    "no RCon connection: the server is not running",
                ));
            };
            client.command(command).await.map_err(rcon_error)
        })
    }

    fn take_messages(&self) -> Option<mpsc::Receiver<String>> {
        self.messages_rx.lock().ok().and_then(|mut rx| rx.take())
    }

    fn reset(&self) {
        if let Some(old) = self.client.lock().ok().and_then(|mut c| c.take()) {
            tokio::spawn(async move { old.close().await });
        }
    }

    fn as_hooks(self: Arc<Self>) -> Arc<dyn GameHooks> {
        self
    }
}

#[cfg(test)]
mod tests {
    use languard_shared::arma::config::{BasicConfig, ServerConfig};
    use languard_shared::wire::ServerId;
    use languard_shared::wire::spec::{Arma3Launch, GameSpec, RestartPolicy, Timing};

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
        let GameSpec::Arma3(arma) = &spec.game;
        prepare(spec, arma, Path::new("/srv/languard/servers"))
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
        assert_eq!(prepared.log.suffix, ".rpt");
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
