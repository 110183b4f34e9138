//! Short-lived, single-use WebSocket tickets. Browsers cannot set an `Authorization`
//! header on a WebSocket upgrade, and a long-lived token in a URL ends up in proxy logs;
//! so a signed-in client trades its access token for a ticket (valid 30 s, once) and
//! puts that in the URL.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::auth::Principal;

/// How long a ticket can wait to be used.
pub const TICKET_TTL: Duration = Duration::from_secs(30);
/// Unused tickets kept at most (oldest dropped first when exceeded).
const MAX_TICKETS: usize = 10_000;

/// Outstanding tickets: SHA-256 of the ticket -> (who, issued at).
#[derive(Default)]
pub struct Tickets {
    map: Mutex<HashMap<String, (Principal, Instant)>>,
}

impl Tickets {
    /// Issues a ticket for `who`; returns the ticket string (shown once).
    pub fn issue(&self, who: Principal) -> String {
        let ticket = format!(
            "lgw_{}",
            crate::fleet::ca::hex(&crate::auth::random_bytes::<24>())
        );
        let now = Instant::now();
        if let Ok(mut map) = self.map.lock() {
            map.retain(|_, (_, at)| now.duration_since(*at) < TICKET_TTL);
            if map.len() >= MAX_TICKETS
                && let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, (_, at))| *at)
                    .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
            map.insert(digest(&ticket), (who, now));
        }
        ticket
    }

    /// Consumes a ticket: the principal when it exists and is fresh. A second use fails.
    pub fn redeem(&self, ticket: &str) -> Option<Principal> {
        let (who, at) = self.map.lock().ok()?.remove(&digest(ticket))?;
        (at.elapsed() < TICKET_TTL).then_some(who)
    }
}

fn digest(ticket: &str) -> String {
    use sha2::{Digest, Sha256};
    crate::fleet::ca::hex(&Sha256::digest(ticket.as_bytes()))
}
