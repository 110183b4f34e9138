//! Game adapters: everything game-specific the agent does, behind one trait, so that
//! adding a game means one new adapter (plus its config model and simulator) and
//! nothing in the supervisor, telemetry or link changes.

pub mod a2s;
pub mod arma;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use languard_shared::arma::config::TimeStampFormat;
use languard_shared::wire::ServerSpec;
use languard_shared::wire::request::AgentError;
use languard_shared::wire::spec::GameSpec;

use crate::supervisor::{GameHooks, LaunchPlan};

/// Where a running server's log lines come from: the newest file in `dir` whose name
/// starts with `prefix` and ends with `suffix` (both OS paths end up as files: the
/// supervisor sends the console to a file, the Windows server writes `.rpt` files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSourceSpec {
    /// Folder to watch.
    pub dir: PathBuf,
    /// File name prefix (may be empty).
    pub prefix: String,
    /// File name suffix, e.g. `.log` or `.rpt`.
    pub suffix: String,
    /// How the game prefixes each line with a time.
    pub timestamps: TimeStampFormat,
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

/// The game's admin interface (RCon for Arma 3, REST for Palworld), shared by the
/// supervisor (readiness, graceful stop, liveness) and the request handlers.
pub trait GameControl: GameHooks {
    /// Runs a raw admin command and returns the game's answer.
    fn command<'a>(
        &'a self,
        command: &'a str,
    ) -> crate::supervisor::HookFuture<'a, Result<String, AgentError>>;
    /// Takes the stream of the game's console messages (player joins, chat, …) once
    /// the control channel is connected; `None` when already taken.
    fn take_messages(&self) -> Option<tokio::sync::mpsc::Receiver<String>>;
    /// Forgets the connection (after the process ended) so the next start logs in anew.
    fn reset(&self);
    /// The hooks as the supervisor's trait object.
    fn as_hooks(self: Arc<Self>) -> Arc<dyn GameHooks>;
}

/// Turns a spec into a [`Prepared`] server for the game it names.
/// Every spec is range-checked ([`check_timing`]) and its environment checked
/// ([`check_environment`]) first.
pub fn prepare(spec: &ServerSpec, servers_dir: &Path) -> Result<Prepared, AgentError> {
    check_timing(spec)?;
    let prepared = match &spec.game {
        GameSpec::Arma3(arma) => arma::prepare(spec, arma, servers_dir)?,
    };
    check_environment(spec, &prepared.plan.cwd, &prepared.plan.executable)?;
    Ok(prepared)
}

/// Longest start or stop timeout and restart backoff a spec may ask for.
const MAX_TIMEOUT_SECS: u64 = 24 * 60 * 60;
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
