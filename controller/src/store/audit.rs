//! The audit log.

use async_trait::async_trait;

use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use super::StoreResult;
use super::sql::{Arg, Sql, clamp_limit};

str_enum!(
    /// Who performed an audited action.
    ActorKind { User = "user", ApiToken = "api_token", System = "system", Agent = "agent" }
);

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

/// Who did what.
#[async_trait]
pub trait Audit: Send + Sync {
    // audit
    async fn insert_audit(&self, event: NewAuditEvent) -> StoreResult<AuditEvent>;
    async fn query_audit(&self, query: AuditQuery) -> StoreResult<Page<AuditEvent, AuditCursor>>;
}

pub(crate) fn audit_sql(q: &AuditQuery) -> Sql {
    let mut s = Sql::new("SELECT * FROM audit_events WHERE 1 = 1");
    if let Some(v) = q.actor_user_id {
        s.push(" AND actor_user_id = ").bind(Arg::Uuid(v));
    }
    if let Some(v) = q.actor_kind {
        s.push(" AND actor_kind = ")
            .bind(Arg::Text(v.as_str().to_owned()));
    }
    if let Some(v) = &q.action {
        s.push(" AND action = ").bind(Arg::Text(v.clone()));
    }
    if let Some(v) = &q.target_kind {
        s.push(" AND target_kind = ").bind(Arg::Text(v.clone()));
    }
    if let Some(v) = &q.target_id {
        s.push(" AND target_id = ").bind(Arg::Text(v.clone()));
    }
    if let Some(v) = q.from {
        s.push(" AND ts >= ").bind(Arg::Ts(v));
    }
    if let Some(v) = q.to {
        s.push(" AND ts < ").bind(Arg::Ts(v));
    }
    if let Some(c) = q.before {
        s.push(" AND (ts, id) < (")
            .bind(Arg::Ts(c.ts))
            .push(", ")
            .bind(Arg::Uuid(c.id))
            .push(")");
    }
    s.push(" ORDER BY ts DESC, id DESC LIMIT ")
        .bind(Arg::I64(clamp_limit(q.limit, 1000) + 1));
    s
}

/// Implements [`Audit`] for a backend (`impl_audit!(SqliteStore)`): one body for both
/// databases, expanded in the backend module (which brings the names into scope).
macro_rules! impl_audit {
    ($ty:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::audit::Audit for $ty {
            async fn insert_audit(&self, ev: NewAuditEvent) -> StoreResult<AuditEvent> {
                check_text(&[&ev.action])?;
                check_opt(&[ev.target_kind.as_deref(), ev.target_id.as_deref(), ev.ip.as_deref()])?;
                check_json(&ev.details)?;
                let e = AuditEvent {
                    id: new_id(),
                    ts: ev.ts.map(truncate).unwrap_or_else(now),
                    actor_user_id: ev.actor_user_id,
                    actor_kind: ev.actor_kind,
                    action: ev.action,
                    target_kind: ev.target_kind,
                    target_id: ev.target_id,
                    ip: ev.ip,
                    details: ev.details,
                };
                sqlx::query(
                    "INSERT INTO audit_events (id, ts, actor_user_id, actor_kind, action, target_kind, target_id, ip, details) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(e.id)
                .bind(ts(e.ts))
                .bind(e.actor_user_id)
                .bind(e.actor_kind.as_str())
                .bind(&e.action)
                .bind(&e.target_kind)
                .bind(&e.target_id)
                .bind(&e.ip)
                .bind(Json(&e.details))
                .execute(self.w())
                .await
                ?;
                Ok(e)
            }

            async fn query_audit(&self, query: AuditQuery) -> StoreResult<Page<AuditEvent, AuditCursor>> {
                let limit = clamp_limit(query.limit, 1000) as usize;
                let s = audit_sql(&query);
                let q = sqlx::query_as::<_, AuditEvent>(sqlx::AssertSqlSafe(s.sql));
                let mut items = bind_args!(q, s.args).fetch_all(self.r()).await?;
                let next = if items.len() > limit {
                    items.truncate(limit);
                    items.last().map(|e| AuditCursor { ts: e.ts, id: e.id })
                } else {
                    None
                };
                Ok(Page { items, next })
            }
        }
    };
}
