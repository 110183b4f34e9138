//! Value codecs at the SQL boundary: ids, the one timestamp conversion, text checks.

use serde_json::Value;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::{Encode, Postgres, Sqlite, Type};
use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use uuid::Uuid;

use languard_shared::wire::ServerState;

use super::{StoreError, StoreResult};

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
        ServerState::parse(&s.0)
            .ok_or_else(|| StoreError::InvalidInput(format!("unknown server state {:?}", s.0)))
    }
}

impl TryFrom<DbText> for languard_shared::games::GameKind {
    type Error = StoreError;
    fn try_from(s: DbText) -> Result<Self, StoreError> {
        Self::parse(&s.0).ok_or_else(|| StoreError::InvalidInput(format!("unknown game {:?}", s.0)))
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
