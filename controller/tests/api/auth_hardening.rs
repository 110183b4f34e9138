//! Issue 10, points 6–8 and the lockout: API tokens die with password changes and their
//! parent, obey the must-change gate and cannot outlive or outrank their parent; live
//! sockets close when their credentials are revoked; refresh reuse also ends the access
//! token of the family; login and password-change throttling is per account and source.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures_util::StreamExt;
use languard_controller::store::{Role, UserUpdate};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::common::{Harness, PW};

/// Creates an API token with `token` (a session or another API token).
async fn mint(h: &Harness, token: &str, body: Value) -> (u16, Value) {
    h.send("POST", "/api/v1/tokens", token, body).await
}

async fn user_id(h: &Harness, token: &str) -> String {
    let (s, me) = h.get("/api/v1/auth/me", token).await;
    assert_eq!(s, 200, "{me}");
    me["id"].as_str().unwrap().to_owned()
}

fn in_hours(h: i64) -> String {
    (time::OffsetDateTime::now_utc() + time::Duration::hours(h))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

fn in_days(d: i64) -> String {
    in_hours(d * 24)
}

#[tokio::test]
async fn api_tokens_die_on_password_change_and_admin_reset() {
    let h = Harness::new().await;
    let admin = h.user("root", Role::Admin).await;
    // Self-service change.
    let t = h.user("ann", Role::Operator).await;
    let (s, tok) = mint(&h, &t, json!({"name": "ci", "role": "viewer"})).await;
    assert_eq!(s, 201, "{tok}");
    let secret = tok["token"].as_str().unwrap().to_owned();
    assert_eq!(h.get("/api/v1/servers", &secret).await.0, 200);
    let (s, v) = h
        .send(
            "POST",
            "/api/v1/auth/password",
            &t,
            json!({"current_password": PW, "new_password": "a-brand-new-password"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(h.get("/api/v1/servers", &secret).await.0, 401);
    // Admin reset.
    let t = h.user("ben", Role::Operator).await;
    let ben = user_id(&h, &t).await;
    let (_, tok) = mint(&h, &t, json!({"name": "ci", "role": "operator"})).await;
    let secret = tok["token"].as_str().unwrap().to_owned();
    assert_eq!(h.get("/api/v1/servers", &secret).await.0, 200);
    let (s, v) = h
        .send(
            "POST",
            &format!("/api/v1/users/{ben}/password"),
            &admin,
            json!({"password": "reset-by-the-admin", "must_change_password": false}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(h.get("/api/v1/servers", &secret).await.0, 401);
    let (_, list) = h.get("/api/v1/tokens", &admin).await;
    assert!(list.as_array().unwrap().is_empty(), "{list}");
}

#[tokio::test]
async fn api_token_of_a_user_who_must_change_the_password_is_refused() {
    let h = Harness::new().await;
    let t = h.user("cat", Role::Operator).await;
    let id = user_id(&h, &t).await;
    let (_, tok) = mint(&h, &t, json!({"name": "ci", "role": "operator"})).await;
    let secret = tok["token"].as_str().unwrap().to_owned();
    h.app
        .store
        .update_user(
            id.parse().unwrap(),
            UserUpdate {
                must_change_password: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let (s, v) = h.get("/api/v1/servers", &secret).await;
    assert_eq!(s, 403, "{v}");
    assert_eq!(v["detail"], "password change required");
}

#[tokio::test]
async fn child_tokens_cannot_outlive_or_outrank_the_parent_and_die_with_it() {
    let h = Harness::new().await;
    let t = h.user("dan", Role::Operator).await;
    let (s, parent) = mint(
        &h,
        &t,
        json!({"name": "parent", "role": "viewer", "expires_at": in_days(2)}),
    )
    .await;
    assert_eq!(s, 201, "{parent}");
    let p = parent["token"].as_str().unwrap().to_owned();
    let pid = parent["info"]["id"].as_str().unwrap().to_owned();
    // Longer life, no expiry, higher role: refused, nothing created.
    for body in [
        json!({"name": "c", "role": "viewer"}),
        json!({"name": "c", "role": "viewer", "expires_at": in_days(3)}),
        json!({"name": "c", "role": "operator", "expires_at": in_days(1)}),
    ] {
        let (s, v) = mint(&h, &p, body.clone()).await;
        assert_eq!(s, 422, "{body}: {v}");
    }
    assert_eq!(
        h.get("/api/v1/tokens", &t)
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Within the parent's bounds: fine; a grandchild too.
    let (s, child) = mint(
        &h,
        &p,
        json!({"name": "child", "role": "viewer", "expires_at": in_days(1)}),
    )
    .await;
    assert_eq!(s, 201, "{child}");
    let c = child["token"].as_str().unwrap().to_owned();
    let (s, grand) = mint(
        &h,
        &c,
        json!({"name": "grandchild", "role": "viewer", "expires_at": in_hours(12)}),
    )
    .await;
    assert_eq!(s, 201, "{grand}");
    let g = grand["token"].as_str().unwrap().to_owned();
    for tok in [&p, &c, &g] {
        assert_eq!(h.get("/api/v1/servers", tok).await.0, 200);
    }
    // Revoking the parent ends the whole line.
    let (s, _, _) = h
        .call("DELETE", &format!("/api/v1/tokens/{pid}"), Some(&t), None)
        .await;
    assert_eq!(s, 204);
    for tok in [&p, &c, &g] {
        assert_eq!(h.get("/api/v1/servers", tok).await.0, 401);
    }
    // A non-expiring parent may mint a non-expiring child.
    let (_, forever) = mint(&h, &t, json!({"name": "forever", "role": "viewer"})).await;
    let f = forever["token"].as_str().unwrap().to_owned();
    let (s, v) = mint(&h, &f, json!({"name": "child", "role": "viewer"})).await;
    assert_eq!(s, 201, "{v}");
}

#[tokio::test]
async fn refresh_reuse_also_ends_the_access_token_of_the_family() {
    let h = Harness::new().await;
    h.user("eve", Role::Viewer).await;
    let first = h.login("eve", PW).await;
    let other = h.login("eve", PW).await;
    let refresh = |rt: Value| {
        h.call(
            "POST",
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": rt})),
        )
    };
    let (s, second, _) = refresh(first["refresh_token"].clone()).await;
    assert_eq!(s, 200);
    let access = second["access_token"].as_str().unwrap().to_owned();
    assert_eq!(h.get("/api/v1/servers", &access).await.0, 200);
    // The spent token again: the family is revoked, and so is its live access token.
    let (s, _, _) = refresh(first["refresh_token"].clone()).await;
    assert_eq!(s, 401);
    assert_eq!(h.get("/api/v1/servers", &access).await.0, 401);
    // Another session of the same user is not affected.
    let (s, _) = h
        .get("/api/v1/servers", other["access_token"].as_str().unwrap())
        .await;
    assert_eq!(s, 200);
}

/// A login from `ip` (the harness trusts `X-Real-IP`): status and `Retry-After`.
async fn login_from(h: &Harness, ip: &str, user: &str, pw: &str) -> (u16, Option<u64>) {
    let r = h
        .cli
        .post("/api/v1/auth/login")
        .header("X-Real-IP", ip)
        .body_json(&json!({"username": user, "password": pw}))
        .send()
        .await;
    retry_after(r)
}

fn retry_after(r: poem::test::TestResponse) -> (u16, Option<u64>) {
    let ra =
        r.0.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
    (r.0.status().as_u16(), ra)
}

#[tokio::test]
async fn failed_logins_from_one_source_do_not_lock_out_another() {
    let h = Harness::with_config(|c| c.trust_forwarded_for = true).await;
    h.user("admin2", Role::Admin).await;
    let mut codes = Vec::new();
    for _ in 0..20 {
        codes.push(
            login_from(&h, "203.0.113.7", "admin2", "guess-guess-guess")
                .await
                .0,
        );
    }
    assert!(codes.iter().all(|c| *c == 401 || *c == 429), "{codes:?}");
    assert!(codes.contains(&429), "the attacker is slowed: {codes:?}");
    assert_eq!(login_from(&h, "198.51.100.2", "admin2", PW).await.0, 200);
}

#[tokio::test]
async fn a_guessing_source_waits_longer_after_each_failure() {
    let h = Harness::with_config(|c| c.trust_forwarded_for = true).await;
    h.user("fay", Role::Viewer).await;
    let ip = "203.0.113.9";
    let mut waits = Vec::new();
    let mut n = 0;
    while waits.len() < 3 {
        let (s, ra) = login_from(&h, ip, "fay", "guess-guess-guess").await;
        match s {
            401 => n += 1,
            429 => {
                let ra = ra.expect("Retry-After");
                waits.push(ra);
                if waits.len() == 3 {
                    break;
                }
                // Wait it out: the next guess is verified (and fails) again.
                tokio::time::sleep(Duration::from_millis(ra * 1000 + 200)).await;
            }
            other => panic!("unexpected {other}"),
        }
        assert!(n < 20, "never throttled");
    }
    assert!(waits[0] < waits[1] && waits[1] < waits[2], "{waits:?}");
    // Even the right password waits while the source is throttled.
    assert_eq!(login_from(&h, ip, "fay", PW).await.0, 429);
}

#[tokio::test]
async fn password_change_is_throttled_per_user_and_source() {
    let h = Harness::with_config(|c| c.trust_forwarded_for = true).await;
    let t = h.user("gus", Role::Viewer).await;
    let change = |ip: &'static str, current: &'static str| {
        let r = h
            .cli
            .post("/api/v1/auth/password")
            .header("Authorization", format!("Bearer {t}"))
            .header("X-Real-IP", ip)
            .body_json(
                &json!({"current_password": current, "new_password": "a-new-long-password"}),
            );
        async move { retry_after(r.send().await) }
    };
    let mut codes = Vec::new();
    for _ in 0..10 {
        codes.push(change("203.0.113.5", "not-the-password").await.0);
    }
    assert!(codes.starts_with(&[422]), "{codes:?}");
    let (s, ra) = change("203.0.113.5", PW).await;
    assert_eq!(s, 429, "{codes:?}");
    assert!(ra.is_some());
    // The same user from another source is not blocked.
    assert_eq!(change("198.51.100.5", PW).await.0, 200);
}

// ----- live sockets -------------------------------------------------------------------

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The harness's app on a real TCP listener (WebSockets need one); its `ws://` base.
async fn serve_tcp(h: &Harness) -> String {
    use poem::listener::{Acceptor, Listener, TcpListener};
    let acceptor = TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .unwrap();
    let addr = *acceptor.local_addr()[0].as_socket_addr().unwrap();
    let ep = languard_controller::api::build(h.app.clone());
    tokio::spawn(async move {
        let _ = poem::Server::new_with_acceptor(acceptor).run(ep).await;
    });
    format!("ws://{addr}/api/v1/ws")
}

async fn open_socket(h: &Harness, base: &str, token: &str) -> Ws {
    let (s, t) = h
        .send("POST", "/api/v1/live/tickets", token, json!({}))
        .await;
    assert_eq!(s, 200, "{t}");
    let url = format!("{base}?ticket={}", t["ticket"].as_str().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    match ws.next().await {
        Some(Ok(Message::Text(t))) => assert!(t.as_str().contains("ready"), "{t}"),
        other => panic!("no ready message: {other:?}"),
    }
    ws
}

/// Whether the server closes the socket (a close frame, then the end) before a generous
/// deadline.
async fn closed_by_server(ws: &mut Ws) -> bool {
    let wait = async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_sockets_close_when_their_credentials_are_revoked() {
    let h = Harness::new().await;
    let base = serve_tcp(&h).await;
    let admin = h.user("boss", Role::Admin).await;

    // Logout everywhere.
    let t = h.user("hal", Role::Viewer).await;
    let mut ws = open_socket(&h, &base, &t).await;
    let (s, _) = h
        .send("POST", "/api/v1/auth/logout", &t, json!({"all": true}))
        .await;
    assert_eq!(s, 204);
    assert!(closed_by_server(&mut ws).await, "after logout-all");

    // Password reset by an admin.
    let t = h.user("ida", Role::Viewer).await;
    let ida = user_id(&h, &t).await;
    let mut ws = open_socket(&h, &base, &t).await;
    let (s, v) = h
        .send(
            "POST",
            &format!("/api/v1/users/{ida}/password"),
            &admin,
            json!({"password": "reset-by-the-admin", "must_change_password": true}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert!(closed_by_server(&mut ws).await, "after a password reset");

    // Revocation of the API token the socket was opened with; a socket of the same user's
    // session stays open.
    let t = h.user("jo", Role::Viewer).await;
    let (_, tok) = mint(&h, &t, json!({"name": "bot", "role": "viewer"})).await;
    let secret = tok["token"].as_str().unwrap().to_owned();
    let mut by_token = open_socket(&h, &base, &secret).await;
    let mut by_session = open_socket(&h, &base, &t).await;
    let (s, _, _) = h
        .call(
            "DELETE",
            &format!("/api/v1/tokens/{}", tok["info"]["id"].as_str().unwrap()),
            Some(&t),
            None,
        )
        .await;
    assert_eq!(s, 204);
    assert!(
        closed_by_server(&mut by_token).await,
        "after token revocation"
    );
    let still_open = tokio::time::timeout(Duration::from_secs(1), by_session.next()).await;
    assert!(
        still_open.is_err(),
        "the session's socket stays: {still_open:?}"
    );

    // A role change.
    let mut ws = open_socket(&h, &base, &t).await;
    let jo = user_id(&h, &t).await;
    let (s, _) = h
        .send(
            "PATCH",
            &format!("/api/v1/users/{jo}"),
            &admin,
            json!({"role": "operator"}),
        )
        .await;
    assert_eq!(s, 200);
    assert!(closed_by_server(&mut ws).await, "after a role change");
}
