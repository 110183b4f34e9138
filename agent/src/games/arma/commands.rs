//! Admin operations as BattlEye RCon commands, and BattlEye's `players` rows as the
//! wire's players. Pure: what is sent is decided (and refused) here, before any I/O.

use languard_shared::arma::guid::is_be_guid;
use languard_shared::arma::rcon::parse;
use languard_shared::wire::request::{AgentError, ErrorCode};
use languard_shared::wire::{BanTarget, Operation, Player};

use languard_shared::games::GameKind;

use crate::games::unsupported;

/// What to send for an operation and what the answer becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `players`; the answer is parsed into [`Player`]s.
    Players,
    /// A raw console command; the answer is returned as text.
    Text(String),
    /// A command whose answer only says it was done.
    Done(String),
}

fn invalid(message: impl Into<String>) -> AgentError {
    AgentError::new(ErrorCode::InvalidSpec, message)
}

/// A BattlEye player number (the [`Player::key`] this adapter hands out).
fn player_number<'a>(what: &str, key: &'a str) -> Result<&'a str, AgentError> {
    if !key.is_empty() && key.len() <= 10 && key.bytes().all(|b| b.is_ascii_digit()) {
        Ok(key)
    } else {
        Err(invalid(format!(
            "{what} must be a BattlEye player number, got {key:?}"
        )))
    }
}

/// A mission or difficulty name: BattlEye reads the command's words by spaces.
fn one_word<'a>(what: &str, value: &'a str) -> Result<&'a str, AgentError> {
    if value.is_empty() || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Err(invalid(format!("{what} must be one word without spaces")))
    } else {
        Ok(value)
    }
}

/// `command` without the trailing space an empty reason leaves.
fn done(command: String) -> Command {
    Command::Done(command.trim_end().to_owned())
}

/// The RCon command for `operation`. Control characters are refused by the agent
/// before this is called; key formats and one-word names are checked here.
pub fn command_for(operation: &Operation) -> Result<Command, AgentError> {
    Ok(match operation {
        Operation::Players => Command::Players,
        Operation::Say { to: None, message } | Operation::Announce { message } => {
            Command::Done(format!("say -1 {message}"))
        }
        Operation::Say {
            to: Some(player),
            message,
        } => Command::Done(format!(
            "say {} {message}",
            player_number("player", player)?
        )),
        Operation::Kick { player, reason } => done(format!(
            "kick {} {reason}",
            player_number("player", player)?
        )),
        Operation::Ban {
            target,
            minutes,
            reason,
        } => {
            // BattlEye reads 0 minutes as permanent.
            let minutes = minutes.unwrap_or(0);
            match target {
                BanTarget::Player(n) => done(format!(
                    "ban {} {minutes} {reason}",
                    player_number("player", n)?
                )),
                BanTarget::Account(guid) => {
                    if !is_be_guid(guid) {
                        return Err(invalid("a BattlEye GUID is 32 hexadecimal digits"));
                    }
                    done(format!("addBan {guid} {minutes} {reason}"))
                }
                BanTarget::Address(ip) => done(format!("addBan {ip} {minutes} {reason}")),
            }
        }
        Operation::Unban { ban } => {
            if ban.is_empty() || !ban.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid(format!(
                    "ban must be the index in the BattlEye ban list, got {ban:?}"
                )));
            }
            Command::Done(format!("removeBan {ban}"))
        }
        Operation::Lock => Command::Done("#lock".into()),
        Operation::Unlock => Command::Done("#unlock".into()),
        Operation::Mission { name, difficulty } => {
            let mut command = format!("#mission {}", one_word("name", name)?);
            if let Some(d) = difficulty {
                command.push(' ');
                command.push_str(one_word("difficulty", d)?);
            }
            Command::Done(command)
        }
        Operation::Console { command } => Command::Text(command.clone()),
        // Shutdown is the agent's (announce, wait, stop); BattlEye has no save.
        Operation::Save | Operation::Shutdown { .. } => {
            return Err(unsupported(GameKind::Arma3, operation));
        }
    })
}

/// One BattlEye `players` row as a wire player: the key is the player number, the
/// account the BattlEye GUID.
pub fn wire_player(p: &parse::Player) -> Player {
    Player {
        key: p.number.to_string(),
        name: p.name.clone(),
        account: p.guid.clone(),
        verified: p.verified,
        // A player learnt from a GUID message before any connect line or poll has no
        // address yet.
        address: (!p.ip.is_unspecified()).then_some(p.ip),
        ping_ms: p.ping,
        in_lobby: p.in_lobby,
    }
}

/// [`wire_player`] for a whole `players` answer.
pub fn wire_players(players: &[parse::Player]) -> Vec<Player> {
    players.iter().map(wire_player).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUID: &str = "4f0c611d97e5379680d79f2f36b2e9e1";

    fn sent(op: Operation) -> String {
        match command_for(&op).unwrap() {
            Command::Done(c) | Command::Text(c) => c,
            Command::Players => "players".into(),
        }
    }

    fn refused(op: Operation) -> AgentError {
        command_for(&op).unwrap_err()
    }

    #[test]
    fn operations_become_the_battleye_commands() {
        let say = |to: Option<&str>| Operation::Say {
            to: to.map(str::to_owned),
            message: "hello all".into(),
        };
        assert_eq!(sent(say(None)), "say -1 hello all");
        assert_eq!(sent(say(Some("3"))), "say 3 hello all");
        assert_eq!(
            sent(Operation::Announce {
                message: "restart in 5".into()
            }),
            "say -1 restart in 5"
        );
        assert_eq!(
            sent(Operation::Kick {
                player: "2".into(),
                reason: String::new()
            }),
            "kick 2"
        );
        assert_eq!(
            sent(Operation::Kick {
                player: "2".into(),
                reason: "afk".into()
            }),
            "kick 2 afk"
        );
        let ban = |target, minutes| Operation::Ban {
            target,
            minutes,
            reason: "cheating".into(),
        };
        assert_eq!(
            sent(ban(BanTarget::Player("4".into()), Some(60))),
            "ban 4 60 cheating"
        );
        assert_eq!(
            sent(ban(BanTarget::Account(GUID.into()), None)),
            format!("addBan {GUID} 0 cheating")
        );
        assert_eq!(
            sent(ban(
                BanTarget::Address("203.0.113.9".parse().unwrap()),
                Some(5)
            )),
            "addBan 203.0.113.9 5 cheating"
        );
        assert_eq!(sent(Operation::Unban { ban: "12".into() }), "removeBan 12");
        assert_eq!(sent(Operation::Lock), "#lock");
        assert_eq!(sent(Operation::Unlock), "#unlock");
        assert_eq!(
            sent(Operation::Mission {
                name: "co10.Altis".into(),
                difficulty: Some("Veteran".into())
            }),
            "#mission co10.Altis Veteran"
        );
        assert_eq!(
            sent(Operation::Mission {
                name: "co10.Altis".into(),
                difficulty: None
            }),
            "#mission co10.Altis"
        );
        assert_eq!(command_for(&Operation::Players).unwrap(), Command::Players);
        assert_eq!(
            command_for(&Operation::Console {
                command: "bans".into()
            })
            .unwrap(),
            Command::Text("bans".into())
        );
    }

    #[test]
    fn malformed_keys_and_names_are_refused_before_sending() {
        let e = refused(Operation::Kick {
            player: "2 say -1 forged".into(),
            reason: String::new(),
        });
        assert_eq!(e.code, ErrorCode::InvalidSpec);
        let e = refused(Operation::Ban {
            target: BanTarget::Account("not-a-guid".into()),
            minutes: None,
            reason: String::new(),
        });
        assert_eq!(e.code, ErrorCode::InvalidSpec);
        assert!(e.message.contains("GUID"), "{}", e.message);
        assert_eq!(
            refused(Operation::Unban { ban: "1; x".into() }).code,
            ErrorCode::InvalidSpec
        );
        assert_eq!(
            refused(Operation::Mission {
                name: "two words".into(),
                difficulty: None
            })
            .code,
            ErrorCode::InvalidSpec
        );
        assert_eq!(
            refused(Operation::Mission {
                name: "co10.Altis".into(),
                difficulty: Some(String::new())
            })
            .code,
            ErrorCode::InvalidSpec
        );
        assert_eq!(refused(Operation::Save).code, ErrorCode::Unsupported);
    }

    #[test]
    fn players_rows_become_wire_players() {
        let rows = parse::parse_players(
            "Players on server:\n[#] [IP Address]:[Port] [Ping] [GUID] [Name]\n\
             --------------------------------------------------\n\
             0   203.0.113.7:2304      47   4f0c611d97e5379680d79f2f36b2e9e1(OK) Alice\n\
             1   203.0.113.8:2304      -1   -(?) Bob (Lobby)\n\
             (2 players in total)\n",
        );
        let players = wire_players(&rows);
        assert_eq!(players.len(), 2, "{rows:?}");
        assert_eq!(players[0].key, "0");
        assert_eq!(players[0].name, "Alice");
        assert_eq!(players[0].account.as_deref(), Some(GUID));
        assert!(players[0].verified);
        assert_eq!(players[0].address, Some("203.0.113.7".parse().unwrap()));
        assert_eq!(players[0].ping_ms, Some(47));
        assert!(!players[0].in_lobby);
        assert_eq!(players[1].key, "1");
        assert_eq!(players[1].account, None);
        assert!(players[1].in_lobby);
    }
}
