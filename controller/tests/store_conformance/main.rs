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

mod configs;
mod link;
mod migration;
mod players;
mod retention;
mod servers;
mod telemetry;
mod tokens;
mod users;

use configs::*;
use link::*;
use players::*;
use retention::*;
use serde_json::json;
use servers::*;
use telemetry::*;
use time::{Duration, OffsetDateTime};
use tokens::*;
use users::*;
use uuid::Uuid;

type S = Arc<dyn Store>;

pub(crate) async fn run_sqlite<F, Fut>(f: F)
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

pub(crate) fn pg_admin_url() -> String {
    std::env::var("LANGUARD_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://languard:languard@127.0.0.1:5432/postgres".into())
}

pub(crate) async fn run_pg<F, Fut>(f: F)
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

// After the macro: the module runs its own cases through it.
mod cert_serials;

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
    api_token_lineage,
    refresh_family_revocation,
);

#[tokio::test]
pub(crate) async fn unknown_scheme_is_refused() {
    let err = connect("mysql://localhost/x").await.err().unwrap();
    assert!(
        matches!(err, StoreError::InvalidInput(ref m) if m.contains("mysql")),
        "{err:?}"
    );
    assert!(connect("nonsense").await.is_err());
}

pub(crate) fn t0() -> OffsetDateTime {
    // A fixed, microsecond-precise base time.
    OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap()
}

pub(crate) async fn user(s: &S, name: &str) -> User {
    s.create_user(NewUser {
        username: name.into(),
        password_hash: "h".into(),
        role: Role::Operator,
        must_change_password: false,
    })
    .await
    .unwrap()
}

pub(crate) async fn host(s: &S, name: &str) -> Host {
    s.create_host(NewHost {
        name: name.into(),
        agent_id: None,
        os: HostOs::Linux,
        status: HostStatus::Pending,
    })
    .await
    .unwrap()
}

pub(crate) fn spec(name: &str, port: i64) -> ServerSpec {
    ServerSpec {
        name: name.into(),
        game: GameKind::Arma3,
        game_port: port,
        rcon_port: port + 2,
        executable_path: "/srv/arma3/arma3server_x64".into(),
        restart_policy: json!({"mode": "on-failure", "max": 5}),
        desired_running: false,
    }
}

/// The ports the game registry gives a spec (Arma 3: game_port..=game_port+4 and the RCon
/// port; Palworld: both ports): what the controller passes to create/update.
pub(crate) fn ports_of(sp: &ServerSpec) -> Vec<u16> {
    let p = |v: i64| u16::try_from(v).unwrap();
    match sp.game {
        GameKind::Arma3 => (sp.game_port..=sp.game_port + 4)
            .chain([sp.rcon_port])
            .map(p)
            .collect(),
        GameKind::Palworld => vec![p(sp.game_port), p(sp.rcon_port)],
    }
}

/// Cut-offs that prune nothing (everything is newer than the epoch).
pub(crate) fn no_cutoffs() -> RetentionCutoffs {
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

pub(crate) fn server_state(name: &str) -> languard_shared::wire::ServerState {
    serde_json::from_value(json!(name)).unwrap()
}

/// Stores log lines the way agents do (one ingest batch of the servers' host).
pub(crate) async fn store_logs(s: &S, lines: Vec<NewLogLine>) -> StoreResult<u64> {
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
pub(crate) async fn store_metrics(s: &S, samples: Vec<NewMetricSample>) -> StoreResult<u64> {
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
pub(crate) async fn player(s: &S, account: &str) -> Option<Player> {
    s.list_players(None, 10_000)
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.account_id == account)
}

/// Applies session changes the way agents do (one ingest batch of `host_id`).
pub(crate) async fn store_sessions(s: &S, host_id: Uuid, sessions: Vec<SessionChange>) {
    s.ingest(IngestBatch {
        host_id,
        sessions,
        ..Default::default()
    })
    .await
    .unwrap();
}

pub(crate) async fn server(s: &S) -> Server {
    let h = host(s, &format!("h-{}", Uuid::new_v4())).await;
    s.create_server(h.id, spec("main", 2302), &ports_of(&spec("main", 2302)))
        .await
        .unwrap()
}

pub(crate) async fn ping_and_backend(s: S) {
    s.ping().await.unwrap();
    assert!(["sqlite", "postgres"].contains(&s.backend()));
}
