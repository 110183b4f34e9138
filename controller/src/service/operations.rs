//! Admin operations on a running game (players, chat, kicks, bans, lock, save, shutdown,
//! missions, the raw console), in game-neutral terms: the agent's adapter turns them into
//! the game's protocol. An operation the server's game does not have is refused here,
//! before anything is sent.

use languard_shared::wire::operation::{BanTarget, Operation, OperationKind};
use languard_shared::wire::request::{Request, Response};
use serde_json::{Value, json};
use uuid::Uuid;

use super::lifecycle::wire_id;
use super::{App, Ctx};
use crate::error::{Error, Result};
use crate::games::GameKind;

/// How people call an operation, for refusals ("Arma 3 servers have no save operation").
pub fn title(kind: OperationKind) -> &'static str {
    match kind {
        OperationKind::Players => "player list",
        OperationKind::Say => "chat",
        OperationKind::SayToPlayer => "private message",
        OperationKind::Announce => "announce",
        OperationKind::Kick => "kick",
        OperationKind::BanPlayer => "ban by player",
        OperationKind::BanAccount => "ban by account",
        OperationKind::BanAddress => "ban by address",
        OperationKind::Unban => "unban",
        OperationKind::Lock => "lock",
        OperationKind::Unlock => "unlock",
        OperationKind::Save => "save",
        OperationKind::Shutdown => "shutdown",
        OperationKind::Mission => "mission",
        OperationKind::Console => "console",
    }
}

/// Refuses an operation `game` does not have, and text that would break the game's
/// command line.
pub fn check(game: GameKind, operation: &Operation) -> Result<()> {
    let kind = operation.kind();
    if !game.supports(kind) {
        return Err(Error::Unsupported {
            problem: "unsupported-operation",
            detail: format!("{} servers have no {} operation", game.title(), title(kind)),
        });
    }
    if let Some((field, index, code)) = operation.find_control_char() {
        return Err(Error::field(
            field,
            format!("must be one line without control characters (U+{code:04X} at {index})"),
        ));
    }
    Ok(())
}

/// The audit action and details of an operation (`None`: read-only, not audited).
/// Never the free text of a console command beyond its first word.
fn describe(operation: &Operation) -> Option<(&'static str, Value)> {
    Some(match operation {
        Operation::Players => return None,
        Operation::Say { to, .. } => ("server.say", json!({"player": to})),
        Operation::Announce { .. } => ("server.announce", json!({})),
        Operation::Kick { player, reason } => {
            ("server.kick", json!({"player": player, "reason": reason}))
        }
        Operation::Ban {
            target,
            minutes,
            reason,
        } => {
            let target = match target {
                BanTarget::Player(p) => json!({"player": p}),
                BanTarget::Account(a) => json!({"account": a}),
                BanTarget::Address(ip) => json!({"address": ip.to_string()}),
            };
            (
                "server.ban",
                json!({"target": target, "minutes": minutes, "reason": reason}),
            )
        }
        Operation::Unban { ban } => ("server.unban", json!({"ban": ban})),
        Operation::Lock => ("server.lock", json!({})),
        Operation::Unlock => ("server.unlock", json!({})),
        Operation::Save => ("server.save", json!({})),
        Operation::Shutdown { countdown_secs, .. } => {
            ("server.shutdown", json!({"countdown_secs": countdown_secs}))
        }
        Operation::Mission { name, difficulty } => (
            "server.mission",
            json!({"name": name, "difficulty": difficulty}),
        ),
        Operation::Console { command } => {
            let word = command.split_whitespace().next().unwrap_or("");
            ("server.console", json!({"command": word}))
        }
    })
}

impl App {
    /// Carries out `operation` on a running server through its agent; the agent's answer.
    /// A shutdown leaves the server stopped, so it records "should not run" first.
    pub async fn operate(&self, ctx: &Ctx, id: Uuid, operation: Operation) -> Result<Response> {
        let server = self.get_server(id).await?;
        let game = server.game;
        check(game, &operation)?;
        self.check_agent_runs(server.host_id, game)?;
        let shutdown = matches!(operation, Operation::Shutdown { .. });
        if shutdown {
            self.set_desired_running(id, false).await?;
        }
        let audit = describe(&operation);
        let request = Request::Operate {
            server: wire_id(id)?,
            operation,
        };
        let result = self.ask_agent(server.host_id, request).await;
        // Refused outright: the server keeps running, so it should still run. (A timeout
        // or a dropped link leaves the new desired state: the shutdown may have happened.)
        if shutdown && matches!(result, Err(Error::Agent { .. })) {
            self.set_desired_running(id, server.desired_running).await?;
        }
        if let Some((action, mut details)) = audit {
            details["ok"] = json!(result.is_ok());
            self.audit(ctx, action, "server", Some(id.to_string()), details)
                .await;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(kind: OperationKind) -> Operation {
        let text = || "x".to_owned();
        match kind {
            OperationKind::Players => Operation::Players,
            OperationKind::Say => Operation::Say {
                to: None,
                message: text(),
            },
            OperationKind::SayToPlayer => Operation::Say {
                to: Some(text()),
                message: text(),
            },
            OperationKind::Announce => Operation::Announce { message: text() },
            OperationKind::Kick => Operation::Kick {
                player: text(),
                reason: text(),
            },
            OperationKind::BanPlayer | OperationKind::BanAccount | OperationKind::BanAddress => {
                Operation::Ban {
                    target: match kind {
                        OperationKind::BanPlayer => BanTarget::Player(text()),
                        OperationKind::BanAccount => BanTarget::Account(text()),
                        _ => BanTarget::Address("203.0.113.9".parse().unwrap()),
                    },
                    minutes: None,
                    reason: text(),
                }
            }
            OperationKind::Unban => Operation::Unban { ban: text() },
            OperationKind::Lock => Operation::Lock,
            OperationKind::Unlock => Operation::Unlock,
            OperationKind::Save => Operation::Save,
            OperationKind::Shutdown => Operation::Shutdown {
                countdown_secs: 0,
                message: None,
            },
            OperationKind::Mission => Operation::Mission {
                name: text(),
                difficulty: None,
            },
            OperationKind::Console => Operation::Console { command: text() },
        }
    }

    #[test]
    fn operations_the_game_lacks_are_refused_by_name() {
        let mut refused = 0;
        for game in GameKind::ALL {
            for kind in OperationKind::ALL {
                let op = sample(kind);
                assert_eq!(op.kind(), kind);
                match check(game, &op) {
                    Ok(()) => assert!(game.supports(kind)),
                    Err(Error::Unsupported { problem, detail }) => {
                        assert!(!game.supports(kind));
                        assert_eq!(problem, "unsupported-operation");
                        assert_eq!(
                            detail,
                            format!("{} servers have no {} operation", game.title(), title(kind))
                        );
                        refused += 1;
                    }
                    Err(other) => panic!("{other:?}"),
                }
            }
        }
        assert!(refused > 0, "some game lacks some operation");
    }

    #[test]
    fn control_characters_are_refused_with_their_field() {
        let op = Operation::Kick {
            player: "3".into(),
            reason: "bye\nsay -1 forged".into(),
        };
        let game = GameKind::ALL
            .into_iter()
            .find(|g| g.supports(OperationKind::Kick))
            .unwrap();
        match check(game, &op) {
            Err(Error::Validation(f)) => assert_eq!(f[0].field, "reason"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn audit_keeps_only_the_console_command_word() {
        let (action, details) = describe(&Operation::Console {
            command: "#exec ban secret-thing".into(),
        })
        .unwrap();
        assert_eq!(action, "server.console");
        assert_eq!(details, json!({"command": "#exec"}));
        assert!(describe(&Operation::Players).is_none());
    }

    #[test]
    fn every_kind_has_a_title() {
        for k in OperationKind::ALL {
            assert!(!title(k).is_empty());
        }
    }
}
