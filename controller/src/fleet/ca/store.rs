//! Persistence of the CA in the data folder: created on first start, loaded (and its key
//! unsealed) after that; files are written atomically, the certificate last.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256,
};
use time::OffsetDateTime;

use super::issue::{gen_err, random_serial};
use super::{BACKDATE, CA_CERT_FILE, CA_KEY_FILE, CA_NAME, CA_VALIDITY_DAYS, Ca, CaError};
use crate::secrets::{MasterKey, SecretBox};

// === impl Ca: persistence ===

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
    use super::super::test_support::{master, new_ca, plain_csr};
    use super::super::{DEFAULT_AGENT_VALIDITY, sha256_hex};
    use super::*;
    use crate::secrets::MasterKey;
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    use uuid::Uuid;

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
}
