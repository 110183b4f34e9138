//! Turns a batch of agent events into rows ([`IngestBatch`]) and live messages, and
//! enforces that an agent only speaks for its own servers (DESIGN.md, "Controller <->
//! agent link"). Pure: the link task stores the batch, then publishes.
//!
//! Player sessions follow the account: a session opens as soon as the game knows who
//! the player is (a join that names the account, or the identification that follows a
//! join without one) and closes when the player leaves.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use languard_shared::wire::event::{Event, EventEnvelope};
use languard_shared::wire::ids::ServerId;
use languard_shared::wire::{LogLevel as WireLevel, PlayerEvent};
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use super::limits::{self, Dropped, TimeWindow};
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
    /// What the agent sent beyond [`limits`] and was dropped (the rest of the batch is
    /// stored and acknowledged).
    pub dropped: Dropped,
}

/// A wire time as a row time. An agent's clock can be anything: a time outside what
/// rows can hold (beyond year ±9999) is stored as the time it was received, `now`.
/// The one conversion of wire times ([`languard_shared::wire::UnixMillis`]) to row and
/// API times.
pub fn wire_time(ms: i64, now: OffsetDateTime) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap_or(now)
}

fn level(l: WireLevel) -> LogLevel {
    match l {
        WireLevel::Debug => LogLevel::Debug,
        WireLevel::Info => LogLevel::Info,
        WireLevel::Warn => LogLevel::Warn,
        WireLevel::Error => LogLevel::Error,
    }
}

/// The history kind of a player event.
fn player_kind(e: &PlayerEvent) -> ServerEventKind {
    match e {
        PlayerEvent::Joined { .. } => ServerEventKind::PlayerJoined,
        PlayerEvent::Identified { .. } => ServerEventKind::PlayerIdentified,
        PlayerEvent::Left { .. } => ServerEventKind::PlayerLeft,
        PlayerEvent::Kicked { .. } => ServerEventKind::PlayerKicked,
        PlayerEvent::Chat { .. } => ServerEventKind::Chat,
        PlayerEvent::AdminLogin { .. } => ServerEventKind::AdminLogin,
    }
}

/// Players of one batch by (server, key): the address of their join, and whether their
/// session was opened in this batch (so a second identification does not reopen it).
#[derive(Default)]
struct Joins(HashMap<(Uuid, String), (Option<IpAddr>, bool)>);

impl Joins {
    fn session_change(
        &mut self,
        sid: Uuid,
        event: &PlayerEvent,
        at: OffsetDateTime,
    ) -> Option<SessionChange> {
        match event {
            PlayerEvent::Joined { player } => {
                let opened = player.account.is_some();
                self.0
                    .insert((sid, player.key.clone()), (player.address, opened));
                player.account.as_ref().map(|account| SessionChange::Join {
                    server_id: sid,
                    account: account.clone(),
                    name: player.name.clone(),
                    ip: player.address.map(|a| a.to_string()),
                    at,
                })
            }
            PlayerEvent::Identified {
                key, name, account, ..
            } => {
                let entry = self.0.entry((sid, key.clone())).or_insert((None, false));
                if entry.1 {
                    return None;
                }
                entry.1 = true;
                // The join may have come in an earlier batch (then its address is not
                // known here); the store opens the session, or keeps the one it has.
                Some(SessionChange::Join {
                    server_id: sid,
                    account: account.clone(),
                    name: name.clone(),
                    ip: entry.0.map(|a| a.to_string()),
                    at,
                })
            }
            // A kick ends the visit: the tracker reports no `Left` for the disconnect that
            // follows it.
            PlayerEvent::Left {
                key, name, account, ..
            }
            | PlayerEvent::Kicked {
                key, name, account, ..
            } => {
                self.0.remove(&(sid, key.clone()));
                Some(SessionChange::Leave {
                    server_id: sid,
                    account: account.clone(),
                    name: name.clone(),
                    at,
                })
            }
            PlayerEvent::Chat { .. } | PlayerEvent::AdminLogin { .. } => None,
        }
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

/// Converts `events` (already deduplicated) from `host_id`, whose servers are `owned`.
/// `with_live`: also build the live messages (skipped when no console is connected: log
/// lines are the hot path). Every value is first brought within [`limits`] (times
/// clamped around now, texts cut), so rows and live messages agree.
pub fn convert(
    host_id: Uuid,
    owned: &HashSet<Uuid>,
    events: Vec<EventEnvelope>,
    with_live: bool,
) -> Converted {
    let mut out = Converted::default();
    out.batch.host_id = host_id;
    let now = crate::store::now();
    let window = TimeWindow::around(
        i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX),
    );
    let ts = |ms: i64| wire_time(ms, now);
    let mut joins = Joins::default();
    for env in events {
        let env = limits::envelope(env, &window, &mut out.dropped);
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
                let state = st.state.as_str();
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
                if st.state.is_down() {
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
                let cpu = limits::cpu_percent(sample.cpu_percent);
                out.batch.metrics.push(NewMetricSample {
                    server_id: sid,
                    host_id: Some(host_id),
                    ts: Some(at),
                    cpu_percent: cpu,
                    rss_bytes: i64::try_from(sample.memory_bytes).ok(),
                    players: sample.players.map(i64::from),
                    fps: None,
                });
                let mut data = serde_json::to_value(&sample).unwrap_or(Value::Null);
                if cpu.is_none()
                    && let Some(o) = data.as_object_mut()
                {
                    o.insert("cpu_percent".into(), Value::Null);
                }
                out.live
                    .push((Channel::Metrics, sid, json!({"at": env.at, "sample": data})));
            }
            Event::Player { server, event } => {
                let Some(sid) = own(&server, &mut out) else {
                    continue;
                };
                let kind = player_kind(&event);
                let players_channel = !matches!(
                    event,
                    PlayerEvent::Chat { .. } | PlayerEvent::AdminLogin { .. }
                );
                if let Some(change) = joins.session_change(sid, &event, at) {
                    out.batch.sessions.push(change);
                }
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
    use languard_shared::wire::Player;
    use languard_shared::wire::event::{
        ExitInfo, LogLine, MetricsSample, ServerState, ServerStatus,
    };

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
                level: WireLevel::Warn,
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
            (st.state.as_str(), st.exit_code, st.restarts),
            ("crashed", Some(139), 2)
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
        let player = Player {
            key: "0".into(),
            name: "Fritz".into(),
            account: Some("a".repeat(32)),
            verified: true,
            address: Some("10.0.0.1".parse().unwrap()),
            ping_ms: None,
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
                            key: "0".into(),
                            name: "Fritz".into(),
                            account: None,
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

    fn player_event(server: Uuid, event: PlayerEvent) -> Event {
        Event::Player {
            server: sid(server),
            event,
        }
    }

    /// Opens and closes in the batch, as `(open, account)` / `(close, account)`.
    fn session_log(sessions: &[SessionChange]) -> Vec<(&'static str, Option<String>)> {
        sessions
            .iter()
            .map(|s| match s {
                SessionChange::Join { account, .. } => ("open", Some(account.clone())),
                SessionChange::Leave { account, .. } => ("close", account.clone()),
                SessionChange::CloseAll { .. } => ("close_all", None),
            })
            .collect()
    }

    #[test]
    fn a_session_opens_when_the_account_becomes_known_and_closes_on_leave() {
        // BattlEye's order: connect (no GUID yet), GUID computed, GUID verified, leave.
        let host = Uuid::new_v4();
        let mine = Uuid::new_v4();
        let owned: HashSet<Uuid> = [mine].into();
        let guid = "b".repeat(32);
        let identified = |verified| PlayerEvent::Identified {
            key: "3".into(),
            name: "Fritz".into(),
            account: guid.clone(),
            verified,
        };
        let out = convert(
            host,
            &owned,
            vec![
                env(
                    1,
                    player_event(
                        mine,
                        PlayerEvent::Joined {
                            player: Player {
                                key: "3".into(),
                                name: "Fritz".into(),
                                account: None,
                                verified: false,
                                address: Some("10.0.0.7".parse().unwrap()),
                                ping_ms: None,
                                in_lobby: true,
                            },
                        },
                    ),
                ),
                env(2, player_event(mine, identified(false))),
                env(3, player_event(mine, identified(true))),
                env(
                    4,
                    player_event(
                        mine,
                        PlayerEvent::Left {
                            key: "3".into(),
                            name: "Fritz".into(),
                            account: Some(guid.clone()),
                        },
                    ),
                ),
            ],
            true,
        );
        assert_eq!(
            session_log(&out.batch.sessions),
            [("open", Some(guid.clone())), ("close", Some(guid.clone()))]
        );
        assert!(
            matches!(&out.batch.sessions[0], SessionChange::Join { ip: Some(ip), name, .. } if ip == "10.0.0.7" && name == "Fritz"),
            "the join's address goes with the session"
        );
        let kinds: Vec<&str> = out.batch.events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "player_joined",
                "player_identified",
                "player_identified",
                "player_left"
            ]
        );
        assert_eq!(
            out.live
                .iter()
                .filter(|(c, _, _)| *c == Channel::Players)
                .count(),
            4
        );
    }

    #[test]
    fn a_kick_closes_the_session() {
        // The tracker reports no `Left` after a kick: the kick itself ends the visit.
        let host = Uuid::new_v4();
        let mine = Uuid::new_v4();
        let owned: HashSet<Uuid> = [mine].into();
        let guid = "d".repeat(32);
        let out = convert(
            host,
            &owned,
            vec![
                env(
                    1,
                    player_event(
                        mine,
                        PlayerEvent::Joined {
                            player: Player {
                                key: "1".into(),
                                name: "Ztppp".into(),
                                account: Some(guid.clone()),
                                verified: true,
                                address: None,
                                ping_ms: Some(40),
                                in_lobby: false,
                            },
                        },
                    ),
                ),
                env(
                    2,
                    player_event(
                        mine,
                        PlayerEvent::Kicked {
                            key: "1".into(),
                            name: "Ztppp".into(),
                            account: Some(guid.clone()),
                            reason: "Admin Kick (afk)".into(),
                        },
                    ),
                ),
            ],
            false,
        );
        assert_eq!(
            session_log(&out.batch.sessions),
            [("open", Some(guid.clone())), ("close", Some(guid))]
        );
    }

    #[test]
    fn an_identification_in_a_later_batch_still_opens_the_session() {
        let host = Uuid::new_v4();
        let mine = Uuid::new_v4();
        let owned: HashSet<Uuid> = [mine].into();
        let out = convert(
            host,
            &owned,
            vec![env(
                9,
                player_event(
                    mine,
                    PlayerEvent::Identified {
                        key: "1".into(),
                        name: "Late".into(),
                        account: "c".repeat(32),
                        verified: true,
                    },
                ),
            )],
            false,
        );
        assert!(
            matches!(&out.batch.sessions[..], [SessionChange::Join { account, ip: None, .. }] if *account == "c".repeat(32))
        );
    }

    #[test]
    fn a_join_with_the_account_opens_at_once_and_a_rejoin_opens_again() {
        let host = Uuid::new_v4();
        let mine = Uuid::new_v4();
        let owned: HashSet<Uuid> = [mine].into();
        let joined = || {
            player_event(
                mine,
                PlayerEvent::Joined {
                    player: Player {
                        key: "76561198000000001".into(),
                        name: "Pal".into(),
                        account: Some("steam_76561198000000001".into()),
                        verified: true,
                        address: None,
                        ping_ms: None,
                        in_lobby: false,
                    },
                },
            )
        };
        let left = || {
            player_event(
                mine,
                PlayerEvent::Left {
                    key: "76561198000000001".into(),
                    name: "Pal".into(),
                    account: Some("steam_76561198000000001".into()),
                },
            )
        };
        let identified = PlayerEvent::Identified {
            key: "76561198000000001".into(),
            name: "Pal".into(),
            account: "steam_76561198000000001".into(),
            verified: true,
        };
        let out = convert(
            host,
            &owned,
            vec![
                env(1, joined()),
                env(2, player_event(mine, identified)),
                env(3, left()),
                env(4, joined()),
            ],
            false,
        );
        let account = Some("steam_76561198000000001".to_owned());
        assert_eq!(
            session_log(&out.batch.sessions),
            [
                ("open", account.clone()),
                ("close", account.clone()),
                ("open", account)
            ]
        );
    }

    /// A compromised agent's batch: every value is stored within limits, every event
    /// still counts for the ack.
    #[test]
    fn hostile_values_are_cut_clamped_and_still_acknowledged() {
        use super::limits::{MAX_LABEL, MAX_LINES_PER_EVENT, MAX_LOG_TEXT, TRUNCATED_MARK};
        let host = Uuid::new_v4();
        let mine = Uuid::new_v4();
        let owned: HashSet<Uuid> = [mine].into();
        let before = crate::store::now();
        let huge = "é".repeat(MAX_LOG_TEXT);
        let far_future = 32_503_680_000_000; // year 3000
        let lines: Vec<LogLine> = (0..MAX_LINES_PER_EVENT + 5)
            .map(|i| LogLine {
                at: if i == 0 { far_future } else { 0 },
                level: WireLevel::Info,
                text: if i == 0 { huge.clone() } else { "x".into() },
            })
            .collect();
        let evil_name = format!("\u{1b}[2J{}\r\n", "N".repeat(10_000));
        let out = convert(
            host,
            &owned,
            vec![
                EventEnvelope {
                    seq: 1,
                    at: far_future,
                    event: Event::Log {
                        server: sid(mine),
                        lines,
                    },
                },
                EventEnvelope {
                    seq: 2,
                    at: 0,
                    event: player_event(
                        mine,
                        PlayerEvent::Joined {
                            player: Player {
                                key: "1".into(),
                                name: evil_name.clone(),
                                account: Some("a".repeat(100_000)),
                                verified: true,
                                address: None,
                                ping_ms: None,
                                in_lobby: false,
                            },
                        },
                    ),
                },
                EventEnvelope {
                    seq: 3,
                    at: far_future,
                    event: Event::Metrics {
                        server: Some(sid(mine)),
                        sample: MetricsSample {
                            cpu_percent: f32::NAN,
                            ..Default::default()
                        },
                    },
                },
                EventEnvelope {
                    seq: 4,
                    at: 1_700_000_000_000,
                    event: Event::Metrics {
                        server: None,
                        sample: MetricsSample {
                            cpu_percent: -5.0,
                            ..Default::default()
                        },
                    },
                },
            ],
            true,
        );
        let after = crate::store::now();
        assert_eq!(out.batch.upto, 4, "every event is acknowledged");
        // Log lines: at most MAX_LINES_PER_EVENT, the long one cut with the marker.
        assert_eq!(out.batch.logs.len(), MAX_LINES_PER_EVENT);
        assert_eq!(out.dropped.lines, 5);
        let first = &out.batch.logs[0];
        assert!(first.text.len() <= MAX_LOG_TEXT && first.text.ends_with(TRUNCATED_MARK));
        // Times: nothing after now + 5 min, nothing before now - 30 days.
        let latest = after + time::Duration::minutes(5);
        let earliest = before - time::Duration::days(30) - time::Duration::seconds(1);
        assert!(first.ts <= latest && first.ts > before, "{}", first.ts);
        let old = &out.batch.logs[1];
        assert!(
            old.ts >= earliest && old.ts < before - time::Duration::days(29),
            "{}",
            old.ts
        );
        for e in &out.batch.events {
            assert!(e.ts >= earliest && e.ts <= latest, "{:?}", e.ts);
        }
        for m in &out.batch.metrics {
            assert!(m.ts.unwrap() <= latest);
            assert_eq!(
                m.cpu_percent, None,
                "NaN and negative CPU are no measurement"
            );
        }
        // Player strings: no control characters, capped, in rows and live messages alike.
        let SessionChange::Join { name, account, .. } = &out.batch.sessions[0] else {
            panic!("{:?}", out.batch.sessions);
        };
        assert_eq!(name.chars().count(), MAX_LABEL);
        assert!(!name.chars().any(char::is_control), "{name:?}");
        assert_eq!(account.len(), MAX_LABEL);
        let (_, _, joined) = out
            .live
            .iter()
            .find(|(c, _, _)| *c == Channel::Players)
            .unwrap();
        assert_eq!(joined["player"]["name"].as_str(), Some(name.as_str()));
        let (_, _, metrics) = out
            .live
            .iter()
            .find(|(c, _, _)| *c == Channel::Metrics)
            .unwrap();
        assert_eq!(metrics["sample"]["cpu_percent"], Value::Null);
        assert!(metrics["at"].as_i64().unwrap() < far_future);
    }

    #[test]
    fn wire_times_out_of_range_become_the_time_received() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        assert_eq!(wire_time(i64::MAX, now), now);
        assert_eq!(
            wire_time(1_700_000_000_123, now).unix_timestamp_nanos(),
            1_700_000_000_123_000_000
        );
    }
}
