//! Admin operations and starts with a spec, checked by the agent before anything
//! reaches a game. The servers here never run: an operation that got past the checks
//! would fail with `NotRunning` (the game's control has no connection), so any other
//! answer proves the refusal came first and nothing was sent.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use languard_agent::config::{AgentConfig, TelemetryConfig};
use languard_agent::host::Agent;
use languard_shared::arma::spec::Arma3Spec;
use languard_shared::wire::request::ErrorCode;
use languard_shared::wire::spec::GameSpec;
use languard_shared::wire::{BanTarget, Operation, Request, Response, ServerId, ServerSpec};

fn spec(id: &str) -> ServerSpec {
    ServerSpec {
        id: ServerId::new(id).unwrap(),
        name: "Operate test".into(),
        game: GameSpec::Arma3(Box::new(Arma3Spec {
            // Never started: the missing file makes a start fail at once.
            executable: "/nonexistent/arma3server_x64".into(),
            game_port: 2302,
            rcon_port: 2312,
            rcon_password: "OpSecret1".into(),
            max_ping: None,
            restrict_rcon: None,
            server: Default::default(),
            basic: Default::default(),
            profile: None,
            launch: Default::default(),
        })),
        restart: Default::default(),
        timing: Default::default(),
        environment: Default::default(),
    }
}

async fn agent(dir: &std::path::Path) -> Agent {
    Agent::start(AgentConfig {
        data_dir: dir.join("agent"),
        servers_dir: dir.join("servers"),
        telemetry: TelemetryConfig {
            metrics_interval_secs: 3600,
        },
        ..AgentConfig::default()
    })
    .await
    .unwrap()
}

fn id(s: &str) -> ServerId {
    ServerId::new(s).unwrap()
}

async fn operate(agent: &Agent, server: &str, operation: Operation) -> Result<Response, ErrorCode> {
    agent
        .handle(Request::Operate {
            server: id(server),
            operation,
        })
        .await
        .map_err(|e| e.code)
}

#[tokio::test]
async fn operations_the_game_lacks_are_refused_before_anything_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let agent = agent(dir.path()).await;
    agent
        .handle(Request::ApplySpec {
            spec: Box::new(spec("a")),
        })
        .await
        .unwrap();

    let err = agent
        .handle(Request::Operate {
            server: id("a"),
            operation: Operation::Save,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Unsupported);
    assert!(
        err.message.contains("Arma 3") && err.message.contains("save"),
        "{}",
        err.message
    );
    // An operation the game has gets as far as the (unconnected) control.
    assert_eq!(
        operate(&agent, "a", Operation::Lock).await,
        Err(ErrorCode::NotRunning)
    );
    // Unknown servers are reported as such, whatever the operation.
    assert_eq!(
        operate(&agent, "nope", Operation::Save).await,
        Err(ErrorCode::UnknownServer)
    );
    agent.shutdown().await;
}

#[tokio::test]
async fn control_characters_are_refused_in_every_text_field() {
    let dir = tempfile::tempdir().unwrap();
    let agent = agent(dir.path()).await;
    agent
        .handle(Request::ApplySpec {
            spec: Box::new(spec("a")),
        })
        .await
        .unwrap();
    let forged = "hi\n#shutdown".to_owned();
    for operation in [
        Operation::Say {
            to: None,
            message: forged.clone(),
        },
        Operation::Say {
            to: Some("1\r".into()),
            message: "x".into(),
        },
        Operation::Kick {
            player: "1".into(),
            reason: forged.clone(),
        },
        Operation::Ban {
            target: BanTarget::Account("0123456789abcdef0123456789abcde\0".into()),
            minutes: None,
            reason: String::new(),
        },
        Operation::Console {
            command: forged.clone(),
        },
        Operation::Shutdown {
            countdown_secs: 0,
            message: Some(forged.clone()),
        },
    ] {
        let kind = operation.kind();
        let err = agent
            .handle(Request::Operate {
                server: id("a"),
                operation,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidSpec, "{kind}");
        assert!(err.message.contains("control character"), "{}", err.message);
    }
    agent.shutdown().await;
}

#[tokio::test]
async fn a_shutdown_countdown_beyond_a_day_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let agent = agent(dir.path()).await;
    agent
        .handle(Request::ApplySpec {
            spec: Box::new(spec("a")),
        })
        .await
        .unwrap();
    assert_eq!(
        operate(
            &agent,
            "a",
            Operation::Shutdown {
                countdown_secs: 24 * 60 * 60 + 1,
                message: None,
            },
        )
        .await,
        Err(ErrorCode::InvalidSpec)
    );
    // Without a countdown on a stopped server it is a plain stop.
    let Ok(Response::Status(status)) = operate(
        &agent,
        "a",
        Operation::Shutdown {
            countdown_secs: 0,
            message: None,
        },
    )
    .await
    else {
        panic!("status");
    };
    assert!(status.state.is_down(), "{status:?}");
    agent.shutdown().await;
}

#[tokio::test]
async fn a_start_carrying_another_servers_spec_is_refused_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let agent = agent(dir.path()).await;
    for request in [
        Request::Start {
            server: id("a"),
            spec: Some(Box::new(spec("b"))),
        },
        Request::Restart {
            server: id("a"),
            spec: Some(Box::new(spec("b"))),
        },
    ] {
        let err = agent.handle(request).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidSpec);
    }
    let Response::Inventory(servers) = agent.handle(Request::Inventory).await.unwrap() else {
        panic!("inventory");
    };
    assert!(servers.is_empty(), "{servers:?}");
    // A start with a valid spec of an unknown server creates it (the launch itself
    // fails here: the executable does not exist).
    let err = agent
        .handle(Request::Start {
            server: id("b"),
            spec: Some(Box::new(spec("b"))),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::ExecutableRefused);
    let Response::Inventory(servers) = agent.handle(Request::Inventory).await.unwrap() else {
        panic!("inventory");
    };
    assert_eq!(servers.len(), 1);
    assert_eq!(servers[0].server, id("b"));
    agent.shutdown().await;
}
