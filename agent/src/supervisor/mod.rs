//! Process supervisor: one actor (tokio task) per game server that owns the server's
//! process — start, stop, kill, crash detection, restart policy, hang detection and
//! re-adoption after an agent restart.
//!
//! The supervisor is game-agnostic. A game adapter turns a server spec into a
//! [`LaunchPlan`] (executable, arguments, files to write, ports that must be free) and
//! provides [`GameHooks`] (ready check, graceful stop, liveness probe).
//!
//! # Decisions
//! - **One constructor, [`Supervisor::spawn`], always reconciles the run record first**
//!   (adopts a live process or removes a stale record). There is deliberately no way to
//!   create a supervisor that skips this, because skipping it is how a second copy of a
//!   server gets started next to an orphaned first one.
//! - **Console output goes to a file**, `console_dir/console_YYYY-MM-DD_HH-MM-SS.log`
//!   (UTC; `_2`, `_3`… appended when two starts fall in the same second), opened with
//!   `O_APPEND` and handed to the child as stdout and stderr. At each launch the oldest
//!   `console_*.log` files beyond [`SupervisorOptions::console_files_kept`] are deleted. A pipe would give the game
//!   SIGPIPE when the agent dies and could not be re-attached; a file survives both.
//! - **Environment**: the child gets a minimal environment, not the agent's: `PATH`,
//!   `HOME`, `USER`, `LOGNAME`, `LANG`, `LC_ALL`, `TZ`, `TMPDIR` when the agent has them
//!   (`PATH` defaults to `/usr/local/bin:/usr/bin:/bin`), plus [`LaunchPlan::env`]. The
//!   agent's environment can hold credentials (enrolment tokens, keys) that a game
//!   server — which loads third-party mods — must not see.
//! - **Allowed executables** ([`AllowList`]): the host's configuration names absolute
//!   paths or install folders; the requested path is canonicalised and must be one of
//!   them (or carry a game executable name below a folder entry), and neither the file
//!   nor the folders it could be swapped in may be writable by group/others or owned by
//!   anyone but root or the agent's user. The canonical path is what is spawned.
//! - **Game user** ([`RunAs`]): a root agent starts the game as the configured game user
//!   (setgid, supplementary groups cleared, setuid; `PR_SET_NO_NEW_PRIVS` is set on
//!   the agent process, see `run_as`), with `HOME`/`USER`/`LOGNAME` pointing at that
//!   user and the server folder; the server folder and the planned files are handed to
//!   that user before launch. A non-root agent starts games only when its configuration
//!   allows its own user; otherwise every start is refused before anything is written.
//! - **Path-free refusals**: [`StartError`] texts travel to API callers, so they never
//!   hold a host path or an OS error text (a caller could probe the host's file system
//!   with them); the details are logged by the agent.
//! - **Own process group** (`process_group(0)`, no `pre_exec`): the game outlives an
//!   agent crash, and stop/kill signal the whole group so helper processes die too.
//!   After the group leader exits, stragglers still in the group get SIGKILL.
//! - **Stop** = [`GameHooks::graceful_stop`], wait up to [`Policy::stop_timeout`], then
//!   SIGINT (what LinuxGSM and the Pelican egg send to Arma), [`Policy::signal_grace`],
//!   SIGTERM, `signal_grace`, SIGKILL. A graceful hook that *fails* (e.g. RCon down)
//!   escalates to SIGINT at once instead of waiting out the timeout.
//! - **Exit classification**: code 0 while running is a clean exit (state `Stopped`,
//!   restarted only by [`RestartMode::Always`]); any other code or a signal is a crash.
//!   A start timeout and a hang count as crashes; a `wait_ready` *error* (e.g. RCon
//!   password rejected) is a configuration problem: the process is stopped and the state
//!   becomes `Error` without restart.
//! - **Backoff** is `backoff_initial * 2^(k-1)` capped at `backoff_max`, where `k` is the
//!   number of crashes inside the crash-loop window, so it resets by itself once the
//!   server has been stable for a window. `crash_loop_max` crashes inside the window →
//!   `Error` "crash loop: N crashes in W s". `crash_loop_max = 0` disables the check.
//! - **Adoption**: a run record (`data_dir/<server_id>.run.json`) is written atomically
//!   after each spawn and removed whenever the process is gone. A record is adopted only
//!   if the PID is alive, not a zombie, its start time (sysinfo, seconds since the epoch)
//!   equals the recorded one (±1 s: Linux derives it from a boot time that can jitter by
//!   a second) and its name (comm, ≤ 15 bytes) or executable file name equals the
//!   recorded executable name. An adopted process is not our child: its exit is detected
//!   by polling every second (`kill(pid, 0)` plus the same identity check) and its exit
//!   status is unknown (treated as a crash). Its identity is re-checked before every
//!   signal, and the group is signalled only if its process group id is still its PID.
//! - **Dropping every [`SupervisorHandle`] detaches**: the actor ends and the process
//!   keeps running (no `kill_on_drop`), exactly as if the agent had died; the next
//!   [`Supervisor::spawn`] adopts it.
//! - **Plan validation**: refusals (not allowed, unsafe file, no usable game user, port
//!   taken, already running) are typed [`StartError`]s and change nothing. Anything that
//!   goes wrong from writing files on (path escaping the server folder, I/O errors, spawn
//!   failure) sets state `Error` with the reason and launches nothing. All file paths are
//!   validated before the first file is written. No symlink below the server folder is
//!   followed and hard-linked files are refused (`crate::fs_beneath`: the game owns it).
//!   The folder of a secret file (other than the server folder itself, e.g.
//!   `battleye/`) is made mode 0700. The game cannot be spawned with umask 077 without
//!   an `unsafe` `pre_exec`, which the workspace forbids; files BattlEye writes itself
//!   there (bans, logs) are protected by the folder mode instead.

mod actor;
mod allow;
pub(crate) mod files;
mod launch;
mod process;
mod redact;
mod run_as;

#[cfg(test)]
mod tests;

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};

pub use allow::AllowList;
pub use process::RunRecord;
pub use redact::path_free;
pub use run_as::{RunAs, RunAsError};

/// Everything needed to launch one server, produced by the game adapter.
#[derive(Clone, Debug)]
pub struct LaunchPlan {
    /// Safe folder name, already validated; must equal [`SupervisorOptions::server_id`].
    pub server_id: String,
    /// Absolute path; it must be allowed by the [`AllowList`].
    pub executable: PathBuf,
    pub args: Vec<String>,
    /// The server's folder; created if missing. All [`PlannedFile`]s live inside it.
    pub cwd: PathBuf,
    /// Added to the minimal environment (see module docs).
    pub env: Vec<(String, String)>,
    /// Rendered config files, written atomically before every launch.
    pub files: Vec<PlannedFile>,
    /// Ports that must be free before launch.
    pub ports: Vec<PortCheck>,
    /// Where `console_*.log` files go.
    pub console_dir: PathBuf,
}

/// A file to write before launch: relative to [`LaunchPlan::cwd`] (absolute paths and
/// `..` are refused), written with mode 0600 when secret (otherwise 0644).
pub use languard_shared::games::PlannedFile;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Udp,
    Tcp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Udp => "udp",
            Protocol::Tcp => "tcp",
        })
    }
}

/// A port that must be free: bound on 0.0.0.0 and 127.0.0.1 as a test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortCheck {
    pub port: u16,
    pub protocol: Protocol,
}

impl PortCheck {
    pub fn udp(port: u16) -> Self {
        Self {
            port,
            protocol: Protocol::Udp,
        }
    }
    pub fn tcp(port: u16) -> Self {
        Self {
            port,
            protocol: Protocol::Tcp,
        }
    }
}

/// A boxed future returned by [`GameHooks`] (keeps the trait object-safe without
/// `async_trait`).
pub type HookFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Game-specific callbacks. Implementations must be cheap to call repeatedly; the
/// supervisor applies its own timeouts around every call.
pub trait GameHooks: Send + Sync {
    /// Resolves once the server accepts control (e.g. RCon login succeeds). Called after
    /// spawn and after adoption; bounded by [`Policy::start_timeout`]. An `Err` means the
    /// server can never become ready with this configuration.
    fn wait_ready(&self) -> HookFuture<'_, Result<(), String>>;
    /// Asks the server to shut down (e.g. RCon `#shutdown`); the supervisor then waits
    /// for the exit and escalates to signals.
    fn graceful_stop(&self) -> HookFuture<'_, Result<(), String>>;
    /// Liveness (RCon keepalive, A2S answer). Bounded by [`Policy::probe_interval`].
    fn probe(&self) -> HookFuture<'_, bool>;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerState {
    Stopped,
    Starting,
    Running,
    Stopping,
    Crashed,
    Hung,
    Error,
}

impl fmt::Display for ServerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServerState::Stopped => "stopped",
            ServerState::Starting => "starting",
            ServerState::Running => "running",
            ServerState::Stopping => "stopping",
            ServerState::Crashed => "crashed",
            ServerState::Hung => "hung",
            ServerState::Error => "error",
        })
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RestartMode {
    Never,
    #[default]
    OnCrash,
    Always,
}

/// Restart and timing policy. Changes apply from the next decision on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub restart: RestartMode,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// This many restart-worthy exits inside `crash_loop_window` → `Error`. 0 = off.
    pub crash_loop_max: u32,
    pub crash_loop_window: Duration,
    /// How long to wait after `graceful_stop` before SIGINT.
    pub stop_timeout: Duration,
    /// Wait after SIGINT before SIGTERM, and after SIGTERM before SIGKILL.
    pub signal_grace: Duration,
    pub start_timeout: Duration,
    pub probe_interval: Duration,
    /// Consecutive failed probes → `Hung`. 0 disables probing.
    pub probe_failures_for_hung: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            restart: RestartMode::OnCrash,
            backoff_initial: Duration::from_secs(5),
            backoff_max: Duration::from_secs(300),
            crash_loop_max: 5,
            crash_loop_window: Duration::from_secs(600),
            stop_timeout: Duration::from_secs(30),
            signal_grace: Duration::from_secs(5),
            start_timeout: Duration::from_secs(180),
            probe_interval: Duration::from_secs(15),
            probe_failures_for_hung: 4,
        }
    }
}

/// How a process ended. Both `None`: unknown (an adopted process is not our child).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

impl fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.code, self.signal) {
            (Some(c), _) => write!(f, "exit code {c}"),
            (None, Some(s)) => write!(f, "signal {s}"),
            (None, None) => f.write_str("unknown exit status"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SupervisorEvent {
    State {
        state: ServerState,
        reason: Option<String>,
        /// The process the state refers to (for `Crashed`: the one that died).
        pid: Option<u32>,
        exit: Option<ExitInfo>,
    },
    /// A new process was launched; the telemetry tailer should follow `console_file`.
    Spawned { pid: u32, console_file: PathBuf },
    /// A process from a previous agent run was adopted.
    Adopted { pid: u32, console_file: PathBuf },
}

/// Latest state, readable without awaiting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub state: ServerState,
    pub reason: Option<String>,
    /// The live process, if any.
    pub pid: Option<u32>,
    /// Console file of the live process, if any.
    pub console_file: Option<PathBuf>,
}

/// Why a start was refused or failed. The texts reach API callers: none holds a host
/// path or an OS error text (see the module docs).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StartError {
    #[error("no launch plan has been set")]
    NoPlan,
    #[error("launch plan is for server {plan}, supervisor is for {supervisor}")]
    WrongServer { plan: String, supervisor: String },
    #[error("server is already {0}")]
    AlreadyRunning(ServerState),
    /// The host's configuration allows no executable at all.
    #[error(
        "no allowed executables are configured on this host: the agent's \
         allowed_executables must name the game's executable or install folder"
    )]
    NoAllowedExecutables,
    /// Missing, not a file, or outside every allowed place (deliberately one answer).
    #[error("executable is not allowed or missing (see the agent's allowed_executables)")]
    NotAllowed,
    /// Inside an allowed place but unsafe or unusable.
    #[error("executable cannot be started: {reason}")]
    Executable { reason: String },
    /// Games cannot run under a safe user on this host.
    #[error("games cannot be started on this host: {0}")]
    RunAs(String),
    #[error("port {port}/{protocol} is in use")]
    PortInUse { port: u16, protocol: Protocol },
    /// Writing the planned files failed; state is now `Error`.
    #[error("writing files failed: {0}")]
    Files(String),
    /// Console file or spawn failed; state is now `Error`.
    #[error("launch failed: {0}")]
    Launch(String),
    #[error("supervisor is gone")]
    Gone,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("supervisor is gone")]
pub struct SupervisorGone;

/// Outcome of reconciling the run record when a supervisor is created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Adoption {
    NoRecord,
    Adopted {
        pid: u32,
    },
    /// The record did not describe a live process of ours; it was removed.
    Stale {
        reason: String,
    },
}

/// Construction parameters of one server's supervisor.
#[derive(Clone)]
pub struct SupervisorOptions {
    pub server_id: String,
    /// Run records live here (`<server_id>.run.json`).
    pub data_dir: PathBuf,
    /// What may be started (the host's configuration).
    pub allowed_executables: AllowList,
    /// Who the game runs as.
    pub run_as: RunAs,
    pub policy: Policy,
    pub plan: Option<LaunchPlan>,
    pub hooks: Arc<dyn GameHooks>,
    /// At each launch, older `console_*.log` files beyond this many (the new one
    /// included) are deleted. 0 keeps them all.
    pub console_files_kept: usize,
}

impl SupervisorOptions {
    pub fn new(
        server_id: impl Into<String>,
        data_dir: impl Into<PathBuf>,
        hooks: Arc<dyn GameHooks>,
        allowed_executables: AllowList,
        run_as: RunAs,
    ) -> Self {
        Self {
            server_id: server_id.into(),
            data_dir: data_dir.into(),
            allowed_executables,
            run_as,
            policy: Policy::default(),
            plan: None,
            hooks,
            console_files_kept: 0,
        }
    }
}

pub(crate) enum Command {
    Start(oneshot::Sender<Result<(), StartError>>),
    Stop {
        force: bool,
        reply: oneshot::Sender<()>,
    },
    SetPlan(Box<LaunchPlan>),
    SetPolicy(Policy),
    SetHooks(Arc<dyn GameHooks>),
    /// Plan, policy and hooks at once: no restart can fire between them.
    Reconfigure {
        plan: Box<LaunchPlan>,
        policy: Policy,
        hooks: Arc<dyn GameHooks>,
    },
}

/// Entry point; see [`Supervisor::spawn`].
pub struct Supervisor;

impl Supervisor {
    /// Creates the supervisor actor for one server. It first reconciles the server's run
    /// record: a live process matching it (PID + start time + name) is adopted (state
    /// `Starting` until `wait_ready`, then `Running`); a stale record is removed.
    pub async fn spawn(
        opts: SupervisorOptions,
    ) -> (
        SupervisorHandle,
        mpsc::UnboundedReceiver<SupervisorEvent>,
        Adoption,
    ) {
        let (cmd_tx, cmd_rx) = mpsc::channel(16);
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let (st_tx, st_rx) = watch::channel(Status {
            state: ServerState::Stopped,
            reason: None,
            pid: None,
            console_file: None,
        });
        let mut actor = actor::Actor::new(opts, cmd_rx, ev_tx, st_tx);
        let adoption = actor.adopt().await;
        tokio::spawn(actor.run());
        (
            SupervisorHandle {
                tx: cmd_tx,
                status: st_rx,
            },
            ev_rx,
            adoption,
        )
    }
}

/// Cheap, cloneable handle. When the last handle is dropped the actor ends and the
/// process is left running (to be adopted later).
#[derive(Clone)]
pub struct SupervisorHandle {
    tx: mpsc::Sender<Command>,
    status: watch::Receiver<Status>,
}

impl SupervisorHandle {
    /// Validates, writes files and spawns. Returns once the process is spawned (state
    /// `Starting`); readiness is reported through events / [`Self::state`].
    pub async fn start(&self) -> Result<(), StartError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Start(reply))
            .await
            .map_err(|_| StartError::Gone)?;
        rx.await.map_err(|_| StartError::Gone)?
    }

    /// Graceful stop with escalation; returns when the process is gone (state `Stopped`).
    /// Also cancels a pending restart and acknowledges `Crashed`/`Error` as `Stopped`.
    pub async fn stop(&self) -> Result<(), SupervisorGone> {
        self.stop_inner(false).await
    }

    /// SIGKILL to the process group at once; returns when the process is gone.
    pub async fn kill(&self) -> Result<(), SupervisorGone> {
        self.stop_inner(true).await
    }

    /// `stop` then `start`.
    pub async fn restart(&self) -> Result<(), StartError> {
        self.stop().await.map_err(|_| StartError::Gone)?;
        self.start().await
    }

    async fn stop_inner(&self, force: bool) -> Result<(), SupervisorGone> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Stop { force, reply })
            .await
            .map_err(|_| SupervisorGone)?;
        rx.await.map_err(|_| SupervisorGone)
    }

    /// Used from the next start on (a running process is not touched).
    pub async fn set_plan(&self, plan: LaunchPlan) -> Result<(), SupervisorGone> {
        self.tx
            .send(Command::SetPlan(Box::new(plan)))
            .await
            .map_err(|_| SupervisorGone)
    }

    pub async fn set_policy(&self, policy: Policy) -> Result<(), SupervisorGone> {
        self.tx
            .send(Command::SetPolicy(policy))
            .await
            .map_err(|_| SupervisorGone)
    }

    /// Replaces plan, policy and hooks in one step (see [`Command::Reconfigure`]).
    pub async fn reconfigure(
        &self,
        plan: LaunchPlan,
        policy: Policy,
        hooks: Arc<dyn GameHooks>,
    ) -> Result<(), SupervisorGone> {
        self.tx
            .send(Command::Reconfigure {
                plan: Box::new(plan),
                policy,
                hooks,
            })
            .await
            .map_err(|_| SupervisorGone)
    }

    pub async fn set_hooks(&self, hooks: Arc<dyn GameHooks>) -> Result<(), SupervisorGone> {
        self.tx
            .send(Command::SetHooks(hooks))
            .await
            .map_err(|_| SupervisorGone)
    }

    pub fn state(&self) -> ServerState {
        self.status.borrow().state
    }

    pub fn status(&self) -> Status {
        self.status.borrow().clone()
    }

    /// A receiver that observes every state change (latest value semantics).
    pub fn watch(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }
}
