//! Hosts and servers: CRUD with derived-port conflict checks per host.

use languard_shared::arma::config::ServerArch;
use languard_shared::arma::launch::{GamePorts, LaunchError};
use serde_json::json;
use uuid::Uuid;

use super::{App, Ctx};
use crate::error::{Error, FieldError, Result};
use crate::store::{Game, Host, HostOs, HostStatus, NewHost, Server, ServerSpec, StoreError};

/// How a revision was supplied (decides 409 vs 412 on mismatch).
#[derive(Debug, Clone, Copy)]
pub enum Expect {
    /// `revision` in the body.
    Body(i64),
    /// `If-Match` header.
    IfMatch(i64),
    /// `If-Match: *`: any current revision (resolved with [`Expect::against`]).
    Any,
}

impl Expect {
    /// From body revision and an `If-Match` header value (`"<n>"`, `W/"<n>"` or `n`).
    /// `*` matches whatever revision is current (RFC 9110 §13.1.1).
    pub fn from_parts(body: Option<i64>, if_match: Option<&str>) -> Result<Self> {
        if if_match.is_some_and(|h| h.trim() == "*") {
            return Ok(body.map_or(Self::Any, Self::Body));
        }
        if let Some(h) = if_match {
            let v = h.trim().trim_start_matches("W/").trim_matches('"');
            let n = v.parse::<i64>().map_err(|_| {
                Error::PreconditionFailed("If-Match does not name a known revision".into())
            })?;
            if let Some(b) = body
                && b != n
            {
                return Err(Error::BadRequest(
                    "revision in body and If-Match disagree".into(),
                ));
            }
            return Ok(Self::IfMatch(n));
        }
        body.map(Self::Body).ok_or_else(|| {
            Error::PreconditionRequired(
                "send the current revision in the body or an If-Match header".into(),
            )
        })
    }

    /// The expected revision (`-1`, matching nothing, for an unresolved `Any`).
    pub fn value(self) -> i64 {
        match self {
            Self::Body(n) | Self::IfMatch(n) => n,
            Self::Any => -1,
        }
    }

    /// Checks against the current revision: `Any` becomes that revision, a mismatch is
    /// the stale error (409 for a body revision, 412 for `If-Match`).
    pub fn against(self, current: i64) -> Result<Self> {
        match self {
            Self::Any => Ok(Self::IfMatch(current)),
            e if e.value() == current => Ok(e),
            e => Err(e.stale(Some(current))),
        }
    }

    /// The error for a stale revision.
    pub fn stale(self, current: Option<i64>) -> Error {
        let cur = current
            .map(|c| format!(" (current revision is {c})"))
            .unwrap_or_default();
        match self {
            Self::Body(_) => Error::Conflict(format!(
                "the resource was changed by someone else{cur}; reload and retry"
            )),
            Self::IfMatch(_) | Self::Any => {
                Error::PreconditionFailed(format!("If-Match does not match the current ETag{cur}"))
            }
        }
    }
}

/// Text that must be non-empty, short, without control characters.
pub fn check_name(field: &str, v: &str, max: usize) -> Option<FieldError> {
    if v.trim().is_empty() || v.chars().count() > max || v.chars().any(char::is_control) {
        Some(FieldError {
            field: field.into(),
            message: format!("must be 1 to {max} characters without control characters"),
        })
    } else {
        None
    }
}

/// The ports a server occupies.
pub fn server_ports(
    game: Game,
    game_port: i64,
    rcon_port: i64,
) -> std::result::Result<Vec<u16>, Vec<FieldError>> {
    let gp = u16::try_from(game_port);
    let rp = u16::try_from(rcon_port);
    let mut errs = Vec::new();
    if gp.is_err() {
        errs.push(FieldError {
            field: "game_port".into(),
            message: "must be 1..=65535".into(),
        });
    }
    if rp.is_err() || rcon_port == 0 {
        errs.push(FieldError {
            field: "rcon_port".into(),
            message: "must be 1..=65535".into(),
        });
    }
    let (Ok(gp), Ok(rp)) = (gp, rp) else {
        return Err(errs);
    };
    if !errs.is_empty() {
        return Err(errs);
    }
    match game {
        Game::Arma3 => GamePorts::new(gp, Some(rp))
            .map(|p| p.reserved_ports())
            .map_err(|e| {
                let field = match e {
                    LaunchError::GamePortRange(_) => "game_port",
                    _ => "rcon_port",
                };
                vec![FieldError {
                    field: field.into(),
                    message: e.to_string(),
                }]
            }),
        Game::Palworld => {
            if gp == 0 {
                Err(vec![FieldError {
                    field: "game_port".into(),
                    message: "must be 1..=65535".into(),
                }])
            } else if gp == rp {
                Err(vec![FieldError {
                    field: "rcon_port".into(),
                    message: "must differ from the game port".into(),
                }])
            } else {
                Ok(vec![gp, rp])
            }
        }
    }
}

/// A store conflict on create/update (another replica may have won the race).
fn conflict(what: &str) -> Error {
    if let Some(p) = what.strip_prefix("port ") {
        Error::Conflict(format!(
            "port {p} is already used by another server on this host"
        ))
    } else if what.contains("name") {
        Error::Conflict("a server with this name exists on this host".into())
    } else {
        Error::Conflict(format!("conflict on {what}"))
    }
}

/// The Arma 3 executables the agent starts by default (its `DEFAULT_ALLOWED_EXECUTABLES`,
/// compared exactly with the file name); anything else it would refuse at launch.
pub const ARMA3_EXECUTABLES: &[&str] = &[
    "arma3server",
    "arma3server_x64",
    "arma3server.exe",
    "arma3server_x64.exe",
];

/// Absolute on the agent's host, Unix (`/…`) or Windows (`C:\…`, `C:/…`, `\\server\…`).
fn is_absolute_path(p: &str) -> bool {
    let b = p.as_bytes();
    p.starts_with('/')
        || p.starts_with("\\\\")
        || (b.len() >= 3
            && b[0].is_ascii_alphabetic()
            && b[1] == b':'
            && matches!(b[2], b'/' | b'\\'))
}

/// The last path component, with `/` or `\` as separators.
fn file_name(p: &str) -> &str {
    p.rsplit(['/', '\\']).next().unwrap_or(p)
}

fn validate_spec(spec: &ServerSpec) -> Result<Vec<u16>> {
    let mut errs = Vec::new();
    errs.extend(check_name("name", &spec.name, 64));
    let exe = &spec.executable_path;
    if exe.is_empty() || exe.len() > 1024 || exe.chars().any(char::is_control) {
        errs.push(FieldError {
            field: "executable_path".into(),
            message: "must be 1 to 1024 characters without control characters".into(),
        });
    } else if !is_absolute_path(exe) {
        errs.push(FieldError {
            field: "executable_path".into(),
            message: "must be an absolute path (the agent refuses relative executables)".into(),
        });
    } else if spec.game == Game::Arma3
        && (!ARMA3_EXECUTABLES.contains(&file_name(exe))
            || ServerArch::from_executable(exe).is_none())
    {
        errs.push(FieldError {
            field: "executable_path".into(),
            message: format!(
                "the file name must be one of {}",
                ARMA3_EXECUTABLES.join(", ")
            ),
        });
    }
    let ports = match server_ports(spec.game, spec.game_port, spec.rcon_port) {
        Ok(p) => p,
        Err(mut e) => {
            errs.append(&mut e);
            Vec::new()
        }
    };
    if errs.is_empty() {
        Ok(ports)
    } else {
        Err(Error::Validation(errs))
    }
}

impl App {
    /// All hosts.
    pub async fn list_hosts(&self) -> Result<Vec<Host>> {
        Ok(self.store.list_hosts().await?)
    }

    /// One host.
    pub async fn get_host(&self, id: Uuid) -> Result<Host> {
        self.store
            .get_host(id)
            .await?
            .ok_or(Error::NotFound("host"))
    }

    /// Registers a host (its agent enrolls later).
    pub async fn create_host(&self, ctx: &Ctx, name: &str, os: &str) -> Result<Host> {
        let mut errs: Vec<FieldError> = check_name("name", name, 64).into_iter().collect();
        let parsed = os.parse::<HostOs>();
        if parsed.is_err() {
            errs.push(FieldError {
                field: "os".into(),
                message: "must be linux or windows".into(),
            });
        }
        let (true, Ok(os_kind)) = (errs.is_empty(), parsed) else {
            return Err(Error::Validation(errs));
        };
        let h = self
            .store
            .create_host(NewHost {
                name: name.into(),
                agent_id: None,
                os: os_kind,
                status: HostStatus::Pending,
            })
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => Error::Conflict("a host with this name exists".into()),
                e => e.into(),
            })?;
        self.audit(
            ctx,
            "host.create",
            "host",
            Some(h.id.to_string()),
            json!({"name": name, "os": os}),
        )
        .await;
        Ok(h)
    }

    /// Renames a host / changes its OS.
    pub async fn update_host(&self, ctx: &Ctx, id: Uuid, name: &str, os: &str) -> Result<Host> {
        let mut errs: Vec<FieldError> = check_name("name", name, 64).into_iter().collect();
        let parsed = os.parse::<HostOs>();
        if parsed.is_err() {
            errs.push(FieldError {
                field: "os".into(),
                message: "must be linux or windows".into(),
            });
        }
        let (true, Ok(os_kind)) = (errs.is_empty(), parsed) else {
            return Err(Error::Validation(errs));
        };
        let mut h = self.get_host(id).await?;
        h.name = name.into();
        h.os = os_kind;
        let h = self.store.update_host(&h).await.map_err(|e| match e {
            StoreError::Conflict(_) => Error::Conflict("a host with this name exists".into()),
            e => e.into(),
        })?;
        self.audit(
            ctx,
            "host.update",
            "host",
            Some(id.to_string()),
            json!({"name": name, "os": os}),
        )
        .await;
        Ok(h)
    }

    /// Deletes a host without servers.
    pub async fn delete_host(&self, ctx: &Ctx, id: Uuid) -> Result<()> {
        let host = self.get_host(id).await?;
        self.store.delete_host(id).await.map_err(|e| match e {
            StoreError::Conflict(_) => Error::Conflict("the host still has servers".into()),
            e => e.into(),
        })?;
        // Its agent's certificate must not open a link any more.
        if let Some(agent) = host
            .agent_id
            .as_deref()
            .and_then(|a| Uuid::parse_str(a).ok())
        {
            self.fleet.revoke(agent);
        }
        self.fleet.disconnect(id);
        self.audit(ctx, "host.delete", "host", Some(id.to_string()), json!({}))
            .await;
        Ok(())
    }

    /// Servers, optionally of one host.
    pub async fn list_servers(&self, host: Option<Uuid>) -> Result<Vec<Server>> {
        Ok(self.store.list_servers(host).await?)
    }

    /// One server.
    pub async fn get_server(&self, id: Uuid) -> Result<Server> {
        self.store
            .get_server(id)
            .await?
            .ok_or(Error::NotFound("server"))
    }

    async fn check_port_conflicts(
        &self,
        host: Uuid,
        me: Option<Uuid>,
        spec: &ServerSpec,
        ports: &[u16],
    ) -> Result<()> {
        for other in self.store.list_servers_on_host(host).await? {
            if Some(other.id) == me {
                continue;
            }
            let theirs =
                server_ports(other.game, other.game_port, other.rcon_port).unwrap_or_default();
            if let Some(p) = ports.iter().find(|p| theirs.contains(p)) {
                return Err(Error::Conflict(format!(
                    "port {p} is already used by server {:?} on this host (it reserves {})",
                    other.name,
                    theirs
                        .iter()
                        .map(u16::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            if other.name.eq_ignore_ascii_case(&spec.name) {
                return Err(Error::Conflict(
                    "a server with this name exists on this host".into(),
                ));
            }
        }
        Ok(())
    }

    /// Creates a server on a host.
    pub async fn create_server(&self, ctx: &Ctx, host: Uuid, spec: ServerSpec) -> Result<Server> {
        let ports = validate_spec(&spec)?;
        let _guard = self.fleet_lock.lock().await;
        self.get_host(host)
            .await
            .map_err(|_| Error::field("host_id", "no such host"))?;
        self.check_port_conflicts(host, None, &spec, &ports).await?;
        let s = self
            .store
            .create_server(host, spec, &ports)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(w) => conflict(&w),
                e => e.into(),
            })?;
        drop(_guard);
        self.audit(ctx, "server.create", "server", Some(s.id.to_string()), json!({"name": s.name, "host_id": host, "game_port": s.game_port, "rcon_port": s.rcon_port})).await;
        Ok(s)
    }

    /// Replaces a server's spec (optimistic concurrency).
    pub async fn update_server(
        &self,
        ctx: &Ctx,
        id: Uuid,
        expect: Expect,
        spec: ServerSpec,
    ) -> Result<Server> {
        let ports = validate_spec(&spec)?;
        let _guard = self.fleet_lock.lock().await;
        let cur = self.get_server(id).await?;
        let expect = expect.against(cur.revision)?;
        self.check_port_conflicts(cur.host_id, Some(id), &spec, &ports)
            .await?;
        let s = self
            .store
            .update_server(id, expect.value(), spec, &ports)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(w) if w.contains("revision") => expect.stale(None),
                StoreError::Conflict(w) => conflict(&w),
                e => e.into(),
            })?;
        drop(_guard);
        self.audit(
            ctx,
            "server.update",
            "server",
            Some(id.to_string()),
            json!({"name": s.name, "revision": s.revision}),
        )
        .await;
        Ok(s)
    }

    /// Deletes a server and its history.
    pub async fn delete_server(&self, ctx: &Ctx, id: Uuid) -> Result<()> {
        let s = self.get_server(id).await?;
        self.store.delete_server(id).await?;
        // Best effort: an online agent stops and forgets it now; an offline one at its
        // next connect (reconciliation).
        if self.fleet.is_online(s.host_id) {
            let app_host = s.host_id;
            if let Ok(sid) = crate::service::lifecycle::wire_id(id) {
                let _ = self
                    .ask_agent(
                        app_host,
                        languard_shared::wire::request::Request::Stop {
                            server: sid.clone(),
                        },
                    )
                    .await;
                let _ = self
                    .ask_agent(
                        app_host,
                        languard_shared::wire::request::Request::RemoveServer { server: sid },
                    )
                    .await;
            }
        }
        self.audit(
            ctx,
            "server.delete",
            "server",
            Some(id.to_string()),
            json!({"name": s.name}),
        )
        .await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_star_matches_the_current_revision() {
        let e = Expect::from_parts(None, Some("*")).unwrap();
        assert!(matches!(e, Expect::Any));
        assert_eq!(e.against(7).unwrap().value(), 7);
        // With a body revision, the body decides.
        let e = Expect::from_parts(Some(3), Some(" * ")).unwrap();
        assert!(e.against(7).is_err());
        assert_eq!(e.against(3).unwrap().value(), 3);
        // A numbered If-Match still has to match.
        let e = Expect::from_parts(None, Some("\"4\"")).unwrap();
        assert!(matches!(e.against(5), Err(Error::PreconditionFailed(_))));
        assert!(Expect::from_parts(None, Some("\"x\"")).is_err());
    }

    #[test]
    fn executable_paths_match_the_agent() {
        for ok in [
            "/srv/arma3/arma3server_x64",
            "/srv/arma3/arma3server",
            "C:\\arma3\\arma3server_x64.exe",
            "D:/arma3/arma3server.exe",
        ] {
            assert!(is_absolute_path(ok), "{ok}");
            assert!(ARMA3_EXECUTABLES.contains(&file_name(ok)), "{ok}");
        }
        for bad in [
            "arma3server_x64",
            "./arma3server",
            "srv/arma3server",
            "C:arma3server.exe",
        ] {
            assert!(!is_absolute_path(bad), "{bad}");
        }
        for bad in [
            "/srv/arma3serverprofiling_x64",
            "/srv/arma3serverprofiling.exe",
            "/srv/Arma3Server_x64",
            "/srv/arma3server_x64.sh",
        ] {
            assert!(!ARMA3_EXECUTABLES.contains(&file_name(bad)), "{bad}");
        }
    }
}
