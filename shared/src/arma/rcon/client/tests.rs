//! A scripted fake BattlEye server built on the codec drives the client over real
//! loopback sockets. Commands select the server's behaviour (see `FakeServer::on_command`).
use super::actor::backoff;
use super::reassembly::MessageDedup;
use super::*;
use crate::arma::rcon::packet::{ClientPacket, MAX_PACKET_LEN, Part, ServerPacket, split_response};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::sleep;

#[derive(Clone, Copy, PartialEq, Eq)]
enum LoginMode {
    Accept,
    Reject,
    Silent,
}

#[derive(Default)]
struct Record {
    logins: u32,
    /// Every command datagram as received (retransmissions included).
    commands: Vec<(u8, Vec<u8>)>,
    raw_commands: Vec<Vec<u8>>,
    acks: Vec<u8>,
    keepalives: u32,
    /// A seq arrived with new bytes while an answer to it was still outstanding.
    seq_reused_while_pending: bool,
    outstanding: HashMap<u8, Vec<u8>>,
}

struct Shared {
    password: String,
    login: Mutex<LoginMode>,
    muted: AtomicBool,
    rec: Mutex<Record>,
    sessions: Mutex<HashSet<SocketAddr>>,
    msg_seq: Mutex<HashMap<SocketAddr, u8>>,
    dropped_once: Mutex<HashSet<(u8, Vec<u8>)>>,
    admins: AtomicU64,
}

struct FakeServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeServer {
    async fn start(login: LoginMode) -> Self {
        let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let addr = socket.local_addr().unwrap();
        let shared = Arc::new(Shared {
            password: "hunter2".into(),
            login: Mutex::new(login),
            muted: AtomicBool::new(false),
            rec: Mutex::new(Record::default()),
            sessions: Mutex::new(HashSet::new()),
            msg_seq: Mutex::new(HashMap::new()),
            dropped_once: Mutex::new(HashSet::new()),
            admins: AtomicU64::new(0),
        });
        let task = tokio::spawn(Self::run(Arc::clone(&socket), Arc::clone(&shared)));
        Self { addr, shared, task }
    }

    fn rec(&self) -> std::sync::MutexGuard<'_, Record> {
        self.shared.rec.lock().unwrap()
    }

    /// Simulates a crashed server: stops answering and forgets every login.
    fn die(&self) {
        self.shared.muted.store(true, Ordering::SeqCst);
        self.shared.sessions.lock().unwrap().clear();
    }

    fn revive(&self) {
        self.shared.muted.store(false, Ordering::SeqCst);
    }

    fn client_peer(&self) -> SocketAddr {
        *self.shared.sessions.lock().unwrap().iter().next().unwrap()
    }

    async fn run(socket: Arc<UdpSocket>, shared: Arc<Shared>) {
        let mut buf = vec![0u8; MAX_PACKET_LEN];
        loop {
            let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                continue;
            };
            if shared.muted.load(Ordering::SeqCst) {
                continue;
            }
            let Ok(packet) = ClientPacket::decode(&buf[..n]) else {
                continue;
            };
            match packet {
                ClientPacket::Login { password } => {
                    shared.rec.lock().unwrap().logins += 1;
                    let mode = *shared.login.lock().unwrap();
                    if mode == LoginMode::Silent {
                        continue;
                    }
                    let ok = mode == LoginMode::Accept && password == shared.password.as_bytes();
                    send(&socket, peer, ServerPacket::LoginResponse { success: ok }).await;
                    if ok {
                        shared.sessions.lock().unwrap().insert(peer);
                        shared.msg_seq.lock().unwrap().insert(peer, 0);
                        let id = shared.admins.fetch_add(1, Ordering::SeqCst);
                        let text = format!("RCon admin #{id} ({peer}) logged in");
                        push_message(&socket, &shared, peer, &text, 1).await;
                    }
                }
                ClientPacket::MessageAck { seq } => shared.rec.lock().unwrap().acks.push(seq),
                ClientPacket::Command { seq, command } => {
                    if !shared.sessions.lock().unwrap().contains(&peer) {
                        continue; // unknown or expired peer: silence, like BattlEye
                    }
                    {
                        let mut rec = shared.rec.lock().unwrap();
                        rec.commands.push((seq, command.clone()));
                        rec.raw_commands.push(buf[..n].to_vec());
                        if command.is_empty() {
                            rec.keepalives += 1;
                        }
                        if let Some(prev) = rec.outstanding.get(&seq)
                            && *prev != command
                        {
                            rec.seq_reused_while_pending = true;
                        }
                    }
                    Self::on_command(&socket, &shared, peer, seq, command).await;
                }
            }
        }
    }

    async fn on_command(
        socket: &Arc<UdpSocket>,
        shared: &Arc<Shared>,
        peer: SocketAddr,
        seq: u8,
        command: Vec<u8>,
    ) {
        let text = String::from_utf8_lossy(&command).into_owned();
        let (verb, arg) = text.split_once(' ').unwrap_or((&text, ""));
        match verb {
            "never" => {}
            "restricted" => reply(socket, peer, seq, b"Disallowed command", 1000, false).await,
            "long" => {
                let n: usize = arg.parse().unwrap();
                reply(socket, peer, seq, &long_body(n), 100, true).await;
            }
            "badutf8" => reply(socket, peer, seq, b"\xFFok\xC3", 1000, false).await,
            "utf8" => reply(socket, peer, seq, UTF8_ANSWER.as_bytes(), 3, true).await,
            "drop-first" => {
                if shared
                    .dropped_once
                    .lock()
                    .unwrap()
                    .insert((seq, command.clone()))
                {
                    return;
                }
                reply(socket, peer, seq, arg.as_bytes(), 1000, false).await;
            }
            "slow" => {
                shared
                    .rec
                    .lock()
                    .unwrap()
                    .outstanding
                    .insert(seq, command.clone());
                let (socket, shared) = (Arc::clone(socket), Arc::clone(shared));
                let arg = arg.to_owned();
                tokio::spawn(async move {
                    sleep(Duration::from_millis(50)).await;
                    shared.rec.lock().unwrap().outstanding.remove(&seq);
                    reply(&socket, peer, seq, arg.as_bytes(), 1000, false).await;
                });
            }
            "late" => {
                // `late <ms> <text>`: answers `text` after `ms`, each copy received.
                let (ms, text) = arg.split_once(' ').unwrap_or((arg, ""));
                let ms: u64 = ms.parse().unwrap();
                let (socket, text) = (Arc::clone(socket), text.to_owned());
                tokio::spawn(async move {
                    sleep(Duration::from_millis(ms)).await;
                    reply(&socket, peer, seq, text.as_bytes(), 1000, false).await;
                });
            }
            "big" => {
                // `big <n>`: an n-byte answer in ~64 KB parts, paced so loopback
                // buffers keep up.
                let n: usize = arg.parse().unwrap();
                for p in split_response(seq, &long_body(n), 64_000) {
                    send(socket, peer, p).await;
                    sleep(Duration::from_millis(2)).await;
                }
            }
            "msgdup" => {
                push_message(socket, shared, peer, arg, 3).await;
                reply(socket, peer, seq, b"", 1000, false).await;
            }
            "msgs" => {
                let n: usize = arg.parse().unwrap();
                for i in 0..n {
                    push_message(socket, shared, peer, &format!("message {i}"), 1).await;
                    if i % 20 == 19 {
                        // Pace the burst so loopback socket buffers do not overflow.
                        sleep(Duration::from_millis(1)).await;
                    }
                }
                reply(socket, peer, seq, b"", 1000, false).await;
            }
            "garbage" => {
                let good = ServerPacket::CommandResponse {
                    seq,
                    part: None,
                    body: b"corrupted".to_vec(),
                }
                .encode();
                let mut bad_crc = good.clone();
                bad_crc[3] ^= 0x40;
                let mut bad_header = good.clone();
                bad_header[6] = 0xFE;
                let garbage: [&[u8]; 5] = [
                    &bad_crc,
                    &bad_header,
                    b"BE",
                    b"\x00\x01\x02 random noise",
                    &[],
                ];
                for g in garbage {
                    socket.send_to(g, peer).await.unwrap();
                }
                // Valid but unexpected: a stray login answer is ignored.
                send(socket, peer, ServerPacket::LoginResponse { success: true }).await;
                reply(socket, peer, seq, arg.as_bytes(), 1000, false).await;
            }
            _ => reply(socket, peer, seq, &command, 1000, false).await,
        }
    }
}

const UTF8_ANSWER: &str = "ab Максим ГНК";

fn long_body(n: usize) -> Vec<u8> {
    (0..n).map(|i| b'a' + (i % 26) as u8).collect()
}

async fn send(socket: &UdpSocket, peer: SocketAddr, packet: ServerPacket) {
    socket.send_to(&packet.encode(), peer).await.unwrap();
}

/// Sends an answer; `scramble` sends the parts in reverse order, each twice.
async fn reply(
    socket: &UdpSocket,
    peer: SocketAddr,
    seq: u8,
    body: &[u8],
    max_body: usize,
    scramble: bool,
) {
    let mut parts = split_response(seq, body, max_body);
    if scramble {
        parts.reverse();
        parts = parts.into_iter().flat_map(|p| [p.clone(), p]).collect();
    }
    for p in parts {
        send(socket, peer, p).await;
    }
}

async fn push_message(
    socket: &UdpSocket,
    shared: &Shared,
    peer: SocketAddr,
    text: &str,
    copies: usize,
) {
    let seq = {
        let mut seqs = shared.msg_seq.lock().unwrap();
        let s = seqs.entry(peer).or_insert(0);
        let seq = *s;
        *s = s.wrapping_add(1);
        seq
    };
    for _ in 0..copies {
        send(
            socket,
            peer,
            ServerPacket::Message {
                seq,
                body: text.as_bytes().to_vec(),
            },
        )
        .await;
    }
}

fn fast_opts() -> ClientOptions {
    ClientOptions {
        login_timeout: Duration::from_millis(150),
        login_attempts: 2,
        command_timeout: Duration::from_millis(100),
        command_attempts: 3,
        keepalive_interval: Duration::from_secs(30),
        dead_after: Duration::from_secs(30),
        dead_after_timeouts: 3,
        max_in_flight: 255,
        message_buffer: 1024,
        reconnect: true,
        reconnect_min_delay: Duration::from_millis(20),
        reconnect_max_delay: Duration::from_millis(100),
        max_answer_bytes: MAX_ANSWER_BYTES,
    }
}

async fn connect(
    server: &FakeServer,
    opts: ClientOptions,
) -> (RconClient, mpsc::Receiver<ServerMessage>) {
    RconClient::connect(server.addr, "hunter2", opts)
        .await
        .unwrap()
}

async fn next_message(rx: &mut mpsc::Receiver<ServerMessage>) -> ServerMessage {
    tokio::time::timeout(Duration::from_secs(1), rx.recv())
        .await
        .unwrap()
        .unwrap()
}

/// Polls `cond` for up to a second.
async fn eventually(mut cond: impl FnMut() -> bool) {
    for _ in 0..100 {
        if cond() {
            return;
        }
        sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not met within 1 s");
}

#[tokio::test]
async fn login_ok_pushes_admin_message() {
    let server = FakeServer::start(LoginMode::Accept).await;
    let (client, mut rx) = connect(&server, fast_opts()).await;
    assert_eq!(client.state(), ConnectionState::Connected);
    let msg = next_message(&mut rx).await;
    assert_eq!(msg.seq, 0);
    assert!(msg.text.starts_with("RCon admin #0 ("), "{}", msg.text);
    eventually(|| server.rec().acks == [0]).await;
    assert_eq!(client.command("hello world").await.unwrap(), "hello world");
    assert_eq!(client.command("").await.unwrap(), "");
}

#[tokio::test]
async fn wrong_password_fails_fast() {
    let server = FakeServer::start(LoginMode::Accept).await;
    let start = std::time::Instant::now();
    let err = RconClient::connect(server.addr, "wrong", fast_opts())
        .await
        .unwrap_err();
    assert!(matches!(err, RconError::WrongPassword), "{err:?}");
    assert!(start.elapsed() < Duration::from_millis(100));
    assert_eq!(server.rec().logins, 1, "a refused login is not retried");
    let server = FakeServer::start(LoginMode::Reject).await;
    let err = RconClient::connect(server.addr, "hunter2", fast_opts())
        .await
        .unwrap_err();
    assert!(matches!(err, RconError::WrongPassword));
}

#[tokio::test]
async fn silent_server_gives_login_timeout() {
    let server = FakeServer::start(LoginMode::Silent).await;
    let start = std::time::Instant::now();
    let err = RconClient::connect(server.addr, "hunter2", fast_opts())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RconError::LoginTimeout {
                attempts: 2,
                port_unreachable: false
            }
        ),
        "{err:?}"
    );
    assert!(start.elapsed() >= Duration::from_millis(300));
    assert_eq!(server.rec().logins, 2);
}

#[tokio::test]
async fn closed_port_gives_login_timeout_flagged_unreachable() {
    let addr = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap()
    };
    let err = RconClient::connect(addr, "x", fast_opts())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RconError::LoginTimeout {
                port_unreachable: true,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("port unreachable"));
}

#[tokio::test]
async fn password_with_nul_is_rejected() {
    let err = RconClient::connect("127.0.0.1:9".parse().unwrap(), "a\0b", fast_opts())
        .await
        .unwrap_err();
    assert!(matches!(err, RconError::InvalidPassword));
}

#[tokio::test]
async fn password_never_printed() {
    let server = FakeServer::start(LoginMode::Accept).await;
    let (client, _rx) = connect(&server, fast_opts()).await;
    let pw = RconPassword::from("hunter2");
    assert_eq!(pw.expose(), "hunter2");
    for text in [
        format!("{pw:?}"),
        format!("{client:?}"),
        format!("{:?}", fast_opts()),
        RconError::WrongPassword.to_string(),
        format!("{:?}", RconError::WrongPassword),
        format!(
            "{:?}",
            ClientPacket::Login {
                password: pw.expose().as_bytes().to_vec()
            }
        ),
    ] {
        assert!(!text.contains("hunter2"), "{text}");
    }
}

#[tokio::test]
async fn hundred_concurrent_commands_each_get_their_own_answer() {
    let server = FakeServer::start(LoginMode::Accept).await;
    let (client, _rx) = connect(&server, fast_opts()).await;
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                let cmd = format!("echo task {i}");
                assert_eq!(client.command(&cmd).await.unwrap(), cmd);
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(client.stats().command_timeouts, 0);
}

#[tokio::test]
async fn more_than_255_in_flight_queue_without_reusing_a_pending_seq() {
    let server = FakeServer::start(LoginMode::Accept).await;
    let opts = ClientOptions {
        command_timeout: Duration::from_millis(500),
        ..fast_opts()
    };
    let (client, _rx) = connect(&server, opts).await;
    let tasks: Vec<_> = (0..400)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                let answer = client.command(&format!("slow answer {i}")).await.unwrap();
                assert_eq!(answer, format!("answer {i}"));
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert!(!server.rec().seq_reused_while_pending);
    assert_eq!(client.stats().retransmits, 0);
}

#[tokio::test]
async fn timed_out_seq_is_quarantined_so_a_late_answer_reaches_nobody() {
    let server = FakeServer::start(LoginMode::Accept).await;
    let opts = ClientOptions {
        command_timeout: Duration::from_millis(1000),
        command_attempts: 1,
        ..fast_opts()
    };
    let (client, _rx) = connect(&server, opts).await;
    // A times out at ~1000 ms; the server answers it at ~1300 ms.
    let a = {
        let client = client.clone();
        tokio::spawn(async move { client.command("late 1300 A-late").await })
    };
    eventually(|| server.rec().commands.len() == 1).await;
    let seq_a = server.rec().commands[0].0;
    // From ~500 ms, 254 fillers hold every other seq but one until ~1200 ms.
    sleep(Duration::from_millis(500)).await;
    let fillers: Vec<_> = (0..254)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                assert_eq!(
                    client.command(&format!("late 700 f{i}")).await.unwrap(),
                    format!("f{i}")
                );
            })
        })
        .collect();
    let err = a.await.unwrap().unwrap_err();
    assert!(matches!(err, RconError::CommandTimeout { .. }), "{err:?}");
    // Free now: one never-used seq, and A's seq (quarantined). B1 takes the
    // former, B2 must wait for a filler's seq instead of taking A's.
    let b: Vec<_> = ["B1", "B2"]
        .into_iter()
        .map(|name| {
            let client = client.clone();
            tokio::spawn(async move { client.command(&format!("late 300 {name}")).await })
        })
        .collect();
    for (t, name) in b.into_iter().zip(["B1", "B2"]) {
        assert_eq!(t.await.unwrap().unwrap(), name, "a B got A's late answer");
    }
    for f in fillers {
        f.await.unwrap();
    }
    {
        let rec = server.rec();
        for (seq, command) in &rec.commands {
            if command.starts_with(b"late 300 B") {
                assert_ne!(*seq, seq_a, "A's seq reused while quarantined");
            }
        }
    }
    assert!(
        client.stats().responses_unmatched >= 1,
        "A's late answer dropped"
    );
    // After the quarantine the seq is usable again (round robin reaches it).
    for i in 0..300 {
        assert_eq!(
            client.command(&format!("e{i}")).await.unwrap(),
            format!("e{i}")
        );
    }
}

#[tokio::test]
async fn oversized_answer_is_discarded_and_counted() {
    let server = FakeServer::start(LoginMode::Accept).await;
    // A small cap keeps the UDP traffic modest, so a loaded machine drops no datagrams.
    let limit = 64 * 1024;
    let (client, _rx) = connect(
        &server,
        ClientOptions {
            max_answer_bytes: limit,
            ..fast_opts()
        },
    )
    .await;
    // Just under the limit is fine.
    let ok = client.command_raw(b"big 60000").await.unwrap();
    assert_eq!(ok, long_body(60_000));
    let err = client.command("big 200000").await.unwrap_err();
    assert!(
        matches!(err, RconError::AnswerTooLarge { limit: l } if l == limit),
        "{err:?}"
    );
    assert_eq!(client.stats().answers_oversized, 1);
    // The rest of the big answer is dropped; the session carries on.
    assert_eq!(client.command("after").await.unwrap(), "after");
    assert_eq!(client.state(), ConnectionState::Connected);
}

#[test]
fn reassembly_caps_buffered_bytes() {
    let part = |index| Some(Part { total: 4, index });
    let mut r = Reassembly::with_limit(10);
    assert_eq!(r.push(part(0), vec![0; 4]), PushOutcome::Incomplete);
    assert_eq!(r.push(part(1), vec![0; 4]), PushOutcome::Incomplete);
    assert_eq!(r.buffered(), 8);
    assert_eq!(r.push(part(2), vec![0; 4]), PushOutcome::TooLarge);
    assert_eq!(r.buffered(), 0, "everything discarded");
    // Starts over from scratch afterwards.
    assert_eq!(r.push(part(3), vec![1; 2]), PushOutcome::Incomplete);
    assert_eq!(r.buffered(), 2);
    assert_eq!(Reassembly::new().limit, MAX_ANSWER_BYTES);
    assert!(!super::reassembly::client_budget_exceeded(
        MAX_CLIENT_BUFFERED - 5,
        5
    ));
    assert!(super::reassembly::client_budget_exceeded(
        MAX_CLIENT_BUFFERED - 5,
        6
    ));
}

#[test]
fn next_free_seq_is_round_robin_and_none_when_all_busy() {
    use super::actor::next_free_seq;
    assert_eq!(next_free_seq(5, |_| false), Some(5));
    assert_eq!(next_free_seq(254, |s| s == 254 || s == 255), Some(0));
    assert_eq!(next_free_seq(0, |s| s != 7), Some(7));
    assert_eq!(next_free_seq(9, |_| true), None);
}

#[tokio::test]
async fn three_hundred_sequential_commands_wrap_the_seq() {
    let server = FakeServer::start(LoginMode::Accept).await;
    let (client, _rx) = connect(&server, fast_opts()).await;
    for i in 0..300 {
        let cmd = format!("cmd {i}");
        assert_eq!(client.command(&cmd).await.unwrap(), cmd);
    }
    let rec = server.rec();
    let seqs: Vec<u8> = rec.commands.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs.len(), 300);
    assert_eq!(&seqs[254..258], &[254, 255, 0, 1]);
}

#[tokio::test]
async fn multipart_out_of_order_and_duplicated_is_reassembled() {
    let server = FakeServer::start(LoginMode::Accept).await;
    let (client, _rx) = connect(&server, fast_opts()).await;
    let long = client.command("long 5000").await.unwrap();
    assert_eq!(long.as_bytes(), long_body(5000));
    // 3-byte parts split "Максим" in the middle of characters.
    let parts = split_response(0, UTF8_ANSWER.as_bytes(), 3);
    assert!(parts.iter().any(|p| matches!(p,
        ServerPacket::CommandResponse { body, .. } if std::str::from_utf8(body).is_err())));
    assert_eq!(client.command("utf8").await.unwrap(), UTF8_ANSWER);
    let raw = client.command_raw(b"utf8").await.unwrap();
    assert_eq!(raw, UTF8_ANSWER.as_bytes());
    assert!(
        client.stats().responses_unmatched > 0,
        "late duplicate parts are counted"
    );
}

#[tokio::test]
async fn invalid_utf8_is_decoded_lossily() {
    let server = FakeServer::start(LoginMode::Accept).await;
    let (client, _rx) = connect(&server, fast_opts()).await;
    assert_eq!(
        client.command("badutf8").await.unwrap(),
        "\u{FFFD}ok\u{FFFD}"
    );
    assert_eq!(client.command_raw(b"badutf8").await.unwrap(), b"\xFFok\xC3");
    // Raw commands may carry any bytes; the fake echoes them.
    assert_eq!(client.command_raw(b"\xFE\x01").await.unwrap(), b"\xFE\x01");
}

#[tokio::test]
async fn lost_command_is_retransmitted_identically() {
    let server = FakeServer::start(LoginMode::Accept).await;
    let (client, _rx) = connect(&server, fast_opts()).await;
    assert_eq!(client.command("drop-first hello").await.unwrap(), "hello");
    let stats = client.stats();
    assert_eq!(stats.retransmits, 1);
    let rec = server.rec();
    assert_eq!(rec.raw_commands.len(), 2);
    assert_eq!(
        rec.raw_commands[0], rec.raw_commands[1],
        "same seq, same bytes"
    );
}

#[tokio::test]
async fn unanswered_command_times_out_after_all_attempts() {
    let server = FakeServer::start(LoginMode::Accept).await;
    let (client, _rx) = connect(&server, fast_opts()).await;
    let start = std::time::Instant::now();
    let err = client.command("never").await.unwrap_err();
    assert!(
        matches!(err, RconError::CommandTimeout { attempts: 3 }),
        "{err:?}"
    );
    assert!(start.elapsed() >= Duration::from_millis(300));
    assert_eq!(server.rec().commands.len(), 3);
    assert_eq!(client.stats().command_timeouts, 1);
    // One timeout does not kill the session.
    assert_eq!(client.command("still here").await.unwrap(), "still here");
    assert_eq!(client.state(), ConnectionState::Connected);
}

#[tokio::test]
async fn disallowed_command_is_an_error() {
    let server = FakeServer::start(LoginMode::Accept).await;
    let (client, _rx) = connect(&server, fast_opts()).await;
    let err = client.command("restricted").await.unwrap_err();
    assert!(matches!(err, RconError::Disallowed));
    assert_eq!(client.command_raw(b"restricted").await.unwrap(), DISALLOWED);
    assert!(matches!(
        client.command("Unknown command").await,
        Err(RconError::UnknownCommand)
    ));
}

#[tokio::test]
async fn too_long_command_is_rejected_locally() {
    let server = FakeServer::start(LoginMode::Accept).await;
    let (client, _rx) = connect(&server, fast_opts()).await;
    assert_eq!(MAX_COMMAND_LEN, 1391);
    let long = "x".repeat(MAX_COMMAND_LEN + 1);
    assert!(matches!(
        client.command(&long).await,
        Err(RconError::CommandTooLong { len: 1392 })
    ));
    assert!(matches!(
        client.command_raw(&[b'y'; 65_498]).await,
        Err(RconError::CommandTooLong { len: 65_498 })
    ));
    // Exactly the limit still goes out and is answered (the fake echoes it),
    // in a datagram of at most 1400 bytes.
    let max = "z".repeat(MAX_COMMAND_LEN);
    assert_eq!(client.command(&max).await.unwrap(), max);
    let rec = server.rec();
    assert!(rec.raw_commands.iter().all(|d| d.len() <= 1400));
    assert_eq!(rec.raw_commands.last().map(Vec::len), Some(1400));
    assert!(!rec.commands.iter().any(|(_, c)| c.len() > MAX_COMMAND_LEN));
}

#[tokio::test]
async fn keepalive_is_sent_when_idle_and_keeps_session_alive() {
    let server = FakeServer::start(LoginMode::Accept).await;
    let opts = ClientOptions {
        keepalive_interval: Duration::from_millis(100),
        dead_after: Duration::from_millis(300),
        ..fast_opts()
    };
    let (client, _rx) = connect(&server, opts).await;
    sleep(Duration::from_millis(750)).await;
    let keepalives = server.rec().keepalives;
    assert!((5..=8).contains(&keepalives), "{keepalives} keepalives");
    let stats = client.stats();
    assert_eq!(stats.keepalives, u64::from(keepalives));
    assert_eq!(stats.reconnects, 0, "keepalive acks count as received");
    assert_eq!(client.state(), ConnectionState::Connected);
    // Commands count as keepalive too: busy clients send none.
    let before = server.rec().keepalives;
    for _ in 0..10 {
        client.command("busy").await.unwrap();
        sleep(Duration::from_millis(30)).await;
    }
    assert!(server.rec().keepalives - before <= 1);
}

#[tokio::test]
async fn resent_server_message_is_acked_each_time_and_delivered_once() {
    let server = FakeServer::start(LoginMode::Accept).await;
    let (client, mut rx) = connect(&server, fast_opts()).await;
    assert!(next_message(&mut rx).await.text.contains("logged in"));
    client
        .command("msgdup Player #3 Bob connected")
        .await
        .unwrap();
    let msg = next_message(&mut rx).await;
    assert_eq!((msg.seq, msg.text.as_str()), (1, "Player #3 Bob connected"));
    eventually(|| server.rec().acks.iter().filter(|&&s| s == 1).count() == 3).await;
    assert_eq!(client.stats().messages_duplicate, 2);
    client.command("msgdup second").await.unwrap();
    assert_eq!(next_message(&mut rx).await.text, "second");
    assert!(rx.try_recv().is_err(), "no duplicate delivered");
}

#[tokio::test]
async fn server_message_seq_wraps_without_false_duplicates() {
    let server = FakeServer::start(LoginMode::Accept).await;
    let (client, mut rx) = connect(&server, fast_opts()).await;
    client.command("msgs 600").await.unwrap();
    let mut texts = Vec::new();
    eventually(|| {
        while let Ok(m) = rx.try_recv() {
            texts.push(m.text);
        }
        texts.len() == 601
    })
    .await;
    assert_eq!(texts[600], "message 599");
    assert_eq!(client.stats().messages_duplicate, 0);
}

#[tokio::test]
async fn slow_consumer_drops_messages_but_never_stalls() {
    let server = FakeServer::start(LoginMode::Accept).await;
    let opts = ClientOptions {
        message_buffer: 2,
        ..fast_opts()
    };
    let (client, mut rx) = connect(&server, opts).await;
    client.command("msgs 10").await.unwrap();
    assert_eq!(client.command("alive").await.unwrap(), "alive");
    eventually(|| server.rec().acks.len() == 11).await;
    assert_eq!(client.stats().messages_dropped, 9);
    assert!(next_message(&mut rx).await.text.contains("logged in"));
    assert_eq!(next_message(&mut rx).await.text, "message 0");
}

#[tokio::test]
async fn garbage_datagrams_are_dropped_and_counted() {
    let server = FakeServer::start(LoginMode::Accept).await;
    let (client, _rx) = connect(&server, fast_opts()).await;
    assert_eq!(client.command("garbage fine").await.unwrap(), "fine");
    assert_eq!(client.stats().packets_dropped, 5);
    assert_eq!(client.command("after").await.unwrap(), "after");
}

#[tokio::test]
async fn datagrams_from_other_addresses_are_ignored() {
    let server = FakeServer::start(LoginMode::Accept).await;
    let (client, _rx) = connect(&server, fast_opts()).await;
    let rogue = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let victim = server.client_peer();
    let task = {
        let client = client.clone();
        tokio::spawn(async move { client.command("slow real").await })
    };
    sleep(Duration::from_millis(10)).await;
    for seq in 0..=u8::MAX {
        let forged = ServerPacket::CommandResponse {
            seq,
            part: None,
            body: b"forged".to_vec(),
        };
        rogue.send_to(&forged.encode(), victim).await.unwrap();
    }
    assert_eq!(task.await.unwrap().unwrap(), "real");
}

#[tokio::test]
async fn reconnects_after_server_dies_and_comes_back() {
    let server = FakeServer::start(LoginMode::Accept).await;
    let opts = ClientOptions {
        keepalive_interval: Duration::from_millis(50),
        dead_after: Duration::from_millis(250),
        ..fast_opts()
    };
    let (client, mut rx) = connect(&server, opts).await;
    assert!(
        next_message(&mut rx)
            .await
            .text
            .starts_with("RCon admin #0")
    );
    let mut state = client.state_receiver();
    server.die();
    let pending = {
        let client = client.clone();
        tokio::spawn(async move { client.command("never mind").await })
    };
    tokio::time::timeout(
        Duration::from_secs(1),
        state.wait_for(|s| matches!(s, ConnectionState::Reconnecting { .. })),
    )
    .await
    .unwrap()
    .unwrap();
    let err = pending.await.unwrap().unwrap_err();
    assert!(
        matches!(
            err,
            RconError::Disconnected | RconError::CommandTimeout { .. }
        ),
        "{err:?}"
    );
    assert!(matches!(
        client.command("x").await,
        Err(RconError::Disconnected)
    ));
    sleep(Duration::from_millis(200)).await;
    server.revive();
    client.wait_connected(Duration::from_secs(1)).await.unwrap();
    assert_eq!(client.command("back").await.unwrap(), "back");
    assert!(
        next_message(&mut rx)
            .await
            .text
            .starts_with("RCon admin #1")
    );
    assert_eq!(client.stats().reconnects, 1);
    assert!(server.rec().logins >= 2);
}

#[tokio::test]
async fn timeout_streak_marks_the_session_dead() {
    let server = FakeServer::start(LoginMode::Accept).await;
    let opts = ClientOptions {
        dead_after_timeouts: 2,
        ..fast_opts()
    };
    let (client, _rx) = connect(&server, opts).await;
    // Server restarted and forgot us, but the host still answers nothing.
    server.shared.sessions.lock().unwrap().clear();
    assert!(client.command("a").await.is_err());
    assert!(client.command("b").await.is_err());
    client.wait_connected(Duration::from_secs(1)).await.unwrap();
    assert_eq!(client.command("c").await.unwrap(), "c");
    assert_eq!(client.stats().reconnects, 1);
}

#[tokio::test]
async fn without_reconnect_a_dead_session_closes() {
    let server = FakeServer::start(LoginMode::Accept).await;
    let opts = ClientOptions {
        keepalive_interval: Duration::from_millis(50),
        dead_after: Duration::from_millis(200),
        reconnect: false,
        ..fast_opts()
    };
    let (client, _rx) = connect(&server, opts).await;
    server.die();
    let mut state = client.state_receiver();
    tokio::time::timeout(
        Duration::from_secs(1),
        state.wait_for(|s| *s == ConnectionState::Closed),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(matches!(client.command("x").await, Err(RconError::Closed)));
}

#[tokio::test]
async fn close_fails_pending_commands_and_ends_the_task() {
    let server = FakeServer::start(LoginMode::Accept).await;
    let (client, _rx) = connect(&server, fast_opts()).await;
    let pending = {
        let client = client.clone();
        tokio::spawn(async move { client.command("never").await })
    };
    sleep(Duration::from_millis(20)).await;
    client.close().await;
    assert!(matches!(pending.await.unwrap(), Err(RconError::Closed)));
    assert_eq!(client.state(), ConnectionState::Closed);
    assert!(matches!(client.command("x").await, Err(RconError::Closed)));
    client.close().await; // idempotent
}

#[tokio::test]
async fn dropping_the_last_handle_stops_the_task() {
    let server = FakeServer::start(LoginMode::Accept).await;
    let opts = ClientOptions {
        keepalive_interval: Duration::from_millis(30),
        ..fast_opts()
    };
    let (client, _rx) = connect(&server, opts).await;
    let mut state = client.state_receiver();
    let second = client.clone();
    drop(client);
    sleep(Duration::from_millis(100)).await;
    assert_eq!(
        second.state(),
        ConnectionState::Connected,
        "a clone keeps it alive"
    );
    drop(second);
    // The watch sender lives in the task: its end closes the channel.
    tokio::time::timeout(Duration::from_secs(1), async {
        while state.changed().await.is_ok() {}
    })
    .await
    .unwrap();
    let keepalives = server.rec().keepalives;
    sleep(Duration::from_millis(100)).await;
    assert_eq!(
        server.rec().keepalives,
        keepalives,
        "no traffic after the task ended"
    );
}

#[test]
fn reassembly_handles_order_duplicates_and_total_changes() {
    let p = |total, index| Some(Part { total, index });
    let mut r = Reassembly::new();
    assert_eq!(r.push(p(3, 2), b"c".to_vec()), PushOutcome::Incomplete);
    assert_eq!(r.push(p(3, 2), b"c".to_vec()), PushOutcome::Duplicate);
    assert_eq!(r.push(p(3, 0), b"a".to_vec()), PushOutcome::Incomplete);
    assert_eq!(
        r.push(p(3, 1), b"b".to_vec()),
        PushOutcome::Complete(b"abc".to_vec())
    );
    // A new answer with another total replaces the old parts.
    let mut r = Reassembly::new();
    assert_eq!(r.push(p(2, 0), b"old".to_vec()), PushOutcome::Incomplete);
    assert_eq!(r.push(p(3, 0), b"x".to_vec()), PushOutcome::Restarted);
    assert_eq!(r.push(p(3, 2), b"z".to_vec()), PushOutcome::Incomplete);
    assert_eq!(
        r.push(p(3, 1), b"y".to_vec()),
        PushOutcome::Complete(b"xyz".to_vec())
    );
    assert_eq!(
        r.push(None, b"one".to_vec()),
        PushOutcome::Complete(b"one".to_vec())
    );
    assert_eq!(
        r.push(p(1, 0), b"solo".to_vec()),
        PushOutcome::Complete(b"solo".to_vec())
    );
}

#[test]
fn message_dedup_window_survives_wraparound() {
    let mut d = MessageDedup::default();
    assert!(d.insert(5));
    assert!(!d.insert(5));
    for seq in 6..=u8::MAX {
        assert!(d.insert(seq));
    }
    for seq in 0..=4 {
        assert!(d.insert(seq), "seq {seq} after wrap is new");
    }
    assert!(d.insert(5), "seq 5 left the window long ago");
    assert!(!d.insert(4));
}

#[test]
fn backoff_grows_and_is_capped() {
    let opts = ClientOptions {
        reconnect_min_delay: Duration::from_secs(1),
        reconnect_max_delay: Duration::from_secs(60),
        ..ClientOptions::default()
    };
    for _ in 0..50 {
        let d1 = backoff(&opts, 1);
        assert!(d1 >= Duration::from_millis(500) && d1 <= Duration::from_secs(1));
        let d4 = backoff(&opts, 4);
        assert!(d4 >= Duration::from_secs(4) && d4 <= Duration::from_secs(8));
        let big = backoff(&opts, 1000);
        assert!(big >= Duration::from_secs(30) && big <= Duration::from_secs(60));
    }
}
