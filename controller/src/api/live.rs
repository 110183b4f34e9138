//! `GET /api/v1/ws?ticket=…`: the console's live connection.
//!
//! Client → server (text frames, JSON):
//! `{"op":"subscribe","server":"<uuid>"|null,"channels":["status","log",…]}` (a `null`
//! server means every server and host-wide messages), `{"op":"unsubscribe",…}` (same
//! shape; no channels = all of that server's).
//! Server → client: `{"type":"ready"}`, `{"type":"subscribed","subscriptions":…}`,
//! `{"type":"event","channel":…,"server":…,"host":…,"data":…}`,
//! `{"type":"lagged","dropped":N}` (this console fell behind and lost N messages — reload
//! what it shows), `{"type":"error","message":…}`.
//!
//! The socket lives longer than the access token or API token that paid for its ticket, so
//! it re-checks that credential: at once when this replica revokes something of the user
//! (logout, password change or reset, role change, disabling, token revocation, refresh
//! reuse), and every [`RECHECK_EVERY`] from the store (which also catches revocations made
//! on another replica). A credential that no longer holds closes the socket with close
//! code 1008 (policy) and the reason `credentials revoked`.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use poem::http::StatusCode;
use poem::web::websocket::{CloseCode, Message, WebSocket, WebSocketStream};
use poem::{IntoResponse, Request, Response, handler};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use super::error::{PROBLEM_JSON, Problem};
use crate::auth::Principal;
use crate::live::{Channel, LiveMessage};
use crate::service::AppState;

/// How often the connection is pinged (keeps proxies from closing it).
const PING_EVERY: Duration = Duration::from_secs(30);
/// How often the credential behind the connection is re-read from the store: the safety
/// net behind the in-process revocation notices, and what works across replicas. Cheap:
/// a session's check is served from a one-second cache shared by all of the user's sockets.
const RECHECK_EVERY: Duration = Duration::from_secs(5);
/// Close reason sent when the credential no longer holds.
const REVOKED: &str = "credentials revoked";
/// Largest client message accepted.
const MAX_CLIENT_MESSAGE: usize = 16 * 1024;
/// Most subscriptions per connection.
const MAX_SUBSCRIPTIONS: usize = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientMessage {
    op: Op,
    #[serde(default)]
    server: Option<Uuid>,
    #[serde(default)]
    channels: Vec<Channel>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Op {
    Subscribe,
    Unsubscribe,
}

/// Subscriptions: server (`None` = all) → channels.
#[derive(Default)]
struct Subscriptions(HashMap<Option<Uuid>, HashSet<Channel>>);

impl Subscriptions {
    fn wants(&self, m: &LiveMessage) -> bool {
        let hit = |k: Option<Uuid>| self.0.get(&k).is_some_and(|c| c.contains(&m.channel));
        hit(None) || (m.server_id.is_some() && hit(m.server_id))
    }

    fn view(&self) -> serde_json::Value {
        let list: Vec<_> = self
            .0
            .iter()
            .map(|(s, c)| json!({"server": s, "channels": c}))
            .collect();
        serde_json::Value::Array(list)
    }
}

fn problem(status: u16, detail: &str) -> Response {
    let body = serde_json::to_string(&Problem::new(status, detail)).unwrap_or_default();
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST))
        .content_type(PROBLEM_JSON)
        .body(body)
}

/// The upgrade: the ticket is checked (and used up) first, then the upgrade.
#[handler]
pub async fn endpoint(req: &Request, ws: poem::Result<WebSocket>) -> Response {
    let Some(app) = req.data::<AppState>().cloned() else {
        return problem(500, "internal error");
    };
    let ticket = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("ticket="))
        .unwrap_or("");
    let Some(who) = app.tickets.redeem(ticket) else {
        return problem(
            401,
            "a valid, unused ticket is required (POST /api/v1/live/tickets)",
        );
    };
    let Ok(ws) = ws else {
        return problem(400, "a WebSocket upgrade request is required");
    };
    ws.on_upgrade(move |socket| session(app, who, socket))
        .into_response()
}

async fn session(app: AppState, who: Principal, socket: WebSocketStream) {
    let (mut sink, mut stream) = socket.split();
    // Subscribed before the first check, so no revocation falls between the two.
    let mut revoked = app.revocations.subscribe();
    if !app.credential_valid(&who).await {
        let _ = sink
            .send(Message::close_with(CloseCode::Policy, REVOKED))
            .await;
        let _ = sink.close().await;
        return;
    }
    let mut notices_open = true;
    let mut rx = app.live.subscribe();
    let mut subs = Subscriptions::default();
    let mut ping = tokio::time::interval(PING_EVERY);
    let mut recheck = tokio::time::interval(RECHECK_EVERY);
    ping.tick().await;
    recheck.tick().await;
    let send = |v: serde_json::Value| Message::Text(v.to_string());
    if sink.send(send(json!({"type": "ready"}))).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            incoming = stream.next() => {
                let reply = match incoming {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                    Some(Ok(Message::Text(t))) => handle_client(&mut subs, &t),
                    Some(Ok(Message::Binary(_))) => Some(json!({"type": "error", "message": "send JSON text frames"})),
                    Some(Ok(_)) => None,
                };
                if let Some(r) = reply
                    && sink.send(send(r)).await.is_err()
                {
                    break;
                }
            }
            msg = rx.recv() => {
                let out = match msg {
                    Ok(m) if subs.wants(&m) => match view(&who, &m) {
                        Some(text) => Message::Text(text),
                        None => continue,
                    },
                    Ok(_) => continue,
                    Err(RecvError::Lagged(n)) => send(json!({"type": "lagged", "dropped": n})),
                    Err(RecvError::Closed) => break,
                };
                if sink.send(out).await.is_err() {
                    break;
                }
            }
            _ = ping.tick() => {
                if sink.send(Message::Ping(Vec::new())).await.is_err() {
                    break;
                }
            }
            notice = revoked.recv(), if notices_open => {
                let concerns_us = match notice {
                    Ok(user) => user == who.user_id,
                    // Missed notices may have been ours.
                    Err(RecvError::Lagged(_)) => true,
                    // Cannot happen while the app lives; the periodic check remains.
                    Err(RecvError::Closed) => {
                        notices_open = false;
                        false
                    }
                };
                if concerns_us && !app.credential_valid(&who).await {
                    let _ = sink.send(Message::close_with(CloseCode::Policy, REVOKED)).await;
                    break;
                }
            }
            _ = recheck.tick() => {
                if !app.credential_valid(&who).await {
                    let _ = sink.send(Message::close_with(CloseCode::Policy, REVOKED)).await;
                    break;
                }
            }
        }
    }
    let _ = sink.close().await;
}

/// What this console may see of `m`: player addresses (players and events channels)
/// only for operators and admins, hidden as in the REST views. `None`: nothing (a
/// frame that does not parse, which the hub never publishes).
fn view(who: &Principal, m: &LiveMessage) -> Option<String> {
    // A member named so is the only way an address gets into a frame; text that merely
    // mentions the word is escaped (`\"address\"`) and does not match.
    if super::dto::role_sees_addresses(who.role)
        || !(m.json.contains("\"address\"") || m.json.contains("\"ip\""))
    {
        return Some(m.json.to_string());
    }
    let mut v: serde_json::Value = serde_json::from_str(&m.json).ok()?;
    super::dto::hide_addresses(&mut v);
    Some(v.to_string())
}

fn handle_client(subs: &mut Subscriptions, text: &str) -> Option<serde_json::Value> {
    if text.len() > MAX_CLIENT_MESSAGE {
        return Some(json!({"type": "error", "message": "message too large"}));
    }
    let msg: ClientMessage = match serde_json::from_str(text) {
        Ok(m) => m,
        Err(e) => {
            return Some(json!({"type": "error", "message": format!("invalid message: {e}")}));
        }
    };
    match msg.op {
        Op::Subscribe => {
            if !subs.0.contains_key(&msg.server) && subs.0.len() >= MAX_SUBSCRIPTIONS {
                return Some(json!({"type": "error", "message": "too many subscriptions"}));
            }
            let channels: Vec<Channel> = if msg.channels.is_empty() {
                Channel::ALL.to_vec()
            } else {
                msg.channels
            };
            subs.0.entry(msg.server).or_default().extend(channels);
        }
        Op::Unsubscribe => {
            if msg.channels.is_empty() {
                subs.0.remove(&msg.server);
            } else if let Some(set) = subs.0.get_mut(&msg.server) {
                for c in &msg.channels {
                    set.remove(c);
                }
                if set.is_empty() {
                    subs.0.remove(&msg.server);
                }
            }
        }
    }
    Some(json!({"type": "subscribed", "subscriptions": subs.view()}))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn msg(server: Option<Uuid>, channel: Channel) -> LiveMessage {
        LiveMessage {
            server_id: server,
            host_id: None,
            channel,
            json: Arc::from("{}"),
        }
    }

    #[test]
    fn subscriptions_filter_by_server_and_channel() {
        let a = Uuid::new_v4();
        let b = Uuid::new_v4();
        let mut subs = Subscriptions::default();
        let r = handle_client(
            &mut subs,
            &json!({"op": "subscribe", "server": a, "channels": ["log"]}).to_string(),
        )
        .unwrap();
        assert_eq!(r["type"], "subscribed");
        assert!(subs.wants(&msg(Some(a), Channel::Log)));
        assert!(!subs.wants(&msg(Some(a), Channel::Status)));
        assert!(!subs.wants(&msg(Some(b), Channel::Log)));
        assert!(!subs.wants(&msg(None, Channel::Status)));
        // All servers, status only: host-wide status too.
        handle_client(&mut subs, r#"{"op":"subscribe","channels":["status"]}"#);
        assert!(subs.wants(&msg(Some(b), Channel::Status)));
        assert!(subs.wants(&msg(None, Channel::Status)));
        handle_client(
            &mut subs,
            &json!({"op": "unsubscribe", "server": a}).to_string(),
        );
        assert!(!subs.wants(&msg(Some(a), Channel::Log)));
    }

    #[test]
    fn bad_client_messages_get_an_error_and_change_nothing() {
        let mut subs = Subscriptions::default();
        for bad in [
            "not json",
            r#"{"op":"explode"}"#,
            r#"{"op":"subscribe","channels":["nope"]}"#,
            r#"{"op":"subscribe","server":"not-a-uuid"}"#,
            r#"{"op":"subscribe","extra":1}"#,
        ] {
            let r = handle_client(&mut subs, bad).unwrap();
            assert_eq!(r["type"], "error", "{bad}");
        }
        assert!(subs.0.is_empty());
        let huge = format!(
            r#"{{"op":"subscribe","pad":"{}"}}"#,
            "x".repeat(MAX_CLIENT_MESSAGE)
        );
        assert_eq!(handle_client(&mut subs, &huge).unwrap()["type"], "error");
    }
}
