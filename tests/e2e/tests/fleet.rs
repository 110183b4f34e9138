//! The fleet from end to end with real binaries: a controller, two agents with their own
//! data folders, simulated game servers; driven through the REST API and the live
//! WebSocket like an admin would. Runs on SQLite, and on PostgreSQL when
//! `LANGUARD_TEST_PG_URL` is set (CI sets it).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use languard_e2e::fleet::{AgentProc, Api, Controller, PgDatabase};
use languard_shared::wire::PROTOCOL_VERSION;
use languard_shared::wire::event::{Event, EventEnvelope, LogLine};
use languard_shared::wire::frame::{FramedLink, MAX_FRAME_LEN};
use languard_shared::wire::ids::ServerId;
use languard_shared::wire::link::{AgentMessage, ControllerMessage};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

/// Simulator knobs: no players or chat, a numbered log line every 20 ms.
const SPAM: &[&str] = &[
    "-sim_players=0",
    "-sim_chat_interval_ms=0",
    "-sim_startup_delay_ms=100",
    "-sim_rpt_spam=50",
    "-sim_rpt_spam_numbered=1",
];

fn outage() -> Duration {
    let secs = std::env::var("LANGUARD_E2E_OUTAGE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    Duration::from_secs(secs)
}

async fn wait_host(api: &Api, host: &str, status: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let (_, h) = api.get(&format!("/hosts/{host}")).await;
        if h["status"] == status {
            return;
        }
        assert!(Instant::now() < deadline, "host {host} not {status}: {h}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The numbers of the simulator's numbered spam lines, in stored order.
fn spam_numbers(lines: &[Value]) -> Vec<u64> {
    lines
        .iter()
        .filter_map(|l| {
            let t = l["text"].as_str()?;
            let rest = t.strip_suffix(']')?;
            let (_, n) = rest.rsplit_once(" [")?;
            n.parse().ok()
        })
        .collect()
}

/// Waits until the server's stored line count stops changing, then checks every spam
/// line from 0 to the highest is there exactly once.
async fn assert_every_line_once(api: &Api, server: &str) -> usize {
    let mut last = usize::MAX;
    let mut lines;
    loop {
        lines = api.all_logs(server, "").await;
        if lines.len() == last {
            break;
        }
        last = lines.len();
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let numbers = spam_numbers(&lines);
    let unique: BTreeSet<u64> = numbers.iter().copied().collect();
    assert_eq!(unique.len(), numbers.len(), "duplicate lines on {server}");
    let max = *unique.last().expect("no spam lines stored");
    let missing: Vec<u64> = (0..=max).filter(|n| !unique.contains(n)).collect();
    assert!(
        missing.is_empty(),
        "{} lines missing on {server}, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    numbers.len()
}

fn tls_client(identity: &Path, cert_pem: Option<(&str, &str)>) -> tokio_rustls::TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    let ca = std::fs::read(identity.join("ca.crt")).unwrap();
    roots
        .add(CertificateDer::from_pem_slice(&ca).unwrap())
        .unwrap();
    let (cert, key) = match cert_pem {
        Some((c, k)) => (c.as_bytes().to_vec(), k.as_bytes().to_vec()),
        None => (
            std::fs::read(identity.join("identity.crt")).unwrap(),
            std::fs::read(identity.join("identity.key")).unwrap(),
        ),
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert)
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(&key).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

type Link = FramedLink<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

/// A hand-driven link with an agent's identity (or another certificate): connects and
/// sends the hello. `Err` when the controller refuses the TLS handshake.
async fn raw_link(ctl: &Controller, connector: tokio_rustls::TlsConnector) -> Result<Link, String> {
    let tcp = tokio::net::TcpStream::connect(ctl.link).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let mut link = FramedLink::new(tls, MAX_FRAME_LEN);
    link.send(&AgentMessage::Hello {
        protocol_version: PROTOCOL_VERSION,
        agent_version: "e2e".into(),
        inventory: vec![],
        games: vec![],
        last_acked_seq: 0,
    })
    .await
    .map_err(|e| e.to_string())?;
    Ok(link)
}

/// The next controller message that is not a request or heartbeat.
async fn next_reply(link: &mut Link) -> Option<ControllerMessage> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), link.recv::<ControllerMessage>()).await
        {
            Ok(Ok(Some(
                ControllerMessage::Heartbeat { .. } | ControllerMessage::Request { .. },
            ))) => {}
            Ok(Ok(Some(m))) => return Some(m),
            _ => return None,
        }
    }
}

async fn scenario(database_url: Option<String>) {
    let tmp = tempfile::tempdir().unwrap();
    // LANGUARD_E2E_KEEP=<folder> keeps the data and logs of the run there.
    let root = std::env::var_os("LANGUARD_E2E_KEEP")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_path_buf());
    let dir = &root;
    let mut ctl = Controller::start(&dir.join("controller"), database_url.as_deref()).await;
    let api = ctl.admin().await;

    // --- enrollment: two hosts, one agent each; a join token works once.
    let host_a = api.host("game-a").await;
    let host_b = api.host("game-b").await;
    let mut agent_a = AgentProc::new(&dir.join("a"));
    let mut agent_b = AgentProc::new(&dir.join("b"));
    let token_a = api.join_token(&host_a).await;
    agent_a.enroll(ctl.link, &token_a).unwrap();
    agent_b
        .enroll(ctl.link, &api.join_token(&host_b).await)
        .unwrap();
    let again = AgentProc::new(&dir.join("again"));
    let err = again.enroll(ctl.link, &token_a).unwrap_err();
    assert!(err.contains("used"), "{err}");
    for f in ["identity.key", "identity.crt", "ca.crt"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(agent_a.identity_dir().join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
    agent_a.start();
    agent_b.start();
    wait_host(&api, &host_a, "online", Duration::from_secs(30)).await;
    wait_host(&api, &host_b, "online", Duration::from_secs(30)).await;

    // --- servers on both hosts, started through the API.
    let srv_a = api.sim_server(&host_a, "alpha", SPAM).await;
    let srv_b = api.sim_server(&host_b, "bravo", SPAM).await;
    for s in [&srv_a, &srv_b] {
        let (st, v) = api.post(&format!("/servers/{s}/start"), json!({})).await;
        assert_eq!(st, 200, "{v}");
    }
    api.wait_state(&srv_a, "running", Duration::from_secs(60))
        .await;
    api.wait_state(&srv_b, "running", Duration::from_secs(60))
        .await;
    assert_eq!(agent_a.games().len(), 1);
    assert_eq!(agent_b.games().len(), 1);

    // --- a line the game writes reaches the API and the WebSocket.
    let mut live = api.live().await;
    live.subscribe(Some(&srv_a), &["log"]).await;
    let marker = format!("e2e-marker-{}", std::process::id());
    let (st, v) = api
        .post(&format!("/servers/{srv_a}/say"), json!({"message": marker}))
        .await;
    assert_eq!(st, 204, "{v}");
    let deadline = Instant::now() + Duration::from_secs(10);
    'ws: loop {
        let m = tokio::time::timeout_at(deadline.into(), live.next())
            .await
            .expect("marker not on the WebSocket")
            .unwrap();
        if m["type"] == "event" && m["channel"] == "log" {
            assert_eq!(m["server"], srv_a.as_str());
            for l in m["data"].as_array().unwrap() {
                if l["text"].as_str().unwrap_or("").contains(&marker) {
                    break 'ws;
                }
            }
        }
    }
    let found = api.all_logs(&srv_a, &marker).await;
    assert_eq!(found.len(), 1, "{found:?}");
    // Game operations return the game's answer; a bad request changes nothing.
    let (st, v) = api
        .post(
            &format!("/servers/{srv_a}/console"),
            json!({"command": "players"}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert!(
        v["output"].as_str().unwrap().contains("Players on server"),
        "{v}"
    );
    let (st, v) = api
        .post(
            &format!("/servers/{srv_a}/say"),
            json!({"message": "two\nlines"}),
        )
        .await;
    assert_eq!(st, 422, "{v}");

    // --- the controller goes away while the games keep logging.
    ctl.stop();
    tokio::time::sleep(outage()).await;
    ctl.resume().await;
    let api = ctl.admin().await;
    wait_host(&api, &host_a, "online", Duration::from_secs(60)).await;
    wait_host(&api, &host_b, "online", Duration::from_secs(60)).await;

    // --- agent B is killed mid-burst and comes back; its game was never stopped.
    let game_b = agent_b.games();
    agent_b.kill9();
    tokio::time::sleep(Duration::from_secs(2)).await;
    agent_b.start();
    wait_host(&api, &host_b, "online", Duration::from_secs(60)).await;
    api.wait_state(&srv_b, "running", Duration::from_secs(60))
        .await;
    assert_eq!(
        agent_b.games(),
        game_b,
        "the game was adopted, not restarted"
    );

    // --- stop both; every numbered line is stored exactly once.
    for s in [&srv_a, &srv_b] {
        let (st, v) = api.post(&format!("/servers/{s}/stop"), json!({})).await;
        assert_eq!(st, 200, "{v}");
        api.wait_state(s, "stopped", Duration::from_secs(60)).await;
    }
    let n_a = assert_every_line_once(&api, &srv_a).await;
    let n_b = assert_every_line_once(&api, &srv_b).await;
    // 50 lines/s for at least the outage: the lines written while the controller was
    // away are part of what was counted.
    let expected = (outage().as_secs() * 50) as usize;
    assert!(
        n_a > expected && n_b > expected,
        "the games logged through the outage: {n_a} / {n_b}"
    );

    // --- an agent may only speak for its own servers.
    let connector = tls_client(&agent_a.identity_dir(), None);
    let mut link = raw_link(&ctl, connector.clone()).await.unwrap();
    let welcome = next_reply(&mut link).await;
    let Some(ControllerMessage::Welcome { acked_seq, .. }) = welcome else {
        panic!("expected a welcome, got {welcome:?}");
    };
    let foreign = EventEnvelope {
        seq: acked_seq + 1,
        at: 0,
        event: Event::Log {
            server: ServerId::new(srv_b.clone()).unwrap(),
            lines: vec![LogLine {
                at: 0,
                level: Default::default(),
                text: "forged-line".into(),
            }],
        },
    };
    link.send(&AgentMessage::Events {
        events: vec![foreign],
    })
    .await
    .unwrap();
    let ack = next_reply(&mut link).await;
    assert!(
        matches!(ack, Some(ControllerMessage::Ack { upto }) if upto == acked_seq + 1),
        "{ack:?}"
    );
    assert!(api.all_logs(&srv_b, "forged-line").await.is_empty());
    let (_, audit) = api.get("/audit?action=agent.foreign_server").await;
    let items = audit["items"].as_array().unwrap();
    assert!(
        items.iter().any(|e| e["target_id"] == srv_b.as_str()),
        "{audit}"
    );

    // --- a garbage frame and an oversized frame close that connection, nothing else.
    link.send(&json!({"no": "such message"})).await.unwrap();
    assert!(
        next_reply(&mut link).await.is_none(),
        "garbage frame must close the link"
    );
    let mut link = raw_link(&ctl, connector.clone()).await.unwrap();
    assert!(matches!(
        next_reply(&mut link).await,
        Some(ControllerMessage::Welcome { .. })
    ));
    let tls = link.get_mut_io();
    tls.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    tls.flush().await.unwrap();
    assert!(
        next_reply(&mut link).await.is_none(),
        "oversized frame must close the link"
    );
    wait_host(&api, &host_b, "online", Duration::from_secs(5)).await;
    // The real agent A takes its link back (the host's status may still show the closed
    // hand-driven link for a moment, so wait for the agent itself to answer).
    wait_host(&api, &host_a, "online", Duration::from_secs(60)).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let st = loop {
        let (st, v) = api.get(&format!("/servers/{srv_a}/players")).await;
        if st != 503 || Instant::now() > deadline {
            break (st, v);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        st.0, 409,
        "a stopped server has no players to list: {}",
        st.1
    );

    // --- a certificate from another CA is refused.
    let other_ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let other_ca = ca_params.self_signed(&other_ca_key).unwrap();
    let issuer = rcgen::Issuer::from_params(&ca_params, &other_ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let (_, agent_a_host) = api.get(&format!("/hosts/{host_a}")).await;
    let agent_id = agent_a_host["agent_id"].as_str().unwrap();
    let mut leaf = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf.subject_alt_names = vec![rcgen::SanType::URI(
        rcgen::string::Ia5String::try_from(format!("urn:languard:agent:{agent_id}")).unwrap(),
    )];
    leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let leaf = leaf.signed_by(&leaf_key, &issuer).unwrap();
    drop(other_ca);
    let forged = tls_client(
        &agent_a.identity_dir(),
        Some((&leaf.pem(), &leaf_key.serialize_pem())),
    );
    match raw_link(&ctl, forged).await {
        Err(_) => {}
        Ok(mut l) => assert!(
            next_reply(&mut l).await.is_none(),
            "a foreign CA's certificate must be refused"
        ),
    }

    // --- revoking host B closes its link and refuses the agent; its server shows unknown.
    let (st, v) = api
        .post(&format!("/hosts/{host_b}/revoke"), json!({}))
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "revoked");
    let status = api
        .wait_state(&srv_b, "unknown", Duration::from_secs(10))
        .await;
    assert_eq!(status["host_online"], false);
    let (st, v) = api
        .post(&format!("/servers/{srv_b}/start"), json!({}))
        .await;
    assert_eq!(st, 503, "{v}");
    assert_eq!(v["type"], "https://languard.dev/problems/host-offline");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, h) = api.get(&format!("/hosts/{host_b}")).await;
    assert_eq!(
        h["status"], "revoked",
        "the revoked agent must stay out: {h}"
    );
    let log = std::fs::read_to_string(&agent_b.log).unwrap_or_default();
    assert!(
        !log.contains("e2eRconSecret7") && !log.contains("lgj_"),
        "secrets in the agent log"
    );
    let clog = std::fs::read_to_string(&ctl.log).unwrap_or_default();
    assert!(
        !clog.contains("e2eRconSecret7") && !clog.contains("lgj_"),
        "secrets in the controller log"
    );
}

/// Players fill the directory and their sessions on the real message order: BattlEye
/// reports a connect without the GUID, then `BE GUID`, then `Verified GUID`. The
/// simulator's first players are on the server before the agent's RCon session exists
/// (the poller sees them first); the later ones join by message.
async fn players_scenario(database_url: Option<String>) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ctl = Controller::start(&dir.join("controller"), database_url.as_deref()).await;
    let api = ctl.admin().await;
    let host = api.host("players").await;
    let mut agent = AgentProc::new(&dir.join("a"));
    agent
        .enroll(ctl.link, &api.join_token(&host).await)
        .unwrap();
    agent.start();
    wait_host(&api, &host, "online", Duration::from_secs(30)).await;
    let knobs = [
        "-sim_players=4",
        "-sim_player_interval_ms=400",
        "-sim_chat_interval_ms=0",
        "-sim_startup_delay_ms=100",
    ];
    let srv = api.sim_server(&host, "sessions", &knobs).await;
    let (st, v) = api.post(&format!("/servers/{srv}/start"), json!({})).await;
    assert_eq!(st, 200, "{v}");
    api.wait_state(&srv, "running", Duration::from_secs(60))
        .await;

    // Every player the game lists ends up in the directory with its BattlEye GUID and
    // an open session on this server.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (online, sessions) = loop {
        let (st, online) = api.get(&format!("/servers/{srv}/players")).await;
        assert_eq!(st, 200, "{online}");
        let (st, sessions) = api.get(&format!("/servers/{srv}/sessions")).await;
        assert_eq!(st, 200, "{sessions}");
        let online: Vec<Value> = online.as_array().unwrap().clone();
        let open = sessions
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["left_at"].is_null())
            .count();
        let identified = online.iter().all(|p| p["account"].is_string());
        if online.len() >= 2 && identified && open == online.len() {
            break (online, sessions);
        }
        assert!(
            Instant::now() < deadline,
            "sessions do not follow the players: online {online:?}, sessions {sessions}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let (st, directory) = api.get("/players?limit=1000").await;
    assert_eq!(st, 200, "{directory}");
    for p in &online {
        let account = p["account"].as_str().unwrap();
        assert_eq!(account.len(), 32, "a BattlEye GUID: {p}");
        let entry = directory
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["account"] == account)
            .unwrap_or_else(|| panic!("{account} not in the directory: {directory}"));
        assert_eq!(entry["game"], "arma3", "{entry}");
        assert_eq!(entry["last_name"], p["name"], "{entry}");
        let player_id = entry["id"].as_str().unwrap();
        let mine: Vec<&Value> = sessions
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["player_id"] == player_id && s["left_at"].is_null())
            .collect();
        assert_eq!(mine.len(), 1, "one open session for {account}: {sessions}");
    }
    let (_, events) = api
        .get(&format!("/servers/{srv}/events?kind=player_identified"))
        .await;
    assert!(
        !events.as_array().unwrap().is_empty(),
        "identifications are in the history: {events}"
    );

    // Stopping the server closes every session.
    let (st, v) = api.post(&format!("/servers/{srv}/stop"), json!({})).await;
    assert_eq!(st, 200, "{v}");
    api.wait_state(&srv, "stopped", Duration::from_secs(60))
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, sessions) = api.get(&format!("/servers/{srv}/sessions")).await;
        let open: Vec<&Value> = sessions
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["left_at"].is_null())
            .collect();
        if open.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "sessions left open: {open:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn players_on_sqlite() {
    players_scenario(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_on_sqlite() {
    scenario(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_on_postgres() {
    // Same convention as the controller suites: PostgreSQL is expected unless skipped.
    if std::env::var("LANGUARD_TEST_PG").as_deref() == Ok("skip") {
        eprintln!("LANGUARD_TEST_PG=skip: skipping the PostgreSQL run");
        return;
    }
    let admin = std::env::var("LANGUARD_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://languard:languard@127.0.0.1:5432/postgres".into());
    let db = PgDatabase::create(&admin);
    scenario(Some(db.url.clone())).await;
}
