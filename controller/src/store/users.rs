//! Users, refresh tokens and API tokens.

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use super::StoreResult;

str_enum!(
    /// User / API token role.
    Role { Admin = "admin", Operator = "operator", Viewer = "viewer" }
);

/// What [`Users::update_user`] / [`Users::delete_user`] report in `Conflict` when the change
/// would leave no enabled admin.
pub const LAST_ADMIN: &str = "last_admin";

#[derive(Clone, PartialEq, sqlx::FromRow)]
pub struct User {
    pub id: Uuid,
    /// As entered (case preserved); uniqueness is case-insensitive.
    pub username: String,
    pub password_hash: String,
    #[sqlx(try_from = "String")]
    pub role: Role,
    pub must_change_password: bool,
    pub disabled: bool,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("password_hash", &"<redacted>")
            .field("role", &self.role)
            .field("must_change_password", &self.must_change_password)
            .field("disabled", &self.disabled)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

#[derive(Clone)]
pub struct NewUser {
    pub username: String,
    pub password_hash: String,
    pub role: Role,
    pub must_change_password: bool,
}

impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("username", &self.username)
            .field("password_hash", &"<redacted>")
            .field("role", &self.role)
            .field("must_change_password", &self.must_change_password)
            .finish()
    }
}

/// Partial update; `None` leaves the field unchanged.
#[derive(Clone, Default)]
pub struct UserUpdate {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
    pub must_change_password: Option<bool>,
    pub password_hash: Option<String>,
}

impl std::fmt::Debug for UserUpdate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserUpdate")
            .field("role", &self.role)
            .field("disabled", &self.disabled)
            .field("must_change_password", &self.must_change_password)
            .field(
                "password_hash",
                &self.password_hash.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct RefreshToken {
    pub id: Uuid,
    pub user_id: Uuid,
    pub family_id: Uuid,
    pub token_hash: String,
    pub expires_at: OffsetDateTime,
    pub created_at: OffsetDateTime,
    pub used_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewRefreshToken {
    pub user_id: Uuid,
    pub family_id: Uuid,
    pub token_hash: String,
    pub expires_at: OffsetDateTime,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ApiToken {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub token_hash: String,
    /// Non-secret leading characters shown in listings.
    pub prefix: String,
    #[sqlx(try_from = "String")]
    pub role: Role,
    pub created_at: OffsetDateTime,
    pub last_used_at: Option<OffsetDateTime>,
    pub expires_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
    /// The API token that minted this one (`None`: minted by a session). Revoking a token
    /// revokes its descendants.
    pub parent_id: Option<Uuid>,
}

#[derive(Debug, Clone)]
pub struct NewApiToken {
    pub user_id: Uuid,
    pub name: String,
    pub token_hash: String,
    pub prefix: String,
    pub role: Role,
    pub expires_at: Option<OffsetDateTime>,
    /// The minting API token; it must belong to the same user and be neither revoked nor
    /// expired, else [`Users::insert_api_token`] is `Conflict(`[`API_TOKEN_PARENT`]`)`.
    pub parent_id: Option<Uuid>,
}

/// What a token and its ancestors say about it (see [`Users::api_token_chain`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenChain {
    /// Tokens in the chain: 1 for a token minted by a session, 0 when it does not exist.
    pub len: i64,
    /// Whether the token or any ancestor is revoked or expired.
    pub dead: bool,
}

/// What [`Users::insert_api_token`] reports in `Conflict` when the parent token is missing,
/// revoked, expired or another user's.
pub const API_TOKEN_PARENT: &str = "api_token_parent";

/// Longest ancestor chain [`Users::api_token_chain`] follows (a guard against a deep
/// chain making every check slow; the service refuses to mint beyond a smaller depth).
pub const TOKEN_CHAIN_MAX: i64 = 64;

/// Accounts and their credentials.
#[async_trait]
pub trait Users: Send + Sync {
    // users
    async fn create_user(&self, new: NewUser) -> StoreResult<User>;
    async fn get_user_by_id(&self, id: Uuid) -> StoreResult<Option<User>>;
    /// Case-insensitive.
    async fn get_user_by_username(&self, username: &str) -> StoreResult<Option<User>>;
    /// Ordered by username (case-insensitive).
    async fn list_users(&self) -> StoreResult<Vec<User>>;
    /// Atomically refuses (`Conflict(LAST_ADMIN)`) a change that would leave no enabled
    /// admin (demoting or disabling the last one), also under concurrent calls.
    async fn update_user(&self, id: Uuid, update: UserUpdate) -> StoreResult<User>;
    /// Also deletes the user's refresh and API tokens (cascade). Refuses
    /// (`Conflict(LAST_ADMIN)`) to delete the last enabled admin, atomically.
    async fn delete_user(&self, id: Uuid) -> StoreResult<()>;
    async fn count_users(&self) -> StoreResult<i64>;
    /// Access tokens of the user issued before this instant (microseconds since the Unix
    /// epoch) are invalid; `None` when the user does not exist.
    async fn tokens_valid_after(&self, id: Uuid) -> StoreResult<Option<i64>>;
    /// Raises `tokens_valid_after` to `at_us` (never lowers it). A missing user is `NotFound`.
    async fn bump_tokens_valid_after(&self, id: Uuid, at_us: i64) -> StoreResult<()>;

    // refresh tokens
    async fn insert_refresh_token(&self, new: NewRefreshToken) -> StoreResult<RefreshToken>;
    async fn get_refresh_token_by_hash(
        &self,
        token_hash: &str,
    ) -> StoreResult<Option<RefreshToken>>;
    /// Atomically sets `used_at` only if the token is neither used nor revoked.
    /// `Ok(true)` = this caller consumed it; `Ok(false)` = already used/revoked (reuse!) or missing.
    async fn mark_refresh_token_used(&self, id: Uuid, at: OffsetDateTime) -> StoreResult<bool>;
    /// Revokes every not-yet-revoked token of the family; returns how many.
    async fn revoke_refresh_family(&self, family_id: Uuid, at: OffsetDateTime) -> StoreResult<u64>;
    async fn revoke_user_refresh_tokens(
        &self,
        user_id: Uuid,
        at: OffsetDateTime,
    ) -> StoreResult<u64>;
    /// Whether any token of the refresh family is revoked (families are revoked as a whole:
    /// logout, reuse detection, disabling); access tokens of such a family are refused.
    async fn refresh_family_revoked(&self, family_id: Uuid) -> StoreResult<bool>;

    // API tokens
    async fn insert_api_token(&self, new: NewApiToken) -> StoreResult<ApiToken>;
    async fn get_api_token_by_hash(&self, token_hash: &str) -> StoreResult<Option<ApiToken>>;
    async fn get_api_token(&self, id: Uuid) -> StoreResult<Option<ApiToken>>;
    async fn list_api_tokens_for_user(&self, user_id: Uuid) -> StoreResult<Vec<ApiToken>>;
    /// Revokes the token and every descendant (tokens it minted, and theirs) not revoked yet.
    async fn revoke_api_token(&self, id: Uuid, at: OffsetDateTime) -> StoreResult<()>;
    /// Revokes every not-yet-revoked API token of the user; returns how many.
    async fn revoke_user_api_tokens(&self, user_id: Uuid, at: OffsetDateTime) -> StoreResult<u64>;
    /// The token and its ancestors (at most [`TOKEN_CHAIN_MAX`]) as of `at`: a child minted
    /// while its parent was being revoked is caught here even if the cascade missed it.
    async fn api_token_chain(&self, id: Uuid, at: OffsetDateTime) -> StoreResult<TokenChain>;
    async fn touch_api_token(&self, id: Uuid, at: OffsetDateTime) -> StoreResult<()>;
}

/// Serialises admin-removing user changes inside transaction `$tx` (PostgreSQL: a
/// transaction-scoped advisory lock; SQLite already has a single writer).
macro_rules! admin_guard_lock {
    ($tx:ident) => {{
        if matches!(Self::BACKEND, Backend::Postgres) {
            sqlx::query("SELECT pg_advisory_xact_lock(7428301)")
                .execute(&mut *$tx)
                .await?;
        }
    }};
}

/// Implements [`Users`] for a backend (`impl_users!(SqliteStore)`): one body for both
/// databases, expanded in the backend module (which brings the names into scope).
macro_rules! impl_users {
    ($ty:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::users::Users for $ty {
            async fn create_user(&self, new: NewUser) -> StoreResult<User> {
                check_text(&[&new.username, &new.password_hash])?;
                let t = now();
                let u = User {
                    id: new_id(),
                    username: new.username,
                    password_hash: new.password_hash,
                    role: new.role,
                    must_change_password: new.must_change_password,
                    disabled: false,
                    created_at: t,
                    updated_at: t,
                };
                sqlx::query(
                    "INSERT INTO users (id, username, password_hash, role, must_change_password, disabled, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(u.id)
                .bind(&u.username)
                .bind(&u.password_hash)
                .bind(u.role.as_str())
                .bind(u.must_change_password)
                .bind(u.disabled)
                .bind(ts(t))
                .bind(ts(t))
                .execute(self.w())
                .await
                ?;
                Ok(u)
            }

            async fn get_user_by_id(&self, id: Uuid) -> StoreResult<Option<User>> {
                sqlx::query_as::<_, User>("SELECT * FROM users WHERE id = $1")
                    .bind(id)
                    .fetch_optional(self.r())
                    .await
                    .map_err(StoreError::from)
            }

            async fn get_user_by_username(&self, username: &str) -> StoreResult<Option<User>> {
                sqlx::query_as::<_, User>("SELECT * FROM users WHERE lower(username) = lower($1)")
                    .bind(username)
                    .fetch_optional(self.r())
                    .await
                    .map_err(StoreError::from)
            }

            async fn list_users(&self) -> StoreResult<Vec<User>> {
                sqlx::query_as::<_, User>("SELECT * FROM users ORDER BY lower(username), id")
                    .fetch_all(self.r())
                    .await
                    .map_err(StoreError::from)
            }

            async fn update_user(&self, id: Uuid, update: UserUpdate) -> StoreResult<User> {
                check_opt(&[update.password_hash.as_deref()])?;
                let guarded = update.role.is_some_and(|r| r != Role::Admin) || update.disabled == Some(true);
                let mut tx = self.w().begin().await?;
                if guarded {
                    admin_guard_lock!(tx);
                }
                // The last-admin guard is part of the statement: under the lock (PostgreSQL)
                // or the single writer (SQLite) no other demotion can interleave.
                let u = sqlx::query_as::<_, User>(
                    "UPDATE users SET role = COALESCE($2, role), disabled = COALESCE($3, disabled), \
                     must_change_password = COALESCE($4, must_change_password), \
                     password_hash = COALESCE($5, password_hash), updated_at = $6 \
                     WHERE id = $1 AND NOT ( \
                       role = 'admin' AND NOT disabled \
                       AND (COALESCE($2, role) <> 'admin' OR COALESCE($3, disabled)) \
                       AND NOT EXISTS (SELECT 1 FROM users o WHERE o.id <> $1 AND o.role = 'admin' AND NOT o.disabled) \
                     ) RETURNING *",
                )
                .bind(id)
                .bind(update.role.map(|r| r.as_str()))
                .bind(update.disabled)
                .bind(update.must_change_password)
                .bind(update.password_hash)
                .bind(ts(now()))
                .fetch_optional(&mut *tx)
                .await
                ?;
                let res = match u {
                    Some(u) => Ok(u),
                    None => {
                        let exists = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM users WHERE id = $1")
                            .bind(id)
                            .fetch_one(&mut *tx)
                            .await
                            ?;
                        Err(if exists > 0 { StoreError::Conflict(LAST_ADMIN.into()) } else { StoreError::NotFound })
                    }
                };
                tx.commit().await?;
                res
            }

            async fn delete_user(&self, id: Uuid) -> StoreResult<()> {
                let mut tx = self.w().begin().await?;
                admin_guard_lock!(tx);
                let r = sqlx::query(
                    "DELETE FROM users WHERE id = $1 AND NOT ( \
                       role = 'admin' AND NOT disabled \
                       AND NOT EXISTS (SELECT 1 FROM users o WHERE o.id <> $1 AND o.role = 'admin' AND NOT o.disabled) \
                     )",
                )
                .bind(id)
                .execute(&mut *tx)
                .await
                ?;
                let res = if r.rows_affected() > 0 {
                    Ok(())
                } else {
                    let exists = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM users WHERE id = $1")
                        .bind(id)
                        .fetch_one(&mut *tx)
                        .await
                        ?;
                    Err(if exists > 0 { StoreError::Conflict(LAST_ADMIN.into()) } else { StoreError::NotFound })
                };
                tx.commit().await?;
                res
            }

            async fn tokens_valid_after(&self, id: Uuid) -> StoreResult<Option<i64>> {
                sqlx::query_scalar::<_, i64>("SELECT tokens_valid_after FROM users WHERE id = $1")
                    .bind(id)
                    .fetch_optional(self.r())
                    .await
                    .map_err(StoreError::from)
            }

            async fn bump_tokens_valid_after(&self, id: Uuid, at_us: i64) -> StoreResult<()> {
                let r = sqlx::query(
                    "UPDATE users SET tokens_valid_after = CASE WHEN tokens_valid_after < $2 \
                     THEN $2 ELSE tokens_valid_after END WHERE id = $1",
                )
                .bind(id)
                .bind(at_us)
                .execute(self.w())
                .await
                ?;
                if r.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
            }

            async fn count_users(&self) -> StoreResult<i64> {
                sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM users").fetch_one(self.r()).await.map_err(StoreError::from)
            }

            async fn insert_refresh_token(&self, new: NewRefreshToken) -> StoreResult<RefreshToken> {
                check_text(&[&new.token_hash])?;
                check_opt(&[new.ip.as_deref(), new.user_agent.as_deref()])?;
                let t = RefreshToken {
                    id: new_id(),
                    user_id: new.user_id,
                    family_id: new.family_id,
                    token_hash: new.token_hash,
                    expires_at: truncate(new.expires_at),
                    created_at: now(),
                    used_at: None,
                    revoked_at: None,
                    ip: new.ip,
                    user_agent: new.user_agent,
                };
                sqlx::query(
                    "INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, expires_at, created_at, ip, user_agent) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(t.id)
                .bind(t.user_id)
                .bind(t.family_id)
                .bind(&t.token_hash)
                .bind(ts(t.expires_at))
                .bind(ts(t.created_at))
                .bind(&t.ip)
                .bind(&t.user_agent)
                .execute(self.w())
                .await
                ?;
                Ok(t)
            }

            async fn get_refresh_token_by_hash(&self, token_hash: &str) -> StoreResult<Option<RefreshToken>> {
                sqlx::query_as::<_, RefreshToken>("SELECT * FROM refresh_tokens WHERE token_hash = $1")
                    .bind(token_hash)
                    .fetch_optional(self.w())
                    .await
                    .map_err(StoreError::from)
            }

            async fn mark_refresh_token_used(&self, id: Uuid, at: OffsetDateTime) -> StoreResult<bool> {
                let r = sqlx::query(
                    "UPDATE refresh_tokens SET used_at = $2 WHERE id = $1 AND used_at IS NULL AND revoked_at IS NULL",
                )
                .bind(id)
                .bind(ts(at))
                .execute(self.w())
                .await
                ?;
                Ok(r.rows_affected() == 1)
            }

            async fn revoke_refresh_family(&self, family_id: Uuid, at: OffsetDateTime) -> StoreResult<u64> {
                let r = sqlx::query("UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL")
                    .bind(family_id)
                    .bind(ts(at))
                    .execute(self.w())
                    .await
                    ?;
                Ok(r.rows_affected())
            }

            async fn refresh_family_revoked(&self, family_id: Uuid) -> StoreResult<bool> {
                sqlx::query_scalar::<_, i64>(
                    "SELECT COUNT(*) FROM (SELECT 1 FROM refresh_tokens WHERE family_id = $1 AND revoked_at IS NOT NULL LIMIT 1) r",
                )
                .bind(family_id)
                .fetch_one(self.r())
                .await
                .map(|n| n > 0)
                .map_err(StoreError::from)
            }

            async fn revoke_user_refresh_tokens(&self, user_id: Uuid, at: OffsetDateTime) -> StoreResult<u64> {
                let r = sqlx::query("UPDATE refresh_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL")
                    .bind(user_id)
                    .bind(ts(at))
                    .execute(self.w())
                    .await
                    ?;
                Ok(r.rows_affected())
            }

            async fn insert_api_token(&self, new: NewApiToken) -> StoreResult<ApiToken> {
                check_text(&[&new.name, &new.token_hash, &new.prefix])?;
                let t = ApiToken {
                    id: new_id(),
                    user_id: new.user_id,
                    name: new.name,
                    token_hash: new.token_hash,
                    prefix: new.prefix,
                    role: new.role,
                    created_at: now(),
                    last_used_at: None,
                    expires_at: new.expires_at.map(truncate),
                    revoked_at: None,
                    parent_id: new.parent_id,
                };
                // The parent check is part of the statement: a revoked, expired or foreign
                // parent inserts nothing.
                let r = sqlx::query(
                    "INSERT INTO api_tokens (id, user_id, name, token_hash, prefix, role, created_at, expires_at, parent_id) \
                     SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 WHERE $9 IS NULL OR EXISTS ( \
                       SELECT 1 FROM api_tokens p WHERE p.id = $9 AND p.user_id = $2 AND p.revoked_at IS NULL \
                       AND (p.expires_at IS NULL OR p.expires_at > $7))",
                )
                .bind(t.id)
                .bind(t.user_id)
                .bind(&t.name)
                .bind(&t.token_hash)
                .bind(&t.prefix)
                .bind(t.role.as_str())
                .bind(ts(t.created_at))
                .bind(t.expires_at.map(ts))
                .bind(t.parent_id)
                .execute(self.w())
                .await
                ?;
                if r.rows_affected() == 0 {
                    return Err(StoreError::Conflict(API_TOKEN_PARENT.into()));
                }
                Ok(t)
            }

            async fn get_api_token(&self, id: Uuid) -> StoreResult<Option<ApiToken>> {
                sqlx::query_as::<_, ApiToken>("SELECT * FROM api_tokens WHERE id = $1")
                    .bind(id)
                    .fetch_optional(self.r())
                    .await
                    .map_err(StoreError::from)
            }

            async fn revoke_user_api_tokens(&self, user_id: Uuid, at: OffsetDateTime) -> StoreResult<u64> {
                let r = sqlx::query("UPDATE api_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL")
                    .bind(user_id)
                    .bind(ts(at))
                    .execute(self.w())
                    .await
                    ?;
                Ok(r.rows_affected())
            }

            async fn api_token_chain(&self, id: Uuid, at: OffsetDateTime) -> StoreResult<TokenChain> {
                let (len, dead) = sqlx::query_as::<_, (i64, i64)>(
                    "WITH RECURSIVE chain (id, parent_id, revoked_at, expires_at, depth) AS ( \
                       SELECT id, parent_id, revoked_at, expires_at, 1 FROM api_tokens WHERE id = $1 \
                       UNION ALL \
                       SELECT a.id, a.parent_id, a.revoked_at, a.expires_at, c.depth + 1 \
                       FROM api_tokens a JOIN chain c ON a.id = c.parent_id WHERE c.depth < $3 \
                     ) SELECT COUNT(*), COALESCE(SUM(CASE WHEN revoked_at IS NOT NULL \
                       OR (expires_at IS NOT NULL AND expires_at <= $2) THEN 1 ELSE 0 END), 0) FROM chain",
                )
                .bind(id)
                .bind(ts(at))
                .bind(TOKEN_CHAIN_MAX)
                .fetch_one(self.r())
                .await
                ?;
                Ok(TokenChain { len, dead: dead > 0 })
            }

            async fn get_api_token_by_hash(&self, token_hash: &str) -> StoreResult<Option<ApiToken>> {
                sqlx::query_as::<_, ApiToken>("SELECT * FROM api_tokens WHERE token_hash = $1")
                    .bind(token_hash)
                    .fetch_optional(self.r())
                    .await
                    .map_err(StoreError::from)
            }

            async fn list_api_tokens_for_user(&self, user_id: Uuid) -> StoreResult<Vec<ApiToken>> {
                sqlx::query_as::<_, ApiToken>("SELECT * FROM api_tokens WHERE user_id = $1 ORDER BY created_at, id")
                    .bind(user_id)
                    .fetch_all(self.r())
                    .await
                    .map_err(StoreError::from)
            }

            async fn revoke_api_token(&self, id: Uuid, at: OffsetDateTime) -> StoreResult<()> {
                let mut tx = self.w().begin().await?;
                let r = sqlx::query("UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1")
                    .bind(id)
                    .bind(ts(at))
                    .execute(&mut *tx)
                    .await
                    ?;
                if r.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                // Descendants, however deep (UNION, not UNION ALL: it stops on its own).
                sqlx::query(
                    "WITH RECURSIVE sub (id) AS ( \
                       SELECT id FROM api_tokens WHERE parent_id = $1 \
                       UNION SELECT a.id FROM api_tokens a JOIN sub s ON a.parent_id = s.id \
                     ) UPDATE api_tokens SET revoked_at = $2 \
                     WHERE revoked_at IS NULL AND id IN (SELECT id FROM sub)",
                )
                .bind(id)
                .bind(ts(at))
                .execute(&mut *tx)
                .await
                ?;
                tx.commit().await?;
                Ok(())
            }

            async fn touch_api_token(&self, id: Uuid, at: OffsetDateTime) -> StoreResult<()> {
                let r = sqlx::query("UPDATE api_tokens SET last_used_at = $2 WHERE id = $1")
                    .bind(id)
                    .bind(ts(at))
                    .execute(self.w())
                    .await
                    ?;
                if r.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
            }
        }
    };
}

#[cfg(test)]
mod debug_tests {
    use super::*;
    use crate::store::now;

    #[test]
    fn user_debug_redacts_password_hash() {
        let u = User {
            id: Uuid::nil(),
            username: "alice".into(),
            password_hash: "$argon2id$SECRETHASH".into(),
            role: Role::Viewer,
            must_change_password: false,
            disabled: false,
            created_at: now(),
            updated_at: now(),
        };
        let d = format!("{u:?}");
        assert!(!d.contains("SECRETHASH"), "{d}");
        assert!(d.contains("alice") && d.contains("<redacted>"));
        let n = NewUser {
            username: "bob".into(),
            password_hash: "SECRETHASH".into(),
            role: Role::Viewer,
            must_change_password: true,
        };
        assert!(!format!("{n:?}").contains("SECRETHASH"));
        let up = UserUpdate {
            password_hash: Some("SECRETHASH".into()),
            ..Default::default()
        };
        assert!(!format!("{up:?}").contains("SECRETHASH"));
    }
}
