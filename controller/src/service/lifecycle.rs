//! Server lifecycle routed to the server's agent (DESIGN.md, "Ownership of state"): the
//! controller owns desired state, the agent actual state.
//!
//! - [`App::agent_spec`] turns the stored server and its config sections into the
//!   self-contained spec the agent keeps on disk (the game part from the registry).
//! - Start/stop/restart/kill and config pushes go through the link
//!   ([`crate::fleet::registry::Registry::request`]) and return the agent's real answer,
//!   or a clear error when the host is offline or the agent is slow. Whether the server
//!   should run is recorded before the agent is asked, so a link that drops mid-request
//!   still leaves the intent for the next reconcile.
//! - [`App::reconcile`] runs on every agent connect: push every spec, start what should
//!   run, stop and forget what the controller no longer has.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use languard_shared::wire::event::ServerStatus;
use languard_shared::wire::ids::ServerId;
use languard_shared::wire::request::{AgentError, ErrorCode, Request, Response};
use languard_shared::wire::spec::{ServerSpec, Timing};
use serde_json::json;
use uuid::Uuid;

use super::{App, Ctx};
use crate::error::{Error, Result};
use crate::fleet::registry::FleetError;
use crate::games::{self, GameKind};
use crate::store::Server;

/// What the lifecycle endpoints do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// Launch with the current spec.
    Start,
    /// Graceful stop.
    Stop,
    /// Stop, then start with the current spec.
    Restart,
    /// Kill at once.
    Kill,
}

impl Lifecycle {
    fn action(self) -> &'static str {
        match self {
            Lifecycle::Start => "server.start",
            Lifecycle::Stop => "server.stop",
            Lifecycle::Restart => "server.restart",
            Lifecycle::Kill => "server.kill",
        }
    }

    /// Whether the server should run afterwards.
    fn runs(self) -> bool {
        matches!(self, Lifecycle::Start | Lifecycle::Restart)
    }
}

/// Maps an agent error code to the HTTP status the API answers with.
fn agent_status(code: ErrorCode) -> u16 {
    match code {
        ErrorCode::InvalidSpec | ErrorCode::ExecutableRefused | ErrorCode::Unsupported => 422,
        ErrorCode::InvalidPath => 400,
        ErrorCode::UnknownServer => 404,
        ErrorCode::PortInUse | ErrorCode::NotRunning | ErrorCode::NotStopped => 409,
        ErrorCode::Timeout => 504,
        ErrorCode::HostOffline => 503,
        ErrorCode::Io | ErrorCode::Game | ErrorCode::Internal => 502,
    }
}

fn code_name(code: ErrorCode) -> String {
    serde_json::to_value(code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "internal".into())
}

impl From<FleetError> for Error {
    fn from(e: FleetError) -> Self {
        match e {
            FleetError::HostOffline => Error::HostOffline,
            FleetError::Timeout(s) => Error::AgentTimeout(s),
            FleetError::Agent(AgentError { code, message }) => Error::Agent {
                status: agent_status(code),
                code: code_name(code),
                message,
            },
        }
    }
}

/// The wire id of a controller server: its UUID.
pub fn wire_id(id: Uuid) -> Result<ServerId> {
    ServerId::new(id.to_string()).map_err(Error::internal)
}

impl App {
    /// The agent's view of a server: everything to render files, launch and supervise,
    /// secrets included (the link is mutually authenticated TLS; the agent stores specs
    /// 0600).
    pub async fn agent_spec(&self, server: &Server) -> Result<ServerSpec> {
        let game = games::of(server)?;
        let (_, cur) = self.current_config(server.id).await?;
        Ok(ServerSpec {
            id: wire_id(server.id)?,
            name: server.name.clone(),
            game: game.spec(server, &cur.merged())?,
            restart: super::restart::from_stored(&server.restart_policy),
            timing: Timing::default(),
            environment: BTreeMap::new(),
        })
    }

    /// How long to wait for an answer to `request` (stops wait for the game).
    fn request_timeout(&self, request: &Request) -> Duration {
        use languard_shared::wire::Operation;
        let base = self.config.link.request_timeout_secs;
        let extra = match request {
            Request::Stop { .. } | Request::Restart { .. } => {
                Timing::default().stop_timeout_secs + 15
            }
            Request::Operate {
                operation: Operation::Shutdown { countdown_secs, .. },
                ..
            } => u64::from(*countdown_secs) + Timing::default().stop_timeout_secs + 15,
            _ => 0,
        };
        Duration::from_secs(base + extra)
    }

    /// Sends one request to the host's agent.
    pub async fn ask_agent(&self, host_id: Uuid, request: Request) -> Result<Response> {
        let timeout = self.request_timeout(&request);
        Ok(self.fleet.request(host_id, request, timeout).await?)
    }

    /// Refuses, before anything is sent, a server whose game the host's agent does not
    /// run (an agent that advertises no games predates the list and is not checked).
    pub(crate) fn check_agent_runs(&self, host_id: Uuid, game: GameKind) -> Result<()> {
        let Some(offered) = self.fleet.games(host_id) else {
            return Err(Error::HostOffline);
        };
        if offered.contains(&game) {
            return Ok(());
        }
        let mut names: Vec<&str> = offered.iter().map(|g| g.title()).collect();
        if names.is_empty() {
            names.push("none");
        }
        Err(Error::Unsupported {
            problem: "unsupported-game",
            detail: format!(
                "the agent of this host does not run {} servers (it runs {})",
                game.title(),
                names.join(", ")
            ),
        })
    }

    /// Pushes the server's current spec to its agent.
    pub async fn push_spec(&self, server: &Server) -> Result<()> {
        let spec = self.agent_spec(server).await?;
        self.check_agent_runs(server.host_id, spec.game.kind())?;
        self.ask_agent(
            server.host_id,
            Request::ApplySpec {
                spec: Box::new(spec),
            },
        )
        .await?;
        Ok(())
    }

    /// Records whether the server should run: the controller's desired state, its own
    /// column (no spec revision bump, no port re-claim).
    pub(crate) async fn set_desired_running(&self, id: Uuid, running: bool) -> Result<()> {
        Ok(self.store.set_desired_running(id, running).await?)
    }

    /// Start, stop, restart or kill a server; the agent's resulting status.
    ///
    /// Everything the controller can check (the game, the config, the link, the games
    /// the agent runs) is checked first: a refusal there changes nothing. Then the
    /// desired state is recorded and the agent asked; a start the agent refuses outright
    /// records "should not run" again, while a timeout or a dropped link keeps the intent
    /// (the agent may still act; reconcile finishes it).
    pub async fn server_lifecycle(
        &self,
        ctx: &Ctx,
        id: Uuid,
        op: Lifecycle,
    ) -> Result<ServerStatus> {
        let server = self.get_server(id).await?;
        let server_id = wire_id(id)?;
        let request = match op {
            Lifecycle::Start | Lifecycle::Restart => {
                let spec = Some(Box::new(self.agent_spec(&server).await?));
                if let Some(s) = &spec {
                    self.check_agent_runs(server.host_id, s.game.kind())?;
                }
                if op == Lifecycle::Start {
                    Request::Start {
                        server: server_id,
                        spec,
                    }
                } else {
                    Request::Restart {
                        server: server_id,
                        spec,
                    }
                }
            }
            Lifecycle::Stop => Request::Stop { server: server_id },
            Lifecycle::Kill => Request::Kill { server: server_id },
        };
        if !self.fleet.is_online(server.host_id) {
            return Err(Error::HostOffline);
        }
        let wanted = op.runs();
        self.set_desired_running(id, wanted).await?;
        let result = self.ask_agent(server.host_id, request).await;
        self.audit(
            ctx,
            op.action(),
            "server",
            Some(id.to_string()),
            json!({"ok": result.is_ok()}),
        )
        .await;
        match result {
            Ok(Response::Status(s)) => Ok(s),
            Ok(other) => Err(Error::internal(format!(
                "unexpected agent answer {other:?}"
            ))),
            Err(e @ Error::Agent { .. }) => {
                if wanted && !server.desired_running {
                    self.set_desired_running(id, false).await?;
                }
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// Pushes the current config to the agent (it takes effect at the next start).
    pub async fn push_config(&self, ctx: &Ctx, id: Uuid) -> Result<()> {
        let server = self.get_server(id).await?;
        let r = self.push_spec(&server).await;
        self.audit(
            ctx,
            "server.push_config",
            "server",
            Some(id.to_string()),
            json!({"ok": r.is_ok()}),
        )
        .await;
        r
    }

    /// Brings a freshly connected agent in line with the controller: servers that should
    /// run and do not are started with their current spec (one request), every other
    /// server of the host gets its current spec, and servers the agent has but the
    /// controller does not are stopped and forgotten.
    pub async fn reconcile(&self, host_id: Uuid, inventory: Vec<ServerStatus>) {
        let servers = match self.store.list_servers_on_host(host_id).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(%host_id, error = %e, "Reconcile: cannot list servers.");
                return;
            }
        };
        let ours: HashSet<String> = servers.iter().map(|s| s.id.to_string()).collect();
        for status in &inventory {
            if !ours.contains(status.server.as_str()) {
                tracing::info!(%host_id, server = %status.server, "Reconcile: the agent runs a server the controller no longer has; stopping and forgetting it.");
                if !status.state.is_down() {
                    let _ = self
                        .ask_agent(
                            host_id,
                            Request::Stop {
                                server: status.server.clone(),
                            },
                        )
                        .await;
                }
                let _ = self
                    .ask_agent(
                        host_id,
                        Request::RemoveServer {
                            server: status.server.clone(),
                        },
                    )
                    .await;
            }
        }
        for server in servers {
            let spec = match self.agent_spec(&server).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(%host_id, server = %server.id, error = %e, "Reconcile: no spec for the server.");
                    continue;
                }
            };
            if let Err(e) = self.check_agent_runs(host_id, spec.game.kind()) {
                tracing::warn!(%host_id, server = %server.id, error = %e, "Reconcile: spec not pushed.");
                continue;
            }
            let active = inventory
                .iter()
                .find(|s| s.server == spec.id)
                .is_some_and(|s| s.state.is_active());
            let sid = spec.id.clone();
            let request = if server.desired_running && !active {
                Request::Start {
                    server: sid.clone(),
                    spec: Some(Box::new(spec)),
                }
            } else {
                Request::ApplySpec {
                    spec: Box::new(spec),
                }
            };
            if let Err(e) = self.ask_agent(host_id, request).await {
                tracing::warn!(%host_id, server = %server.id, error = %e, "Reconcile: spec not applied or start failed.");
                continue;
            }
            if !server.desired_running
                && active
                && let Err(e) = self.ask_agent(host_id, Request::Stop { server: sid }).await
            {
                tracing::warn!(%host_id, server = %server.id, error = %e, "Reconcile: stop failed.");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_codes_map_to_statuses() {
        assert_eq!(agent_status(ErrorCode::Unsupported), 422);
        assert_eq!(agent_status(ErrorCode::Game), 502);
        assert_eq!(agent_status(ErrorCode::PortInUse), 409);
        assert_eq!(code_name(ErrorCode::NotRunning), "not_running");
    }
}
