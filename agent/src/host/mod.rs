//! The agent as one object: it owns the managed servers, answers typed requests and
//! produces sequenced events. The controller link (`crate::link`) and the in-process
//! tests drive exactly this interface: [`Agent::handle`] for requests,
//! [`Agent::events`] and [`Agent::ack`] for the event stream. Nothing here knows a
//! game: admin operations are checked against the server's game capabilities and
//! handed to its adapter's control (`crate::games`).

pub mod events;
pub mod files;
mod runtime;
pub mod specs;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use std::time::Duration;

use languard_shared::games::GameKind;
use languard_shared::wire::event::MetricsSample;
use languard_shared::wire::request::ErrorCode;
use languard_shared::wire::{
    AgentError, Event, EventEnvelope, Operation, OperationKind, Request, Response, ServerId,
    ServerSpec,
};
use thiserror::Error;
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use self::events::Emitter;
use self::runtime::{RuntimeEnv, ServerRuntime};
use self::specs::{SpecStore, StoredSpec};
use crate::config::AgentConfig;
use crate::outbox::{Outbox, OutboxConfig, OutboxError, OutboxHandle};
use crate::supervisor::{AllowList, RunAs, path_free};
use crate::telemetry::metrics::MetricsSampler;

/// Why the agent cannot start.
#[derive(Debug, Error)]
pub enum HostError {
    /// The outbox cannot be opened (another agent holds it, disk trouble).
    #[error("cannot open the event outbox: {0}")]
    Outbox(#[from] OutboxError),
    /// Games cannot run as configured (`run_as`).
    #[error("invalid configuration: {0}")]
    RunAs(#[from] crate::supervisor::RunAsError),
    /// A data folder cannot be created.
    #[error("cannot prepare {path}: {source}")]
    Io {
        /// The folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// The running agent (cheap to clone).
#[derive(Clone)]
pub struct Agent {
    inner: Arc<Inner>,
}

struct Inner {
    config: AgentConfig,
    outbox: OutboxHandle,
    emitter: Emitter,
    specs: SpecStore,
    env: RuntimeEnv,
    /// Held only for lookups and inserts, never across an await on a server.
    servers: Mutex<BTreeMap<ServerId, Arc<ServerRuntime>>>,
    /// Serialises the creation of new servers (adoption scans run outside `servers`).
    creating: Mutex<()>,
    background: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

fn not_found(server: &ServerId) -> AgentError {
    AgentError::new(
        ErrorCode::UnknownServer,
        format!("no server {server} on this agent"),
    )
}

fn io_err(e: impl std::fmt::Display) -> AgentError {
    AgentError::new(ErrorCode::Io, e.to_string())
}

impl Agent {
    /// Opens the outbox and the stored specs, re-adopts servers that kept running while
    /// the agent was away, starts servers that should run but are not, and starts host
    /// metrics.
    pub async fn start(config: AgentConfig) -> Result<Self, HostError> {
        let run_as = RunAs::resolve(&config.run_as)?;
        if let RunAs::Refused(reason) = &run_as {
            warn!(%reason, "Game servers cannot be started.");
        }
        let dirs = [
            config.data_dir.clone(),
            config.servers_dir.clone(),
            config.data_dir.join("run"),
            config.data_dir.join("tail"),
        ];
        for dir in &dirs {
            std::fs::create_dir_all(dir).map_err(|source| HostError::Io {
                path: dir.clone(),
                source,
            })?;
        }
        let mut outbox_config = OutboxConfig::new(config.data_dir.join("outbox"));
        outbox_config.max_bytes = config.limits.outbox_max_bytes;
        let outbox = tokio::task::spawn_blocking(move || {
            Outbox::open(outbox_config, Box::new(events::encode_gap))
        })
        .await
        .map_err(|e| HostError::Io {
            path: config.data_dir.join("outbox"),
            source: std::io::Error::other(e),
        })??;
        let outbox = OutboxHandle::spawn(outbox)?;
        let specs_dir = config.data_dir.join("specs");
        let specs = SpecStore::open(specs_dir.clone()).map_err(|source| HostError::Io {
            path: specs_dir,
            source,
        })?;
        protect_data_dir(&config, &run_as)?;
        let (entries, names) = (
            config.allowed_executables.clone(),
            crate::games::default_executables(),
        );
        let allowed = tokio::task::spawn_blocking(move || AllowList::new(&entries, names))
            .await
            .unwrap_or_default();
        if allowed.is_empty() {
            warn!(
                "No allowed executables are configured (allowed_executables): game servers cannot be started."
            );
        }
        let env = RuntimeEnv {
            run_dir: config.data_dir.join("run"),
            tail_dir: config.data_dir.join("tail"),
            allowed_executables: allowed,
            run_as,
            max_log_line_bytes: config.limits.max_log_line_bytes,
            console_files_kept: config.limits.console_files_kept,
        };
        let agent = Self {
            inner: Arc::new(Inner {
                emitter: Emitter::new(outbox.clone()),
                outbox,
                specs,
                env,
                servers: Mutex::new(BTreeMap::new()),
                creating: Mutex::new(()),
                background: std::sync::Mutex::new(Vec::new()),
                config,
            }),
        };
        agent.restore().await;
        let metrics = tokio::spawn(agent.clone().metrics_loop());
        if let Ok(mut background) = agent.inner.background.lock() {
            background.push(metrics);
        }
        Ok(agent)
    }

    /// Recreates every stored server; one that should run but was not adopted (it
    /// ended while the agent was away) is started again.
    async fn restore(&self) {
        let store = self.inner.specs.clone();
        let all = tokio::task::spawn_blocking(move || store.load_all())
            .await
            .unwrap_or_default();
        for stored in all {
            let id = stored.spec.id.clone();
            let prepared = match crate::games::prepare(&stored.spec, &self.inner.config.servers_dir)
            {
                Ok(p) => p,
                Err(e) => {
                    warn!(server = %id, error = %e, "Stored spec no longer valid.");
                    continue;
                }
            };
            let runtime = ServerRuntime::create(
                stored.spec,
                prepared,
                self.inner.env.clone(),
                self.inner.emitter.clone(),
                stored.desired_running,
            )
            .await;
            if stored.desired_running && runtime.is_down() {
                info!(server = %id, "Starting a server that should be running.");
                if let Err(e) = runtime.start().await {
                    warn!(server = %id, error = %e, "Cannot restart server.");
                }
            }
            self.inner.servers.lock().await.insert(id, runtime);
        }
    }

    /// Answers one request. Bad input gets a typed error and changes nothing; a start
    /// or restart carrying a spec applies it first (exactly as [`Request::ApplySpec`],
    /// creating an unknown server), so a launch that then fails keeps the new spec.
    ///
    /// Error texts leave the host: they are logged in full here and answered without
    /// host paths or OS error texts ([`path_free`]).
    pub async fn handle(&self, request: Request) -> Result<Response, AgentError> {
        self.answer(request).await.map_err(|e| {
            let message = path_free(&e.message);
            if message != e.message {
                info!(code = ?e.code, error = %e.message, "Request failed.");
            }
            AgentError::new(e.code, message)
        })
    }

    async fn answer(&self, request: Request) -> Result<Response, AgentError> {
        match request {
            Request::Inventory => {
                let servers = self.inner.servers.lock().await;
                Ok(Response::Inventory(
                    servers.values().map(|r| r.status()).collect(),
                ))
            }
            Request::ApplySpec { spec } => self.apply_spec(*spec).await,
            Request::RemoveServer { server } => self.remove(&server).await,
            Request::Status { server } => {
                Ok(Response::Status(self.runtime(&server).await?.status()))
            }
            Request::Start { server, spec } => {
                if let Some(spec) = spec {
                    self.apply_for(&server, *spec).await?;
                }
                let runtime = self.runtime(&server).await?;
                let _op = runtime.lock_op().await?;
                runtime.start().await?;
                // Only a start that happened is remembered (a refused one changes nothing).
                self.set_desired(&runtime, true).await?;
                Ok(Response::Status(runtime.status()))
            }
            Request::Stop { server } => self.stop(&server, false).await,
            Request::Kill { server } => self.stop(&server, true).await,
            Request::Restart { server, spec } => {
                if let Some(spec) = spec {
                    self.apply_for(&server, *spec).await?;
                }
                let runtime = self.runtime(&server).await?;
                let _op = runtime.lock_op().await?;
                runtime.stop(false).await?;
                runtime.start().await?;
                self.set_desired(&runtime, true).await?;
                Ok(Response::Status(runtime.status()))
            }
            Request::Operate { server, operation } => self.operate(&server, operation).await,
            Request::ListFiles { server, dir } => {
                let (root, secrets) = self.server_dir(&server).await?;
                blocking(move || files::list(&root, &dir, &secrets))
                    .await
                    .map(Response::Files)
            }
            Request::ReadFile { server, path } => {
                let (root, secrets) = self.server_dir(&server).await?;
                let max = self.inner.config.limits.max_upload_bytes;
                blocking(move || files::read(&root, &path, max, &secrets))
                    .await
                    .map(Response::File)
            }
            Request::WriteFile { server, path, data } => {
                let (root, secrets) = self.server_dir(&server).await?;
                let max = self.inner.config.limits.max_upload_bytes;
                blocking(move || files::write(&root, &path, data, max, &secrets))
                    .await
                    .map(|()| Response::Done)
            }
            Request::DeleteFile { server, path } => {
                let (root, secrets) = self.server_dir(&server).await?;
                blocking(move || files::delete(&root, &path, &secrets))
                    .await
                    .map(|()| Response::Done)
            }
        }
    }

    async fn runtime(&self, server: &ServerId) -> Result<Arc<ServerRuntime>, AgentError> {
        self.inner
            .servers
            .lock()
            .await
            .get(server)
            .cloned()
            .ok_or_else(|| not_found(server))
    }

    /// The server's folder (created if missing) and the files no request may touch.
    async fn server_dir(
        &self,
        server: &ServerId,
    ) -> Result<(PathBuf, files::Protected), AgentError> {
        let runtime = self.runtime(server).await?;
        let protected = files::Protected::from_secrets(&runtime.secrets());
        let dir = self.inner.config.servers_dir.join(server.as_str());
        let create = dir.clone();
        blocking(move || std::fs::create_dir_all(&create).map_err(io_err)).await?;
        Ok((dir, protected))
    }

    async fn apply_spec(&self, spec: ServerSpec) -> Result<Response, AgentError> {
        let prepared = crate::games::prepare(&spec, &self.inner.config.servers_dir)?;
        // An existing server is updated under its operation lock; if it was removed
        // meanwhile, it is created anew. Creation is serialised by `creating` (so two
        // supervisors never exist for one id) without holding `servers` across awaits.
        let existing = self.inner.servers.lock().await.get(&spec.id).cloned();
        if let Some(runtime) = existing
            && let Ok(_op) = runtime.lock_op().await
        {
            self.persist(&spec, runtime.desired()).await?;
            runtime.update(spec, prepared).await?;
            return Ok(Response::Status(runtime.status()));
        }
        let _creating = self.inner.creating.lock().await;
        {
            let servers = self.inner.servers.lock().await;
            if let Some(runtime) = servers.get(&spec.id).cloned() {
                // Created by a racing ApplySpec while we waited: update it instead.
                drop(servers);
                let _op = runtime.lock_op().await?;
                self.persist(&spec, runtime.desired()).await?;
                runtime.update(spec, prepared).await?;
                return Ok(Response::Status(runtime.status()));
            }
            if servers.len() >= self.inner.config.limits.max_servers {
                return Err(AgentError::new(
                    ErrorCode::InvalidSpec,
                    format!(
                        "this agent runs at most {} servers",
                        self.inner.config.limits.max_servers
                    ),
                ));
            }
        }
        self.persist(&spec, false).await?;
        let id = spec.id.clone();
        let runtime = ServerRuntime::create(
            spec,
            prepared,
            self.inner.env.clone(),
            self.inner.emitter.clone(),
            false,
        )
        .await;
        self.inner
            .servers
            .lock()
            .await
            .insert(id, Arc::clone(&runtime));
        Ok(Response::Status(runtime.status()))
    }

    async fn remove(&self, server: &ServerId) -> Result<Response, AgentError> {
        let runtime = self.runtime(server).await?;
        let _op = runtime.lock_op().await?;
        if !runtime.is_down() {
            return Err(AgentError::new(
                ErrorCode::NotStopped,
                format!("server {server} is running; stop it first"),
            ));
        }
        let store = self.inner.specs.clone();
        let id = server.clone();
        blocking(move || store.remove(&id).map_err(io_err)).await?;
        // A start, stop or update waiting for the lock now fails with UnknownServer.
        runtime.mark_removed();
        runtime.detach();
        runtime.forget_files();
        let mut servers = self.inner.servers.lock().await;
        if servers
            .get(server)
            .is_some_and(|r| Arc::ptr_eq(r, &runtime))
        {
            servers.remove(server);
        }
        Ok(Response::Done)
    }

    /// A graceful stop holds the operation lock throughout. A kill must never wait
    /// behind a slow graceful stop, so it signals first and then records (under the
    /// lock) that the server should not run.
    async fn stop(&self, server: &ServerId, force: bool) -> Result<Response, AgentError> {
        let runtime = self.runtime(server).await?;
        if force {
            runtime.stop(true).await?;
            let _op = runtime.lock_op().await?;
            self.set_desired(&runtime, false).await?;
        } else {
            let _op = runtime.lock_op().await?;
            self.set_desired(&runtime, false).await?;
            runtime.stop(false).await?;
        }
        Ok(Response::Status(runtime.status()))
    }

    /// Writes the spec file (off the async threads).
    async fn persist(&self, spec: &ServerSpec, desired_running: bool) -> Result<(), AgentError> {
        let store = self.inner.specs.clone();
        let stored = StoredSpec {
            spec: spec.clone(),
            desired_running,
        };
        blocking(move || store.save(&stored).map_err(io_err)).await
    }

    /// Persists and records whether the server should run (operation lock held).
    async fn set_desired(&self, runtime: &ServerRuntime, running: bool) -> Result<(), AgentError> {
        let Some(spec) = runtime.spec() else {
            return Err(AgentError::new(ErrorCode::Internal, "state lock poisoned"));
        };
        self.persist(&spec, running).await?;
        runtime.set_desired(running);
        Ok(())
    }

    /// Applies the spec a start or restart carries; it must be for that server.
    async fn apply_for(&self, server: &ServerId, spec: ServerSpec) -> Result<(), AgentError> {
        if spec.id != *server {
            return Err(AgentError::new(
                ErrorCode::InvalidSpec,
                format!(
                    "the spec is for server {}, the request for server {server}",
                    spec.id
                ),
            ));
        }
        self.apply_spec(spec).await.map(|_| ())
    }

    /// Runs an admin operation: refused, before anything reaches the game, when the
    /// server's game does not have it or a text holds a control character (it would
    /// break a command line or forge a second one).
    async fn operate(
        &self,
        server: &ServerId,
        operation: Operation,
    ) -> Result<Response, AgentError> {
        let runtime = self.runtime(server).await?;
        let game = runtime
            .game()
            .ok_or_else(|| AgentError::new(ErrorCode::Internal, "state lock poisoned"))?;
        if !game.supports(operation.kind()) {
            return Err(crate::games::unsupported(game, &operation));
        }
        if let Some((field, at, code)) = operation.find_control_char() {
            return Err(AgentError::new(
                ErrorCode::InvalidSpec,
                format!("{field} contains control character U+{code:04X} at character {at}"),
            ));
        }
        if let Operation::Shutdown {
            countdown_secs,
            message,
        } = &operation
        {
            return self
                .shutdown_server(server, game, *countdown_secs, message.as_deref())
                .await;
        }
        let control = runtime
            .control()
            .ok_or_else(|| AgentError::new(ErrorCode::Internal, "state lock poisoned"))?;
        control.operate(&operation).await
    }

    /// A shutdown with warning: announce `message` (where the game can), wait the
    /// countdown, then stop exactly as [`Request::Stop`] does (the server stays
    /// stopped). No lock is held while waiting, so a stop or kill meanwhile is not
    /// delayed; the final stop then finds the server down and changes nothing.
    async fn shutdown_server(
        &self,
        server: &ServerId,
        game: GameKind,
        countdown_secs: u32,
        message: Option<&str>,
    ) -> Result<Response, AgentError> {
        if u64::from(countdown_secs) > crate::games::MAX_TIMEOUT_SECS {
            return Err(AgentError::new(
                ErrorCode::InvalidSpec,
                format!(
                    "countdown_secs must be at most {} s, got {countdown_secs}",
                    crate::games::MAX_TIMEOUT_SECS
                ),
            ));
        }
        if let Some(message) = message
            && game.supports(OperationKind::Announce)
        {
            let announce = Operation::Announce {
                message: message.to_owned(),
            };
            let runtime = self.runtime(server).await?;
            if let Some(control) = runtime.control()
                && let Err(e) = control.operate(&announce).await
            {
                // The stop matters more than the warning: go on.
                warn!(server = %server, error = %e, "Cannot announce the shutdown.");
            }
        }
        tokio::time::sleep(Duration::from_secs(u64::from(countdown_secs))).await;
        self.stop(server, false).await
    }

    /// Events with a sequence number above `after`, oldest first (at most `max`).
    pub async fn events(&self, after: u64, max: usize) -> Result<Vec<EventEnvelope>, AgentError> {
        self.events_within(after, max, 16 * 1024 * 1024).await
    }

    /// Like [`Agent::events`], but also stops at about `max_bytes` of encoded events
    /// (always at least one event if any is pending), so a batch fits one link frame.
    pub async fn events_within(
        &self,
        after: u64,
        max: usize,
        max_bytes: usize,
    ) -> Result<Vec<EventEnvelope>, AgentError> {
        let records = self
            .inner
            .outbox
            .pending(after, max, max_bytes)
            .await
            .map_err(io_err)?;
        Ok(records.iter().filter_map(events::decode).collect())
    }

    /// The controller has stored every event up to `upto`: they leave the outbox.
    pub async fn ack(&self, upto: u64) -> Result<(), AgentError> {
        self.inner.outbox.ack(upto).await.map_err(io_err)
    }

    /// The highest sequence number the controller has acknowledged (the outbox's mark);
    /// the link reports it in its hello.
    pub async fn acked_seq(&self) -> Result<u64, AgentError> {
        let stats = self.inner.outbox.stats().await.map_err(io_err)?;
        Ok(stats.acked)
    }

    /// The controller has committed events up to `seq` that this agent never numbered
    /// (its state was wiped): new events continue at `seq + 1`, and pending ones are
    /// renumbered above it, so the controller does not drop them as duplicates. Returns
    /// how many were renumbered; nothing changes when `seq` is not above the newest.
    pub async fn continue_after(&self, seq: u64) -> Result<u64, AgentError> {
        self.inner.outbox.continue_after(seq).await.map_err(io_err)
    }

    /// Records an event as the agent's own parts do. For tests and tools that need
    /// events without running game servers; not part of the controller's interface.
    #[doc(hidden)]
    pub async fn record_event(&self, event: Event) -> Option<u64> {
        self.inner.emitter.emit(event).await
    }

    /// The newest event's sequence number; changes whenever events are added.
    pub fn watch_events(&self) -> watch::Receiver<u64> {
        self.inner.outbox.watch_newest()
    }

    /// Stops the agent's own tasks and closes the outbox. Game servers keep running
    /// and are adopted by the next agent start.
    pub async fn shutdown(&self) {
        if let Ok(mut background) = self.inner.background.lock() {
            for task in background.drain(..) {
                task.abort();
            }
        }
        let servers = std::mem::take(&mut *self.inner.servers.lock().await);
        for runtime in servers.values() {
            runtime.detach();
        }
        drop(servers);
        if let Err(e) = self.inner.outbox.sync().await {
            warn!(error = %e, "Final outbox sync failed.");
        }
    }

    /// Samples host and game process metrics on the configured interval.
    async fn metrics_loop(self) {
        let mut sampler = match MetricsSampler::new() {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "Metrics are unavailable.");
                return;
            }
        };
        let mut tick = tokio::time::interval(self.inner.config.metrics_interval());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let servers: Vec<(ServerId, u32)> = self
                .inner
                .servers
                .lock()
                .await
                .iter()
                .filter_map(|(id, r)| r.pid().map(|pid| (id.clone(), pid)))
                .collect();
            let pids: Vec<u32> = servers.iter().map(|(_, pid)| *pid).collect();
            let (returned, sample) = match tokio::task::spawn_blocking(move || {
                let sample = sampler.sample(&pids);
                (sampler, sample)
            })
            .await
            {
                Ok(r) => r,
                Err(_) => return,
            };
            sampler = returned;
            let host = &sample.host;
            let disk_total: u64 = host.disks.iter().map(|d| d.total).sum();
            let disk_available: u64 = host.disks.iter().map(|d| d.available).sum();
            let rx: f64 = host.net.iter().map(|n| n.rx_bytes_per_s).sum();
            let tx: f64 = host.net.iter().map(|n| n.tx_bytes_per_s).sum();
            self.inner
                .emitter
                .emit(Event::Metrics {
                    server: None,
                    sample: MetricsSample {
                        cpu_percent: host.cpu_percent,
                        memory_bytes: host.mem_used,
                        memory_total_bytes: Some(host.mem_total),
                        disk_used_bytes: Some(disk_total.saturating_sub(disk_available)),
                        disk_total_bytes: Some(disk_total),
                        net_rx_bytes_per_s: Some(rx.max(0.0) as u64),
                        net_tx_bytes_per_s: Some(tx.max(0.0) as u64),
                        ..MetricsSample::default()
                    },
                })
                .await;
            for process in &sample.processes {
                let Some((id, _)) = servers.iter().find(|(_, pid)| *pid == process.pid) else {
                    continue;
                };
                self.inner
                    .emitter
                    .emit(Event::Metrics {
                        server: Some(id.clone()),
                        sample: MetricsSample {
                            cpu_percent: process.cpu_percent.unwrap_or(0.0),
                            memory_bytes: process.rss_bytes,
                            threads: process.threads,
                            ..MetricsSample::default()
                        },
                    })
                    .await;
            }
        }
    }
}

/// Makes what the agent keeps private to its own user, so a game (another user) can
/// read nothing of it: the data folder's state folders (identity, outbox, specs, run
/// records, tail checkpoints) are 0700; the data folder itself is 0700, or 0711 when the
/// servers folder is inside it so a game can reach its own folder (by name: nobody but
/// the agent can list it). The servers folder is 0711 for the same reason. Applied at
/// every start, so an older installation's folders are tightened too.
fn protect_data_dir(config: &AgentConfig, run_as: &RunAs) -> Result<(), HostError> {
    use std::os::unix::fs::PermissionsExt;
    let set = |path: &std::path::Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|source| {
            HostError::Io {
                path: path.to_path_buf(),
                source,
            }
        })
    };
    let game_needs_a_way_in = run_as.owner().is_some();
    let data = &config.data_dir;
    let servers_inside = config.servers_dir.starts_with(data) && config.servers_dir != *data;
    set(
        data,
        if servers_inside && game_needs_a_way_in {
            0o711
        } else {
            0o700
        },
    )?;
    for name in ["run", "tail", "outbox", "specs", "identity"] {
        let dir = data.join(name);
        if dir.is_dir() {
            set(&dir, 0o700)?;
        }
    }
    if config.servers_dir != *data {
        set(
            &config.servers_dir,
            if game_needs_a_way_in { 0o711 } else { 0o700 },
        )?;
    }
    Ok(())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, AgentError> + Send + 'static,
) -> Result<T, AgentError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| AgentError::new(ErrorCode::Internal, e.to_string()))?
}
