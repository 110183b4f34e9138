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
//!
//! One job per module: `store` keeps the CA in the data folder, `issue` signs agent
//! and link-listener certificates, `tls` builds the link's rustls configuration and
//! client-certificate verifier.

mod issue;
mod store;
#[cfg(test)]
mod test_support;
mod tls;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{Issuer, KeyPair};
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

pub use issue::{agent_id_from_cert, cert_serial};
pub use tls::{AgentClientVerifier, provider, server_config};

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
