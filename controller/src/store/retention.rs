//! Pruning old rows.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreResult;

/// Cut-off times for [`Retention::prune_retention`]: rows older than these go.
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

/// Rows removed by one [`Retention::prune_retention`] run.
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

/// Retention runs.
#[async_trait]
pub trait Retention: Send + Sync {
    // retention
    /// Prunes logs, metrics and their roll-ups, server events, audit events, closed player
    /// sessions, expired refresh and join tokens older than the cut-offs. On PostgreSQL only
    /// one replica prunes at a time: the run holds `pg_try_advisory_xact_lock(RETENTION_LOCK_KEY)`
    /// in an open transaction and returns `Ok(None)` without touching anything when another
    /// session holds it. SQLite (single process) takes no lock.
    async fn prune_retention(&self, cutoffs: RetentionCutoffs) -> StoreResult<Option<PruneReport>>;
}

/// Implements [`Retention`] for a backend (`impl_retention!(SqliteStore)`): one body for both
/// databases, expanded in the backend module (which brings the names into scope).
macro_rules! impl_retention {
    ($ty:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::retention::Retention for $ty {
            async fn prune_retention(&self, c: RetentionCutoffs) -> StoreResult<Option<PruneReport>> {
                // PostgreSQL: hold a transaction-scoped advisory lock on one connection for
                // the whole run (released by commit, or when the connection dies); the
                // chunked deletes run on other connections so no delete holds locks long.
                let lock = if matches!(Self::BACKEND, Backend::Postgres) {
                    let mut tx = self.w().begin().await?;
                    let got = sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_xact_lock($1)")
                        .bind(RETENTION_LOCK_KEY)
                        .fetch_one(&mut *tx)
                        .await
                        ?;
                    if !got {
                        return Ok(None);
                    }
                    Some(tx)
                } else {
                    None
                };
                let report = PruneReport {
                    logs: self.prune_chunked("DELETE FROM logs WHERE id IN (SELECT id FROM logs WHERE ts < $1 LIMIT 5000)", c.logs_before).await?,
                    metrics: self
                        .prune_chunked("DELETE FROM metrics WHERE id IN (SELECT id FROM metrics WHERE ts < $1 LIMIT 5000)", c.metrics_before)
                        .await?,
                    audit: self
                        .prune_chunked("DELETE FROM audit_events WHERE id IN (SELECT id FROM audit_events WHERE ts < $1 LIMIT 5000)", c.audit_before)
                        .await?,
                    sessions: self
                        .prune_chunked(
                            "DELETE FROM player_sessions WHERE id IN \
                             (SELECT id FROM player_sessions WHERE joined_at < $1 AND left_at IS NOT NULL LIMIT 5000)",
                            c.sessions_before,
                        )
                        .await?,
                    refresh_tokens: self
                        .prune_chunked(
                            "DELETE FROM refresh_tokens WHERE id IN (SELECT id FROM refresh_tokens WHERE expires_at < $1 LIMIT 5000)",
                            c.refresh_tokens_before,
                        )
                        .await?,
                    events: self
                        .prune_chunked("DELETE FROM server_events WHERE id IN (SELECT id FROM server_events WHERE ts < $1 LIMIT 5000)", c.events_before)
                        .await?,
                    // 1-minute buckets (ROLLUP_BUCKETS[0]) live as long as the raw samples.
                    rollups: self
                        .prune_chunked(
                            "DELETE FROM metric_rollups WHERE (scope, bucket_secs, ts) IN \
                             (SELECT scope, bucket_secs, ts FROM metric_rollups WHERE bucket_secs = 60 AND ts < $1 LIMIT 5000)",
                            c.metrics_before,
                        )
                        .await?
                        + self
                            .prune_chunked(
                                "DELETE FROM metric_rollups WHERE (scope, bucket_secs, ts) IN \
                                 (SELECT scope, bucket_secs, ts FROM metric_rollups WHERE bucket_secs > 60 AND ts < $1 LIMIT 5000)",
                                c.rollups_before,
                            )
                            .await?,
                    join_tokens: self
                        .prune_chunked("DELETE FROM join_tokens WHERE id IN (SELECT id FROM join_tokens WHERE expires_at < $1 LIMIT 5000)", c.join_tokens_before)
                        .await?,
                };
                if let Some(tx) = lock {
                    tx.commit().await?;
                }
                Ok(Some(report))
            }
        }

        impl $ty {
            /// Repeats a `DELETE … LIMIT 5000` statement until nothing is left, so a large
            /// retention run never holds the writer for long.
            async fn prune_chunked(&self, sql: &'static str, before: OffsetDateTime) -> StoreResult<u64> {
                let mut total = 0;
                loop {
                    let r = sqlx::query(sql).bind(ts(before)).execute(self.w()).await?;
                    total += r.rows_affected();
                    if r.rows_affected() == 0 {
                        return Ok(total);
                    }
                }
            }
        }
    };
}
