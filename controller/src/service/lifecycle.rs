//! Server lifecycle and admin operations routed to the server's agent (DESIGN.md,
//! "Ownership of state"): the controller owns desired state, the agent actual state.
//!
//! - [`App::agent_spec`] turns the stored server and its config sections into the
//!   self-contained spec the agent keeps on disk.
//! - Start/stop/restart/kill, config pushes, RCon and player operations go through the
//!   link ([`crate::fleet::registry::Registry::request`]) and return the agent's real
//!   answer, or a clear error when the host is offline or the agent is slow.
//! - [`App::reconcile`] runs on every agent connect: push every spec, start what should
//!   run, stop and forget what the controller no longer has.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use languard_shared::arma::config::{Arma3Profile, BasicConfig, ServerConfig as ArmaServerConfig};
use languard_shared::wire::event::{ServerState, ServerStatus};
use languard_shared::wire::ids::ServerId;
use languard_shared::wire::request::{AgentError, BanTarget, ErrorCode, Request, Response};
use languard_shared::wire::spec::{
    Arma3Launch, Arma3Spec, GameSpec, RestartMode, RestartPolicy, ServerSpec, Timing,
};
use serde_json::json;
use uuid::Uuid;

use super::configs::ConfigSectionKind as Kind;
use super::configs::{LaunchSection, RconSection};
use super::{App, Ctx};
use crate::error::{Error, Result};
use crate::fleet::registry::FleetError;
use crate::store::{Game, Server};

/// What the lifecycle endpoints do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// Push the current spec, then launch.
    Start,
    /// Graceful stop.
    Stop,
    /// Push the current spec, stop, start.
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
}

/// Maps an agent error code to the HTTP status the API answers with.
fn agent_status(code: ErrorCode) -> u16 {
    match code {
        ErrorCode::InvalidSpec | ErrorCode::ExecutableRefused => 422,
        ErrorCode::InvalidPath => 400,
        ErrorCode::UnknownServer => 404,
        ErrorCode::PortInUse | ErrorCode::NotRunning | ErrorCode::NotStopped => 409,
        ErrorCode::Timeout => 504,
        ErrorCode::HostOffline => 503,
        ErrorCode::Io | ErrorCode::Rcon | ErrorCode::Internal => 502,
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

/// A stored (already validated) section as its model; `None` when the section is absent.
fn parse<T: serde::de::DeserializeOwned>(v: Option<serde_json::Value>) -> Result<Option<T>> {
    v.map(|v| serde_json::from_value(v).map_err(Error::internal))
        .transpose()
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
        if server.game != Game::Arma3 {
            return Err(Error::Conflict(format!(
                "the agent cannot run {} servers yet",
                server.game
            )));
        }
        let (_, cur) = self.current_config(server.id).await?;
        let section = |k: Kind| -> Result<Option<serde_json::Value>> {
            Ok(cur.sections.get(k.as_str()).map(|(_, p)| p.merged()))
        };
        let server_cfg: ArmaServerConfig = parse(section(Kind::Server)?)?.unwrap_or_default();
        let basic: BasicConfig = parse(section(Kind::Basic)?)?.unwrap_or_default();
        let profile: Option<Arma3Profile> = parse(section(Kind::Profile)?)?;
        let launch: LaunchSection = parse(section(Kind::Launch)?)?.unwrap_or(LaunchSection {
            auto_init: true,
            ..LaunchSection::default()
        });
        let rcon: RconSection = parse(section(Kind::Rcon)?)?.unwrap_or_default();
        let Some(password) = rcon.password.clone().filter(|p| !p.is_empty()) else {
            return Err(Error::field(
                "rcon.password",
                "set an RCon password before starting: the agent controls the game over RCon",
            ));
        };
        let port = |v: i64, f: &str| {
            u16::try_from(v).map_err(|_| Error::field(f, "must be between 1 and 65535"))
        };
        let stored = crate::api::dto::RestartPolicy::from_stored(&server.restart_policy);
        let restart = RestartPolicy {
            mode: match stored.mode {
                crate::api::dto::RestartMode::Never => RestartMode::Never,
                crate::api::dto::RestartMode::OnFailure => RestartMode::OnCrash,
                crate::api::dto::RestartMode::Always => RestartMode::Always,
            },
            crash_loop_max: stored.max_restarts.max(1),
            crash_loop_window_secs: u64::from(stored.window_secs.max(1)),
            ..RestartPolicy::default()
        };
        Ok(ServerSpec {
            id: wire_id(server.id)?,
            name: server.name.clone(),
            game: GameSpec::Arma3(Box::new(Arma3Spec {
                executable: server.executable_path.clone(),
                game_port: port(server.game_port, "game_port")?,
                rcon_port: port(server.rcon_port, "rcon_port")?,
                rcon_password: password,
                max_ping: rcon.max_ping,
                restrict_rcon: rcon.restrict_rcon,
                server: server_cfg,
                basic,
                profile,
                launch: Arma3Launch {
                    profile_name: "server".into(),
                    mods: launch.mods,
                    server_mods: launch.server_mods,
                    limit_fps: launch.limit_fps,
                    auto_init: launch.auto_init,
                    load_mission_to_memory: launch.load_mission_to_memory,
                    extra: launch.extra,
                    log_source: None,
                },
            })),
            restart,
            timing: Timing::default(),
            environment: BTreeMap::new(),
        })
    }

    /// How long to wait for an answer to `request` (stops wait for the game).
    fn request_timeout(&self, request: &Request) -> Duration {
        let base = self.config.link.request_timeout_secs;
        let extra = match request {
            Request::Stop { .. } | Request::Restart { .. } => {
                Timing::default().stop_timeout_secs + 15
            }
            _ => 0,
        };
        Duration::from_secs(base + extra)
    }

    /// Sends one request to the host's agent.
    pub async fn ask_agent(&self, host_id: Uuid, request: Request) -> Result<Response> {
        let timeout = self.request_timeout(&request);
        Ok(self.fleet.request(host_id, request, timeout).await?)
    }

    /// Pushes the server's current spec to its agent.
    pub async fn push_spec(&self, server: &Server) -> Result<()> {
        let spec = self.agent_spec(server).await?;
        self.ask_agent(
            server.host_id,
            Request::ApplySpec {
                spec: Box::new(spec),
            },
        )
        .await?;
        Ok(())
    }

    /// Records whether the server should run.
    async fn set_desired_running(&self, id: Uuid, running: bool) -> Result<()> {
        self.store.set_desired_running(id, running).await?;
        Ok(())
    }

    /// Start, stop, restart or kill a server; the agent's resulting status.
    pub async fn server_lifecycle(
        &self,
        ctx: &Ctx,
        id: Uuid,
        op: Lifecycle,
    ) -> Result<ServerStatus> {
        let server = self.get_server(id).await?;
        let sid = wire_id(id)?;
        if matches!(op, Lifecycle::Start | Lifecycle::Restart) {
            self.push_spec(&server).await?;
        }
        let request = match op {
            Lifecycle::Start => Request::Start { server: sid },
            Lifecycle::Stop => Request::Stop { server: sid },
            Lifecycle::Restart => Request::Restart { server: sid },
            Lifecycle::Kill => Request::Kill { server: sid },
        };
        let result = self.ask_agent(server.host_id, request).await;
        self.audit(
            ctx,
            op.action(),
            "server",
            Some(id.to_string()),
            json!({"ok": result.is_ok()}),
        )
        .await;
        let status = match result? {
            Response::Status(s) => s,
            other => {
                return Err(Error::internal(format!(
                    "unexpected agent answer {other:?}"
                )));
            }
        };
        self.set_desired_running(id, matches!(op, Lifecycle::Start | Lifecycle::Restart))
            .await?;
        Ok(status)
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

    /// A game operation (RCon, say, kick, ban, players, …) on a server.
    pub async fn server_command(
        &self,
        ctx: &Ctx,
        id: Uuid,
        make: impl FnOnce(ServerId) -> Request,
    ) -> Result<Response> {
        let server = self.get_server(id).await?;
        let request = make(wire_id(id)?);
        let (action, details) = describe(&request);
        let result = self.ask_agent(server.host_id, request).await;
        if let Some(action) = action {
            let mut details = details;
            details["ok"] = json!(result.is_ok());
            self.audit(ctx, action, "server", Some(id.to_string()), details)
                .await;
        }
        result
    }

    /// Brings a freshly connected agent in line with the controller: every server of the
    /// host gets its current spec, servers that should run and do not are started, and
    /// servers the agent has but the controller does not are stopped and forgotten.
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
                if !matches!(
                    status.state,
                    ServerState::Stopped | ServerState::Crashed | ServerState::Error
                ) {
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
            if let Err(e) = self.push_spec(&server).await {
                tracing::warn!(%host_id, server = %server.id, error = %e, "Reconcile: spec not pushed.");
                continue;
            }
            let actual = inventory
                .iter()
                .find(|s| s.server.as_str() == server.id.to_string());
            let active = actual.is_some_and(|s| {
                matches!(
                    s.state,
                    ServerState::Starting | ServerState::Running | ServerState::Hung
                )
            });
            if server.desired_running && !active {
                let Ok(sid) = wire_id(server.id) else {
                    continue;
                };
                if let Err(e) = self
                    .ask_agent(host_id, Request::Start { server: sid })
                    .await
                {
                    tracing::warn!(%host_id, server = %server.id, error = %e, "Reconcile: start failed.");
                }
            } else if !server.desired_running && active {
                let Ok(sid) = wire_id(server.id) else {
                    continue;
                };
                if let Err(e) = self.ask_agent(host_id, Request::Stop { server: sid }).await {
                    tracing::warn!(%host_id, server = %server.id, error = %e, "Reconcile: stop failed.");
                }
            }
        }
    }
}

/// The audit action and details of a game operation (`None`: read-only, not audited).
fn describe(request: &Request) -> (Option<&'static str>, serde_json::Value) {
    match request {
        Request::Rcon { command, .. } => {
            // Only the command word: arguments may carry anything.
            let word = command.split_whitespace().next().unwrap_or("");
            (Some("server.rcon"), json!({"command": word}))
        }
        Request::Say { player, .. } => (Some("server.say"), json!({"player": player})),
        Request::Kick { player, reason, .. } => (
            Some("server.kick"),
            json!({"player": player, "reason": reason}),
        ),
        Request::Ban {
            target,
            minutes,
            reason,
            ..
        } => {
            let target = match target {
                BanTarget::Player(n) => json!({"player": n}),
                BanTarget::Guid(g) => json!({"guid": g}),
                BanTarget::Ip(ip) => json!({"ip": ip.to_string()}),
            };
            (
                Some("server.ban"),
                json!({"target": target, "minutes": minutes, "reason": reason}),
            )
        }
        Request::Unban { index, .. } => (Some("server.unban"), json!({"index": index})),
        Request::Lock { .. } => (Some("server.lock"), json!({})),
        Request::Unlock { .. } => (Some("server.unlock"), json!({})),
        Request::Mission { template, .. } => {
            (Some("server.mission"), json!({"template": template}))
        }
        Request::WriteFile { path, .. } => (Some("server.write_file"), json!({"path": path})),
        Request::DeleteFile { path, .. } => (Some("server.delete_file"), json!({"path": path})),
        _ => (None, json!({})),
    }
}
