//! Request and response bodies.

use std::borrow::Cow;

use languard_shared::games::GameKind;
use languard_shared::wire::operation::OperationKind;
use languard_shared::wire::spec::{RestartMode as WireRestartMode, RestartPolicy as WirePolicy};
use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type};
use poem_openapi::{Enum, Object};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::Result;
use crate::store;

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

/// An OpenAPI string enum over a wire enum with `ALL` and `as_str`: the schema lists
/// exactly the wire's names, so the API cannot drift from the wire.
macro_rules! wire_name {
    ($(#[$m:meta])* $name:ident($wire:ty), $schema:literal, $doc:literal) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name(pub $wire);

        impl Type for $name {
            const IS_REQUIRED: bool = true;
            type RawValueType = Self;
            type RawElementValueType = Self;

            fn name() -> Cow<'static, str> {
                $schema.into()
            }

            fn schema_ref() -> MetaSchemaRef {
                MetaSchemaRef::Reference(Self::name().into_owned())
            }

            fn register(registry: &mut Registry) {
                registry.create_schema::<Self, _>(Self::name().into_owned(), |_| MetaSchema {
                    description: Some($doc),
                    enum_items: <$wire>::ALL
                        .iter()
                        .map(|v| Value::String(v.as_str().into()))
                        .collect(),
                    ..MetaSchema::new("string")
                });
            }

            fn as_raw_value(&self) -> Option<&Self::RawValueType> {
                Some(self)
            }

            fn raw_element_iter<'a>(
                &'a self,
            ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
                Box::new(self.as_raw_value().into_iter())
            }
        }

        impl ParseFromJSON for $name {
            fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
                let value = value.unwrap_or_default();
                let found = value
                    .as_str()
                    .and_then(|s| <$wire>::ALL.into_iter().find(|v| v.as_str() == s));
                match found {
                    Some(v) => Ok(Self(v)),
                    None => Err(ParseError::expected_type(value)),
                }
            }
        }

        impl ToJSON for $name {
            fn to_json(&self) -> Option<Value> {
                Some(Value::String(self.0.as_str().into()))
            }
        }
    };
}

wire_name!(
    /// A game, named as on the wire; the schema lists every game the wire knows (which
    /// ones Languard runs yet: `GET /games`).
    GameName(GameKind),
    "GameDto",
    "A game."
);

wire_name!(
    /// An admin operation a game may have, named as on the wire.
    OperationName(OperationKind),
    "OperationName",
    "An admin operation a game may have."
);

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
            os: h.os.as_str().to_owned(),
            status: h.status.as_str().to_owned(),
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

/// When the agent restarts a server by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum RestartMode {
    /// Never; a crash leaves the server crashed.
    Never,
    /// After a crash or a hang, not after a clean exit.
    OnCrash,
    /// After any exit the agent did not ask for.
    Always,
}

/// Restart policy: the wire's `RestartPolicy`, field for field, with the limits the agent
/// checks (delays up to a day).
#[derive(Debug, Clone, Object)]
pub struct RestartPolicy {
    /// When to restart.
    #[oai(default = "default_mode")]
    pub mode: RestartMode,
    /// This many crashes within `crash_loop_window_secs` stop retrying (state `error`);
    /// 0 turns the check off.
    #[oai(default = "default_crash_loop_max", validator(maximum(value = "1000")))]
    pub crash_loop_max: u32,
    /// Window for counting crashes, seconds.
    #[oai(
        default = "default_crash_loop_window",
        validator(maximum(value = "86400"))
    )]
    pub crash_loop_window_secs: u64,
    /// First delay after a crash, doubled on each further crash, milliseconds.
    #[oai(
        default = "default_backoff_initial",
        validator(maximum(value = "86400000"))
    )]
    pub backoff_initial_ms: u64,
    /// Upper bound of the delay, milliseconds.
    #[oai(
        default = "default_backoff_max",
        validator(maximum(value = "86400000"))
    )]
    pub backoff_max_ms: u64,
}

fn default_mode() -> RestartMode {
    WirePolicy::default().mode.into()
}
fn default_crash_loop_max() -> u32 {
    WirePolicy::default().crash_loop_max
}
fn default_crash_loop_window() -> u64 {
    WirePolicy::default().crash_loop_window_secs
}
fn default_backoff_initial() -> u64 {
    WirePolicy::default().backoff_initial_ms
}
fn default_backoff_max() -> u64 {
    WirePolicy::default().backoff_max_ms
}

impl From<WireRestartMode> for RestartMode {
    fn from(m: WireRestartMode) -> Self {
        match m {
            WireRestartMode::Never => Self::Never,
            WireRestartMode::OnCrash => Self::OnCrash,
            WireRestartMode::Always => Self::Always,
        }
    }
}

impl From<RestartMode> for WireRestartMode {
    fn from(m: RestartMode) -> Self {
        match m {
            RestartMode::Never => Self::Never,
            RestartMode::OnCrash => Self::OnCrash,
            RestartMode::Always => Self::Always,
        }
    }
}

impl From<WirePolicy> for RestartPolicy {
    fn from(p: WirePolicy) -> Self {
        Self {
            mode: p.mode.into(),
            crash_loop_max: p.crash_loop_max,
            crash_loop_window_secs: p.crash_loop_window_secs,
            backoff_initial_ms: p.backoff_initial_ms,
            backoff_max_ms: p.backoff_max_ms,
        }
    }
}

impl From<RestartPolicy> for WirePolicy {
    fn from(p: RestartPolicy) -> Self {
        Self {
            mode: p.mode.into(),
            crash_loop_max: p.crash_loop_max,
            crash_loop_window_secs: p.crash_loop_window_secs,
            backoff_initial_ms: p.backoff_initial_ms,
            backoff_max_ms: p.backoff_max_ms,
        }
    }
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
    pub game: GameName,
    /// Game port (the game may reserve the ports after it too: see `reserved_ports`).
    pub game_port: i64,
    /// Admin interface port (BattlEye RCon for Arma 3).
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
        let reserved = crate::games::reserved_ports(s.game, s.game_port, s.rcon_port)
            .into_iter()
            .map(i64::from)
            .collect();
        let restart_policy = crate::service::restart::from_stored(&s.restart_policy).into();
        // Rows name only games the wire knows (the store checks its names).
        let game = GameName(s.game);
        Self {
            id: s.id,
            host_id: s.host_id,
            name: s.name,
            game,
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
    /// Game (one Languard can run: see `GET /games`).
    pub game: GameName,
    /// Game port (the game may reserve the ports after it too).
    pub game_port: i64,
    /// Admin interface port, outside the game's ports.
    pub rcon_port: i64,
    /// Executable path (the names the agent allows for the game: see `GET /games`).
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
    /// The store spec (no policy: the default one).
    pub fn spec(&self) -> Result<store::ServerSpec> {
        let policy: WirePolicy = self
            .restart_policy
            .clone()
            .map(Into::into)
            .unwrap_or_default();
        Ok(store::ServerSpec {
            name: self.name.clone(),
            game: self.game.0,
            game_port: self.game_port,
            rcon_port: self.rcon_port,
            executable_path: self.executable_path.clone(),
            restart_policy: crate::service::restart::to_stored(&policy),
            desired_running: self.desired_running,
        })
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
    /// Full section content (the game's model fields). Omitted or null secrets keep the
    /// stored value.
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

/// One existing file to import.
#[derive(Clone, Object)]
pub struct ImportFile {
    /// Its name, one the server's game imports (see `GET /games`), e.g. `server.cfg`.
    #[oai(validator(max_length = 255))]
    pub name: String,
    /// Its text.
    pub content: String,
}

/// Files to import.
#[derive(Clone, Object)]
pub struct ImportRequest {
    /// The files.
    pub files: Vec<ImportFile>,
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

impl std::fmt::Debug for ImportFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportFile")
            .field("name", &self.name)
            .field("content", &REDACTED)
            .finish()
    }
}

impl std::fmt::Debug for ImportRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportRequest")
            .field("files", &self.files)
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
                files: vec![ImportFile {
                    name: "server.cfg".into(),
                    content: "password = \"SECRET\";".into()
                }],
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

// ------------------------------------------------------------------ player addresses

/// The lowest role that sees player addresses. Addresses are personal data; viewers
/// (community staff, moderators in training) need names and accounts, not where players
/// connect from. Every view that carries an address asks [`sees_addresses`].
pub const ADDRESS_ROLE: store::Role = store::Role::Operator;

/// Whether `ctx`'s caller may see player addresses.
pub fn sees_addresses(ctx: &crate::service::Ctx) -> bool {
    ctx.principal
        .as_ref()
        .is_some_and(|p| role_sees_addresses(p.role))
}

/// Whether `role` may see player addresses ([`ADDRESS_ROLE`] or higher).
pub fn role_sees_addresses(role: store::Role) -> bool {
    crate::auth::role_allows(role, ADDRESS_ROLE)
}

/// Hides the player addresses in an event payload as stored in a server's history or
/// sent to consoles: every `address` or `ip` member, at any depth, becomes `null` (the
/// member stays, so the shape does not depend on the role). Payloads stored by older
/// protocol versions name the field `ip`, current ones `address`.
pub fn hide_addresses(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, member) in map.iter_mut() {
                if k == "address" || k == "ip" {
                    *member = Value::Null;
                } else {
                    hide_addresses(member);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(hide_addresses),
        _ => {}
    }
}

#[cfg(test)]
mod address_tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn addresses_are_hidden_at_any_depth_and_only_below_operator() {
        let mut v = json!({"kind": "player_joined", "data": {"player": {"name": "Fritz",
            "address": "10.0.0.1"}}, "list": [{"ip": "1.2.3.4", "text": "address 5.6.7.8"}]});
        hide_addresses(&mut v);
        assert_eq!(
            v,
            json!({"kind": "player_joined", "data": {"player": {"name": "Fritz",
                "address": null}}, "list": [{"ip": null, "text": "address 5.6.7.8"}]})
        );
        assert!(!role_sees_addresses(store::Role::Viewer));
        assert!(role_sees_addresses(store::Role::Operator));
        assert!(role_sees_addresses(store::Role::Admin));
    }
}
