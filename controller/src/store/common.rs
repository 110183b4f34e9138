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

use languard_shared::wire::ServerState;

use super::{
    AuditQuery, ConfigSection, LogQuery, MetricQuery, SessionQuery, StoreError, StoreResult,
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

/// A text column read for a type that has no sqlx decoding of its own (the shared
/// [`ServerState`]); converted with `TryFrom` at the SQL boundary.
#[derive(Debug, sqlx::Type)]
#[sqlx(transparent)]
pub struct DbText(String);

impl TryFrom<DbText> for ServerState {
    type Error = StoreError;
    fn try_from(s: DbText) -> Result<Self, StoreError> {
        parse_server_state(&s.0)
            .ok_or_else(|| StoreError::InvalidInput(format!("unknown server state {:?}", s.0)))
    }
}

/// The stored name of a server state (the agent's wire names). Goes when the shared
/// `ServerState::as_str` arrives.
pub fn server_state_str(s: ServerState) -> &'static str {
    match s {
        ServerState::Stopped => "stopped",
        ServerState::Starting => "starting",
        ServerState::Running => "running",
        ServerState::Stopping => "stopping",
        ServerState::Crashed => "crashed",
        ServerState::Hung => "hung",
        ServerState::Error => "error",
    }
}

fn parse_server_state(s: &str) -> Option<ServerState> {
    [
        ServerState::Stopped,
        ServerState::Starting,
        ServerState::Running,
        ServerState::Stopping,
        ServerState::Crashed,
        ServerState::Hung,
        ServerState::Error,
    ]
    .into_iter()
    .find(|v| server_state_str(*v) == s)
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        map_err(e)
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

/// Refuses a config section name the snapshot codec cannot carry (empty, over 255 bytes).
pub(crate) fn check_section_name(name: &str) -> StoreResult<()> {
    if name.is_empty() || name.len() > 255 {
        return Err(StoreError::InvalidInput(format!(
            "config section name must be 1..=255 bytes: {name:?}"
        )));
    }
    check_text(&[name])
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
///
/// SQLite gets anonymous `?` placeholders: sqlx looks up every parameter's name when it
/// binds, and SQLite finds a name by scanning a list of all named parameters, so `$n`
/// would make binding a statement quadratic in its parameter count (it was most of the
/// time of a 512-row log insert). PostgreSQL needs `$n`.
pub(crate) fn multi_insert(backend: Backend, head: &str, cols: usize, rows: usize) -> String {
    use std::fmt::Write as _;
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
            match backend {
                Backend::Sqlite => s.push('?'),
                Backend::Postgres => {
                    let _ = write!(s, "${n}");
                }
            }
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

// ------------------------------------------------------------------ batched inserts

/// Most rows one multi-row INSERT carries (5 to 15 columns: far below the bind limits of
/// both databases, SQLite 32766 and PostgreSQL 65535).
pub(crate) const MAX_ROWS: usize = 512;
const ROW_SIZES: usize = MAX_ROWS.trailing_zeros() as usize + 1;

/// Row counts of the statements that insert `n` rows: full [`MAX_ROWS`] chunks, then the
/// remainder split into powers of two. So a table has at most ten distinct INSERT texts,
/// which all stay in sqlx's per-connection statement cache (it caches by SQL text): no
/// batch size ever makes the database parse a new statement.
pub(crate) fn chunk_plan(n: usize) -> impl Iterator<Item = usize> {
    let rem = n % MAX_ROWS;
    std::iter::repeat_n(MAX_ROWS, n / MAX_ROWS).chain(
        (0..ROW_SIZES)
            .rev()
            .map(|bit| 1usize << bit)
            .filter(move |size| rem & size != 0),
    )
}

/// `items` cut into the slices [`chunk_plan`] gives, one multi-row statement each.
pub(crate) fn planned_chunks<T>(items: &[T]) -> impl Iterator<Item = &[T]> {
    let mut rest = items;
    chunk_plan(items.len()).map(move |rows| {
        let (chunk, tail) = rest.split_at(rows);
        rest = tail;
        chunk
    })
}

/// A multi-row `INSERT` of one table whose SQL text is built once per row count.
pub(crate) struct MultiInsert {
    head: &'static str,
    cols: usize,
    /// Appended after the VALUES list (e.g. an `ON CONFLICT` clause).
    tail: &'static str,
    /// Per backend (SQLite, PostgreSQL), per power-of-two row count.
    texts: [[std::sync::OnceLock<String>; ROW_SIZES]; 2],
}

impl MultiInsert {
    pub(crate) const fn new(head: &'static str, cols: usize, tail: &'static str) -> Self {
        Self {
            head,
            cols,
            tail,
            texts: [const { [const { std::sync::OnceLock::new() }; ROW_SIZES] }; 2],
        }
    }

    /// The statement for `rows` rows (a count from [`chunk_plan`]; any other count is
    /// built on the spot and not cached).
    pub(crate) fn sql(
        &'static self,
        backend: Backend,
        rows: usize,
    ) -> std::borrow::Cow<'static, str> {
        let build = || {
            let mut s = multi_insert(backend, self.head, self.cols, rows);
            s.push_str(self.tail);
            s
        };
        let texts = &self.texts[backend as usize];
        match texts.get(rows.trailing_zeros() as usize) {
            Some(slot) if rows.is_power_of_two() => {
                std::borrow::Cow::Borrowed(slot.get_or_init(build).as_str())
            }
            _ => std::borrow::Cow::Owned(build()),
        }
    }
}

pub(crate) static LOGS_INSERT: MultiInsert =
    MultiInsert::new("INSERT INTO logs (server_id, seq, ts, level, text)", 5, "");
pub(crate) static METRICS_INSERT: MultiInsert = MultiInsert::new(
    "INSERT INTO metrics (server_id, host_id, ts, cpu_percent, rss_bytes, players, fps)",
    7,
    "",
);
pub(crate) static EVENTS_INSERT: MultiInsert = MultiInsert::new(
    "INSERT INTO server_events (server_id, host_id, seq, ts, kind, data)",
    6,
    "",
);
pub(crate) static STATUS_UPSERT: MultiInsert = MultiInsert::new(
    "INSERT INTO server_status (server_id, state, pid, since, detail, exit_code, exit_signal, restarts, updated_at)",
    9,
    " ON CONFLICT (server_id) DO UPDATE SET state = excluded.state, pid = excluded.pid, \
     since = excluded.since, detail = excluded.detail, exit_code = excluded.exit_code, \
     exit_signal = excluded.exit_signal, restarts = excluded.restarts, updated_at = excluded.updated_at",
);
/// Adds a batch's per-bucket deltas to the stored buckets. A max takes the other side
/// when one side is NULL (SQLite's two-argument `max()` would return NULL; PostgreSQL's
/// `GREATEST` would not, so neither is used).
pub(crate) static ROLLUP_UPSERT: MultiInsert = MultiInsert::new(
    "INSERT INTO metric_rollups (scope, bucket_secs, ts, server_id, host_id, samples, \
     cpu_n, cpu_sum, cpu_max, rss_n, rss_sum, rss_max, players_n, players_sum, players_max)",
    15,
    " ON CONFLICT (scope, bucket_secs, ts) DO UPDATE SET \
     samples = metric_rollups.samples + excluded.samples, \
     cpu_n = metric_rollups.cpu_n + excluded.cpu_n, \
     cpu_sum = metric_rollups.cpu_sum + excluded.cpu_sum, \
     cpu_max = CASE WHEN COALESCE(excluded.cpu_max > metric_rollups.cpu_max, metric_rollups.cpu_max IS NULL) \
       THEN excluded.cpu_max ELSE metric_rollups.cpu_max END, \
     rss_n = metric_rollups.rss_n + excluded.rss_n, \
     rss_sum = metric_rollups.rss_sum + excluded.rss_sum, \
     rss_max = CASE WHEN COALESCE(excluded.rss_max > metric_rollups.rss_max, metric_rollups.rss_max IS NULL) \
       THEN excluded.rss_max ELSE metric_rollups.rss_max END, \
     players_n = metric_rollups.players_n + excluded.players_n, \
     players_sum = metric_rollups.players_sum + excluded.players_sum, \
     players_max = CASE WHEN COALESCE(excluded.players_max > metric_rollups.players_max, metric_rollups.players_max IS NULL) \
       THEN excluded.players_max ELSE metric_rollups.players_max END",
);

/// Upserts the player `$3` (account id) of server `$2`'s game: name `$4`, seen at `$5`.
/// No row when the server does not exist.
pub(crate) const UPSERT_PLAYER_SQL: &str = "INSERT INTO players (id, game, account_id, last_name, first_seen, last_seen) \
     SELECT $1, s.game, $3, $4, $5, $5 FROM servers s WHERE s.id = $2 \
     ON CONFLICT (game, account_id) DO UPDATE SET \
     last_name = excluded.last_name, last_seen = excluded.last_seen RETURNING id";

// ------------------------------------------------------------------ agent telemetry

/// Agent text: NUL becomes U+FFFD (stored, never refused; see `Store::ingest`).
pub(crate) fn scrub(s: &mut String) {
    if s.contains('\0') {
        *s = s.replace('\0', "\u{FFFD}");
    }
}

fn scrub_opt(s: &mut Option<String>) {
    if let Some(s) = s {
        scrub(s);
    }
}

/// [`scrub`] for every string and key of a JSON value.
pub(crate) fn scrub_json(v: &mut Value) {
    match v {
        Value::String(s) => scrub(s),
        Value::Array(a) => a.iter_mut().for_each(scrub_json),
        Value::Object(o) => {
            if o.keys().any(|k| k.contains('\0')) {
                *o = std::mem::take(o)
                    .into_iter()
                    .map(|(mut k, mut v)| {
                        scrub(&mut k);
                        scrub_json(&mut v);
                        (k, v)
                    })
                    .collect();
            } else {
                o.values_mut().for_each(scrub_json);
            }
        }
        _ => {}
    }
}

/// NaN and infinities are no measurement (SQLite would store NULL, PostgreSQL the value).
fn finite(v: Option<f64>) -> Option<f64> {
    v.filter(|x| x.is_finite())
}

/// Makes a batch storable on both backends as documented on `Store::ingest`: NUL in any
/// text becomes U+FFFD, non-finite floats become missing, times are truncated to the
/// microseconds both databases keep.
pub(crate) fn sanitize_batch(b: &mut super::IngestBatch) {
    for l in &mut b.logs {
        scrub(&mut l.text);
        l.ts = truncate(l.ts);
    }
    for m in &mut b.metrics {
        m.cpu_percent = finite(m.cpu_percent);
        m.fps = finite(m.fps);
        m.ts = m.ts.map(truncate);
    }
    for s in &mut b.statuses {
        scrub_opt(&mut s.detail);
        s.since = truncate(s.since);
    }
    for e in &mut b.events {
        scrub_json(&mut e.data);
        e.ts = truncate(e.ts);
    }
    for c in &mut b.sessions {
        match c {
            super::SessionChange::Join {
                account,
                name,
                ip,
                at,
                ..
            } => {
                scrub(account);
                scrub(name);
                scrub_opt(ip);
                *at = truncate(*at);
            }
            super::SessionChange::Leave {
                account, name, at, ..
            } => {
                scrub_opt(account);
                scrub(name);
                *at = truncate(*at);
            }
            super::SessionChange::CloseAll { at, .. } => *at = truncate(*at),
        }
    }
}

/// The last status of each server in `statuses`, in order of those last reports (one
/// multi-row upsert must not name a row twice: PostgreSQL refuses that).
pub(crate) fn last_status_per_server(
    statuses: Vec<super::ServerStatusRow>,
) -> Vec<super::ServerStatusRow> {
    let mut seen = std::collections::HashSet::new();
    let mut out: Vec<_> = statuses
        .into_iter()
        .rev()
        .filter(|s| seen.insert(s.server_id))
        .collect();
    out.reverse();
    out
}

// ------------------------------------------------------------------ metric roll-ups

/// The roll-up subject of a sample or query: `(scope, server_id, host_id)`. A server's
/// samples roll up under its UUID; host-wide samples (no server) under `host:<uuid>`.
pub(crate) fn rollup_scope(
    server_id: Option<Uuid>,
    host_id: Option<Uuid>,
) -> Option<(String, Option<Uuid>, Option<Uuid>)> {
    match (server_id, host_id) {
        (Some(s), _) => Some((s.to_string(), Some(s), None)),
        (None, Some(h)) => Some((format!("host:{h}"), None, Some(h))),
        (None, None) => None,
    }
}

/// Start of the `secs`-long bucket holding `t` (buckets are aligned to the Unix epoch).
fn bucket_start(t: OffsetDateTime, secs: i64) -> Option<OffsetDateTime> {
    let into = time::Duration::new(
        t.unix_timestamp().rem_euclid(secs),
        i32::try_from(t.nanosecond()).ok()?,
    );
    t.checked_sub(into)
}

/// Sums, counts and maxima of one roll-up bucket: what a batch adds to it, and what is
/// stored.
#[derive(Debug, Clone, Default, PartialEq, sqlx::FromRow)]
pub(crate) struct RollupSums {
    pub samples: i64,
    pub cpu_n: i64,
    pub cpu_sum: f64,
    pub cpu_max: Option<f64>,
    pub rss_n: i64,
    pub rss_sum: f64,
    pub rss_max: Option<i64>,
    pub players_n: i64,
    pub players_sum: f64,
    pub players_max: Option<i64>,
}

impl RollupSums {
    /// Counts one sample; a missing (or non-finite) field adds to neither sum nor count.
    fn add(&mut self, m: &super::NewMetricSample) {
        fn max_of<T: PartialOrd + Copy>(a: Option<T>, b: Option<T>) -> Option<T> {
            match (a, b) {
                (Some(x), Some(y)) => Some(if y > x { y } else { x }),
                (x, None) => x,
                (None, y) => y,
            }
        }
        self.samples += 1;
        if let Some(v) = finite(m.cpu_percent) {
            self.cpu_n += 1;
            self.cpu_sum += v;
            self.cpu_max = max_of(self.cpu_max, Some(v));
        }
        if let Some(v) = m.rss_bytes {
            self.rss_n += 1;
            self.rss_sum += v as f64;
            self.rss_max = max_of(self.rss_max, Some(v));
        }
        if let Some(v) = m.players {
            self.players_n += 1;
            self.players_sum += v as f64;
            self.players_max = max_of(self.players_max, Some(v));
        }
    }
}

/// What one batch adds to one roll-up bucket.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RollupDelta {
    pub scope: String,
    pub bucket_secs: i64,
    pub ts: OffsetDateTime,
    pub server_id: Option<Uuid>,
    pub host_id: Option<Uuid>,
    pub sums: RollupSums,
}

/// Folds samples into one delta per (subject, resolution, bucket), so the upsert names
/// every row once. Samples without a subject are not rolled up; `default_ts` stands in
/// for a missing sample time (as when the sample itself is stored).
pub(crate) fn rollup_deltas(
    samples: &[super::NewMetricSample],
    default_ts: OffsetDateTime,
) -> Vec<RollupDelta> {
    let mut acc: std::collections::BTreeMap<(String, i64, i128), RollupDelta> =
        std::collections::BTreeMap::new();
    for m in samples {
        let Some((scope, server_id, host_id)) = rollup_scope(m.server_id, m.host_id) else {
            continue;
        };
        let t = m.ts.unwrap_or(default_ts);
        for secs in super::ROLLUP_BUCKETS {
            let Some(start) = bucket_start(t, secs) else {
                continue;
            };
            acc.entry((scope.clone(), secs, start.unix_timestamp_nanos()))
                .or_insert_with(|| RollupDelta {
                    scope: scope.clone(),
                    bucket_secs: secs,
                    ts: start,
                    server_id,
                    host_id,
                    sums: RollupSums::default(),
                })
                .sums
                .add(m);
        }
    }
    acc.into_values().collect()
}

/// A stored roll-up bucket; see [`super::MetricRollup`].
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct RollupRow {
    pub ts: OffsetDateTime,
    pub bucket_secs: i64,
    #[sqlx(flatten)]
    pub sums: RollupSums,
}

impl From<RollupRow> for super::MetricRollup {
    fn from(r: RollupRow) -> Self {
        let avg = |sum: f64, n: i64| (n > 0).then(|| sum / n as f64);
        let s = r.sums;
        Self {
            ts: r.ts,
            bucket_secs: r.bucket_secs,
            samples: s.samples,
            cpu_avg: avg(s.cpu_sum, s.cpu_n),
            cpu_max: s.cpu_max,
            rss_avg: avg(s.rss_sum, s.rss_n),
            rss_max: s.rss_max,
            players_avg: avg(s.players_sum, s.players_n),
            players_max: s.players_max,
        }
    }
}

pub(crate) fn rollups_sql(q: &super::RollupQuery) -> StoreResult<Sql> {
    if q.server_id.is_some() == q.host_id.is_some() {
        return Err(StoreError::InvalidInput(
            "metric roll-ups: give exactly one of server_id / host_id".into(),
        ));
    }
    if !super::ROLLUP_BUCKETS.contains(&q.bucket_secs) {
        return Err(StoreError::InvalidInput(format!(
            "metric roll-ups: bucket_secs must be one of {:?}",
            super::ROLLUP_BUCKETS
        )));
    }
    let Some((scope, _, _)) = rollup_scope(q.server_id, q.host_id) else {
        return Err(StoreError::InvalidInput(
            "metric roll-ups: no subject".into(),
        ));
    };
    let mut s = Sql::new(
        "SELECT ts, bucket_secs, samples, cpu_n, cpu_sum, cpu_max, rss_n, rss_sum, rss_max, \
         players_n, players_sum, players_max FROM metric_rollups WHERE scope = ",
    );
    s.bind(Arg::Text(scope))
        .push(" AND bucket_secs = ")
        .bind(Arg::I64(q.bucket_secs));
    if let Some(v) = q.from {
        s.push(" AND ts >= ").bind(Arg::Ts(v));
    }
    if let Some(v) = q.to {
        s.push(" AND ts < ").bind(Arg::Ts(v));
    }
    s.push(" ORDER BY ts ASC LIMIT ")
        .bind(Arg::I64(clamp_limit(q.limit, 10_000)));
    Ok(s)
}

pub(crate) fn server_events_sql(q: &super::ServerEventQuery) -> Sql {
    let mut s = Sql::new("SELECT * FROM server_events WHERE 1 = 1");
    if let Some(v) = q.server_id {
        s.push(" AND server_id = ").bind(Arg::Uuid(v));
    }
    if let Some(v) = q.host_id {
        s.push(" AND host_id = ").bind(Arg::Uuid(v));
    }
    if !q.kinds.is_empty() {
        s.push(" AND kind IN (");
        for (i, k) in q.kinds.iter().enumerate() {
            if i > 0 {
                s.push(", ");
            }
            s.bind(Arg::Text(k.as_str().to_owned()));
        }
        s.push(")");
    }
    if let Some(v) = q.before {
        s.push(" AND id < ").bind(Arg::I64(v));
    }
    s.push(" ORDER BY id DESC LIMIT ")
        .bind(Arg::I64(clamp_limit(q.limit, 1000)));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_plan_uses_full_chunks_then_powers_of_two() {
        let items: Vec<usize> = (0..1000).collect();
        let chunks: Vec<&[usize]> = planned_chunks(&items).collect();
        assert_eq!(chunks.iter().map(|c| c.len()).sum::<usize>(), 1000);
        assert_eq!(chunks.concat(), items);
        assert_eq!(chunk_plan(0).count(), 0);
        assert_eq!(
            chunk_plan(1000).collect::<Vec<_>>(),
            [512, 256, 128, 64, 32, 8]
        );
        assert_eq!(chunk_plan(1024).collect::<Vec<_>>(), [512, 512]);
        for n in [1, 7, 511, 512, 513, 5000] {
            assert_eq!(chunk_plan(n).sum::<usize>(), n);
            assert!(chunk_plan(n).all(|r| r.is_power_of_two() && r <= MAX_ROWS));
        }
    }

    #[test]
    fn multi_insert_texts_are_cached_per_row_count() {
        static T: MultiInsert =
            MultiInsert::new("INSERT INTO t (a, b)", 2, " ON CONFLICT DO NOTHING");
        let two = T.sql(Backend::Postgres, 2);
        assert_eq!(
            two,
            "INSERT INTO t (a, b) VALUES ($1,$2),($3,$4) ON CONFLICT DO NOTHING"
        );
        assert!(matches!(two, std::borrow::Cow::Borrowed(_)));
        assert_eq!(
            T.sql(Backend::Sqlite, 2),
            "INSERT INTO t (a, b) VALUES (?,?),(?,?) ON CONFLICT DO NOTHING"
        );
        assert!(matches!(
            T.sql(Backend::Postgres, 3),
            std::borrow::Cow::Owned(_)
        ));
    }

    #[test]
    fn buckets_floor_to_the_epoch_grid() {
        let t = OffsetDateTime::from_unix_timestamp(1_700_000_123).unwrap()
            + time::Duration::milliseconds(456);
        assert_eq!(bucket_start(t, 60).unwrap().unix_timestamp(), 1_700_000_100);
        assert_eq!(
            bucket_start(t, 3600).unwrap().unix_timestamp(),
            1_699_999_200
        );
        assert_eq!(bucket_start(t, 60).unwrap().nanosecond(), 0);
    }

    #[test]
    fn scrub_replaces_nul_everywhere_in_json() {
        let mut v = serde_json::json!({"a\u{0}": ["x\u{0}y", {"k": "\u{0}"}]});
        scrub_json(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"a\u{FFFD}": ["x\u{FFFD}y", {"k": "\u{FFFD}"}]})
        );
    }
}
