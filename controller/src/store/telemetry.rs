//! What agents report, as read back: log lines, metric samples and their roll-ups, server
//! statuses and server events. Written by ingest.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use languard_shared::wire::ServerState;

use super::Page;
use super::codec::DbText;
use super::ingest::finite;
use super::sql::{Arg, Backend, Sql, clamp_limit};
use super::{StoreError, StoreResult};

str_enum!(
    /// What a stored server event records (`server_events.kind`).
    ServerEventKind {
        Status = "status",
        PlayerJoined = "player_joined",
        PlayerLeft = "player_left",
        PlayerKicked = "player_kicked",
        PlayerIdentified = "player_identified",
        Chat = "chat",
        AdminLogin = "admin_login",
        Gap = "gap",
    }
);

/// Log level, stored as a small integer so `min_level` filters are range scans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Trace = 0,
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
}

impl LogLevel {
    pub fn as_i16(self) -> i16 {
        self as i16
    }
}

impl TryFrom<i16> for LogLevel {
    type Error = StoreError;
    fn try_from(v: i16) -> Result<Self, StoreError> {
        Ok(match v {
            0 => LogLevel::Trace,
            1 => LogLevel::Debug,
            2 => LogLevel::Info,
            3 => LogLevel::Warn,
            4 => LogLevel::Error,
            _ => return Err(StoreError::InvalidInput(format!("unknown log level {v}"))),
        })
    }
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct LogLine {
    pub id: i64,
    pub server_id: Uuid,
    /// Sequence number assigned by the agent (not unique across agent restarts).
    pub seq: i64,
    pub ts: OffsetDateTime,
    #[sqlx(try_from = "i16")]
    pub level: LogLevel,
    pub text: String,
}

#[derive(Debug, Clone)]
pub struct NewLogLine {
    pub server_id: Uuid,
    pub seq: i64,
    pub ts: OffsetDateTime,
    pub level: LogLevel,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogCursor {
    pub ts: OffsetDateTime,
    pub id: i64,
}

/// Results are newest first. `contains` is a case-insensitive substring match, index-backed
/// for 3+ characters (SQLite: FTS5 trigram; PostgreSQL: pg_trgm GIN), a scan otherwise.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    pub server_id: Option<Uuid>,
    pub min_level: Option<LogLevel>,
    /// Inclusive.
    pub from: Option<OffsetDateTime>,
    /// Exclusive.
    pub to: Option<OffsetDateTime>,
    pub contains: Option<String>,
    pub before: Option<LogCursor>,
    /// Clamped to 1..=5000.
    pub limit: i64,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct MetricSample {
    pub id: i64,
    pub server_id: Option<Uuid>,
    pub host_id: Option<Uuid>,
    pub ts: OffsetDateTime,
    pub cpu_percent: Option<f64>,
    pub rss_bytes: Option<i64>,
    pub players: Option<i64>,
    pub fps: Option<f64>,
}

#[derive(Debug, Clone, Default)]
pub struct NewMetricSample {
    pub server_id: Option<Uuid>,
    pub host_id: Option<Uuid>,
    pub ts: Option<OffsetDateTime>,
    pub cpu_percent: Option<f64>,
    pub rss_bytes: Option<i64>,
    pub players: Option<i64>,
    pub fps: Option<f64>,
}

/// Oldest first. At least one of `server_id`/`host_id` should be set.
#[derive(Debug, Clone, Default)]
pub struct MetricQuery {
    pub server_id: Option<Uuid>,
    pub host_id: Option<Uuid>,
    pub from: Option<OffsetDateTime>,
    pub to: Option<OffsetDateTime>,
    /// Clamped to 1..=10000.
    pub limit: i64,
}

/// A server's actual state as last reported by its agent.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ServerStatusRow {
    pub server_id: Uuid,
    #[sqlx(try_from = "DbText")]
    pub state: ServerState,
    pub pid: Option<i64>,
    /// When the agent entered the state.
    pub since: OffsetDateTime,
    pub detail: Option<String>,
    pub exit_code: Option<i64>,
    pub exit_signal: Option<i64>,
    pub restarts: i64,
    /// When the controller stored it.
    pub updated_at: OffsetDateTime,
}

/// Something that happened on a server (status change, player event, chat, kick,
/// outbox gap, rejected report): the server's history.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ServerEvent {
    pub id: i64,
    /// `None` for host-wide events (an outbox gap).
    pub server_id: Option<Uuid>,
    pub host_id: Uuid,
    /// The agent's sequence number of the event that carried it.
    pub seq: i64,
    pub ts: OffsetDateTime,
    #[sqlx(try_from = "String")]
    pub kind: ServerEventKind,
    #[sqlx(json)]
    pub data: Value,
}

#[derive(Debug, Clone)]
pub struct NewServerEvent {
    pub server_id: Option<Uuid>,
    pub host_id: Uuid,
    pub seq: i64,
    pub ts: OffsetDateTime,
    pub kind: ServerEventKind,
    pub data: Value,
}

/// Newest first, paginated by `before` (an event id).
#[derive(Debug, Clone, Default)]
pub struct ServerEventQuery {
    pub server_id: Option<Uuid>,
    pub host_id: Option<Uuid>,
    /// Empty = every kind.
    pub kinds: Vec<ServerEventKind>,
    pub before: Option<i64>,
    /// Clamped to 1..=1000.
    pub limit: i64,
}

/// Roll-up resolutions kept for metrics. The first (1 minute) is pruned with the raw
/// samples, the others by `RetentionCutoffs::rollups_before`.
pub const ROLLUP_BUCKETS: [i64; 3] = [60, 300, 3600];
// Retention's SQL names the finest resolution literally.
const _: () = assert!(ROLLUP_BUCKETS[0] == 60);

/// One metrics roll-up bucket, maintained for every resolution in [`ROLLUP_BUCKETS`] by
/// [`super::Ingest::ingest`] as it stores the samples.
/// A server's samples roll up under the server; samples without a server under the host.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct MetricRollup {
    /// Start of the bucket.
    pub ts: OffsetDateTime,
    pub bucket_secs: i64,
    /// Samples in the bucket. Each average is over the samples that had that field
    /// (`None` when none had it), so a missing value never counts as zero.
    pub samples: i64,
    pub cpu_avg: Option<f64>,
    pub cpu_max: Option<f64>,
    pub rss_avg: Option<f64>,
    pub rss_max: Option<i64>,
    pub players_avg: Option<f64>,
    pub players_max: Option<i64>,
}

/// Oldest first. Exactly one of `server_id` / `host_id` (host-wide samples).
#[derive(Debug, Clone, Default)]
pub struct RollupQuery {
    pub server_id: Option<Uuid>,
    pub host_id: Option<Uuid>,
    /// One of [`ROLLUP_BUCKETS`].
    pub bucket_secs: i64,
    pub from: Option<OffsetDateTime>,
    pub to: Option<OffsetDateTime>,
    /// Clamped to 1..=10000.
    pub limit: i64,
}

/// Reading back what agents reported.
#[async_trait]
pub trait Telemetry: Send + Sync {
    // logs and metrics (written by [`super::Ingest::ingest`])
    async fn query_logs(&self, query: LogQuery) -> StoreResult<Page<LogLine, LogCursor>>;
    async fn query_metrics(&self, query: MetricQuery) -> StoreResult<Vec<MetricSample>>;

    /// Every stored status, for servers of `host_id` (or all), ordered by server id.
    async fn list_server_statuses(
        &self,
        host_id: Option<Uuid>,
    ) -> StoreResult<Vec<ServerStatusRow>>;
    /// Newest first (by id); see [`ServerEventQuery`].
    async fn query_server_events(&self, query: ServerEventQuery) -> StoreResult<Vec<ServerEvent>>;
    /// Oldest first; see [`RollupQuery`]. Not exactly one of `server_id` / `host_id`, or a
    /// `bucket_secs` not in [`ROLLUP_BUCKETS`], is `InvalidInput`. Averages are over the
    /// samples that had the field (`None` when none had it).
    async fn query_metric_rollups(&self, query: RollupQuery) -> StoreResult<Vec<MetricRollup>>;
}

fn escape_like(term: &str) -> String {
    let mut out = String::with_capacity(term.len() + 2);
    out.push('%');
    for c in term.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

pub(crate) fn logs_sql(q: &LogQuery, backend: Backend) -> Sql {
    let mut s =
        Sql::new("SELECT l.id, l.server_id, l.seq, l.ts, l.level, l.text FROM logs l WHERE 1 = 1");
    if let Some(v) = q.server_id {
        s.push(" AND l.server_id = ").bind(Arg::Uuid(v));
    }
    if let Some(v) = q.min_level {
        s.push(" AND l.level >= ").bind(Arg::I16(v.as_i16()));
    }
    if let Some(v) = q.from {
        s.push(" AND l.ts >= ").bind(Arg::Ts(v));
    }
    if let Some(v) = q.to {
        s.push(" AND l.ts < ").bind(Arg::Ts(v));
    }
    if let Some(c) = q.before {
        s.push(" AND (l.ts, l.id) < (")
            .bind(Arg::Ts(c.ts))
            .push(", ")
            .bind(Arg::I64(c.id))
            .push(")");
    }
    if let Some(term) = q.contains.as_deref().filter(|t| !t.is_empty()) {
        match backend {
            Backend::Postgres => {
                s.push(" AND l.text ILIKE ")
                    .bind(Arg::Text(escape_like(term)));
            }
            Backend::Sqlite if term.chars().count() >= 3 => {
                // FTS5 trigram phrase query = case-insensitive substring match.
                let phrase = format!("\"{}\"", term.replace('"', "\"\""));
                s.push(" AND l.id IN (SELECT rowid FROM logs_fts WHERE logs_fts MATCH ")
                    .bind(Arg::Text(phrase))
                    .push(")");
            }
            Backend::Sqlite => {
                s.push(" AND instr(lower(l.text), lower(")
                    .bind(Arg::Text(term.to_owned()))
                    .push(")) > 0");
            }
        }
    }
    s.push(" ORDER BY l.ts DESC, l.id DESC LIMIT ")
        .bind(Arg::I64(clamp_limit(q.limit, 5000) + 1));
    s
}

pub(crate) fn metrics_sql(q: &MetricQuery) -> Sql {
    let mut s = Sql::new("SELECT * FROM metrics WHERE 1 = 1");
    if let Some(v) = q.server_id {
        s.push(" AND server_id = ").bind(Arg::Uuid(v));
    }
    if let Some(v) = q.host_id {
        s.push(" AND host_id = ").bind(Arg::Uuid(v));
    }
    if let Some(v) = q.from {
        s.push(" AND ts >= ").bind(Arg::Ts(v));
    }
    if let Some(v) = q.to {
        s.push(" AND ts < ").bind(Arg::Ts(v));
    }
    s.push(" ORDER BY ts ASC, id ASC LIMIT ")
        .bind(Arg::I64(clamp_limit(q.limit, 10_000)));
    s
}

// ------------------------------------------------------------------ metric roll-ups

/// The roll-up subject of a sample or query: `(scope, server_id, host_id)`. A server's
/// samples roll up under its UUID; host-wide samples (no server) under `host:<uuid>`.
pub(crate) fn rollup_scope(
    server_id: Option<Uuid>,
    host_id: Option<Uuid>,
) -> Option<(String, Option<Uuid>, Option<Uuid>)> {
    match (server_id, host_id) {
        (Some(s), _) => Some((s.to_string(), Some(s), None)),
        (None, Some(h)) => Some((format!("host:{h}"), None, Some(h))),
        (None, None) => None,
    }
}

/// Start of the `secs`-long bucket holding `t` (buckets are aligned to the Unix epoch).
fn bucket_start(t: OffsetDateTime, secs: i64) -> Option<OffsetDateTime> {
    let into = time::Duration::new(
        t.unix_timestamp().rem_euclid(secs),
        i32::try_from(t.nanosecond()).ok()?,
    );
    t.checked_sub(into)
}

/// Sums, counts and maxima of one roll-up bucket: what a batch adds to it, and what is
/// stored.
#[derive(Debug, Clone, Default, PartialEq, sqlx::FromRow)]
pub(crate) struct RollupSums {
    pub samples: i64,
    pub cpu_n: i64,
    pub cpu_sum: f64,
    pub cpu_max: Option<f64>,
    pub rss_n: i64,
    pub rss_sum: f64,
    pub rss_max: Option<i64>,
    pub players_n: i64,
    pub players_sum: f64,
    pub players_max: Option<i64>,
}

impl RollupSums {
    /// Counts one sample; a missing (or non-finite) field adds to neither sum nor count.
    fn add(&mut self, m: &super::NewMetricSample) {
        fn max_of<T: PartialOrd + Copy>(a: Option<T>, b: Option<T>) -> Option<T> {
            match (a, b) {
                (Some(x), Some(y)) => Some(if y > x { y } else { x }),
                (x, None) => x,
                (None, y) => y,
            }
        }
        self.samples += 1;
        if let Some(v) = finite(m.cpu_percent) {
            self.cpu_n += 1;
            self.cpu_sum += v;
            self.cpu_max = max_of(self.cpu_max, Some(v));
        }
        if let Some(v) = m.rss_bytes {
            self.rss_n += 1;
            self.rss_sum += v as f64;
            self.rss_max = max_of(self.rss_max, Some(v));
        }
        if let Some(v) = m.players {
            self.players_n += 1;
            self.players_sum += v as f64;
            self.players_max = max_of(self.players_max, Some(v));
        }
    }
}

/// What one batch adds to one roll-up bucket.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RollupDelta {
    pub scope: String,
    pub bucket_secs: i64,
    pub ts: OffsetDateTime,
    pub server_id: Option<Uuid>,
    pub host_id: Option<Uuid>,
    pub sums: RollupSums,
}

/// Folds samples into one delta per (subject, resolution, bucket), so the upsert names
/// every row once. Samples without a subject are not rolled up; `default_ts` stands in
/// for a missing sample time (as when the sample itself is stored).
pub(crate) fn rollup_deltas(
    samples: &[super::NewMetricSample],
    default_ts: OffsetDateTime,
) -> Vec<RollupDelta> {
    let mut acc: std::collections::BTreeMap<(String, i64, i128), RollupDelta> =
        std::collections::BTreeMap::new();
    for m in samples {
        let Some((scope, server_id, host_id)) = rollup_scope(m.server_id, m.host_id) else {
            continue;
        };
        let t = m.ts.unwrap_or(default_ts);
        for secs in super::ROLLUP_BUCKETS {
            let Some(start) = bucket_start(t, secs) else {
                continue;
            };
            acc.entry((scope.clone(), secs, start.unix_timestamp_nanos()))
                .or_insert_with(|| RollupDelta {
                    scope: scope.clone(),
                    bucket_secs: secs,
                    ts: start,
                    server_id,
                    host_id,
                    sums: RollupSums::default(),
                })
                .sums
                .add(m);
        }
    }
    acc.into_values().collect()
}

/// A stored roll-up bucket; see [`super::MetricRollup`].
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct RollupRow {
    pub ts: OffsetDateTime,
    pub bucket_secs: i64,
    #[sqlx(flatten)]
    pub sums: RollupSums,
}

impl From<RollupRow> for super::MetricRollup {
    fn from(r: RollupRow) -> Self {
        let avg = |sum: f64, n: i64| (n > 0).then(|| sum / n as f64);
        let s = r.sums;
        Self {
            ts: r.ts,
            bucket_secs: r.bucket_secs,
            samples: s.samples,
            cpu_avg: avg(s.cpu_sum, s.cpu_n),
            cpu_max: s.cpu_max,
            rss_avg: avg(s.rss_sum, s.rss_n),
            rss_max: s.rss_max,
            players_avg: avg(s.players_sum, s.players_n),
            players_max: s.players_max,
        }
    }
}

pub(crate) fn rollups_sql(q: &super::RollupQuery) -> StoreResult<Sql> {
    if q.server_id.is_some() == q.host_id.is_some() {
        return Err(StoreError::InvalidInput(
            "metric roll-ups: give exactly one of server_id / host_id".into(),
        ));
    }
    if !super::ROLLUP_BUCKETS.contains(&q.bucket_secs) {
        return Err(StoreError::InvalidInput(format!(
            "metric roll-ups: bucket_secs must be one of {:?}",
            super::ROLLUP_BUCKETS
        )));
    }
    let Some((scope, _, _)) = rollup_scope(q.server_id, q.host_id) else {
        return Err(StoreError::InvalidInput(
            "metric roll-ups: no subject".into(),
        ));
    };
    let mut s = Sql::new(
        "SELECT ts, bucket_secs, samples, cpu_n, cpu_sum, cpu_max, rss_n, rss_sum, rss_max, \
         players_n, players_sum, players_max FROM metric_rollups WHERE scope = ",
    );
    s.bind(Arg::Text(scope))
        .push(" AND bucket_secs = ")
        .bind(Arg::I64(q.bucket_secs));
    if let Some(v) = q.from {
        s.push(" AND ts >= ").bind(Arg::Ts(v));
    }
    if let Some(v) = q.to {
        s.push(" AND ts < ").bind(Arg::Ts(v));
    }
    s.push(" ORDER BY ts ASC LIMIT ")
        .bind(Arg::I64(clamp_limit(q.limit, 10_000)));
    Ok(s)
}

pub(crate) fn server_events_sql(q: &super::ServerEventQuery) -> Sql {
    let mut s = Sql::new("SELECT * FROM server_events WHERE 1 = 1");
    if let Some(v) = q.server_id {
        s.push(" AND server_id = ").bind(Arg::Uuid(v));
    }
    if let Some(v) = q.host_id {
        s.push(" AND host_id = ").bind(Arg::Uuid(v));
    }
    if !q.kinds.is_empty() {
        s.push(" AND kind IN (");
        for (i, k) in q.kinds.iter().enumerate() {
            if i > 0 {
                s.push(", ");
            }
            s.bind(Arg::Text(k.as_str().to_owned()));
        }
        s.push(")");
    }
    if let Some(v) = q.before {
        s.push(" AND id < ").bind(Arg::I64(v));
    }
    s.push(" ORDER BY id DESC LIMIT ")
        .bind(Arg::I64(clamp_limit(q.limit, 1000)));
    s
}

/// Implements [`Telemetry`] for a backend (`impl_telemetry!(SqliteStore)`): one body for both
/// databases, expanded in the backend module (which brings the names into scope).
macro_rules! impl_telemetry {
    ($ty:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::telemetry::Telemetry for $ty {
            async fn query_logs(&self, query: LogQuery) -> StoreResult<Page<LogLine, LogCursor>> {
                let limit = clamp_limit(query.limit, 5000) as usize;
                let s = logs_sql(&query, Self::BACKEND);
                let q = sqlx::query_as::<_, LogLine>(sqlx::AssertSqlSafe(s.sql));
                let mut items = bind_args!(q, s.args).fetch_all(self.r()).await?;
                let next = if items.len() > limit {
                    items.truncate(limit);
                    items.last().map(|e| LogCursor { ts: e.ts, id: e.id })
                } else {
                    None
                };
                Ok(Page { items, next })
            }

            async fn query_metrics(&self, query: MetricQuery) -> StoreResult<Vec<MetricSample>> {
                let s = metrics_sql(&query);
                let q = sqlx::query_as::<_, MetricSample>(sqlx::AssertSqlSafe(s.sql));
                bind_args!(q, s.args)
                    .fetch_all(self.r())
                    .await
                    .map_err(StoreError::from)
            }

            async fn list_server_statuses(
                &self,
                host_id: Option<Uuid>,
            ) -> StoreResult<Vec<ServerStatusRow>> {
                sqlx::query_as::<_, ServerStatusRow>(
                    "SELECT st.* FROM server_status st JOIN servers s ON s.id = st.server_id \
                     WHERE ($1 IS NULL OR s.host_id = $1) ORDER BY st.server_id",
                )
                .bind(host_id)
                .fetch_all(self.r())
                .await
                .map_err(StoreError::from)
            }

            async fn query_server_events(
                &self,
                query: ServerEventQuery,
            ) -> StoreResult<Vec<ServerEvent>> {
                let s = server_events_sql(&query);
                let q = sqlx::query_as::<_, ServerEvent>(sqlx::AssertSqlSafe(s.sql));
                bind_args!(q, s.args)
                    .fetch_all(self.r())
                    .await
                    .map_err(StoreError::from)
            }

            async fn query_metric_rollups(
                &self,
                query: RollupQuery,
            ) -> StoreResult<Vec<MetricRollup>> {
                let s = rollups_sql(&query)?;
                let q = sqlx::query_as::<_, RollupRow>(sqlx::AssertSqlSafe(s.sql));
                let rows = bind_args!(q, s.args).fetch_all(self.r()).await?;
                Ok(rows.into_iter().map(MetricRollup::from).collect())
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_floor_to_the_epoch_grid() {
        let t = OffsetDateTime::from_unix_timestamp(1_700_000_123).unwrap()
            + time::Duration::milliseconds(456);
        assert_eq!(bucket_start(t, 60).unwrap().unix_timestamp(), 1_700_000_100);
        assert_eq!(
            bucket_start(t, 3600).unwrap().unix_timestamp(),
            1_699_999_200
        );
        assert_eq!(bucket_start(t, 60).unwrap().nanosecond(), 0);
    }
}
