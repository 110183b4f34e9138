//! First contact with the controller: before enrollment the agent trusts no CA yet, only
//! the CA fingerprint the join token carries. [`PinnedCaVerifier`] accepts a server chain
//! `[leaf, …, CA]` whose last certificate has exactly that fingerprint and whose leaf
//! verifies against that CA for the dialled name, now (webpki, as for any server).

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error, OtherError, RootCertStore};
use rustls::{ClientConfig, SignatureScheme};

use super::identity::{pin_check, provider};

/// The presented CA is not the one the join token names. A distinct type so the
/// enrollment can tell this apart from other handshake failures.
#[derive(Debug, thiserror::Error)]
#[error("the controller's CA certificate does not match the fingerprint in the join token")]
pub struct PinMismatch;

/// Verifies the controller's chain against a pinned CA fingerprint (see the module doc).
#[derive(Debug)]
pub struct PinnedCaVerifier {
    fingerprint: String,
    provider: Arc<CryptoProvider>,
}

impl PinnedCaVerifier {
    /// Trusts only a CA with this SHA-256 fingerprint (hex).
    pub fn new(fingerprint: impl Into<String>) -> Self {
        Self {
            fingerprint: fingerprint.into(),
            provider: provider(),
        }
    }

    /// A TLS 1.3 client configuration that presents no client certificate and trusts
    /// only the pinned CA: what `enroll` dials with.
    pub fn client_config(self) -> Result<ClientConfig, Error> {
        let provider = Arc::clone(&self.provider);
        Ok(ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(self))
            .with_no_client_auth())
    }
}

impl ServerCertVerifier for PinnedCaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let Some((ca, between)) = intermediates.split_last() else {
            // A lone leaf: nothing to pin.
            return Err(Error::InvalidCertificate(CertificateError::UnknownIssuer));
        };
        if !pin_check(ca, &self.fingerprint) {
            return Err(Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(PinMismatch)),
            )));
        }
        let mut roots = RootCertStore::empty();
        roots
            .add(ca.clone().into_owned())
            .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
        let webpki = WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::clone(&self.provider),
        )
        .build()
        .map_err(|e| Error::General(e.to_string()))?;
        webpki.verify_server_cert(end_entity, between, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Whether a failed handshake failed because of [`PinMismatch`].
pub fn is_pin_mismatch(err: &std::io::Error) -> bool {
    let Some(Error::InvalidCertificate(CertificateError::Other(other))) =
        err.get_ref().and_then(|e| e.downcast_ref::<Error>())
    else {
        return false;
    };
    other.0.downcast_ref::<PinMismatch>().is_some()
}
