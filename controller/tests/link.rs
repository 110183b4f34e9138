//! The link port's enrollment side, in process over real TLS: every refusal is a clear
//! `Refused` and leaves the token usable; only a good request consumes it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::Harness;
use languard_controller::store::Role;
use languard_shared::wire::PROTOCOL_VERSION;
use languard_shared::wire::event::{ServerState, ServerStatus};
use languard_shared::wire::frame::FramedLink;
use languard_shared::wire::link::{AgentMessage, ControllerMessage, JoinTokenSecret};
use languard_shared::wire::request::{AgentError, ErrorCode, Request, Response};
use rustls::pki_types::ServerName;
use serde_json::json;
use tokio::io::AsyncWriteExt;

type Conn = FramedLink<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

async fn connect(h: &Harness, addr: std::net::SocketAddr) -> Conn {
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(h.app.ca.root_store().unwrap())
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap();
    FramedLink::new(tls, 64 * 1024)
}

async fn answer(c: &mut Conn) -> Option<ControllerMessage> {
    tokio::time::timeout(Duration::from_secs(10), c.recv::<ControllerMessage>())
        .await
        .ok()
        .and_then(Result::ok)
        .flatten()
}

fn enroll(token: &str, csr: &str, os: &str) -> AgentMessage {
    AgentMessage::Enroll {
        protocol_version: PROTOCOL_VERSION,
        agent_version: "test".into(),
        token: JoinTokenSecret(token.into()),
        csr_pem: csr.into(),
        hostname: "h1".into(),
        os: os.into(),
    }
}

async fn refused(h: &Harness, addr: std::net::SocketAddr, msg: AgentMessage) -> String {
    let mut c = connect(h, addr).await;
    c.send(&msg).await.unwrap();
    match answer(&mut c).await {
        Some(ControllerMessage::Refused { reason }) => reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn enrollment_refuses_bad_requests_and_consumes_the_token_once() {
    let h = Harness::with_config(|c| c.link.listen = Some("127.0.0.1:0".parse().unwrap())).await;
    let (addr, _task) = h.app.spawn_link().await.unwrap().unwrap();
    let admin = h.user("root", Role::Admin).await;
    let (host, _) = h.server(&admin, 2302).await;
    let (_, t) = h
        .send(
            "POST",
            &format!("/api/v1/hosts/{host}/join-tokens"),
            &admin,
            json!({}),
        )
        .await;
    let token = t["token"].as_str().unwrap().to_owned();
    let key = rcgen::KeyPair::generate().unwrap();
    let csr = rcgen::CertificateParams::default()
        .serialize_request(&key)
        .unwrap()
        .pem()
        .unwrap();

    // A garbage frame ends the connection without an answer.
    let mut c = connect(&h, addr).await;
    c.send(&json!({"enroll": "nonsense"})).await.unwrap();
    assert!(answer(&mut c).await.is_none());
    // An oversized frame too.
    let mut c = connect(&h, addr).await;
    c.get_mut_io()
        .write_all(&u32::MAX.to_be_bytes())
        .await
        .unwrap();
    c.get_mut_io().flush().await.unwrap();
    assert!(answer(&mut c).await.is_none());

    let hello = AgentMessage::Hello {
        protocol_version: PROTOCOL_VERSION,
        agent_version: "x".into(),
        inventory: vec![],
        last_acked_seq: 0,
        games: vec![],
    };
    assert!(refused(&h, addr, hello).await.contains("only enroll"));
    assert_eq!(
        refused(&h, addr, enroll("lgj_garbage", &csr, "linux")).await,
        "malformed join token"
    );
    let (_, other) = languard_controller::fleet::join::new_token(
        &h.app.ca.fingerprint(),
        Duration::from_secs(60),
    );
    let forged = format!(
        "lgj_{}.{}.{}.{}",
        other.id.simple(),
        "0".repeat(64),
        4_000_000_000u64,
        h.app.ca.fingerprint()
    );
    assert_eq!(
        refused(&h, addr, enroll(&forged, &csr, "linux")).await,
        "invalid join token"
    );
    assert!(
        refused(&h, addr, enroll(&token, "not a csr", "linux"))
            .await
            .contains("certificate request")
    );
    assert!(
        refused(&h, addr, enroll(&token, &csr, "beos"))
            .await
            .contains("os must be")
    );
    let mut future = enroll(&token, &csr, "linux");
    if let AgentMessage::Enroll {
        protocol_version, ..
    } = &mut future
    {
        *protocol_version = PROTOCOL_VERSION + 1;
    }
    assert!(refused(&h, addr, future).await.contains("protocol"));
    // None of that used the token or touched the host.
    let (_, hv) = h.get(&format!("/api/v1/hosts/{host}"), &admin).await;
    assert_eq!(
        (hv["status"].as_str(), hv["agent_id"].as_str()),
        (Some("pending"), None)
    );

    let mut c = connect(&h, addr).await;
    c.send(&enroll(&token, &csr, "linux")).await.unwrap();
    let Some(ControllerMessage::Enrolled {
        agent_id,
        host_id,
        cert_pem,
        ca_pem,
    }) = answer(&mut c).await
    else {
        panic!("expected Enrolled");
    };
    assert_eq!(host_id, host);
    assert_eq!(ca_pem, h.app.ca.cert_pem());
    assert!(cert_pem.contains("BEGIN CERTIFICATE"));
    let (_, hv) = h.get(&format!("/api/v1/hosts/{host}"), &admin).await;
    assert_eq!(
        (hv["status"].as_str(), hv["agent_id"].as_str()),
        (Some("offline"), Some(agent_id.as_str()))
    );
    assert_eq!(
        refused(&h, addr, enroll(&token, &csr, "linux")).await,
        "join token already used"
    );
}

/// Enrolls an agent for `host` and opens its session with a hello advertising `games`.
async fn agent_session(
    h: &Harness,
    addr: std::net::SocketAddr,
    admin: &str,
    host: &str,
    games: Vec<languard_shared::games::GameKind>,
) -> Conn {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let (_, t) = h
        .send(
            "POST",
            &format!("/api/v1/hosts/{host}/join-tokens"),
            admin,
            json!({}),
        )
        .await;
    let token = t["token"].as_str().unwrap().to_owned();
    let key = rcgen::KeyPair::generate().unwrap();
    let csr = rcgen::CertificateParams::default()
        .serialize_request(&key)
        .unwrap()
        .pem()
        .unwrap();
    let mut c = connect(h, addr).await;
    c.send(&enroll(&token, &csr, "linux")).await.unwrap();
    let Some(ControllerMessage::Enrolled { cert_pem, .. }) = answer(&mut c).await else {
        panic!("expected Enrolled");
    };
    let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(h.app.ca.root_store().unwrap())
    .with_client_auth_cert(vec![cert], key)
    .unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap();
    let mut c = FramedLink::new(tls, 4 * 1024 * 1024);
    c.send(&AgentMessage::Hello {
        protocol_version: PROTOCOL_VERSION,
        agent_version: "test".into(),
        inventory: vec![],
        last_acked_seq: 0,
        games,
    })
    .await
    .unwrap();
    match answer(&mut c).await {
        Some(ControllerMessage::Welcome { .. }) => c,
        other => panic!("expected Welcome, got {other:?}"),
    }
}

/// Answers every request like an agent whose servers start fine (or, with `refuse_start`,
/// whose executable is not allowed); records the requests.
fn fake_agent(mut c: Conn, refuse_start: bool) -> Arc<std::sync::Mutex<Vec<Request>>> {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok(Some(msg)) = c.recv::<ControllerMessage>().await {
            let ControllerMessage::Request { id, request } = msg else {
                continue;
            };
            let result = match &request {
                Request::Start { .. } if refuse_start => Err(AgentError::new(
                    ErrorCode::ExecutableRefused,
                    "not on the allow-list",
                )),
                Request::Start { server, .. } => Ok(Response::Status(ServerStatus {
                    server: server.clone(),
                    state: ServerState::Running,
                    pid: Some(42),
                    since: 1_700_000_000_000,
                    detail: None,
                    exit: None,
                    restarts: 0,
                })),
                _ => Ok(Response::Done),
            };
            log.lock().unwrap().push(request);
            if c.send(&AgentMessage::Response { id, result })
                .await
                .is_err()
            {
                return;
            }
        }
    });
    seen
}

async fn online(h: &Harness, host: &str) {
    let id = uuid::Uuid::parse_str(host).unwrap();
    for _ in 0..200 {
        if h.app.fleet.is_online(id) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the agent never came online");
}

/// A start is one request carrying the spec, recorded as "should run" first; an agent
/// that does not run the server's game is refused before anything is sent.
#[tokio::test]
async fn start_sends_one_request_with_the_spec_and_respects_the_agents_games() {
    use languard_shared::games::GameKind;
    let h = Harness::with_config(|c| c.link.listen = Some("127.0.0.1:0".parse().unwrap())).await;
    let (addr, _task) = h.app.spawn_link().await.unwrap().unwrap();
    let admin = h.user("root", Role::Admin).await;
    let (host, server) = h.server(&admin, 2302).await;
    let (s, v) = h
        .send(
            "PUT",
            &format!("/api/v1/servers/{server}/config/sections/rcon"),
            &admin,
            json!({"content": {"password": "Secret123"}, "revision": 0}),
        )
        .await;
    assert_eq!(s, 200, "{v}");

    // An agent that only runs another game.
    let other: Vec<GameKind> = GameKind::ALL
        .into_iter()
        .filter(|g| *g != GameKind::Arma3)
        .collect();
    let seen = fake_agent(agent_session(&h, addr, &admin, &host, other).await, false);
    online(&h, &host).await;
    let (s, p) = h
        .send(
            "POST",
            &format!("/api/v1/servers/{server}/start"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(s, 422, "{p}");
    assert_eq!(p["type"], "https://languard.dev/problems/unsupported-game");
    assert!(p["detail"].as_str().unwrap().contains("Arma 3"), "{p}");
    let (_, srv) = h.get(&format!("/api/v1/servers/{server}"), &admin).await;
    assert_eq!(srv["desired_running"], false);
    assert!(
        !seen
            .lock()
            .unwrap()
            .iter()
            .any(|r| matches!(r, Request::Start { .. })),
        "nothing was started"
    );

    // The agent reconnects (a new connection replaces the old) running the game.
    // An agent that refuses the start outright: the server is not meant to run after all.
    let seen = fake_agent(
        agent_session(&h, addr, &admin, &host, vec![GameKind::Arma3]).await,
        true,
    );
    online(&h, &host).await;
    let (s, p) = h
        .send(
            "POST",
            &format!("/api/v1/servers/{server}/start"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(
        (s, p["code"].as_str()),
        (422, Some("executable_refused")),
        "{p}"
    );
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .any(|r| matches!(r, Request::Start { .. }))
    );
    let (_, srv) = h.get(&format!("/api/v1/servers/{server}"), &admin).await;
    assert_eq!(srv["desired_running"], false, "a refused start is undone");

    let seen = fake_agent(
        agent_session(&h, addr, &admin, &host, vec![GameKind::Arma3]).await,
        false,
    );
    online(&h, &host).await;
    // Let reconcile push the (stopped) server's spec first.
    for _ in 0..200 {
        if !seen.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = seen.lock().unwrap().len();
    let (s, st) = h
        .send(
            "POST",
            &format!("/api/v1/servers/{server}/start"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(s, 200, "{st}");
    assert_eq!(
        (st["state"].as_str(), st["pid"].as_i64()),
        (Some("running"), Some(42))
    );
    let requests: Vec<Request> = seen.lock().unwrap()[before..].to_vec();
    assert_eq!(requests.len(), 1, "one round trip: {requests:?}");
    let Request::Start {
        server: sid,
        spec: Some(spec),
    } = &requests[0]
    else {
        panic!("expected a start with the spec: {requests:?}");
    };
    assert_eq!(sid.as_str(), server);
    assert_eq!(spec.game.kind(), GameKind::Arma3);
    let (_, srv) = h.get(&format!("/api/v1/servers/{server}"), &admin).await;
    assert_eq!(srv["desired_running"], true);
}

/// A fresh key and a CSR over it.
fn key_and_csr() -> (rcgen::KeyPair, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let csr = rcgen::CertificateParams::default()
        .serialize_request(&key)
        .unwrap()
        .pem()
        .unwrap();
    (key, csr)
}

/// Enrolls an agent for `host`: its certificate (PEM) and key.
async fn enrolled_cert(
    h: &Harness,
    addr: std::net::SocketAddr,
    admin: &str,
    host: &str,
) -> (String, rcgen::KeyPair) {
    let (_, t) = h
        .send(
            "POST",
            &format!("/api/v1/hosts/{host}/join-tokens"),
            admin,
            json!({}),
        )
        .await;
    let (key, csr) = key_and_csr();
    let mut c = connect(h, addr).await;
    c.send(&enroll(t["token"].as_str().unwrap(), &csr, "linux"))
        .await
        .unwrap();
    let Some(ControllerMessage::Enrolled { cert_pem, .. }) = answer(&mut c).await else {
        panic!("expected Enrolled");
    };
    (cert_pem, key)
}

/// Opens an agent session with `cert` and says hello as `agent_version`: the connection
/// after the Welcome, or what the controller did instead (a refusal, a closed
/// connection, a failed handshake).
async fn dial(
    h: &Harness,
    addr: std::net::SocketAddr,
    (cert_pem, key): (&str, &rcgen::KeyPair),
    agent_version: &str,
) -> Result<Conn, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(h.app.ca.root_store().unwrap())
    .with_client_auth_cert(vec![cert], key)
    .unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let mut c = FramedLink::new(tls, 4 * 1024 * 1024);
    c.send(&AgentMessage::Hello {
        protocol_version: PROTOCOL_VERSION,
        agent_version: agent_version.into(),
        inventory: vec![],
        last_acked_seq: 0,
        games: vec![],
    })
    .await
    .map_err(|e| format!("hello: {e}"))?;
    match answer(&mut c).await {
        Some(ControllerMessage::Welcome { .. }) => Ok(c),
        other => Err(format!("{other:?}")),
    }
}

/// Renewal replaces the certificate: once the new one has been used, the old one opens
/// nothing; after a revocation neither does.
#[tokio::test]
async fn renewed_certificates_supersede_the_old_and_revocation_ends_both() {
    let h = Harness::with_config(|c| c.link.listen = Some("127.0.0.1:0".parse().unwrap())).await;
    let (addr, _task) = h.app.spawn_link().await.unwrap().unwrap();
    let admin = h.user("root", Role::Admin).await;
    let (host, _) = h.server(&admin, 2302).await;
    let (old_pem, old_key) = enrolled_cert(&h, addr, &admin, &host).await;
    let old = (old_pem.as_str(), &old_key);

    let mut c = dial(&h, addr, old, "test").await.unwrap();
    let (new_key, csr) = key_and_csr();
    c.send(&AgentMessage::RenewRequest { csr_pem: csr })
        .await
        .unwrap();
    let new_pem = loop {
        match answer(&mut c).await {
            Some(ControllerMessage::Renewed { cert_pem, .. }) => break cert_pem,
            Some(_) => continue,
            None => panic!("no renewal"),
        }
    };
    drop(c);
    let new = (new_pem.as_str(), &new_key);
    // Until the new certificate is used, the old one still works (the agent may have
    // lost the answer).
    drop(dial(&h, addr, old, "test").await.unwrap());
    drop(dial(&h, addr, new, "test").await.unwrap());
    let refused = dial(&h, addr, old, "test").await.err().unwrap();
    assert!(refused.contains("superseded"), "{refused}");
    drop(dial(&h, addr, new, "test").await.unwrap());
    let (_, audit) = h.get("/api/v1/audit?action=agent.refused", &admin).await;
    assert_eq!(
        audit["items"][0]["details"]["reason"], "certificate not current",
        "{audit}"
    );

    let (s, _) = h
        .send(
            "POST",
            &format!("/api/v1/hosts/{host}/revoke"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(s, 200);
    for cert in [old, new] {
        assert!(dial(&h, addr, cert, "test").await.is_err());
    }
}

/// What a compromised agent sends is stored within limits: its build string, the text
/// and times of its log lines.
#[tokio::test]
async fn agent_text_and_times_are_stored_within_limits() {
    use languard_shared::wire::event::{Event, EventEnvelope, LogLevel, LogLine};
    let h = Harness::with_config(|c| c.link.listen = Some("127.0.0.1:0".parse().unwrap())).await;
    let (addr, _task) = h.app.spawn_link().await.unwrap().unwrap();
    let admin = h.user("root", Role::Admin).await;
    let (host, server) = h.server(&admin, 2302).await;
    let (pem, key) = enrolled_cert(&h, addr, &admin, &host).await;
    let version = format!("9.9\u{1b}]0;pwned\u{7}\r\n{}", "v".repeat(100_000));
    let mut c = dial(&h, addr, (&pem, &key), &version).await.unwrap();
    // The link stores the build string just after its welcome.
    let host_id = uuid::Uuid::parse_str(&host).unwrap();
    let mut stored = None;
    for _ in 0..200 {
        stored = h
            .app
            .store
            .get_host(host_id)
            .await
            .unwrap()
            .unwrap()
            .agent_version;
        if stored.as_deref() != Some("test") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stored = stored.unwrap();
    assert!(stored.starts_with("9.9]0;pwned"), "{stored:?}");
    assert!(stored.chars().count() <= 64 && !stored.chars().any(char::is_control));

    let year_3000 = 32_503_680_000_000;
    let sid = languard_shared::wire::ServerId::new(server.clone()).unwrap();
    c.send(&AgentMessage::Events {
        events: vec![EventEnvelope {
            seq: 1,
            at: year_3000,
            event: Event::Log {
                server: sid,
                lines: vec![
                    LogLine {
                        at: year_3000,
                        level: LogLevel::Info,
                        text: "ü".repeat(1024 * 1024),
                    },
                    LogLine {
                        at: 0,
                        level: LogLevel::Info,
                        text: "from 1970".into(),
                    },
                ],
            },
        }],
    })
    .await
    .unwrap();
    loop {
        match answer(&mut c).await {
            Some(ControllerMessage::Ack { upto: 1 }) => break,
            Some(_) => continue,
            None => panic!("no ack"),
        }
    }
    let page = h
        .app
        .store
        .query_logs(languard_controller::store::LogQuery {
            server_id: Some(uuid::Uuid::parse_str(&server).unwrap()),
            min_level: None,
            from: None,
            to: None,
            contains: None,
            before: None,
            limit: 10,
        })
        .await
        .unwrap();
    let items = page.items;
    assert_eq!(items.len(), 2, "{items:?}");
    let now = time::OffsetDateTime::now_utc();
    assert!(
        items[0].ts <= now + time::Duration::minutes(6),
        "{}",
        items[0].ts
    );
    assert!(
        items[1].ts >= now - time::Duration::days(31),
        "{}",
        items[1].ts
    );
    let long = &items[0].text;
    assert!(
        long.len() <= 16 * 1024 && long.ends_with("[truncated]"),
        "{}",
        long.len()
    );
    assert_eq!(items[1].text, "from 1970");
}
