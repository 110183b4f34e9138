//! Bearer authentication. One scheme in the spec (`bearerAuth`); one Rust type per minimum
//! role, so the role check runs before any parameter or body is parsed. The checker
//! accepts JWT access tokens (stateless, cached) and API tokens (`lgd_…`).

use poem::Request;
use poem::http::StatusCode;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;

use super::error::{PROBLEM_JSON, Problem};
use crate::auth::{API_TOKEN_PREFIX, Role, role_allows};
use crate::service::{AppState, Ctx};

/// Client IP placed in request extensions by the middleware.
#[derive(Debug, Clone)]
pub struct ClientIp(pub Option<String>);

fn problem(status: u16, detail: &str) -> poem::Error {
    let body = serde_json::to_string(&Problem::new(status, detail)).unwrap_or_default();
    let resp = poem::Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::UNAUTHORIZED))
        .content_type(PROBLEM_JSON)
        .header("WWW-Authenticate", "Bearer")
        .body(body);
    poem::Error::from_response(resp)
}

async fn check(req: &Request, bearer: Bearer, need: Option<Role>) -> poem::Result<Ctx> {
    let Some(app) = req.data::<AppState>() else {
        return Err(problem(500, "state missing"));
    };
    let token = bearer.token.trim();
    let principal = if token.starts_with(API_TOKEN_PREFIX) {
        app.verify_api_token(token).await
    } else {
        app.jwt.verify(token)
    };
    let Some(p) = principal else {
        return Err(problem(401, "invalid or expired token"));
    };
    if !app.session_valid(&p).await {
        return Err(problem(401, "token revoked"));
    }
    if let Some(need) = need {
        if p.must_change_password {
            return Err(problem(403, "password change required"));
        }
        if !role_allows(p.role, need) {
            return Err(problem(403, &format!("requires role {}", need.as_str())));
        }
    }
    let ip = req.extensions().get::<ClientIp>().and_then(|c| c.0.clone());
    Ok(Ctx {
        principal: Some(p),
        ip,
    })
}

/// Any signed-in user, including one who must still change the password.
#[derive(SecurityScheme)]
#[oai(
    rename = "bearerAuth",
    ty = "bearer",
    bearer_format = "JWT",
    checker = "any_checker"
)]
pub struct SessionAuth(pub Ctx);

/// Viewer or higher.
#[derive(SecurityScheme)]
#[oai(
    rename = "bearerAuth",
    ty = "bearer",
    bearer_format = "JWT",
    checker = "viewer_checker"
)]
pub struct ViewerAuth(pub Ctx);

/// Operator or higher.
#[derive(SecurityScheme)]
#[oai(
    rename = "bearerAuth",
    ty = "bearer",
    bearer_format = "JWT",
    checker = "operator_checker"
)]
pub struct OperatorAuth(pub Ctx);

/// Admin only.
#[derive(SecurityScheme)]
#[oai(
    rename = "bearerAuth",
    ty = "bearer",
    bearer_format = "JWT",
    checker = "admin_checker"
)]
pub struct AdminAuth(pub Ctx);

async fn any_checker(req: &Request, b: Bearer) -> poem::Result<Ctx> {
    check(req, b, None).await
}
async fn viewer_checker(req: &Request, b: Bearer) -> poem::Result<Ctx> {
    check(req, b, Some(Role::Viewer)).await
}
async fn operator_checker(req: &Request, b: Bearer) -> poem::Result<Ctx> {
    check(req, b, Some(Role::Operator)).await
}
async fn admin_checker(req: &Request, b: Bearer) -> poem::Result<Ctx> {
    check(req, b, Some(Role::Admin)).await
}

/// Context of an anonymous request.
pub fn anon(req: &Request) -> Ctx {
    Ctx {
        principal: None,
        ip: req.extensions().get::<ClientIp>().and_then(|c| c.0.clone()),
    }
}
