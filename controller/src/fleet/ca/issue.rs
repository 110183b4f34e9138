//! Issuing certificates: agent client certificates from CSRs (only the key the CSR proves
//! is kept) and the link listener's server certificate.

use std::net::IpAddr;
use std::time::Duration;

use rcgen::string::Ia5String;
use rcgen::{
    CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PublicKeyData,
    SanType, SerialNumber,
};
use time::OffsetDateTime;
use uuid::Uuid;
use x509_parser::extensions::GeneralName;

use super::{
    AGENT_URI_PREFIX, BACKDATE, Ca, CaError, MAX_AGENT_VALIDITY, MAX_CSR_LEN, SERVER_CERT_VALIDITY,
    ServerCert, SignedCert, hex, sha256_hex,
};

// === impl Ca: issuance ===

impl Ca {
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

/// The serial number of a certificate (DER), lowercase hex as [`SignedCert::serial`]
/// gives it. Does not verify the certificate.
///
/// [`SignedCert::serial`]: super::SignedCert::serial
pub fn cert_serial(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(hex(cert.raw_serial()))
}

// === helpers ===

pub(super) fn gen_err(e: rcgen::Error) -> CaError {
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
pub(super) fn random_serial() -> SerialNumber {
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

#[cfg(test)]
mod tests {
    use super::super::test_support::{new_ca, plain_csr};
    use super::super::{CaError, DEFAULT_AGENT_VALIDITY};
    use super::*;
    use rcgen::{BasicConstraints, PKCS_ED25519};
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

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
        // The serial read back from the certificate is the one reported at issuance
        // (the store keeps it; the link compares the peer's with it).
        assert_eq!(cert_serial(&der).as_deref(), Some(signed.serial.as_str()));
        assert_eq!(signed.serial.len(), 32);

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
}
