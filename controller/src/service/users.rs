//! User administration (admins only).

use serde_json::json;
use uuid::Uuid;

use super::{App, Ctx};
use crate::auth::{Role, password};
use crate::error::{Error, Result};
use crate::store::{LAST_ADMIN, NewUser, StoreError, User, UserUpdate, now};

/// Checks a username: 1..=64 chars of `[A-Za-z0-9_.-]`.
pub fn check_username(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Error::field(
            "username",
            "must be 1 to 64 characters of A-Z, a-z, 0-9, '_', '.', '-'",
        ))
    }
}

/// Changes to a user.
#[derive(Debug, Default, Clone)]
pub struct UserChanges {
    /// New role.
    pub role: Option<Role>,
    /// Disable/enable.
    pub disabled: Option<bool>,
}

impl App {
    /// Creates a user (also used by `languard admin create-user`).
    pub async fn create_user(
        &self,
        ctx: &Ctx,
        username: &str,
        pw: &str,
        role: Role,
        must_change: bool,
    ) -> Result<User> {
        let mut errs = Vec::new();
        if let Err(Error::Validation(mut v)) = check_username(username) {
            errs.append(&mut v);
        }
        if let Err(m) = password::check_policy(pw) {
            errs.push(crate::error::FieldError {
                field: "password".into(),
                message: m,
            });
        }
        if !errs.is_empty() {
            return Err(Error::Validation(errs));
        }
        let hash = password::hash(pw.to_owned())
            .await
            .map_err(Error::internal)?;
        let user = self
            .store
            .create_user(NewUser {
                username: username.to_owned(),
                password_hash: hash,
                role,
                must_change_password: must_change,
            })
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => Error::Conflict("username already taken".into()),
                e => e.into(),
            })?;
        self.audit(
            ctx,
            "user.create",
            "user",
            Some(user.id.to_string()),
            json!({"username": user.username, "role": role.as_str()}),
        )
        .await;
        Ok(user)
    }

    /// One user.
    pub async fn get_user(&self, id: Uuid) -> Result<User> {
        self.store
            .get_user_by_id(id)
            .await?
            .ok_or(Error::NotFound("user"))
    }

    /// Changes role / disabled. The last active admin cannot be demoted or disabled.
    pub async fn update_user(&self, ctx: &Ctx, id: Uuid, ch: UserChanges) -> Result<User> {
        let before = self.get_user(id).await?;
        // The store refuses atomically when this would leave no enabled admin.
        let updated = self
            .store
            .update_user(
                id,
                UserUpdate {
                    role: ch.role,
                    disabled: ch.disabled,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| match e {
                StoreError::Conflict(w) if w == LAST_ADMIN => {
                    Error::Conflict("cannot demote or disable the last admin".into())
                }
                e => e.into(),
            })?;
        if ch.disabled == Some(true) {
            self.store.revoke_user_refresh_tokens(id, now()).await?;
        }
        if updated.role != before.role || (updated.disabled && !before.disabled) {
            self.revoke_access_tokens(id).await?;
        }
        self.audit(
            ctx,
            "user.update",
            "user",
            Some(id.to_string()),
            json!({"role": ch.role.map(|r| r.as_str()), "disabled": ch.disabled}),
        )
        .await;
        Ok(updated)
    }

    /// Deletes a user (not oneself, not the last admin).
    pub async fn delete_user(&self, ctx: &Ctx, id: Uuid) -> Result<()> {
        let me = ctx.who()?;
        if me.user_id == id {
            return Err(Error::Conflict("cannot delete yourself".into()));
        }
        let user = self.get_user(id).await?;
        self.store.delete_user(id).await.map_err(|e| match e {
            StoreError::Conflict(w) if w == LAST_ADMIN => {
                Error::Conflict("cannot delete the last admin".into())
            }
            e => e.into(),
        })?;
        self.forget_user_sessions(id);
        self.audit(
            ctx,
            "user.delete",
            "user",
            Some(id.to_string()),
            json!({"username": user.username}),
        )
        .await;
        Ok(())
    }

    /// Sets a new password chosen by an admin (optionally to be changed at next login) and
    /// ends the user's sessions and API tokens: whoever held the old password may have
    /// minted them.
    pub async fn reset_password(
        &self,
        ctx: &Ctx,
        id: Uuid,
        pw: &str,
        must_change: bool,
    ) -> Result<User> {
        password::check_policy(pw).map_err(|m| Error::field("password", m))?;
        self.get_user(id).await?;
        let hash = password::hash(pw.to_owned())
            .await
            .map_err(Error::internal)?;
        let u = self
            .store
            .update_user(
                id,
                UserUpdate {
                    password_hash: Some(hash),
                    must_change_password: Some(must_change),
                    ..Default::default()
                },
            )
            .await?;
        self.store.revoke_user_refresh_tokens(id, now()).await?;
        self.store.revoke_user_api_tokens(id, now()).await?;
        self.revoke_access_tokens(id).await?;
        self.audit(
            ctx,
            "user.reset_password",
            "user",
            Some(id.to_string()),
            json!({}),
        )
        .await;
        Ok(u)
    }
}
