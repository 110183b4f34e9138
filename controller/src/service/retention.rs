//! Retention: a background job of `languard serve` that prunes history older than the
//! configured retention. On PostgreSQL the store serialises runs across replicas with an
//! advisory lock (a replica that finds the lock taken skips that run); SQLite is single
//! process.

use std::time::Duration;

use time::OffsetDateTime;

use super::{App, AppState};
use crate::error::Result;
use crate::store::{PruneReport, RetentionCutoffs};

/// Delay before the first run after start-up.
pub const FIRST_RUN_DELAY: Duration = Duration::from_secs(60);

impl App {
    /// Cut-offs for a run at `now` from the retention settings.
    pub fn retention_cutoffs(&self, now: OffsetDateTime) -> RetentionCutoffs {
        let r = &self.config.retention;
        let days = |d: u32| now - time::Duration::days(i64::from(d));
        RetentionCutoffs {
            logs_before: days(r.logs_days),
            metrics_before: days(r.metrics_days),
            audit_before: days(r.audit_days),
            sessions_before: days(r.sessions_days),
            refresh_tokens_before: now,
            events_before: days(r.events_days),
            rollups_before: days(r.rollups_days),
            // A day's grace so an admin can still see why an enrollment failed.
            join_tokens_before: days(1),
        }
    }

    /// One pruning run; `Ok(None)` when another replica holds the retention lock.
    pub async fn prune_retention(&self, now: OffsetDateTime) -> Result<Option<PruneReport>> {
        let cutoffs = self.retention_cutoffs(now);
        let report = self.store.prune_retention(cutoffs).await?;
        match &report {
            Some(r) => tracing::info!(
                logs = r.logs,
                metrics = r.metrics,
                audit = r.audit,
                sessions = r.sessions,
                refresh_tokens = r.refresh_tokens,
                events = r.events,
                rollups = r.rollups,
                join_tokens = r.join_tokens,
                "Retention run finished."
            ),
            None => tracing::debug!("Retention run skipped: another replica holds the lock."),
        }
        Ok(report)
    }
}

/// Starts the retention job (none when `retention.interval_minutes` is 0). The task runs
/// until the runtime shuts down; errors are logged and retried at the next interval.
pub fn spawn(app: AppState) -> Option<tokio::task::JoinHandle<()>> {
    let minutes = app.config.retention.interval_minutes;
    if minutes == 0 {
        tracing::info!("Retention pruning disabled (retention.interval_minutes = 0).");
        return None;
    }
    let every = Duration::from_secs(u64::from(minutes) * 60);
    Some(tokio::spawn(async move {
        tokio::time::sleep(FIRST_RUN_DELAY.min(every)).await;
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = app.prune_retention(crate::store::now()).await {
                tracing::warn!(error = %e, "Retention run failed; retrying at the next interval.");
            }
        }
    }))
}
