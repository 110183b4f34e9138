//! The outer layer around every route: client IP, request size limit (413), metrics, the
//! rewrite of any non-problem error response (poem's own 400/404/405/411/413/415…) into
//! RFC 9457 problem+json with `instance` set to the request path, and the security
//! headers every response carries.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures_util::Stream;
use poem::http::{HeaderValue, StatusCode, header};
use poem::{Body, Endpoint, IntoResponse, Request, Response};

use super::error::{PROBLEM_JSON, Problem};
use super::security::ClientIp;
use crate::service::AppState;

/// The client address behind one trusted proxy: the right-most `X-Forwarded-For` entry
/// (the one the proxy appended; entries to its left come from the client and can be
/// forged), else `X-Real-IP`. Only valid IP addresses count.
fn forwarded_client<'a>(
    xff: impl Iterator<Item = &'a str>,
    real_ip: Option<&str>,
) -> Option<String> {
    let last = xff
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .last();
    let candidate = match last {
        Some(ip) => Some(ip),
        None => real_ip.map(str::trim),
    }?;
    candidate
        .parse::<std::net::IpAddr>()
        .ok()
        .map(|ip| ip.to_string())
}

fn client_ip(req: &Request, trust_forwarded: bool) -> Option<String> {
    if trust_forwarded {
        let xff = req
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok());
        if let Some(ip) = forwarded_client(xff, req.header("x-real-ip")) {
            return Some(ip);
        }
    }
    match req.remote_addr().0 {
        poem::Addr::SocketAddr(a) => Some(a.ip().to_string()),
        _ => None,
    }
}

fn problem_response(status: StatusCode, detail: String, instance: &str) -> Response {
    let mut p = Problem::new(status.as_u16(), detail);
    p.instance = Some(instance.to_owned());
    let body = serde_json::to_vec(&p).unwrap_or_default();
    Response::builder()
        .status(status)
        .content_type(PROBLEM_JSON)
        .body(body)
}

/// The health endpoint answers 503 with its documented `Health` JSON body (probes read
/// `database`), not with problem+json.
const HEALTH_PATH: &str = "/api/v1/system/health";

async fn finish(resp: Response, path: &str) -> Response {
    let status = resp.status();
    if status.as_u16() < 400 || (path == HEALTH_PATH && status == StatusCode::SERVICE_UNAVAILABLE) {
        return resp;
    }
    let is_problem = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(PROBLEM_JSON));
    let (parts, body) = resp.into_parts();
    let bytes = body.into_bytes_limit(64 * 1024).await.unwrap_or_default();
    if is_problem {
        if let Ok(mut p) = serde_json::from_slice::<Problem>(&bytes) {
            if p.instance.is_none() {
                p.instance = Some(path.to_owned());
            }
            let mut r =
                Response::from_parts(parts, serde_json::to_vec(&p).unwrap_or_default().into());
            r.headers_mut().remove(header::CONTENT_LENGTH);
            return r;
        }
        return Response::from_parts(parts, bytes.into());
    }
    let text = String::from_utf8_lossy(&bytes);
    let detail = if text.trim().is_empty() || text.len() > 500 {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text.trim().to_owned()
    };
    let mut r = problem_response(status, detail, path);
    for (k, v) in parts.headers.iter() {
        if k == header::ALLOW || k == header::RETRY_AFTER || k == header::WWW_AUTHENTICATE {
            r.headers_mut().insert(k.clone(), v.clone());
        }
    }
    r
}

/// The request body, counted as it arrives: past `max` bytes it ends in an error (so the
/// handler stops reading and the rest is never read) and trips `over`, which turns the
/// handler's answer into 413. Headers are not trusted for this: an HTTP/2 request may
/// carry neither Content-Length nor chunked encoding.
struct CappedBody {
    inner: Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>,
    seen: u64,
    max: u64,
    over: Arc<AtomicBool>,
    done: bool,
}

impl Stream for CappedBody {
    type Item = std::io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match this.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                this.seen = this.seen.saturating_add(chunk.len() as u64);
                if this.seen > this.max {
                    this.done = true;
                    this.over.store(true, Ordering::Release);
                    return Poll::Ready(Some(Err(std::io::Error::other("request body too large"))));
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(None) => {
                this.done = true;
                Poll::Ready(None)
            }
            other => other,
        }
    }
}

fn too_large(max: usize, path: &str) -> Response {
    problem_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body exceeds {max} bytes"),
        path,
    )
}

/// Wraps the route.
pub async fn around<E: Endpoint>(ep: E, mut req: Request, app: AppState) -> poem::Result<Response> {
    let t0 = Instant::now();
    let path = req.uri().path().to_owned();
    let ip = client_ip(&req, app.config.trust_forwarded_for);
    req.extensions_mut().insert(ClientIp(ip));
    let max = app.config.max_body_bytes;
    let declared = req
        .header(header::CONTENT_LENGTH)
        .and_then(|v| v.parse::<u64>().ok());
    let resp = if declared.is_some_and(|n| n > max as u64) {
        too_large(max, &path)
    } else {
        let over = Arc::new(AtomicBool::new(false));
        let body = req.take_body();
        if !body.is_empty() {
            req.set_body(Body::from_bytes_stream(CappedBody {
                inner: Box::pin(body.into_bytes_stream()),
                seen: 0,
                max: max as u64,
                over: over.clone(),
                done: false,
            }));
        }
        let r = match ep.call(req).await {
            Ok(r) => r.into_response(),
            Err(e) => e.into_response(),
        };
        if over.load(Ordering::Acquire) {
            too_large(max, &path)
        } else {
            finish(r, &path).await
        }
    };
    app.metrics.record(resp.status().as_u16(), t0.elapsed());
    Ok(resp)
}

/// The console will be served from this origin with no inline script or style; nothing
/// else may frame it, post forms elsewhere or load from other origins.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
     base-uri 'none'; form-action 'self'";

/// Adds the security headers a response does not set itself. API responses carry
/// tokens and secrets' metadata: no cache may keep them.
pub fn security_headers(mut resp: Response, path: &str) -> Response {
    let h = resp.headers_mut();
    for (name, value) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        h.entry(name).or_insert(HeaderValue::from_static(value));
    }
    if path == super::BASE || path.starts_with("/api/v1/") {
        h.entry(header::CACHE_CONTROL)
            .or_insert(HeaderValue::from_static("no-store"));
    }
    resp
}

/// The outermost layer: security headers on every response, also those that inner
/// layers (CORS pre-flight, routing) produce on their own.
pub async fn with_security_headers<E: Endpoint>(ep: E, req: Request) -> poem::Result<Response> {
    let path = req.uri().path().to_owned();
    let resp = match ep.call(req).await {
        Ok(r) => r.into_response(),
        Err(e) => e.into_response(),
    };
    Ok(security_headers(resp, &path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn health_503_keeps_its_documented_body() {
        let body = r#"{"status":"degraded","database":false}"#;
        let resp = Response::builder()
            .status(StatusCode::SERVICE_UNAVAILABLE)
            .content_type("application/json; charset=utf-8")
            .body(body);
        let out = finish(resp, HEALTH_PATH).await;
        assert_eq!(out.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            out.headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/json"))
        );
        let v: serde_json::Value =
            serde_json::from_slice(&out.into_body().into_bytes().await.unwrap()).unwrap();
        assert_eq!(v["database"], false);
        // Elsewhere a non-problem 503 still becomes problem+json.
        let resp = Response::builder()
            .status(StatusCode::SERVICE_UNAVAILABLE)
            .body("down");
        let out = finish(resp, "/api/v1/servers").await;
        assert!(
            out.headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with(PROBLEM_JSON))
        );
    }

    #[test]
    fn forwarded_for_takes_the_right_most_entry() {
        let one = |h: &str| forwarded_client(std::iter::once(h), None);
        assert_eq!(one("6.6.6.6, 10.0.0.7").as_deref(), Some("10.0.0.7"));
        assert_eq!(one("1.2.3.4").as_deref(), Some("1.2.3.4"));
        assert_eq!(one("1.2.3.4, not-an-ip"), None);
        // Several header lines: the last line's last entry.
        let many = forwarded_client(["6.6.6.6", "5.5.5.5, 9.9.9.9"].into_iter(), None);
        assert_eq!(many.as_deref(), Some("9.9.9.9"));
        assert_eq!(
            forwarded_client(std::iter::empty(), Some(" 2001:db8::1 ")).as_deref(),
            Some("2001:db8::1")
        );
        assert_eq!(forwarded_client(std::iter::empty(), None), None);
    }
}
