//! Game adapters: everything game-specific the agent does, behind one trait, so that
//! adding a game means one new adapter (plus its config model and simulator) and
//! nothing in the supervisor, telemetry or link changes.

pub mod a2s;
pub mod arma;

use std::path::PathBuf;
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
pub fn prepare(spec: &ServerSpec, servers_dir: &std::path::Path) -> Result<Prepared, AgentError> {
    match &spec.game {
        GameSpec::Arma3(arma) => arma::prepare(spec, arma, servers_dir),
    }
}
