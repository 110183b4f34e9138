//! Running servers: lifecycle, config push, players and the game's admin operations, all
//! carried out by the server's agent. Errors: 422 `unsupported-operation` when the
//! server's game does not have the operation (checked before anything is sent), 503
//! `host-offline` when the agent is not connected, 504 when it does not answer in time,
//! the agent's own refusal otherwise (with its `code`).

use languard_shared::wire::event::ServerStatus;
use languard_shared::wire::operation::{BanTarget, Operation};
use languard_shared::wire::player::Player;
use languard_shared::wire::request::Response;
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
use crate::fleet::limits;
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
        let last = row.map(|r| r.state.as_str().to_owned());
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
        let state = s.state.as_str().to_owned();
        Self {
            server_id,
            state: state.clone(),
            host_online: true,
            pid: s.pid.map(i64::from),
            since: Some(crate::fleet::ingest::wire_time(
                s.since,
                crate::store::now(),
            )),
            detail: s.detail,
            exit_code: s.exit.and_then(|e| e.code).map(i64::from),
            exit_signal: s.exit.and_then(|e| e.signal).map(i64::from),
            restarts: i64::from(s.restarts),
            last_reported_state: Some(state),
        }
    }
}

/// A raw command for the game's admin console.
#[derive(Debug, Object)]
pub struct ConsoleRequest {
    /// The command, e.g. `players` or `#lock` on Arma 3. One line.
    #[oai(validator(min_length = 1, max_length = 1000))]
    pub command: String,
}

/// The game's answer.
#[derive(Debug, Object)]
pub struct ConsoleResponse {
    /// Text as the game sent it.
    pub output: String,
}

/// A chat message.
#[derive(Debug, Object)]
pub struct SayRequest {
    /// The text (one line).
    #[oai(validator(min_length = 1, max_length = 400))]
    pub message: String,
    /// A player's key (see the player list) for a private message; omitted: everybody.
    #[oai(validator(min_length = 1, max_length = 64))]
    pub player: Option<String>,
}

/// A server-wide announcement.
#[derive(Debug, Object)]
pub struct AnnounceRequest {
    /// The text (one line).
    #[oai(validator(min_length = 1, max_length = 400))]
    pub message: String,
}

/// Kick a player.
#[derive(Debug, Object)]
pub struct KickRequest {
    /// The player's key (see the player list).
    #[oai(validator(min_length = 1, max_length = 64))]
    pub player: String,
    /// Shown to the player.
    #[oai(default, validator(max_length = 200))]
    pub reason: String,
}

/// Ban a player: exactly one of `player`, `account`, `address`.
#[derive(Debug, Object)]
pub struct BanRequest {
    /// An online player's key.
    #[oai(validator(min_length = 1, max_length = 64))]
    pub player: Option<String>,
    /// An account id as the game knows it (BattlEye GUID, Steam id, …), also offline.
    #[oai(validator(min_length = 1, max_length = 128))]
    pub account: Option<String>,
    /// An IP address.
    pub address: Option<std::net::IpAddr>,
    /// Minutes; omitted: permanent.
    pub minutes: Option<u32>,
    /// Reason.
    #[oai(default, validator(max_length = 200))]
    pub reason: String,
}

/// Lift a ban.
#[derive(Debug, Object)]
pub struct UnbanRequest {
    /// The game's handle of the ban (its ban list entry, or the account id where the
    /// game bans by account).
    #[oai(validator(min_length = 1, max_length = 128))]
    pub ban: String,
}

/// Warn the players, wait, then stop the server gracefully (it stays stopped).
#[derive(Debug, Object)]
pub struct ShutdownRequest {
    /// Seconds between the warning and the stop.
    #[oai(default, validator(maximum(value = "3600")))]
    pub countdown_secs: u32,
    /// The warning (one line), announced when the countdown starts; omitted: no warning.
    #[oai(validator(max_length = 400))]
    pub message: Option<String>,
}

/// Switch to a mission or map.
#[derive(Debug, Object)]
pub struct MissionRequest {
    /// Mission or map name, as the game knows it.
    #[oai(validator(min_length = 1, max_length = 200))]
    pub name: String,
    /// Difficulty, where the game has one.
    #[oai(validator(min_length = 1, max_length = 64))]
    pub difficulty: Option<String>,
}

/// A player online now.
#[derive(Debug, Object)]
pub struct PlayerView {
    /// The game's handle for the connection (kick, ban and say take it).
    pub key: String,
    /// Name.
    pub name: String,
    /// The account behind the player, once the game knows it.
    pub account: Option<String>,
    /// The game has verified the account.
    pub verified: bool,
    /// Address, when the game reports one. Only operators and admins see it: `null`
    /// for viewers.
    #[oai(nullable)]
    pub address: Option<String>,
    /// Ping in ms, when measured.
    pub ping_ms: Option<u32>,
    /// Connected but not yet in the game world.
    pub in_lobby: bool,
}

impl From<Player> for PlayerView {
    fn from(p: Player) -> Self {
        Self {
            key: p.key,
            name: p.name,
            account: p.account,
            verified: p.verified,
            address: p.address.map(|a| a.to_string()),
            ping_ms: p.ping_ms,
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
        operation: Operation,
    ) -> ApiResult<NoContent> {
        self.0.operate(ctx, id, operation).await?;
        Ok(NoContent::Ok)
    }
}

fn unexpected(other: Response) -> super::error::ApiError {
    Error::internal(format!("unexpected agent answer {other:?}")).into()
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

    /// Start the server with its current config (recorded as "should run" first).
    #[oai(path = "/:id/start", method = "post", operation_id = "startServer")]
    async fn start(&self, auth: OperatorAuth, id: Path<Uuid>) -> ApiResult<Json<ServerStatusView>> {
        self.lifecycle(&auth.0, id.0, Lifecycle::Start).await
    }

    /// Stop gracefully (through the game's admin interface, then signals after the stop
    /// timeout).
    #[oai(path = "/:id/stop", method = "post", operation_id = "stopServer")]
    async fn stop(&self, auth: OperatorAuth, id: Path<Uuid>) -> ApiResult<Json<ServerStatusView>> {
        self.lifecycle(&auth.0, id.0, Lifecycle::Stop).await
    }

    /// Stop, then start with the current config.
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

    /// Run a raw command on the game's admin console (admin).
    #[oai(
        path = "/:id/console",
        method = "post",
        operation_id = "runConsoleCommand"
    )]
    async fn console(
        &self,
        auth: AdminAuth,
        id: Path<Uuid>,
        body: Json<ConsoleRequest>,
    ) -> ApiResult<Json<ConsoleResponse>> {
        let operation = Operation::Console {
            command: body.0.command,
        };
        match self.0.operate(&auth.0, id.0, operation).await? {
            Response::Text(output) => Ok(Json(ConsoleResponse { output })),
            other => Err(unexpected(other)),
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
        self.done(
            &auth.0,
            id.0,
            Operation::Say {
                to: player,
                message,
            },
        )
        .await
    }

    /// Announce to everybody (the game's broadcast where it has one).
    #[oai(
        path = "/:id/announce",
        method = "post",
        operation_id = "announceToPlayers"
    )]
    async fn announce(
        &self,
        auth: OperatorAuth,
        id: Path<Uuid>,
        body: Json<AnnounceRequest>,
    ) -> ApiResult<NoContent> {
        let message = body.0.message;
        self.done(&auth.0, id.0, Operation::Announce { message })
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
        self.done(&auth.0, id.0, Operation::Kick { player, reason })
            .await
    }

    /// Ban a player by key, account or address.
    #[oai(path = "/:id/ban", method = "post", operation_id = "banPlayer")]
    async fn ban(
        &self,
        auth: OperatorAuth,
        id: Path<Uuid>,
        body: Json<BanRequest>,
    ) -> ApiResult<NoContent> {
        let BanRequest {
            player,
            account,
            address,
            minutes,
            reason,
        } = body.0;
        let target = match (player, account, address) {
            (Some(p), None, None) => BanTarget::Player(p),
            (None, Some(a), None) => BanTarget::Account(a),
            (None, None, Some(ip)) => BanTarget::Address(ip),
            _ => {
                return Err(
                    Error::field("player", "give exactly one of player, account, address").into(),
                );
            }
        };
        self.done(
            &auth.0,
            id.0,
            Operation::Ban {
                target,
                minutes,
                reason,
            },
        )
        .await
    }

    /// Lift a ban.
    #[oai(path = "/:id/unban", method = "post", operation_id = "unbanPlayer")]
    async fn unban(
        &self,
        auth: OperatorAuth,
        id: Path<Uuid>,
        body: Json<UnbanRequest>,
    ) -> ApiResult<NoContent> {
        let ban = body.0.ban;
        self.done(&auth.0, id.0, Operation::Unban { ban }).await
    }

    /// Let no new players join.
    #[oai(path = "/:id/lock", method = "post", operation_id = "lockServer")]
    async fn lock(&self, auth: OperatorAuth, id: Path<Uuid>) -> ApiResult<NoContent> {
        self.done(&auth.0, id.0, Operation::Lock).await
    }

    /// Let new players join again.
    #[oai(path = "/:id/unlock", method = "post", operation_id = "unlockServer")]
    async fn unlock(&self, auth: OperatorAuth, id: Path<Uuid>) -> ApiResult<NoContent> {
        self.done(&auth.0, id.0, Operation::Unlock).await
    }

    /// Save the world now.
    #[oai(path = "/:id/save", method = "post", operation_id = "saveWorld")]
    async fn save(&self, auth: OperatorAuth, id: Path<Uuid>) -> ApiResult<NoContent> {
        self.done(&auth.0, id.0, Operation::Save).await
    }

    /// Warn the players, wait, then stop gracefully; the server stays stopped.
    #[oai(
        path = "/:id/shutdown",
        method = "post",
        operation_id = "shutdownServer"
    )]
    async fn shutdown(
        &self,
        auth: OperatorAuth,
        id: Path<Uuid>,
        body: Json<ShutdownRequest>,
    ) -> ApiResult<NoContent> {
        let ShutdownRequest {
            countdown_secs,
            message,
        } = body.0;
        self.done(
            &auth.0,
            id.0,
            Operation::Shutdown {
                countdown_secs,
                message,
            },
        )
        .await
    }

    /// Switch to a mission or map.
    #[oai(path = "/:id/mission", method = "post", operation_id = "changeMission")]
    async fn mission(
        &self,
        auth: OperatorAuth,
        id: Path<Uuid>,
        body: Json<MissionRequest>,
    ) -> ApiResult<NoContent> {
        let MissionRequest { name, difficulty } = body.0;
        self.done(&auth.0, id.0, Operation::Mission { name, difficulty })
            .await
    }

    /// The players online now, as the game reports them (addresses for operators and
    /// admins only).
    #[oai(
        path = "/:id/players",
        method = "get",
        operation_id = "listOnlinePlayers"
    )]
    async fn players(&self, auth: ViewerAuth, id: Path<Uuid>) -> ApiResult<Json<Vec<PlayerView>>> {
        match self.0.operate(&auth.0, id.0, Operation::Players).await? {
            Response::Players(list) => {
                let addresses = super::dto::sees_addresses(&auth.0);
                Ok(Json(
                    list.into_iter()
                        .map(|p| {
                            // Agent text, shown like stored player events are.
                            let mut v = PlayerView::from(p);
                            v.key = limits::label(&v.key, limits::MAX_LABEL);
                            v.name = limits::label(&v.name, limits::MAX_LABEL);
                            v.account = v.account.map(|a| limits::label(&a, limits::MAX_LABEL));
                            if !addresses {
                                v.address = None;
                            }
                            v
                        })
                        .collect(),
                ))
            }
            other => Err(unexpected(other)),
        }
    }
}
