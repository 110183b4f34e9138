//! Hosts and servers: CRUD with derived-port conflict checks per host.

use serde_json::json;
use uuid::Uuid;

use super::expect::Expect;
use super::{App, Ctx};
use crate::error::{Error, FieldError, Result};
use crate::games;
use crate::store::{Host, HostOs, HostStatus, NewHost, Server, ServerSpec, StoreError};

/// A host's name and OS, checked together (every problem reported at once).
fn check_host(name: &str, os: &str) -> Result<HostOs> {
    let mut errs: Vec<FieldError> = check_name("name", name, 64).into_iter().collect();
    let parsed = os.parse::<HostOs>().ok();
    if parsed.is_none() {
        errs.push(FieldError {
            field: "os".into(),
            message: "must be linux or windows".into(),
        });
    }
    match parsed {
        Some(os) if errs.is_empty() => Ok(os),
        _ => Err(Error::Validation(errs)),
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

/// Checks a server's fields against its game's registry entry; the ports it would
/// occupy. A game Languard cannot run is refused here, so no such server is created.
fn validate_spec(spec: &ServerSpec) -> Result<Vec<u16>> {
    let game = games::require(spec.game)?;
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
    } else if !game.accepts_executable(file_name(exe)) {
        errs.push(FieldError {
            field: "executable_path".into(),
            message: format!(
                "the file name must be one of {} (the agent's allow-list for {})",
                game.executables().join(", "),
                game.kind().title()
            ),
        });
    }
    let ports = match game.ports(spec.game_port, spec.rcon_port) {
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

/// Which program the agent runs is an admin's decision: an operator may edit a
/// server's spec but not point it at another program on the host. Creating a server
/// is admin-only already; an update keeping the path unchanged is fine for operators.
fn check_executable_change(ctx: &Ctx, current: &str, requested: &str) -> Result<()> {
    if current == requested || ctx.who()?.role == crate::auth::Role::Admin {
        return Ok(());
    }
    Err(Error::Forbidden(
        "changing executable_path needs the admin role (it decides which program runs on \
         the host); leave it unchanged to update the rest"
            .into(),
    ))
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
        let os = check_host(name, os)?;
        let h = self
            .store
            .create_host(NewHost {
                name: name.into(),
                agent_id: None,
                os,
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
        let os = check_host(name, os)?;
        let mut h = self.get_host(id).await?;
        h.name = name.into();
        h.os = os;
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
            let theirs = games::reserved_ports(other.game, other.game_port, other.rcon_port);
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
        check_executable_change(ctx, &cur.executable_path, &spec.executable_path)?;
        let expect = expect.against(cur.revision)?;
        self.check_port_conflicts(cur.host_id, Some(id), &spec, &ports)
            .await?;
        let s = self
            .store
            .update_server(id, expect.value(), spec, &ports)
            .await
            .map_err(|e| match e {
                StoreError::StaleRevision => expect.stale(None),
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
    fn executable_paths_are_absolute_on_either_os() {
        for (ok, name) in [
            ("/srv/game/server_x64", "server_x64"),
            ("C:\\game\\server_x64.exe", "server_x64.exe"),
            ("D:/game/server.exe", "server.exe"),
            ("\\\\nas\\game\\server.exe", "server.exe"),
        ] {
            assert!(is_absolute_path(ok), "{ok}");
            assert_eq!(file_name(ok), name, "{ok}");
        }
        for bad in ["server_x64", "./server", "srv/server", "C:server.exe"] {
            assert!(!is_absolute_path(bad), "{bad}");
        }
    }
}
