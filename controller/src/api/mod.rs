//! The REST API under `/api/v1` (poem-openapi), one module per tag, plus `/metrics`
//! (on its own listener, or behind a token).

pub mod auth;
pub mod configs;
pub mod dto;
pub mod enrollment;
pub mod error;
pub mod fleet;
pub mod games;
pub mod live;
pub mod middleware;
pub mod operations;
pub mod payload;
pub mod security;
pub mod system;
pub mod tags;
pub mod telemetry;
pub mod users;

use poem::http::StatusCode;
use poem::{EndpointExt, IntoEndpoint, Response, Route, handler};
use poem_openapi::OpenApiService;

use crate::service::AppState;

/// Every API, combined.
pub type Apis = (
    auth::AuthApi,
    users::UsersApi,
    fleet::HostsApi,
    fleet::ServersApi,
    games::GamesApi,
    enrollment::EnrollmentApi,
    operations::OperationsApi,
    telemetry::TelemetryApi,
    configs::ConfigsApi,
    system::TokensApi,
    system::AuditApi,
    system::SystemApi,
);

/// Mount point of the API.
pub const BASE: &str = "/api/v1";

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone.
    Public,
    /// Any signed-in user, even one who must change the password.
    Session,
    /// Viewer or higher.
    Viewer,
    /// Operator or higher.
    Operator,
    /// Admin.
    Admin,
}

/// The declared access of every operation (checked by `tests/roles.rs` against the
/// behaviour of the running API and the committed openapi.yaml).
pub const ACCESS: &[(&str, Access)] = &[
    ("login", Access::Public),
    ("refreshToken", Access::Public),
    ("logout", Access::Session),
    ("getMe", Access::Session),
    ("changePassword", Access::Session),
    ("listUsers", Access::Admin),
    ("createUser", Access::Admin),
    ("getUser", Access::Admin),
    ("updateUser", Access::Admin),
    ("deleteUser", Access::Admin),
    ("resetUserPassword", Access::Admin),
    ("listHosts", Access::Viewer),
    ("createHost", Access::Admin),
    ("getHost", Access::Viewer),
    ("updateHost", Access::Admin),
    ("deleteHost", Access::Admin),
    ("listServers", Access::Viewer),
    ("createServer", Access::Admin),
    ("getServer", Access::Viewer),
    ("updateServer", Access::Operator),
    ("deleteServer", Access::Admin),
    ("listGames", Access::Viewer),
    ("createJoinToken", Access::Admin),
    ("listJoinTokens", Access::Admin),
    ("revokeHost", Access::Admin),
    ("getServerStatus", Access::Viewer),
    ("startServer", Access::Operator),
    ("stopServer", Access::Operator),
    ("restartServer", Access::Operator),
    ("killServer", Access::Operator),
    ("pushServerConfig", Access::Operator),
    ("runConsoleCommand", Access::Admin),
    ("sayToPlayers", Access::Operator),
    ("announceToPlayers", Access::Operator),
    ("kickPlayer", Access::Operator),
    ("banPlayer", Access::Operator),
    ("unbanPlayer", Access::Operator),
    ("lockServer", Access::Operator),
    ("unlockServer", Access::Operator),
    ("saveWorld", Access::Operator),
    ("shutdownServer", Access::Operator),
    ("changeMission", Access::Operator),
    ("listOnlinePlayers", Access::Viewer),
    ("queryServerLogs", Access::Viewer),
    ("queryServerMetrics", Access::Viewer),
    ("queryServerEvents", Access::Viewer),
    ("listServerSessions", Access::Viewer),
    ("listPlayers", Access::Viewer),
    ("createLiveTicket", Access::Viewer),
    ("getConfig", Access::Viewer),
    ("putConfigSection", Access::Operator),
    ("listConfigVersions", Access::Viewer),
    ("getConfigVersion", Access::Viewer),
    ("diffConfigVersions", Access::Viewer),
    ("rollbackConfig", Access::Operator),
    ("previewConfig", Access::Viewer),
    ("downloadConfigFiles", Access::Admin),
    ("importConfig", Access::Operator),
    ("listApiTokens", Access::Viewer),
    ("createApiToken", Access::Viewer),
    ("revokeApiToken", Access::Viewer),
    ("queryAudit", Access::Admin),
    ("getHealth", Access::Public),
    ("getStatus", Access::Viewer),
];

/// The OpenAPI service (also used to print the spec).
pub fn api_service(app: AppState) -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (
            auth::AuthApi(app.clone()),
            users::UsersApi(app.clone()),
            fleet::HostsApi(app.clone()),
            fleet::ServersApi(app.clone(), Default::default()),
            games::GamesApi,
            enrollment::EnrollmentApi(app.clone()),
            operations::OperationsApi(app.clone()),
            telemetry::TelemetryApi(app.clone()),
            configs::ConfigsApi(app.clone()),
            system::TokensApi(app.clone()),
            system::AuditApi(app.clone()),
            system::SystemApi(app),
        ),
        "Languard API",
        "1.0",
    )
    .description("Fleet manager for game servers. Errors are RFC 9457 problem+json.")
    .server(BASE)
}

/// The spec as YAML.
pub fn spec_yaml(app: AppState) -> String {
    api_service(app).spec_yaml()
}

/// Whether the request may read `/metrics`: with a token configured only with
/// `Authorization: Bearer <token>`, compared in constant time (over digests, so not even
/// the length leaks); without one only on the metrics listener, which is the sole place
/// the route is mounted then.
fn metrics_allowed(req: &poem::Request, token: Option<&str>) -> bool {
    use sha2::{Digest, Sha256};
    use subtle::ConstantTimeEq;
    let Some(expected) = token else {
        return true;
    };
    let given = req
        .header(poem::http::header::AUTHORIZATION)
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    bool::from(
        Sha256::digest(given.as_bytes())
            .as_slice()
            .ct_eq(Sha256::digest(expected.as_bytes()).as_slice()),
    )
}

#[handler]
fn metrics(req: &poem::Request) -> Response {
    let Some(app) = req.data::<AppState>() else {
        return Response::builder()
            .status(StatusCode::INTERNAL_SERVER_ERROR)
            .finish();
    };
    if !metrics_allowed(req, app.config.metrics.token.as_deref()) {
        let p = error::Problem::new(401, "metrics need the bearer token");
        return Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header(poem::http::header::WWW_AUTHENTICATE, "Bearer")
            .content_type(error::PROBLEM_JSON)
            .body(serde_json::to_vec(&p).unwrap_or_default());
    }
    Response::builder()
        .content_type("text/plain; version=0.0.4")
        .body(app.metrics.render(app.started.elapsed()))
}

/// What the separate metrics listener (`metrics.listen`) serves: `/metrics` only.
pub fn metrics_endpoint(app: AppState) -> poem::endpoint::BoxEndpoint<'static, poem::Response> {
    Route::new()
        .at("/metrics", poem::get(metrics))
        .data(app)
        .around(middleware::with_security_headers)
        .map_to_response()
        .boxed()
}

/// The whole HTTP application of the API listeners. `/metrics` is here only when a
/// token protects it.
pub fn build(app: AppState) -> poem::endpoint::BoxEndpoint<'static, poem::Response> {
    let api = api_service(app.clone());
    let mut route = Route::new()
        .at("/api/v1/ws", poem::get(live::endpoint))
        .nest(BASE, api.into_endpoint());
    if app.config.metrics.token.is_some() {
        route = route.at("/metrics", poem::get(metrics));
    }
    let cors_cfg = app.config.cors.clone();
    let state = app.clone();
    let ep = route.data(app).around(move |ep, req| {
        let st = state.clone();
        async move { middleware::around(ep, req, st).await }
    });
    let cors = if cors_cfg.enabled {
        let mut c = poem::middleware::Cors::new();
        for o in &cors_cfg.allow_origins {
            c = c.allow_origin(o.as_str());
        }
        Some(c.allow_credentials(false))
    } else {
        None
    };
    ep.with_if(cors.is_some(), cors.unwrap_or_default())
        .around(middleware::with_security_headers)
        .map_to_response()
        .boxed()
}
