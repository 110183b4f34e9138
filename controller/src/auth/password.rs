//! argon2id password hashing; the work runs on the blocking pool.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

/// Shortest accepted password.
pub const MIN_LEN: usize = 10;
/// Longest accepted password (bytes); argon2 input is bounded to keep hashing cheap to refuse.
pub const MAX_LEN: usize = 256;

fn hasher() -> Argon2<'static> {
    // OWASP-recommended argon2id parameters: m=19 MiB, t=2, p=1.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Checks the password policy; the message never echoes the password.
pub fn check_policy(pw: &str) -> Result<(), String> {
    let n = pw.chars().count();
    if n < MIN_LEN {
        return Err(format!("must be at least {MIN_LEN} characters"));
    }
    if pw.len() > MAX_LEN {
        return Err(format!("must be at most {MAX_LEN} bytes"));
    }
    if pw.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

/// Hashes synchronously to a PHC string.
pub fn hash_sync(pw: &str) -> Result<String, String> {
    hasher()
        .hash_password(pw.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| format!("argon2: {e}"))
}

/// Verifies synchronously; any malformed hash counts as a mismatch.
pub fn verify_sync(pw: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => hasher().verify_password(pw.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// Hashes on the blocking pool.
pub async fn hash(pw: String) -> Result<String, String> {
    tokio::task::spawn_blocking(move || hash_sync(&pw))
        .await
        .map_err(|e| format!("join: {e}"))?
}

/// Verifies on the blocking pool.
pub async fn verify(pw: String, phc: String) -> bool {
    tokio::task::spawn_blocking(move || verify_sync(&pw, &phc))
        .await
        .unwrap_or(false)
}

/// A hash of a random password, verified against when the user does not exist so that
/// unknown and known usernames take the same time.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_sync(&super::random_password()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash_sync("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_sync("correct horse battery", &h));
        assert!(!verify_sync("wrong", &h));
        assert!(!verify_sync("x", "not-a-hash"));
        assert!(check_policy("short").is_err());
        assert!(check_policy("long enough pw").is_ok());
    }
}
