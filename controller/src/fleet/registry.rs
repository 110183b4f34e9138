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
