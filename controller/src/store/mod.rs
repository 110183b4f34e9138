//! Storage layer: one [`Store`] trait, a SQLite and a PostgreSQL implementation
//! (reference/rust-style.md §6). Handlers hold an `Arc<dyn Store>` obtained from [`connect`].
//!
//! One module per area, each with its rows, its trait ([`Users`], [`Hosts`], [`Servers`],
//! [`Configs`], [`Players`], [`Audit`], [`Telemetry`], [`Ingest`], [`Retention`]; [`Store`]
//! combines them) and an `impl_*!` macro holding the one body both backends expand. The
//! store knows no game: section names, ports and player accounts come from the caller.
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
//!   The one exception is agent telemetry ([`Ingest::ingest`]), where NUL becomes U+FFFD.
//! * Mission rotation is kept inside the `server` config section JSON (no table).

use std::sync::Arc;

use async_trait::async_trait;

#[macro_use]
mod text_enum;
#[macro_use]
mod sql;
mod codec;
mod error;

#[macro_use]
mod audit;
#[macro_use]
mod configs;
#[macro_use]
mod hosts;
#[macro_use]
mod ingest;
#[macro_use]
mod players;
#[macro_use]
mod retention;
#[macro_use]
mod servers;
#[macro_use]
mod telemetry;
#[macro_use]
mod users;

mod postgres;
mod sqlite;

pub use audit::{ActorKind, Audit, AuditCursor, AuditEvent, AuditQuery, NewAuditEvent, Page};
pub use codec::{DbText, new_id, now};
pub use configs::{
    ConfigSection, ConfigVersion, ConfigVersionSummary, ConfigWrite, Configs, ServerConfig,
    StoredSection,
};
pub use error::{StoreError, StoreResult};
pub use hosts::{Enrollment, Host, HostOs, HostStatus, Hosts, JoinTokenRow, NewHost, NewJoinToken};
pub use ingest::{Ingest, IngestBatch, SessionChange};
pub use players::{Player, PlayerSession, Players, SessionQuery};
pub use retention::{PruneReport, RETENTION_LOCK_KEY, Retention, RetentionCutoffs};
pub use servers::{GameKind, Server, ServerSpec, Servers};
pub use telemetry::{
    LogCursor, LogLevel, LogLine, LogQuery, MetricQuery, MetricRollup, MetricSample, NewLogLine,
    NewMetricSample, NewServerEvent, ROLLUP_BUCKETS, RollupQuery, ServerEvent, ServerEventKind,
    ServerEventQuery, ServerStatusRow, Telemetry,
};
pub use users::{
    API_TOKEN_PARENT, ApiToken, LAST_ADMIN, NewApiToken, NewRefreshToken, NewUser, RefreshToken,
    Role, TOKEN_CHAIN_MAX, TokenChain, User, UserUpdate, Users,
};

/// Everything the controller needs from storage.
#[async_trait]
pub trait Store:
    Users
    + Hosts
    + Servers
    + Configs
    + Players
    + Audit
    + Telemetry
    + Ingest
    + Retention
    + Send
    + Sync
    + 'static
{
    /// "sqlite" or "postgres".
    fn backend(&self) -> &'static str;
    /// Cheap liveness check (health endpoint).
    async fn ping(&self) -> StoreResult<()>;
}

/// Implements [`Store`] and every area trait for a backend.
macro_rules! impl_store {
    ($ty:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::Store for $ty {
            fn backend(&self) -> &'static str {
                match Self::BACKEND {
                    Backend::Sqlite => "sqlite",
                    Backend::Postgres => "postgres",
                }
            }

            async fn ping(&self) -> StoreResult<()> {
                sqlx::query("SELECT 1").execute(self.r()).await?;
                Ok(())
            }
        }
        impl_users!($ty);
        impl_hosts!($ty);
        impl_servers!($ty);
        impl_configs!($ty);
        impl_players!($ty);
        impl_audit!($ty);
        impl_telemetry!($ty);
        impl_ingest!($ty);
        impl_retention!($ty);
    };
}
pub(crate) use impl_store;

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
