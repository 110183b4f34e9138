//! Revocation of access tokens (JWTs). A JWT is stateless, so logout, disable, delete, role
//! and password changes raise the user's `tokens_valid_after`; [`App::session_valid`]
//! refuses tokens issued earlier, and tokens whose refresh family (`sid`) is revoked (a
//! reused refresh token revokes its family without touching the user's other sessions).
//! Both values are cached for [`SESSION_CACHE_TTL`] (one store read per user or family and
//! second at most, keeping the hot path cheap) and updated locally on every revocation, so
//! this replica enforces revocations at once and other replicas within the TTL. These
//! checks run after the JWT verification cache on every request, so that cache never
//! hides a revocation.

use std::time::{Duration, Instant};

use uuid::Uuid;

use super::App;
use crate::auth::jwt::unix_now_us;
use crate::auth::{Principal, Via};
use crate::error::Result;
use crate::store::{StoreError, now};

/// How long a user's `tokens_valid_after` is trusted from the cache.
pub const SESSION_CACHE_TTL: Duration = Duration::from_secs(1);
const SESSION_CACHE_MAX: usize = 50_000;

impl App {
    /// Whether a session principal's access token is still valid (API tokens are checked
    /// against their own row and always pass here). A missing user or a store error is
    /// invalid.
    pub async fn session_valid(&self, p: &Principal) -> bool {
        if !matches!(p.via, Via::Session) {
            return true;
        }
        let (Some(iat), Some(family)) = (p.issued_at_us, p.family) else {
            return false;
        };
        self.valid_after_ok(p.user_id, iat).await && !self.family_revoked(family).await
    }

    async fn valid_after_ok(&self, user: Uuid, iat: i64) -> bool {
        if let Ok(c) = self.session_cache.read()
            && let Some((after, at)) = c.get(&user)
            && at.elapsed() < SESSION_CACHE_TTL
        {
            return iat >= *after;
        }
        let after = match self.store.tokens_valid_after(user).await {
            Ok(Some(v)) => v,
            // Deleted user: refuse (and cache that, as a value no token can reach).
            Ok(None) => i64::MAX,
            Err(e) => {
                tracing::warn!(error = %e, "tokens_valid_after lookup failed");
                return false;
            }
        };
        self.cache_valid_after(user, after);
        iat >= after
    }

    /// Whether the refresh family is revoked; a store error counts as revoked.
    async fn family_revoked(&self, family: Uuid) -> bool {
        if let Ok(c) = self.family_cache.read()
            && let Some((revoked, at)) = c.get(&family)
            && (*revoked || at.elapsed() < SESSION_CACHE_TTL)
        {
            return *revoked;
        }
        match self.store.refresh_family_revoked(family).await {
            Ok(revoked) => {
                self.cache_family(family, revoked);
                revoked
            }
            Err(e) => {
                tracing::warn!(error = %e, "refresh family lookup failed");
                true
            }
        }
    }

    fn cache_family(&self, family: Uuid, revoked: bool) {
        if let Ok(mut c) = self.family_cache.write() {
            if c.len() >= SESSION_CACHE_MAX {
                c.retain(|_, (r, at)| *r && at.elapsed() < Duration::from_secs(3600));
                if c.len() >= SESSION_CACHE_MAX {
                    c.clear();
                }
            }
            c.insert(family, (revoked, Instant::now()));
        }
    }

    /// Revokes a refresh family and, with it, every access token issued from it.
    pub(crate) async fn revoke_family(&self, user: Uuid, family: Uuid) -> Result<u64> {
        let n = self.store.revoke_refresh_family(family, now()).await?;
        self.cache_family(family, true);
        self.revocations.notify(user);
        Ok(n)
    }

    /// Whether the credential behind a long-lived connection (a live socket) is still good:
    /// a session as [`App::session_valid`] judges it; an API token re-read from the store
    /// (revoked, expired, a dead ancestor, the owner disabled, deleted, demoted or due to
    /// change the password).
    pub async fn credential_valid(&self, p: &Principal) -> bool {
        match p.via {
            Via::Session => self.session_valid(p).await,
            Via::ApiToken(id) => self
                .verify_api_token_row(id)
                .await
                .is_some_and(|cur| cur.role == p.role && !cur.must_change_password),
        }
    }

    fn cache_valid_after(&self, user: Uuid, after: i64) {
        if let Ok(mut c) = self.session_cache.write() {
            if c.len() >= SESSION_CACHE_MAX {
                c.retain(|_, (_, at)| at.elapsed() < SESSION_CACHE_TTL);
                if c.len() >= SESSION_CACHE_MAX {
                    c.clear();
                }
            }
            c.insert(user, (after, Instant::now()));
        }
    }

    /// Invalidates every access token of `user` issued until now (and drops the user's cached
    /// API-token principals so role changes and disabling apply at once).
    pub async fn revoke_access_tokens(&self, user: Uuid) -> Result<()> {
        let at = unix_now_us();
        match self.store.bump_tokens_valid_after(user, at).await {
            Ok(()) => self.cache_valid_after(user, at),
            Err(StoreError::NotFound) => self.cache_valid_after(user, i64::MAX),
            Err(e) => return Err(e.into()),
        }
        self.forget_api_tokens_of(user);
        self.revocations.notify(user);
        Ok(())
    }

    /// Drops the user's cached API-token principals (after a revocation, role change, …).
    pub(crate) fn forget_api_tokens_of(&self, user: Uuid) {
        if let Ok(mut c) = self.api_token_cache.write() {
            c.retain(|_, (p, _)| p.user_id != user);
        }
    }

    /// Forgets a deleted user: every token of theirs is refused from now on.
    pub(crate) fn forget_user_sessions(&self, user: Uuid) {
        self.cache_valid_after(user, i64::MAX);
        self.forget_api_tokens_of(user);
        self.revocations.notify(user);
    }
}
