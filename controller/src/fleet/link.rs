//! The agent link server (DESIGN.md, "Controller <-> agent link").
//!
//! One TLS 1.3 listener. A connection with a client certificate (chained to our CA,
//! naming an unrevoked agent — checked during the handshake) is an agent session:
//! Hello → Welcome, then requests, events, acks and heartbeats until either side goes
//! away. A connection without one may only enroll: one `Enroll`, one answer, closed.
//! The certificate must also be the host's current one by serial (or the one a renewal
//! just replaced, until the new one is first used): renewal and revocation retire
//! certificates, not just agent ids. Everything the agent says is brought within
//! [`super::limits`] before it is stored or shown.
//!
//! Events are committed before they are acknowledged: a per-connection ingest task
//! stores each batch in one transaction that also raises the host's `acked_seq`, then
//! sends the ack and publishes to consoles. On reconnect the session starts from the
//! stored mark, after any ingest of the previous connection of that host has finished
//! (the per-host ingest lock), so a replay is stored exactly once.
//!
//! The link knows no service: it gets its few dependencies ([`LinkDeps`]) and calls back
//! into the service through [`LinkHooks`] (reconcile on connect).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use languard_shared::games::GameKind;
use languard_shared::wire::event::{EventEnvelope, ServerStatus};
use languard_shared::wire::frame::{FrameReader, FramedLink, MAX_FRAME_LEN};
use languard_shared::wire::link::{
    AgentMessage, ControllerMessage, Correlator, Deduplicator, SUPPORTED_VERSIONS, host_offline,
    negotiate,
};
use languard_shared::wire::now_millis;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, ReadHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use uuid::Uuid;

use super::ca::{Ca, RevocationCheck, agent_id_from_cert, cert_serial, server_config};
use super::enroll;
use super::ingest::{self, Rejected};
use super::limits::{self, TimeWindow};
use super::registry::{LinkHandle, Registry};
use crate::config::Link as LinkConfig;
use crate::live::{Channel, LiveHub};
use crate::store::{ActorKind, NewAuditEvent, Store};
use crate::telemetry::Metrics;

/// How long a TLS handshake plus the first message may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest frame of an enrollment connection (a CSR and a token).
const ENROLL_FRAME_MAX: usize = 64 * 1024;
/// Events coalesced into one database transaction at most.
const INGEST_MAX_EVENTS: usize = 20_000;
/// Foreign-server refusals audited one by one per connection; beyond, only counted.
const AUDITED_REFUSALS: usize = 20;

/// Per-host locks serialising ingest across connections of the same host.
#[derive(Default)]
pub struct IngestLocks(Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>>);

impl IngestLocks {
    fn get(&self, host: Uuid) -> Arc<tokio::sync::Mutex<()>> {
        match self.0.lock() {
            Ok(mut m) => m.entry(host).or_default().clone(),
            Err(_) => Arc::new(tokio::sync::Mutex::new(())),
        }
    }
}

/// What the link needs from the rest of the controller.
pub struct LinkDeps {
    /// Storage (hosts, ingest, audit).
    pub store: Arc<dyn Store>,
    /// The internal CA (listener certificate, enrollment, renewals).
    pub ca: Arc<Ca>,
    /// Connected agents and request routing.
    pub registry: Arc<Registry>,
    /// Live events for consoles.
    pub live: LiveHub,
    /// Ingest figures.
    pub metrics: Arc<Metrics>,
    /// The `[link]` settings.
    pub config: LinkConfig,
    /// Per-host ingest serialisation across reconnects.
    pub ingest_locks: IngestLocks,
}

/// What the service does when the link changes.
#[async_trait::async_trait]
pub trait LinkHooks: Send + Sync + 'static {
    /// An agent connected with this inventory: bring it in line with the desired state.
    /// Runs in its own task, aborted when the connection ends.
    async fn agent_connected(&self, host_id: Uuid, inventory: Vec<ServerStatus>);
}

type Deps = Arc<LinkDeps>;

/// Binds the link listener (when configured) and serves it in the background. Returns
/// the bound address.
pub async fn spawn(
    deps: LinkDeps,
    hooks: Arc<dyn LinkHooks>,
) -> anyhow::Result<Option<(SocketAddr, JoinHandle<()>)>> {
    let Some(addr) = deps.config.listen else {
        tracing::info!("Agent link disabled (link.listen = off).");
        return Ok(None);
    };
    let app = Arc::new(deps);
    let names: Vec<&str> = app.config.names.iter().map(String::as_str).collect();
    let cert = app.ca.server_cert(&names)?;
    let registry = app.registry.clone();
    let revoked: RevocationCheck = Arc::new(move |id| registry.is_revoked(id));
    let tls = server_config(&app.ca, &cert, revoked)?;
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tracing::info!(listen = %bound, names = ?app.config.names, "Agent link listening.");
    let task = tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((tcp, peer)) => {
                    let _ = tcp.set_nodelay(true);
                    let app = app.clone();
                    let hooks = hooks.clone();
                    let acceptor = acceptor.clone();
                    tokio::spawn(async move { connection(app, hooks, acceptor, tcp, peer).await });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Link accept failed.");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok(Some((bound, task)))
}

async fn connection(
    app: Deps,
    hooks: Arc<dyn LinkHooks>,
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
) {
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::info!(%peer, error = %e, "Link handshake refused.");
            return;
        }
        Err(_) => {
            tracing::info!(%peer, "Link handshake timed out.");
            return;
        }
    };
    let leaf = tls.get_ref().1.peer_certificates().and_then(|c| c.first());
    let identity = leaf.and_then(|c| Some((agent_id_from_cert(c)?, cert_serial(c)?)));
    match identity {
        None => enroll::serve(&app, FramedLink::new(tls, ENROLL_FRAME_MAX), peer).await,
        Some(cert) => session(app, hooks, FramedLink::new(tls, MAX_FRAME_LEN), cert, peer).await,
    }
}

async fn refuse<T: AsyncRead + AsyncWrite + Unpin>(link: &mut FramedLink<T>, reason: &str) {
    let _ = link
        .send(&ControllerMessage::Refused {
            reason: reason.to_owned(),
        })
        .await;
}

async fn audit_agent(
    store: &dyn Store,
    action: &str,
    target: (&str, String),
    peer: SocketAddr,
    details: serde_json::Value,
) {
    let ev = NewAuditEvent {
        ts: None,
        actor_user_id: None,
        actor_kind: ActorKind::Agent,
        action: action.to_owned(),
        target_kind: Some(target.0.to_owned()),
        target_id: Some(target.1),
        ip: Some(peer.ip().to_string()),
        details,
    };
    if let Err(e) = store.insert_audit(ev).await {
        tracing::error!(error = %e, action, "Audit event could not be stored.");
    }
}

/// Refuses a connecting agent and records why in the audit trail (the agent sees only
/// `message`; the audit keeps the details).
async fn refuse_audited<T: AsyncRead + AsyncWrite + Unpin>(
    link: &mut FramedLink<T>,
    app: &Deps,
    (agent_id, peer): (Uuid, SocketAddr),
    message: &str,
    details: serde_json::Value,
) {
    refuse(link, message).await;
    audit_agent(
        &*app.store,
        "agent.refused",
        ("agent", agent_id.to_string()),
        peer,
        details,
    )
    .await;
}

/// The store could not say whether the agent may connect: refuse, the agent retries.
async fn refuse_unavailable<T: AsyncRead + AsyncWrite + Unpin>(
    link: &mut FramedLink<T>,
    e: &impl std::fmt::Display,
) {
    tracing::warn!(error = %e, "Link refused: store unavailable.");
    refuse(link, "controller storage unavailable; retry later").await;
}

/// A verified client certificate: the agent it names and its serial.
type PeerCert = (Uuid, String);

async fn session<T>(
    app: Deps,
    hooks: Arc<dyn LinkHooks>,
    mut link: FramedLink<T>,
    (agent_id, serial): PeerCert,
    peer: SocketAddr,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let host = match app.store.get_host_by_agent_id(&agent_id.to_string()).await {
        Ok(Some(h)) if h.revoked_at.is_none() => h,
        Ok(_) => {
            tracing::warn!(%peer, %agent_id, "Link refused: agent unknown, re-enrolled or revoked.");
            refuse_audited(
                &mut link,
                &app,
                (agent_id, peer),
                "agent unknown or revoked: enroll again",
                json!({"reason": "unknown or revoked"}),
            )
            .await;
            return;
        }
        Err(e) => {
            refuse_unavailable(&mut link, &e).await;
            return;
        }
    };
    // Revocation and renewal name certificates, not only agents: a certificate a renewal
    // replaced (once its successor is in use) or one of a revoked host opens nothing.
    match app.store.use_host_cert(host.id, &serial).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(%peer, %agent_id, %serial, "Link refused: certificate superseded or revoked.");
            refuse_audited(
                &mut link,
                &app,
                (agent_id, peer),
                "certificate superseded or revoked: use the current one or enroll again",
                json!({"reason": "certificate not current", "cert_serial": serial}),
            )
            .await;
            return;
        }
        Err(e) => {
            refuse_unavailable(&mut link, &e).await;
            return;
        }
    }
    let hello = match tokio::time::timeout(HANDSHAKE_TIMEOUT, link.recv::<AgentMessage>()).await {
        Ok(Ok(Some(m))) => m,
        Ok(Ok(None)) => return,
        Ok(Err(e)) => {
            tracing::warn!(%peer, host = %host.id, error = %e, "Link closed: bad first frame.");
            return;
        }
        Err(_) => {
            tracing::info!(%peer, host = %host.id, "Link closed: no hello in time.");
            return;
        }
    };
    let AgentMessage::Hello {
        protocol_version,
        agent_version,
        inventory,
        last_acked_seq,
        games,
    } = hello
    else {
        refuse(&mut link, "expected hello").await;
        return;
    };
    // The hello is agent text like any event: its build string is shown and stored, its
    // inventory drives reconciliation.
    let agent_version = limits::label(&agent_version, limits::MAX_AGENT_VERSION);
    let window = TimeWindow::around(now_millis());
    let inventory: Vec<ServerStatus> = inventory
        .into_iter()
        .take(limits::MAX_EVENTS_PER_BATCH)
        .map(|s| limits::status(s, &window))
        .collect();
    // Each game once, in the registry's order, however long the list the agent sent.
    let games: Vec<GameKind> = GameKind::ALL
        .into_iter()
        .filter(|g| games.contains(g))
        .collect();
    let version = match negotiate(protocol_version, SUPPORTED_VERSIONS) {
        Ok(v) => v,
        Err(reason) => {
            refuse(&mut link, &reason).await;
            return;
        }
    };
    let host_id = host.id;
    let heartbeat = Duration::from_secs(u64::from(app.config.heartbeat_secs));
    let (close_tx, mut close_rx) = watch::channel(false);
    let (tx, rx) = mpsc::channel::<ControllerMessage>(1024);
    let correlator = Arc::new(Correlator::new());
    let conn_id = app.registry.next_conn_id();
    let handle = Arc::new(LinkHandle {
        host_id,
        agent_id,
        conn_id,
        games: games.clone(),
        tx: tx.clone(),
        correlator: correlator.clone(),
        close: close_tx,
    });
    // Replaces (and closes) an older connection of this host; then waits for its ingest
    // to finish before reading the committed mark.
    app.registry.attach(handle.clone());
    let ingest_lock = app.ingest_locks.get(host_id);
    let acked = {
        let _g = ingest_lock.lock().await;
        match app.store.get_host(host_id).await {
            Ok(Some(h)) => h.acked_seq,
            _ => {
                refuse(&mut link, "controller storage unavailable; retry later").await;
                app.registry.detach(host_id, conn_id);
                return;
            }
        }
    };
    let acked_u = u64::try_from(acked).unwrap_or(0);
    if last_acked_seq > acked_u {
        tracing::warn!(host = %host_id, agent_acked = last_acked_seq, controller_acked = acked_u,
            "The agent holds acks the controller has no record of (database restored?); events between are lost.");
    }
    let (reader, mut writer) = link.into_split();
    if writer
        .send(&ControllerMessage::Welcome {
            protocol_version: version,
            acked_seq: acked_u,
            heartbeat_secs: app.config.heartbeat_secs,
        })
        .await
        .is_err()
    {
        app.registry.detach(host_id, conn_id);
        return;
    }
    if let Err(e) = app
        .store
        .set_host_link(
            host_id,
            crate::store::HostStatus::Online,
            Some(&agent_version),
            crate::store::now(),
        )
        .await
    {
        tracing::warn!(host = %host_id, error = %e, "Host status not stored.");
    }
    app.live.publish(
        Channel::Status,
        None,
        Some(host_id),
        &json!({"host": host_id, "online": true, "agent_version": agent_version}),
    );
    tracing::info!(%peer, host = %host_id, %agent_id, agent_version, protocol = version, acked = acked_u, ?games, "Agent connected.");

    let writer_task = tokio::spawn(write_loop(writer, rx, heartbeat));
    // Bounded in batches (each ≤ 4 MiB from our agent): a slow database pushes back on
    // the TCP stream instead of growing memory.
    let (ingest_tx, ingest_rx) = mpsc::channel::<Vec<EventEnvelope>>(8);
    let ingest_task = tokio::spawn(ingest_loop(
        IngestCtx {
            app: app.clone(),
            host_id,
            agent_id,
            peer,
            tx: tx.clone(),
            lock: ingest_lock,
            closed: handle.close.subscribe(),
            dedup: Deduplicator::new(acked_u),
        },
        ingest_rx,
    ));
    let reconcile = tokio::spawn(async move { hooks.agent_connected(host_id, inventory).await });

    let reason = read_loop(
        &app,
        reader,
        &mut close_rx,
        heartbeat,
        &correlator,
        &tx,
        &ingest_tx,
        (host_id, agent_id, &serial),
    )
    .await;
    tracing::info!(%peer, host = %host_id, reason, "Agent disconnected.");
    drop(ingest_tx);
    reconcile.abort();
    writer_task.abort();
    correlator.fail_all(host_offline());
    // Let the ingest task finish what it already holds (it stops on `closed`).
    let _ = handle.close.send(true);
    let _ = ingest_task.await;
    if app.registry.detach(host_id, conn_id) {
        if let Err(e) = app
            .store
            .set_host_link(
                host_id,
                crate::store::HostStatus::Offline,
                None,
                crate::store::now(),
            )
            .await
        {
            tracing::warn!(host = %host_id, error = %e, "Host status not stored.");
        }
        app.live.publish(
            Channel::Status,
            None,
            Some(host_id),
            &json!({"host": host_id, "online": false}),
        );
    }
}

#[allow(clippy::too_many_arguments)]
async fn read_loop<R: AsyncRead + Unpin>(
    app: &Deps,
    mut reader: FrameReader<ReadHalf<R>>,
    close: &mut watch::Receiver<bool>,
    heartbeat: Duration,
    correlator: &Correlator,
    tx: &mpsc::Sender<ControllerMessage>,
    ingest: &mpsc::Sender<Vec<EventEnvelope>>,
    (host_id, agent_id, serial): (Uuid, Uuid, &str),
) -> &'static str {
    let silence = heartbeat * 3;
    loop {
        let msg = tokio::select! {
            _ = close.changed() => return "closed by the controller",
            r = tokio::time::timeout(silence, reader.recv::<AgentMessage>()) => r,
        };
        let msg = match msg {
            Err(_) => return "silent for three heartbeat intervals",
            Ok(Ok(None)) => return "closed by the agent",
            Ok(Err(languard_shared::wire::frame::FrameError::Io(e))) => {
                tracing::debug!(%agent_id, error = %e, "Link I/O error.");
                return "connection lost";
            }
            Ok(Err(e)) => {
                tracing::warn!(%agent_id, error = %e, "Bad frame from agent; closing its link.");
                return "bad frame";
            }
            Ok(Ok(Some(m))) => m,
        };
        match msg {
            AgentMessage::Response { id, result } => {
                correlator.resolve(id, result);
            }
            AgentMessage::Events { mut events } => {
                // One transaction stays bounded whatever one message holds.
                while !events.is_empty() {
                    let rest = events.split_off(events.len().min(limits::MAX_EVENTS_PER_BATCH));
                    if ingest.send(events).await.is_err() {
                        return "ingest stopped";
                    }
                    events = rest;
                }
            }
            AgentMessage::Heartbeat { .. } => {}
            AgentMessage::RenewRequest { csr_pem } => {
                let validity =
                    Duration::from_secs(u64::from(app.config.cert_validity_days) * 86_400);
                let cert = match app.ca.sign_agent_csr(&csr_pem, agent_id, validity) {
                    Ok(cert) => cert,
                    Err(e) => {
                        tracing::warn!(%agent_id, error = %e, "Renewal CSR refused.");
                        continue;
                    }
                };
                // Recorded before the agent sees it: the new certificate must be accepted
                // at its first use, and from then on the one in use now must not.
                match app
                    .store
                    .renew_host_cert(host_id, serial, &cert.serial)
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => return "certificate superseded or revoked",
                    Err(e) => {
                        tracing::warn!(%agent_id, error = %e, "Renewal not stored; the agent asks again later.");
                        continue;
                    }
                }
                tracing::info!(%agent_id, not_after = %cert.not_after, serial = %cert.serial, "Agent certificate renewed.");
                let _ = tx
                    .send(ControllerMessage::Renewed {
                        cert_pem: cert.cert_pem,
                        chain_pem: app.ca.cert_pem().to_owned(),
                    })
                    .await;
            }
            AgentMessage::Hello { .. } | AgentMessage::Enroll { .. } => {
                return "protocol error: unexpected hello/enroll";
            }
        }
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: languard_shared::wire::frame::FrameWriter<W>,
    mut rx: mpsc::Receiver<ControllerMessage>,
    heartbeat: Duration,
) {
    loop {
        let msg = match tokio::time::timeout(heartbeat, rx.recv()).await {
            Ok(Some(m)) => m,
            Ok(None) => return,
            Err(_) => ControllerMessage::Heartbeat { at: now_millis() },
        };
        if let Err(e) = writer.send(&msg).await {
            tracing::debug!(error = %e, "Link write failed.");
            return;
        }
    }
}

struct IngestCtx {
    app: Deps,
    host_id: Uuid,
    agent_id: Uuid,
    peer: SocketAddr,
    tx: mpsc::Sender<ControllerMessage>,
    lock: Arc<tokio::sync::Mutex<()>>,
    closed: watch::Receiver<bool>,
    dedup: Deduplicator,
}

async fn ingest_loop(mut cx: IngestCtx, mut rx: mpsc::Receiver<Vec<EventEnvelope>>) {
    let mut owned = owned_servers(&*cx.app.store, cx.host_id).await;
    // Unknown server ids and when the store was last asked about them.
    let mut checked: HashMap<String, Instant> = HashMap::new();
    let mut refusals = 0usize;
    while let Some(first) = rx.recv().await {
        let mut events = first;
        while events.len() < INGEST_MAX_EVENTS {
            match rx.try_recv() {
                Ok(more) => events.extend(more),
                Err(_) => break,
            }
        }
        let events = cx.dedup.filter(events);
        let max_seen = events.iter().map(|e| e.seq).max();
        let Some(max_seen) = max_seen else {
            // Only duplicates: re-ack what is committed so the agent can trim.
            let _ = cx
                .tx
                .send(ControllerMessage::Ack {
                    upto: cx.dedup.committed(),
                })
                .await;
            continue;
        };
        // A server created after the connect is not in the set yet: look again at once
        // for an id not asked about in the last second (so an agent repeating a foreign
        // id cannot make us hammer the database).
        let unknown = unknown_servers(&events, &owned);
        let now = Instant::now();
        if unknown.iter().any(|id| {
            checked
                .get(id)
                .is_none_or(|t| now.duration_since(*t) > Duration::from_secs(1))
        }) {
            owned = owned_servers(&*cx.app.store, cx.host_id).await;
            if checked.len() > 10_000 {
                checked.clear();
            }
            for id in unknown {
                checked.insert(id, now);
            }
        }
        let n_events = events.len();
        let converted = ingest::convert(cx.host_id, &owned, events, cx.app.live.consoles() > 0);
        let n_lines = converted.batch.logs.len();
        if converted.dropped.lines > 0 {
            tracing::warn!(host = %cx.host_id, agent = %cx.agent_id, lines = converted.dropped.lines,
                max = limits::MAX_LINES_PER_EVENT, "Agent sent log events with too many lines; the excess was dropped.");
        }
        let _g = cx.lock.lock().await;
        if *cx.closed.borrow() {
            // A newer connection took over; it replays from the committed mark.
            return;
        }
        let started = Instant::now();
        match cx.app.store.ingest(converted.batch).await {
            Ok(acked) => {
                let upto = cx
                    .dedup
                    .commit(max_seen.max(u64::try_from(acked).unwrap_or(0)));
                drop(_g);
                let _ = cx.tx.send(ControllerMessage::Ack { upto }).await;
                for (channel, server, data) in &converted.live {
                    cx.app
                        .live
                        .publish(*channel, *server, Some(cx.host_id), data);
                }
                cx.app
                    .metrics
                    .ingested(n_events, n_lines, started.elapsed());
                for r in converted.rejected {
                    refusals += 1;
                    if refusals <= AUDITED_REFUSALS {
                        refuse_foreign(&cx, &r).await;
                    }
                }
            }
            Err(e) => {
                drop(_g);
                cx.dedup.release();
                tracing::warn!(host = %cx.host_id, error = %e, "Storing agent events failed; closing the link so the agent replays them.");
                cx.app.registry.disconnect(cx.host_id);
                return;
            }
        }
    }
}

/// Server ids named by `events` that are not in `owned`.
fn unknown_servers(events: &[EventEnvelope], owned: &HashSet<Uuid>) -> HashSet<String> {
    use languard_shared::wire::event::Event;
    events
        .iter()
        .filter_map(|e| match &e.event {
            Event::Status(s) => Some(&s.server),
            Event::Log { server, .. } | Event::Player { server, .. } => Some(server),
            Event::Metrics { server, .. } => server.as_ref(),
            Event::Gap { .. } => None,
        })
        .filter(|s| Uuid::parse_str(s.as_str()).map_or(true, |id| !owned.contains(&id)))
        .map(|s| s.as_str().to_owned())
        .collect()
}

async fn owned_servers(store: &dyn Store, host_id: Uuid) -> HashSet<Uuid> {
    match store.list_servers_on_host(host_id).await {
        Ok(list) => list.into_iter().map(|s| s.id).collect(),
        Err(e) => {
            tracing::warn!(host = %host_id, error = %e, "Cannot list the host's servers.");
            HashSet::new()
        }
    }
}

async fn refuse_foreign(cx: &IngestCtx, r: &Rejected) {
    tracing::warn!(host = %cx.host_id, agent = %cx.agent_id, server = %r.server, seq = r.seq, kind = r.kind,
        "Agent reported for a server that is not its own; event rejected.");
    audit_agent(
        &*cx.app.store,
        "agent.foreign_server",
        ("server", r.server.clone()),
        cx.peer,
        json!({"host_id": cx.host_id, "agent_id": cx.agent_id, "seq": r.seq, "event": r.kind}),
    )
    .await;
}
