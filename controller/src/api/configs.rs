//! Config sections, versions, diff, rollback, preview, files and import.

use std::collections::BTreeMap;

use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};
use uuid::Uuid;

use super::dto::*;
use super::error::ApiResult;
use super::security::{AdminAuth, OperatorAuth, ViewerAuth};
use super::tags::ApiTags;
use crate::service::AppState;
use crate::service::configs::ConfigSectionKind;
use crate::service::configs::Plain;
use crate::service::fleet::Expect;
use crate::store::ConfigVersion;

/// Config endpoints.
pub struct ConfigsApi(pub AppState);

/// A config with its ETag.
#[derive(ApiResponse)]
pub enum ConfigResponse {
    /// The config.
    #[oai(status = 200)]
    Ok(Json<ConfigView>, #[oai(header = "ETag")] String),
}

fn sections(
    m: &BTreeMap<&'static str, (ConfigSectionKind, Plain)>,
    rev: impl Fn(ConfigSectionKind) -> i64,
) -> Vec<SectionView> {
    m.values()
        .map(|(k, p)| SectionView {
            section: k.as_str().into(),
            content: p.public(*k),
            revision: rev(*k),
        })
        .collect()
}

impl ConfigsApi {
    async fn view(&self, server: Uuid) -> ApiResult<ConfigResponse> {
        let (_, cur) = self.0.current_config(server).await?;
        let stored = self.0.store.get_config(server).await?;
        let revs: BTreeMap<&str, i64> = stored
            .sections
            .iter()
            .map(|s| (s.section.section.as_str(), s.revision))
            .collect();
        let v = ConfigView {
            revision: cur.revision,
            sections: sections(&cur.sections, |k| {
                revs.get(k.as_str()).copied().unwrap_or(0)
            }),
        };
        Ok(ConfigResponse::Ok(Json(v), format!("\"{}\"", cur.revision)))
    }
}

fn summary(v: &ConfigVersion) -> VersionSummary {
    VersionSummary {
        version: v.version,
        author_user_id: v.author_user_id,
        created_at: v.created_at,
        comment: v.comment.clone(),
    }
}

#[OpenApi(prefix_path = "/servers", tag = "ApiTags::Configs")]
impl ConfigsApi {
    /// The current config (secrets only as `*_set` flags).
    #[oai(path = "/:id/config", method = "get", operation_id = "getConfig")]
    async fn get(&self, _auth: ViewerAuth, id: Path<Uuid>) -> ApiResult<ConfigResponse> {
        self.view(id.0).await
    }

    /// Replace one section; validated through the shared models, stored as a new version.
    #[oai(
        path = "/:id/config/sections/:section",
        method = "put",
        operation_id = "putConfigSection"
    )]
    async fn put(
        &self,
        auth: OperatorAuth,
        id: Path<Uuid>,
        section: Path<SectionName>,
        #[oai(name = "If-Match")] if_match: Header<Option<String>>,
        body: Json<SectionUpdate>,
    ) -> ApiResult<ConfigResponse> {
        let expect = Expect::from_parts(body.revision, if_match.0.as_deref())?;
        let b = body.0;
        self.0
            .put_section(
                &auth.0,
                id.0,
                section.0.into(),
                b.content,
                &b.clear_secrets,
                expect,
                b.comment,
            )
            .await?;
        self.view(id.0).await
    }

    /// Saved versions, newest first.
    #[oai(
        path = "/:id/config/versions",
        method = "get",
        operation_id = "listConfigVersions"
    )]
    async fn versions(
        &self,
        _auth: ViewerAuth,
        id: Path<Uuid>,
    ) -> ApiResult<Json<Vec<VersionSummary>>> {
        let v = self.0.list_versions(id.0).await?;
        Ok(Json(
            v.into_iter()
                .map(|s| VersionSummary {
                    version: s.version,
                    author_user_id: s.author_user_id,
                    created_at: s.created_at,
                    comment: s.comment,
                })
                .collect(),
        ))
    }

    /// One version (secrets masked).
    #[oai(
        path = "/:id/config/versions/:version",
        method = "get",
        operation_id = "getConfigVersion"
    )]
    async fn version(
        &self,
        _auth: ViewerAuth,
        id: Path<Uuid>,
        version: Path<i64>,
    ) -> ApiResult<Json<VersionView>> {
        let (v, plain) = self.0.get_version(id.0, version.0).await?;
        let s = summary(&v);
        Ok(Json(VersionView {
            version: s.version,
            author_user_id: s.author_user_id,
            created_at: s.created_at,
            comment: s.comment,
            sections: sections(&plain, |_| v.version),
        }))
    }

    /// Field-level diff between two versions (`to` omitted: the current config).
    #[oai(
        path = "/:id/config/diff",
        method = "get",
        operation_id = "diffConfigVersions"
    )]
    async fn diff(
        &self,
        _auth: ViewerAuth,
        id: Path<Uuid>,
        from: Query<i64>,
        to: Query<Option<i64>>,
    ) -> ApiResult<Json<Vec<DiffEntryView>>> {
        let d = self.0.diff_versions(id.0, from.0, to.0).await?;
        Ok(Json(
            d.into_iter()
                .map(|e| DiffEntryView {
                    path: e.path,
                    op: e.op.into(),
                    from: e.from,
                    to: e.to,
                })
                .collect(),
        ))
    }

    /// Restore an old version as a new version.
    #[oai(
        path = "/:id/config/rollback",
        method = "post",
        operation_id = "rollbackConfig"
    )]
    async fn rollback(
        &self,
        auth: OperatorAuth,
        id: Path<Uuid>,
        #[oai(name = "If-Match")] if_match: Header<Option<String>>,
        body: Json<RollbackRequest>,
    ) -> ApiResult<ConfigResponse> {
        let expect = Expect::from_parts(body.revision, if_match.0.as_deref())?;
        self.0.rollback(&auth.0, id.0, body.version, expect).await?;
        self.view(id.0).await
    }

    /// The rendered files with every secret masked.
    #[oai(
        path = "/:id/config/preview",
        method = "get",
        operation_id = "previewConfig"
    )]
    async fn preview(&self, _auth: ViewerAuth, id: Path<Uuid>) -> ApiResult<Json<Vec<FileView>>> {
        let f = self.0.render_files(id.0, true).await?;
        Ok(Json(
            f.into_iter()
                .map(|f| FileView {
                    name: f.name,
                    content: f.content,
                })
                .collect(),
        ))
    }

    /// The real files, secrets included (admin).
    #[oai(
        path = "/:id/config/files",
        method = "get",
        operation_id = "downloadConfigFiles"
    )]
    async fn files(&self, auth: AdminAuth, id: Path<Uuid>) -> ApiResult<Json<Vec<FileView>>> {
        let f = self.0.render_files(id.0, false).await?;
        self.0
            .audit(
                &auth.0,
                "config.download",
                "server",
                Some(id.0.to_string()),
                serde_json::json!({}),
            )
            .await;
        Ok(Json(
            f.into_iter()
                .map(|f| FileView {
                    name: f.name,
                    content: f.content,
                })
                .collect(),
        ))
    }

    /// Import an existing server.cfg and/or basic.cfg.
    #[oai(
        path = "/:id/config/import",
        method = "post",
        operation_id = "importConfig"
    )]
    async fn import(
        &self,
        auth: OperatorAuth,
        id: Path<Uuid>,
        #[oai(name = "If-Match")] if_match: Header<Option<String>>,
        body: Json<ImportRequest>,
    ) -> ApiResult<Json<ImportResponse>> {
        let expect = Expect::from_parts(body.revision, if_match.0.as_deref())?;
        let r = self
            .0
            .import(
                &auth.0,
                id.0,
                body.server_cfg.as_deref(),
                body.basic_cfg.as_deref(),
                expect,
            )
            .await?;
        Ok(Json(ImportResponse {
            revision: r.version.version,
            warnings: r.warnings,
        }))
    }
}
