//! JWT access tokens: HS256 pinned, a key derived from the master key, `iss`/`aud` per
//! purpose, small leeway. Verified tokens are cached until they expire so that the hot path
//! does one hash-map lookup instead of an HMAC and a JSON parse.

use std::collections::HashMap;
use std::sync::RwLock;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Principal, Role, Via};

/// Issuer of every token this controller mints.
pub const ISSUER: &str = "languard";
/// Audience of API access tokens.
pub const AUD_ACCESS: &str = "languard:access";
/// Leeway for `exp`/`nbf`, seconds.
pub const LEEWAY_SECS: u64 = 5;
const CACHE_MAX: usize = 20_000;

/// Claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// Audience (purpose).
    pub aud: String,
    /// User id.
    pub sub: String,
    /// Username.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Must change password.
    pub mc: bool,
    /// Issued at.
    pub iat: u64,
    /// Not before.
    pub nbf: u64,
    /// Expiry.
    pub exp: u64,
    /// Refresh family the session belongs to.
    pub sid: String,
    /// Issued at, microseconds since the Unix epoch (compared with the user's
    /// `tokens_valid_after`; `iat` has only second resolution).
    #[serde(default)]
    pub iat_us: i64,
}

/// Signing/verification keys plus the verification cache.
pub struct JwtKeys {
    enc: EncodingKey,
    dec: DecodingKey,
    validation: Validation,
    ttl: u64,
    cache: RwLock<HashMap<String, Principal2>>,
}

#[derive(Clone)]
struct Principal2 {
    p: Principal,
    exp: u64,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtKeys(***)")
    }
}

/// Seconds since the Unix epoch.
/// Microseconds since the Unix epoch.
pub fn unix_now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl JwtKeys {
    /// Keys from a 32-byte secret; `ttl` seconds per token.
    pub fn new(secret: &[u8; 32], ttl: u64) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUD_ACCESS]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub", "nbf"]);
        Self {
            enc: EncodingKey::from_secret(secret),
            dec: DecodingKey::from_secret(secret),
            validation,
            ttl,
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// Lifetime of new tokens, seconds.
    pub fn ttl(&self) -> u64 {
        self.ttl
    }

    /// Mints an access token.
    pub fn issue(
        &self,
        user_id: Uuid,
        username: &str,
        role: Role,
        must_change: bool,
        family: Uuid,
    ) -> Result<String, String> {
        let now = unix_now();
        let claims = Claims {
            iss: ISSUER.into(),
            aud: AUD_ACCESS.into(),
            sub: user_id.to_string(),
            name: username.into(),
            role,
            mc: must_change,
            iat: now,
            nbf: now,
            exp: now + self.ttl,
            sid: family.to_string(),
            iat_us: unix_now_us(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.enc)
            .map_err(|e| format!("jwt: {e}"))
    }

    /// Verifies a token (cached); `None` when invalid, expired or of another purpose.
    pub fn verify(&self, token: &str) -> Option<Principal> {
        let now = unix_now();
        if let Ok(cache) = self.cache.read()
            && let Some(hit) = cache.get(token)
        {
            return (hit.exp + LEEWAY_SECS > now).then(|| hit.p.clone());
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.dec, &self.validation).ok()?;
        let c = data.claims;
        let user_id = Uuid::parse_str(&c.sub).ok()?;
        let p = Principal {
            user_id,
            username: c.name,
            role: c.role,
            must_change_password: c.mc,
            via: Via::Session,
            family: Uuid::parse_str(&c.sid).ok(),
            issued_at_us: Some(c.iat_us),
        };
        if let Ok(mut cache) = self.cache.write() {
            if cache.len() >= CACHE_MAX {
                cache.retain(|_, v| v.exp + LEEWAY_SECS > now);
                if cache.len() >= CACHE_MAX {
                    cache.clear();
                }
            }
            cache.insert(
                token.to_owned(),
                Principal2 {
                    p: p.clone(),
                    exp: c.exp,
                },
            );
        }
        Some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    #[test]
    fn rejects_alg_none_wrong_key_and_expired() {
        let k = JwtKeys::new(&[1u8; 32], 60);
        let id = Uuid::nil();
        let t = k.issue(id, "a", Role::Admin, false, id).unwrap();
        assert!(k.verify(&t).is_some());
        let other = JwtKeys::new(&[2u8; 32], 60);
        assert!(other.verify(&t).is_none());
        // alg: none with the same claims.
        let payload = t.split('.').nth(1).unwrap();
        let none_hdr = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        assert!(k.verify(&format!("{none_hdr}.{payload}.")).is_none());
        // expired
        let now = unix_now();
        let claims = Claims {
            iss: ISSUER.into(),
            aud: AUD_ACCESS.into(),
            sub: id.to_string(),
            name: "a".into(),
            role: Role::Admin,
            mc: false,
            iat: now - 100,
            nbf: now - 100,
            exp: now - 30,
            sid: id.to_string(),
            iat_us: 0,
        };
        let old = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(&[1u8; 32]),
        )
        .unwrap();
        assert!(k.verify(&old).is_none());
        // wrong audience
        let claims = Claims {
            aud: "languard:other".into(),
            exp: now + 60,
            ..claims
        };
        let wrong = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(&[1u8; 32]),
        )
        .unwrap();
        assert!(k.verify(&wrong).is_none());
    }
}
