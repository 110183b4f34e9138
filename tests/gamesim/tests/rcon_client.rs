//! Our RCon client against the real `arma3server-sim` process: the simulator reads
//! RConPort/RConPassword from `beserver_x64.cfg` in `-bepath`, exactly like the
//! game server, and answers over loopback UDP.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use languard_shared::arma::rcon::client::{
    ClientOptions, ConnectionState, RconClient, RconError, ServerMessage,
};
use languard_shared::arma::rcon::parse::parse_players;
use tokio::sync::mpsc;

const PASSWORD: &str = "s3cret-pw";

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

/// A UDP port that is free now (and, with `pair`, the one above it too: A2S uses
/// game port + 1).
fn free_port(pair: bool) -> u16 {
    loop {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = a.local_addr().unwrap().port();
        if !pair || (port < u16::MAX && UdpSocket::bind(("127.0.0.1", port + 1)).is_ok()) {
            return port;
        }
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

fn spawn_sim(extra: &[&str]) -> Sim {
    let dir = tempfile::tempdir().unwrap();
    let profiles = dir.path().join("profiles");
    let be = dir.path().join("battleye");
    std::fs::create_dir_all(&profiles).unwrap();
    std::fs::create_dir_all(&be).unwrap();
    let game_port = free_port(true);
    let rcon_port = loop {
        let p = free_port(false);
        if p != game_port && p != game_port + 1 {
            break p;
        }
    };
    write(
        &dir.path().join("server.cfg"),
        "hostname = \"Languard RCon test\";\nmaxPlayers = 32;\n",
    );
    write(
        &be.join("beserver_x64.cfg"),
        &format!("RConPassword {PASSWORD}\nRConPort {rcon_port}\nRestrictRCon 0\n"),
    );
    let child = Command::new(env!("CARGO_BIN_EXE_arma3server-sim"))
        .current_dir(dir.path())
        .arg(format!("-port={game_port}"))
        .arg("-config=server.cfg")
        .arg(format!("-profiles={}", profiles.display()))
        .arg(format!("-bepath={}", be.display()))
        .args([
            "-sim-seed=7",
            "-sim-startup-delay-ms=0",
            "-sim-chat-interval-ms=0",
            "-sim-followup=0",
        ])
        .args(extra)
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
