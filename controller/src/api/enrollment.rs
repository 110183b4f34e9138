//! Join tokens and revocation of host agents.

use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use time::OffsetDateTime;
use uuid::Uuid;

use super::dto::HostView;
use super::error::ApiResult;
use super::security::AdminAuth;
use super::tags::ApiTags;
use crate::service::AppState;
use crate::store::JoinTokenRow;

/// Host enrollment endpoints.
pub struct EnrollmentApi(pub AppState);

/// Options for a new join token.
#[derive(Debug, Object)]
pub struct JoinTokenRequest {
    /// Lifetime in seconds (default from `link.join_token_ttl_secs`, at most 30 days).
    #[oai(validator(minimum(value = "1"), maximum(value = "2592000")))]
    pub ttl_secs: Option<u64>,
}

/// A join token as listed (never the secret).
#[derive(Debug, Object)]
pub struct JoinTokenView {
    /// Token id (the first part of the token string).
    pub id: Uuid,
    /// The host it enrolls an agent for.
    pub host_id: Uuid,
    /// End of validity.
    pub expires_at: OffsetDateTime,
    /// When an agent used it.
    pub used_at: Option<OffsetDateTime>,
    /// Created.
    pub created_at: OffsetDateTime,
}

impl From<JoinTokenRow> for JoinTokenView {
    fn from(r: JoinTokenRow) -> Self {
        Self {
            id: r.id,
            host_id: r.host_id,
            expires_at: r.expires_at,
            used_at: r.used_at,
            created_at: r.created_at,
        }
    }
}

/// A new join token: `token` is shown only in this response.
#[derive(Debug, Object)]
pub struct JoinTokenCreated {
    /// The token record.
    #[oai(flatten)]
    pub record: JoinTokenView,
    /// Pass to `languard-agent enroll --token`. Shown once.
    pub token: String,
    /// SHA-256 of the controller CA certificate (also inside the token).
    pub ca_fingerprint: String,
    /// What to run on the host.
    pub command: String,
}

/// Created join token.
#[derive(ApiResponse)]
pub enum JoinTokenResponse {
    /// The token.
    #[oai(status = 201)]
    Created(Json<JoinTokenCreated>),
}

#[OpenApi(prefix_path = "/hosts", tag = "ApiTags::Hosts")]
impl EnrollmentApi {
    /// Create a one-time join token for enrolling the host's agent.
    #[oai(
        path = "/:id/join-tokens",
        method = "post",
        operation_id = "createJoinToken"
    )]
    async fn create(
        &self,
        auth: AdminAuth,
        id: Path<Uuid>,
        body: Json<JoinTokenRequest>,
    ) -> ApiResult<JoinTokenResponse> {
        let ttl = body.ttl_secs.map(std::time::Duration::from_secs);
        let issued = self.0.create_join_token(&auth.0, id.0, ttl).await?;
        let link = self
            .0
            .config
            .link
            .names
            .first()
            .cloned()
            .unwrap_or_else(|| "controller".into());
        let port = self.0.config.link.listen.map(|a| a.port()).unwrap_or(7443);
        let token = issued.token.expose().to_owned();
        Ok(JoinTokenResponse::Created(Json(JoinTokenCreated {
            record: issued.row.into(),
            command: format!("languard-agent enroll --controller {link}:{port} --token {token}"),
            token,
            ca_fingerprint: self.0.ca.fingerprint(),
        })))
    }

    /// The host's join tokens (without secrets).
    #[oai(
        path = "/:id/join-tokens",
        method = "get",
        operation_id = "listJoinTokens"
    )]
    async fn list(&self, _auth: AdminAuth, id: Path<Uuid>) -> ApiResult<Json<Vec<JoinTokenView>>> {
        Ok(Json(
            self.0
                .list_join_tokens(id.0)
                .await?
                .into_iter()
                .map(Into::into)
                .collect(),
        ))
    }

    /// Revoke the host's agent: its link is closed and its certificate refused.
    #[oai(path = "/:id/revoke", method = "post", operation_id = "revokeHost")]
    async fn revoke(&self, auth: AdminAuth, id: Path<Uuid>) -> ApiResult<Json<HostView>> {
        Ok(Json(self.0.revoke_host(&auth.0, id.0).await?.into()))
    }
}
