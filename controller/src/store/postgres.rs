//! PostgreSQL backend: one pool for reads and writes.

use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
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
type Db = sqlx::Postgres;

pub(crate) struct PgStore {
    pool: PgPool,
    servers: ServerListCache,
}

impl PgStore {
    pub(crate) const BACKEND: Backend = Backend::Postgres;
    const PLAYER_SEARCH_SQL: &'static str = "SELECT * FROM players WHERE ($1::text IS NULL OR strpos(lower(last_name), lower($1)) > 0) ORDER BY last_seen DESC, id LIMIT $2";

    pub(crate) async fn connect(url: &str) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(30))
            .connect(url)
            .await?;
        // sqlx takes an advisory lock, so several replicas may start at once.
        sqlx::migrate!("../migrations/postgres")
            .run(&pool)
            .await
            .map_err(map_migrate_err)?;
        Ok(PgStore {
            pool,
            servers: ServerListCache::new(SERVER_LIST_TTL),
        })
    }

    fn r(&self) -> &PgPool {
        &self.pool
    }

    fn w(&self) -> &PgPool {
        &self.pool
    }
}

super::impl_store!(PgStore);
