//! The store's error type and how driver errors map onto it.

use sqlx::error::ErrorKind;

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The addressed row does not exist.
    #[error("not found")]
    NotFound,
    /// A uniqueness/foreign-key constraint or an optimistic-concurrency check failed.
    /// The string names what conflicted (e.g. `"users.username"`).
    #[error("conflict: {0}")]
    Conflict(String),
    /// An optimistic-concurrency check failed: the row's revision (or config revision)
    /// is not the one the caller read.
    #[error("conflict: stale revision")]
    StaleRevision,
    /// The value cannot be stored (e.g. NUL in text, out-of-range value).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The database cannot be reached / pool timed out / closed.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Anything else (bug, corrupt row, unexpected driver error).
    #[error("storage internal error: {0}")]
    Internal(#[from] anyhow::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

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
