//! BattlEye RCon UDP server (reference §1.9), one state per client address:
//!
//! * login ok → `00 01`, a new admin id (0, 1, 2… per run), then the broadcast
//!   `RCon admin #<id> (<ip>:<port>) logged in`; bad password → `00 00`;
//! * commands from unknown or expired peers get no reply at all;
//! * an empty command is the keepalive and gets the empty ack;
//! * replies are cached per client and per seq (256 slots: command bytes, reply
//!   datagrams, time). A command whose seq slot holds the same bytes and is younger
//!   than 10 s is a retry: the cached reply is resent and the command is not run
//!   again, even when other commands were sent in between (several in flight). PyPI
//!   `rcon` 2.4.9 uses seq 0 for everything, so different text on the same seq is a
//!   different command;
//! * long replies are split with `split_response(seq, body, max_part)`;
//! * server messages carry a per-client wrapping seq and are resent every 2 s until
//!   acked; after 5 unacked resends the admin is forgotten;
//! * 45 s without a command packet → the session is dropped silently;
//! * knob `followup` (off by default, not real-server behaviour): after a reply to a command that printed no console message the
//!   commanding admin alone gets `Connected to BE Master` (BattlEye master noise that
//!   berconpy ignores), because `rcon` 2.4.9's `run()` only returns once a server
//!   message follows the reply.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use languard_shared::arma::rcon::{ClientPacket, ServerPacket, split_response};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::commands::{Outcome, execute};
use super::world::Shared;

/// The console line sent after replies that printed nothing (see module docs).
pub const FOLLOWUP_MESSAGE: &str = "Connected to BE Master";

/// How long a same-seq same-bytes command counts as a retry.
const RETRY_WINDOW: Duration = Duration::from_secs(10);
/// Resends of an unacked server message before the admin is forgotten.
const MAX_RESENDS: u32 = 5;

struct Pending {
    seq: u8,
    datagram: Vec<u8>,
    last_sent: Instant,
    resends: u32,
}

/// The reply to one command, kept in its seq's slot for retries.
struct CachedReply {
    command: Vec<u8>,
    datagrams: Vec<Vec<u8>>,
    followup: bool,
    at: Instant,
}

struct Session {
    admin_id: u32,
    last_cmd: Instant,
    /// One slot per command seq (0..=255).
    replies: Vec<Option<CachedReply>>,
    next_seq: u8,
    pending: Vec<Pending>,
}

impl Session {
    fn new(admin_id: u32) -> Self {
        Session {
            admin_id,
            last_cmd: Instant::now(),
            replies: (0..256).map(|_| None).collect(),
            next_seq: 0,
            pending: vec![],
        }
    }
}

pub struct RconServer {
    sock: UdpSocket,
    shared: Arc<Shared>,
    sessions: HashMap<SocketAddr, Session>,
    next_admin: u32,
    sent: u64,
}

impl RconServer {
    pub fn new(sock: UdpSocket, shared: Arc<Shared>) -> Self {
        RconServer {
            sock,
            shared,
            sessions: HashMap::new(),
            next_admin: 0,
            sent: 0,
        }
    }

    /// Serves until the process ends.
    pub async fn run(mut self, mut be_rx: mpsc::UnboundedReceiver<String>) {
        let mut buf = vec![0u8; 65_536];
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                r = self.sock.recv_from(&mut buf) => {
                    let Ok((n, addr)) = r else { continue };
                    if self.shared.is_hung() {
                        continue;
                    }
                    let data = buf[..n].to_vec();
                    self.handle(&data, addr).await;
                }
                msg = be_rx.recv() => {
                    let Some(msg) = msg else { return };
                    if !self.shared.is_hung() {
                        self.broadcast(&msg).await;
                    }
                }
                _ = tick.tick() => {
                    if !self.shared.is_hung() {
                        self.housekeeping().await;
                    }
                }
            }
        }
    }

    async fn send(&mut self, addr: SocketAddr, datagram: &[u8]) {
        self.sent += 1;
        let every = u64::from(self.shared.opts.drop_every);
        if every > 0 && self.sent.is_multiple_of(every) {
            return;
        }
        let _ = self.sock.send_to(datagram, addr).await;
    }

    async fn handle(&mut self, data: &[u8], addr: SocketAddr) {
        let Ok(packet) = ClientPacket::decode(data) else {
            return;
        };
        match packet {
            ClientPacket::Login { password } => {
                let expected = self.shared.lock().rcon_password.clone();
                let ok = expected.is_some_and(|p| p.as_bytes() == password.as_slice());
                if ok {
                    let admin_id = self.next_admin;
                    self.next_admin = self.next_admin.wrapping_add(1);
                    self.sessions.insert(addr, Session::new(admin_id));
                    self.send(
                        addr,
                        &ServerPacket::LoginResponse { success: true }.encode(),
                    )
                    .await;
                    self.shared.be(&format!(
                        "RCon admin #{admin_id} ({}:{}) logged in",
                        addr.ip(),
                        addr.port()
                    ));
                } else {
                    self.sessions.remove(&addr);
                    self.send(
                        addr,
                        &ServerPacket::LoginResponse { success: false }.encode(),
                    )
                    .await;
                }
            }
            ClientPacket::MessageAck { seq } => {
                if let Some(s) = self.sessions.get_mut(&addr) {
                    s.pending.retain(|p| p.seq != seq);
                }
            }
            ClientPacket::Command { seq, command } => self.command(addr, seq, command).await,
        }
    }

    async fn command(&mut self, addr: SocketAddr, seq: u8, command: Vec<u8>) {
        let timeout = self.shared.opts.session_timeout;
        let now = Instant::now();
        let Some(s) = self.sessions.get_mut(&addr) else {
            return;
        };
        if now.duration_since(s.last_cmd) > timeout {
            self.sessions.remove(&addr);
            return;
        }
        s.last_cmd = now;
        let slot = usize::from(seq);
        let retry = s.replies.get(slot).and_then(Option::as_ref).and_then(|c| {
            (c.command == command && now.duration_since(c.at) < RETRY_WINDOW)
                .then(|| (c.datagrams.clone(), c.followup))
        });
        if let Some((cached, followup)) = retry {
            for d in cached {
                self.send(addr, &d).await;
            }
            if followup {
                self.message_to(addr, FOLLOWUP_MESSAGE).await;
            }
            return;
        }
        let admin_id = s.admin_id;
        let outcome = if command.is_empty() {
            Outcome::default()
        } else {
            let text = String::from_utf8_lossy(&command).into_owned();
            let mut admins: Vec<(u32, SocketAddr)> = self
                .sessions
                .iter()
                .map(|(a, s)| (s.admin_id, *a))
                .collect();
            admins.sort();
            execute(&self.shared, admin_id, &admins, &text)
        };
        let datagrams: Vec<Vec<u8>> =
            split_response(seq, outcome.reply.as_bytes(), self.shared.opts.max_part)
                .iter()
                .map(ServerPacket::encode)
                .collect();
        let followup = self.shared.opts.followup && !command.is_empty() && !outcome.printed_message;
        if let Some(c) = self
            .sessions
            .get_mut(&addr)
            .and_then(|s| s.replies.get_mut(slot))
        {
            *c = Some(CachedReply {
                command,
                datagrams: datagrams.clone(),
                followup,
                at: now,
            });
        }
        for d in &datagrams {
            self.send(addr, d).await;
        }
        if followup {
            self.message_to(addr, FOLLOWUP_MESSAGE).await;
        }
        if outcome.shutdown && !self.shared.opts.ignore_shutdown {
            let mut w = self.shared.lock();
            self.shared.end_mission(&mut w);
            self.shared.request_exit(0);
        }
    }

    /// Sends a server message to one admin, remembering it until acked.
    async fn message_to(&mut self, addr: SocketAddr, msg: &str) {
        let Some(s) = self.sessions.get_mut(&addr) else {
            return;
        };
        let seq = s.next_seq;
        s.next_seq = s.next_seq.wrapping_add(1);
        let datagram = ServerPacket::Message {
            seq,
            body: msg.as_bytes().to_vec(),
        }
        .encode();
        s.pending.retain(|p| p.seq != seq);
        s.pending.push(Pending {
            seq,
            datagram: datagram.clone(),
            last_sent: Instant::now(),
            resends: 0,
        });
        self.send(addr, &datagram).await;
    }

    async fn broadcast(&mut self, msg: &str) {
        let mut addrs: Vec<(u32, SocketAddr)> = self
            .sessions
            .iter()
            .map(|(a, s)| (s.admin_id, *a))
            .collect();
        addrs.sort();
        for (_, addr) in addrs {
            self.message_to(addr, msg).await;
        }
    }

    async fn housekeeping(&mut self) {
        let now = Instant::now();
        let timeout = self.shared.opts.session_timeout;
        let resend = self.shared.opts.msg_resend;
        self.sessions
            .retain(|_, s| now.duration_since(s.last_cmd) <= timeout);
        self.sessions.retain(|_, s| {
            !s.pending
                .iter()
                .any(|p| p.resends >= MAX_RESENDS && now.duration_since(p.last_sent) >= resend)
        });
        let mut due = Vec::new();
        for (addr, s) in self.sessions.iter_mut() {
            for p in s.pending.iter_mut() {
                if now.duration_since(p.last_sent) >= resend {
                    p.last_sent = now;
                    p.resends += 1;
                    due.push((*addr, p.datagram.clone()));
                }
            }
        }
        for (addr, d) in due {
            self.send(addr, &d).await;
        }
    }
}
