//! Turns a batch of agent events into rows ([`IngestBatch`]) and live messages, and
//! enforces that an agent only speaks for its own servers (DESIGN.md, "Controller <->
//! agent link"). Pure: the link task stores the batch, then publishes.

use std::collections::HashSet;

use languard_shared::arma::rpt::Level;
use languard_shared::wire::event::{Event, EventEnvelope, PlayerEvent, ServerState};
use languard_shared::wire::ids::ServerId;
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::live::Channel;
use crate::store::{
    IngestBatch, LogLevel, NewLogLine, NewMetricSample, NewServerEvent, ServerStatusRow,
    SessionChange,
};

/// An event that named a server the agent does not own.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    /// Its sequence number.
    pub seq: u64,
    /// The server id it named (as sent; may not even be a UUID).
    pub server: String,
    /// The event type.
    pub kind: &'static str,
}

/// What one batch becomes.
#[derive(Debug, Default)]
pub struct Converted {
    /// Rows to store (with `upto` set).
    pub batch: IngestBatch,
    /// Published after the commit.
    pub live: Vec<(Channel, Option<Uuid>, Value)>,
    /// Events refused for naming a foreign server (still acknowledged: replaying them
    /// cannot make them acceptable).
    pub rejected: Vec<Rejected>,
}

fn ts(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn level(l: Level) -> LogLevel {
    match l {
        Level::Info => LogLevel::Info,
        Level::Warning => LogLevel::Warn,
        Level::Error => LogLevel::Error,
    }
}

fn event_kind(e: &Event) -> &'static str {
    match e {
        Event::Status(_) => "status",
        Event::Log { .. } => "log",
        Event::Metrics { .. } => "metrics",
        Event::Player { .. } => "player",
        Event::Gap { .. } => "gap",
    }
}

fn state_str(s: ServerState) -> &'static str {
    match s {
        ServerState::Stopped => "stopped",
        ServerState::Starting => "starting",
        ServerState::Running => "running",
        ServerState::Stopping => "stopping",
        ServerState::Crashed => "crashed",
        ServerState::Hung => "hung",
        ServerState::Error => "error",
    }
}

/// Converts `events` (already deduplicated) from `host_id`, whose servers are `owned`.
pub fn convert(host_id: Uuid, owned: &HashSet<Uuid>, events: Vec<EventEnvelope>) -> Converted {
    let mut out = Converted::default();
    out.batch.host_id = host_id;
    let now = crate::store::now();
    for env in events {
        let seq = i64::try_from(env.seq).unwrap_or(i64::MAX);
        out.batch.upto = out.batch.upto.max(seq);
        let at = ts(env.at);
        let kind = event_kind(&env.event);
        // Resolves a server id of the event to one of ours, or records the refusal.
        let own = |server: &ServerId, out: &mut Converted| -> Option<Uuid> {
            match Uuid::parse_str(server.as_str()) {
                Ok(id) if owned.contains(&id) => Some(id),
                _ => {
                    out.rejected.push(Rejected {
                        seq: env.seq,
                        server: server.as_str().to_owned(),
                        kind,
                    });
                    None
                }
            }
        };
        match env.event {
            Event::Status(st) => {
                let Some(sid) = own(&st.server, &mut out) else {
                    continue;
                };
                let state = state_str(st.state);
                out.batch.statuses.push(ServerStatusRow {
                    server_id: sid,
                    state: state.to_owned(),
                    pid: st.pid.map(i64::from),
                    since: ts(st.since),
                    detail: st.detail.clone(),
                    exit_code: st.exit.and_then(|e| e.code).map(i64::from),
                    exit_signal: st.exit.and_then(|e| e.signal).map(i64::from),
                    restarts: i64::from(st.restarts),
                    updated_at: now,
                });
                if matches!(
                    st.state,
                    ServerState::Stopped | ServerState::Crashed | ServerState::Error
                ) {
                    out.batch
                        .sessions
                        .push(SessionChange::CloseAll { server_id: sid, at });
                }
                let data = json!({
                    "state": state,
                    "pid": st.pid,
                    "since": st.since,
                    "detail": st.detail,
                    "exit": st.exit.map(|e| json!({"code": e.code, "signal": e.signal})),
                    "restarts": st.restarts,
                });
                out.batch.events.push(NewServerEvent {
                    server_id: Some(sid),
                    host_id,
                    seq,
                    ts: at,
                    kind: "status".into(),
                    data: data.clone(),
                });
                out.live.push((Channel::Status, Some(sid), data.clone()));
                out.live.push((
                    Channel::Events,
                    Some(sid),
                    json!({"kind": "status", "data": data}),
                ));
            }
            Event::Log { server, lines } => {
                let Some(sid) = own(&server, &mut out) else {
                    continue;
                };
                let mut live = Vec::with_capacity(lines.len());
                for l in lines {
                    let lv = level(l.level);
                    live.push(json!({"at": l.at, "level": lv, "text": l.text}));
                    out.batch.logs.push(NewLogLine {
                        server_id: sid,
                        seq,
                        ts: ts(l.at),
                        level: lv,
                        text: l.text,
                    });
                }
                out.live.push((Channel::Log, Some(sid), Value::Array(live)));
            }
            Event::Metrics { server, sample } => {
                let sid = match &server {
                    Some(s) => match own(s, &mut out) {
                        Some(id) => Some(id),
                        None => continue,
                    },
                    None => None,
                };
                out.batch.metrics.push(NewMetricSample {
                    server_id: sid,
                    host_id: Some(host_id),
                    ts: Some(at),
                    cpu_percent: Some(f64::from(sample.cpu_percent)),
                    rss_bytes: i64::try_from(sample.memory_bytes).ok(),
                    players: sample.players.map(i64::from),
                    fps: None,
                });
                let data = serde_json::to_value(&sample).unwrap_or(Value::Null);
                out.live
                    .push((Channel::Metrics, sid, json!({"at": env.at, "sample": data})));
            }
            Event::Player { server, event } => {
                let Some(sid) = own(&server, &mut out) else {
                    continue;
                };
                let (kind, players_channel) = match &event {
                    PlayerEvent::Joined { player } => {
                        if let Some(guid) = &player.guid {
                            out.batch.sessions.push(SessionChange::Join {
                                server_id: sid,
                                guid: guid.clone(),
                                name: player.name.clone(),
                                ip: Some(player.ip.to_string()),
                                at,
                            });
                        }
                        ("player_joined", true)
                    }
                    PlayerEvent::Left { name, guid, .. } => {
                        out.batch.sessions.push(SessionChange::Leave {
                            server_id: sid,
                            guid: guid.clone(),
                            name: name.clone(),
                            at,
                        });
                        ("player_left", true)
                    }
                    PlayerEvent::Kicked { .. } => ("player_kicked", true),
                    // Sessions open on the join; a join seen before BattlEye knew the GUID
                    // has no session (the event history still has both).
                    PlayerEvent::GuidVerified { .. } => ("guid_verified", true),
                    PlayerEvent::Chat { .. } => ("chat", false),
                    PlayerEvent::AdminLogin { .. } => ("admin_login", false),
                };
                let data = serde_json::to_value(&event).unwrap_or(Value::Null);
                out.batch.events.push(NewServerEvent {
                    server_id: Some(sid),
                    host_id,
                    seq,
                    ts: at,
                    kind: kind.into(),
                    data: data.clone(),
                });
                if players_channel {
                    out.live.push((Channel::Players, Some(sid), data.clone()));
                }
                out.live.push((
                    Channel::Events,
                    Some(sid),
                    json!({"kind": kind, "data": data}),
                ));
            }
            Event::Gap {
                records,
                lines,
                first,
                last,
            } => {
                let data =
                    json!({"records": records, "lines": lines, "first": first, "last": last});
                out.batch.events.push(NewServerEvent {
                    server_id: None,
                    host_id,
                    seq,
                    ts: at,
                    kind: "gap".into(),
                    data: data.clone(),
                });
                out.live
                    .push((Channel::Events, None, json!({"kind": "gap", "data": data})));
            }
        }
    }
    out
}
