//! Stored telemetry: log lines (searchable), metrics (raw and roll-ups), server history
//! events, player sessions and players; and tickets for the live WebSocket.

use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Enum, Object, OpenApi};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use super::dto::{hide_addresses, sees_addresses};
use super::error::ApiResult;
use super::security::ViewerAuth;
use super::tags::ApiTags;
use crate::error::Error;
use crate::service::AppState;
use crate::store::{
    LogCursor, LogLevel, LogQuery, MetricQuery, RollupQuery, ServerEventKind, ServerEventQuery,
    SessionQuery,
};

/// Telemetry endpoints.
pub struct TelemetryApi(pub AppState);

/// Log severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum LevelDto {
    /// Trace.
    Trace,
    /// Debug.
    Debug,
    /// Info.
    Info,
    /// Warning.
    Warn,
    /// Error.
    Error,
}

impl From<LevelDto> for LogLevel {
    fn from(l: LevelDto) -> Self {
        match l {
            LevelDto::Trace => LogLevel::Trace,
            LevelDto::Debug => LogLevel::Debug,
            LevelDto::Info => LogLevel::Info,
            LevelDto::Warn => LogLevel::Warn,
            LevelDto::Error => LogLevel::Error,
        }
    }
}

impl From<LogLevel> for LevelDto {
    fn from(l: LogLevel) -> Self {
        match l {
            LogLevel::Trace => LevelDto::Trace,
            LogLevel::Debug => LevelDto::Debug,
            LogLevel::Info => LevelDto::Info,
            LogLevel::Warn => LevelDto::Warn,
            LogLevel::Error => LevelDto::Error,
        }
    }
}

/// One stored log line.
#[derive(Debug, Object)]
pub struct LogLineView {
    /// Row id (cursor part).
    pub id: i64,
    /// When the agent read it.
    pub ts: OffsetDateTime,
    /// Severity.
    pub level: LevelDto,
    /// Text.
    pub text: String,
    /// The agent's sequence number of the batch.
    pub seq: i64,
}

/// A page of log lines, newest first.
#[derive(Debug, Object)]
pub struct LogPage {
    /// Lines.
    pub items: Vec<LogLineView>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    pub next: Option<String>,
}

/// Metric resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum Resolution {
    /// Every sample.
    #[oai(rename = "raw")]
    Raw,
    /// One-minute buckets.
    #[oai(rename = "1m")]
    OneMinute,
    /// Five-minute buckets.
    #[oai(rename = "5m")]
    FiveMinutes,
    /// One-hour buckets.
    #[oai(rename = "1h")]
    OneHour,
}

/// One metrics point (a sample, or a bucket's average and maximum).
#[derive(Debug, Object)]
pub struct MetricPoint {
    /// Sample time or bucket start.
    pub ts: OffsetDateTime,
    /// Samples in the bucket (1 for raw).
    pub samples: i64,
    /// CPU, percent of one core (server) or of all cores (host).
    pub cpu_avg: Option<f64>,
    /// Highest CPU in the bucket.
    pub cpu_max: Option<f64>,
    /// Resident memory, bytes.
    pub rss_avg: Option<f64>,
    /// Highest resident memory in the bucket.
    pub rss_max: Option<i64>,
    /// Players online.
    pub players_avg: Option<f64>,
    /// Most players in the bucket.
    pub players_max: Option<i64>,
}

/// Something in a server's history.
#[derive(Debug, Object)]
pub struct ServerEventView {
    /// Id (cursor).
    pub id: i64,
    /// When.
    pub ts: OffsetDateTime,
    /// `status`, `player_joined`, `player_identified`, `player_left`, `player_kicked`,
    /// `chat`, `admin_login`, `gap`.
    pub kind: String,
    /// Details. Player addresses in them (`address`, `ip`) are `null` for viewers.
    pub data: Value,
}

/// A player's visit.
#[derive(Debug, Object)]
pub struct SessionView {
    /// Id.
    pub id: Uuid,
    /// Server.
    pub server_id: Uuid,
    /// Player.
    pub player_id: Uuid,
    /// Joined.
    pub joined_at: OffsetDateTime,
    /// Left (open while absent).
    pub left_at: Option<OffsetDateTime>,
    /// The player's address. Only operators and admins see it: `null` for viewers.
    #[oai(nullable)]
    pub ip: Option<String>,
}

/// A player ever seen.
#[derive(Debug, Object)]
pub struct PlayerRecord {
    /// Id.
    pub id: Uuid,
    /// The game the account belongs to (`arma3`, …).
    pub game: String,
    /// The account the game knows the player by (BattlEye GUID, Steam id, …).
    pub account: String,
    /// Last name used.
    pub last_name: String,
    /// First seen.
    pub first_seen: OffsetDateTime,
    /// Last seen.
    pub last_seen: OffsetDateTime,
}

/// A WebSocket ticket.
#[derive(Debug, Object)]
pub struct LiveTicket {
    /// Use once within `expires_in_secs`: `GET /api/v1/ws?ticket=…`.
    pub ticket: String,
    /// Seconds the ticket stays valid.
    pub expires_in_secs: u64,
}

fn encode_cursor(c: &LogCursor) -> String {
    format!("{}.{}", c.ts.unix_timestamp_nanos() / 1000, c.id)
}

fn decode_cursor(s: &str) -> Result<LogCursor, Error> {
    let bad = || Error::field("before", "not a cursor from a previous page");
    let (ts, id) = s.split_once('.').ok_or_else(bad)?;
    let us: i128 = ts.parse().map_err(|_| bad())?;
    let id: i64 = id.parse().map_err(|_| bad())?;
    let ts = OffsetDateTime::from_unix_timestamp_nanos(us * 1000).map_err(|_| bad())?;
    Ok(LogCursor { ts, id })
}

fn page_limit(v: Option<i64>, default: i64, max: i64) -> Result<i64, Error> {
    match v {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(_) => Err(Error::field("limit", format!("between 1 and {max}"))),
    }
}

#[OpenApi(tag = "ApiTags::Telemetry")]
impl TelemetryApi {
    /// The server's log lines, newest first; filter by minimum level, time range and text
    /// (case-insensitive substring).
    #[oai(
        path = "/servers/:id/logs",
        method = "get",
        operation_id = "queryServerLogs"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn logs(
        &self,
        _auth: ViewerAuth,
        id: Path<Uuid>,
        level: Query<Option<LevelDto>>,
        from: Query<Option<OffsetDateTime>>,
        to: Query<Option<OffsetDateTime>>,
        q: Query<Option<String>>,
        before: Query<Option<String>>,
        limit: Query<Option<i64>>,
    ) -> ApiResult<Json<LogPage>> {
        self.0.get_server(id.0).await?;
        let before = before.0.as_deref().map(decode_cursor).transpose()?;
        let contains = q.0.filter(|s| !s.is_empty());
        if contains
            .as_ref()
            .is_some_and(|s| s.len() > 200 || s.contains('\0'))
        {
            return Err(Error::field("q", "at most 200 characters, no NUL").into());
        }
        let page = self
            .0
            .store
            .query_logs(LogQuery {
                server_id: Some(id.0),
                min_level: level.0.map(Into::into),
                from: from.0,
                to: to.0,
                contains,
                before,
                limit: page_limit(limit.0, 200, 5000)?,
            })
            .await
            .map_err(Error::from)?;
        Ok(Json(LogPage {
            next: page.next.as_ref().map(encode_cursor),
            items: page
                .items
                .into_iter()
                .map(|l| LogLineView {
                    id: l.id,
                    ts: l.ts,
                    level: l.level.into(),
                    text: l.text,
                    seq: l.seq,
                })
                .collect(),
        }))
    }

    /// The server's metrics, oldest first: raw samples or 1m/5m/1h roll-ups.
    #[oai(
        path = "/servers/:id/metrics",
        method = "get",
        operation_id = "queryServerMetrics"
    )]
    async fn metrics(
        &self,
        _auth: ViewerAuth,
        id: Path<Uuid>,
        resolution: Query<Option<Resolution>>,
        from: Query<Option<OffsetDateTime>>,
        to: Query<Option<OffsetDateTime>>,
        limit: Query<Option<i64>>,
    ) -> ApiResult<Json<Vec<MetricPoint>>> {
        self.0.get_server(id.0).await?;
        let limit = page_limit(limit.0, 1000, 10_000)?;
        let bucket = match resolution.0.unwrap_or(Resolution::Raw) {
            Resolution::Raw => None,
            Resolution::OneMinute => Some(60),
            Resolution::FiveMinutes => Some(300),
            Resolution::OneHour => Some(3600),
        };
        let points = match bucket {
            None => self
                .0
                .store
                .query_metrics(MetricQuery {
                    server_id: Some(id.0),
                    host_id: None,
                    from: from.0,
                    to: to.0,
                    limit,
                })
                .await
                .map_err(Error::from)?
                .into_iter()
                .map(|m| MetricPoint {
                    ts: m.ts,
                    samples: 1,
                    cpu_avg: m.cpu_percent,
                    cpu_max: m.cpu_percent,
                    rss_avg: m.rss_bytes.map(|v| v as f64),
                    rss_max: m.rss_bytes,
                    players_avg: m.players.map(|v| v as f64),
                    players_max: m.players,
                })
                .collect(),
            Some(bucket_secs) => self
                .0
                .store
                .query_metric_rollups(RollupQuery {
                    server_id: Some(id.0),
                    host_id: None,
                    bucket_secs,
                    from: from.0,
                    to: to.0,
                    limit,
                })
                .await
                .map_err(Error::from)?
                .into_iter()
                .map(|r| MetricPoint {
                    ts: r.ts,
                    samples: r.samples,
                    cpu_avg: r.cpu_avg,
                    cpu_max: r.cpu_max,
                    rss_avg: r.rss_avg,
                    rss_max: r.rss_max,
                    players_avg: r.players_avg,
                    players_max: r.players_max,
                })
                .collect(),
        };
        Ok(Json(points))
    }

    /// The server's history (status changes, joins, leaves, kicks, chat), newest first.
    /// Player addresses only for operators and admins.
    #[oai(
        path = "/servers/:id/events",
        method = "get",
        operation_id = "queryServerEvents"
    )]
    async fn events(
        &self,
        auth: ViewerAuth,
        id: Path<Uuid>,
        /// Comma-separated kinds, e.g. `chat,player_joined`.
        kind: Query<Option<String>>,
        /// An event id from a previous page: older events.
        before: Query<Option<i64>>,
        limit: Query<Option<i64>>,
    ) -> ApiResult<Json<Vec<ServerEventView>>> {
        self.0.get_server(id.0).await?;
        let kinds = kind
            .0
            .map(|k| {
                k.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| {
                        s.parse::<ServerEventKind>()
                            .map_err(|_| Error::field("kind", format!("unknown event kind {s:?}")))
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();
        let events = self
            .0
            .store
            .query_server_events(ServerEventQuery {
                server_id: Some(id.0),
                host_id: None,
                kinds,
                before: before.0,
                limit: page_limit(limit.0, 100, 1000)?,
            })
            .await
            .map_err(Error::from)?;
        let addresses = sees_addresses(&auth.0);
        Ok(Json(
            events
                .into_iter()
                .map(|mut e| {
                    if !addresses {
                        hide_addresses(&mut e.data);
                    }
                    ServerEventView {
                        id: e.id,
                        ts: e.ts,
                        kind: e.kind.as_str().to_owned(),
                        data: e.data,
                    }
                })
                .collect(),
        ))
    }

    /// Player sessions on the server, newest first (addresses for operators and admins
    /// only).
    #[oai(
        path = "/servers/:id/sessions",
        method = "get",
        operation_id = "listServerSessions"
    )]
    async fn sessions(
        &self,
        auth: ViewerAuth,
        id: Path<Uuid>,
        /// Only players still online.
        open: Query<Option<bool>>,
        limit: Query<Option<i64>>,
    ) -> ApiResult<Json<Vec<SessionView>>> {
        self.0.get_server(id.0).await?;
        let list = self
            .0
            .store
            .list_player_sessions(SessionQuery {
                server_id: Some(id.0),
                player_id: None,
                open_only: open.0.unwrap_or(false),
                limit: page_limit(limit.0, 100, 1000)?,
            })
            .await
            .map_err(Error::from)?;
        let addresses = sees_addresses(&auth.0);
        Ok(Json(
            list.into_iter()
                .map(|s| SessionView {
                    id: s.id,
                    server_id: s.server_id,
                    player_id: s.player_id,
                    joined_at: s.joined_at,
                    left_at: s.left_at,
                    ip: s.ip.filter(|_| addresses),
                })
                .collect(),
        ))
    }

    /// Players ever seen, most recent first.
    #[oai(path = "/players", method = "get", operation_id = "listPlayers")]
    async fn players(
        &self,
        _auth: ViewerAuth,
        /// Case-insensitive part of the name.
        name: Query<Option<String>>,
        limit: Query<Option<i64>>,
    ) -> ApiResult<Json<Vec<PlayerRecord>>> {
        let list = self
            .0
            .store
            .list_players(name.0.as_deref(), page_limit(limit.0, 100, 1000)?)
            .await
            .map_err(Error::from)?;
        Ok(Json(
            list.into_iter()
                .map(|p| PlayerRecord {
                    id: p.id,
                    game: p.game.as_str().to_owned(),
                    account: p.account_id,
                    last_name: p.last_name,
                    first_seen: p.first_seen,
                    last_seen: p.last_seen,
                })
                .collect(),
        ))
    }

    /// A single-use ticket for the live WebSocket (`GET /api/v1/ws?ticket=…`).
    #[oai(
        path = "/live/tickets",
        method = "post",
        operation_id = "createLiveTicket"
    )]
    async fn ticket(&self, auth: ViewerAuth) -> ApiResult<Json<LiveTicket>> {
        let who = auth.0.who()?.clone();
        Ok(Json(LiveTicket {
            ticket: self.0.tickets.issue(who),
            expires_in_secs: crate::live::tickets::TICKET_TTL.as_secs(),
        }))
    }
}
