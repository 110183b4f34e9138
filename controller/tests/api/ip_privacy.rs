//! Player addresses are shown to operators and admins only: every view that carries one
//! (online players, sessions, server history, the live players and events channels)
//! gives viewers `null`, and the player directory carries none at all.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on failure

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use languard_controller::fleet::registry::LinkHandle;
use languard_controller::live::Channel;
use languard_controller::store::{
    IngestBatch, NewServerEvent, Role, ServerEventKind, SessionChange, now,
};
use languard_shared::games::GameKind;
use languard_shared::wire::link::{ControllerMessage, Correlator};
use languard_shared::wire::{Player, PlayerEvent, Response};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use super::common::Harness;

const ADDRESS: &str = "203.0.113.77";

fn joined() -> PlayerEvent {
    PlayerEvent::Joined {
        player: Player {
            key: "3".into(),
            name: "Fritz".into(),
            account: Some("a".repeat(32)),
            verified: true,
            address: Some(ADDRESS.parse().unwrap()),
            ping_ms: Some(40),
            in_lobby: false,
        },
    }
}

/// An agent for `host` that answers every request with one online player.
fn fake_agent(h: &Harness, host: Uuid) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(8);
    let (close, _) = tokio::sync::watch::channel(false);
    let correlator = Arc::new(Correlator::new());
    h.app.fleet.attach(Arc::new(LinkHandle {
        host_id: host,
        agent_id: Uuid::new_v4(),
        conn_id: h.app.fleet.next_conn_id(),
        games: vec![GameKind::Arma3],
        tx,
        correlator: correlator.clone(),
        close,
    }));
    tokio::spawn(async move {
        while let Some(ControllerMessage::Request { id, .. }) = rx.recv().await {
            let PlayerEvent::Joined { player } = joined() else {
                unreachable!()
            };
            correlator.resolve(id, Ok(Response::Players(vec![player])));
        }
    });
}

/// Every string anywhere in `v`.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(m) => m.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

fn mentions_address(v: &Value) -> bool {
    let mut all = Vec::new();
    strings(v, &mut all);
    all.iter().any(|s| s.contains(ADDRESS))
}

#[tokio::test]
async fn player_addresses_reach_operators_and_admins_only() {
    let h = Harness::new().await;
    let admin = h.user("root", Role::Admin).await;
    let operator = h.user("op", Role::Operator).await;
    let viewer = h.user("mod", Role::Viewer).await;
    let (host, server) = h.server(&admin, 2302).await;
    let host_id = Uuid::parse_str(&host).unwrap();
    let server_id = Uuid::parse_str(&server).unwrap();
    fake_agent(&h, host_id);
    let at = now();
    h.app
        .store
        .ingest(IngestBatch {
            host_id,
            upto: 1,
            events: vec![NewServerEvent {
                server_id: Some(server_id),
                host_id,
                seq: 1,
                ts: at,
                kind: ServerEventKind::PlayerJoined,
                data: serde_json::to_value(joined()).unwrap(),
            }],
            sessions: vec![SessionChange::Join {
                server_id,
                account: "a".repeat(32),
                name: "Fritz".into(),
                ip: Some(ADDRESS.into()),
                at,
            }],
            ..Default::default()
        })
        .await
        .unwrap();

    let players = format!("/api/v1/servers/{server}/players");
    let sessions = format!("/api/v1/servers/{server}/sessions");
    let events = format!("/api/v1/servers/{server}/events");
    for (who, token, sees) in [
        ("admin", &admin, true),
        ("operator", &operator, true),
        ("viewer", &viewer, false),
    ] {
        let (s, v) = h.get(&players, token).await;
        assert_eq!(s, 200, "{who}: {v}");
        assert_eq!(v[0]["name"], "Fritz", "{who}");
        let expected = if sees { json!(ADDRESS) } else { Value::Null };
        assert_eq!(v[0]["address"], expected, "{who}: online players");

        let (s, v) = h.get(&sessions, token).await;
        assert_eq!(s, 200, "{who}: {v}");
        assert_eq!(v.as_array().unwrap().len(), 1, "{who}: {v}");
        assert_eq!(v[0]["ip"], expected, "{who}: sessions");

        let (s, v) = h.get(&events, token).await;
        assert_eq!(s, 200, "{who}: {v}");
        assert_eq!(v[0]["kind"], "player_joined", "{who}");
        assert_eq!(v[0]["data"]["player"]["name"], "Fritz", "{who}");
        assert_eq!(
            v[0]["data"]["player"]["address"], expected,
            "{who}: history"
        );
        assert_eq!(mentions_address(&v), sees, "{who}: history {v}");

        // The directory has names and accounts, never addresses.
        let (s, v) = h.get("/api/v1/players", token).await;
        assert_eq!(s, 200, "{who}: {v}");
        assert_eq!(v[0]["last_name"], "Fritz", "{who}");
        assert!(!mentions_address(&v), "{who}: directory {v}");
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame in time")
            .expect("the socket stays open")
            .unwrap();
        if let Message::Text(t) = msg {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

/// A console of `token`'s user, subscribed to every server's players and events.
async fn console(h: &Harness, base: &str, token: &str) -> Ws {
    let (s, t) = h
        .send("POST", "/api/v1/live/tickets", token, json!({}))
        .await;
    assert_eq!(s, 200, "{t}");
    let url = format!(
        "ws://{base}/api/v1/ws?ticket={}",
        t["ticket"].as_str().unwrap()
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    assert_eq!(next_json(&mut ws).await["type"], "ready");
    ws.send(Message::Text(
        json!({"op": "subscribe", "server": null, "channels": ["players", "events"]})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    assert_eq!(next_json(&mut ws).await["type"], "subscribed");
    ws
}

#[tokio::test]
async fn the_live_players_and_events_channels_hide_addresses_from_viewers() {
    use poem::listener::{Acceptor, Listener};
    let h = Harness::new().await;
    let admin = h.user("root", Role::Admin).await;
    let operator = h.user("op", Role::Operator).await;
    let viewer = h.user("mod", Role::Viewer).await;
    let (host, server) = h.server(&admin, 2302).await;
    let acceptor = poem::listener::TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .unwrap();
    let base = acceptor.local_addr()[0]
        .as_socket_addr()
        .unwrap()
        .to_string();
    let ep = languard_controller::api::build(h.app.clone());
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(ep));

    let mut op_ws = console(&h, &base, &operator).await;
    let mut viewer_ws = console(&h, &base, &viewer).await;
    let data = serde_json::to_value(joined()).unwrap();
    let (host_id, server_id) = (
        Some(Uuid::parse_str(&host).unwrap()),
        Uuid::parse_str(&server).ok(),
    );
    // As the link publishes a join: on the players channel, and wrapped on events.
    h.app
        .live
        .publish(Channel::Players, server_id, host_id, &data);
    h.app.live.publish(
        Channel::Events,
        server_id,
        host_id,
        &json!({"kind": "player_joined", "data": data}),
    );
    let admin_login = json!({"kind": "admin_login", "admin": "1", "address": ADDRESS});
    h.app.live.publish(
        Channel::Events,
        server_id,
        host_id,
        &json!({"kind": "admin_login", "data": admin_login}),
    );

    for (who, ws, sees) in [
        ("operator", &mut op_ws, true),
        ("viewer", &mut viewer_ws, false),
    ] {
        let expected = if sees { json!(ADDRESS) } else { Value::Null };
        let players = next_json(ws).await;
        assert_eq!(
            (
                players["channel"].as_str(),
                players["data"]["player"]["name"].as_str()
            ),
            (Some("players"), Some("Fritz")),
            "{who}: {players}"
        );
        assert_eq!(players["data"]["player"]["address"], expected, "{who}");
        let event = next_json(ws).await;
        assert_eq!(event["channel"], "events", "{who}: {event}");
        assert_eq!(
            event["data"]["data"]["player"]["address"], expected,
            "{who}"
        );
        let login = next_json(ws).await;
        assert_eq!(login["data"]["data"]["address"], expected, "{who}: {login}");
        for frame in [&players, &event, &login] {
            assert_eq!(mentions_address(frame), sees, "{who}: {frame}");
        }
    }
}
