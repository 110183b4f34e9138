//! OpenAPI tags.

use poem_openapi::Tags;

/// API areas.
#[derive(Tags)]
pub enum ApiTags {
    /// Sign-in, tokens, own account.
    Auth,
    /// User administration.
    Users,
    /// Game hosts.
    Hosts,
    /// Game servers.
    Servers,
    /// Running servers: lifecycle, players and the game's admin operations.
    Operations,
    /// Logs, metrics, history, live events.
    Telemetry,
    /// Server configuration, versions and files.
    Configs,
    /// API tokens for automation.
    Tokens,
    /// Audit trail.
    Audit,
    /// Health and status.
    System,
}
