//! Which agents are connected, and routing a request to one of them (DESIGN.md,
//! "Controller <-> agent link": requests carry a correlation id and get exactly one
//! answer).
//!
//! One [`LinkHandle`] per connected host: the sending half of its connection and the
//! [`Correlator`] matching answers to requests. A newer connection of the same host
//! replaces the older one (which is closed). The revoked-agent set is read by the TLS
//! verifier during handshakes, so it lives in memory (loaded from the store at start,
//! updated on every revocation).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use languard_shared::games::GameKind;
use languard_shared::wire::link::{ControllerMessage, Correlator};
use languard_shared::wire::request::{AgentError, Request, Response};
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

/// Why a request to an agent has no answer from it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FleetError {
    /// No link to the host (or it dropped before the agent answered).
    #[error("host offline: the agent is not connected")]
    HostOffline,
    /// The agent did not answer in time; the request may still be carried out.
    #[error("the agent did not answer within {0} s")]
    Timeout(u64),
    /// The agent answered with an error.
    #[error("{0}")]
    Agent(AgentError),
}

/// A live connection to one host's agent.
pub struct LinkHandle {
    /// The host.
    pub host_id: Uuid,
    /// The agent (certificate identity).
    pub agent_id: Uuid,
    /// Distinguishes connections of the same host.
    pub conn_id: u64,
    /// The games the agent has adapters for, as its hello said.
    pub games: Vec<GameKind>,
    /// Frames to send.
    pub tx: mpsc::Sender<ControllerMessage>,
    /// Pending requests.
    pub correlator: Arc<Correlator>,
    /// Set to `true` to close the connection.
    pub close: watch::Sender<bool>,
}

/// Connected agents and revoked agent ids.
#[derive(Default)]
pub struct Registry {
    links: RwLock<HashMap<Uuid, Arc<LinkHandle>>>,
    revoked: RwLock<HashSet<Uuid>>,
    next_conn: AtomicU64,
}

impl Registry {
    /// A fresh connection id.
    pub fn next_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Registers a connection; an older connection of the same host is closed.
    pub fn attach(&self, handle: Arc<LinkHandle>) {
        let old = self
            .links
            .write()
            .ok()
            .and_then(|mut m| m.insert(handle.host_id, handle));
        if let Some(old) = old {
            let _ = old.close.send(true);
        }
    }

    /// Unregisters connection `conn_id` of `host_id` (a newer one stays). Returns whether
    /// it was the registered one (then the host is now offline).
    pub fn detach(&self, host_id: Uuid, conn_id: u64) -> bool {
        let Ok(mut m) = self.links.write() else {
            return false;
        };
        if m.get(&host_id).is_some_and(|h| h.conn_id == conn_id) {
            m.remove(&host_id);
            true
        } else {
            false
        }
    }

    /// The host's connection, if any.
    pub fn get(&self, host_id: Uuid) -> Option<Arc<LinkHandle>> {
        self.links.read().ok()?.get(&host_id).cloned()
    }

    /// Whether the host's agent is connected.
    pub fn is_online(&self, host_id: Uuid) -> bool {
        self.links
            .read()
            .map(|m| m.contains_key(&host_id))
            .unwrap_or(false)
    }

    /// The games the host's agent runs (`None`: not connected).
    pub fn games(&self, host_id: Uuid) -> Option<Vec<GameKind>> {
        self.get(host_id).map(|h| h.games.clone())
    }

    /// Hosts connected now.
    pub fn online(&self) -> usize {
        self.links.read().map(|m| m.len()).unwrap_or(0)
    }

    /// Closes the host's connection, if any.
    pub fn disconnect(&self, host_id: Uuid) {
        if let Some(h) = self.get(host_id) {
            let _ = h.close.send(true);
        }
    }

    /// Marks an agent id revoked: refused at its next handshake.
    pub fn revoke(&self, agent_id: Uuid) {
        if let Ok(mut r) = self.revoked.write() {
            r.insert(agent_id);
        }
    }

    /// Whether the agent id is revoked (called from the TLS verifier; never blocks long).
    pub fn is_revoked(&self, agent_id: Uuid) -> bool {
        self.revoked
            .read()
            .map(|r| r.contains(&agent_id))
            .unwrap_or(true)
    }

    /// Sends `request` to the host's agent and waits up to `timeout` for its answer.
    pub async fn request(
        &self,
        host_id: Uuid,
        request: Request,
        timeout: Duration,
    ) -> Result<Response, FleetError> {
        let link = self.get(host_id).ok_or(FleetError::HostOffline)?;
        let (id, rx) = link.correlator.begin();
        if link
            .tx
            .send(ControllerMessage::Request { id, request })
            .await
            .is_err()
        {
            link.correlator.cancel(id);
            return Err(FleetError::HostOffline);
        }
        match tokio::time::timeout(timeout, rx).await {
            Err(_) => {
                link.correlator.cancel(id);
                Err(FleetError::Timeout(timeout.as_secs()))
            }
            Ok(Err(_)) => Err(FleetError::HostOffline),
            Ok(Ok(Ok(response))) => Ok(response),
            Ok(Ok(Err(e))) if e.code == languard_shared::wire::request::ErrorCode::HostOffline => {
                Err(FleetError::HostOffline)
            }
            Ok(Ok(Err(e))) => Err(FleetError::Agent(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use languard_shared::wire::link::host_offline;
    use languard_shared::wire::request::ErrorCode;

    use super::*;

    fn link(
        reg: &Registry,
        host: Uuid,
    ) -> (
        Arc<LinkHandle>,
        mpsc::Receiver<ControllerMessage>,
        watch::Receiver<bool>,
    ) {
        let (tx, rx) = mpsc::channel(8);
        let (close, closed) = watch::channel(false);
        let h = Arc::new(LinkHandle {
            host_id: host,
            agent_id: Uuid::new_v4(),
            conn_id: reg.next_conn_id(),
            games: GameKind::ALL.to_vec(),
            tx,
            correlator: Arc::new(Correlator::new()),
            close,
        });
        reg.attach(h.clone());
        (h, rx, closed)
    }

    #[tokio::test]
    async fn requests_get_the_agents_answer_or_a_clear_error() {
        let reg = Registry::default();
        let host = Uuid::new_v4();
        let t = Duration::from_secs(5);
        assert_eq!(
            reg.request(host, Request::Inventory, t).await,
            Err(FleetError::HostOffline)
        );
        assert_eq!(reg.games(host), None);

        let (h, mut rx, _closed) = link(&reg, host);
        assert_eq!(reg.games(host), Some(GameKind::ALL.to_vec()));
        let agent = tokio::spawn({
            let h = h.clone();
            async move {
                // Answer the first request, fail the second, ignore the third.
                let mut n = 0;
                while let Some(ControllerMessage::Request { id, .. }) = rx.recv().await {
                    n += 1;
                    match n {
                        1 => h.correlator.resolve(id, Ok(Response::Done)),
                        2 => h.correlator.resolve(
                            id,
                            Err(AgentError::new(ErrorCode::NotRunning, "not running")),
                        ),
                        _ => false,
                    };
                }
            }
        });
        assert_eq!(
            reg.request(host, Request::Inventory, t).await,
            Ok(Response::Done)
        );
        match reg.request(host, Request::Inventory, t).await {
            Err(FleetError::Agent(e)) => assert_eq!(e.code, ErrorCode::NotRunning),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            reg.request(host, Request::Inventory, Duration::from_millis(50))
                .await,
            Err(FleetError::Timeout(0))
        );
        assert_eq!(
            h.correlator.pending(),
            0,
            "a timed-out request is forgotten"
        );
        // The link drops while a request waits.
        let reg2 = Arc::new(Registry::default());
        let (h2, _rx2, _c) = link(&reg2, host);
        let waiting = tokio::spawn({
            let reg2 = reg2.clone();
            async move {
                reg2.request(host, Request::Inventory, Duration::from_secs(5))
                    .await
            }
        });
        while h2.correlator.pending() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        h2.correlator.fail_all(host_offline());
        assert_eq!(waiting.await.unwrap(), Err(FleetError::HostOffline));
        agent.abort();
    }

    #[test]
    fn a_newer_connection_replaces_and_closes_the_older() {
        let reg = Registry::default();
        let host = Uuid::new_v4();
        let (old, _rx1, old_closed) = link(&reg, host);
        let (new, _rx2, new_closed) = link(&reg, host);
        assert!(
            *old_closed.borrow(),
            "the older connection is told to close"
        );
        assert!(!*new_closed.borrow());
        // The old connection's cleanup must not unregister the new one.
        assert!(!reg.detach(host, old.conn_id));
        assert!(reg.is_online(host));
        assert!(reg.detach(host, new.conn_id));
        assert!(!reg.is_online(host));
        let agent = Uuid::new_v4();
        assert!(!reg.is_revoked(agent));
        reg.revoke(agent);
        assert!(reg.is_revoked(agent));
    }
}
