//! Join tokens and revocation: how hosts get (and lose) an agent identity.

use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use super::{App, Ctx};
use crate::error::{Error, Result};
use crate::fleet::join::{self, TokenString};
use crate::store::{Host, JoinTokenRow, NewJoinToken};

/// A new join token: the string is shown once.
#[derive(Debug)]
pub struct IssuedToken {
    /// The stored record (no secret).
    pub row: JoinTokenRow,
    /// The token string for `languard-agent enroll --token`.
    pub token: TokenString,
}

impl App {
    /// Creates a one-time join token for `host_id`, valid `ttl` (default from the config,
    /// capped at 30 days).
    pub async fn create_join_token(
        &self,
        ctx: &Ctx,
        host_id: Uuid,
        ttl: Option<Duration>,
    ) -> Result<IssuedToken> {
        let who = ctx.who()?.user_id;
        let host = self.get_host(host_id).await?;
        let ttl = ttl.unwrap_or(Duration::from_secs(self.config.link.join_token_ttl_secs));
        if ttl.is_zero() || ttl > join::MAX_TTL {
            return Err(Error::field(
                "ttl_secs",
                "must be between 1 second and 30 days",
            ));
        }
        let (token, record) = join::new_token(&self.ca.fingerprint(), ttl);
        let row = self
            .store
            .insert_join_token(NewJoinToken {
                id: record.id,
                host_id: host.id,
                secret_hash: record.secret_hash,
                expires_at: record.expires_at,
                created_by: Some(who),
            })
            .await?;
        self.audit(
            ctx,
            "host.join_token.create",
            "host",
            Some(host.id.to_string()),
            json!({"token_id": row.id, "expires_at": row.expires_at.unix_timestamp()}),
        )
        .await;
        Ok(IssuedToken { row, token })
    }

    /// The host's join tokens (no secrets).
    pub async fn list_join_tokens(&self, host_id: Uuid) -> Result<Vec<JoinTokenRow>> {
        self.get_host(host_id).await?;
        Ok(self.store.list_join_tokens(host_id).await?)
    }

    /// Revokes the host's agent: its certificate is refused from now on and its link is
    /// closed. Enrolling again (a new join token) gives the host a new agent identity.
    pub async fn revoke_host(&self, ctx: &Ctx, host_id: Uuid) -> Result<Host> {
        let host = self.store.revoke_host(host_id, crate::store::now()).await?;
        if let Some(agent) = host
            .agent_id
            .as_deref()
            .and_then(|a| Uuid::parse_str(a).ok())
        {
            self.fleet.revoke(agent);
        }
        self.fleet.disconnect(host_id);
        self.audit(
            ctx,
            "host.revoke",
            "host",
            Some(host_id.to_string()),
            json!({"agent_id": host.agent_id}),
        )
        .await;
        Ok(host)
    }
}
