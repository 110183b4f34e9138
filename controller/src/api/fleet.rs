//! Hosts and servers.

use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};
use uuid::Uuid;

use std::sync::Arc;

use super::auth::NoContent;
use super::dto::*;
use super::error::ApiResult;
use super::payload::PreJson;
use super::security::{AdminAuth, OperatorAuth, ViewerAuth};
use super::tags::ApiTags;
use crate::error::Error;
use crate::service::AppState;
use crate::service::expect::Expect;
use crate::store::Server;

/// Host endpoints.
pub struct HostsApi(pub AppState);
/// Server endpoints, with the serialised full server list of the last call.
pub struct ServersApi(pub AppState, pub ServerListJson);

/// The JSON of the full server list, reused while the store hands out the same cached
/// list (`Store::list_all_servers`: same `Arc` = same rows).
#[derive(Default)]
pub struct ServerListJson(std::sync::Mutex<Option<(Arc<Vec<Server>>, bytes::Bytes)>>);

impl ServerListJson {
    async fn get(&self, app: &AppState) -> ApiResult<PreJson<Vec<ServerView>>> {
        let list = app.store.list_all_servers().await.map_err(Error::from)?;
        if let Ok(slot) = self.0.lock()
            && let Some((cached, body)) = slot.as_ref()
            && Arc::ptr_eq(cached, &list)
        {
            return Ok(PreJson::from_bytes(body.clone()));
        }
        let views: Vec<ServerView> = list.iter().cloned().map(Into::into).collect();
        let body = PreJson::encode(&views);
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some((list, body.clone()));
        }
        Ok(PreJson::from_bytes(body))
    }
}

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
    ) -> ApiResult<PreJson<Vec<ServerView>>> {
        match host_id.0 {
            None => self.1.get(&self.0).await,
            Some(h) => {
                let views: Vec<ServerView> = self
                    .0
                    .list_servers(Some(h))
                    .await?
                    .into_iter()
                    .map(Into::into)
                    .collect();
                Ok(PreJson::new(&views))
            }
        }
    }

    /// Create a server of a game Languard runs (ports checked against the host's other
    /// servers).
    #[oai(path = "/", method = "post", operation_id = "createServer")]
    async fn create(
        &self,
        auth: AdminAuth,
        body: Json<ServerRequest>,
    ) -> ApiResult<ServerResponse> {
        let host = body
            .host_id
            .ok_or_else(|| Error::field("host_id", "is required"))?;
        let s = self.0.create_server(&auth.0, host, body.spec()?).await?;
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
            .update_server(&auth.0, id.0, expect, body.spec()?)
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
