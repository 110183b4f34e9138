//! Login, refresh (rotation with reuse detection), logout, password change and the
//! first-start admin.

use serde_json::json;
use time::Duration;
use uuid::Uuid;

use super::{App, Ctx};
use crate::auth::{self, REFRESH_PREFIX, Role, password};
use crate::error::{Error, Result};
use crate::store::{NewRefreshToken, NewUser, User, UserUpdate, new_id, now};

/// What a successful login or refresh returns.
#[derive(Clone)]
pub struct TokenPair {
    /// JWT access token.
    pub access_token: String,
    /// Opaque refresh token (shown once).
    pub refresh_token: String,
    /// Access token lifetime, seconds.
    pub expires_in: u64,
    /// The user.
    pub user: User,
}

impl std::fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenPair")
            .field("access_token", &"<redacted>")
            .field("refresh_token", &"<redacted>")
            .field("expires_in", &self.expires_in)
            .field("user", &self.user)
            .finish()
    }
}

fn bad_credentials() -> Error {
    Error::Unauthorized("invalid username or password".into())
}

fn bad_refresh() -> Error {
    Error::Unauthorized("invalid or expired refresh token".into())
}

impl App {
    /// Creates `admin` with a random must-change password when there are no users.
    /// Returns the password to print once.
    pub async fn bootstrap_admin(&self) -> Result<Option<String>> {
        if self.store.count_users().await? > 0 {
            return Ok(None);
        }
        let pw = auth::random_password();
        let hash = password::hash(pw.clone()).await.map_err(Error::internal)?;
        self.store
            .create_user(NewUser {
                username: "admin".into(),
                password_hash: hash,
                role: Role::Admin,
                must_change_password: true,
            })
            .await?;
        self.audit(
            &Ctx {
                principal: None,
                ip: None,
            },
            "user.bootstrap",
            "user",
            Some("admin".into()),
            json!({}),
        )
        .await;
        Ok(Some(pw))
    }

    async fn issue_pair(
        &self,
        user: User,
        family: Uuid,
        ctx: &Ctx,
        ua: Option<String>,
    ) -> Result<TokenPair> {
        let refresh = auth::random_token(REFRESH_PREFIX);
        let ttl = i64::try_from(self.config.refresh_token_ttl_secs).unwrap_or(i64::MAX / 2);
        self.store
            .insert_refresh_token(NewRefreshToken {
                user_id: user.id,
                family_id: family,
                token_hash: auth::token_hash(&refresh),
                expires_at: now() + Duration::seconds(ttl),
                ip: ctx.ip.clone(),
                user_agent: ua,
            })
            .await?;
        let access = self
            .jwt
            .issue(
                user.id,
                &user.username,
                user.role,
                user.must_change_password,
                family,
            )
            .map_err(Error::internal)?;
        Ok(TokenPair {
            access_token: access,
            refresh_token: refresh,
            expires_in: self.jwt.ttl(),
            user,
        })
    }

    /// Password login, throttled per account and source (see [`crate::auth::throttle`]).
    pub async fn login(
        &self,
        ctx: &Ctx,
        username: &str,
        pw: &str,
        ua: Option<String>,
    ) -> Result<TokenPair> {
        let ip = ctx.ip.clone().unwrap_or_default();
        // Reserved before the lookup and argon2, so parallel attempts count at once; the
        // attempt stays counted (as a failure) unless the login succeeds.
        let attempt = match self.throttle.reserve(&ip, username) {
            Ok(a) => a,
            Err(wait) => {
                self.metrics.inc_login("throttled");
                return Err(Error::TooManyRequests(wait));
            }
        };
        if pw.len() > password::MAX_LEN || username.len() > 128 {
            return Err(bad_credentials());
        }
        let user = self.store.get_user_by_username(username).await?;
        let hash = user
            .as_ref()
            .map(|u| u.password_hash.clone())
            .unwrap_or_else(|| password::dummy_hash().to_owned());
        let t0 = std::time::Instant::now();
        let ok = password::verify(pw.to_owned(), hash).await;
        self.metrics.observe_argon2(t0.elapsed());
        let user = match user {
            Some(u) if ok && !u.disabled => u,
            other => {
                self.throttle.fail(attempt);
                self.metrics.inc_login("failure");
                // A typed username may be a mistyped password: record it only when it names
                // an existing account, otherwise just that the user is unknown.
                let (target, details) = match &other {
                    Some(u) => (
                        Some(u.id.to_string()),
                        json!({"username": u.username, "reason": if u.disabled { "disabled" } else { "bad_password" }}),
                    ),
                    None => (None, json!({"reason": "unknown_user"})),
                };
                self.audit(ctx, "auth.login_failed", "user", target, details)
                    .await;
                return Err(bad_credentials());
            }
        };
        self.throttle.succeed(attempt);
        self.metrics.inc_login("success");
        let pair = self.issue_pair(user, new_id(), ctx, ua).await?;
        let c = Ctx {
            principal: None,
            ip: ctx.ip.clone(),
        };
        self.audit(
            &c,
            "auth.login",
            "user",
            Some(pair.user.id.to_string()),
            json!({"username": pair.user.username}),
        )
        .await;
        Ok(pair)
    }

    /// Rotates a refresh token; a reused token revokes its whole family.
    pub async fn refresh(&self, ctx: &Ctx, token: &str, ua: Option<String>) -> Result<TokenPair> {
        if !token.starts_with(REFRESH_PREFIX) || token.len() > 200 {
            return Err(bad_refresh());
        }
        let Some(rt) = self
            .store
            .get_refresh_token_by_hash(&auth::token_hash(token))
            .await?
        else {
            return Err(bad_refresh());
        };
        let t = now();
        if rt.used_at.is_some() || rt.revoked_at.is_some() {
            // Also ends the access token already issued from the family (its `sid`).
            let n = self.revoke_family(rt.user_id, rt.family_id).await?;
            tracing::warn!(user_id = %rt.user_id, revoked = n, "Refresh token reused; family revoked.");
            self.audit(
                ctx,
                "auth.refresh_reuse",
                "user",
                Some(rt.user_id.to_string()),
                json!({"revoked": n}),
            )
            .await;
            return Err(bad_refresh());
        }
        if rt.expires_at <= t {
            return Err(bad_refresh());
        }
        if !self.store.mark_refresh_token_used(rt.id, t).await? {
            self.revoke_family(rt.user_id, rt.family_id).await?;
            self.audit(
                ctx,
                "auth.refresh_reuse",
                "user",
                Some(rt.user_id.to_string()),
                json!({}),
            )
            .await;
            return Err(bad_refresh());
        }
        let Some(user) = self.store.get_user_by_id(rt.user_id).await? else {
            return Err(bad_refresh());
        };
        if user.disabled {
            self.revoke_family(rt.user_id, rt.family_id).await?;
            return Err(bad_refresh());
        }
        self.issue_pair(user, rt.family_id, ctx, ua).await
    }

    /// Ends the caller's session (its refresh family), or all sessions with `all`.
    pub async fn logout(&self, ctx: &Ctx, all: bool) -> Result<()> {
        let p = ctx.who()?;
        let t = now();
        if all {
            self.store.revoke_user_refresh_tokens(p.user_id, t).await?;
        } else if let Some(f) = p.family {
            self.revoke_family(p.user_id, f).await?;
        }
        // The access token must not outlive the logout. JWTs carry no per-session state, so
        // this ends the access tokens of the user's other sessions too; they refresh.
        self.revoke_access_tokens(p.user_id).await?;
        self.audit(
            ctx,
            "auth.logout",
            "user",
            Some(p.user_id.to_string()),
            json!({"all": all}),
        )
        .await;
        Ok(())
    }

    /// The caller's user row.
    pub async fn me(&self, ctx: &Ctx) -> Result<User> {
        let p = ctx.who()?;
        self.store
            .get_user_by_id(p.user_id)
            .await?
            .ok_or_else(|| Error::Unauthorized("user no longer exists".into()))
    }

    /// Changes the caller's password, ends every session and API token of the user and
    /// returns a fresh pair. Wrong current passwords are throttled like logins, per user and
    /// source.
    pub async fn change_password(
        &self,
        ctx: &Ctx,
        current: &str,
        new: &str,
        ua: Option<String>,
    ) -> Result<TokenPair> {
        let user = self.me(ctx).await?;
        // `#` cannot occur in a username, so this never shares a key with a login.
        let key = format!("#password-change:{}", user.id);
        let attempt = match self
            .throttle
            .reserve(ctx.ip.as_deref().unwrap_or_default(), &key)
        {
            Ok(a) => a,
            Err(wait) => return Err(Error::TooManyRequests(wait)),
        };
        if current.len() > password::MAX_LEN
            || !password::verify(current.to_owned(), user.password_hash.clone()).await
        {
            self.throttle.fail(attempt);
            return Err(Error::field("current_password", "does not match"));
        }
        self.throttle.succeed(attempt);
        password::check_policy(new).map_err(|m| Error::field("new_password", m))?;
        if new == current {
            return Err(Error::field(
                "new_password",
                "must differ from the current password",
            ));
        }
        let hash = password::hash(new.to_owned())
            .await
            .map_err(Error::internal)?;
        let user = self
            .store
            .update_user(
                user.id,
                UserUpdate {
                    password_hash: Some(hash),
                    must_change_password: Some(false),
                    ..Default::default()
                },
            )
            .await?;
        self.store
            .revoke_user_refresh_tokens(user.id, now())
            .await?;
        self.store.revoke_user_api_tokens(user.id, now()).await?;
        self.revoke_access_tokens(user.id).await?;
        self.audit(
            ctx,
            "auth.password_change",
            "user",
            Some(user.id.to_string()),
            json!({}),
        )
        .await;
        self.issue_pair(user, new_id(), ctx, ua).await
    }
}

#[cfg(test)]
mod debug_tests {
    use super::*;

    #[test]
    fn token_pair_debug_redacts_tokens() {
        let p = TokenPair {
            access_token: "ACCESS-SECRET".into(),
            refresh_token: "REFRESH-SECRET".into(),
            expires_in: 60,
            user: User {
                id: Uuid::nil(),
                username: "u".into(),
                password_hash: "HASH-SECRET".into(),
                role: Role::Admin,
                must_change_password: false,
                disabled: false,
                created_at: now(),
                updated_at: now(),
            },
        };
        let d = format!("{p:?}");
        for s in ["ACCESS-SECRET", "REFRESH-SECRET", "HASH-SECRET"] {
            assert!(!d.contains(s), "{d}");
        }
        assert!(d.contains("<redacted>"));
    }
}
