//! The wire messages round-trip through JSON unchanged, keep secrets out of `Debug`,
//! still read version 1 spellings, and refuse path-like server ids. An Arma 3 spec is
//! the sample payload (the wire module itself knows no game).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use languard_shared::arma::config::ServerConfig;
use languard_shared::arma::spec::Arma3Spec;
use languard_shared::wire::event::{LogLine, MetricsSample};
use languard_shared::wire::request::FileEntry;
use languard_shared::wire::spec::{GameSpec, RestartMode, RestartPolicy, Timing};
use languard_shared::wire::*;

fn id() -> ServerId {
    ServerId::new("srv-1").unwrap()
}

fn round_trip<T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(
    value: &T,
) {
    let json = serde_json::to_string(value).unwrap();
    let back: T = serde_json::from_str(&json).unwrap();
    assert_eq!(&back, value, "{json}");
}

fn spec() -> ServerSpec {
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
        Request::Start {
            server: s.clone(),
            spec: None,
        },
        Request::Start {
            server: s.clone(),
            spec: Some(Box::new(spec())),
        },
        Request::Stop { server: s.clone() },
        Request::Restart {
            server: s.clone(),
            spec: None,
        },
        Request::Kill { server: s.clone() },
    ];
    let operations = vec![
        Operation::Players,
        Operation::Console {
            command: "players".into(),
        },
        Operation::Say {
            to: Some("3".into()),
            message: "hi Максим".into(),
        },
        Operation::Announce {
            message: "restart in 5".into(),
        },
        Operation::Kick {
            player: "1".into(),
            reason: "afk".into(),
        },
        Operation::Ban {
            target: BanTarget::Address("198.51.100.7".parse().unwrap()),
            minutes: None,
            reason: "cheat".into(),
        },
        Operation::Ban {
            target: BanTarget::Account("f8960b9fd7cf711046c1df2ab8d534b2".into()),
            minutes: Some(60),
            reason: String::new(),
        },
        Operation::Unban { ban: "2".into() },
        Operation::Lock,
        Operation::Unlock,
        Operation::Save,
        Operation::Shutdown {
            countdown_secs: 30,
            message: Some("bye".into()),
        },
        Operation::Mission {
            name: "co10_Escape.Altis".into(),
            difficulty: Some("Custom".into()),
        },
    ];
    let mut requests = requests;
    requests.extend(operations.into_iter().map(|operation| Request::Operate {
        server: s.clone(),
        operation,
    }));
    requests.extend([
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
    ]);
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
    round_trip(&Response::Players(vec![Player {
        key: "0".into(),
        name: "Zoë".into(),
        account: Some("f8960b9fd7cf711046c1df2ab8d534b2".into()),
        verified: true,
        address: Some("203.0.113.5".parse().unwrap()),
        ping_ms: Some(31),
        in_lobby: false,
    }]));
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
                level: LogLevel::Warn,
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
        Event::Player {
            server: id(),
            event: PlayerEvent::Identified {
                key: "0".into(),
                name: "Zoë".into(),
                account: "f8960b9fd7cf711046c1df2ab8d534b2".into(),
                verified: false,
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
    let GameSpec::Arma3(a) = &mut s.game;
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
fn version_one_spellings_are_still_read() {
    let line: LogLine = serde_json::from_str(r#"{"at":1,"level":"warning","text":"x"}"#).unwrap();
    assert_eq!(line.level, LogLevel::Warn);
    assert_eq!(serde_json::to_string(&line.level).unwrap(), r#""warn""#);
    let policy: RestartPolicy =
        serde_json::from_str(r#"{"mode":"on_failure","max_restarts":3,"window_secs":60}"#).unwrap();
    assert_eq!(policy.mode, RestartMode::OnCrash);
    assert_eq!(policy.crash_loop_max, 3);
    assert_eq!(policy.crash_loop_window_secs, 60);
}

#[test]
fn time_conversions_agree_and_never_panic() {
    for ms in [0, 1, 1_700_000_000_123, -5_000] {
        let t = millis_to_system_time(ms).unwrap();
        assert_eq!(system_time_to_millis(t), ms);
    }
    // Far beyond what SystemTime holds on some platforms: no panic, either way.
    let _ = millis_to_system_time(i64::MAX);
    let _ = millis_to_system_time(i64::MIN);
}

#[test]
fn a_spec_with_a_path_like_id_is_refused() {
    let json = serde_json::to_string(&spec())
        .unwrap()
        .replace("srv-1", "../../etc");
    assert!(serde_json::from_str::<ServerSpec>(&json).is_err());
}
