//! The messages on the controller ↔ agent link, and the two pieces of controller-side
//! bookkeeping that make the link's promises hold: a [`Deduplicator`] (replayed events
//! are stored once) and a [`Correlator`] (every request gets exactly one answer).
//!
//! A connection goes: the agent dials and sends [`AgentMessage::Hello`]; the controller
//! answers [`ControllerMessage::Welcome`] or [`ControllerMessage::Refused`] (then
//! closes). After the welcome both sides send freely: the controller requests, acks
//! and heartbeats; the agent responds, sends events and heartbeats. Every message is one
//! frame ([`super::frame`]); a frame that does not decode ends the connection.
//!
//! The enums are externally tagged (`{"hello": {...}}`): serde then decodes the payload
//! straight into the variant, whereas an internally tagged enum first buffers the whole
//! message into an intermediate tree — costly for frames carrying file contents.
//! An unknown variant is a decode error: a new message needs a new protocol version.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::UnixMillis;
use super::event::{EventEnvelope, ServerStatus};
use super::request::{AgentError, ErrorCode, Request, Response};

/// The protocol versions this build accepts from a peer.
pub const SUPPORTED_VERSIONS: RangeInclusive<u32> =
    super::PROTOCOL_VERSION..=super::PROTOCOL_VERSION;

/// The heartbeat interval a controller offers unless configured otherwise. A peer that
/// has sent nothing (any message counts) for three intervals is considered gone.
pub const DEFAULT_HEARTBEAT_SECS: u32 = 15;

/// The answer to one request, as it travels back.
pub type Reply = Result<Response, AgentError>;

/// Agent → controller.
///
/// There is no agent id in any message: the agent's identity is the subject of its
/// client certificate, checked by TLS. A second, self-declared identity could only
/// disagree with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentMessage {
    /// First message of every connection.
    Hello {
        /// The protocol version the agent speaks; see [`negotiate`].
        protocol_version: u32,
        /// The agent's build, for the console and for diagnosing mixed fleets.
        agent_version: String,
        /// Every server the agent knows and what its process is doing, so the
        /// controller can reconcile desired and actual state right away.
        inventory: Vec<ServerStatus>,
        /// The games this agent has adapters for; the controller refuses to run a server
        /// of another game there.
        #[serde(default)]
        games: Vec<crate::games::GameKind>,
        /// The highest sequence number the agent believes the controller has
        /// committed (its last received ack). When it is *above* the controller's own
        /// value, events were acked and then lost on the controller (e.g. a database
        /// restored from backup); the controller records that gap instead of
        /// silently carrying on.
        last_acked_seq: u64,
    },
    /// The one answer to [`ControllerMessage::Request`].
    Response {
        /// Echoes the request's id so the controller can match it
        /// ([`Correlator::resolve`]); answers may come in any order.
        id: u64,
        /// The outcome, with a typed error.
        result: Reply,
    },
    /// Events from the outbox in sequence order: new ones, or after a reconnect those
    /// above [`ControllerMessage::Welcome::acked_seq`] again. Replays are expected;
    /// the controller drops what it already has ([`Deduplicator`]).
    Events {
        /// The batch.
        events: Vec<EventEnvelope>,
    },
    /// Liveness; sent when the agent has had nothing else to send for an interval.
    Heartbeat {
        /// The agent's clock, so the controller can notice skew.
        at: UnixMillis,
    },
    /// A certificate signing request for the agent's next certificate, sent before
    /// the current one expires (certificates are short-lived).
    RenewRequest {
        /// PEM-encoded PKCS#10 CSR; its key may be new.
        csr_pem: String,
    },
    /// First and only message of an enrollment connection (one made without a client
    /// certificate, by `languard-agent enroll`). The controller answers
    /// [`ControllerMessage::Enrolled`] or [`ControllerMessage::Refused`] and closes.
    Enroll {
        /// The protocol version the agent speaks.
        protocol_version: u32,
        /// The agent's build.
        agent_version: String,
        /// The one-time join token (a secret: `Debug` hides it).
        token: JoinTokenSecret,
        /// PEM-encoded PKCS#10 CSR over the agent's new key (ECDSA P-256).
        csr_pem: String,
        /// The host's name as the agent sees it, for the console.
        hostname: String,
        /// `linux` or `windows`.
        os: String,
    },
}

/// A join token on the wire. Serialised as the plain string; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JoinTokenSecret(pub String);

impl std::fmt::Debug for JoinTokenSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JoinTokenSecret(***)")
    }
}

/// Controller → agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ControllerMessage {
    /// The agent is accepted.
    Welcome {
        /// The version both sides speak from now on (the result of [`negotiate`]).
        protocol_version: u32,
        /// The controller's highest committed sequence number for this agent. The
        /// agent drops its outbox up to here and replays everything above. If its
        /// own next sequence number is not above this (the agent's state was wiped),
        /// it continues from `acked_seq + 1`, or the controller would discard its new
        /// events as duplicates.
        acked_seq: u64,
        /// Heartbeat interval for both sides.
        heartbeat_secs: u32,
    },
    /// The agent is not accepted (protocol version out of range, agent revoked or
    /// deleted); the controller closes the connection after this. The agent backs
    /// off and does not retry a version mismatch in a tight loop.
    Refused {
        /// Why, for the agent's log.
        reason: String,
    },
    /// Do something; exactly one [`AgentMessage::Response`] with the same id follows.
    Request {
        /// Correlation id, unique per connection ([`Correlator::next_id`]).
        id: u64,
        /// What to do.
        request: Request,
    },
    /// The controller has durably stored every event up to and including `upto`; the
    /// agent may drop them from its outbox. Sent only after the commit, so a crash in
    /// between means a replay, never a loss.
    Ack {
        /// Highest committed sequence number.
        upto: u64,
    },
    /// Liveness; sent when the controller has had nothing else to send for an interval.
    Heartbeat {
        /// The controller's clock.
        at: UnixMillis,
    },
    /// The answer to [`AgentMessage::RenewRequest`].
    Renewed {
        /// The agent's new certificate, PEM.
        cert_pem: String,
        /// The issuing chain up to the controller's CA, PEM.
        chain_pem: String,
    },
    /// The answer to [`AgentMessage::Enroll`]: the agent's identity. The controller
    /// closes the connection after it; the agent reconnects with its new certificate.
    Enrolled {
        /// The agent id the certificate names (a UUID).
        agent_id: String,
        /// The host record the token was made for (a UUID).
        host_id: String,
        /// The agent's certificate, PEM.
        cert_pem: String,
        /// The controller's CA certificate, PEM.
        ca_pem: String,
    },
}

/// Picks the protocol version for a connection: the agent's, when the controller
/// supports it. The error text goes into [`ControllerMessage::Refused`].
pub fn negotiate(
    agent_version: u32,
    controller_supported: RangeInclusive<u32>,
) -> Result<u32, String> {
    if controller_supported.contains(&agent_version) {
        Ok(agent_version)
    } else {
        let (lo, hi) = controller_supported.into_inner();
        let upgrade = if agent_version < lo {
            "upgrade the agent"
        } else {
            "upgrade the controller"
        };
        Err(format!(
            "agent speaks protocol {agent_version}, controller supports {lo} to {hi}: {upgrade}"
        ))
    }
}

/// Controller side: lets each event through once, however often the agent replays it.
///
/// `committed` is the highest sequence number durably stored for the agent (read from
/// the database when the link comes up, so a controller restart or another replica
/// loses nothing). Events handed out by [`Deduplicator::filter`] but not yet committed
/// are "in flight" and also dropped when they arrive again. If storing a batch fails,
/// [`Deduplicator::release`] forgets the in-flight set so the agent's replay (it got
/// no ack) is accepted.
#[derive(Debug, Clone, Default)]
pub struct Deduplicator {
    committed: u64,
    in_flight: BTreeSet<u64>,
    dropped: u64,
}

impl Deduplicator {
    /// Starts from the agent's last committed sequence number.
    pub fn new(committed: u64) -> Self {
        Self {
            committed,
            ..Self::default()
        }
    }

    /// The highest committed sequence number: what to put in [`ControllerMessage::Ack`]
    /// and [`ControllerMessage::Welcome::acked_seq`].
    pub fn committed(&self) -> u64 {
        self.committed
    }

    /// How many events were dropped as duplicates so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The events not seen before, in their original order. Drops sequence numbers up
    /// to the committed one, those already in flight, and repeats within the batch.
    /// An out-of-order event above the committed mark is kept (the agent sends in
    /// order, so this only happens after a replay, and losing an event is worse).
    pub fn filter(&mut self, mut batch: Vec<EventEnvelope>) -> Vec<EventEnvelope> {
        let before = batch.len();
        let committed = self.committed;
        let in_flight = &mut self.in_flight;
        batch.retain(|e| e.seq > committed && in_flight.insert(e.seq));
        self.dropped += (before - batch.len()) as u64;
        batch
    }

    /// Records that everything up to `upto` is stored; returns the committed mark,
    /// which never goes backwards. Call it with the highest sequence number of the
    /// stored batch, after the database commit and before sending the ack.
    pub fn commit(&mut self, upto: u64) -> u64 {
        self.committed = self.committed.max(upto);
        self.in_flight = self
            .in_flight
            .split_off(&(self.committed.saturating_add(1)));
        self.committed
    }

    /// Storing failed: forget what is in flight so a replay gets through.
    pub fn release(&mut self) {
        self.in_flight.clear();
    }
}

/// The error every request still pending gets when the link drops: the host is
/// offline, the request may or may not have been carried out.
pub fn host_offline() -> AgentError {
    AgentError::new(
        ErrorCode::HostOffline,
        "host offline: the link to the agent was lost before it answered",
    )
}

/// Controller side: matches responses to requests on one link.
///
/// Every registered request gets exactly one answer: its response, or the error given
/// to [`Correlator::fail_all`] when the link drops (also for requests registered after
/// that). Responses with unknown or already answered ids are ignored and counted — a
/// misbehaving agent cannot answer a request twice or answer someone else's. Timeouts
/// are the caller's: wrap the receiver in `tokio::time::timeout` and call
/// [`Correlator::cancel`] when it fires. Share it between tasks in an `Arc`.
#[derive(Debug)]
pub struct Correlator {
    next_id: AtomicU64,
    ignored: AtomicU64,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    pending: HashMap<u64, oneshot::Sender<Reply>>,
    closed: Option<AgentError>,
}

impl Default for Correlator {
    fn default() -> Self {
        Self::new()
    }
}

impl Correlator {
    /// An empty correlator; ids start at 1.
    pub fn new() -> Self {
        Self {
            next_id: AtomicU64::new(1),
            ignored: AtomicU64::new(0),
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing below can leave the map half-updated, so a poisoned lock is usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A fresh request id.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Waits for the answer to request `id`. Register before sending the request, so
    /// a fast response cannot arrive first. An id that is already pending is answered
    /// at once with an internal error (the pending one is unaffected); after
    /// [`Correlator::fail_all`] every registration is answered at once with its error.
    pub fn register(&self, id: u64) -> oneshot::Receiver<Reply> {
        let (tx, rx) = oneshot::channel();
        let mut state = self.state();
        if let Some(err) = &state.closed {
            let _ = tx.send(Err(err.clone()));
        } else if let Entry::Vacant(slot) = state.pending.entry(id) {
            slot.insert(tx);
        } else {
            let _ = tx.send(Err(AgentError::new(
                ErrorCode::Internal,
                format!("request id {id} is already pending"),
            )));
        }
        rx
    }

    /// [`Correlator::next_id`] and [`Correlator::register`] in one step.
    pub fn begin(&self) -> (u64, oneshot::Receiver<Reply>) {
        let id = self.next_id();
        (id, self.register(id))
    }

    /// Delivers the agent's answer to request `id`. Returns whether a pending request
    /// took it; an unknown, cancelled or already answered id is ignored and counted.
    pub fn resolve(&self, id: u64, result: Reply) -> bool {
        let sender = self.state().pending.remove(&id);
        match sender {
            Some(tx) => {
                // The caller may have stopped waiting; then nobody needs the answer.
                let _ = tx.send(result);
                true
            }
            None => {
                self.ignored.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(id, "ignoring a response to no pending request");
                false
            }
        }
    }

    /// Stops waiting for request `id` (its timeout fired). A late response is then
    /// ignored. Returns whether it was pending.
    pub fn cancel(&self, id: u64) -> bool {
        self.state().pending.remove(&id).is_some()
    }

    /// The link dropped: answers every pending request with `err`, and every later
    /// registration too. Returns how many were pending. The first error sticks.
    pub fn fail_all(&self, err: AgentError) -> usize {
        let pending = {
            let mut state = self.state();
            if state.closed.is_none() {
                state.closed = Some(err.clone());
            }
            std::mem::take(&mut state.pending)
        };
        let n = pending.len();
        for (_, tx) in pending {
            let _ = tx.send(Err(err.clone()));
        }
        n
    }

    /// Requests waiting for an answer.
    pub fn pending(&self) -> usize {
        self.state().pending.len()
    }

    /// Responses ignored so far (unknown, cancelled or duplicate ids).
    pub fn ignored(&self) -> u64 {
        self.ignored.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::io::duplex;

    use super::super::event::{Event, ServerState};
    use super::super::frame::{FrameError, FramedLink, MAX_FRAME_LEN};
    use super::super::ids::ServerId;
    use super::super::{PROTOCOL_VERSION, now_millis};
    use super::*;

    fn round_trip<T>(value: &T)
    where
        T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let json = serde_json::to_string(value).unwrap();
        let back: T = serde_json::from_str(&json).unwrap();
        assert_eq!(&back, value, "{json}");
    }

    fn sid() -> ServerId {
        ServerId::new("srv-1").unwrap()
    }

    fn status(state: ServerState) -> ServerStatus {
        ServerStatus {
            server: sid(),
            state,
            pid: Some(4242),
            since: 1_700_000_000_000,
            detail: None,
            exit: None,
            restarts: 0,
        }
    }

    fn ev(seq: u64) -> EventEnvelope {
        EventEnvelope {
            seq,
            at: seq as i64,
            event: Event::Status(status(ServerState::Running)),
        }
    }

    fn seqs(events: &[EventEnvelope]) -> Vec<u64> {
        events.iter().map(|e| e.seq).collect()
    }

    #[test]
    fn every_agent_message_round_trips() {
        let messages = vec![
            AgentMessage::Hello {
                protocol_version: PROTOCOL_VERSION,
                agent_version: "0.1.0".into(),
                inventory: vec![status(ServerState::Running), status(ServerState::Crashed)],
                games: vec![crate::games::GameKind::Arma3],
                last_acked_seq: u64::MAX,
            },
            AgentMessage::Response {
                id: 7,
                result: Ok(Response::Text("ok ✓".into())),
            },
            AgentMessage::Response {
                id: 8,
                result: Ok(Response::File(vec![0, 1, 255])),
            },
            AgentMessage::Response {
                id: 9,
                result: Err(AgentError::new(ErrorCode::PortInUse, "2302 taken")),
            },
            AgentMessage::Events {
                events: vec![ev(1), ev(2)],
            },
            AgentMessage::Events { events: vec![] },
            AgentMessage::Heartbeat { at: now_millis() },
            AgentMessage::RenewRequest {
                csr_pem: "-----BEGIN CERTIFICATE REQUEST-----\n…".into(),
            },
            AgentMessage::Enroll {
                protocol_version: PROTOCOL_VERSION,
                agent_version: "0.1.0".into(),
                token: JoinTokenSecret("lgj_secret".into()),
                csr_pem: "csr".into(),
                hostname: "game-01".into(),
                os: "linux".into(),
            },
        ];
        for m in &messages {
            round_trip(m);
        }
    }

    #[test]
    fn an_enroll_message_never_shows_its_token_in_debug() {
        let m = AgentMessage::Enroll {
            protocol_version: PROTOCOL_VERSION,
            agent_version: "0.1.0".into(),
            token: JoinTokenSecret("lgj_topsecret".into()),
            csr_pem: "csr".into(),
            hostname: "h".into(),
            os: "linux".into(),
        };
        let debug = format!("{m:?}");
        assert!(!debug.contains("topsecret"), "{debug}");
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["enroll"]["token"], "lgj_topsecret");
    }

    #[test]
    fn every_controller_message_round_trips() {
        let messages = vec![
            ControllerMessage::Welcome {
                protocol_version: PROTOCOL_VERSION,
                acked_seq: 41,
                heartbeat_secs: DEFAULT_HEARTBEAT_SECS,
            },
            ControllerMessage::Refused {
                reason: "agent revoked".into(),
            },
            ControllerMessage::Request {
                id: u64::MAX,
                request: Request::Start {
                    server: sid(),
                    spec: None,
                },
            },
            ControllerMessage::Request {
                id: 2,
                request: Request::Inventory,
            },
            ControllerMessage::Ack { upto: 99 },
            ControllerMessage::Heartbeat { at: -1 },
            ControllerMessage::Renewed {
                cert_pem: "cert".into(),
                chain_pem: "chain".into(),
            },
            ControllerMessage::Enrolled {
                agent_id: "a".into(),
                host_id: "h".into(),
                cert_pem: "cert".into(),
                ca_pem: "ca".into(),
            },
        ];
        for m in &messages {
            round_trip(m);
        }
    }

    #[test]
    fn the_wire_shape_is_externally_tagged_snake_case() {
        let json = serde_json::to_value(ControllerMessage::Ack { upto: 3 }).unwrap();
        assert_eq!(json, serde_json::json!({"ack": {"upto": 3}}));
        let json = serde_json::to_value(AgentMessage::Response {
            id: 1,
            result: Ok(Response::Done),
        })
        .unwrap();
        assert_eq!(
            json,
            serde_json::json!({"response": {"id": 1, "result": {"Ok": {"kind": "done"}}}})
        );
        assert!(serde_json::from_str::<AgentMessage>(r#"{"launch_missiles":{}}"#).is_err());
    }

    #[test]
    fn negotiation_accepts_the_supported_range_only() {
        assert_eq!(
            negotiate(PROTOCOL_VERSION, SUPPORTED_VERSIONS),
            Ok(PROTOCOL_VERSION)
        );
        assert_eq!(negotiate(3, 2..=4), Ok(3));
        assert_eq!(negotiate(2, 2..=4), Ok(2));
        assert_eq!(negotiate(4, 2..=4), Ok(4));
        assert!(
            negotiate(1, 2..=4)
                .unwrap_err()
                .contains("upgrade the agent")
        );
        assert!(
            negotiate(5, 2..=4)
                .unwrap_err()
                .contains("upgrade the controller")
        );
        #[allow(clippy::reversed_empty_ranges)]
        let empty = 1..=0;
        assert!(
            negotiate(0, empty).is_err(),
            "an empty range accepts nothing"
        );
    }

    #[test]
    fn deduplicator_drops_committed_and_repeated_events_and_keeps_order() {
        let mut d = Deduplicator::new(3);
        // Replay of committed ones, a duplicate within the batch, order kept.
        let kept = d.filter([2, 3, 4, 5, 5, 6].map(ev).to_vec());
        assert_eq!(seqs(&kept), [4, 5, 6]);
        assert_eq!(d.dropped(), 3);
        // Arriving again before the commit (in flight): dropped.
        assert_eq!(seqs(&d.filter([5, 6, 7].map(ev).to_vec())), [7]);
        assert_eq!(d.commit(7), 7);
        // Replay after a reconnect: only the new tail.
        assert_eq!(seqs(&d.filter((1..=9).map(ev).collect())), [8, 9]);
        // Out of order above the mark: kept, in the order received.
        assert_eq!(
            seqs(&d.filter([12, 10, 11, 10].map(ev).to_vec())),
            [12, 10, 11]
        );
        // The mark never goes back, and commit forgets only what it covers.
        assert_eq!(d.commit(11), 11);
        assert_eq!(d.commit(5), 11);
        assert_eq!(seqs(&d.filter([11, 12, 13].map(ev).to_vec())), [13]);
        assert_eq!(d.commit(13), 13);
        assert!(d.in_flight.is_empty());
        // Sequence 0 never exists.
        assert!(Deduplicator::new(0).filter(vec![ev(0)]).is_empty());
    }

    #[test]
    fn a_failed_store_lets_the_replay_through() {
        let mut d = Deduplicator::new(0);
        assert_eq!(seqs(&d.filter([1, 2].map(ev).to_vec())), [1, 2]);
        d.release(); // the database write failed; no ack was sent
        assert_eq!(seqs(&d.filter([1, 2, 3].map(ev).to_vec())), [1, 2, 3]);
        assert_eq!(d.commit(3), 3);
    }

    #[tokio::test]
    async fn correlator_matches_responses_and_ignores_strangers() {
        let c = Correlator::new();
        let (a, rx_a) = c.begin();
        let (b, rx_b) = c.begin();
        assert_ne!(a, b);
        assert!(c.resolve(b, Ok(Response::Text("b".into()))));
        assert!(
            !c.resolve(b, Ok(Response::Text("again".into()))),
            "duplicate"
        );
        assert!(!c.resolve(999, Ok(Response::Done)), "unknown");
        assert!(c.resolve(a, Err(AgentError::new(ErrorCode::NotRunning, "no"))));
        assert_eq!(rx_b.await.unwrap(), Ok(Response::Text("b".into())));
        assert_eq!(rx_a.await.unwrap().unwrap_err().code, ErrorCode::NotRunning);
        assert_eq!(c.ignored(), 2);
        assert_eq!(c.pending(), 0);

        // A registration with a pending id is refused without disturbing the first.
        let first = c.register(5);
        let second = c.register(5);
        assert_eq!(second.await.unwrap().unwrap_err().code, ErrorCode::Internal);
        assert!(c.resolve(5, Ok(Response::Done)));
        assert_eq!(first.await.unwrap(), Ok(Response::Done));

        // A timed-out request is cancelled; its late answer is ignored.
        let (t, rx_t) = c.begin();
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(10), rx_t)
                .await
                .is_err()
        );
        assert!(c.cancel(t));
        assert!(!c.resolve(t, Ok(Response::Done)));
        assert_eq!(c.ignored(), 3);
    }

    #[tokio::test]
    async fn fail_all_answers_everything_pending_and_everything_later() {
        let c = Correlator::new();
        let receivers: Vec<_> = (0..10).map(|_| c.begin().1).collect();
        assert_eq!(c.fail_all(host_offline()), 10);
        for rx in receivers {
            assert_eq!(rx.await.unwrap(), Err(host_offline()));
        }
        let (late, rx) = c.begin();
        assert_eq!(rx.await.unwrap(), Err(host_offline()));
        assert!(!c.resolve(late, Ok(Response::Done)));
        // The first error sticks.
        assert_eq!(c.fail_all(AgentError::new(ErrorCode::Io, "other")), 0);
        assert_eq!(c.begin().1.await.unwrap(), Err(host_offline()));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_request_gets_exactly_one_answer_under_concurrency() {
        const N: u64 = 2000;
        let c = Arc::new(Correlator::new());
        let mut receivers = Vec::new();
        for _ in 0..N {
            receivers.push(c.begin());
        }
        // Four resolvers racing each other (every id answered twice, plus strangers)
        // and a link drop in the middle.
        let mut tasks = Vec::new();
        for t in 0..4u64 {
            let c = Arc::clone(&c);
            tasks.push(tokio::spawn(async move {
                let mut delivered = 0u64;
                let mut calls = 0u64;
                for i in 0..N {
                    let id = if t % 2 == 0 { i + 1 } else { N - i };
                    calls += 1;
                    delivered += u64::from(c.resolve(id, Ok(Response::Text(id.to_string()))));
                    if i % 97 == 0 {
                        calls += 1;
                        delivered += u64::from(c.resolve(N + 1 + i, Ok(Response::Done)));
                        tokio::task::yield_now().await;
                    }
                }
                (delivered, calls)
            }));
        }
        let failer = {
            let c = Arc::clone(&c);
            tokio::spawn(async move {
                tokio::task::yield_now().await;
                c.fail_all(host_offline())
            })
        };
        let (mut delivered, mut calls) = (0, 0);
        for task in tasks {
            let (d, n) = task.await.unwrap();
            delivered += d;
            calls += n;
        }
        let failed = failer.await.unwrap() as u64;

        let (mut answered, mut offline) = (0, 0);
        for (id, rx) in receivers {
            // `Err(RecvError)` here would mean a request was dropped unanswered.
            match rx.await.expect("every request is answered") {
                Ok(Response::Text(t)) => {
                    assert_eq!(t, id.to_string());
                    answered += 1;
                }
                Err(e) => {
                    assert_eq!(e, host_offline());
                    offline += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(answered + offline, N);
        assert_eq!(answered, delivered);
        assert_eq!(offline, failed);
        assert_eq!(c.ignored(), calls - delivered);
        assert_eq!(c.pending(), 0);
    }

    /// The whole exchange over an in-memory stream: hello, welcome, a request and its
    /// response, a replayed event batch and its ack.
    #[tokio::test]
    async fn a_session_over_a_framed_link() {
        let (agent_io, controller_io) = duplex(4096);
        let agent = tokio::spawn(async move {
            let mut link = FramedLink::new(agent_io, MAX_FRAME_LEN);
            link.send(&AgentMessage::Hello {
                protocol_version: PROTOCOL_VERSION,
                agent_version: "test".into(),
                inventory: vec![status(ServerState::Stopped)],
                games: Vec::new(),
                last_acked_seq: 2,
            })
            .await
            .unwrap();
            let Some(ControllerMessage::Welcome { acked_seq, .. }) = link.recv().await.unwrap()
            else {
                panic!("expected welcome");
            };
            // Replay the outbox from the controller's mark, with an overlap.
            let outbox: Vec<_> = (1..=5).map(ev).filter(|e| e.seq + 1 > acked_seq).collect();
            link.send(&AgentMessage::Events { events: outbox })
                .await
                .unwrap();
            let Some(ControllerMessage::Request { id, request }) = link.recv().await.unwrap()
            else {
                panic!("expected request");
            };
            assert_eq!(
                request,
                Request::Start {
                    server: sid(),
                    spec: None,
                }
            );
            link.send(&AgentMessage::Response {
                id,
                result: Ok(Response::Status(status(ServerState::Starting))),
            })
            .await
            .unwrap();
            let Some(ControllerMessage::Ack { upto }) = link.recv().await.unwrap() else {
                panic!("expected ack");
            };
            upto
        });

        let mut link = FramedLink::new(controller_io, MAX_FRAME_LEN);
        let Some(AgentMessage::Hello {
            protocol_version, ..
        }) = link.recv().await.unwrap()
        else {
            panic!("expected hello");
        };
        let version = negotiate(protocol_version, SUPPORTED_VERSIONS).unwrap();
        let mut dedup = Deduplicator::new(3); // from the database
        link.send(&ControllerMessage::Welcome {
            protocol_version: version,
            acked_seq: dedup.committed(),
            heartbeat_secs: DEFAULT_HEARTBEAT_SECS,
        })
        .await
        .unwrap();
        let correlator = Correlator::new();
        let (req_id, answer) = correlator.begin();
        link.send(&ControllerMessage::Request {
            id: req_id,
            request: Request::Start {
                server: sid(),
                spec: None,
            },
        })
        .await
        .unwrap();
        let (mut r, mut w) = link.into_split();
        let mut stored = Vec::new();
        for _ in 0..2 {
            match r.recv::<AgentMessage>().await.unwrap().unwrap() {
                AgentMessage::Events { events } => {
                    let fresh = dedup.filter(events);
                    stored.extend(seqs(&fresh));
                    if let Some(top) = fresh.iter().map(|e| e.seq).max() {
                        dedup.commit(top);
                    }
                }
                AgentMessage::Response { id, result } => {
                    assert!(correlator.resolve(id, result));
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(stored, [4, 5]);
        assert!(matches!(answer.await.unwrap(), Ok(Response::Status(_))));
        w.send(&ControllerMessage::Ack {
            upto: dedup.committed(),
        })
        .await
        .unwrap();
        assert_eq!(agent.await.unwrap(), 5);
        // The agent hung up: a clean end, and anything still pending is failed.
        assert!(r.recv::<AgentMessage>().await.unwrap().is_none());
        assert_eq!(correlator.fail_all(host_offline()), 0);
    }

    #[tokio::test]
    async fn a_message_of_the_wrong_direction_is_a_decode_error() {
        let (a, b) = duplex(1024);
        let mut a = FramedLink::new(a, MAX_FRAME_LEN);
        let mut b = FramedLink::new(b, MAX_FRAME_LEN);
        a.send(&ControllerMessage::Ack { upto: 1 }).await.unwrap();
        assert!(matches!(
            b.recv::<AgentMessage>().await,
            Err(FrameError::Decode(_))
        ));
    }
}
