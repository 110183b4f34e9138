//! `cargo bench -p languard-controller --bench api`: GET /api/v1/servers req/s and p99 over
//! loopback with a keep-alive client pool, plus argon2id verify cost. Uses SQLite in a temp
//! dir (or PostgreSQL with `LANGUARD_BENCH_DATABASE=postgres://…`); falls back to the
//! in-memory store while the SQL store is unavailable. Prints figures; asserts nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use languard_controller::config::Config;
use languard_controller::secrets::MasterKey;
use languard_controller::service::Ctx;
use languard_controller::store::{self, Role};

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let url = std::env::var("LANGUARD_BENCH_DATABASE")
        .unwrap_or_else(|_| format!("sqlite://{}", dir.path().join("b.db").display()));
    let (store, label): (Arc<dyn store::Store>, String) = match store::connect(&url).await {
        Ok(s) => (s.clone(), s.backend().to_owned()),
        Err(e) => {
            eprintln!("store unavailable ({e}); using the in-memory store");
            (
                Arc::new(languard_controller::service::memstore::MemStore::default()),
                "memory".into(),
            )
        }
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let cfg = Config {
        data_dir: dir.path().into(),
        listen: vec![addr],
        ..Config::default()
    };
    let app = languard_controller::with_store(store, cfg, &MasterKey::from_bytes([1u8; 32]));
    let sys = Ctx {
        principal: None,
        ip: None,
    };
    app.create_user(&sys, "bench", "bench-password-1", Role::Admin, false)
        .await
        .unwrap();
    let t0 = Instant::now();
    let n = 20;
    for _ in 0..n {
        languard_controller::auth::password::verify(
            "bench-password-1".into(),
            app.store
                .get_user_by_username("bench")
                .await
                .unwrap()
                .unwrap()
                .password_hash,
        )
        .await;
    }
    let argon_ms = t0.elapsed().as_secs_f64() * 1000.0 / f64::from(n);
    let srv = app.clone();
    tokio::spawn(async move { languard_controller::serve(srv).await.unwrap() });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let base = format!("http://{addr}/api/v1");
    let login: serde_json::Value = client
        .post(format!("{base}/auth/login"))
        .json(&serde_json::json!({"username": "bench", "password": "bench-password-1"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["access_token"].as_str().unwrap().to_owned();
    let sys_admin = languard_controller::auth::Principal {
        user_id: uuid::Uuid::nil(),
        username: "bench".into(),
        role: Role::Admin,
        must_change_password: false,
        via: languard_controller::auth::Via::Session,
        family: None,
    };
    let ctx = Ctx {
        principal: Some(sys_admin),
        ip: None,
    };
    let h = app.create_host(&ctx, "bench-host", "linux").await.unwrap();
    for i in 0..10i64 {
        let spec = store::ServerSpec {
            name: format!("s{i}"),
            game: store::Game::Arma3,
            game_port: 2302 + i * 10,
            rcon_port: 2309 + i * 10,
            executable_path: "arma3server_x64".into(),
            restart_policy: serde_json::json!({"mode": "on-failure"}),
            desired_running: false,
        };
        app.create_server(&ctx, h.id, spec).await.unwrap();
    }
    let conc = 64;
    let dur = Duration::from_secs(
        std::env::var("BENCH_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(10),
    );
    let url = format!("{base}/servers");
    // warm-up
    for _ in 0..200 {
        client
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (c, u, t) = (client.clone(), url.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while start.elapsed() < dur {
                let s = Instant::now();
                let r = c.get(&u).bearer_auth(&t).send().await.unwrap();
                assert!(r.status().is_success());
                r.bytes().await.unwrap();
                lat.push(s.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let secs = start.elapsed().as_secs_f64();
    all.sort();
    let p =
        |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)].as_secs_f64() * 1000.0;
    println!(
        "backend={label} GET /api/v1/servers (10 servers): {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} requests, {conc} connections",
        all.len() as f64 / secs,
        p(0.5),
        p(0.99),
        all.len()
    );
    println!("argon2id verify (m=19MiB,t=2,p=1): {argon_ms:.1} ms");
}
