//! Async BattlEye RCon client over tokio UDP, built to stay attached to a game server
//! for days.
//!
//! One background task owns the socket. [`RconClient`] handles (cheap to clone) talk to
//! it through a channel, so `command` can be called from many tasks at once and every
//! caller gets exactly the answer to its own sequence number. The task:
//!
//! * logs in (several attempts, [`RconError::WrongPassword`] / [`RconError::LoginTimeout`]),
//! * allocates the one-byte sequence numbers round-robin and never has more than
//!   [`ClientOptions::max_in_flight`] (≤ 255) commands pending, so a seq is never reused
//!   while an earlier command with it may still be answered,
//! * retransmits the identical datagram (same seq, same bytes) on loss, then fails the
//!   command with [`RconError::CommandTimeout`],
//! * reassembles multi-part answers as bytes in index order (out of order and duplicate
//!   parts are fine) and decodes them leniently as UTF-8 only once complete,
//! * acknowledges every server message (duplicates too) and delivers each seq once on a
//!   bounded channel without ever blocking on a slow consumer,
//! * sends the empty keepalive command when idle, detects a dead server (silence or a
//!   streak of command timeouts) and logs in again with jittered exponential backoff,
//! * drops and counts invalid datagrams; the socket is connected, so the kernel already
//!   discards datagrams from any address other than the server's.
//!
//! The task ends on [`RconClient::close`] or when the last handle is dropped.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use rand::Rng;
use thiserror::Error;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, sleep, sleep_until};

use super::packet::{ClientPacket, HEADER_LEN, MAX_PACKET_LEN, Part, ServerPacket};

/// The exact answer BattlEye gives to a command the RCon admin may not run
/// (`RestrictRCon`, or a command blocked for RCon).
const DISALLOWED: &[u8] = b"Disallowed command";
/// The exact answer BattlEye gives to a command it does not know.
const UNKNOWN: &[u8] = b"Unknown command";
/// Number of distinct sequence numbers; a pending command owns one of them.
const SEQ_SPACE: usize = 256;
/// How many recent server-message seqs are remembered to drop resent duplicates.
/// Any window below 256 is safe against wrap-around (the server counts up, so a seq
/// comes back only after 256 newer messages); half the space also tolerates a resend
/// arriving after a burst of up to 127 newer messages. berconpy remembers only 5.
const MESSAGE_DEDUP_WINDOW: usize = 128;
/// Largest command text that still fits one datagram.
pub const MAX_COMMAND_LEN: usize = MAX_PACKET_LEN - HEADER_LEN - 2;

/// The RCon password. It is only ever written into login datagrams: `Debug` prints a
/// placeholder and there is no `Display`, so it cannot leak into logs or errors.
#[derive(Clone, PartialEq, Eq)]
pub struct RconPassword(String);

impl RconPassword {
    /// Wraps a password.
    pub fn new(password: impl Into<String>) -> Self {
        Self(password.into())
    }

    /// The raw password, for writing config files; never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RconPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RconPassword(<redacted>)")
    }
}

impl From<&str> for RconPassword {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl From<String> for RconPassword {
    fn from(s: String) -> Self {
        Self(s)
    }
}

/// Timing and sizing knobs. The defaults follow what works against real servers
/// (berconpy / B3 practice); tests shrink the timeouts to milliseconds.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// How long to wait for the answer to one login datagram.
    pub login_timeout: Duration,
    /// Login datagrams sent before giving up with [`RconError::LoginTimeout`]
    /// (per connect and per reconnect attempt).
    pub login_attempts: u32,
    /// Time between retransmissions of an unanswered command.
    pub command_timeout: Duration,
    /// Transmissions of one command (first send included) before
    /// [`RconError::CommandTimeout`].
    pub command_attempts: u32,
    /// Send the empty keepalive command after this long without any command packet.
    /// The server drops sessions after 45 s without one, so keep a margin.
    pub keepalive_interval: Duration,
    /// Consider the server dead after this long without any valid datagram from it
    /// (keepalive acks count). Should exceed `keepalive_interval` plus a round trip.
    pub dead_after: Duration,
    /// Consider the server dead after this many command timeouts in a row (a server
    /// that restarted has forgotten our login and silently ignores commands).
    /// 0 disables this rule.
    pub dead_after_timeouts: u32,
    /// Commands on the wire at once; clamped to 1..=255 so a free seq always exists.
    /// Further callers wait in a queue.
    pub max_in_flight: usize,
    /// Capacity of the server-message channel. When it is full, new messages are
    /// dropped (counted in [`ClientStats::messages_dropped`]) rather than stalling the
    /// receive loop, which must keep acknowledging and answering.
    pub message_buffer: usize,
    /// Log in again by itself after the session dies; when false the client goes to
    /// [`ConnectionState::Closed`] instead.
    pub reconnect: bool,
    /// First reconnect delay; doubles per failed attempt up to `reconnect_max_delay`.
    /// Each delay is jittered to 50–100 % so a fleet of agents does not reconnect in
    /// lock step after a host hiccup.
    pub reconnect_min_delay: Duration,
    /// Cap of the reconnect delay.
    pub reconnect_max_delay: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            login_timeout: Duration::from_secs(3),
            login_attempts: 3,
            command_timeout: Duration::from_secs(1),
            command_attempts: 3,
            keepalive_interval: Duration::from_secs(25),
            dead_after: Duration::from_secs(45),
            dead_after_timeouts: 3,
            max_in_flight: 255,
            message_buffer: 1024,
            reconnect: true,
            reconnect_min_delay: Duration::from_secs(1),
            reconnect_max_delay: Duration::from_secs(60),
        }
    }
}

/// Where the session stands. Watch it via [`RconClient::state_receiver`] to react to
/// outages (e.g. mark the game server unhealthy) instead of discovering them through
/// failing commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    /// Logged in; commands are sent.
    Connected,
    /// The session was lost; logging in again. Commands fail fast with
    /// [`RconError::Disconnected`] meanwhile. `attempt` counts failed logins so far.
    Reconnecting { attempt: u32 },
    /// Closed by [`RconClient::close`], by dropping every handle, or after a lost
    /// session with reconnecting disabled. Final.
    Closed,
}

/// A console message pushed by the server (type 0x02): joins, leaves, chat, kicks,
/// admin logins. Each server seq is delivered once even when the server resends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerMessage {
    /// The server's message counter (wraps at 256, restarts on every login).
    pub seq: u8,
    /// The text, decoded leniently (invalid UTF-8 becomes U+FFFD).
    pub text: String,
    /// Wall-clock arrival time, for event logs.
    pub received_at: SystemTime,
}

/// Counters since the client was created, for health reporting and debugging lossy
/// links. Reconnects do not reset them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Datagrams sent (logins, commands, retransmissions, keepalives, acks).
    pub packets_sent: u64,
    /// Valid datagrams received.
    pub packets_received: u64,
    /// Datagrams dropped because they did not decode (bad CRC, header, shape).
    pub packets_dropped: u64,
    /// Valid command responses for a seq that had nothing pending (late answers,
    /// parts after completion, answers to timed-out commands).
    pub responses_unmatched: u64,
    /// Command datagrams sent again after a timeout.
    pub retransmits: u64,
    /// Commands that failed with [`RconError::CommandTimeout`] (keepalives included).
    pub command_timeouts: u64,
    /// Keepalive commands sent.
    pub keepalives: u64,
    /// Distinct server messages received.
    pub messages_received: u64,
    /// Resent server messages recognised as duplicates (acked, not delivered).
    pub messages_duplicate: u64,
    /// Server messages dropped because the consumer's channel was full.
    pub messages_dropped: u64,
    /// Successful logins after the first one.
    pub reconnects: u64,
}

#[derive(Default)]
struct Stats {
    packets_sent: AtomicU64,
    packets_received: AtomicU64,
    packets_dropped: AtomicU64,
    responses_unmatched: AtomicU64,
    retransmits: AtomicU64,
    command_timeouts: AtomicU64,
    keepalives: AtomicU64,
    messages_received: AtomicU64,
    messages_duplicate: AtomicU64,
    messages_dropped: AtomicU64,
    reconnects: AtomicU64,
}

impl Stats {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> ClientStats {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ClientStats {
            packets_sent: g(&self.packets_sent),
            packets_received: g(&self.packets_received),
            packets_dropped: g(&self.packets_dropped),
            responses_unmatched: g(&self.responses_unmatched),
            retransmits: g(&self.retransmits),
            command_timeouts: g(&self.command_timeouts),
            keepalives: g(&self.keepalives),
            messages_received: g(&self.messages_received),
            messages_duplicate: g(&self.messages_duplicate),
            messages_dropped: g(&self.messages_dropped),
            reconnects: g(&self.reconnects),
        }
    }
}

/// Everything that can go wrong talking to a server. None of the messages contain the
/// password or command text (a command such as `RConPassword x` would leak it).
#[derive(Debug, Error)]
pub enum RconError {
    /// The server answered the login with "failed".
    #[error("RCon login refused: wrong password")]
    WrongPassword,
    /// No answer to any login datagram: RCon is disabled (no `RConPassword`), the port
    /// is wrong, or the server is not running (yet).
    #[error(
        "no answer to RCon login after {attempts} attempt(s){}",
        if *port_unreachable { " (port unreachable: nothing listening?)" } else { "" }
    )]
    LoginTimeout {
        attempts: u32,
        /// The host answered with ICMP port unreachable at least once.
        port_unreachable: bool,
    },
    /// The password contains a NUL byte, which the login packet cannot carry reliably.
    #[error("RCon password must not contain NUL bytes")]
    InvalidPassword,
    /// The command is too long for one datagram.
    #[error("RCon command is {len} bytes, the maximum is {MAX_COMMAND_LEN}")]
    CommandTooLong { len: usize },
    /// No (complete) answer after all retransmissions. The command may or may not have
    /// run on the server.
    #[error("no answer to RCon command after {attempts} attempt(s)")]
    CommandTimeout { attempts: u32 },
    /// The server answered `Disallowed command` (RestrictRCon or a blocked command).
    /// Only [`RconClient::command`] maps this; `command_raw` returns the text.
    #[error("RCon command disallowed by the server")]
    Disallowed,
    /// The server answered `Unknown command`. Mapped like [`RconError::Disallowed`].
    #[error("RCon command unknown to the server")]
    UnknownCommand,
    /// The session was lost before the answer arrived, or is being re-established.
    /// Whether the command ran is unknown; retry once the state is `Connected`.
    #[error("RCon session lost; reconnecting")]
    Disconnected,
    /// The client was closed.
    #[error("RCon client closed")]
    Closed,
    /// Creating or connecting the UDP socket failed.
    #[error("RCon socket error: {0}")]
    Io(#[from] io::Error),
}

/// A handle to one RCon session. Clone it freely; all clones share the session.
/// Dropping the last clone (or calling [`RconClient::close`]) stops the background task.
#[derive(Clone)]
pub struct RconClient {
    requests: mpsc::Sender<Request>,
    state: watch::Receiver<ConnectionState>,
    stats: Arc<Stats>,
    addr: SocketAddr,
}

impl fmt::Debug for RconClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RconClient")
            .field("addr", &self.addr)
            .field("state", &*self.state.borrow())
            .finish_non_exhaustive()
    }
}

enum Request {
    Command {
        command: Vec<u8>,
        reply: oneshot::Sender<Result<Vec<u8>, RconError>>,
    },
    Close {
        done: oneshot::Sender<()>,
    },
}

impl RconClient {
    /// Logs in and starts the background task. Returns the handle and the stream of
    /// server messages (the first is usually `RCon admin #N (…) logged in`).
    ///
    /// Fails fast with [`RconError::WrongPassword`]; [`RconError::LoginTimeout`] after
    /// `login_attempts × login_timeout` of silence. Once connected, lost sessions are
    /// re-established in the background (see [`ClientOptions::reconnect`]).
    pub async fn connect(
        addr: SocketAddr,
        password: impl Into<RconPassword>,
        opts: ClientOptions,
    ) -> Result<(RconClient, mpsc::Receiver<ServerMessage>), RconError> {
        let password = password.into();
        if password.0.as_bytes().contains(&0) {
            return Err(RconError::InvalidPassword);
        }
        let opts = normalize(opts);
        let stats = Arc::new(Stats::default());
        let (msg_tx, msg_rx) = mpsc::channel(opts.message_buffer);
        let mut session = Session {
            addr,
            password,
            stats: Arc::clone(&stats),
            messages: msg_tx,
            dedup: MessageDedup::default(),
            opts,
            last_received: Instant::now(),
        };
        let socket = session.login().await?;
        let (req_tx, req_rx) = mpsc::channel(1024);
        let (state_tx, state_rx) = watch::channel(ConnectionState::Connected);
        let actor = Actor::new(session, socket, req_rx, state_tx);
        tokio::spawn(actor.run());
        Ok((
            RconClient {
                requests: req_tx,
                state: state_rx,
                stats,
                addr,
            },
            msg_rx,
        ))
    }

    /// Runs a command and returns its answer as text (lossy UTF-8, multi-part answers
    /// joined). `Disallowed command` and `Unknown command` become errors so callers do
    /// not mistake them for output. An empty string is the normal answer of commands
    /// that print nothing (`say`, `kick`, …).
    pub async fn command(&self, command: &str) -> Result<String, RconError> {
        let raw = self.command_raw(command.as_bytes()).await?;
        if raw == DISALLOWED {
            return Err(RconError::Disallowed);
        }
        if raw == UNKNOWN {
            return Err(RconError::UnknownCommand);
        }
        Ok(String::from_utf8_lossy(&raw).into_owned())
    }

    /// Runs a command and returns the joined answer bytes unchanged, for callers that
    /// want their own decoding or to see `Disallowed command` as text.
    pub async fn command_raw(&self, command: &[u8]) -> Result<Vec<u8>, RconError> {
        if command.len() > MAX_COMMAND_LEN {
            return Err(RconError::CommandTooLong { len: command.len() });
        }
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request::Command {
                command: command.to_vec(),
                reply,
            })
            .await
            .map_err(|_| RconError::Closed)?;
        answer.await.map_err(|_| RconError::Closed)?
    }

    /// Closes the session: pending commands fail with [`RconError::Closed`], the state
    /// becomes `Closed` and the background task ends before this returns. Other
    /// handles see `Closed` on their next call.
    pub async fn close(&self) {
        let (done, finished) = oneshot::channel();
        if self.requests.send(Request::Close { done }).await.is_ok() {
            let _ = finished.await;
        }
    }

    /// The current connection state.
    pub fn state(&self) -> ConnectionState {
        *self.state.borrow()
    }

    /// A receiver that is notified on every state change (and errors once the
    /// background task has ended).
    pub fn state_receiver(&self) -> watch::Receiver<ConnectionState> {
        self.state.clone()
    }

    /// Waits until the state is `Connected`, for callers that want to retry after an
    /// outage. Fails with `Closed` if the client closes first, `Disconnected` on timeout.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<(), RconError> {
        let mut rx = self.state.clone();
        let wait =
            rx.wait_for(|s| matches!(s, ConnectionState::Connected | ConnectionState::Closed));
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(s)) if *s == ConnectionState::Connected => Ok(()),
            Ok(_) => Err(RconError::Closed),
            Err(_) => Err(RconError::Disconnected),
        }
    }

    /// Counters since creation.
    pub fn stats(&self) -> ClientStats {
        self.stats.snapshot()
    }

    /// The server's RCon address.
    pub fn server_addr(&self) -> SocketAddr {
        self.addr
    }
}

fn normalize(mut opts: ClientOptions) -> ClientOptions {
    opts.login_attempts = opts.login_attempts.max(1);
    opts.command_attempts = opts.command_attempts.max(1);
    opts.max_in_flight = opts.max_in_flight.clamp(1, SEQ_SPACE - 1);
    opts.message_buffer = opts.message_buffer.max(1);
    opts.reconnect_min_delay = opts.reconnect_min_delay.max(Duration::from_millis(1));
    opts.reconnect_max_delay = opts.reconnect_max_delay.max(opts.reconnect_min_delay);
    opts
}

/// Collects the parts of one multi-part command response.
///
/// Parts may arrive in any order and more than once (the server resends the whole
/// answer when we retransmit). Bytes are joined in index order before any decoding,
/// so a UTF-8 character split across two parts survives. A part announcing a different
/// total than the ones before it means the server produced a new answer (e.g. it ran
/// the command again): the old parts are discarded and collection restarts.
/// Public so benchmarks and other transports can use it.
#[derive(Debug, Default, Clone)]
pub struct Reassembly {
    parts: Vec<Option<Vec<u8>>>,
    missing: usize,
}

/// What [`Reassembly::push`] made of a part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    /// All parts are in: the joined answer.
    Complete(Vec<u8>),
    /// Stored; more parts are needed.
    Incomplete,
    /// An index already stored; ignored.
    Duplicate,
    /// The total differed from earlier parts; earlier parts were discarded.
    Restarted,
}

impl Reassembly {
    /// An empty collector.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one response packet's part header and body. `None` means a single-packet
    /// answer, which completes at once.
    pub fn push(&mut self, part: Option<Part>, body: Vec<u8>) -> PushOutcome {
        let Some(Part { total, index }) = part else {
            self.parts.clear();
            self.missing = 0;
            return PushOutcome::Complete(body);
        };
        let (total, index) = (usize::from(total), usize::from(index));
        if total == 0 || index >= total {
            return PushOutcome::Duplicate;
        }
        let mut restarted = false;
        if self.parts.len() != total {
            restarted = !self.parts.is_empty();
            self.parts.clear();
            self.parts.resize(total, None);
            self.missing = total;
        }
        let slot = &mut self.parts[index];
        if slot.is_some() {
            return PushOutcome::Duplicate;
        }
        *slot = Some(body);
        self.missing -= 1;
        if self.missing > 0 {
            return if restarted {
                PushOutcome::Restarted
            } else {
                PushOutcome::Incomplete
            };
        }
        let parts = std::mem::take(&mut self.parts);
        let len = parts.iter().flatten().map(Vec::len).sum();
        let mut joined = Vec::with_capacity(len);
        for p in parts.into_iter().flatten() {
            joined.extend_from_slice(&p);
        }
        PushOutcome::Complete(joined)
    }
}

/// Remembers the most recent server-message seqs to drop resends.
struct MessageDedup {
    seen: [bool; SEQ_SPACE],
    order: VecDeque<u8>,
}

impl Default for MessageDedup {
    fn default() -> Self {
        Self {
            seen: [false; SEQ_SPACE],
            order: VecDeque::with_capacity(MESSAGE_DEDUP_WINDOW),
        }
    }
}

impl MessageDedup {
    /// True when `seq` is new (and records it).
    fn insert(&mut self, seq: u8) -> bool {
        if self.seen[usize::from(seq)] {
            return false;
        }
        if self.order.len() == MESSAGE_DEDUP_WINDOW
            && let Some(old) = self.order.pop_front()
        {
            self.seen[usize::from(old)] = false;
        }
        self.order.push_back(seq);
        self.seen[usize::from(seq)] = true;
        true
    }
}

/// State that survives reconnects: where, who, and where messages go.
struct Session {
    addr: SocketAddr,
    password: RconPassword,
    stats: Arc<Stats>,
    messages: mpsc::Sender<ServerMessage>,
    dedup: MessageDedup,
    opts: ClientOptions,
    last_received: Instant,
}

impl Session {
    /// Opens a fresh connected socket and logs in. A fresh socket per session means a
    /// fresh source port, so no late datagram of an old session can be mistaken for
    /// an answer of the new one.
    async fn login(&mut self) -> Result<UdpSocket, RconError> {
        let bind: SocketAddr = if self.addr.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(bind).await?;
        socket.connect(self.addr).await?;
        self.dedup = MessageDedup::default();
        let datagram = ClientPacket::Login {
            password: self.password.0.as_bytes().to_vec(),
        }
        .encode();
        let mut buf = vec![0u8; MAX_PACKET_LEN];
        let mut port_unreachable = false;
        for attempt in 1..=self.opts.login_attempts {
            self.send(&socket, &datagram).await;
            let deadline = Instant::now() + self.opts.login_timeout;
            loop {
                let received = tokio::select! {
                    r = socket.recv(&mut buf) => r,
                    () = sleep_until(deadline) => break,
                };
                match received {
                    Ok(n) => match ServerPacket::decode(&buf[..n]) {
                        Ok(ServerPacket::LoginResponse { success }) => {
                            Stats::bump(&self.stats.packets_received);
                            self.last_received = Instant::now();
                            if success {
                                tracing::debug!(addr = %self.addr, attempt, "RCon login ok");
                                return Ok(socket);
                            }
                            return Err(RconError::WrongPassword);
                        }
                        Ok(ServerPacket::Message { seq, body }) => {
                            // The login answer may have been lost while the server
                            // already treats us as logged in; ack so it keeps us.
                            Stats::bump(&self.stats.packets_received);
                            self.on_message(&socket, seq, body).await;
                        }
                        Ok(ServerPacket::CommandResponse { .. }) => {
                            Stats::bump(&self.stats.packets_received);
                            Stats::bump(&self.stats.responses_unmatched);
                        }
                        Err(e) => {
                            Stats::bump(&self.stats.packets_dropped);
                            tracing::debug!(error = %e, "dropped invalid RCon datagram");
                        }
                    },
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                        // ICMP port unreachable; wait out the attempt rather than spin.
                        port_unreachable = true;
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "RCon recv error during login");
                        sleep_until(deadline).await;
                        break;
                    }
                }
            }
            tracing::debug!(addr = %self.addr, attempt, "RCon login attempt timed out");
        }
        Err(RconError::LoginTimeout {
            attempts: self.opts.login_attempts,
            port_unreachable,
        })
    }

    async fn send(&self, socket: &UdpSocket, datagram: &[u8]) {
        Stats::bump(&self.stats.packets_sent);
        if let Err(e) = socket.send(datagram).await {
            // Treated like loss: the retry logic covers it.
            tracing::debug!(addr = %self.addr, error = %e, "RCon send failed");
        }
    }

    /// Acks a server message (always, duplicates too: the server resends until it
    /// gets an ack) and delivers it if its seq is new.
    async fn on_message(&mut self, socket: &UdpSocket, seq: u8, body: Vec<u8>) {
        self.send(socket, &ClientPacket::MessageAck { seq }.encode())
            .await;
        if !self.dedup.insert(seq) {
            Stats::bump(&self.stats.messages_duplicate);
            return;
        }
        Stats::bump(&self.stats.messages_received);
        let message = ServerMessage {
            seq,
            text: String::from_utf8_lossy(&body).into_owned(),
            received_at: SystemTime::now(),
        };
        match self.messages.try_send(message) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                Stats::bump(&self.stats.messages_dropped);
                tracing::warn!(
                    addr = %self.addr,
                    seq,
                    "RCon server message dropped: consumer is not keeping up"
                );
            }
            // Nobody listens; acking was all that mattered.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

/// One command on the wire (or the keepalive).
struct Pending {
    datagram: Vec<u8>,
    /// `None` for keepalives.
    reply: Option<oneshot::Sender<Result<Vec<u8>, RconError>>>,
    sent: u32,
    retry_at: Instant,
    parts: Reassembly,
}

struct Queued {
    command: Vec<u8>,
    reply: oneshot::Sender<Result<Vec<u8>, RconError>>,
}

enum SessionEnd {
    /// Close requested or all handles dropped.
    Closed(Option<oneshot::Sender<()>>),
    /// The server stopped answering.
    Dead,
}

struct Actor {
    session: Session,
    socket: UdpSocket,
    requests: mpsc::Receiver<Request>,
    state: watch::Sender<ConnectionState>,
    pending: Vec<Option<Pending>>,
    in_flight: usize,
    queue: VecDeque<Queued>,
    next_seq: u8,
    last_command_sent: Instant,
    timeout_streak: u32,
    next_timer: Instant,
}

impl Actor {
    fn new(
        session: Session,
        socket: UdpSocket,
        requests: mpsc::Receiver<Request>,
        state: watch::Sender<ConnectionState>,
    ) -> Self {
        let now = Instant::now();
        Self {
            session,
            socket,
            requests,
            state,
            pending: (0..SEQ_SPACE).map(|_| None).collect(),
            in_flight: 0,
            queue: VecDeque::new(),
            next_seq: 0,
            last_command_sent: now,
            timeout_streak: 0,
            next_timer: now,
        }
    }

    async fn run(mut self) {
        let mut buf = vec![0u8; MAX_PACKET_LEN];
        loop {
            let done = match self.serve(&mut buf).await {
                SessionEnd::Closed(done) => done,
                SessionEnd::Dead => {
                    self.fail_all(|| RconError::Disconnected);
                    if !self.session.opts.reconnect {
                        None
                    } else {
                        match self.reconnect().await {
                            Ok(()) => continue,
                            Err(done) => done,
                        }
                    }
                }
            };
            self.fail_all(|| RconError::Closed);
            self.state.send_replace(ConnectionState::Closed);
            tracing::debug!(addr = %self.session.addr, "RCon client closed");
            if let Some(done) = done {
                let _ = done.send(());
            }
            return;
        }
    }

    /// Runs a logged-in session until it dies or the client closes.
    async fn serve(&mut self, buf: &mut [u8]) -> SessionEnd {
        let now = Instant::now();
        self.last_command_sent = now;
        self.session.last_received = now;
        self.timeout_streak = 0;
        self.next_timer = now;
        loop {
            if Instant::now() >= self.next_timer
                && let Some(end) = self.on_timers().await
            {
                return end;
            }
            tokio::select! {
                request = self.requests.recv() => match request {
                    None => return SessionEnd::Closed(None),
                    Some(Request::Close { done }) => return SessionEnd::Closed(Some(done)),
                    Some(Request::Command { command, reply }) => {
                        self.submit(command, reply).await;
                    }
                },
                received = self.socket.recv(buf) => match received {
                    Ok(n) => self.on_datagram(&buf[..n]).await,
                    Err(e) => {
                        // ICMP errors surface here on a connected socket; the timers
                        // decide whether the server is gone.
                        tracing::debug!(addr = %self.session.addr, error = %e, "RCon recv error");
                    }
                },
                () = sleep_until(self.next_timer) => {}
            }
        }
    }

    async fn submit(
        &mut self,
        command: Vec<u8>,
        reply: oneshot::Sender<Result<Vec<u8>, RconError>>,
    ) {
        if self.in_flight >= self.session.opts.max_in_flight {
            self.queue.push_back(Queued { command, reply });
        } else {
            self.transmit(command, Some(reply)).await;
        }
    }

    /// Allocates the next free seq (round-robin, so a seq comes back as late as
    /// possible) and sends the command.
    async fn transmit(
        &mut self,
        command: Vec<u8>,
        reply: Option<oneshot::Sender<Result<Vec<u8>, RconError>>>,
    ) {
        let mut seq = self.next_seq;
        while self.pending[usize::from(seq)].is_some() {
            seq = seq.wrapping_add(1);
        }
        self.next_seq = seq.wrapping_add(1);
        let datagram = ClientPacket::Command { seq, command }.encode();
        let now = Instant::now();
        let retry_at = now + self.session.opts.command_timeout;
        self.session.send(&self.socket, &datagram).await;
        self.last_command_sent = now;
        self.next_timer = self.next_timer.min(retry_at);
        self.pending[usize::from(seq)] = Some(Pending {
            datagram,
            reply,
            sent: 1,
            retry_at,
            parts: Reassembly::new(),
        });
        self.in_flight += 1;
    }

    /// Frees a seq and lets the next queued command take the slot.
    async fn release(&mut self, seq: u8) -> Option<Pending> {
        let pending = self.pending[usize::from(seq)].take()?;
        self.in_flight -= 1;
        while let Some(q) = self.queue.pop_front() {
            if q.reply.is_closed() {
                continue; // the caller gave up while waiting
            }
            self.transmit(q.command, Some(q.reply)).await;
            break;
        }
        Some(pending)
    }

    async fn on_datagram(&mut self, datagram: &[u8]) {
        let stats = Arc::clone(&self.session.stats);
        let packet = match ServerPacket::decode(datagram) {
            Ok(p) => p,
            Err(e) => {
                Stats::bump(&stats.packets_dropped);
                tracing::debug!(addr = %self.session.addr, error = %e, "dropped invalid RCon datagram");
                return;
            }
        };
        Stats::bump(&stats.packets_received);
        self.session.last_received = Instant::now();
        match packet {
            ServerPacket::Message { seq, body } => {
                self.session.on_message(&self.socket, seq, body).await;
            }
            ServerPacket::CommandResponse { seq, part, body } => {
                let Some(pending) = self.pending[usize::from(seq)].as_mut() else {
                    Stats::bump(&stats.responses_unmatched);
                    return;
                };
                self.timeout_streak = 0;
                match pending.parts.push(part, body) {
                    PushOutcome::Complete(answer) => {
                        if let Some(p) = self.release(seq).await
                            && let Some(reply) = p.reply
                        {
                            let _ = reply.send(Ok(answer));
                        }
                    }
                    PushOutcome::Restarted => {
                        tracing::debug!(seq, "RCon multi-part total changed; restarted reassembly");
                    }
                    PushOutcome::Incomplete | PushOutcome::Duplicate => {}
                }
            }
            // A late answer to a login retransmission: harmless.
            ServerPacket::LoginResponse { .. } => {}
        }
    }

    /// Retransmits, times out, sends keepalives and checks for a dead server.
    async fn on_timers(&mut self) -> Option<SessionEnd> {
        let now = Instant::now();
        let opts = self.session.opts.clone();
        if now.duration_since(self.session.last_received) >= opts.dead_after {
            tracing::warn!(addr = %self.session.addr, "RCon server silent for {:?}; session dead", opts.dead_after);
            return Some(SessionEnd::Dead);
        }
        let mut next = self.session.last_received + opts.dead_after;
        for seq in 0..=u8::MAX {
            let Some(p) = self.pending[usize::from(seq)].as_mut() else {
                continue;
            };
            if p.retry_at > now {
                next = next.min(p.retry_at);
                continue;
            }
            let abandoned = p.reply.as_ref().is_some_and(|r| r.is_closed());
            if p.sent >= opts.command_attempts || abandoned {
                let Some(p) = self.release(seq).await else {
                    continue;
                };
                if abandoned {
                    continue;
                }
                Stats::bump(&self.session.stats.command_timeouts);
                self.timeout_streak = self.timeout_streak.saturating_add(1);
                if let Some(reply) = p.reply {
                    let _ = reply.send(Err(RconError::CommandTimeout {
                        attempts: opts.command_attempts,
                    }));
                }
                if opts.dead_after_timeouts > 0 && self.timeout_streak >= opts.dead_after_timeouts {
                    tracing::warn!(
                        addr = %self.session.addr,
                        streak = self.timeout_streak,
                        "RCon commands keep timing out; session dead"
                    );
                    return Some(SessionEnd::Dead);
                }
                // `release` may have started a queued command with an earlier deadline.
                next = next.min(now + opts.command_timeout);
                continue;
            }
            p.sent += 1;
            p.retry_at = now + opts.command_timeout;
            next = next.min(p.retry_at);
            let datagram = p.datagram.clone();
            Stats::bump(&self.session.stats.retransmits);
            self.session.send(&self.socket, &datagram).await;
            self.last_command_sent = now;
        }
        let keepalive_at = self.last_command_sent + opts.keepalive_interval;
        if keepalive_at <= now {
            if self.in_flight < SEQ_SPACE - 1 {
                Stats::bump(&self.session.stats.keepalives);
                self.transmit(Vec::new(), None).await;
            }
            next = next.min(now + opts.command_timeout);
        } else {
            next = next.min(keepalive_at);
        }
        self.next_timer = next;
        None
    }

    fn fail_all(&mut self, error: impl Fn() -> RconError) {
        for slot in &mut self.pending {
            if let Some(p) = slot.take()
                && let Some(reply) = p.reply
            {
                let _ = reply.send(Err(error()));
            }
        }
        self.in_flight = 0;
        for q in self.queue.drain(..) {
            let _ = q.reply.send(Err(error()));
        }
    }

    /// Logs in again with jittered exponential backoff, answering requests meanwhile
    /// (commands fail fast with `Disconnected`). `Err` means the client was closed.
    async fn reconnect(&mut self) -> Result<(), Option<oneshot::Sender<()>>> {
        let mut attempt: u32 = 0;
        loop {
            self.state
                .send_replace(ConnectionState::Reconnecting { attempt });
            let delay = if attempt == 0 {
                Duration::ZERO
            } else {
                backoff(&self.session.opts, attempt)
            };
            let wait = sleep(delay);
            tokio::pin!(wait);
            loop {
                tokio::select! {
                    () = &mut wait => break,
                    request = self.requests.recv() => self.while_down(request)?,
                }
            }
            let result = {
                let login = self.session.login();
                tokio::pin!(login);
                loop {
                    tokio::select! {
                        result = &mut login => break result,
                        request = self.requests.recv() => {
                            // The login future borrows `session`; answer without it.
                            match request {
                                None => return Err(None),
                                Some(Request::Close { done }) => return Err(Some(done)),
                                Some(Request::Command { reply, .. }) => {
                                    let _ = reply.send(Err(RconError::Disconnected));
                                }
                            }
                        }
                    }
                }
            };
            match result {
                Ok(socket) => {
                    self.socket = socket;
                    Stats::bump(&self.session.stats.reconnects);
                    tracing::info!(addr = %self.session.addr, attempt, "RCon reconnected");
                    self.state.send_replace(ConnectionState::Connected);
                    return Ok(());
                }
                Err(e) => {
                    tracing::warn!(addr = %self.session.addr, attempt, error = %e, "RCon reconnect failed");
                    attempt = attempt.saturating_add(1);
                }
            }
        }
    }

    fn while_down(&mut self, request: Option<Request>) -> Result<(), Option<oneshot::Sender<()>>> {
        match request {
            None => Err(None),
            Some(Request::Close { done }) => Err(Some(done)),
            Some(Request::Command { reply, .. }) => {
                let _ = reply.send(Err(RconError::Disconnected));
                Ok(())
            }
        }
    }
}

/// `min × 2^(attempt-1)`, capped, then scaled by a random 50–100 %.
fn backoff(opts: &ClientOptions, attempt: u32) -> Duration {
    let exp = attempt.saturating_sub(1).min(20);
    let base = opts
        .reconnect_min_delay
        .saturating_mul(1u32 << exp)
        .min(opts.reconnect_max_delay);
    base.mul_f64(rand::rng().random_range(0.5..=1.0))
}

#[cfg(test)]
mod tests {
    //! A scripted fake BattlEye server built on the codec drives the client over real
    //! loopback sockets. Commands select the server's behaviour (see `FakeServer::on_command`).
    use super::*;
    use crate::arma::rcon::packet::split_response;
    use std::collections::{HashMap, HashSet};
    use std::sync::Mutex;
    use std::sync::atomic::AtomicBool;

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
                        let ok =
                            mode == LoginMode::Accept && password == shared.password.as_bytes();
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
        let long = "x".repeat(MAX_COMMAND_LEN + 1);
        assert!(matches!(
            client.command(&long).await,
            Err(RconError::CommandTooLong { .. })
        ));
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
}
