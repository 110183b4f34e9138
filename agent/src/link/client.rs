//! The link client: keeps one mTLS connection to the controller up and carries the
//! agent's request/event interface over it (DESIGN.md, "Controller <-> agent link").
//!
//! One connection goes: dial (TCP + TLS 1.3 with our client certificate), send
//! [`AgentMessage::Hello`], wait for [`ControllerMessage::Welcome`]; then three tasks
//! share it until it fails:
//! - a writer owning the [`FrameWriter`], fed by a bounded queue, which also sends a
//!   heartbeat whenever nothing else went out for a heartbeat interval (writes are not
//!   cancel safe, so exactly one task writes);
//! - the reader loop (this task), which runs each request in its own task (the agent's
//!   per-server locks order them), applies acks, stores renewed certificates, and drops
//!   the connection after three heartbeat intervals of silence or on any frame that
//!   does not decode;
//! - an event sender streaming the outbox from the controller's acked mark, in batches
//!   that fit a frame, with at most [`LinkOptions::max_unacked`] events unacknowledged.
//!
//! Any failure ends the connection; the client reconnects with jittered exponential
//! backoff (reset by each welcome) and the outbox replays whatever was not acked, so a
//! disconnect loses nothing. A refused agent (revoked, deleted, wrong version) keeps
//! retrying at the capped backoff, which costs one handshake per interval.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use languard_shared::wire::frame::{FrameError, FrameReader, FrameWriter, MAX_FRAME_LEN};
use languard_shared::wire::link::{AgentMessage, ControllerMessage, Reply, SUPPORTED_VERSIONS};
use languard_shared::wire::request::ErrorCode;
use languard_shared::wire::{
    AgentError, EventEnvelope, PROTOCOL_VERSION, Request, Response, now_millis,
};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::addr::{ControllerAddr, DialError};
use super::backoff::Backoff;
use super::enroll::{identity_dir, is_pinned_ca, recover_interrupted_install};
use super::identity::{Identity, IdentityError, client_config};
use super::renewal::{Validity, now_secs};
use crate::config::AgentConfig;
use crate::host::Agent;

/// Frames waiting for the writer; small, so a slow connection pushes back on the
/// event sender instead of buffering the outbox in memory.
const OUTGOING_QUEUE: usize = 16;

/// How long a clean stop waits for the writer to flush and close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Tuning of the link client. The defaults suit production; tests shorten the waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkOptions {
    /// TCP connect plus TLS handshake.
    pub connect_timeout: Duration,
    /// From sending the hello to receiving the welcome.
    pub hello_timeout: Duration,
    /// First reconnect ceiling (full jitter: the delay is random below it).
    pub backoff_initial: Duration,
    /// Largest reconnect ceiling.
    pub backoff_max: Duration,
    /// Most events in one `Events` frame.
    pub batch_max_events: usize,
    /// About how many bytes of events go into one frame; well under the frame limit.
    pub batch_max_bytes: usize,
    /// Most events sent and not yet acknowledged; the sender waits for acks beyond.
    pub max_unacked: u64,
    /// How often the certificate's remaining lifetime is checked (also at each welcome).
    pub renewal_interval: Duration,
    /// How long a stop lets running requests finish and answer.
    pub shutdown_grace: Duration,
}

impl Default for LinkOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            hello_timeout: Duration::from_secs(10),
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            batch_max_events: 2000,
            batch_max_bytes: 4 * 1024 * 1024,
            max_unacked: 20_000,
            renewal_interval: Duration::from_secs(3600),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// Why a connection ended (for the log; the client just reconnects).
#[derive(Debug, Error)]
enum LinkError {
    #[error(transparent)]
    Dial(#[from] DialError),
    #[error("identity: {0}")]
    Identity(#[from] IdentityError),
    #[error("{0}")]
    Frame(#[from] FrameError),
    #[error("no welcome within {0:?}")]
    HelloTimeout(Duration),
    #[error("refused by the controller: {0}")]
    Refused(String),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("the controller closed the connection")]
    Closed,
    #[error("nothing received for {0:?}")]
    Silent(Duration),
    #[error("agent: {0}")]
    Agent(#[from] AgentError),
    #[error("the connection's writer stopped")]
    WriterGone,
}

/// The running link (see the module doc). Dropping it stops the link too, without
/// waiting; [`Link::stop`] closes it cleanly.
#[derive(Debug)]
pub struct Link {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Link {
    /// Starts keeping a connection to `controller` with `identity` (enrolled).
    pub fn spawn(
        agent: Agent,
        identity: Identity,
        controller: ControllerAddr,
        options: LinkOptions,
    ) -> Link {
        let (stop, stop_rx) = watch::channel(false);
        let client = Client {
            agent,
            identity: Arc::new(Mutex::new(identity)),
            addr: controller,
            options,
            stop: stop_rx,
            requests: JoinSet::new(),
        };
        Link {
            stop,
            task: tokio::spawn(client.run()),
        }
    }

    /// Stops the link: running requests get [`LinkOptions::shutdown_grace`] to answer,
    /// then the connection is closed (TLS close_notify). Call it before
    /// [`Agent::shutdown`].
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.task.await {
            warn!(error = %e, "The link task ended abnormally.");
        }
    }
}

/// Starts the link for an agent configured by `config`, if the agent is enrolled: the
/// address is `config.controller` when set, else the one `enroll` stored. Without an
/// identity the agent keeps running its servers locally; that is logged once.
pub fn start(agent: &Agent, config: &AgentConfig, options: LinkOptions) -> Option<Link> {
    recover_interrupted_install(&config.data_dir);
    let dir = identity_dir(&config.data_dir);
    let Some(identity) = Identity::load(&dir) else {
        info!(
            "This agent is not enrolled with a controller (see `languard-agent enroll`); its servers keep running locally."
        );
        return None;
    };
    let addr = match &config.controller {
        Some(text) => match ControllerAddr::parse(text) {
            Ok(addr) => Some(addr),
            Err(e) => {
                warn!(error = %e, "Configured controller address is unusable.");
                None
            }
        },
        None => ControllerAddr::load(&dir),
    };
    let Some(addr) = addr else {
        warn!(
            "The agent is enrolled but knows no controller address; set `controller` or enroll again. The link stays down."
        );
        return None;
    };
    Some(Link::spawn(agent.clone(), identity, addr, options))
}

/// How a served connection ended without an error.
enum Ended {
    Stopped,
}

struct Client {
    agent: Agent,
    identity: Arc<Mutex<Identity>>,
    addr: ControllerAddr,
    options: LinkOptions,
    stop: watch::Receiver<bool>,
    /// Requests in flight; they outlive a connection (their answer is then lost, and
    /// the controller reports the host offline for them).
    requests: JoinSet<()>,
}

fn lock(identity: &Mutex<Identity>) -> MutexGuard<'_, Identity> {
    // Identity updates replace whole fields, so a poisoned lock still holds a usable one.
    identity.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Resolves once a stop is asked for (or the [`Link`] is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

impl Client {
    async fn run(mut self) {
        let mut backoff = Backoff::new(self.options.backoff_initial, self.options.backoff_max);
        loop {
            let mut up = false;
            match self.connection(&mut backoff, &mut up).await {
                Ok(Ended::Stopped) => break,
                Err(e) if up => {
                    info!(controller = %self.addr, reason = %e, "Link to the controller is down.");
                }
                Err(LinkError::Refused(reason)) => {
                    warn!(controller = %self.addr, reason = %reason, "The controller refused this agent.");
                }
                Err(e @ (LinkError::Dial(_) | LinkError::Closed | LinkError::HelloTimeout(_))) => {
                    info!(controller = %self.addr, error = %e, "Cannot connect to the controller.");
                }
                Err(e) => {
                    warn!(controller = %self.addr, error = %e, "Cannot connect to the controller.");
                }
            }
            let delay = backoff.next_delay();
            debug!(?delay, "Reconnecting after a delay.");
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = stopped(&mut self.stop) => break,
            }
        }
        self.finish_requests().await;
        info!(controller = %self.addr, "Link stopped.");
    }

    /// Lets running requests answer for a while, then cancels the rest.
    async fn finish_requests(&mut self) {
        let requests = &mut self.requests;
        let drain = async { while requests.join_next().await.is_some() {} };
        if tokio::time::timeout(self.options.shutdown_grace, drain)
            .await
            .is_err()
        {
            warn!(
                cancelled = self.requests.len(),
                "Requests still running at stop were cancelled."
            );
            self.requests.shutdown().await;
        }
    }

    /// One connection from dial to its end. `up` turns true at the welcome.
    async fn connection(
        &mut self,
        backoff: &mut Backoff,
        up: &mut bool,
    ) -> Result<Ended, LinkError> {
        let config = Arc::new(client_config(&lock(&self.identity))?);
        let stream = tokio::select! {
            r = self.addr.connect(config, self.options.connect_timeout) => r?,
            () = stopped(&mut self.stop) => return Ok(Ended::Stopped),
        };
        let mut link = languard_shared::wire::frame::FramedLink::new(stream, MAX_FRAME_LEN);
        let hello = self.hello().await?;
        let exchange = async {
            link.send(&hello).await?;
            link.recv::<ControllerMessage>().await
        };
        let reply = tokio::select! {
            r = tokio::time::timeout(self.options.hello_timeout, exchange) => {
                r.map_err(|_| LinkError::HelloTimeout(self.options.hello_timeout))??
            }
            () = stopped(&mut self.stop) => return Ok(Ended::Stopped),
        };
        let (acked_seq, heartbeat_secs) = match reply {
            Some(ControllerMessage::Welcome {
                protocol_version,
                acked_seq,
                heartbeat_secs,
            }) => {
                if !SUPPORTED_VERSIONS.contains(&protocol_version) {
                    return Err(LinkError::Protocol(format!(
                        "welcome with protocol {protocol_version}, this agent speaks {PROTOCOL_VERSION}"
                    )));
                }
                (acked_seq, heartbeat_secs)
            }
            Some(ControllerMessage::Refused { reason }) => return Err(LinkError::Refused(reason)),
            Some(_) => {
                return Err(LinkError::Protocol(
                    "answered the hello with something else than a welcome".into(),
                ));
            }
            None => return Err(LinkError::Closed),
        };
        backoff.reset();
        *up = true;
        info!(controller = %self.addr, acked_seq, heartbeat_secs, "Link to the controller is up.");
        let renumbered = self.agent.continue_after(acked_seq).await?;
        if renumbered > 0 || acked_seq > 0 {
            debug!(acked_seq, renumbered, "Outbox aligned with the controller.");
        }
        if let Err(e) = self.agent.ack(acked_seq).await {
            warn!(error = %e, acked_seq, "Cannot apply the welcome's ack.");
        }
        let heartbeat = Duration::from_secs(u64::from(heartbeat_secs.max(1)));
        let (reader, writer) = link.into_split();
        self.serve(reader, writer, acked_seq, heartbeat).await
    }

    async fn hello(&self) -> Result<AgentMessage, LinkError> {
        let inventory = match self.agent.handle(Request::Inventory).await? {
            Response::Inventory(servers) => servers,
            _ => Vec::new(),
        };
        Ok(AgentMessage::Hello {
            protocol_version: PROTOCOL_VERSION,
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            inventory,
            games: crate::games::kinds(),
            last_acked_seq: self.agent.acked_seq().await?,
        })
    }

    /// Runs a welcomed connection until it fails or a stop is asked for.
    async fn serve<T>(
        &mut self,
        mut reader: FrameReader<tokio::io::ReadHalf<T>>,
        writer: FrameWriter<tokio::io::WriteHalf<T>>,
        acked_seq: u64,
        heartbeat: Duration,
    ) -> Result<Ended, LinkError>
    where
        T: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(OUTGOING_QUEUE);
        let mut writer_task = tokio::spawn(write_loop(writer, rx, heartbeat));
        let (acked_tx, acked_rx) = watch::channel(acked_seq);
        let mut sender_task = tokio::spawn(send_events(
            self.agent.clone(),
            tx.clone(),
            acked_rx,
            acked_seq,
            self.options.clone(),
        ));
        let silence = heartbeat * 3;
        let deadline = tokio::time::sleep(silence);
        tokio::pin!(deadline);
        let mut renewal = tokio::time::interval(self.options.renewal_interval);
        renewal.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stop = self.stop.clone();
        let result = loop {
            tokio::select! {
                msg = reader.recv::<ControllerMessage>() => match msg {
                    Ok(Some(msg)) => {
                        deadline.as_mut().reset(Instant::now() + silence);
                        if let Err(e) = self.on_message(msg, &tx, &acked_tx).await {
                            break Err(e);
                        }
                    }
                    Ok(None) => break Err(LinkError::Closed),
                    Err(e) => break Err(LinkError::Frame(e)),
                },
                () = &mut deadline => break Err(LinkError::Silent(silence)),
                _ = renewal.tick() => self.maybe_renew(&tx),
                _ = &mut writer_task => break Err(LinkError::WriterGone),
                r = &mut sender_task => break Err(match r {
                    Ok(Err(e)) => e,
                    _ => LinkError::WriterGone,
                }),
                Some(_) = self.requests.join_next(), if !self.requests.is_empty() => {}
                () = stopped(&mut stop) => break Ok(Ended::Stopped),
            }
        };
        sender_task.abort();
        if result.is_ok() {
            // A clean stop: answers of running requests still go out, then close_notify
            // (the writer shuts down once every sender is gone).
            self.finish_requests().await;
            drop(tx);
            if tokio::time::timeout(CLOSE_TIMEOUT, &mut writer_task)
                .await
                .is_err()
            {
                writer_task.abort();
            }
        } else {
            writer_task.abort();
        }
        result
    }

    async fn on_message(
        &mut self,
        msg: ControllerMessage,
        tx: &mpsc::Sender<Vec<u8>>,
        acked: &watch::Sender<u64>,
    ) -> Result<(), LinkError> {
        match msg {
            ControllerMessage::Request { id, request } => {
                let agent = self.agent.clone();
                let tx = tx.clone();
                self.requests.spawn(async move {
                    let result = agent.handle(request).await;
                    if let Some(frame) = response_frame(id, result) {
                        // Fails only when the connection is gone: the controller then
                        // answers the request with "host offline" itself.
                        let _ = tx.send(frame).await;
                    }
                });
            }
            ControllerMessage::Ack { upto } => {
                if let Err(e) = self.agent.ack(upto).await {
                    warn!(error = %e, upto, "Cannot apply an ack from the controller.");
                }
                acked.send_if_modified(|a| {
                    let newer = upto > *a;
                    if newer {
                        *a = upto;
                    }
                    newer
                });
            }
            ControllerMessage::Heartbeat { .. } => {}
            ControllerMessage::Renewed {
                cert_pem,
                chain_pem,
            } => self.store_renewed(cert_pem, chain_pem).await,
            ControllerMessage::Refused { reason } => return Err(LinkError::Refused(reason)),
            ControllerMessage::Welcome { .. } | ControllerMessage::Enrolled { .. } => {
                return Err(LinkError::Protocol(
                    "unexpected message after the welcome".into(),
                ));
            }
        }
        Ok(())
    }

    /// Asks for a new certificate (same key) once a third or less of the current one's
    /// lifetime is left. Never waits: if the queue is full, the next check retries.
    fn maybe_renew(&self, tx: &mpsc::Sender<Vec<u8>>) {
        let identity = lock(&self.identity);
        let Some(validity) = identity.cert_pem().and_then(Validity::of_pem) else {
            warn!("Cannot read the agent certificate's validity; not renewing.");
            return;
        };
        if !validity.renewal_due(now_secs()) {
            return;
        }
        let csr_pem = match identity.csr_pem() {
            Ok(csr) => csr,
            Err(e) => {
                warn!(error = %e, "Cannot make a renewal request.");
                return;
            }
        };
        drop(identity);
        let queued = encode(&AgentMessage::RenewRequest { csr_pem })
            .is_some_and(|frame| tx.try_send(frame).is_ok());
        if queued {
            info!(
                not_after = validity.not_after,
                "Asked the controller to renew the agent certificate."
            );
        } else {
            debug!("Renewal request not queued; retrying at the next check.");
        }
    }

    /// Stores a renewed certificate; the next connection presents it. The chain must be
    /// the CA pinned at enrollment: a different CA needs a new enrollment.
    async fn store_renewed(&self, cert_pem: String, chain_pem: String) {
        let identity = Arc::clone(&self.identity);
        let stored = tokio::task::spawn_blocking(move || {
            let mut identity = lock(&identity);
            let pinned = identity.ca_fingerprint().unwrap_or_default();
            if !is_pinned_ca(&chain_pem, &pinned) {
                return Err(IdentityError::Certificate(
                    "the renewed certificate's chain is not the pinned CA".into(),
                ));
            }
            identity.store_certificate(&cert_pem, &chain_pem)?;
            Ok(Validity::of_pem(&cert_pem))
        })
        .await;
        match stored {
            Ok(Ok(validity)) => info!(
                not_after = validity.map(|v| v.not_after),
                "Agent certificate renewed."
            ),
            Ok(Err(e)) => {
                warn!(error = %e, "Renewed certificate refused; keeping the current one.")
            }
            Err(e) => warn!(error = %e, "Storing the renewed certificate failed."),
        }
    }
}

/// The only task writing to the connection. Sends a heartbeat after an interval without
/// other messages; on the end of its queue it closes the connection (close_notify).
async fn write_loop<W: AsyncWrite>(
    mut writer: FrameWriter<tokio::io::WriteHalf<W>>,
    mut rx: mpsc::Receiver<Vec<u8>>,
    heartbeat: Duration,
) -> Result<(), FrameError> {
    loop {
        let payload = match tokio::time::timeout(heartbeat, rx.recv()).await {
            Ok(Some(payload)) => payload,
            Ok(None) => return writer.shutdown().await,
            Err(_) => match encode(&AgentMessage::Heartbeat { at: now_millis() }) {
                Some(payload) => payload,
                None => continue,
            },
        };
        writer.write_frame(&payload).await?;
    }
}

/// Streams the outbox from `cursor` (the controller's acked mark) in frame-sized
/// batches, waiting for new events when none are pending and for acks when
/// [`LinkOptions::max_unacked`] are in flight.
async fn send_events(
    agent: Agent,
    tx: mpsc::Sender<Vec<u8>>,
    mut acked: watch::Receiver<u64>,
    mut cursor: u64,
    options: LinkOptions,
) -> Result<(), LinkError> {
    let mut newest = agent.watch_events();
    let max_unacked = options.max_unacked.max(1);
    loop {
        let acked_now = *acked
            .wait_for(|a| cursor.saturating_sub(*a) < max_unacked)
            .await
            .map_err(|_| LinkError::WriterGone)?;
        let room = max_unacked - cursor.saturating_sub(acked_now);
        let max = usize::try_from(room)
            .unwrap_or(usize::MAX)
            .min(options.batch_max_events.max(1));
        // Marked seen before reading, so an append after the read wakes us.
        newest.borrow_and_update();
        let events = agent
            .events_within(cursor, max, options.batch_max_bytes)
            .await?;
        let Some(last) = events.last().map(|e| e.seq) else {
            newest.changed().await.map_err(|_| LinkError::WriterGone)?;
            continue;
        };
        for frame in event_frames(events) {
            tx.send(frame).await.map_err(|_| LinkError::WriterGone)?;
        }
        cursor = last;
    }
}

/// Encodes a batch as `Events` frames, halving it until each fits a frame. An event
/// that alone exceeds the frame limit can never be delivered: it is logged and skipped
/// (the controller's cumulative ack covers its seq later).
fn event_frames(events: Vec<EventEnvelope>) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    let mut todo = vec![events];
    while let Some(mut batch) = todo.pop() {
        if batch.is_empty() {
            continue;
        }
        let seq = batch[0].seq;
        let msg = AgentMessage::Events { events: batch };
        match serde_json::to_vec(&msg) {
            Ok(frame) if frame.len() <= MAX_FRAME_LEN => frames.push(frame),
            other => {
                let AgentMessage::Events { events } = msg else {
                    continue;
                };
                batch = events;
                if batch.len() == 1 {
                    let size = other.map(|f| f.len()).unwrap_or_default();
                    warn!(
                        seq,
                        size, "An event too large for a link frame was skipped."
                    );
                    continue;
                }
                let second = batch.split_off(batch.len() / 2);
                // Popped last-in first-out: the first half goes out first.
                todo.push(second);
                todo.push(batch);
            }
        }
    }
    frames
}

/// The frame answering request `id`; an answer too large for a frame becomes an error
/// answer, so the request still gets exactly one response.
fn response_frame(id: u64, result: Reply) -> Option<Vec<u8>> {
    if let Some(frame) = encode(&AgentMessage::Response { id, result }) {
        return Some(frame);
    }
    encode(&AgentMessage::Response {
        id,
        result: Err(AgentError::new(
            ErrorCode::Internal,
            "the answer is larger than a link frame",
        )),
    })
}

/// One message as a frame payload, or `None` (logged) when it cannot be sent.
fn encode(msg: &AgentMessage) -> Option<Vec<u8>> {
    match serde_json::to_vec(msg) {
        Ok(frame) if frame.len() <= MAX_FRAME_LEN => Some(frame),
        Ok(frame) => {
            warn!(
                size = frame.len(),
                "A message too large for a link frame was not sent."
            );
            None
        }
        Err(e) => {
            warn!(error = %e, "A message could not be encoded.");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use languard_shared::wire::event::{LogLine, MetricsSample};
    use languard_shared::wire::{Event, ServerId};

    use super::*;

    fn metrics(seq: u64) -> EventEnvelope {
        EventEnvelope {
            seq,
            at: 1,
            event: Event::Metrics {
                server: None,
                sample: MetricsSample::default(),
            },
        }
    }

    #[test]
    fn batches_are_split_to_fit_a_frame_in_order() {
        let line = "x".repeat(1024 * 1024);
        let big = |seq| EventEnvelope {
            seq,
            at: 1,
            event: Event::Log {
                server: ServerId::new("s").unwrap(),
                lines: vec![
                    LogLine {
                        at: 1,
                        level: languard_shared::wire::LogLevel::Info,
                        text: line.clone(),
                    };
                    6
                ],
            },
        };
        // 3 × ~6 MiB does not fit one 16 MiB frame.
        let frames = event_frames(vec![big(1), metrics(2), big(3), big(4)]);
        assert!(frames.len() >= 2, "{}", frames.len());
        let mut seqs = Vec::new();
        for f in &frames {
            assert!(f.len() <= MAX_FRAME_LEN);
            let AgentMessage::Events { events } = serde_json::from_slice(f).unwrap() else {
                panic!("not events");
            };
            seqs.extend(events.iter().map(|e| e.seq));
        }
        assert_eq!(seqs, vec![1, 2, 3, 4]);
        assert!(event_frames(Vec::new()).is_empty());
    }

    #[test]
    fn an_oversized_answer_becomes_an_error_answer() {
        let frame = response_frame(7, Ok(Response::File(vec![255; MAX_FRAME_LEN / 2]))).unwrap();
        let AgentMessage::Response { id, result } = serde_json::from_slice(&frame).unwrap() else {
            panic!("not a response");
        };
        assert_eq!(id, 7);
        assert_eq!(result.unwrap_err().code, ErrorCode::Internal);
    }
}
