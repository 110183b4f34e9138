//! Storage layer: one [`Store`] trait, a SQLite and a PostgreSQL implementation
//! (reference/rust-style.md §6). Handlers hold an `Arc<dyn Store>` obtained from [`connect`].
//!
//! Conventions shared by every method:
//! * IDs are app-generated UUIDv7 ([`new_id`]); logs and metrics use DB-assigned `i64` ids
//!   (time series; the SQLite FTS5 index needs an integer rowid).
//! * Timestamps are set in Rust; use [`now`] (UTC, truncated to microseconds so values round
//!   trip identically on both backends). On SQLite they are stored as fixed-width RFC 3339
//!   UTC text so that text order is time order.
//! * `get_*` return `Ok(None)` when the row does not exist; `update_*`/`delete_*`/`revoke_*` of a
//!   missing row return [`StoreError::NotFound`].
//! * Text or JSON containing NUL (U+0000) is refused with [`StoreError::InvalidInput`] on both
//!   backends (PostgreSQL cannot store it); the API should reject it earlier with a 400.
//!   The one exception is agent telemetry ([`Store::ingest`]), where NUL becomes U+FFFD.
//! * Mission rotation is kept inside the `server` config section JSON (no table).

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

mod common;
#[macro_use]
mod imp;
mod link;
mod postgres;
mod sqlite;

pub use common::{DbText, new_id, now, server_state_str};
pub use link::{
    Enrollment, IngestBatch, JoinTokenRow, MetricRollup, NewJoinToken, NewServerEvent,
    ROLLUP_BUCKETS, RollupQuery, ServerEvent, ServerEventQuery, ServerStatusRow, SessionChange,
};

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The addressed row does not exist.
    #[error("not found")]
    NotFound,
    /// A uniqueness/foreign-key constraint or an optimistic-concurrency check failed.
    /// The string names what conflicted (e.g. `"revision"`, `"users.username"`).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The value cannot be stored (e.g. NUL in text, out-of-range value).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The database cannot be reached / pool timed out / closed.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Anything else (bug, corrupt row, unexpected driver error).
    #[error("storage internal error: {0}")]
    Internal(#[from] anyhow::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

macro_rules! str_enum {
    ($(#[$m:meta])* $name:ident { $($var:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($var),+ }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$var),+];
            pub fn as_str(self) -> &'static str { match self { $($name::$var => $s),+ } }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(self.as_str()) }
        }
        impl std::str::FromStr for $name {
            type Err = StoreError;
            fn from_str(s: &str) -> Result<Self, StoreError> {
                match s { $($s => Ok($name::$var),)+ _ => Err(StoreError::InvalidInput(format!("unknown {} {s:?}", stringify!($name)))) }
            }
        }
        impl TryFrom<String> for $name {
            type Error = StoreError;
            fn try_from(s: String) -> Result<Self, StoreError> { s.parse() }
        }
    };
}

str_enum!(
    /// User / API token role.
    Role { Admin = "admin", Operator = "operator", Viewer = "viewer" }
);
str_enum!(
    /// Supported games.
    Game { Arma3 = "arma3", Palworld = "palworld" }
);
str_enum!(
    /// A host's link state: `pending` (no agent enrolled yet), `online`, `offline`, `revoked`.
    HostStatus { Pending = "pending", Online = "online", Offline = "offline", Revoked = "revoked" }
);
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
str_enum!(
    /// The operating system of a host.
    HostOs { Linux = "linux", Windows = "windows" }
);
str_enum!(
    /// Who performed an audited action.
    ActorKind { User = "user", ApiToken = "api_token", System = "system", Agent = "agent" }
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

// ---------------------------------------------------------------- users & tokens

/// What [`Store::update_user`] / [`Store::delete_user`] report in `Conflict` when the change
/// would leave no enabled admin.
pub const LAST_ADMIN: &str = "last_admin";

#[derive(Clone, PartialEq, sqlx::FromRow)]
pub struct User {
    pub id: Uuid,
    /// As entered (case preserved); uniqueness is case-insensitive.
    pub username: String,
    pub password_hash: String,
    #[sqlx(try_from = "String")]
    pub role: Role,
    pub must_change_password: bool,
    pub disabled: bool,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("password_hash", &"<redacted>")
            .field("role", &self.role)
            .field("must_change_password", &self.must_change_password)
            .field("disabled", &self.disabled)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

#[derive(Clone)]
pub struct NewUser {
    pub username: String,
    pub password_hash: String,
    pub role: Role,
    pub must_change_password: bool,
}

impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("username", &self.username)
            .field("password_hash", &"<redacted>")
            .field("role", &self.role)
            .field("must_change_password", &self.must_change_password)
            .finish()
    }
}

/// Partial update; `None` leaves the field unchanged.
#[derive(Clone, Default)]
pub struct UserUpdate {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
    pub must_change_password: Option<bool>,
    pub password_hash: Option<String>,
}

impl std::fmt::Debug for UserUpdate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserUpdate")
            .field("role", &self.role)
            .field("disabled", &self.disabled)
            .field("must_change_password", &self.must_change_password)
            .field(
                "password_hash",
                &self.password_hash.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct RefreshToken {
    pub id: Uuid,
    pub user_id: Uuid,
    pub family_id: Uuid,
    pub token_hash: String,
    pub expires_at: OffsetDateTime,
    pub created_at: OffsetDateTime,
    pub used_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewRefreshToken {
    pub user_id: Uuid,
    pub family_id: Uuid,
    pub token_hash: String,
    pub expires_at: OffsetDateTime,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ApiToken {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub token_hash: String,
    /// Non-secret leading characters shown in listings.
    pub prefix: String,
    #[sqlx(try_from = "String")]
    pub role: Role,
    pub created_at: OffsetDateTime,
    pub last_used_at: Option<OffsetDateTime>,
    pub expires_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone)]
pub struct NewApiToken {
    pub user_id: Uuid,
    pub name: String,
    pub token_hash: String,
    pub prefix: String,
    pub role: Role,
    pub expires_at: Option<OffsetDateTime>,
}

// ---------------------------------------------------------------- hosts & servers

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Host {
    pub id: Uuid,
    pub name: String,
    pub agent_id: Option<String>,
    #[sqlx(try_from = "String")]
    pub os: HostOs,
    #[sqlx(try_from = "String")]
    pub status: HostStatus,
    pub last_seen_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
    /// The enrolled agent's build, as it reported at enrollment / last connect.
    pub agent_version: Option<String>,
    /// Highest agent event sequence number committed for this host (the link's ack).
    /// Written only by [`Store::ingest`] and reset by [`Store::enroll_agent`].
    pub acked_seq: i64,
}

#[derive(Debug, Clone)]
pub struct NewHost {
    pub name: String,
    pub agent_id: Option<String>,
    pub os: HostOs,
    pub status: HostStatus,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Server {
    pub id: Uuid,
    pub host_id: Uuid,
    pub name: String,
    #[sqlx(try_from = "String")]
    pub game: Game,
    pub game_port: i64,
    pub rcon_port: i64,
    pub executable_path: String,
    #[sqlx(json)]
    pub restart_policy: Value,
    pub desired_running: bool,
    /// Revision of this spec row (optimistic concurrency for [`Store::update_server`]).
    pub revision: i64,
    /// Revision of the config sections; equals the latest config version number (0 = none yet).
    pub config_revision: i64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// Mutable fields of a server (create and full update).
#[derive(Debug, Clone)]
pub struct ServerSpec {
    pub name: String,
    pub game: Game,
    pub game_port: i64,
    pub rcon_port: i64,
    pub executable_path: String,
    pub restart_policy: Value,
    pub desired_running: bool,
}

// ---------------------------------------------------------------- configs

/// One stored section: JSON content without secrets, plus the encrypted secrets blob
/// (nonce + ciphertext, sealed by the controller's secret box) if the section has secrets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigSection {
    /// The section's name; which names a server may have is the game registry's rule
    /// (the store takes any non-empty name up to 255 bytes).
    pub section: String,
    pub content: Value,
    pub secrets: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredSection {
    pub section: ConfigSection,
    /// Config revision at which this section was last written.
    pub revision: i64,
    pub updated_at: OffsetDateTime,
}

/// Current config of a server: all stored sections (ordered by name) and the config revision.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub server_id: Uuid,
    pub revision: i64,
    pub sections: Vec<StoredSection>,
}

/// How [`Store::write_config`] treats the sections it is not given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigWrite {
    /// They stay as they are.
    Merge,
    /// They are deleted: the given sections become the whole config.
    Replace,
}

/// A saved version (snapshot of all sections after the save).
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigVersion {
    pub id: Uuid,
    pub server_id: Uuid,
    /// 1, 2, 3 … per server; equals the config revision produced by that save.
    pub version: i64,
    pub author_user_id: Option<Uuid>,
    pub created_at: OffsetDateTime,
    pub comment: Option<String>,
    pub sections: Vec<ConfigSection>,
}

/// Listing entry without the snapshot.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ConfigVersionSummary {
    pub id: Uuid,
    pub server_id: Uuid,
    pub version: i64,
    pub author_user_id: Option<Uuid>,
    pub created_at: OffsetDateTime,
    pub comment: Option<String>,
}

// ---------------------------------------------------------------- players, sessions

/// A player of one game, known by that game's account id (Arma 3: the BattlEye GUID).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Player {
    pub id: Uuid,
    #[sqlx(try_from = "String")]
    pub game: Game,
    /// Unique per game.
    pub account_id: String,
    pub last_name: String,
    pub first_seen: OffsetDateTime,
    pub last_seen: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct PlayerSession {
    pub id: Uuid,
    pub server_id: Uuid,
    pub player_id: Uuid,
    pub joined_at: OffsetDateTime,
    pub left_at: Option<OffsetDateTime>,
    pub ip: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct SessionQuery {
    pub server_id: Option<Uuid>,
    pub player_id: Option<Uuid>,
    pub open_only: bool,
    pub limit: i64,
}

// ---------------------------------------------------------------- audit

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AuditEvent {
    pub id: Uuid,
    pub ts: OffsetDateTime,
    pub actor_user_id: Option<Uuid>,
    #[sqlx(try_from = "String")]
    pub actor_kind: ActorKind,
    pub action: String,
    pub target_kind: Option<String>,
    pub target_id: Option<String>,
    pub ip: Option<String>,
    #[sqlx(json)]
    pub details: Value,
}

#[derive(Debug, Clone)]
pub struct NewAuditEvent {
    /// `None` = now.
    pub ts: Option<OffsetDateTime>,
    pub actor_user_id: Option<Uuid>,
    pub actor_kind: ActorKind,
    pub action: String,
    pub target_kind: Option<String>,
    pub target_id: Option<String>,
    pub ip: Option<String>,
    pub details: Value,
}

/// Keyset cursor for newest-first listings keyed by `(ts, id)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditCursor {
    pub ts: OffsetDateTime,
    pub id: Uuid,
}

/// All filters are ANDed; `None` = no filter. Results are newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub actor_user_id: Option<Uuid>,
    pub actor_kind: Option<ActorKind>,
    pub action: Option<String>,
    pub target_kind: Option<String>,
    pub target_id: Option<String>,
    /// Inclusive.
    pub from: Option<OffsetDateTime>,
    /// Exclusive.
    pub to: Option<OffsetDateTime>,
    /// Return items strictly older than this cursor (from a previous page's `next`).
    pub before: Option<AuditCursor>,
    /// Clamped to 1..=1000.
    pub limit: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Page<T, C> {
    pub items: Vec<T>,
    /// Cursor for the next (older) page; `None` when this page is the last.
    pub next: Option<C>,
}

// ---------------------------------------------------------------- logs & metrics

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

// ---------------------------------------------------------------- the trait

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// "sqlite" or "postgres".
    fn backend(&self) -> &'static str;
    /// Cheap liveness check (health endpoint).
    async fn ping(&self) -> StoreResult<()>;

    // users
    async fn create_user(&self, new: NewUser) -> StoreResult<User>;
    async fn get_user_by_id(&self, id: Uuid) -> StoreResult<Option<User>>;
    /// Case-insensitive.
    async fn get_user_by_username(&self, username: &str) -> StoreResult<Option<User>>;
    /// Ordered by username (case-insensitive).
    async fn list_users(&self) -> StoreResult<Vec<User>>;
    /// Atomically refuses (`Conflict(LAST_ADMIN)`) a change that would leave no enabled
    /// admin (demoting or disabling the last one), also under concurrent calls.
    async fn update_user(&self, id: Uuid, update: UserUpdate) -> StoreResult<User>;
    /// Also deletes the user's refresh and API tokens (cascade). Refuses
    /// (`Conflict(LAST_ADMIN)`) to delete the last enabled admin, atomically.
    async fn delete_user(&self, id: Uuid) -> StoreResult<()>;
    async fn count_users(&self) -> StoreResult<i64>;
    /// Access tokens of the user issued before this instant (microseconds since the Unix
    /// epoch) are invalid; `None` when the user does not exist.
    async fn tokens_valid_after(&self, id: Uuid) -> StoreResult<Option<i64>>;
    /// Raises `tokens_valid_after` to `at_us` (never lowers it). A missing user is `NotFound`.
    async fn bump_tokens_valid_after(&self, id: Uuid, at_us: i64) -> StoreResult<()>;

    // refresh tokens
    async fn insert_refresh_token(&self, new: NewRefreshToken) -> StoreResult<RefreshToken>;
    async fn get_refresh_token_by_hash(
        &self,
        token_hash: &str,
    ) -> StoreResult<Option<RefreshToken>>;
    /// Atomically sets `used_at` only if the token is neither used nor revoked.
    /// `Ok(true)` = this caller consumed it; `Ok(false)` = already used/revoked (reuse!) or missing.
    async fn mark_refresh_token_used(&self, id: Uuid, at: OffsetDateTime) -> StoreResult<bool>;
    /// Revokes every not-yet-revoked token of the family; returns how many.
    async fn revoke_refresh_family(&self, family_id: Uuid, at: OffsetDateTime) -> StoreResult<u64>;
    async fn revoke_user_refresh_tokens(
        &self,
        user_id: Uuid,
        at: OffsetDateTime,
    ) -> StoreResult<u64>;

    // API tokens
    async fn insert_api_token(&self, new: NewApiToken) -> StoreResult<ApiToken>;
    async fn get_api_token_by_hash(&self, token_hash: &str) -> StoreResult<Option<ApiToken>>;
    async fn list_api_tokens_for_user(&self, user_id: Uuid) -> StoreResult<Vec<ApiToken>>;
    async fn revoke_api_token(&self, id: Uuid, at: OffsetDateTime) -> StoreResult<()>;
    async fn touch_api_token(&self, id: Uuid, at: OffsetDateTime) -> StoreResult<()>;

    // hosts
    async fn create_host(&self, new: NewHost) -> StoreResult<Host>;
    async fn get_host(&self, id: Uuid) -> StoreResult<Option<Host>>;
    async fn list_hosts(&self) -> StoreResult<Vec<Host>>;
    /// Writes every mutable field of `host` (name, agent_id, os, status, last_seen_at, revoked_at).
    /// Never `agent_version` / `acked_seq`: those belong to the link (enrollment, ingest), and
    /// a stale `Host` written back must not move the ack.
    async fn update_host(&self, host: &Host) -> StoreResult<Host>;
    /// Fails with Conflict while servers still reference the host.
    async fn delete_host(&self, id: Uuid) -> StoreResult<()>;

    // servers
    /// Also claims `ports` (every port the server occupies on the host, as the game
    /// registry computes them; duplicates are ignored) in the same transaction: a port
    /// another server of the host holds is Conflict("port N"), whichever controller replica
    /// wrote first (unique index `server_ports (host_id, port)`).
    async fn create_server(
        &self,
        host_id: Uuid,
        spec: ServerSpec,
        ports: &[u16],
    ) -> StoreResult<Server>;
    async fn get_server(&self, id: Uuid) -> StoreResult<Option<Server>>;
    /// `host_id = None` lists all servers. Ordered by name.
    async fn list_servers(&self, host_id: Option<Uuid>) -> StoreResult<Vec<Server>>;
    async fn list_servers_on_host(&self, host_id: Uuid) -> StoreResult<Vec<Server>>;
    /// All servers ordered by name, shared: SQL stores answer from a short-lived cache
    /// (invalidated by their own writes; other replicas' writes show within ~1 s) and
    /// return the same `Arc` while the cached list is unchanged.
    async fn list_all_servers(&self) -> StoreResult<Arc<Vec<Server>>> {
        Ok(Arc::new(self.list_servers(None).await?))
    }
    /// `host_id = None` counts all servers.
    async fn count_servers(&self, host_id: Option<Uuid>) -> StoreResult<i64>;
    /// Conflict("revision") if the stored revision is not `expected_revision`; bumps revision.
    /// Replaces the claimed ports with `ports` like [`Store::create_server`] (Conflict("port N")).
    async fn update_server(
        &self,
        id: Uuid,
        expected_revision: i64,
        spec: ServerSpec,
        ports: &[u16],
    ) -> StoreResult<Server>;
    /// Sets only `desired_running` (start/stop requests): no revision bump, no port claim,
    /// so it never conflicts with a concurrent spec edit. A missing server is `NotFound`.
    async fn set_desired_running(&self, id: Uuid, running: bool) -> StoreResult<()>;
    /// Deletes the server and everything hanging off it (configs, versions, mods, schedules,
    /// sessions, logs, metrics, server bans).
    async fn delete_server(&self, id: Uuid) -> StoreResult<()>;

    // config
    async fn get_config(&self, server_id: Uuid) -> StoreResult<ServerConfig>;
    /// In one transaction: checks the config revision is `expected_revision` (else
    /// Conflict("config_revision")), writes `sections` as `mode` says, bumps the revision by
    /// one and records a [`ConfigVersion`] snapshot of all sections after the change. A
    /// section name that is empty or longer than 255 bytes is `InvalidInput`. The two
    /// wrappers below are what callers use.
    async fn write_config(
        &self,
        server_id: Uuid,
        expected_revision: i64,
        sections: Vec<ConfigSection>,
        mode: ConfigWrite,
        author_user_id: Option<Uuid>,
        comment: Option<String>,
    ) -> StoreResult<ConfigVersion>;
    /// Upserts the given sections (others untouched); see [`Store::write_config`].
    async fn save_config(
        &self,
        server_id: Uuid,
        expected_revision: i64,
        sections: Vec<ConfigSection>,
        author_user_id: Option<Uuid>,
        comment: Option<String>,
    ) -> StoreResult<ConfigVersion> {
        self.write_config(
            server_id,
            expected_revision,
            sections,
            ConfigWrite::Merge,
            author_user_id,
            comment,
        )
        .await
    }
    /// Makes `sections` the complete section set atomically (sections not listed are
    /// deleted), e.g. a rollback to an older version; see [`Store::write_config`].
    async fn replace_config(
        &self,
        server_id: Uuid,
        expected_revision: i64,
        sections: Vec<ConfigSection>,
        author_user_id: Option<Uuid>,
        comment: Option<String>,
    ) -> StoreResult<ConfigVersion> {
        self.write_config(
            server_id,
            expected_revision,
            sections,
            ConfigWrite::Replace,
            author_user_id,
            comment,
        )
        .await
    }
    /// Newest first.
    async fn list_config_versions(
        &self,
        server_id: Uuid,
        limit: i64,
    ) -> StoreResult<Vec<ConfigVersionSummary>>;
    async fn get_config_version(
        &self,
        server_id: Uuid,
        version: i64,
    ) -> StoreResult<Option<ConfigVersion>>;

    // players, sessions (written by [`Store::ingest`])
    /// Players of every game, most recently seen first; `name_contains` is case-insensitive.
    async fn list_players(
        &self,
        name_contains: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<Player>>;
    /// Newest first.
    async fn list_player_sessions(&self, query: SessionQuery) -> StoreResult<Vec<PlayerSession>>;

    // audit
    async fn insert_audit(&self, event: NewAuditEvent) -> StoreResult<AuditEvent>;
    async fn query_audit(&self, query: AuditQuery) -> StoreResult<Page<AuditEvent, AuditCursor>>;

    // logs and metrics (written by [`Store::ingest`])
    async fn query_logs(&self, query: LogQuery) -> StoreResult<Page<LogLine, LogCursor>>;
    async fn query_metrics(&self, query: MetricQuery) -> StoreResult<Vec<MetricSample>>;

    // retention
    /// Prunes logs, metrics and their roll-ups, server events, audit events, closed player
    /// sessions, expired refresh and join tokens older than the cut-offs. On PostgreSQL only
    /// one replica prunes at a time: the run holds `pg_try_advisory_xact_lock(RETENTION_LOCK_KEY)`
    /// in an open transaction and returns `Ok(None)` without touching anything when another
    /// session holds it. SQLite (single process) takes no lock.
    async fn prune_retention(&self, cutoffs: RetentionCutoffs) -> StoreResult<Option<PruneReport>>;

    // fleet link
    /// Stores a join token (the caller chose the id; `created_at` is now). A missing host
    /// is `Conflict("foreign key: …")`.
    async fn insert_join_token(&self, new: NewJoinToken) -> StoreResult<JoinTokenRow>;
    async fn get_join_token(&self, id: Uuid) -> StoreResult<Option<JoinTokenRow>>;
    /// The host's tokens, newest first.
    async fn list_join_tokens(&self, host_id: Uuid) -> StoreResult<Vec<JoinTokenRow>>;
    /// In one transaction: marks the token used — only if it is unused, unexpired at
    /// `e.at` and made for `e.host_id`, else `Conflict("join token")` and nothing changes —
    /// and binds the host to the new agent: `agent_id`, `os`, `agent_version`, status
    /// `offline`, `revoked_at` cleared, `acked_seq` 0 (a new agent numbers from 1).
    /// Exactly one of any number of concurrent calls with one token succeeds (the token
    /// update is one conditional statement). An `agent_id` another host already has is a
    /// `Conflict` from the unique index, and the token stays unused.
    async fn enroll_agent(&self, e: Enrollment) -> StoreResult<Host>;
    async fn get_host_by_agent_id(&self, agent_id: &str) -> StoreResult<Option<Host>>;
    /// Link came up / went down: sets `status` (`online` / `offline`; anything else is
    /// `InvalidInput`), `last_seen_at = at` and, when given, `agent_version`. Leaves a
    /// revoked host's status alone (it stays `revoked`). A missing host is `NotFound`.
    async fn set_host_link(
        &self,
        host_id: Uuid,
        status: HostStatus,
        agent_version: Option<&str>,
        at: OffsetDateTime,
    ) -> StoreResult<()>;
    /// Controller start-up: every `online` host becomes `offline` (no link exists yet).
    /// Returns how many changed.
    async fn reset_host_links(&self) -> StoreResult<u64>;
    /// Sets `revoked_at = at` (an already revoked host keeps its first revocation time)
    /// and status `revoked` (the agent's certificate is refused from now on). A missing
    /// host is `NotFound`.
    async fn revoke_host(&self, id: Uuid, at: OffsetDateTime) -> StoreResult<Host>;
    /// Stores a batch of agent telemetry in ONE transaction: log lines, metric samples
    /// (and their roll-ups for every [`ROLLUP_BUCKETS`] resolution), status upserts, server
    /// events, session changes in order — and raises the host's `acked_seq` to
    /// `batch.upto` (never lowers it). Returns the host's `acked_seq` after the commit.
    /// Text is stored as given except NUL, which becomes U+FFFD (agent data must never make
    /// a batch unstorable, or the agent would replay it forever).
    ///
    /// Any failure (missing host: `NotFound`; a row naming a server that does not exist:
    /// `Conflict("foreign key: …")`) stores nothing and leaves `acked_seq` unchanged.
    /// Whether the servers belong to the host is the caller's check (the link knows the
    /// agent's identity); the caller must also drop rows of servers that no longer exist
    /// (deleted meanwhile), or the batch would fail on every replay. Status rows get
    /// `updated_at` = now. Batches of one host are serialised (the host row is updated
    /// first), so a replayed batch cannot interleave.
    async fn ingest(&self, batch: IngestBatch) -> StoreResult<i64>;
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

/// Cut-off times for [`Store::prune_retention`]: rows older than these go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionCutoffs {
    /// Log lines with `ts` before this.
    pub logs_before: OffsetDateTime,
    /// Metric samples with `ts` before this, and the 1-minute roll-ups that start before it.
    pub metrics_before: OffsetDateTime,
    /// Audit events with `ts` before this.
    pub audit_before: OffsetDateTime,
    /// Closed player sessions that started before this.
    pub sessions_before: OffsetDateTime,
    /// Refresh tokens that expired before this.
    pub refresh_tokens_before: OffsetDateTime,
    /// Server events with `ts` before this.
    pub events_before: OffsetDateTime,
    /// Coarse (5-minute and 1-hour) metric roll-ups that start before this; kept longer
    /// than raw samples so long charts stay cheap.
    pub rollups_before: OffsetDateTime,
    /// Join tokens (used or not) that expired before this.
    pub join_tokens_before: OffsetDateTime,
}

/// Rows removed by one [`Store::prune_retention`] run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub logs: u64,
    pub metrics: u64,
    pub audit: u64,
    pub sessions: u64,
    pub refresh_tokens: u64,
    pub events: u64,
    /// Roll-up rows of every resolution.
    pub rollups: u64,
    pub join_tokens: u64,
}

/// PostgreSQL advisory lock key held (transaction scope) while a replica prunes.
pub const RETENTION_LOCK_KEY: i64 = 0x4c47_445f_5254_4e31; // "LGD_RTN1"

/// Opens the store named by `url` and runs migrations.
///
/// * `sqlite://path/to/file.db` (or `sqlite:path`): created if missing, WAL, foreign keys,
///   busy timeout, one writer connection plus a read pool. `sqlite::memory:` is accepted (one
///   connection for both reads and writes).
/// * `postgres://…` / `postgresql://…`.
///
/// Any other scheme is refused.
pub async fn connect(url: &str) -> StoreResult<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::connect(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PgStore::connect(url).await?))
    } else {
        let scheme = url.split(':').next().unwrap_or("");
        Err(StoreError::InvalidInput(format!(
            "unsupported database URL scheme {scheme:?}: use sqlite://<path> or postgres://…"
        )))
    }
}

#[cfg(test)]
mod debug_tests {
    use super::*;

    #[test]
    fn user_debug_redacts_password_hash() {
        let u = User {
            id: Uuid::nil(),
            username: "alice".into(),
            password_hash: "$argon2id$SECRETHASH".into(),
            role: Role::Viewer,
            must_change_password: false,
            disabled: false,
            created_at: now(),
            updated_at: now(),
        };
        let d = format!("{u:?}");
        assert!(!d.contains("SECRETHASH"), "{d}");
        assert!(d.contains("alice") && d.contains("<redacted>"));
        let n = NewUser {
            username: "bob".into(),
            password_hash: "SECRETHASH".into(),
            role: Role::Viewer,
            must_change_password: true,
        };
        assert!(!format!("{n:?}").contains("SECRETHASH"));
        let up = UserUpdate {
            password_hash: Some("SECRETHASH".into()),
            ..Default::default()
        };
        assert!(!format!("{up:?}").contains("SECRETHASH"));
    }
}
