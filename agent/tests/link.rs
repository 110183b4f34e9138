//! The agent's side of the fleet link against a small fake controller written here:
//! real TLS 1.3 on loopback, a CA and certificates made with rcgen, the real `Agent`
//! with its on-disk outbox. Timings are short (fast backoff, 1 s heartbeats only where
//! silence is the point); assertions are about behaviour, never about elapsed time.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use languard_agent::config::{AgentConfig, TelemetryConfig};
use languard_agent::host::Agent;
use languard_agent::link::enroll::{EnrollError, EnrollOptions, Enrollment, enroll, identity_dir};
use languard_agent::link::identity::{CA_FILE, CERT_FILE, Identity, KEY_FILE};
use languard_agent::link::{ControllerAddr, Link, LinkOptions};
use languard_shared::arma::spec::Arma3Spec;
use languard_shared::games::GameKind;
use languard_shared::wire::event::LogLine;
use languard_shared::wire::frame::{FramedLink, MAX_FRAME_LEN};
use languard_shared::wire::link::{AgentMessage, ControllerMessage, JoinTokenSecret};
use languard_shared::wire::request::ErrorCode;
use languard_shared::wire::spec::GameSpec;
use languard_shared::wire::{
    Event, EventEnvelope, LogLevel, PROTOCOL_VERSION, Request, Response, ServerId, ServerSpec,
    ServerStatus,
};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// Longest wait for anything the agent should do soon.
const PATIENCE: Duration = Duration::from_secs(20);
const AGENT_ID: &str = "6f1c1a52-5d1e-4c8e-9a55-2b1f0c9e7d31";

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

/// The controller's internal CA, as far as the agent can tell.
struct Ca {
    pem: String,
    der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    fn fingerprint(&self) -> String {
        Sha256::digest(&self.der)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// A join token naming this CA (the controller validates the rest).
    fn token(&self) -> String {
        format!(
            "lgj_{}.{}.1900000000.{}",
            "a".repeat(32),
            "b".repeat(64),
            self.fingerprint()
        )
    }

    /// Signs the CSR's key like the controller does, valid over `window`.
    fn sign_client(
        &self,
        csr_pem: &str,
        window: (time::OffsetDateTime, time::OffsetDateTime),
    ) -> String {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem).unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, AGENT_ID);
        params.subject_alt_names = vec![SanType::URI(
            format!("urn:languard:agent:{AGENT_ID}").try_into().unwrap(),
        )];
        params.is_ca = IsCa::ExplicitNoCa;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        (params.not_before, params.not_after) = window;
        params
            .signed_by(&csr.public_key, &self.issuer)
            .unwrap()
            .pem()
    }

    /// The link listener's configuration: chain [leaf, CA] for 127.0.0.1 and
    /// localhost; a client certificate from this CA is checked when presented and
    /// optional (enrollment connects without one).
    fn server_config(&self) -> Arc<ServerConfig> {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der.clone()).unwrap();
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .allow_unauthenticated()
            .build()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap();
        Arc::new(
            ServerConfig::builder_with_provider(provider())
                .with_protocol_versions(&[&rustls::version::TLS13])
                .unwrap()
                .with_client_cert_verifier(verifier)
                .with_single_cert(vec![cert.der().clone(), self.der.clone()], key)
                .unwrap(),
        )
    }
}

fn fresh() -> (time::OffsetDateTime, time::OffsetDateTime) {
    (
        now() - time::Duration::minutes(5),
        now() + time::Duration::days(7),
    )
}

/// A fake controller's link port.
struct Controller {
    listener: TcpListener,
    acceptor: TlsAcceptor,
}

impl Controller {
    async fn new(ca: &Ca) -> Controller {
        Controller {
            listener: TcpListener::bind("127.0.0.1:0").await.unwrap(),
            acceptor: TlsAcceptor::from(ca.server_config()),
        }
    }

    fn addr(&self) -> ControllerAddr {
        ControllerAddr::parse(&self.listener.local_addr().unwrap().to_string()).unwrap()
    }

    /// The next connection that completes a handshake.
    async fn accept(&self) -> Conn {
        tokio::time::timeout(PATIENCE, async {
            loop {
                let (tcp, _) = self.listener.accept().await.unwrap();
                if let Ok(tls) = self.acceptor.accept(tcp).await {
                    let client_cert = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first().cloned());
                    return Conn {
                        link: FramedLink::new(tls, MAX_FRAME_LEN),
                        client_cert,
                    };
                }
            }
        })
        .await
        .expect("the agent did not connect")
    }
}

/// One accepted connection, seen from the controller.
struct Conn {
    link: FramedLink<TlsStream<TcpStream>>,
    client_cert: Option<CertificateDer<'static>>,
}

impl Conn {
    async fn send(&mut self, msg: &ControllerMessage) {
        self.link.send(msg).await.unwrap();
    }

    /// The next message; `None` when the agent closed the connection.
    async fn next(&mut self) -> Option<AgentMessage> {
        tokio::time::timeout(PATIENCE, self.link.recv::<AgentMessage>())
            .await
            .expect("the agent said nothing")
            .ok()
            .flatten()
    }

    /// The next message that is not a heartbeat.
    async fn recv(&mut self) -> AgentMessage {
        loop {
            match self.next().await.expect("connection closed") {
                AgentMessage::Heartbeat { .. } => continue,
                msg => return msg,
            }
        }
    }

    /// Reads the hello and welcomes the agent.
    async fn welcome(&mut self, acked_seq: u64, heartbeat_secs: u32) -> (Vec<ServerStatus>, u64) {
        let AgentMessage::Hello {
            protocol_version,
            agent_version,
            inventory,
            games,
            last_acked_seq,
        } = self.recv().await
        else {
            panic!("expected a hello");
        };
        assert_eq!(protocol_version, PROTOCOL_VERSION);
        // The agent advertises the games it has adapters for.
        assert_eq!(games, vec![GameKind::Arma3]);
        assert_eq!(agent_version, env!("CARGO_PKG_VERSION"));
        self.send(&ControllerMessage::Welcome {
            protocol_version: PROTOCOL_VERSION,
            acked_seq,
            heartbeat_secs,
        })
        .await;
        (inventory, last_acked_seq)
    }

    /// Events until one with `seq >= upto` has arrived, in arrival order.
    async fn events_through(&mut self, upto: u64) -> Vec<EventEnvelope> {
        let mut got: Vec<EventEnvelope> = Vec::new();
        while got.last().is_none_or(|e| e.seq < upto) {
            match self.recv().await {
                AgentMessage::Events { events } => got.extend(events),
                AgentMessage::RenewRequest { .. } => panic!("a fresh certificate was renewed"),
                other => panic!("unexpected {other:?}"),
            }
        }
        got
    }
}

fn options() -> LinkOptions {
    LinkOptions {
        backoff_initial: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        shutdown_grace: Duration::from_secs(2),
        ..LinkOptions::default()
    }
}

/// An agent with temporary folders, no game servers and (nearly) no metrics: the one
/// host sample taken at start is waited for, so later sequence numbers are the test's.
async fn agent(dir: &Path) -> Agent {
    let agent = Agent::start(AgentConfig {
        data_dir: dir.join("agent"),
        servers_dir: dir.join("servers"),
        telemetry: TelemetryConfig {
            metrics_interval_secs: 3600,
        },
        ..AgentConfig::default()
    })
    .await
    .unwrap();
    let mut newest = agent.watch_events();
    let _ = tokio::time::timeout(Duration::from_secs(5), newest.wait_for(|n| *n >= 1)).await;
    agent
}

fn data_dir(dir: &Path) -> PathBuf {
    dir.join("agent")
}

/// Answers one enrollment like the controller, with a certificate valid over `window`.
/// Returns the Enroll message.
async fn serve_enrollment(
    controller: &Controller,
    ca: &Ca,
    window: (time::OffsetDateTime, time::OffsetDateTime),
) -> AgentMessage {
    let mut conn = controller.accept().await;
    assert!(
        conn.client_cert.is_none(),
        "enrollment presents no certificate"
    );
    let msg = conn.recv().await;
    let AgentMessage::Enroll { csr_pem, .. } = &msg else {
        panic!("expected an enrollment, got {msg:?}");
    };
    conn.send(&ControllerMessage::Enrolled {
        agent_id: AGENT_ID.into(),
        host_id: "host-1".into(),
        cert_pem: ca.sign_client(csr_pem, window),
        ca_pem: ca.pem.clone(),
    })
    .await;
    msg
}

fn enroll_options(dir: &Path, controller: &Controller, token: String) -> EnrollOptions {
    EnrollOptions {
        data_dir: data_dir(dir),
        controller: controller.addr(),
        token: JoinTokenSecret(token),
        hostname: "gamehost-7".into(),
        timeout: Duration::from_secs(10),
    }
}

/// Enrolls the agent in `dir` with `ca` through `controller`.
async fn enrolled(
    dir: &Path,
    ca: &Ca,
    controller: &Controller,
    window: (time::OffsetDateTime, time::OffsetDateTime),
) -> Identity {
    let (enrolled, _) = tokio::join!(
        enroll(enroll_options(dir, controller, ca.token())),
        serve_enrollment(controller, ca, window)
    );
    assert_eq!(enrolled.unwrap().agent_id, AGENT_ID);
    Identity::load(&identity_dir(&data_dir(dir))).unwrap()
}

/// An enrolled agent with its link running against a fresh fake controller.
struct Linked {
    _dir: tempfile::TempDir,
    ca: Ca,
    controller: Controller,
    agent: Agent,
    link: Link,
    identity_dir: PathBuf,
}

async fn linked(window: (time::OffsetDateTime, time::OffsetDateTime)) -> Linked {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Languard test CA");
    let controller = Controller::new(&ca).await;
    let identity = enrolled(dir.path(), &ca, &controller, window).await;
    let agent = agent(dir.path()).await;
    let link = Link::spawn(agent.clone(), identity, controller.addr(), options());
    Linked {
        identity_dir: identity_dir(&data_dir(dir.path())),
        _dir: dir,
        ca,
        controller,
        agent,
        link,
    }
}

fn log(text: &str) -> Event {
    Event::Log {
        server: ServerId::new("s1").unwrap(),
        lines: vec![LogLine {
            at: 1,
            level: LogLevel::Info,
            text: text.to_owned(),
        }],
    }
}

fn text_of(e: &EventEnvelope) -> Option<&str> {
    match &e.event {
        Event::Log { lines, .. } => lines.first().map(|l| l.text.as_str()),
        _ => None,
    }
}

async fn record(agent: &Agent, text: &str) -> u64 {
    agent.record_event(log(text)).await.unwrap()
}

fn newest(agent: &Agent) -> u64 {
    *agent.watch_events().borrow()
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

// === enrollment ===

#[tokio::test]
async fn enroll_installs_a_private_identity_and_the_controller_address() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Languard test CA");
    let controller = Controller::new(&ca).await;
    let (enrolled, msg) = tokio::join!(
        enroll(enroll_options(dir.path(), &controller, ca.token())),
        serve_enrollment(&controller, &ca, fresh())
    );
    assert_eq!(
        enrolled.unwrap(),
        Enrollment {
            agent_id: AGENT_ID.into(),
            host_id: "host-1".into()
        }
    );
    let AgentMessage::Enroll {
        protocol_version,
        token,
        hostname,
        os,
        ..
    } = msg
    else {
        unreachable!()
    };
    assert_eq!(protocol_version, PROTOCOL_VERSION);
    assert_eq!(token.0, ca.token());
    assert_eq!(hostname, "gamehost-7");
    assert_eq!(os, "linux");

    let idir = identity_dir(&data_dir(dir.path()));
    for file in [KEY_FILE, CERT_FILE, CA_FILE, "controller"] {
        assert!(idir.join(file).is_file(), "{file}");
        #[cfg(unix)]
        assert_eq!(mode(&idir.join(file)), 0o600, "{file}");
    }
    assert_eq!(
        ControllerAddr::load(&idir).unwrap(),
        controller.addr(),
        "run finds the address without a flag"
    );
    let identity = Identity::load(&idir).unwrap();
    assert_eq!(identity.ca_fingerprint().unwrap(), ca.fingerprint());
    // Nothing left over from staging.
    let entries: Vec<_> = std::fs::read_dir(data_dir(dir.path()))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(entries, vec!["identity"]);
}

#[tokio::test]
async fn enroll_refuses_a_controller_whose_ca_is_not_the_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let ours = Ca::new("the real controller");
    let impostor = Ca::new("someone else");
    let controller = Controller::new(&impostor).await;
    let accept = async {
        // The handshake fails on the agent's side; nothing more arrives.
        let (tcp, _) = controller.listener.accept().await.unwrap();
        let _ = controller.acceptor.accept(tcp).await;
    };
    let (result, ()) = tokio::join!(
        enroll(enroll_options(dir.path(), &controller, ours.token())),
        accept
    );
    let err = result.unwrap_err();
    assert!(matches!(err, EnrollError::Fingerprint(_)), "{err:?}");
    assert!(err.to_string().contains("fingerprint"), "{err}");
    assert!(!identity_dir(&data_dir(dir.path())).exists());
    assert!(
        std::fs::read_dir(data_dir(dir.path()))
            .map(|d| d.count())
            .unwrap_or(0)
            == 0,
        "no staging left behind"
    );
}

#[tokio::test]
async fn a_refused_or_failed_re_enrollment_keeps_the_previous_identity() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Languard test CA");
    let controller = Controller::new(&ca).await;
    let first = enrolled(dir.path(), &ca, &controller, fresh()).await;
    let idir = identity_dir(&data_dir(dir.path()));

    // Refused: an error carrying the reason; the old identity still loads.
    let refuse = async {
        let mut conn = controller.accept().await;
        assert!(matches!(conn.recv().await, AgentMessage::Enroll { .. }));
        conn.send(&ControllerMessage::Refused {
            reason: "join token expired".into(),
        })
        .await;
    };
    let (result, ()) = tokio::join!(
        enroll(enroll_options(dir.path(), &controller, ca.token())),
        refuse
    );
    let err = result.unwrap_err();
    assert!(matches!(err, EnrollError::Refused(_)), "{err:?}");
    assert!(err.to_string().contains("join token expired"), "{err}");
    assert!(!err.to_string().contains(&ca.token()));
    assert_eq!(Identity::load(&idir).unwrap().cert_pem(), first.cert_pem());

    // Malformed token: refused before anything is written or dialled.
    let err = enroll(enroll_options(dir.path(), &controller, "lgj_nope".into()))
        .await
        .unwrap_err();
    assert!(matches!(err, EnrollError::MalformedToken), "{err:?}");
    assert_eq!(Identity::load(&idir).unwrap().cert_pem(), first.cert_pem());

    // A successful re-enrollment replaces it.
    let second = enrolled(dir.path(), &ca, &controller, fresh()).await;
    assert_ne!(second.cert_pem(), first.cert_pem());
}

#[tokio::test]
async fn the_enroll_command_prints_the_agent_id_or_fails_without_echoing_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Languard test CA");
    let controller = Controller::new(&ca).await;
    let run = |token: String| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_languard-agent"))
            .arg("enroll")
            .arg("--controller")
            .arg(format!("tls://{}", controller.addr()))
            .arg("--token")
            .arg(token)
            .arg("--data-dir")
            .arg(data_dir(dir.path()))
            .env_remove("LANGUARD_AGENT_CONFIG")
            .kill_on_drop(true)
            .output()
    };
    let refuse = async {
        let mut conn = controller.accept().await;
        assert!(matches!(conn.recv().await, AgentMessage::Enroll { .. }));
        conn.send(&ControllerMessage::Refused {
            reason: "host revoked".into(),
        })
        .await;
    };
    let (out, ()) = tokio::join!(run(ca.token()), refuse);
    let out = out.unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("host revoked"), "{text}");
    assert!(
        !text.contains(&ca.fingerprint()),
        "the token leaked: {text}"
    );

    let (out, _) = tokio::join!(run(ca.token()), serve_enrollment(&controller, &ca, fresh()));
    let out = out.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(AGENT_ID), "{stdout}");
    assert!(!stdout.contains(&ca.fingerprint()), "{stdout}");
}

// === the link ===

fn spec(id: &str) -> ServerSpec {
    ServerSpec {
        id: ServerId::new(id).unwrap(),
        name: "Link test".into(),
        game: GameSpec::Arma3(Box::new(Arma3Spec {
            executable: "/opt/arma3/arma3server_x64".into(),
            game_port: 2302,
            rcon_port: 2312,
            rcon_password: "LinkSecret1".into(),
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

#[tokio::test]
async fn events_survive_a_disconnect_and_replay_from_the_welcomes_mark() {
    let l = linked(fresh()).await;
    l.agent
        .handle(Request::ApplySpec {
            spec: Box::new(spec("s1")),
        })
        .await
        .unwrap();
    for i in 0..5 {
        record(&l.agent, &format!("before {i}")).await;
    }

    let mut conn = l.controller.accept().await;
    assert!(
        conn.client_cert.is_some(),
        "the link presents our certificate"
    );
    let (inventory, last_acked) = conn.welcome(0, 30).await;
    assert_eq!(last_acked, 0);
    assert_eq!(inventory.len(), 1);
    assert_eq!(inventory[0].server.as_str(), "s1");

    // Events recorded while connected stream too.
    for i in 0..5 {
        record(&l.agent, &format!("during {i}")).await;
    }
    let target = newest(&l.agent);
    let first = conn.events_through(target).await;
    let seqs: Vec<u64> = first.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=target).collect::<Vec<_>>());
    assert!(first.iter().any(|e| text_of(e) == Some("during 4")));

    // The controller commits only up to 3 and drops the connection without an ack.
    drop(conn);
    for i in 0..3 {
        record(&l.agent, &format!("offline {i}")).await;
    }
    let mut conn = l.controller.accept().await;
    let (_, last_acked) = conn.welcome(3, 30).await;
    assert_eq!(last_acked, 0, "nothing was acked yet");
    let target = newest(&l.agent);
    let replay = conn.events_through(target).await;
    let seqs: Vec<u64> = replay.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (4..=target).collect::<Vec<_>>(),
        "in order, none lost"
    );
    let texts: Vec<_> = replay.iter().filter_map(text_of).collect();
    assert!(texts.contains(&"offline 2"), "{texts:?}");
    // Same events as before, not re-recorded ones.
    for (a, b) in first.iter().filter(|e| e.seq >= 4).zip(&replay) {
        assert_eq!(a, b);
    }
    // The welcome's mark counts as an ack.
    assert_eq!(l.agent.acked_seq().await.unwrap(), 3);
    l.link.stop().await;
    assert!(conn.next().await.is_none(), "a stop closes the connection");
}

#[tokio::test]
async fn acked_events_leave_the_outbox_and_are_not_sent_again() {
    let l = linked(fresh()).await;
    for i in 0..10 {
        record(&l.agent, &format!("e{i}")).await;
    }
    let mut conn = l.controller.accept().await;
    conn.welcome(0, 30).await;
    let upto = newest(&l.agent);
    conn.events_through(upto).await;
    conn.send(&ControllerMessage::Ack { upto }).await;
    eventually("the ack reached the outbox", async || {
        l.agent.acked_seq().await.unwrap() == upto
    })
    .await;
    assert!(l.agent.events(0, 100).await.unwrap().is_empty());

    // A new connection reports the ack and receives only newer events.
    drop(conn);
    let mut conn = l.controller.accept().await;
    let (_, last_acked) = conn.welcome(upto, 30).await;
    assert_eq!(last_acked, upto);
    let seq = record(&l.agent, "after the ack").await;
    let got = conn.events_through(seq).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!((got[0].seq, text_of(&got[0])), (seq, Some("after the ack")));
    l.link.stop().await;
}

#[tokio::test]
async fn flow_control_waits_for_acks() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Languard test CA");
    let controller = Controller::new(&ca).await;
    let identity = enrolled(dir.path(), &ca, &controller, fresh()).await;
    let agent = agent(dir.path()).await;
    let options = LinkOptions {
        max_unacked: 5,
        batch_max_events: 2,
        ..options()
    };
    let link = Link::spawn(agent.clone(), identity, controller.addr(), options);
    for i in 0..12 {
        record(&agent, &format!("e{i}")).await;
    }
    let total = newest(&agent);
    let mut conn = controller.accept().await;
    conn.welcome(0, 30).await;
    let got = conn.events_through(5).await;
    assert_eq!(got.last().unwrap().seq, 5);
    // Nothing more until an ack makes room (a heartbeat would come after 30 s).
    assert!(
        tokio::time::timeout(Duration::from_millis(300), conn.link.recv::<AgentMessage>())
            .await
            .is_err(),
        "sent beyond the unacked limit"
    );
    conn.send(&ControllerMessage::Ack { upto: 5 }).await;
    let rest = conn.events_through(total.min(10)).await;
    assert_eq!(rest.first().unwrap().seq, 6);
    assert_eq!(rest.last().unwrap().seq, total.min(10));
    link.stop().await;
}

#[tokio::test]
async fn requests_are_answered_with_their_ids() {
    let l = linked(fresh()).await;
    let mut conn = l.controller.accept().await;
    conn.welcome(0, 30).await;
    conn.send(&ControllerMessage::Request {
        id: 42,
        request: Request::ApplySpec {
            spec: Box::new(spec("s2")),
        },
    })
    .await;
    conn.send(&ControllerMessage::Request {
        id: 7,
        request: Request::Status {
            server: ServerId::new("nope").unwrap(),
        },
    })
    .await;
    let mut answers = std::collections::BTreeMap::new();
    while answers.len() < 2 {
        match conn.recv().await {
            AgentMessage::Response { id, result } => {
                answers.insert(id, result);
            }
            AgentMessage::Events { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        matches!(&answers[&42], Ok(Response::Status(s)) if s.server.as_str() == "s2"),
        "{answers:?}"
    );
    assert_eq!(
        answers[&7].as_ref().unwrap_err().code,
        ErrorCode::UnknownServer
    );
    l.link.stop().await;
}

#[tokio::test]
async fn a_garbage_frame_makes_the_agent_reconnect() {
    let l = linked(fresh()).await;
    let mut conn = l.controller.accept().await;
    conn.welcome(0, 30).await;
    conn.link
        .send(&serde_json::json!({ "no_such_message": {} }))
        .await
        .unwrap();
    // The agent drops this connection…
    while let Some(msg) = conn.next().await {
        assert!(matches!(
            msg,
            AgentMessage::Events { .. } | AgentMessage::Heartbeat { .. }
        ));
    }
    // …and comes back.
    let mut again = l.controller.accept().await;
    again.welcome(0, 30).await;
    l.link.stop().await;
}

#[tokio::test]
async fn heartbeats_flow_and_silence_makes_the_agent_reconnect() {
    let l = linked(fresh()).await;
    let mut conn = l.controller.accept().await;
    conn.welcome(0, 1).await;
    // The agent heartbeats when it has nothing else to say, then gives up on a
    // controller that never speaks (3 intervals).
    let mut heartbeats = 0;
    while let Some(msg) = conn.next().await {
        if matches!(msg, AgentMessage::Heartbeat { .. }) {
            heartbeats += 1;
        }
    }
    assert!(heartbeats >= 1);
    let mut again = l.controller.accept().await;
    again.welcome(0, 30).await;
    l.link.stop().await;
}

#[tokio::test]
async fn a_refused_agent_keeps_retrying() {
    let l = linked(fresh()).await;
    for _ in 0..3 {
        let mut conn = l.controller.accept().await;
        assert!(matches!(conn.recv().await, AgentMessage::Hello { .. }));
        conn.send(&ControllerMessage::Refused {
            reason: "agent revoked".into(),
        })
        .await;
    }
    let mut conn = l.controller.accept().await;
    conn.welcome(0, 30).await;
    l.link.stop().await;
}

#[tokio::test]
async fn renewal_replaces_the_certificate_on_disk_and_the_next_connection_uses_it() {
    // Issued two hours ago, expiring in 30 minutes: less than a third left.
    let window = (
        now() - time::Duration::hours(2),
        now() + time::Duration::minutes(30),
    );
    let l = linked(window).await;
    let old_pem = std::fs::read_to_string(l.identity_dir.join(CERT_FILE)).unwrap();
    let mut conn = l.controller.accept().await;
    conn.welcome(0, 30).await;
    let csr_pem = loop {
        match conn.recv().await {
            AgentMessage::RenewRequest { csr_pem } => break csr_pem,
            AgentMessage::Events { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    let new_pem = l.ca.sign_client(&csr_pem, fresh());
    conn.send(&ControllerMessage::Renewed {
        cert_pem: new_pem.clone(),
        chain_pem: l.ca.pem.clone(),
    })
    .await;
    let path = l.identity_dir.join(CERT_FILE);
    eventually("the renewed certificate is on disk", async || {
        std::fs::read_to_string(&path).unwrap() == new_pem
    })
    .await;
    assert_ne!(old_pem, new_pem);
    #[cfg(unix)]
    assert_eq!(mode(&path), 0o600);

    drop(conn);
    let mut conn = l.controller.accept().await;
    let presented = conn.client_cert.clone().unwrap();
    assert_eq!(
        presented,
        CertificateDer::from_pem_slice(new_pem.as_bytes()).unwrap()
    );
    conn.welcome(0, 30).await;
    l.link.stop().await;
}

#[tokio::test]
async fn a_welcome_above_the_outbox_makes_events_number_above_it() {
    let l = linked(fresh()).await;
    let old = record(&l.agent, "recorded after a wipe").await;
    assert!(old < 1000);
    let mut conn = l.controller.accept().await;
    conn.welcome(1000, 30).await;
    // Pending events are kept, renumbered above the controller's mark…
    let mut got = conn.events_through(1001).await;
    while !got
        .iter()
        .any(|e| text_of(e) == Some("recorded after a wipe"))
    {
        got.extend(conn.events_through(got.last().unwrap().seq + 1).await);
    }
    // …and new ones follow them.
    let seq = record(&l.agent, "new").await;
    got.extend(conn.events_through(seq).await);
    let seqs: Vec<u64> = got.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1001..=seq).collect::<Vec<_>>());
    assert_eq!(text_of(got.last().unwrap()), Some("new"));
    l.link.stop().await;
}
