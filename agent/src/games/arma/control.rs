//! BattlEye RCon control of one Arma 3 server: readiness (RCon login works), graceful
//! stop (`#shutdown`), liveness (RCon keepalive or an A2S answer), admin operations
//! ([`super::commands`]) and the feed of console messages for player tracking.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use languard_shared::arma::rcon::client::{ClientOptions, RconClient, RconError, RconPassword};
use languard_shared::arma::rcon::parse::{ServerEvent, parse_players, parse_server_message};
use languard_shared::wire::request::{AgentError, ErrorCode};
use languard_shared::wire::{Operation, PlayerEvent, Response};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::a2s;
use super::commands::{Command, command_for, wire_players};
use super::players::{PlayerPoller, PlayerPollerConfig, RconCommand};
use crate::games::{GameControl, PlayerFeed};
use crate::supervisor::{GameHooks, HookFuture};

/// Buffered console messages between the RCon client and the player tracker.
const MESSAGE_BUFFER: usize = 4096;

/// BattlEye RCon control of one Arma 3 server, reconnecting after every start.
pub struct ArmaControl {
    rcon_addr: SocketAddr,
    query_addr: SocketAddr,
    password: RconPassword,
    client: Mutex<Option<RconClient>>,
    messages_tx: mpsc::Sender<String>,
    messages_rx: Mutex<Option<mpsc::Receiver<String>>>,
}

impl ArmaControl {
    pub(crate) fn new(
        rcon_addr: SocketAddr,
        query_addr: SocketAddr,
        password: RconPassword,
    ) -> Self {
        let (messages_tx, messages_rx) = mpsc::channel(MESSAGE_BUFFER);
        Self {
            rcon_addr,
            query_addr,
            password,
            client: Mutex::new(None),
            messages_tx,
            messages_rx: Mutex::new(Some(messages_rx)),
        }
    }

    fn options() -> ClientOptions {
        ClientOptions {
            login_timeout: Duration::from_millis(800),
            login_attempts: 1,
            command_timeout: Duration::from_millis(1500),
            command_attempts: 2,
            ..ClientOptions::default()
        }
    }

    fn current(&self) -> Option<RconClient> {
        self.client.lock().ok().and_then(|c| c.clone())
    }

    /// Logs in, keeps the client and forwards its console messages to the agent.
    async fn connect(&self) -> Result<RconClient, RconError> {
        let (client, mut rx) =
            RconClient::connect(self.rcon_addr, self.password.clone(), Self::options()).await?;
        let tx = self.messages_tx.clone();
        tokio::spawn(async move {
            while let Some(message) = rx.recv().await {
                if tx.send(message.text).await.is_err() {
                    break;
                }
            }
        });
        if let Ok(mut slot) = self.client.lock()
            && let Some(old) = slot.replace(client.clone())
        {
            tokio::spawn(async move { old.close().await });
        }
        Ok(client)
    }
}

fn rcon_error(e: RconError) -> AgentError {
    let code = match e {
        RconError::Disconnected | RconError::Closed => ErrorCode::NotRunning,
        RconError::CommandTimeout { .. } | RconError::LoginTimeout { .. } => ErrorCode::Timeout,
        _ => ErrorCode::Game,
    };
    AgentError::new(code, e.to_string())
}

impl GameHooks for ArmaControl {
    fn wait_ready(&self) -> HookFuture<'_, Result<(), String>> {
        Box::pin(async move {
            loop {
                match self.connect().await {
                    Ok(_) => return Ok(()),
                    Err(RconError::WrongPassword) => {
                        return Err("the server refused the RCon password".into());
                    }
                    // Not listening yet (still loading): try again shortly. The
                    // supervisor bounds the whole wait with its start timeout.
                    Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
                }
            }
        })
    }

    fn graceful_stop(&self) -> HookFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let client = match self.current() {
                Some(c) => c,
                None => self.connect().await.map_err(|e| e.to_string())?,
            };
            match client.command("#shutdown").await {
                // The server may exit before its ack arrives.
                Ok(_) | Err(RconError::CommandTimeout { .. }) | Err(RconError::Disconnected) => {
                    Ok(())
                }
                Err(e) => Err(e.to_string()),
            }
        })
    }

    fn probe(&self) -> HookFuture<'_, bool> {
        Box::pin(async move {
            if let Some(client) = self.current()
                && client.command("").await.is_ok()
            {
                return true;
            }
            a2s::info_answers(self.query_addr, Duration::from_secs(2)).await
        })
    }
}

impl ArmaControl {
    /// Runs one RCon command on the live connection.
    async fn command(&self, command: &str) -> Result<String, AgentError> {
        let Some(client) = self.current() else {
            return Err(AgentError::new(
                ErrorCode::NotRunning,
                "no RCon connection: the server is not running",
            ));
        };
        client.command(command).await.map_err(rcon_error)
    }
}

impl GameControl for ArmaControl {
    fn operate<'a>(
        &'a self,
        operation: &'a Operation,
    ) -> HookFuture<'a, Result<Response, AgentError>> {
        Box::pin(async move {
            match command_for(operation)? {
                Command::Players => {
                    let text = self.command("players").await?;
                    Ok(Response::Players(wire_players(&parse_players(&text))))
                }
                Command::Text(command) => self.command(&command).await.map(Response::Text),
                Command::Done(command) => self.command(&command).await.map(|_| Response::Done),
            }
        })
    }

    fn track_players(self: Arc<Self>, feed: PlayerFeed) -> Option<JoinHandle<()>> {
        let mut raw = self.messages_rx.lock().ok().and_then(|mut rx| rx.take())?;
        let PlayerFeed {
            poll_interval,
            running,
            events,
        } = feed;
        let (messages_tx, messages_rx) = mpsc::channel::<ServerEvent>(1024);
        let admins = events.clone();
        let poller = PlayerPoller::new(
            Polls {
                control: self,
                running,
            },
            PlayerPollerConfig {
                interval: poll_interval,
                ..PlayerPollerConfig::default()
            },
        );
        Some(tokio::spawn(async move {
            let forward = tokio::spawn(async move {
                while let Some(text) = raw.recv().await {
                    let event = parse_server_message(&text);
                    if let ServerEvent::AdminLogin { admin_id, ip, .. } = &event {
                        let login = PlayerEvent::AdminLogin {
                            admin: admin_id.to_string(),
                            address: Some(*ip),
                        };
                        if admins.send(login).await.is_err() {
                            break;
                        }
                    }
                    if messages_tx.send(event).await.is_err() {
                        break;
                    }
                }
            });
            poller.run(messages_rx, events).await;
            forward.abort();
        }))
    }

    fn reset(&self) {
        if let Some(old) = self.client.lock().ok().and_then(|mut c| c.take()) {
            tokio::spawn(async move { old.close().await });
        }
    }

    fn as_hooks(self: Arc<Self>) -> Arc<dyn GameHooks> {
        self
    }
}

/// The poller's view of the control channel: polls only while the server runs.
struct Polls {
    control: Arc<ArmaControl>,
    running: Arc<dyn Fn() -> bool + Send + Sync>,
}

impl RconCommand for Polls {
    fn command(
        &self,
        command: &str,
    ) -> impl std::future::Future<Output = Result<String, RconError>> + Send {
        let control = Arc::clone(&self.control);
        let running = (self.running)();
        let command = command.to_owned();
        async move {
            if !running {
                return Err(RconError::Disconnected);
            }
            control
                .command(&command)
                .await
                .map_err(|_| RconError::Disconnected)
        }
    }
}
