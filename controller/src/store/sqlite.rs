//! SQLite backend: one writer connection, a small read pool, WAL.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::audit::*;
use super::codec::*;
use super::configs::*;
use super::error::*;
use super::hosts::*;
use super::ingest::*;
use super::players::*;
use super::retention::*;
use super::servers::*;
use super::sql::*;
use super::telemetry::*;
use super::users::*;

/// The sqlx database of this backend (named by the shared `impl_store!` code).
type Db = sqlx::Sqlite;

pub(crate) struct SqliteStore {
    read: SqlitePool,
    write: SqlitePool,
    servers: ServerListCache,
}

impl SqliteStore {
    pub(crate) const BACKEND: Backend = Backend::Sqlite;
    const PLAYER_SEARCH_SQL: &'static str = "SELECT * FROM players WHERE ($1 IS NULL OR instr(lower(last_name), lower($1)) > 0) ORDER BY last_seen DESC, id LIMIT $2";

    pub(crate) async fn connect(url: &str) -> StoreResult<Self> {
        let base = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::InvalidInput(format!("bad SQLite URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let memory = url.contains(":memory:") || url.contains("mode=memory");
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(base.clone())
            .await?;
        sqlx::migrate!("../migrations/sqlite")
            .run(&write)
            .await
            .map_err(map_migrate_err)?;
        let read = if memory {
            write.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(4)
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(base.read_only(true))
                .await?
        };
        Ok(SqliteStore {
            read,
            write,
            servers: ServerListCache::new(SERVER_LIST_TTL),
        })
    }

    fn r(&self) -> &SqlitePool {
        &self.read
    }

    fn w(&self) -> &SqlitePool {
        &self.write
    }
}

super::impl_store!(SqliteStore);
