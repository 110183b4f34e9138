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

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use thiserror::Error;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::packet::{HEADER_LEN, MAX_PACKET_LEN};

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
/// Largest command body in bytes. The protocol itself would allow
/// `MAX_PACKET_LEN - HEADER_LEN - 2` (65 498), but BattlEye servers are only
/// known to handle command datagrams of up to 1400 bytes, which is what real
/// clients stay within (bercon-cli caps command bodies at 1391 bytes); larger
/// datagrams may also be fragmented at the IP layer and lost on paths that
/// drop fragments. Longer commands fail with [`RconError::CommandTooLong`].
pub const MAX_COMMAND_LEN: usize = 1391;

const _: () = assert!(MAX_COMMAND_LEN <= MAX_PACKET_LEN - HEADER_LEN - 2);

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
    /// Largest answer kept; a longer one is discarded with
    /// [`RconError::AnswerTooLarge`] so a hostile server cannot make the client buffer
    /// without bound. Real answers stay far below (at most 255 parts of ~1 KB).
    pub max_answer_bytes: usize,
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
            max_answer_bytes: MAX_ANSWER_BYTES,
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
    /// Multi-part answers discarded because they exceeded
    /// [`MAX_ANSWER_BYTES`] or the client's [`MAX_CLIENT_BUFFERED`]; their
    /// commands failed with [`RconError::AnswerTooLarge`].
    pub answers_oversized: u64,
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
    answers_oversized: AtomicU64,
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
            answers_oversized: g(&self.answers_oversized),
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
    /// The multi-part answer grew beyond [`MAX_ANSWER_BYTES`] (or the client's
    /// [`MAX_CLIENT_BUFFERED`]) and was discarded. The command did run.
    #[error("RCon answer discarded: larger than {limit} bytes")]
    AnswerTooLarge { limit: usize },
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

mod actor;
use actor::{Actor, Session};
use reassembly::MessageDedup;
mod reassembly;

pub use reassembly::{MAX_ANSWER_BYTES, MAX_CLIENT_BUFFERED, PushOutcome, Reassembly};

#[cfg(test)]
mod tests;
