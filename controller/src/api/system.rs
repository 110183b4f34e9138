//! API tokens, audit and system endpoints.

use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};
use time::OffsetDateTime;
use uuid::Uuid;

use super::auth::NoContent;
use super::dto::*;
use super::error::ApiResult;
use super::security::{AdminAuth, ViewerAuth};
use super::tags::ApiTags;
use crate::error::Error;
use crate::service::AppState;
use crate::store::{AuditCursor, AuditQuery};

/// API token endpoints.
pub struct TokensApi(pub AppState);
/// Audit endpoints.
pub struct AuditApi(pub AppState);
/// System endpoints.
pub struct SystemApi(pub AppState);

/// Created token.
#[derive(ApiResponse)]
pub enum TokenCreated {
    /// The token; the secret is shown only now.
    #[oai(status = 201)]
    Created(Json<CreatedApiToken>),
}

#[OpenApi(prefix_path = "/tokens", tag = "ApiTags::Tokens")]
impl TokensApi {
    /// The caller's API tokens.
    #[oai(path = "/", method = "get", operation_id = "listApiTokens")]
    async fn list(&self, auth: ViewerAuth) -> ApiResult<Json<Vec<ApiTokenView>>> {
        Ok(Json(
            self.0
                .list_api_tokens(&auth.0)
                .await?
                .into_iter()
                .map(Into::into)
                .collect(),
        ))
    }

    /// Create an API token for automation. Its role is at most the caller's. Created with
    /// an API token, it expires no later than that token (so it must expire if that one
    /// does) and is revoked with it.
    #[oai(path = "/", method = "post", operation_id = "createApiToken")]
    async fn create(
        &self,
        auth: ViewerAuth,
        body: Json<CreateApiTokenRequest>,
    ) -> ApiResult<TokenCreated> {
        let (row, secret) = self
            .0
            .create_api_token(&auth.0, &body.name, body.role.into(), body.expires_at)
            .await?;
        Ok(TokenCreated::Created(Json(CreatedApiToken {
            token: secret,
            info: row.into(),
        })))
    }

    /// Revoke an API token and every token created with it.
    #[oai(path = "/:id", method = "delete", operation_id = "revokeApiToken")]
    async fn revoke(&self, auth: ViewerAuth, id: Path<Uuid>) -> ApiResult<NoContent> {
        self.0.revoke_api_token(&auth.0, id.0).await?;
        Ok(NoContent::Ok)
    }
}

fn encode_cursor(c: &AuditCursor) -> String {
    format!("{}_{}", c.ts.unix_timestamp_nanos(), c.id)
}

fn decode_cursor(s: &str) -> Option<AuditCursor> {
    let (t, id) = s.split_once('_')?;
    let ts = OffsetDateTime::from_unix_timestamp_nanos(t.parse().ok()?).ok()?;
    Some(AuditCursor {
        ts,
        id: Uuid::parse_str(id).ok()?,
    })
}

#[OpenApi(prefix_path = "/audit", tag = "ApiTags::Audit")]
impl AuditApi {
    /// Query audit events, newest first.
    #[oai(path = "/", method = "get", operation_id = "queryAudit")]
    #[allow(clippy::too_many_arguments)]
    async fn query(
        &self,
        _auth: AdminAuth,
        actor_user_id: Query<Option<Uuid>>,
        action: Query<Option<String>>,
        target_kind: Query<Option<String>>,
        target_id: Query<Option<String>>,
        from: Query<Option<OffsetDateTime>>,
        to: Query<Option<OffsetDateTime>>,
        before: Query<Option<String>>,
        #[oai(
            default = "default_limit",
            validator(minimum(value = "1"), maximum(value = "1000"))
        )]
        limit: Query<i64>,
    ) -> ApiResult<Json<AuditPage>> {
        let before = match before.0.as_deref() {
            Some(s) => Some(
                decode_cursor(s)
                    .ok_or_else(|| Error::field("before", "not a cursor from a previous page"))?,
            ),
            None => None,
        };
        let page = self
            .0
            .store
            .query_audit(AuditQuery {
                actor_user_id: actor_user_id.0,
                actor_kind: None,
                action: action.0,
                target_kind: target_kind.0,
                target_id: target_id.0,
                from: from.0,
                to: to.0,
                before,
                limit: limit.0,
            })
            .await?;
        Ok(Json(AuditPage {
            items: page.items.into_iter().map(Into::into).collect(),
            next: page.next.as_ref().map(encode_cursor),
        }))
    }
}

fn default_limit() -> i64 {
    100
}

/// Health answer.
#[derive(ApiResponse)]
pub enum HealthResponse {
    /// Healthy.
    #[oai(status = 200)]
    Ok(Json<Health>),
    /// The database is unreachable.
    #[oai(status = 503)]
    Degraded(Json<Health>),
}

#[OpenApi(prefix_path = "/system", tag = "ApiTags::System")]
impl SystemApi {
    /// Liveness and database reachability (no authentication).
    #[oai(path = "/health", method = "get", operation_id = "getHealth")]
    async fn health(&self) -> HealthResponse {
        let db = self.0.store.ping().await.is_ok();
        let h = Health {
            status: if db { "ok" } else { "degraded" }.into(),
            database: db,
        };
        if db {
            HealthResponse::Ok(Json(h))
        } else {
            HealthResponse::Degraded(Json(h))
        }
    }

    /// Controller status.
    #[oai(path = "/status", method = "get", operation_id = "getStatus")]
    async fn status(&self, _auth: ViewerAuth) -> ApiResult<Json<Status>> {
        let s = &self.0;
        Ok(Json(Status {
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_secs: s.started.elapsed().as_secs(),
            database_backend: s.store.backend().into(),
            hosts: s.store.list_hosts().await?.len() as u64,
            servers: u64::try_from(s.store.count_servers(None).await?).unwrap_or(0),
            users: s.store.count_users().await?,
        }))
    }
}
