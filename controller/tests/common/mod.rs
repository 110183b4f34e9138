//! Test harness: the real HTTP API in-process over SQLite (default) or PostgreSQL
//! (`LANGUARD_TEST_DATABASE=postgres`), users minted through the real login.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use languard_controller::config::Config;
use languard_controller::secrets::MasterKey;
use languard_controller::service::{AppState, Ctx};
use languard_controller::store::{self, Role, Store};
use poem::test::{TestClient, TestResponse};
use serde_json::{Value, json};

pub const PW: &str = "correct-horse-battery";

pub struct Harness {
    pub app: AppState,
    pub cli: TestClient<poem::endpoint::BoxEndpoint<'static, poem::Response>>,
    _dir: tempfile::TempDir,
    _pg: Option<PgDatabase>,
}

/// The admin URL for the per-test PostgreSQL databases: `LANGUARD_TEST_PG_URL` (what `.ci/run`
/// exports, with the detected port), then the older `LANGUARD_TEST_PG_ADMIN`, then the default.
pub fn pg_admin_url() -> String {
    std::env::var("LANGUARD_TEST_PG_URL")
        .or_else(|_| std::env::var("LANGUARD_TEST_PG_ADMIN"))
        .unwrap_or_else(|_| "postgres://languard:languard@127.0.0.1:5432/postgres".into())
}

/// A per-test PostgreSQL database, dropped (with `FORCE`, closing the pool's connections)
/// when the harness goes away so CI does not accumulate them.
pub struct PgDatabase {
    admin: String,
    name: String,
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let name = self.name.clone();
        // Drop is synchronous and may run inside a runtime: use a private one on a thread.
        let res = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async move {
                use sqlx::Connection;
                let mut c = sqlx::PgConnection::connect(&admin)
                    .await
                    .map_err(|e| e.to_string())?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut c)
                .await
                .map_err(|e| e.to_string())?;
                Ok::<(), String>(())
            })
        })
        .join();
        match res {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("dropping test database {}: {e}", self.name),
            Err(_) => eprintln!(
                "dropping test database {}: cleanup thread panicked",
                self.name
            ),
        }
    }
}

async fn open_store(dir: &std::path::Path) -> (Arc<dyn Store>, Option<PgDatabase>) {
    if std::env::var("LANGUARD_TEST_DATABASE").as_deref() == Ok("postgres") {
        let admin = pg_admin_url();
        let db = format!("languard_test_{}", uuid::Uuid::new_v4().simple());
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("postgres admin connection to {admin}: {e}"));
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
            .execute(&mut c)
            .await
            .expect("create db");
        let guard = PgDatabase {
            admin: admin.clone(),
            name: db.clone(),
        };
        let url = format!("{}/{db}", admin.rsplit_once('/').unwrap().0);
        let store = store::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("postgres store {db}: {e}"));
        (store, Some(guard))
    } else {
        // Never fall back silently to another store: a broken SQLite must fail the test.
        let url = format!("sqlite://{}", dir.join("test.db").display());
        let store = store::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("sqlite store at {url}: {e}"));
        (store, None)
    }
}

/// The real HTTP server of a harness on ephemeral loopback ports: the API, and the
/// metrics listener when `metrics.listen` is set (give it port 0). Stops when dropped.
pub struct Served {
    pub api: std::net::SocketAddr,
    pub metrics: Option<std::net::SocketAddr>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Harness {
    pub async fn serve(&self) -> Served {
        let api = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let metrics = match self.app.config.metrics.listen {
            Some(a) => Some(tokio::net::TcpListener::bind(a).await.unwrap()),
            None => None,
        };
        let served_api = api.local_addr().unwrap();
        let served_metrics = metrics.as_ref().map(|m| m.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(languard_controller::serve_on(
            self.app.clone(),
            vec![api],
            metrics,
            async move {
                let _ = stopped.await;
            },
        ));
        Served {
            api: served_api,
            metrics: served_metrics,
            _stop: stop,
        }
    }

    pub async fn new() -> Self {
        Self::with_config(|_| {}).await
    }

    pub async fn with_config(f: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        cfg.login_throttle.per_ip = 1000;
        f(&mut cfg);
        let (store, pg) = open_store(dir.path()).await;
        let app =
            languard_controller::with_store(store, cfg, &MasterKey::from_bytes([9u8; 32])).unwrap();
        let ep = languard_controller::api::build(app.clone());
        Self {
            app,
            cli: TestClient::new(ep),
            _dir: dir,
            _pg: pg,
        }
    }

    pub async fn user(&self, name: &str, role: Role) -> String {
        let sys = Ctx {
            principal: None,
            ip: None,
        };
        self.app
            .create_user(&sys, name, PW, role, false)
            .await
            .unwrap();
        self.login(name, PW).await["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn login(&self, name: &str, pw: &str) -> Value {
        let r = self
            .cli
            .post("/api/v1/auth/login")
            .body_json(&json!({"username": name, "password": pw}))
            .send()
            .await;
        r.assert_status_is_ok();
        r.json().await.value().deserialize::<Value>()
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value, TestResponse) {
        let m = poem::http::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.cli.request(m, path);
        if let Some(t) = token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        if let Some(b) = body {
            req = req.body_json(&b);
        }
        let resp = req.send().await;
        let status = resp.0.status().as_u16();
        let ct = resp
            .0
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let mut resp = resp;
        let bytes = resp.0.take_body().into_bytes().await.unwrap();
        if status >= 400 {
            assert!(
                ct.starts_with("application/problem+json"),
                "{method} {path}: {status} with content-type {ct:?}: {}",
                String::from_utf8_lossy(&bytes)
            );
        }
        let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, v, resp)
    }

    pub async fn get(&self, path: &str, t: &str) -> (u16, Value) {
        let (s, v, _) = self.call("GET", path, Some(t), None).await;
        (s, v)
    }
    pub async fn send(&self, method: &str, path: &str, t: &str, body: Value) -> (u16, Value) {
        let (s, v, _) = self.call(method, path, Some(t), Some(body)).await;
        (s, v)
    }

    /// Creates a host and an Arma server; returns (host_id, server_id).
    pub async fn server(&self, admin: &str, port: i64) -> (String, String) {
        let (s, h) = self
            .send(
                "POST",
                "/api/v1/hosts",
                admin,
                json!({"name": format!("host-{port}"), "os": "linux"}),
            )
            .await;
        assert_eq!(s, 201, "{h}");
        let hid = h["id"].as_str().unwrap().to_owned();
        let (s, srv) = self.send("POST", "/api/v1/servers", admin, json!({"host_id": hid, "name": "main", "game": "arma3", "game_port": port, "rcon_port": port + 10, "executable_path": "/srv/arma3/arma3server_x64"})).await;
        assert_eq!(s, 201, "{srv}");
        (hid, srv["id"].as_str().unwrap().to_owned())
    }
}
