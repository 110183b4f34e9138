//! Our RCon client against the real `arma3server-sim` process, set up exactly as the
//! agent will set up a real server: server.cfg and the BattlEye config rendered by our
//! models (under the file name BattlEye expects on Linux) and argv from our launch
//! builder. The simulator reads RConPort/RConPassword from that file and answers over
//! loopback UDP.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use languard_shared::arma::config::battleye::config_file_name;
use languard_shared::arma::config::{
    BattlEyeConfig, HostOs, Mission, ServerArch, ServerConfig, TimeStampFormat,
};
use languard_shared::arma::launch::{GamePorts, LaunchArgs};
use languard_shared::arma::rcon::client::{
    ClientOptions, ConnectionState, RconClient, RconError, ServerMessage,
};
use languard_shared::arma::rcon::parse::{ServerEvent, parse_players, parse_server_message};
use tokio::sync::mpsc;

const PASSWORD: &str = "s3cretPw42";

/// A running simulator; killed on drop.
struct Sim {
    child: Child,
    rcon: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A UDP port that is free now (and, with `block`, the four above it too: the game
/// reserves game port .. game port + 4).
fn free_port(block: bool) -> u16 {
    loop {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = a.local_addr().unwrap().port();
        if !block
            || (port < u16::MAX - 4
                && (1..=4).all(|i| UdpSocket::bind(("127.0.0.1", port + i)).is_ok()))
        {
            return port;
        }
    }
}

fn spawn_sim(extra: &[&str]) -> Sim {
    let dir = tempfile::tempdir().unwrap();
    let profiles = dir.path().join("profiles");
    let be = dir.path().join("battleye");
    std::fs::create_dir_all(&profiles).unwrap();
    std::fs::create_dir_all(&be).unwrap();
    let game_port = free_port(true);
    // GamePorts refuses an RCon port inside game port .. game port + 4.
    let ports = loop {
        if let Ok(ports) = GamePorts::new(game_port, Some(free_port(false))) {
            break ports;
        }
    };
    let rcon_port = ports.rcon().unwrap();

    let server = ServerConfig {
        hostname: "Languard RCon test \"quoted\" \\ Максим".into(),
        max_players: Some(32),
        time_stamp_format: Some(TimeStampFormat::Short),
        missions: vec![Mission {
            template: "co10_Escape.Altis".into(),
            difficulty: Some("Regular".into()),
            ..Mission::default()
        }],
        ..ServerConfig::default()
    };
    std::fs::write(dir.path().join("server.cfg"), server.render().unwrap()).unwrap();
    let mut battleye = BattlEyeConfig::new(PASSWORD, rcon_port);
    battleye.restrict_rcon = Some(false);
    let arch = ServerArch::from_executable("arma3server_x64").unwrap();
    std::fs::write(
        be.join(config_file_name(HostOs::Linux, arch)),
        battleye.render().unwrap(),
    )
    .unwrap();

    let argv = LaunchArgs::new(ports.game())
        .config("server.cfg")
        .profiles(profiles.display().to_string())
        .bepath(be.display().to_string())
        .name("server")
        .auto_init(true)
        .build()
        .unwrap();
    // Simulation knobs travel in the environment (ARMA3SIM_*), so the argv stays
    // exactly what a real server would get.
    let mut command = Command::new(env!("CARGO_BIN_EXE_arma3server-sim"));
    for knob in [
        "-sim-seed=7",
        "-sim-startup-delay-ms=0",
        "-sim-chat-interval-ms=0",
    ]
    .iter()
    .chain(extra)
    {
        let (name, value) = knob.trim_start_matches("-sim-").split_once('=').unwrap();
        command.env(
            format!("ARMA3SIM_{}", name.replace('-', "_").to_uppercase()),
            value,
        );
    }
    let child = command
        .current_dir(dir.path())
        .args(argv)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Sim {
        child,
        rcon: SocketAddr::from(([127, 0, 0, 1], rcon_port)),
        _dir: dir,
    }
}

fn opts() -> ClientOptions {
    ClientOptions {
        login_timeout: Duration::from_millis(300),
        login_attempts: 1,
        command_timeout: Duration::from_millis(300),
        ..ClientOptions::default()
    }
}

/// Logs in as soon as the simulator's RCon is up (it takes a moment to start).
async fn connect(
    sim: &Sim,
    password: &str,
) -> Result<(RconClient, mpsc::Receiver<ServerMessage>), RconError> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match RconClient::connect(sim.rcon, password, opts()).await {
            Err(RconError::LoginTimeout { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

/// Waits for the first server message satisfying `pred`, skipping others.
async fn wait_message(
    rx: &mut mpsc::Receiver<ServerMessage>,
    pred: impl Fn(&str) -> bool,
) -> String {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let m = rx.recv().await.unwrap();
            if pred(&m.text) {
                return m.text;
            }
        }
    })
    .await
    .unwrap()
}

/// Which answer a command must get; lets concurrent tests check routing.
fn expected_prefix(cmd: &str) -> &'static str {
    match cmd {
        "players" => "Players on server:",
        "admins" => "Connected RCon admins:",
        "bans" => "GUID Bans:",
        "missions" => "Missions on server:",
        _ => unreachable!(),
    }
}

const COMMANDS: [&str; 4] = ["players", "admins", "bans", "missions"];

#[tokio::test]
async fn login_players_and_admin_message() {
    let sim = spawn_sim(&["-sim-players=3", "-sim-player-interval-ms=50"]);
    let (client, mut rx) = connect(&sim, PASSWORD).await.unwrap();
    let login = wait_message(&mut rx, |t| t.starts_with("RCon admin #")).await;
    assert!(login.ends_with("logged in"), "{login}");
    assert_eq!(client.state(), ConnectionState::Connected);

    // Give the simulated players time to join, then parse the table.
    let mut players = Vec::new();
    for _ in 0..50 {
        let text = client.command("players").await.unwrap();
        assert!(text.starts_with("Players on server:"), "{text}");
        assert!(text.trim_end().ends_with("players in total)"), "{text}");
        players = parse_players(&text);
        if !players.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!players.is_empty(), "simulated players joined");
    for p in &players {
        assert!(!p.name.is_empty());
    }
    let admins = client.command("admins").await.unwrap();
    assert!(admins.starts_with("Connected RCon admins:"), "{admins}");
    client.close().await;
}

#[tokio::test]
async fn say_is_echoed_as_server_message() {
    let sim = spawn_sim(&["-sim-players=0"]);
    let (client, mut rx) = connect(&sim, PASSWORD).await.unwrap();
    assert_eq!(
        client
            .command("say -1 Hello from Languard, Максим")
            .await
            .unwrap(),
        ""
    );
    let echo = wait_message(&mut rx, |t| t.contains("Hello from Languard")).await;
    assert!(echo.starts_with("RCon admin #"), "{echo}");
    assert!(
        echo.ends_with("(Global) Hello from Languard, Максим"),
        "{echo}"
    );
}

#[tokio::test]
async fn wrong_password_is_refused() {
    let sim = spawn_sim(&["-sim-players=0"]);
    let err = connect(&sim, "not-the-password").await.unwrap_err();
    assert!(matches!(err, RconError::WrongPassword), "{err:?}");
    assert!(!err.to_string().contains(PASSWORD));
}

#[tokio::test]
async fn hundred_and_fifty_concurrent_commands_are_routed_correctly() {
    let sim = spawn_sim(&["-sim-players=2", "-sim-player-interval-ms=50"]);
    let (client, _rx) = connect(&sim, PASSWORD).await.unwrap();
    let tasks: Vec<_> = (0..150)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                let cmd = COMMANDS[i % COMMANDS.len()];
                let answer = client.command(cmd).await.unwrap();
                assert!(answer.starts_with(expected_prefix(cmd)), "{cmd}: {answer}");
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(client.stats().command_timeouts, 0);
}

#[tokio::test]
async fn three_hundred_sequential_commands_across_seq_wrap() {
    let sim = spawn_sim(&["-sim-players=0"]);
    let (client, _rx) = connect(&sim, PASSWORD).await.unwrap();
    for i in 0..300 {
        let cmd = COMMANDS[i % COMMANDS.len()];
        let answer = client.command(cmd).await.unwrap();
        assert!(
            answer.starts_with(expected_prefix(cmd)),
            "#{i} {cmd}: {answer}"
        );
    }
    assert_eq!(client.stats().command_timeouts, 0);
}

#[tokio::test]
async fn lossy_server_is_survived_by_retransmission() {
    // Every 4th datagram from the simulator is lost, multi-part answers included.
    let sim = spawn_sim(&["-sim-players=3", "-sim-drop-every=4", "-sim-max-part=64"]);
    let (client, _rx) = connect(&sim, PASSWORD).await.unwrap();
    for i in 0..40 {
        let cmd = COMMANDS[i % COMMANDS.len()];
        let answer = client.command(cmd).await.unwrap();
        assert!(answer.starts_with(expected_prefix(cmd)), "{cmd}: {answer}");
    }
    assert!(client.stats().retransmits > 0);
}

#[tokio::test]
async fn live_player_events_parse_into_typed_events() {
    // The same scenario the Python clients run: players join and chat, and the console
    // messages arrive on the channel and parse into typed events.
    let sim = spawn_sim(&[
        "-sim-players=3",
        "-sim-player-interval-ms=50",
        "-sim-chat-interval-ms=100",
    ]);
    let (_client, mut rx) = connect(&sim, PASSWORD).await.unwrap();
    let (mut connected, mut verified, mut chat) = (false, false, false);
    tokio::time::timeout(Duration::from_secs(10), async {
        while !(connected && verified && chat) {
            let message = rx.recv().await.unwrap();
            match parse_server_message(&message.text) {
                ServerEvent::PlayerConnected { name, ip, .. } => {
                    assert!(!name.is_empty());
                    assert!(!ip.is_loopback(), "simulated players come from afar: {ip}");
                    connected = true;
                }
                ServerEvent::GuidVerified { guid, .. } => {
                    assert_eq!(guid.len(), 32, "{guid}");
                    verified = true;
                }
                ServerEvent::Chat { name, text, .. } => {
                    assert!(!name.is_empty() && !text.is_empty(), "{}", message.text);
                    chat = true;
                }
                ServerEvent::Unknown(text) => panic!("unparsed console message: {text}"),
                _ => {}
            }
        }
    })
    .await
    .expect("join, GUID verification and chat within 10 s");
}
