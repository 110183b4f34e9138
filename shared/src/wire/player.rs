//! Players as every game reports them: the game's own handle for a connection, a name,
//! the account behind it, the address and ping. Game adapters translate their protocol's
//! rows (BattlEye's `players` table, Palworld's `/v1/api/players`) into these types, so
//! the controller stores and shows players without knowing the game.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// A player connected to a server now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Player {
    /// The game's handle for this connection, used to address the player in kick, ban
    /// and say: BattlEye's player number (reused after a disconnect), Palworld's player
    /// id.
    pub key: String,
    /// The name shown in game.
    pub name: String,
    /// The account behind the player: BattlEye GUID, Steam id, Palworld user id.
    /// `None` until the game knows it (BattlEye reports the GUID after the connect).
    pub account: Option<String>,
    /// The game (or its anti-cheat) has verified `account`.
    #[serde(default)]
    pub verified: bool,
    /// The player's address, when the game reports one.
    pub address: Option<IpAddr>,
    /// Round-trip time in milliseconds, when measured.
    pub ping_ms: Option<u32>,
    /// Connected but not yet in the game world (Arma's lobby, a loading screen).
    #[serde(default)]
    pub in_lobby: bool,
}

/// Where a chat message was sent. Games name their channels differently; adapters map
/// theirs onto these and keep anything else verbatim in [`ChatChannel::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChatChannel {
    /// Everybody on the server.
    Global,
    /// One side or team.
    Side,
    /// Commanders.
    Command,
    /// One group or guild.
    Group,
    /// The occupants of one vehicle.
    Vehicle,
    /// Players nearby.
    Direct,
    /// The lobby before the game starts.
    Lobby,
    /// The game did not say.
    Unknown,
    /// Any other channel name, kept verbatim.
    Other(String),
}

/// Player activity on one server, in the order the game reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PlayerEvent {
    /// A player connected. `account` may still be unknown: then a later
    /// [`PlayerEvent::Identified`] names it.
    Joined { player: Player },
    /// The game learned (or verified) the account of a connected player.
    Identified {
        key: String,
        name: String,
        account: String,
        verified: bool,
    },
    /// A player disconnected.
    Left {
        key: String,
        name: String,
        account: Option<String>,
    },
    /// A player was kicked (or banned) by the game, its anti-cheat or an admin.
    Kicked {
        key: String,
        name: String,
        account: Option<String>,
        reason: String,
    },
    /// A chat message.
    Chat {
        channel: ChatChannel,
        name: String,
        text: String,
    },
    /// An administrator logged in to the game's admin interface.
    AdminLogin {
        /// The game's name or number for the admin session.
        admin: String,
        address: Option<IpAddr>,
    },
}
