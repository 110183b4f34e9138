//! A fleet on one machine: a controller process, agent processes with their own data
//! folders, simulated game servers, driven through the public API like an admin would.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // a test harness panics on failure

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The folder of the workspace's built binaries (next to this executable's `deps/`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let mut dir = exe.parent().unwrap().to_path_buf();
    if dir.ends_with("deps") || dir.ends_with("examples") {
        dir.pop();
    }
    dir
}

/// A built binary of the workspace; tells how to build it when missing.
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace --bins` (cargo test --workspace does)",
        p.display()
    );
    p
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A game port P with P..=P+4 free (UDP) and an RCon port, distinct across calls.
pub fn game_ports() -> (u16, u16) {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let start = 30_000 + (std::process::id() % 300) as u16 * 10;
    for _ in 0..500 {
        let off = NEXT.fetch_add(10, Ordering::SeqCst) % 5000;
        let p = start.wrapping_add(off);
        if !(30_000..=60_000).contains(&p) {
            continue;
        }
        let free = (p..p + 8).all(|q| {
            std::net::UdpSocket::bind(("0.0.0.0", q)).is_ok()
                && TcpListener::bind(("0.0.0.0", q)).is_ok()
        });
        if free {
            return (p, p + 7);
        }
    }
    panic!("no free game ports");
}

fn kill(child: &mut Child, signal: &str) {
    let _ = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A `languard serve` process.
pub struct Controller {
    child: Option<Child>,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub http: SocketAddr,
    pub link: SocketAddr,
    /// The metrics listener (`/metrics` is not served on the API port).
    pub metrics: SocketAddr,
    pub log: PathBuf,
}

impl Controller {
    /// Creates the `e2e` admin (password `e2e-password-1`) and starts serving.
    pub async fn start(data_dir: &Path, database_url: Option<&str>) -> Self {
        std::fs::create_dir_all(data_dir).unwrap();
        let mut c = Controller {
            child: None,
            data_dir: data_dir.to_path_buf(),
            database_url: database_url.map(str::to_owned),
            http: SocketAddr::from(([127, 0, 0, 1], free_port())),
            link: SocketAddr::from(([127, 0, 0, 1], free_port())),
            metrics: SocketAddr::from(([127, 0, 0, 1], free_port())),
            log: data_dir.join("controller.log"),
        };
        let mut create = c.command();
        create.args([
            "admin",
            "create-user",
            "e2e",
            "--role",
            "admin",
            "--password-stdin",
        ]);
        create.stdin(Stdio::piped()).stdout(Stdio::null());
        let mut child = create.spawn().unwrap();
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(b"e2e-password-1\n").unwrap();
        }
        assert!(child.wait().unwrap().success(), "create-user failed");
        c.resume().await;
        c
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(bin("languard"));
        cmd.arg("--data-dir").arg(&self.data_dir);
        if let Some(u) = &self.database_url {
            cmd.arg("--database-url").arg(u);
        }
        cmd.env("LANGUARD_LINK_NAMES", "127.0.0.1,localhost")
            .env("LANGUARD_RETENTION_INTERVAL_MINUTES", "0")
            .env("LANGUARD_METRICS_LISTEN", self.metrics.to_string())
            .env("RUST_LOG", "info");
        cmd
    }

    /// Starts (again) on the same data and ports; waits until healthy.
    pub async fn resume(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = self.command();
        cmd.arg("serve")
            .arg("--listen")
            .arg(self.http.to_string())
            .arg("--link-listen")
            .arg(self.link.to_string())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log));
        self.child = Some(cmd.spawn().unwrap());
        let url = format!("http://{}/api/v1/system/health", self.http);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = reqwest::get(&url).await
                && r.status().is_success()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "controller did not become healthy; see {}",
                self.log.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM and wait.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill(&mut c, "-TERM");
        }
    }

    /// The controller's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// A signed-in admin client.
    pub async fn admin(&self) -> Api {
        Api::login(&format!("http://{}", self.http), "e2e", "e2e-password-1").await
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The REST API as a signed-in user.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub token: String,
    http: reqwest::Client,
}

impl Api {
    pub async fn login(base: &str, user: &str, password: &str) -> Self {
        let http = reqwest::Client::new();
        let r: Value = http
            .post(format!("{base}/api/v1/auth/login"))
            .json(&json!({"username": user, "password": password}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = r["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("login: {r}"))
            .to_owned();
        Api {
            base: base.to_owned(),
            token,
            http,
        }
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}/api/v1{path}", self.base);
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .http
            .request(m, url)
            .bearer_auth(&self.token)
            .header("If-Match", "*")
            .timeout(Duration::from_secs(120));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call("POST", path, Some(body)).await
    }

    /// Creates a host; returns its id.
    pub async fn host(&self, name: &str) -> String {
        let (s, h) = self
            .post("/hosts", json!({"name": name, "os": "linux"}))
            .await;
        assert_eq!(s, 201, "{h}");
        h["id"].as_str().unwrap().to_owned()
    }

    /// A join token for the host.
    pub async fn join_token(&self, host: &str) -> String {
        let (s, t) = self
            .post(&format!("/hosts/{host}/join-tokens"), json!({}))
            .await;
        assert_eq!(s, 201, "{t}");
        t["token"].as_str().unwrap().to_owned()
    }

    /// Creates a simulated Arma 3 server on `host` with simulator `knobs`
    /// (`-sim-…` launch parameters); returns its id.
    pub async fn sim_server(&self, host: &str, name: &str, knobs: &[&str]) -> String {
        let (game, rcon) = game_ports();
        let sim = bin("arma3server_x64");
        let (s, srv) = self
            .post(
                "/servers",
                json!({"host_id": host, "name": name, "game": "arma3", "game_port": game,
                       "rcon_port": rcon, "executable_path": sim.to_string_lossy(),
                       "restart_policy": {"mode": "on_crash"}}),
            )
            .await;
        assert_eq!(s, 201, "{srv}");
        let id = srv["id"].as_str().unwrap().to_owned();
        let (s, v) = self
            .call(
                "PUT",
                &format!("/servers/{id}/config/sections/rcon"),
                Some(json!({"content": {"password": "e2eRconSecret7"}})),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        let extra: Vec<String> = knobs.iter().map(|k| (*k).to_owned()).collect();
        let (s, v) = self
            .call(
                "PUT",
                &format!("/servers/{id}/config/sections/launch"),
                Some(json!({"content": {"auto_init": true, "extra": extra}})),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        id
    }

    /// Polls the server's status until `state` (or panics after `within`).
    pub async fn wait_state(&self, server: &str, state: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let (s, v) = self.get(&format!("/servers/{server}/status")).await;
            if s == 200 && v["state"] == state {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "server {server} not {state}: {v}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Every stored log line of the server whose text contains `q`, oldest first.
    pub async fn all_logs(&self, server: &str, q: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut before: Option<String> = None;
        loop {
            let mut path = format!("/servers/{server}/logs?limit=5000&q={}", urlencode(q));
            if let Some(b) = &before {
                path.push_str(&format!("&before={b}"));
            }
            let (s, page) = self.get(&path).await;
            assert_eq!(s, 200, "{page}");
            out.extend(page["items"].as_array().unwrap().iter().cloned());
            match page["next"].as_str() {
                Some(n) => before = Some(n.to_owned()),
                None => break,
            }
        }
        out.reverse();
        out
    }

    /// A connected live WebSocket.
    pub async fn live(&self) -> Live {
        let (s, t) = self.post("/live/tickets", json!({})).await;
        assert_eq!(s, 200, "{t}");
        let ws_url = format!(
            "{}/api/v1/ws?ticket={}",
            self.base.replacen("http", "ws", 1),
            t["ticket"].as_str().unwrap()
        );
        let (ws, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
        let mut live = Live { ws };
        let ready = live.next().await.unwrap();
        assert_eq!(ready["type"], "ready", "{ready}");
        live
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The live WebSocket.
pub struct Live {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl Live {
    pub async fn send(&mut self, v: Value) {
        use futures_util::SinkExt;
        self.ws
            .send(tokio_tungstenite::tungstenite::Message::text(v.to_string()))
            .await
            .unwrap();
    }

    /// The next JSON message (pings skipped); `None` when closed.
    pub async fn next(&mut self) -> Option<Value> {
        use futures_util::StreamExt;
        loop {
            match self.ws.next().await? {
                Ok(tokio_tungstenite::tungstenite::Message::Text(t)) => {
                    return serde_json::from_str(t.as_str()).ok();
                }
                Ok(tokio_tungstenite::tungstenite::Message::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Subscribes and waits for the confirmation.
    pub async fn subscribe(&mut self, server: Option<&str>, channels: &[&str]) {
        self.send(json!({"op": "subscribe", "server": server, "channels": channels}))
            .await;
        loop {
            let m = self.next().await.unwrap();
            if m["type"] == "subscribed" {
                return;
            }
        }
    }
}

/// Whether this process runs as root (then agents run their games as `nobody`).
pub fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the process's effective user.
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Makes `dir` and the folders above it that this user owns traversable by others
/// (o+x, not readable): the game user must reach its server folder and the
/// simulator, as it does below /srv on a real host. Temporary folders are 0700.
pub fn let_games_through(dir: &Path) {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let me = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(0);
    for d in dir.ancestors() {
        let Ok(meta) = std::fs::metadata(d) else {
            continue;
        };
        if meta.is_dir() && meta.uid() == me && meta.mode() & 0o001 == 0 {
            let mode = (meta.mode() & 0o7777) | 0o011;
            let _ = std::fs::set_permissions(d, std::fs::Permissions::from_mode(mode));
        }
    }
}

/// The agent options every harness agent gets: the simulator's folder is the allowed
/// install folder; as root the games run as `nobody`, otherwise under the agent's own
/// user (explicitly allowed, as on a developer's machine).
pub fn agent_game_args(sim: &Path) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = vec![
        "--allow-executable".into(),
        sim.parent()
            .unwrap_or(Path::new("/"))
            .as_os_str()
            .to_owned(),
    ];
    if running_as_root() {
        args.extend(["--game-user".into(), "nobody".into()]);
    } else {
        args.push("--allow-agent-user".into());
    }
    args
}

/// A `languard-agent` with its own data and servers folders.
pub struct AgentProc {
    child: Option<Child>,
    pub dir: PathBuf,
    pub log: PathBuf,
}

impl AgentProc {
    pub fn new(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let_games_through(dir);
        AgentProc {
            child: None,
            dir: dir.to_path_buf(),
            log: dir.join("agent.log"),
        }
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(bin("languard-agent"));
        cmd.arg("--data-dir")
            .arg(self.dir.join("data"))
            .arg("--servers-dir")
            .arg(self.dir.join("servers"))
            .args(agent_game_args(&bin("arma3server_x64")))
            .env("LANGUARD_AGENT_LOG_LEVEL", "info");
        cmd
    }

    /// `languard-agent enroll`; the command's output on failure.
    pub fn enroll(&self, link: SocketAddr, token: &str) -> Result<(), String> {
        let out = self
            .command()
            .args([
                "enroll",
                "--controller",
                &link.to_string(),
                "--token",
                token,
            ])
            .output()
            .unwrap();
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    pub fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = self.command();
        cmd.arg("run")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log));
        self.child = Some(cmd.spawn().unwrap());
    }

    /// SIGKILL (games keep running and are adopted by the next start).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill(&mut c, "-KILL");
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill(&mut c, "-TERM");
        }
    }

    /// The agent's identity files (for tests that speak the link protocol by hand).
    pub fn identity_dir(&self) -> PathBuf {
        self.dir.join("data").join("identity")
    }

    /// Game processes started from this agent's servers folder.
    pub fn games(&self) -> Vec<u32> {
        let marker = self.dir.join("servers").to_string_lossy().into_owned();
        let mut pids = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(cwd) = std::fs::read_link(entry.path().join("cwd")) else {
                continue;
            };
            if cwd.to_string_lossy().starts_with(&marker) {
                let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
                if !stat.contains(") Z ") {
                    pids.push(pid);
                }
            }
        }
        pids
    }
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        self.stop();
        for pid in self.games() {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
}

/// A fresh PostgreSQL database for one run (from `LANGUARD_TEST_PG_URL`, an admin URL),
/// dropped at the end.
pub struct PgDatabase {
    admin: String,
    pub name: String,
    pub url: String,
}

impl PgDatabase {
    pub fn create(admin_url: &str) -> Self {
        let name = format!("lg_e2e_{}_{}", std::process::id(), free_port());
        let status = Command::new("psql")
            .arg(admin_url)
            .args(["-qc", &format!("CREATE DATABASE {name}")])
            .status()
            .unwrap();
        assert!(status.success(), "cannot create database {name}");
        let base = admin_url.rsplit_once('/').map_or(admin_url, |(b, _)| b);
        PgDatabase {
            admin: admin_url.to_owned(),
            url: format!("{base}/{name}"),
            name,
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .arg(&self.admin)
            .args([
                "-qc",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .status();
    }
}
