//! Helpers shared by both backends.

use time::OffsetDateTime;
use uuid::Uuid;

/// A new app-generated id (UUIDv7: time ordered, index friendly).
pub fn new_id() -> Uuid {
    Uuid::now_v7()
}

/// Current time in UTC truncated to microseconds (the precision both backends keep).
pub fn now() -> OffsetDateTime {
    truncate(OffsetDateTime::now_utc())
}

/// UTC, microsecond precision.
pub fn truncate(t: OffsetDateTime) -> OffsetDateTime {
    let t = t.to_offset(time::UtcOffset::UTC);
    let micros = t.microsecond();
    t.replace_microsecond(micros).unwrap_or(t)
}

use serde_json::Value;
use sqlx::encode::IsNull;
use sqlx::error::{BoxDynError, ErrorKind};
use sqlx::{Encode, Postgres, Sqlite, Type};
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

use super::{
    AuditQuery, ConfigSection, ConfigSectionKind, LogQuery, MetricQuery, SessionQuery, StoreError,
    StoreResult,
};

/// Bind wrapper for timestamps: PostgreSQL gets a native TIMESTAMPTZ; SQLite gets fixed-width
/// UTC text (`2024-01-02T03:04:05.000006Z`) so that comparing the text compares the time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DbTs(pub OffsetDateTime);

pub(crate) fn ts(t: OffsetDateTime) -> DbTs {
    DbTs(t)
}

const SQLITE_TS: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

impl Type<Sqlite> for DbTs {
    fn type_info() -> <Sqlite as sqlx::Database>::TypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
}

impl Encode<'_, Sqlite> for DbTs {
    fn encode_by_ref(
        &self,
        buf: &mut <Sqlite as sqlx::Database>::ArgumentBuffer,
    ) -> Result<IsNull, BoxDynError> {
        let s = self.0.to_offset(time::UtcOffset::UTC).format(SQLITE_TS)?;
        Encode::<Sqlite>::encode(s, buf)
    }
}

impl Type<Postgres> for DbTs {
    fn type_info() -> <Postgres as sqlx::Database>::TypeInfo {
        <OffsetDateTime as Type<Postgres>>::type_info()
    }
}

impl Encode<'_, Postgres> for DbTs {
    fn encode_by_ref(
        &self,
        buf: &mut <Postgres as sqlx::Database>::ArgumentBuffer,
    ) -> Result<IsNull, BoxDynError> {
        <OffsetDateTime as Encode<Postgres>>::encode_by_ref(&self.0, buf)
    }
}

/// Maps driver errors to [`StoreError`] by error kind (not by backend codes where avoidable).
pub(crate) fn map_err(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_) => StoreError::Unavailable(e.to_string()),
        sqlx::Error::Database(db) => {
            let what = db
                .constraint()
                .map(str::to_owned)
                .unwrap_or_else(|| db.message().to_owned());
            match db.kind() {
                ErrorKind::UniqueViolation => StoreError::Conflict(what),
                ErrorKind::ForeignKeyViolation => {
                    StoreError::Conflict(format!("foreign key: {what}"))
                }
                // SQLite reports ON DELETE RESTRICT as SQLITE_CONSTRAINT_TRIGGER (1811).
                _ if db.message().contains("FOREIGN KEY constraint failed") => {
                    StoreError::Conflict(format!("foreign key: {what}"))
                }
                ErrorKind::NotNullViolation | ErrorKind::CheckViolation => {
                    StoreError::InvalidInput(what)
                }
                _ => {
                    let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
                    // PostgreSQL class 22 = data exception (e.g. NUL in text/jsonb, out of range).
                    if code.starts_with("22") {
                        StoreError::InvalidInput(db.message().to_owned())
                    // SQLite BUSY / LOCKED (incl. extended codes).
                    } else if code == "5"
                        || code == "6"
                        || code.ends_with("05") && db.message().contains("locked")
                    {
                        StoreError::Unavailable(db.message().to_owned())
                    } else {
                        StoreError::Internal(anyhow::anyhow!(
                            "database error {code}: {}",
                            db.message()
                        ))
                    }
                }
            }
        }
        other => StoreError::Internal(anyhow::Error::new(other)),
    }
}

pub(crate) fn map_migrate_err(e: sqlx::migrate::MigrateError) -> StoreError {
    match e {
        sqlx::migrate::MigrateError::Execute(inner) => map_err(inner),
        other => StoreError::Internal(anyhow::anyhow!("migration failed: {other}")),
    }
}

/// Refuses NUL in any text (PostgreSQL cannot store it; SQLite would, so check both the same way).
pub(crate) fn check_text(fields: &[&str]) -> StoreResult<()> {
    if fields.iter().any(|s| s.contains('\0')) {
        return Err(StoreError::InvalidInput(
            "text must not contain NUL (U+0000)".into(),
        ));
    }
    Ok(())
}

pub(crate) fn check_opt(fields: &[Option<&str>]) -> StoreResult<()> {
    check_text(&fields.iter().flatten().copied().collect::<Vec<_>>())
}

pub(crate) fn check_json(v: &Value) -> StoreResult<()> {
    match v {
        Value::String(s) => check_text(&[s]),
        Value::Array(a) => a.iter().try_for_each(check_json),
        Value::Object(o) => o.iter().try_for_each(|(k, v)| {
            check_text(&[k])?;
            check_json(v)
        }),
        _ => Ok(()),
    }
}

pub(crate) fn clamp_limit(limit: i64, max: i64) -> i64 {
    limit.clamp(1, max)
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
        .filter_map(|s| s.secrets.as_ref().map(|b| (s.section, b)))
        .collect();
    if with.is_empty() {
        return None;
    }
    let mut out = vec![1u8];
    for (kind, blob) in with {
        let name = kind.as_str().as_bytes();
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
    let mut blobs: Vec<(ConfigSectionKind, Vec<u8>)> = Vec::new();
    if let Some(mut b) = secrets {
        if b.first() != Some(&1) {
            return Err(bad());
        }
        b = &b[1..];
        while !b.is_empty() {
            let n = *b.first().ok_or_else(bad)? as usize;
            let name = b.get(1..1 + n).ok_or_else(bad)?;
            let kind: ConfigSectionKind = std::str::from_utf8(name).map_err(|_| bad())?.parse()?;
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
    for (name, content) in map {
        let section: ConfigSectionKind = name.parse()?;
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
    out.sort_by_key(|s| s.section as u8);
    Ok(out)
}

// ------------------------------------------------------------------ dynamic SQL

/// A bind value for dynamically assembled (but fully parameterised) SQL.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Uuid(Uuid),
    I64(i64),
    I16(i16),
    Ts(OffsetDateTime),
    Text(String),
}

/// SQL assembled from fixed fragments with `$n` placeholders (valid on both backends).
#[derive(Debug, Default)]
pub(crate) struct Sql {
    pub sql: String,
    pub args: Vec<Arg>,
}

impl Sql {
    pub fn new(s: &str) -> Self {
        Sql {
            sql: s.to_owned(),
            args: Vec::new(),
        }
    }
    pub fn push(&mut self, s: &str) -> &mut Self {
        self.sql.push_str(s);
        self
    }
    /// Appends a placeholder for `a`.
    pub fn bind(&mut self, a: Arg) -> &mut Self {
        self.args.push(a);
        self.sql.push_str(&format!("${}", self.args.len()));
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

pub(crate) fn audit_sql(q: &AuditQuery) -> Sql {
    let mut s = Sql::new("SELECT * FROM audit_events WHERE 1 = 1");
    if let Some(v) = q.actor_user_id {
        s.push(" AND actor_user_id = ").bind(Arg::Uuid(v));
    }
    if let Some(v) = q.actor_kind {
        s.push(" AND actor_kind = ")
            .bind(Arg::Text(v.as_str().to_owned()));
    }
    if let Some(v) = &q.action {
        s.push(" AND action = ").bind(Arg::Text(v.clone()));
    }
    if let Some(v) = &q.target_kind {
        s.push(" AND target_kind = ").bind(Arg::Text(v.clone()));
    }
    if let Some(v) = &q.target_id {
        s.push(" AND target_id = ").bind(Arg::Text(v.clone()));
    }
    if let Some(v) = q.from {
        s.push(" AND ts >= ").bind(Arg::Ts(v));
    }
    if let Some(v) = q.to {
        s.push(" AND ts < ").bind(Arg::Ts(v));
    }
    if let Some(c) = q.before {
        s.push(" AND (ts, id) < (")
            .bind(Arg::Ts(c.ts))
            .push(", ")
            .bind(Arg::Uuid(c.id))
            .push(")");
    }
    s.push(" ORDER BY ts DESC, id DESC LIMIT ")
        .bind(Arg::I64(clamp_limit(q.limit, 1000) + 1));
    s
}

fn escape_like(term: &str) -> String {
    let mut out = String::with_capacity(term.len() + 2);
    out.push('%');
    for c in term.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

pub(crate) fn logs_sql(q: &LogQuery, backend: Backend) -> Sql {
    let mut s =
        Sql::new("SELECT l.id, l.server_id, l.seq, l.ts, l.level, l.text FROM logs l WHERE 1 = 1");
    if let Some(v) = q.server_id {
        s.push(" AND l.server_id = ").bind(Arg::Uuid(v));
    }
    if let Some(v) = q.min_level {
        s.push(" AND l.level >= ").bind(Arg::I16(v.as_i16()));
    }
    if let Some(v) = q.from {
        s.push(" AND l.ts >= ").bind(Arg::Ts(v));
    }
    if let Some(v) = q.to {
        s.push(" AND l.ts < ").bind(Arg::Ts(v));
    }
    if let Some(c) = q.before {
        s.push(" AND (l.ts, l.id) < (")
            .bind(Arg::Ts(c.ts))
            .push(", ")
            .bind(Arg::I64(c.id))
            .push(")");
    }
    if let Some(term) = q.contains.as_deref().filter(|t| !t.is_empty()) {
        match backend {
            Backend::Postgres => {
                s.push(" AND l.text ILIKE ")
                    .bind(Arg::Text(escape_like(term)));
            }
            Backend::Sqlite if term.chars().count() >= 3 => {
                // FTS5 trigram phrase query = case-insensitive substring match.
                let phrase = format!("\"{}\"", term.replace('"', "\"\""));
                s.push(" AND l.id IN (SELECT rowid FROM logs_fts WHERE logs_fts MATCH ")
                    .bind(Arg::Text(phrase))
                    .push(")");
            }
            Backend::Sqlite => {
                s.push(" AND instr(lower(l.text), lower(")
                    .bind(Arg::Text(term.to_owned()))
                    .push(")) > 0");
            }
        }
    }
    s.push(" ORDER BY l.ts DESC, l.id DESC LIMIT ")
        .bind(Arg::I64(clamp_limit(q.limit, 5000) + 1));
    s
}

pub(crate) fn metrics_sql(q: &MetricQuery) -> Sql {
    let mut s = Sql::new("SELECT * FROM metrics WHERE 1 = 1");
    if let Some(v) = q.server_id {
        s.push(" AND server_id = ").bind(Arg::Uuid(v));
    }
    if let Some(v) = q.host_id {
        s.push(" AND host_id = ").bind(Arg::Uuid(v));
    }
    if let Some(v) = q.from {
        s.push(" AND ts >= ").bind(Arg::Ts(v));
    }
    if let Some(v) = q.to {
        s.push(" AND ts < ").bind(Arg::Ts(v));
    }
    s.push(" ORDER BY ts ASC, id ASC LIMIT ")
        .bind(Arg::I64(clamp_limit(q.limit, 10_000)));
    s
}

pub(crate) fn sessions_sql(q: &SessionQuery) -> Sql {
    let mut s = Sql::new("SELECT * FROM player_sessions WHERE 1 = 1");
    if let Some(v) = q.server_id {
        s.push(" AND server_id = ").bind(Arg::Uuid(v));
    }
    if let Some(v) = q.player_id {
        s.push(" AND player_id = ").bind(Arg::Uuid(v));
    }
    if q.open_only {
        s.push(" AND left_at IS NULL");
    }
    s.push(" ORDER BY joined_at DESC, id DESC LIMIT ")
        .bind(Arg::I64(clamp_limit(q.limit, 10_000)));
    s
}

/// Multi-row INSERT text for `rows` rows of `cols` columns.
pub(crate) fn multi_insert(head: &str, cols: usize, rows: usize) -> String {
    let mut s = String::with_capacity(head.len() + rows * cols * 6);
    s.push_str(head);
    s.push_str(" VALUES ");
    let mut n = 0;
    for r in 0..rows {
        if r > 0 {
            s.push(',');
        }
        s.push('(');
        for c in 0..cols {
            if c > 0 {
                s.push(',');
            }
            n += 1;
            s.push_str(&format!("${n}"));
        }
        s.push(')');
    }
    s
}

// ------------------------------------------------------------------ internal rows

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
                section: name.parse()?,
                content: content.0,
                secrets: r.secrets,
            },
            revision: rev,
            updated_at,
        });
    }
    sections.sort_by_key(|s| s.section.section as u8);
    Ok(super::ServerConfig {
        server_id,
        revision,
        sections,
    })
}

/// How long a replica may answer `list_servers` from memory. Writes through this store
/// invalidate at once; writes by another replica (PostgreSQL) show up within this time.
pub(crate) const SERVER_LIST_TTL: std::time::Duration = std::time::Duration::from_secs(1);

type ServerListSlot = Option<(std::time::Instant, u64, std::sync::Arc<Vec<super::Server>>)>;

/// Read-through cache of the full server list (the hottest read of the API), tagged with
/// a generation so that a fill racing a write never outlives the write's invalidation.
/// Nothing here is needed to rebuild state: the database stays the only source of truth.
pub(crate) struct ServerListCache {
    ttl: std::time::Duration,
    generation: std::sync::atomic::AtomicU64,
    slot: std::sync::RwLock<ServerListSlot>,
}

impl ServerListCache {
    pub(crate) fn new(ttl: std::time::Duration) -> Self {
        Self {
            ttl,
            generation: std::sync::atomic::AtomicU64::new(0),
            slot: std::sync::RwLock::new(None),
        }
    }

    /// The cached list if fresh, else the generation to pass to [`Self::put`].
    pub(crate) fn get(&self) -> Result<std::sync::Arc<Vec<super::Server>>, u64> {
        let generation = self.generation.load(std::sync::atomic::Ordering::Acquire);
        if let Ok(slot) = self.slot.read()
            && let Some((at, g, list)) = slot.as_ref()
            && *g == generation
            && at.elapsed() < self.ttl
        {
            return Ok(list.clone());
        }
        Err(generation)
    }

    /// Stores a list read after [`Self::get`] returned `generation`, unless a write
    /// invalidated in between.
    pub(crate) fn put(&self, generation: u64, list: std::sync::Arc<Vec<super::Server>>) {
        if self.ttl.is_zero() {
            return;
        }
        if let Ok(mut slot) = self.slot.write()
            && self.generation.load(std::sync::atomic::Ordering::Acquire) == generation
        {
            *slot = Some((std::time::Instant::now(), generation, list));
        }
    }

    /// Called after every write that changes `servers` rows (committed or not).
    pub(crate) fn invalidate(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        if let Ok(mut slot) = self.slot.write() {
            *slot = None;
        }
    }
}
