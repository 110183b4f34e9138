//! Hosts, join tokens and enrollment, and the link state of a host's agent.

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use super::StoreResult;

str_enum!(
    /// A host's link state: `pending` (no agent enrolled yet), `online`, `offline`, `revoked`.
    HostStatus { Pending = "pending", Online = "online", Offline = "offline", Revoked = "revoked" }
);
str_enum!(
    /// The operating system of a host.
    HostOs { Linux = "linux", Windows = "windows" }
);

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
    /// Written only by [`super::Ingest::ingest`] and reset by [`Hosts::enroll_agent`].
    pub acked_seq: i64,
    /// Serial (lowercase hex) of the agent's current certificate: the one the link
    /// accepts. `None` only for hosts enrolled before serials were kept.
    pub cert_serial: Option<String>,
    /// Serial of the certificate the last renewal replaced, still accepted until the
    /// current one is first used ([`Hosts::use_host_cert`]).
    pub prev_cert_serial: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewHost {
    pub name: String,
    pub agent_id: Option<String>,
    pub os: HostOs,
    pub status: HostStatus,
}

/// A join token as stored: never the secret itself, only its SHA-256.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct JoinTokenRow {
    pub id: Uuid,
    /// The host the token enrolls an agent for.
    pub host_id: Uuid,
    /// SHA-256 of the secret, lowercase hex.
    pub secret_hash: String,
    pub expires_at: OffsetDateTime,
    /// Set (once, atomically) by [`Hosts::enroll_agent`].
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

/// A successful enrollment, applied by [`Hosts::enroll_agent`].
#[derive(Debug, Clone)]
pub struct Enrollment {
    pub token_id: Uuid,
    pub host_id: Uuid,
    /// The new agent id (named by the agent's certificate).
    pub agent_id: Uuid,
    /// As the agent reports.
    pub os: HostOs,
    pub agent_version: String,
    /// Serial of the certificate issued with the enrollment (becomes the only one accepted).
    pub cert_serial: String,
    pub at: OffsetDateTime,
}

/// Hosts and the fleet link's view of them.
#[async_trait]
pub trait Hosts: Send + Sync {
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

    // fleet link
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
    /// `offline`, `revoked_at` cleared, `acked_seq` 0 (a new agent numbers from 1),
    /// `cert_serial` the new certificate's and no previous one (every certificate of an
    /// earlier enrollment is refused from now on).
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
    /// The host's agent connected with the certificate `serial`. `true` (accept) when it
    /// is the current one — then the previous one is no longer accepted — or still the
    /// previous one, or when the host has no serial recorded (enrolled before serials
    /// were kept: this one becomes current). `false` (refuse; nothing changes) for any
    /// other serial, a revoked host or a missing one.
    async fn use_host_cert(&self, host_id: Uuid, serial: &str) -> StoreResult<bool>;
    /// A renewal over a link that uses the certificate `in_use`: `new` becomes current and
    /// `in_use` the previous one (the only other accepted, until `new` is first used).
    /// `false` (nothing changes) when `in_use` is not accepted any more (superseded or
    /// revoked meanwhile) or the host is missing.
    async fn renew_host_cert(&self, host_id: Uuid, in_use: &str, new: &str) -> StoreResult<bool>;
}

/// Implements [`Hosts`] for a backend (`impl_hosts!(SqliteStore)`): one body for both
/// databases, expanded in the backend module (which brings the names into scope).
macro_rules! impl_hosts {
    ($ty:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::hosts::Hosts for $ty {
            async fn create_host(&self, new: NewHost) -> StoreResult<Host> {
                check_text(&[&new.name])?;
                check_opt(&[new.agent_id.as_deref()])?;
                let h = Host {
                    id: new_id(),
                    name: new.name,
                    agent_id: new.agent_id,
                    os: new.os,
                    status: new.status,
                    last_seen_at: None,
                    created_at: now(),
                    revoked_at: None,
                    agent_version: None,
                    acked_seq: 0,
                    cert_serial: None,
                    prev_cert_serial: None,
                };
                sqlx::query("INSERT INTO hosts (id, name, agent_id, os, status, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
                    .bind(h.id)
                    .bind(&h.name)
                    .bind(&h.agent_id)
                    .bind(h.os.as_str())
                    .bind(h.status.as_str())
                    .bind(ts(h.created_at))
                    .execute(self.w())
                    .await
                    ?;
                Ok(h)
            }

            async fn get_host(&self, id: Uuid) -> StoreResult<Option<Host>> {
                sqlx::query_as::<_, Host>("SELECT * FROM hosts WHERE id = $1").bind(id).fetch_optional(self.r()).await.map_err(StoreError::from)
            }

            async fn list_hosts(&self) -> StoreResult<Vec<Host>> {
                sqlx::query_as::<_, Host>("SELECT * FROM hosts ORDER BY name, id").fetch_all(self.r()).await.map_err(StoreError::from)
            }

            async fn update_host(&self, host: &Host) -> StoreResult<Host> {
                check_text(&[&host.name])?;
                check_opt(&[host.agent_id.as_deref()])?;
                sqlx::query_as::<_, Host>(
                    "UPDATE hosts SET name = $2, agent_id = $3, os = $4, status = $5, last_seen_at = $6, revoked_at = $7 \
                     WHERE id = $1 RETURNING *",
                )
                .bind(host.id)
                .bind(&host.name)
                .bind(&host.agent_id)
                .bind(host.os.as_str())
                .bind(host.status.as_str())
                .bind(host.last_seen_at.map(ts))
                .bind(host.revoked_at.map(ts))
                .fetch_optional(self.w())
                .await
                ?
                .ok_or(StoreError::NotFound)
            }

            async fn delete_host(&self, id: Uuid) -> StoreResult<()> {
                let r = sqlx::query("DELETE FROM hosts WHERE id = $1").bind(id).execute(self.w()).await?;
                if r.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
            }

            async fn insert_join_token(&self, new: NewJoinToken) -> StoreResult<JoinTokenRow> {
                check_text(&[&new.secret_hash])?;
                let t = JoinTokenRow {
                    id: new.id,
                    host_id: new.host_id,
                    secret_hash: new.secret_hash,
                    expires_at: truncate(new.expires_at),
                    used_at: None,
                    created_by: new.created_by,
                    created_at: now(),
                };
                sqlx::query(
                    "INSERT INTO join_tokens (id, host_id, secret_hash, expires_at, created_by, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(t.id)
                .bind(t.host_id)
                .bind(&t.secret_hash)
                .bind(ts(t.expires_at))
                .bind(t.created_by)
                .bind(ts(t.created_at))
                .execute(self.w())
                .await
                ?;
                Ok(t)
            }

            async fn get_join_token(&self, id: Uuid) -> StoreResult<Option<JoinTokenRow>> {
                sqlx::query_as::<_, JoinTokenRow>("SELECT * FROM join_tokens WHERE id = $1")
                    .bind(id)
                    .fetch_optional(self.r())
                    .await
                    .map_err(StoreError::from)
            }

            async fn list_join_tokens(&self, host_id: Uuid) -> StoreResult<Vec<JoinTokenRow>> {
                sqlx::query_as::<_, JoinTokenRow>(
                    "SELECT * FROM join_tokens WHERE host_id = $1 ORDER BY created_at DESC, id DESC",
                )
                .bind(host_id)
                .fetch_all(self.r())
                .await
                .map_err(StoreError::from)
            }

            async fn enroll_agent(&self, e: Enrollment) -> StoreResult<Host> {
                check_text(&[&e.agent_version, &e.cert_serial])?;
                let at = truncate(e.at);
                let mut tx = self.w().begin().await?;
                // The claim is one conditional statement: concurrent callers serialise on
                // the token row (PostgreSQL re-checks the WHERE after the winner commits;
                // SQLite has one writer), so exactly one sees a row change.
                let claimed = sqlx::query(
                    "UPDATE join_tokens SET used_at = $3 \
                     WHERE id = $1 AND host_id = $2 AND used_at IS NULL AND expires_at > $3",
                )
                .bind(e.token_id)
                .bind(e.host_id)
                .bind(ts(at))
                .execute(&mut *tx)
                .await
                ?;
                if claimed.rows_affected() != 1 {
                    return Err(StoreError::Conflict("join token".into()));
                }
                let host = sqlx::query_as::<_, Host>(
                    "UPDATE hosts SET agent_id = $2, os = $3, agent_version = $4, status = 'offline', \
                     revoked_at = NULL, acked_seq = 0, cert_serial = $5, prev_cert_serial = NULL \
                     WHERE id = $1 RETURNING *",
                )
                .bind(e.host_id)
                .bind(e.agent_id.to_string())
                .bind(e.os.as_str())
                .bind(&e.agent_version)
                .bind(&e.cert_serial)
                .fetch_optional(&mut *tx)
                .await
                ?
                .ok_or(StoreError::NotFound)?;
                tx.commit().await?;
                Ok(host)
            }

            async fn get_host_by_agent_id(&self, agent_id: &str) -> StoreResult<Option<Host>> {
                sqlx::query_as::<_, Host>("SELECT * FROM hosts WHERE agent_id = $1")
                    .bind(agent_id)
                    .fetch_optional(self.r())
                    .await
                    .map_err(StoreError::from)
            }

            async fn set_host_link(
                &self,
                host_id: Uuid,
                status: HostStatus,
                agent_version: Option<&str>,
                at: OffsetDateTime,
            ) -> StoreResult<()> {
                if !matches!(status, HostStatus::Online | HostStatus::Offline) {
                    return Err(StoreError::InvalidInput(format!("host link status {status}")));
                }
                check_opt(&[agent_version])?;
                let r = sqlx::query(
                    "UPDATE hosts SET status = CASE WHEN revoked_at IS NULL THEN $2 ELSE status END, \
                     last_seen_at = $3, agent_version = COALESCE($4, agent_version) WHERE id = $1",
                )
                .bind(host_id)
                .bind(status.as_str())
                .bind(ts(at))
                .bind(agent_version)
                .execute(self.w())
                .await
                ?;
                if r.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
            }

            async fn reset_host_links(&self) -> StoreResult<u64> {
                let r = sqlx::query("UPDATE hosts SET status = 'offline' WHERE status = 'online'")
                    .execute(self.w())
                    .await
                    ?;
                Ok(r.rows_affected())
            }

            async fn revoke_host(&self, id: Uuid, at: OffsetDateTime) -> StoreResult<Host> {
                sqlx::query_as::<_, Host>(
                    "UPDATE hosts SET revoked_at = COALESCE(revoked_at, $2), status = 'revoked' WHERE id = $1 RETURNING *",
                )
                .bind(id)
                .bind(ts(at))
                .fetch_optional(self.w())
                .await
                ?
                .ok_or(StoreError::NotFound)
            }

            async fn use_host_cert(&self, host_id: Uuid, serial: &str) -> StoreResult<bool> {
                check_text(&[serial])?;
                // One conditional statement: SET reads the row as it was, so a current
                // serial clears the previous one and a previous serial changes nothing.
                let r = sqlx::query(
                    "UPDATE hosts SET cert_serial = COALESCE(cert_serial, $2), \
                     prev_cert_serial = CASE WHEN cert_serial = $2 THEN NULL ELSE prev_cert_serial END \
                     WHERE id = $1 AND revoked_at IS NULL \
                     AND (cert_serial IS NULL OR cert_serial = $2 OR prev_cert_serial = $2)",
                )
                .bind(host_id)
                .bind(serial)
                .execute(self.w())
                .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn renew_host_cert(&self, host_id: Uuid, in_use: &str, new: &str) -> StoreResult<bool> {
                check_text(&[in_use, new])?;
                let r = sqlx::query(
                    "UPDATE hosts SET prev_cert_serial = $2, cert_serial = $3 \
                     WHERE id = $1 AND revoked_at IS NULL AND (cert_serial = $2 OR prev_cert_serial = $2)",
                )
                .bind(host_id)
                .bind(in_use)
                .bind(new)
                .execute(self.w())
                .await?;
                Ok(r.rows_affected() == 1)
            }
        }
    };
}
