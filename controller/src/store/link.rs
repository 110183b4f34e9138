//! Rows the fleet link reads and writes (DESIGN.md, "Controller <-> agent link"): join
//! tokens, enrollment, the agent's committed sequence number, and the telemetry an agent
//! streams in, which [`super::Store::ingest`] stores in one transaction together with the
//! new acknowledgement mark (so an ack always means "committed").

use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use languard_shared::wire::ServerState;

use super::common::DbText;
use super::{HostOs, NewLogLine, NewMetricSample, ServerEventKind};

/// A join token as stored: never the secret itself, only its SHA-256.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct JoinTokenRow {
    pub id: Uuid,
    /// The host the token enrolls an agent for.
    pub host_id: Uuid,
    /// SHA-256 of the secret, lowercase hex.
    pub secret_hash: String,
    pub expires_at: OffsetDateTime,
    /// Set (once, atomically) by [`super::Store::enroll_agent`].
    pub used_at: Option<OffsetDateTime>,
    pub created_by: Option<Uuid>,
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub struct NewJoinToken {
    /// Chosen by the caller: the id is part of the token string.
    pub id: Uuid,
    pub host_id: Uuid,
    pub secret_hash: String,
    pub expires_at: OffsetDateTime,
    pub created_by: Option<Uuid>,
}

/// A successful enrollment, applied by [`super::Store::enroll_agent`].
#[derive(Debug, Clone)]
pub struct Enrollment {
    pub token_id: Uuid,
    pub host_id: Uuid,
    /// The new agent id (named by the agent's certificate).
    pub agent_id: Uuid,
    /// As the agent reports.
    pub os: HostOs,
    pub agent_version: String,
    pub at: OffsetDateTime,
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

/// A change to player sessions, applied in order inside [`super::Store::ingest`].
#[derive(Debug, Clone, PartialEq)]
pub enum SessionChange {
    /// Upserts the player by the server's game and `account` (name, last seen) and opens a
    /// session, unless the player already has an open session on the server: then only the
    /// player row changes (a game may report a join twice, e.g. once more when the account
    /// is verified).
    Join {
        server_id: Uuid,
        /// The game's account id (Arma 3: the BattlEye GUID).
        account: String,
        name: String,
        ip: Option<String>,
        at: OffsetDateTime,
    },
    /// Closes the player's open session on the server (by account; by last name when the
    /// account is unknown). Nothing open: nothing happens.
    Leave {
        server_id: Uuid,
        account: Option<String>,
        name: String,
        at: OffsetDateTime,
    },
    /// Closes every open session of the server (it stopped or crashed).
    CloseAll { server_id: Uuid, at: OffsetDateTime },
}

/// Everything one batch of agent events turned into. Stored in one transaction that also
/// raises the host's `acked_seq` to `upto`.
#[derive(Debug, Clone, Default)]
pub struct IngestBatch {
    pub host_id: Uuid,
    /// Highest agent sequence number covered by the batch.
    pub upto: i64,
    pub logs: Vec<NewLogLine>,
    pub metrics: Vec<NewMetricSample>,
    /// Upserted by server id (the last one per server wins). `updated_at` is ignored: the
    /// store sets it to the time of storing.
    pub statuses: Vec<ServerStatusRow>,
    pub events: Vec<NewServerEvent>,
    pub sessions: Vec<SessionChange>,
}

/// Roll-up resolutions kept for metrics. The first (1 minute) is pruned with the raw
/// samples, the others by `RetentionCutoffs::rollups_before`.
pub const ROLLUP_BUCKETS: [i64; 3] = [60, 300, 3600];
// Retention's SQL names the finest resolution literally.
const _: () = assert!(ROLLUP_BUCKETS[0] == 60);

/// One metrics roll-up bucket, maintained for every resolution in [`ROLLUP_BUCKETS`] by
/// [`super::Store::ingest`] as it stores the samples.
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
