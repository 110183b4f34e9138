//! Identifiers that cross the wire and also name things on disk.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Identifies one game server across controller and agent. The agent uses it as the
/// name of the server's folder, so it is restricted to characters that are safe in a
/// path on every OS: ASCII letters, digits, `-` and `_`, 1 to 64 of them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ServerId(String);

/// Why a string is not a valid [`ServerId`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("server id must be 1 to 64 ASCII letters, digits, '-' or '_'")]
pub struct InvalidServerId;

impl ServerId {
    /// Validates `id`.
    pub fn new(id: impl Into<String>) -> Result<Self, InvalidServerId> {
        let id = id.into();
        let ok = (1..=64).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(id))
        } else {
            Err(InvalidServerId)
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ServerId {
    type Error = InvalidServerId;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<ServerId> for String {
    fn from(id: ServerId) -> Self {
        id.0
    }
}

impl fmt::Display for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_path_safe_ids_are_accepted() {
        for ok in ["a", "srv-1", "Altis_Life_2", &"x".repeat(64)] {
            assert!(ServerId::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "..",
            "a/b",
            "a\\b",
            "a b",
            "ä",
            ".hidden",
            &"x".repeat(65),
            "a\0",
        ] {
            assert!(ServerId::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn deserialising_validates() {
        assert!(serde_json::from_str::<ServerId>("\"../etc\"").is_err());
        let id: ServerId = serde_json::from_str("\"srv-1\"").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"srv-1\"");
    }
}
