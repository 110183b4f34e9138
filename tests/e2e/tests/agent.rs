//! The agent driven through its request/event interface (exactly what the controller
//! link carries) against real `arma3server_x64` simulator processes on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::collections::BTreeMap;
use std::io::BufRead;
use std::net::{TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use std::os::unix::fs::PermissionsExt;

use languard_agent::config::{AgentConfig, RunAsConfig};
use languard_agent::host::Agent;
use languard_shared::arma::config::ServerConfig;
use languard_shared::arma::spec::{Arma3Launch, Arma3Spec, LogSource};
use languard_shared::wire::request::ErrorCode;
use languard_shared::wire::spec::{GameSpec, RestartMode, RestartPolicy, Timing};
use languard_shared::wire::{
    BanTarget, Event, EventEnvelope, Operation, PlayerEvent, Request, Response, ServerId,
    ServerSpec, ServerState, ServerStatus,
};

const SIM: &str = env!("CARGO_BIN_EXE_arma3server_x64");

/// A temporary host: agent data, servers folder; kills leftover game processes (those
/// whose command line mentions this folder) when dropped.
struct Host {
    dir: tempfile::TempDir,
}

/// An agent configuration for a host rooted at `root`: the simulator's folder is the
/// allowed install folder; a root agent runs the games as `nobody`, a normal user's
/// agent under its own user (explicitly allowed, as on a developer's machine).
fn host_config(root: &Path) -> AgentConfig {
    let root_agent = languard_e2e::fleet::running_as_root();
    AgentConfig {
        data_dir: root.join("agent"),
        servers_dir: root.join("servers"),
        allowed_executables: vec![Path::new(SIM).parent().unwrap().to_path_buf()],
        run_as: RunAsConfig {
            user: root_agent.then(|| "nobody".into()),
            allow_agent_user: !root_agent,
        },
        ..AgentConfig::default()
    }
}

impl Host {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        // The game user must reach its server folder below it (a tempdir is 0700).
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
        Self { dir }
    }

    fn config(&self) -> AgentConfig {
        host_config(self.dir.path())
    }

    /// Game processes started for this host (found by their folder in argv).
    fn games(&self) -> Vec<u32> {
        let marker = self.dir.path().to_string_lossy().into_owned();
        let mut pids = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let cmdline = String::from_utf8_lossy(&cmdline);
            if cmdline.starts_with(SIM) && cmdline.contains(&marker) {
                // Zombies keep their cmdline only briefly; count live ones.
                let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
                if !stat.contains(") Z ") {
                    pids.push(pid);
                }
            }
        }
        pids
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        for pid in self.games() {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
}

/// Next block of 10 ports to hand out (see [`free_ports`]).
static NEXT_BLOCK: AtomicU32 = AtomicU32::new(u32::MAX);

/// A game port P with P..=P+4 free, and a free RCon port P+7. Blocks of 10 in
/// 20000–29999 are handed out once per process by an atomic counter that starts at an
/// offset from the pid (so concurrent test binaries rarely collide), and each block is
/// checked to be free; the probes are dropped only when the block is returned, and no
/// other test in this process can be given the same block.
fn free_ports() -> (u16, u16) {
    const BLOCKS: u32 = 1_000;
    let _ = NEXT_BLOCK.compare_exchange(
        u32::MAX,
        std::process::id() % BLOCKS,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..BLOCKS {
        let block = NEXT_BLOCK.fetch_add(1, Ordering::SeqCst) % BLOCKS;
        let game = u16::try_from(20_000 + block * 10).unwrap();
        let free = (game..game + 10).all(|p| {
            UdpSocket::bind(("0.0.0.0", p)).is_ok() && TcpListener::bind(("0.0.0.0", p)).is_ok()
        });
        if free {
            return (game, game + 7);
        }
    }
    panic!("no free block of 10 ports in 20000-29999");
}

fn spec(id: &str, knobs: &[(&str, &str)]) -> ServerSpec {
    let (game_port, rcon_port) = free_ports();
    let mut environment: BTreeMap<String, String> = [
        ("ARMA3SIM_SEED", "7"),
        ("ARMA3SIM_STARTUP_DELAY_MS", "100"),
        ("ARMA3SIM_PLAYERS", "0"),
        ("ARMA3SIM_CHAT_INTERVAL_MS", "0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for (k, v) in knobs {
        environment.insert(format!("ARMA3SIM_{k}"), (*v).to_owned());
    }
    ServerSpec {
        id: ServerId::new(id).unwrap(),
        name: format!("E2E {id}"),
        game: GameSpec::Arma3(Box::new(Arma3Spec {
            executable: SIM.to_owned(),
            game_port,
            rcon_port,
            rcon_password: "E2eSecret1".into(),
            max_ping: None,
            restrict_rcon: Some(false),
            server: ServerConfig {
                hostname: format!("E2E \"{id}\" Максим"),
                time_stamp_format: Some(languard_shared::arma::config::TimeStampFormat::Short),
                missions: vec![languard_shared::arma::config::Mission {
                    template: "co10_Escape.Altis".into(),
                    ..Default::default()
                }],
                ..ServerConfig::default()
            },
            basic: Default::default(),
            profile: Some(Default::default()),
            launch: Arma3Launch::default(),
        })),
        restart: RestartPolicy {
            mode: RestartMode::OnCrash,
            backoff_initial_ms: 200,
            backoff_max_ms: 1_000,
            crash_loop_max: 10,
            crash_loop_window_secs: 120,
        },
        timing: Timing {
            start_timeout_secs: 20,
            stop_timeout_secs: 3,
            probe_interval_secs: 1,
            probe_failures_for_hung: 3,
            players_poll_secs: 1,
        },
        environment,
    }
}

fn id(s: &str) -> ServerId {
    ServerId::new(s).unwrap()
}

async fn status(agent: &Agent, server: &str) -> ServerStatus {
    match agent
        .handle(Request::Status { server: id(server) })
        .await
        .unwrap()
    {
        Response::Status(s) => s,
        other => panic!("unexpected {other:?}"),
    }
}

async fn wait_state(
    agent: &Agent,
    server: &str,
    want: ServerState,
    within: Duration,
) -> ServerStatus {
    let deadline = Instant::now() + within;
    loop {
        let s = status(agent, server).await;
        if s.state == want {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "waited for {want:?}, still {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads events after `*after`, advancing it, until `pred` holds for one of them.
async fn wait_event(
    agent: &Agent,
    after: &mut u64,
    within: Duration,
    pred: impl Fn(&EventEnvelope) -> bool,
) -> EventEnvelope {
    let deadline = Instant::now() + within;
    let mut statuses = Vec::new();
    loop {
        for envelope in agent.events(*after, 1000).await.unwrap() {
            *after = envelope.seq;
            if pred(&envelope) {
                return envelope;
            }
            if let Event::Status(s) = &envelope.event {
                statuses.push(format!("{:?} {:?} {:?}", s.state, s.detail, s.exit));
            }
        }
        assert!(
            Instant::now() < deadline,
            "event not seen within {within:?}; status events meanwhile: {statuses:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn log_contains(e: &EventEnvelope, text: &str) -> bool {
    matches!(&e.event, Event::Log { lines, .. } if lines.iter().any(|l| l.text.contains(text)))
}

async fn apply(agent: &Agent, spec: ServerSpec) {
    agent
        .handle(Request::ApplySpec {
            spec: Box::new(spec),
        })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_players_say_kick_stop() {
    let host = Host::new();
    let agent = Agent::start(host.config()).await.unwrap();
    apply(
        &agent,
        spec("alpha", &[("PLAYERS", "3"), ("PLAYER_INTERVAL_MS", "200")]),
    )
    .await;
    agent
        .handle(Request::Start {
            server: id("alpha"),
            spec: None,
        })
        .await
        .unwrap();
    let running = wait_state(
        &agent,
        "alpha",
        ServerState::Running,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(host.games(), vec![running.pid.unwrap()]);

    // The console log reaches the event stream.
    let mut after = 0;
    wait_event(&agent, &mut after, Duration::from_secs(10), |e| {
        log_contains(e, "Host identity created.")
    })
    .await;

    // Players join and are reported as events and through `players`.
    let joined = wait_event(&agent, &mut after, Duration::from_secs(15), |e| {
        matches!(
            &e.event,
            Event::Player {
                event: PlayerEvent::Joined { .. },
                ..
            }
        )
    })
    .await;
    let Event::Player {
        event: PlayerEvent::Joined { player },
        ..
    } = joined.event
    else {
        unreachable!()
    };
    let Response::Players(players) = agent
        .handle(Request::Operate {
            server: id("alpha"),
            operation: Operation::Players,
        })
        .await
        .unwrap()
    else {
        panic!("players");
    };
    assert!(players.iter().any(|p| p.key == player.key), "{players:?}");

    assert_eq!(
        agent
            .handle(Request::Operate {
                server: id("alpha"),
                operation: Operation::Say {
                    to: None,
                    message: "Server restart in 5 minutes ✓".into()
                }
            })
            .await
            .unwrap(),
        Response::Done
    );
    // A message that would smuggle a second command line is refused.
    let err = agent
        .handle(Request::Operate {
            server: id("alpha"),
            operation: Operation::Say {
                to: None,
                message: "hi\n#shutdown".into(),
            },
        })
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidSpec);

    agent
        .handle(Request::Operate {
            server: id("alpha"),
            operation: Operation::Kick {
                player: player.key.clone(),
                reason: "e2e kick".into(),
            },
        })
        .await
        .unwrap();
    let kicked = wait_event(&agent, &mut after, Duration::from_secs(10), |e| {
        matches!(&e.event, Event::Player { event: PlayerEvent::Kicked { key, .. }, .. } if *key == player.key)
    })
    .await;
    let Event::Player {
        event: PlayerEvent::Kicked { reason, .. },
        ..
    } = kicked.event
    else {
        unreachable!()
    };
    assert!(reason.contains("e2e kick"), "{reason}");

    // Ban by GUID validates the GUID first.
    let err = agent
        .handle(Request::Operate {
            server: id("alpha"),
            operation: Operation::Ban {
                target: BanTarget::Account("not-a-guid".into()),
                minutes: Some(10),
                reason: "x".into(),
            },
        })
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidSpec);

    let stopped = match agent
        .handle(Request::Stop {
            server: id("alpha"),
        })
        .await
        .unwrap()
    {
        Response::Status(s) => s,
        other => panic!("{other:?}"),
    };
    assert_eq!(stopped.state, ServerState::Stopped);
    assert!(host.games().is_empty(), "the game exited");
    // The stop is recorded as a status event; events come in sequence order.
    let mut seqs = Vec::new();
    for e in agent.events(0, 100_000).await.unwrap() {
        seqs.push(e.seq);
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    wait_event(
        &agent,
        &mut 0,
        Duration::from_secs(5),
        |e| matches!(&e.event, Event::Status(s) if s.state == ServerState::Stopped),
    )
    .await;
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_is_restarted_and_a_crash_loop_ends_in_error() {
    let host = Host::new();
    let agent = Agent::start(host.config()).await.unwrap();
    let mut s = spec("crashy", &[("CRASH_AFTER_SECS", "3")]);
    s.restart.crash_loop_max = 3;
    apply(&agent, s).await;
    agent
        .handle(Request::Start {
            server: id("crashy"),
            spec: None,
        })
        .await
        .unwrap();
    let mut after = 0;
    let crashed = wait_event(
        &agent,
        &mut after,
        Duration::from_secs(20),
        |e| matches!(&e.event, Event::Status(s) if s.state == ServerState::Crashed),
    )
    .await;
    let Event::Status(crashed) = crashed.event else {
        unreachable!()
    };
    assert_eq!(crashed.exit.and_then(|x| x.code), Some(139), "{crashed:?}");
    // Restarted on the policy...
    wait_event(&agent, &mut after, Duration::from_secs(20), |e| {
        matches!(&e.event, Event::Status(s) if s.state == ServerState::Running && s.restarts >= 1)
    })
    .await;
    // ...until three crashes in the window make it a crash loop.
    let error = wait_state(
        &agent,
        "crashy",
        ServerState::Error,
        Duration::from_secs(30),
    )
    .await;
    assert!(
        error
            .detail
            .as_deref()
            .unwrap_or_default()
            .contains("crash loop"),
        "{error:?}"
    );
    assert!(host.games().is_empty());
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_game_ignoring_shutdown_is_killed_after_the_timeout() {
    let host = Host::new();
    let agent = Agent::start(host.config()).await.unwrap();
    apply(&agent, spec("stubborn", &[("IGNORE_SHUTDOWN", "1")])).await;
    agent
        .handle(Request::Start {
            server: id("stubborn"),
            spec: None,
        })
        .await
        .unwrap();
    wait_state(
        &agent,
        "stubborn",
        ServerState::Running,
        Duration::from_secs(20),
    )
    .await;
    let started = Instant::now();
    let stopped = match agent
        .handle(Request::Stop {
            server: id("stubborn"),
        })
        .await
        .unwrap()
    {
        Response::Status(s) => s,
        other => panic!("{other:?}"),
    };
    assert_eq!(stopped.state, ServerState::Stopped);
    // #shutdown, SIGINT and SIGTERM are ignored; only SIGKILL ends it.
    assert_eq!(stopped.exit.and_then(|x| x.signal), Some(9), "{stopped:?}");
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "waited the stop timeout first"
    );
    assert!(host.games().is_empty());
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_game_is_detected_and_restarted() {
    let host = Host::new();
    let agent = Agent::start(host.config()).await.unwrap();
    apply(&agent, spec("sleepy", &[("HANG_AFTER_SECS", "2")])).await;
    agent
        .handle(Request::Start {
            server: id("sleepy"),
            spec: None,
        })
        .await
        .unwrap();
    let first = wait_state(
        &agent,
        "sleepy",
        ServerState::Running,
        Duration::from_secs(20),
    )
    .await;
    let mut after = 0;
    wait_event(
        &agent,
        &mut after,
        Duration::from_secs(20),
        |e| matches!(&e.event, Event::Status(s) if s.state == ServerState::Hung),
    )
    .await;
    let again = wait_event(
        &agent,
        &mut after,
        Duration::from_secs(20),
        |e| matches!(&e.event, Event::Status(s) if s.state == ServerState::Running),
    )
    .await;
    let Event::Status(again) = again.event else {
        unreachable!()
    };
    assert_ne!(again.pid, first.pid, "a new process replaced the hung one");
    agent
        .handle(Request::Kill {
            server: id("sleepy"),
        })
        .await
        .unwrap();
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_change_nothing() {
    let host = Host::new();
    let agent = Agent::start(host.config()).await.unwrap();

    // An executable that is not allow-listed.
    let mut s = spec("shell", &[]);
    let GameSpec::Arma3(a) = &mut s.game;
    a.executable = "/bin/sleep".into();
    apply(&agent, s).await;
    let err = agent
        .handle(Request::Start {
            server: id("shell"),
            spec: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::ExecutableRefused, "{err}");

    // A port in use.
    let s = spec("busy", &[]);
    let GameSpec::Arma3(a) = &s.game;
    let _taken = UdpSocket::bind(("0.0.0.0", a.game_port + 2)).unwrap();
    apply(&agent, s).await;
    let err = agent
        .handle(Request::Start {
            server: id("busy"),
            spec: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::PortInUse, "{err}");
    assert!(
        !host.dir.path().join("servers/busy/server.cfg").exists(),
        "nothing written"
    );
    // A refused start is not remembered as "should run" (it would be retried after an
    // agent restart).
    for server in ["shell", "busy"] {
        let stored: serde_json::Value = serde_json::from_slice(
            &std::fs::read(host.dir.path().join(format!("agent/specs/{server}.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(stored["desired_running"], false, "{server}");
    }

    // A traversal file name.
    for path in ["../escape.txt", "/etc/languard-e2e", "mpmissions/../../x"] {
        let err = agent
            .handle(Request::WriteFile {
                server: id("busy"),
                path: path.into(),
                data: b"x".to_vec(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidPath, "{path}");
    }
    assert!(!host.dir.path().join("servers/escape.txt").exists());

    // An invalid spec (RCon port inside the game's range) is refused as a whole.
    let mut s = spec("badports", &[]);
    let GameSpec::Arma3(a) = &mut s.game;
    a.rcon_port = a.game_port + 4;
    let err = agent
        .handle(Request::ApplySpec { spec: Box::new(s) })
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidSpec);
    let err = agent
        .handle(Request::Status {
            server: id("badports"),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::UnknownServer);
    assert!(host.games().is_empty(), "nothing was launched");
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_server_folder_is_an_error_and_nothing_is_launched() {
    let host = Host::new();
    // The servers folder is a regular file: no server folder can be created (root
    // ignores permission bits, so this is how a write failure is provoked).
    let mut config = host.config();
    std::fs::write(host.dir.path().join("not-a-folder"), b"x").unwrap();
    config.servers_dir = host.dir.path().join("not-a-folder");
    let agent = Agent::start(config).await.err();
    // The agent refuses a servers folder it cannot create...
    assert!(agent.is_some());
    // ...and a server whose folder cannot be written ends in `error` at start.
    let agent = Agent::start(host.config()).await.unwrap();
    apply(&agent, spec("ro", &[])).await;
    let folder = host.dir.path().join("servers/ro");
    std::fs::write(&folder, b"a file where the folder should be").unwrap();
    let err = agent
        .handle(Request::Start {
            server: id("ro"),
            spec: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Io, "{err}");
    assert_eq!(status(&agent, "ro").await.state, ServerState::Error);
    assert!(host.games().is_empty());
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_mode_rpt_is_tailed() {
    let host = Host::new();
    let agent = Agent::start(host.config()).await.unwrap();
    let mut s = spec("win", &[("WINDOWS", "1")]);
    let GameSpec::Arma3(a) = &mut s.game;
    a.launch = Arma3Launch {
        log_source: Some(LogSource::RptFile),
        ..Arma3Launch::default()
    };
    apply(&agent, s).await;
    agent
        .handle(Request::Start {
            server: id("win"),
            spec: None,
        })
        .await
        .unwrap();
    wait_state(&agent, "win", ServerState::Running, Duration::from_secs(20)).await;
    let mut after = 0;
    wait_event(&agent, &mut after, Duration::from_secs(10), |e| {
        log_contains(e, "Host identity created.")
    })
    .await;
    let profiles = host.dir.path().join("servers/win/profiles");
    let rpts: Vec<_> = std::fs::read_dir(&profiles)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".rpt"))
        .collect();
    assert_eq!(rpts.len(), 1, "the game wrote its own .rpt");
    agent
        .handle(Request::Stop { server: id("win") })
        .await
        .unwrap();
    agent.shutdown().await;
}

/// Memory of this process in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

/// Child side of the flood test: runs in its own process (started by
/// [`a_log_flood_keeps_memory_bounded`]) so the RSS it measures is the agent's alone,
/// not that of other tests running in parallel in this binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_flood_child_process() {
    let Ok(root) = std::env::var("E2E_FLOOD_CHILD_ROOT") else {
        return; // only meaningful when started by the parent test
    };
    let config = host_config(Path::new(&root));
    let agent = Agent::start(config).await.unwrap();
    apply(&agent, spec("spam", &[("RPT_SPAM", "50000")])).await;
    agent
        .handle(Request::Start {
            server: id("spam"),
            spec: None,
        })
        .await
        .unwrap();
    wait_state(
        &agent,
        "spam",
        ServerState::Running,
        Duration::from_secs(20),
    )
    .await;
    let baseline = rss();
    let mut peak = baseline;
    let mut lines = 0usize;
    let mut after = 0;
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        // Consume and acknowledge like the controller does.
        let events = agent.events(after, 200).await.unwrap();
        for e in &events {
            after = e.seq;
            if let Event::Log { lines: l, .. } = &e.event {
                lines += l.len();
            }
        }
        if !events.is_empty() {
            agent.ack(after).await.unwrap();
        }
        peak = peak.max(rss());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    agent
        .handle(Request::Kill { server: id("spam") })
        .await
        .unwrap();
    agent.shutdown().await;
    println!("FLOOD {lines} {baseline} {peak}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_flood_keeps_memory_bounded() {
    let host = Host::new();
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "log_flood_child_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("E2E_FLOOD_CHILD_ROOT", host.dir.path())
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(output.status.success(), "flood child failed");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report = stdout
        .lines()
        .find_map(|l| l.split_once("FLOOD ").map(|(_, r)| r.to_owned()))
        .unwrap_or_else(|| panic!("no report from the flood child: {stdout}"));
    let numbers: Vec<u64> = report
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    let (lines, baseline, peak) = (numbers[0], numbers[1], numbers[2]);
    eprintln!(
        "log flood: {lines} lines in 6 s, RSS {} MiB -> peak {} MiB",
        baseline >> 20,
        peak >> 20
    );
    assert!(
        lines > 50_000,
        "the flood reached the event stream ({lines} lines)"
    );
    assert!(
        peak - baseline < 128 << 20,
        "memory grew by {} MiB",
        (peak - baseline) >> 20
    );
}

/// Child side of the SIGKILL test: runs an agent that starts a server, reports the
/// game's pid and then waits to be killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_child_process() {
    let Ok(root) = std::env::var("E2E_AGENT_CHILD_ROOT") else {
        return; // only meaningful when started by the parent test
    };
    let config = host_config(Path::new(&root));
    let spec: ServerSpec =
        serde_json::from_str(&std::env::var("E2E_AGENT_CHILD_SPEC").unwrap()).unwrap();
    let agent = Agent::start(config).await.unwrap();
    apply(&agent, spec).await;
    agent
        .handle(Request::Start {
            server: id("keeper"),
            spec: None,
        })
        .await
        .unwrap();
    let running = wait_state(
        &agent,
        "keeper",
        ServerState::Running,
        Duration::from_secs(20),
    )
    .await;
    println!("READY {}", running.pid.unwrap());
    tokio::time::sleep(Duration::from_secs(600)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_sigkill_the_agent_adopts_the_running_game() {
    let host = Host::new();
    let spec = spec("keeper", &[]);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "agent_child_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("E2E_AGENT_CHILD_ROOT", host.dir.path())
        .env(
            "E2E_AGENT_CHILD_SPEC",
            serde_json::to_string(&spec).unwrap(),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut game_pid = None;
    for line in stdout.lines() {
        // libtest prints "test agent_child_process ... " on the same line first.
        if let Some((_, pid)) = line.unwrap().split_once("READY ") {
            game_pid = Some(pid.trim().parse::<u32>().unwrap());
            break;
        }
    }
    let game_pid = game_pid.expect("child agent started the game");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(host.games(), vec![game_pid], "the game outlived the agent");

    // A new agent on the same data adopts the game instead of starting a second one.
    let agent = Agent::start(host.config()).await.unwrap();
    let adopted = wait_state(
        &agent,
        "keeper",
        ServerState::Running,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(adopted.pid, Some(game_pid));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(host.games(), vec![game_pid], "no second copy");
    // RCon works again through the adopted session.
    let Response::Text(admins) = agent
        .handle(Request::Operate {
            server: id("keeper"),
            operation: Operation::Console {
                command: "admins".into(),
            },
        })
        .await
        .unwrap()
    else {
        panic!("text");
    };
    assert!(admins.starts_with("Connected RCon admins:"), "{admins}");
    // The log tail is re-attached: a line written after adoption arrives as an event.
    agent
        .handle(Request::Operate {
            server: id("keeper"),
            operation: Operation::Say {
                to: None,
                message: "after-adoption-marker".into(),
            },
        })
        .await
        .unwrap();
    let mut after = 0;
    wait_event(&agent, &mut after, Duration::from_secs(15), |e| {
        log_contains(e, "after-adoption-marker")
    })
    .await;
    // And it stops as usual.
    agent
        .handle(Request::Stop {
            server: id("keeper"),
        })
        .await
        .unwrap();
    assert!(host.games().is_empty());
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_requests_spare_secrets_and_remove_needs_a_stopped_server() {
    use std::os::unix::fs::PermissionsExt;
    let host = Host::new();
    let agent = Agent::start(host.config()).await.unwrap();
    apply(&agent, spec("files", &[])).await;
    agent
        .handle(Request::Start {
            server: id("files"),
            spec: None,
        })
        .await
        .unwrap();
    wait_state(
        &agent,
        "files",
        ServerState::Running,
        Duration::from_secs(20),
    )
    .await;
    let err = agent
        .handle(Request::RemoveServer {
            server: id("files"),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::NotStopped);

    // Secret files (server.cfg, battleye/) are off limits to every file request.
    for path in ["server.cfg", "battleye/beserver_x64.cfg", "battleye"] {
        let err = agent
            .handle(Request::ReadFile {
                server: id("files"),
                path: path.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidPath, "{path}");
        assert!(err.message.contains("secrets"), "{path}: {err}");
    }
    let err = agent
        .handle(Request::ListFiles {
            server: id("files"),
            dir: "battleye".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidPath);
    for request in [
        Request::WriteFile {
            server: id("files"),
            path: "battleye/bans.txt".into(),
            data: b"x".to_vec(),
        },
        Request::DeleteFile {
            server: id("files"),
            path: "server.cfg".into(),
        },
    ] {
        assert_eq!(
            agent.handle(request).await.unwrap_err().code,
            ErrorCode::InvalidPath
        );
    }
    let be_dir = host.dir.path().join("servers/files/battleye");
    assert_eq!(
        std::fs::metadata(&be_dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert!(host.dir.path().join("servers/files/server.cfg").exists());

    // Ordinary files work.
    agent
        .handle(Request::WriteFile {
            server: id("files"),
            path: "mpmissions/e2e.txt".into(),
            data: b"hello".to_vec(),
        })
        .await
        .unwrap();
    let Response::File(data) = agent
        .handle(Request::ReadFile {
            server: id("files"),
            path: "mpmissions/e2e.txt".into(),
        })
        .await
        .unwrap()
    else {
        panic!("file");
    };
    assert_eq!(data, b"hello");
    let Response::Files(entries) = agent
        .handle(Request::ListFiles {
            server: id("files"),
            dir: "mpmissions".into(),
        })
        .await
        .unwrap()
    else {
        panic!("files");
    };
    assert!(entries.iter().any(|e| e.name == "e2e.txt"), "{entries:?}");
    agent
        .handle(Request::DeleteFile {
            server: id("files"),
            path: "mpmissions/e2e.txt".into(),
        })
        .await
        .unwrap();

    agent
        .handle(Request::Stop {
            server: id("files"),
        })
        .await
        .unwrap();
    // Remove and Start race: exactly one wins, and the loser gets a typed refusal.
    let (removed, started) = tokio::join!(
        agent.handle(Request::RemoveServer {
            server: id("files"),
        }),
        agent.handle(Request::Start {
            server: id("files"),
            spec: None
        }),
    );
    match (&removed, &started) {
        (Ok(_), Err(e)) => assert_eq!(e.code, ErrorCode::UnknownServer, "{e}"),
        (Err(e), Ok(_)) => {
            assert_eq!(e.code, ErrorCode::NotStopped, "{e}");
            agent
                .handle(Request::Kill {
                    server: id("files"),
                })
                .await
                .unwrap();
            agent
                .handle(Request::RemoveServer {
                    server: id("files"),
                })
                .await
                .unwrap();
        }
        other => panic!("unexpected outcome {other:?}"),
    }
    assert!(!host.dir.path().join("agent/specs/files.json").exists());
    let err = agent
        .handle(Request::Start {
            server: id("files"),
            spec: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::UnknownServer);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(host.games().is_empty(), "nothing left running");
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_operations_reach_the_game() {
    use languard_shared::arma::rcon::parse::{BanExpiry, parse_bans};

    let host = Host::new();
    let agent = Agent::start(host.config()).await.unwrap();
    apply(
        &agent,
        spec("ops", &[("PLAYERS", "3"), ("PLAYER_INTERVAL_MS", "200")]),
    )
    .await;
    agent
        .handle(Request::Start {
            server: id("ops"),
            spec: None,
        })
        .await
        .unwrap();
    let first = wait_state(&agent, "ops", ServerState::Running, Duration::from_secs(20)).await;
    let server = || id("ops");
    let rcon = |command: &str| Request::Operate {
        server: server(),
        operation: Operation::Console {
            command: command.into(),
        },
    };
    let text = |r: Response| match r {
        Response::Text(t) => t,
        other => panic!("{other:?}"),
    };

    // Wait for two players online.
    let deadline = Instant::now() + Duration::from_secs(15);
    let players = loop {
        let Response::Players(p) = agent
            .handle(Request::Operate {
                server: server(),
                operation: Operation::Players,
            })
            .await
            .unwrap()
        else {
            panic!("players");
        };
        if p.len() >= 2 {
            break p;
        }
        assert!(Instant::now() < deadline, "players did not join: {p:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut after = 0;

    // A private message to one player reaches the game's console log.
    agent
        .handle(Request::Operate {
            server: server(),
            operation: Operation::Say {
                to: Some(players[0].key.clone()),
                message: "just for you".into(),
            },
        })
        .await
        .unwrap();
    wait_event(&agent, &mut after, Duration::from_secs(10), |e| {
        log_contains(e, "just for you")
    })
    .await;

    // An offline ban by GUID with a duration, listed by `bans`, then lifted.
    let guid = "0123456789abcdef0123456789abcdef";
    agent
        .handle(Request::Operate {
            server: server(),
            operation: Operation::Ban {
                target: BanTarget::Account(guid.into()),
                minutes: Some(30),
                reason: "e2e offline ban".into(),
            },
        })
        .await
        .unwrap();
    let bans = parse_bans(&text(agent.handle(rcon("bans")).await.unwrap()));
    let ban = bans.iter().find(|b| b.target == guid).expect("ban listed");
    assert_eq!(ban.reason, "e2e offline ban");
    assert!(
        matches!(ban.minutes_left, BanExpiry::Minutes(m) if (29..=30).contains(&m)),
        "{ban:?}"
    );
    agent
        .handle(Request::Operate {
            server: server(),
            operation: Operation::Unban {
                ban: ban.index.to_string(),
            },
        })
        .await
        .unwrap();
    let bans = parse_bans(&text(agent.handle(rcon("bans")).await.unwrap()));
    assert!(bans.iter().all(|b| b.target != guid), "{bans:?}");

    // Banning an online player kicks them with BattlEye's ban reason.
    let victim = players[1].key.clone();
    agent
        .handle(Request::Operate {
            server: server(),
            operation: Operation::Ban {
                target: BanTarget::Player(victim.clone()),
                minutes: Some(10),
                reason: "e2e online ban".into(),
            },
        })
        .await
        .unwrap();
    let kicked = wait_event(&agent, &mut after, Duration::from_secs(10), |e| {
        matches!(&e.event, Event::Player { event: PlayerEvent::Kicked { key, .. }, .. } if *key == victim)
    })
    .await;
    let Event::Player {
        event: PlayerEvent::Kicked { reason, .. },
        ..
    } = kicked.event
    else {
        unreachable!()
    };
    assert!(reason.contains("e2e online ban"), "{reason}");

    // Lock/unlock are accepted by the game (an unknown command would be an error).
    for request in [
        Request::Operate {
            server: server(),
            operation: Operation::Lock,
        },
        Request::Operate {
            server: server(),
            operation: Operation::Unlock,
        },
    ] {
        assert_eq!(agent.handle(request).await.unwrap(), Response::Done);
    }
    // A mission change shows in the game's log.
    agent
        .handle(Request::Operate {
            server: server(),
            operation: Operation::Mission {
                name: "co10_Escape.Altis".into(),
                difficulty: Some("Veteran".into()),
            },
        })
        .await
        .unwrap();
    wait_event(&agent, &mut after, Duration::from_secs(10), |e| {
        log_contains(e, "co10_Escape")
    })
    .await;
    let err = agent
        .handle(Request::Operate {
            server: server(),
            operation: Operation::Mission {
                name: "two words".into(),
                difficulty: None,
            },
        })
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidSpec);

    // Restart replaces the process.
    agent
        .handle(Request::Restart {
            server: server(),
            spec: None,
        })
        .await
        .unwrap();
    let again = wait_state(&agent, "ops", ServerState::Running, Duration::from_secs(20)).await;
    assert_ne!(again.pid, first.pid);
    assert_eq!(host.games(), vec![again.pid.unwrap()]);
    agent
        .handle(Request::Stop { server: server() })
        .await
        .unwrap();
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_with_a_spec_then_shutdown_with_a_countdown() {
    let host = Host::new();
    let agent = Agent::start(host.config()).await.unwrap();
    // One round trip: the agent did not know the server before.
    let response = agent
        .handle(Request::Start {
            server: id("oneshot"),
            spec: Some(Box::new(spec("oneshot", &[]))),
        })
        .await
        .unwrap();
    assert!(matches!(response, Response::Status(_)), "{response:?}");
    let running = wait_state(
        &agent,
        "oneshot",
        ServerState::Running,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(host.games(), vec![running.pid.unwrap()]);

    let asked = Instant::now();
    let response = agent
        .handle(Request::Operate {
            server: id("oneshot"),
            operation: Operation::Shutdown {
                countdown_secs: 2,
                message: Some("e2e shutdown warning".into()),
            },
        })
        .await
        .unwrap();
    let Response::Status(stopped) = response else {
        panic!("{response:?}");
    };
    assert!(asked.elapsed() >= Duration::from_secs(2), "no countdown");
    assert_eq!(stopped.state, ServerState::Stopped);
    assert!(host.games().is_empty(), "the game exited");
    // The warning reached the game (its console log) before the stop began.
    let mut after = 0;
    let warned = wait_event(&agent, &mut after, Duration::from_secs(10), |e| {
        log_contains(e, "e2e shutdown warning")
    })
    .await;
    let stopping = wait_event(
        &agent,
        &mut 0,
        Duration::from_secs(5),
        |e| matches!(&e.event, Event::Status(s) if s.state == ServerState::Stopping),
    )
    .await;
    assert!(warned.seq < stopping.seq, "{warned:?} {stopping:?}");
    // It stays stopped, as after a stop request.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(status(&agent, "oneshot").await.state, ServerState::Stopped);
    agent.shutdown().await;
}
