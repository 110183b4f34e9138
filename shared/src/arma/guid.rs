//! BattlEye GUIDs.
//!
//! BattlEye identifies players by a "BE GUID" derived from the SteamID64, not by the
//! SteamID itself: `hex(MD5("BE" ‖ steam_id64 as 8 little-endian bytes))`. The RPT
//! prints the SteamID (`Player X connected (id=7656…)`) while RCon prints the GUID, so
//! the agent needs the derivation to join both, and the simulator needs it to emit
//! GUIDs consistent with the SteamIDs it writes.

use md5::{Digest, Md5};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The BE GUID for a SteamID64: 32 lowercase hex digits.
///
/// `be_guid(76561198017965694) == "f8960b9fd7cf711046c1df2ab8d534b2"`.
pub fn be_guid(steam_id64: u64) -> String {
    let mut hasher = Md5::new();
    hasher.update(b"BE");
    hasher.update(steam_id64.to_le_bytes());
    let digest = hasher.finalize();
    let mut out = String::with_capacity(32);
    for byte in digest {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    out
}

/// Whether `s` looks like a BE GUID: exactly 32 ASCII hex digits (either case; the
/// server prints lowercase, hand-written `bans.txt` entries sometimes are not).
pub fn is_be_guid(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_reference_vector() {
        assert_eq!(
            be_guid(76561198017965694),
            "f8960b9fd7cf711046c1df2ab8d534b2"
        );
    }

    #[test]
    fn guid_is_valid_and_lowercase() {
        for id in [0u64, 1, 76561197960265728, 76561198017145527, u64::MAX] {
            let g = be_guid(id);
            assert!(is_be_guid(&g), "{g}");
            assert_eq!(g, g.to_ascii_lowercase());
        }
        assert_ne!(be_guid(1), be_guid(2));
    }

    #[test]
    fn guid_validator() {
        assert!(is_be_guid("f8960b9fd7cf711046c1df2ab8d534b2"));
        assert!(is_be_guid("F8960B9FD7CF711046C1DF2AB8D534B2"));
        assert!(!is_be_guid("f8960b9fd7cf711046c1df2ab8d534b"));
        assert!(!is_be_guid("f8960b9fd7cf711046c1df2ab8d534b2a"));
        assert!(!is_be_guid("g8960b9fd7cf711046c1df2ab8d534b2"));
        assert!(!is_be_guid(""));
        assert!(!is_be_guid("-"));
        // 32 bytes but multi-byte chars must not sneak through.
        assert!(!is_be_guid("ééééééééééééééé00"));
    }
}
