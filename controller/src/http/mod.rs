//! The HTTP front door: our own accept loop in front of a poem endpoint, because
//! `poem::Server` offers no header timeout and no connection limit. Every accepted
//! connection takes a slot (total and per client address) or is closed at once; each is
//! served by hyper (HTTP/1.1 and HTTP/2, WebSocket upgrades included) under the deadlines
//! in [`conn`]. The request body limit lives in the endpoint (`api::middleware`), where
//! it holds for every protocol.

mod conn;
pub mod limit;

use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use poem::Response;
use poem::endpoint::BoxEndpoint;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::Config;
use limit::ConnLimiter;

/// Connection limits and deadlines of one server.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Time to send a whole request header (and a new connection's first request).
    pub header_timeout: Duration,
    /// Time a connection may sit with no request in flight.
    pub idle_timeout: Duration,
    /// Most open connections.
    pub max_connections: usize,
    /// Most open connections per client address (0 = no limit).
    pub max_connections_per_ip: usize,
    /// How long open requests may take to finish after shutdown was asked for.
    pub shutdown_grace: Duration,
}

impl Limits {
    /// The limits the configuration asks for. Behind a trusted proxy every connection
    /// comes from the proxy's address, so there is no per-address limit.
    pub fn from_config(c: &Config) -> Self {
        Self {
            header_timeout: Duration::from_secs(c.http.header_timeout_secs),
            idle_timeout: Duration::from_secs(c.http.idle_timeout_secs),
            max_connections: c.http.max_connections,
            max_connections_per_ip: if c.trust_forwarded_for {
                0
            } else {
                c.http.max_connections_per_ip
            },
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Accepts on every listener until `shutdown` completes, then lets open requests finish
/// for `limits.shutdown_grace` and drops what is left.
pub async fn serve(
    listeners: Vec<TcpListener>,
    ep: BoxEndpoint<'static, Response>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let ep = Arc::new(ep);
    let slots = ConnLimiter::new(limits.max_connections, limits.max_connections_per_ip);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    let mut next = 0usize;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = accept_any(&listeners, &mut next) => match accepted {
                Ok(io) => {
                    let Ok(peer) = io.peer_addr() else { continue };
                    match slots.try_acquire(peer.ip()) {
                        Ok(slot) => {
                            let _ = io.set_nodelay(true);
                            conns.spawn(conn::serve(
                                io,
                                slot,
                                ep.clone(),
                                limits.clone(),
                                stop_rx.clone(),
                            ));
                        }
                        // Closed at once: a refused client costs no more than the accept.
                        Err(why) => tracing::debug!(%peer, %why, "connection refused"),
                    }
                }
                Err(e) => {
                    // Out of file descriptors and the like: do not spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(done) = conns.join_next(), if !conns.is_empty() => {
                if let Err(e) = done
                    && e.is_panic()
                {
                    tracing::error!(error = %e, "HTTP connection task panicked");
                }
            }
        }
    }
    drop(listeners);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(limits.shutdown_grace, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::info!(
            open = conns.len(),
            "closing connections still open after the grace period"
        );
    }
    conns.shutdown().await;
}

/// The next connection from any listener, starting the scan at a rotating index so one
/// busy listener cannot starve the others.
async fn accept_any(listeners: &[TcpListener], next: &mut usize) -> std::io::Result<TcpStream> {
    if listeners.is_empty() {
        return std::future::pending().await;
    }
    std::future::poll_fn(|cx| {
        let n = listeners.len();
        for i in 0..n {
            let idx = (*next + i) % n;
            if let Poll::Ready(res) = listeners[idx].poll_accept(cx) {
                *next = (idx + 1) % n;
                return Poll::Ready(res.map(|(io, _)| io));
            }
        }
        Poll::Pending
    })
    .await
}
