//! An in-memory [`Store`] for printing the spec and for tests while no database is needed.
//! Covers users, tokens, hosts, servers, configs and audit; the time-series, mods,
//! players and schedules methods answer `Unavailable`.

use std::sync::Mutex;

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::store::*;

#[derive(Default)]
struct Inner {
    users: Vec<User>,
    tokens_valid_after: std::collections::HashMap<Uuid, i64>,
    refresh: Vec<RefreshToken>,
    api: Vec<ApiToken>,
    hosts: Vec<Host>,
    servers: Vec<Server>,
    sections: Vec<(Uuid, StoredSection)>,
    versions: Vec<ConfigVersion>,
    audit: Vec<AuditEvent>,
}

/// Whether `id` is an enabled admin and no other enabled admin exists.
fn last_enabled_admin(users: &[User], id: Uuid) -> bool {
    users
        .iter()
        .any(|u| u.id == id && u.role == Role::Admin && !u.disabled)
        && !users
            .iter()
            .any(|u| u.id != id && u.role == Role::Admin && !u.disabled)
}

/// The in-memory store.
#[derive(Default)]
pub struct MemStore(Mutex<Inner>);

fn lock(m: &Mutex<Inner>) -> StoreResult<std::sync::MutexGuard<'_, Inner>> {
    m.lock()
        .map_err(|_| StoreError::Unavailable("poisoned".into()))
}

/// The `server_ports` guard of the SQL stores.
fn port_conflict(servers: &[Server], s: &Server) -> StoreResult<()> {
    let mine = reserved_ports(s.game, s.game_port, s.rcon_port);
    for o in servers
        .iter()
        .filter(|o| o.host_id == s.host_id && o.id != s.id)
    {
        let theirs = reserved_ports(o.game, o.game_port, o.rcon_port);
        if let Some(p) = mine.iter().find(|p| theirs.contains(p)) {
            return Err(StoreError::Conflict(format!("port {p}")));
        }
    }
    Ok(())
}

fn na<T>() -> StoreResult<T> {
    Err(StoreError::Unavailable(
        "not supported by the in-memory store".into(),
    ))
}

#[async_trait]
impl Store for MemStore {
    fn backend(&self) -> &'static str {
        "memory"
    }
    async fn ping(&self) -> StoreResult<()> {
        Ok(())
    }
    async fn create_user(&self, new: NewUser) -> StoreResult<User> {
        let mut g = lock(&self.0)?;
        if g.users
            .iter()
            .any(|u| u.username.eq_ignore_ascii_case(&new.username))
        {
            return Err(StoreError::Conflict("users.username".into()));
        }
        let t = now();
        let u = User {
            id: new_id(),
            username: new.username,
            password_hash: new.password_hash,
            role: new.role,
            must_change_password: new.must_change_password,
            disabled: false,
            created_at: t,
            updated_at: t,
        };
        g.users.push(u.clone());
        Ok(u)
    }
    async fn get_user_by_id(&self, id: Uuid) -> StoreResult<Option<User>> {
        Ok(lock(&self.0)?.users.iter().find(|u| u.id == id).cloned())
    }
    async fn get_user_by_username(&self, username: &str) -> StoreResult<Option<User>> {
        Ok(lock(&self.0)?
            .users
            .iter()
            .find(|u| u.username.eq_ignore_ascii_case(username))
            .cloned())
    }
    async fn list_users(&self) -> StoreResult<Vec<User>> {
        let mut v = lock(&self.0)?.users.clone();
        v.sort_by_key(|u| u.username.to_lowercase());
        Ok(v)
    }
    async fn update_user(&self, id: Uuid, up: UserUpdate) -> StoreResult<User> {
        let mut g = lock(&self.0)?;
        let removes_admin = up.role.is_some_and(|r| r != Role::Admin) || up.disabled == Some(true);
        if removes_admin && last_enabled_admin(&g.users, id) {
            return Err(StoreError::Conflict(LAST_ADMIN.into()));
        }
        let u = g
            .users
            .iter_mut()
            .find(|u| u.id == id)
            .ok_or(StoreError::NotFound)?;
        if let Some(r) = up.role {
            u.role = r;
        }
        if let Some(d) = up.disabled {
            u.disabled = d;
        }
        if let Some(m) = up.must_change_password {
            u.must_change_password = m;
        }
        if let Some(h) = up.password_hash {
            u.password_hash = h;
        }
        u.updated_at = now();
        Ok(u.clone())
    }
    async fn delete_user(&self, id: Uuid) -> StoreResult<()> {
        let mut g = lock(&self.0)?;
        if last_enabled_admin(&g.users, id) {
            return Err(StoreError::Conflict(LAST_ADMIN.into()));
        }
        g.tokens_valid_after.remove(&id);
        let n = g.users.len();
        g.users.retain(|u| u.id != id);
        if g.users.len() == n {
            return Err(StoreError::NotFound);
        }
        g.refresh.retain(|t| t.user_id != id);
        g.api.retain(|t| t.user_id != id);
        Ok(())
    }
    async fn count_users(&self) -> StoreResult<i64> {
        Ok(lock(&self.0)?.users.len() as i64)
    }
    async fn tokens_valid_after(&self, id: Uuid) -> StoreResult<Option<i64>> {
        let g = lock(&self.0)?;
        Ok(g.users
            .iter()
            .any(|u| u.id == id)
            .then(|| g.tokens_valid_after.get(&id).copied().unwrap_or(0)))
    }
    async fn bump_tokens_valid_after(&self, id: Uuid, at_us: i64) -> StoreResult<()> {
        let mut g = lock(&self.0)?;
        if !g.users.iter().any(|u| u.id == id) {
            return Err(StoreError::NotFound);
        }
        let v = g.tokens_valid_after.entry(id).or_insert(0);
        *v = (*v).max(at_us);
        Ok(())
    }
    async fn insert_refresh_token(&self, new: NewRefreshToken) -> StoreResult<RefreshToken> {
        let t = RefreshToken {
            id: new_id(),
            user_id: new.user_id,
            family_id: new.family_id,
            token_hash: new.token_hash,
            expires_at: new.expires_at,
            created_at: now(),
            used_at: None,
            revoked_at: None,
            ip: new.ip,
            user_agent: new.user_agent,
        };
        lock(&self.0)?.refresh.push(t.clone());
        Ok(t)
    }
    async fn get_refresh_token_by_hash(&self, h: &str) -> StoreResult<Option<RefreshToken>> {
        Ok(lock(&self.0)?
            .refresh
            .iter()
            .find(|t| t.token_hash == h)
            .cloned())
    }
    async fn mark_refresh_token_used(&self, id: Uuid, at: OffsetDateTime) -> StoreResult<bool> {
        let mut g = lock(&self.0)?;
        match g.refresh.iter_mut().find(|t| t.id == id) {
            Some(t) if t.used_at.is_none() && t.revoked_at.is_none() => {
                t.used_at = Some(at);
                Ok(true)
            }
            _ => Ok(false),
        }
    }
    async fn revoke_refresh_family(&self, family: Uuid, at: OffsetDateTime) -> StoreResult<u64> {
        let mut g = lock(&self.0)?;
        let mut n = 0;
        for t in g
            .refresh
            .iter_mut()
            .filter(|t| t.family_id == family && t.revoked_at.is_none())
        {
            t.revoked_at = Some(at);
            n += 1;
        }
        Ok(n)
    }
    async fn revoke_user_refresh_tokens(&self, user: Uuid, at: OffsetDateTime) -> StoreResult<u64> {
        let mut g = lock(&self.0)?;
        let mut n = 0;
        for t in g
            .refresh
            .iter_mut()
            .filter(|t| t.user_id == user && t.revoked_at.is_none())
        {
            t.revoked_at = Some(at);
            n += 1;
        }
        Ok(n)
    }
    async fn prune_refresh_tokens_before(&self, before: OffsetDateTime) -> StoreResult<u64> {
        let mut g = lock(&self.0)?;
        let n = g.refresh.len();
        g.refresh.retain(|t| t.expires_at >= before);
        Ok((n - g.refresh.len()) as u64)
    }
    async fn insert_api_token(&self, new: NewApiToken) -> StoreResult<ApiToken> {
        let t = ApiToken {
            id: new_id(),
            user_id: new.user_id,
            name: new.name,
            token_hash: new.token_hash,
            prefix: new.prefix,
            role: new.role,
            created_at: now(),
            last_used_at: None,
            expires_at: new.expires_at,
            revoked_at: None,
        };
        lock(&self.0)?.api.push(t.clone());
        Ok(t)
    }
    async fn get_api_token_by_hash(&self, h: &str) -> StoreResult<Option<ApiToken>> {
        Ok(lock(&self.0)?
            .api
            .iter()
            .find(|t| t.token_hash == h)
            .cloned())
    }
    async fn list_api_tokens_for_user(&self, user: Uuid) -> StoreResult<Vec<ApiToken>> {
        Ok(lock(&self.0)?
            .api
            .iter()
            .filter(|t| t.user_id == user)
            .cloned()
            .collect())
    }
    async fn revoke_api_token(&self, id: Uuid, at: OffsetDateTime) -> StoreResult<()> {
        let mut g = lock(&self.0)?;
        let t = g
            .api
            .iter_mut()
            .find(|t| t.id == id)
            .ok_or(StoreError::NotFound)?;
        t.revoked_at = Some(at);
        Ok(())
    }
    async fn touch_api_token(&self, id: Uuid, at: OffsetDateTime) -> StoreResult<()> {
        let mut g = lock(&self.0)?;
        if let Some(t) = g.api.iter_mut().find(|t| t.id == id) {
            t.last_used_at = Some(at);
        }
        Ok(())
    }
    async fn create_host(&self, new: NewHost) -> StoreResult<Host> {
        let mut g = lock(&self.0)?;
        if g.hosts.iter().any(|h| h.name == new.name) {
            return Err(StoreError::Conflict("hosts.name".into()));
        }
        let h = Host {
            id: new_id(),
            name: new.name,
            agent_id: new.agent_id,
            os: new.os,
            status: new.status,
            last_seen_at: None,
            created_at: now(),
            revoked_at: None,
            agent_version: None,
            acked_seq: 0,
        };
        g.hosts.push(h.clone());
        Ok(h)
    }
    async fn get_host(&self, id: Uuid) -> StoreResult<Option<Host>> {
        Ok(lock(&self.0)?.hosts.iter().find(|h| h.id == id).cloned())
    }
    async fn list_hosts(&self) -> StoreResult<Vec<Host>> {
        Ok(lock(&self.0)?.hosts.clone())
    }
    async fn update_host(&self, host: &Host) -> StoreResult<Host> {
        let mut g = lock(&self.0)?;
        let h = g
            .hosts
            .iter_mut()
            .find(|h| h.id == host.id)
            .ok_or(StoreError::NotFound)?;
        *h = host.clone();
        Ok(h.clone())
    }
    async fn delete_host(&self, id: Uuid) -> StoreResult<()> {
        let mut g = lock(&self.0)?;
        if g.servers.iter().any(|s| s.host_id == id) {
            return Err(StoreError::Conflict("servers.host_id".into()));
        }
        g.hosts.retain(|h| h.id != id);
        Ok(())
    }
    async fn create_server(&self, host_id: Uuid, spec: ServerSpec) -> StoreResult<Server> {
        let t = now();
        let s = Server {
            id: new_id(),
            host_id,
            name: spec.name,
            game: spec.game,
            game_port: spec.game_port,
            rcon_port: spec.rcon_port,
            executable_path: spec.executable_path,
            restart_policy: spec.restart_policy,
            desired_running: spec.desired_running,
            revision: 1,
            config_revision: 0,
            created_at: t,
            updated_at: t,
        };
        let mut g = lock(&self.0)?;
        port_conflict(&g.servers, &s)?;
        g.servers.push(s.clone());
        Ok(s)
    }
    async fn count_servers(&self, host: Option<Uuid>) -> StoreResult<i64> {
        Ok(lock(&self.0)?
            .servers
            .iter()
            .filter(|s| host.is_none_or(|h| s.host_id == h))
            .count() as i64)
    }
    async fn get_server(&self, id: Uuid) -> StoreResult<Option<Server>> {
        Ok(lock(&self.0)?.servers.iter().find(|s| s.id == id).cloned())
    }
    async fn list_servers(&self, host: Option<Uuid>) -> StoreResult<Vec<Server>> {
        let mut v: Vec<Server> = lock(&self.0)?
            .servers
            .iter()
            .filter(|s| host.is_none_or(|h| s.host_id == h))
            .cloned()
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(v)
    }
    async fn list_servers_on_host(&self, host: Uuid) -> StoreResult<Vec<Server>> {
        self.list_servers(Some(host)).await
    }
    async fn update_server(
        &self,
        id: Uuid,
        expected: i64,
        spec: ServerSpec,
    ) -> StoreResult<Server> {
        let mut g = lock(&self.0)?;
        let s = g
            .servers
            .iter_mut()
            .find(|s| s.id == id)
            .ok_or(StoreError::NotFound)?;
        if s.revision != expected {
            return Err(StoreError::Conflict("revision".into()));
        }
        let mut next = s.clone();
        next.game = spec.game;
        next.game_port = spec.game_port;
        next.rcon_port = spec.rcon_port;
        port_conflict(&g.servers, &next)?;
        let s = g
            .servers
            .iter_mut()
            .find(|s| s.id == id)
            .ok_or(StoreError::NotFound)?;
        s.name = spec.name;
        s.game = spec.game;
        s.game_port = spec.game_port;
        s.rcon_port = spec.rcon_port;
        s.executable_path = spec.executable_path;
        s.restart_policy = spec.restart_policy;
        s.desired_running = spec.desired_running;
        s.revision += 1;
        s.updated_at = now();
        Ok(s.clone())
    }
    async fn delete_server(&self, id: Uuid) -> StoreResult<()> {
        let mut g = lock(&self.0)?;
        let n = g.servers.len();
        g.servers.retain(|s| s.id != id);
        if n == g.servers.len() {
            return Err(StoreError::NotFound);
        }
        g.sections.retain(|(s, _)| *s != id);
        g.versions.retain(|v| v.server_id != id);
        Ok(())
    }
    async fn get_config(&self, server_id: Uuid) -> StoreResult<ServerConfig> {
        let g = lock(&self.0)?;
        let s = g
            .servers
            .iter()
            .find(|s| s.id == server_id)
            .ok_or(StoreError::NotFound)?;
        Ok(ServerConfig {
            server_id,
            revision: s.config_revision,
            sections: g
                .sections
                .iter()
                .filter(|(id, _)| *id == server_id)
                .map(|(_, s)| s.clone())
                .collect(),
        })
    }
    async fn write_config(
        &self,
        server_id: Uuid,
        expected: i64,
        sections: Vec<ConfigSection>,
        remove: Vec<ConfigSectionKind>,
        author: Option<Uuid>,
        comment: Option<String>,
    ) -> StoreResult<ConfigVersion> {
        let mut g = lock(&self.0)?;
        let s = g
            .servers
            .iter_mut()
            .find(|s| s.id == server_id)
            .ok_or(StoreError::NotFound)?;
        if s.config_revision != expected {
            return Err(StoreError::Conflict("config_revision".into()));
        }
        s.config_revision += 1;
        let rev = s.config_revision;
        let t = now();
        g.sections
            .retain(|(id, x)| !(*id == server_id && remove.contains(&x.section.section)));
        for sec in sections {
            g.sections
                .retain(|(id, x)| !(*id == server_id && x.section.section == sec.section));
            g.sections.push((
                server_id,
                StoredSection {
                    section: sec,
                    revision: rev,
                    updated_at: t,
                },
            ));
        }
        let snapshot = g
            .sections
            .iter()
            .filter(|(id, _)| *id == server_id)
            .map(|(_, s)| s.section.clone())
            .collect();
        let v = ConfigVersion {
            id: new_id(),
            server_id,
            version: rev,
            author_user_id: author,
            created_at: t,
            comment,
            sections: snapshot,
        };
        g.versions.push(v.clone());
        Ok(v)
    }
    async fn list_config_versions(
        &self,
        server_id: Uuid,
        limit: i64,
    ) -> StoreResult<Vec<ConfigVersionSummary>> {
        let g = lock(&self.0)?;
        Ok(g.versions
            .iter()
            .rev()
            .filter(|v| v.server_id == server_id)
            .take(limit.max(0) as usize)
            .map(|v| ConfigVersionSummary {
                id: v.id,
                server_id,
                version: v.version,
                author_user_id: v.author_user_id,
                created_at: v.created_at,
                comment: v.comment.clone(),
            })
            .collect())
    }
    async fn get_config_version(
        &self,
        server_id: Uuid,
        version: i64,
    ) -> StoreResult<Option<ConfigVersion>> {
        Ok(lock(&self.0)?
            .versions
            .iter()
            .find(|v| v.server_id == server_id && v.version == version)
            .cloned())
    }
    async fn create_mod(&self, _: NewMod) -> StoreResult<Mod> {
        na()
    }
    async fn get_mod(&self, _: Uuid) -> StoreResult<Option<Mod>> {
        na()
    }
    async fn list_mods(&self) -> StoreResult<Vec<Mod>> {
        na()
    }
    async fn delete_mod(&self, _: Uuid) -> StoreResult<()> {
        na()
    }
    async fn set_server_mods(&self, _: Uuid, _: Vec<ServerMod>) -> StoreResult<()> {
        na()
    }
    async fn list_server_mods(&self, _: Uuid) -> StoreResult<Vec<ServerModEntry>> {
        na()
    }
    async fn upsert_player(
        &self,
        _: &str,
        _: Option<&str>,
        _: &str,
        _: OffsetDateTime,
    ) -> StoreResult<Player> {
        na()
    }
    async fn get_player(&self, _: Uuid) -> StoreResult<Option<Player>> {
        na()
    }
    async fn get_player_by_guid(&self, _: &str) -> StoreResult<Option<Player>> {
        na()
    }
    async fn list_players(&self, _: Option<&str>, _: i64) -> StoreResult<Vec<Player>> {
        na()
    }
    async fn open_player_session(
        &self,
        _: Uuid,
        _: Uuid,
        _: OffsetDateTime,
        _: Option<&str>,
    ) -> StoreResult<PlayerSession> {
        na()
    }
    async fn close_player_session(&self, _: Uuid, _: OffsetDateTime) -> StoreResult<()> {
        na()
    }
    async fn close_open_sessions(&self, _: Uuid, _: OffsetDateTime) -> StoreResult<u64> {
        na()
    }
    async fn list_player_sessions(&self, _: SessionQuery) -> StoreResult<Vec<PlayerSession>> {
        na()
    }
    async fn prune_player_sessions_before(&self, _: OffsetDateTime) -> StoreResult<u64> {
        na()
    }
    async fn create_ban(&self, _: NewBan) -> StoreResult<Ban> {
        na()
    }
    async fn get_ban(&self, _: Uuid) -> StoreResult<Option<Ban>> {
        na()
    }
    async fn list_active_bans(&self, _: Option<Uuid>, _: OffsetDateTime) -> StoreResult<Vec<Ban>> {
        na()
    }
    async fn remove_ban(&self, _: Uuid, _: OffsetDateTime) -> StoreResult<()> {
        na()
    }
    async fn insert_audit(&self, e: NewAuditEvent) -> StoreResult<AuditEvent> {
        let ev = AuditEvent {
            id: new_id(),
            ts: e.ts.unwrap_or_else(now),
            actor_user_id: e.actor_user_id,
            actor_kind: e.actor_kind,
            action: e.action,
            target_kind: e.target_kind,
            target_id: e.target_id,
            ip: e.ip,
            details: e.details,
        };
        lock(&self.0)?.audit.push(ev.clone());
        Ok(ev)
    }
    async fn query_audit(&self, q: AuditQuery) -> StoreResult<Page<AuditEvent, AuditCursor>> {
        let g = lock(&self.0)?;
        let limit = q.limit.clamp(1, 1000) as usize;
        let mut items: Vec<AuditEvent> = g
            .audit
            .iter()
            .rev()
            .filter(|e| q.action.as_ref().is_none_or(|a| &e.action == a))
            .filter(|e| q.actor_user_id.is_none_or(|a| e.actor_user_id == Some(a)))
            .filter(|e| {
                q.target_kind
                    .as_ref()
                    .is_none_or(|a| e.target_kind.as_ref() == Some(a))
            })
            .filter(|e| {
                q.target_id
                    .as_ref()
                    .is_none_or(|a| e.target_id.as_ref() == Some(a))
            })
            .filter(|e| q.before.is_none_or(|c| (e.ts, e.id) < (c.ts, c.id)))
            .take(limit + 1)
            .cloned()
            .collect();
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|e| AuditCursor { ts: e.ts, id: e.id })
        } else {
            None
        };
        Ok(Page { items, next })
    }
    async fn prune_retention(&self, c: RetentionCutoffs) -> StoreResult<Option<PruneReport>> {
        let mut g = lock(&self.0)?;
        let (a, r) = (g.audit.len(), g.refresh.len());
        g.audit.retain(|e| e.ts >= c.audit_before);
        g.refresh
            .retain(|t| t.expires_at >= c.refresh_tokens_before);
        Ok(Some(PruneReport {
            audit: (a - g.audit.len()) as u64,
            refresh_tokens: (r - g.refresh.len()) as u64,
            ..PruneReport::default()
        }))
    }
    async fn prune_audit_before(&self, _: OffsetDateTime) -> StoreResult<u64> {
        Ok(0)
    }
    async fn insert_log_batch(&self, _: Vec<NewLogLine>) -> StoreResult<u64> {
        na()
    }
    async fn query_logs(&self, _: LogQuery) -> StoreResult<Page<LogLine, LogCursor>> {
        na()
    }
    async fn prune_logs_before(&self, _: OffsetDateTime) -> StoreResult<u64> {
        na()
    }
    async fn insert_metrics_batch(&self, _: Vec<NewMetricSample>) -> StoreResult<u64> {
        na()
    }
    async fn query_metrics(&self, _: MetricQuery) -> StoreResult<Vec<MetricSample>> {
        na()
    }
    async fn prune_metrics_before(&self, _: OffsetDateTime) -> StoreResult<u64> {
        na()
    }
    async fn create_schedule(&self, _: NewSchedule) -> StoreResult<Schedule> {
        na()
    }
    async fn get_schedule(&self, _: Uuid) -> StoreResult<Option<Schedule>> {
        na()
    }
    async fn list_schedules(&self, _: Option<Uuid>) -> StoreResult<Vec<Schedule>> {
        na()
    }
    async fn update_schedule(&self, _: &Schedule) -> StoreResult<Schedule> {
        na()
    }
    async fn delete_schedule(&self, _: Uuid) -> StoreResult<()> {
        na()
    }
    async fn due_schedules(&self, _: OffsetDateTime, _: i64) -> StoreResult<Vec<Schedule>> {
        na()
    }
    async fn mark_schedule_run(
        &self,
        _: Uuid,
        _: Option<OffsetDateTime>,
        _: OffsetDateTime,
        _: Option<OffsetDateTime>,
    ) -> StoreResult<bool> {
        na()
    }
}
