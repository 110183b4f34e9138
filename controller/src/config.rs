//! The controller's one typed configuration: defaults, then a TOML file, then the
//! environment (`LANGUARD_*`, `DATABASE_URL`), then command-line flags. Validated once at
//! start-up; every problem is reported together.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Effective controller configuration. `Debug` masks the database password.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Addresses the HTTP API listens on.
    pub listen: Vec<SocketAddr>,
    /// Data folder: SQLite database, master key file.
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; default: `sqlite://<data_dir>/languard.db`.
    pub database_url: Option<String>,
    /// Master key file (base64, 32 bytes); default `<data_dir>/master.key`. The environment
    /// variable `LANGUARD_MASTER_KEY` (base64) takes precedence over any file.
    pub master_key_file: Option<PathBuf>,
    /// Access (JWT) token lifetime in seconds.
    pub access_token_ttl_secs: u64,
    /// Refresh token lifetime in seconds.
    pub refresh_token_ttl_secs: u64,
    /// Largest accepted request body in bytes.
    pub max_body_bytes: usize,
    /// Trust `X-Forwarded-For` (its right-most entry, the one the proxy appended) /
    /// `X-Real-IP` for the client address (only behind one trusted proxy).
    pub trust_forwarded_for: bool,
    /// Retention settings.
    pub retention: Retention,
    /// CORS; off by default.
    pub cors: Cors,
    /// Login throttling.
    pub login_throttle: LoginThrottle,
    /// The agent link.
    pub link: Link,
    /// Connection limits and timeouts of the HTTP listeners.
    pub http: Http,
    /// Where Prometheus reads `/metrics`.
    pub metrics: MetricsEndpoint,
}

/// Limits of the HTTP front door: without them one anonymous client can hold every
/// connection, or a half-sent request, for as long as it likes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Http {
    /// Seconds a client has to send a complete request header once it has started one,
    /// and to send its first request on a new connection; then the connection is closed.
    pub header_timeout_secs: u64,
    /// Seconds a keep-alive connection may sit with no request in progress before it is
    /// closed (an upgraded WebSocket is never idle in this sense; it pings on its own).
    pub idle_timeout_secs: u64,
    /// Most open connections over all listeners; further ones are closed at once.
    pub max_connections: usize,
    /// Most open connections from one client address (IPv6 counted per /64 prefix, what
    /// one subscriber usually gets); 0 = no per-address limit. Not applied with
    /// `trust_forwarded_for`: every connection then comes from the proxy.
    pub max_connections_per_ip: usize,
}

impl Default for Http {
    fn default() -> Self {
        Self {
            header_timeout_secs: 10,
            idle_timeout_secs: 60,
            max_connections: 4096,
            max_connections_per_ip: 256,
        }
    }
}

/// `/metrics` is not served anonymously on the API port: the counters tell an outsider
/// how busy the fleet is and when logins fail.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsEndpoint {
    /// Address of a listener that serves only `/metrics` (e.g. `127.0.0.1:9464`); `None`
    /// (the default) opens no such listener.
    pub listen: Option<SocketAddr>,
    /// Bearer token (at least 16 characters) every `/metrics` request must carry when set;
    /// with a token `/metrics` is also served on the API listeners.
    pub token: Option<String>,
}

impl std::fmt::Debug for MetricsEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsEndpoint")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .finish()
    }
}

/// The agent link listener (DESIGN.md, "Controller <-> agent link").
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Link {
    /// Address of the TLS listener agents dial (mutual TLS; enrollment on the same port).
    /// `None` disables the link.
    pub listen: Option<SocketAddr>,
    /// DNS names and IP addresses agents use to reach the link: they go into the
    /// listener's certificate, and an agent checks the name it dialled against them.
    pub names: Vec<String>,
    /// Heartbeat interval offered to agents, seconds; a silent link is dropped after
    /// three intervals.
    pub heartbeat_secs: u32,
    /// How long an API request waits for the agent's answer, seconds.
    pub request_timeout_secs: u64,
    /// Lifetime of agent certificates, days (renewed over the link at two thirds).
    pub cert_validity_days: u32,
    /// Default lifetime of join tokens, seconds.
    pub join_token_ttl_secs: u64,
}

impl Default for Link {
    fn default() -> Self {
        let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        if let Ok(h) = std::fs::read_to_string("/etc/hostname") {
            let h = h.trim();
            if !h.is_empty() && h != "localhost" {
                names.push(h.to_owned());
            }
        }
        Self {
            listen: Some(SocketAddr::from(([0, 0, 0, 0], 7443))),
            names,
            heartbeat_secs: 15,
            request_timeout_secs: 30,
            cert_validity_days: 7,
            join_token_ttl_secs: 24 * 3600,
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &self.database_url.as_deref().map(mask_url_password),
            )
            .field("master_key_file", &self.master_key_file)
            .field("access_token_ttl_secs", &self.access_token_ttl_secs)
            .field("refresh_token_ttl_secs", &self.refresh_token_ttl_secs)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("trust_forwarded_for", &self.trust_forwarded_for)
            .field("retention", &self.retention)
            .field("cors", &self.cors)
            .field("login_throttle", &self.login_throttle)
            .field("link", &self.link)
            .field("http", &self.http)
            .field("metrics", &self.metrics)
            .finish()
    }
}

/// How long history is kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Retention {
    /// Audit events, days.
    pub audit_days: u32,
    /// Log lines, days.
    pub logs_days: u32,
    /// Metric samples, days.
    pub metrics_days: u32,
    /// Closed player sessions, days (by join time).
    pub sessions_days: u32,
    /// Server events (status changes, joins and leaves, chat, gaps), days.
    pub events_days: u32,
    /// 5-minute and 1-hour metric roll-ups, days (1-minute roll-ups follow
    /// `metrics_days`): long charts outlive the raw samples.
    pub rollups_days: u32,
    /// Minutes between pruning runs of `languard serve` (0 = never prune). Expired refresh
    /// tokens, and join tokens expired for more than a day, are pruned by the same run.
    pub interval_minutes: u32,
}

/// Cross-origin requests.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Cors {
    /// Enable CORS handling.
    pub enabled: bool,
    /// Allowed origins (exact match); empty with `enabled` allows none.
    pub allow_origins: Vec<String>,
}

/// Failed-login limits (also for `POST /auth/password`). The main brake is per account
/// *and* source (client IP; an IPv6 /64 counts as one source), so an attacker slows only
/// their own guesses and cannot lock the real user out from elsewhere.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoginThrottle {
    /// Failures allowed per source within the window, over all accounts.
    pub per_ip: u32,
    /// Failures allowed per account within the window from all sources together: a brake
    /// on distributed guessing, high enough that one source cannot reach it alone.
    pub per_account: u32,
    /// Window length of `per_ip` and `per_account`, seconds.
    pub window_secs: u64,
    /// Failures of one account from one source before backoff starts.
    pub per_source: u32,
    /// First backoff of a source, seconds; doubles with every further failure.
    pub backoff_base_secs: u64,
    /// Longest backoff of a source, seconds.
    pub backoff_max_secs: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            audit_days: 365,
            logs_days: 30,
            metrics_days: 30,
            sessions_days: 90,
            events_days: 30,
            rollups_days: 365,
            interval_minutes: 60,
        }
    }
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self {
            per_ip: 20,
            per_account: 100,
            window_secs: 300,
            per_source: 5,
            backoff_base_secs: 1,
            backoff_max_secs: 900,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 8080))],
            data_dir: PathBuf::from("data"),
            database_url: None,
            master_key_file: None,
            access_token_ttl_secs: 600,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            max_body_bytes: 1024 * 1024,
            trust_forwarded_for: false,
            retention: Retention::default(),
            cors: Cors::default(),
            login_throttle: LoginThrottle::default(),
            link: Link::default(),
            http: Http::default(),
            metrics: MetricsEndpoint::default(),
        }
    }
}

/// Overrides from the command line (highest precedence).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Vec<SocketAddr>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--database-url`.
    pub database_url: Option<String>,
    /// `serve --link-listen`.
    pub link_listen: Option<SocketAddr>,
}

/// Configuration problems, all of them.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  {}", .0.join("\n  "))]
pub struct ConfigProblems(pub Vec<String>);

impl Config {
    /// Loads defaults, then `file` (if any), then the environment, then `over`.
    pub fn load(file: Option<&Path>, over: &Overrides) -> Result<Self, ConfigProblems> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(file, &env, over)
    }

    /// Like [`Config::load`] with an explicit environment (tests).
    pub fn load_from(
        file: Option<&Path>,
        env: &[(String, String)],
        over: &Overrides,
    ) -> Result<Self, ConfigProblems> {
        let mut problems = Vec::new();
        let mut cfg = match file {
            Some(path) => match std::fs::read_to_string(path) {
                Ok(text) => match toml::from_str::<Config>(&text) {
                    Ok(c) => c,
                    Err(e) => {
                        problems.push(format!("{}: {e}", path.display()));
                        Config::default()
                    }
                },
                Err(e) => {
                    problems.push(format!("{}: {e}", path.display()));
                    Config::default()
                }
            },
            None => Config::default(),
        };
        for (k, v) in env {
            let res: Result<(), String> = match k.as_str() {
                "LANGUARD_LISTEN" => parse_listen(v).map(|l| cfg.listen = l),
                "LANGUARD_LINK_LISTEN" => parse_link_listen(v).map(|l| cfg.link.listen = l),
                "LANGUARD_LINK_NAMES" => {
                    cfg.link.names = split_list(v);
                    Ok(())
                }
                "LANGUARD_DATA_DIR" => {
                    cfg.data_dir = PathBuf::from(v);
                    Ok(())
                }
                // LANGUARD_DATABASE_URL wins over DATABASE_URL whatever the order.
                "LANGUARD_DATABASE_URL" => {
                    cfg.database_url = Some(v.clone());
                    Ok(())
                }
                "DATABASE_URL" => {
                    if !env.iter().any(|(k, _)| k == "LANGUARD_DATABASE_URL") {
                        cfg.database_url = Some(v.clone());
                    }
                    Ok(())
                }
                "LANGUARD_MASTER_KEY_FILE" => {
                    cfg.master_key_file = Some(PathBuf::from(v));
                    Ok(())
                }
                "LANGUARD_ACCESS_TOKEN_TTL_SECS" => num(v).map(|n| cfg.access_token_ttl_secs = n),
                "LANGUARD_REFRESH_TOKEN_TTL_SECS" => num(v).map(|n| cfg.refresh_token_ttl_secs = n),
                "LANGUARD_MAX_BODY_BYTES" => num(v).map(|n| cfg.max_body_bytes = n as usize),
                "LANGUARD_TRUST_FORWARDED_FOR" => boolean(v).map(|b| cfg.trust_forwarded_for = b),
                "LANGUARD_RETENTION_AUDIT_DAYS" => days(v).map(|n| cfg.retention.audit_days = n),
                "LANGUARD_RETENTION_LOGS_DAYS" => days(v).map(|n| cfg.retention.logs_days = n),
                "LANGUARD_RETENTION_METRICS_DAYS" => {
                    days(v).map(|n| cfg.retention.metrics_days = n)
                }
                "LANGUARD_RETENTION_SESSIONS_DAYS" => {
                    days(v).map(|n| cfg.retention.sessions_days = n)
                }
                "LANGUARD_RETENTION_EVENTS_DAYS" => days(v).map(|n| cfg.retention.events_days = n),
                "LANGUARD_RETENTION_ROLLUPS_DAYS" => {
                    days(v).map(|n| cfg.retention.rollups_days = n)
                }
                "LANGUARD_RETENTION_INTERVAL_MINUTES" => {
                    days(v).map(|n| cfg.retention.interval_minutes = n)
                }
                "LANGUARD_HTTP_HEADER_TIMEOUT_SECS" => {
                    num(v).map(|n| cfg.http.header_timeout_secs = n)
                }
                "LANGUARD_HTTP_IDLE_TIMEOUT_SECS" => num(v).map(|n| cfg.http.idle_timeout_secs = n),
                "LANGUARD_HTTP_MAX_CONNECTIONS" => {
                    num(v).map(|n| cfg.http.max_connections = n as usize)
                }
                "LANGUARD_HTTP_MAX_CONNECTIONS_PER_IP" => {
                    num(v).map(|n| cfg.http.max_connections_per_ip = n as usize)
                }
                "LANGUARD_METRICS_LISTEN" => parse_link_listen(v).map(|l| cfg.metrics.listen = l),
                "LANGUARD_METRICS_TOKEN" => {
                    cfg.metrics.token = Some(v.trim().to_owned()).filter(|t| !t.is_empty());
                    Ok(())
                }
                "LANGUARD_CORS_ENABLED" => boolean(v).map(|b| cfg.cors.enabled = b),
                "LANGUARD_CORS_ALLOW_ORIGINS" => {
                    cfg.cors.allow_origins = v
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect();
                    Ok(())
                }
                _ => Ok(()),
            };
            if let Err(e) = res {
                problems.push(format!("{k}: {e}"));
            }
        }
        if !over.listen.is_empty() {
            cfg.listen = over.listen.clone();
        }
        if let Some(d) = &over.data_dir {
            cfg.data_dir = d.clone();
        }
        if let Some(u) = &over.database_url {
            cfg.database_url = Some(u.clone());
        }
        if let Some(l) = over.link_listen {
            cfg.link.listen = Some(l);
        }
        problems.extend(cfg.validate());
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigProblems(problems))
        }
    }

    /// Cross-field checks; returns every problem.
    pub fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.listen.is_empty() {
            p.push("listen: at least one address is required".to_owned());
        }
        if !(30..=86_400).contains(&self.access_token_ttl_secs) {
            p.push("access_token_ttl_secs: must be 30..=86400".to_owned());
        }
        if self.refresh_token_ttl_secs < self.access_token_ttl_secs {
            p.push("refresh_token_ttl_secs: must not be shorter than the access token".to_owned());
        }
        if !(1024..=1024 * 1024 * 1024).contains(&self.max_body_bytes) {
            p.push("max_body_bytes: must be 1 KiB..=1 GiB".to_owned());
        }
        let h = &self.http;
        if !(1..=300).contains(&h.header_timeout_secs) {
            p.push("http.header_timeout_secs: must be 1..=300".to_owned());
        }
        if !(1..=3600).contains(&h.idle_timeout_secs) {
            p.push("http.idle_timeout_secs: must be 1..=3600".to_owned());
        }
        if h.max_connections == 0 {
            p.push("http.max_connections: at least 1".to_owned());
        }
        if let Some(t) = &self.metrics.token
            && (t.chars().count() < 16 || t.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            p.push("metrics.token: at least 16 characters, no spaces".to_owned());
        }
        if let Some(m) = self.metrics.listen
            && (self.listen.contains(&m) || self.link.listen == Some(m))
        {
            p.push("metrics.listen: must differ from the API and link addresses".to_owned());
        }
        let l = &self.link;
        if l.listen.is_some() && l.names.is_empty() {
            p.push("link.names: at least one name agents use to reach the link".to_owned());
        }
        if l.heartbeat_secs == 0 || l.heartbeat_secs > 3600 {
            p.push("link.heartbeat_secs: between 1 and 3600".to_owned());
        }
        if l.request_timeout_secs == 0 {
            p.push("link.request_timeout_secs: at least 1".to_owned());
        }
        if l.cert_validity_days == 0 || l.cert_validity_days > 90 {
            p.push("link.cert_validity_days: between 1 and 90".to_owned());
        }
        let t = &self.login_throttle;
        if t.per_ip == 0 || t.per_account == 0 || t.per_source == 0 || t.window_secs == 0 {
            p.push("login_throttle: limits and window must be at least 1".to_owned());
        }
        if t.backoff_base_secs == 0 || t.backoff_max_secs < t.backoff_base_secs {
            p.push(
                "login_throttle: backoff_base_secs at least 1, backoff_max_secs not below it"
                    .to_owned(),
            );
        }
        let r = &self.retention;
        if [
            r.audit_days,
            r.logs_days,
            r.metrics_days,
            r.sessions_days,
            r.events_days,
            r.rollups_days,
        ]
        .contains(&0)
        {
            p.push("retention: every *_days must be at least 1".to_owned());
        }
        if let Some(u) = &self.database_url
            && !(u.starts_with("sqlite:")
                || u.starts_with("postgres://")
                || u.starts_with("postgresql://"))
        {
            p.push("database_url: use sqlite://<path> or postgres://…".to_owned());
        }
        p
    }

    /// The database URL in force (default: SQLite in the data folder).
    pub fn effective_database_url(&self) -> String {
        match &self.database_url {
            Some(u) => u.clone(),
            None => format!("sqlite://{}", self.data_dir.join("languard.db").display()),
        }
    }

    /// The effective configuration as TOML with the database password masked.
    pub fn dump(&self) -> String {
        let mut c = self.clone();
        c.database_url = c.database_url.as_deref().map(mask_url_password);
        if c.metrics.token.is_some() {
            c.metrics.token = Some("***".to_owned());
        }
        toml::to_string_pretty(&c).unwrap_or_default()
    }
}

/// Replaces the password of `scheme://user:password@host` with `***`.
pub fn mask_url_password(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some((scheme, rest)) = url.split_once("://") {
        // The authority ends at the first '/', '?' or '#'; the credentials end at its last '@'.
        let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(auth_end);
        if let Some((creds, host)) = authority.rsplit_once('@')
            && let Some((user, _)) = creds.split_once(':')
        {
            out = format!("{scheme}://{user}:***@{host}{tail}");
        }
    }
    // `?password=…` (libpq style) in the query string.
    if let Some(q) = out.find('?') {
        let (base, query) = out.split_at(q + 1);
        let masked: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => kv.to_owned(),
            })
            .collect();
        out = format!("{base}{}", masked.join("&"));
    }
    out
}

fn parse_listen(v: &str) -> Result<Vec<SocketAddr>, String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<SocketAddr>().map_err(|e| format!("{s}: {e}")))
        .collect()
}

/// `off` (or empty) disables the listener; anything else is one socket address.
fn parse_link_listen(v: &str) -> Result<Option<SocketAddr>, String> {
    let v = v.trim();
    if v.is_empty() || v.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    v.parse()
        .map(Some)
        .map_err(|_| format!("{v:?} is not a socket address (or `off`)"))
}

fn split_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn num(v: &str) -> Result<u64, String> {
    v.trim().parse().map_err(|e| format!("{e}"))
}

fn days(v: &str) -> Result<u32, String> {
    v.trim().parse().map_err(|e| format!("{e}"))
}

fn boolean(v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        other => Err(format!("not a boolean: {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_masks_database_password() {
        let c = Config {
            database_url: Some("postgres://u:hunter2@h:5432/db?sslmode=require".into()),
            ..Config::default()
        };
        let d = format!("{c:?}");
        assert!(!d.contains("hunter2"), "{d}");
        assert!(
            d.contains("postgres://u:***@h:5432/db?sslmode=require"),
            "{d}"
        );
        assert_eq!(
            mask_url_password("postgres://u:p@ss@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(
            mask_url_password("postgres://h/db?user=u&password=hunter2"),
            "postgres://h/db?user=u&password=***"
        );
        assert_eq!(mask_url_password("sqlite:///x/y.db"), "sqlite:///x/y.db");
    }

    #[test]
    fn languard_database_url_wins_in_any_order() {
        for env in [
            vec![
                ("DATABASE_URL".to_owned(), "postgres://other/db".to_owned()),
                (
                    "LANGUARD_DATABASE_URL".to_owned(),
                    "postgres://mine/db".to_owned(),
                ),
            ],
            vec![
                (
                    "LANGUARD_DATABASE_URL".to_owned(),
                    "postgres://mine/db".to_owned(),
                ),
                ("DATABASE_URL".to_owned(), "postgres://other/db".to_owned()),
            ],
        ] {
            let c = Config::load_from(None, &env, &Overrides::default()).unwrap();
            assert_eq!(c.database_url.as_deref(), Some("postgres://mine/db"));
        }
        let env = vec![("DATABASE_URL".to_owned(), "postgres://other/db".to_owned())];
        let c = Config::load_from(None, &env, &Overrides::default()).unwrap();
        assert_eq!(c.database_url.as_deref(), Some("postgres://other/db"));
    }

    #[test]
    fn layers_and_reports_all_problems() {
        let env = vec![
            ("LANGUARD_LISTEN".to_owned(), "0.0.0.0:9000".to_owned()),
            (
                "DATABASE_URL".to_owned(),
                "postgres://u:secret@h/db".to_owned(),
            ),
        ];
        let c = Config::load_from(None, &env, &Overrides::default()).unwrap();
        assert_eq!(c.listen[0].port(), 9000);
        assert!(!c.dump().contains("secret"));
        let bad = vec![
            ("LANGUARD_LISTEN".to_owned(), "nope".to_owned()),
            ("LANGUARD_ACCESS_TOKEN_TTL_SECS".to_owned(), "1".to_owned()),
        ];
        let err = Config::load_from(None, &bad, &Overrides::default()).unwrap_err();
        assert_eq!(err.0.len(), 2, "{err}");
    }

    #[test]
    fn link_settings_from_env_flags_and_their_problems() {
        let env = vec![
            (
                "LANGUARD_LINK_LISTEN".to_owned(),
                "127.0.0.1:7000".to_owned(),
            ),
            (
                "LANGUARD_LINK_NAMES".to_owned(),
                " game.example , 10.0.0.5,".to_owned(),
            ),
        ];
        let c = Config::load_from(None, &env, &Overrides::default()).unwrap();
        assert_eq!(c.link.listen.map(|a| a.port()), Some(7000));
        assert_eq!(c.link.names, ["game.example", "10.0.0.5"]);
        let over = Overrides {
            link_listen: Some(SocketAddr::from(([127, 0, 0, 1], 7001))),
            ..Overrides::default()
        };
        let c = Config::load_from(None, &env, &over).unwrap();
        assert_eq!(c.link.listen.map(|a| a.port()), Some(7001), "the flag wins");
        let off = vec![("LANGUARD_LINK_LISTEN".to_owned(), "off".to_owned())];
        assert_eq!(
            Config::load_from(None, &off, &Overrides::default())
                .unwrap()
                .link
                .listen,
            None
        );
        let bad = vec![
            ("LANGUARD_LINK_LISTEN".to_owned(), "port 7443".to_owned()),
            ("LANGUARD_LINK_NAMES".to_owned(), ",".to_owned()),
        ];
        let err = Config::load_from(None, &bad, &Overrides::default()).unwrap_err();
        assert_eq!(err.0.len(), 2, "both problems reported at once: {err}");
        let mut c = Config::default();
        c.link.cert_validity_days = 0;
        c.link.heartbeat_secs = 0;
        c.link.names.clear();
        assert_eq!(c.validate().len(), 3, "{:?}", c.validate());
    }

    #[test]
    fn event_and_rollup_retention_from_file_env_and_dump() {
        let d = Config::default().retention;
        assert_eq!((d.events_days, d.rollups_days), (d.logs_days, 365));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "[retention]\nevents_days = 7\nrollups_days = 100\n").unwrap();
        let c = Config::load_from(Some(&file), &[], &Overrides::default()).unwrap();
        assert_eq!(
            (c.retention.events_days, c.retention.rollups_days),
            (7, 100)
        );
        assert!(c.dump().contains("events_days = 7"), "{}", c.dump());
        assert!(c.dump().contains("rollups_days = 100"));
        let env = vec![
            ("LANGUARD_RETENTION_EVENTS_DAYS".to_owned(), "9".to_owned()),
            (
                "LANGUARD_RETENTION_ROLLUPS_DAYS".to_owned(),
                "400".to_owned(),
            ),
        ];
        let c = Config::load_from(Some(&file), &env, &Overrides::default()).unwrap();
        assert_eq!(
            (c.retention.events_days, c.retention.rollups_days),
            (9, 400)
        );
        let zero = vec![("LANGUARD_RETENTION_ROLLUPS_DAYS".to_owned(), "0".to_owned())];
        assert!(Config::load_from(None, &zero, &Overrides::default()).is_err());
    }

    #[test]
    fn http_limits_and_metrics_from_env_dump_masks_the_token() {
        let d = Config::default();
        assert_eq!(
            (d.http.header_timeout_secs, d.http.idle_timeout_secs),
            (10, 60)
        );
        assert_eq!(
            (d.http.max_connections, d.http.max_connections_per_ip),
            (4096, 256)
        );
        assert_eq!(d.metrics.listen, None, "no metrics listener by default");
        let env = vec![
            (
                "LANGUARD_HTTP_HEADER_TIMEOUT_SECS".to_owned(),
                "5".to_owned(),
            ),
            (
                "LANGUARD_HTTP_IDLE_TIMEOUT_SECS".to_owned(),
                "30".to_owned(),
            ),
            ("LANGUARD_HTTP_MAX_CONNECTIONS".to_owned(), "100".to_owned()),
            (
                "LANGUARD_HTTP_MAX_CONNECTIONS_PER_IP".to_owned(),
                "0".to_owned(),
            ),
            (
                "LANGUARD_METRICS_LISTEN".to_owned(),
                "127.0.0.1:9464".to_owned(),
            ),
            (
                "LANGUARD_METRICS_TOKEN".to_owned(),
                "scrape-token-0123456789".to_owned(),
            ),
        ];
        let c = Config::load_from(None, &env, &Overrides::default()).unwrap();
        assert_eq!(c.http.header_timeout_secs, 5);
        assert_eq!(c.http.idle_timeout_secs, 30);
        assert_eq!(c.http.max_connections, 100);
        assert_eq!(c.http.max_connections_per_ip, 0);
        assert_eq!(c.metrics.listen.map(|a| a.port()), Some(9464));
        let dump = c.dump();
        assert!(
            dump.contains("[http]") && dump.contains("idle_timeout_secs = 30"),
            "{dump}"
        );
        assert!(dump.contains("listen = \"127.0.0.1:9464\""), "{dump}");
        assert!(!dump.contains("scrape-token"), "{dump}");
        assert!(!format!("{c:?}").contains("scrape-token"));
        let bad = vec![
            (
                "LANGUARD_HTTP_HEADER_TIMEOUT_SECS".to_owned(),
                "0".to_owned(),
            ),
            ("LANGUARD_HTTP_MAX_CONNECTIONS".to_owned(), "0".to_owned()),
            ("LANGUARD_METRICS_TOKEN".to_owned(), "short".to_owned()),
            (
                "LANGUARD_METRICS_LISTEN".to_owned(),
                "127.0.0.1:8080".to_owned(),
            ),
        ];
        let err = Config::load_from(None, &bad, &Overrides::default()).unwrap_err();
        assert_eq!(err.0.len(), 4, "{err}");
    }
}
