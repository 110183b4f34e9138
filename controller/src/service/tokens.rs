//! API tokens for automation: `lgd_<random>`, shown once, stored as SHA-256, identified by
//! a non-secret prefix. A token acts with its own role, capped at its owner's current role,
//! and like a session is refused while its owner must change the password.
//!
//! A token may mint tokens (automation that hands narrower credentials to its jobs), but
//! never one that outranks or outlives it: the child's role is at most the parent's
//! effective role, and it expires no later than the parent (a non-expiring child only from
//! a non-expiring parent or a session). The child records its parent; revoking a token
//! revokes its descendants, and a token whose ancestor is revoked or expired is refused.
//! A password change or reset revokes all the user's tokens.

use std::time::Instant;

use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{API_TOKEN_CACHE_TTL, App, Ctx};
use crate::auth::{self, API_TOKEN_PREFIX, Principal, Role, Via, role_allows};
use crate::error::{Error, Result};
use crate::store::{API_TOKEN_PARENT, ApiToken, NewApiToken, StoreError, now};

/// Longest chain of tokens minted by tokens (a session's token is depth 1).
pub const MAX_TOKEN_DEPTH: i64 = 8;

fn parent_gone() -> Error {
    Error::Unauthorized("the API token used to create this one is no longer valid".into())
}

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
        // For a token, `p.role` is already its effective role (its own, capped at the
        // owner's), so a child can never outrank its parent.
        if !role_allows(p.role, role) {
            return Err(Error::field("role", "cannot exceed your own role"));
        }
        let t = now();
        if expires_at.is_some_and(|e| e <= t) {
            return Err(Error::field("expires_at", "must be in the future"));
        }
        let parent_id = match p.via {
            Via::Session => None,
            Via::ApiToken(id) => {
                let parent = self
                    .store
                    .get_api_token(id)
                    .await?
                    .ok_or_else(parent_gone)?;
                if let Some(limit) = parent.expires_at {
                    match expires_at {
                        None => {
                            return Err(Error::field(
                                "expires_at",
                                "required: a token created with an API token that expires must expire too, no later than it",
                            ));
                        }
                        Some(e) if e > limit => {
                            return Err(Error::field(
                                "expires_at",
                                "must not be later than the expiry of the API token used to create this one",
                            ));
                        }
                        Some(_) => {}
                    }
                }
                let chain = self.store.api_token_chain(id, t).await?;
                if chain.dead || chain.len == 0 {
                    return Err(parent_gone());
                }
                if chain.len >= MAX_TOKEN_DEPTH {
                    return Err(Error::Conflict(format!(
                        "API tokens can be created through at most {} levels of other tokens",
                        MAX_TOKEN_DEPTH - 1
                    )));
                }
                Some(id)
            }
        };
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
                parent_id,
            })
            .await
            .map_err(|e| match e {
                // The parent was revoked (or expired) since it authenticated this request.
                StoreError::Conflict(w) if w == API_TOKEN_PARENT => parent_gone(),
                e => e.into(),
            })?;
        self.audit(
            ctx,
            "api_token.create",
            "api_token",
            Some(row.id.to_string()),
            json!({"name": name, "role": role.as_str(), "prefix": row.prefix, "parent_id": parent_id}),
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

    /// Revokes one of the caller's tokens (admins may revoke anyone's) and every token
    /// minted from it.
    pub async fn revoke_api_token(&self, ctx: &Ctx, id: Uuid) -> Result<()> {
        let p = ctx.who()?;
        let token = self
            .store
            .get_api_token(id)
            .await?
            .filter(|t| t.user_id == p.user_id || p.role == Role::Admin)
            .ok_or(Error::NotFound("api token"))?;
        self.store
            .revoke_api_token(id, now())
            .await
            .map_err(|e| match e {
                StoreError::NotFound => Error::NotFound("api token"),
                e => e.into(),
            })?;
        // Descendants belong to the same user: drop all of the owner's cached tokens.
        self.forget_api_tokens_of(token.user_id);
        self.revocations.notify(token.user_id);
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
        let p = self.principal_of(row, true).await?;
        if let Ok(mut c) = self.api_token_cache.write() {
            if c.len() > 10_000 {
                c.clear();
            }
            c.insert(hash, (p.clone(), Instant::now()));
        }
        Some(p)
    }

    /// The principal of token `id` as the store says now (uncached), `None` when refused.
    pub(crate) async fn verify_api_token_row(&self, id: Uuid) -> Option<Principal> {
        let row = self.store.get_api_token(id).await.ok()??;
        self.principal_of(row, false).await
    }

    /// `touch`: record the use (a request, not a re-check of an open connection).
    async fn principal_of(&self, row: ApiToken, touch: bool) -> Option<Principal> {
        let t = now();
        if row.revoked_at.is_some() || row.expires_at.is_some_and(|e| e <= t) {
            return None;
        }
        if row.parent_id.is_some() {
            let chain = self.store.api_token_chain(row.id, t).await.ok()?;
            if chain.dead {
                return None;
            }
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
        if touch {
            let _ = self.store.touch_api_token(row.id, t).await;
        }
        Some(Principal {
            user_id: user.id,
            username: user.username,
            role,
            must_change_password: user.must_change_password,
            via: Via::ApiToken(row.id),
            family: None,
            issued_at_us: None,
        })
    }
}
