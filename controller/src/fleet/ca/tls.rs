//! The link's rustls side: the listener's configuration (TLS 1.3, `ring`) and the
//! client-certificate verifier that also checks the agent id and revocation.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, ServerConfig, SignatureScheme};

use super::{Ca, CaError, RevocationCheck, ServerCert, agent_id_from_cert};

/// The rustls configuration of the link listener: TLS 1.3 only, `ring`. A client
/// certificate, when presented, must chain to `ca` and name an unrevoked agent
/// ([`AgentClientVerifier`]); a connection without one completes the handshake, and the
/// link server lets it do nothing but enroll.
pub fn server_config(
    ca: &Ca,
    server: &ServerCert,
    revoked: RevocationCheck,
) -> Result<ServerConfig, CaError> {
    let provider = provider();
    let verifier = AgentClientVerifier::new(ca, revoked)?;
    let mut chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(server.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|_| CaError::Tls("the server certificate is not PEM".into()))?;
    chain.push(ca.cert_der.clone());
    let key = PrivateKeyDer::from_pem_slice(server.key_pem.as_bytes())
        .map_err(|_| CaError::Tls("the server key is not PEM".into()))?;
    ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| CaError::Tls(e.to_string()))?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_single_cert(chain, key)
        .map_err(|e| CaError::Tls(e.to_string()))
}

/// The crypto provider of the link: `ring`.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Client-certificate verifier of the link: webpki with our CA as the only root, then the
/// certificate must name an agent id that `revoked` does not refuse.
pub struct AgentClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    revoked: RevocationCheck,
}

impl std::fmt::Debug for AgentClientVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AgentClientVerifier")
    }
}

// === impl AgentClientVerifier ===

impl AgentClientVerifier {
    /// A verifier trusting only `ca`.
    pub fn new(ca: &Ca, revoked: RevocationCheck) -> Result<Self, CaError> {
        let inner =
            WebPkiClientVerifier::builder_with_provider(Arc::new(ca.root_store()?), provider())
                .build()
                .map_err(|e| CaError::Tls(e.to_string()))?;
        Ok(Self { inner, revoked })
    }
}

impl ClientCertVerifier for AgentClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        // Enrollment connections come without a certificate (the agent has none yet).
        false
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let Some(id) = agent_id_from_cert(end_entity) else {
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ));
        };
        if (self.revoked)(id) {
            return Err(rustls::Error::InvalidCertificate(CertificateError::Revoked));
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::super::DEFAULT_AGENT_VALIDITY;
    use super::super::test_support::{new_ca, plain_csr};
    use super::*;
    use crate::secrets::MasterKey;
    use rcgen::KeyPair;
    use rustls::ClientConfig;
    use rustls::pki_types::ServerName;
    use std::time::Duration;
    use time::OffsetDateTime;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use uuid::Uuid;

    // --- real TLS 1.3 handshakes over an in-memory duplex ---

    fn client_config(ca: &Ca, cert_pem: &str, key: &KeyPair) -> Arc<ClientConfig> {
        let chain = vec![CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap()];
        let key = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap();
        Arc::new(
            ClientConfig::builder_with_provider(provider())
                .with_protocol_versions(&[&rustls::version::TLS13])
                .unwrap()
                .with_root_certificates(ca.root_store().unwrap())
                .with_client_auth_cert(chain, key)
                .unwrap(),
        )
    }

    fn no_revocations() -> RevocationCheck {
        Arc::new(|_| false)
    }

    /// Runs one handshake plus a byte each way; the server's verdict and the peer id.
    async fn handshake(
        server: Arc<ServerConfig>,
        client: Arc<ClientConfig>,
    ) -> Result<Option<Uuid>, String> {
        let (c, s) = tokio::io::duplex(64 * 1024);
        let acceptor = tokio_rustls::TlsAcceptor::from(server);
        let connector = tokio_rustls::TlsConnector::from(client);
        let srv = async move {
            let mut tls = acceptor.accept(s).await.map_err(|e| e.to_string())?;
            let id = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| agent_id_from_cert(c));
            let mut b = [0u8; 1];
            tls.read_exact(&mut b).await.map_err(|e| e.to_string())?;
            tls.write_all(b"y").await.map_err(|e| e.to_string())?;
            tls.flush().await.map_err(|e| e.to_string())?;
            Ok::<_, String>(id)
        };
        let cli = async move {
            let name = ServerName::try_from("localhost").unwrap();
            let mut tls = connector
                .connect(name, c)
                .await
                .map_err(|e| e.to_string())?;
            tls.write_all(b"x").await.map_err(|e| e.to_string())?;
            tls.flush().await.map_err(|e| e.to_string())?;
            let mut b = [0u8; 1];
            tls.read_exact(&mut b).await.map_err(|e| e.to_string())?;
            Ok::<_, String>(())
        };
        let (s, c) =
            tokio::time::timeout(Duration::from_secs(20), async { tokio::join!(srv, cli) })
                .await
                .map_err(|_| "timeout".to_owned())?;
        let id = s?;
        c?;
        Ok(id)
    }

    fn listener(ca: &Ca, revoked: RevocationCheck) -> Arc<ServerConfig> {
        let server = ca.server_cert(&["localhost", "127.0.0.1"]).unwrap();
        Arc::new(server_config(ca, &server, revoked).unwrap())
    }

    #[tokio::test]
    async fn mtls_accepts_ours_rejects_foreign_expired_revoked() {
        let (_d1, ca) = new_ca();
        let (_d2, other) = {
            let dir = tempfile::tempdir().unwrap();
            let ca = Ca::load_or_create(dir.path(), &MasterKey::from_bytes([9u8; 32])).unwrap();
            (dir, ca)
        };
        assert_ne!(ca.fingerprint(), other.fingerprint());
        let key = KeyPair::generate().unwrap();
        let csr = plain_csr(&key);
        let id = Uuid::new_v4();

        // Ours: accepted, and the server reads the agent id from the peer certificate.
        let ours = ca.sign_agent_csr(&csr, id, DEFAULT_AGENT_VALIDITY).unwrap();
        let server = listener(&ca, no_revocations());
        let got = handshake(server.clone(), client_config(&ca, &ours.cert_pem, &key)).await;
        assert_eq!(got, Ok(Some(id)));

        // Signed by another CA (same key, same agent id): refused.
        let foreign = other
            .sign_agent_csr(&csr, id, DEFAULT_AGENT_VALIDITY)
            .unwrap();
        let got = handshake(server.clone(), client_config(&ca, &foreign.cert_pem, &key)).await;
        assert!(got.is_err(), "{got:?}");

        // Expired: issued 30 days ago for 7 days.
        let past = OffsetDateTime::now_utc() - time::Duration::days(30);
        let expired = ca
            .sign_agent_csr_at(&csr, id, DEFAULT_AGENT_VALIDITY, past)
            .unwrap();
        let got = handshake(server.clone(), client_config(&ca, &expired.cert_pem, &key)).await;
        let err = got.unwrap_err();
        assert!(err.to_lowercase().contains("expired"), "{err}");

        // Revoked agent id: refused during the handshake.
        let revoked_id = id;
        let server_rev = listener(&ca, Arc::new(move |x| x == revoked_id));
        let got = handshake(server_rev.clone(), client_config(&ca, &ours.cert_pem, &key)).await;
        assert!(got.is_err(), "{got:?}");
        // ...while another agent is still let in.
        let id2 = Uuid::new_v4();
        let ours2 = ca
            .sign_agent_csr(&csr, id2, DEFAULT_AGENT_VALIDITY)
            .unwrap();
        let got = handshake(server_rev, client_config(&ca, &ours2.cert_pem, &key)).await;
        assert_eq!(got, Ok(Some(id2)));

        // The controller's own server certificate is no client certificate.
        let srv_cert = ca.server_cert(&["localhost"]).unwrap();
        let srv_key = KeyPair::from_pem(&srv_cert.key_pem).unwrap();
        let got = handshake(
            server.clone(),
            client_config(&ca, &srv_cert.cert_pem, &srv_key),
        )
        .await;
        assert!(got.is_err(), "{got:?}");

        // No client certificate at all.
        let anon = Arc::new(
            ClientConfig::builder_with_provider(provider())
                .with_protocol_versions(&[&rustls::version::TLS13])
                .unwrap()
                .with_root_certificates(ca.root_store().unwrap())
                .with_no_client_auth(),
        );
        // ... completes the handshake (enrollment connections have none) but names no
        // agent: the link server only lets such a connection enroll.
        let got = handshake(server, anon).await;
        assert_eq!(got, Ok(None));
    }
}
