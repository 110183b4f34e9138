//! Config sections of a server: validation through the shared models, secrets sealed at
//! rest, every save a version, diff, rollback, preview (masked), real files and import.

use std::collections::BTreeMap;

use languard_shared::arma::config::battleye::config_file_name;
use languard_shared::arma::config::{
    Arma3Profile, BasicConfig, BattlEyeConfig, ConfigError, HostOs, ImportWarning, ServerArch,
    ServerConfig as ArmaServerConfig,
};
use languard_shared::arma::launch::{LaunchArgs, LaunchError, check_extra};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::fleet::Expect;
use super::{App, Ctx};
use crate::error::{Error, FieldError, Result};
use crate::store::{ConfigSection, ConfigVersion, ConfigVersionSummary, Server, StoreError};

/// The config sections of an Arma 3 server. The store keeps section names as free text;
/// this is the Arma rule until the game registry owns section kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConfigSectionKind {
    Server,
    Basic,
    Profile,
    Launch,
    Rcon,
}

use ConfigSectionKind as Kind;

impl ConfigSectionKind {
    pub const ALL: &'static [Kind] = &[
        Kind::Server,
        Kind::Basic,
        Kind::Profile,
        Kind::Launch,
        Kind::Rcon,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Server => "server",
            Kind::Basic => "basic",
            Kind::Profile => "profile",
            Kind::Launch => "launch",
            Kind::Rcon => "rcon",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.as_str() == s)
    }
}

/// Shown instead of a secret.
pub const MASK: &str = "********";

/// The `launch` section: what the admin controls of the command line.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LaunchSection {
    /// `-mod=` entries.
    pub mods: Vec<String>,
    /// `-serverMod=` entries.
    pub server_mods: Vec<String>,
    /// `-limitFPS=`.
    pub limit_fps: Option<u32>,
    /// `-autoInit`.
    pub auto_init: bool,
    /// `-loadMissionToMemory`.
    pub load_mission_to_memory: bool,
    /// Further parameters (validated with `check_extra`).
    pub extra: Vec<String>,
}

/// The `rcon` section: BattlEye's config minus the port (which is the server's `rcon_port`).
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RconSection {
    /// `RConPassword` (secret).
    pub password: Option<String>,
    /// `MaxPing`.
    pub max_ping: Option<u32>,
    /// `RestrictRCon`.
    pub restrict_rcon: Option<bool>,
}

impl std::fmt::Debug for RconSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RconSection")
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("max_ping", &self.max_ping)
            .field("restrict_rcon", &self.restrict_rcon)
            .finish()
    }
}

/// Secret fields of a section.
pub fn secret_fields(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Server => &["password", "password_admin", "server_command_password"],
        Kind::Rcon => &["password"],
        _ => &[],
    }
}

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

    /// Content for the API: secrets replaced by `<field>_set` flags.
    pub fn public(&self, kind: Kind) -> Value {
        let mut m = self.content.clone();
        for f in secret_fields(kind) {
            m.remove(*f);
            m.insert(
                format!("{f}_set"),
                Value::Bool(self.secrets.contains_key(*f)),
            );
        }
        Value::Object(m)
    }
}

/// The current config of a server, decrypted.
#[derive(Debug, Clone)]
pub struct Current {
    /// Config revision.
    pub revision: i64,
    /// Sections present.
    pub sections: BTreeMap<&'static str, (Kind, Plain)>,
}

/// Result of an import.
#[derive(Debug, Clone)]
pub struct ImportResult {
    /// The new version.
    pub version: ConfigVersion,
    /// What the importer reported.
    pub warnings: Vec<String>,
}

/// A rendered file.
#[derive(Clone)]
pub struct RenderedFile {
    /// File name.
    pub name: String,
    /// Content.
    pub content: String,
}

/// The content holds secrets in clear; only its size is shown.
impl std::fmt::Debug for RenderedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenderedFile")
            .field("name", &self.name)
            .field(
                "content",
                &format_args!("<{} bytes redacted>", self.content.len()),
            )
            .finish()
    }
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

fn cfg_err(prefix_from: &str, prefix_to: &str, e: &ConfigError) -> FieldError {
    let field = e
        .field_path()
        .map(|p| p.replacen(prefix_from, prefix_to, 1))
        .unwrap_or_else(|| prefix_to.to_owned());
    let message = match e {
        ConfigError::Field { problem, .. } | ConfigError::Import { problem, .. } => {
            problem.to_string()
        }
        other => other.to_string(),
    };
    FieldError { field, message }
}

fn deser<T: serde::de::DeserializeOwned>(
    section: &str,
    v: &Value,
) -> std::result::Result<T, FieldError> {
    serde_path_to_error::deserialize::<_, T>(v).map_err(|e| {
        let path = e.path().to_string();
        FieldError {
            field: if path == "." {
                section.to_owned()
            } else {
                format!("{section}.{path}")
            },
            message: e.inner().to_string(),
        }
    })
}

fn unknown_keys<T: Serialize>(section: &str, typed: &T, input: &Value) -> Vec<FieldError> {
    let known = serde_json::to_value(typed).ok();
    let (Some(Value::Object(known)), Value::Object(inp)) = (known, input) else {
        return Vec::new();
    };
    inp.keys()
        .filter(|k| !known.contains_key(*k))
        .map(|k| FieldError {
            field: format!("{section}.{k}"),
            message: "unknown field".into(),
        })
        .collect()
}

fn launch_error(e: &LaunchError) -> FieldError {
    let field = match e {
        LaunchError::InvalidValue { param, .. } => {
            if let Some(rest) = param.strip_prefix("-mod") {
                format!("launch.mods{rest}")
            } else if let Some(rest) = param.strip_prefix("-serverMod") {
                format!("launch.server_mods{rest}")
            } else if param == "-limitFPS" {
                "launch.limit_fps".to_owned()
            } else {
                "launch".to_owned()
            }
        }
        _ => "launch.extra".to_owned(),
    };
    FieldError {
        field,
        message: e.to_string(),
    }
}

/// Validates a section (content with secrets merged) and returns its canonical form.
pub fn validate_section(
    kind: Kind,
    merged: &Value,
    server: &Server,
) -> std::result::Result<Value, Vec<FieldError>> {
    let name = kind.as_str();
    if !merged.is_object() {
        return Err(vec![FieldError {
            field: name.into(),
            message: "must be an object".into(),
        }]);
    }
    let canon = match kind {
        Kind::Server => {
            let c: ArmaServerConfig = deser(name, merged).map_err(|e| vec![e])?;
            let unk = unknown_keys(name, &c, merged);
            if !unk.is_empty() {
                return Err(unk);
            }
            c.validate()
                .map_err(|e| vec![cfg_err("server", "server", &e)])?;
            serde_json::to_value(&c)
        }
        Kind::Basic => {
            let c: BasicConfig = deser(name, merged).map_err(|e| vec![e])?;
            let unk = unknown_keys(name, &c, merged);
            if !unk.is_empty() {
                return Err(unk);
            }
            c.validate()
                .map_err(|e| vec![cfg_err("basic", "basic", &e)])?;
            serde_json::to_value(&c)
        }
        Kind::Profile => {
            let c: Arma3Profile = deser(name, merged).map_err(|e| vec![e])?;
            let unk = unknown_keys(name, &c, merged);
            if !unk.is_empty() {
                return Err(unk);
            }
            c.validate()
                .map_err(|e| vec![cfg_err("profile", "profile", &e)])?;
            serde_json::to_value(&c)
        }
        Kind::Launch => {
            let c: LaunchSection = deser(name, merged).map_err(|e| vec![e])?;
            let mut errs = Vec::new();
            for (i, x) in c.extra.iter().enumerate() {
                if let Err(e) = check_extra(x) {
                    errs.push(FieldError {
                        field: format!("launch.extra[{i}]"),
                        message: e.to_string(),
                    });
                }
            }
            if errs.is_empty()
                && let Err(e) = launch_args(&c, server).build()
            {
                errs.push(launch_error(&e));
            }
            if !errs.is_empty() {
                return Err(errs);
            }
            serde_json::to_value(&c)
        }
        Kind::Rcon => {
            let c: RconSection = deser(name, merged).map_err(|e| vec![e])?;
            let Some(pw) = &c.password else {
                return Err(vec![FieldError {
                    field: "rcon.password".into(),
                    message: "is required".into(),
                }]);
            };
            battleye(&c, pw, server)
                .validate()
                .map_err(|e| vec![cfg_err("battleye.rcon_password", "rcon.password", &e)])?;
            serde_json::to_value(&c)
        }
    };
    canon.map_err(|e| {
        vec![FieldError {
            field: name.into(),
            message: e.to_string(),
        }]
    })
}

fn launch_args(c: &LaunchSection, server: &Server) -> LaunchArgs {
    LaunchArgs {
        port: u16::try_from(server.game_port).unwrap_or(0),
        mods: c.mods.clone(),
        server_mods: c.server_mods.clone(),
        limit_fps: c.limit_fps,
        auto_init: c.auto_init,
        load_mission_to_memory: c.load_mission_to_memory,
        extra: c.extra.clone(),
        config: Some("server.cfg".into()),
        cfg: Some("basic.cfg".into()),
        profiles: Some("profiles".into()),
        name: Some("server".into()),
        ..LaunchArgs::default()
    }
}

fn battleye(c: &RconSection, pw: &str, server: &Server) -> BattlEyeConfig {
    let mut b = BattlEyeConfig::new(pw, u16::try_from(server.rcon_port).unwrap_or(0));
    b.max_ping = c.max_ping;
    b.restrict_rcon = c.restrict_rcon;
    b
}

fn kind_key(k: Kind) -> &'static str {
    k.as_str()
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

    fn plain_sections(
        &self,
        sections: &[ConfigSection],
    ) -> Result<BTreeMap<&'static str, (Kind, Plain)>> {
        let mut out = BTreeMap::new();
        for s in sections {
            let kind = Kind::parse(&s.section).ok_or_else(|| {
                Error::internal(format!("unknown config section {:?}", s.section))
            })?;
            out.insert(kind_key(kind), (kind, self.open_section(s)?));
        }
        Ok(out)
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
            StoreError::Conflict(w) if w.contains("revision") => expect.stale(None),
            e => e.into(),
        }
    }

    /// Replaces one section. Omitted (or null) secrets keep their stored value; names in
    /// `clear` remove a secret.
    #[allow(clippy::too_many_arguments)]
    pub async fn put_section(
        &self,
        ctx: &Ctx,
        server_id: Uuid,
        kind: Kind,
        content: Value,
        clear: &[String],
        expect: Expect,
        comment: Option<String>,
    ) -> Result<ConfigVersion> {
        let (server, cur) = self.current_config(server_id).await?;
        let expect = expect.against(cur.revision)?;
        let Value::Object(mut input) = content else {
            return Err(Error::field(kind.as_str(), "must be an object"));
        };
        let mut secrets = cur
            .sections
            .get(kind_key(kind))
            .map(|(_, p)| p.secrets.clone())
            .unwrap_or_default();
        for f in secret_fields(kind) {
            input.remove(&format!("{f}_set"));
            match input.remove(*f) {
                Some(Value::String(s)) => {
                    secrets.insert((*f).to_owned(), s);
                }
                Some(Value::Null) | None => {}
                Some(_) => {
                    return Err(Error::field(
                        format!("{}.{f}", kind.as_str()),
                        "must be a string",
                    ));
                }
            }
        }
        for c in clear {
            if !secret_fields(kind).contains(&c.as_str()) {
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
        let canon = validate_section(kind, &plain.merged(), &server).map_err(Error::Validation)?;
        let mut stored = match canon {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        for f in secret_fields(kind) {
            stored.remove(*f);
        }
        let section = ConfigSection {
            section: kind.as_str().into(),
            content: Value::Object(stored),
            secrets: self.seal_secrets(&plain.secrets)?,
        };
        let author = ctx.principal.as_ref().map(|p| p.user_id);
        let v = self
            .store
            .save_config(server_id, expect.value(), vec![section], author, comment)
            .await
            .map_err(Self::save_err(expect))?;
        let changed_secrets: Vec<&str> = secret_fields(kind)
            .iter()
            .copied()
            .filter(|f| {
                cur.sections
                    .get(kind_key(kind))
                    .and_then(|(_, p)| p.secrets.get(*f))
                    != plain.secrets.get(*f)
            })
            .collect();
        self.audit(ctx, "config.update", "server", Some(server_id.to_string()), json!({"section": kind.as_str(), "version": v.version, "secrets_changed": changed_secrets})).await;
        Ok(v)
    }

    /// Version list, newest first.
    pub async fn list_versions(&self, server_id: Uuid) -> Result<Vec<ConfigVersionSummary>> {
        self.get_server(server_id).await?;
        Ok(self.store.list_config_versions(server_id, 500).await?)
    }

    /// One version, decrypted.
    pub async fn get_version(
        &self,
        server_id: Uuid,
        version: i64,
    ) -> Result<(ConfigVersion, BTreeMap<&'static str, (Kind, Plain)>)> {
        self.get_server(server_id).await?;
        let v = self
            .store
            .get_config_version(server_id, version)
            .await?
            .ok_or(Error::NotFound("config version"))?;
        let plain = self.plain_sections(&v.sections)?;
        Ok((v, plain))
    }

    /// Field-level diff between two versions (`to = None`: the current config).
    pub async fn diff_versions(
        &self,
        server_id: Uuid,
        from: i64,
        to: Option<i64>,
    ) -> Result<Vec<DiffEntry>> {
        let (_, a) = self.get_version(server_id, from).await?;
        let b = match to {
            Some(t) => self.get_version(server_id, t).await?.1,
            None => self.current_config(server_id).await?.1.sections,
        };
        let flat = |m: &BTreeMap<&'static str, (Kind, Plain)>| {
            let mut o = Map::new();
            for (k, (_, p)) in m {
                let mut merged = p.content.clone();
                for (sk, sv) in &p.secrets {
                    merged.insert(sk.clone(), json!({"$secret": crate::auth::token_hash(sv)}));
                }
                o.insert((*k).to_owned(), Value::Object(merged));
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
        let (old, _) = self.get_version(server_id, version).await?;
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

    /// Renders the files; `masked` hides every secret.
    pub async fn render_files(&self, server_id: Uuid, masked: bool) -> Result<Vec<RenderedFile>> {
        let (server, cur) = self.current_config(server_id).await?;
        let host = self.get_host(server.host_id).await?;
        let os = if host.os == crate::store::HostOs::Windows {
            HostOs::Windows
        } else {
            HostOs::Linux
        };
        let mut files = Vec::new();
        let render_err = |e: ConfigError| Error::Validation(vec![cfg_err("", "", &e)]);
        for (kind, p) in cur.sections.values() {
            let merged = p.merged();
            match kind {
                Kind::Server => {
                    let c: ArmaServerConfig =
                        serde_json::from_value(merged).map_err(Error::internal)?;
                    let text = if masked {
                        c.render_masked()
                    } else {
                        c.render()
                    }
                    .map_err(render_err)?;
                    files.push(RenderedFile {
                        name: "server.cfg".into(),
                        content: text,
                    });
                }
                Kind::Basic => {
                    let c: BasicConfig = serde_json::from_value(merged).map_err(Error::internal)?;
                    files.push(RenderedFile {
                        name: "basic.cfg".into(),
                        content: c.render().map_err(render_err)?,
                    });
                }
                Kind::Profile => {
                    let c: Arma3Profile =
                        serde_json::from_value(merged).map_err(Error::internal)?;
                    files.push(RenderedFile {
                        name: "server.Arma3Profile".into(),
                        content: c.render().map_err(render_err)?,
                    });
                }
                Kind::Launch => {
                    let c: LaunchSection =
                        serde_json::from_value(merged).map_err(Error::internal)?;
                    let argv = launch_args(&c, &server)
                        .build()
                        .map_err(|e| Error::Validation(vec![launch_error(&e)]))?;
                    files.push(RenderedFile {
                        name: "launch.args".into(),
                        content: argv.join("\n") + "\n",
                    });
                }
                Kind::Rcon => {
                    let c: RconSection = serde_json::from_value(merged).map_err(Error::internal)?;
                    let pw = c.password.clone().unwrap_or_default();
                    let text = battleye(&c, &pw, &server).render().map_err(render_err)?;
                    let text = if masked {
                        text.replace(
                            &format!("RConPassword {pw}\n"),
                            &format!("RConPassword {MASK}\n"),
                        )
                    } else {
                        text
                    };
                    let arch = ServerArch::from_executable(&server.executable_path)
                        .unwrap_or(ServerArch::X64);
                    files.push(RenderedFile {
                        name: config_file_name(os, arch).into(),
                        content: text,
                    });
                }
            }
        }
        Ok(files)
    }

    /// Imports server.cfg and/or basic.cfg text as new section contents.
    pub async fn import(
        &self,
        ctx: &Ctx,
        server_id: Uuid,
        server_cfg: Option<&str>,
        basic_cfg: Option<&str>,
        expect: Expect,
    ) -> Result<ImportResult> {
        let (server, cur) = self.current_config(server_id).await?;
        let expect = expect.against(cur.revision)?;
        if server_cfg.is_none() && basic_cfg.is_none() {
            return Err(Error::field(
                "server_cfg",
                "give server_cfg and/or basic_cfg",
            ));
        }
        let mut warnings: Vec<String> = Vec::new();
        let mut sections = Vec::new();
        let imp_err = |field: &str, e: ConfigError| FieldError {
            field: field.to_owned(),
            message: e.to_string(),
        };
        let fmt_w = |file: &str, w: &[ImportWarning]| {
            w.iter().map(|w| format!("{file}: {w}")).collect::<Vec<_>>()
        };
        if let Some(text) = server_cfg {
            let (c, w) = ArmaServerConfig::parse(text)
                .map_err(|e| Error::Validation(vec![imp_err("server_cfg", e)]))?;
            warnings.extend(fmt_w("server.cfg", &w));
            let v = serde_json::to_value(&c).map_err(Error::internal)?;
            let canon = validate_section(Kind::Server, &v, &server).map_err(Error::Validation)?;
            // Like put_section: secrets the file does not set keep their stored value
            // (an exported file carries no secrets, so importing it back must not wipe them).
            let mut secrets = cur
                .sections
                .get(kind_key(Kind::Server))
                .map(|(_, p)| p.secrets.clone())
                .unwrap_or_default();
            let mut content = match canon {
                Value::Object(m) => m,
                _ => Map::new(),
            };
            for f in secret_fields(Kind::Server) {
                match content.remove(*f) {
                    Some(Value::String(s)) => {
                        secrets.insert((*f).to_owned(), s);
                    }
                    _ if secrets.contains_key(*f) => {
                        warnings.push(format!(
                            "server.cfg: {f} not in the file; kept the stored value"
                        ));
                    }
                    _ => {}
                }
            }
            sections.push(ConfigSection {
                section: Kind::Server.as_str().into(),
                content: Value::Object(content),
                secrets: self.seal_secrets(&secrets)?,
            });
        }
        if let Some(text) = basic_cfg {
            let (c, w) = BasicConfig::parse(text)
                .map_err(|e| Error::Validation(vec![imp_err("basic_cfg", e)]))?;
            warnings.extend(fmt_w("basic.cfg", &w));
            let v = serde_json::to_value(&c).map_err(Error::internal)?;
            let canon = validate_section(Kind::Basic, &v, &server).map_err(Error::Validation)?;
            sections.push(ConfigSection {
                section: Kind::Basic.as_str().into(),
                content: canon,
                secrets: None,
            });
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
    fn rcon_section_debug_redacts_password() {
        let r = RconSection {
            password: Some("RCON-SECRET".into()),
            max_ping: Some(200),
            restrict_rcon: None,
        };
        let d = format!("{r:?}");
        assert!(!d.contains("RCON-SECRET"), "{d}");
        assert!(d.contains("<redacted>") && d.contains("200"));
    }

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
