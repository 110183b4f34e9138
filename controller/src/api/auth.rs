//! Sign-in, tokens and the caller's own account.

use poem::Request;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};

use super::dto::*;
use super::error::ApiResult;
use super::security::{SessionAuth, anon};
use super::tags::ApiTags;
use crate::service::AppState;

/// Auth endpoints.
pub struct AuthApi(pub AppState);

/// No content.
#[derive(ApiResponse)]
pub enum NoContent {
    /// Done.
    #[oai(status = 204)]
    Ok,
}

fn ua(req: &Request) -> Option<String> {
    req.header("user-agent")
        .map(|s| s.chars().take(200).collect())
}

#[OpenApi(prefix_path = "/auth", tag = "ApiTags::Auth")]
impl AuthApi {
    /// Sign in with username and password; returns an access and a refresh token. Failures
    /// slow down the source that made them (429 with `Retry-After`, growing with each
    /// further failure), not the account as a whole.
    #[oai(path = "/login", method = "post", operation_id = "login")]
    async fn login(
        &self,
        req: &Request,
        body: Json<LoginRequest>,
    ) -> ApiResult<Json<TokenResponse>> {
        let pair = self
            .0
            .login(&anon(req), &body.username, &body.password, ua(req))
            .await?;
        Ok(Json(pair.into()))
    }

    /// Exchange a refresh token for a new pair (the old one is spent; reuse revokes the
    /// session, including the access token already issued from it).
    #[oai(path = "/refresh", method = "post", operation_id = "refreshToken")]
    async fn refresh(
        &self,
        req: &Request,
        body: Json<RefreshRequest>,
    ) -> ApiResult<Json<TokenResponse>> {
        let pair = self
            .0
            .refresh(&anon(req), &body.refresh_token, ua(req))
            .await?;
        Ok(Json(pair.into()))
    }

    /// End this session (or all with `all: true`).
    #[oai(path = "/logout", method = "post", operation_id = "logout")]
    async fn logout(&self, auth: SessionAuth, body: Json<LogoutRequest>) -> ApiResult<NoContent> {
        self.0.logout(&auth.0, body.all).await?;
        Ok(NoContent::Ok)
    }

    /// The signed-in user.
    #[oai(path = "/me", method = "get", operation_id = "getMe")]
    async fn me(&self, auth: SessionAuth) -> ApiResult<Json<UserView>> {
        Ok(Json(self.0.me(&auth.0).await?.into()))
    }

    /// Change the own password; ends every session and API token of the account and
    /// returns a fresh pair. Wrong current passwords are throttled per account and source
    /// like logins (429 with `Retry-After`).
    #[oai(path = "/password", method = "post", operation_id = "changePassword")]
    async fn change_password(
        &self,
        auth: SessionAuth,
        req: &Request,
        body: Json<ChangePasswordRequest>,
    ) -> ApiResult<Json<TokenResponse>> {
        let pair = self
            .0
            .change_password(&auth.0, &body.current_password, &body.new_password, ua(req))
            .await?;
        Ok(Json(pair.into()))
    }
}
