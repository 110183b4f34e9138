//! Players of every game and their sessions (written by ingest).

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use super::sql::{Arg, Sql, clamp_limit};
use super::{DbText, GameKind, StoreResult};

/// A player of one game, known by that game's account id (Arma 3: the BattlEye GUID).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Player {
    pub id: Uuid,
    #[sqlx(try_from = "DbText")]
    pub game: GameKind,
    /// Unique per game.
    pub account_id: String,
    pub last_name: String,
    pub first_seen: OffsetDateTime,
    pub last_seen: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct PlayerSession {
    pub id: Uuid,
    pub server_id: Uuid,
    pub player_id: Uuid,
    pub joined_at: OffsetDateTime,
    pub left_at: Option<OffsetDateTime>,
    pub ip: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct SessionQuery {
    pub server_id: Option<Uuid>,
    pub player_id: Option<Uuid>,
    pub open_only: bool,
    pub limit: i64,
}

/// The player directory.
#[async_trait]
pub trait Players: Send + Sync {
    // players, sessions (written by [`Ingest::ingest`])
    /// Players of every game, most recently seen first; `name_contains` is case-insensitive.
    async fn list_players(
        &self,
        name_contains: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<Player>>;
    /// Newest first.
    async fn list_player_sessions(&self, query: SessionQuery) -> StoreResult<Vec<PlayerSession>>;
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

/// Upserts the player `$3` (account id) of server `$2`'s game: name `$4`, seen at `$5`.
/// No row when the server does not exist.
pub(crate) const UPSERT_PLAYER_SQL: &str = "INSERT INTO players (id, game, account_id, last_name, first_seen, last_seen) \
     SELECT $1, s.game, $3, $4, $5, $5 FROM servers s WHERE s.id = $2 \
     ON CONFLICT (game, account_id) DO UPDATE SET \
     last_name = excluded.last_name, last_seen = excluded.last_seen RETURNING id";

/// Implements [`Players`] for a backend (`impl_players!(SqliteStore)`): one body for both
/// databases, expanded in the backend module (which brings the names into scope).
macro_rules! impl_players {
    ($ty:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::players::Players for $ty {
            async fn list_players(
                &self,
                name_contains: Option<&str>,
                limit: i64,
            ) -> StoreResult<Vec<Player>> {
                sqlx::query_as::<_, Player>(Self::PLAYER_SEARCH_SQL)
                    .bind(name_contains)
                    .bind(clamp_limit(limit, 10_000))
                    .fetch_all(self.r())
                    .await
                    .map_err(StoreError::from)
            }

            async fn list_player_sessions(
                &self,
                query: SessionQuery,
            ) -> StoreResult<Vec<PlayerSession>> {
                let s = sessions_sql(&query);
                let q = sqlx::query_as::<_, PlayerSession>(sqlx::AssertSqlSafe(s.sql));
                bind_args!(q, s.args)
                    .fetch_all(self.r())
                    .await
                    .map_err(StoreError::from)
            }
        }
    };
}
