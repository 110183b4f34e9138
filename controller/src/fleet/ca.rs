//! The controller's internal certificate authority (DESIGN.md, "Controller <-> agent link"
//! and "Security"; reference: rust-style.md §5 and §8).
//!
//! - Created on first start: ECDSA P-256 key, self-signed certificate "Languard internal CA",
//!   10 years, `CA:TRUE, pathlen:0`, key usages certSign + cRLSign + digitalSignature.
//! - Persisted in the data folder as `ca.crt` (PEM, 0644) and `ca.key.sealed` (the PKCS#8
//!   PEM key sealed with AES-256-GCM under the master key, 0600). Both are written to a
//!   temporary file and renamed; the certificate is written last, so its presence marks a
//!   complete CA. A key without a certificate is an interrupted creation and is replaced; a
//!   certificate without its key is an error (never silently replaced: agents trust it).
//! - Agent certificates: the CSR proves possession of the key; everything else it asks for
//!   (subject, SANs, EKUs, basic constraints) is thrown away. The issued certificate names
//!   the agent id in CN and in a SAN URI `urn:languard:agent:<uuid>`, has the client-auth
//!   EKU only, is not a CA and is short-lived (7 days by default).
//! - webpki proves only "chained to our CA"; [`AgentClientVerifier`] also requires an agent
//!   id in the certificate and asks a revocation callback. The link server must still look
//!   the agent up in the store after the handshake ([`agent_id_from_cert`] on
//!   `peer_certificates()`).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, PublicKeyData, SanType, SerialNumber,
};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme,
};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;
use x509_parser::extensions::GeneralName;

use crate::secrets::{MasterKey, SecretBox};

/// File name of the CA certificate (PEM) in the data folder.
pub const CA_CERT_FILE: &str = "ca.crt";
/// File name of the sealed CA private key in the data folder.
pub const CA_KEY_FILE: &str = "ca.key.sealed";
/// Subject common name of the CA.
pub const CA_NAME: &str = "Languard internal CA";
/// Prefix of the SAN URI that names an agent: `urn:languard:agent:<uuid>`.
pub const AGENT_URI_PREFIX: &str = "urn:languard:agent:";
/// Default lifetime of an agent certificate (renewed over the link before expiry).
pub const DEFAULT_AGENT_VALIDITY: Duration = Duration::from_secs(7 * 24 * 3600);
/// Longest agent certificate lifetime [`Ca::sign_agent_csr`] accepts.
pub const MAX_AGENT_VALIDITY: Duration = Duration::from_secs(90 * 24 * 3600);
/// Lifetime of the link listener's server certificate (made anew at each start).
pub const SERVER_CERT_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
const CA_VALIDITY_DAYS: i64 = 3650;
/// Tolerance for clocks that run a little behind ours.
const BACKDATE: time::Duration = time::Duration::minutes(5);
/// Upper bound on a CSR we are willing to parse.
const MAX_CSR_LEN: usize = 16 * 1024;

/// Errors of the CA. None of them carries key material.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// Reading or writing a CA file failed.
    #[error("CA file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The sealed key does not open under this master key.
    #[error(
        "the CA key in {0} cannot be decrypted: wrong master key (LANGUARD_MASTER_KEY / master.key) or corrupt file"
    )]
    Unseal(PathBuf),
    /// `ca.crt` exists but its key file does not.
    #[error(
        "{cert} exists but {key} is missing: restore it from a backup (a new CA would lock out every enrolled agent)"
    )]
    MissingKey {
        /// The certificate file.
        cert: PathBuf,
        /// The missing key file.
        key: PathBuf,
    },
    /// The stored certificate or key is unusable or they do not belong together.
    #[error("the stored CA is invalid: {0}")]
    Corrupt(String),
    /// rcgen could not build or sign a certificate.
    #[error("certificate generation failed: {0}")]
    Generate(String),
    /// The CSR is not a parseable PKCS#10 request.
    #[error("the certificate signing request cannot be parsed")]
    CsrMalformed,
    /// The CSR's self-signature does not verify (the sender does not hold the key).
    #[error("the certificate signing request's signature does not verify")]
    CsrBadSignature,
    /// The CSR uses another key type or extensions we do not accept.
    #[error("the certificate signing request uses an unsupported key type (ECDSA P-256 only)")]
    CsrUnsupported,
    /// A validity of zero or above the maximum.
    #[error("invalid certificate validity: {0}")]
    Validity(String),
    /// A server name that is neither an IP address nor a DNS name.
    #[error("invalid server name {0:?}")]
    ServerName(String),
    /// Building a rustls configuration failed.
    #[error("TLS configuration: {0}")]
    Tls(String),
}

/// A certificate issued to an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCert {
    /// The leaf certificate, PEM.
    pub cert_pem: String,
    /// SHA-256 of the leaf DER, lowercase hex (for the store / revocation).
    pub fingerprint: String,
    /// Serial number, lowercase hex.
    pub serial: String,
    /// End of validity (whole seconds, as encoded in the certificate).
    pub not_after: OffsetDateTime,
}

/// The link listener's certificate and key.
#[derive(Clone)]
pub struct ServerCert {
    /// The leaf certificate, PEM (the CA is the only other link of the chain).
    pub cert_pem: String,
    /// The PKCS#8 private key, PEM. Never logged.
    pub key_pem: String,
}

impl std::fmt::Debug for ServerCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerCert")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"...")
            .finish()
    }
}

/// Asks whether an agent id is revoked (or deleted, or disabled). Called during the TLS
/// handshake, so it must not block: back it with an in-memory set kept up to date.
pub type RevocationCheck = Arc<dyn Fn(Uuid) -> bool + Send + Sync>;

/// The internal CA: its certificate and its (unsealed, in-memory) signing key.
pub struct Ca {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    fingerprint: String,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("fingerprint", &self.fingerprint)
            .field("key", &"...")
            .finish()
    }
}

// === impl Ca ===

impl Ca {
    /// Loads the CA from `data_dir`, creating it (and the folder) on first start.
    pub fn load_or_create(data_dir: &Path, master: &MasterKey) -> Result<Ca, CaError> {
        let cert_path = data_dir.join(CA_CERT_FILE);
        let key_path = data_dir.join(CA_KEY_FILE);
        let sealer = SecretBox::new(master);
        match std::fs::read_to_string(&cert_path) {
            Ok(cert_pem) => {
                let blob = match std::fs::read(&key_path) {
                    Ok(b) => b,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(CaError::MissingKey {
                            cert: cert_path,
                            key: key_path,
                        });
                    }
                    Err(source) => {
                        return Err(CaError::Io {
                            path: key_path,
                            source,
                        });
                    }
                };
                let plain = sealer
                    .open(&blob)
                    .map_err(|_| CaError::Unseal(key_path.clone()))?;
                let key_pem = String::from_utf8(plain)
                    .map_err(|_| CaError::Corrupt("the CA key is not PEM text".into()))?;
                let key = KeyPair::from_pem(&key_pem)
                    .map_err(|_| CaError::Corrupt("the CA key cannot be parsed".into()))?;
                Self::from_parts(cert_pem, key)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let ca = Self::create(data_dir, &key_path, &cert_path, &sealer)?;
                tracing::info!(
                    path = %cert_path.display(),
                    fingerprint = %ca.fingerprint,
                    "Created the internal CA."
                );
                Ok(ca)
            }
            Err(source) => Err(CaError::Io {
                path: cert_path,
                source,
            }),
        }
    }

    fn create(
        data_dir: &Path,
        key_path: &Path,
        cert_path: &Path,
        sealer: &SecretBox,
    ) -> Result<Ca, CaError> {
        std::fs::create_dir_all(data_dir).map_err(|source| CaError::Io {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(gen_err)?;
        let now = OffsetDateTime::now_utc();
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, CA_NAME);
        dn.push(DnType::OrganizationName, "Languard");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.serial_number = Some(random_serial());
        params.not_before = now - BACKDATE;
        params.not_after = now + time::Duration::days(CA_VALIDITY_DAYS);
        let cert = params.self_signed(&key).map_err(gen_err)?;
        let cert_pem = cert.pem();

        let sealed = sealer
            .seal(key.serialize_pem().as_bytes())
            .map_err(|_| CaError::Generate("sealing the CA key failed".into()))?;
        // Key first, certificate last: the certificate marks a complete CA.
        write_atomic(key_path, &sealed, 0o600)?;
        write_atomic(cert_path, cert_pem.as_bytes(), 0o644)?;
        Self::from_parts(cert_pem, key)
    }

    fn from_parts(cert_pem: String, key: KeyPair) -> Result<Ca, CaError> {
        let cert_der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|_| CaError::Corrupt("the CA certificate is not PEM".into()))?;
        {
            let (_, x509) = x509_parser::parse_x509_certificate(&cert_der)
                .map_err(|_| CaError::Corrupt("the CA certificate cannot be parsed".into()))?;
            if !x509.is_ca() {
                return Err(CaError::Corrupt("the certificate is not a CA".into()));
            }
            if x509.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
                return Err(CaError::Corrupt(
                    "the CA key does not match the CA certificate".into(),
                ));
            }
        }
        let issuer = Issuer::from_ca_cert_der(&cert_der, key)
            .map_err(|e| CaError::Corrupt(format!("the CA certificate: {e}")))?;
        let fingerprint = sha256_hex(&cert_der);
        Ok(Ca {
            cert_pem,
            cert_der,
            issuer,
            fingerprint,
        })
    }

    /// SHA-256 of the CA certificate's DER, lowercase hex (carried by join tokens).
    pub fn fingerprint(&self) -> String {
        self.fingerprint.clone()
    }

    /// The CA certificate, PEM (sent to agents at enrollment).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// A root store holding only this CA.
    pub fn root_store(&self) -> Result<RootCertStore, CaError> {
        let mut roots = RootCertStore::empty();
        roots
            .add(self.cert_der.clone())
            .map_err(|e| CaError::Tls(format!("CA certificate as trust anchor: {e}")))?;
        Ok(roots)
    }

    /// Issues a client certificate for `agent_id` over the key in `csr_pem`, valid from now
    /// for `validity` (at most [`MAX_AGENT_VALIDITY`]). The CSR's own subject and extensions
    /// are ignored.
    pub fn sign_agent_csr(
        &self,
        csr_pem: &str,
        agent_id: Uuid,
        validity: Duration,
    ) -> Result<SignedCert, CaError> {
        self.sign_agent_csr_at(csr_pem, agent_id, validity, OffsetDateTime::now_utc())
    }

    /// [`Ca::sign_agent_csr`] with an explicit "now" (tests, and clock-controlled callers).
    pub fn sign_agent_csr_at(
        &self,
        csr_pem: &str,
        agent_id: Uuid,
        validity: Duration,
        now: OffsetDateTime,
    ) -> Result<SignedCert, CaError> {
        if validity.is_zero() || validity > MAX_AGENT_VALIDITY {
            return Err(CaError::Validity(format!(
                "{}s (must be between 1s and {}s)",
                validity.as_secs(),
                MAX_AGENT_VALIDITY.as_secs()
            )));
        }
        if csr_pem.len() > MAX_CSR_LEN {
            return Err(CaError::CsrMalformed);
        }
        let csr = CertificateSigningRequestParams::from_pem(csr_pem).map_err(csr_err)?;
        // Keep only the proven public key; drop everything else the CSR asked for.
        let public_key = csr.public_key;
        if public_key.algorithm() != &PKCS_ECDSA_P256_SHA256 || !is_p256_point(&public_key) {
            return Err(CaError::CsrUnsupported);
        }
        let uri = format!("{AGENT_URI_PREFIX}{agent_id}");
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, agent_id.to_string());
        params.distinguished_name = dn;
        params.subject_alt_names = vec![SanType::URI(
            Ia5String::try_from(uri).map_err(|e| CaError::Generate(e.to_string()))?,
        )];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let serial = random_serial();
        let serial_hex = hex(&serial.to_bytes());
        params.serial_number = Some(serial);
        let (not_before, not_after) = window(now, validity)?;
        params.not_before = not_before;
        params.not_after = not_after;
        let cert = params
            .signed_by(&public_key, &self.issuer)
            .map_err(gen_err)?;
        Ok(SignedCert {
            cert_pem: cert.pem(),
            fingerprint: sha256_hex(cert.der()),
            serial: serial_hex,
            not_after,
        })
    }

    /// A fresh key and certificate for the link listener, naming `names` (DNS names or IP
    /// addresses) in its SANs, with the server-auth EKU only.
    pub fn server_cert(&self, names: &[&str]) -> Result<ServerCert, CaError> {
        if names.is_empty() {
            return Err(CaError::ServerName(String::new()));
        }
        let mut sans = Vec::with_capacity(names.len());
        for name in names {
            let name = name.trim();
            let san = match name.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) if is_dns_name(name) => SanType::DnsName(
                    Ia5String::try_from(name).map_err(|_| CaError::ServerName(name.into()))?,
                ),
                Err(_) => return Err(CaError::ServerName(name.into())),
            };
            sans.push(san);
        }
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(gen_err)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, names[0].trim());
        params.distinguished_name = dn;
        params.subject_alt_names = sans;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial());
        let (not_before, not_after) = window(OffsetDateTime::now_utc(), SERVER_CERT_VALIDITY)?;
        params.not_before = not_before;
        params.not_after = not_after;
        let cert = params.signed_by(&key, &self.issuer).map_err(gen_err)?;
        Ok(ServerCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// The agent id named by a client certificate (DER): its single
/// `urn:languard:agent:<uuid>` SAN URI. `None` for anything else (no or several agent URIs,
/// unparseable certificate). Does not verify the chain: use it on certificates the TLS
/// handshake has verified.
pub fn agent_id_from_cert(der: &[u8]) -> Option<Uuid> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    let mut found = None;
    for name in &san.value.general_names {
        if let GeneralName::URI(uri) = name
            && let Some(rest) = uri.strip_prefix(AGENT_URI_PREFIX)
        {
            let id = Uuid::parse_str(rest).ok()?;
            if id.to_string() != rest || found.replace(id).is_some() {
                return None;
            }
        }
    }
    found
}

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

// === helpers ===

fn gen_err(e: rcgen::Error) -> CaError {
    CaError::Generate(e.to_string())
}

fn csr_err(e: rcgen::Error) -> CaError {
    match e {
        rcgen::Error::InvalidCertificationRequestSignature => CaError::CsrBadSignature,
        rcgen::Error::UnsupportedSignatureAlgorithm
        | rcgen::Error::UnsupportedExtension
        | rcgen::Error::UnsupportedInCsr => CaError::CsrUnsupported,
        _ => CaError::CsrMalformed,
    }
}

/// An uncompressed P-256 point: 0x04 || X (32) || Y (32).
fn is_p256_point(key: &rcgen::PublicKey) -> bool {
    let raw = key.der_bytes();
    raw.len() == 65 && raw[0] == 0x04
}

fn window(
    now: OffsetDateTime,
    validity: Duration,
) -> Result<(OffsetDateTime, OffsetDateTime), CaError> {
    let now = now
        .replace_nanosecond(0)
        .map_err(|e| CaError::Validity(e.to_string()))?;
    let span = time::Duration::try_from(validity).map_err(|e| CaError::Validity(e.to_string()))?;
    let not_after = now
        .checked_add(span)
        .ok_or_else(|| CaError::Validity("too long".into()))?;
    Ok((now - BACKDATE, not_after))
}

/// 16 random bytes, positive and without a leading zero byte.
fn random_serial() -> SerialNumber {
    let mut b = crate::auth::random_bytes::<16>();
    b[0] = (b[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&b)
}

/// A conservative DNS name check (letters, digits, '-', '.', optional leading "*.").
fn is_dns_name(name: &str) -> bool {
    let body = name.strip_prefix("*.").unwrap_or(name);
    !body.is_empty()
        && body.len() <= 253
        && body.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-')
        })
}

/// Lowercase hex SHA-256.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

pub(crate) fn hex(data: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(data.len() * 2);
    for b in data {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// Writes `data` to a temporary sibling with `mode`, syncs it and renames it over `path`.
fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), CaError> {
    use std::io::Write;
    let io = |source| CaError::Io {
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
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
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
    use rcgen::PKCS_ED25519;
    use rustls::ClientConfig;
    use rustls::pki_types::ServerName;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn master() -> MasterKey {
        MasterKey::from_bytes([3u8; 32])
    }

    fn new_ca() -> (tempfile::TempDir, Ca) {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::load_or_create(dir.path(), &master()).unwrap();
        (dir, ca)
    }

    /// A CSR that asks for everything it must not get.
    fn forged_csr(key: &KeyPair) -> String {
        let mut params = CertificateParams::new(vec!["controller.example".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, "admin");
        params.subject_alt_names.push(SanType::URI(
            Ia5String::try_from(format!("{AGENT_URI_PREFIX}{}", Uuid::nil())).unwrap(),
        ));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.serialize_request(key).unwrap().pem().unwrap()
    }

    fn plain_csr(key: &KeyPair) -> String {
        CertificateParams::default()
            .serialize_request(key)
            .unwrap()
            .pem()
            .unwrap()
    }

    fn to_pem(tag: &str, der: &[u8]) -> String {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let mut out = format!("-----BEGIN {tag}-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(chunk).unwrap());
            out.push('\n');
        }
        out.push_str(&format!("-----END {tag}-----\n"));
        out
    }

    #[cfg(unix)]
    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn create_then_reload_same_fingerprint() {
        let (dir, ca) = new_ca();
        let fp = ca.fingerprint();
        assert_eq!(fp.len(), 64);
        assert!(
            fp.bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        );
        assert_eq!(fp, sha256_hex(ca.cert_der()));
        let again = Ca::load_or_create(dir.path(), &master()).unwrap();
        assert_eq!(again.fingerprint(), fp);
        assert_eq!(again.cert_pem(), ca.cert_pem());

        let sealed = std::fs::read(dir.path().join(CA_KEY_FILE)).unwrap();
        assert!(!String::from_utf8_lossy(&sealed).contains("PRIVATE KEY"));
        #[cfg(unix)]
        {
            assert_eq!(mode(&dir.path().join(CA_KEY_FILE)), 0o600);
            assert_eq!(mode(&dir.path().join(CA_CERT_FILE)), 0o644);
        }
        assert!(!format!("{ca:?}").contains("PRIVATE"));

        let (_, x) = x509_parser::parse_x509_certificate(ca.cert_der()).unwrap();
        assert!(x.is_ca());
        assert!(x.subject().to_string().contains(CA_NAME));
        let ku = x.key_usage().unwrap().unwrap().value;
        assert!(ku.key_cert_sign());
        let years = (x.validity().not_after.timestamp() - x.validity().not_before.timestamp())
            / (365 * 24 * 3600);
        assert!(years >= 9, "{years}");

        // The signing key survives a reload: a cert issued after reload chains to the CA.
        let key = KeyPair::generate().unwrap();
        let id = Uuid::new_v4();
        let signed = again
            .sign_agent_csr(&plain_csr(&key), id, DEFAULT_AGENT_VALIDITY)
            .unwrap();
        let der = CertificateDer::from_pem_slice(signed.cert_pem.as_bytes()).unwrap();
        let (_, leaf) = x509_parser::parse_x509_certificate(&der).unwrap();
        leaf.verify_signature(Some(x.public_key())).unwrap();
    }

    #[test]
    fn wrong_master_key_is_a_clear_error() {
        let (dir, _ca) = new_ca();
        let err = Ca::load_or_create(dir.path(), &MasterKey::from_bytes([4u8; 32])).unwrap_err();
        assert!(matches!(err, CaError::Unseal(_)), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("wrong master key"), "{msg}");
        assert!(!msg.contains("PRIVATE"));

        // Corrupt sealed file: same error, no panic.
        std::fs::write(dir.path().join(CA_KEY_FILE), b"short").unwrap();
        assert!(matches!(
            Ca::load_or_create(dir.path(), &master()),
            Err(CaError::Unseal(_))
        ));
        // Certificate without key: refuse rather than replace the CA.
        std::fs::remove_file(dir.path().join(CA_KEY_FILE)).unwrap();
        assert!(matches!(
            Ca::load_or_create(dir.path(), &master()),
            Err(CaError::MissingKey { .. })
        ));
        // A key that does not belong to the certificate.
        let (other_dir, _) = new_ca();
        std::fs::copy(
            other_dir.path().join(CA_KEY_FILE),
            dir.path().join(CA_KEY_FILE),
        )
        .unwrap();
        assert!(matches!(
            Ca::load_or_create(dir.path(), &master()),
            Err(CaError::Corrupt(_))
        ));
    }

    #[test]
    fn interrupted_creation_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CA_KEY_FILE), b"stale").unwrap();
        let ca = Ca::load_or_create(dir.path(), &master()).unwrap();
        let again = Ca::load_or_create(dir.path(), &master()).unwrap();
        assert_eq!(ca.fingerprint(), again.fingerprint());
    }

    #[test]
    fn csr_subject_and_extensions_are_ignored() {
        let (_dir, ca) = new_ca();
        let key = KeyPair::generate().unwrap();
        let id = Uuid::new_v4();
        let now = OffsetDateTime::now_utc();
        let signed = ca
            .sign_agent_csr_at(&forged_csr(&key), id, DEFAULT_AGENT_VALIDITY, now)
            .unwrap();
        let der = CertificateDer::from_pem_slice(signed.cert_pem.as_bytes()).unwrap();
        assert_eq!(agent_id_from_cert(&der), Some(id));
        assert_eq!(signed.fingerprint, sha256_hex(&der));

        let (_, x) = x509_parser::parse_x509_certificate(&der).unwrap();
        let cns: Vec<_> = x
            .subject()
            .iter_common_name()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(cns, vec![id.to_string()]);
        assert!(!x.is_ca());
        let eku = x.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth && !eku.any);
        let sans = &x
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names;
        assert_eq!(sans.len(), 1, "{sans:?}");
        assert_eq!(
            x.public_key().subject_public_key.data.as_ref(),
            key.public_key_raw()
        );
        let life = x.validity().not_after.timestamp() - now.unix_timestamp();
        assert!((7 * 86400 - 1..=7 * 86400).contains(&life), "{life}");
        assert_eq!(
            signed.not_after.unix_timestamp(),
            x.validity().not_after.timestamp()
        );
        assert_eq!(x.issuer().to_string(), {
            let (_, c) = x509_parser::parse_x509_certificate(ca.cert_der()).unwrap();
            c.subject().to_string()
        });
    }

    #[test]
    fn bad_csrs_are_typed_errors() {
        let (_dir, ca) = new_ca();
        let id = Uuid::new_v4();
        let v = DEFAULT_AGENT_VALIDITY;
        let key = KeyPair::generate().unwrap();

        // Tampered signature.
        let good = plain_csr(&key);
        let mut der =
            rustls::pki_types::CertificateSigningRequestDer::from_pem_slice(good.as_bytes())
                .unwrap()
                .as_ref()
                .to_vec();
        let last = der.len() - 1;
        der[last] ^= 0x01;
        let tampered = to_pem("CERTIFICATE REQUEST", &der);
        assert!(matches!(
            ca.sign_agent_csr(&tampered, id, v),
            Err(CaError::CsrBadSignature)
        ));

        // Other key types.
        let ed = KeyPair::generate_for(&PKCS_ED25519).unwrap();
        assert!(matches!(
            ca.sign_agent_csr(&plain_csr(&ed), id, v),
            Err(CaError::CsrUnsupported)
        ));
        let p384 = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        assert!(matches!(
            ca.sign_agent_csr(&plain_csr(&p384), id, v),
            Err(CaError::CsrUnsupported)
        ));

        // Garbage.
        for junk in [
            "",
            "hello",
            "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
            ca.cert_pem(),
        ] {
            assert!(
                matches!(ca.sign_agent_csr(junk, id, v), Err(CaError::CsrMalformed)),
                "{junk:?}"
            );
        }
        assert!(matches!(
            ca.sign_agent_csr(&"A".repeat(100_000), id, v),
            Err(CaError::CsrMalformed)
        ));

        // Validity bounds.
        assert!(matches!(
            ca.sign_agent_csr(&good, id, Duration::ZERO),
            Err(CaError::Validity(_))
        ));
        assert!(matches!(
            ca.sign_agent_csr(&good, id, MAX_AGENT_VALIDITY + Duration::from_secs(1)),
            Err(CaError::Validity(_))
        ));
    }

    #[test]
    fn agent_id_parsing_is_strict() {
        let (_dir, ca) = new_ca();
        assert_eq!(agent_id_from_cert(b"junk"), None);
        assert_eq!(agent_id_from_cert(ca.cert_der()), None);
        let server = ca.server_cert(&["localhost", "127.0.0.1"]).unwrap();
        let der = CertificateDer::from_pem_slice(server.cert_pem.as_bytes()).unwrap();
        assert_eq!(agent_id_from_cert(&der), None);
        assert!(!format!("{server:?}").contains("PRIVATE"));
        assert!(matches!(
            ca.server_cert(&["bad name!"]),
            Err(CaError::ServerName(_))
        ));
        assert!(matches!(ca.server_cert(&[]), Err(CaError::ServerName(_))));
    }

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
