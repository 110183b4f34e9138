//! The `Store` implementation, written once and stamped out for both backends
//! (`impl_store!(SqliteStore)` / `impl_store!(PgStore)`). Backend differences live in the
//! backend modules: pools (`self.r()` read, `self.w()` write), `BACKEND`, connect.

/// Binds a `Vec<Arg>` onto a query in order.
macro_rules! bind_args {
    ($q:expr, $args:expr) => {{
        let mut q = $q;
        for a in $args {
            q = match a {
                $crate::store::common::Arg::Uuid(v) => q.bind(v),
                $crate::store::common::Arg::I64(v) => q.bind(v),
                $crate::store::common::Arg::I16(v) => q.bind(v),
                $crate::store::common::Arg::Ts(v) => q.bind($crate::store::common::DbTs(v)),
                $crate::store::common::Arg::Text(v) => q.bind(v),
            };
        }
        q
    }};
}

/// Inserts the `server_ports` rows (`$ports`, duplicates ignored) of server `$s` inside
/// transaction `$tx`; a port held by another server of the host is `Conflict("port N")`.
macro_rules! claim_ports {
    ($tx:ident, $s:expr, $ports:expr) => {{
        let s: &Server = $s;
        let mut ports: Vec<u16> = $ports.to_vec();
        ports.sort_unstable();
        ports.dedup();
        for p in ports {
            let r = sqlx::query(
                "INSERT INTO server_ports (host_id, port, server_id) VALUES ($1, $2, $3)",
            )
            .bind(s.host_id)
            .bind(i64::from(p))
            .bind(s.id)
            .execute(&mut *$tx)
            .await
            .map_err(StoreError::from);
            match r {
                Ok(_) => {}
                Err(StoreError::Conflict(_)) => {
                    return Err(StoreError::Conflict(format!("port {p}")));
                }
                Err(e) => return Err(e),
            }
        }
    }};
}

/// Serialises admin-removing user changes inside transaction `$tx` (PostgreSQL: a
/// transaction-scoped advisory lock; SQLite already has a single writer).
macro_rules! admin_guard_lock {
    ($tx:ident) => {{
        if matches!(Self::BACKEND, Backend::Postgres) {
            sqlx::query("SELECT pg_advisory_xact_lock(7428301)")
                .execute(&mut *$tx)
                .await?;
        }
    }};
}

macro_rules! impl_store {
    ($ty:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::Store for $ty {
            fn backend(&self) -> &'static str {
                match Self::BACKEND {
                    Backend::Sqlite => "sqlite",
                    Backend::Postgres => "postgres",
                }
            }

            async fn ping(&self) -> StoreResult<()> {
                sqlx::query("SELECT 1").execute(self.r()).await?;
                Ok(())
            }

            // ---------------------------------------------------------- users
            async fn create_user(&self, new: NewUser) -> StoreResult<User> {
                check_text(&[&new.username, &new.password_hash])?;
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
                sqlx::query(
                    "INSERT INTO users (id, username, password_hash, role, must_change_password, disabled, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(u.id)
                .bind(&u.username)
                .bind(&u.password_hash)
                .bind(u.role.as_str())
                .bind(u.must_change_password)
                .bind(u.disabled)
                .bind(ts(t))
                .bind(ts(t))
                .execute(self.w())
                .await
                ?;
                Ok(u)
            }

            async fn get_user_by_id(&self, id: Uuid) -> StoreResult<Option<User>> {
                sqlx::query_as::<_, User>("SELECT * FROM users WHERE id = $1")
                    .bind(id)
                    .fetch_optional(self.r())
                    .await
                    .map_err(StoreError::from)
            }

            async fn get_user_by_username(&self, username: &str) -> StoreResult<Option<User>> {
                sqlx::query_as::<_, User>("SELECT * FROM users WHERE lower(username) = lower($1)")
                    .bind(username)
                    .fetch_optional(self.r())
                    .await
                    .map_err(StoreError::from)
            }

            async fn list_users(&self) -> StoreResult<Vec<User>> {
                sqlx::query_as::<_, User>("SELECT * FROM users ORDER BY lower(username), id")
                    .fetch_all(self.r())
                    .await
                    .map_err(StoreError::from)
            }

            async fn update_user(&self, id: Uuid, update: UserUpdate) -> StoreResult<User> {
                check_opt(&[update.password_hash.as_deref()])?;
                let guarded = update.role.is_some_and(|r| r != Role::Admin) || update.disabled == Some(true);
                let mut tx = self.w().begin().await?;
                if guarded {
                    admin_guard_lock!(tx);
                }
                // The last-admin guard is part of the statement: under the lock (PostgreSQL)
                // or the single writer (SQLite) no other demotion can interleave.
                let u = sqlx::query_as::<_, User>(
                    "UPDATE users SET role = COALESCE($2, role), disabled = COALESCE($3, disabled), \
                     must_change_password = COALESCE($4, must_change_password), \
                     password_hash = COALESCE($5, password_hash), updated_at = $6 \
                     WHERE id = $1 AND NOT ( \
                       role = 'admin' AND NOT disabled \
                       AND (COALESCE($2, role) <> 'admin' OR COALESCE($3, disabled)) \
                       AND NOT EXISTS (SELECT 1 FROM users o WHERE o.id <> $1 AND o.role = 'admin' AND NOT o.disabled) \
                     ) RETURNING *",
                )
                .bind(id)
                .bind(update.role.map(|r| r.as_str()))
                .bind(update.disabled)
                .bind(update.must_change_password)
                .bind(update.password_hash)
                .bind(ts(now()))
                .fetch_optional(&mut *tx)
                .await
                ?;
                let res = match u {
                    Some(u) => Ok(u),
                    None => {
                        let exists = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM users WHERE id = $1")
                            .bind(id)
                            .fetch_one(&mut *tx)
                            .await
                            ?;
                        Err(if exists > 0 { StoreError::Conflict(LAST_ADMIN.into()) } else { StoreError::NotFound })
                    }
                };
                tx.commit().await?;
                res
            }

            async fn delete_user(&self, id: Uuid) -> StoreResult<()> {
                let mut tx = self.w().begin().await?;
                admin_guard_lock!(tx);
                let r = sqlx::query(
                    "DELETE FROM users WHERE id = $1 AND NOT ( \
                       role = 'admin' AND NOT disabled \
                       AND NOT EXISTS (SELECT 1 FROM users o WHERE o.id <> $1 AND o.role = 'admin' AND NOT o.disabled) \
                     )",
                )
                .bind(id)
                .execute(&mut *tx)
                .await
                ?;
                let res = if r.rows_affected() > 0 {
                    Ok(())
                } else {
                    let exists = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM users WHERE id = $1")
                        .bind(id)
                        .fetch_one(&mut *tx)
                        .await
                        ?;
                    Err(if exists > 0 { StoreError::Conflict(LAST_ADMIN.into()) } else { StoreError::NotFound })
                };
                tx.commit().await?;
                res
            }

            async fn tokens_valid_after(&self, id: Uuid) -> StoreResult<Option<i64>> {
                sqlx::query_scalar::<_, i64>("SELECT tokens_valid_after FROM users WHERE id = $1")
                    .bind(id)
                    .fetch_optional(self.r())
                    .await
                    .map_err(StoreError::from)
            }

            async fn bump_tokens_valid_after(&self, id: Uuid, at_us: i64) -> StoreResult<()> {
                let r = sqlx::query(
                    "UPDATE users SET tokens_valid_after = CASE WHEN tokens_valid_after < $2 \
                     THEN $2 ELSE tokens_valid_after END WHERE id = $1",
                )
                .bind(id)
                .bind(at_us)
                .execute(self.w())
                .await
                ?;
                if r.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
            }

            async fn count_users(&self) -> StoreResult<i64> {
                sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM users").fetch_one(self.r()).await.map_err(StoreError::from)
            }

            // ---------------------------------------------------------- refresh tokens
            async fn insert_refresh_token(&self, new: NewRefreshToken) -> StoreResult<RefreshToken> {
                check_text(&[&new.token_hash])?;
                check_opt(&[new.ip.as_deref(), new.user_agent.as_deref()])?;
                let t = RefreshToken {
                    id: new_id(),
                    user_id: new.user_id,
                    family_id: new.family_id,
                    token_hash: new.token_hash,
                    expires_at: truncate(new.expires_at),
                    created_at: now(),
                    used_at: None,
                    revoked_at: None,
                    ip: new.ip,
                    user_agent: new.user_agent,
                };
                sqlx::query(
                    "INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, expires_at, created_at, ip, user_agent) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(t.id)
                .bind(t.user_id)
                .bind(t.family_id)
                .bind(&t.token_hash)
                .bind(ts(t.expires_at))
                .bind(ts(t.created_at))
                .bind(&t.ip)
                .bind(&t.user_agent)
                .execute(self.w())
                .await
                ?;
                Ok(t)
            }

            async fn get_refresh_token_by_hash(&self, token_hash: &str) -> StoreResult<Option<RefreshToken>> {
                sqlx::query_as::<_, RefreshToken>("SELECT * FROM refresh_tokens WHERE token_hash = $1")
                    .bind(token_hash)
                    .fetch_optional(self.w())
                    .await
                    .map_err(StoreError::from)
            }

            async fn mark_refresh_token_used(&self, id: Uuid, at: OffsetDateTime) -> StoreResult<bool> {
                let r = sqlx::query(
                    "UPDATE refresh_tokens SET used_at = $2 WHERE id = $1 AND used_at IS NULL AND revoked_at IS NULL",
                )
                .bind(id)
                .bind(ts(at))
                .execute(self.w())
                .await
                ?;
                Ok(r.rows_affected() == 1)
            }

            async fn revoke_refresh_family(&self, family_id: Uuid, at: OffsetDateTime) -> StoreResult<u64> {
                let r = sqlx::query("UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL")
                    .bind(family_id)
                    .bind(ts(at))
                    .execute(self.w())
                    .await
                    ?;
                Ok(r.rows_affected())
            }

            async fn revoke_user_refresh_tokens(&self, user_id: Uuid, at: OffsetDateTime) -> StoreResult<u64> {
                let r = sqlx::query("UPDATE refresh_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL")
                    .bind(user_id)
                    .bind(ts(at))
                    .execute(self.w())
                    .await
                    ?;
                Ok(r.rows_affected())
            }

            // ---------------------------------------------------------- api tokens
            async fn insert_api_token(&self, new: NewApiToken) -> StoreResult<ApiToken> {
                check_text(&[&new.name, &new.token_hash, &new.prefix])?;
                let t = ApiToken {
                    id: new_id(),
                    user_id: new.user_id,
                    name: new.name,
                    token_hash: new.token_hash,
                    prefix: new.prefix,
                    role: new.role,
                    created_at: now(),
                    last_used_at: None,
                    expires_at: new.expires_at.map(truncate),
                    revoked_at: None,
                };
                sqlx::query(
                    "INSERT INTO api_tokens (id, user_id, name, token_hash, prefix, role, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(t.id)
                .bind(t.user_id)
                .bind(&t.name)
                .bind(&t.token_hash)
                .bind(&t.prefix)
                .bind(t.role.as_str())
                .bind(ts(t.created_at))
                .bind(t.expires_at.map(ts))
                .execute(self.w())
                .await
                ?;
                Ok(t)
            }

            async fn get_api_token_by_hash(&self, token_hash: &str) -> StoreResult<Option<ApiToken>> {
                sqlx::query_as::<_, ApiToken>("SELECT * FROM api_tokens WHERE token_hash = $1")
                    .bind(token_hash)
                    .fetch_optional(self.r())
                    .await
                    .map_err(StoreError::from)
            }

            async fn list_api_tokens_for_user(&self, user_id: Uuid) -> StoreResult<Vec<ApiToken>> {
                sqlx::query_as::<_, ApiToken>("SELECT * FROM api_tokens WHERE user_id = $1 ORDER BY created_at, id")
                    .bind(user_id)
                    .fetch_all(self.r())
                    .await
                    .map_err(StoreError::from)
            }

            async fn revoke_api_token(&self, id: Uuid, at: OffsetDateTime) -> StoreResult<()> {
                let r = sqlx::query("UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1")
                    .bind(id)
                    .bind(ts(at))
                    .execute(self.w())
                    .await
                    ?;
                if r.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
            }

            async fn touch_api_token(&self, id: Uuid, at: OffsetDateTime) -> StoreResult<()> {
                let r = sqlx::query("UPDATE api_tokens SET last_used_at = $2 WHERE id = $1")
                    .bind(id)
                    .bind(ts(at))
                    .execute(self.w())
                    .await
                    ?;
                if r.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
            }

            // ---------------------------------------------------------- hosts
            async fn create_host(&self, new: NewHost) -> StoreResult<Host> {
                check_text(&[&new.name])?;
                check_opt(&[new.agent_id.as_deref()])?;
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
                sqlx::query("INSERT INTO hosts (id, name, agent_id, os, status, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
                    .bind(h.id)
                    .bind(&h.name)
                    .bind(&h.agent_id)
                    .bind(h.os.as_str())
                    .bind(h.status.as_str())
                    .bind(ts(h.created_at))
                    .execute(self.w())
                    .await
                    ?;
                Ok(h)
            }

            async fn get_host(&self, id: Uuid) -> StoreResult<Option<Host>> {
                sqlx::query_as::<_, Host>("SELECT * FROM hosts WHERE id = $1").bind(id).fetch_optional(self.r()).await.map_err(StoreError::from)
            }

            async fn list_hosts(&self) -> StoreResult<Vec<Host>> {
                sqlx::query_as::<_, Host>("SELECT * FROM hosts ORDER BY name, id").fetch_all(self.r()).await.map_err(StoreError::from)
            }

            async fn update_host(&self, host: &Host) -> StoreResult<Host> {
                check_text(&[&host.name])?;
                check_opt(&[host.agent_id.as_deref()])?;
                sqlx::query_as::<_, Host>(
                    "UPDATE hosts SET name = $2, agent_id = $3, os = $4, status = $5, last_seen_at = $6, revoked_at = $7 \
                     WHERE id = $1 RETURNING *",
                )
                .bind(host.id)
                .bind(&host.name)
                .bind(&host.agent_id)
                .bind(host.os.as_str())
                .bind(host.status.as_str())
                .bind(host.last_seen_at.map(ts))
                .bind(host.revoked_at.map(ts))
                .fetch_optional(self.w())
                .await
                ?
                .ok_or(StoreError::NotFound)
            }

            async fn delete_host(&self, id: Uuid) -> StoreResult<()> {
                let r = sqlx::query("DELETE FROM hosts WHERE id = $1").bind(id).execute(self.w()).await?;
                if r.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
            }

            // ---------------------------------------------------------- servers
            async fn create_server(&self, host_id: Uuid, spec: ServerSpec, ports: &[u16]) -> StoreResult<Server> {
                check_text(&[&spec.name, &spec.executable_path])?;
                check_json(&spec.restart_policy)?;
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
                let mut tx = self.w().begin().await?;
                sqlx::query(
                    "INSERT INTO servers (id, host_id, name, game, game_port, rcon_port, executable_path, restart_policy, \
                     desired_running, revision, config_revision, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                )
                .bind(s.id)
                .bind(s.host_id)
                .bind(&s.name)
                .bind(s.game.as_str())
                .bind(s.game_port)
                .bind(s.rcon_port)
                .bind(&s.executable_path)
                .bind(Json(&s.restart_policy))
                .bind(s.desired_running)
                .bind(s.revision)
                .bind(s.config_revision)
                .bind(ts(t))
                .bind(ts(t))
                .execute(&mut *tx)
                .await
                ?;
                claim_ports!(tx, &s, ports);
                let committed = tx.commit().await.map_err(StoreError::from);
                self.servers.invalidate();
                committed?;
                Ok(s)
            }

            async fn get_server(&self, id: Uuid) -> StoreResult<Option<Server>> {
                sqlx::query_as::<_, Server>("SELECT * FROM servers WHERE id = $1").bind(id).fetch_optional(self.r()).await.map_err(StoreError::from)
            }

            async fn list_servers(&self, host_id: Option<Uuid>) -> StoreResult<Vec<Server>> {
                let all = self.list_all_servers().await?;
                Ok(all.iter().filter(|s| host_id.is_none_or(|h| s.host_id == h)).cloned().collect())
            }

            async fn list_all_servers(&self) -> StoreResult<std::sync::Arc<Vec<Server>>> {
                match self.servers.get() {
                    Ok(all) => Ok(all),
                    Err(generation) => {
                        let all = std::sync::Arc::new(
                            sqlx::query_as::<_, Server>("SELECT * FROM servers ORDER BY name, id")
                                .fetch_all(self.r())
                                .await
                                ?,
                        );
                        self.servers.put(generation, all.clone());
                        Ok(all)
                    }
                }
            }

            async fn list_servers_on_host(&self, host_id: Uuid) -> StoreResult<Vec<Server>> {
                sqlx::query_as::<_, Server>("SELECT * FROM servers WHERE host_id = $1 ORDER BY name, id")
                    .bind(host_id)
                    .fetch_all(self.w())
                    .await
                    .map_err(StoreError::from)
            }

            async fn count_servers(&self, host_id: Option<Uuid>) -> StoreResult<i64> {
                sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM servers WHERE ($1 IS NULL OR host_id = $1)")
                    .bind(host_id)
                    .fetch_one(self.r())
                    .await
                    .map_err(StoreError::from)
            }

            async fn update_server(&self, id: Uuid, expected_revision: i64, spec: ServerSpec, ports: &[u16]) -> StoreResult<Server> {
                check_text(&[&spec.name, &spec.executable_path])?;
                check_json(&spec.restart_policy)?;
                let mut tx = self.w().begin().await?;
                let row = sqlx::query_as::<_, Server>(
                    "UPDATE servers SET name = $3, game = $4, game_port = $5, rcon_port = $6, executable_path = $7, \
                     restart_policy = $8, desired_running = $9, revision = revision + 1, updated_at = $10 \
                     WHERE id = $1 AND revision = $2 RETURNING *",
                )
                .bind(id)
                .bind(expected_revision)
                .bind(&spec.name)
                .bind(spec.game.as_str())
                .bind(spec.game_port)
                .bind(spec.rcon_port)
                .bind(&spec.executable_path)
                .bind(Json(&spec.restart_policy))
                .bind(spec.desired_running)
                .bind(ts(now()))
                .fetch_optional(&mut *tx)
                .await
                ?;
                match row {
                    Some(s) => {
                        sqlx::query("DELETE FROM server_ports WHERE server_id = $1")
                            .bind(s.id)
                            .execute(&mut *tx)
                            .await
                            ?;
                        claim_ports!(tx, &s, ports);
                        let committed = tx.commit().await.map_err(StoreError::from);
                        self.servers.invalidate();
                        committed?;
                        Ok(s)
                    }
                    None => match { drop(tx); self.exists("SELECT COUNT(*) FROM servers WHERE id = $1", id).await? } {
                        true => Err(StoreError::Conflict("revision".into())),
                        false => Err(StoreError::NotFound),
                    },
                }
            }

            async fn set_desired_running(&self, id: Uuid, running: bool) -> StoreResult<()> {
                let r = sqlx::query("UPDATE servers SET desired_running = $2 WHERE id = $1")
                    .bind(id)
                    .bind(running)
                    .execute(self.w())
                    .await;
                self.servers.invalidate();
                if r?.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
            }

            async fn delete_server(&self, id: Uuid) -> StoreResult<()> {
                let r = sqlx::query("DELETE FROM servers WHERE id = $1").bind(id).execute(self.w()).await;
                self.servers.invalidate();
                let r = r?;
                if r.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
            }

            // ---------------------------------------------------------- config
            async fn get_config(&self, server_id: Uuid) -> StoreResult<ServerConfig> {
                let rows = sqlx::query_as::<_, ConfigJoinRow>(
                    "SELECT s.config_revision, c.section, c.content, c.secrets, c.revision, c.updated_at \
                     FROM servers s LEFT JOIN server_configs c ON c.server_id = s.id WHERE s.id = $1",
                )
                .bind(server_id)
                .fetch_all(self.r())
                .await
                ?;
                config_from_rows(server_id, rows)
            }

            async fn write_config(
                &self,
                server_id: Uuid,
                expected_revision: i64,
                sections: Vec<ConfigSection>,
                mode: ConfigWrite,
                author_user_id: Option<Uuid>,
                comment: Option<String>,
            ) -> StoreResult<ConfigVersion> {
                for s in &sections {
                    check_section_name(&s.section)?;
                    check_json(&s.content)?;
                }
                check_opt(&[comment.as_deref()])?;
                let t = now();
                let new_rev = expected_revision + 1;
                let mut tx = self.w().begin().await?;
                let r = sqlx::query("UPDATE servers SET config_revision = config_revision + 1 WHERE id = $1 AND config_revision = $2")
                    .bind(server_id)
                    .bind(expected_revision)
                    .execute(&mut *tx)
                    .await
                    ?;
                if r.rows_affected() == 0 {
                    let n = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM servers WHERE id = $1")
                        .bind(server_id)
                        .fetch_one(&mut *tx)
                        .await
                        ?;
                    return Err(if n == 0 { StoreError::NotFound } else { StoreError::Conflict("config_revision".into()) });
                }
                if mode == ConfigWrite::Replace {
                    sqlx::query("DELETE FROM server_configs WHERE server_id = $1")
                        .bind(server_id)
                        .execute(&mut *tx)
                        .await?;
                }
                for s in &sections {
                    sqlx::query(
                        "INSERT INTO server_configs (server_id, section, content, secrets, revision, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (server_id, section) DO UPDATE SET \
                         content = excluded.content, secrets = excluded.secrets, revision = excluded.revision, \
                         updated_at = excluded.updated_at",
                    )
                    .bind(server_id)
                    .bind(s.section.as_str())
                    .bind(Json(&s.content))
                    .bind(&s.secrets)
                    .bind(new_rev)
                    .bind(ts(t))
                    .execute(&mut *tx)
                    .await
                    ?;
                }
                let rows = sqlx::query_as::<_, ConfigJoinRow>(
                    "SELECT s.config_revision, c.section, c.content, c.secrets, c.revision, c.updated_at \
                     FROM servers s LEFT JOIN server_configs c ON c.server_id = s.id WHERE s.id = $1",
                )
                .bind(server_id)
                .fetch_all(&mut *tx)
                .await
                ?;
                let all: Vec<ConfigSection> = config_from_rows(server_id, rows)?.sections.into_iter().map(|s| s.section).collect();
                let v = ConfigVersion {
                    id: new_id(),
                    server_id,
                    version: new_rev,
                    author_user_id,
                    created_at: t,
                    comment,
                    sections: all,
                };
                sqlx::query(
                    "INSERT INTO config_versions (id, server_id, version, author_user_id, created_at, comment, snapshot, secrets) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(v.id)
                .bind(server_id)
                .bind(new_rev)
                .bind(author_user_id)
                .bind(ts(t))
                .bind(&v.comment)
                .bind(Json(snapshot_json(&v.sections)))
                .bind(encode_secrets(&v.sections))
                .execute(&mut *tx)
                .await
                ?;
                let committed = tx.commit().await.map_err(StoreError::from);
                self.servers.invalidate();
                committed?;
                Ok(v)
            }

            async fn list_config_versions(&self, server_id: Uuid, limit: i64) -> StoreResult<Vec<ConfigVersionSummary>> {
                sqlx::query_as::<_, ConfigVersionSummary>(
                    "SELECT id, server_id, version, author_user_id, created_at, comment FROM config_versions \
                     WHERE server_id = $1 ORDER BY version DESC LIMIT $2",
                )
                .bind(server_id)
                .bind(clamp_limit(limit, 10_000))
                .fetch_all(self.r())
                .await
                .map_err(StoreError::from)
            }

            async fn get_config_version(&self, server_id: Uuid, version: i64) -> StoreResult<Option<ConfigVersion>> {
                let row = sqlx::query_as::<_, ConfigVersionRow>(
                    "SELECT * FROM config_versions WHERE server_id = $1 AND version = $2",
                )
                .bind(server_id)
                .bind(version)
                .fetch_optional(self.r())
                .await
                ?;
                let Some(row) = row else { return Ok(None) };
                Ok(Some(ConfigVersion {
                    id: row.id,
                    server_id: row.server_id,
                    version: row.version,
                    author_user_id: row.author_user_id,
                    created_at: row.created_at,
                    comment: row.comment,
                    sections: decode_sections(row.snapshot.0, row.secrets.as_deref())?,
                }))
            }

            // ---------------------------------------------------------- players
            async fn list_players(&self, name_contains: Option<&str>, limit: i64) -> StoreResult<Vec<Player>> {
                sqlx::query_as::<_, Player>(
                    Self::PLAYER_SEARCH_SQL,
                )
                .bind(name_contains)
                .bind(clamp_limit(limit, 10_000))
                .fetch_all(self.r())
                .await
                .map_err(StoreError::from)
            }

            async fn list_player_sessions(&self, query: SessionQuery) -> StoreResult<Vec<PlayerSession>> {
                let s = sessions_sql(&query);
                let q = sqlx::query_as::<_, PlayerSession>(sqlx::AssertSqlSafe(s.sql));
                bind_args!(q, s.args).fetch_all(self.r()).await.map_err(StoreError::from)
            }

            // ---------------------------------------------------------- audit
            async fn insert_audit(&self, ev: NewAuditEvent) -> StoreResult<AuditEvent> {
                check_text(&[&ev.action])?;
                check_opt(&[ev.target_kind.as_deref(), ev.target_id.as_deref(), ev.ip.as_deref()])?;
                check_json(&ev.details)?;
                let e = AuditEvent {
                    id: new_id(),
                    ts: ev.ts.map(truncate).unwrap_or_else(now),
                    actor_user_id: ev.actor_user_id,
                    actor_kind: ev.actor_kind,
                    action: ev.action,
                    target_kind: ev.target_kind,
                    target_id: ev.target_id,
                    ip: ev.ip,
                    details: ev.details,
                };
                sqlx::query(
                    "INSERT INTO audit_events (id, ts, actor_user_id, actor_kind, action, target_kind, target_id, ip, details) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(e.id)
                .bind(ts(e.ts))
                .bind(e.actor_user_id)
                .bind(e.actor_kind.as_str())
                .bind(&e.action)
                .bind(&e.target_kind)
                .bind(&e.target_id)
                .bind(&e.ip)
                .bind(Json(&e.details))
                .execute(self.w())
                .await
                ?;
                Ok(e)
            }

            async fn query_audit(&self, query: AuditQuery) -> StoreResult<Page<AuditEvent, AuditCursor>> {
                let limit = clamp_limit(query.limit, 1000) as usize;
                let s = audit_sql(&query);
                let q = sqlx::query_as::<_, AuditEvent>(sqlx::AssertSqlSafe(s.sql));
                let mut items = bind_args!(q, s.args).fetch_all(self.r()).await?;
                let next = if items.len() > limit {
                    items.truncate(limit);
                    items.last().map(|e| AuditCursor { ts: e.ts, id: e.id })
                } else {
                    None
                };
                Ok(Page { items, next })
            }

            // ---------------------------------------------------------- logs
            async fn query_logs(&self, query: LogQuery) -> StoreResult<Page<LogLine, LogCursor>> {
                let limit = clamp_limit(query.limit, 5000) as usize;
                let s = logs_sql(&query, Self::BACKEND);
                let q = sqlx::query_as::<_, LogLine>(sqlx::AssertSqlSafe(s.sql));
                let mut items = bind_args!(q, s.args).fetch_all(self.r()).await?;
                let next = if items.len() > limit {
                    items.truncate(limit);
                    items.last().map(|e| LogCursor { ts: e.ts, id: e.id })
                } else {
                    None
                };
                Ok(Page { items, next })
            }

            async fn query_metrics(&self, query: MetricQuery) -> StoreResult<Vec<MetricSample>> {
                let s = metrics_sql(&query);
                let q = sqlx::query_as::<_, MetricSample>(sqlx::AssertSqlSafe(s.sql));
                bind_args!(q, s.args).fetch_all(self.r()).await.map_err(StoreError::from)
            }

            // ---------------------------------------------------------- retention
            async fn prune_retention(&self, c: RetentionCutoffs) -> StoreResult<Option<PruneReport>> {
                // PostgreSQL: hold a transaction-scoped advisory lock on one connection for
                // the whole run (released by commit, or when the connection dies); the
                // chunked deletes run on other connections so no delete holds locks long.
                let lock = if matches!(Self::BACKEND, Backend::Postgres) {
                    let mut tx = self.w().begin().await?;
                    let got = sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_xact_lock($1)")
                        .bind(RETENTION_LOCK_KEY)
                        .fetch_one(&mut *tx)
                        .await
                        ?;
                    if !got {
                        return Ok(None);
                    }
                    Some(tx)
                } else {
                    None
                };
                let report = PruneReport {
                    logs: self.prune_chunked("DELETE FROM logs WHERE id IN (SELECT id FROM logs WHERE ts < $1 LIMIT 5000)", c.logs_before).await?,
                    metrics: self
                        .prune_chunked("DELETE FROM metrics WHERE id IN (SELECT id FROM metrics WHERE ts < $1 LIMIT 5000)", c.metrics_before)
                        .await?,
                    audit: self
                        .prune_chunked("DELETE FROM audit_events WHERE id IN (SELECT id FROM audit_events WHERE ts < $1 LIMIT 5000)", c.audit_before)
                        .await?,
                    sessions: self
                        .prune_chunked(
                            "DELETE FROM player_sessions WHERE id IN \
                             (SELECT id FROM player_sessions WHERE joined_at < $1 AND left_at IS NOT NULL LIMIT 5000)",
                            c.sessions_before,
                        )
                        .await?,
                    refresh_tokens: self
                        .prune_chunked(
                            "DELETE FROM refresh_tokens WHERE id IN (SELECT id FROM refresh_tokens WHERE expires_at < $1 LIMIT 5000)",
                            c.refresh_tokens_before,
                        )
                        .await?,
                    events: self
                        .prune_chunked("DELETE FROM server_events WHERE id IN (SELECT id FROM server_events WHERE ts < $1 LIMIT 5000)", c.events_before)
                        .await?,
                    // 1-minute buckets (ROLLUP_BUCKETS[0]) live as long as the raw samples.
                    rollups: self
                        .prune_chunked(
                            "DELETE FROM metric_rollups WHERE (scope, bucket_secs, ts) IN \
                             (SELECT scope, bucket_secs, ts FROM metric_rollups WHERE bucket_secs = 60 AND ts < $1 LIMIT 5000)",
                            c.metrics_before,
                        )
                        .await?
                        + self
                            .prune_chunked(
                                "DELETE FROM metric_rollups WHERE (scope, bucket_secs, ts) IN \
                                 (SELECT scope, bucket_secs, ts FROM metric_rollups WHERE bucket_secs > 60 AND ts < $1 LIMIT 5000)",
                                c.rollups_before,
                            )
                            .await?,
                    join_tokens: self
                        .prune_chunked("DELETE FROM join_tokens WHERE id IN (SELECT id FROM join_tokens WHERE expires_at < $1 LIMIT 5000)", c.join_tokens_before)
                        .await?,
                };
                if let Some(tx) = lock {
                    tx.commit().await?;
                }
                Ok(Some(report))
            }

            // ---------------------------------------------------------- fleet link
            async fn insert_join_token(&self, new: NewJoinToken) -> StoreResult<JoinTokenRow> {
                check_text(&[&new.secret_hash])?;
                let t = JoinTokenRow {
                    id: new.id,
                    host_id: new.host_id,
                    secret_hash: new.secret_hash,
                    expires_at: truncate(new.expires_at),
                    used_at: None,
                    created_by: new.created_by,
                    created_at: now(),
                };
                sqlx::query(
                    "INSERT INTO join_tokens (id, host_id, secret_hash, expires_at, created_by, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(t.id)
                .bind(t.host_id)
                .bind(&t.secret_hash)
                .bind(ts(t.expires_at))
                .bind(t.created_by)
                .bind(ts(t.created_at))
                .execute(self.w())
                .await
                ?;
                Ok(t)
            }

            async fn get_join_token(&self, id: Uuid) -> StoreResult<Option<JoinTokenRow>> {
                sqlx::query_as::<_, JoinTokenRow>("SELECT * FROM join_tokens WHERE id = $1")
                    .bind(id)
                    .fetch_optional(self.r())
                    .await
                    .map_err(StoreError::from)
            }

            async fn list_join_tokens(&self, host_id: Uuid) -> StoreResult<Vec<JoinTokenRow>> {
                sqlx::query_as::<_, JoinTokenRow>(
                    "SELECT * FROM join_tokens WHERE host_id = $1 ORDER BY created_at DESC, id DESC",
                )
                .bind(host_id)
                .fetch_all(self.r())
                .await
                .map_err(StoreError::from)
            }

            async fn enroll_agent(&self, e: Enrollment) -> StoreResult<Host> {
                check_text(&[&e.agent_version])?;
                let at = truncate(e.at);
                let mut tx = self.w().begin().await?;
                // The claim is one conditional statement: concurrent callers serialise on
                // the token row (PostgreSQL re-checks the WHERE after the winner commits;
                // SQLite has one writer), so exactly one sees a row change.
                let claimed = sqlx::query(
                    "UPDATE join_tokens SET used_at = $3 \
                     WHERE id = $1 AND host_id = $2 AND used_at IS NULL AND expires_at > $3",
                )
                .bind(e.token_id)
                .bind(e.host_id)
                .bind(ts(at))
                .execute(&mut *tx)
                .await
                ?;
                if claimed.rows_affected() != 1 {
                    return Err(StoreError::Conflict("join token".into()));
                }
                let host = sqlx::query_as::<_, Host>(
                    "UPDATE hosts SET agent_id = $2, os = $3, agent_version = $4, status = 'offline', \
                     revoked_at = NULL, acked_seq = 0 WHERE id = $1 RETURNING *",
                )
                .bind(e.host_id)
                .bind(e.agent_id.to_string())
                .bind(e.os.as_str())
                .bind(&e.agent_version)
                .fetch_optional(&mut *tx)
                .await
                ?
                .ok_or(StoreError::NotFound)?;
                tx.commit().await?;
                Ok(host)
            }

            async fn get_host_by_agent_id(&self, agent_id: &str) -> StoreResult<Option<Host>> {
                sqlx::query_as::<_, Host>("SELECT * FROM hosts WHERE agent_id = $1")
                    .bind(agent_id)
                    .fetch_optional(self.r())
                    .await
                    .map_err(StoreError::from)
            }

            async fn set_host_link(
                &self,
                host_id: Uuid,
                status: HostStatus,
                agent_version: Option<&str>,
                at: OffsetDateTime,
            ) -> StoreResult<()> {
                if !matches!(status, HostStatus::Online | HostStatus::Offline) {
                    return Err(StoreError::InvalidInput(format!("host link status {status}")));
                }
                check_opt(&[agent_version])?;
                let r = sqlx::query(
                    "UPDATE hosts SET status = CASE WHEN revoked_at IS NULL THEN $2 ELSE status END, \
                     last_seen_at = $3, agent_version = COALESCE($4, agent_version) WHERE id = $1",
                )
                .bind(host_id)
                .bind(status.as_str())
                .bind(ts(at))
                .bind(agent_version)
                .execute(self.w())
                .await
                ?;
                if r.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
            }

            async fn reset_host_links(&self) -> StoreResult<u64> {
                let r = sqlx::query("UPDATE hosts SET status = 'offline' WHERE status = 'online'")
                    .execute(self.w())
                    .await
                    ?;
                Ok(r.rows_affected())
            }

            async fn revoke_host(&self, id: Uuid, at: OffsetDateTime) -> StoreResult<Host> {
                sqlx::query_as::<_, Host>(
                    "UPDATE hosts SET revoked_at = COALESCE(revoked_at, $2), status = 'revoked' WHERE id = $1 RETURNING *",
                )
                .bind(id)
                .bind(ts(at))
                .fetch_optional(self.w())
                .await
                ?
                .ok_or(StoreError::NotFound)
            }

            async fn ingest(&self, mut batch: IngestBatch) -> StoreResult<i64> {
                sanitize_batch(&mut batch);
                let t = now();
                let mut tx = self.w().begin().await?;
                // The host row first: it proves the host exists and (PostgreSQL) locks it, so
                // two batches of one agent never interleave their upserts.
                let acked = sqlx::query_scalar::<_, i64>(
                    "UPDATE hosts SET acked_seq = CASE WHEN acked_seq < $2 THEN $2 ELSE acked_seq END \
                     WHERE id = $1 RETURNING acked_seq",
                )
                .bind(batch.host_id)
                .bind(batch.upto)
                .fetch_optional(&mut *tx)
                .await
                ?
                .ok_or(StoreError::NotFound)?;
                Self::insert_logs(&mut tx, &batch.logs).await?;
                Self::insert_metrics(&mut tx, &batch.metrics, t).await?;
                Self::upsert_statuses(&mut tx, &last_status_per_server(batch.statuses), t).await?;
                Self::insert_events(&mut tx, &batch.events).await?;
                for change in &batch.sessions {
                    Self::apply_session_change(&mut tx, change).await?;
                }
                tx.commit().await?;
                Ok(acked)
            }

            async fn list_server_statuses(&self, host_id: Option<Uuid>) -> StoreResult<Vec<ServerStatusRow>> {
                sqlx::query_as::<_, ServerStatusRow>(
                    "SELECT st.* FROM server_status st JOIN servers s ON s.id = st.server_id \
                     WHERE ($1 IS NULL OR s.host_id = $1) ORDER BY st.server_id",
                )
                .bind(host_id)
                .fetch_all(self.r())
                .await
                .map_err(StoreError::from)
            }

            async fn query_server_events(&self, query: ServerEventQuery) -> StoreResult<Vec<ServerEvent>> {
                let s = server_events_sql(&query);
                let q = sqlx::query_as::<_, ServerEvent>(sqlx::AssertSqlSafe(s.sql));
                bind_args!(q, s.args).fetch_all(self.r()).await.map_err(StoreError::from)
            }

            async fn query_metric_rollups(&self, query: RollupQuery) -> StoreResult<Vec<MetricRollup>> {
                let s = rollups_sql(&query)?;
                let q = sqlx::query_as::<_, RollupRow>(sqlx::AssertSqlSafe(s.sql));
                let rows = bind_args!(q, s.args).fetch_all(self.r()).await?;
                Ok(rows.into_iter().map(MetricRollup::from).collect())
            }

        }

        impl $ty {
            /// Inserts log lines with multi-row statements ([`chunk_plan`]); the caller
            /// checked or scrubbed the text.
            async fn insert_logs(conn: &mut <Db as sqlx::Database>::Connection, lines: &[NewLogLine]) -> StoreResult<u64> {
                let mut n = 0;
                for chunk in planned_chunks(lines) {
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(LOGS_INSERT.sql(Self::BACKEND, chunk.len())));
                    for l in chunk {
                        q = q.bind(l.server_id).bind(l.seq).bind(ts(l.ts)).bind(l.level.as_i16()).bind(l.text.as_str());
                    }
                    n += q.execute(&mut *conn).await?.rows_affected();
                }
                Ok(n)
            }

            /// Inserts metric samples (a missing time is `t`) and adds them to their
            /// roll-up buckets.
            async fn insert_metrics(
                conn: &mut <Db as sqlx::Database>::Connection,
                samples: &[NewMetricSample],
                t: OffsetDateTime,
            ) -> StoreResult<u64> {
                let mut n = 0;
                for chunk in planned_chunks(samples) {
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(METRICS_INSERT.sql(Self::BACKEND, chunk.len())));
                    for m in chunk {
                        q = q
                            .bind(m.server_id)
                            .bind(m.host_id)
                            .bind(ts(m.ts.unwrap_or(t)))
                            .bind(m.cpu_percent)
                            .bind(m.rss_bytes)
                            .bind(m.players)
                            .bind(m.fps);
                    }
                    n += q.execute(&mut *conn).await?.rows_affected();
                }
                let deltas = rollup_deltas(samples, t);
                for chunk in planned_chunks(deltas.as_slice()) {
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(ROLLUP_UPSERT.sql(Self::BACKEND, chunk.len())));
                    for d in chunk {
                        let m = &d.sums;
                        q = q
                            .bind(d.scope.as_str())
                            .bind(d.bucket_secs)
                            .bind(ts(d.ts))
                            .bind(d.server_id)
                            .bind(d.host_id)
                            .bind(m.samples)
                            .bind(m.cpu_n)
                            .bind(m.cpu_sum)
                            .bind(m.cpu_max)
                            .bind(m.rss_n)
                            .bind(m.rss_sum)
                            .bind(m.rss_max)
                            .bind(m.players_n)
                            .bind(m.players_sum)
                            .bind(m.players_max);
                    }
                    q.execute(&mut *conn).await?;
                }
                Ok(n)
            }

            /// Upserts statuses (at most one per server) with `updated_at = t`.
            async fn upsert_statuses(
                conn: &mut <Db as sqlx::Database>::Connection,
                statuses: &[ServerStatusRow],
                t: OffsetDateTime,
            ) -> StoreResult<()> {
                for chunk in planned_chunks(statuses) {
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(STATUS_UPSERT.sql(Self::BACKEND, chunk.len())));
                    for s in chunk {
                        q = q
                            .bind(s.server_id)
                            .bind(server_state_str(s.state))
                            .bind(s.pid)
                            .bind(ts(s.since))
                            .bind(s.detail.as_deref())
                            .bind(s.exit_code)
                            .bind(s.exit_signal)
                            .bind(s.restarts)
                            .bind(ts(t));
                    }
                    q.execute(&mut *conn).await?;
                }
                Ok(())
            }

            async fn insert_events(conn: &mut <Db as sqlx::Database>::Connection, events: &[NewServerEvent]) -> StoreResult<()> {
                for chunk in planned_chunks(events) {
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(EVENTS_INSERT.sql(Self::BACKEND, chunk.len())));
                    for e in chunk {
                        q = q
                            .bind(e.server_id)
                            .bind(e.host_id)
                            .bind(e.seq)
                            .bind(ts(e.ts))
                            .bind(e.kind.as_str())
                            .bind(Json(&e.data));
                    }
                    q.execute(&mut *conn).await?;
                }
                Ok(())
            }

            /// One [`SessionChange`], as documented there.
            async fn apply_session_change(conn: &mut <Db as sqlx::Database>::Connection, change: &SessionChange) -> StoreResult<()> {
                match change {
                    SessionChange::Join { server_id, account, name, ip, at } => {
                        let player = sqlx::query_scalar::<_, Uuid>(UPSERT_PLAYER_SQL)
                            .bind(new_id())
                            .bind(server_id)
                            .bind(account.as_str())
                            .bind(name.as_str())
                            .bind(ts(*at))
                            .fetch_optional(&mut *conn)
                            .await?
                            .ok_or_else(|| StoreError::Conflict("foreign key: player_sessions.server_id".into()))?;
                        // The partial unique index `player_sessions_open` makes a join of a
                        // player who is already on the server a no-op.
                        sqlx::query(
                            "INSERT INTO player_sessions (id, server_id, player_id, joined_at, ip) VALUES ($1, $2, $3, $4, $5) \
                             ON CONFLICT (server_id, player_id) WHERE left_at IS NULL DO NOTHING",
                        )
                        .bind(new_id())
                        .bind(server_id)
                        .bind(player)
                        .bind(ts(*at))
                        .bind(ip.as_deref())
                        .execute(&mut *conn)
                        .await?;
                    }
                    SessionChange::Leave { server_id, account: Some(account), at, .. } => {
                        sqlx::query(
                            "UPDATE player_sessions SET left_at = $3 WHERE server_id = $1 AND left_at IS NULL \
                             AND player_id IN (SELECT p.id FROM players p JOIN servers s ON s.game = p.game \
                             WHERE s.id = $1 AND p.account_id = $2)",
                        )
                        .bind(server_id)
                        .bind(account.as_str())
                        .bind(ts(*at))
                        .execute(&mut *conn)
                        .await?;
                    }
                    SessionChange::Leave { server_id, account: None, name, at } => {
                        sqlx::query(
                            "UPDATE player_sessions SET left_at = $3 WHERE server_id = $1 AND left_at IS NULL \
                             AND player_id IN (SELECT id FROM players WHERE last_name = $2)",
                        )
                        .bind(server_id)
                        .bind(name.as_str())
                        .bind(ts(*at))
                        .execute(&mut *conn)
                        .await?;
                    }
                    SessionChange::CloseAll { server_id, at } => {
                        sqlx::query("UPDATE player_sessions SET left_at = $2 WHERE server_id = $1 AND left_at IS NULL")
                            .bind(server_id)
                            .bind(ts(*at))
                            .execute(&mut *conn)
                            .await?;
                    }
                }
                Ok(())
            }

            async fn exists(&self, sql: &'static str, id: Uuid) -> StoreResult<bool> {
                let n = sqlx::query_scalar::<_, i64>(sql).bind(id).fetch_one(self.w()).await?;
                Ok(n > 0)
            }

            /// Repeats a `DELETE … LIMIT 5000` statement until nothing is left, so a large
            /// retention run never holds the writer for long.
            async fn prune_chunked(&self, sql: &'static str, before: OffsetDateTime) -> StoreResult<u64> {
                let mut total = 0;
                loop {
                    let r = sqlx::query(sql).bind(ts(before)).execute(self.w()).await?;
                    total += r.rows_affected();
                    if r.rows_affected() == 0 {
                        return Ok(total);
                    }
                }
            }
        }
    };
}
