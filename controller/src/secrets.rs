//! The master key and AES-256-GCM encryption of secrets at rest.
//!
//! The key comes from `LANGUARD_MASTER_KEY` (base64 of 32 bytes) or a key file (created with
//! mode 0600 on first start). Every encryption uses a fresh random 96-bit nonce stored in
//! front of the ciphertext: `blob = nonce (12) || ciphertext+tag`. Sub-keys for other
//! purposes (the JWT signing key) are derived with SHA-256 over a purpose label.

use std::path::Path;

use aes_gcm::aead::{Aead, Generate, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

/// Errors of key loading and secret encryption.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The key file or env value is unusable.
    #[error("master key: {0}")]
    Key(String),
    /// Encryption or decryption failed (wrong key or corrupt blob).
    #[error("secret cannot be decrypted (wrong master key or corrupt data)")]
    Crypto,
}

/// The 32-byte master key. Never printed.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(***)")
    }
}

impl MasterKey {
    /// From raw bytes.
    pub fn from_bytes(b: [u8; 32]) -> Self {
        Self(b)
    }

    /// Decodes base64 (standard alphabet, padding optional) of exactly 32 bytes.
    pub fn from_base64(s: &str) -> Result<Self, SecretError> {
        let s = s.trim();
        let bytes = STANDARD
            .decode(s)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(s))
            .map_err(|_| SecretError::Key("not valid base64".into()))?;
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| SecretError::Key("must be 32 bytes".into()))?;
        Ok(Self(arr))
    }

    /// A new random key.
    pub fn generate() -> Self {
        Self(crate::auth::random_bytes::<32>())
    }

    /// Env value if given, else the file (created 0600 if missing). `existing_data` says the
    /// database already holds users or sealed config data: a missing key file is then an
    /// error, because a new key could not decrypt what the old one sealed.
    pub fn load(
        env_value: Option<&str>,
        file: &Path,
        existing_data: bool,
    ) -> Result<Self, SecretError> {
        if let Some(v) = env_value {
            return Self::from_base64(v);
        }
        match std::fs::read_to_string(file) {
            Ok(text) => Self::from_base64(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && existing_data => {
                Err(SecretError::Key(format!(
                    "{} is missing but the database already has users or configs sealed with \
                     a master key; refusing to create a new key (it could not decrypt them). \
                     Restore the key file from a backup or set LANGUARD_MASTER_KEY.",
                    file.display()
                )))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate();
                write_private(file, format!("{}\n", STANDARD.encode(key.0)).as_bytes())
                    .map_err(|e| SecretError::Key(format!("{}: {e}", file.display())))?;
                tracing::info!(path = %file.display(), "Created a new master key file.");
                Ok(key)
            }
            Err(e) => Err(SecretError::Key(format!("{}: {e}", file.display()))),
        }
    }

    /// A sub-key for `purpose` (domain separated).
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"languard/v1/");
        h.update(purpose.as_bytes());
        h.update([0u8]);
        h.update(self.0);
        let out = h.finalize();
        let mut k = [0u8; 32];
        k.copy_from_slice(&out);
        k
    }
}

/// Writes a file readable only by its owner (mode 0600 on Unix), failing if it exists.
pub fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

/// AES-256-GCM under a key derived from the master key.
#[derive(Clone)]
pub struct SecretBox {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(***)")
    }
}

impl SecretBox {
    /// The box for config secrets.
    pub fn new(master: &MasterKey) -> Self {
        let key = master.derive("config-secrets");
        let cipher = Aes256Gcm::new(&key.into());
        Self { cipher }
    }

    /// Encrypts `plain`; returns `nonce || ciphertext`.
    pub fn seal(&self, plain: &[u8]) -> Result<Vec<u8>, SecretError> {
        let nonce = Nonce::generate();
        let ct = self
            .cipher
            .encrypt(&nonce, plain)
            .map_err(|_| SecretError::Crypto)?;
        let mut out = Vec::with_capacity(12 + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Decrypts a blob from [`SecretBox::seal`].
    pub fn open(&self, blob: &[u8]) -> Result<Vec<u8>, SecretError> {
        if blob.len() < 12 + 16 {
            return Err(SecretError::Crypto);
        }
        let (n, ct) = blob.split_at(12);
        let nonce = Nonce::try_from(n).map_err(|_| SecretError::Crypto)?;
        self.cipher
            .decrypt(&nonce, ct)
            .map_err(|_| SecretError::Crypto)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_roundtrip_and_tamper() {
        let b = SecretBox::new(&MasterKey::generate());
        let blob = b.seal(b"hunter2").unwrap();
        assert_eq!(b.open(&blob).unwrap(), b"hunter2");
        assert_ne!(b.seal(b"hunter2").unwrap(), blob, "fresh nonce");
        let mut bad = blob.clone();
        bad[20] ^= 1;
        assert!(b.open(&bad).is_err());
        let other = SecretBox::new(&MasterKey::generate());
        assert!(other.open(&blob).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn key_file_created_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k/master.key");
        let k1 = MasterKey::load(None, &p, false).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let k2 = MasterKey::load(None, &p, true).unwrap();
        assert_eq!(k1.0, k2.0);
        let env = STANDARD.encode([7u8; 32]);
        assert_eq!(MasterKey::load(Some(&env), &p, true).unwrap().0, [7u8; 32]);
    }

    #[test]
    fn missing_key_with_existing_data_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("master.key");
        let err = MasterKey::load(None, &p, true).unwrap_err().to_string();
        assert!(err.contains("LANGUARD_MASTER_KEY"), "{err}");
        assert!(err.contains("Restore"), "{err}");
        assert!(!p.exists(), "no new key may be written");
        // The environment still works without the file.
        let env = STANDARD.encode([3u8; 32]);
        assert_eq!(MasterKey::load(Some(&env), &p, true).unwrap().0, [3u8; 32]);
    }
}
