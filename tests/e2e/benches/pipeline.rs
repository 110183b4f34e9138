//! End-to-end log pipeline: simulator → agent → controller → database → WebSocket, with
//! real release binaries. Prints figures; asserts nothing.
//!
//! `cargo build --release --workspace --bins && cargo bench -p languard-e2e --bench pipeline`
//! Environment: `SERVERS` (4), `RATE` lines/s per server for the throughput run (25000),
//! `SECS` (20), `AGENTS` for the footprint run (10), `LANGUARD_TEST_PG_URL` + `PG=1`
//! to run on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use languard_e2e::fleet::{AgentProc, Api, Controller, PgDatabase};
use serde_json::json;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn committed_lines(ctl: &Controller) -> u64 {
    let r = reqwest::get(format!("http://{}/metrics", ctl.metrics))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    r.lines()
        .find_map(|l| l.strip_prefix("languard_link_log_lines_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn start_servers(api: &Api, host: &str, n: u64, rate: u64) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let knobs = [
            "-sim_players=0".to_owned(),
            "-sim_chat_interval_ms=0".to_owned(),
            "-sim_startup_delay_ms=100".to_owned(),
            format!("-sim_rpt_spam={rate}"),
        ];
        let knobs: Vec<&str> = knobs.iter().map(String::as_str).collect();
        let id = api
            .sim_server(host, &format!("bench-{rate}-{i}"), &knobs)
            .await;
        let (s, v) = api.post(&format!("/servers/{id}/start"), json!({})).await;
        assert_eq!(s, 200, "{v}");
        ids.push(id);
    }
    for id in &ids {
        api.wait_state(id, "running", Duration::from_secs(60)).await;
    }
    ids
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let pg = (env("PG", 0) == 1).then(|| {
        PgDatabase::create(&std::env::var("LANGUARD_TEST_PG_URL").expect("LANGUARD_TEST_PG_URL"))
    });
    let db = pg.as_ref().map(|p| p.url.clone());
    let ctl = Controller::start(&dir.path().join("controller"), db.as_deref()).await;
    let api = ctl.admin().await;
    let backend = if pg.is_some() { "PostgreSQL" } else { "SQLite" };

    // 1. Latency at ~1k lines/s: one server spamming 1000 lines/s; markers said over RCon
    //    travel game log → agent → controller → WebSocket.
    let host = api.host("bench").await;
    let mut agent = AgentProc::new(&dir.path().join("agent"));
    agent
        .enroll(ctl.link, &api.join_token(&host).await)
        .unwrap();
    agent.start();
    let ids = start_servers(&api, &host, 1, 1000).await;
    let mut live = api.live().await;
    live.subscribe(Some(&ids[0]), &["log"]).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut lat = Vec::new();
    for i in 0..200 {
        let marker = format!("lat-{i}-x");
        let t0 = Instant::now();
        let (s, _) = api
            .post(
                &format!("/servers/{}/say", ids[0]),
                json!({"message": marker}),
            )
            .await;
        assert_eq!(s, 204);
        'wait: loop {
            let m = tokio::time::timeout(Duration::from_secs(10), live.next())
                .await
                .unwrap()
                .unwrap();
            if let Some(lines) = m["data"].as_array() {
                for l in lines {
                    if l["text"].as_str().unwrap_or("").ends_with(&marker) {
                        break 'wait;
                    }
                }
            }
        }
        lat.push(t0.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    lat.sort();
    let p = |q: f64| lat[((lat.len() as f64 - 1.0) * q) as usize];
    println!(
        "[{backend}] say → WebSocket latency with 1000 lines/s flowing: p50 {:?}, p99 {:?}, max {:?}",
        p(0.5),
        p(0.99),
        p(1.0)
    );
    drop(live);
    for id in &ids {
        api.post(&format!("/servers/{id}/kill"), json!({})).await;
    }

    // 2. Sustained throughput.
    let n = env("SERVERS", 4);
    let rate = env("RATE", 25_000);
    let secs = env("SECS", 20);
    let _ids = start_servers(&api, &host, n, rate).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pid = ctl.pid().unwrap();
    let (c0, t0, cpu0) = (committed_lines(&ctl).await, Instant::now(), cpu_ticks(pid));
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let (c1, el, cpu1) = (committed_lines(&ctl).await, t0.elapsed(), cpu_ticks(pid));
    let offered = n * rate;
    println!(
        "[{backend}] pipeline: {:.0} lines/s committed ({n} servers offering {offered} lines/s), controller {:.0}% of one core, RSS {} MiB",
        (c1 - c0) as f64 / el.as_secs_f64(),
        (cpu1 - cpu0) as f64 / 100.0 / el.as_secs_f64() * 100.0,
        rss_kib(pid) / 1024
    );
    for id in &_ids {
        api.post(&format!("/servers/{id}/kill"), json!({})).await;
    }
    drop(agent);

    drop(ctl);

    // 3. Controller footprint with many idle agents connected (a fresh controller, so
    //    the backlog of the throughput run does not count).
    let pg2 = (env("PG", 0) == 1).then(|| {
        PgDatabase::create(&std::env::var("LANGUARD_TEST_PG_URL").expect("LANGUARD_TEST_PG_URL"))
    });
    let ctl = Controller::start(
        &dir.path().join("controller2"),
        pg2.as_ref().map(|p| p.url.as_str()),
    )
    .await;
    let api = ctl.admin().await;
    let pid = ctl.pid().unwrap();
    let agents = env("AGENTS", 10);
    let mut procs = Vec::new();
    for i in 0..agents {
        let h = api.host(&format!("idle-{i}")).await;
        let mut a = AgentProc::new(&dir.path().join(format!("idle-{i}")));
        a.enroll(ctl.link, &api.join_token(&h).await).unwrap();
        a.start();
        procs.push(a);
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (cpu0, t0) = (cpu_ticks(pid), Instant::now());
    tokio::time::sleep(Duration::from_secs(30)).await;
    let cpu = (cpu_ticks(pid) - cpu0) as f64 / 100.0 / t0.elapsed().as_secs_f64() * 100.0;
    println!(
        "[{backend}] controller with {agents} idle agents connected: RSS {} MiB, {cpu:.2}% of one core",
        rss_kib(pid) / 1024
    );
}
