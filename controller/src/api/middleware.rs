//! The outer layer around every route: client IP, request size limit (413), metrics, and
//! the rewrite of any non-problem error response (poem's own 400/404/405/411/413/415…) into
//! RFC 9457 problem+json with `instance` set to the request path.

use std::time::Instant;

use poem::http::{StatusCode, header};
use poem::{Endpoint, IntoResponse, Request, Response};

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
        problem_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body exceeds {max} bytes"),
            &path,
        )
    } else {
        if declared.is_none() && req.header(header::TRANSFER_ENCODING).is_some() {
            // Chunked body: read it with the limit.
            let body = req.take_body();
            match body.into_bytes_limit(max).await {
                Ok(b) => req.set_body(b),
                Err(_) => {
                    let r = problem_response(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!("request body exceeds {max} bytes"),
                        &path,
                    );
                    app.metrics.record(413, t0.elapsed());
                    return Ok(r);
                }
            }
        }
        let r = match ep.call(req).await {
            Ok(r) => r.into_response(),
            Err(e) => e.into_response(),
        };
        finish(r, &path).await
    };
    app.metrics.record(resp.status().as_u16(), t0.elapsed());
    Ok(resp)
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
