//! Revocation of access tokens (JWTs). A JWT is stateless, so logout, disable, delete, role
//! and password changes raise the user's `tokens_valid_after`; [`App::session_valid`]
//! refuses tokens issued earlier. The value is cached per user for
//! [`SESSION_CACHE_TTL`] (one store read per user and second at most, keeping the hot path
//! cheap) and updated locally on every bump, so this replica enforces revocations at once
//! and other replicas within the TTL.

use std::time::{Duration, Instant};

use uuid::Uuid;

use super::App;
use crate::auth::jwt::unix_now_us;
use crate::auth::{Principal, Via};
use crate::error::Result;
use crate::store::StoreError;

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
        let Some(iat) = p.issued_at_us else {
            return false;
        };
        if let Ok(c) = self.session_cache.read()
            && let Some((after, at)) = c.get(&p.user_id)
            && at.elapsed() < SESSION_CACHE_TTL
        {
            return iat >= *after;
        }
        let after = match self.store.tokens_valid_after(p.user_id).await {
            Ok(Some(v)) => v,
            // Deleted user: refuse (and cache that, as a value no token can reach).
            Ok(None) => i64::MAX,
            Err(e) => {
                tracing::warn!(error = %e, "tokens_valid_after lookup failed");
                return false;
            }
        };
        self.cache_valid_after(p.user_id, after);
        iat >= after
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
        if let Ok(mut c) = self.api_token_cache.write() {
            c.retain(|_, (p, _)| p.user_id != user);
        }
        Ok(())
    }

    /// Forgets a deleted user: every token of theirs is refused from now on.
    pub(crate) fn forget_user_sessions(&self, user: Uuid) {
        self.cache_valid_after(user, i64::MAX);
        if let Ok(mut c) = self.api_token_cache.write() {
            c.retain(|_, (p, _)| p.user_id != user);
        }
    }
}
