//! The outer layer around every route: client IP, request size limit (413), metrics, and
//! the rewrite of any non-problem error response (poem's own 400/404/405/411/413/415…) into
//! RFC 9457 problem+json with `instance` set to the request path.

use std::time::Instant;

use poem::http::{StatusCode, header};
use poem::{Endpoint, IntoResponse, Request, Response};

use super::error::{PROBLEM_JSON, Problem};
use super::security::ClientIp;
use crate::service::AppState;

fn client_ip(req: &Request, trust_forwarded: bool) -> Option<String> {
    if trust_forwarded {
        let fwd = req
            .header("x-forwarded-for")
            .and_then(|v| v.split(',').next())
            .or_else(|| req.header("x-real-ip"))
            .map(|s| s.trim().to_owned());
        if let Some(ip) = fwd.filter(|s| s.parse::<std::net::IpAddr>().is_ok()) {
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

async fn finish(resp: Response, path: &str) -> Response {
    let status = resp.status();
    if status.as_u16() < 400 {
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
