//! In-process notices that a user's credentials were revoked (logout, password change or
//! reset, role change, disabling, deletion, API token revocation, refresh-token reuse), so
//! that open live sockets re-check theirs at once instead of at their next periodic check.
//! A notice only says "re-check user X": the store stays the truth, which is also what
//! the periodic check reads and what works across controller replicas.

use tokio::sync::broadcast;
use uuid::Uuid;

/// Notices kept for a slow receiver; one that falls behind re-checks anyway.
const CAPACITY: usize = 1024;

/// The broadcast of revoked users.
#[derive(Debug)]
pub struct Revocations {
    tx: broadcast::Sender<Uuid>,
}

impl Default for Revocations {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(CAPACITY).0,
        }
    }
}

impl Revocations {
    /// Some credential of `user` was revoked.
    pub fn notify(&self, user: Uuid) {
        // No receiver (no open socket) is fine.
        let _ = self.tx.send(user);
    }

    /// Notices from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Uuid> {
        self.tx.subscribe()
    }
}
