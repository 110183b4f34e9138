//! User administration (admin).

use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};
use uuid::Uuid;

use super::auth::NoContent;
use super::dto::*;
use super::error::ApiResult;
use super::security::AdminAuth;
use super::tags::ApiTags;
use crate::service::AppState;
use crate::service::users::UserChanges;

/// User endpoints.
pub struct UsersApi(pub AppState);

/// Created.
#[derive(ApiResponse)]
pub enum UserCreated {
    /// The new user.
    #[oai(status = 201)]
    Created(Json<UserView>),
}

#[OpenApi(prefix_path = "/users", tag = "ApiTags::Users")]
impl UsersApi {
    /// All users.
    #[oai(path = "/", method = "get", operation_id = "listUsers")]
    async fn list(&self, _auth: AdminAuth) -> ApiResult<Json<Vec<UserView>>> {
        let users = self.0.store.list_users().await?;
        Ok(Json(users.into_iter().map(Into::into).collect()))
    }

    /// Create a user.
    #[oai(path = "/", method = "post", operation_id = "createUser")]
    async fn create(
        &self,
        auth: AdminAuth,
        body: Json<CreateUserRequest>,
    ) -> ApiResult<UserCreated> {
        let u = self
            .0
            .create_user(
                &auth.0,
                &body.username,
                &body.password,
                body.role.into(),
                body.must_change_password,
            )
            .await?;
        Ok(UserCreated::Created(Json(u.into())))
    }

    /// One user.
    #[oai(path = "/:id", method = "get", operation_id = "getUser")]
    async fn get(&self, _auth: AdminAuth, id: Path<Uuid>) -> ApiResult<Json<UserView>> {
        Ok(Json(self.0.get_user(id.0).await?.into()))
    }

    /// Change role or disable.
    #[oai(path = "/:id", method = "patch", operation_id = "updateUser")]
    async fn update(
        &self,
        auth: AdminAuth,
        id: Path<Uuid>,
        body: Json<UpdateUserRequest>,
    ) -> ApiResult<Json<UserView>> {
        let ch = UserChanges {
            role: body.role.map(Into::into),
            disabled: body.disabled,
        };
        Ok(Json(self.0.update_user(&auth.0, id.0, ch).await?.into()))
    }

    /// Delete a user.
    #[oai(path = "/:id", method = "delete", operation_id = "deleteUser")]
    async fn delete(&self, auth: AdminAuth, id: Path<Uuid>) -> ApiResult<NoContent> {
        self.0.delete_user(&auth.0, id.0).await?;
        Ok(NoContent::Ok)
    }

    /// Set a new password for a user; ends the user's sessions and API tokens.
    #[oai(
        path = "/:id/password",
        method = "post",
        operation_id = "resetUserPassword"
    )]
    async fn reset(
        &self,
        auth: AdminAuth,
        id: Path<Uuid>,
        body: Json<ResetPasswordRequest>,
    ) -> ApiResult<Json<UserView>> {
        Ok(Json(
            self.0
                .reset_password(&auth.0, id.0, &body.password, body.must_change_password)
                .await?
                .into(),
        ))
    }
}
