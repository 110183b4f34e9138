//! One-time join tokens for agent enrollment (DESIGN.md, "Controller <-> agent link").
//!
//! An admin creates a token; `languard-agent enroll --token T` presents it with its CSR.
//! The token string is
//!
//! ```text
//! lgj_<id: 32 hex>.<secret: 64 hex>.<expires_at: unix seconds>.<CA fingerprint: 64 hex>
//! ```
//!
//! The secret is 32 random bytes; the controller stores only its SHA-256 (a
//! [`TokenRecord`]), compares it in constant time, honours the record's expiry and its
//! `used` flag (the store must set it atomically when the enrollment succeeds). The CA
//! fingerprint lets the agent pin the controller's CA on first contact; the agent reads it
//! from the same string (agent `link::identity::fingerprint_from_join_token`). Token
//! strings never appear in `Debug` output or error messages.

use std::time::Duration;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use uuid::Uuid;

use super::ca::hex;

/// Prefix of every join token string.
pub const TOKEN_PREFIX: &str = "lgj_";
/// Longest lifetime of a join token; longer requests are shortened to this.
pub const MAX_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// Longest string [`parse`] looks at (a real token is 177 characters).
const MAX_TOKEN_LEN: usize = 512;

/// Why a join token is refused. Messages never contain the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    /// Not a join token string at all.
    #[error("malformed join token")]
    Malformed,
    /// The token is for another record (id mismatch) or its secret is wrong.
    #[error("invalid join token")]
    Invalid,
    /// The token has been used already.
    #[error("join token already used")]
    Used,
    /// The token's time is up.
    #[error("join token expired")]
    Expired,
}

/// The token string handed to the admin once. `Debug` prints only the id part.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenString(String);

impl TokenString {
    /// The full secret string (show it once, never log it).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for TokenString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenString(lgj_***)")
    }
}

/// What the controller keeps about a token: never the secret itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// Token id (also in the token string; the store's key).
    pub id: Uuid,
    /// SHA-256 of the 32 secret bytes, lowercase hex.
    pub secret_hash: String,
    /// End of validity.
    pub expires_at: OffsetDateTime,
    /// Set once an enrollment consumed the token.
    pub used: bool,
}

/// A decoded token string. `Debug` hides the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// Token id.
    pub id: Uuid,
    secret: [u8; 32],
    /// Expiry the token claims (the record's expiry is what counts).
    pub expires_at: OffsetDateTime,
    /// SHA-256 of the CA certificate DER, lowercase hex.
    pub ca_fingerprint: String,
}

/// What [`parse`] returns.
pub type ParsedToken = JoinToken;

impl std::fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinToken")
            .field("id", &self.id)
            .field("secret", &"...")
            .field("expires_at", &self.expires_at)
            .field("ca_fingerprint", &self.ca_fingerprint)
            .finish()
    }
}

// === impl JoinToken ===

impl JoinToken {
    /// The string form.
    pub fn encode(&self) -> TokenString {
        TokenString(format!(
            "{TOKEN_PREFIX}{}.{}.{}.{}",
            self.id.simple(),
            hex(&self.secret),
            self.expires_at.unix_timestamp(),
            self.ca_fingerprint
        ))
    }

    /// SHA-256 of the secret, lowercase hex (what [`TokenRecord::secret_hash`] holds).
    pub fn secret_hash(&self) -> String {
        secret_hash(&self.secret)
    }
}

/// A new token valid for `ttl` (at most [`MAX_TTL`]) pinning `ca_fingerprint`: the string
/// to show once and the record to store.
pub fn new_token(ca_fingerprint: &str, ttl: Duration) -> (TokenString, TokenRecord) {
    new_token_at(ca_fingerprint, ttl, OffsetDateTime::now_utc())
}

/// [`new_token`] with an explicit "now".
pub fn new_token_at(
    ca_fingerprint: &str,
    ttl: Duration,
    now: OffsetDateTime,
) -> (TokenString, TokenRecord) {
    let ttl = time::Duration::try_from(ttl.min(MAX_TTL)).unwrap_or(time::Duration::ZERO);
    // Whole seconds: the string carries unix seconds.
    let now = now.replace_nanosecond(0).unwrap_or(now);
    let expires_at = now.checked_add(ttl).unwrap_or(now);
    let token = JoinToken {
        id: Uuid::new_v4(),
        secret: crate::auth::random_bytes::<32>(),
        expires_at,
        ca_fingerprint: ca_fingerprint.trim().to_ascii_lowercase(),
    };
    let record = TokenRecord {
        id: token.id,
        secret_hash: token.secret_hash(),
        expires_at,
        used: false,
    };
    (token.encode(), record)
}

/// Decodes a token string (surrounding whitespace allowed). Never panics.
pub fn parse(token: &str) -> Result<ParsedToken, JoinError> {
    let token = token.trim();
    if token.len() > MAX_TOKEN_LEN {
        return Err(JoinError::Malformed);
    }
    let body = token
        .strip_prefix(TOKEN_PREFIX)
        .ok_or(JoinError::Malformed)?;
    let mut parts = body.split('.');
    let (Some(id), Some(secret), Some(exp), Some(fp), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(JoinError::Malformed);
    };
    let id: [u8; 16] = decode_hex(id).ok_or(JoinError::Malformed)?;
    let secret: [u8; 32] = decode_hex(secret).ok_or(JoinError::Malformed)?;
    if exp.is_empty() || exp.len() > 12 || !exp.bytes().all(|b| b.is_ascii_digit()) {
        return Err(JoinError::Malformed);
    }
    let exp: i64 = exp.parse().map_err(|_| JoinError::Malformed)?;
    let expires_at = OffsetDateTime::from_unix_timestamp(exp).map_err(|_| JoinError::Malformed)?;
    let _: [u8; 32] = decode_hex(fp).ok_or(JoinError::Malformed)?;
    Ok(JoinToken {
        id: Uuid::from_bytes(id),
        secret,
        expires_at,
        ca_fingerprint: fp.to_owned(),
    })
}

/// Checks a presented token against its stored record at `now`: same id, the right secret
/// (constant-time), unused, unexpired. The secret is checked first, so a caller without it
/// learns nothing about the record's state.
pub fn verify(
    parsed: &ParsedToken,
    record: &TokenRecord,
    now: OffsetDateTime,
) -> Result<(), JoinError> {
    let presented = parsed.secret_hash();
    let same_secret: bool = presented
        .as_bytes()
        .ct_eq(record.secret_hash.as_bytes())
        .into();
    if parsed.id != record.id || !same_secret {
        return Err(JoinError::Invalid);
    }
    if record.used {
        return Err(JoinError::Used);
    }
    if now >= record.expires_at {
        return Err(JoinError::Expired);
    }
    Ok(())
}

fn secret_hash(secret: &[u8; 32]) -> String {
    hex(&Sha256::digest(secret))
}

/// Lowercase hex of exactly `N` bytes.
fn decode_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let s = s.as_bytes();
    if s.len() != N * 2 {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP: &str = "ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12";

    #[test]
    fn round_trip_and_verify() {
        let now = OffsetDateTime::now_utc();
        let (s, rec) = new_token_at(FP, Duration::from_secs(3600), now);
        assert!(s.expose().starts_with(TOKEN_PREFIX));
        let p = parse(s.expose()).unwrap();
        assert_eq!(p.id, rec.id);
        assert_eq!(p.ca_fingerprint, FP);
        assert_eq!(p.expires_at, rec.expires_at);
        assert_eq!(p.encode(), s);
        assert!(
            !rec.secret_hash.contains(&s.expose()[37..101]),
            "hash, not secret"
        );
        verify(&p, &rec, now).unwrap();
        // Whitespace from copy/paste is fine.
        verify(&parse(&format!("  {}\n", s.expose())).unwrap(), &rec, now).unwrap();
    }

    #[test]
    fn wrong_secret_other_record_expired_used() {
        let now = OffsetDateTime::now_utc();
        let (s, rec) = new_token_at(FP, Duration::from_secs(60), now);
        let p = parse(s.expose()).unwrap();

        // Flip one hex digit of the secret.
        let mut bad = s.expose().to_owned();
        let i = TOKEN_PREFIX.len() + 33;
        let c = if &bad[i..=i] == "0" { "1" } else { "0" };
        bad.replace_range(i..=i, c);
        assert_eq!(
            verify(&parse(&bad).unwrap(), &rec, now),
            Err(JoinError::Invalid)
        );

        let (_, other) = new_token_at(FP, Duration::from_secs(60), now);
        assert_eq!(verify(&p, &other, now), Err(JoinError::Invalid));

        let used = TokenRecord {
            used: true,
            ..rec.clone()
        };
        assert_eq!(verify(&p, &used, now), Err(JoinError::Used));
        // A wrong secret never reveals that the record is used.
        assert_eq!(
            verify(&parse(&bad).unwrap(), &used, now),
            Err(JoinError::Invalid)
        );

        assert_eq!(
            verify(&p, &rec, now + time::Duration::seconds(60)),
            Err(JoinError::Expired)
        );
        assert_eq!(verify(&p, &rec, now + time::Duration::seconds(59)), Ok(()));
    }

    #[test]
    fn ttl_is_capped() {
        let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
        let (_, rec) = new_token_at(FP, Duration::from_secs(u64::MAX), now);
        assert_eq!(rec.expires_at, now + time::Duration::days(30));
    }

    #[test]
    fn garbage_is_malformed() {
        let (s, _) = new_token(FP, Duration::from_secs(60));
        let good = s.expose();
        let mut cases: Vec<String> = vec![
            String::new(),
            "lgj_".into(),
            "lgj_....".into(),
            "hello".into(),
            good.replacen("lgj_", "lgx_", 1),
            format!("{good}.extra"),
            good.to_uppercase(),
            good[..good.len() - 1].to_owned(),
            format!("{good}0"),
            "lgj_é".into(),
            "lgj_\u{0}".into(),
            "x".repeat(10_000),
            good.replacen('.', ".-", 2),
        ];
        // Every truncation and every single-character replacement by a non-hex char.
        for n in 0..good.len() {
            cases.push(good[..n].to_owned());
            if good.is_char_boundary(n) && good.is_char_boundary(n + 1) {
                let mut m = good.to_owned();
                m.replace_range(n..=n, "ü");
                cases.push(m);
            }
        }
        for c in &cases {
            assert_eq!(parse(c), Err(JoinError::Malformed), "{c:?}");
        }
    }

    #[test]
    fn debug_hides_secrets() {
        let (s, _) = new_token(FP, Duration::from_secs(60));
        let p = parse(s.expose()).unwrap();
        let secret_part = s.expose().split('.').nth(1).unwrap().to_owned();
        for text in [format!("{s:?}"), format!("{p:?}")] {
            assert!(!text.contains(&secret_part), "{text}");
            assert!(!text.contains(s.expose()));
        }
        assert!(!JoinError::Invalid.to_string().contains(&secret_part));
    }
}
