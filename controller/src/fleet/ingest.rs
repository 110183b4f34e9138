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
    IngestBatch, LogLevel, NewLogLine, NewMetricSample, NewServerEvent, ServerEventKind,
    ServerStatusRow, SessionChange,
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
/// `with_live`: also build the live messages (skipped when no console is connected: log
/// lines are the hot path).
pub fn convert(
    host_id: Uuid,
    owned: &HashSet<Uuid>,
    events: Vec<EventEnvelope>,
    with_live: bool,
) -> Converted {
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
                    state: st.state,
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
                    kind: ServerEventKind::Status,
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
                let mut live = Vec::with_capacity(if with_live { lines.len() } else { 0 });
                for l in lines {
                    let lv = level(l.level);
                    if with_live {
                        live.push(json!({"at": l.at, "level": lv, "text": l.text}));
                    }
                    out.batch.logs.push(NewLogLine {
                        server_id: sid,
                        seq,
                        ts: ts(l.at),
                        level: lv,
                        text: l.text,
                    });
                }
                if with_live {
                    out.live.push((Channel::Log, Some(sid), Value::Array(live)));
                }
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
                                account: guid.clone(),
                                name: player.name.clone(),
                                ip: Some(player.ip.to_string()),
                                at,
                            });
                        }
                        (ServerEventKind::PlayerJoined, true)
                    }
                    PlayerEvent::Left { name, guid, .. } => {
                        out.batch.sessions.push(SessionChange::Leave {
                            server_id: sid,
                            account: guid.clone(),
                            name: name.clone(),
                            at,
                        });
                        (ServerEventKind::PlayerLeft, true)
                    }
                    PlayerEvent::Kicked { .. } => (ServerEventKind::PlayerKicked, true),
                    // Sessions open on the join; a join seen before BattlEye knew the GUID
                    // has no session (the event history still has both).
                    PlayerEvent::GuidVerified { .. } => (ServerEventKind::PlayerIdentified, true),
                    PlayerEvent::Chat { .. } => (ServerEventKind::Chat, false),
                    PlayerEvent::AdminLogin { .. } => (ServerEventKind::AdminLogin, false),
                };
                let data = serde_json::to_value(&event).unwrap_or(Value::Null);
                out.batch.events.push(NewServerEvent {
                    server_id: Some(sid),
                    host_id,
                    seq,
                    ts: at,
                    kind,
                    data: data.clone(),
                });
                if players_channel {
                    out.live.push((Channel::Players, Some(sid), data.clone()));
                }
                out.live.push((
                    Channel::Events,
                    Some(sid),
                    json!({"kind": kind.as_str(), "data": data}),
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
                    kind: ServerEventKind::Gap,
                    data: data.clone(),
                });
                out.live
                    .push((Channel::Events, None, json!({"kind": "gap", "data": data})));
            }
        }
    }
    if !with_live {
        out.live.clear();
    }
    out
}

#[cfg(test)]
mod tests {
    use languard_shared::wire::event::{ExitInfo, LogLine, MetricsSample, ServerStatus};

    use super::*;

    fn sid(id: Uuid) -> ServerId {
        ServerId::new(id.to_string()).unwrap()
    }

    fn env(seq: u64, event: Event) -> EventEnvelope {
        EventEnvelope {
            seq,
            at: 1_700_000_000_000,
            event,
        }
    }

    fn status(server: Uuid, state: ServerState) -> Event {
        Event::Status(ServerStatus {
            server: sid(server),
            state,
            pid: Some(7),
            since: 1_700_000_000_000,
            detail: None,
            exit: Some(ExitInfo {
                code: Some(139),
                signal: None,
            }),
            restarts: 2,
        })
    }

    fn log(server: ServerId, text: &str) -> Event {
        Event::Log {
            server,
            lines: vec![LogLine {
                at: 1_700_000_000_001,
                level: Level::Warning,
                text: text.into(),
            }],
        }
    }

    #[test]
    fn own_servers_become_rows_and_foreign_ones_are_rejected() {
        let host = Uuid::new_v4();
        let mine = Uuid::new_v4();
        let theirs = Uuid::new_v4();
        let owned: HashSet<Uuid> = [mine].into();
        let out = convert(
            host,
            &owned,
            vec![
                env(5, log(sid(mine), "ours")),
                env(6, log(sid(theirs), "forged")),
                env(7, log(ServerId::new("not-a-uuid").unwrap(), "junk")),
                env(8, status(mine, ServerState::Crashed)),
            ],
            true,
        );
        assert_eq!(out.batch.host_id, host);
        assert_eq!(
            out.batch.upto, 8,
            "rejected events are covered by the ack too"
        );
        assert_eq!(out.batch.logs.len(), 1);
        assert_eq!(out.batch.logs[0].text, "ours");
        assert_eq!(out.batch.logs[0].level, LogLevel::Warn);
        assert_eq!(out.batch.logs[0].seq, 5);
        let rejected: Vec<_> = out.rejected.iter().map(|r| (r.seq, r.kind)).collect();
        assert_eq!(rejected, [(6, "log"), (7, "log")]);
        assert_eq!(out.rejected[0].server, theirs.to_string());
        // A crash closes the server's sessions and is a status row plus a history event.
        let st = &out.batch.statuses[0];
        assert_eq!(
            (st.state, st.exit_code, st.restarts),
            (ServerState::Crashed, Some(139), 2)
        );
        assert!(
            matches!(out.batch.sessions[..], [SessionChange::CloseAll { server_id, .. }] if server_id == mine)
        );
        assert_eq!(out.batch.events[0].kind, ServerEventKind::Status);
        assert!(
            out.live
                .iter()
                .any(|(c, s, _)| *c == Channel::Log && *s == Some(mine))
        );
        assert!(!format!("{:?}", out.live).contains("forged"));
    }

    #[test]
    fn players_open_and_close_sessions_and_metrics_keep_the_host() {
        let host = Uuid::new_v4();
        let mine = Uuid::new_v4();
        let owned: HashSet<Uuid> = [mine].into();
        let player = languard_shared::arma::rcon::parse::Player {
            number: 0,
            ip: "10.0.0.1".parse().unwrap(),
            port: 2304,
            ping: None,
            guid: Some("a".repeat(32)),
            verified: true,
            name: "Fritz".into(),
            in_lobby: false,
        };
        let out = convert(
            host,
            &owned,
            vec![
                env(
                    1,
                    Event::Player {
                        server: sid(mine),
                        event: PlayerEvent::Joined { player },
                    },
                ),
                env(
                    2,
                    Event::Player {
                        server: sid(mine),
                        event: PlayerEvent::Left {
                            number: 0,
                            name: "Fritz".into(),
                            guid: None,
                        },
                    },
                ),
                env(
                    3,
                    Event::Metrics {
                        server: None,
                        sample: MetricsSample {
                            cpu_percent: 12.5,
                            memory_bytes: 1024,
                            ..Default::default()
                        },
                    },
                ),
                env(
                    4,
                    Event::Gap {
                        records: 1,
                        lines: 10,
                        first: 1,
                        last: 2,
                    },
                ),
            ],
            false,
        );
        assert!(
            matches!(&out.batch.sessions[0], SessionChange::Join { account, ip: Some(ip), .. } if account.len() == 32 && ip == "10.0.0.1")
        );
        assert!(
            matches!(&out.batch.sessions[1], SessionChange::Leave { account: None, name, .. } if name == "Fritz")
        );
        let m = &out.batch.metrics[0];
        assert_eq!(
            (m.server_id, m.host_id, m.rss_bytes),
            (None, Some(host), Some(1024))
        );
        let kinds: Vec<&str> = out.batch.events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["player_joined", "player_left", "gap"]);
        assert!(out.live.is_empty(), "no consoles: no live messages built");
        assert_eq!(out.batch.upto, 4);
    }
}
