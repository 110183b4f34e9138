//! Business rules on top of the store: one module per area. The API layer stays thin.

pub mod auth;
pub mod configs;
pub mod enrollment;
pub mod expect;
pub mod fleet;
pub mod lifecycle;
pub mod operations;
pub mod restart;
pub mod retention;
pub mod sessions;
pub mod tokens;
pub mod users;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::auth::jwt::JwtKeys;
use crate::auth::throttle::LoginThrottle;
use crate::auth::{Principal, Via};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::secrets::{MasterKey, SecretBox};
use crate::store::{ActorKind, NewAuditEvent, Store};
use crate::telemetry::Metrics;

/// Everything a request needs.
pub struct App {
    /// Storage.
    pub store: Arc<dyn Store>,
    /// Effective configuration.
    pub config: Config,
    /// Access token keys and cache.
    pub jwt: JwtKeys,
    /// Encryption of config secrets.
    pub secrets: SecretBox,
    /// Failed-login limits.
    pub throttle: LoginThrottle,
    /// Prometheus counters (shared with the link).
    pub metrics: Arc<Metrics>,
    /// Verified API tokens, briefly cached (hash -> principal, checked at).
    pub(crate) api_token_cache: RwLock<HashMap<String, (Principal, Instant)>>,
    /// Per-user `tokens_valid_after` (µs), briefly cached (user -> value, fetched at).
    pub(crate) session_cache: RwLock<HashMap<uuid::Uuid, (i64, Instant)>>,
    /// Whether a refresh family is revoked, briefly cached (revoked is final).
    pub(crate) family_cache: RwLock<HashMap<uuid::Uuid, (bool, Instant)>>,
    /// Tells open live sockets that a user's credentials were revoked on this replica.
    pub revocations: crate::auth::revocation::Revocations,
    /// Start time.
    pub started: Instant,
    /// Serialises fleet mutations so port checks and writes are atomic per controller.
    pub(crate) fleet_lock: tokio::sync::Mutex<()>,
    /// The internal CA (agent certificates, the link's server certificate).
    pub ca: Arc<crate::fleet::ca::Ca>,
    /// Connected agents and request routing (shared with the link).
    pub fleet: Arc<crate::fleet::registry::Registry>,
    /// Live events for consoles.
    pub live: crate::live::LiveHub,
    /// WebSocket tickets.
    pub tickets: crate::live::tickets::Tickets,
}

/// Shared application state.
pub type AppState = Arc<App>;

/// Who is acting and from where.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The authenticated caller, if any.
    pub principal: Option<Principal>,
    /// Client IP.
    pub ip: Option<String>,
}

impl Ctx {
    /// The principal (callers behind a security scheme always have one).
    pub fn who(&self) -> Result<&Principal> {
        self.principal
            .as_ref()
            .ok_or_else(|| Error::Unauthorized("authentication required".into()))
    }
}

/// How long a verified API token is trusted without a DB lookup.
pub const API_TOKEN_CACHE_TTL: Duration = Duration::from_secs(30);

impl App {
    /// Builds the state over an open store; loads (or on first start creates) the CA in
    /// the data folder.
    pub fn new(
        store: Arc<dyn Store>,
        config: Config,
        master: &MasterKey,
    ) -> Result<AppState, crate::fleet::ca::CaError> {
        let ca = crate::fleet::ca::Ca::load_or_create(&config.data_dir, master)?;
        let jwt = JwtKeys::new(&master.derive("jwt-access"), config.access_token_ttl_secs);
        let lt = &config.login_throttle;
        let throttle = LoginThrottle::new(crate::auth::throttle::Limits {
            per_ip: lt.per_ip,
            per_account: lt.per_account,
            window: Duration::from_secs(lt.window_secs),
            per_source: lt.per_source,
            backoff_base: Duration::from_secs(lt.backoff_base_secs),
            backoff_max: Duration::from_secs(lt.backoff_max_secs),
        });
        Ok(Arc::new(Self {
            store,
            jwt,
            secrets: SecretBox::new(master),
            throttle,
            metrics: Arc::new(Metrics::default()),
            api_token_cache: RwLock::new(HashMap::new()),
            session_cache: RwLock::new(HashMap::new()),
            family_cache: RwLock::new(HashMap::new()),
            revocations: crate::auth::revocation::Revocations::default(),
            started: Instant::now(),
            fleet_lock: tokio::sync::Mutex::new(()),
            ca: Arc::new(ca),
            fleet: Arc::new(crate::fleet::registry::Registry::default()),
            live: crate::live::LiveHub::default(),
            tickets: crate::live::tickets::Tickets::default(),
            config,
        }))
    }

    /// What the agent link needs of the state (it never sees the rest).
    pub fn link_deps(&self) -> crate::fleet::link::LinkDeps {
        crate::fleet::link::LinkDeps {
            store: self.store.clone(),
            ca: self.ca.clone(),
            registry: self.fleet.clone(),
            live: self.live.clone(),
            metrics: self.metrics.clone(),
            config: self.config.link.clone(),
            ingest_locks: Default::default(),
        }
    }

    /// Binds the agent link (when configured) and serves it in the background, with
    /// this state's reconcile as its connect hook. Returns the bound address.
    pub async fn spawn_link(
        self: &Arc<Self>,
    ) -> anyhow::Result<Option<(std::net::SocketAddr, tokio::task::JoinHandle<()>)>> {
        crate::fleet::link::spawn(self.link_deps(), self.clone()).await
    }

    /// Start-up: no agent is connected yet; revoked agents are refused from the first
    /// handshake on.
    pub async fn init_fleet(&self) -> Result<()> {
        self.store.reset_host_links().await?;
        for h in self.store.list_hosts().await? {
            if h.revoked_at.is_some()
                && let Some(id) = h
                    .agent_id
                    .as_deref()
                    .and_then(|a| uuid::Uuid::parse_str(a).ok())
            {
                self.fleet.revoke(id);
            }
        }
        Ok(())
    }

    /// Records an audit event; failures are logged, never hidden from the caller's
    /// result (the mutation already happened).
    pub async fn audit(
        &self,
        ctx: &Ctx,
        action: &str,
        target_kind: &str,
        target_id: Option<String>,
        details: Value,
    ) {
        let (actor_kind, actor_user_id) = match &ctx.principal {
            Some(p) => (
                match p.via {
                    Via::Session => ActorKind::User,
                    Via::ApiToken(_) => ActorKind::ApiToken,
                },
                Some(p.user_id),
            ),
            None => (ActorKind::System, None),
        };
        let ev = NewAuditEvent {
            ts: None,
            actor_user_id,
            actor_kind,
            action: action.to_owned(),
            target_kind: Some(target_kind.to_owned()),
            target_id,
            ip: ctx.ip.clone(),
            details,
        };
        if let Err(e) = self.store.insert_audit(ev).await {
            tracing::error!(error = %e, action, "Audit event could not be stored.");
        }
    }
}

#[async_trait::async_trait]
impl crate::fleet::link::LinkHooks for App {
    async fn agent_connected(
        &self,
        host_id: uuid::Uuid,
        inventory: Vec<languard_shared::wire::event::ServerStatus>,
    ) {
        self.reconcile(host_id, inventory).await;
    }
}
