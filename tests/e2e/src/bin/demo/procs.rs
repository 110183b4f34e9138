//! The processes the demo starts and how it stops them. The controller and the agent run
//! in their own process groups, so a Ctrl-C in the terminal reaches only the demo, which
//! then stops the pieces in order (servers through the API while the controller and agent
//! still run). The agent deliberately leaves its games running when it stops, so the demo
//! also stops every process whose working folder is under the agent's servers folder.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

use crate::Failure;

/// How long a process gets between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(10);

/// The line `languard serve` prints on first start (see `controller/src/main.rs`), up to
/// the password. Printed to stdout only, so the demo reads the controller's stdout.
const ADMIN_PASSWORD_LINE: &str = "Created user `admin` with password: ";

/// The workspace binaries the demo runs, found next to its own executable (cargo puts
/// every binary of a build in one folder).
pub struct Bins {
    pub controller: PathBuf,
    pub agent: PathBuf,
    pub game: PathBuf,
}

impl Bins {
    pub fn next_to_me() -> Result<Self, Failure> {
        let exe = std::env::current_exe()
            .map_err(|e| Failure(format!("cannot locate this executable: {e}")))?;
        let dir = exe.parent().unwrap_or(Path::new("."));
        let find = |name: &str| {
            let p = dir.join(name);
            if p.is_file() {
                Ok(p)
            } else {
                Err(Failure(format!(
                    "{} is missing: build every binary with `cargo build --release --workspace --bins`",
                    p.display()
                )))
            }
        };
        Ok(Bins {
            controller: find("languard")?,
            agent: find("languard-agent")?,
            game: find("arma3server_x64")?,
        })
    }
}

/// A running `languard serve`.
pub struct Controller {
    child: Child,
    data_dir: PathBuf,
    http: SocketAddr,
    pub log: PathBuf,
    password: Option<oneshot::Receiver<String>>,
}

impl Controller {
    /// Starts `languard serve` on a fresh data folder. Its stdout is copied to the log,
    /// except the first-start admin password, which is kept for [`Controller::ready`] and
    /// never written to disk.
    pub fn spawn(
        bins: &Bins,
        data_dir: &Path,
        http: SocketAddr,
        link: SocketAddr,
    ) -> Result<Self, Failure> {
        let log = data_dir.join("controller.log");
        let stderr = open_log(&log)?;
        let mut cmd = controller_command(bins, data_dir);
        cmd.arg("serve")
            .arg("--listen")
            .arg(http.to_string())
            .arg("--link-listen")
            .arg(link.to_string())
            .stdout(Stdio::piped())
            .stderr(stderr);
        let mut child = spawn(&mut cmd, "languard")?;
        let (tx, rx) = oneshot::channel();
        if let Some(stdout) = child.stdout.take() {
            let copy = open_log(&log)?;
            tokio::spawn(copy_stdout(stdout, copy, tx));
        }
        Ok(Controller {
            child,
            data_dir: data_dir.to_path_buf(),
            http,
            log,
            password: Some(rx),
        })
    }

    /// Waits until the API answers; returns the one-time admin password it printed.
    pub async fn ready(&mut self) -> Result<String, Failure> {
        let url = format!("http://{}/api/v1/system/health", self.http);
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(Failure(format!(
                    "the controller exited ({status}): {}",
                    last_error(&self.log)
                )));
            }
            let healthy = client
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if healthy {
                break;
            }
            if Instant::now() >= deadline {
                return Err(Failure(format!(
                    "the controller did not answer on {} within 60 s; see {}",
                    self.http,
                    self.log.display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let rx = self
            .password
            .take()
            .ok_or_else(|| Failure("the admin password was already taken".into()))?;
        match tokio::time::timeout(Duration::from_secs(5), rx).await {
            Ok(Ok(pw)) => Ok(pw),
            _ => Err(Failure(format!(
                "the controller did not print the first-start admin password (is {} new?)",
                self.data_dir.display()
            ))),
        }
    }

    /// Creates an admin account with `password` through `languard admin create-user`
    /// (the running controller shares the SQLite database).
    pub async fn create_admin(
        &self,
        bins: &Bins,
        username: &str,
        password: &str,
    ) -> Result<(), Failure> {
        let mut cmd = controller_command(bins, &self.data_dir);
        cmd.args(["admin", "create-user", username, "--role", "admin"])
            .arg("--password-stdin")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = spawn(&mut cmd, "languard admin create-user")?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(format!("{password}\n").as_bytes())
                .await
                .map_err(|e| Failure(format!("languard admin create-user: {e}")))?;
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| Failure(format!("languard admin create-user: {e}")))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(Failure(format!(
                "creating the demo's set-up account failed: {}",
                first_line(&String::from_utf8_lossy(&out.stderr))
            )))
        }
    }

    /// Resolves when the controller exits (it should not while the demo runs).
    pub async fn exited(&mut self) -> String {
        exit_text(self.child.wait().await)
    }

    pub async fn stop(&mut self) {
        terminate(&mut self.child).await;
    }
}

/// A `languard-agent` with its data and servers folders under one folder.
pub struct Agent {
    child: Child,
    pub log: PathBuf,
}

impl Agent {
    /// `languard-agent enroll` against the link address with a join token.
    pub async fn enroll(
        bins: &Bins,
        dir: &Path,
        link: SocketAddr,
        token: &str,
    ) -> Result<(), Failure> {
        let mut cmd = agent_command(bins, dir);
        cmd.args([
            "enroll",
            "--controller",
            &link.to_string(),
            "--token",
            token,
        ])
        .stdin(Stdio::null());
        let out = cmd
            .output()
            .await
            .map_err(|e| Failure(format!("cannot run {}: {e}", bins.agent.display())))?;
        if out.status.success() {
            Ok(())
        } else {
            let text = format!(
                "{}\n{}",
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            );
            Err(Failure(format!(
                "enrolling the agent failed: {}",
                first_line(&text)
            )))
        }
    }

    /// Starts `languard-agent run`, logging to `agent.log` in `dir`.
    pub fn spawn(bins: &Bins, dir: &Path) -> Result<Self, Failure> {
        let log = dir.join("agent.log");
        let mut cmd = agent_command(bins, dir);
        cmd.arg("run")
            .stdout(open_log(&log)?)
            .stderr(open_log(&log)?);
        let child = spawn(&mut cmd, "languard-agent")?;
        Ok(Agent { child, log })
    }

    /// Resolves when the agent exits (it should not while the demo runs).
    pub async fn exited(&mut self) -> String {
        exit_text(self.child.wait().await)
    }

    pub async fn stop(&mut self) {
        terminate(&mut self.child).await;
    }
}

/// The agent's servers folder (every game runs in a folder under it).
pub fn servers_dir(agent_dir: &Path) -> PathBuf {
    agent_dir.join("servers")
}

fn agent_command(bins: &Bins, dir: &Path) -> Command {
    let mut cmd = Command::new(&bins.agent);
    isolate(&mut cmd);
    cmd.arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--servers-dir")
        .arg(servers_dir(dir))
        // The simulator's folder is the one install folder the agent may start from.
        .arg("--allow-executable")
        .arg(bins.game.parent().unwrap_or(Path::new("/")))
        .env("LANGUARD_AGENT_LOG_LEVEL", "info")
        .env("NO_COLOR", "1");
    if languard_e2e::fleet::running_as_root() {
        // A root agent never runs games as root; `nobody` exists everywhere.
        cmd.args(["--game-user", GAME_USER]);
    } else {
        // On a newcomer's machine the games run as the newcomer, which the agent
        // only does when told.
        cmd.arg("--allow-agent-user");
    }
    cmd
}

/// The user a root demo runs its games as.
const GAME_USER: &str = "nobody";

/// A root demo runs its games as [`GAME_USER`], who must be able to pass through every
/// folder above the demo's folder and the simulator's; says which one is closed
/// instead of letting every game fail to start.
pub fn check_game_user_can_reach(bins: &Bins, dir: &Path) -> Result<(), Failure> {
    use std::os::unix::fs::PermissionsExt;
    if !languard_e2e::fleet::running_as_root() {
        return Ok(());
    }
    let game_dir = bins.game.parent().unwrap_or(Path::new("/"));
    for folder in dir.ancestors().chain(game_dir.ancestors()) {
        let Ok(meta) = std::fs::metadata(folder) else {
            continue;
        };
        if meta.is_dir() && meta.permissions().mode() & 0o001 == 0 {
            return Err(Failure(format!(
                "running as root, the demo starts its games as `{GAME_USER}`, who cannot \
                 pass through {}: allow it (chmod o+x {}), choose a folder elsewhere, or run \
                 the demo as a normal user",
                folder.display(),
                folder.display()
            )));
        }
    }
    Ok(())
}

fn controller_command(bins: &Bins, data_dir: &Path) -> Command {
    let mut cmd = Command::new(&bins.controller);
    isolate(&mut cmd);
    cmd.arg("--data-dir")
        .arg(data_dir)
        // The names the local agent dials, written into the link certificate.
        .env("LANGUARD_LINK_NAMES", "127.0.0.1,localhost")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1");
    cmd
}

/// The demo's processes see only the settings it gives them: the caller's `LANGUARD_*` or
/// `DATABASE_URL` (a PostgreSQL server, a config file, another data folder) stay out.
fn isolate(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key
            .to_str()
            .is_some_and(|k| k.starts_with("LANGUARD_") || k == "DATABASE_URL")
        {
            cmd.env_remove(&key);
        }
    }
}

/// Spawns in its own process group (see the module comment), killed if the demo itself
/// unwinds without stopping it.
fn spawn(cmd: &mut Command, what: &str) -> Result<Child, Failure> {
    cmd.process_group(0).kill_on_drop(true);
    cmd.spawn()
        .map_err(|e| Failure(format!("cannot start {what}: {e}")))
}

fn open_log(path: &Path) -> Result<std::fs::File, Failure> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Failure(format!("cannot open {}: {e}", path.display())))
}

async fn copy_stdout(
    stdout: tokio::process::ChildStdout,
    log: std::fs::File,
    tx: oneshot::Sender<String>,
) {
    use std::io::Write;
    let mut log = log;
    let mut tx = Some(tx);
    let mut lines = BufReader::new(stdout).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(pw) = admin_password(&line) {
            if let Some(tx) = tx.take() {
                let _ = tx.send(pw.to_owned());
            }
            continue;
        }
        let _ = writeln!(log, "{line}");
    }
}

/// The password from the controller's first-start line, if this is that line.
fn admin_password(line: &str) -> Option<&str> {
    let pw = line.trim().strip_prefix(ADMIN_PASSWORD_LINE)?.trim();
    (!pw.is_empty() && !pw.contains(char::is_whitespace)).then_some(pw)
}

/// The controller's own error from its log (`Error: …` from `main`), else its last line.
fn last_error(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let found = lines
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("Error: "))
        .or_else(|| lines.last().copied());
    match found {
        Some(l) => format!("{}; see {}", l.trim(), log.display()),
        None => format!("see {}", log.display()),
    }
}

fn first_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(|l| l.strip_prefix("Error: ").unwrap_or(l))
        .unwrap_or("no output")
        .to_owned()
}

fn exit_text(status: std::io::Result<std::process::ExitStatus>) -> String {
    match status {
        Ok(s) => s.to_string(),
        Err(e) => e.to_string(),
    }
}

/// SIGTERM, then SIGKILL after [`GRACE`].
async fn terminate(child: &mut Child) {
    let Some(pid) = child.id() else {
        return; // already reaped
    };
    signal(pid, "TERM");
    if tokio::time::timeout(GRACE, child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}

/// Sends a signal with `kill(1)` (the workspace forbids `unsafe`, so no `libc::kill`).
fn signal(pid: u32, name: &str) {
    let _ = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Live processes whose working folder is under `servers_dir`: the games the agent
/// started (each runs in its server's folder).
pub fn games(servers_dir: &Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cwd = std::fs::read_link(e.path().join("cwd")).ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            (cwd.starts_with(servers_dir) && !is_zombie(&stat)).then_some(pid)
        })
        .collect()
}

/// `/proc/<pid>/stat`'s state field (after the parenthesised name) is `Z`.
fn is_zombie(stat: &str) -> bool {
    stat.rsplit_once(')')
        .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
}

/// Stops every game left under `servers_dir`: SIGTERM, then SIGKILL after [`GRACE`].
/// Returns how many had to be stopped this way.
pub async fn stop_games(servers_dir: &Path) -> usize {
    let left = games(servers_dir);
    for pid in &left {
        signal(*pid, "TERM");
    }
    let deadline = Instant::now() + GRACE;
    while !games(servers_dir).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for pid in games(servers_dir) {
        signal(pid, "KILL");
    }
    left.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_first_start_password_line() {
        // As `languard serve` prints it (controller/src/main.rs).
        let printed = format!(
            "Created user `admin` with password: {}\n",
            "Ab3xYz9KmnPq2RsTuVw4"
        );
        let line = printed.lines().next().unwrap();
        assert_eq!(admin_password(line), Some("Ab3xYz9KmnPq2RsTuVw4"));
        assert_eq!(admin_password("It must be changed at first login."), None);
        assert_eq!(admin_password("Created user `admin` with password: "), None);
        assert_eq!(
            admin_password("2025-01-01T00:00:00Z INFO Created user `bob` with password: x"),
            None
        );
    }

    #[test]
    fn the_controllers_error_line_is_preferred() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("c.log");
        std::fs::write(
            &log,
            "INFO starting\nError: could not bind 127.0.0.1:8080: Address in use\n\nCaused by:\n    x\n",
        )
        .unwrap();
        let got = last_error(&log);
        assert!(
            got.starts_with("could not bind 127.0.0.1:8080: Address in use; see "),
            "{got}"
        );
        std::fs::write(&log, "INFO a\nWARN last words\n").unwrap();
        assert!(last_error(&log).starts_with("WARN last words; see "));
    }

    #[test]
    fn zombies_are_not_games() {
        assert!(is_zombie("123 (arma3server_x64) Z 1 2 3"));
        assert!(!is_zombie("123 (a) b) S 1 2 3"));
        assert!(is_zombie("123 (a) b) Z 1"));
    }

    #[tokio::test]
    async fn stops_processes_running_under_the_servers_folder() {
        let dir = tempfile::tempdir().unwrap();
        let inside = dir.path().join("servers").join("s1");
        std::fs::create_dir_all(&inside).unwrap();
        let mut game = std::process::Command::new("sleep")
            .arg("300")
            .current_dir(&inside)
            .spawn()
            .unwrap();
        let mut other = std::process::Command::new("sleep")
            .arg("300")
            .current_dir(dir.path())
            .spawn()
            .unwrap();
        let servers = dir.path().join("servers");
        assert_eq!(games(&servers), vec![game.id()]);
        // The test reaps the child itself (the agent would, in the demo).
        let reaper = std::thread::spawn(move || game.wait().unwrap());
        assert_eq!(stop_games(&servers).await, 1);
        assert!(!reaper.join().unwrap().success());
        assert!(games(&servers).is_empty());
        assert_eq!(
            other.try_wait().unwrap(),
            None,
            "outside the folder: untouched"
        );
        other.kill().unwrap();
        other.wait().unwrap();
    }
}
