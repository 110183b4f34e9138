//! RCon round trip over loopback: our client against the real `arma3server-sim`
//! process. Plain binary (no harness): `cargo bench -p languard-gamesim --bench
//! rcon_roundtrip` prints latency percentiles and throughput, sequential and with
//! concurrent tasks sharing one client.

use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use languard_shared::arma::rcon::client::{ClientOptions, RconClient, RconError};

const PASSWORD: &str = "bench-pw";
const COMMANDS: usize = 10_000;

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

fn free_port(pair: bool) -> u16 {
    loop {
        let Ok(a) = UdpSocket::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(addr) = a.local_addr() else { continue };
        let port = addr.port();
        if !pair || (port < u16::MAX && UdpSocket::bind(("127.0.0.1", port + 1)).is_ok()) {
            return port;
        }
    }
}

fn spawn_sim() -> std::io::Result<Sim> {
    let dir = tempfile::tempdir()?;
    let profiles = dir.path().join("profiles");
    let be = dir.path().join("battleye");
    std::fs::create_dir_all(&profiles)?;
    std::fs::create_dir_all(&be)?;
    let game_port = free_port(true);
    let rcon_port = loop {
        let p = free_port(false);
        if p != game_port && p != game_port + 1 {
            break p;
        }
    };
    std::fs::write(
        dir.path().join("server.cfg"),
        "hostname = \"bench\";\nmaxPlayers = 32;\n",
    )?;
    std::fs::write(
        be.join("beserver_x64.cfg"),
        format!("RConPassword {PASSWORD}\nRConPort {rcon_port}\nRestrictRCon 0\n"),
    )?;
    let child = Command::new(env!("CARGO_BIN_EXE_arma3server-sim"))
        .current_dir(dir.path())
        .arg(format!("-port={game_port}"))
        .arg("-config=server.cfg")
        .arg(format!("-profiles={}", profiles.display()))
        .arg(format!("-bepath={}", be.display()))
        .args([
            "-sim-seed=1",
            "-sim-players=4",
            "-sim-player-interval-ms=100",
            "-sim-startup-delay-ms=0",
            "-sim-chat-interval-ms=0",
            "-sim-followup=0",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    Ok(Sim {
        child,
        rcon: SocketAddr::from(([127, 0, 0, 1], rcon_port)),
        _dir: dir,
    })
}

async fn connect(sim: &Sim) -> Result<RconClient, RconError> {
    let opts = ClientOptions {
        login_timeout: Duration::from_millis(300),
        login_attempts: 1,
        message_buffer: 16,
        ..ClientOptions::default()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match RconClient::connect(sim.rcon, PASSWORD, opts.clone()).await {
            Ok((client, _messages)) => return Ok(client),
            Err(RconError::LoginTimeout { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

fn report(name: &str, mut lat: Vec<Duration>, wall: Duration) {
    lat.sort_unstable();
    let n = lat.len();
    if n == 0 {
        println!("{name}: no samples");
        return;
    }
    let pct = |p: f64| lat[((n as f64 * p) as usize).min(n - 1)];
    let mean = lat.iter().sum::<Duration>() / n as u32;
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "{name:<34} n={n:<6} p50 {:>7.1} µs  p99 {:>7.1} µs  mean {:>7.1} µs  max {:>8.1} µs  {:>8.0} cmd/s",
        us(pct(0.50)),
        us(pct(0.99)),
        us(mean),
        us(lat[n - 1]),
        n as f64 / wall.as_secs_f64()
    );
}

async fn sequential(client: &RconClient, cmd: &'static str) -> Result<(), RconError> {
    let mut lat = Vec::with_capacity(COMMANDS);
    let start = Instant::now();
    for _ in 0..COMMANDS {
        let t = Instant::now();
        std::hint::black_box(client.command(cmd).await?);
        lat.push(t.elapsed());
    }
    report(&format!("sequential `{cmd}`"), lat, start.elapsed());
    Ok(())
}

async fn concurrent(client: &RconClient, cmd: &'static str, tasks: usize) -> Result<(), RconError> {
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|i| {
            let client = client.clone();
            let count = COMMANDS / tasks + usize::from(i < COMMANDS % tasks);
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(count);
                for _ in 0..count {
                    let t = Instant::now();
                    std::hint::black_box(client.command(cmd).await?);
                    lat.push(t.elapsed());
                }
                Ok::<_, RconError>(lat)
            })
        })
        .collect();
    let mut lat = Vec::with_capacity(COMMANDS);
    for h in handles {
        match h.await {
            Ok(r) => lat.extend(r?),
            Err(e) => return Err(RconError::Io(std::io::Error::other(e))),
        }
    }
    report(&format!("{tasks} tasks `{cmd}`"), lat, start.elapsed());
    Ok(())
}

fn main() {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tokio runtime: {e}");
            std::process::exit(1);
        }
    };
    let result: Result<(), Box<dyn std::error::Error>> = runtime.block_on(async {
        let sim = spawn_sim()?;
        let client = connect(&sim).await?;
        // Let the simulated players join so `players` has rows.
        tokio::time::sleep(Duration::from_millis(800)).await;
        let players = client.command("players").await?;
        println!(
            "RCon round trip vs arma3server-sim over loopback, {COMMANDS} commands per case \
             (`players` answer = {} bytes)",
            players.len()
        );
        for _ in 0..500 {
            client.command("").await?; // warm-up
        }
        sequential(&client, "").await?;
        sequential(&client, "players").await?;
        concurrent(&client, "", 32).await?;
        concurrent(&client, "players", 32).await?;
        let s = client.stats();
        println!(
            "client stats: sent {} received {} dropped {} retransmits {} timeouts {}",
            s.packets_sent,
            s.packets_received,
            s.packets_dropped,
            s.retransmits,
            s.command_timeouts
        );
        client.close().await;
        Ok(())
    });
    if let Err(e) = result {
        eprintln!("rcon_roundtrip failed: {e}");
        std::process::exit(1);
    }
}
