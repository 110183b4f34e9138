//! Admin operations on a running game, in game-neutral terms. Each game adapter turns
//! them into its own protocol (BattlEye RCon commands for Arma 3, REST calls for
//! Palworld); a game advertises the [`OperationKind`]s it has (see
//! [`crate::games::GameKind::operations`]) and both sides refuse the others before
//! anything reaches the game.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// One admin operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Operation {
    /// The players online now ([`super::Response::Players`]).
    Players,
    /// A chat message to everybody (`to: None`) or to one player (by key).
    Say { to: Option<String>, message: String },
    /// A server-wide announcement (a broadcast where the game has one).
    Announce { message: String },
    /// Disconnect a player (by key) with a reason.
    Kick { player: String, reason: String },
    /// Ban a player; `minutes: None` is permanent.
    Ban {
        target: BanTarget,
        minutes: Option<u32>,
        reason: String,
    },
    /// Lift a ban: the game's own ban handle (BattlEye's ban list index, Palworld's
    /// user id).
    Unban { ban: String },
    /// No new players may join.
    Lock,
    /// New players may join again.
    Unlock,
    /// Save the world now.
    Save,
    /// Warn the players (`message`), wait `countdown_secs`, then stop the server
    /// gracefully. The server stays stopped (as after a stop request).
    Shutdown {
        countdown_secs: u32,
        message: Option<String>,
    },
    /// Switch to a mission or map (`difficulty` where the game has one).
    Mission {
        name: String,
        difficulty: Option<String>,
    },
    /// A raw admin console command; the game's answer is returned as text.
    Console { command: String },
}

/// Who a ban is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum BanTarget {
    /// A connected player, by key.
    Player(String),
    /// An account id (BattlEye GUID, Steam id, Palworld user id), also offline.
    Account(String),
    /// An IP address.
    Address(IpAddr),
}

/// What a game can be asked to do: one per [`Operation`] variant, with bans split by
/// target since games differ there (Palworld bans accounts only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationKind {
    Players,
    Say,
    SayToPlayer,
    Announce,
    Kick,
    BanPlayer,
    BanAccount,
    BanAddress,
    Unban,
    Lock,
    Unlock,
    Save,
    Shutdown,
    Mission,
    Console,
}

impl OperationKind {
    /// Every kind, for capability listings.
    pub const ALL: [OperationKind; 15] = [
        Self::Players,
        Self::Say,
        Self::SayToPlayer,
        Self::Announce,
        Self::Kick,
        Self::BanPlayer,
        Self::BanAccount,
        Self::BanAddress,
        Self::Unban,
        Self::Lock,
        Self::Unlock,
        Self::Save,
        Self::Shutdown,
        Self::Mission,
        Self::Console,
    ];

    /// The snake_case name used on the wire and in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Players => "players",
            Self::Say => "say",
            Self::SayToPlayer => "say_to_player",
            Self::Announce => "announce",
            Self::Kick => "kick",
            Self::BanPlayer => "ban_player",
            Self::BanAccount => "ban_account",
            Self::BanAddress => "ban_address",
            Self::Unban => "unban",
            Self::Lock => "lock",
            Self::Unlock => "unlock",
            Self::Save => "save",
            Self::Shutdown => "shutdown",
            Self::Mission => "mission",
            Self::Console => "console",
        }
    }
}

impl std::fmt::Display for OperationKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Operation {
    /// The capability this operation needs.
    pub fn kind(&self) -> OperationKind {
        match self {
            Self::Players => OperationKind::Players,
            Self::Say { to: None, .. } => OperationKind::Say,
            Self::Say { to: Some(_), .. } => OperationKind::SayToPlayer,
            Self::Announce { .. } => OperationKind::Announce,
            Self::Kick { .. } => OperationKind::Kick,
            Self::Ban { target, .. } => match target {
                BanTarget::Player(_) => OperationKind::BanPlayer,
                BanTarget::Account(_) => OperationKind::BanAccount,
                BanTarget::Address(_) => OperationKind::BanAddress,
            },
            Self::Unban { .. } => OperationKind::Unban,
            Self::Lock => OperationKind::Lock,
            Self::Unlock => OperationKind::Unlock,
            Self::Save => OperationKind::Save,
            Self::Shutdown { .. } => OperationKind::Shutdown,
            Self::Mission { .. } => OperationKind::Mission,
            Self::Console { .. } => OperationKind::Console,
        }
    }

    /// Whether the operation changes something (and is audited); reading the player
    /// list does not.
    pub fn mutates(&self) -> bool {
        !matches!(self, Self::Players)
    }

    /// The user-supplied text fields, for checks every game needs (no control
    /// characters in anything that ends up on a command line or in a chat).
    pub fn texts(&self) -> Vec<(&'static str, &str)> {
        let mut out = Vec::new();
        match self {
            Self::Say { to, message } => {
                if let Some(to) = to {
                    out.push(("player", to.as_str()));
                }
                out.push(("message", message.as_str()));
            }
            Self::Announce { message } => out.push(("message", message.as_str())),
            Self::Kick { player, reason } => {
                out.push(("player", player.as_str()));
                out.push(("reason", reason.as_str()));
            }
            Self::Ban { target, reason, .. } => {
                match target {
                    BanTarget::Player(p) => out.push(("player", p.as_str())),
                    BanTarget::Account(a) => out.push(("account", a.as_str())),
                    BanTarget::Address(_) => {}
                }
                out.push(("reason", reason.as_str()));
            }
            Self::Unban { ban } => out.push(("ban", ban.as_str())),
            Self::Shutdown {
                message: Some(m), ..
            } => out.push(("message", m.as_str())),
            Self::Mission { name, difficulty } => {
                out.push(("name", name.as_str()));
                if let Some(d) = difficulty {
                    out.push(("difficulty", d.as_str()));
                }
            }
            Self::Console { command } => out.push(("command", command.as_str())),
            Self::Players | Self::Lock | Self::Unlock | Self::Save | Self::Shutdown { .. } => {}
        }
        out
    }

    /// The first control character (line break, NUL, …) in a text field, as
    /// `(field, character index, code point)`: such text would break a command line or
    /// forge a second one.
    pub fn find_control_char(&self) -> Option<(&'static str, usize, u32)> {
        self.texts().into_iter().find_map(|(field, text)| {
            text.chars()
                .enumerate()
                .find(|(_, c)| c.is_control())
                .map(|(i, c)| (field, i, u32::from(c)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_the_variant_and_the_ban_target() {
        let say_all = Operation::Say {
            to: None,
            message: "hi".into(),
        };
        let say_one = Operation::Say {
            to: Some("3".into()),
            message: "hi".into(),
        };
        assert_eq!(say_all.kind(), OperationKind::Say);
        assert_eq!(say_one.kind(), OperationKind::SayToPlayer);
        let ban = |target| Operation::Ban {
            target,
            minutes: None,
            reason: String::new(),
        };
        assert_eq!(
            ban(BanTarget::Player("1".into())).kind(),
            OperationKind::BanPlayer
        );
        assert_eq!(
            ban(BanTarget::Account("x".into())).kind(),
            OperationKind::BanAccount
        );
        assert_eq!(
            ban(BanTarget::Address("203.0.113.9".parse().unwrap())).kind(),
            OperationKind::BanAddress
        );
        assert!(!Operation::Players.mutates());
        assert!(Operation::Lock.mutates());
    }

    #[test]
    fn names_match_serde() {
        for kind in OperationKind::ALL {
            let json = serde_json::to_value(kind).unwrap();
            assert_eq!(json.as_str(), Some(kind.as_str()));
        }
    }

    #[test]
    fn control_characters_are_found_in_every_text_field() {
        let op = Operation::Kick {
            player: "2".into(),
            reason: "bye\nsay -1 forged".into(),
        };
        assert_eq!(op.find_control_char(), Some(("reason", 3, 0x0A)));
        let op = Operation::Mission {
            name: "co10.Altis".into(),
            difficulty: Some("Reg\0ular".into()),
        };
        assert_eq!(op.find_control_char(), Some(("difficulty", 3, 0)));
        let ok = Operation::Say {
            to: None,
            message: "Zoë: ready ✓".into(),
        };
        assert_eq!(ok.find_control_char(), None);
    }
}
