//! API tokens for automation: `lgd_<random>`, shown once, stored as SHA-256, identified by
//! a non-secret prefix. A token acts with its own role, capped at its owner's current role.

use std::time::Instant;

use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{API_TOKEN_CACHE_TTL, App, Ctx};
use crate::auth::{self, API_TOKEN_PREFIX, Principal, Role, Via, role_allows};
use crate::error::{Error, Result};
use crate::store::{ApiToken, NewApiToken, now};

impl App {
    /// Creates a token; returns the row and the secret (shown once).
    pub async fn create_api_token(
        &self,
        ctx: &Ctx,
        name: &str,
        role: Role,
        expires_at: Option<OffsetDateTime>,
    ) -> Result<(ApiToken, String)> {
        let p = ctx.who()?;
        if name.trim().is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
            return Err(Error::field(
                "name",
                "must be 1 to 100 characters without control characters",
            ));
        }
        if !role_allows(p.role, role) {
            return Err(Error::field("role", "cannot exceed your own role"));
        }
        if expires_at.is_some_and(|t| t <= now()) {
            return Err(Error::field("expires_at", "must be in the future"));
        }
        let secret = auth::random_token(API_TOKEN_PREFIX);
        let prefix: String = secret.chars().take(API_TOKEN_PREFIX.len() + 6).collect();
        let row = self
            .store
            .insert_api_token(NewApiToken {
                user_id: p.user_id,
                name: name.to_owned(),
                token_hash: auth::token_hash(&secret),
                prefix,
                role,
                expires_at,
            })
            .await?;
        self.audit(
            ctx,
            "api_token.create",
            "api_token",
            Some(row.id.to_string()),
            json!({"name": name, "role": role.as_str(), "prefix": row.prefix}),
        )
        .await;
        Ok((row, secret))
    }

    /// The caller's tokens.
    pub async fn list_api_tokens(&self, ctx: &Ctx) -> Result<Vec<ApiToken>> {
        Ok(self
            .store
            .list_api_tokens_for_user(ctx.who()?.user_id)
            .await?)
    }

    /// Revokes one of the caller's tokens (admins may revoke anyone's).
    pub async fn revoke_api_token(&self, ctx: &Ctx, id: Uuid) -> Result<()> {
        let p = ctx.who()?;
        let mine = self.store.list_api_tokens_for_user(p.user_id).await?;
        if !mine.iter().any(|t| t.id == id) && p.role != Role::Admin {
            return Err(Error::NotFound("api token"));
        }
        self.store
            .revoke_api_token(id, now())
            .await
            .map_err(|e| match e {
                crate::store::StoreError::NotFound => Error::NotFound("api token"),
                e => e.into(),
            })?;
        if let Ok(mut c) = self.api_token_cache.write() {
            c.retain(|_, (pp, _)| pp.via != Via::ApiToken(id));
        }
        self.audit(
            ctx,
            "api_token.revoke",
            "api_token",
            Some(id.to_string()),
            json!({}),
        )
        .await;
        Ok(())
    }

    /// Verifies an API token (cached briefly).
    pub async fn verify_api_token(&self, token: &str) -> Option<Principal> {
        if token.len() > 200 {
            return None;
        }
        let hash = auth::token_hash(token);
        if let Ok(c) = self.api_token_cache.read()
            && let Some((p, at)) = c.get(&hash)
            && at.elapsed() < API_TOKEN_CACHE_TTL
        {
            return Some(p.clone());
        }
        let row = self.store.get_api_token_by_hash(&hash).await.ok()??;
        let t = now();
        if row.revoked_at.is_some() || row.expires_at.is_some_and(|e| e <= t) {
            return None;
        }
        let user = self.store.get_user_by_id(row.user_id).await.ok()??;
        if user.disabled {
            return None;
        }
        let role = if auth::rank(row.role) <= auth::rank(user.role) {
            row.role
        } else {
            user.role
        };
        let p = Principal {
            user_id: user.id,
            username: user.username,
            role,
            must_change_password: false,
            via: Via::ApiToken(row.id),
            family: None,
            issued_at_us: None,
        };
        let _ = self.store.touch_api_token(row.id, t).await;
        if let Ok(mut c) = self.api_token_cache.write() {
            if c.len() > 10_000 {
                c.clear();
            }
            c.insert(hash, (p.clone(), Instant::now()));
        }
        Some(p)
    }
}
