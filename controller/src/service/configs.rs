//! Config sections of a server, for any game: the game's registry entry validates them
//! and names their secrets; here they are sealed at rest, every save becomes a version,
//! and versions are listed, diffed and rolled back. Preview, real files and import go
//! through the registry too.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::expect::Expect;
use super::{App, Ctx};
use crate::error::{Error, FieldError, Result};
use crate::games::{self, FileView, Game, RenderedFile, Section, Sections};
use crate::store::{ConfigSection, ConfigVersion, ConfigVersionSummary, Server, StoreError};

/// Shown instead of a secret.
pub const MASK: &str = "********";

/// One section with its secrets in clear (in memory only).
#[derive(Clone, Default)]
pub struct Plain {
    /// Content without secrets.
    pub content: Map<String, Value>,
    /// Secret field -> value.
    pub secrets: BTreeMap<String, String>,
}

impl std::fmt::Debug for Plain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secrets: BTreeMap<&str, &str> = self
            .secrets
            .keys()
            .map(|k| (k.as_str(), "<redacted>"))
            .collect();
        f.debug_struct("Plain")
            .field("content", &self.content)
            .field("secrets", &secrets)
            .finish()
    }
}

impl Plain {
    /// Content with the secrets merged in (for validation and rendering).
    pub fn merged(&self) -> Value {
        let mut m = self.content.clone();
        for (k, v) in &self.secrets {
            m.insert(k.clone(), Value::String(v.clone()));
        }
        Value::Object(m)
    }

    /// Content for the API: the section's secrets replaced by `<field>_set` flags.
    pub fn public(&self, secret_fields: &[&str]) -> Value {
        let mut m = self.content.clone();
        for f in secret_fields {
            m.remove(*f);
            m.insert(
                format!("{f}_set"),
                Value::Bool(self.secrets.contains_key(*f)),
            );
        }
        Value::Object(m)
    }
}

/// Sections by name.
pub type PlainSections = BTreeMap<String, Plain>;

/// The current config of a server, decrypted.
#[derive(Debug, Clone)]
pub struct Current {
    /// Config revision.
    pub revision: i64,
    /// Sections present, by name.
    pub sections: PlainSections,
}

impl Current {
    /// Every section with its secrets merged in, as the game's registry entry reads them.
    pub fn merged(&self) -> Sections {
        self.sections
            .iter()
            .map(|(k, p)| (k.clone(), p.merged()))
            .collect()
    }
}

/// Result of an import.
#[derive(Debug, Clone)]
pub struct ImportResult {
    /// The new version.
    pub version: ConfigVersion,
    /// What the importer reported.
    pub warnings: Vec<String>,
}

/// One difference between two versions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiffEntry {
    /// Field path, e.g. `server.hostname`.
    pub path: String,
    /// `added`, `removed` or `changed`.
    pub op: &'static str,
    /// Old value (secrets masked).
    pub from: Option<Value>,
    /// New value (secrets masked).
    pub to: Option<Value>,
}

/// The secret fields of section `name` of `game` (none for a section the game no
/// longer has: its stored content is shown as it is, secrets stay sealed).
pub fn secret_fields(game: &dyn Game, name: &str) -> &'static [&'static str] {
    game.section(name).map_or(&[], |s| s.secrets)
}

/// The section `name` of the server's game, or a 422 listing the ones it has.
fn section_of(game: &dyn Game, name: &str) -> Result<&'static Section> {
    game.section(name).ok_or_else(|| {
        let names: Vec<&str> = game.sections().iter().map(|s| s.name).collect();
        Error::field(
            "section",
            format!(
                "{} servers have no config section {name:?} (they have {})",
                game.kind().title(),
                names.join(", ")
            ),
        )
    })
}

/// Moves the section's secret fields of `content` into `secrets`.
fn split_secrets(
    section: &Section,
    content: &mut Map<String, Value>,
    secrets: &mut BTreeMap<String, String>,
) -> Result<()> {
    for f in section.secrets {
        content.remove(&format!("{f}_set"));
        match content.remove(*f) {
            Some(Value::String(s)) => {
                secrets.insert((*f).to_owned(), s);
            }
            Some(Value::Null) | None => {}
            Some(_) => {
                return Err(Error::field(
                    format!("{}.{f}", section.name),
                    "must be a string",
                ));
            }
        }
    }
    Ok(())
}

impl App {
    fn seal_secrets(&self, secrets: &BTreeMap<String, String>) -> Result<Option<Vec<u8>>> {
        if secrets.is_empty() {
            return Ok(None);
        }
        let plain = serde_json::to_vec(secrets).map_err(Error::internal)?;
        self.secrets.seal(&plain).map(Some).map_err(Error::internal)
    }

    fn open_section(&self, s: &ConfigSection) -> Result<Plain> {
        let content = match &s.content {
            Value::Object(m) => m.clone(),
            _ => Map::new(),
        };
        let secrets = match &s.secrets {
            Some(blob) => {
                let plain = self.secrets.open(blob).map_err(Error::internal)?;
                serde_json::from_slice(&plain).map_err(Error::internal)?
            }
            None => BTreeMap::new(),
        };
        Ok(Plain { content, secrets })
    }

    fn plain_sections(&self, sections: &[ConfigSection]) -> Result<PlainSections> {
        let mut out = BTreeMap::new();
        for s in sections {
            out.insert(s.section.as_str().to_owned(), self.open_section(s)?);
        }
        Ok(out)
    }

    /// Seals one validated section for the store.
    fn stored_section(
        &self,
        section: &Section,
        canon: Value,
        secrets: &BTreeMap<String, String>,
    ) -> Result<ConfigSection> {
        let mut content = match canon {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        for f in section.secrets {
            content.remove(*f);
        }
        Ok(ConfigSection {
            section: section.name.to_owned(),
            content: Value::Object(content),
            secrets: self.seal_secrets(secrets)?,
        })
    }

    /// The decrypted current config.
    pub async fn current_config(&self, server_id: Uuid) -> Result<(Server, Current)> {
        let server = self.get_server(server_id).await?;
        let cfg = self.store.get_config(server_id).await?;
        let sections: Vec<ConfigSection> = cfg.sections.into_iter().map(|s| s.section).collect();
        Ok((
            server,
            Current {
                revision: cfg.revision,
                sections: self.plain_sections(&sections)?,
            },
        ))
    }

    fn save_err(expect: Expect) -> impl Fn(StoreError) -> Error {
        move |e| match e {
            StoreError::StaleRevision => expect.stale(None),
            e => e.into(),
        }
    }

    /// Replaces one section (`name` must be one of the server's game). Omitted (or null)
    /// secrets keep their stored value; names in `clear` remove a secret.
    #[allow(clippy::too_many_arguments)]
    pub async fn put_section(
        &self,
        ctx: &Ctx,
        server_id: Uuid,
        name: &str,
        content: Value,
        clear: &[String],
        expect: Expect,
        comment: Option<String>,
    ) -> Result<ConfigVersion> {
        let (server, cur) = self.current_config(server_id).await?;
        let game = games::of(&server)?;
        let section = section_of(game, name)?;
        let expect = expect.against(cur.revision)?;
        let Value::Object(mut input) = content else {
            return Err(Error::field(section.name, "must be an object"));
        };
        let old_secrets = cur
            .sections
            .get(section.name)
            .map(|p| p.secrets.clone())
            .unwrap_or_default();
        let mut secrets = old_secrets.clone();
        split_secrets(section, &mut input, &mut secrets)?;
        for c in clear {
            if !section.secrets.contains(&c.as_str()) {
                return Err(Error::field(
                    "clear_secrets",
                    format!("{c:?} is not a secret of this section"),
                ));
            }
            secrets.remove(c);
        }
        let plain = Plain {
            content: input,
            secrets,
        };
        let canon = game
            .validate(section, &plain.merged(), &server)
            .map_err(Error::Validation)?;
        let stored = self.stored_section(section, canon, &plain.secrets)?;
        let author = ctx.principal.as_ref().map(|p| p.user_id);
        let v = self
            .store
            .save_config(server_id, expect.value(), vec![stored], author, comment)
            .await
            .map_err(Self::save_err(expect))?;
        let changed_secrets: Vec<&str> = section
            .secrets
            .iter()
            .copied()
            .filter(|f| old_secrets.get(*f) != plain.secrets.get(*f))
            .collect();
        self.audit(ctx, "config.update", "server", Some(server_id.to_string()), json!({"section": section.name, "version": v.version, "secrets_changed": changed_secrets})).await;
        Ok(v)
    }

    /// Version list, newest first.
    pub async fn list_versions(&self, server_id: Uuid) -> Result<Vec<ConfigVersionSummary>> {
        self.get_server(server_id).await?;
        Ok(self.store.list_config_versions(server_id, 500).await?)
    }

    /// One version, decrypted, with the server it belongs to.
    pub async fn get_version(
        &self,
        server_id: Uuid,
        version: i64,
    ) -> Result<(Server, ConfigVersion, PlainSections)> {
        let server = self.get_server(server_id).await?;
        let v = self
            .store
            .get_config_version(server_id, version)
            .await?
            .ok_or(Error::NotFound("config version"))?;
        let plain = self.plain_sections(&v.sections)?;
        Ok((server, v, plain))
    }

    /// Field-level diff between two versions (`to = None`: the current config).
    pub async fn diff_versions(
        &self,
        server_id: Uuid,
        from: i64,
        to: Option<i64>,
    ) -> Result<Vec<DiffEntry>> {
        let (_, _, a) = self.get_version(server_id, from).await?;
        let b = match to {
            Some(t) => self.get_version(server_id, t).await?.2,
            None => self.current_config(server_id).await?.1.sections,
        };
        let flat = |m: &PlainSections| {
            let mut o = Map::new();
            for (k, p) in m {
                let mut merged = p.content.clone();
                for (sk, sv) in &p.secrets {
                    merged.insert(sk.clone(), json!({"$secret": crate::auth::token_hash(sv)}));
                }
                o.insert(k.clone(), Value::Object(merged));
            }
            Value::Object(o)
        };
        let mut out = Vec::new();
        diff_values("", &flat(&a), &flat(&b), &mut out);
        Ok(out)
    }

    /// Makes the sections of an old version the complete current set, as a new version
    /// (sections added after that version are removed, in the same transaction).
    pub async fn rollback(
        &self,
        ctx: &Ctx,
        server_id: Uuid,
        version: i64,
        expect: Expect,
    ) -> Result<ConfigVersion> {
        let (_, old, _) = self.get_version(server_id, version).await?;
        let cur = self.store.get_config(server_id).await?;
        let expect = expect.against(cur.revision)?;
        let author = ctx.principal.as_ref().map(|p| p.user_id);
        let v = self
            .store
            .replace_config(
                server_id,
                expect.value(),
                old.sections,
                author,
                Some(format!("rollback to version {version}")),
            )
            .await
            .map_err(Self::save_err(expect))?;
        self.audit(
            ctx,
            "config.rollback",
            "server",
            Some(server_id.to_string()),
            json!({"to_version": version, "version": v.version}),
        )
        .await;
        Ok(v)
    }

    /// The files the agent would write; `masked` hides every secret.
    pub async fn render_files(&self, server_id: Uuid, masked: bool) -> Result<Vec<RenderedFile>> {
        let (server, cur) = self.current_config(server_id).await?;
        let view = if masked {
            FileView::Masked
        } else {
            FileView::Clear
        };
        games::of(&server)?.files(&server, &cur.merged(), view)
    }

    /// Imports existing files (name -> text; the names the game reads) as new section
    /// contents, in one version.
    pub async fn import(
        &self,
        ctx: &Ctx,
        server_id: Uuid,
        files: &[(String, String)],
        expect: Expect,
    ) -> Result<ImportResult> {
        let (server, cur) = self.current_config(server_id).await?;
        let game = games::of(&server)?;
        let expect = expect.against(cur.revision)?;
        if files.is_empty() {
            return Err(Error::field(
                "files",
                format!("give at least one of {}", game.importable().join(", ")),
            ));
        }
        let mut warnings: Vec<String> = Vec::new();
        let mut sections: Vec<ConfigSection> = Vec::new();
        let mut errors: Vec<FieldError> = Vec::new();
        for (file, text) in files {
            let imported = match game.import(file, text) {
                Ok(i) => i,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            let Some(section) = game.section(imported.section) else {
                return Err(Error::internal(format!(
                    "{} imports into an unknown section {}",
                    game.kind(),
                    imported.section
                )));
            };
            warnings.extend(imported.warnings);
            let canon = match game.validate(section, &imported.content, &server) {
                Ok(c) => c,
                Err(mut e) => {
                    errors.append(&mut e);
                    continue;
                }
            };
            // Like put_section: secrets the file does not set keep their stored value
            // (an exported file carries no secrets, so importing it back must not wipe them).
            let mut secrets = cur
                .sections
                .get(section.name)
                .map(|p| p.secrets.clone())
                .unwrap_or_default();
            let mut content = match canon {
                Value::Object(m) => m,
                _ => Map::new(),
            };
            for f in section.secrets {
                match content.remove(*f) {
                    Some(Value::String(s)) => {
                        secrets.insert((*f).to_owned(), s);
                    }
                    _ if secrets.contains_key(*f) => {
                        warnings.push(format!(
                            "{file}: {f} not in the file; kept the stored value"
                        ));
                    }
                    _ => {}
                }
            }
            sections.push(self.stored_section(section, Value::Object(content), &secrets)?);
        }
        if !errors.is_empty() {
            return Err(Error::Validation(errors));
        }
        let author = ctx.principal.as_ref().map(|p| p.user_id);
        let version = self
            .store
            .save_config(
                server_id,
                expect.value(),
                sections,
                author,
                Some("import".into()),
            )
            .await
            .map_err(Self::save_err(expect))?;
        self.audit(
            ctx,
            "config.import",
            "server",
            Some(server_id.to_string()),
            json!({"version": version.version, "warnings": warnings.len()}),
        )
        .await;
        Ok(ImportResult { version, warnings })
    }
}

fn mask_secret(v: &Value) -> Value {
    if v.get("$secret").is_some() {
        Value::String(MASK.into())
    } else {
        v.clone()
    }
}

/// Recursive JSON diff; objects by key, arrays by index, secrets masked.
pub fn diff_values(path: &str, a: &Value, b: &Value, out: &mut Vec<DiffEntry>) {
    let join = |k: &str| {
        if path.is_empty() {
            k.to_owned()
        } else {
            format!("{path}.{k}")
        }
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y))
            if !(x.contains_key("$secret") || y.contains_key("$secret")) =>
        {
            for (k, va) in x {
                match y.get(k) {
                    Some(vb) => diff_values(&join(k), va, vb, out),
                    None if !va.is_null() => out.push(DiffEntry {
                        path: join(k),
                        op: "removed",
                        from: Some(mask_secret(va)),
                        to: None,
                    }),
                    None => {}
                }
            }
            for (k, vb) in y {
                if !x.contains_key(k) && !vb.is_null() {
                    out.push(DiffEntry {
                        path: join(k),
                        op: "added",
                        from: None,
                        to: Some(mask_secret(vb)),
                    });
                }
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            for i in 0..x.len().max(y.len()) {
                let p = format!("{path}[{i}]");
                match (x.get(i), y.get(i)) {
                    (Some(va), Some(vb)) => diff_values(&p, va, vb, out),
                    (Some(va), None) => out.push(DiffEntry {
                        path: p,
                        op: "removed",
                        from: Some(mask_secret(va)),
                        to: None,
                    }),
                    (None, Some(vb)) => out.push(DiffEntry {
                        path: p,
                        op: "added",
                        from: None,
                        to: Some(mask_secret(vb)),
                    }),
                    (None, None) => {}
                }
            }
        }
        _ if a != b => {
            let op = if a.is_null() {
                "added"
            } else if b.is_null() {
                "removed"
            } else {
                "changed"
            };
            out.push(DiffEntry {
                path: path.to_owned(),
                op,
                from: (!a.is_null()).then(|| mask_secret(a)),
                to: (!b.is_null()).then(|| mask_secret(b)),
            });
        }
        _ => {}
    }
}

#[cfg(test)]
mod debug_tests {
    use super::*;

    #[test]
    fn plain_debug_redacts_secrets() {
        let mut p = Plain::default();
        p.content
            .insert("hostname".into(), Value::String("My server".into()));
        p.secrets
            .insert("password_admin".into(), "ADMIN-SECRET".into());
        let d = format!("{p:?}");
        assert!(!d.contains("ADMIN-SECRET"), "{d}");
        assert!(d.contains("password_admin") && d.contains("My server"));
    }

    #[test]
    fn public_content_shows_only_whether_secrets_are_set() {
        let mut p = Plain::default();
        p.content.insert("a".into(), json!(1));
        p.secrets.insert("password".into(), "pw".into());
        let v = p.public(&["password", "other"]);
        assert_eq!(v, json!({"a": 1, "password_set": true, "other_set": false}));
    }

    #[test]
    fn rendered_file_debug_hides_content() {
        let r = RenderedFile {
            name: "server.cfg".into(),
            content: "passwordAdmin = \"ADMIN-SECRET\";".into(),
        };
        let d = format!("{r:?}");
        assert!(!d.contains("ADMIN-SECRET"), "{d}");
        assert!(d.contains("server.cfg"));
    }
}
