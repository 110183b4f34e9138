//! Migration 0005 on a database built by 0001..0004.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

/// The migrations before 0005, copied into a temp dir (sqlx runs a directory).
pub(crate) fn migrations_before_0005(backend: &str) -> tempfile::TempDir {
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

pub(crate) const M_HOST: Uuid = Uuid::from_u128(0x10);
pub(crate) const M_SERVER: Uuid = Uuid::from_u128(0x20);
pub(crate) const M_ALICE: Uuid = Uuid::from_u128(0x30);
pub(crate) const M_BOB: Uuid = Uuid::from_u128(0x31);
pub(crate) const M_SESSIONS: [Uuid; 4] = [
    Uuid::from_u128(0x40),
    Uuid::from_u128(0x41),
    Uuid::from_u128(0x42),
    Uuid::from_u128(0x43),
];

/// Rows as the 0004 schema holds them: players with GUIDs, sessions (two open ones of one
/// player), bans of both kinds, configs with Arma sections, a `guid_verified` event.
/// `id` / `ts` write a UUID / timestamp literal of the backend.
pub(crate) fn seed_0004(id: impl Fn(Uuid) -> String, ts: impl Fn(&str) -> String) -> Vec<String> {
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
pub(crate) fn day(d: &str) -> OffsetDateTime {
    let n: Vec<u8> = d.split('-').skip(1).map(|x| x.parse().unwrap()).collect();
    let year: i32 = d[..4].parse().unwrap();
    let month = time::Month::try_from(n[0]).unwrap();
    time::Date::from_calendar_date(year, month, n[1])
        .unwrap()
        .midnight()
        .assume_utc()
}

/// What the store must read after 0005; `bans` are the raw `(kind, target)` rows.
pub(crate) async fn check_migrated(s: &S, bans: Vec<(String, String)>) {
    let srv = s.get_server(M_SERVER).await.unwrap().unwrap();
    assert_eq!(
        (
            srv.game,
            srv.desired_running,
            srv.revision,
            srv.config_revision
        ),
        (GameKind::Arma3, true, 3, 1)
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
                GameKind::Arma3,
                "guid-a",
                "Alice",
                day("2023-01-01"),
                day("2023-03-01")
            ),
            (
                M_BOB,
                GameKind::Arma3,
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
pub(crate) async fn migration_0005_moves_every_row_sqlite() {
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
pub(crate) async fn migration_0005_moves_every_row_postgres() {
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
