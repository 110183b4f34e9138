//! The agent's link identity (DESIGN.md, "Controller <-> agent link"; rust-style.md §8).
//!
//! `languard-agent enroll` calls [`Identity::generate`] (a fresh ECDSA P-256 key, written
//! 0600; it never leaves the host), sends [`Identity::csr_pem`] with the join token, checks
//! the controller's CA against the token's fingerprint with [`pin_check`], and stores what
//! comes back with [`Identity::store_certificate`] (validated against our key and the CA
//! first). Later starts use [`Identity::load`] and [`client_config`].
//!
//! Files in the agent folder, all mode 0600: `identity.key` (PKCS#8 PEM),
//! `identity.crt` (our certificate, PEM), `ca.crt` (the controller's CA, PEM).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{CertificateParams, DnType, KeyPair, PKCS_ECDSA_P256_SHA256};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore};
use sha2::{Digest, Sha256};

/// The private key file.
pub const KEY_FILE: &str = "identity.key";
/// The agent certificate file.
pub const CERT_FILE: &str = "identity.crt";
/// The pinned CA certificate file.
pub const CA_FILE: &str = "ca.crt";
/// Prefix of join token strings (format owned by the controller's `fleet::join`).
const JOIN_TOKEN_PREFIX: &str = "lgj_";

/// Errors of identity handling. None of them carries key material.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Reading or writing an identity file failed.
    #[error("identity file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Key generation, parsing or CSR creation failed.
    #[error("identity key: {0}")]
    Key(String),
    /// The certificate or CA is unusable (not PEM, wrong key, not issued by the CA,
    /// expired, not for client authentication).
    #[error("certificate rejected: {0}")]
    Certificate(String),
    /// No certificate stored yet (not enrolled).
    #[error("not enrolled: no certificate stored")]
    NotEnrolled,
}

/// The agent's key and (once enrolled) its certificate and the controller's CA.
pub struct Identity {
    dir: PathBuf,
    key_pem: String,
    cert_pem: Option<String>,
    ca_pem: Option<String>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("dir", &self.dir)
            .field("key", &"...")
            .field("enrolled", &self.cert_pem.is_some())
            .finish()
    }
}

// === impl Identity ===

impl Identity {
    /// Makes a new key pair in `agent_dir` (created 0700 if missing), replacing any previous
    /// key. The identity is not enrolled until [`Identity::store_certificate`].
    pub fn generate(agent_dir: &Path) -> Result<Identity, IdentityError> {
        create_private_dir(agent_dir)?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .map_err(|e| IdentityError::Key(e.to_string()))?;
        let key_pem = key.serialize_pem();
        write_atomic(&agent_dir.join(KEY_FILE), key_pem.as_bytes())?;
        Ok(Identity {
            dir: agent_dir.to_path_buf(),
            key_pem,
            cert_pem: None,
            ca_pem: None,
        })
    }

    /// A PKCS#10 request over our key (PEM). Its subject is informative only: the
    /// controller names the certificate after the agent id it assigns.
    pub fn csr_pem(&self) -> Result<String, IdentityError> {
        let key =
            KeyPair::from_pem(&self.key_pem).map_err(|e| IdentityError::Key(e.to_string()))?;
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "languard-agent");
        params
            .serialize_request(&key)
            .and_then(|csr| csr.pem())
            .map_err(|e| IdentityError::Key(e.to_string()))
    }

    /// Validates `cert_pem` (ours: our key, issued by `ca_pem`, valid now, client auth)
    /// and stores both, mode 0600. Nothing is written if validation fails.
    pub fn store_certificate(&mut self, cert_pem: &str, ca_pem: &str) -> Result<(), IdentityError> {
        validate(&self.key_pem, cert_pem, ca_pem)?;
        // CA first, certificate last: `load` needs both and checks they belong together.
        write_atomic(&self.dir.join(CA_FILE), ca_pem.as_bytes())?;
        write_atomic(&self.dir.join(CERT_FILE), cert_pem.as_bytes())?;
        self.cert_pem = Some(cert_pem.to_owned());
        self.ca_pem = Some(ca_pem.to_owned());
        Ok(())
    }

    /// The enrolled identity in `agent_dir`, or `None` when it is missing, incomplete or
    /// inconsistent (the agent then needs `enroll`). Problems other than "not there" are
    /// logged.
    pub fn load(agent_dir: &Path) -> Option<Identity> {
        let read = |name: &str| -> Option<String> {
            let path = agent_dir.join(name);
            match std::fs::read_to_string(&path) {
                Ok(s) => Some(s),
                Err(e) => {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        tracing::warn!(path = %path.display(), error = %e, "Cannot read identity file.");
                    }
                    None
                }
            }
        };
        let key_pem = read(KEY_FILE)?;
        let cert_pem = read(CERT_FILE)?;
        let ca_pem = read(CA_FILE)?;
        let identity = Identity {
            dir: agent_dir.to_path_buf(),
            key_pem,
            cert_pem: Some(cert_pem),
            ca_pem: Some(ca_pem),
        };
        // Key and certificate must belong together and chain to the CA (expiry is the
        // renewal's business, so a stale certificate still loads).
        match client_config(&identity) {
            Ok(_) => Some(identity),
            Err(e) => {
                tracing::warn!(dir = %agent_dir.display(), error = %e, "Stored identity is unusable; enroll again.");
                None
            }
        }
    }

    /// The folder holding the identity.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Our certificate, PEM (once enrolled).
    pub fn cert_pem(&self) -> Option<&str> {
        self.cert_pem.as_deref()
    }

    /// The pinned CA certificate, PEM (once enrolled).
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// SHA-256 of the pinned CA's DER, lowercase hex.
    pub fn ca_fingerprint(&self) -> Option<String> {
        let ca = CertificateDer::from_pem_slice(self.ca_pem.as_deref()?.as_bytes()).ok()?;
        Some(sha256_hex(&ca))
    }
}

/// The link's client configuration: TLS 1.3 only, `ring`, the pinned CA as the only root,
/// our certificate as client certificate.
pub fn client_config(identity: &Identity) -> Result<ClientConfig, IdentityError> {
    let (Some(cert_pem), Some(ca_pem)) = (&identity.cert_pem, &identity.ca_pem) else {
        return Err(IdentityError::NotEnrolled);
    };
    let roots = root_store(ca_pem)?;
    let chain = certs(cert_pem)?;
    let key = PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes())
        .map_err(|_| IdentityError::Key("the key is not PEM".into()))?;
    ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| IdentityError::Certificate(e.to_string()))?
        .with_root_certificates(roots)
        // Checks that the certificate's public key is our key.
        .with_client_auth_cert(chain, key)
        .map_err(|e| IdentityError::Certificate(e.to_string()))
}

/// First contact: does the CA certificate the controller presented (DER) have the
/// SHA-256 fingerprint the join token carries? Hex case and ':' separators are ignored.
pub fn pin_check(presented_ca_der: &[u8], expected_fingerprint: &str) -> bool {
    let expected: String = expected_fingerprint
        .trim()
        .chars()
        .filter(|c| *c != ':')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    expected.len() == 64 && sha256_hex(presented_ca_der) == expected
}

/// The CA fingerprint a join token carries (`lgj_<id>.<secret>.<expiry>.<fingerprint>`),
/// or `None` if the string is not shaped like a join token. The controller validates
/// everything else.
pub fn fingerprint_from_join_token(token: &str) -> Option<String> {
    let body = token.trim().strip_prefix(JOIN_TOKEN_PREFIX)?;
    let parts: Vec<&str> = body.split('.').collect();
    match parts.as_slice() {
        [_, _, _, fp]
            if fp.len() == 64
                && fp
                    .bytes()
                    .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)) =>
        {
            Some((*fp).to_owned())
        }
        _ => None,
    }
}

/// The crypto provider of the link: `ring`.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Our certificate must be for our key, chained to `ca_pem`, valid now and usable for
/// client authentication: checked with the same webpki verifier the controller runs.
fn validate(key_pem: &str, cert_pem: &str, ca_pem: &str) -> Result<(), IdentityError> {
    let roots = Arc::new(root_store(ca_pem)?);
    let chain = certs(cert_pem)?;
    let Some((leaf, intermediates)) = chain.split_first() else {
        return Err(IdentityError::Certificate("no certificate in PEM".into()));
    };
    let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider())
        .build()
        .map_err(|e| IdentityError::Certificate(e.to_string()))?;
    verifier
        .verify_client_cert(leaf, intermediates, UnixTime::now())
        .map_err(|e| IdentityError::Certificate(e.to_string()))?;
    let probe = Identity {
        dir: PathBuf::new(),
        key_pem: key_pem.to_owned(),
        cert_pem: Some(cert_pem.to_owned()),
        ca_pem: Some(ca_pem.to_owned()),
    };
    client_config(&probe).map(|_| ())
}

fn certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, IdentityError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|_| IdentityError::Certificate("not PEM".into()))?;
    if certs.is_empty() {
        return Err(IdentityError::Certificate("no certificate in PEM".into()));
    }
    Ok(certs)
}

fn root_store(ca_pem: &str) -> Result<RootCertStore, IdentityError> {
    let mut roots = RootCertStore::empty();
    for ca in certs(ca_pem)? {
        roots
            .add(ca)
            .map_err(|e| IdentityError::Certificate(format!("CA: {e}")))?;
    }
    Ok(roots)
}

fn sha256_hex(data: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(data);
    let mut s = String::with_capacity(64);
    for b in digest.iter() {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

fn create_private_dir(dir: &Path) -> Result<(), IdentityError> {
    let io = |source| IdentityError::Io {
        path: dir.to_path_buf(),
        source,
    };
    if !dir.exists() {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            b.mode(0o700);
        }
        b.create(dir).map_err(io)?;
    }
    Ok(())
}

/// Writes `data` to a temporary sibling (mode 0600), syncs it and renames it over `path`.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<(), IdentityError> {
    use std::io::Write;
    let io = |source| IdentityError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp).map_err(io)?;
    f.write_all(data).map_err(io)?;
    f.sync_all().map_err(io)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io)?;
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateSigningRequestParams, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyUsagePurpose, SanType,
    };
    use rustls::ServerConfig;
    use rustls::pki_types::ServerName;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A stand-in for the controller's CA (the real one lives in the controller crate).
    struct TestCa {
        pem: String,
        der: CertificateDer<'static>,
        issuer: Issuer<'static, KeyPair>,
    }

    impl TestCa {
        fn new(name: &str) -> TestCa {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::default();
            params.distinguished_name.push(DnType::CommonName, name);
            params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
            params.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            let cert = params.self_signed(&key).unwrap();
            TestCa {
                pem: cert.pem(),
                der: cert.der().clone(),
                issuer: Issuer::new(params, key),
            }
        }

        /// Signs like the controller: only the CSR's key is kept.
        fn sign_client(&self, csr_pem: &str) -> String {
            let csr = CertificateSigningRequestParams::from_pem(csr_pem).unwrap();
            let mut params = CertificateParams::default();
            params
                .distinguished_name
                .push(DnType::CommonName, "00000000-0000-0000-0000-000000000001");
            params.subject_alt_names = vec![SanType::URI(
                "urn:languard:agent:00000000-0000-0000-0000-000000000001"
                    .try_into()
                    .unwrap(),
            )];
            params.is_ca = IsCa::ExplicitNoCa;
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            params
                .signed_by(&csr.public_key, &self.issuer)
                .unwrap()
                .pem()
        }

        fn server(&self) -> Arc<ServerConfig> {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            let cert = params.signed_by(&key, &self.issuer).unwrap();
            let mut roots = RootCertStore::empty();
            roots.add(self.der.clone()).unwrap();
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
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

    #[cfg(unix)]
    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    fn enrolled(dir: &Path, ca: &TestCa) -> Identity {
        let mut id = Identity::generate(dir).unwrap();
        let cert = ca.sign_client(&id.csr_pem().unwrap());
        id.store_certificate(&cert, &ca.pem).unwrap();
        id
    }

    #[test]
    fn generate_store_load() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("agent");
        let ca = TestCa::new("Languard internal CA");
        let id = Identity::generate(&dir).unwrap();
        assert!(Identity::load(&dir).is_none(), "not enrolled yet");
        assert!(matches!(
            client_config(&id),
            Err(IdentityError::NotEnrolled)
        ));
        #[cfg(unix)]
        {
            assert_eq!(mode(&dir.join(KEY_FILE)), 0o600);
            assert_eq!(mode(&dir), 0o700);
        }
        assert!(!format!("{id:?}").contains("PRIVATE"));

        let csr = id.csr_pem().unwrap();
        // The CSR verifies and carries our key.
        let parsed = CertificateSigningRequestParams::from_pem(&csr).unwrap();
        let key = KeyPair::from_pem(&std::fs::read_to_string(dir.join(KEY_FILE)).unwrap()).unwrap();
        assert_eq!(
            rcgen::PublicKeyData::der_bytes(&parsed.public_key),
            key.public_key_raw()
        );

        let mut id = id;
        id.store_certificate(&ca.sign_client(&csr), &ca.pem)
            .unwrap();
        #[cfg(unix)]
        for f in [KEY_FILE, CERT_FILE, CA_FILE] {
            assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
        }
        let loaded = Identity::load(&dir).unwrap();
        assert_eq!(loaded.cert_pem(), id.cert_pem());
        assert_eq!(loaded.ca_fingerprint(), Some(sha256_hex(&ca.der)));
        client_config(&loaded).unwrap();

        // A new key (re-enrollment started) invalidates the stored certificate.
        Identity::generate(&dir).unwrap();
        assert!(Identity::load(&dir).is_none());
    }

    #[test]
    fn store_rejects_foreign_or_mismatched_certificates() {
        let tmp = tempfile::tempdir().unwrap();
        let ca = TestCa::new("ours");
        let other = TestCa::new("other");
        let mut id = Identity::generate(tmp.path()).unwrap();
        let csr = id.csr_pem().unwrap();

        // Signed by another CA than the one we are told to pin.
        let foreign = other.sign_client(&csr);
        assert!(matches!(
            id.store_certificate(&foreign, &ca.pem),
            Err(IdentityError::Certificate(_))
        ));
        // Issued for someone else's key.
        let stranger = Identity::generate(&tmp.path().join("x")).unwrap();
        let theirs = ca.sign_client(&stranger.csr_pem().unwrap());
        assert!(matches!(
            id.store_certificate(&theirs, &ca.pem),
            Err(IdentityError::Certificate(_))
        ));
        // Garbage.
        assert!(id.store_certificate("junk", &ca.pem).is_err());
        assert!(id.store_certificate(&ca.sign_client(&csr), "junk").is_err());
        assert!(!tmp.path().join(CERT_FILE).exists(), "nothing written");

        id.store_certificate(&ca.sign_client(&csr), &ca.pem)
            .unwrap();
    }

    #[test]
    fn pinning() {
        let ca = TestCa::new("ours");
        let other = TestCa::new("other");
        let fp = sha256_hex(&ca.der);
        assert!(pin_check(&ca.der, &fp));
        assert!(pin_check(&ca.der, &fp.to_uppercase()));
        let colons: Vec<String> = fp
            .as_bytes()
            .chunks(2)
            .map(|c| String::from_utf8(c.to_vec()).unwrap())
            .collect();
        assert!(pin_check(&ca.der, &colons.join(":")));
        assert!(!pin_check(&other.der, &fp));
        assert!(!pin_check(&ca.der, ""));
        assert!(!pin_check(&ca.der, &fp[..63]));

        let token = format!("lgj_{}.{}.1700000000.{fp}", "a".repeat(32), "b".repeat(64));
        assert_eq!(fingerprint_from_join_token(&token), Some(fp.clone()));
        assert_eq!(
            fingerprint_from_join_token(&format!(" {token}\n")),
            Some(fp)
        );
        for bad in [
            "",
            "lgj_",
            "lgj_a.b.c",
            "lgj_a.b.c.d.e",
            "x.y.z.w",
            "lgj_a.b.c.ZZ",
        ] {
            assert_eq!(fingerprint_from_join_token(bad), None, "{bad}");
        }
    }

    async fn handshake(server: Arc<ServerConfig>, client: ClientConfig) -> Result<(), String> {
        let (c, s) = tokio::io::duplex(64 * 1024);
        let acceptor = tokio_rustls::TlsAcceptor::from(server);
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
        let srv = async move {
            let mut tls = acceptor.accept(s).await.map_err(|e| e.to_string())?;
            let mut b = [0u8; 1];
            tls.read_exact(&mut b).await.map_err(|e| e.to_string())?;
            tls.write_all(b"y").await.map_err(|e| e.to_string())?;
            tls.flush().await.map_err(|e| e.to_string())
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
        let (s, c) = tokio::time::timeout(std::time::Duration::from_secs(20), async {
            tokio::join!(srv, cli)
        })
        .await
        .map_err(|_| "timeout".to_owned())?;
        s?;
        c
    }

    #[tokio::test]
    async fn client_config_does_mtls_and_trusts_only_the_pinned_ca() {
        let tmp = tempfile::tempdir().unwrap();
        let ca = TestCa::new("ours");
        let id = enrolled(tmp.path(), &ca);
        handshake(ca.server(), client_config(&id).unwrap())
            .await
            .unwrap();

        // A controller impostor with a certificate from another CA is refused by the agent.
        let impostor = TestCa::new("impostor");
        let err = handshake(impostor.server(), client_config(&id).unwrap())
            .await
            .unwrap_err();
        assert!(
            err.to_lowercase().contains("unknown") || err.contains("issuer"),
            "{err}"
        );
    }
}
