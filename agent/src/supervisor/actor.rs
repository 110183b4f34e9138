//! The per-server actor: one `select!` loop over commands, process exit and timers.

use std::collections::VecDeque;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::sys::signal::Signal;
use sysinfo::System;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::process::{self, Live, RunRecord};
use super::{
    Adoption, AllowList, Command, ExitInfo, GameHooks, LaunchPlan, Policy, RestartMode, RunAs,
    ServerState, StartError, Status, SupervisorEvent, SupervisorOptions, files, launch, run_as,
};

type BoxFut<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Re-send SIGKILL this often if a killed process still has not exited.
const KILL_RETRY: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Graceful,
    Sigint,
    Sigterm,
    Sigkill,
}

#[derive(Debug)]
enum StopKind {
    /// User stop → Stopped.
    Stop,
    /// User kill → Stopped.
    Kill,
    /// Probes failed → crash handling.
    Hung(String),
    /// Not ready in time → crash handling.
    StartTimeout(String),
    /// `wait_ready` failed → Error, no restart.
    ReadyFailed(String),
}

struct StopOp {
    kind: StopKind,
    step: Step,
    deadline: Option<Instant>,
    waiters: Vec<oneshot::Sender<()>>,
}

pub(crate) struct Actor {
    id: String,
    data_dir: PathBuf,
    allowed: AllowList,
    run_as: RunAs,
    console_files_kept: usize,
    plan: Option<LaunchPlan>,
    policy: Policy,
    hooks: Arc<dyn GameHooks>,
    cmds: mpsc::Receiver<Command>,
    events: mpsc::UnboundedSender<SupervisorEvent>,
    status: watch::Sender<Status>,

    live: Option<Live>,
    ready: Option<BoxFut<Result<(), String>>>,
    ready_deadline: Option<Instant>,
    probe: Option<BoxFut<bool>>,
    next_probe: Option<Instant>,
    probe_failures: u32,
    graceful: Option<BoxFut<Result<(), String>>>,
    stop: Option<StopOp>,
    restart_at: Option<Instant>,
    crashes: VecDeque<Instant>,
}

async fn poll_opt<T>(f: &mut Option<BoxFut<T>>) -> T {
    match f {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

async fn sleep_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn wait_live(live: &mut Option<Live>) -> ExitInfo {
    match live {
        Some(l) => l.wait().await,
        None => std::future::pending().await,
    }
}

async fn remove_file_quietly(path: PathBuf) {
    let _ = blocking(move || match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "removing run record failed");
            Ok(())
        }
    })
    .await;
}

/// `now + d` that cannot overflow: a deadline past what `Instant` can hold becomes
/// "in about a year", which for a supervisor timer means never.
fn after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(365 * 24 * 60 * 60)))
        .unwrap_or(now)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(format!("blocking task failed: {e}")))
}

impl Actor {
    pub(crate) fn new(
        opts: SupervisorOptions,
        cmds: mpsc::Receiver<Command>,
        events: mpsc::UnboundedSender<SupervisorEvent>,
        status: watch::Sender<Status>,
    ) -> Self {
        Self {
            id: opts.server_id,
            data_dir: opts.data_dir,
            allowed: opts.allowed_executables,
            run_as: opts.run_as,
            console_files_kept: opts.console_files_kept,
            plan: opts.plan,
            policy: opts.policy,
            hooks: opts.hooks,
            cmds,
            events,
            status,
            live: None,
            ready: None,
            ready_deadline: None,
            probe: None,
            next_probe: None,
            probe_failures: 0,
            graceful: None,
            stop: None,
            restart_at: None,
            crashes: VecDeque::new(),
        }
    }

    fn record_path(&self) -> PathBuf {
        process::record_path(&self.data_dir, &self.id)
    }

    fn state(&self) -> ServerState {
        self.status.borrow().state
    }

    fn set_state(
        &mut self,
        state: ServerState,
        reason: Option<String>,
        pid: Option<u32>,
        exit: Option<ExitInfo>,
    ) {
        tracing::info!(server = %self.id, %state, reason = reason.as_deref().unwrap_or(""), ?pid, ?exit, "state");
        self.status.send_replace(Status {
            state,
            reason: reason.clone(),
            pid: self.live.as_ref().map(|l| l.pid),
            console_file: self.live.as_ref().map(|l| l.console_file.clone()),
        });
        let _ = self.events.send(SupervisorEvent::State {
            state,
            reason,
            pid,
            exit,
        });
    }

    fn emit(&self, ev: SupervisorEvent) {
        let _ = self.events.send(ev);
    }

    // ---------------------------------------------------------------- adoption

    /// Reconciles the run record: adopt a matching live process, or remove the record.
    pub(crate) async fn adopt(&mut self) -> Adoption {
        let path = self.record_path();
        let read_path = path.clone();
        let read = blocking(move || match std::fs::read(&read_path) {
            Ok(bytes) => Ok(Some(
                serde_json::from_slice::<RunRecord>(&bytes).map_err(|e| e.to_string()),
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Ok(Some(Err(e.to_string()))),
        })
        .await;
        let rec = match read {
            Ok(None) => return Adoption::NoRecord,
            Ok(Some(Ok(rec))) => rec,
            Ok(Some(Err(e))) | Err(e) => {
                let reason = format!("unreadable run record: {e}");
                self.remove_record().await;
                return Adoption::Stale { reason };
            }
        };
        let verdict = if rec.server_id != self.id {
            Err(format!("record is for server {}", rec.server_id))
        } else {
            let (pid, st, name) = (rec.pid, rec.start_time, rec.exe_name.clone());
            blocking(move || {
                let mut sys = System::new().map_err(|e| format!("process table: {e}"))?;
                process::matches(&mut sys, pid, st, &name)?;
                Ok(sys)
            })
            .await
        };
        let sys = match verdict {
            Ok(sys) => sys,
            Err(reason) => {
                tracing::info!(server = %self.id, pid = rec.pid, %reason, "stale run record removed");
                self.remove_record().await;
                return Adoption::Stale { reason };
            }
        };
        let group = rec.pgid == rec.pid && process::leads_group(rec.pid);
        self.live = Some(Live::adopted(
            rec.pid,
            rec.console_file.clone(),
            rec.start_time,
            rec.exe_name,
            group,
            sys,
        ));
        self.emit(SupervisorEvent::Adopted {
            pid: rec.pid,
            console_file: rec.console_file,
        });
        self.set_state(
            ServerState::Starting,
            Some("adopted; waiting until ready".into()),
            Some(rec.pid),
            None,
        );
        self.arm_ready();
        Adoption::Adopted { pid: rec.pid }
    }

    fn remove_record(&self) -> impl Future<Output = ()> + Send + 'static {
        remove_file_quietly(self.record_path())
    }

    // ---------------------------------------------------------------- main loop

    pub(crate) async fn run(mut self) {
        loop {
            let stop_deadline = self.stop.as_ref().and_then(|s| s.deadline);
            let probe_due = if self.probe.is_none() {
                self.next_probe
            } else {
                None
            };
            tokio::select! {
                biased;
                exit = wait_live(&mut self.live) => self.on_exit(exit).await,
                cmd = self.cmds.recv() => match cmd {
                    Some(cmd) => self.on_command(cmd).await,
                    // Every handle dropped: detach, leaving the process running.
                    None => break,
                },
                res = poll_opt(&mut self.graceful) => {
                    self.graceful = None;
                    self.on_graceful(res);
                }
                () = sleep_opt(stop_deadline) => self.escalate(),
                res = poll_opt(&mut self.ready) => {
                    self.ready = None;
                    self.on_ready(res);
                }
                () = sleep_opt(self.ready_deadline) => self.on_start_timeout(),
                ok = poll_opt(&mut self.probe) => {
                    self.probe = None;
                    self.on_probe(ok);
                }
                () = sleep_opt(probe_due) => self.launch_probe(),
                () = sleep_opt(self.restart_at) => {
                    self.restart_at = None;
                    if let Err(e) = self.begin_start().await
                        && self.state() != ServerState::Error
                    {
                        self.set_state(ServerState::Error, Some(format!("restart failed: {e}")), None, None);
                    }
                }
            }
        }
        tracing::debug!(server = %self.id, "supervisor detached");
    }

    async fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Start(reply) => {
                let res = self.begin_start().await;
                let _ = reply.send(res);
            }
            Command::Stop { force, reply } => self.begin_stop(force, reply),
            Command::SetPlan(plan) => self.plan = Some(*plan),
            Command::SetPolicy(p) => self.set_policy(p),
            Command::SetHooks(h) => self.hooks = h,
            Command::Reconfigure {
                plan,
                policy,
                hooks,
            } => {
                self.plan = Some(*plan);
                self.hooks = hooks;
                self.set_policy(policy);
            }
        }
    }

    fn set_policy(&mut self, p: Policy) {
        self.policy = p;
        let idle = self.probe.is_none() && self.next_probe.is_none();
        if self.state() == ServerState::Running && idle && self.policy.probe_failures_for_hung > 0 {
            self.next_probe = Some(after(self.policy.probe_interval));
        }
    }

    // ---------------------------------------------------------------- start

    async fn begin_start(&mut self) -> Result<(), StartError> {
        if self.live.is_some() {
            return Err(StartError::AlreadyRunning(self.state()));
        }
        let plan = self.plan.clone().ok_or(StartError::NoPlan)?;
        if plan.server_id != self.id {
            return Err(StartError::WrongServer {
                plan: plan.server_id,
                supervisor: self.id.clone(),
            });
        }
        if let RunAs::Refused(reason) = &self.run_as {
            return Err(StartError::RunAs(reason.clone()));
        }
        let (allowed, requested) = (self.allowed.clone(), plan.executable.clone());
        let executable = tokio::task::spawn_blocking(move || allowed.check(&requested))
            .await
            .unwrap_or_else(|e| Err(StartError::Launch(format!("blocking task failed: {e}"))))?;
        launch::check_ports(&plan.ports)?;
        // From here on, failures are recorded as state Error.
        self.restart_at = None;

        let (cwd, planned, console_dir) = (
            plan.cwd.clone(),
            plan.files.clone(),
            plan.console_dir.clone(),
        );
        // The game user's (uid, gid): what the game must be able to read and write.
        let game_owner = self.run_as.owner();
        let written = blocking(move || {
            files::write_planned(&cwd, &planned, game_owner).map_err(|e| e.to_string())?;
            if let Some(owner) = game_owner {
                run_as::give_folder_to_game(&cwd, owner)?;
            }
            Ok(())
        })
        .await;
        if let Err(detail) = written {
            tracing::warn!(server = %self.id, error = %detail, "Writing the server's files failed.");
            let reason = path_free(&detail);
            self.set_state(
                ServerState::Error,
                Some(format!("writing files failed: {reason}")),
                None,
                None,
            );
            return Err(StartError::Files(reason));
        }
        let kept = self.console_files_kept;
        let cwd = plan.cwd.clone();
        let console = blocking(move || {
            let failed =
                |e: std::io::Error| format!("console file in {}: {e}", console_dir.display());
            let dir = launch::open_console_dir(&cwd, &console_dir).map_err(failed)?;
            let (name, file) = launch::create_console(&dir, SystemTime::now()).map_err(failed)?;
            if kept > 0 {
                launch::prune_consoles(&dir, kept, &name);
            }
            Ok((console_dir.join(name), file))
        })
        .await;
        let (console_path, console_file) = match console {
            Ok(c) => c,
            Err(reason) => return Err(self.launch_failed(reason)),
        };
        let child = match launch::spawn(&plan, &executable, &self.run_as, console_file) {
            Ok(c) => c,
            Err(e) => {
                return Err(self.launch_failed(format!("spawning {}: {e}", executable.display())));
            }
        };
        let Some(pid) = child.id() else {
            return Err(self.launch_failed("process exited before it could be tracked".into()));
        };
        self.live = Some(Live::child(pid, console_path.clone(), child));
        self.write_record(pid, &executable, &console_path).await;
        self.emit(SupervisorEvent::Spawned {
            pid,
            console_file: console_path,
        });
        self.set_state(ServerState::Starting, None, Some(pid), None);
        self.arm_ready();
        Ok(())
    }

    fn launch_failed(&mut self, detail: String) -> StartError {
        tracing::warn!(server = %self.id, error = %detail, "Launch failed.");
        let reason = path_free(&detail);
        self.set_state(
            ServerState::Error,
            Some(format!("launch failed: {reason}")),
            None,
            None,
        );
        StartError::Launch(reason)
    }

    fn write_record(
        &self,
        pid: u32,
        executable: &Path,
        console: &Path,
    ) -> impl Future<Output = ()> + Send + 'static {
        let exe_name = executable
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut rec = RunRecord {
            server_id: self.id.clone(),
            pid,
            pgid: pid,
            start_time: 0,
            executable: executable.to_path_buf(),
            exe_name,
            console_file: console.to_path_buf(),
            started_at: unix_now(),
        };
        let (dir, path, id) = (self.data_dir.clone(), self.record_path(), self.id.clone());
        let res = blocking(move || {
            let mut sys = System::new().map_err(|e| format!("process table: {e}"))?;
            rec.start_time = process::identity(&mut sys, pid)
                .map(|i| i.start_time)
                .ok_or_else(|| format!("pid {pid} vanished before its start time was read"))?;
            let json = serde_json::to_vec_pretty(&rec).map_err(|e| e.to_string())?;
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let name = path.file_name().map(|n| n.to_owned()).unwrap_or_default();
            files::atomic_write(&dir, &name, &json, 0o600)
                .map_err(|e| format!("{}: {e}", path.display()))
        });
        async move {
            if let Err(e) = res.await {
                tracing::warn!(server = %id, pid, error = %e, "run record not written; the process cannot be adopted after an agent restart");
            }
        }
    }

    fn arm_ready(&mut self) {
        let hooks = self.hooks.clone();
        self.ready = Some(Box::pin(async move { hooks.wait_ready().await }));
        self.ready_deadline = Some(after(self.policy.start_timeout));
        self.probe = None;
        self.next_probe = None;
        self.probe_failures = 0;
    }

    fn on_ready(&mut self, res: Result<(), String>) {
        self.ready_deadline = None;
        let pid = self.live.as_ref().map(|l| l.pid);
        match res {
            Ok(()) => {
                self.set_state(ServerState::Running, None, pid, None);
                if self.policy.probe_failures_for_hung > 0 {
                    self.next_probe = Some(after(self.policy.probe_interval));
                }
            }
            Err(e) => {
                tracing::warn!(server = %self.id, error = %e, "server can not become ready; stopping it");
                self.begin_internal_stop(
                    StopKind::ReadyFailed(format!("not ready: {e}")),
                    Step::Sigint,
                );
            }
        }
    }

    fn on_start_timeout(&mut self) {
        self.ready = None;
        self.ready_deadline = None;
        let reason = format!(
            "not ready within {} s",
            self.policy.start_timeout.as_secs_f64()
        );
        self.begin_internal_stop(StopKind::StartTimeout(reason), Step::Sigint);
    }

    // ---------------------------------------------------------------- probing

    fn launch_probe(&mut self) {
        self.next_probe = None;
        let hooks = self.hooks.clone();
        let limit = self.policy.probe_interval.max(Duration::from_millis(10));
        self.probe = Some(Box::pin(async move {
            tokio::time::timeout(limit, hooks.probe())
                .await
                .unwrap_or(false)
        }));
    }

    fn on_probe(&mut self, ok: bool) {
        if self.live.is_none() || self.stop.is_some() || self.state() != ServerState::Running {
            return;
        }
        if ok {
            self.probe_failures = 0;
        } else {
            self.probe_failures += 1;
            tracing::warn!(server = %self.id, failures = self.probe_failures, "probe failed");
        }
        let max = self.policy.probe_failures_for_hung;
        if max > 0 && self.probe_failures >= max {
            let reason = format!("hung: {} consecutive probes failed", self.probe_failures);
            let pid = self.live.as_ref().map(|l| l.pid);
            self.set_state(ServerState::Hung, Some(reason.clone()), pid, None);
            self.begin_internal_stop(StopKind::Hung(reason), Step::Sigkill);
        } else if max > 0 {
            self.next_probe = Some(after(self.policy.probe_interval));
        }
    }

    // ---------------------------------------------------------------- stop

    fn clear_running_timers(&mut self) {
        self.ready = None;
        self.ready_deadline = None;
        self.probe = None;
        self.next_probe = None;
    }

    fn begin_stop(&mut self, force: bool, reply: oneshot::Sender<()>) {
        if self.live.is_none() {
            self.restart_at = None;
            if self.state() != ServerState::Stopped {
                self.set_state(
                    ServerState::Stopped,
                    Some(if force { "killed" } else { "stopped" }.into()),
                    None,
                    None,
                );
            }
            let _ = reply.send(());
            return;
        }
        self.clear_running_timers();
        let pid = self.live.as_ref().map(|l| l.pid);
        if let Some(op) = self.stop.as_mut() {
            op.waiters.push(reply);
            if force {
                op.kind = StopKind::Kill;
            } else if !matches!(op.kind, StopKind::Kill) {
                op.kind = StopKind::Stop;
            }
            let need_kill = force && op.step != Step::Sigkill;
            if need_kill {
                self.send_kill();
            }
            return;
        }
        if force {
            self.set_state(ServerState::Stopping, Some("killing".into()), pid, None);
            self.stop = Some(StopOp {
                kind: StopKind::Kill,
                step: Step::Graceful,
                deadline: None,
                waiters: vec![reply],
            });
            self.send_kill();
        } else {
            self.set_state(ServerState::Stopping, None, pid, None);
            let hooks = self.hooks.clone();
            self.graceful = Some(Box::pin(async move { hooks.graceful_stop().await }));
            self.stop = Some(StopOp {
                kind: StopKind::Stop,
                step: Step::Graceful,
                deadline: Some(after(self.policy.stop_timeout)),
                waiters: vec![reply],
            });
        }
    }

    /// Stop started by the supervisor itself, beginning at `from` (SIGINT or SIGKILL).
    fn begin_internal_stop(&mut self, kind: StopKind, from: Step) {
        self.clear_running_timers();
        if self.live.is_none() || self.stop.is_some() {
            return;
        }
        self.stop = Some(StopOp {
            kind,
            step: Step::Graceful,
            deadline: None,
            waiters: Vec::new(),
        });
        if from == Step::Sigkill {
            self.send_kill();
        } else {
            self.escalate();
        }
    }

    fn send_kill(&mut self) {
        self.graceful = None;
        if let Some(op) = self.stop.as_mut() {
            op.step = Step::Sigkill;
            op.deadline = Some(after(KILL_RETRY));
        }
        if let Some(live) = self.live.as_mut() {
            live.signal(Signal::SIGKILL);
        }
    }

    fn on_graceful(&mut self, res: Result<(), String>) {
        match res {
            Ok(()) => tracing::debug!(server = %self.id, "graceful stop requested"),
            Err(e) => {
                tracing::warn!(server = %self.id, error = %e, "graceful stop failed; signalling");
                if self.stop.as_ref().is_some_and(|s| s.step == Step::Graceful) {
                    self.escalate();
                }
            }
        }
    }

    /// Next step of the ladder: graceful → SIGINT → SIGTERM → SIGKILL (repeated).
    fn escalate(&mut self) {
        let grace = self.policy.signal_grace;
        let Some(op) = self.stop.as_mut() else { return };
        let (sig, step, wait) = match op.step {
            Step::Graceful => (Signal::SIGINT, Step::Sigint, grace),
            Step::Sigint => (Signal::SIGTERM, Step::Sigterm, grace),
            Step::Sigterm => (Signal::SIGKILL, Step::Sigkill, KILL_RETRY),
            Step::Sigkill => {
                tracing::warn!(server = %self.id, "process survives SIGKILL; retrying");
                (Signal::SIGKILL, Step::Sigkill, KILL_RETRY)
            }
        };
        op.step = step;
        op.deadline = Some(after(wait));
        self.graceful = None;
        if let Some(live) = self.live.as_mut() {
            live.signal(sig);
        }
    }

    // ---------------------------------------------------------------- exit

    async fn on_exit(&mut self, exit: ExitInfo) {
        let Some(live) = self.live.take() else { return };
        live.kill_stragglers();
        self.clear_running_timers();
        self.graceful = None;
        self.remove_record().await;
        let pid = Some(live.pid);
        let Some(op) = self.stop.take() else {
            let exited_clean = exit.code == Some(0);
            if exited_clean {
                self.after_failure(
                    ServerState::Stopped,
                    format!("exited on its own ({exit})"),
                    pid,
                    exit,
                    false,
                );
            } else {
                let during = if self.state() == ServerState::Starting {
                    " while starting"
                } else {
                    ""
                };
                self.after_failure(
                    ServerState::Crashed,
                    format!("crashed{during} ({exit})"),
                    pid,
                    exit,
                    true,
                );
            }
            return;
        };
        match op.kind {
            StopKind::Stop => self.set_state(
                ServerState::Stopped,
                Some("stopped".into()),
                pid,
                Some(exit),
            ),
            StopKind::Kill => {
                self.set_state(ServerState::Stopped, Some("killed".into()), pid, Some(exit))
            }
            StopKind::ReadyFailed(r) => {
                self.set_state(ServerState::Error, Some(r), pid, Some(exit))
            }
            StopKind::Hung(r) => self.after_failure(
                ServerState::Crashed,
                format!("{r}; killed"),
                pid,
                exit,
                true,
            ),
            StopKind::StartTimeout(r) => {
                self.after_failure(ServerState::Crashed, r, pid, exit, true)
            }
        }
        for w in op.waiters {
            let _ = w.send(());
        }
    }

    /// An exit nobody asked for: apply the restart policy and the crash-loop guard.
    fn after_failure(
        &mut self,
        state: ServerState,
        reason: String,
        pid: Option<u32>,
        exit: ExitInfo,
        crash: bool,
    ) {
        let restart = match self.policy.restart {
            RestartMode::Never => false,
            RestartMode::OnCrash => crash,
            RestartMode::Always => true,
        };
        if !restart {
            self.set_state(state, Some(reason), pid, Some(exit));
            return;
        }
        if self.plan.is_none() {
            self.set_state(
                state,
                Some(format!("{reason}; no launch plan to restart with")),
                pid,
                Some(exit),
            );
            return;
        }
        let now = Instant::now();
        let window = self.policy.crash_loop_window;
        self.crashes.push_back(now);
        while self
            .crashes
            .front()
            .is_some_and(|t| now.duration_since(*t) > window)
        {
            self.crashes.pop_front();
        }
        let n = u32::try_from(self.crashes.len()).unwrap_or(u32::MAX);
        if self.policy.crash_loop_max > 0 && n >= self.policy.crash_loop_max {
            self.crashes.clear();
            let msg = format!(
                "crash loop: {n} crashes in {} s; last: {reason}",
                window.as_secs()
            );
            self.set_state(ServerState::Error, Some(msg), pid, Some(exit));
            return;
        }
        let delay = backoff(&self.policy, n);
        self.restart_at = Some(now.checked_add(delay).unwrap_or_else(|| after(delay)));
        let msg = format!("{reason}; restarting in {:.1} s", delay.as_secs_f64());
        self.set_state(state, Some(msg), pid, Some(exit));
    }
}

/// `detail` without host paths or OS error numbers, for texts that leave the agent
/// (state reasons, start errors); the full text is logged where it arises.
fn path_free(detail: &str) -> String {
    super::redact::path_free(detail)
}

/// `initial * 2^(n-1)`, capped at `max`.
pub(crate) fn backoff(p: &Policy, n: u32) -> Duration {
    let exp = n.saturating_sub(1).min(20);
    p.backoff_initial
        .saturating_mul(1u32 << exp)
        .min(p.backoff_max)
}
