//! Enrollment over the link port (DESIGN.md, "Controller <-> agent link"): a connection
//! without a client certificate sends one `Enroll` with a join token and a CSR, and gets
//! its certificate back — or a refusal that says why without revealing anything about
//! the token.

use std::net::SocketAddr;
use std::time::Duration;

use languard_shared::wire::frame::FramedLink;
use languard_shared::wire::link::{AgentMessage, ControllerMessage, SUPPORTED_VERSIONS, negotiate};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite};
use uuid::Uuid;

use super::join::{self, JoinError, TokenRecord};
use super::link::LinkDeps;
use crate::store::{ActorKind, Enrollment, NewAuditEvent, StoreError};

const ENROLL_TIMEOUT: Duration = Duration::from_secs(10);

/// Why an enrollment is refused (the text goes to the agent).
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error("{0}")]
    Token(#[from] JoinError),
    #[error("{0}")]
    Protocol(String),
    #[error("the certificate request is unacceptable: {0}")]
    Csr(String),
    #[error("os must be `linux` or `windows`")]
    Os,
    #[error("controller storage unavailable; retry later")]
    Store,
}

/// Serves one enrollment connection.
pub async fn serve<T: AsyncRead + AsyncWrite + Unpin>(
    app: &LinkDeps,
    mut link: FramedLink<T>,
    peer: SocketAddr,
) {
    let msg = match tokio::time::timeout(ENROLL_TIMEOUT, link.recv::<AgentMessage>()).await {
        Ok(Ok(Some(m))) => m,
        Ok(Ok(None)) | Err(_) => return,
        Ok(Err(e)) => {
            tracing::info!(%peer, error = %e, "Enrollment connection sent a bad frame.");
            return;
        }
    };
    let answer = match enroll(app, msg, peer).await {
        Ok(m) => m,
        Err(r) => {
            tracing::info!(%peer, reason = %r, "Enrollment refused.");
            ControllerMessage::Refused {
                reason: r.to_string(),
            }
        }
    };
    let _ = link.send(&answer).await;
}

async fn enroll(
    app: &LinkDeps,
    msg: AgentMessage,
    peer: SocketAddr,
) -> Result<ControllerMessage, Refusal> {
    let AgentMessage::Enroll {
        protocol_version,
        agent_version,
        token,
        csr_pem,
        hostname,
        os,
    } = msg
    else {
        return Err(Refusal::Protocol(
            "a connection without a client certificate may only enroll".into(),
        ));
    };
    negotiate(protocol_version, SUPPORTED_VERSIONS).map_err(Refusal::Protocol)?;
    let os: crate::store::HostOs = os
        .trim()
        .to_ascii_lowercase()
        .parse()
        .map_err(|_| Refusal::Os)?;
    let parsed = join::parse(&token.0)?;
    let row = app
        .store
        .get_join_token(parsed.id)
        .await
        .map_err(|_| Refusal::Store)?
        .ok_or(JoinError::Invalid)?;
    let record = TokenRecord {
        id: row.id,
        secret_hash: row.secret_hash.clone(),
        expires_at: row.expires_at,
        used: row.used_at.is_some(),
    };
    let now = crate::store::now();
    join::verify(&parsed, &record, now)?;
    let agent_id = Uuid::new_v4();
    let validity = Duration::from_secs(u64::from(app.config.cert_validity_days) * 86_400);
    let cert = app
        .ca
        .sign_agent_csr(&csr_pem, agent_id, validity)
        .map_err(|e| Refusal::Csr(e.to_string()))?;
    let previous = app.store.get_host(row.host_id).await.ok().flatten();
    let host = app
        .store
        .enroll_agent(Enrollment {
            token_id: row.id,
            host_id: row.host_id,
            agent_id,
            os,
            agent_version: truncate(&agent_version, 64),
            cert_serial: cert.serial.clone(),
            at: now,
        })
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => Refusal::Token(JoinError::Used),
            _ => Refusal::Store,
        })?;
    // A re-enrolled host: the old agent's certificate names an id no host has any more,
    // so it is refused at its next hello; close its current link now.
    if let Some(old) = previous.and_then(|h| h.agent_id)
        && let Ok(old) = Uuid::parse_str(&old)
    {
        app.registry.revoke(old);
        app.registry.disconnect(host.id);
    }
    let ev = NewAuditEvent {
        ts: None,
        actor_user_id: row.created_by,
        actor_kind: ActorKind::Agent,
        action: "host.enroll".into(),
        target_kind: Some("host".into()),
        target_id: Some(host.id.to_string()),
        ip: Some(peer.ip().to_string()),
        details: json!({"agent_id": agent_id, "hostname": truncate(&hostname, 255), "token_id": row.id, "cert_serial": cert.serial}),
    };
    if let Err(e) = app.store.insert_audit(ev).await {
        tracing::error!(error = %e, "Audit event could not be stored.");
    }
    tracing::info!(%peer, host = %host.id, %agent_id, "Agent enrolled.");
    Ok(ControllerMessage::Enrolled {
        agent_id: agent_id.to_string(),
        host_id: host.id.to_string(),
        cert_pem: cert.cert_pem,
        ca_pem: app.ca.cert_pem().to_owned(),
    })
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().filter(|c| !c.is_control()).take(max).collect()
}
