//! Who is on an Arma 3 server: [`PlayerTracker`] merges periodic RCon `players`
//! answers and BattlEye console messages into one roster and reports changes as the
//! wire's [`PlayerEvent`]s (key = BattlEye player number, account = BattlEye GUID);
//! [`PlayerPoller`] drives it.
//!
//! Identity: BattlEye player numbers are reused after a disconnect, so a roster entry
//! is the same player only if the number *and* the GUID (when both sides know it) or
//! else the name match. Messages are fast (joins are reported at once), polls are the
//! truth that repairs anything a lost message left behind. Because a poll answer can be
//! older than a message processed just before it, the two are reconciled with a grace
//! of one poll:
//! * a player who joined by message but is missing from the next poll is kept (the
//!   poll may predate the join); missing from a second poll, they left;
//! * a player who left by message and still appears in the next poll is not re-joined
//!   (the poll may predate the leave).
//!
//! Accounts: the connect message carries no GUID; `BE GUID` and `Verified GUID` lines
//! follow. The GUID is reported with [`PlayerEvent::Identified`] as soon as it is
//! known (unverified first, then verified: once per change), and every later `Left`
//! or `Kicked` carries it. A player first seen by a poll that already shows the GUID
//! joins with it.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use languard_shared::arma::rcon::client::{RconClient, RconError};
use languard_shared::arma::rcon::parse::{Player, ServerEvent, parse_players};
use languard_shared::wire::PlayerEvent;
use tokio::sync::mpsc;

use super::commands::wire_player;
use crate::telemetry::RateLimitedLog;

#[derive(Debug, Clone)]
struct Entry {
    player: Player,
    /// Joined by message and not yet confirmed by a poll: survives one poll without it.
    unconfirmed: bool,
}

/// Someone who left by message; a player matching it in the next poll is stale.
#[derive(Debug, Clone)]
struct Tombstone {
    number: u32,
    name: String,
    guid: Option<String>,
}

/// The roster; pure (no I/O, no clock).
#[derive(Debug, Clone, Default)]
pub struct PlayerTracker {
    roster: Vec<Entry>,
    tombstones: Vec<Tombstone>,
}

fn same_identity(a_name: &str, a_guid: Option<&str>, b_name: &str, b_guid: Option<&str>) -> bool {
    match (a_guid, b_guid) {
        (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
        _ => a_name == b_name,
    }
}

impl PlayerTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// The current roster, ordered by player number.
    pub fn players(&self) -> Vec<Player> {
        let mut v: Vec<Player> = self.roster.iter().map(|e| e.player.clone()).collect();
        v.sort_by_key(|p| p.number);
        v
    }

    fn find(&self, number: u32, name: &str, guid: Option<&str>) -> Option<usize> {
        self.roster.iter().position(|e| {
            e.player.number == number
                && same_identity(&e.player.name, e.player.guid.as_deref(), name, guid)
        })
    }

    /// Removes whoever holds `number` under another identity (we missed their leave).
    fn evict_other(
        &mut self,
        number: u32,
        name: &str,
        guid: Option<&str>,
        out: &mut Vec<PlayerEvent>,
    ) {
        while let Some(i) = self.roster.iter().position(|e| {
            e.player.number == number
                && !same_identity(&e.player.name, e.player.guid.as_deref(), name, guid)
        }) {
            let old = self.roster.swap_remove(i).player;
            out.push(left(old));
        }
    }

    /// Applies the answer to one `players` poll: `Left` for every roster entry no
    /// longer present (first), then `Joined` for new ones, plus `Identified` for
    /// GUIDs that became known or verified.
    pub fn apply_snapshot(&mut self, snapshot: Vec<Player>) -> Vec<PlayerEvent> {
        let mut out = Vec::new();
        let tombstones = std::mem::take(&mut self.tombstones);
        let snapshot: Vec<Player> = snapshot
            .into_iter()
            .filter(|p| {
                !tombstones.iter().any(|t| {
                    t.number == p.number
                        && same_identity(&t.name, t.guid.as_deref(), &p.name, p.guid.as_deref())
                })
            })
            .collect();
        let mut present = vec![false; self.roster.len()];
        let mut joins = Vec::new();
        for p in snapshot {
            match self.find(p.number, &p.name, p.guid.as_deref()) {
                Some(i) => {
                    present[i] = true;
                    let e = &mut self.roster[i];
                    e.unconfirmed = false;
                    let old_guid = e.player.guid.take();
                    let old_verified = e.player.verified;
                    // A poll answer may predate a verification message: keep it.
                    let verified =
                        p.verified || (old_verified && (p.guid.is_none() || p.guid == old_guid));
                    let guid = p.guid.clone().or(old_guid.clone());
                    if let Some(account) = &guid
                        && (guid != old_guid || (verified && !old_verified))
                    {
                        out.push(PlayerEvent::Identified {
                            key: p.number.to_string(),
                            name: p.name.clone(),
                            account: account.clone(),
                            verified,
                        });
                    }
                    e.player = Player {
                        guid,
                        verified,
                        ..p
                    };
                }
                None => joins.push(p),
            }
        }
        let mut kept = Vec::with_capacity(self.roster.len());
        for (e, present) in std::mem::take(&mut self.roster).into_iter().zip(present) {
            if present {
                kept.push(e);
            } else if e.unconfirmed {
                kept.push(Entry {
                    unconfirmed: false,
                    ..e
                });
            } else {
                out.push(left(e.player));
            }
        }
        self.roster = kept;
        for p in joins {
            self.evict_other(p.number, &p.name, p.guid.as_deref(), &mut out);
            self.roster.push(Entry {
                player: p.clone(),
                unconfirmed: false,
            });
            out.push(joined(&p));
        }
        out
    }

    /// Applies one BattlEye console message.
    pub fn apply_server_event(&mut self, event: &ServerEvent) -> Vec<PlayerEvent> {
        let mut out = Vec::new();
        match event {
            ServerEvent::PlayerConnected {
                number,
                name,
                ip,
                port,
            } => {
                self.tombstones
                    .retain(|t| !(t.number == *number && t.name == *name));
                if self.find(*number, name, None).is_none() {
                    self.evict_other(*number, name, None, &mut out);
                    let p = Player {
                        number: *number,
                        ip: *ip,
                        port: *port,
                        ping: None,
                        guid: None,
                        verified: false,
                        name: name.clone(),
                        in_lobby: true,
                    };
                    self.roster.push(Entry {
                        player: p.clone(),
                        unconfirmed: true,
                    });
                    out.push(joined(&p));
                }
            }
            ServerEvent::PlayerGuid {
                number, name, guid, ..
            } => {
                self.learn_guid(*number, name, guid, false, &mut out);
            }
            ServerEvent::GuidVerified { number, name, guid } => {
                self.learn_guid(*number, name, guid, true, &mut out);
            }
            ServerEvent::PlayerDisconnected { number, name } => {
                if let Some(i) = self.find(*number, name, None) {
                    let p = self.roster.swap_remove(i).player;
                    self.tombstone(&p);
                    out.push(left(p));
                }
            }
            ServerEvent::PlayerKicked {
                number,
                name,
                guid,
                reason,
            } => {
                let mut guid = guid.clone();
                if let Some(i) = self.find(*number, name, guid.as_deref()) {
                    let p = self.roster.swap_remove(i).player;
                    guid = guid.or_else(|| p.guid.clone());
                    self.tombstone(&p);
                }
                out.push(PlayerEvent::Kicked {
                    key: number.to_string(),
                    name: name.clone(),
                    account: guid,
                    reason: reason.clone(),
                });
            }
            ServerEvent::Chat {
                channel,
                name,
                text,
            } => out.push(PlayerEvent::Chat {
                channel: channel.clone(),
                name: name.clone(),
                text: text.clone(),
            }),
            _ => {}
        }
        out
    }

    fn tombstone(&mut self, p: &Player) {
        self.tombstones.push(Tombstone {
            number: p.number,
            name: p.name.clone(),
            guid: p.guid.clone(),
        });
    }

    /// A GUID line for `#number name`; joins the player if we missed the connect.
    fn learn_guid(
        &mut self,
        number: u32,
        name: &str,
        guid: &str,
        verified: bool,
        out: &mut Vec<PlayerEvent>,
    ) {
        let i = match self.find(number, name, Some(guid)) {
            Some(i) => i,
            None => {
                if self
                    .tombstones
                    .iter()
                    .any(|t| t.number == number && t.name == name)
                {
                    return;
                }
                self.evict_other(number, name, Some(guid), out);
                let p = Player {
                    number,
                    ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                    port: 0,
                    ping: None,
                    guid: Some(guid.to_owned()),
                    verified: false,
                    name: name.to_owned(),
                    in_lobby: true,
                };
                self.roster.push(Entry {
                    player: p.clone(),
                    unconfirmed: true,
                });
                out.push(joined(&p));
                self.roster.len() - 1
            }
        };
        let p = &mut self.roster[i].player;
        let mut changed = false;
        if p.guid.as_deref() != Some(guid) {
            p.guid = Some(guid.to_owned());
            p.verified = false;
            changed = true;
        }
        if verified && !p.verified {
            p.verified = true;
            changed = true;
        }
        if changed {
            out.push(PlayerEvent::Identified {
                key: number.to_string(),
                name: name.to_owned(),
                account: guid.to_owned(),
                verified: p.verified,
            });
        }
    }
}

fn joined(p: &Player) -> PlayerEvent {
    PlayerEvent::Joined {
        player: wire_player(p),
    }
}

fn left(p: Player) -> PlayerEvent {
    PlayerEvent::Left {
        key: p.number.to_string(),
        name: p.name,
        account: p.guid,
    }
}

/// What the poller needs from an RCon client (implemented by [`RconClient`]; tests use
/// a fake).
pub trait RconCommand: Send + Sync + 'static {
    fn command(&self, command: &str) -> impl Future<Output = Result<String, RconError>> + Send;
}

impl RconCommand for RconClient {
    fn command(&self, command: &str) -> impl Future<Output = Result<String, RconError>> + Send {
        RconClient::command(self, command)
    }
}

#[derive(Debug, Clone)]
pub struct PlayerPollerConfig {
    /// Time between `players` polls. Default 10 s.
    pub interval: Duration,
    /// At most one log line per this interval while polls keep failing. Default 60 s.
    pub error_log_interval: Duration,
}

impl Default for PlayerPollerConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(10),
            error_log_interval: Duration::from_secs(60),
        }
    }
}

/// Polls `players` and applies BattlEye messages to one [`PlayerTracker`], in one
/// task, so polls and messages are applied in a single order.
pub struct PlayerPoller<C> {
    client: C,
    config: PlayerPollerConfig,
    tracker: PlayerTracker,
}

impl<C: RconCommand> PlayerPoller<C> {
    pub fn new(client: C, config: PlayerPollerConfig) -> Self {
        Self {
            client,
            config,
            tracker: PlayerTracker::new(),
        }
    }

    /// Runs until `events` is closed. `messages` carries BattlEye console messages
    /// (already parsed, e.g. from the RCon message stream); when it ends, polling
    /// continues alone. Poll errors are logged (rate limited) and never end the task.
    pub async fn run(
        mut self,
        mut messages: mpsc::Receiver<ServerEvent>,
        events: mpsc::Sender<PlayerEvent>,
    ) {
        let mut tick = tokio::time::interval(self.config.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut errors = RateLimitedLog::new(self.config.error_log_interval);
        let mut messages_open = true;
        loop {
            let out = tokio::select! {
                _ = events.closed() => return,
                _ = tick.tick() => match self.client.command("players").await {
                    Ok(text) => {
                        if errors.recovered() {
                            tracing::info!("RCon players poll works again");
                        }
                        self.tracker.apply_snapshot(parse_players(&text))
                    }
                    Err(e) => {
                        if let Some(suppressed) = errors.failure() {
                            tracing::warn!(error = %e, suppressed, "RCon players poll failed");
                        }
                        Vec::new()
                    }
                },
                m = messages.recv(), if messages_open => match m {
                    Some(ev) => self.tracker.apply_server_event(&ev),
                    None => {
                        messages_open = false;
                        Vec::new()
                    }
                },
            };
            for ev in out {
                if events.send(ev).await.is_err() {
                    return;
                }
            }
        }
    }

    /// [`PlayerPoller::run`] on a new task.
    pub fn spawn(
        self,
        messages: mpsc::Receiver<ServerEvent>,
        events: mpsc::Sender<PlayerEvent>,
    ) -> tokio::task::JoinHandle<()>
    where
        C: 'static,
    {
        tokio::spawn(self.run(messages, events))
    }
}

#[cfg(test)]
mod tests;
