//! Hosts and servers.

use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};
use uuid::Uuid;

use super::auth::NoContent;
use super::dto::*;
use super::error::ApiResult;
use super::security::{AdminAuth, OperatorAuth, ViewerAuth};
use super::tags::ApiTags;
use crate::error::Error;
use crate::service::AppState;
use crate::service::fleet::Expect;

/// Host endpoints.
pub struct HostsApi(pub AppState);
/// Server endpoints.
pub struct ServersApi(pub AppState);

/// Created host.
#[derive(ApiResponse)]
pub enum HostCreated {
    /// The host.
    #[oai(status = 201)]
    Created(Json<HostView>),
}

/// A server with its ETag.
#[derive(ApiResponse)]
pub enum ServerResponse {
    /// The server.
    #[oai(status = 200)]
    Ok(Json<ServerView>, #[oai(header = "ETag")] String),
    /// Created.
    #[oai(status = 201)]
    Created(Json<ServerView>, #[oai(header = "ETag")] String),
}

fn etag(rev: i64) -> String {
    format!("\"{rev}\"")
}

#[OpenApi(prefix_path = "/hosts", tag = "ApiTags::Hosts")]
impl HostsApi {
    /// All hosts.
    #[oai(path = "/", method = "get", operation_id = "listHosts")]
    async fn list(&self, _auth: ViewerAuth) -> ApiResult<Json<Vec<HostView>>> {
        Ok(Json(
            self.0
                .list_hosts()
                .await?
                .into_iter()
                .map(Into::into)
                .collect(),
        ))
    }

    /// Register a host.
    #[oai(path = "/", method = "post", operation_id = "createHost")]
    async fn create(&self, auth: AdminAuth, body: Json<HostRequest>) -> ApiResult<HostCreated> {
        Ok(HostCreated::Created(Json(
            self.0
                .create_host(&auth.0, &body.name, &body.os)
                .await?
                .into(),
        )))
    }

    /// One host.
    #[oai(path = "/:id", method = "get", operation_id = "getHost")]
    async fn get(&self, _auth: ViewerAuth, id: Path<Uuid>) -> ApiResult<Json<HostView>> {
        Ok(Json(self.0.get_host(id.0).await?.into()))
    }

    /// Rename a host or change its OS.
    #[oai(path = "/:id", method = "put", operation_id = "updateHost")]
    async fn update(
        &self,
        auth: AdminAuth,
        id: Path<Uuid>,
        body: Json<HostRequest>,
    ) -> ApiResult<Json<HostView>> {
        Ok(Json(
            self.0
                .update_host(&auth.0, id.0, &body.name, &body.os)
                .await?
                .into(),
        ))
    }

    /// Delete a host without servers.
    #[oai(path = "/:id", method = "delete", operation_id = "deleteHost")]
    async fn delete(&self, auth: AdminAuth, id: Path<Uuid>) -> ApiResult<NoContent> {
        self.0.delete_host(&auth.0, id.0).await?;
        Ok(NoContent::Ok)
    }
}

#[OpenApi(prefix_path = "/servers", tag = "ApiTags::Servers")]
impl ServersApi {
    /// All servers, optionally of one host.
    #[oai(path = "/", method = "get", operation_id = "listServers")]
    async fn list(
        &self,
        _auth: ViewerAuth,
        host_id: Query<Option<Uuid>>,
    ) -> ApiResult<Json<Vec<ServerView>>> {
        Ok(Json(
            self.0
                .list_servers(host_id.0)
                .await?
                .into_iter()
                .map(Into::into)
                .collect(),
        ))
    }

    /// Create a server (ports checked against the host's other servers).
    #[oai(path = "/", method = "post", operation_id = "createServer")]
    async fn create(
        &self,
        auth: AdminAuth,
        body: Json<ServerRequest>,
    ) -> ApiResult<ServerResponse> {
        let host = body
            .host_id
            .ok_or_else(|| Error::field("host_id", "is required"))?;
        let s = self.0.create_server(&auth.0, host, body.spec()).await?;
        let tag = etag(s.revision);
        Ok(ServerResponse::Created(Json(s.into()), tag))
    }

    /// One server.
    #[oai(path = "/:id", method = "get", operation_id = "getServer")]
    async fn get(&self, _auth: ViewerAuth, id: Path<Uuid>) -> ApiResult<ServerResponse> {
        let s = self.0.get_server(id.0).await?;
        let tag = etag(s.revision);
        Ok(ServerResponse::Ok(Json(s.into()), tag))
    }

    /// Replace a server's spec (revision in body or If-Match).
    #[oai(path = "/:id", method = "put", operation_id = "updateServer")]
    async fn update(
        &self,
        auth: OperatorAuth,
        id: Path<Uuid>,
        #[oai(name = "If-Match")] if_match: Header<Option<String>>,
        body: Json<ServerRequest>,
    ) -> ApiResult<ServerResponse> {
        let expect = Expect::from_parts(body.revision, if_match.0.as_deref())?;
        let s = self
            .0
            .update_server(&auth.0, id.0, expect, body.spec())
            .await?;
        let tag = etag(s.revision);
        Ok(ServerResponse::Ok(Json(s.into()), tag))
    }

    /// Delete a server and its history.
    #[oai(path = "/:id", method = "delete", operation_id = "deleteServer")]
    async fn delete(&self, auth: AdminAuth, id: Path<Uuid>) -> ApiResult<NoContent> {
        self.0.delete_server(&auth.0, id.0).await?;
        Ok(NoContent::Ok)
    }
}
