//! Request and response bodies.

use poem_openapi::{Enum, Object};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::service::configs::ConfigSectionKind;
use crate::store::{self, Game};

/// A role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum RoleDto {
    /// Everything, including users, hosts, secrets and audit.
    Admin,
    /// Servers and configs.
    Operator,
    /// Read-only.
    Viewer,
}

impl From<store::Role> for RoleDto {
    fn from(r: store::Role) -> Self {
        match r {
            store::Role::Admin => Self::Admin,
            store::Role::Operator => Self::Operator,
            store::Role::Viewer => Self::Viewer,
        }
    }
}

impl From<RoleDto> for store::Role {
    fn from(r: RoleDto) -> Self {
        match r {
            RoleDto::Admin => Self::Admin,
            RoleDto::Operator => Self::Operator,
            RoleDto::Viewer => Self::Viewer,
        }
    }
}

/// A game.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum GameDto {
    /// Arma 3.
    Arma3,
    /// Palworld.
    Palworld,
}

impl From<Game> for GameDto {
    fn from(g: Game) -> Self {
        match g {
            Game::Arma3 => Self::Arma3,
            Game::Palworld => Self::Palworld,
        }
    }
}

impl From<GameDto> for Game {
    fn from(g: GameDto) -> Self {
        match g {
            GameDto::Arma3 => Self::Arma3,
            GameDto::Palworld => Self::Palworld,
        }
    }
}

/// A config section name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum SectionName {
    /// server.cfg.
    Server,
    /// basic.cfg.
    Basic,
    /// The Arma3Profile (difficulty).
    Profile,
    /// Launch parameters.
    Launch,
    /// BattlEye RCon.
    Rcon,
}

impl From<SectionName> for ConfigSectionKind {
    fn from(s: SectionName) -> Self {
        match s {
            SectionName::Server => Self::Server,
            SectionName::Basic => Self::Basic,
            SectionName::Profile => Self::Profile,
            SectionName::Launch => Self::Launch,
            SectionName::Rcon => Self::Rcon,
        }
    }
}

/// A user.
#[derive(Debug, Clone, Object)]
pub struct UserView {
    /// Id.
    pub id: Uuid,
    /// Username.
    pub username: String,
    /// Role.
    pub role: RoleDto,
    /// Must change the password before doing anything else.
    pub must_change_password: bool,
    /// Disabled users cannot sign in.
    pub disabled: bool,
    /// Created.
    pub created_at: OffsetDateTime,
    /// Last changed.
    pub updated_at: OffsetDateTime,
}

impl From<store::User> for UserView {
    fn from(u: store::User) -> Self {
        Self {
            id: u.id,
            username: u.username,
            role: u.role.into(),
            must_change_password: u.must_change_password,
            disabled: u.disabled,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

/// Username and password.
#[derive(Clone, Object)]
pub struct LoginRequest {
    /// Username (case-insensitive).
    #[oai(validator(max_length = 128))]
    pub username: String,
    /// Password.
    #[oai(validator(max_length = 1024))]
    pub password: String,
}

/// A refresh token to rotate.
#[derive(Clone, Object)]
pub struct RefreshRequest {
    /// The refresh token from the last login or refresh.
    pub refresh_token: String,
}

/// Logout options.
#[derive(Debug, Clone, Object, Default)]
pub struct LogoutRequest {
    /// End every session of the user, not only this one.
    #[oai(default)]
    pub all: bool,
}

/// A password change.
#[derive(Clone, Object)]
pub struct ChangePasswordRequest {
    /// Current password.
    pub current_password: String,
    /// New password (10 to 256 bytes).
    pub new_password: String,
}

/// Tokens after login/refresh/password change.
#[derive(Clone, Object)]
pub struct TokenResponse {
    /// JWT access token (HS256).
    pub access_token: String,
    /// Opaque refresh token; rotated on every use.
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Access token lifetime in seconds.
    pub expires_in: u64,
    /// The user.
    pub user: UserView,
}

impl From<crate::service::auth::TokenPair> for TokenResponse {
    fn from(p: crate::service::auth::TokenPair) -> Self {
        Self {
            access_token: p.access_token,
            refresh_token: p.refresh_token,
            token_type: "Bearer".into(),
            expires_in: p.expires_in,
            user: p.user.into(),
        }
    }
}

/// A new user.
#[derive(Clone, Object)]
pub struct CreateUserRequest {
    /// Username.
    pub username: String,
    /// Initial password.
    pub password: String,
    /// Role.
    pub role: RoleDto,
    /// Force a change at first login (default true).
    #[oai(default = "default_true")]
    pub must_change_password: bool,
}

fn default_true() -> bool {
    true
}

/// Changes to a user.
#[derive(Debug, Clone, Object)]
pub struct UpdateUserRequest {
    /// New role.
    pub role: Option<RoleDto>,
    /// Disable or enable.
    pub disabled: Option<bool>,
}

/// A password set by an admin.
#[derive(Clone, Object)]
pub struct ResetPasswordRequest {
    /// New password.
    pub password: String,
    /// Force a change at next login (default true).
    #[oai(default = "default_true")]
    pub must_change_password: bool,
}

/// A host.
#[derive(Debug, Clone, Object)]
pub struct HostView {
    /// Id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// `linux` or `windows`.
    pub os: String,
    /// Link status.
    pub status: String,
    /// Agent id once enrolled.
    pub agent_id: Option<String>,
    /// Last contact.
    pub last_seen_at: Option<OffsetDateTime>,
    /// Created.
    pub created_at: OffsetDateTime,
}

impl From<store::Host> for HostView {
    fn from(h: store::Host) -> Self {
        Self {
            id: h.id,
            name: h.name,
            os: h.os.as_str().into(),
            status: h.status.as_str().into(),
            agent_id: h.agent_id,
            last_seen_at: h.last_seen_at,
            created_at: h.created_at,
        }
    }
}

/// Host fields.
#[derive(Debug, Clone, Object)]
pub struct HostRequest {
    /// Name.
    pub name: String,
    /// `linux` or `windows`.
    pub os: String,
}

/// When the agent restarts a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "kebab-case")]
#[serde(rename_all = "kebab-case")]
pub enum RestartMode {
    /// Never.
    Never,
    /// After a crash.
    OnFailure,
    /// Whenever it exits.
    Always,
}

/// Restart policy.
#[derive(Debug, Clone, Object, serde::Serialize, serde::Deserialize)]
pub struct RestartPolicy {
    /// Mode.
    pub mode: RestartMode,
    /// Restarts allowed within `window_secs` before giving up.
    #[oai(default = "default_max", validator(maximum(value = "1000")))]
    #[serde(default = "default_max")]
    pub max_restarts: u32,
    /// Window, seconds.
    #[oai(default = "default_window", validator(maximum(value = "86400")))]
    #[serde(default = "default_window")]
    pub window_secs: u32,
}

impl RestartPolicy {
    /// The stored JSON as a policy; a row written before the field existed (or damaged)
    /// reads as the default: restart after a crash, 5 times in 10 minutes.
    pub fn from_stored(v: &Value) -> Self {
        serde_json::from_value(v.clone()).unwrap_or(RestartPolicy {
            mode: RestartMode::OnFailure,
            max_restarts: default_max(),
            window_secs: default_window(),
        })
    }
}

fn default_max() -> u32 {
    5
}
fn default_window() -> u32 {
    600
}

/// A server.
#[derive(Debug, Clone, Object)]
pub struct ServerView {
    /// Id.
    pub id: Uuid,
    /// Host.
    pub host_id: Uuid,
    /// Name.
    pub name: String,
    /// Game.
    pub game: GameDto,
    /// Game port P (reserves P..=P+4).
    pub game_port: i64,
    /// RCon port.
    pub rcon_port: i64,
    /// Ports this server reserves on its host.
    pub reserved_ports: Vec<i64>,
    /// Executable.
    pub executable_path: String,
    /// Restart policy.
    pub restart_policy: RestartPolicy,
    /// Whether it should run.
    pub desired_running: bool,
    /// Spec revision (send it back, or use If-Match, when updating).
    pub revision: i64,
    /// Config revision.
    pub config_revision: i64,
    /// Created.
    pub created_at: OffsetDateTime,
    /// Last changed.
    pub updated_at: OffsetDateTime,
}

impl From<store::Server> for ServerView {
    fn from(s: store::Server) -> Self {
        let reserved = crate::service::fleet::server_ports(s.game, s.game_port, s.rcon_port)
            .unwrap_or_default()
            .into_iter()
            .map(i64::from)
            .collect();
        let restart_policy = RestartPolicy::from_stored(&s.restart_policy);
        Self {
            id: s.id,
            host_id: s.host_id,
            name: s.name,
            game: s.game.into(),
            game_port: s.game_port,
            rcon_port: s.rcon_port,
            reserved_ports: reserved,
            executable_path: s.executable_path,
            restart_policy,
            desired_running: s.desired_running,
            revision: s.revision,
            config_revision: s.config_revision,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

/// Server fields.
#[derive(Debug, Clone, Object)]
pub struct ServerRequest {
    /// Host (create only; ignored on update).
    pub host_id: Option<Uuid>,
    /// Name.
    pub name: String,
    /// Game.
    pub game: GameDto,
    /// Game port P; P..=P+4 are reserved.
    pub game_port: i64,
    /// RCon port, outside P..=P+4.
    pub rcon_port: i64,
    /// Executable path (allow-listed names).
    pub executable_path: String,
    /// Restart policy.
    pub restart_policy: Option<RestartPolicy>,
    /// Whether it should run.
    #[oai(default)]
    pub desired_running: bool,
    /// Current revision (update only; or send If-Match).
    pub revision: Option<i64>,
}

impl ServerRequest {
    /// The store spec.
    pub fn spec(&self) -> store::ServerSpec {
        let rp = self.restart_policy.clone().unwrap_or(RestartPolicy {
            mode: RestartMode::OnFailure,
            max_restarts: 5,
            window_secs: 600,
        });
        store::ServerSpec {
            name: self.name.clone(),
            game: self.game.into(),
            game_port: self.game_port,
            rcon_port: self.rcon_port,
            executable_path: self.executable_path.clone(),
            restart_policy: serde_json::to_value(rp).unwrap_or(Value::Null),
            desired_running: self.desired_running,
        }
    }
}

/// One section of a server's config.
#[derive(Debug, Clone, Object)]
pub struct SectionView {
    /// Section name.
    pub section: String,
    /// Content; secrets appear only as `<field>_set: true|false`.
    pub content: Value,
    /// Config revision at which it was last written.
    pub revision: i64,
}

/// A server's config.
#[derive(Debug, Clone, Object)]
pub struct ConfigView {
    /// Config revision (ETag).
    pub revision: i64,
    /// Sections present.
    pub sections: Vec<SectionView>,
}

/// A section update.
#[derive(Clone, Object)]
pub struct SectionUpdate {
    /// Full section content (shared model fields). Omitted or null secrets keep the stored value.
    pub content: Value,
    /// Secrets to remove.
    #[oai(default)]
    pub clear_secrets: Vec<String>,
    /// Current config revision (or send If-Match).
    pub revision: Option<i64>,
    /// Change note.
    #[oai(validator(max_length = 500))]
    pub comment: Option<String>,
}

/// A saved version.
#[derive(Debug, Clone, Object)]
pub struct VersionSummary {
    /// Version number (= config revision it produced).
    pub version: i64,
    /// Author.
    pub author_user_id: Option<Uuid>,
    /// When.
    pub created_at: OffsetDateTime,
    /// Note.
    pub comment: Option<String>,
}

/// A version with its sections (secrets masked).
#[derive(Debug, Clone, Object)]
pub struct VersionView {
    /// Summary.
    pub version: i64,
    /// Author.
    pub author_user_id: Option<Uuid>,
    /// When.
    pub created_at: OffsetDateTime,
    /// Note.
    pub comment: Option<String>,
    /// Sections.
    pub sections: Vec<SectionView>,
}

/// One changed field.
#[derive(Debug, Clone, Object)]
pub struct DiffEntryView {
    /// Path, e.g. `server.hostname`.
    pub path: String,
    /// `added`, `removed`, `changed`.
    pub op: String,
    /// Old value (secrets masked).
    pub from: Option<Value>,
    /// New value (secrets masked).
    pub to: Option<Value>,
}

/// A rollback.
#[derive(Debug, Clone, Object)]
pub struct RollbackRequest {
    /// Version to restore.
    pub version: i64,
    /// Current config revision (or send If-Match).
    pub revision: Option<i64>,
}

/// Files to import.
#[derive(Clone, Object)]
pub struct ImportRequest {
    /// server.cfg text.
    pub server_cfg: Option<String>,
    /// basic.cfg text.
    pub basic_cfg: Option<String>,
    /// Current config revision (or send If-Match).
    pub revision: Option<i64>,
}

/// Import outcome.
#[derive(Debug, Clone, Object)]
pub struct ImportResponse {
    /// New config revision.
    pub revision: i64,
    /// What the importer kept, dropped or merged.
    pub warnings: Vec<String>,
}

/// A rendered file.
#[derive(Clone, Object)]
pub struct FileView {
    /// File name.
    pub name: String,
    /// Content.
    pub content: String,
}

/// An API token (never the secret).
#[derive(Debug, Clone, Object)]
pub struct ApiTokenView {
    /// Id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// Leading characters, for identification.
    pub prefix: String,
    /// Role it acts with.
    pub role: RoleDto,
    /// Created.
    pub created_at: OffsetDateTime,
    /// Last use.
    pub last_used_at: Option<OffsetDateTime>,
    /// Expiry.
    pub expires_at: Option<OffsetDateTime>,
    /// Revoked.
    pub revoked_at: Option<OffsetDateTime>,
}

impl From<store::ApiToken> for ApiTokenView {
    fn from(t: store::ApiToken) -> Self {
        Self {
            id: t.id,
            name: t.name,
            prefix: t.prefix,
            role: t.role.into(),
            created_at: t.created_at,
            last_used_at: t.last_used_at,
            expires_at: t.expires_at,
            revoked_at: t.revoked_at,
        }
    }
}

/// A new API token.
#[derive(Debug, Clone, Object)]
pub struct CreateApiTokenRequest {
    /// Name.
    pub name: String,
    /// Role (at most your own).
    pub role: RoleDto,
    /// Expiry.
    pub expires_at: Option<OffsetDateTime>,
}

/// The created token; `token` is shown only now.
#[derive(Clone, Object)]
pub struct CreatedApiToken {
    /// The secret.
    pub token: String,
    /// Its metadata.
    pub info: ApiTokenView,
}

/// An audit event.
#[derive(Debug, Clone, Object)]
pub struct AuditView {
    /// Id.
    pub id: Uuid,
    /// When.
    pub ts: OffsetDateTime,
    /// Who (user).
    pub actor_user_id: Option<Uuid>,
    /// `user`, `api_token`, `system`, `agent`.
    pub actor_kind: String,
    /// What, e.g. `server.update`.
    pub action: String,
    /// Target kind.
    pub target_kind: Option<String>,
    /// Target id.
    pub target_id: Option<String>,
    /// Client IP.
    pub ip: Option<String>,
    /// Details (never secrets).
    pub details: Value,
}

impl From<store::AuditEvent> for AuditView {
    fn from(e: store::AuditEvent) -> Self {
        Self {
            id: e.id,
            ts: e.ts,
            actor_user_id: e.actor_user_id,
            actor_kind: e.actor_kind.as_str().into(),
            action: e.action,
            target_kind: e.target_kind,
            target_id: e.target_id,
            ip: e.ip,
            details: e.details,
        }
    }
}

/// A page of audit events.
#[derive(Debug, Clone, Object)]
pub struct AuditPage {
    /// Events, newest first.
    pub items: Vec<AuditView>,
    /// Pass as `before` for the next page.
    pub next: Option<String>,
}

/// Liveness.
#[derive(Debug, Clone, Object)]
pub struct Health {
    /// `ok` or `degraded`.
    pub status: String,
    /// Database reachable.
    pub database: bool,
}

/// Controller status.
#[derive(Debug, Clone, Object)]
pub struct Status {
    /// Version.
    pub version: String,
    /// Seconds since start.
    pub uptime_secs: u64,
    /// `sqlite` or `postgres`.
    pub database_backend: String,
    /// Number of hosts.
    pub hosts: u64,
    /// Number of servers.
    pub servers: u64,
    /// Number of users.
    pub users: i64,
}

// ------------------------------------------------------------- redacting Debug impls
//
// Request and response bodies that carry passwords, tokens or secret config values print
// `<redacted>` in their place, so a stray `{:?}` (logs, panics, tracing) never leaks them.

const REDACTED: &str = "<redacted>";

/// The keys of a JSON object with every value hidden (section content may hold secrets).
fn redacted_object(v: &Value) -> std::collections::BTreeMap<&str, &str> {
    v.as_object()
        .map(|m| m.keys().map(|k| (k.as_str(), REDACTED)).collect())
        .unwrap_or_default()
}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest")
            .field("username", &self.username)
            .field("password", &REDACTED)
            .finish()
    }
}

impl std::fmt::Debug for RefreshRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshRequest")
            .field("refresh_token", &REDACTED)
            .finish()
    }
}

impl std::fmt::Debug for ChangePasswordRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangePasswordRequest")
            .field("current_password", &REDACTED)
            .field("new_password", &REDACTED)
            .finish()
    }
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &REDACTED)
            .field("refresh_token", &REDACTED)
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("user", &self.user)
            .finish()
    }
}

impl std::fmt::Debug for CreateUserRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateUserRequest")
            .field("username", &self.username)
            .field("password", &REDACTED)
            .field("role", &self.role)
            .field("must_change_password", &self.must_change_password)
            .finish()
    }
}

impl std::fmt::Debug for ResetPasswordRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResetPasswordRequest")
            .field("password", &REDACTED)
            .field("must_change_password", &self.must_change_password)
            .finish()
    }
}

impl std::fmt::Debug for SectionUpdate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SectionUpdate")
            .field("content", &redacted_object(&self.content))
            .field("clear_secrets", &self.clear_secrets)
            .field("revision", &self.revision)
            .field("comment", &self.comment)
            .finish()
    }
}

impl std::fmt::Debug for ImportRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportRequest")
            .field("server_cfg", &self.server_cfg.as_ref().map(|_| REDACTED))
            .field("basic_cfg", &self.basic_cfg.as_ref().map(|_| REDACTED))
            .field("revision", &self.revision)
            .finish()
    }
}

impl std::fmt::Debug for FileView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileView")
            .field("name", &self.name)
            .field(
                "content",
                &format_args!("<{} bytes redacted>", self.content.len()),
            )
            .finish()
    }
}

impl std::fmt::Debug for CreatedApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedApiToken")
            .field("token", &REDACTED)
            .field("info", &self.info)
            .finish()
    }
}

#[cfg(test)]
mod debug_tests {
    use super::*;

    fn user() -> UserView {
        UserView {
            id: Uuid::nil(),
            username: "alice".into(),
            role: RoleDto::Admin,
            must_change_password: false,
            disabled: false,
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    fn clean(d: String) {
        assert!(!d.contains("SECRET"), "{d}");
        assert!(d.contains("redacted"), "{d}");
    }

    #[test]
    fn login_request() {
        clean(format!(
            "{:?}",
            LoginRequest {
                username: "alice".into(),
                password: "SECRET".into()
            }
        ));
    }

    #[test]
    fn refresh_request() {
        clean(format!(
            "{:?}",
            RefreshRequest {
                refresh_token: "SECRET".into()
            }
        ));
    }

    #[test]
    fn change_password_request() {
        clean(format!(
            "{:?}",
            ChangePasswordRequest {
                current_password: "SECRET1".into(),
                new_password: "SECRET2".into()
            }
        ));
    }

    #[test]
    fn token_response() {
        clean(format!(
            "{:?}",
            TokenResponse {
                access_token: "SECRETa".into(),
                refresh_token: "SECRETr".into(),
                token_type: "Bearer".into(),
                expires_in: 60,
                user: user(),
            }
        ));
    }

    #[test]
    fn create_user_request() {
        clean(format!(
            "{:?}",
            CreateUserRequest {
                username: "bob".into(),
                password: "SECRET".into(),
                role: RoleDto::Viewer,
                must_change_password: true,
            }
        ));
    }

    #[test]
    fn reset_password_request() {
        clean(format!(
            "{:?}",
            ResetPasswordRequest {
                password: "SECRET".into(),
                must_change_password: true
            }
        ));
    }

    #[test]
    fn section_update() {
        clean(format!(
            "{:?}",
            SectionUpdate {
                content: serde_json::json!({"password_admin": "SECRET", "hostname": "x"}),
                clear_secrets: vec![],
                revision: None,
                comment: None,
            }
        ));
    }

    #[test]
    fn import_request_and_file_view() {
        clean(format!(
            "{:?}",
            ImportRequest {
                server_cfg: Some("password = \"SECRET\";".into()),
                basic_cfg: None,
                revision: None
            }
        ));
        clean(format!(
            "{:?}",
            FileView {
                name: "server.cfg".into(),
                content: "passwordAdmin = \"SECRET\";".into()
            }
        ));
    }

    #[test]
    fn created_api_token() {
        clean(format!(
            "{:?}",
            CreatedApiToken {
                token: "lgt_SECRET".into(),
                info: ApiTokenView {
                    id: Uuid::nil(),
                    name: "ci".into(),
                    prefix: "lgt_abc".into(),
                    role: RoleDto::Viewer,
                    created_at: OffsetDateTime::UNIX_EPOCH,
                    last_used_at: None,
                    expires_at: None,
                    revoked_at: None,
                },
            }
        ));
    }
}
