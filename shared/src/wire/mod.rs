//! What the controller and the agent say to each other. The agent's in-process
//! interface (used by tests until the link exists) and the mTLS link carry exactly
//! these types, so nothing is translated on the way.
//!
//! - [`spec`]: the desired state of one game server, as the controller owns it.
//! - [`request`]: controller → agent requests; each gets exactly one response, with a
//!   typed [`request::AgentError`].
//! - [`event`]: agent → controller events, each with a per-agent sequence number.

pub mod event;
pub mod frame;
pub mod ids;
pub mod link;
pub mod request;
pub mod spec;

pub use event::{Event, EventEnvelope, ExitInfo, ServerState, ServerStatus};
pub use ids::ServerId;
pub use request::{AgentError, ErrorCode, Request, Response};
pub use spec::ServerSpec;

/// Version of this message set; a hello exchange refuses a peer with another major.
pub const PROTOCOL_VERSION: u32 = 1;

/// Milliseconds since the Unix epoch: the one time format on the wire.
pub type UnixMillis = i64;

/// The current time as [`UnixMillis`].
pub fn now_millis() -> UnixMillis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::event::{LogLine, MetricsSample, PlayerEvent};
    use super::request::{BanTarget, FileEntry};
    use super::spec::{Arma3Spec, GameSpec, RestartPolicy, Timing};
    use super::*;
    use crate::arma::config::ServerConfig;
    use crate::arma::rcon::parse::ChatChannel;
    use crate::arma::rpt::Level;

    fn id() -> ServerId {
        ServerId::new("srv-1").unwrap()
    }

    fn round_trip<
        T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    >(
        value: &T,
    ) {
        let json = serde_json::to_string(value).unwrap();
        let back: T = serde_json::from_str(&json).unwrap();
        assert_eq!(&back, value, "{json}");
    }

    pub(crate) fn spec() -> ServerSpec {
        ServerSpec {
            id: id(),
            name: "Altis \"Life\" ✓".into(),
            game: GameSpec::Arma3(Box::new(Arma3Spec {
                executable: "/srv/arma3/arma3server_x64".into(),
                game_port: 2302,
                rcon_port: 2312,
                rcon_password: "s3cret".into(),
                max_ping: Some(250),
                restrict_rcon: None,
                server: ServerConfig {
                    hostname: "Hostile \"}; class X {".into(),
                    ..ServerConfig::default()
                },
                basic: Default::default(),
                profile: None,
                launch: Default::default(),
            })),
            restart: RestartPolicy::default(),
            timing: Timing::default(),
            environment: [("LD_LIBRARY_PATH".to_string(), "/srv/lib".to_string())].into(),
        }
    }

    #[test]
    fn every_request_round_trips() {
        let s = id();
        let requests = vec![
            Request::Inventory,
            Request::ApplySpec {
                spec: Box::new(spec()),
            },
            Request::RemoveServer { server: s.clone() },
            Request::Status { server: s.clone() },
            Request::Start { server: s.clone() },
            Request::Stop { server: s.clone() },
            Request::Restart { server: s.clone() },
            Request::Kill { server: s.clone() },
            Request::Rcon {
                server: s.clone(),
                command: "players".into(),
            },
            Request::Say {
                server: s.clone(),
                player: Some(3),
                message: "hi Максим".into(),
            },
            Request::Kick {
                server: s.clone(),
                player: 1,
                reason: "afk".into(),
            },
            Request::Ban {
                server: s.clone(),
                target: BanTarget::Ip("198.51.100.7".parse().unwrap()),
                minutes: None,
                reason: "cheat".into(),
            },
            Request::Ban {
                server: s.clone(),
                target: BanTarget::Guid("f8960b9fd7cf711046c1df2ab8d534b2".into()),
                minutes: Some(60),
                reason: String::new(),
            },
            Request::Unban {
                server: s.clone(),
                index: 2,
            },
            Request::Lock { server: s.clone() },
            Request::Unlock { server: s.clone() },
            Request::Mission {
                server: s.clone(),
                template: "co10_Escape.Altis".into(),
                difficulty: Some("Custom".into()),
            },
            Request::Players { server: s.clone() },
            Request::ListFiles {
                server: s.clone(),
                dir: "mpmissions".into(),
            },
            Request::ReadFile {
                server: s.clone(),
                path: "server.cfg".into(),
            },
            Request::WriteFile {
                server: s.clone(),
                path: "mpmissions/x.Altis.pbo".into(),
                data: vec![0, 1, 255],
            },
            Request::DeleteFile {
                server: s,
                path: "x".into(),
            },
        ];
        for r in &requests {
            round_trip(r);
        }
        round_trip(&Response::Files(vec![FileEntry {
            name: "a".into(),
            dir: false,
            size: 3,
            modified_ms: 1,
        }]));
        round_trip(&AgentError::new(ErrorCode::PortInUse, "port 2302 is taken"));
    }

    #[test]
    fn every_event_round_trips() {
        let status = ServerStatus {
            server: id(),
            state: ServerState::Crashed,
            pid: Some(42),
            since: 1,
            detail: Some("exit code 3".into()),
            exit: Some(ExitInfo {
                code: Some(3),
                signal: None,
            }),
            restarts: 2,
        };
        let events = vec![
            Event::Status(status),
            Event::Log {
                server: id(),
                lines: vec![LogLine {
                    at: 5,
                    level: Level::Warning,
                    text: "Warning Message: \u{fffd} bad byte".into(),
                }],
            },
            Event::Metrics {
                server: None,
                sample: MetricsSample {
                    cpu_percent: 12.5,
                    memory_bytes: 1 << 30,
                    ..MetricsSample::default()
                },
            },
            Event::Player {
                server: id(),
                event: PlayerEvent::Chat {
                    channel: ChatChannel::Side,
                    name: "Zoë (Medic)".into(),
                    text: "need: help".into(),
                },
            },
            Event::Gap {
                records: 3,
                lines: 3000,
                first: 1,
                last: 2,
            },
        ];
        for (seq, event) in events.into_iter().enumerate() {
            round_trip(&EventEnvelope {
                seq: seq as u64 + 1,
                at: now_millis(),
                event,
            });
        }
    }

    #[test]
    fn debug_output_never_carries_secrets() {
        let mut s = spec();
        let super::spec::GameSpec::Arma3(a) = &mut s.game;
        a.server.password_admin = Some("AdminPw99".into());
        let request = Request::ApplySpec {
            spec: Box::new(s.clone()),
        };
        for text in [format!("{s:?}"), format!("{request:?}")] {
            assert!(!text.contains("s3cret"), "{text}");
            assert!(!text.contains("AdminPw99"), "{text}");
            assert!(text.contains("rcon_port"), "{text}");
        }
    }

    #[test]
    fn a_spec_with_a_path_like_id_is_refused() {
        let json = serde_json::to_string(&spec())
            .unwrap()
            .replace("srv-1", "../../etc");
        assert!(serde_json::from_str::<ServerSpec>(&json).is_err());
    }
}
