//! Raw store ingest rate: log lines/s through `Store::ingest` (one transaction per agent
//! batch, acked), as the fleet link will drive it: one batch at a time per agent. SQLite
//! is a file in a temp dir (WAL, the store's normal settings); PostgreSQL runs too when
//! `LANGUARD_TEST_PG_URL` (an admin URL; a temporary database is created and dropped) is
//! set. Plain `main` (harness = false):
//!
//! ```sh
//! cargo bench -p languard-controller --bench ingest            # 200k lines, batches of 1000
//! LINES=1000000 BATCH=5000 cargo bench -p languard-controller --bench ingest
//! NO_FTS=1 cargo bench -p languard-controller --bench ingest   # diagnosis, see below
//! ```
//!
//! `NO_FTS=1` adds a SQLite run with the FTS5 trigram trigger dropped from the temp
//! database, to show how much of the cost is the search index (the store's own path vs
//! SQLite's trigram indexing). Prints figures; asserts only that every line was stored.

use std::error::Error;
use std::sync::Arc;
use std::time::Instant;

use languard_controller::store::{
    GameKind, HostOs, HostStatus, IngestBatch, LogLevel, LogQuery, NewHost, NewLogLine,
    NewMetricSample, ServerSpec, Store, connect,
};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

type Res<T> = Result<T, Box<dyn Error>>;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// RPT-like lines, ~60–90 bytes, a few distinct shapes.
fn text(i: usize) -> String {
    match i % 4 {
        0 => format!(
            "BattlEye Server: Player #{} Player{i} (10.0.{}.{}:2304) connected",
            i % 100,
            i % 250,
            i % 200
        ),
        1 => {
            format!("Warning Message: No entry 'bin\\config.bin/CfgVehicles/B_Soldier_{i}.scope'.")
        }
        2 => format!("Error in expression <_unit setDamage 1;> Error position: <setDamage 1;> {i}"),
        _ => format!("\"[ACE] (medical) INFO: unit {i} treated, 3 wounds left\""),
    }
}

async fn run(label: &str, store: Arc<dyn Store>, lines: usize, batch: usize) -> Res<()> {
    let host = store
        .create_host(NewHost {
            name: "bench".into(),
            agent_id: None,
            os: HostOs::Linux,
            status: HostStatus::Offline,
        })
        .await?;
    let mut servers = Vec::new();
    for k in 0..4 {
        let spec = ServerSpec {
            name: format!("s{k}"),
            game: GameKind::Arma3,
            game_port: 2302 + k * 10,
            rcon_port: 2304 + k * 10,
            executable_path: "/srv/arma3/arma3server_x64".into(),
            restart_policy: serde_json::json!({}),
            desired_running: true,
        };
        let game_port = 2302 + k as u16 * 10;
        let ports: Vec<u16> = (game_port..=game_port + 4).chain([game_port + 2]).collect();
        servers.push(store.create_server(host.id, spec, &ports).await?.id);
    }
    let t0 = OffsetDateTime::now_utc() - Duration::hours(1);
    // Batches are built before the clock starts: this measures the store, not formatting.
    let batches: Vec<IngestBatch> = (0..lines.div_ceil(batch))
        .map(|b| {
            let from = b * batch;
            let to = (from + batch).min(lines);
            IngestBatch {
                host_id: host.id,
                upto: to as i64,
                logs: (from..to)
                    .map(|i| NewLogLine {
                        server_id: servers[i % servers.len()],
                        seq: i as i64,
                        ts: t0 + Duration::milliseconds(i as i64),
                        level: LogLevel::Info,
                        text: text(i),
                    })
                    .collect(),
                // One metric sample per server per batch, as a busy agent would send.
                metrics: servers
                    .iter()
                    .map(|s| NewMetricSample {
                        server_id: Some(*s),
                        host_id: Some(host.id),
                        ts: Some(t0 + Duration::milliseconds(from as i64)),
                        cpu_percent: Some(42.0),
                        rss_bytes: Some(3 << 30),
                        players: Some(60),
                        fps: Some(47.5),
                    })
                    .collect(),
                ..Default::default()
            }
        })
        .collect();
    let bytes: usize = batches
        .iter()
        .flat_map(|b| b.logs.iter())
        .map(|l| l.text.len())
        .sum();
    let began = Instant::now();
    let mut acked = 0;
    for b in batches {
        acked = store.ingest(b).await?;
    }
    let took = began.elapsed();
    let rate = lines as f64 / took.as_secs_f64();
    println!(
        "[{label}] {lines} log lines ({:.1} MB text) in batches of {batch}: {took:.2?} = {rate:.0} lines/s ({:.2} ms/batch)",
        bytes as f64 / 1e6,
        took.as_secs_f64() * 1e3 / lines.div_ceil(batch) as f64,
    );
    assert_eq!(acked, lines as i64);
    // Stored and searchable (FTS / trigram index kept up to date in the same commit).
    let began = Instant::now();
    let hits = store
        .query_logs(LogQuery {
            contains: Some(format!("Player{}", lines - 4)),
            limit: 10,
            ..Default::default()
        })
        .await?;
    println!(
        "[{label}] substring search after ingest: {} hit(s) in {:.2?}",
        hits.items.len(),
        began.elapsed()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Res<()> {
    let lines = env_usize("LINES", 200_000);
    let batch = env_usize("BATCH", 1000).max(1);

    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    run("sqlite", connect(&url).await?, lines, batch).await?;

    if std::env::var_os("NO_FTS").is_some() {
        use sqlx::Connection;
        let url = format!("sqlite://{}", dir.path().join("bench-nofts.db").display());
        let store = connect(&url).await?;
        let mut raw = sqlx::SqliteConnection::connect(&url).await?;
        sqlx::query("DROP TRIGGER logs_fts_insert")
            .execute(&mut raw)
            .await?;
        raw.close().await?;
        run("sqlite, no FTS trigger", store, lines, batch).await?;
    }

    if let Ok(admin_url) = std::env::var("LANGUARD_TEST_PG_URL") {
        use sqlx::Connection;
        let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
        let name = format!("languard_bench_{}", Uuid::new_v4().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await?;
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url.as_str(), |(b, _)| b);
        let res = match connect(&format!("{base}/{name}")).await {
            Ok(store) => run("postgres", store, lines, batch).await,
            Err(e) => Err(e.into()),
        };
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut admin)
        .await?;
        res?;
    } else {
        println!("[postgres] skipped: set LANGUARD_TEST_PG_URL to an admin URL");
    }
    Ok(())
}
