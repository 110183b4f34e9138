//! Servers and the ports they claim on their host.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{DbText, StoreResult};

pub use languard_shared::games::GameKind;

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Server {
    pub id: Uuid,
    pub host_id: Uuid,
    pub name: String,
    #[sqlx(try_from = "DbText")]
    pub game: GameKind,
    pub game_port: i64,
    pub rcon_port: i64,
    pub executable_path: String,
    #[sqlx(json)]
    pub restart_policy: Value,
    pub desired_running: bool,
    /// Revision of this spec row (optimistic concurrency for [`Servers::update_server`]).
    pub revision: i64,
    /// Revision of the config sections; equals the latest config version number (0 = none yet).
    pub config_revision: i64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// Mutable fields of a server (create and full update).
#[derive(Debug, Clone)]
pub struct ServerSpec {
    pub name: String,
    pub game: GameKind,
    pub game_port: i64,
    pub rcon_port: i64,
    pub executable_path: String,
    pub restart_policy: Value,
    pub desired_running: bool,
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

/// Server specs.
#[async_trait]
pub trait Servers: Send + Sync {
    // servers
    /// Also claims `ports` (every port the server occupies on the host, as the game
    /// registry computes them; duplicates are ignored) in the same transaction: a port
    /// another server of the host holds is Conflict("port N"), whichever controller replica
    /// wrote first (unique index `server_ports (host_id, port)`).
    async fn create_server(
        &self,
        host_id: Uuid,
        spec: ServerSpec,
        ports: &[u16],
    ) -> StoreResult<Server>;
    async fn get_server(&self, id: Uuid) -> StoreResult<Option<Server>>;
    /// `host_id = None` lists all servers. Ordered by name.
    async fn list_servers(&self, host_id: Option<Uuid>) -> StoreResult<Vec<Server>>;
    async fn list_servers_on_host(&self, host_id: Uuid) -> StoreResult<Vec<Server>>;
    /// All servers ordered by name, shared: SQL stores answer from a short-lived cache
    /// (invalidated by their own writes; other replicas' writes show within ~1 s) and
    /// return the same `Arc` while the cached list is unchanged.
    async fn list_all_servers(&self) -> StoreResult<Arc<Vec<Server>>> {
        Ok(Arc::new(self.list_servers(None).await?))
    }
    /// `host_id = None` counts all servers.
    async fn count_servers(&self, host_id: Option<Uuid>) -> StoreResult<i64>;
    /// `StaleRevision` if the stored revision is not `expected_revision`; bumps revision.
    /// Replaces the claimed ports with `ports` like [`Servers::create_server`] (Conflict("port N")).
    async fn update_server(
        &self,
        id: Uuid,
        expected_revision: i64,
        spec: ServerSpec,
        ports: &[u16],
    ) -> StoreResult<Server>;
    /// Sets only `desired_running` (start/stop requests): no revision bump, no port claim,
    /// so it never conflicts with a concurrent spec edit. A missing server is `NotFound`.
    async fn set_desired_running(&self, id: Uuid, running: bool) -> StoreResult<()>;
    /// Deletes the server and everything hanging off it (configs, versions, mods, schedules,
    /// sessions, logs, metrics, server bans).
    async fn delete_server(&self, id: Uuid) -> StoreResult<()>;
}

/// Inserts the `server_ports` rows (`$ports`, duplicates ignored) of server `$s` inside
/// transaction `$tx`; a port held by another server of the host is `Conflict("port N")`.
macro_rules! claim_ports {
    ($tx:ident, $s:expr, $ports:expr) => {{
        let s: &Server = $s;
        let mut ports: Vec<u16> = $ports.to_vec();
        ports.sort_unstable();
        ports.dedup();
        for p in ports {
            let r = sqlx::query(
                "INSERT INTO server_ports (host_id, port, server_id) VALUES ($1, $2, $3)",
            )
            .bind(s.host_id)
            .bind(i64::from(p))
            .bind(s.id)
            .execute(&mut *$tx)
            .await
            .map_err(StoreError::from);
            match r {
                Ok(_) => {}
                Err(StoreError::Conflict(_)) => {
                    return Err(StoreError::Conflict(format!("port {p}")));
                }
                Err(e) => return Err(e),
            }
        }
    }};
}

/// Implements [`Servers`] for a backend (`impl_servers!(SqliteStore)`): one body for both
/// databases, expanded in the backend module (which brings the names into scope).
macro_rules! impl_servers {
    ($ty:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::servers::Servers for $ty {
            async fn create_server(&self, host_id: Uuid, spec: ServerSpec, ports: &[u16]) -> StoreResult<Server> {
                check_text(&[&spec.name, &spec.executable_path])?;
                check_json(&spec.restart_policy)?;
                let t = now();
                let s = Server {
                    id: new_id(),
                    host_id,
                    name: spec.name,
                    game: spec.game,
                    game_port: spec.game_port,
                    rcon_port: spec.rcon_port,
                    executable_path: spec.executable_path,
                    restart_policy: spec.restart_policy,
                    desired_running: spec.desired_running,
                    revision: 1,
                    config_revision: 0,
                    created_at: t,
                    updated_at: t,
                };
                let mut tx = self.w().begin().await?;
                sqlx::query(
                    "INSERT INTO servers (id, host_id, name, game, game_port, rcon_port, executable_path, restart_policy, \
                     desired_running, revision, config_revision, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                )
                .bind(s.id)
                .bind(s.host_id)
                .bind(&s.name)
                .bind(s.game.as_str())
                .bind(s.game_port)
                .bind(s.rcon_port)
                .bind(&s.executable_path)
                .bind(Json(&s.restart_policy))
                .bind(s.desired_running)
                .bind(s.revision)
                .bind(s.config_revision)
                .bind(ts(t))
                .bind(ts(t))
                .execute(&mut *tx)
                .await
                ?;
                claim_ports!(tx, &s, ports);
                let committed = tx.commit().await.map_err(StoreError::from);
                self.servers.invalidate();
                committed?;
                Ok(s)
            }

            async fn get_server(&self, id: Uuid) -> StoreResult<Option<Server>> {
                sqlx::query_as::<_, Server>("SELECT * FROM servers WHERE id = $1").bind(id).fetch_optional(self.r()).await.map_err(StoreError::from)
            }

            async fn list_servers(&self, host_id: Option<Uuid>) -> StoreResult<Vec<Server>> {
                let all = self.list_all_servers().await?;
                Ok(all.iter().filter(|s| host_id.is_none_or(|h| s.host_id == h)).cloned().collect())
            }

            async fn list_all_servers(&self) -> StoreResult<std::sync::Arc<Vec<Server>>> {
                match self.servers.get() {
                    Ok(all) => Ok(all),
                    Err(generation) => {
                        let all = std::sync::Arc::new(
                            sqlx::query_as::<_, Server>("SELECT * FROM servers ORDER BY name, id")
                                .fetch_all(self.r())
                                .await
                                ?,
                        );
                        self.servers.put(generation, all.clone());
                        Ok(all)
                    }
                }
            }

            async fn list_servers_on_host(&self, host_id: Uuid) -> StoreResult<Vec<Server>> {
                sqlx::query_as::<_, Server>("SELECT * FROM servers WHERE host_id = $1 ORDER BY name, id")
                    .bind(host_id)
                    .fetch_all(self.w())
                    .await
                    .map_err(StoreError::from)
            }

            async fn count_servers(&self, host_id: Option<Uuid>) -> StoreResult<i64> {
                sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM servers WHERE ($1 IS NULL OR host_id = $1)")
                    .bind(host_id)
                    .fetch_one(self.r())
                    .await
                    .map_err(StoreError::from)
            }

            async fn update_server(&self, id: Uuid, expected_revision: i64, spec: ServerSpec, ports: &[u16]) -> StoreResult<Server> {
                check_text(&[&spec.name, &spec.executable_path])?;
                check_json(&spec.restart_policy)?;
                let mut tx = self.w().begin().await?;
                let row = sqlx::query_as::<_, Server>(
                    "UPDATE servers SET name = $3, game = $4, game_port = $5, rcon_port = $6, executable_path = $7, \
                     restart_policy = $8, desired_running = $9, revision = revision + 1, updated_at = $10 \
                     WHERE id = $1 AND revision = $2 RETURNING *",
                )
                .bind(id)
                .bind(expected_revision)
                .bind(&spec.name)
                .bind(spec.game.as_str())
                .bind(spec.game_port)
                .bind(spec.rcon_port)
                .bind(&spec.executable_path)
                .bind(Json(&spec.restart_policy))
                .bind(spec.desired_running)
                .bind(ts(now()))
                .fetch_optional(&mut *tx)
                .await
                ?;
                match row {
                    Some(s) => {
                        sqlx::query("DELETE FROM server_ports WHERE server_id = $1")
                            .bind(s.id)
                            .execute(&mut *tx)
                            .await
                            ?;
                        claim_ports!(tx, &s, ports);
                        let committed = tx.commit().await.map_err(StoreError::from);
                        self.servers.invalidate();
                        committed?;
                        Ok(s)
                    }
                    None => match { drop(tx); self.exists("SELECT COUNT(*) FROM servers WHERE id = $1", id).await? } {
                        true => Err(StoreError::StaleRevision),
                        false => Err(StoreError::NotFound),
                    },
                }
            }

            async fn set_desired_running(&self, id: Uuid, running: bool) -> StoreResult<()> {
                let r = sqlx::query("UPDATE servers SET desired_running = $2 WHERE id = $1")
                    .bind(id)
                    .bind(running)
                    .execute(self.w())
                    .await;
                self.servers.invalidate();
                if r?.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
            }

            async fn delete_server(&self, id: Uuid) -> StoreResult<()> {
                let r = sqlx::query("DELETE FROM servers WHERE id = $1").bind(id).execute(self.w()).await;
                self.servers.invalidate();
                let r = r?;
                if r.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
            }
        }

        impl $ty {
            async fn exists(&self, sql: &'static str, id: Uuid) -> StoreResult<bool> {
                let n = sqlx::query_scalar::<_, i64>(sql).bind(id).fetch_one(self.w()).await?;
                Ok(n > 0)
            }
        }
    };
}
