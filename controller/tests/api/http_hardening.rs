//! The HTTP front door over real TCP on loopback: body limit whatever the protocol,
//! header and idle timeouts, connection limits, security headers, `/metrics` placement.
//! Timeouts below only guard against hangs; nothing asserts how fast anything is.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use languard_controller::store::Role;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::common::{Harness, PW};

/// Generous bound for anything the server should do "soon".
const GUARD: Duration = Duration::from_secs(20);
const BIG: usize = 8 << 20;

/// One parsed HTTP/1.1 response.
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// Reads one response with a Content-Length body (all our API responses have one).
async fn read_response(s: &mut (impl AsyncReadExt + Unpin)) -> Resp {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = timeout(GUARD, s.read(&mut byte)).await.unwrap().unwrap();
        assert!(
            n > 0,
            "EOF inside the head: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.parse().unwrap())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    timeout(GUARD, s.read_exact(&mut body))
        .await
        .unwrap()
        .unwrap();
    Resp {
        status,
        headers,
        body,
    }
}

async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    extra: &[(&str, &str)],
    body: &str,
) -> Resp {
    let mut s = TcpStream::connect(addr).await.unwrap();
    send(&mut s, method, path, extra, body).await;
    read_response(&mut s).await
}

async fn send(s: &mut TcpStream, method: &str, path: &str, extra: &[(&str, &str)], body: &str) {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: test\r\n");
    if !extra
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-length"))
    {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    for (k, v) in extra {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).await.unwrap();
}

/// True once the server has closed the connection (EOF or reset).
async fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 256];
    loop {
        match timeout(GUARD, s.read(&mut b)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

fn assert_problem(r: &Resp, status: u16) {
    assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/problem+json")),
        "{:?}",
        r.headers
    );
    assert_eq!(r.json()["status"], status);
}

#[tokio::test]
async fn h2c_body_without_length_is_cut_at_the_limit() {
    let h = Harness::new().await;
    let srv = h.serve().await;
    let tcp = TcpStream::connect(srv.api).await.unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut client = client.ready().await.unwrap();
    let req = http::Request::post(format!("http://{}/api/v1/auth/login", srv.api))
        .header("content-type", "application/json")
        .body(())
        .unwrap();
    let (resp, mut body) = client.send_request(req, false).unwrap();
    let sent = Arc::new(AtomicUsize::new(0));
    let sender = tokio::spawn({
        let sent = sent.clone();
        async move {
            let chunk = Bytes::from(vec![b' '; 16 * 1024]);
            while sent.load(Ordering::Relaxed) < BIG {
                body.reserve_capacity(chunk.len());
                match std::future::poll_fn(|cx| body.poll_capacity(cx)).await {
                    Some(Ok(0)) => continue,
                    Some(Ok(n)) => {
                        let n = n.min(chunk.len());
                        if body.send_data(chunk.slice(..n), false).is_err() {
                            return;
                        }
                        sent.fetch_add(n, Ordering::Relaxed);
                    }
                    _ => return,
                }
            }
            let _ = body.send_data(Bytes::new(), true);
        }
    });
    let resp = timeout(GUARD, resp).await.unwrap().unwrap();
    let at_response = sent.load(Ordering::Relaxed);
    assert_eq!(resp.status(), 413);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/problem+json")
    );
    let mut rb = resp.into_body();
    let mut bytes = Vec::new();
    while let Some(chunk) = timeout(GUARD, rb.data()).await.unwrap() {
        let chunk = chunk.unwrap();
        let _ = rb.flow_control().release_capacity(chunk.len());
        bytes.extend_from_slice(&chunk);
    }
    let p: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(p["status"], 413);
    assert!(
        at_response < BIG,
        "the server answered only after reading all {at_response} bytes"
    );
    sender.abort();
}

#[tokio::test]
async fn http1_content_length_and_chunked_bodies_get_413() {
    let h = Harness::new().await;
    let srv = h.serve().await;
    // A declared length over the limit is refused before any body byte.
    let len = BIG.to_string();
    let r = request(
        srv.api,
        "POST",
        "/api/v1/auth/login",
        &[
            ("Content-Type", "application/json"),
            ("Content-Length", &len),
        ],
        "",
    )
    .await;
    assert_problem(&r, 413);

    // Chunked: counted as it arrives.
    let s = TcpStream::connect(srv.api).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    wr.write_all(
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
          Transfer-Encoding: chunked\r\n\r\n",
    )
    .await
    .unwrap();
    let writer = tokio::spawn(async move {
        let chunk = [b' '; 64 * 1024];
        let mut sent = 0;
        while sent < BIG {
            let frame = [
                format!("{:x}\r\n", chunk.len()).as_bytes(),
                &chunk[..],
                b"\r\n",
            ]
            .concat();
            if wr.write_all(&frame).await.is_err() {
                return;
            }
            sent += chunk.len();
        }
        let _ = wr.write_all(b"0\r\n\r\n").await;
    });
    let r = read_response(&mut rd).await;
    assert_problem(&r, 413);
    writer.abort();
}

#[tokio::test]
async fn half_sent_header_and_silent_connection_are_closed() {
    let h = Harness::with_config(|c| c.http.header_timeout_secs = 1).await;
    let srv = h.serve().await;
    let mut half = TcpStream::connect(srv.api).await.unwrap();
    half.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut silent = TcpStream::connect(srv.api).await.unwrap();
    assert!(
        closed_by_server(&mut half).await,
        "half-sent header left open"
    );
    assert!(
        closed_by_server(&mut silent).await,
        "silent connection left open"
    );
}

#[tokio::test]
async fn idle_keep_alive_is_closed_but_a_websocket_is_not() {
    let h = Harness::with_config(|c| c.http.idle_timeout_secs = 1).await;
    let viewer = h.user("vera", Role::Viewer).await;
    let srv = h.serve().await;
    let mut s = TcpStream::connect(srv.api).await.unwrap();
    send(&mut s, "GET", "/api/v1/system/health", &[], "").await;
    assert_eq!(read_response(&mut s).await.status, 200);
    assert!(closed_by_server(&mut s).await, "idle keep-alive left open");

    let (st, t) = h
        .send("POST", "/api/v1/live/tickets", &viewer, json!({}))
        .await;
    assert_eq!(st, 200, "{t}");
    let ticket = t["ticket"].as_str().unwrap();
    let tcp = TcpStream::connect(srv.api).await.unwrap();
    let url = format!("ws://{}/api/v1/ws?ticket={ticket}", srv.api);
    let (mut ws, _) = tokio_tungstenite::client_async(url, tcp).await.unwrap();
    // Quiet for well over the idle timeout (a behaviour check, not a timing one).
    tokio::time::sleep(Duration::from_secs(3)).await;
    use futures_util::{SinkExt, StreamExt};
    ws.send(tokio_tungstenite::tungstenite::Message::text(
        json!({"op": "subscribe", "server": null, "channels": ["status"]}).to_string(),
    ))
    .await
    .expect("the WebSocket is still open");
    loop {
        let m = timeout(GUARD, ws.next())
            .await
            .unwrap()
            .expect("stream open")
            .unwrap();
        if m.to_text().is_ok_and(|t| t.contains("subscribed")) {
            break;
        }
    }
}

async fn health_on(s: &mut TcpStream) -> Option<u16> {
    let req = "GET /api/v1/system/health HTTP/1.1\r\nHost: t\r\n\r\n";
    s.write_all(req.as_bytes()).await.ok()?;
    let mut b = [0u8; 1];
    // A refused connection reads EOF at once; an accepted one answers.
    match timeout(GUARD, s.peek(&mut b)).await {
        Ok(Ok(n)) if n > 0 => Some(read_response(s).await.status),
        _ => None,
    }
}

#[tokio::test]
async fn connection_limit_refuses_beyond_the_cap_and_frees_slots() {
    let h = Harness::with_config(|c| c.http.max_connections = 4).await;
    let srv = h.serve().await;
    let mut open = Vec::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(srv.api).await.unwrap();
        assert_eq!(health_on(&mut s).await, Some(200));
        open.push(s);
    }
    let mut fifth = TcpStream::connect(srv.api).await.unwrap();
    assert_eq!(health_on(&mut fifth).await, None, "fifth connection served");
    for s in &mut open {
        assert_eq!(health_on(s).await, Some(200), "the first four stay usable");
    }
    drop(open.pop());
    // The slot comes back once the server sees the close; retry a bounded number of times.
    let mut served = false;
    for _ in 0..100 {
        let mut s = TcpStream::connect(srv.api).await.unwrap();
        if health_on(&mut s).await == Some(200) {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served, "a freed slot was never reused");
}

#[tokio::test]
async fn per_address_limit_applies_to_one_client() {
    let h = Harness::with_config(|c| c.http.max_connections_per_ip = 2).await;
    let srv = h.serve().await;
    let mut a = TcpStream::connect(srv.api).await.unwrap();
    let mut b = TcpStream::connect(srv.api).await.unwrap();
    assert_eq!(health_on(&mut a).await, Some(200));
    assert_eq!(health_on(&mut b).await, Some(200));
    let mut c = TcpStream::connect(srv.api).await.unwrap();
    assert_eq!(health_on(&mut c).await, None);
}

#[tokio::test]
async fn security_headers_on_every_response_and_no_store_on_tokens() {
    let h = Harness::new().await;
    h.user("sec", Role::Viewer).await;
    let srv = h.serve().await;
    let ok = request(srv.api, "GET", "/api/v1/system/health", &[], "").await;
    let unauth = request(srv.api, "GET", "/api/v1/servers", &[], "").await;
    let missing = request(srv.api, "GET", "/no/such/page", &[], "").await;
    let login = request(
        srv.api,
        "POST",
        "/api/v1/auth/login",
        &[("Content-Type", "application/json")],
        &json!({"username": "sec", "password": PW}).to_string(),
    )
    .await;
    assert_eq!(
        (ok.status, unauth.status, missing.status, login.status),
        (200, 401, 404, 200)
    );
    for r in [&ok, &unauth, &missing, &login] {
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(r.header("x-frame-options"), Some("DENY"));
        assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
        let csp = r.header("content-security-policy").unwrap_or("");
        assert!(
            csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{csp}"
        );
    }
    assert!(login.json()["refresh_token"].is_string());
    assert_eq!(login.header("cache-control"), Some("no-store"));
    assert_eq!(unauth.header("cache-control"), Some("no-store"));
}

#[tokio::test]
async fn metrics_leave_the_api_port() {
    let h = Harness::with_config(|c| c.metrics.listen = Some(([127, 0, 0, 1], 0).into())).await;
    let srv = h.serve().await;
    assert_problem(&request(srv.api, "GET", "/metrics", &[], "").await, 404);
    let m = request(srv.metrics.unwrap(), "GET", "/metrics", &[], "").await;
    assert_eq!(m.status, 200);
    assert!(String::from_utf8_lossy(&m.body).contains("languard_"));
    assert_eq!(m.header("x-content-type-options"), Some("nosniff"));
}

#[tokio::test]
async fn metrics_token_guards_every_place_it_is_served() {
    const TOKEN: &str = "scrape-me-0123456789abcdef";
    let h = Harness::with_config(|c| {
        c.metrics.listen = Some(([127, 0, 0, 1], 0).into());
        c.metrics.token = Some(TOKEN.to_owned());
    })
    .await;
    let srv = h.serve().await;
    let good = format!("Bearer {TOKEN}");
    let bad = format!("Bearer {TOKEN}x");
    for addr in [srv.api, srv.metrics.unwrap()] {
        assert_problem(&request(addr, "GET", "/metrics", &[], "").await, 401);
        let wrong = request(addr, "GET", "/metrics", &[("Authorization", &bad)], "").await;
        assert_problem(&wrong, 401);
        let right = request(addr, "GET", "/metrics", &[("Authorization", &good)], "").await;
        assert_eq!(right.status, 200);
        assert!(String::from_utf8_lossy(&right.body).contains("languard_"));
    }
}
