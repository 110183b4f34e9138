//! Authentication and authorisation: argon2id passwords, JWT access tokens, opaque refresh
//! and API tokens (stored as SHA-256), roles and login throttling.

pub mod jwt;
pub mod password;
pub mod revocation;
pub mod throttle;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub use crate::store::Role;

/// Prefix of opaque refresh tokens.
pub const REFRESH_PREFIX: &str = "lgr_";
/// Prefix of API tokens.
pub const API_TOKEN_PREFIX: &str = "lgd_";

/// Rank of a role: viewer < operator < admin.
pub fn rank(r: Role) -> u8 {
    match r {
        Role::Viewer => 1,
        Role::Operator => 2,
        Role::Admin => 3,
    }
}

/// Whether `have` includes the rights of `need`.
pub fn role_allows(have: Role, need: Role) -> bool {
    rank(have) >= rank(need)
}

/// How a request authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// A JWT access token from a login.
    Session,
    /// An API token (its id).
    ApiToken(Uuid),
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// User id.
    pub user_id: Uuid,
    /// Username at token issue time.
    pub username: String,
    /// Effective role (an API token's role is capped at its creator's).
    pub role: Role,
    /// Must change the password before doing anything else.
    pub must_change_password: bool,
    /// Credential kind.
    pub via: Via,
    /// Refresh-token family of the session (sessions only).
    pub family: Option<Uuid>,
    /// When the access token was issued, microseconds since the Unix epoch (sessions only).
    pub issued_at_us: Option<i64>,
}

/// `N` random bytes from the OS-seeded CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::rng().fill_bytes(&mut b);
    b
}

/// A random URL-safe token with `prefix`, 256 bits of entropy.
pub fn random_token(prefix: &str) -> String {
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(random_bytes::<32>()))
}

/// A random password of 20 characters from `[A-Za-z0-9]`.
pub fn random_password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rng();
    (0..20)
        .map(|_| {
            let i = (rng.next_u32() as usize) % ALPHABET.len();
            char::from(ALPHABET[i])
        })
        .collect()
}

/// Lowercase hex SHA-256 of a token (how opaque tokens are stored).
pub fn token_hash(token: &str) -> String {
    let d = Sha256::digest(token.as_bytes());
    let mut s = String::with_capacity(64);
    for b in d.iter() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashed() {
        let a = random_token(API_TOKEN_PREFIX);
        let b = random_token(API_TOKEN_PREFIX);
        assert_ne!(a, b);
        assert!(a.starts_with("lgd_") && a.len() > 40);
        assert_eq!(token_hash("abc").len(), 64);
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(role_allows(Role::Admin, Role::Viewer));
        assert!(!role_allows(Role::Viewer, Role::Operator));
        assert_eq!(random_password().len(), 20);
    }
}
