//! RFC 9457 problem+json: the error body of every failing request, including the
//! framework's own 400/404/405/413 (rewritten by [`super::middleware`]).

use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};

use crate::error::{Error, FieldError};

/// Base of the `type` URIs.
pub const TYPE_BASE: &str = "https://languard.dev/problems/";

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Object, serde::Serialize, serde::Deserialize)]
pub struct Problem {
    /// URI naming the problem type.
    #[oai(rename = "type")]
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the problem type.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// Explanation of this occurrence.
    pub detail: String,
    /// The request path.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub instance: Option<String>,
    /// Machine-readable reason from the agent (`port_in_use`, `not_running`, …).
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub code: Option<String>,
    /// Field-level problems (validation).
    #[oai(skip_serializing_if_is_empty)]
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub errors: Vec<FieldErrorDoc>,
}

/// One invalid field.
#[derive(Debug, Clone, Object, serde::Serialize, serde::Deserialize)]
#[oai(rename = "FieldError")]
pub struct FieldErrorDoc {
    /// Path of the field.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl From<FieldError> for FieldErrorDoc {
    fn from(f: FieldError) -> Self {
        Self {
            field: f.field,
            message: f.message,
        }
    }
}

/// Slug and title per status.
pub fn status_slug(status: u16) -> (&'static str, &'static str) {
    match status {
        400 => ("bad-request", "Bad request"),
        401 => ("unauthorized", "Authentication required"),
        403 => ("forbidden", "Forbidden"),
        404 => ("not-found", "Not found"),
        405 => ("method-not-allowed", "Method not allowed"),
        409 => ("conflict", "Conflict"),
        411 => ("length-required", "Length required"),
        412 => ("precondition-failed", "Precondition failed"),
        413 => ("payload-too-large", "Payload too large"),
        415 => ("unsupported-media-type", "Unsupported media type"),
        422 => ("validation", "Validation failed"),
        428 => ("precondition-required", "Precondition required"),
        429 => ("too-many-requests", "Too many requests"),
        502 => ("agent-error", "The agent could not do it"),
        503 => ("unavailable", "Service unavailable"),
        504 => ("agent-timeout", "The agent did not answer in time"),
        s if s >= 500 => ("internal", "Internal server error"),
        _ => ("error", "Error"),
    }
}

impl Problem {
    /// A problem for `status` with `detail`.
    pub fn new(status: u16, detail: impl Into<String>) -> Self {
        let (slug, title) = status_slug(status);
        Self {
            kind: format!("{TYPE_BASE}{slug}"),
            title: title.to_owned(),
            status,
            detail: detail.into(),
            instance: None,
            code: None,
            errors: Vec::new(),
        }
    }
}

/// Content type of problem documents.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Error responses of every operation.
#[derive(Debug, ApiResponse)]
pub enum ApiError {
    /// The request is malformed.
    #[oai(status = 400, content_type = "application/problem+json")]
    BadRequest(Json<Problem>),
    /// Missing, invalid or expired credentials.
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(Json<Problem>),
    /// The caller's role does not allow this, or a password change is pending.
    #[oai(status = 403, content_type = "application/problem+json")]
    Forbidden(Json<Problem>),
    /// No such resource.
    #[oai(status = 404, content_type = "application/problem+json")]
    NotFound(Json<Problem>),
    /// Conflicts with the current state (duplicate name, stale revision, port clash).
    #[oai(status = 409, content_type = "application/problem+json")]
    Conflict(Json<Problem>),
    /// `If-Match` does not match the current ETag.
    #[oai(status = 412, content_type = "application/problem+json")]
    PreconditionFailed(Json<Problem>),
    /// Body too large.
    #[oai(status = 413, content_type = "application/problem+json")]
    PayloadTooLarge(Json<Problem>),
    /// Field-level validation failed (`errors` lists the fields), or the server's game
    /// (or its host's agent) cannot do what was asked (`unsupported-operation`,
    /// `unsupported-game`).
    #[oai(status = 422, content_type = "application/problem+json")]
    Unprocessable(Json<Problem>),
    /// An edit needs `revision` in the body or an `If-Match` header.
    #[oai(status = 428, content_type = "application/problem+json")]
    PreconditionRequired(Json<Problem>),
    /// Too many attempts.
    #[oai(status = 429, content_type = "application/problem+json")]
    TooManyRequests(
        Json<Problem>,
        /// Seconds to wait.
        #[oai(header = "Retry-After")]
        String,
    ),
    /// Unexpected failure.
    #[oai(status = 500, content_type = "application/problem+json")]
    Internal(Json<Problem>),
    /// The agent failed in a way the caller cannot fix (I/O, the game's admin interface,
    /// internal).
    #[oai(status = 502, content_type = "application/problem+json")]
    BadGateway(Json<Problem>),
    /// The database is unavailable, or the server's host is offline.
    #[oai(status = 503, content_type = "application/problem+json")]
    Unavailable(Json<Problem>),
    /// The agent did not answer in time.
    #[oai(status = 504, content_type = "application/problem+json")]
    GatewayTimeout(Json<Problem>),
}

/// Longest agent explanation passed on, in characters.
const MAX_AGENT_DETAIL: usize = 300;

/// An agent's explanation as API callers may see it. The agent already answers without
/// host paths; this holds even for an older or compromised agent: control characters
/// become spaces, absolute paths (`/…`, `C:\…`, `\\server\…`) become `<path>`,
/// ` (os error N)` goes, and the text is capped.
fn agent_detail(message: &str) -> String {
    let mut out = String::new();
    let mut rest = message;
    let mut at_boundary = true;
    while let Some(c) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix(" (os error ")
            && let Some(end) = after.find(')')
            && after[..end].chars().all(|d| d.is_ascii_digit())
        {
            rest = &after[end + 1..];
            continue;
        }
        let b = rest.as_bytes();
        let path = rest.starts_with('/')
            || rest.starts_with("\\\\")
            || (b.len() >= 3
                && b[0].is_ascii_alphabetic()
                && b[1] == b':'
                && matches!(b[2], b'/' | b'\\'));
        if at_boundary && path {
            let end = rest
                .find(|c: char| c.is_whitespace() || c.is_control() || "\"'`)]},".contains(c))
                .unwrap_or(rest.len());
            out.push_str("<path>");
            if rest[..end].ends_with(':') {
                out.push(':');
            }
            rest = &rest[end..];
            at_boundary = false;
            continue;
        }
        at_boundary = c.is_whitespace() || "\"'`([{=,".contains(c);
        out.push(if c.is_control() { ' ' } else { c });
        rest = &rest[c.len_utf8()..];
    }
    if out.chars().count() > MAX_AGENT_DETAIL {
        out = out.chars().take(MAX_AGENT_DETAIL - 1).collect();
        out.push('…');
    }
    out
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let msg = e.to_string();
        match e {
            Error::BadRequest(_) => Self::BadRequest(Json(Problem::new(400, msg))),
            Error::Unauthorized(_) => Self::Unauthorized(Json(Problem::new(401, msg))),
            Error::Forbidden(_) => Self::Forbidden(Json(Problem::new(403, msg))),
            Error::NotFound(_) => Self::NotFound(Json(Problem::new(404, msg))),
            Error::Conflict(_) => Self::Conflict(Json(Problem::new(409, msg))),
            Error::PreconditionFailed(_) => Self::PreconditionFailed(Json(Problem::new(412, msg))),
            Error::PreconditionRequired(_) => {
                Self::PreconditionRequired(Json(Problem::new(428, msg)))
            }
            Error::Validation(fields) => {
                let mut p = Problem::new(422, "one or more fields are invalid");
                p.errors = fields.into_iter().map(Into::into).collect();
                Self::Unprocessable(Json(p))
            }
            Error::TooManyRequests(secs) => Self::TooManyRequests(
                Json(Problem::new(
                    429,
                    format!("too many failed attempts; retry after {secs} seconds"),
                )),
                secs.to_string(),
            ),
            Error::Unavailable => Self::Unavailable(Json(Problem::new(503, msg))),
            Error::HostOffline => {
                let mut p = Problem::new(503, msg);
                p.kind = format!("{TYPE_BASE}host-offline");
                p.title = "Host offline".into();
                Self::Unavailable(Json(p))
            }
            Error::Unsupported { problem, .. } => {
                let mut p = Problem::new(422, msg);
                p.kind = format!("{TYPE_BASE}{problem}");
                p.title = "Not supported".into();
                Self::Unprocessable(Json(p))
            }
            Error::AgentTimeout(_) => Self::GatewayTimeout(Json(Problem::new(504, msg))),
            Error::Agent { status, code, .. } => {
                let mut p = Problem::new(status, agent_detail(&msg));
                p.code = Some(code);
                let p = Json(p);
                match status {
                    400 => Self::BadRequest(p),
                    404 => Self::NotFound(p),
                    409 => Self::Conflict(p),
                    422 => Self::Unprocessable(p),
                    504 => Self::GatewayTimeout(p),
                    _ => Self::BadGateway(p),
                }
            }
            Error::Internal => Self::Internal(Json(Problem::new(500, msg))),
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        Error::from(e).into()
    }
}

/// Result of every handler.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod agent_detail_tests {
    use super::*;

    /// Agent texts reached callers verbatim: "No such file or directory" for a path the
    /// caller chose tells them what exists on the host.
    #[test]
    fn agent_errors_reach_callers_without_host_paths_or_os_texts() {
        let e = Error::Agent {
            status: 502,
            code: "io".into(),
            message: "spawning /srv/x/arma3server_x64: No such file (os error 2)\n\u{1b}[2J".into(),
        };
        let ApiError::BadGateway(Json(p)) = ApiError::from(e) else {
            panic!("expected 502");
        };
        assert_eq!(p.detail, "spawning <path>: No such file  [2J");
        assert_eq!(p.code.as_deref(), Some("io"));
        assert_eq!(agent_detail("C:\\a3\\x.exe gone"), "<path> gone");
        assert_eq!(
            agent_detail("port 2302/udp is in use"),
            "port 2302/udp is in use"
        );
        assert_eq!(
            agent_detail(&"é".repeat(1000)).chars().count(),
            MAX_AGENT_DETAIL
        );
    }
}
