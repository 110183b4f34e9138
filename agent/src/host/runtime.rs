//! One managed server on this host: its supervisor plus the tasks that turn what the
//! game does into events (status changes, log batches, player activity).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use languard_shared::games::GameKind;
use languard_shared::wire::event::LogLine;
use languard_shared::wire::request::{AgentError, ErrorCode};
use languard_shared::wire::spec::RestartMode as WireRestartMode;
use languard_shared::wire::{
    Event, PlayerEvent, ServerId, ServerSpec, ServerState, ServerStatus, now_millis,
    system_time_to_millis,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::events::Emitter;
use crate::games::{GameControl, LogSourceSpec, PlayerFeed, Prepared};
use crate::supervisor::{
    self, Policy, RestartMode, StartError, Supervisor, SupervisorEvent, SupervisorHandle,
    SupervisorOptions,
};
use crate::telemetry::tail::{DirTail, TailConfig, TailPosition};

/// Paths and limits a runtime needs from the agent's configuration.
#[derive(Clone, Debug)]
pub(crate) struct RuntimeEnv {
    /// Run records (adoption).
    pub run_dir: PathBuf,
    /// Tail checkpoints.
    pub tail_dir: PathBuf,
    /// What may be started.
    pub allowed_executables: supervisor::AllowList,
    /// Who the games run as.
    pub run_as: supervisor::RunAs,
    /// Longest log line kept whole.
    pub max_log_line_bytes: usize,
    /// Console captures kept per server.
    pub console_files_kept: usize,
}

/// The mutable part: the spec in force and the control channel bound to it.
struct Current {
    spec: ServerSpec,
    control: Arc<dyn GameControl>,
    log: LogSourceSpec,
    /// A spec applied while the server was running: swapped in at the next start.
    pending: Option<(ServerSpec, Prepared)>,
    /// Files the plan in force marks secret (relative to the server folder).
    secrets: Vec<PathBuf>,
    /// Status as last reported, with what the supervisor's snapshot lacks.
    since: i64,
    exit: Option<languard_shared::wire::ExitInfo>,
    restarts: u32,
}

/// A managed server.
pub(crate) struct ServerRuntime {
    id: ServerId,
    /// The last state the status pump has recorded (with its exit info), so a stop can
    /// answer only once the final status is known.
    recorded: tokio::sync::watch::Sender<supervisor::ServerState>,
    env: RuntimeEnv,
    supervisor: SupervisorHandle,
    current: Arc<Mutex<Current>>,
    emitter: Emitter,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    players_task: Mutex<Option<JoinHandle<()>>>,
    /// Serialises start, stop, update and remove (and persisting `desired`), so that a
    /// spec swap, a start and a removal never interleave.
    op: tokio::sync::Mutex<()>,
    /// Started by request and not stopped since (persisted with the spec).
    desired: AtomicBool,
    /// Removed from the agent: every further operation is refused.
    removed: AtomicBool,
}

/// The secret files of a plan.
fn secret_paths(prepared: &Prepared) -> Vec<PathBuf> {
    prepared
        .plan
        .files
        .iter()
        .filter(|f| f.secret)
        .map(|f| f.path.clone())
        .collect()
}

impl ServerRuntime {
    /// Builds the supervisor (adopting a still-running process) and starts the tasks.
    pub async fn create(
        spec: ServerSpec,
        prepared: Prepared,
        env: RuntimeEnv,
        emitter: Emitter,
        desired: bool,
    ) -> Arc<Self> {
        let id = spec.id.clone();
        let secrets = secret_paths(&prepared);
        let options = SupervisorOptions {
            server_id: id.to_string(),
            data_dir: env.run_dir.clone(),
            allowed_executables: env.allowed_executables.clone(),
            run_as: env.run_as.clone(),
            policy: policy(&spec),
            plan: Some(prepared.plan),
            hooks: Arc::clone(&prepared.control).as_hooks(),
            console_files_kept: env.console_files_kept,
        };
        let (supervisor, events, adoption) = Supervisor::spawn(options).await;
        debug!(server = %id, ?adoption, "Supervisor ready.");
        let current = Arc::new(Mutex::new(Current {
            spec,
            control: prepared.control,
            log: prepared.log,
            pending: None,
            secrets,
            since: now_millis(),
            exit: None,
            restarts: 0,
        }));
        let runtime = Arc::new(Self {
            id,
            recorded: tokio::sync::watch::Sender::new(supervisor::ServerState::Stopped),
            env,
            supervisor,
            current,
            emitter,
            tasks: Mutex::new(Vec::new()),
            players_task: Mutex::new(None),
            op: tokio::sync::Mutex::new(()),
            desired: AtomicBool::new(desired),
            removed: AtomicBool::new(false),
        });
        let pump = tokio::spawn(Arc::clone(&runtime).pump_status(events));
        let tail = runtime.spawn_tail();
        if let Ok(mut tasks) = runtime.tasks.lock() {
            tasks.push(pump);
            tasks.push(tail);
        }
        runtime.spawn_players();
        runtime
    }

    /// Takes the operation lock; refused once the runtime has been removed.
    pub async fn lock_op(&self) -> Result<tokio::sync::MutexGuard<'_, ()>, AgentError> {
        let guard = self.op.lock().await;
        if self.removed.load(Ordering::SeqCst) {
            return Err(AgentError::new(
                ErrorCode::UnknownServer,
                format!("no server {} on this agent", self.id),
            ));
        }
        Ok(guard)
    }

    /// Marks the runtime removed (call with the operation lock held).
    pub fn mark_removed(&self) {
        self.removed.store(true, Ordering::SeqCst);
    }

    /// Whether the server should be running (in memory; persisted by the agent).
    pub fn desired(&self) -> bool {
        self.desired.load(Ordering::SeqCst)
    }

    /// Records whether the server should be running (after it has been persisted).
    pub fn set_desired(&self, running: bool) {
        self.desired.store(running, Ordering::SeqCst);
    }

    /// Files the plan in force (or pending) marks secret, relative to the server folder.
    pub fn secrets(&self) -> Vec<PathBuf> {
        let Ok(current) = self.current.lock() else {
            return Vec::new();
        };
        let mut out = current.secrets.clone();
        if let Some((_, prepared)) = &current.pending {
            out.extend(secret_paths(prepared));
        }
        out
    }

    /// The spec in force (or pending for the next start).
    pub fn spec(&self) -> Option<ServerSpec> {
        let current = self.current.lock().ok()?;
        Some(
            current
                .pending
                .as_ref()
                .map(|(s, _)| s.clone())
                .unwrap_or_else(|| current.spec.clone()),
        )
    }

    /// The game of the spec in force (the one its control speaks for; a pending
    /// spec takes over at the next start).
    pub fn game(&self) -> Option<GameKind> {
        self.current.lock().ok().map(|c| c.spec.game.kind())
    }

    /// The live process id, if any.
    pub fn pid(&self) -> Option<u32> {
        self.supervisor.status().pid
    }

    /// The status now.
    pub fn status(&self) -> ServerStatus {
        let snapshot = self.supervisor.status();
        let (since, exit, restarts) = self
            .current
            .lock()
            .map(|c| (c.since, c.exit, c.restarts))
            .unwrap_or((0, None, 0));
        ServerStatus {
            server: self.id.clone(),
            state: wire_state(snapshot.state),
            pid: snapshot.pid,
            since,
            detail: snapshot.reason.as_deref().map(supervisor::path_free),
            exit,
            restarts,
        }
    }

    /// Whether the server has no process (it may be removed or reconfigured freely).
    pub fn is_down(&self) -> bool {
        matches!(
            self.supervisor.state(),
            supervisor::ServerState::Stopped
                | supervisor::ServerState::Crashed
                | supervisor::ServerState::Error
        )
    }

    /// Applies a new spec: at once when the server is down, else at the next start.
    pub async fn update(&self, spec: ServerSpec, prepared: Prepared) -> Result<(), AgentError> {
        if self.is_down() {
            self.swap_in(spec, prepared).await
        } else {
            let Ok(mut current) = self.current.lock() else {
                return Err(AgentError::new(ErrorCode::Internal, "state lock poisoned"));
            };
            current.pending = Some((spec, prepared));
            Ok(())
        }
    }

    async fn swap_in(&self, spec: ServerSpec, prepared: Prepared) -> Result<(), AgentError> {
        let secrets = secret_paths(&prepared);
        // One command: a backoff restart sees either the old or the new configuration.
        self.supervisor
            .reconfigure(
                prepared.plan,
                policy(&spec),
                Arc::clone(&prepared.control).as_hooks(),
            )
            .await
            .map_err(|_| AgentError::new(ErrorCode::Internal, "supervisor stopped"))?;
        let log_changed = {
            let Ok(mut current) = self.current.lock() else {
                return Err(AgentError::new(ErrorCode::Internal, "state lock poisoned"));
            };
            current.control.reset();
            current.control = prepared.control;
            current.spec = spec;
            current.secrets = secrets;
            let changed = current.log != prepared.log;
            current.log = prepared.log;
            changed
        };
        if log_changed {
            let tail = self.spawn_tail();
            if let Ok(mut tasks) = self.tasks.lock() {
                if let Some(old) = tasks.pop() {
                    old.abort();
                }
                tasks.push(tail);
            }
        }
        self.spawn_players();
        Ok(())
    }

    /// Renders files and launches (applying a pending spec first).
    pub async fn start(&self) -> Result<(), AgentError> {
        let pending = self.current.lock().ok().and_then(|mut c| c.pending.take());
        if let Some((spec, prepared)) = pending {
            self.swap_in(spec, prepared).await?;
        }
        if let Ok(mut current) = self.current.lock() {
            current.restarts = 0;
        }
        self.supervisor.start().await.map_err(start_error)
    }

    /// Graceful stop (or kill when `force`); returns once the process is gone.
    pub async fn stop(&self, force: bool) -> Result<(), AgentError> {
        let mut recorded = self.recorded.subscribe();
        let result = if force {
            self.supervisor.kill().await
        } else {
            self.supervisor.stop().await
        };
        result.map_err(|_| AgentError::new(ErrorCode::Internal, "supervisor stopped"))?;
        // Answer with the final status (exit code or signal) once the pump has it.
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            recorded.wait_for(|s| *s == supervisor::ServerState::Stopped),
        )
        .await;
        Ok(())
    }

    /// The game's control channel.
    pub fn control(&self) -> Option<Arc<dyn GameControl>> {
        self.current.lock().ok().map(|c| Arc::clone(&c.control))
    }

    /// Stops the background tasks (the game process is left alone).
    pub fn detach(&self) {
        if let Ok(mut tasks) = self.tasks.lock() {
            for task in tasks.drain(..) {
                task.abort();
            }
        }
        if let Some(task) = self.players_task.lock().ok().and_then(|mut t| t.take()) {
            task.abort();
        }
        if let Some(control) = self.control() {
            control.reset();
        }
    }

    /// Forwards supervisor events as status events.
    async fn pump_status(self: Arc<Self>, mut events: mpsc::UnboundedReceiver<SupervisorEvent>) {
        let mut previous = supervisor::ServerState::Stopped;
        while let Some(event) = events.recv().await {
            let SupervisorEvent::State {
                state,
                reason,
                pid,
                exit,
            } = event
            else {
                continue;
            };
            let (since, wire_exit, restarts) = {
                let Ok(mut current) = self.current.lock() else {
                    return;
                };
                current.since = now_millis();
                if let Some(exit) = exit {
                    current.exit = Some(languard_shared::wire::ExitInfo {
                        code: exit.code,
                        signal: exit.signal,
                    });
                }
                if state == supervisor::ServerState::Starting
                    && matches!(
                        previous,
                        supervisor::ServerState::Crashed | supervisor::ServerState::Hung
                    )
                {
                    current.restarts += 1;
                }
                if matches!(
                    state,
                    supervisor::ServerState::Stopped
                        | supervisor::ServerState::Crashed
                        | supervisor::ServerState::Error
                ) {
                    // The game is gone: end the control session so it stops retrying.
                    current.control.reset();
                }
                (current.since, current.exit, current.restarts)
            };
            previous = state;
            self.recorded.send_replace(state);
            self.emitter
                .emit(Event::Status(ServerStatus {
                    server: self.id.clone(),
                    state: wire_state(state),
                    pid,
                    since,
                    detail: reason.as_deref().map(supervisor::path_free),
                    exit: wire_exit,
                    restarts,
                }))
                .await;
        }
    }

    /// Follows the server's log, resuming from the stored checkpoint.
    fn spawn_tail(&self) -> JoinHandle<()> {
        let log = match self.current.lock() {
            Ok(c) => c.log.clone(),
            Err(_) => return tokio::spawn(async {}),
        };
        let mut config = TailConfig::new(log.dir, log.pattern, log.parser);
        config.max_line_len = self.env.max_log_line_bytes;
        let checkpoint = self.env.tail_dir.join(format!("{}.json", self.id));
        let tail = match read_checkpoint(&checkpoint) {
            Some(position) => DirTail::resume(config, position),
            None => DirTail::new(config),
        };
        let emitter = self.emitter.clone();
        let server = self.id.clone();
        tokio::spawn(async move {
            let (handle, mut batches) = tail.spawn();
            while let Some(batch) = batches.recv().await {
                if !batch.lines.is_empty() {
                    let lines = batch
                        .lines
                        .iter()
                        .map(|l| LogLine {
                            at: system_time_to_millis(l.received),
                            level: l.level,
                            text: l.text.clone(),
                        })
                        .collect();
                    let event = Event::Log {
                        server: server.clone(),
                        lines,
                    };
                    // Not stored: retry the same batch (with backoff) rather than move
                    // the checkpoint past it; meanwhile the tail waits (backpressure).
                    let mut delay = Duration::from_millis(100);
                    while emitter.emit(event.clone()).await.is_none() {
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(30));
                    }
                }
                write_checkpoint(&checkpoint, &batch.position());
            }
            handle.stop();
        })
    }

    /// (Re)starts player tracking on the current control channel.
    fn spawn_players(&self) {
        let (control, interval) = match self.current.lock() {
            Ok(c) => (
                Arc::clone(&c.control),
                Duration::from_secs(c.spec.timing.players_poll_secs.max(1)),
            ),
            Err(_) => return,
        };
        let (events_tx, mut events_rx) = mpsc::channel::<PlayerEvent>(1024);
        let supervisor = self.supervisor.clone();
        let feed = PlayerFeed {
            poll_interval: interval,
            running: Arc::new(move || supervisor.state() == supervisor::ServerState::Running),
            events: events_tx,
        };
        let Some(tracker) = control.track_players(feed) else {
            return;
        };
        let emitter = self.emitter.clone();
        let server = self.id.clone();
        let task = tokio::spawn(async move {
            while let Some(event) = events_rx.recv().await {
                emitter
                    .emit(Event::Player {
                        server: server.clone(),
                        event,
                    })
                    .await;
            }
            tracker.abort();
        });
        if let Ok(mut slot) = self.players_task.lock()
            && let Some(old) = slot.replace(task)
        {
            old.abort();
        }
    }

    /// Removes what the agent stored for this server (spec, checkpoint); its folder
    /// stays.
    pub fn forget_files(&self) {
        let _ = std::fs::remove_file(self.env.tail_dir.join(format!("{}.json", self.id)));
    }
}

fn read_checkpoint(path: &Path) -> Option<TailPosition> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn write_checkpoint(path: &Path, position: &TailPosition) {
    let Ok(bytes) = serde_json::to_vec(position) else {
        return;
    };
    let tmp = path.with_extension("json.tmp");
    if let Err(e) = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path)) {
        warn!(file = %path.display(), error = %e, "Cannot store the log checkpoint.");
    }
}

/// The supervisor policy a spec asks for.
pub(crate) fn policy(spec: &ServerSpec) -> Policy {
    let r = &spec.restart;
    let t = &spec.timing;
    Policy {
        restart: match r.mode {
            WireRestartMode::Never => RestartMode::Never,
            WireRestartMode::OnCrash => RestartMode::OnCrash,
            WireRestartMode::Always => RestartMode::Always,
        },
        backoff_initial: Duration::from_millis(r.backoff_initial_ms),
        backoff_max: Duration::from_millis(r.backoff_max_ms.max(r.backoff_initial_ms)),
        crash_loop_max: r.crash_loop_max,
        crash_loop_window: Duration::from_secs(r.crash_loop_window_secs),
        stop_timeout: Duration::from_secs(t.stop_timeout_secs),
        start_timeout: Duration::from_secs(t.start_timeout_secs.max(1)),
        probe_interval: Duration::from_secs(t.probe_interval_secs.max(1)),
        probe_failures_for_hung: t.probe_failures_for_hung,
        ..Policy::default()
    }
}

pub(crate) fn wire_state(state: supervisor::ServerState) -> ServerState {
    match state {
        supervisor::ServerState::Stopped => ServerState::Stopped,
        supervisor::ServerState::Starting => ServerState::Starting,
        supervisor::ServerState::Running => ServerState::Running,
        supervisor::ServerState::Stopping => ServerState::Stopping,
        supervisor::ServerState::Crashed => ServerState::Crashed,
        supervisor::ServerState::Hung => ServerState::Hung,
        supervisor::ServerState::Error => ServerState::Error,
    }
}

fn start_error(e: StartError) -> AgentError {
    let code = match &e {
        StartError::NotAllowed
        | StartError::NoAllowedExecutables
        | StartError::Executable { .. }
        | StartError::RunAs(_) => ErrorCode::ExecutableRefused,
        StartError::PortInUse { .. } => ErrorCode::PortInUse,
        StartError::Files(_) => ErrorCode::Io,
        StartError::AlreadyRunning(_) => ErrorCode::NotStopped,
        _ => ErrorCode::Internal,
    };
    AgentError::new(code, supervisor::path_free(&e.to_string()))
}
