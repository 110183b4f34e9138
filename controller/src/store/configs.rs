//! Config sections of a server and their saved versions.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{StoreError, StoreResult};

/// One stored section: JSON content without secrets, plus the encrypted secrets blob
/// (nonce + ciphertext, sealed by the controller's secret box) if the section has secrets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigSection {
    /// The section's name; which names a server may have is the game registry's rule
    /// (the store takes any non-empty name up to 255 bytes).
    pub section: String,
    pub content: Value,
    pub secrets: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredSection {
    pub section: ConfigSection,
    /// Config revision at which this section was last written.
    pub revision: i64,
    pub updated_at: OffsetDateTime,
}

/// Current config of a server: all stored sections (ordered by name) and the config revision.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub server_id: Uuid,
    pub revision: i64,
    pub sections: Vec<StoredSection>,
}

/// How [`Configs::write_config`] treats the sections it is not given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigWrite {
    /// They stay as they are.
    Merge,
    /// They are deleted: the given sections become the whole config.
    Replace,
}

/// A saved version (snapshot of all sections after the save).
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigVersion {
    pub id: Uuid,
    pub server_id: Uuid,
    /// 1, 2, 3 … per server; equals the config revision produced by that save.
    pub version: i64,
    pub author_user_id: Option<Uuid>,
    pub created_at: OffsetDateTime,
    pub comment: Option<String>,
    pub sections: Vec<ConfigSection>,
}

/// Listing entry without the snapshot.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ConfigVersionSummary {
    pub id: Uuid,
    pub server_id: Uuid,
    pub version: i64,
    pub author_user_id: Option<Uuid>,
    pub created_at: OffsetDateTime,
    pub comment: Option<String>,
}

/// A server's config and its history.
#[async_trait]
pub trait Configs: Send + Sync {
    // config
    async fn get_config(&self, server_id: Uuid) -> StoreResult<ServerConfig>;
    /// In one transaction: checks the config revision is `expected_revision` (else
    /// StaleRevision), writes `sections` as `mode` says, bumps the revision by
    /// one and records a [`ConfigVersion`] snapshot of all sections after the change. A
    /// section name that is empty or longer than 255 bytes is `InvalidInput`. The two
    /// wrappers below are what callers use.
    async fn write_config(
        &self,
        server_id: Uuid,
        expected_revision: i64,
        sections: Vec<ConfigSection>,
        mode: ConfigWrite,
        author_user_id: Option<Uuid>,
        comment: Option<String>,
    ) -> StoreResult<ConfigVersion>;
    /// Upserts the given sections (others untouched); see [`Configs::write_config`].
    async fn save_config(
        &self,
        server_id: Uuid,
        expected_revision: i64,
        sections: Vec<ConfigSection>,
        author_user_id: Option<Uuid>,
        comment: Option<String>,
    ) -> StoreResult<ConfigVersion> {
        self.write_config(
            server_id,
            expected_revision,
            sections,
            ConfigWrite::Merge,
            author_user_id,
            comment,
        )
        .await
    }
    /// Makes `sections` the complete section set atomically (sections not listed are
    /// deleted), e.g. a rollback to an older version; see [`Configs::write_config`].
    async fn replace_config(
        &self,
        server_id: Uuid,
        expected_revision: i64,
        sections: Vec<ConfigSection>,
        author_user_id: Option<Uuid>,
        comment: Option<String>,
    ) -> StoreResult<ConfigVersion> {
        self.write_config(
            server_id,
            expected_revision,
            sections,
            ConfigWrite::Replace,
            author_user_id,
            comment,
        )
        .await
    }
    /// Newest first.
    async fn list_config_versions(
        &self,
        server_id: Uuid,
        limit: i64,
    ) -> StoreResult<Vec<ConfigVersionSummary>>;
    async fn get_config_version(
        &self,
        server_id: Uuid,
        version: i64,
    ) -> StoreResult<Option<ConfigVersion>>;
}

// ------------------------------------------------------------------ config snapshots

/// Snapshot JSON: `{"<section>": content, ...}`.
pub(crate) fn snapshot_json(sections: &[ConfigSection]) -> Value {
    Value::Object(
        sections
            .iter()
            .map(|s| (s.section.as_str().to_owned(), s.content.clone()))
            .collect(),
    )
}

/// Encrypted-secrets snapshot: `0x01` then per section with secrets:
/// `u8 name length, name, u32 BE blob length, blob`. `None` when no section has secrets.
pub(crate) fn encode_secrets(sections: &[ConfigSection]) -> Option<Vec<u8>> {
    let with: Vec<_> = sections
        .iter()
        .filter_map(|s| s.secrets.as_ref().map(|b| (s.section.as_str(), b)))
        .collect();
    if with.is_empty() {
        return None;
    }
    let mut out = vec![1u8];
    for (name, blob) in with {
        // Names are at most 255 bytes (checked by `check_section_name` before any write).
        let name = name.as_bytes();
        out.push(name.len() as u8);
        out.extend_from_slice(name);
        out.extend_from_slice(&(blob.len() as u32).to_be_bytes());
        out.extend_from_slice(blob);
    }
    Some(out)
}

pub(crate) fn decode_sections(
    snapshot: Value,
    secrets: Option<&[u8]>,
) -> StoreResult<Vec<ConfigSection>> {
    let bad = || StoreError::Internal(anyhow::anyhow!("corrupt config secrets snapshot"));
    let mut blobs: Vec<(String, Vec<u8>)> = Vec::new();
    if let Some(mut b) = secrets {
        if b.first() != Some(&1) {
            return Err(bad());
        }
        b = &b[1..];
        while !b.is_empty() {
            let n = *b.first().ok_or_else(bad)? as usize;
            let name = b.get(1..1 + n).ok_or_else(bad)?;
            let kind = std::str::from_utf8(name).map_err(|_| bad())?.to_owned();
            let len_bytes: [u8; 4] = b
                .get(1 + n..5 + n)
                .ok_or_else(bad)?
                .try_into()
                .map_err(|_| bad())?;
            let len = u32::from_be_bytes(len_bytes) as usize;
            let blob = b.get(5 + n..5 + n + len).ok_or_else(bad)?;
            blobs.push((kind, blob.to_vec()));
            b = &b[5 + n + len..];
        }
    }
    let Value::Object(map) = snapshot else {
        return Err(StoreError::Internal(anyhow::anyhow!(
            "config snapshot is not an object"
        )));
    };
    let mut out = Vec::new();
    for (section, content) in map {
        let secrets = blobs
            .iter()
            .find(|(k, _)| *k == section)
            .map(|(_, b)| b.clone());
        out.push(ConfigSection {
            section,
            content,
            secrets,
        });
    }
    out.sort_by(|a, b| a.section.cmp(&b.section));
    Ok(out)
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ConfigJoinRow {
    pub config_revision: i64,
    pub section: Option<String>,
    pub content: Option<sqlx::types::Json<Value>>,
    pub secrets: Option<Vec<u8>>,
    pub revision: Option<i64>,
    pub updated_at: Option<OffsetDateTime>,
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ConfigVersionRow {
    pub id: Uuid,
    pub server_id: Uuid,
    pub version: i64,
    pub author_user_id: Option<Uuid>,
    pub created_at: OffsetDateTime,
    pub comment: Option<String>,
    pub snapshot: sqlx::types::Json<Value>,
    pub secrets: Option<Vec<u8>>,
}

pub(crate) fn config_from_rows(
    server_id: Uuid,
    rows: Vec<ConfigJoinRow>,
) -> StoreResult<super::ServerConfig> {
    let revision = rows
        .first()
        .map(|r| r.config_revision)
        .ok_or(StoreError::NotFound)?;
    let mut sections = Vec::new();
    for r in rows {
        let (Some(name), Some(content), Some(rev), Some(updated_at)) =
            (r.section, r.content, r.revision, r.updated_at)
        else {
            continue;
        };
        sections.push(super::StoredSection {
            section: ConfigSection {
                section: name,
                content: content.0,
                secrets: r.secrets,
            },
            revision: rev,
            updated_at,
        });
    }
    sections.sort_by(|a, b| a.section.section.cmp(&b.section.section));
    Ok(super::ServerConfig {
        server_id,
        revision,
        sections,
    })
}

/// Implements [`Configs`] for a backend (`impl_configs!(SqliteStore)`): one body for both
/// databases, expanded in the backend module (which brings the names into scope).
macro_rules! impl_configs {
    ($ty:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::configs::Configs for $ty {
            async fn get_config(&self, server_id: Uuid) -> StoreResult<ServerConfig> {
                let rows = sqlx::query_as::<_, ConfigJoinRow>(
                    "SELECT s.config_revision, c.section, c.content, c.secrets, c.revision, c.updated_at \
                     FROM servers s LEFT JOIN server_configs c ON c.server_id = s.id WHERE s.id = $1",
                )
                .bind(server_id)
                .fetch_all(self.r())
                .await
                ?;
                config_from_rows(server_id, rows)
            }

            async fn write_config(
                &self,
                server_id: Uuid,
                expected_revision: i64,
                sections: Vec<ConfigSection>,
                mode: ConfigWrite,
                author_user_id: Option<Uuid>,
                comment: Option<String>,
            ) -> StoreResult<ConfigVersion> {
                for s in &sections {
                    check_section_name(&s.section)?;
                    check_json(&s.content)?;
                }
                check_opt(&[comment.as_deref()])?;
                let t = now();
                let new_rev = expected_revision + 1;
                let mut tx = self.w().begin().await?;
                let r = sqlx::query("UPDATE servers SET config_revision = config_revision + 1 WHERE id = $1 AND config_revision = $2")
                    .bind(server_id)
                    .bind(expected_revision)
                    .execute(&mut *tx)
                    .await
                    ?;
                if r.rows_affected() == 0 {
                    let n = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM servers WHERE id = $1")
                        .bind(server_id)
                        .fetch_one(&mut *tx)
                        .await
                        ?;
                    return Err(if n == 0 { StoreError::NotFound } else { StoreError::StaleRevision });
                }
                if mode == ConfigWrite::Replace {
                    sqlx::query("DELETE FROM server_configs WHERE server_id = $1")
                        .bind(server_id)
                        .execute(&mut *tx)
                        .await?;
                }
                for s in &sections {
                    sqlx::query(
                        "INSERT INTO server_configs (server_id, section, content, secrets, revision, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (server_id, section) DO UPDATE SET \
                         content = excluded.content, secrets = excluded.secrets, revision = excluded.revision, \
                         updated_at = excluded.updated_at",
                    )
                    .bind(server_id)
                    .bind(s.section.as_str())
                    .bind(Json(&s.content))
                    .bind(&s.secrets)
                    .bind(new_rev)
                    .bind(ts(t))
                    .execute(&mut *tx)
                    .await
                    ?;
                }
                let rows = sqlx::query_as::<_, ConfigJoinRow>(
                    "SELECT s.config_revision, c.section, c.content, c.secrets, c.revision, c.updated_at \
                     FROM servers s LEFT JOIN server_configs c ON c.server_id = s.id WHERE s.id = $1",
                )
                .bind(server_id)
                .fetch_all(&mut *tx)
                .await
                ?;
                let all: Vec<ConfigSection> = config_from_rows(server_id, rows)?.sections.into_iter().map(|s| s.section).collect();
                let v = ConfigVersion {
                    id: new_id(),
                    server_id,
                    version: new_rev,
                    author_user_id,
                    created_at: t,
                    comment,
                    sections: all,
                };
                sqlx::query(
                    "INSERT INTO config_versions (id, server_id, version, author_user_id, created_at, comment, snapshot, secrets) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(v.id)
                .bind(server_id)
                .bind(new_rev)
                .bind(author_user_id)
                .bind(ts(t))
                .bind(&v.comment)
                .bind(Json(snapshot_json(&v.sections)))
                .bind(encode_secrets(&v.sections))
                .execute(&mut *tx)
                .await
                ?;
                let committed = tx.commit().await.map_err(StoreError::from);
                self.servers.invalidate();
                committed?;
                Ok(v)
            }

            async fn list_config_versions(&self, server_id: Uuid, limit: i64) -> StoreResult<Vec<ConfigVersionSummary>> {
                sqlx::query_as::<_, ConfigVersionSummary>(
                    "SELECT id, server_id, version, author_user_id, created_at, comment FROM config_versions \
                     WHERE server_id = $1 ORDER BY version DESC LIMIT $2",
                )
                .bind(server_id)
                .bind(clamp_limit(limit, 10_000))
                .fetch_all(self.r())
                .await
                .map_err(StoreError::from)
            }

            async fn get_config_version(&self, server_id: Uuid, version: i64) -> StoreResult<Option<ConfigVersion>> {
                let row = sqlx::query_as::<_, ConfigVersionRow>(
                    "SELECT * FROM config_versions WHERE server_id = $1 AND version = $2",
                )
                .bind(server_id)
                .bind(version)
                .fetch_optional(self.r())
                .await
                ?;
                let Some(row) = row else { return Ok(None) };
                Ok(Some(ConfigVersion {
                    id: row.id,
                    server_id: row.server_id,
                    version: row.version,
                    author_user_id: row.author_user_id,
                    created_at: row.created_at,
                    comment: row.comment,
                    sections: decode_sections(row.snapshot.0, row.secrets.as_deref())?,
                }))
            }
        }
    };
}
