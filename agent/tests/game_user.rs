//! What a game process can reach (issue 10, point 2): a root agent starts it as the game
//! user, and that user can read none of the agent's own files. Needs root (CI runs as
//! root); skipped with a message otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use languard_agent::config::{AgentConfig, RunAsConfig, TelemetryConfig};
use languard_agent::host::Agent;
use languard_shared::arma::spec::Arma3Spec;
use languard_shared::wire::request::ErrorCode;
use languard_shared::wire::spec::GameSpec;
use languard_shared::wire::{Request, Response, ServerId, ServerSpec};

/// Stands in for the game: reports which of `$LG_PROBE` it can read or list, then idles.
const PROBER: &str = "#!/bin/sh\n\
for f in $LG_PROBE; do\n\
  if [ -d \"$f\" ]; then ls \"$f\" >/dev/null 2>&1 && r=readable || r=denied;\n\
  else cat \"$f\" >/dev/null 2>&1 && r=readable || r=denied; fi\n\
  echo \"$r $f\"\n\
done > probe.tmp\nmv probe.tmp probe\nwhile :; do sleep 1; done\n";

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn spec(id: &str, exe: &Path, probe: &str) -> ServerSpec {
    let port = loop {
        let p = std::net::UdpSocket::bind("0.0.0.0:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if p < 60_000 {
            break p;
        }
    };
    ServerSpec {
        id: ServerId::new(id).unwrap(),
        name: "Game user test".into(),
        game: GameSpec::Arma3(Box::new(Arma3Spec {
            executable: exe.to_string_lossy().into_owned(),
            game_port: port,
            rcon_port: port + 7,
            rcon_password: "GuSecret1".into(),
            max_ping: None,
            restrict_rcon: None,
            server: Default::default(),
            basic: Default::default(),
            profile: None,
            launch: Default::default(),
        })),
        restart: Default::default(),
        timing: Default::default(),
        environment: [("LG_PROBE".to_owned(), probe.to_owned())].into(),
    }
}

fn proc_field(pid: u32, key: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{key}:"))
                .map(|v| v.trim().to_owned())
        })
        .unwrap()
}

#[tokio::test]
async fn the_game_runs_as_the_game_user_and_cannot_read_the_agents_files() {
    if !nix::unistd::geteuid().is_root() {
        println!("skipped: starting games as another user needs a root agent");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // Like /srv on a real host: traversable by the game user.
    chmod(tmp.path(), 0o711);
    let bin = tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let exe = bin.join("arma3server_x64");
    std::fs::write(&exe, PROBER).unwrap();
    chmod(&exe, 0o755);
    let data = tmp.path().join("agent");
    // An identity as `enroll` leaves it.
    let identity = data.join("identity");
    std::fs::create_dir_all(&identity).unwrap();
    chmod(&identity, 0o700);
    std::fs::write(identity.join("identity.key"), "PRIVATE KEY").unwrap();
    chmod(&identity.join("identity.key"), 0o600);

    let agent = Agent::start(AgentConfig {
        data_dir: data.clone(),
        servers_dir: data.join("servers"),
        allowed_executables: vec![bin.clone()],
        run_as: RunAsConfig {
            user: Some("nobody".into()),
            allow_agent_user: false,
        },
        telemetry: TelemetryConfig {
            metrics_interval_secs: 3600,
        },
        ..AgentConfig::default()
    })
    .await
    .unwrap();
    let probe: Vec<String> = [
        "identity/identity.key",
        "identity",
        "specs/gu.json",
        "specs",
        "outbox",
        "run",
        "tail",
        "",
        "servers",
    ]
    .iter()
    .map(|p| data.join(p).to_string_lossy().into_owned())
    .collect();
    let started = agent
        .handle(Request::Start {
            server: ServerId::new("gu").unwrap(),
            spec: Some(Box::new(spec("gu", &exe, &probe.join(" ")))),
        })
        .await
        .unwrap();
    let Response::Status(status) = started else {
        panic!("status expected, got {started:?}");
    };
    let pid = status.pid.unwrap();

    let report = data.join("servers").join("gu").join("probe");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !report.exists() {
        assert!(Instant::now() < deadline, "the game never wrote its probe");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let report = std::fs::read_to_string(report).unwrap();
    assert_eq!(report.lines().count(), probe.len(), "{report}");
    for line in report.lines() {
        assert!(line.starts_with("denied "), "the game can read: {line}");
    }
    let uid = proc_field(pid, "Uid");
    assert!(uid.split_whitespace().all(|u| u == "65534"), "Uid {uid}");
    assert_eq!(proc_field(pid, "Groups"), "");
    assert_eq!(proc_field(pid, "NoNewPrivs"), "1");

    agent
        .handle(Request::Kill {
            server: ServerId::new("gu").unwrap(),
        })
        .await
        .unwrap();
    agent.shutdown().await;
}

/// The old default allowed a game's file name anywhere on the host; now nothing is
/// allowed until the host's configuration says where the games are, and the answer
/// names neither the path nor what the OS said about it.
#[tokio::test]
async fn a_start_outside_the_allowed_places_is_refused_without_host_details() {
    let tmp = tempfile::tempdir().unwrap();
    let allowed = tmp.path().join("games");
    std::fs::create_dir_all(&allowed).unwrap();
    let agent = Agent::start(AgentConfig {
        data_dir: tmp.path().join("agent"),
        servers_dir: tmp.path().join("servers"),
        allowed_executables: vec![allowed.clone()],
        run_as: RunAsConfig {
            user: (nix::unistd::geteuid().is_root()).then(|| "nobody".into()),
            allow_agent_user: true,
        },
        telemetry: TelemetryConfig {
            metrics_interval_secs: 3600,
        },
        ..AgentConfig::default()
    })
    .await
    .unwrap();
    let missing = tmp.path().join("nowhere").join("arma3server_x64");
    let a_dir = allowed.join("arma3server_x64");
    std::fs::create_dir_all(&a_dir).unwrap();
    for (n, exe) in [missing, a_dir, "/usr/bin/arma3server_x64".into()]
        .iter()
        .enumerate()
    {
        let id = format!("x{n}");
        let err = agent
            .handle(Request::Start {
                server: ServerId::new(&id).unwrap(),
                spec: Some(Box::new(spec(&id, exe, ""))),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::ExecutableRefused, "{}", err.message);
        assert!(
            err.message.contains("not allowed or missing"),
            "{}",
            err.message
        );
        assert!(!err.message.contains('/'), "{}", err.message);
        assert!(!err.message.contains("os error"), "{}", err.message);
    }
    agent.shutdown().await;
}
