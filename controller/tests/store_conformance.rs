//! Store conformance suite: every test runs against a temp-file SQLite store and against a
//! fresh PostgreSQL database (admin URL from `LANGUARD_TEST_PG_URL`, default
//! `postgres://languard:languard@127.0.0.1:5432/postgres`; `LANGUARD_TEST_PG=skip` skips the
//! PostgreSQL variants, otherwise an unreachable server fails them).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use languard_controller::store::*;
use serde_json::json;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

type S = Arc<dyn Store>;

// ------------------------------------------------------------------ harness

async fn run_sqlite<F, Fut>(f: F)
where
    F: FnOnce(S) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    let store = connect(&url).await.unwrap();
    assert_eq!(store.backend(), "sqlite");
    let res = tokio::spawn(f(store)).await;
    drop(dir);
    if let Err(e) = res {
        std::panic::resume_unwind(e.into_panic());
    }
}

fn pg_admin_url() -> String {
    std::env::var("LANGUARD_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://languard:languard@127.0.0.1:5432/postgres".into())
}

async fn run_pg<F, Fut>(f: F)
where
    F: FnOnce(S) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    if std::env::var("LANGUARD_TEST_PG").as_deref() == Ok("skip") {
        eprintln!("LANGUARD_TEST_PG=skip: PostgreSQL variant skipped");
        return;
    }
    use sqlx::Connection;
    let admin_url = pg_admin_url();
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .unwrap_or_else(|e| {
            panic!("PostgreSQL unreachable at {admin_url} ({e}); set LANGUARD_TEST_PG=skip to skip")
        });
    let name = format!("languard_t_{}", Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let (base, _) = admin_url.rsplit_once('/').unwrap();
    let res: Result<(), Box<dyn std::any::Any + Send>> =
        match connect(&format!("{base}/{name}")).await {
            Ok(store) => {
                assert_eq!(store.backend(), "postgres");
                tokio::spawn(f(store)).await.map_err(|e| e.into_panic())
            }
            Err(e) => Err(Box::new(format!(
                "connect to fresh PG database failed: {e:?}"
            ))),
        };
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    if let Err(p) = res {
        std::panic::resume_unwind(p);
    }
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::run_sqlite(super::$name).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::run_pg(super::$name).await;
                }
            )*
        }
    };
}

conformance!(
    ping_and_backend,
    users,
    refresh_tokens,
    refresh_token_single_use_race,
    api_tokens,
    hosts_and_servers,
    config_save_and_versions,
    config_parallel_one_wins,
    config_parallel_retry_loses_nothing,
    players_and_sessions_of_any_game,
    audit_filters_and_pagination,
    logs_at_scale,
    metrics,
    hostile_strings,
    server_count_and_port_guard,
    server_port_race_one_wins,
    config_delete_and_replace_sections,
    config_sections_are_free_text,
    set_desired_running_touches_nothing_else,
    retention_prunes_old_keeps_recent,
    tokens_valid_after_bumps,
    last_admin_guard,
    last_admin_concurrent_demotions_one_fails,
    join_tokens_create_get_list,
    enroll_agent_race_one_wins,
    enroll_agent_refusals_change_nothing,
    host_link_state,
    ingest_logs_nul_and_ack,
    ingest_statuses_and_events,
    ingest_sessions,
    ingest_rollups,
    ingest_failure_stores_nothing,
    retention_prunes_link_history,
    deletes_cascade_link_rows,
);

#[tokio::test]
async fn unknown_scheme_is_refused() {
    let err = connect("mysql://localhost/x").await.err().unwrap();
    assert!(
        matches!(err, StoreError::InvalidInput(ref m) if m.contains("mysql")),
        "{err:?}"
    );
    assert!(connect("nonsense").await.is_err());
}

// ------------------------------------------------------------------ helpers

fn t0() -> OffsetDateTime {
    // A fixed, microsecond-precise base time.
    OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap()
}

async fn user(s: &S, name: &str) -> User {
    s.create_user(NewUser {
        username: name.into(),
        password_hash: "h".into(),
        role: Role::Operator,
        must_change_password: false,
    })
    .await
    .unwrap()
}

async fn host(s: &S, name: &str) -> Host {
    s.create_host(NewHost {
        name: name.into(),
        agent_id: None,
        os: HostOs::Linux,
        status: HostStatus::Pending,
    })
    .await
    .unwrap()
}

fn spec(name: &str, port: i64) -> ServerSpec {
    ServerSpec {
        name: name.into(),
        game: Game::Arma3,
        game_port: port,
        rcon_port: port + 2,
        executable_path: "/srv/arma3/arma3server_x64".into(),
        restart_policy: json!({"mode": "on-failure", "max": 5}),
        desired_running: false,
    }
}

/// The ports the game registry gives a spec (Arma 3: game_port..=game_port+4 and the RCon
/// port; Palworld: both ports): what the controller passes to create/update.
fn ports_of(sp: &ServerSpec) -> Vec<u16> {
    let p = |v: i64| u16::try_from(v).unwrap();
    match sp.game {
        Game::Arma3 => (sp.game_port..=sp.game_port + 4)
            .chain([sp.rcon_port])
            .map(p)
            .collect(),
        Game::Palworld => vec![p(sp.game_port), p(sp.rcon_port)],
    }
}

/// Cut-offs that prune nothing (everything is newer than the epoch).
fn no_cutoffs() -> RetentionCutoffs {
    let e = OffsetDateTime::UNIX_EPOCH;
    RetentionCutoffs {
        logs_before: e,
        metrics_before: e,
        audit_before: e,
        sessions_before: e,
        refresh_tokens_before: e,
        events_before: e,
        rollups_before: e,
        join_tokens_before: e,
    }
}

fn server_state(name: &str) -> languard_shared::wire::ServerState {
    serde_json::from_value(json!(name)).unwrap()
}

/// Stores log lines the way agents do (one ingest batch of the servers' host).
async fn store_logs(s: &S, lines: Vec<NewLogLine>) -> StoreResult<u64> {
    let Some(first) = lines.first() else {
        return Ok(0);
    };
    let host_id = s.get_server(first.server_id).await?.unwrap().host_id;
    let n = lines.len() as u64;
    s.ingest(IngestBatch {
        host_id,
        logs: lines,
        ..Default::default()
    })
    .await?;
    Ok(n)
}

/// Stores metric samples the way agents do (one ingest batch of the samples' host).
async fn store_metrics(s: &S, samples: Vec<NewMetricSample>) -> StoreResult<u64> {
    let Some(first) = samples.first() else {
        return Ok(0);
    };
    let host_id = match (first.host_id, first.server_id) {
        (Some(h), _) => h,
        (None, Some(srv)) => s.get_server(srv).await?.unwrap().host_id,
        (None, None) => panic!("a sample names a server or a host"),
    };
    let n = samples.len() as u64;
    s.ingest(IngestBatch {
        host_id,
        metrics: samples,
        ..Default::default()
    })
    .await?;
    Ok(n)
}

/// The player with this account id (any game), from the directory.
async fn player(s: &S, account: &str) -> Option<Player> {
    s.list_players(None, 10_000)
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.account_id == account)
}

/// Applies session changes the way agents do (one ingest batch of `host_id`).
async fn store_sessions(s: &S, host_id: Uuid, sessions: Vec<SessionChange>) {
    s.ingest(IngestBatch {
        host_id,
        sessions,
        ..Default::default()
    })
    .await
    .unwrap();
}

async fn server(s: &S) -> Server {
    let h = host(s, &format!("h-{}", Uuid::new_v4())).await;
    s.create_server(h.id, spec("main", 2302), &ports_of(&spec("main", 2302)))
        .await
        .unwrap()
}

// ------------------------------------------------------------------ tests

async fn ping_and_backend(s: S) {
    s.ping().await.unwrap();
    assert!(["sqlite", "postgres"].contains(&s.backend()));
}

async fn users(s: S) {
    assert_eq!(s.count_users().await.unwrap(), 0);
    let a = s
        .create_user(NewUser {
            username: "Alice".into(),
            password_hash: "argon".into(),
            role: Role::Admin,
            must_change_password: true,
        })
        .await
        .unwrap();
    assert_eq!(s.get_user_by_id(a.id).await.unwrap().unwrap(), a);
    assert_eq!(
        s.get_user_by_username("aLICE").await.unwrap().unwrap().id,
        a.id
    );
    assert!(s.get_user_by_username("bob").await.unwrap().is_none());
    let dup = s
        .create_user(NewUser {
            username: "ALICE".into(),
            password_hash: "x".into(),
            role: Role::Viewer,
            must_change_password: false,
        })
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    let b = user(&s, "bob").await;
    assert_eq!(s.count_users().await.unwrap(), 2);
    let list = s.list_users().await.unwrap();
    assert_eq!(
        list.iter().map(|u| u.username.as_str()).collect::<Vec<_>>(),
        vec!["Alice", "bob"]
    );

    let u = s
        .update_user(
            b.id,
            UserUpdate {
                role: Some(Role::Viewer),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (
            u.role,
            u.disabled,
            u.must_change_password,
            u.password_hash.as_str()
        ),
        (Role::Viewer, false, false, "h")
    );
    let u = s
        .update_user(
            b.id,
            UserUpdate {
                role: None,
                disabled: Some(true),
                must_change_password: Some(true),
                password_hash: Some("new".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (
            u.role,
            u.disabled,
            u.must_change_password,
            u.password_hash.as_str()
        ),
        (Role::Viewer, true, true, "new")
    );
    assert!(u.updated_at >= b.updated_at);
    assert_eq!(s.get_user_by_id(b.id).await.unwrap().unwrap(), u);
    assert!(matches!(
        s.update_user(Uuid::new_v4(), UserUpdate::default()).await,
        Err(StoreError::NotFound)
    ));

    s.delete_user(b.id).await.unwrap();
    assert!(matches!(
        s.delete_user(b.id).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(s.count_users().await.unwrap(), 1);
}

fn new_rt(user_id: Uuid, family: Uuid, hash: &str) -> NewRefreshToken {
    NewRefreshToken {
        user_id,
        family_id: family,
        token_hash: hash.into(),
        expires_at: now() + Duration::days(7),
        ip: Some("203.0.113.7".into()),
        user_agent: Some("test/1.0".into()),
    }
}

async fn refresh_tokens(s: S) {
    let u = user(&s, "carol").await;
    let fam = Uuid::new_v4();
    let t1 = s
        .insert_refresh_token(new_rt(u.id, fam, "hash-1"))
        .await
        .unwrap();
    assert_eq!(
        s.get_refresh_token_by_hash("hash-1")
            .await
            .unwrap()
            .unwrap(),
        t1
    );
    assert!(s.get_refresh_token_by_hash("nope").await.unwrap().is_none());
    assert!(matches!(
        s.insert_refresh_token(new_rt(u.id, fam, "hash-1")).await,
        Err(StoreError::Conflict(_))
    ));
    // Unknown user -> foreign key conflict.
    assert!(matches!(
        s.insert_refresh_token(new_rt(Uuid::new_v4(), fam, "hash-x"))
            .await,
        Err(StoreError::Conflict(_))
    ));

    let at = now();
    assert!(s.mark_refresh_token_used(t1.id, at).await.unwrap());
    assert!(
        !s.mark_refresh_token_used(t1.id, at).await.unwrap(),
        "second use must be refused"
    );
    assert_eq!(
        s.get_refresh_token_by_hash("hash-1")
            .await
            .unwrap()
            .unwrap()
            .used_at,
        Some(at)
    );
    assert!(!s.mark_refresh_token_used(Uuid::new_v4(), at).await.unwrap());

    let t2 = s
        .insert_refresh_token(new_rt(u.id, fam, "hash-2"))
        .await
        .unwrap();
    let other = s
        .insert_refresh_token(new_rt(u.id, Uuid::new_v4(), "hash-3"))
        .await
        .unwrap();
    assert_eq!(s.revoke_refresh_family(fam, at).await.unwrap(), 2);
    assert_eq!(s.revoke_refresh_family(fam, at).await.unwrap(), 0);
    assert!(
        !s.mark_refresh_token_used(t2.id, at).await.unwrap(),
        "revoked token must not be usable"
    );
    assert_eq!(s.revoke_user_refresh_tokens(u.id, at).await.unwrap(), 1);
    assert!(
        s.get_refresh_token_by_hash("hash-3")
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    let _ = other;

    // Retention: nothing expired yet, everything expired in 8 days.
    let tokens_before = |t: OffsetDateTime| RetentionCutoffs {
        refresh_tokens_before: t,
        ..no_cutoffs()
    };
    let pruned = |r: Option<PruneReport>| r.unwrap().refresh_tokens;
    assert_eq!(
        pruned(s.prune_retention(tokens_before(now())).await.unwrap()),
        0
    );
    assert_eq!(
        pruned(
            s.prune_retention(tokens_before(now() + Duration::days(8)))
                .await
                .unwrap()
        ),
        3
    );
    assert!(
        s.get_refresh_token_by_hash("hash-1")
            .await
            .unwrap()
            .is_none()
    );
}

async fn refresh_token_single_use_race(s: S) {
    let u = user(&s, "racer").await;
    let t = s
        .insert_refresh_token(new_rt(u.id, Uuid::new_v4(), "race"))
        .await
        .unwrap();
    let mut handles = Vec::new();
    for _ in 0..20 {
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            s.mark_refresh_token_used(t.id, now()).await.unwrap()
        }));
    }
    let mut wins = 0;
    for h in handles {
        wins += usize::from(h.await.unwrap());
    }
    assert_eq!(wins, 1, "exactly one racer may consume a refresh token");
}

async fn api_tokens(s: S) {
    let u = user(&s, "dave").await;
    let new = |name: &str, hash: &str| NewApiToken {
        user_id: u.id,
        name: name.into(),
        token_hash: hash.into(),
        prefix: "lg_ab12".into(),
        role: Role::Viewer,
        expires_at: Some(now() + Duration::days(30)),
    };
    let a = s.insert_api_token(new("ci", "th-1")).await.unwrap();
    let b = s.insert_api_token(new("backup", "th-2")).await.unwrap();
    assert!(matches!(
        s.insert_api_token(new("dup", "th-1")).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.get_api_token_by_hash("th-1").await.unwrap().unwrap(), a);
    assert!(s.get_api_token_by_hash("th-9").await.unwrap().is_none());
    assert_eq!(
        s.list_api_tokens_for_user(u.id).await.unwrap(),
        vec![a.clone(), b.clone()]
    );
    let at = now();
    s.touch_api_token(a.id, at).await.unwrap();
    assert_eq!(
        s.get_api_token_by_hash("th-1")
            .await
            .unwrap()
            .unwrap()
            .last_used_at,
        Some(at)
    );
    s.revoke_api_token(b.id, at).await.unwrap();
    assert_eq!(
        s.get_api_token_by_hash("th-2")
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        Some(at)
    );
    assert!(matches!(
        s.revoke_api_token(Uuid::new_v4(), at).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.touch_api_token(Uuid::new_v4(), at).await,
        Err(StoreError::NotFound)
    ));
    // Deleting the user removes its tokens.
    s.delete_user(u.id).await.unwrap();
    assert!(s.list_api_tokens_for_user(u.id).await.unwrap().is_empty());
    assert!(s.get_api_token_by_hash("th-1").await.unwrap().is_none());
}

async fn hosts_and_servers(s: S) {
    let h1 = host(&s, "alpha").await;
    let h2 = host(&s, "beta").await;
    assert!(matches!(
        s.create_host(NewHost {
            name: "alpha".into(),
            agent_id: None,
            os: HostOs::Windows,
            status: HostStatus::Pending
        })
        .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.get_host(h1.id).await.unwrap().unwrap(), h1);
    assert!(s.get_host(Uuid::new_v4()).await.unwrap().is_none());
    assert_eq!(s.list_hosts().await.unwrap(), vec![h1.clone(), h2.clone()]);
    let mut h1b = h1.clone();
    h1b.status = HostStatus::Online;
    h1b.agent_id = Some("agent-1".into());
    h1b.last_seen_at = Some(now());
    assert_eq!(s.update_host(&h1b).await.unwrap(), h1b);
    let mut ghost = h1b.clone();
    ghost.id = Uuid::new_v4();
    assert!(matches!(
        s.update_host(&ghost).await,
        Err(StoreError::NotFound)
    ));

    let a = s
        .create_server(h1.id, spec("main", 2302), &ports_of(&spec("main", 2302)))
        .await
        .unwrap();
    assert_eq!(a.revision, 1);
    assert!(matches!(
        s.create_server(h1.id, spec("main", 2402), &ports_of(&spec("main", 2402)))
            .await,
        Err(StoreError::Conflict(_))
    ));
    let b = s
        .create_server(h2.id, spec("main", 2302), &ports_of(&spec("main", 2302)))
        .await
        .unwrap();
    let c = s
        .create_server(h1.id, spec("coop", 2502), &ports_of(&spec("coop", 2502)))
        .await
        .unwrap();
    assert!(matches!(
        s.create_server(Uuid::new_v4(), spec("x", 1), &ports_of(&spec("x", 1)))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.get_server(a.id).await.unwrap().unwrap(), a);
    assert!(s.get_server(Uuid::new_v4()).await.unwrap().is_none());
    assert_eq!(s.list_servers(None).await.unwrap().len(), 3);
    assert_eq!(
        s.list_servers(Some(h1.id)).await.unwrap(),
        vec![c.clone(), a.clone()]
    );
    assert_eq!(
        s.list_servers_on_host(h2.id).await.unwrap(),
        vec![b.clone()]
    );

    let mut sp = spec("main", 2602);
    sp.desired_running = true;
    sp.restart_policy = json!({"mode": "always"});
    let a2 = s
        .update_server(a.id, 1, sp.clone(), &ports_of(&sp.clone()))
        .await
        .unwrap();
    assert_eq!(
        (a2.revision, a2.game_port, a2.desired_running),
        (2, 2602, true)
    );
    assert_eq!(a2.restart_policy, json!({"mode": "always"}));
    assert!(
        matches!(s.update_server(a.id, 1, sp.clone(), &ports_of(&sp.clone())).await, Err(StoreError::Conflict(ref w)) if w == "revision")
    );
    assert!(matches!(
        s.update_server(Uuid::new_v4(), 1, sp.clone(), &ports_of(&sp.clone()))
            .await,
        Err(StoreError::NotFound)
    ));
    // Renaming onto an existing name on the same host is a conflict.
    assert!(matches!(
        s.update_server(c.id, 1, spec("main", 1), &ports_of(&spec("main", 1)))
            .await,
        Err(StoreError::Conflict(_))
    ));

    let r = s.delete_host(h2.id).await;
    assert!(
        matches!(r, Err(StoreError::Conflict(_))),
        "host with servers: {r:?}"
    );
    s.delete_server(b.id).await.unwrap();
    assert!(matches!(
        s.delete_server(b.id).await,
        Err(StoreError::NotFound)
    ));
    s.delete_host(h2.id).await.unwrap();
    assert!(matches!(
        s.delete_host(h2.id).await,
        Err(StoreError::NotFound)
    ));
}

fn sec(kind: &str, content: serde_json::Value, secrets: Option<&[u8]>) -> ConfigSection {
    ConfigSection {
        section: kind.into(),
        content,
        secrets: secrets.map(<[u8]>::to_vec),
    }
}

async fn config_save_and_versions(s: S) {
    let srv = server(&s).await;
    let author = user(&s, "editor").await;
    let c0 = s.get_config(srv.id).await.unwrap();
    assert_eq!((c0.revision, c0.sections.len()), (0, 0));
    assert!(matches!(
        s.get_config(Uuid::new_v4()).await,
        Err(StoreError::NotFound)
    ));

    let v1 = s
        .save_config(
            srv.id,
            0,
            vec![
                sec("server", json!({"hostname": "My \"server\"", "missions": [{"template": "co10.Altis", "difficulty": "veteran"}]}), Some(&[1, 2, 3, 0, 255])),
                sec("basic", json!({"MaxMsgSend": 128}), None),
            ],
            Some(author.id),
            Some("first".into()),
        )
        .await
        .unwrap();
    assert_eq!(v1.version, 1);
    let c1 = s.get_config(srv.id).await.unwrap();
    assert_eq!(c1.revision, 1);
    assert_eq!(c1.sections.len(), 2);
    // Ordered by name.
    assert_eq!(kinds(&c1), ["basic", "server"]);
    assert_eq!(
        c1.sections[1].section.secrets.as_deref(),
        Some(&[1u8, 2, 3, 0, 255][..])
    );
    assert_eq!(c1.sections[0].section.secrets, None);
    assert!(c1.sections.iter().all(|x| x.revision == 1));

    // Stale revision -> conflict, nothing changes.
    let stale = s
        .save_config(srv.id, 0, vec![sec("basic", json!({}), None)], None, None)
        .await;
    assert!(
        matches!(stale, Err(StoreError::Conflict(ref w)) if w == "config_revision"),
        "{stale:?}"
    );
    assert!(matches!(
        s.save_config(Uuid::new_v4(), 0, vec![], None, None).await,
        Err(StoreError::NotFound)
    ));

    // Second save updates one section, adds another; snapshot holds all three.
    let v2 = s
        .save_config(
            srv.id,
            1,
            vec![
                sec("server", json!({"hostname": "renamed"}), Some(&[9, 9])),
                sec("rcon", json!({"port": 2306}), Some(&[7])),
            ],
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(v2.version, 2);
    assert_eq!(v2.sections.len(), 3);
    let c2 = s.get_config(srv.id).await.unwrap();
    assert_eq!(c2.revision, 2);
    let basic = c2
        .sections
        .iter()
        .find(|x| x.section.section == "basic")
        .unwrap();
    assert_eq!(basic.revision, 1, "untouched section keeps its revision");

    let list = s.list_config_versions(srv.id, 10).await.unwrap();
    assert_eq!(
        list.iter().map(|v| v.version).collect::<Vec<_>>(),
        vec![2, 1]
    );
    assert_eq!(list[1].author_user_id, Some(author.id));
    assert_eq!(list[1].comment.as_deref(), Some("first"));
    assert_eq!(s.list_config_versions(srv.id, 1).await.unwrap().len(), 1);

    let got1 = s.get_config_version(srv.id, 1).await.unwrap().unwrap();
    assert_eq!(got1, v1);
    assert_eq!(
        got1.sections[1].secrets.as_deref(),
        Some(&[1u8, 2, 3, 0, 255][..])
    );
    assert_eq!(s.get_config_version(srv.id, 2).await.unwrap().unwrap(), v2);
    assert!(s.get_config_version(srv.id, 3).await.unwrap().is_none());

    // Rollback = save the old snapshot as a new version.
    let v3 = s
        .save_config(
            srv.id,
            2,
            got1.sections.clone(),
            None,
            Some("rollback to 1".into()),
        )
        .await
        .unwrap();
    assert_eq!(v3.version, 3);
    let c3 = s.get_config(srv.id).await.unwrap();
    let server_sec = c3
        .sections
        .iter()
        .find(|x| x.section.section == "server")
        .unwrap();
    assert_eq!(server_sec.section, got1.sections[1]);

    // Deleting the user keeps the version, author becomes NULL.
    s.delete_user(author.id).await.unwrap();
    assert_eq!(
        s.get_config_version(srv.id, 1)
            .await
            .unwrap()
            .unwrap()
            .author_user_id,
        None
    );
}

async fn config_parallel_one_wins(s: S) {
    let srv = server(&s).await;
    s.save_config(
        srv.id,
        0,
        vec![sec("basic", json!({"n": 0}), None)],
        None,
        None,
    )
    .await
    .unwrap();
    let mut hs = Vec::new();
    for i in 0..100 {
        let s = s.clone();
        hs.push(tokio::spawn(async move {
            s.save_config(
                srv.id,
                1,
                vec![sec("basic", json!({"n": i}), None)],
                None,
                None,
            )
            .await
        }));
    }
    let (mut ok, mut conflict) = (0, 0);
    for h in hs {
        match h.await.unwrap() {
            Ok(v) => {
                assert_eq!(v.version, 2);
                ok += 1;
            }
            Err(StoreError::Conflict(_)) => conflict += 1,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!((ok, conflict), (1, 99));
    assert_eq!(s.get_config(srv.id).await.unwrap().revision, 2);
}

async fn config_parallel_retry_loses_nothing(s: S) {
    let srv = server(&s).await;
    let start = s.get_config(srv.id).await.unwrap().revision;
    let began = Instant::now();
    let mut hs = Vec::new();
    for i in 0..100 {
        let s = s.clone();
        hs.push(tokio::spawn(async move {
            let mut attempts = 0;
            loop {
                attempts += 1;
                let rev = s.get_config(srv.id).await.unwrap().revision;
                match s
                    .save_config(
                        srv.id,
                        rev,
                        vec![sec("profile", json!({"writer": i}), None)],
                        None,
                        Some(format!("w{i}")),
                    )
                    .await
                {
                    Ok(v) => return (v.version, attempts),
                    Err(StoreError::Conflict(_)) => tokio::task::yield_now().await,
                    Err(e) => panic!("unexpected {e:?}"),
                }
            }
        }));
    }
    let mut versions = HashSet::new();
    let mut total_attempts = 0;
    for h in hs {
        let (v, a) = h.await.unwrap();
        assert!(versions.insert(v), "version {v} handed out twice");
        total_attempts += a;
    }
    let end = s.get_config(srv.id).await.unwrap().revision;
    assert_eq!(end, start + 100);
    assert_eq!(versions.len(), 100);
    let listed = s.list_config_versions(srv.id, 1000).await.unwrap();
    assert_eq!(listed.len(), 100);
    let comments: HashSet<_> = listed.iter().filter_map(|v| v.comment.clone()).collect();
    assert_eq!(comments.len(), 100, "every writer's save is recorded");
    eprintln!(
        "[{}] 100 retrying writers: {total_attempts} attempts, {:?}",
        s.backend(),
        began.elapsed()
    );
}

async fn players_and_sessions_of_any_game(s: S) {
    let arma = server(&s).await;
    let pw_host = host(&s, "pw-host").await;
    let pw = s
        .create_server(pw_host.id, palworld("pw", 8211, 25575), &[8211, 25575])
        .await
        .unwrap();
    let join =
        |server_id: Uuid, account: &str, name: &str, at: OffsetDateTime| SessionChange::Join {
            server_id,
            account: account.into(),
            name: name.into(),
            ip: Some("198.51.100.4".into()),
            at,
        };
    // The same account id in two games is two players; a second join of a player who is
    // on the server only renames / refreshes the player.
    store_sessions(
        &s,
        arma.host_id,
        vec![
            join(arma.id, "acc-1", "Miller", t0()),
            join(arma.id, "acc-1", "Miller2", t0() + Duration::hours(1)),
        ],
    )
    .await;
    store_sessions(&s, pw_host.id, vec![join(pw.id, "acc-1", "Kerry", t0())]).await;
    let players = s.list_players(None, 10).await.unwrap();
    assert_eq!(
        players
            .iter()
            .map(|p| (
                p.game,
                p.account_id.as_str(),
                p.last_name.as_str(),
                p.first_seen,
                p.last_seen
            ))
            .collect::<Vec<_>>(),
        vec![
            (
                Game::Arma3,
                "acc-1",
                "Miller2",
                t0(),
                t0() + Duration::hours(1)
            ),
            (Game::Palworld, "acc-1", "Kerry", t0(), t0()),
        ]
    );
    let (miller, kerry) = (players[0].clone(), players[1].clone());
    assert_eq!(
        s.list_players(Some("KER"), 10).await.unwrap(),
        vec![kerry.clone()]
    );
    assert_eq!(s.list_players(None, 1).await.unwrap(), vec![miller.clone()]);

    let sessions = |server_id: Option<Uuid>, player_id: Option<Uuid>, open_only: bool| {
        let s = s.clone();
        async move {
            s.list_player_sessions(SessionQuery {
                server_id,
                player_id,
                open_only,
                limit: 10,
            })
            .await
            .unwrap()
        }
    };
    let open = sessions(Some(arma.id), None, true).await;
    assert_eq!(
        open.len(),
        1,
        "one open session per (server, player): {open:?}"
    );
    assert_eq!(
        (open[0].player_id, open[0].joined_at, open[0].ip.as_deref()),
        (miller.id, t0(), Some("198.51.100.4"))
    );
    assert_eq!(sessions(None, Some(kerry.id), false).await.len(), 1);

    // Leave by account closes the session of that game's player only; a new join opens a
    // new session.
    store_sessions(
        &s,
        arma.host_id,
        vec![
            SessionChange::Leave {
                server_id: arma.id,
                account: Some("acc-1".into()),
                name: "Miller2".into(),
                at: t0() + Duration::hours(2),
            },
            join(arma.id, "acc-1", "Miller2", t0() + Duration::hours(3)),
        ],
    )
    .await;
    let mine = sessions(None, Some(miller.id), false).await;
    assert_eq!(
        mine.iter()
            .map(|x| (x.joined_at, x.left_at))
            .collect::<Vec<_>>(),
        vec![
            (t0() + Duration::hours(3), None),
            (t0(), Some(t0() + Duration::hours(2))),
        ]
    );
    assert_eq!(sessions(Some(pw.id), None, true).await.len(), 1);
    // CloseAll closes every open session of its server, no other.
    store_sessions(
        &s,
        arma.host_id,
        vec![SessionChange::CloseAll {
            server_id: arma.id,
            at: t0() + Duration::hours(4),
        }],
    )
    .await;
    assert!(sessions(Some(arma.id), None, true).await.is_empty());
    assert_eq!(sessions(Some(pw.id), None, true).await.len(), 1);
}

async fn audit_filters_and_pagination(s: S) {
    let alice = user(&s, "alice").await;
    let mut all = Vec::new();
    for i in 0..25i64 {
        let ev = NewAuditEvent {
            // Pairs share a timestamp so the (ts, id) tie-break is exercised.
            ts: Some(t0() + Duration::seconds(i / 2)),
            actor_user_id: if i % 3 == 0 { None } else { Some(alice.id) },
            actor_kind: if i % 3 == 0 {
                ActorKind::System
            } else {
                ActorKind::User
            },
            action: if i % 2 == 0 {
                "server.update".into()
            } else {
                "user.login".into()
            },
            target_kind: Some("server".into()),
            target_id: Some(format!("srv-{}", i % 5)),
            ip: Some("192.0.2.1".into()),
            details: json!({"i": i, "nested": {"note": "it's \"fine\""}}),
        };
        all.push(s.insert_audit(ev).await.unwrap());
    }
    let q = |f: fn(&mut AuditQuery)| {
        let mut q = AuditQuery {
            limit: 100,
            ..Default::default()
        };
        f(&mut q);
        q
    };
    let page = s.query_audit(q(|_| {})).await.unwrap();
    assert_eq!(page.items.len(), 25);
    assert!(page.next.is_none());
    assert!(
        page.items
            .windows(2)
            .all(|w| (w[0].ts, w[0].id) > (w[1].ts, w[1].id)),
        "newest first"
    );
    assert_eq!(
        page.items.iter().find(|e| e.id == all[7].id).unwrap(),
        &all[7]
    );

    let by_actor = s
        .query_audit(AuditQuery {
            actor_user_id: Some(alice.id),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_actor.items.len(), 25 - 9);
    let by_kind = s
        .query_audit(AuditQuery {
            actor_kind: Some(ActorKind::System),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_kind.items.len(), 9);
    let by_action = s
        .query_audit(q(|q| q.action = Some("user.login".into())))
        .await
        .unwrap();
    assert_eq!(by_action.items.len(), 12);
    let by_target = s
        .query_audit(q(|q| {
            q.target_kind = Some("server".into());
            q.target_id = Some("srv-0".into());
        }))
        .await
        .unwrap();
    assert_eq!(by_target.items.len(), 5);
    let range = s
        .query_audit(AuditQuery {
            from: Some(t0() + Duration::seconds(2)),
            to: Some(t0() + Duration::seconds(4)),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        range.items.len(),
        4,
        "ts 2,2,3,3 (from inclusive, to exclusive)"
    );

    // Cursor pagination in pages of 4 visits every event exactly once, in order.
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let p = s
            .query_audit(AuditQuery {
                before,
                limit: 4,
                ..Default::default()
            })
            .await
            .unwrap();
        seen.extend(p.items.iter().map(|e| e.id));
        match p.next {
            Some(c) => before = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, page.items.iter().map(|e| e.id).collect::<Vec<_>>());

    // Combined filter + cursor.
    let p1 = s
        .query_audit(AuditQuery {
            action: Some("server.update".into()),
            limit: 5,
            ..Default::default()
        })
        .await
        .unwrap();
    let p2 = s
        .query_audit(AuditQuery {
            action: Some("server.update".into()),
            before: p1.next,
            limit: 5,
            ..Default::default()
        })
        .await
        .unwrap();
    let p3 = s
        .query_audit(AuditQuery {
            action: Some("server.update".into()),
            before: p2.next,
            limit: 5,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((p1.items.len(), p2.items.len(), p3.items.len()), (5, 5, 3));
    assert!(p3.next.is_none());

    assert_eq!(
        s.prune_retention(RetentionCutoffs {
            audit_before: t0() + Duration::seconds(5),
            ..no_cutoffs()
        })
        .await
        .unwrap()
        .unwrap()
        .audit,
        10
    );
    assert_eq!(s.query_audit(q(|_| {})).await.unwrap().items.len(), 15);
}

async fn logs_at_scale(s: S) {
    let a = server(&s).await;
    let b = server(&s).await;
    const N: i64 = 200_000;
    const BATCH: i64 = 5_000;
    let levels = [
        LogLevel::Debug,
        LogLevel::Info,
        LogLevel::Info,
        LogLevel::Warn,
        LogLevel::Error,
    ];
    let began = Instant::now();
    let mut seq = 0;
    while seq < N {
        let lines: Vec<NewLogLine> = (seq..seq + BATCH)
            .map(|i| NewLogLine {
                server_id: if i % 4 == 0 { b.id } else { a.id },
                seq: i,
                ts: t0() + Duration::milliseconds(i * 10),
                level: levels[(i % 5) as usize],
                text: if i % 10_000 == 1234 {
                    format!("Player \"Needle_{i}\" connected (100% legit_user)")
                } else {
                    format!("{:>8} Mission tick {i}: units={} fps=48.9 ÄÖÜ", i, i % 97)
                },
            })
            .collect();
        assert_eq!(store_logs(&s, lines).await.unwrap(), BATCH as u64);
        seq += BATCH;
    }
    let ins = began.elapsed();
    eprintln!(
        "[{}] inserted {N} log lines in batches of {BATCH}: {ins:?} ({:.0} lines/s)",
        s.backend(),
        N as f64 / ins.as_secs_f64()
    );
    assert_eq!(store_logs(&s, vec![]).await.unwrap(), 0);

    let timed = |label: &'static str, q: LogQuery| {
        let s = s.clone();
        async move {
            let t = Instant::now();
            let p = s.query_logs(q).await.unwrap();
            eprintln!(
                "[{}] query_logs {label}: {} rows in {:?}",
                s.backend(),
                p.items.len(),
                t.elapsed()
            );
            p
        }
    };

    let latest = timed(
        "latest 100 of server",
        LogQuery {
            server_id: Some(a.id),
            limit: 100,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(latest.items.len(), 100);
    assert!(
        latest
            .items
            .windows(2)
            .all(|w| (w[0].ts, w[0].id) > (w[1].ts, w[1].id))
    );
    assert!(latest.items.iter().all(|l| l.server_id == a.id));
    assert_eq!(latest.items[0].seq, N - 1);
    assert!(latest.next.is_some());

    let errors = timed(
        "level>=error",
        LogQuery {
            server_id: Some(a.id),
            min_level: Some(LogLevel::Error),
            limit: 50,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(errors.items.len(), 50);
    assert!(errors.items.iter().all(|l| l.level == LogLevel::Error));

    let from = t0() + Duration::seconds(100);
    let to = t0() + Duration::seconds(101);
    let window = timed(
        "1s window",
        LogQuery {
            server_id: None,
            from: Some(from),
            to: Some(to),
            limit: 1000,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        window.items.len(),
        100,
        "10 ms spacing -> 100 lines per second (from incl., to excl.)"
    );
    assert!(window.items.iter().all(|l| l.ts >= from && l.ts < to));

    let needle = timed(
        "text 'needle_' (rare, case-insensitive)",
        LogQuery {
            contains: Some("needle_".into()),
            limit: 100,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(needle.items.len(), 20);
    assert!(needle.items.iter().all(|l| l.text.contains("Needle_")));
    let pct = timed(
        "text '100% legit_' (LIKE metachars)",
        LogQuery {
            contains: Some("100% legit_".into()),
            limit: 100,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(pct.items.len(), 20);
    let none = timed(
        "text '100%% ' (no match)",
        LogQuery {
            contains: Some("0%%".into()),
            limit: 100,
            ..Default::default()
        },
    )
    .await;
    assert!(none.items.is_empty());
    let quoted = timed(
        "text with quote",
        LogQuery {
            contains: Some("\"Needle_1234\"".into()),
            limit: 100,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(quoted.items.len(), 1);
    let common = timed(
        "text 'mission tick' (common) server a",
        LogQuery {
            server_id: Some(a.id),
            contains: Some("mission tick".into()),
            limit: 200,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(common.items.len(), 200);
    let short = timed(
        "text 'äö' (2 chars, scan)",
        LogQuery {
            server_id: Some(b.id),
            contains: Some("ÄÖ".into()),
            limit: 10,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(short.items.len(), 10);
    let combo = timed(
        "server+level+range+text",
        LogQuery {
            server_id: Some(b.id),
            min_level: Some(LogLevel::Debug),
            from: Some(t0()),
            to: Some(t0() + Duration::seconds(600)),
            contains: Some("tick 4".into()),
            limit: 20,
            ..Default::default()
        },
    )
    .await;
    assert!(!combo.items.is_empty());
    assert!(
        combo
            .items
            .iter()
            .all(|l| l.server_id == b.id && l.text.contains("tick 4"))
    );

    // Cursor pagination over a window.
    let mut before = None;
    let mut ids = HashSet::new();
    loop {
        let p = s
            .query_logs(LogQuery {
                server_id: Some(b.id),
                from: Some(from),
                to: Some(to),
                before,
                limit: 7,
                ..Default::default()
            })
            .await
            .unwrap();
        for l in &p.items {
            assert!(ids.insert(l.id));
        }
        match p.next {
            Some(c) => before = Some(c),
            None => break,
        }
    }
    assert_eq!(ids.len(), 25);

    let t = Instant::now();
    let pruned = s
        .prune_retention(RetentionCutoffs {
            logs_before: t0() + Duration::seconds(1000),
            ..no_cutoffs()
        })
        .await
        .unwrap()
        .unwrap()
        .logs;
    eprintln!(
        "[{}] prune logs: {pruned} rows in {:?}",
        s.backend(),
        t.elapsed()
    );
    assert_eq!(pruned, 100_000);
    let rest = s
        .query_logs(LogQuery {
            from: None,
            to: Some(t0() + Duration::seconds(1000)),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(rest.items.is_empty());
    // The search index follows deletions.
    assert_eq!(
        s.query_logs(LogQuery {
            contains: Some("needle_".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .items
        .len(),
        10
    );
}

async fn metrics(s: S) {
    let srv = server(&s).await;
    let h = s.get_host(srv.host_id).await.unwrap().unwrap();
    let samples: Vec<NewMetricSample> = (0..1200)
        .map(|i| NewMetricSample {
            server_id: if i % 2 == 0 { Some(srv.id) } else { None },
            host_id: if i % 2 == 1 { Some(h.id) } else { None },
            ts: Some(t0() + Duration::seconds(i)),
            cpu_percent: Some(12.5),
            rss_bytes: Some(1 << 33),
            players: Some(i % 60),
            fps: Some(47.25),
        })
        .collect();
    assert_eq!(store_metrics(&s, samples).await.unwrap(), 1200);
    assert_eq!(
        store_metrics(
            &s,
            vec![NewMetricSample {
                server_id: Some(srv.id),
                ..Default::default()
            }]
        )
        .await
        .unwrap(),
        1
    );
    let m = s
        .query_metrics(MetricQuery {
            server_id: Some(srv.id),
            to: Some(t0() + Duration::seconds(100)),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(m.len(), 50);
    assert!(m.windows(2).all(|w| w[0].ts < w[1].ts), "oldest first");
    assert_eq!(
        (m[0].cpu_percent, m[0].rss_bytes, m[0].players, m[0].fps),
        (Some(12.5), Some(1 << 33), Some(0), Some(47.25))
    );
    let hm = s
        .query_metrics(MetricQuery {
            host_id: Some(h.id),
            from: Some(t0() + Duration::seconds(1000)),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(hm.len(), 100);
    assert_eq!(
        s.query_metrics(MetricQuery {
            server_id: Some(srv.id),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .len(),
        10
    );
    assert_eq!(
        s.prune_retention(RetentionCutoffs {
            metrics_before: t0() + Duration::seconds(600),
            ..no_cutoffs()
        })
        .await
        .unwrap()
        .unwrap()
        .metrics,
        600
    );
    assert_eq!(
        s.query_metrics(MetricQuery {
            host_id: Some(h.id),
            limit: 10_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .len(),
        300
    );
}

async fn hostile_strings(s: S) {
    let nasty = [
        "Robert'); DROP TABLE users;--",
        "double \"quotes\" and 'single' and `back` and \\backslash\\",
        "emoji 🎮🔥👩‍👩‍👧 and RTL \u{202e}txet and zero-width\u{200b}",
        "percent % underscore _ star * caret ^ dollar $1 ?1 :name",
        "line1\nline2\r\n\ttab",
    ];
    for (i, txt) in nasty.iter().enumerate() {
        let u = s
            .create_user(NewUser {
                username: format!("{txt}{i}"),
                password_hash: txt.to_string(),
                role: Role::Viewer,
                must_change_password: false,
            })
            .await
            .unwrap();
        let back = s.get_user_by_username(&u.username).await.unwrap().unwrap();
        assert_eq!(back.username, format!("{txt}{i}"));
        assert_eq!(back.password_hash, *txt);
    }
    assert_eq!(s.count_users().await.unwrap(), nasty.len() as i64);
    // Wildcards in a username lookup are literals.
    assert!(s.get_user_by_username("percent %").await.unwrap().is_none());

    let big: String = "Aö🎮'\"".repeat(100 * 1024 / 12);
    assert!(big.len() >= 100 * 1024 / 2);
    let srv = server(&s).await;
    store_logs(
        &s,
        vec![NewLogLine {
            server_id: srv.id,
            seq: 1,
            ts: t0(),
            level: LogLevel::Info,
            text: big.clone(),
        }],
    )
    .await
    .unwrap();
    let got = s
        .query_logs(LogQuery {
            server_id: Some(srv.id),
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(got.items[0].text, big);

    let details = json!({"quote": nasty[0], "emoji": nasty[2], "big": big, "nested": [nasty[3], {"k'ey\"": nasty[4]}]});
    let ev = s
        .insert_audit(NewAuditEvent {
            ts: None,
            actor_user_id: None,
            actor_kind: ActorKind::Agent,
            action: nasty[1].into(),
            target_kind: Some(nasty[2].into()),
            target_id: Some(nasty[0].into()),
            ip: None,
            details: details.clone(),
        })
        .await
        .unwrap();
    let p = s
        .query_audit(AuditQuery {
            action: Some(nasty[1].into()),
            target_id: Some(nasty[0].into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(p.items, vec![ev]);
    assert_eq!(p.items[0].details, details);

    let v = s
        .save_config(
            srv.id,
            0,
            vec![sec(
                "server",
                json!({"motd": nasty, "big": big}),
                Some(big.as_bytes()),
            )],
            None,
            Some(nasty[2].into()),
        )
        .await
        .unwrap();
    assert_eq!(s.get_config_version(srv.id, 1).await.unwrap().unwrap(), v);

    // NUL is refused the same way on both backends, and nothing is written.
    let nul = s
        .create_user(NewUser {
            username: "nul\0user".into(),
            password_hash: "h".into(),
            role: Role::Viewer,
            must_change_password: false,
        })
        .await;
    assert!(matches!(nul, Err(StoreError::InvalidInput(_))), "{nul:?}");
    // (Agent log lines are scrubbed instead: see ingest_logs_nul_and_ack.)
    let nul = s
        .save_config(
            srv.id,
            1,
            vec![sec("basic", json!({"x": ["ok", "bad\u{0}"]}), None)],
            None,
            None,
        )
        .await;
    assert!(matches!(nul, Err(StoreError::InvalidInput(_))));
    assert_eq!(s.get_config(srv.id).await.unwrap().revision, 1);
    assert_eq!(s.count_users().await.unwrap(), nasty.len() as i64);
}

// ------------------------------------------------------------------ count, ports, config removal, retention

fn palworld(name: &str, port: i64, rcon: i64) -> ServerSpec {
    ServerSpec {
        name: name.into(),
        game: Game::Palworld,
        game_port: port,
        rcon_port: rcon,
        executable_path: "PalServer.sh".into(),
        restart_policy: json!({}),
        desired_running: false,
    }
}

fn is_port_conflict(r: &StoreResult<Server>, port: i64) -> bool {
    matches!(r, Err(StoreError::Conflict(w)) if *w == format!("port {port}"))
}

async fn server_count_and_port_guard(s: S) {
    // The store claims exactly the ports it is given (duplicates ignored), not what it
    // could derive from the game.
    let h3 = host(&s, "p3").await;
    s.create_server(h3.id, palworld("x", 9100, 9101), &[9100, 9100, 9500])
        .await
        .unwrap();
    let r = s
        .create_server(h3.id, palworld("y", 9200, 9201), &[9200, 9500])
        .await;
    assert!(is_port_conflict(&r, 9500), "{r:?}");
    s.create_server(h3.id, palworld("y", 9101, 9201), &[9101, 9201])
        .await
        .unwrap();
    s.delete_server(s.list_servers_on_host(h3.id).await.unwrap()[0].id)
        .await
        .unwrap();
    s.delete_server(s.list_servers_on_host(h3.id).await.unwrap()[0].id)
        .await
        .unwrap();
    let h1 = host(&s, "p1").await;
    let h2 = host(&s, "p2").await;
    assert_eq!(s.count_servers(None).await.unwrap(), 0);
    // a: 2302..=2306 (+ rcon 2304 inside the range).
    let a = s
        .create_server(h1.id, spec("a", 2302), &ports_of(&spec("a", 2302)))
        .await
        .unwrap();
    // Overlaps a's range at 2306 (game port of b) -> conflict; nothing of b is kept.
    let r = s
        .create_server(h1.id, spec("b", 2306), &ports_of(&spec("b", 2306)))
        .await;
    assert!(is_port_conflict(&r, 2306), "{r:?}");
    // RCon port inside a's range.
    let r = s
        .create_server(
            h1.id,
            palworld("pw", 8211, 2305),
            &ports_of(&palworld("pw", 8211, 2305)),
        )
        .await;
    assert!(is_port_conflict(&r, 2305), "{r:?}");
    assert_eq!(s.count_servers(Some(h1.id)).await.unwrap(), 1);
    // The failed creates left no ports behind: 2307.. and 8211 are free.
    let b = s
        .create_server(h1.id, spec("b", 2307), &ports_of(&spec("b", 2307)))
        .await
        .unwrap();
    let pw = s
        .create_server(
            h1.id,
            palworld("pw", 8211, 25575),
            &ports_of(&palworld("pw", 8211, 25575)),
        )
        .await
        .unwrap();
    // The same ports on another host are fine.
    s.create_server(h2.id, spec("a", 2302), &ports_of(&spec("a", 2302)))
        .await
        .unwrap();
    assert_eq!(s.count_servers(None).await.unwrap(), 4);
    assert_eq!(s.count_servers(Some(h1.id)).await.unwrap(), 3);
    assert_eq!(s.count_servers(Some(h2.id)).await.unwrap(), 1);
    assert_eq!(s.count_servers(Some(Uuid::new_v4())).await.unwrap(), 0);

    // Update: moving b onto a's ports conflicts and changes nothing.
    let r = s
        .update_server(
            b.id,
            b.revision,
            spec("b", 2300),
            &ports_of(&spec("b", 2300)),
        )
        .await;
    assert!(is_port_conflict(&r, 2302), "{r:?}");
    assert_eq!(s.get_server(b.id).await.unwrap().unwrap(), b);
    // b still holds 2307..: a third server cannot take 2309.
    let r = s
        .create_server(
            h1.id,
            palworld("c", 2309, 9000),
            &ports_of(&palworld("c", 2309, 9000)),
        )
        .await;
    assert!(is_port_conflict(&r, 2309), "{r:?}");
    // Moving a away frees its old ports, and claims the new ones.
    let a2 = s
        .update_server(
            a.id,
            a.revision,
            spec("a", 2402),
            &ports_of(&spec("a", 2402)),
        )
        .await
        .unwrap();
    let b2 = s
        .update_server(
            b.id,
            b.revision,
            spec("b", 2300),
            &ports_of(&spec("b", 2300)),
        )
        .await
        .unwrap();
    assert_eq!((a2.game_port, b2.game_port), (2402, 2300));
    let r = s
        .create_server(
            h1.id,
            palworld("c", 2404, 9000),
            &ports_of(&palworld("c", 2404, 9000)),
        )
        .await;
    assert!(is_port_conflict(&r, 2404), "{r:?}");
    // Keeping its own ports on update is not a conflict with itself.
    let a3 = s
        .update_server(
            a.id,
            a2.revision,
            spec("a-renamed", 2402),
            &ports_of(&spec("a-renamed", 2402)),
        )
        .await
        .unwrap();
    assert_eq!(a3.revision, a2.revision + 1);
    // Deleting a server frees its ports.
    s.delete_server(pw.id).await.unwrap();
    s.create_server(
        h1.id,
        palworld("pw2", 25575, 8211),
        &ports_of(&palworld("pw2", 25575, 8211)),
    )
    .await
    .unwrap();
    assert_eq!(s.count_servers(Some(h1.id)).await.unwrap(), 3);
}

async fn server_port_race_one_wins(s: S) {
    let h = host(&s, "race").await;
    // 5 creates whose ranges (2302 + i ..= 2306 + i) all overlap pairwise: exactly one wins.
    let mut tasks = Vec::new();
    for i in 0..5i64 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.create_server(
                h.id,
                spec(&format!("r{i}"), 2302 + i),
                &ports_of(&spec(&format!("r{i}"), 2302 + i)),
            )
            .await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(StoreError::Conflict(w)) => assert!(w.starts_with("port "), "{w}"),
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(s.count_servers(Some(h.id)).await.unwrap(), 1);
}

fn kinds(c: &ServerConfig) -> Vec<&str> {
    c.sections
        .iter()
        .map(|x| x.section.section.as_str())
        .collect()
}

async fn config_delete_and_replace_sections(s: S) {
    let srv = server(&s).await;
    s.save_config(
        srv.id,
        0,
        vec![
            sec("server", json!({"hostname": "a"}), Some(&[7])),
            sec("basic", json!({"x": 1}), None),
        ],
        None,
        None,
    )
    .await
    .unwrap();
    s.save_config(
        srv.id,
        1,
        vec![
            sec("launch", json!({"mods": []}), None),
            sec("rcon", json!({}), Some(&[9])),
        ],
        None,
        None,
    )
    .await
    .unwrap();
    let c2 = s.get_config(srv.id).await.unwrap();
    // Ordered by name.
    assert_eq!(kinds(&c2), ["basic", "launch", "rcon", "server"]);

    // Delete = replace with the others: stale revision refused and nothing changes.
    let without_launch: Vec<ConfigSection> = c2
        .sections
        .iter()
        .map(|x| x.section.clone())
        .filter(|x| x.section != "launch")
        .collect();
    let r = s
        .replace_config(srv.id, 1, without_launch.clone(), None, None)
        .await;
    assert!(
        matches!(r, Err(StoreError::Conflict(ref w)) if w == "config_revision"),
        "{r:?}"
    );
    assert!(matches!(
        s.replace_config(Uuid::new_v4(), 0, vec![], None, None)
            .await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(s.get_config(srv.id).await.unwrap(), c2);
    let v3 = s
        .replace_config(srv.id, 2, without_launch, None, Some("drop launch".into()))
        .await
        .unwrap();
    assert_eq!(v3.version, 3);
    let got: Vec<_> = v3.sections.iter().map(|x| x.section.as_str()).collect();
    assert_eq!(got, ["basic", "rcon", "server"]);
    let c3 = s.get_config(srv.id).await.unwrap();
    assert_eq!(c3.revision, 3);
    assert_eq!(kinds(&c3), ["basic", "rcon", "server"]);
    assert_eq!(
        s.get_config_version(srv.id, 3)
            .await
            .unwrap()
            .unwrap()
            .sections
            .len(),
        3
    );

    // Replace with version 1's sections (rollback): rcon, added later, goes; server keeps
    // its secrets; one new version.
    let v1 = s.get_config_version(srv.id, 1).await.unwrap().unwrap();
    let r = s
        .replace_config(srv.id, 2, v1.sections.clone(), None, None)
        .await;
    assert!(matches!(r, Err(StoreError::Conflict(_))), "{r:?}");
    let v4 = s
        .replace_config(
            srv.id,
            3,
            v1.sections.clone(),
            None,
            Some("rollback".into()),
        )
        .await
        .unwrap();
    assert_eq!(v4.version, 4);
    let c4 = s.get_config(srv.id).await.unwrap();
    assert_eq!(c4.revision, 4);
    assert_eq!(kinds(&c4), ["basic", "server"]);
    let server_sec = c4
        .sections
        .iter()
        .find(|x| x.section.section == "server")
        .unwrap();
    assert_eq!(server_sec.section.secrets.as_deref(), Some(&[7u8][..]));
    assert_eq!(server_sec.revision, 4);
    assert_eq!(
        s.get_config_version(srv.id, 4)
            .await
            .unwrap()
            .unwrap()
            .sections
            .len(),
        2
    );
    // Replacing with nothing empties the config (still a version).
    let v5 = s
        .replace_config(srv.id, 4, vec![], None, None)
        .await
        .unwrap();
    assert!(v5.sections.is_empty());
    assert!(s.get_config(srv.id).await.unwrap().sections.is_empty());
    assert_eq!(s.list_config_versions(srv.id, 100).await.unwrap().len(), 5);
}

/// Section names are the game's business: any name is stored (and its secrets carried
/// through versions), except an empty one or one the snapshot codec cannot carry.
async fn config_sections_are_free_text(s: S) {
    let srv = server(&s).await;
    let long = "n".repeat(255);
    let v = s
        .save_config(
            srv.id,
            0,
            vec![
                sec("PalWorldSettings.ini", json!({"a": 1}), Some(&[1, 2])),
                sec(&long, json!({}), Some(&[3])),
            ],
            None,
            None,
        )
        .await
        .unwrap();
    let back = s.get_config_version(srv.id, 1).await.unwrap().unwrap();
    assert_eq!(back, v);
    assert_eq!(
        back.sections
            .iter()
            .map(|x| (x.section.as_str(), x.secrets.clone()))
            .collect::<Vec<_>>(),
        [
            ("PalWorldSettings.ini", Some(vec![1, 2])),
            (long.as_str(), Some(vec![3])),
        ]
    );
    for bad in [String::new(), "n".repeat(256), "a\0b".to_owned()] {
        let r = s
            .save_config(srv.id, 1, vec![sec(&bad, json!({}), None)], None, None)
            .await;
        assert!(
            matches!(r, Err(StoreError::InvalidInput(_))),
            "{bad:?}: {r:?}"
        );
    }
    assert_eq!(s.get_config(srv.id).await.unwrap().revision, 1);
}

/// `set_desired_running` changes that one column: no revision bump, no port re-claim, and
/// it works on a server whose spec changed meanwhile.
async fn set_desired_running_touches_nothing_else(s: S) {
    let srv = server(&s).await;
    assert!(!srv.desired_running);
    s.set_desired_running(srv.id, true).await.unwrap();
    let got = s.get_server(srv.id).await.unwrap().unwrap();
    assert_eq!(
        got,
        Server {
            desired_running: true,
            ..srv.clone()
        }
    );
    // The cached list sees the write at once.
    let all = s.list_all_servers().await.unwrap();
    assert!(all.iter().any(|x| x.id == srv.id && x.desired_running));
    // A spec update with the unchanged revision still works (no bump happened).
    let mut sp = spec("main", 2302);
    sp.desired_running = true;
    let up = s
        .update_server(srv.id, srv.revision, sp.clone(), &ports_of(&sp))
        .await
        .unwrap();
    assert_eq!(up.revision, srv.revision + 1);
    s.set_desired_running(srv.id, false).await.unwrap();
    assert!(!s.get_server(srv.id).await.unwrap().unwrap().desired_running);
    assert!(matches!(
        s.set_desired_running(Uuid::new_v4(), true).await,
        Err(StoreError::NotFound)
    ));
}

async fn retention_prunes_old_keeps_recent(s: S) {
    let srv = server(&s).await;
    let u = user(&s, "ret").await;
    let t = now();
    let old = t - Duration::days(40);
    let recent = t - Duration::days(1);
    store_logs(
        &s,
        [old, recent]
            .iter()
            .enumerate()
            .map(|(i, ts)| NewLogLine {
                server_id: srv.id,
                seq: i as i64,
                ts: *ts,
                level: LogLevel::Info,
                text: format!("line {i}"),
            })
            .collect(),
    )
    .await
    .unwrap();
    store_metrics(
        &s,
        [old, recent]
            .iter()
            .map(|ts| NewMetricSample {
                server_id: Some(srv.id),
                ts: Some(*ts),
                players: Some(1),
                ..Default::default()
            })
            .collect(),
    )
    .await
    .unwrap();
    for ts in [old, recent] {
        s.insert_audit(NewAuditEvent {
            ts: Some(ts),
            actor_user_id: None,
            actor_kind: ActorKind::System,
            action: "test.retention".into(),
            target_kind: None,
            target_id: None,
            ip: None,
            details: json!({}),
        })
        .await
        .unwrap();
    }
    let join = |account: &str, at: OffsetDateTime| SessionChange::Join {
        server_id: srv.id,
        account: account.into(),
        name: account.into(),
        ip: None,
        at,
    };
    let leave = |account: &str, at: OffsetDateTime| SessionChange::Leave {
        server_id: srv.id,
        account: Some(account.into()),
        name: account.into(),
        at,
    };
    store_sessions(
        &s,
        srv.host_id,
        vec![
            join("guid-ret", old),
            leave("guid-ret", old + Duration::hours(1)),
            // Old but still open: kept (the player is on the server).
            join("guid-ret", old),
            join("guid-ret2", recent),
            leave("guid-ret2", recent + Duration::hours(1)),
        ],
    )
    .await;
    let before = s
        .list_player_sessions(SessionQuery {
            server_id: Some(srv.id),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(before.len(), 3);
    let old_open = before.iter().find(|x| x.left_at.is_none()).unwrap().clone();
    let recent_closed = before
        .iter()
        .find(|x| x.joined_at == recent)
        .unwrap()
        .clone();
    let fam = Uuid::new_v4();
    let mut expired = new_rt(u.id, fam, "rt-expired");
    expired.expires_at = t - Duration::hours(1);
    s.insert_refresh_token(expired).await.unwrap();
    let mut live = new_rt(u.id, fam, "rt-live");
    live.expires_at = t + Duration::days(1);
    s.insert_refresh_token(live).await.unwrap();

    let cut = t - Duration::days(30);
    let cutoffs = RetentionCutoffs {
        logs_before: cut,
        metrics_before: cut,
        audit_before: cut,
        sessions_before: cut,
        refresh_tokens_before: t,
        events_before: cut,
        rollups_before: cut,
        join_tokens_before: t - Duration::days(1),
    };
    let report = s
        .prune_retention(cutoffs)
        .await
        .unwrap()
        .expect("not locked");
    assert_eq!(
        report,
        PruneReport {
            logs: 1,
            metrics: 1,
            audit: 1,
            sessions: 1,
            refresh_tokens: 1,
            // The old sample's 1-minute, 5-minute and 1-hour buckets.
            rollups: 3,
            ..PruneReport::default()
        }
    );
    let logs = s
        .query_logs(LogQuery {
            server_id: Some(srv.id),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(logs.items.len(), 1);
    assert_eq!(logs.items[0].ts, recent);
    let m = s
        .query_metrics(MetricQuery {
            server_id: Some(srv.id),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].ts, recent);
    let a = s
        .query_audit(AuditQuery {
            action: Some("test.retention".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(a.items.len(), 1);
    assert_eq!(a.items[0].ts, recent);
    let sessions: HashSet<Uuid> = s
        .list_player_sessions(SessionQuery {
            server_id: Some(srv.id),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|x| x.id)
        .collect();
    assert_eq!(sessions, HashSet::from([old_open.id, recent_closed.id]));
    assert!(
        s.get_refresh_token_by_hash("rt-expired")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.get_refresh_token_by_hash("rt-live")
            .await
            .unwrap()
            .is_some()
    );
    // A second run finds nothing.
    assert_eq!(
        s.prune_retention(cutoffs).await.unwrap(),
        Some(PruneReport::default())
    );
}

/// PostgreSQL: while another session holds the retention lock, a run prunes nothing and
/// reports `None`; once released, the run proceeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_retention_lock_skips_when_held() {
    run_pg_url(|s, url| async move {
        use sqlx::Connection;
        let srv = server(&s).await;
        store_logs(
            &s,
            vec![NewLogLine {
                server_id: srv.id,
                seq: 1,
                ts: now() - Duration::days(90),
                level: LogLevel::Info,
                text: "old".into(),
            }],
        )
        .await
        .unwrap();
        let t = now();
        let cutoffs = RetentionCutoffs {
            logs_before: t,
            metrics_before: t,
            audit_before: t - Duration::days(1),
            sessions_before: t,
            refresh_tokens_before: t,
            events_before: t,
            rollups_before: t,
            join_tokens_before: t,
        };
        let mut other = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(RETENTION_LOCK_KEY)
            .execute(&mut other)
            .await
            .unwrap();
        assert_eq!(s.prune_retention(cutoffs).await.unwrap(), None);
        let q = LogQuery {
            server_id: Some(srv.id),
            limit: 10,
            ..Default::default()
        };
        assert_eq!(s.query_logs(q.clone()).await.unwrap().items.len(), 1);
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(RETENTION_LOCK_KEY)
            .execute(&mut other)
            .await
            .unwrap();
        let r = s
            .prune_retention(cutoffs)
            .await
            .unwrap()
            .expect("lock free");
        assert_eq!(r.logs, 1);
        assert!(s.query_logs(q).await.unwrap().items.is_empty());
        // The run released its transaction lock: another session can take it.
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(RETENTION_LOCK_KEY)
            .fetch_one(&mut other)
            .await
            .unwrap();
        assert!(got);
    })
    .await;
}

/// Like `run_pg`, also passing the database URL.
async fn run_pg_url<F, Fut>(f: F)
where
    F: FnOnce(S, String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    if std::env::var("LANGUARD_TEST_PG").as_deref() == Ok("skip") {
        eprintln!("LANGUARD_TEST_PG=skip: PostgreSQL variant skipped");
        return;
    }
    use sqlx::Connection;
    let admin_url = pg_admin_url();
    let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
    let name = format!("languard_t_{}", Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let (base, _) = admin_url.rsplit_once('/').unwrap();
    let url = format!("{base}/{name}");
    let res = match connect(&url).await {
        Ok(store) => tokio::spawn(f(store, url))
            .await
            .map_err(|e| e.into_panic()),
        Err(e) => Err(Box::new(format!("connect failed: {e:?}")) as Box<dyn std::any::Any + Send>),
    };
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    if let Err(p) = res {
        std::panic::resume_unwind(p);
    }
}

// ------------------------------------------------------------------ token revocation / admins

async fn admin(s: &S, name: &str) -> User {
    let u = user(s, name).await;
    s.update_user(
        u.id,
        UserUpdate {
            role: Some(Role::Admin),
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

async fn tokens_valid_after_bumps(s: S) {
    let u = user(&s, "tva").await;
    assert_eq!(s.tokens_valid_after(u.id).await.unwrap(), Some(0));
    s.bump_tokens_valid_after(u.id, 1_700_000_000_000_000)
        .await
        .unwrap();
    assert_eq!(
        s.tokens_valid_after(u.id).await.unwrap(),
        Some(1_700_000_000_000_000)
    );
    // Never lowered.
    s.bump_tokens_valid_after(u.id, 5).await.unwrap();
    assert_eq!(
        s.tokens_valid_after(u.id).await.unwrap(),
        Some(1_700_000_000_000_000)
    );
    assert_eq!(s.tokens_valid_after(Uuid::new_v4()).await.unwrap(), None);
    assert!(matches!(
        s.bump_tokens_valid_after(Uuid::new_v4(), 1).await,
        Err(StoreError::NotFound)
    ));
    // Other user fields are untouched by a bump.
    let again = s.get_user_by_id(u.id).await.unwrap().unwrap();
    assert_eq!(again, u);
}

async fn last_admin_guard(s: S) {
    let a = admin(&s, "only-admin").await;
    let op = user(&s, "op").await;
    let last = |r: StoreResult<User>| matches!(r, Err(StoreError::Conflict(w)) if w == LAST_ADMIN);
    assert!(last(
        s.update_user(
            a.id,
            UserUpdate {
                role: Some(Role::Viewer),
                ..Default::default()
            }
        )
        .await
    ));
    assert!(last(
        s.update_user(
            a.id,
            UserUpdate {
                disabled: Some(true),
                ..Default::default()
            }
        )
        .await
    ));
    assert!(matches!(s.delete_user(a.id).await, Err(StoreError::Conflict(w)) if w == LAST_ADMIN));
    // Other changes of the last admin and changes of non-admins pass.
    s.update_user(
        a.id,
        UserUpdate {
            must_change_password: Some(true),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    s.update_user(
        op.id,
        UserUpdate {
            disabled: Some(true),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(matches!(
        s.update_user(
            Uuid::new_v4(),
            UserUpdate {
                role: Some(Role::Viewer),
                ..Default::default()
            }
        )
        .await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.delete_user(Uuid::new_v4()).await,
        Err(StoreError::NotFound)
    ));
    // With a second enabled admin, the first can go.
    let b = admin(&s, "second-admin").await;
    s.update_user(
        a.id,
        UserUpdate {
            role: Some(Role::Operator),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(matches!(s.delete_user(b.id).await, Err(StoreError::Conflict(w)) if w == LAST_ADMIN));
    // A disabled admin does not count as the remaining admin.
    let c = admin(&s, "third-admin").await;
    s.update_user(
        c.id,
        UserUpdate {
            disabled: Some(true),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(last(
        s.update_user(
            b.id,
            UserUpdate {
                role: Some(Role::Viewer),
                ..Default::default()
            }
        )
        .await
    ));
}

async fn last_admin_concurrent_demotions_one_fails(s: S) {
    for round in 0..6 {
        let a = admin(&s, &format!("a{round}")).await;
        let b = admin(&s, &format!("b{round}")).await;
        // Only a and b are enabled admins when the race starts.
        for u in s.list_users().await.unwrap() {
            if u.id != a.id && u.id != b.id && u.role == Role::Admin && !u.disabled {
                s.update_user(
                    u.id,
                    UserUpdate {
                        role: Some(Role::Viewer),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            }
        }
        let sa = s.clone();
        let ta = tokio::spawn(async move {
            sa.update_user(
                a.id,
                UserUpdate {
                    role: Some(Role::Viewer),
                    ..Default::default()
                },
            )
            .await
            .map(|_| ())
        });
        let sb = s.clone();
        let tb = tokio::spawn(async move {
            if round % 2 == 0 {
                sb.update_user(
                    b.id,
                    UserUpdate {
                        disabled: Some(true),
                        ..Default::default()
                    },
                )
                .await
                .map(|_| ())
            } else {
                sb.delete_user(b.id).await
            }
        });
        let (ra, rb) = (ta.await.unwrap(), tb.await.unwrap());
        assert!(
            ra.is_ok() != rb.is_ok(),
            "exactly one demotion must win: {ra:?} / {rb:?}"
        );
        for r in [&ra, &rb] {
            if let Err(e) = r {
                assert!(
                    matches!(e, StoreError::Conflict(w) if w == LAST_ADMIN),
                    "{e:?}"
                );
            }
        }
        let admins = s
            .list_users()
            .await
            .unwrap()
            .into_iter()
            .filter(|u| u.role == Role::Admin && !u.disabled)
            .count();
        assert_eq!(admins, 1);
    }
}

// ------------------------------------------------------------------ fleet link

fn new_join_token(host_id: Uuid, expires_at: OffsetDateTime) -> NewJoinToken {
    NewJoinToken {
        id: Uuid::now_v7(),
        host_id,
        secret_hash: format!("sha256-{}", Uuid::new_v4().simple()),
        expires_at,
        created_by: None,
    }
}

fn enrollment(token: &JoinTokenRow, agent_id: Uuid) -> Enrollment {
    Enrollment {
        token_id: token.id,
        host_id: token.host_id,
        agent_id,
        os: HostOs::Windows,
        agent_version: "1.2.3".into(),
        at: now(),
    }
}

/// When the join token was used (`None`: still unused).
async fn token_used_at(s: &S, id: Uuid) -> Option<OffsetDateTime> {
    s.get_join_token(id).await.unwrap().unwrap().used_at
}

/// The host an agent id is bound to.
async fn agent_host(s: &S, agent: Uuid) -> Option<Host> {
    s.get_host_by_agent_id(&agent.to_string()).await.unwrap()
}

fn batch(host_id: Uuid, upto: i64) -> IngestBatch {
    IngestBatch {
        host_id,
        upto,
        ..Default::default()
    }
}

fn log_line(server_id: Uuid, seq: i64, text: &str) -> NewLogLine {
    NewLogLine {
        server_id,
        seq,
        ts: t0() + Duration::seconds(seq),
        level: LogLevel::Info,
        text: text.into(),
    }
}

fn status(server_id: Uuid, state: &str, pid: Option<i64>) -> ServerStatusRow {
    ServerStatusRow {
        server_id,
        state: server_state(state),
        pid,
        since: t0(),
        detail: None,
        exit_code: None,
        exit_signal: None,
        restarts: 0,
        updated_at: t0(),
    }
}

fn event(srv: &Server, seq: i64, kind: &str) -> NewServerEvent {
    NewServerEvent {
        server_id: Some(srv.id),
        host_id: srv.host_id,
        seq,
        ts: t0() + Duration::seconds(seq),
        kind: kind.parse().unwrap(),
        data: json!({"seq": seq}),
    }
}

/// Every event of a server and/or host (all kinds), newest first.
async fn events_of(s: &S, server_id: Option<Uuid>, host_id: Option<Uuid>) -> Vec<ServerEvent> {
    s.query_server_events(ServerEventQuery {
        server_id,
        host_id,
        limit: 1000,
        ..Default::default()
    })
    .await
    .unwrap()
}

/// Every roll-up bucket of a subject at one resolution, oldest first.
async fn rollups_of(
    s: &S,
    server_id: Option<Uuid>,
    host_id: Option<Uuid>,
    bucket_secs: i64,
) -> StoreResult<Vec<MetricRollup>> {
    s.query_metric_rollups(RollupQuery {
        server_id,
        host_id,
        bucket_secs,
        limit: 10_000,
        ..Default::default()
    })
    .await
}

async fn join_tokens_create_get_list(s: S) {
    let h = host(&s, "jt").await;
    let other = host(&s, "jt-other").await;
    let u = user(&s, "jt-admin").await;
    let mut first = new_join_token(h.id, t0() + Duration::hours(1));
    first.created_by = Some(u.id);
    let a = s.insert_join_token(first.clone()).await.unwrap();
    assert_eq!(a.id, first.id);
    assert_eq!(a.host_id, h.id);
    assert_eq!(a.secret_hash, first.secret_hash);
    assert_eq!(a.expires_at, first.expires_at);
    assert_eq!(a.used_at, None);
    assert_eq!(a.created_by, Some(u.id));
    assert_eq!(s.get_join_token(a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(s.get_join_token(Uuid::now_v7()).await.unwrap(), None);
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    let b = s
        .insert_join_token(new_join_token(h.id, t0() + Duration::hours(2)))
        .await
        .unwrap();
    s.insert_join_token(new_join_token(other.id, t0()))
        .await
        .unwrap();
    let listed: Vec<Uuid> = s
        .list_join_tokens(h.id)
        .await
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(listed, [b.id, a.id], "newest first, only this host's");
    // Same id twice; a missing host.
    assert!(matches!(
        s.insert_join_token(first).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.insert_join_token(new_join_token(Uuid::now_v7(), t0()))
            .await,
        Err(StoreError::Conflict(_))
    ));
    // Deleting the creator keeps the token.
    s.delete_user(u.id).await.unwrap();
    assert_eq!(
        s.get_join_token(a.id).await.unwrap().unwrap().created_by,
        None
    );
}

async fn enroll_agent_race_one_wins(s: S) {
    let h = host(&s, "race").await;
    let tok = s
        .insert_join_token(new_join_token(h.id, now() + Duration::hours(1)))
        .await
        .unwrap();
    let mut handles = Vec::new();
    for _ in 0..20 {
        let s = s.clone();
        let e = enrollment(&tok, Uuid::new_v4());
        handles.push(tokio::spawn(async move {
            (e.agent_id, s.enroll_agent(e).await)
        }));
    }
    let mut winners = Vec::new();
    let mut losers = Vec::new();
    for hd in handles {
        match hd.await.unwrap() {
            (agent, Ok(host)) => winners.push((agent, host)),
            (agent, Err(StoreError::Conflict(what))) => {
                assert_eq!(what, "join token");
                losers.push(agent);
            }
            (_, Err(e)) => panic!("unexpected error {e:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one enrollment may use a token");
    let (agent, bound) = &winners[0];
    assert_eq!(bound.agent_id, Some(agent.to_string()));
    assert_eq!(bound.os, HostOs::Windows);
    assert_eq!(bound.agent_version.as_deref(), Some("1.2.3"));
    assert_eq!(bound.status, HostStatus::Offline);
    assert_eq!(bound.acked_seq, 0);
    assert_eq!(s.get_host(h.id).await.unwrap().as_ref(), Some(bound));
    assert!(token_used_at(&s, tok.id).await.is_some());
    for l in losers {
        assert!(agent_host(&s, l).await.is_none());
    }
}

async fn enroll_agent_refusals_change_nothing(s: S) {
    let h = host(&s, "refuse").await;
    let other = host(&s, "refuse-other").await;
    let at = now();
    let conflict =
        |r: StoreResult<Host>| matches!(r, Err(StoreError::Conflict(ref w)) if w == "join token");

    // Expired (expiry is exclusive: a token is dead at its expiry instant).
    let expired = s.insert_join_token(new_join_token(h.id, at)).await.unwrap();
    let mut e = enrollment(&expired, Uuid::new_v4());
    e.at = at;
    assert!(conflict(s.enroll_agent(e).await));
    // Made for another host.
    let tok = s
        .insert_join_token(new_join_token(other.id, at + Duration::hours(1)))
        .await
        .unwrap();
    let mut e = enrollment(&tok, Uuid::new_v4());
    e.host_id = h.id;
    assert!(conflict(s.enroll_agent(e).await));
    // Unknown token.
    let mut e = enrollment(&tok, Uuid::new_v4());
    e.token_id = Uuid::now_v7();
    assert!(conflict(s.enroll_agent(e).await));
    for t in [&expired, &tok] {
        assert_eq!(token_used_at(&s, t.id).await, None);
    }
    assert_eq!(s.get_host(h.id).await.unwrap().unwrap(), h);
    assert_eq!(s.get_host(other.id).await.unwrap().unwrap(), other);

    // The right host: works once, then the token is spent.
    let agent = Uuid::new_v4();
    s.enroll_agent(enrollment(&tok, agent)).await.unwrap();
    assert!(conflict(
        s.enroll_agent(enrollment(&tok, Uuid::new_v4())).await
    ));
    assert_eq!(
        s.get_host(other.id).await.unwrap().unwrap().agent_id,
        Some(agent.to_string())
    );

    // An agent id another host holds: refused by the unique index, token stays unused.
    let tok_h = s
        .insert_join_token(new_join_token(h.id, at + Duration::hours(1)))
        .await
        .unwrap();
    assert!(matches!(
        s.enroll_agent(enrollment(&tok_h, agent)).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(token_used_at(&s, tok_h.id).await, None);
    assert_eq!(s.get_host(h.id).await.unwrap().unwrap(), h);
}

async fn host_link_state(s: S) {
    let h = host(&s, "link").await;
    let tok = s
        .insert_join_token(new_join_token(h.id, now() + Duration::hours(1)))
        .await
        .unwrap();
    let agent = Uuid::new_v4();
    s.enroll_agent(enrollment(&tok, agent)).await.unwrap();
    assert_eq!(agent_host(&s, agent).await.unwrap().id, h.id);
    assert!(s.get_host_by_agent_id("nobody").await.unwrap().is_none());

    let t1 = t0() + Duration::minutes(1);
    s.set_host_link(h.id, HostStatus::Online, Some("1.3.0"), t1)
        .await
        .unwrap();
    let got = s.get_host(h.id).await.unwrap().unwrap();
    assert_eq!(
        (got.status, got.agent_version.as_deref(), got.last_seen_at),
        (HostStatus::Online, Some("1.3.0"), Some(t1))
    );
    // No version given: the stored one stays.
    let t2 = t1 + Duration::minutes(1);
    s.set_host_link(h.id, HostStatus::Offline, None, t2)
        .await
        .unwrap();
    let got = s.get_host(h.id).await.unwrap().unwrap();
    assert_eq!(
        (got.status, got.agent_version.as_deref(), got.last_seen_at),
        (HostStatus::Offline, Some("1.3.0"), Some(t2))
    );
    assert!(matches!(
        s.set_host_link(h.id, HostStatus::Pending, None, t2).await,
        Err(StoreError::InvalidInput(_))
    ));
    assert!(matches!(
        s.set_host_link(Uuid::now_v7(), HostStatus::Online, None, t2)
            .await,
        Err(StoreError::NotFound)
    ));

    // Start-up reset: online hosts go offline, others are left alone.
    let h2 = host(&s, "link-2").await;
    s.set_host_link(h.id, HostStatus::Online, None, t2)
        .await
        .unwrap();
    s.set_host_link(h2.id, HostStatus::Online, None, t2)
        .await
        .unwrap();
    let pending = host(&s, "link-pending").await;
    assert_eq!(s.reset_host_links().await.unwrap(), 2);
    assert_eq!(
        s.get_host(h.id).await.unwrap().unwrap().status,
        HostStatus::Offline
    );
    assert_eq!(
        s.get_host(h2.id).await.unwrap().unwrap().status,
        HostStatus::Offline
    );
    assert_eq!(
        s.get_host(pending.id).await.unwrap().unwrap().status,
        HostStatus::Pending
    );
    assert_eq!(s.reset_host_links().await.unwrap(), 0);

    // Revoked stays revoked: a link event does not un-revoke, a second revoke keeps the time.
    let t3 = t2 + Duration::minutes(1);
    let r = s.revoke_host(h.id, t3).await.unwrap();
    assert_eq!((r.status, r.revoked_at), (HostStatus::Revoked, Some(t3)));
    s.set_host_link(h.id, HostStatus::Online, None, t3 + Duration::seconds(1))
        .await
        .unwrap();
    let got = s.get_host(h.id).await.unwrap().unwrap();
    assert_eq!(
        (got.status, got.revoked_at),
        (HostStatus::Revoked, Some(t3))
    );
    assert_eq!(got.last_seen_at, Some(t3 + Duration::seconds(1)));
    let again = s.revoke_host(h.id, t3 + Duration::hours(1)).await.unwrap();
    assert_eq!(again.revoked_at, Some(t3));
    assert!(matches!(
        s.revoke_host(Uuid::now_v7(), t3).await,
        Err(StoreError::NotFound)
    ));

    // update_host never writes the link's fields.
    s.ingest(batch(h2.id, 7)).await.unwrap();
    let mut stale = s.get_host(h2.id).await.unwrap().unwrap();
    stale.acked_seq = 0;
    stale.agent_version = Some("stale".into());
    stale.name = "link-2-renamed".into();
    let updated = s.update_host(&stale).await.unwrap();
    assert_eq!(updated.name, "link-2-renamed");
    assert_eq!((updated.acked_seq, updated.agent_version), (7, None));

    // Re-enrollment un-revokes and resets the ack.
    s.ingest(batch(h.id, 42)).await.unwrap();
    let tok2 = s
        .insert_join_token(new_join_token(h.id, now() + Duration::hours(1)))
        .await
        .unwrap();
    let re = s
        .enroll_agent(enrollment(&tok2, Uuid::new_v4()))
        .await
        .unwrap();
    assert_eq!(
        (re.status, re.revoked_at, re.acked_seq),
        (HostStatus::Offline, None, 0)
    );
    assert!(agent_host(&s, agent).await.is_none());
}

async fn ingest_logs_nul_and_ack(s: S) {
    let srv = server(&s).await;
    let mut b = batch(srv.host_id, 10);
    b.logs = (0..1500)
        .map(|i| log_line(srv.id, i, &format!("tick {i}")))
        .collect();
    b.logs
        .push(log_line(srv.id, 1500, "Player Needle\0Man connected"));
    assert_eq!(s.ingest(b).await.unwrap(), 10);
    assert_eq!(
        s.get_host(srv.host_id).await.unwrap().unwrap().acked_seq,
        10
    );
    let found = s
        .query_logs(LogQuery {
            server_id: Some(srv.id),
            contains: Some("needle".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(found.items.len(), 1);
    assert_eq!(found.items[0].text, "Player Needle\u{FFFD}Man connected");
    assert_eq!(found.items[0].seq, 1500);
    let all = s
        .query_logs(LogQuery {
            server_id: Some(srv.id),
            limit: 5000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.items.len(), 1501);

    // A replayed (older) batch never lowers the ack; an empty batch still acks.
    assert_eq!(s.ingest(batch(srv.host_id, 3)).await.unwrap(), 10);
    assert_eq!(s.ingest(batch(srv.host_id, 11)).await.unwrap(), 11);
    assert_eq!(
        s.get_host(srv.host_id).await.unwrap().unwrap().acked_seq,
        11
    );
    assert!(matches!(
        s.ingest(batch(Uuid::now_v7(), 1)).await,
        Err(StoreError::NotFound)
    ));
}

async fn ingest_statuses_and_events(s: S) {
    let a = server(&s).await;
    let b = s
        .create_server(
            a.host_id,
            spec("second", 2402),
            &ports_of(&spec("second", 2402)),
        )
        .await
        .unwrap();
    let c = server(&s).await; // another host
    let mut bt = batch(a.host_id, 1);
    bt.statuses = vec![
        status(a.id, "starting", None),
        status(b.id, "running", Some(11)),
        status(a.id, "running", Some(42)),
    ];
    let started = now();
    s.ingest(bt).await.unwrap();
    let mut cb = batch(c.host_id, 1);
    cb.statuses = vec![status(c.id, "stopped", None)];
    s.ingest(cb).await.unwrap();

    let on_host = s.list_server_statuses(Some(a.host_id)).await.unwrap();
    assert_eq!(on_host.len(), 2);
    let sa = on_host.iter().find(|r| r.server_id == a.id).unwrap();
    assert_eq!((sa.state, sa.pid), (server_state("running"), Some(42)));
    assert!(
        sa.updated_at >= started,
        "updated_at is the time of storing"
    );
    assert_eq!(s.list_server_statuses(None).await.unwrap().len(), 3);

    // Last wins across batches too, every field replaced.
    let mut crashed = status(a.id, "crashed", None);
    crashed.detail = Some("segfault\0".into());
    crashed.exit_code = Some(-11);
    crashed.exit_signal = Some(11);
    crashed.restarts = 3;
    crashed.since = t0() + Duration::minutes(5);
    let mut bt = batch(a.host_id, 2);
    bt.statuses = vec![crashed.clone()];
    s.ingest(bt).await.unwrap();
    let sa = s
        .list_server_statuses(Some(a.host_id))
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.server_id == a.id)
        .unwrap();
    assert_eq!(
        ServerStatusRow {
            updated_at: crashed.updated_at,
            ..sa
        },
        ServerStatusRow {
            detail: Some("segfault\u{FFFD}".into()),
            ..crashed
        }
    );

    // Events: newest first, kinds filter, id cursor, limit, host-wide events.
    let mut bt = batch(a.host_id, 20);
    bt.events = (1..=10)
        .map(|i| event(&a, i, if i % 2 == 0 { "status" } else { "chat" }))
        .collect();
    bt.events.push(event(&b, 11, "status"));
    bt.events.push(NewServerEvent {
        server_id: None,
        host_id: a.host_id,
        seq: 12,
        ts: t0(),
        kind: ServerEventKind::Gap,
        data: json!({"lines": 5, "note": "a\0b"}),
    });
    s.ingest(bt).await.unwrap();
    let q = |server_id: Option<Uuid>, kinds: &[&str], before: Option<i64>, limit: i64| {
        let s = s.clone();
        let kinds = kinds.iter().map(|k| k.parse().unwrap()).collect();
        async move {
            s.query_server_events(ServerEventQuery {
                server_id,
                host_id: None,
                kinds,
                before,
                limit,
            })
            .await
            .unwrap()
        }
    };
    let all = q(Some(a.id), &[], None, 100).await;
    assert_eq!(
        all.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=10).rev().collect::<Vec<_>>()
    );
    assert!(all.windows(2).all(|w| w[0].id > w[1].id));
    assert_eq!(all[0].data, json!({"seq": 10}));
    assert_eq!(all[0].ts, t0() + Duration::seconds(10));
    assert_eq!(all[0].host_id, a.host_id);
    let statuses = q(Some(a.id), &["status"], None, 3).await;
    assert_eq!(
        statuses.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [10, 8, 6]
    );
    let next = q(Some(a.id), &["status"], Some(statuses[2].id), 3).await;
    assert_eq!(next.iter().map(|e| e.seq).collect::<Vec<_>>(), [4, 2]);
    let both = q(Some(a.id), &["status", "chat"], None, 0).await;
    assert_eq!(both.len(), 1, "limit is clamped to at least 1");
    let host_wide = s
        .query_server_events(ServerEventQuery {
            host_id: Some(a.host_id),
            kinds: vec![ServerEventKind::Gap],
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(host_wide.len(), 1);
    assert_eq!(host_wide[0].server_id, None);
    assert_eq!(host_wide[0].data, json!({"lines": 5, "note": "a\u{FFFD}b"}));
    assert_eq!(events_of(&s, None, Some(a.host_id)).await.len(), 12);
}

async fn ingest_sessions(s: S) {
    let srv = server(&s).await;
    let other = server(&s).await;
    let at = |m: i64| t0() + Duration::minutes(m);
    let join = |server_id: Uuid, account: &str, name: &str, m: i64| SessionChange::Join {
        server_id,
        account: account.into(),
        name: name.into(),
        ip: Some("10.0.0.1".into()),
        at: at(m),
    };
    let sessions = |server_id: Uuid| {
        let s = s.clone();
        async move {
            s.list_player_sessions(SessionQuery {
                server_id: Some(server_id),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap()
        }
    };
    let mut b = batch(srv.host_id, 1);
    b.sessions = vec![
        join(srv.id, "g-alice", "Alice", 0),
        join(srv.id, "g-bob", "Bob", 1),
        join(srv.id, "g-carol", "Carol", 2),
        // A join while on the server (reported twice): the player is updated, the session
        // stays the one that is open.
        join(srv.id, "g-alice", "Alice2", 3),
        SessionChange::Leave {
            server_id: srv.id,
            account: Some("g-bob".into()),
            name: "ignored".into(),
            at: at(4),
        },
        // Unknown account: closed by name.
        SessionChange::Leave {
            server_id: srv.id,
            account: None,
            name: "Carol".into(),
            at: at(5),
        },
        // Nothing open: nothing happens.
        SessionChange::Leave {
            server_id: srv.id,
            account: Some("g-nobody".into()),
            name: "Nobody".into(),
            at: at(5),
        },
    ];
    s.ingest(b).await.unwrap();
    let alice = player(&s, "g-alice").await.unwrap();
    assert_eq!(
        (alice.game, alice.last_name.as_str()),
        (Game::Arma3, "Alice2")
    );
    assert_eq!((alice.first_seen, alice.last_seen), (at(0), at(3)));
    assert!(player(&s, "g-nobody").await.is_none());
    let list = sessions(srv.id).await;
    assert_eq!(list.len(), 3);
    // Newest first: carol, bob, alice (still open).
    assert_eq!(
        list.iter()
            .map(|x| (x.joined_at, x.left_at))
            .collect::<Vec<_>>(),
        [(at(2), Some(at(5))), (at(1), Some(at(4))), (at(0), None)]
    );
    assert_eq!(list[2].player_id, alice.id);
    assert_eq!(list[2].ip.as_deref(), Some("10.0.0.1"));

    // CloseAll closes only that server's open sessions.
    let mut b = batch(srv.host_id, 2);
    b.sessions = vec![
        join(other.id, "g-alice", "Alice2", 6),
        SessionChange::CloseAll {
            server_id: srv.id,
            at: at(7),
        },
    ];
    s.ingest(b).await.unwrap();
    assert_eq!(sessions(srv.id).await[2].left_at, Some(at(7)));
    assert_eq!(sessions(other.id).await[0].left_at, None);
}

async fn ingest_rollups(s: S) {
    let srv = server(&s).await;
    let h = srv.host_id;
    let base = t0(); // 22:13:20 UTC
    let sample =
        |sec: i64, cpu: Option<f64>, rss: Option<i64>, players: Option<i64>| NewMetricSample {
            server_id: Some(srv.id),
            host_id: Some(h),
            ts: Some(base + Duration::seconds(sec)),
            cpu_percent: cpu,
            rss_bytes: rss,
            players,
            fps: None,
        };
    let host_sample = |sec: i64, cpu: Option<f64>| NewMetricSample {
        host_id: Some(h),
        ts: Some(base + Duration::seconds(sec)),
        cpu_percent: cpu,
        ..Default::default()
    };
    let mut b1 = batch(h, 1);
    b1.metrics = vec![
        sample(10, Some(10.0), Some(100), Some(2)),
        host_sample(0, None),
    ];
    s.ingest(b1).await.unwrap();
    let mut b2 = batch(h, 2);
    b2.metrics = vec![
        // Same minute as the first sample, without cpu: must not pull the cpu average down.
        sample(20, None, Some(300), Some(4)),
        // Next minute.
        sample(70, Some(30.0), None, None),
        sample(75, Some(f64::NAN), None, None),
        host_sample(5, Some(5.0)),
    ];
    s.ingest(b2).await.unwrap();
    let q = |server_id, host_id, secs| rollups_of(&s, server_id, host_id, secs);
    let minute = |m: i64| OffsetDateTime::from_unix_timestamp(1_700_000_000 - 20 + m * 60).unwrap();
    let m1 = q(Some(srv.id), None, 60).await.unwrap();
    assert_eq!(
        m1,
        [
            MetricRollup {
                ts: minute(0),
                bucket_secs: 60,
                samples: 2,
                cpu_avg: Some(10.0),
                cpu_max: Some(10.0),
                rss_avg: Some(200.0),
                rss_max: Some(300),
                players_avg: Some(3.0),
                players_max: Some(4),
            },
            MetricRollup {
                ts: minute(1),
                bucket_secs: 60,
                samples: 2,
                cpu_avg: Some(30.0),
                cpu_max: Some(30.0),
                rss_avg: None,
                rss_max: None,
                players_avg: None,
                players_max: None,
            },
        ]
    );
    let hour = OffsetDateTime::from_unix_timestamp(1_700_000_000 / 3600 * 3600).unwrap();
    let h1 = q(Some(srv.id), None, 3600).await.unwrap();
    assert_eq!(
        h1,
        [MetricRollup {
            ts: hour,
            bucket_secs: 3600,
            samples: 4,
            cpu_avg: Some(20.0),
            cpu_max: Some(30.0),
            rss_avg: Some(200.0),
            rss_max: Some(300),
            players_avg: Some(3.0),
            players_max: Some(4),
        }]
    );
    let m5 = q(Some(srv.id), None, 300).await.unwrap();
    assert_eq!(m5.len(), 1);
    assert_eq!(m5[0].samples, 4);
    // from inclusive, to exclusive.
    let ranged = s
        .query_metric_rollups(RollupQuery {
            server_id: Some(srv.id),
            bucket_secs: 60,
            from: Some(minute(1)),
            to: Some(minute(2)),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ranged.len(), 1);
    assert_eq!(ranged[0].ts, minute(1));
    // Host-wide samples roll up under the host only; a max can start from NULL.
    let hw = q(None, Some(h), 60).await.unwrap();
    assert_eq!(hw.len(), 1);
    assert_eq!(
        (hw[0].samples, hw[0].cpu_avg, hw[0].cpu_max, hw[0].rss_avg),
        (2, Some(5.0), Some(5.0), None)
    );
    // Raw samples are stored too; the NaN one without cpu.
    let raw = s
        .query_metrics(MetricQuery {
            server_id: Some(srv.id),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(raw.len(), 4);
    assert_eq!(raw[3].cpu_percent, None);
    // Samples stored outside ingest roll up as well.
    store_metrics(&s, vec![sample(130, Some(50.0), None, None)])
        .await
        .unwrap();
    assert_eq!(q(Some(srv.id), None, 60).await.unwrap().len(), 3);
    // Bad queries.
    for (server_id, host_id, secs) in [
        (Some(srv.id), Some(h), 60),
        (None, None, 60),
        (Some(srv.id), None, 61),
    ] {
        assert!(matches!(
            q(server_id, host_id, secs).await,
            Err(StoreError::InvalidInput(_))
        ));
    }
}

async fn ingest_failure_stores_nothing(s: S) {
    let srv = server(&s).await;
    s.ingest(batch(srv.host_id, 5)).await.unwrap();
    let mut b = batch(srv.host_id, 9);
    b.logs = vec![
        log_line(srv.id, 1, "kept?"),
        log_line(Uuid::now_v7(), 2, "no such server"),
    ];
    b.metrics = vec![NewMetricSample {
        server_id: Some(srv.id),
        ts: Some(t0()),
        players: Some(1),
        ..Default::default()
    }];
    b.statuses = vec![status(srv.id, "running", Some(1))];
    b.events = vec![event(&srv, 1, "status")];
    b.sessions = vec![SessionChange::Join {
        server_id: srv.id,
        account: "g-fail".into(),
        name: "Fail".into(),
        ip: None,
        at: t0(),
    }];
    let err = s.ingest(b.clone()).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict(ref w) if w.starts_with("foreign key")),
        "{err:?}"
    );
    let check_empty = || {
        let s = s.clone();
        async move {
            assert_eq!(s.get_host(srv.host_id).await.unwrap().unwrap().acked_seq, 5);
            let logs = s
                .query_logs(LogQuery {
                    server_id: Some(srv.id),
                    limit: 10,
                    ..Default::default()
                })
                .await
                .unwrap();
            assert!(logs.items.is_empty());
            let m = s
                .query_metrics(MetricQuery {
                    server_id: Some(srv.id),
                    limit: 10,
                    ..Default::default()
                })
                .await
                .unwrap();
            assert!(m.is_empty());
            for secs in ROLLUP_BUCKETS {
                assert!(
                    rollups_of(&s, Some(srv.id), None, secs)
                        .await
                        .unwrap()
                        .is_empty()
                );
            }
            assert!(s.list_server_statuses(None).await.unwrap().is_empty());
            assert!(events_of(&s, None, Some(srv.host_id)).await.is_empty());
            assert!(player(&s, "g-fail").await.is_none());
        }
    };
    check_empty().await;
    // A failure late in the batch (a session for a missing server) undoes the rest too.
    b.logs.truncate(1);
    b.sessions.push(SessionChange::Join {
        server_id: Uuid::now_v7(),
        account: "g-fail2".into(),
        name: "Fail2".into(),
        ip: None,
        at: t0(),
    });
    assert!(s.ingest(b.clone()).await.is_err());
    check_empty().await;
    // Without the bad rows the same batch goes through.
    b.sessions.truncate(1);
    assert_eq!(s.ingest(b).await.unwrap(), 9);
}

async fn retention_prunes_link_history(s: S) {
    let srv = server(&s).await;
    let t = now();
    let mut b = batch(srv.host_id, 1);
    b.events = [t - Duration::days(40), t - Duration::days(1)]
        .iter()
        .enumerate()
        .map(|(i, ts)| NewServerEvent {
            ts: *ts,
            ..event(&srv, i as i64, "status")
        })
        .collect();
    b.metrics = [
        t - Duration::days(400),
        t - Duration::days(40),
        t - Duration::days(1),
    ]
    .iter()
    .map(|ts| NewMetricSample {
        server_id: Some(srv.id),
        ts: Some(*ts),
        players: Some(1),
        ..Default::default()
    })
    .collect();
    s.ingest(b).await.unwrap();
    let long_expired = s
        .insert_join_token(new_join_token(srv.host_id, t - Duration::days(2)))
        .await
        .unwrap();
    let just_expired = s
        .insert_join_token(new_join_token(srv.host_id, t - Duration::hours(1)))
        .await
        .unwrap();
    let cutoffs = RetentionCutoffs {
        logs_before: t - Duration::days(30),
        metrics_before: t - Duration::days(30),
        audit_before: t - Duration::days(30),
        sessions_before: t - Duration::days(30),
        refresh_tokens_before: t,
        events_before: t - Duration::days(30),
        rollups_before: t - Duration::days(365),
        join_tokens_before: t - Duration::days(1),
    };
    let report = s.prune_retention(cutoffs).await.unwrap().unwrap();
    assert_eq!(
        report,
        PruneReport {
            metrics: 2,
            events: 1,
            // The 400-day-old sample's three buckets, the 40-day-old one's 1-minute bucket.
            rollups: 4,
            join_tokens: 1,
            ..PruneReport::default()
        }
    );
    let ev = events_of(&s, Some(srv.id), None).await;
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].ts, t - Duration::days(1));
    let mut kept = Vec::new();
    for secs in ROLLUP_BUCKETS {
        kept.push(
            rollups_of(&s, Some(srv.id), None, secs)
                .await
                .unwrap()
                .len(),
        );
    }
    assert_eq!(kept, [1, 2, 2]);
    assert!(s.get_join_token(long_expired.id).await.unwrap().is_none());
    assert!(s.get_join_token(just_expired.id).await.unwrap().is_some());
    assert_eq!(
        s.prune_retention(cutoffs).await.unwrap(),
        Some(PruneReport::default())
    );
}

async fn deletes_cascade_link_rows(s: S) {
    let srv = server(&s).await;
    let h = srv.host_id;
    let tok = s
        .insert_join_token(new_join_token(h, now() + Duration::hours(1)))
        .await
        .unwrap();
    let mut b = batch(h, 1);
    b.statuses = vec![status(srv.id, "running", Some(1))];
    b.events = vec![
        event(&srv, 1, "status"),
        NewServerEvent {
            server_id: None,
            ..event(&srv, 2, "gap")
        },
    ];
    b.metrics = vec![
        NewMetricSample {
            server_id: Some(srv.id),
            ts: Some(t0()),
            players: Some(3),
            ..Default::default()
        },
        NewMetricSample {
            host_id: Some(h),
            ts: Some(t0()),
            cpu_percent: Some(1.0),
            ..Default::default()
        },
    ];
    s.ingest(b).await.unwrap();
    let events = async |server_id, host_id| events_of(&s, server_id, host_id).await.len();
    let rollups = async |server_id, host_id| {
        rollups_of(&s, server_id, host_id, 3600)
            .await
            .unwrap()
            .len()
    };
    assert_eq!(events(None, Some(h)).await, 2);
    assert_eq!(rollups(Some(srv.id), None).await, 1);
    assert_eq!(rollups(None, Some(h)).await, 1);

    // Deleting the server takes its status, events and roll-ups; the host's stay.
    s.delete_server(srv.id).await.unwrap();
    assert!(s.list_server_statuses(None).await.unwrap().is_empty());
    assert_eq!(events(Some(srv.id), None).await, 0);
    assert_eq!(events(None, Some(h)).await, 1);
    assert_eq!(rollups(Some(srv.id), None).await, 0);
    assert_eq!(rollups(None, Some(h)).await, 1);

    // Deleting the host takes its tokens, events and roll-ups.
    s.delete_host(h).await.unwrap();
    assert!(s.get_join_token(tok.id).await.unwrap().is_none());
    assert_eq!(events(None, Some(h)).await, 0);
    assert_eq!(rollups(None, Some(h)).await, 0);
}

// ------------------------------------------------------------------ migration 0005

/// The migrations before 0005, copied into a temp dir (sqlx runs a directory).
fn migrations_before_0005(backend: &str) -> tempfile::TempDir {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../migrations")
        .join(backend);
    let dir = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        if name.as_str() < "0005" {
            std::fs::copy(e.path(), dir.path().join(&name)).unwrap();
        }
    }
    dir
}

const M_HOST: Uuid = Uuid::from_u128(0x10);
const M_SERVER: Uuid = Uuid::from_u128(0x20);
const M_ALICE: Uuid = Uuid::from_u128(0x30);
const M_BOB: Uuid = Uuid::from_u128(0x31);
const M_SESSIONS: [Uuid; 4] = [
    Uuid::from_u128(0x40),
    Uuid::from_u128(0x41),
    Uuid::from_u128(0x42),
    Uuid::from_u128(0x43),
];

/// Rows as the 0004 schema holds them: players with GUIDs, sessions (two open ones of one
/// player), bans of both kinds, configs with Arma sections, a `guid_verified` event.
/// `id` / `ts` write a UUID / timestamp literal of the backend.
fn seed_0004(id: impl Fn(Uuid) -> String, ts: impl Fn(&str) -> String) -> Vec<String> {
    let (h, s, a, b) = (id(M_HOST), id(M_SERVER), id(M_ALICE), id(M_BOB));
    let t = |d: &str| ts(d);
    let [s1, s2, s3, s4] = M_SESSIONS.map(&id);
    vec![
        format!(
            "INSERT INTO hosts (id, name, os, status, created_at) VALUES ({h}, 'h', 'linux', 'offline', {})",
            t("2023-01-01")
        ),
        format!(
            "INSERT INTO servers (id, host_id, name, game, game_port, rcon_port, executable_path, restart_policy, \
             desired_running, revision, config_revision, created_at, updated_at) \
             VALUES ({s}, {h}, 'main', 'arma3', 2302, 2304, '/srv/a3', '{{}}', TRUE, 3, 1, {}, {})",
            t("2023-01-01"),
            t("2023-01-01")
        ),
        format!(
            "INSERT INTO players (id, guid, steam_id, last_name, first_seen, last_seen) VALUES ({a}, 'guid-a', '7656', 'Alice', {}, {})",
            t("2023-01-01"),
            t("2023-03-01")
        ),
        format!(
            "INSERT INTO players (id, guid, steam_id, last_name, first_seen, last_seen) VALUES ({b}, 'guid-b', NULL, 'Bob', {}, {})",
            t("2023-01-01"),
            t("2023-01-01")
        ),
        format!(
            "INSERT INTO player_sessions (id, server_id, player_id, joined_at, left_at, ip) VALUES \
             ({s1}, {s}, {a}, {}, {}, '198.51.100.7'), ({s2}, {s}, {a}, {}, NULL, NULL), \
             ({s3}, {s}, {a}, {}, NULL, NULL), ({s4}, {s}, {b}, {}, NULL, NULL)",
            t("2023-01-01"),
            t("2023-01-02"),
            t("2023-02-01"),
            t("2023-03-01"),
            t("2023-01-01")
        ),
        format!(
            "INSERT INTO bans (id, server_id, kind, target, reason, created_at) VALUES \
             ({}, NULL, 'guid', 'guid-a', 'cheat', {}), ({}, {s}, 'ip', '198.51.100.7', 'spam', {})",
            id(Uuid::from_u128(0x50)),
            t("2023-01-01"),
            id(Uuid::from_u128(0x51)),
            t("2023-01-01")
        ),
        format!(
            "INSERT INTO server_configs (server_id, section, content, secrets, revision, updated_at) VALUES \
             ({s}, 'server', '{{\"hostname\": \"x\"}}', NULL, 1, {}), ({s}, 'rcon', '{{}}', NULL, 1, {})",
            t("2023-01-01"),
            t("2023-01-01")
        ),
        format!(
            "INSERT INTO config_versions (id, server_id, version, created_at, snapshot) VALUES \
             ({}, {s}, 1, {}, '{{\"server\": {{\"hostname\": \"x\"}}, \"rcon\": {{}}}}')",
            id(Uuid::from_u128(0x60)),
            t("2023-01-01")
        ),
        format!(
            "INSERT INTO server_events (server_id, host_id, seq, ts, kind, data) VALUES \
             ({s}, {h}, 7, {}, 'guid_verified', '{{}}'), ({s}, {h}, 8, {}, 'chat', '{{}}')",
            t("2023-01-01"),
            t("2023-01-02")
        ),
    ]
}

/// Midnight UTC of a `YYYY-MM-DD` day.
fn day(d: &str) -> OffsetDateTime {
    let n: Vec<u8> = d.split('-').skip(1).map(|x| x.parse().unwrap()).collect();
    let year: i32 = d[..4].parse().unwrap();
    let month = time::Month::try_from(n[0]).unwrap();
    time::Date::from_calendar_date(year, month, n[1])
        .unwrap()
        .midnight()
        .assume_utc()
}

/// What the store must read after 0005; `bans` are the raw `(kind, target)` rows.
async fn check_migrated(s: &S, bans: Vec<(String, String)>) {
    let srv = s.get_server(M_SERVER).await.unwrap().unwrap();
    assert_eq!(
        (
            srv.game,
            srv.desired_running,
            srv.revision,
            srv.config_revision
        ),
        (Game::Arma3, true, 3, 1)
    );
    let players = s.list_players(None, 10).await.unwrap();
    assert_eq!(
        players
            .iter()
            .map(|p| (
                p.id,
                p.game,
                p.account_id.as_str(),
                p.last_name.as_str(),
                p.first_seen,
                p.last_seen
            ))
            .collect::<Vec<_>>(),
        vec![
            (
                M_ALICE,
                Game::Arma3,
                "guid-a",
                "Alice",
                day("2023-01-01"),
                day("2023-03-01")
            ),
            (
                M_BOB,
                Game::Arma3,
                "guid-b",
                "Bob",
                day("2023-01-01"),
                day("2023-01-01")
            ),
        ]
    );
    let mut sessions = s
        .list_player_sessions(SessionQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    sessions.sort_by_key(|x| x.id);
    assert_eq!(
        sessions
            .iter()
            .map(|x| (
                x.id,
                x.server_id,
                x.player_id,
                x.joined_at,
                x.left_at,
                x.ip.as_deref()
            ))
            .collect::<Vec<_>>(),
        vec![
            (
                M_SESSIONS[0],
                M_SERVER,
                M_ALICE,
                day("2023-01-01"),
                Some(day("2023-01-02")),
                Some("198.51.100.7")
            ),
            // The older of two open sessions ends when the newer began.
            (
                M_SESSIONS[1],
                M_SERVER,
                M_ALICE,
                day("2023-02-01"),
                Some(day("2023-03-01")),
                None
            ),
            (
                M_SESSIONS[2],
                M_SERVER,
                M_ALICE,
                day("2023-03-01"),
                None,
                None
            ),
            (
                M_SESSIONS[3],
                M_SERVER,
                M_BOB,
                day("2023-01-01"),
                None,
                None
            ),
        ]
    );
    assert_eq!(
        bans,
        vec![
            ("address".to_owned(), "198.51.100.7".to_owned()),
            ("account".to_owned(), "guid-a".to_owned()),
        ]
    );
    let cfg = s.get_config(M_SERVER).await.unwrap();
    assert_eq!(
        cfg.sections
            .iter()
            .map(|x| (
                x.section.section.as_str(),
                x.section.content.clone(),
                x.revision
            ))
            .collect::<Vec<_>>(),
        vec![
            ("rcon", json!({}), 1),
            ("server", json!({"hostname": "x"}), 1)
        ]
    );
    let v1 = s.get_config_version(M_SERVER, 1).await.unwrap().unwrap();
    assert_eq!(
        v1.sections
            .iter()
            .map(|x| x.section.as_str())
            .collect::<Vec<_>>(),
        ["rcon", "server"]
    );
    let kinds: Vec<_> = events_of(s, Some(M_SERVER), None)
        .await
        .into_iter()
        .map(|e| (e.seq, e.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            (8, ServerEventKind::Chat),
            (7, ServerEventKind::PlayerIdentified)
        ]
    );
    // The new rules hold on migrated data: free section names, one open session per player.
    s.save_config(
        M_SERVER,
        1,
        vec![sec("anything", json!({}), None)],
        None,
        None,
    )
    .await
    .unwrap();
    store_sessions(
        s,
        M_HOST,
        vec![SessionChange::Join {
            server_id: M_SERVER,
            account: "guid-a".into(),
            name: "Alice".into(),
            ip: None,
            at: day("2023-04-01"),
        }],
    )
    .await;
    assert_eq!(
        s.list_player_sessions(SessionQuery {
            player_id: Some(M_ALICE),
            open_only: true,
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_0005_moves_every_row_sqlite() {
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let opts = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
        .await
        .unwrap();
    let old = migrations_before_0005("sqlite");
    sqlx::migrate::Migrator::new(old.path())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    let id = |u: Uuid| format!("x'{}'", u.simple());
    let ts = |d: &str| format!("'{d}T00:00:00.000000Z'");
    for q in seed_0004(id, ts) {
        sqlx::query(sqlx::AssertSqlSafe(q))
            .execute(&pool)
            .await
            .unwrap();
    }
    pool.close().await;
    let store = connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(SqliteConnectOptions::new().filename(&path))
        .await
        .unwrap();
    let bans: Vec<(String, String)> =
        sqlx::query_as("SELECT kind, target FROM bans ORDER BY target")
            .fetch_all(&pool)
            .await
            .unwrap();
    let fk: Vec<(String,)> = sqlx::query_as("SELECT \"table\" FROM pragma_foreign_key_check")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(fk.is_empty(), "{fk:?}");
    check_migrated(&store, bans).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_0005_moves_every_row_postgres() {
    if std::env::var("LANGUARD_TEST_PG").as_deref() == Ok("skip") {
        eprintln!("LANGUARD_TEST_PG=skip: PostgreSQL variant skipped");
        return;
    }
    use sqlx::Connection;
    let admin_url = pg_admin_url();
    let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
    let name = format!("languard_m_{}", Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let (base, _) = admin_url.rsplit_once('/').unwrap();
    let url = format!("{base}/{name}");
    let res = tokio::spawn(async move {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect(&url)
            .await
            .unwrap();
        let old = migrations_before_0005("postgres");
        sqlx::migrate::Migrator::new(old.path())
            .await
            .unwrap()
            .run(&pool)
            .await
            .unwrap();
        let id = |u: Uuid| format!("'{u}'::uuid");
        let ts = |d: &str| format!("'{d}T00:00:00Z'::timestamptz");
        for q in seed_0004(id, ts) {
            sqlx::query(sqlx::AssertSqlSafe(q))
                .execute(&pool)
                .await
                .unwrap();
        }
        let store = connect(&url).await.unwrap();
        let bans: Vec<(String, String)> =
            sqlx::query_as("SELECT kind, target FROM bans ORDER BY target")
                .fetch_all(&pool)
                .await
                .unwrap();
        check_migrated(&store, bans).await;
    })
    .await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    if let Err(e) = res {
        std::panic::resume_unwind(e.into_panic());
    }
}
