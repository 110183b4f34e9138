//! The background task that owns the socket: login, sequence numbers, retransmits,
//! keepalive, server messages, dead-server detection and reconnect.

use crate::arma::rcon::packet::{ClientPacket, MAX_PACKET_LEN, ServerPacket};
use rand::Rng;
use std::collections::VecDeque;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, sleep, sleep_until};

use super::reassembly::MessageDedup;
use super::*;

/// State that survives reconnects: where, who, and where messages go.
pub(super) struct Session {
    pub(super) addr: SocketAddr,
    pub(super) password: RconPassword,
    pub(super) stats: Arc<Stats>,
    pub(super) messages: mpsc::Sender<ServerMessage>,
    pub(super) dedup: MessageDedup,
    pub(super) opts: ClientOptions,
    pub(super) last_received: Instant,
}

impl Session {
    /// Opens a fresh connected socket and logs in. A fresh socket per session means a
    /// fresh source port, so no late datagram of an old session can be mistaken for
    /// an answer of the new one.
    pub(super) async fn login(&mut self) -> Result<UdpSocket, RconError> {
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

    pub(super) async fn send(&self, socket: &UdpSocket, datagram: &[u8]) {
        Stats::bump(&self.stats.packets_sent);
        if let Err(e) = socket.send(datagram).await {
            // Treated like loss: the retry logic covers it.
            tracing::debug!(addr = %self.addr, error = %e, "RCon send failed");
        }
    }

    /// Acks a server message (always, duplicates too: the server resends until it
    /// gets an ack) and delivers it if its seq is new.
    pub(super) async fn on_message(&mut self, socket: &UdpSocket, seq: u8, body: Vec<u8>) {
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
pub(super) struct Pending {
    pub(super) datagram: Vec<u8>,
    /// `None` for keepalives.
    pub(super) reply: Option<oneshot::Sender<Result<Vec<u8>, RconError>>>,
    pub(super) sent: u32,
    pub(super) retry_at: Instant,
    pub(super) parts: Reassembly,
}

pub(super) struct Queued {
    pub(super) command: Vec<u8>,
    pub(super) reply: oneshot::Sender<Result<Vec<u8>, RconError>>,
}

pub(super) enum SessionEnd {
    /// Close requested or all handles dropped.
    Closed(Option<oneshot::Sender<()>>),
    /// The server stopped answering.
    Dead,
}

pub(super) struct Actor {
    pub(super) session: Session,
    pub(super) socket: UdpSocket,
    pub(super) requests: mpsc::Receiver<Request>,
    pub(super) state: watch::Sender<ConnectionState>,
    pub(super) pending: Vec<Option<Pending>>,
    /// Per seq: not to be reused before this instant. Set when a command gave up
    /// on its seq while an answer might still come (timeout, abandoned caller,
    /// retransmitted), so a late answer finds no pending command instead of
    /// reaching the next caller.
    pub(super) quarantine: Vec<Option<Instant>>,
    pub(super) in_flight: usize,
    /// Bytes of partial answers held across all pending commands.
    pub(super) buffered: usize,
    pub(super) queue: VecDeque<Queued>,
    pub(super) next_seq: u8,
    pub(super) last_command_sent: Instant,
    pub(super) timeout_streak: u32,
    pub(super) next_timer: Instant,
}

impl Actor {
    pub(super) fn new(
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
            quarantine: vec![None; SEQ_SPACE],
            in_flight: 0,
            buffered: 0,
            queue: VecDeque::new(),
            next_seq: 0,
            last_command_sent: now,
            timeout_streak: 0,
            next_timer: now,
        }
    }

    pub(super) async fn run(mut self) {
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
    pub(super) async fn serve(&mut self, buf: &mut [u8]) -> SessionEnd {
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

    pub(super) async fn submit(
        &mut self,
        command: Vec<u8>,
        reply: oneshot::Sender<Result<Vec<u8>, RconError>>,
    ) {
        let seq = if self.queue.is_empty() && self.in_flight < self.session.opts.max_in_flight {
            self.free_seq(Instant::now())
        } else {
            None
        };
        match seq {
            Some(seq) => self.transmit(seq, command, Some(reply)).await,
            // Waits for a free slot (in-flight limit) or seq (quarantine); FIFO.
            None => {
                self.queue.push_back(Queued { command, reply });
                if let Some(end) = self.quarantine_ends(Instant::now()) {
                    self.next_timer = self.next_timer.min(end);
                }
            }
        }
    }

    /// The next usable seq at or after `next_seq` (round-robin, so a seq comes
    /// back as late as possible): neither pending nor quarantined.
    pub(super) fn free_seq(&self, now: Instant) -> Option<u8> {
        next_free_seq(self.next_seq, |seq| {
            self.pending[usize::from(seq)].is_some()
                || self.quarantine[usize::from(seq)].is_some_and(|until| until > now)
        })
    }

    /// Sends the command on `seq` (from [`Actor::free_seq`]).
    pub(super) async fn transmit(
        &mut self,
        seq: u8,
        command: Vec<u8>,
        reply: Option<oneshot::Sender<Result<Vec<u8>, RconError>>>,
    ) {
        self.quarantine[usize::from(seq)] = None;
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
            parts: Reassembly::with_limit(self.session.opts.max_answer_bytes),
        });
        self.in_flight += 1;
    }

    /// Frees a seq and lets queued commands take free slots. With `give_up` (the
    /// command timed out or its caller left) or after a retransmission, an answer
    /// may still be on its way, so the seq is quarantined for
    /// `command_timeout × command_attempts` before reuse.
    pub(super) async fn release(&mut self, seq: u8, give_up: bool) -> Option<Pending> {
        let pending = self.pending[usize::from(seq)].take()?;
        self.in_flight -= 1;
        self.buffered = self.buffered.saturating_sub(pending.parts.buffered());
        if give_up || pending.sent > 1 {
            let opts = &self.session.opts;
            let hold = opts
                .command_timeout
                .saturating_mul(opts.command_attempts.max(1));
            self.quarantine[usize::from(seq)] = Some(Instant::now() + hold);
        }
        self.pump_queue().await;
        Some(pending)
    }

    /// Starts queued commands while a slot and a seq are free.
    pub(super) async fn pump_queue(&mut self) {
        while self.in_flight < self.session.opts.max_in_flight && !self.queue.is_empty() {
            let Some(seq) = self.free_seq(Instant::now()) else {
                break;
            };
            let Some(q) = self.queue.pop_front() else {
                break;
            };
            if q.reply.is_closed() {
                continue; // the caller gave up while waiting
            }
            self.transmit(seq, q.command, Some(q.reply)).await;
        }
    }

    /// When the earliest quarantine ends (only matters while commands wait).
    fn quarantine_ends(&self, now: Instant) -> Option<Instant> {
        self.quarantine
            .iter()
            .flatten()
            .filter(|t| **t > now)
            .min()
            .copied()
    }

    pub(super) async fn on_datagram(&mut self, datagram: &[u8]) {
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
                let before = pending.parts.buffered();
                let client_full = part.is_some()
                    && super::reassembly::client_budget_exceeded(self.buffered, body.len());
                let outcome = if client_full {
                    PushOutcome::TooLarge
                } else {
                    pending.parts.push(part, body)
                };
                self.buffered = (self.buffered + pending.parts.buffered()).saturating_sub(before);
                match outcome {
                    PushOutcome::TooLarge => {
                        // The rest of the answer may still arrive: quarantine the seq.
                        Stats::bump(&stats.answers_oversized);
                        tracing::warn!(
                            addr = %self.session.addr,
                            seq,
                            "RCon answer too large; discarded"
                        );
                        if let Some(p) = self.release(seq, true).await
                            && let Some(reply) = p.reply
                        {
                            let limit = if client_full {
                                MAX_CLIENT_BUFFERED
                            } else {
                                self.session.opts.max_answer_bytes
                            };
                            let _ = reply.send(Err(RconError::AnswerTooLarge { limit }));
                        }
                    }
                    PushOutcome::Complete(answer) => {
                        if let Some(p) = self.release(seq, false).await
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
    pub(super) async fn on_timers(&mut self) -> Option<SessionEnd> {
        let now = Instant::now();
        let opts = self.session.opts.clone();
        if now.duration_since(self.session.last_received) >= opts.dead_after {
            tracing::warn!(addr = %self.session.addr, "RCon server silent for {:?}; session dead", opts.dead_after);
            return Some(SessionEnd::Dead);
        }
        let mut next = self.session.last_received + opts.dead_after;
        // Quarantines may have ended since the last run.
        self.pump_queue().await;
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
                let Some(p) = self.release(seq, true).await else {
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
            if self.in_flight < SEQ_SPACE - 1
                && let Some(seq) = self.free_seq(now)
            {
                Stats::bump(&self.session.stats.keepalives);
                self.transmit(seq, Vec::new(), None).await;
            }
            next = next.min(now + opts.command_timeout);
        } else {
            next = next.min(keepalive_at);
        }
        if !self.queue.is_empty()
            && let Some(end) = self.quarantine_ends(now)
        {
            next = next.min(end);
        }
        self.next_timer = next;
        None
    }

    pub(super) fn fail_all(&mut self, error: impl Fn() -> RconError) {
        for slot in &mut self.pending {
            if let Some(p) = slot.take()
                && let Some(reply) = p.reply
            {
                let _ = reply.send(Err(error()));
            }
        }
        self.in_flight = 0;
        self.buffered = 0;
        // A new session has a new socket (source port): nothing late can reach it.
        self.quarantine.fill(None);
        for q in self.queue.drain(..) {
            let _ = q.reply.send(Err(error()));
        }
    }

    /// Logs in again with jittered exponential backoff, answering requests meanwhile
    /// (commands fail fast with `Disconnected`). `Err` means the client was closed.
    pub(super) async fn reconnect(&mut self) -> Result<(), Option<oneshot::Sender<()>>> {
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

    pub(super) fn while_down(
        &mut self,
        request: Option<Request>,
    ) -> Result<(), Option<oneshot::Sender<()>>> {
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

/// The first seq from `start` on (wrapping) that is not `busy`.
pub(super) fn next_free_seq(start: u8, busy: impl Fn(u8) -> bool) -> Option<u8> {
    (0..=u8::MAX)
        .map(|i| start.wrapping_add(i))
        .find(|seq| !busy(*seq))
}

/// `min × 2^(attempt-1)`, capped, then scaled by a random 50–100 %.
pub(super) fn backoff(opts: &ClientOptions, attempt: u32) -> Duration {
    let exp = attempt.saturating_sub(1).min(20);
    let base = opts
        .reconnect_min_delay
        .saturating_mul(1u32 << exp)
        .min(opts.reconnect_max_delay);
    base.mul_f64(rand::rng().random_range(0.5..=1.0))
}
