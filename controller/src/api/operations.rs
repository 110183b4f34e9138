//! Running servers: lifecycle, config push, RCon and player administration, all carried
//! out by the server's agent. Errors: 503 `host-offline` when the agent is not connected,
//! 504 when it does not answer in time, the agent's own refusal otherwise (with its
//! `code`).

use languard_shared::arma::rcon::parse::Player;
use languard_shared::wire::event::ServerStatus;
use languard_shared::wire::request::{BanTarget, Request, Response};
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use time::OffsetDateTime;
use uuid::Uuid;

use super::auth::NoContent;
use super::error::ApiResult;
use super::security::{AdminAuth, OperatorAuth, ViewerAuth};
use super::tags::ApiTags;
use crate::error::Error;
use crate::service::AppState;
use crate::service::lifecycle::Lifecycle;
use crate::store::ServerStatusRow;

/// Server operation endpoints.
pub struct OperationsApi(pub AppState);

/// A server's actual state.
#[derive(Debug, Object)]
pub struct ServerStatusView {
    /// The server.
    pub server_id: Uuid,
    /// `stopped`, `starting`, `running`, `stopping`, `crashed`, `hung`, `error`, or
    /// `unknown` while its host is offline (or never reported).
    pub state: String,
    /// Whether the host's agent is connected.
    pub host_online: bool,
    /// Process id.
    pub pid: Option<i64>,
    /// Since when (as the agent saw it).
    pub since: Option<OffsetDateTime>,
    /// Why (error, crash).
    pub detail: Option<String>,
    /// Exit code of the last process.
    pub exit_code: Option<i64>,
    /// Signal that ended the last process.
    pub exit_signal: Option<i64>,
    /// Automatic restarts since the last start by request.
    pub restarts: i64,
    /// The last state the agent reported (also while offline).
    pub last_reported_state: Option<String>,
}

impl ServerStatusView {
    /// From the stored report; `unknown` unless the host is online.
    pub fn from_row(server_id: Uuid, row: Option<&ServerStatusRow>, host_online: bool) -> Self {
        let last = row.map(|r| crate::store::server_state_str(r.state).to_owned());
        Self {
            server_id,
            state: match (&last, host_online) {
                (Some(s), true) => s.clone(),
                _ => "unknown".into(),
            },
            host_online,
            pid: row.and_then(|r| r.pid),
            since: row.map(|r| r.since),
            detail: row.and_then(|r| r.detail.clone()),
            exit_code: row.and_then(|r| r.exit_code),
            exit_signal: row.and_then(|r| r.exit_signal),
            restarts: row.map_or(0, |r| r.restarts),
            last_reported_state: last,
        }
    }

    fn from_agent(s: ServerStatus, server_id: Uuid) -> Self {
        let state = serde_json::to_value(s.state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| "unknown".into());
        Self {
            server_id,
            state: state.clone(),
            host_online: true,
            pid: s.pid.map(i64::from),
            since: OffsetDateTime::from_unix_timestamp_nanos(i128::from(s.since) * 1_000_000).ok(),
            detail: s.detail,
            exit_code: s.exit.and_then(|e| e.code).map(i64::from),
            exit_signal: s.exit.and_then(|e| e.signal).map(i64::from),
            restarts: i64::from(s.restarts),
            last_reported_state: Some(state),
        }
    }
}

/// A raw RCon command.
#[derive(Debug, Object)]
pub struct RconRequest {
    /// The command, e.g. `players` or `#lock`. One line.
    #[oai(validator(min_length = 1, max_length = 1000))]
    pub command: String,
}

/// The game's answer.
#[derive(Debug, Object)]
pub struct RconResponse {
    /// Text as the game sent it.
    pub output: String,
}

/// A chat message.
#[derive(Debug, Object)]
pub struct SayRequest {
    /// The text (one line).
    #[oai(validator(min_length = 1, max_length = 400))]
    pub message: String,
    /// A player number for a private message; omitted: everybody.
    pub player: Option<u32>,
}

/// Kick a player.
#[derive(Debug, Object)]
pub struct KickRequest {
    /// The player's number (see the player list).
    pub player: u32,
    /// Shown to the player.
    #[oai(default, validator(max_length = 200))]
    pub reason: String,
}

/// Ban a player: exactly one of `player`, `guid`, `ip`.
#[derive(Debug, Object)]
pub struct BanRequest {
    /// An online player's number.
    pub player: Option<u32>,
    /// A BattlEye GUID (32 hex digits).
    pub guid: Option<String>,
    /// An IP address.
    pub ip: Option<std::net::IpAddr>,
    /// Minutes; omitted: permanent.
    pub minutes: Option<u32>,
    /// Reason.
    #[oai(default, validator(max_length = 200))]
    pub reason: String,
}

/// A player online now.
#[derive(Debug, Object)]
pub struct PlayerView {
    /// BattlEye's player number.
    pub number: u32,
    /// Name.
    pub name: String,
    /// BattlEye GUID, when known.
    pub guid: Option<String>,
    /// GUID verified.
    pub verified: bool,
    /// Address.
    pub ip: String,
    /// Ping in ms, when measured.
    pub ping: Option<u32>,
    /// Still in the lobby.
    pub in_lobby: bool,
}

impl From<Player> for PlayerView {
    fn from(p: Player) -> Self {
        Self {
            number: p.number,
            name: p.name,
            guid: p.guid,
            verified: p.verified,
            ip: p.ip.to_string(),
            ping: p.ping,
            in_lobby: p.in_lobby,
        }
    }
}

impl OperationsApi {
    async fn lifecycle(
        &self,
        ctx: &crate::service::Ctx,
        id: Uuid,
        op: Lifecycle,
    ) -> ApiResult<Json<ServerStatusView>> {
        let s = self.0.server_lifecycle(ctx, id, op).await?;
        Ok(Json(ServerStatusView::from_agent(s, id)))
    }

    async fn done(
        &self,
        ctx: &crate::service::Ctx,
        id: Uuid,
        make: impl FnOnce(languard_shared::wire::ids::ServerId) -> Request,
    ) -> ApiResult<NoContent> {
        self.0.server_command(ctx, id, make).await?;
        Ok(NoContent::Ok)
    }
}

#[OpenApi(prefix_path = "/servers", tag = "ApiTags::Operations")]
impl OperationsApi {
    /// The server's actual state (`unknown` while its host is offline).
    #[oai(path = "/:id/status", method = "get", operation_id = "getServerStatus")]
    async fn status(&self, _auth: ViewerAuth, id: Path<Uuid>) -> ApiResult<Json<ServerStatusView>> {
        let server = self.0.get_server(id.0).await?;
        let rows = self
            .0
            .store
            .list_server_statuses(Some(server.host_id))
            .await
            .map_err(Error::from)?;
        let row = rows.iter().find(|r| r.server_id == id.0);
        Ok(Json(ServerStatusView::from_row(
            id.0,
            row,
            self.0.fleet.is_online(server.host_id),
        )))
    }

    /// Push the current config, then start the server.
    #[oai(path = "/:id/start", method = "post", operation_id = "startServer")]
    async fn start(&self, auth: OperatorAuth, id: Path<Uuid>) -> ApiResult<Json<ServerStatusView>> {
        self.lifecycle(&auth.0, id.0, Lifecycle::Start).await
    }

    /// Stop gracefully (`#shutdown`, then signals after the stop timeout).
    #[oai(path = "/:id/stop", method = "post", operation_id = "stopServer")]
    async fn stop(&self, auth: OperatorAuth, id: Path<Uuid>) -> ApiResult<Json<ServerStatusView>> {
        self.lifecycle(&auth.0, id.0, Lifecycle::Stop).await
    }

    /// Push the current config, stop, start.
    #[oai(path = "/:id/restart", method = "post", operation_id = "restartServer")]
    async fn restart(
        &self,
        auth: OperatorAuth,
        id: Path<Uuid>,
    ) -> ApiResult<Json<ServerStatusView>> {
        self.lifecycle(&auth.0, id.0, Lifecycle::Restart).await
    }

    /// Kill the game process at once.
    #[oai(path = "/:id/kill", method = "post", operation_id = "killServer")]
    async fn kill(&self, auth: OperatorAuth, id: Path<Uuid>) -> ApiResult<Json<ServerStatusView>> {
        self.lifecycle(&auth.0, id.0, Lifecycle::Kill).await
    }

    /// Send the current config to the agent (used at the next start).
    #[oai(
        path = "/:id/push-config",
        method = "post",
        operation_id = "pushServerConfig"
    )]
    async fn push_config(&self, auth: OperatorAuth, id: Path<Uuid>) -> ApiResult<NoContent> {
        self.0.push_config(&auth.0, id.0).await?;
        Ok(NoContent::Ok)
    }

    /// Run a raw RCon command.
    #[oai(path = "/:id/rcon", method = "post", operation_id = "runRconCommand")]
    async fn rcon(
        &self,
        auth: AdminAuth,
        id: Path<Uuid>,
        body: Json<RconRequest>,
    ) -> ApiResult<Json<RconResponse>> {
        let command = body.0.command;
        match self
            .0
            .server_command(&auth.0, id.0, |server| Request::Rcon { server, command })
            .await?
        {
            Response::Text(output) => Ok(Json(RconResponse { output })),
            other => Err(Error::internal(format!("unexpected agent answer {other:?}")).into()),
        }
    }

    /// Send a chat message to everybody or one player.
    #[oai(path = "/:id/say", method = "post", operation_id = "sayToPlayers")]
    async fn say(
        &self,
        auth: OperatorAuth,
        id: Path<Uuid>,
        body: Json<SayRequest>,
    ) -> ApiResult<NoContent> {
        let SayRequest { message, player } = body.0;
        self.done(&auth.0, id.0, |server| Request::Say {
            server,
            player,
            message,
        })
        .await
    }

    /// Kick a player.
    #[oai(path = "/:id/kick", method = "post", operation_id = "kickPlayer")]
    async fn kick(
        &self,
        auth: OperatorAuth,
        id: Path<Uuid>,
        body: Json<KickRequest>,
    ) -> ApiResult<NoContent> {
        let KickRequest { player, reason } = body.0;
        self.done(&auth.0, id.0, |server| Request::Kick {
            server,
            player,
            reason,
        })
        .await
    }

    /// Ban a player by number, GUID or IP.
    #[oai(path = "/:id/ban", method = "post", operation_id = "banPlayer")]
    async fn ban(
        &self,
        auth: OperatorAuth,
        id: Path<Uuid>,
        body: Json<BanRequest>,
    ) -> ApiResult<NoContent> {
        let BanRequest {
            player,
            guid,
            ip,
            minutes,
            reason,
        } = body.0;
        let target = match (player, guid, ip) {
            (Some(n), None, None) => BanTarget::Player(n),
            (None, Some(g), None) => BanTarget::Guid(g),
            (None, None, Some(ip)) => BanTarget::Ip(ip),
            _ => return Err(Error::field("player", "give exactly one of player, guid, ip").into()),
        };
        self.done(&auth.0, id.0, |server| Request::Ban {
            server,
            target,
            minutes,
            reason,
        })
        .await
    }

    /// The players online now, as the game reports them.
    #[oai(
        path = "/:id/players",
        method = "get",
        operation_id = "listOnlinePlayers"
    )]
    async fn players(&self, auth: ViewerAuth, id: Path<Uuid>) -> ApiResult<Json<Vec<PlayerView>>> {
        match self
            .0
            .server_command(&auth.0, id.0, |server| Request::Players { server })
            .await?
        {
            Response::Players(list) => Ok(Json(list.into_iter().map(Into::into).collect())),
            other => Err(Error::internal(format!("unexpected agent answer {other:?}")).into()),
        }
    }
}
