//! arma3server-sim as a real process on loopback: RCon through the shared codec with a
//! tiny blocking client, A2S with a hand-written client, RPT on stdout or in a file,
//! exit codes.

// Helpers outside #[test] fns are test code too; panicking is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use languard_shared::arma::rcon::{ClientPacket, ServerPacket};

const BIN: &str = env!("CARGO_BIN_EXE_arma3server-sim");
const PASSWORD: &str = "s3cret";

/// Each test gets its own block of 10 ports; the counter keeps parallel tests apart.
static NEXT_BLOCK: AtomicU16 = AtomicU16::new(0);

fn port_block() -> u16 {
    loop {
        let n = NEXT_BLOCK.fetch_add(1, Ordering::SeqCst);
        let offset = (std::process::id() % 3000) * 10 + u32::from(n) * 10;
        let base = 20_000 + u16::try_from(offset % 40_000).unwrap();
        let all_free = (0..10).all(|i| UdpSocket::bind(("127.0.0.1", base + i)).is_ok());
        if all_free {
            return base;
        }
    }
}

struct Sim {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    rcon_port: u16,
    lines: Arc<Mutex<Vec<String>>>,
}

struct SimBuilder {
    args: Vec<String>,
    server_cfg: Option<String>,
    be_cfg: Option<String>,
    with_rcon: bool,
    bepath: bool,
    be_cfg_name: String,
}

impl SimBuilder {
    fn new() -> Self {
        SimBuilder {
            args: vec![
                "-sim-startup-delay-ms=100".into(),
                "-sim-players=0".into(),
                "-sim-seed=42".into(),
            ],
            server_cfg: Some(
                "hostname = \"Languard Sim\";\nmaxPlayers = 12;\npersistent = 1;\n\
                 timeStampFormat = \"short\";\n\
                 class Missions { class M1 { template = \"Coop.Altis\"; difficulty = \"Veteran\"; }; };\n"
                    .into(),
            ),
            be_cfg: None,
            with_rcon: true,
            bepath: false,
            be_cfg_name: "beserver_x64.cfg".into(),
        }
    }
    /// Puts the BattlEye cfg in `<dir>/be` and passes `-bepath=be`.
    fn bepath(mut self) -> Self {
        self.bepath = true;
        self
    }
    fn arg(mut self, a: &str) -> Self {
        self.args.push(a.into());
        self
    }
    fn server_cfg(mut self, text: Option<&str>) -> Self {
        self.server_cfg = text.map(String::from);
        self
    }
    fn be_cfg(mut self, text: &str) -> Self {
        self.be_cfg = Some(text.into());
        self
    }
    fn be_cfg_name(mut self, name: &str) -> Self {
        self.be_cfg_name = name.into();
        self
    }
    fn no_rcon(mut self) -> Self {
        self.with_rcon = false;
        self
    }

    fn spawn(self) -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let base = port_block();
        let (port, rcon_port) = (base, base + 8);
        if let Some(cfg) = &self.server_cfg {
            std::fs::write(dir.path().join("server.cfg"), cfg).unwrap();
        }
        let be_dir = if self.bepath {
            dir.path().join("be")
        } else {
            dir.path().join("profiles").join("BattlEye")
        };
        std::fs::create_dir_all(&be_dir).unwrap();
        let be = self
            .be_cfg
            .clone()
            .map(|t| t.replace("{rcon_port}", &rcon_port.to_string()))
            .unwrap_or_else(|| {
                if self.with_rcon {
                    format!("RConPassword {PASSWORD}\nRConPort {rcon_port}\nRConIP 127.0.0.1\n")
                } else {
                    format!("RConPort {rcon_port}\n")
                }
            });
        std::fs::write(be_dir.join(&self.be_cfg_name), be).unwrap();
        let mut args = vec![
            format!("-port={port}"),
            "-ip=127.0.0.1".into(),
            "-config=server.cfg".into(),
            "-profiles=profiles".into(),
        ];
        if self.bepath {
            args.push("-bepath=be".into());
        }
        args.extend(self.args);
        let mut child = Command::new(BIN)
            .args(&args)
            .current_dir(dir.path())
            .env_remove("ARMA3SIM_PLAYERS")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().unwrap();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                match line {
                    Ok(l) => sink.lock().unwrap().push(l),
                    Err(_) => break,
                }
            }
        });
        Sim {
            child,
            dir,
            port,
            rcon_port,
            lines,
        }
    }
}

impl Sim {
    fn wait_line(&self, pred: impl Fn(&str) -> bool, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.lines.lock().unwrap().iter().any(|l| pred(l)) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    fn ready(&self) {
        assert!(
            self.wait_line(
                |l| l.ends_with("Host identity created."),
                Duration::from_secs(5)
            ),
            "sim never became ready: {:?}",
            self.lines.lock().unwrap()
        );
    }

    fn wait_count(&self, needle: &str, n: usize, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.count(needle) >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    fn count(&self, needle: &str) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    fn signal(&self, sig: &str) {
        Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
    }

    fn rcon(&self) -> Rcon {
        Rcon::new(self.rcon_port)
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal blocking BattlEye RCon client on top of the shared codec.
struct Rcon {
    sock: UdpSocket,
    messages: Vec<(u8, String)>,
    ack: bool,
}

impl Rcon {
    fn new(port: u16) -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.connect(("127.0.0.1", port)).unwrap();
        Rcon {
            sock,
            messages: vec![],
            ack: true,
        }
    }

    fn local(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }

    fn send(&self, p: ClientPacket) {
        self.sock.send(&p.encode()).unwrap();
    }

    /// Next packet that is not a server message (those are acked and stored).
    fn recv(&mut self, timeout: Duration) -> Option<ServerPacket> {
        let end = Instant::now() + timeout;
        let mut buf = [0u8; 65_536];
        loop {
            let left = end.checked_duration_since(Instant::now())?;
            self.sock
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            let n = match self.sock.recv(&mut buf) {
                Ok(n) => n,
                Err(_) => return None,
            };
            let p = ServerPacket::decode(&buf[..n]).unwrap();
            match p {
                ServerPacket::Message { seq, body } => {
                    if self.ack {
                        self.send(ClientPacket::MessageAck { seq });
                    }
                    self.messages.push((seq, String::from_utf8(body).unwrap()));
                }
                other => return Some(other),
            }
        }
    }

    /// Reads (and acks) server messages for a while.
    fn pump(&mut self, dur: Duration) {
        let _ = self.recv(dur);
    }

    fn wait_message(&mut self, pred: impl Fn(&str) -> bool, timeout: Duration) -> Option<String> {
        let end = Instant::now() + timeout;
        loop {
            if let Some((_, m)) = self.messages.iter().find(|(_, m)| pred(m)) {
                return Some(m.clone());
            }
            let left = end.checked_duration_since(Instant::now())?;
            let _ = self.recv(left.min(Duration::from_millis(100)));
        }
    }

    fn login(&mut self, pw: &str) -> Option<bool> {
        self.send(ClientPacket::Login {
            password: pw.as_bytes().to_vec(),
        });
        match self.recv(Duration::from_secs(2))? {
            ServerPacket::LoginResponse { success } => Some(success),
            other => panic!("unexpected {other:?}"),
        }
    }

    /// Sends a command and joins all parts of the answer; `None` on no answer.
    fn cmd_parts(&mut self, seq: u8, cmd: &str) -> Option<(String, usize)> {
        self.send(ClientPacket::Command {
            seq,
            command: cmd.as_bytes().to_vec(),
        });
        let mut parts: Vec<Option<Vec<u8>>> = vec![];
        loop {
            match self.recv(Duration::from_secs(2))? {
                ServerPacket::CommandResponse { seq: s, part, body } if s == seq => match part {
                    None => return Some((String::from_utf8(body).unwrap(), 1)),
                    Some(p) => {
                        if parts.is_empty() {
                            parts = vec![None; usize::from(p.total)];
                        }
                        parts[usize::from(p.index)] = Some(body);
                        if parts.iter().all(Option::is_some) {
                            let n = parts.len();
                            let all: Vec<u8> = parts.into_iter().flatten().flatten().collect();
                            return Some((String::from_utf8(all).unwrap(), n));
                        }
                    }
                },
                _ => {}
            }
        }
    }

    /// Like a real client: resend the same packet until an answer arrives.
    fn cmd_retrying(&mut self, seq: u8, cmd: &str, tries: usize) -> Option<String> {
        for _ in 0..tries {
            self.send(ClientPacket::Command {
                seq,
                command: cmd.as_bytes().to_vec(),
            });
            if let Some(ServerPacket::CommandResponse {
                seq: s,
                part: None,
                body,
            }) = self.recv(Duration::from_millis(300))
                && s == seq
            {
                return Some(String::from_utf8(body).unwrap());
            }
        }
        None
    }

    fn cmd(&mut self, seq: u8, cmd: &str) -> String {
        self.cmd_parts(seq, cmd)
            .unwrap_or_else(|| panic!("no answer to {cmd:?}"))
            .0
    }
}

fn logged_in(sim: &Sim) -> Rcon {
    let mut c = sim.rcon();
    assert_eq!(c.login(PASSWORD), Some(true));
    c
}

#[test]
fn login_ok_fail_and_admin_broadcast() {
    let sim = SimBuilder::new().spawn();
    sim.ready();
    let mut bad = sim.rcon();
    assert_eq!(bad.login("wrong"), Some(false));
    bad.send(ClientPacket::Command {
        seq: 0,
        command: b"players".to_vec(),
    });
    assert!(
        bad.recv(Duration::from_millis(400)).is_none(),
        "unauthenticated peer answered"
    );

    let mut a = logged_in(&sim);
    let me = a.local();
    let want = format!("RCon admin #0 (127.0.0.1:{}) logged in", me.port());
    assert_eq!(
        a.wait_message(|m| m == want, Duration::from_secs(2)),
        Some(want)
    );
    let mut b = logged_in(&sim);
    let want_b = format!("RCon admin #1 (127.0.0.1:{}) logged in", b.local().port());
    assert!(
        a.wait_message(|m| m == want_b, Duration::from_secs(2))
            .is_some()
    );
    assert!(
        b.wait_message(|m| m == want_b, Duration::from_secs(2))
            .is_some()
    );
    // keepalive → empty ack
    assert_eq!(a.cmd(1, ""), "");
    let admins = a.cmd(2, "admins");
    assert_eq!(
        admins,
        format!(
            "Connected RCon admins:\n[#] [IP Address]:[Port]\n-----------------------------\n0 {}\n1 {}",
            me,
            b.local()
        )
    );
    assert_eq!(a.cmd(3, "frobnicate"), "Unknown command");
    assert!(sim.count("BattlEye Server: RCon admin #0 (127.0.0.1:") == 1);
}

#[test]
fn players_say_and_kick() {
    let sim = SimBuilder::new()
        .arg("-sim-players=3")
        .arg("-sim-player-interval-ms=60000")
        .arg("-sim-chat-interval-ms=0")
        .arg("-autoInit")
        .spawn();
    sim.ready();
    assert!(sim.wait_count("Verified GUID (", 3, Duration::from_secs(5)));
    let mut c = logged_in(&sim);
    let table = c.cmd(0, "players");
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines[0], "Players on server:");
    assert_eq!(lines[1], "[#] [IP Address]:[Port] [Ping] [GUID] [Name]");
    assert_eq!(lines[2], "-".repeat(50));
    assert_eq!(lines.last().copied(), Some("(3 players in total)"));
    let rows = &lines[3..lines.len() - 1];
    assert_eq!(rows.len(), 3);
    for row in rows {
        // id width 4, ip:port width 22, ping width 5, then guid(OK) name
        let guid_part = &row[31..];
        assert!(
            guid_part[..32].chars().all(|c| c.is_ascii_hexdigit()),
            "{row}"
        );
        assert_eq!(&guid_part[32..37], "(OK) ", "{row}");
        assert!(row[..4].trim().parse::<u32>().is_ok());
        assert!(row[4..26].trim().contains(':'));
        assert!(row[26..31].trim().parse::<i64>().unwrap() > 0);
    }
    let first = rows[0];
    let num: u32 = first[..4].trim().parse().unwrap();
    let name = first[31 + 37..].to_string();
    let guid = first[31..63].to_string();

    assert_eq!(c.cmd(1, "say -1 Hello all"), "");
    assert!(
        c.wait_message(
            |m| m == "RCon admin #0: (Global) Hello all",
            Duration::from_secs(2)
        )
        .is_some()
    );
    assert_eq!(c.cmd(2, &format!("say {num} psst")), "");
    let to = format!("RCon admin #0: (To {name}) psst");
    assert!(
        c.wait_message(|m| m == to, Duration::from_secs(2))
            .is_some()
    );

    assert_eq!(c.cmd(3, &format!("kick {num} AFK too long")), "");
    let kicked = format!(
        "Player #{num} {name} ({guid}) has been kicked by BattlEye: Admin Kick (AFK too long)"
    );
    let gone = format!("Player #{num} {name} disconnected");
    assert!(
        c.wait_message(|m| m == gone, Duration::from_secs(2))
            .is_some()
    );
    let pos_k = c.messages.iter().position(|(_, m)| *m == kicked).unwrap();
    let pos_d = c.messages.iter().position(|(_, m)| *m == gone).unwrap();
    assert!(pos_k < pos_d);
    assert!(c.cmd(4, "players").ends_with("(2 players in total)"));
    assert!(sim.wait_line(
        |l| l.ends_with(&format!("Player {name} disconnected.")),
        Duration::from_secs(2)
    ));
}

#[test]
fn retried_seq_is_not_run_twice_and_bans_number_across_sections() {
    let sim = SimBuilder::new().spawn();
    sim.ready();
    let mut c = logged_in(&sim);
    let g1 = "0123456789abcdef0123456789abcdef";
    assert_eq!(c.cmd(5, &format!("addBan {g1} 0 cheater")), "");
    assert_eq!(c.cmd(5, &format!("addBan {g1} 0 cheater")), ""); // retry: cached
    // rcon 2.4.9 style: same seq, different text → a new command
    assert_eq!(c.cmd(5, "addBan 198.51.100.7 0 proxy"), "");
    assert_eq!(
        c.cmd(5, "addBan fedcba9876543210fedcba9876543210 60 grief"),
        ""
    );
    let bans = c.cmd(6, "bans");
    let lines: Vec<&str> = bans.lines().collect();
    assert_eq!(lines[0], "GUID Bans:");
    assert_eq!(lines[2], "-".repeat(40));
    assert_eq!(lines[3], format!("0  {g1} perm cheater"));
    assert!(lines[4].starts_with("1  fedcba9876543210fedcba9876543210 6"));
    assert!(lines[4].ends_with(" grief"));
    assert_eq!(lines[5], "");
    assert_eq!(lines[6], "IP Bans:");
    assert_eq!(lines[8], "-".repeat(46));
    assert_eq!(lines[9], "2  198.51.100.7    perm   proxy");
    assert_eq!(lines.len(), 10);
    assert_eq!(c.cmd(7, "removeBan 0"), "");
    let bans = c.cmd(8, "bans");
    assert!(bans.contains("\n1  198.51.100.7    perm   proxy"), "{bans}");
    assert!(
        std::fs::read_to_string(sim.dir().join("profiles/BattlEye/bans.txt"))
            .unwrap()
            .contains("198.51.100.7 -1 proxy")
    );
}

#[test]
fn long_bans_list_is_multi_part() {
    let sim = SimBuilder::new().arg("-sim-max-part=200").spawn();
    sim.ready();
    let mut c = logged_in(&sim);
    for i in 0..20u8 {
        let guid = format!("{:032x}", u128::from(i) + 1);
        assert_eq!(c.cmd(i, &format!("addBan {guid} 0 reason number {i}")), "");
    }
    let (text, parts) = c.cmd_parts(100, "bans").unwrap();
    assert!(parts > 1, "expected several parts, got {parts}");
    assert!(text.starts_with("GUID Bans:\n"));
    assert!(text.contains("\n19 00000000000000000000000000000014 perm reason number 19\n"));
    assert!(text.ends_with("----------------------------------------------"));
}

#[test]
fn server_message_resent_until_acked_then_admin_forgotten() {
    let sim = SimBuilder::new().arg("-sim-msg-resend-ms=150").spawn();
    sim.ready();
    let mut c = sim.rcon();
    c.ack = false;
    assert_eq!(c.login(PASSWORD), Some(true));
    c.pump(Duration::from_millis(500));
    let logins: Vec<u8> = c
        .messages
        .iter()
        .filter(|(_, m)| m.ends_with("logged in"))
        .map(|(s, _)| *s)
        .collect();
    assert!(logins.len() >= 2, "not resent: {:?}", c.messages);
    assert!(logins.iter().all(|s| *s == 0));
    // after 5 unacked resends the admin is forgotten: commands get no reply
    c.pump(Duration::from_millis(900));
    c.send(ClientPacket::Command {
        seq: 1,
        command: b"players".to_vec(),
    });
    assert!(c.recv(Duration::from_millis(400)).is_none());

    // an acking client sees the message once (duplicate acks are harmless)
    let mut d = logged_in(&sim);
    d.pump(Duration::from_millis(600));
    d.send(ClientPacket::MessageAck { seq: 0 });
    d.send(ClientPacket::MessageAck { seq: 0 });
    let n = d
        .messages
        .iter()
        .filter(|(_, m)| m.ends_with("logged in"))
        .count();
    assert_eq!(n, 1, "{:?}", d.messages);
    assert_eq!(d.cmd(2, ""), "");
}

#[test]
fn followup_message_after_silent_commands() {
    // off by default: the real server sends nothing after a reply
    let plain = SimBuilder::new().spawn();
    plain.ready();
    let mut p = logged_in(&plain);
    p.pump(Duration::from_millis(100));
    assert!(p.cmd(0, "missions").starts_with("Missions on server:"));
    p.pump(Duration::from_millis(300));
    assert!(
        !p.messages
            .iter()
            .any(|(_, m)| m == "Connected to BE Master"),
        "{:?}",
        p.messages
    );

    let sim = SimBuilder::new().arg("-sim-followup=1").spawn();
    sim.ready();
    let mut c = logged_in(&sim);
    c.pump(Duration::from_millis(100));
    c.messages.clear();
    let t0 = Instant::now();
    assert!(
        c.cmd(0, "missions")
            .starts_with("Missions on server:\nCoop.Altis.pbo")
    );
    assert!(
        c.wait_message(
            |m| m == "Connected to BE Master",
            Duration::from_millis(200)
        )
        .is_some()
    );
    assert!(t0.elapsed() < Duration::from_millis(300));
}

#[test]
fn shutdown_exits_zero_with_game_finished() {
    let mut sim = SimBuilder::new().arg("-autoInit").spawn();
    sim.ready();
    assert!(sim.wait_line(|l| l.ends_with("Game started."), Duration::from_secs(2)));
    let mut c = logged_in(&sim);
    assert_eq!(c.cmd(0, "#shutdown"), "");
    let status = sim
        .wait_exit(Duration::from_secs(3))
        .expect("still running");
    assert_eq!(status.code(), Some(0));
    assert!(sim.wait_line(|l| l.ends_with("Game finished."), Duration::from_secs(1)));
}

#[test]
fn sigterm_exits_zero() {
    let mut sim = SimBuilder::new().no_rcon().spawn();
    sim.ready();
    sim.signal("TERM");
    let status = sim
        .wait_exit(Duration::from_secs(3))
        .expect("still running");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn ignore_shutdown_survives_shutdown_and_sigterm() {
    let mut sim = SimBuilder::new().arg("-sim-ignore-shutdown").spawn();
    sim.ready();
    let mut c = logged_in(&sim);
    assert_eq!(c.cmd(0, "#shutdown"), "");
    sim.signal("TERM");
    sim.signal("INT");
    assert!(sim.wait_exit(Duration::from_millis(800)).is_none());
    assert_eq!(c.cmd(1, ""), "");
}

#[test]
fn crash_after_exits_non_zero() {
    let mut sim = SimBuilder::new().arg("-sim-crash-after-secs=1").spawn();
    let status = sim
        .wait_exit(Duration::from_secs(4))
        .expect("did not crash");
    assert_eq!(status.code(), Some(139));
    assert!(sim.count("ACCESS_VIOLATION") == 1);
}

#[test]
fn hang_stops_rcon_and_logging() {
    let mut sim = SimBuilder::new().arg("-sim-hang-after-secs=1").spawn();
    sim.ready();
    let mut c = logged_in(&sim);
    assert_eq!(c.cmd(0, ""), "");
    std::thread::sleep(Duration::from_millis(1200));
    let before = sim.lines.lock().unwrap().len();
    c.send(ClientPacket::Command {
        seq: 1,
        command: b"players".to_vec(),
    });
    assert!(c.recv(Duration::from_millis(500)).is_none());
    assert!(sim.wait_exit(Duration::from_millis(100)).is_none());
    assert_eq!(sim.lines.lock().unwrap().len(), before);
}

#[test]
fn bad_and_missing_config_exit_non_zero() {
    let mut sim = SimBuilder::new()
        .server_cfg(Some("hostname = \"x\"\nmaxPlayers = 4;\n"))
        .spawn();
    let status = sim.wait_exit(Duration::from_secs(3)).expect("did not exit");
    assert_eq!(status.code(), Some(1));
    assert!(sim.wait_line(
        |l| l.contains("ErrorMessage: File server.cfg, line 2"),
        Duration::from_secs(1)
    ));
    let mut sim = SimBuilder::new().server_cfg(None).spawn();
    let status = sim.wait_exit(Duration::from_secs(3)).expect("did not exit");
    assert_eq!(status.code(), Some(1));
    assert!(sim.wait_line(
        |l| l.contains("Cannot open file 'server.cfg'"),
        Duration::from_secs(1)
    ));
}

#[test]
fn taken_game_port_exits_non_zero() {
    let base = port_block();
    let _hold = UdpSocket::bind(("127.0.0.1", base)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args([
            format!("-port={base}"),
            "-ip=127.0.0.1".into(),
            "-noLogs".into(),
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("port {base}")));
}

#[test]
fn no_rcon_password_means_no_rcon() {
    let sim = SimBuilder::new().no_rcon().spawn();
    sim.ready();
    let mut c = sim.rcon();
    assert_eq!(c.login(PASSWORD), None);
}

#[test]
fn stdout_milestones_in_order() {
    let sim = SimBuilder::new()
        .arg("-autoInit")
        .arg("-sim-players=1")
        .arg("-sim-player-interval-ms=60000")
        .spawn();
    assert!(sim.wait_line(|l| l.contains("Verified GUID ("), Duration::from_secs(5)));
    let lines = sim.lines.lock().unwrap().clone();
    let find = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle} missing in {lines:#?}"))
    };
    assert!(
        lines
            .iter()
            .any(|l| l == "Original output filename: Arma3Retail_Server_x64")
    );
    let order = [
        "Dedicated host created.",
        "BattlEye Server: Initialized (v1.217)",
        &format!(
            "Game Port: {}, Steam Query Port: {}",
            sim.port,
            sim.port + 1
        ),
        "Host identity created.",
        " Mission world: Altis",
        "Game started.",
        " connecting.",
        ") connected",
        " connected (id=7656119",
        " - BE GUID: ",
        "Verified GUID (",
    ];
    let pos: Vec<usize> = order.iter().map(|n| find(n)).collect();
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "{pos:?}");
    let host = &lines[find("Host identity created.")];
    // short format: " H:MM:SS " or "HH:MM:SS "
    assert_eq!(&host[2..3], ":", "{host}");
}

#[test]
fn windows_mode_writes_rpt_file() {
    let mut sim = SimBuilder::new().arg("-sim-windows=1").spawn();
    assert!(sim.wait_line(|l| l == "Host identity created.", Duration::from_secs(5)));
    let dir = sim.dir().join("profiles");
    let rpt: PathBuf = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "rpt"))
        .expect("no rpt file");
    let name = rpt.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("arma3server_x64_20")
            && name.len() == "arma3server_x64_2024-01-01_00-00-00.rpt".len(),
        "{name}"
    );
    let text = std::fs::read_to_string(&rpt).unwrap();
    assert!(text.contains("Dedicated host created.\r\n"));
    assert!(text.contains("Host identity created."));
    assert_eq!(sim.count("Dedicated host created."), 0);
    sim.signal("INT");
    assert_eq!(
        sim.wait_exit(Duration::from_secs(3)).and_then(|s| s.code()),
        Some(0)
    );
}

// ---- A2S ----------------------------------------------------------------------

fn a2s(sock: &UdpSocket, req: &[u8]) -> Vec<u8> {
    sock.send(req).unwrap();
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).unwrap();
    buf[..n].to_vec()
}

fn a2s_with_challenge(sock: &UdpSocket, base: &[u8], initial: &[u8]) -> Vec<u8> {
    let mut req = base.to_vec();
    req.extend_from_slice(initial);
    let r = a2s(sock, &req);
    if r[4] != 0x41 {
        return r;
    }
    let mut req = base.to_vec();
    req.extend_from_slice(&r[5..9]);
    a2s(sock, &req)
}

fn cstr(data: &[u8], pos: &mut usize) -> String {
    let end = data[*pos..].iter().position(|b| *b == 0).unwrap() + *pos;
    let s = String::from_utf8(data[*pos..end].to_vec()).unwrap();
    *pos = end + 1;
    s
}

#[test]
fn a2s_info_players_rules() {
    let sim = SimBuilder::new()
        .arg("-autoInit")
        .arg("-sim-players=2")
        .arg("-sim-player-interval-ms=60000")
        .spawn();
    sim.ready();
    assert!(sim.wait_count("Verified GUID (", 2, Duration::from_secs(5)));
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(("127.0.0.1", sim.port + 1)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();

    let info_req = b"\xFF\xFF\xFF\xFFTSource Engine Query\0";
    let first = a2s(&sock, info_req);
    assert_eq!(first[4], 0x41, "challenge expected first");
    let info = a2s_with_challenge(&sock, info_req, &[]);
    assert_eq!(&info[..6], b"\xFF\xFF\xFF\xFF\x49\x11");
    let mut pos = 6;
    assert_eq!(cstr(&info, &mut pos), "Languard Sim");
    assert_eq!(cstr(&info, &mut pos), "Altis");
    assert_eq!(cstr(&info, &mut pos), "Arma3");
    assert_eq!(cstr(&info, &mut pos), "Coop");
    assert_eq!(u16::from_le_bytes([info[pos], info[pos + 1]]), 41874);
    pos += 2;
    assert_eq!(info[pos], 2); // players
    assert_eq!(info[pos + 1], 12); // max
    assert_eq!(&info[pos + 3..pos + 5], b"dl");
    assert_eq!(info[pos + 5], 0); // no password
    pos += 7;
    let _version = cstr(&info, &mut pos);
    let edf = info[pos];
    pos += 1;
    assert_eq!(edf & 0xB1, 0xB1);
    assert_eq!(u16::from_le_bytes([info[pos], info[pos + 1]]), sim.port);
    pos += 2 + 8;
    let keywords = cstr(&info, &mut pos);
    assert!(
        keywords.starts_with("bt,") && keywords.contains(",s7,") && keywords.contains(",lf,"),
        "{keywords}"
    );
    let gameid = u64::from_le_bytes(info[pos..pos + 8].try_into().unwrap());
    assert_eq!(gameid, 107410);

    let players = a2s_with_challenge(
        &sock,
        b"\xFF\xFF\xFF\xFF\x55",
        &0xFFFF_FFFFu32.to_le_bytes(),
    );
    assert_eq!(players[4], 0x44);
    assert_eq!(players[5], 2);
    let mut pos = 6;
    for _ in 0..2 {
        pos += 1;
        assert!(!cstr(&players, &mut pos).is_empty());
        pos += 8;
    }
    assert_eq!(pos, players.len());

    let rules = a2s_with_challenge(&sock, b"\xFF\xFF\xFF\xFF\x56", &0u32.to_le_bytes());
    assert_eq!(rules[4], 0x45);
    assert_eq!(u16::from_le_bytes([rules[5], rules[6]]), 1);
    assert_eq!(&rules[7..9], &[1, 1]); // key [index, total]
    assert_eq!(rules[10], 3); // version 3

    // #lock shows up in the keywords
    let mut c = logged_in(&sim);
    assert_eq!(c.cmd(0, "#lock"), "");
    let info = a2s_with_challenge(&sock, info_req, &[]);
    assert!(String::from_utf8_lossy(&info).contains(",lt,"));
}

#[test]
fn bepath_restrict_rcon_and_dropped_datagrams() {
    let sim = SimBuilder::new()
        .bepath()
        .be_cfg("RConPassword s3cret\nRConPort {rcon_port}\nRestrictRCon 1\n")
        .arg("-sim-drop-every=2")
        .arg("-sim-followup=0")
        .arg("-sim-msg-resend-ms=100")
        .spawn();
    sim.ready();
    let mut c = sim.rcon();
    let mut ok = None;
    for _ in 0..4 {
        ok = c.login(PASSWORD);
        if ok.is_some() {
            break;
        }
    }
    assert_eq!(ok, Some(true));
    assert!(
        c.wait_message(|m| m.ends_with("logged in"), Duration::from_secs(2))
            .is_some()
    );
    let g = "00112233445566778899aabbccddeeff";
    for seq in 0..3u8 {
        assert_eq!(
            c.cmd_retrying(seq, &format!("addBan {g} 0 x{seq}"), 6)
                .as_deref(),
            Some("")
        );
    }
    let bans = c.cmd_retrying(3, "bans", 6).unwrap();
    assert_eq!(bans.matches(g).count(), 3, "{bans}");
    assert_eq!(
        c.cmd_retrying(4, "#shutdown", 6).as_deref(),
        Some("Disallowed command")
    );
    assert_eq!(
        c.cmd_retrying(5, "#lock", 6).as_deref(),
        Some("Disallowed command")
    );
}

// ---- review fixes -------------------------------------------------------------

#[test]
fn deeply_nested_config_fails_cleanly() {
    let depth = 100_000;
    let cfg = format!("{}{}", "class a {\n".repeat(depth), "};".repeat(depth));
    let mut sim = SimBuilder::new().server_cfg(Some(&cfg)).spawn();
    let status = sim.wait_exit(Duration::from_secs(5)).expect("did not exit");
    assert_eq!(status.code(), Some(1), "crashed instead of failing cleanly");
    assert!(
        sim.wait_line(
            |l| l
                .contains("ErrorMessage: File server.cfg, line 34: Config: Nesting deeper than 32"),
            Duration::from_secs(1)
        ),
        "{:?}",
        sim.lines
            .lock()
            .unwrap()
            .iter()
            .rev()
            .take(3)
            .collect::<Vec<_>>()
    );
}

#[test]
fn retransmit_of_earlier_in_flight_seq_is_not_run_again() {
    let sim = SimBuilder::new().spawn();
    sim.ready();
    let mut c = logged_in(&sim);
    let g1 = "0123456789abcdef0123456789abcd01";
    let g2 = "0123456789abcdef0123456789abcd02";
    let first = ClientPacket::Command {
        seq: 10,
        command: format!("addBan {g1} 0 one").into_bytes(),
    };
    c.send(first.clone());
    c.send(ClientPacket::Command {
        seq: 11,
        command: format!("addBan {g2} 0 two").into_bytes(),
    });
    let mut seqs = vec![];
    for _ in 0..2 {
        match c.recv(Duration::from_secs(2)) {
            Some(ServerPacket::CommandResponse {
                seq,
                part: None,
                body,
            }) => {
                assert!(body.is_empty());
                seqs.push(seq);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    seqs.sort_unstable();
    assert_eq!(seqs, vec![10, 11]);
    // the reply to seq 10 was lost: the client resends it after seq 11 went out
    c.send(first);
    match c.recv(Duration::from_secs(2)) {
        Some(ServerPacket::CommandResponse {
            seq,
            part: None,
            body,
        }) => {
            assert_eq!(seq, 10);
            assert!(body.is_empty());
        }
        other => panic!("unexpected {other:?}"),
    }
    let bans = c.cmd(12, "bans");
    assert_eq!(bans.matches(g1).count(), 1, "{bans}");
    assert_eq!(bans.matches(g2).count(), 1, "{bans}");
    assert!(bans.contains(&format!("\n0  {g1} perm one\n")), "{bans}");
    assert!(bans.contains(&format!("\n1  {g2} perm two\n")), "{bans}");
    // same seq, different text is a new command (rcon 2.4.9 always sends seq 0)
    assert_eq!(c.cmd(10, "addBan 198.51.100.9 0 three"), "");
    assert!(c.cmd(13, "bans").contains("198.51.100.9"));
}

#[test]
fn absurd_ban_minutes_do_not_kill_rcon() {
    let sim = SimBuilder::new().spawn();
    sim.ready();
    let mut c = logged_in(&sim);
    let g = "0123456789abcdef0123456789abcdef";
    assert_eq!(c.cmd(0, &format!("addBan {g} 999999999999999999 x")), "");
    assert_eq!(c.cmd(1, &format!("addBan {g} 9223372036854775807 y")), "");
    assert_eq!(c.cmd(2, "addBan 198.51.100.7 -9223372036854775808 z"), "");
    let bans = c.cmd(3, "bans");
    assert!(bans.contains(&format!("\n0  {g} perm x\n")), "{bans}");
    assert!(bans.contains(&format!("\n1  {g} perm y\n")), "{bans}");
    assert!(bans.contains("198.51.100.7    perm   z"), "{bans}");
    assert_eq!(c.cmd(4, "MaxPing 99999999999999999999999"), "");
    assert_eq!(
        c.cmd(5, "removeBan 99999999999999999999999"),
        "Invalid ban number"
    );
    assert_eq!(c.cmd(6, "kick -1"), "");
    assert_eq!(c.cmd(7, "say 99999999999 hi"), "");
    assert_eq!(c.cmd(8, ""), "");
}

#[test]
fn out_of_range_knob_exits_two() {
    let dir = tempfile::tempdir().unwrap();
    for bad in [
        "-sim-player-interval-ms=18446744073709551615",
        "-sim-chat-interval-ms=99999999999999",
        "-sim-players=100000",
    ] {
        let out = Command::new(BIN)
            .args([bad, "-noLogs", "-port=1"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("out of range"), "{bad}: {err}");
    }
}

/// BattlEye console events on stdout without the RPT timestamp.
fn be_events(sim: &Sim) -> Vec<String> {
    sim.lines
        .lock()
        .unwrap()
        .iter()
        .filter_map(|l| {
            l.split_once("BattlEye Server: ")
                .map(|(_, m)| m.to_string())
        })
        .filter(|m| {
            (m.starts_with("Player #") || m.starts_with('(') || m.starts_with("Verified GUID"))
                && !m.contains("RCon admin")
        })
        .collect()
}

#[test]
fn rcon_polling_does_not_change_the_player_script() {
    let build = || {
        SimBuilder::new()
            .arg("-autoInit")
            .arg("-sim-players=3")
            .arg("-sim-player-interval-ms=300")
            .arg("-sim-chat-interval-ms=250")
            .spawn()
    };
    let quiet = build();
    let polled = build();
    quiet.ready();
    polled.ready();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let stop = stop.clone();
        let mut c = logged_in(&polled);
        std::thread::spawn(move || {
            let mut seq = 0u8;
            let mut polls = 0;
            while !stop.load(Ordering::SeqCst) {
                if c.cmd_parts(seq, "players").is_some() {
                    polls += 1;
                }
                seq = seq.wrapping_add(1);
                std::thread::sleep(Duration::from_millis(50));
            }
            polls
        })
    };
    const N: usize = 14;
    let end = Instant::now() + Duration::from_secs(15);
    while Instant::now() < end && (be_events(&quiet).len() < N || be_events(&polled).len() < N) {
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::SeqCst);
    let polls = poller.join().unwrap();
    assert!(polls > 10, "poller did not poll: {polls}");
    let a = be_events(&quiet);
    let b = be_events(&polled);
    assert!(a.len() >= N && b.len() >= N, "{a:#?}\n{b:#?}");
    assert_eq!(a[..N], b[..N]);
    assert!(
        a[..N].iter().any(|m| m.ends_with(" disconnected")),
        "{a:#?}"
    );
    assert!(a[..N].iter().any(|m| m.starts_with('(')), "{a:#?}");
}

#[test]
fn battleye_cfg_name_is_case_sensitive_on_linux_only() {
    let sim = SimBuilder::new().be_cfg_name("BEServer_x64.cfg").spawn();
    sim.ready();
    assert_eq!(
        sim.rcon().login(PASSWORD),
        None,
        "found a wrong-case cfg on Linux"
    );

    let sim = SimBuilder::new()
        .be_cfg_name("BEServer_x64.cfg")
        .arg("-sim-windows=1")
        .spawn();
    assert!(sim.wait_line(|l| l == "Host identity created.", Duration::from_secs(5)));
    assert_eq!(sim.rcon().login(PASSWORD), Some(true));
}

#[test]
fn lock_refuses_joins_until_unlock() {
    let sim = SimBuilder::new()
        .arg("-autoInit")
        .arg("-sim-players=3")
        .arg("-sim-player-interval-ms=150")
        .arg("-sim-chat-interval-ms=0")
        .spawn();
    sim.ready();
    assert!(sim.wait_count("Verified GUID (", 3, Duration::from_secs(5)));
    let mut c = logged_in(&sim);
    assert_eq!(c.cmd(0, "#lock"), "");
    // make room: without the lock somebody would join within a few ticks
    let table = c.cmd(1, "players");
    let num: u32 = table.lines().nth(3).unwrap()[..4].trim().parse().unwrap();
    assert_eq!(c.cmd(2, &format!("kick {num}")), "");
    std::thread::sleep(Duration::from_millis(300));
    let before = sim.count(" connecting.");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(sim.count(" connecting."), before, "joined while locked");
    assert_eq!(c.cmd(3, "#unlock"), "");
    assert!(
        sim.wait_count(" connecting.", before + 1, Duration::from_secs(3)),
        "no join after #unlock"
    );
}

#[test]
fn mission_and_restart_write_mission_lines() {
    let sim = SimBuilder::new().spawn();
    sim.ready();
    assert!(sim.wait_line(
        |l| l.ends_with("Waiting for next game."),
        Duration::from_secs(2)
    ));
    let mut c = logged_in(&sim);
    assert_eq!(c.cmd(0, "#mission Other.Stratis Veteran"), "");
    assert!(sim.wait_line(|l| l.ends_with("Game started."), Duration::from_secs(2)));
    let lines = sim.lines.lock().unwrap().clone();
    let pos = |needle: &str| {
        lines
            .iter()
            .position(|l| l.ends_with(needle))
            .unwrap_or_else(|| panic!("{needle} missing"))
    };
    let order = [
        "Mission Other read from bank.",
        "Reading mission ...",
        "Starting mission:",
        " Mission file: Other (__cur_mp)",
        " Mission world: Stratis",
        " Mission directory: mpmissions\\__cur_mp.Stratis\\",
        "Game started.",
    ];
    let p: Vec<usize> = order.iter().map(|n| pos(n)).collect();
    assert!(p.windows(2).all(|w| w[0] < w[1]), "{p:?}");
    assert_eq!(sim.count("Game finished."), 0);

    assert_eq!(c.cmd(1, "#restart"), "");
    assert!(sim.wait_count("Game started.", 2, Duration::from_secs(2)));
    assert_eq!(sim.count("Game finished."), 1);
    assert_eq!(sim.count("Mission Other read from bank."), 2);
    assert_eq!(sim.count(" Mission world: Stratis"), 2);
}

#[test]
fn ban_online_player_kicks_and_lists_guid() {
    let sim = SimBuilder::new()
        .arg("-autoInit")
        .arg("-sim-players=1")
        .arg("-sim-player-interval-ms=60000")
        .arg("-sim-chat-interval-ms=0")
        .spawn();
    sim.ready();
    assert!(sim.wait_count("Verified GUID (", 1, Duration::from_secs(5)));
    let mut c = logged_in(&sim);
    let table = c.cmd(0, "players");
    let row = table.lines().nth(3).unwrap().to_string();
    let num: u32 = row[..4].trim().parse().unwrap();
    let guid = row[31..63].to_string();
    let name = row[31 + 37..].to_string();
    assert_eq!(c.cmd(1, &format!("ban {num} 60 team killing")), "");
    let kicked = format!(
        "Player #{num} {name} ({guid}) has been kicked by BattlEye: Admin Ban (team killing)"
    );
    let gone = format!("Player #{num} {name} disconnected");
    assert!(
        c.wait_message(|m| m == gone, Duration::from_secs(2))
            .is_some()
    );
    let pos_k = c.messages.iter().position(|(_, m)| *m == kicked);
    let pos_d = c.messages.iter().position(|(_, m)| *m == gone);
    assert!(pos_k.is_some() && pos_k < pos_d, "{:?}", c.messages);
    assert!(c.cmd(2, "players").ends_with("(0 players in total)"));
    let bans = c.cmd(3, "bans");
    let line = bans
        .lines()
        .find(|l| l.contains(&guid))
        .unwrap_or_else(|| panic!("{bans}"));
    assert!(line.starts_with(&format!("0  {guid} 6")), "{line}");
    assert!(line.ends_with(" team killing"), "{line}");
}

#[test]
fn max_ping_kicks_with_ping_too_high() {
    let sim = SimBuilder::new()
        .arg("-autoInit")
        .arg("-sim-players=2")
        .arg("-sim-player-interval-ms=60000")
        .arg("-sim-chat-interval-ms=0")
        .spawn();
    sim.ready();
    assert!(sim.wait_count("Verified GUID (", 2, Duration::from_secs(5)));
    let mut c = logged_in(&sim);
    assert_eq!(c.cmd(0, "MaxPing 5"), "");
    let end = Instant::now() + Duration::from_secs(4);
    while Instant::now() < end
        && c.messages
            .iter()
            .filter(|(_, m)| m.ends_with("has been kicked by BattlEye: Ping too high (5)"))
            .count()
            < 2
    {
        c.pump(Duration::from_millis(100));
    }
    let kicks = c
        .messages
        .iter()
        .filter(|(_, m)| m.ends_with("has been kicked by BattlEye: Ping too high (5)"))
        .count();
    assert_eq!(kicks, 2, "{:?}", c.messages);
    assert!(c.cmd(1, "players").ends_with("(0 players in total)"));
}

#[test]
fn rpt_spam_floods_stdout() {
    let sim = SimBuilder::new()
        .no_rcon()
        .arg("-sim-rpt-spam=2000")
        .spawn();
    sim.ready();
    let before = sim.lines.lock().unwrap().len();
    std::thread::sleep(Duration::from_millis(1100));
    let after = sim.lines.lock().unwrap().len();
    assert!(after - before >= 1000, "only {} lines", after - before);
}
