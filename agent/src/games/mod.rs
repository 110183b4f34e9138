//! Game adapters: everything game-specific the agent does, behind one trait
//! ([`GameAdapter`]), registered in one place ([`REGISTRY`]). The supervisor, the
//! outbox, the link and the telemetry know no game: they get a [`LaunchPlan`], a log
//! source with the game's line parser, and a [`GameControl`] from the adapter.
//!
//! Adding a game:
//! 1. a module `games/<game>/` with a type implementing [`GameAdapter`]: it turns the
//!    game's [`GameSpec`](languard_shared::games::GameSpec) variant into files, argv and ports (from the shared plan of
//!    that game), names its log ([`LogSourceSpec`], with a [`LineParser`]) and its
//!    executable names, and builds its [`GameControl`] (readiness, graceful stop,
//!    liveness, the [`Operation`]s its [`GameKind`] supports, player tracking);
//! 2. one line in [`REGISTRY`].
//!
//! Nothing else in the agent changes (the compiler lists the match arms in
//! `languard_shared::games` that the new spec variant needs).

pub mod arma;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use languard_shared::games::GameKind;
use languard_shared::wire::request::{AgentError, ErrorCode};
use languard_shared::wire::{Operation, PlayerEvent, Response, ServerSpec};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::supervisor::{GameHooks, HookFuture, LaunchPlan};
use crate::telemetry::tail::{LineParser, LogFilePattern};

/// Folder (inside the server folder) the supervisor writes the console capture into,
/// for games that log to their console.
pub const CONSOLE_DIR: &str = "console";

/// One game's part of the agent.
pub trait GameAdapter: Send + Sync {
    /// The game.
    fn kind(&self) -> GameKind;
    /// Executable file names of this game: what an install-folder entry of the
    /// agent's `allowed_executables` allows below that folder.
    fn default_executables(&self) -> &'static [&'static str];
    /// Turns a spec of this game into a [`Prepared`] server living in `server_dir`:
    /// the files, argv and ports to check ([`LaunchPlan`]), the log and the control.
    /// Called only with specs whose [`GameSpec`](languard_shared::games::GameSpec) is this adapter's game; refuses
    /// (`InvalidSpec`) what the game cannot run, naming the field.
    fn prepare(&self, spec: &ServerSpec, server_dir: &Path) -> Result<Prepared, AgentError>;
}

/// Every game this agent runs, keyed by [`GameAdapter::kind`]: the one place a game is
/// registered.
pub static REGISTRY: &[&dyn GameAdapter] = &[&arma::Arma3Adapter];

/// The adapter of `kind`, if this agent has one.
pub fn adapter(kind: GameKind) -> Option<&'static dyn GameAdapter> {
    REGISTRY.iter().copied().find(|a| a.kind() == kind)
}

/// The games this agent has adapters for (sent in the link's hello).
pub fn kinds() -> Vec<GameKind> {
    REGISTRY.iter().map(|a| a.kind()).collect()
}

/// The executable names an install-folder entry of `allowed_executables` allows: every
/// adapter's names, in registry order, without duplicates.
pub fn default_executables() -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for name in REGISTRY.iter().flat_map(|a| a.default_executables()) {
        if !out.iter().any(|n| n == name) {
            out.push((*name).to_owned());
        }
    }
    out
}

/// Where a running server's log lines come from and how to read them.
#[derive(Debug, Clone)]
pub struct LogSourceSpec {
    /// Folder to watch (absolute).
    pub dir: PathBuf,
    /// Which files in it are the log, and which is newest.
    pub pattern: LogFilePattern,
    /// The game's line format.
    pub parser: Arc<dyn LineParser>,
}

/// Sources are equal when they read the same files the same way; parsers are plain
/// configuration values, so their `Debug` text identifies them.
impl PartialEq for LogSourceSpec {
    fn eq(&self, other: &Self) -> bool {
        self.dir == other.dir
            && self.pattern == other.pattern
            && format!("{:?}", self.parser) == format!("{:?}", other.parser)
    }
}

/// What an adapter makes of a spec: how to launch, how to watch, how to control.
pub struct Prepared {
    /// Files, argv, ports for the supervisor.
    pub plan: LaunchPlan,
    /// The log to tail.
    pub log: LogSourceSpec,
    /// The game's control channel, also the supervisor's hooks.
    pub control: Arc<dyn GameControl>,
}

/// What player tracking needs from the agent.
pub struct PlayerFeed {
    /// Time between roster polls (the spec's `timing.players_poll_secs`).
    pub poll_interval: Duration,
    /// Whether the server's process is running now: polls are skipped otherwise.
    pub running: Arc<dyn Fn() -> bool + Send + Sync>,
    /// Where player activity goes, in the order the game reported it.
    pub events: mpsc::Sender<PlayerEvent>,
}

/// The game's admin interface (RCon for Arma 3, REST for Palworld), shared by the
/// supervisor (readiness, graceful stop, liveness) and the request handlers.
pub trait GameControl: GameHooks {
    /// Runs one admin operation. The agent has already checked that the game supports
    /// it ([`GameKind::supports`]) and that its texts hold no control character;
    /// checks of the game's own (key formats, one-word names) happen here, before
    /// anything is sent.
    fn operate<'a>(
        &'a self,
        operation: &'a Operation,
    ) -> HookFuture<'a, Result<Response, AgentError>>;
    /// Starts following who is on the server; the task ends when `feed.events` is
    /// closed. `None` when tracking already runs on this control.
    fn track_players(self: Arc<Self>, feed: PlayerFeed) -> Option<JoinHandle<()>>;
    /// Forgets the connection (after the process ended) so the next start logs in anew.
    fn reset(&self);
    /// The hooks as the supervisor's trait object.
    fn as_hooks(self: Arc<Self>) -> Arc<dyn GameHooks>;
}

/// The answer for an operation a game does not have.
pub fn unsupported(kind: GameKind, operation: &Operation) -> AgentError {
    AgentError::new(
        ErrorCode::Unsupported,
        format!("{} has no {} operation", kind.title(), operation.kind()),
    )
}

/// Turns a spec into a [`Prepared`] server for the game it names.
/// Every spec is range-checked ([`check_timing`]) and its environment checked
/// ([`check_environment`]) first.
pub fn prepare(spec: &ServerSpec, servers_dir: &Path) -> Result<Prepared, AgentError> {
    check_timing(spec)?;
    let kind = spec.game.kind();
    let Some(adapter) = adapter(kind) else {
        return Err(AgentError::new(
            ErrorCode::Unsupported,
            format!("this agent cannot run {} servers", kind.title()),
        ));
    };
    let prepared = adapter.prepare(spec, &servers_dir.join(spec.id.as_str()))?;
    check_environment(spec, &prepared.plan.cwd, &prepared.plan.executable)?;
    Ok(prepared)
}

/// Longest start or stop timeout and restart backoff a spec may ask for.
pub const MAX_TIMEOUT_SECS: u64 = 24 * 60 * 60;
/// Longest probe or players poll interval.
const MAX_INTERVAL_SECS: u64 = 60 * 60;
/// Loader variables refused in `environment`: they would make the dynamic loader run
/// code the executable allow-list never checked. `LD_LIBRARY_PATH` is the exception
/// (Arma on Linux needs it for `steamclient.so`), see [`check_environment`].
const REFUSED_ENV: &[&str] = &[
    "GCONV_PATH",
    "GETCONF_DIR",
    "HOSTALIASES",
    "LOCALDOMAIN",
    "LOCPATH",
    "MALLOC_TRACE",
    "NLSPATH",
    "RESOLV_HOST_CONF",
    "RES_OPTIONS",
];

fn invalid(message: String) -> AgentError {
    AgentError::new(
        languard_shared::wire::request::ErrorCode::InvalidSpec,
        message,
    )
}

fn check_range(field: &str, value: u64, min: u64, max: u64, unit: &str) -> Result<(), AgentError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(invalid(format!(
            "{field} must be between {min} and {max} {unit}, got {value}"
        )))
    }
}

/// Range-checks the spec's timing and restart values so that no deadline computed
/// from them can overflow (and none is absurd): timeouts 1 s..=1 day, backoff
/// ≤ 1 day, probe and players poll intervals 1 s..=1 h, crash-loop window ≤ 1 day.
pub fn check_timing(spec: &ServerSpec) -> Result<(), AgentError> {
    let t = &spec.timing;
    check_range(
        "timing.start_timeout_secs",
        t.start_timeout_secs,
        1,
        MAX_TIMEOUT_SECS,
        "s",
    )?;
    check_range(
        "timing.stop_timeout_secs",
        t.stop_timeout_secs,
        1,
        MAX_TIMEOUT_SECS,
        "s",
    )?;
    check_range(
        "timing.probe_interval_secs",
        t.probe_interval_secs,
        1,
        MAX_INTERVAL_SECS,
        "s",
    )?;
    check_range(
        "timing.players_poll_secs",
        t.players_poll_secs,
        1,
        MAX_INTERVAL_SECS,
        "s",
    )?;
    let r = &spec.restart;
    let max_ms = MAX_TIMEOUT_SECS * 1000;
    check_range(
        "restart.backoff_initial_ms",
        r.backoff_initial_ms,
        0,
        max_ms,
        "ms",
    )?;
    check_range("restart.backoff_max_ms", r.backoff_max_ms, 0, max_ms, "ms")?;
    check_range(
        "restart.crash_loop_window_secs",
        r.crash_loop_window_secs,
        0,
        MAX_TIMEOUT_SECS,
        "s",
    )?;
    Ok(())
}

/// Checks `spec.environment`: names are `[A-Za-z_][A-Za-z0-9_]*`, values hold no NUL.
/// Loader variables (`LD_*`, and the glibc ones in `REFUSED_ENV`) are refused, since
/// they would load code that bypasses the executable allow-list — except
/// `LD_LIBRARY_PATH`, which Arma on Linux needs for `steamclient.so`; its entries must
/// be absolute paths without `..` inside the server folder or the executable's folder.
pub fn check_environment(
    spec: &ServerSpec,
    server_dir: &Path,
    executable: &Path,
) -> Result<(), AgentError> {
    for (name, value) in &spec.environment {
        let mut chars = name.chars();
        let well_formed = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !well_formed {
            return Err(invalid(format!(
                "environment variable name {name:?} must match [A-Za-z_][A-Za-z0-9_]*"
            )));
        }
        if value.contains('\0') {
            return Err(invalid(format!(
                "environment variable {name} contains a NUL character"
            )));
        }
        if name == "LD_LIBRARY_PATH" {
            let exe_dir = executable.parent().unwrap_or(Path::new("/"));
            for entry in value.split(':') {
                let path = Path::new(entry);
                let clean = path.is_absolute()
                    && !path
                        .components()
                        .any(|c| matches!(c, std::path::Component::ParentDir));
                if !clean || !(path.starts_with(server_dir) || path.starts_with(exe_dir)) {
                    return Err(invalid(format!(
                        "LD_LIBRARY_PATH entry {entry:?} must be an absolute path inside \
                         the server folder or the executable's folder"
                    )));
                }
            }
        } else if name.starts_with("LD_") || REFUSED_ENV.contains(&name.as_str()) {
            return Err(invalid(format!(
                "environment variable {name} is not allowed: it changes what the loader runs"
            )));
        }
    }
    Ok(())
}
