//! Supervisor tests with real processes: small shell scripts named [`EXE`].

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use sysinfo::System;
use tokio::sync::mpsc::UnboundedReceiver;

use super::process::{self, RunRecord};
use super::*;

/// The allow-listed name of the test scripts.
const EXE: &str = "gameserver";

/// Appends its pid to `starts`, prints, exits 0 once `stop_requested` appears.
const GRACEFUL: &str = "#!/bin/sh\necho $$ >> starts\necho started\necho to-stderr >&2\n\
while [ ! -f stop_requested ]; do sleep 0.1; done\necho bye\nexit 0\n";
/// Runs until signalled.
const SLEEPER: &str = "#!/bin/sh\necho $$ >> starts\necho started\nwhile :; do sleep 0.2; done\n";
/// Ignores SIGINT and SIGTERM (children inherit the ignore).
const STUBBORN: &str =
    "#!/bin/sh\ntrap '' INT TERM\necho $$ >> starts\necho started\nwhile :; do sleep 0.2; done\n";
/// Exits 3 on its first start, then runs.
const CRASH_ONCE: &str = "#!/bin/sh\necho $$ >> starts\nn=$(wc -l < starts)\n\
if [ \"$n\" -lt 2 ]; then echo dying; exit 3; fi\necho started\nwhile :; do sleep 0.2; done\n";
/// Always exits 3.
const CRASHER: &str = "#!/bin/sh\necho $$ >> starts\necho dying\nexit 3\n";

#[derive(Clone)]
enum Probe {
    Ok,
    /// Healthy once `starts` has at least this many lines.
    OkAfterStarts(PathBuf, usize),
}

#[derive(Clone)]
struct Hooks {
    ready: bool,
    stop_file: Option<PathBuf>,
    probe: Probe,
}

impl Hooks {
    fn ready() -> Self {
        Self {
            ready: true,
            stop_file: None,
            probe: Probe::Ok,
        }
    }
}

impl GameHooks for Hooks {
    fn wait_ready(&self) -> HookFuture<'_, Result<(), String>> {
        Box::pin(async move {
            if self.ready {
                Ok(())
            } else {
                std::future::pending().await
            }
        })
    }
    fn graceful_stop(&self) -> HookFuture<'_, Result<(), String>> {
        Box::pin(async move {
            if let Some(f) = &self.stop_file {
                fs::write(f, b"stop").map_err(|e| e.to_string())?;
            }
            Ok(())
        })
    }
    fn probe(&self) -> HookFuture<'_, bool> {
        Box::pin(async move {
            match &self.probe {
                Probe::Ok => true,
                Probe::OkAfterStarts(p, n) => lines(p) >= *n,
            }
        })
    }
}

struct Env {
    _dir: tempfile::TempDir,
    root: PathBuf,
    server: PathBuf,
    data: PathBuf,
    console: PathBuf,
    exe: PathBuf,
}

impl Env {
    fn new(script: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let server = root.join("srv1");
        fs::create_dir_all(&server).unwrap();
        let bin = root.join("bin");
        fs::create_dir_all(&bin).unwrap();
        let exe = bin.join(EXE);
        fs::write(&exe, script).unwrap();
        fs::set_permissions(&exe, fs::Permissions::from_mode(0o755)).unwrap();
        Self {
            data: root.join("data"),
            console: server.join("logs"),
            _dir: dir,
            root,
            server,
            exe,
        }
    }

    fn starts(&self) -> PathBuf {
        self.server.join("starts")
    }

    /// The test's `bin/` folder as a folder entry allowing [`EXE`].
    fn allow_bin(&self) -> AllowList {
        AllowList::new(&[self.root.join("bin")], vec![EXE.into()])
    }

    fn plan(&self) -> LaunchPlan {
        LaunchPlan {
            server_id: "srv1".into(),
            executable: self.exe.clone(),
            args: vec!["-port=2302".into(), "-config=server.cfg".into()],
            cwd: self.server.clone(),
            env: vec![("LANGUARD_TEST".into(), "1".into())],
            files: vec![
                PlannedFile {
                    path: "server.cfg".into(),
                    contents: b"hostname = \"x\";\n".to_vec(),
                    secret: false,
                },
                PlannedFile {
                    path: "battleye/beserver.cfg".into(),
                    contents: b"RConPassword secret\n".to_vec(),
                    secret: true,
                },
            ],
            ports: vec![],
            console_dir: self.console.clone(),
        }
    }

    fn options(&self, policy: Policy, hooks: Hooks, plan: LaunchPlan) -> SupervisorOptions {
        let mut o = SupervisorOptions::new(
            "srv1",
            &self.data,
            Arc::new(hooks),
            self.allow_bin(),
            RunAs::AgentUser,
        );
        o.policy = policy;
        o.plan = Some(plan);
        o
    }

    async fn spawn(&self, policy: Policy, hooks: Hooks) -> (SupervisorHandle, Events, Adoption) {
        let (h, rx, a) = Supervisor::spawn(self.options(policy, hooks, self.plan())).await;
        (
            h,
            Events {
                rx,
                seen: Vec::new(),
            },
            a,
        )
    }
}

/// A failed assertion must not leak game processes: kill every group a script started.
impl Drop for Env {
    fn drop(&mut self) {
        let pids = fs::read_to_string(self.starts()).unwrap_or_default();
        for pid in pids.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

fn fast_policy() -> Policy {
    Policy {
        restart: RestartMode::Never,
        backoff_initial: Duration::from_millis(100),
        backoff_max: Duration::from_secs(1),
        crash_loop_max: 5,
        crash_loop_window: Duration::from_secs(60),
        stop_timeout: Duration::from_secs(2),
        signal_grace: Duration::from_millis(300),
        start_timeout: Duration::from_secs(10),
        probe_interval: Duration::from_millis(150),
        probe_failures_for_hung: 2,
    }
}

struct Events {
    rx: UnboundedReceiver<SupervisorEvent>,
    seen: Vec<SupervisorEvent>,
}

impl Events {
    /// Waits for the next event matching `pred`; panics with the event log on timeout.
    async fn until(
        &mut self,
        what: &str,
        pred: impl Fn(&SupervisorEvent) -> bool,
    ) -> SupervisorEvent {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(ev)) => {
                    self.seen.push(ev.clone());
                    if pred(&ev) {
                        return ev;
                    }
                }
                Ok(None) => panic!(
                    "event channel closed waiting for {what}; seen {:#?}",
                    self.seen
                ),
                Err(_) => panic!("timed out waiting for {what}; seen {:#?}", self.seen),
            }
        }
    }

    async fn state(
        &mut self,
        want: ServerState,
    ) -> (Option<String>, Option<u32>, Option<ExitInfo>) {
        match self
            .until(
                &want.to_string(),
                |e| matches!(e, SupervisorEvent::State { state, .. } if *state == want),
            )
            .await
        {
            SupervisorEvent::State {
                reason, pid, exit, ..
            } => (reason, pid, exit),
            _ => unreachable!(),
        }
    }

    async fn spawned(&mut self) -> (u32, PathBuf) {
        match self
            .until("spawned", |e| matches!(e, SupervisorEvent::Spawned { .. }))
            .await
        {
            SupervisorEvent::Spawned { pid, console_file } => (pid, console_file),
            _ => unreachable!(),
        }
    }
}

fn lines(p: &Path) -> usize {
    fs::read_to_string(p)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

fn gone(pid: u32) -> bool {
    let mut sys = System::new().unwrap();
    process::identity(&mut sys, pid).is_none_or(|i| i.zombie)
}

async fn wait_gone(pid: u32) {
    for _ in 0..100 {
        if gone(pid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("pid {pid} still alive");
}

async fn wait_lines(p: &Path, n: usize) {
    for _ in 0..250 {
        if lines(p) >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{} never reached {n} lines", p.display());
}

async fn wait_output(console: &Path, needle: &str) {
    for _ in 0..250 {
        if fs::read_to_string(console)
            .unwrap_or_default()
            .contains(needle)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{needle:?} never appeared in {}", console.display());
}

fn record_file(env: &Env) -> PathBuf {
    env.data.join("srv1.run.json")
}

// ------------------------------------------------------------------ refusals

#[tokio::test]
async fn refuses_executable_not_allow_listed() {
    let env = Env::new(SLEEPER);
    let (h, _ev, _) = env.spawn(fast_policy(), Hooks::ready()).await;

    let mut plan = env.plan();
    plan.executable = "/bin/bash".into();
    h.set_plan(plan.clone()).await.unwrap();
    assert_eq!(h.start().await, Err(StartError::NotAllowed));

    // An allow-listed name that is a symlink to something else is refused too.
    let link = env.root.join("bin").join("links").join(EXE);
    fs::create_dir_all(env.root.join("bin").join("links")).unwrap();
    symlink("/bin/sh", &link).unwrap();
    plan.executable = link;
    h.set_plan(plan).await.unwrap();
    assert_eq!(h.start().await, Err(StartError::NotAllowed));

    assert_eq!(h.state(), ServerState::Stopped);
    assert!(
        !env.server.join("server.cfg").exists(),
        "a refusal changes nothing"
    );
    assert!(!env.console.exists());
}

/// Only the file name used to be checked, so any file called like a game server
/// anywhere on the host ran with the agent's rights.
#[tokio::test]
async fn a_game_name_outside_the_allowed_places_is_refused() {
    let env = Env::new(SLEEPER);
    let (h, mut ev, _) = env.spawn(fast_policy(), Hooks::ready()).await;
    let elsewhere = env.root.join("elsewhere");
    fs::create_dir_all(&elsewhere).unwrap();
    let rogue = elsewhere.join(EXE);
    fs::write(&rogue, SLEEPER).unwrap();
    fs::set_permissions(&rogue, fs::Permissions::from_mode(0o755)).unwrap();

    let mut plan = env.plan();
    plan.executable = rogue.clone();
    h.set_plan(plan.clone()).await.unwrap();
    let err = h.start().await.unwrap_err();
    assert_eq!(err, StartError::NotAllowed);
    assert!(!err.to_string().contains('/'), "no path in {err}");

    // A symlink inside the allowed folder cannot lead out of it.
    let inside_link = env.root.join("bin").join("sub");
    fs::create_dir_all(&inside_link).unwrap();
    symlink(&rogue, inside_link.join(EXE)).unwrap();
    plan.executable = inside_link.join(EXE);
    h.set_plan(plan.clone()).await.unwrap();
    assert_eq!(h.start().await, Err(StartError::NotAllowed));
    assert!(!env.starts().exists(), "nothing launched");

    // A link from outside into the allowed folder is fine: the real file is allowed,
    // and that is what runs.
    let outside_link = elsewhere.join("start-me");
    symlink(&env.exe, &outside_link).unwrap();
    plan.executable = outside_link;
    h.set_plan(plan).await.unwrap();
    h.start().await.unwrap();
    ev.state(ServerState::Running).await;
    let record: RunRecord = serde_json::from_slice(&fs::read(record_file(&env)).unwrap()).unwrap();
    assert_eq!(record.executable, fs::canonicalize(&env.exe).unwrap());
    h.kill().await.unwrap();
}

#[tokio::test]
async fn a_file_entry_allows_that_file_only_and_an_empty_list_nothing() {
    let env = Env::new(SLEEPER);
    let other = env.root.join("bin").join("other");
    fs::write(&other, SLEEPER).unwrap();
    fs::set_permissions(&other, fs::Permissions::from_mode(0o755)).unwrap();
    let mut options = env.options(fast_policy(), Hooks::ready(), env.plan());
    options.allowed_executables = AllowList::new(std::slice::from_ref(&other), vec![]);
    let (h, rx, _) = Supervisor::spawn(options).await;
    let mut ev = Events {
        rx,
        seen: Vec::new(),
    };
    // The game name next to it is not the allowed file.
    assert_eq!(h.start().await, Err(StartError::NotAllowed));
    let mut plan = env.plan();
    plan.executable = other;
    h.set_plan(plan).await.unwrap();
    h.start().await.unwrap();
    ev.state(ServerState::Running).await;
    h.kill().await.unwrap();

    let mut options = env.options(fast_policy(), Hooks::ready(), env.plan());
    options.allowed_executables = AllowList::new(&[], vec![EXE.into()]);
    let (h, _ev, _) = Supervisor::spawn(options).await;
    let err = h.start().await.unwrap_err();
    assert_eq!(err, StartError::NoAllowedExecutables);
    assert!(err.to_string().contains("allowed_executables"), "{err}");
}

#[tokio::test]
async fn executables_others_could_change_are_refused() {
    let env = Env::new(SLEEPER);
    let (h, _ev, _) = env.spawn(fast_policy(), Hooks::ready()).await;
    let reason = |e: StartError| match e {
        StartError::Executable { reason } => reason,
        other => panic!("expected Executable, got {other:?}"),
    };

    fs::set_permissions(&env.exe, fs::Permissions::from_mode(0o775)).unwrap();
    let r = reason(h.start().await.unwrap_err());
    assert!(r.contains("writable by group or others"), "{r}");
    fs::set_permissions(&env.exe, fs::Permissions::from_mode(0o755)).unwrap();

    // A folder between the allowed folder and the file that others can write to.
    let deep = env.root.join("bin").join("deep");
    fs::create_dir_all(&deep).unwrap();
    fs::copy(&env.exe, deep.join(EXE)).unwrap();
    fs::set_permissions(&deep, fs::Permissions::from_mode(0o777)).unwrap();
    let mut plan = env.plan();
    plan.executable = deep.join(EXE);
    h.set_plan(plan).await.unwrap();
    let r = reason(h.start().await.unwrap_err());
    assert!(r.contains("folder"), "{r}");
    fs::set_permissions(&deep, fs::Permissions::from_mode(0o755)).unwrap();

    if nix::unistd::geteuid().is_root() {
        // Owned by someone who is neither root nor the agent.
        nix::unistd::chown(
            &deep.join(EXE),
            Some(nix::unistd::Uid::from_raw(65534)),
            None,
        )
        .unwrap();
        let r = reason(h.start().await.unwrap_err());
        assert!(r.contains("owned by"), "{r}");
    } else {
        println!("skipped the foreign-owner case: it needs root to chown");
    }
    assert!(!env.starts().exists(), "nothing launched");
    assert_eq!(h.state(), ServerState::Stopped);
}

#[tokio::test]
async fn refuses_missing_or_non_executable_file() {
    let env = Env::new(SLEEPER);
    let (h, _ev, _) = env.spawn(fast_policy(), Hooks::ready()).await;

    // Missing and not-a-file get the same answer as "not allowed": the caller learns
    // nothing about the host's files.
    let mut plan = env.plan();
    plan.executable = env.root.join("bin").join("nowhere").join(EXE);
    h.set_plan(plan.clone()).await.unwrap();
    assert_eq!(h.start().await, Err(StartError::NotAllowed));
    fs::create_dir_all(env.root.join("bin").join("dir").join(EXE)).unwrap();
    plan.executable = env.root.join("bin").join("dir").join(EXE);
    h.set_plan(plan.clone()).await.unwrap();
    assert_eq!(h.start().await, Err(StartError::NotAllowed));

    fs::set_permissions(&env.exe, fs::Permissions::from_mode(0o644)).unwrap();
    h.set_plan(env.plan()).await.unwrap();
    let err = h.start().await.unwrap_err();
    assert!(
        matches!(&err, StartError::Executable { reason } if reason.contains("not executable")),
        "{err}"
    );

    plan.executable = PathBuf::from("relative").join(EXE);
    h.set_plan(plan).await.unwrap();
    assert_eq!(h.start().await, Err(StartError::NotAllowed));

    assert_eq!(h.state(), ServerState::Stopped);
    assert!(!env.server.join("server.cfg").exists());
}

#[tokio::test]
async fn refuses_port_in_use_then_starts_when_free() {
    let env = Env::new(SLEEPER);
    let (h, mut ev, _) = env.spawn(fast_policy(), Hooks::ready()).await;
    let sock = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    let mut plan = env.plan();
    plan.ports = vec![PortCheck::udp(port), PortCheck::udp(port.wrapping_add(1))];
    h.set_plan(plan).await.unwrap();

    let err = h.start().await.unwrap_err();
    assert!(
        matches!(err, StartError::PortInUse { port: p, protocol: Protocol::Udp, .. } if p == port),
        "{err}"
    );
    assert_eq!(h.state(), ServerState::Stopped);
    assert!(!env.starts().exists(), "nothing launched");
    assert!(!env.server.join("server.cfg").exists(), "nothing written");

    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let tport = tcp.local_addr().unwrap().port();
    let mut plan = env.plan();
    plan.ports = vec![PortCheck::tcp(tport)];
    h.set_plan(plan).await.unwrap();
    assert!(matches!(
        h.start().await,
        Err(StartError::PortInUse {
            protocol: Protocol::Tcp,
            ..
        })
    ));

    drop(sock);
    drop(tcp);
    let mut plan = env.plan();
    plan.ports = vec![PortCheck::udp(port), PortCheck::tcp(tport)];
    h.set_plan(plan).await.unwrap();
    h.start().await.unwrap();
    ev.state(ServerState::Running).await;
    h.kill().await.unwrap();
}

#[tokio::test]
async fn path_escapes_are_errors_and_nothing_is_written() {
    let env = Env::new(SLEEPER);
    let outside = env.root.join("outside");
    fs::create_dir_all(&outside).unwrap();
    symlink(&outside, env.server.join("link")).unwrap();
    symlink(outside.join("target.cfg"), env.server.join("linked.cfg")).unwrap();
    let (h, mut ev, _) = env.spawn(fast_policy(), Hooks::ready()).await;

    for bad in [
        "../x.cfg",
        "/etc/x.cfg",
        "link/evil.cfg",
        "linked.cfg",
        "cfg/../../x.cfg",
        "",
    ] {
        let mut plan = env.plan();
        plan.files.push(PlannedFile {
            path: bad.into(),
            contents: b"evil".to_vec(),
            secret: false,
        });
        h.set_plan(plan).await.unwrap();
        let err = h.start().await.unwrap_err();
        assert!(matches!(err, StartError::Files(_)), "{bad:?}: {err}");
        let (reason, _, _) = ev.state(ServerState::Error).await;
        assert!(reason.unwrap().contains("writing files failed"));
        assert_eq!(h.state(), ServerState::Error);
    }
    assert!(
        !env.server.join("server.cfg").exists(),
        "paths are checked before anything is written"
    );
    assert!(!env.root.join("x.cfg").exists());
    assert_eq!(
        fs::read_dir(&outside).unwrap().count(),
        0,
        "nothing written outside"
    );
    assert!(!env.starts().exists(), "nothing launched");
    assert!(!env.console.exists());

    // Even a symlink that stays inside the server folder is not followed (the game
    // could re-point it between check and use); a real folder is fine.
    fs::create_dir_all(env.server.join("real")).unwrap();
    symlink(env.server.join("real"), env.server.join("inner")).unwrap();
    let mut plan = env.plan();
    plan.files.push(PlannedFile {
        path: "inner/ok.cfg".into(),
        contents: b"ok".to_vec(),
        secret: false,
    });
    h.set_plan(plan).await.unwrap();
    assert!(matches!(h.start().await, Err(StartError::Files(_))));
    let (reason, _, _) = ev.state(ServerState::Error).await;
    assert!(reason.unwrap().contains("symlinks are not followed"));
    let mut plan = env.plan();
    plan.files.push(PlannedFile {
        path: "real/ok.cfg".into(),
        contents: b"ok".to_vec(),
        secret: false,
    });
    h.set_plan(plan).await.unwrap();
    h.start().await.unwrap();
    assert_eq!(fs::read(env.server.join("real/ok.cfg")).unwrap(), b"ok");
    h.kill().await.unwrap();
}

#[tokio::test]
async fn unwritable_server_folder_is_error() {
    let env = Env::new(SLEEPER);
    // Tests run as root, so permissions prove nothing: make the parent a regular file.
    let file = env.root.join("a-file");
    fs::write(&file, b"").unwrap();
    let (h, mut ev, _) = env.spawn(fast_policy(), Hooks::ready()).await;
    let mut plan = env.plan();
    plan.cwd = file.join("srv1");
    h.set_plan(plan).await.unwrap();
    let err = h.start().await.unwrap_err();
    assert!(matches!(err, StartError::Files(_)));
    let (reason, pid, _) = ev.state(ServerState::Error).await;
    let reason = reason.unwrap();
    assert!(reason.contains("server folder"), "{reason}");
    // Neither the error nor the state names the host's paths or OS error numbers.
    for text in [reason.as_str(), &err.to_string()] {
        assert!(!text.contains(&*env.root.to_string_lossy()), "{text}");
        assert!(!text.contains("os error"), "{text}");
    }
    assert_eq!(pid, None);
    assert_eq!(h.status().pid, None);
    assert!(!env.starts().exists());
    assert!(!record_file(&env).exists());
}

// ------------------------------------------------------------------ lifecycle

#[tokio::test]
async fn start_run_graceful_stop() {
    let env = Env::new(GRACEFUL);
    let hooks = Hooks {
        stop_file: Some(env.server.join("stop_requested")),
        ..Hooks::ready()
    };
    // A long stop timeout: the graceful path is proven by exit code 0 and a time far
    // below the timeout, with a bound generous enough for a loaded CI box.
    let policy = Policy {
        stop_timeout: Duration::from_secs(120),
        ..fast_policy()
    };
    let (h, mut ev, adoption) = env.spawn(policy, hooks).await;
    assert_eq!(adoption, Adoption::NoRecord);

    h.start().await.unwrap();
    assert!(matches!(
        h.start().await,
        Err(StartError::AlreadyRunning(_))
    ));
    let (pid, console) = ev.spawned().await;
    ev.state(ServerState::Starting).await;
    ev.state(ServerState::Running).await;
    assert_eq!(h.state(), ServerState::Running);
    assert_eq!(h.status().pid, Some(pid));
    assert_eq!(h.status().console_file.as_deref(), Some(console.as_path()));

    // Files: contents and modes.
    assert_eq!(
        fs::read(env.server.join("server.cfg")).unwrap(),
        b"hostname = \"x\";\n"
    );
    let mode = |p: &str| {
        fs::metadata(env.server.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("server.cfg"), 0o644);
    assert_eq!(mode("battleye/beserver.cfg"), 0o600);
    let leftovers: Vec<_> = fs::read_dir(&env.server)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty());

    // Console file name and location; run record.
    assert_eq!(console.parent().unwrap(), env.console);
    let name = console.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("console_")
            && name.ends_with(".log")
            && name.len() == "console_2024-01-01_00-00-00.log".len(),
        "{name}"
    );
    let rec: RunRecord = serde_json::from_slice(&fs::read(record_file(&env)).unwrap()).unwrap();
    assert_eq!((rec.pid, rec.pgid, rec.exe_name.as_str()), (pid, pid, EXE));
    assert_eq!(rec.console_file, console);
    assert!(rec.start_time > 0);
    assert_eq!(
        nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(pid as i32)))
            .unwrap()
            .as_raw(),
        pid as i32
    );

    wait_output(&console, "started").await;
    let t = Instant::now();
    h.stop().await.unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(60),
        "graceful hook should end it well before the stop timeout"
    );
    let (reason, _, exit) = ev.state(ServerState::Stopped).await;
    assert_eq!(reason.as_deref(), Some("stopped"));
    assert_eq!(
        exit,
        Some(ExitInfo {
            code: Some(0),
            signal: None
        })
    );
    assert_eq!(h.state(), ServerState::Stopped);
    let out = fs::read_to_string(&console).unwrap();
    assert!(
        out.contains("started") && out.contains("to-stderr") && out.contains("bye"),
        "{out}"
    );
    assert!(
        !record_file(&env).exists(),
        "clean stop removes the run record"
    );
    wait_gone(pid).await;

    // A second start appends to a new console file.
    fs::remove_file(env.server.join("stop_requested")).unwrap();
    h.start().await.unwrap();
    let (_, console2) = ev.spawned().await;
    assert_ne!(console2, console);
    ev.state(ServerState::Running).await;
    wait_output(&console2, "started").await;
    h.stop().await.unwrap();
    assert_eq!(lines(&env.starts()), 2);
}

#[tokio::test]
async fn stop_escalates_to_sigkill_when_signals_are_ignored() {
    let env = Env::new(STUBBORN);
    let policy = Policy {
        stop_timeout: Duration::from_millis(300),
        signal_grace: Duration::from_millis(200),
        ..fast_policy()
    };
    let (h, mut ev, _) = env.spawn(policy, Hooks::ready()).await;
    h.start().await.unwrap();
    let (pid, console) = ev.spawned().await;
    ev.state(ServerState::Running).await;
    // Let the script install its trap.
    wait_output(&console, "started").await;
    let t = Instant::now();
    h.stop().await.unwrap();
    let took = t.elapsed();
    let (_, _, exit) = ev.state(ServerState::Stopped).await;
    assert_eq!(
        exit,
        Some(ExitInfo {
            code: None,
            signal: Some(9)
        })
    );
    assert!(
        took >= Duration::from_millis(700),
        "timeout + 2 graces before SIGKILL, took {took:?}"
    );
    // No upper bound: on a loaded CI box scheduling delays only make it slower.
    wait_gone(pid).await;
}

#[tokio::test]
async fn kill_is_immediate() {
    let env = Env::new(STUBBORN);
    // A stop would wait out the 120 s timeout; a kill must not.
    let policy = Policy {
        stop_timeout: Duration::from_secs(120),
        ..fast_policy()
    };
    let (h, mut ev, _) = env.spawn(policy, Hooks::ready()).await;
    h.start().await.unwrap();
    let (pid, _) = ev.spawned().await;
    ev.state(ServerState::Running).await;
    let t = Instant::now();
    h.kill().await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(60), "{:?}", t.elapsed());
    let (reason, _, exit) = ev.state(ServerState::Stopped).await;
    assert_eq!(reason.as_deref(), Some("killed"));
    assert_eq!(exit.unwrap().signal, Some(9));
    wait_gone(pid).await;
    assert!(!record_file(&env).exists());
}

#[tokio::test]
async fn crash_is_restarted_on_crash() {
    let env = Env::new(CRASH_ONCE);
    let policy = Policy {
        restart: RestartMode::OnCrash,
        ..fast_policy()
    };
    let (h, mut ev, _) = env.spawn(policy, Hooks::ready()).await;
    h.start().await.unwrap();
    let (first, _) = ev.spawned().await;
    let (reason, pid, exit) = ev.state(ServerState::Crashed).await;
    assert_eq!(
        exit,
        Some(ExitInfo {
            code: Some(3),
            signal: None
        })
    );
    assert_eq!(pid, Some(first));
    assert!(reason.unwrap().contains("restarting in"));
    let (second, _) = ev.spawned().await;
    assert_ne!(first, second);
    ev.state(ServerState::Running).await;
    wait_lines(&env.starts(), 2).await;
    h.stop().await.unwrap();
    assert_eq!(h.state(), ServerState::Stopped);
    assert_eq!(lines(&env.starts()), 2);
}

#[tokio::test]
async fn crash_with_never_policy_stays_crashed() {
    let env = Env::new(CRASHER);
    let (h, mut ev, _) = env.spawn(fast_policy(), Hooks::ready()).await;
    h.start().await.unwrap();
    let (_, _, exit) = ev.state(ServerState::Crashed).await;
    assert_eq!(exit.unwrap().code, Some(3));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(h.state(), ServerState::Crashed);
    assert_eq!(lines(&env.starts()), 1);
    assert!(!record_file(&env).exists());
    // Stop acknowledges the crash.
    h.stop().await.unwrap();
    assert_eq!(h.state(), ServerState::Stopped);
}

#[tokio::test]
async fn crash_loop_enters_error() {
    let env = Env::new(CRASHER);
    let policy = Policy {
        restart: RestartMode::OnCrash,
        crash_loop_max: 3,
        ..fast_policy()
    };
    let (h, mut ev, _) = env.spawn(policy, Hooks::ready()).await;
    h.start().await.unwrap();
    let (reason, _, _) = ev.state(ServerState::Error).await;
    let reason = reason.unwrap();
    assert!(
        reason.starts_with("crash loop: 3 crashes in 60 s"),
        "{reason}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(lines(&env.starts()), 3, "no retries after the crash loop");
    assert_eq!(h.state(), ServerState::Error);
    // Operator can start again afterwards.
    h.start().await.unwrap();
    ev.state(ServerState::Crashed).await;
    h.stop().await.unwrap();
}

#[tokio::test]
async fn hung_server_is_killed_and_restarted() {
    let env = Env::new(SLEEPER);
    let hooks = Hooks {
        probe: Probe::OkAfterStarts(env.starts(), 2),
        ..Hooks::ready()
    };
    let policy = Policy {
        restart: RestartMode::OnCrash,
        ..fast_policy()
    };
    let (h, mut ev, _) = env.spawn(policy, hooks).await;
    h.start().await.unwrap();
    let (first, _) = ev.spawned().await;
    ev.state(ServerState::Running).await;
    let (reason, pid, _) = ev.state(ServerState::Hung).await;
    assert_eq!(pid, Some(first));
    assert!(reason.unwrap().contains("2 consecutive probes failed"));
    let (reason, _, exit) = ev.state(ServerState::Crashed).await;
    assert!(reason.unwrap().starts_with("hung"));
    assert_eq!(exit.unwrap().signal, Some(9));
    wait_gone(first).await;
    let (second, _) = ev.spawned().await;
    assert_ne!(first, second);
    ev.state(ServerState::Running).await;
    // Healthy now: stays running through several probe intervals.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(h.state(), ServerState::Running);
    assert_eq!(h.status().pid, Some(second));
    h.kill().await.unwrap();
}

#[tokio::test]
async fn start_timeout_counts_as_crash() {
    let env = Env::new(SLEEPER);
    let hooks = Hooks {
        ready: false,
        ..Hooks::ready()
    };
    let policy = Policy {
        start_timeout: Duration::from_millis(300),
        ..fast_policy()
    };
    let (h, mut ev, _) = env.spawn(policy, hooks).await;
    h.start().await.unwrap();
    let (pid, _) = ev.spawned().await;
    ev.state(ServerState::Starting).await;
    let (reason, _, exit) = ev.state(ServerState::Crashed).await;
    assert!(reason.unwrap().contains("not ready within"));
    assert_eq!(exit.unwrap().signal, Some(2), "SIGINT ends the sleeper");
    wait_gone(pid).await;
    assert_eq!(h.state(), ServerState::Crashed);
}

// ------------------------------------------------------------------ adoption

#[tokio::test]
async fn adoption_reattaches_without_a_second_copy() {
    let env = Env::new(SLEEPER);
    let (a, mut ev_a, _) = env.spawn(fast_policy(), Hooks::ready()).await;
    a.start().await.unwrap();
    let (pid, console) = ev_a.spawned().await;
    ev_a.state(ServerState::Running).await;
    wait_lines(&env.starts(), 1).await;
    // Simulated agent death: drop the handle without stopping.
    drop(a);
    drop(ev_a);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !gone(pid),
        "dropping the supervisor must not kill the server"
    );

    let (b, mut ev_b, adoption) = env.spawn(fast_policy(), Hooks::ready()).await;
    assert_eq!(adoption, Adoption::Adopted { pid });
    let ev = ev_b
        .until("adopted", |e| matches!(e, SupervisorEvent::Adopted { .. }))
        .await;
    assert_eq!(
        ev,
        SupervisorEvent::Adopted {
            pid,
            console_file: console
        }
    );
    ev_b.state(ServerState::Running).await;
    assert_eq!(b.status().pid, Some(pid));
    assert!(matches!(
        b.start().await,
        Err(StartError::AlreadyRunning(_))
    ));
    assert_eq!(lines(&env.starts()), 1, "no second copy started");

    b.stop().await.unwrap();
    let (reason, _, _) = ev_b.state(ServerState::Stopped).await;
    assert_eq!(reason.as_deref(), Some("stopped"));
    wait_gone(pid).await;
    assert!(!record_file(&env).exists());
    assert_eq!(lines(&env.starts()), 1);
}

#[tokio::test]
async fn adopted_process_exit_is_detected_by_polling() {
    let env = Env::new(SLEEPER);
    let (a, mut ev_a, _) = env.spawn(fast_policy(), Hooks::ready()).await;
    a.start().await.unwrap();
    let (pid, _) = ev_a.spawned().await;
    ev_a.state(ServerState::Running).await;
    drop(a);
    drop(ev_a);
    tokio::time::sleep(Duration::from_millis(100)).await;

    let (b, mut ev_b, adoption) = env.spawn(fast_policy(), Hooks::ready()).await;
    assert_eq!(adoption, Adoption::Adopted { pid });
    ev_b.state(ServerState::Running).await;
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let (reason, dead, exit) = ev_b.state(ServerState::Crashed).await;
    assert_eq!(dead, Some(pid));
    assert_eq!(
        exit,
        Some(ExitInfo::default()),
        "exit status of a non-child is unknown"
    );
    assert!(reason.unwrap().contains("unknown exit status"));
    assert_eq!(b.status().pid, None);
    assert!(!record_file(&env).exists());
}

#[tokio::test]
async fn stale_records_are_not_adopted() {
    let env = Env::new(SLEEPER);
    fs::create_dir_all(&env.data).unwrap();
    let me = std::process::id();
    let mut sys = System::new().unwrap();
    let my_start = process::identity(&mut sys, me).unwrap().start_time;
    let record = |pid: u32, start_time: u64, exe_name: &str| RunRecord {
        server_id: "srv1".into(),
        pid,
        pgid: pid,
        start_time,
        executable: env.exe.clone(),
        exe_name: exe_name.into(),
        console_file: env.console.join("console_x.log"),
        started_at: 0,
    };
    let my_name = process::identity(&mut sys, me).unwrap().name;
    let my_name = String::from_utf8(my_name).unwrap();
    let cases = [
        (
            "start time differs (PID reuse)",
            record(me, my_start.saturating_sub(1000), &my_name),
        ),
        ("name differs", record(me, my_start, EXE)),
        ("pid 1", record(1, 12345, EXE)),
        ("pid gone", record(u32::MAX - 7, 0, EXE)),
    ];
    for (what, rec) in cases {
        fs::write(record_file(&env), serde_json::to_vec(&rec).unwrap()).unwrap();
        let (h, _ev, adoption) = env.spawn(fast_policy(), Hooks::ready()).await;
        assert!(
            matches!(adoption, Adoption::Stale { .. }),
            "{what}: {adoption:?}"
        );
        assert_eq!(h.state(), ServerState::Stopped, "{what}");
        assert!(!record_file(&env).exists(), "{what}: stale record removed");
    }
    // Sanity: the same identity check accepts the truth.
    assert!(process::matches(&mut sys, me, my_start, &my_name).is_ok());

    fs::write(record_file(&env), b"{not json").unwrap();
    let (_h, _ev, adoption) = env.spawn(fast_policy(), Hooks::ready()).await;
    assert!(matches!(adoption, Adoption::Stale { reason } if reason.contains("unreadable")));
    assert!(!record_file(&env).exists());
}

// ------------------------------------------------------------------ units

#[test]
fn console_names_are_utc_timestamps() {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(951_827_696); // 2000-02-29 12:34:56
    assert_eq!(launch::console_stem(t), "console_2000-02-29_12-34-56");
    assert_eq!(
        launch::console_stem(SystemTime::UNIX_EPOCH),
        "console_1970-01-01_00-00-00"
    );
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_735_689_599); // 2024-12-31 23:59:59
    assert_eq!(launch::console_stem(t), "console_2024-12-31_23-59-59");
}

#[test]
fn console_files_are_unique_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let now = SystemTime::now();
    let fd = launch::open_console_dir(dir.path(), &dir.path().join("console")).unwrap();
    let (a, _) = launch::create_console(&fd, now).unwrap();
    let (b, _) = launch::create_console(&fd, now).unwrap();
    assert_ne!(a, b);
    assert!(b.ends_with("_2.log"));
    assert!(b > a, "newest sorts last");
    assert!(dir.path().join("console").join(&b).is_file());
}

/// The game owns its server folder: a console folder it replaced by a link must not
/// make the agent create or delete files where the link points.
#[test]
fn a_console_folder_replaced_by_a_link_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    let old = outside.join("console_2020-01-01_00-00-00.log");
    fs::write(&old, "not the agent's").unwrap();
    let server = dir.path().join("srv");
    fs::create_dir_all(&server).unwrap();
    symlink(&outside, server.join("console")).unwrap();
    let err = launch::open_console_dir(&server, &server.join("console")).unwrap_err();
    assert!(err.to_string().contains("symlink"), "{err}");
    assert_eq!(
        fs::read_dir(&outside).unwrap().count(),
        1,
        "nothing created"
    );
    assert!(old.exists(), "nothing deleted");
}

#[test]
fn backoff_doubles_and_caps() {
    let p = Policy {
        backoff_initial: Duration::from_secs(5),
        backoff_max: Duration::from_secs(60),
        ..Policy::default()
    };
    let d: Vec<u64> = (1..=6).map(|n| actor::backoff(&p, n).as_secs()).collect();
    assert_eq!(d, [5, 10, 20, 40, 60, 60]);
    assert_eq!(actor::backoff(&p, 1000).as_secs(), 60);
}

#[test]
fn relative_path_validation() {
    for ok in ["a.cfg", "./a.cfg", "dir/a.cfg"] {
        assert!(files::validate_relative(Path::new(ok)).is_ok(), "{ok}");
    }
    for bad in ["", ".", "../a", "/etc/passwd", "a/../../b"] {
        assert!(files::validate_relative(Path::new(bad)).is_err(), "{bad}");
    }
}

#[tokio::test]
async fn huge_policy_durations_do_not_panic() {
    let env = Env::new(SLEEPER);
    let policy = Policy {
        restart: RestartMode::Always,
        backoff_initial: Duration::MAX,
        backoff_max: Duration::MAX,
        crash_loop_window: Duration::MAX,
        stop_timeout: Duration::MAX,
        signal_grace: Duration::MAX,
        start_timeout: Duration::MAX,
        probe_interval: Duration::MAX,
        probe_failures_for_hung: 1,
        ..fast_policy()
    };
    let (h, mut ev, _) = env.spawn(policy, Hooks::ready()).await;
    h.start().await.unwrap();
    let (pid, _) = ev.spawned().await;
    ev.state(ServerState::Running).await;
    // Reconfigure while running (re-arms the probe timer) and kill: every deadline
    // computed on the way saturates instead of overflowing.
    h.set_policy(Policy {
        probe_interval: Duration::MAX,
        ..fast_policy()
    })
    .await
    .unwrap();
    h.set_policy(Policy {
        restart: RestartMode::Always,
        backoff_initial: Duration::MAX,
        backoff_max: Duration::MAX,
        crash_loop_window: Duration::MAX,
        ..fast_policy()
    })
    .await
    .unwrap();
    // A crash schedules a restart after an "infinite" backoff.
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    ev.state(ServerState::Crashed).await;
    wait_gone(pid).await;
    h.stop().await.unwrap();
    // The actor is still alive and answering.
    assert_eq!(h.state(), ServerState::Stopped);
}

#[tokio::test]
async fn old_console_files_are_pruned_and_secret_folders_are_private() {
    let env = Env::new(SLEEPER);
    fs::create_dir_all(&env.console).unwrap();
    let old = [
        "console_2020-01-01_00-00-00.log",
        "console_2020-01-01_00-00-00_2.log",
        "console_2020-01-01_00-00-00_10.log",
        "console_2021-06-01_12-00-00.log",
    ];
    for name in old {
        fs::write(env.console.join(name), name).unwrap();
    }
    fs::write(env.console.join("notes.txt"), "keep").unwrap();
    let mut options = env.options(fast_policy(), Hooks::ready(), env.plan());
    options.console_files_kept = 3;
    let (h, rx, _) = Supervisor::spawn(options).await;
    let mut ev = Events {
        rx,
        seen: Vec::new(),
    };
    h.start().await.unwrap();
    let (_, console) = ev.spawned().await;
    let mut names: Vec<String> = fs::read_dir(&env.console)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let newest = console.file_name().unwrap().to_string_lossy().into_owned();
    let mut expected = vec![
        "console_2020-01-01_00-00-00_10.log".to_owned(),
        "console_2021-06-01_12-00-00.log".to_owned(),
        newest,
        "notes.txt".to_owned(),
    ];
    expected.sort();
    assert_eq!(names, expected);
    let mode = fs::metadata(env.server.join("battleye"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    h.kill().await.unwrap();
}

// ------------------------------------------------------------------ game user

/// Records who it runs as and what it can read, then runs until signalled.
const PROBER: &str = "#!/bin/sh\necho $$ >> starts\n\
if cat \"$LG_FOREIGN\" >/dev/null 2>&1; then echo readable > foreign; else echo denied > foreign; fi\n\
if cat battleye/beserver.cfg >/dev/null 2>&1; then echo readable > own; else echo denied > own; fi\n\
echo started\nwhile :; do sleep 0.2; done\n";

/// The `Key:` line of `/proc/<pid>/status`, its fields split on whitespace.
fn proc_status(pid: u32, key: &str) -> Vec<String> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// Games used to run as the agent's own user and could read its key and specs.
#[tokio::test]
async fn a_root_agent_runs_the_game_as_the_game_user() {
    if !nix::unistd::geteuid().is_root() {
        println!("skipped: dropping to a game user needs root");
        return;
    }
    let env = Env::new(PROBER);
    // The game user must be able to reach the executable and its folder (a tempdir is
    // 0700), as on a real host where both live in admin-owned, traversable places.
    fs::set_permissions(&env.root, fs::Permissions::from_mode(0o711)).unwrap();
    // Something of the agent's the game must not read: a private file in the data
    // folder, like the identity key.
    fs::create_dir_all(&env.data).unwrap();
    fs::set_permissions(&env.data, fs::Permissions::from_mode(0o700)).unwrap();
    let key = env.data.join("identity.key");
    fs::write(&key, "PRIVATE KEY").unwrap();
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();

    let run_as = RunAs::resolve(&crate::config::RunAsConfig {
        user: Some("nobody".into()),
        allow_agent_user: false,
    })
    .unwrap();
    let RunAs::User { uid, gid, .. } = run_as.clone() else {
        panic!("expected a game user, got {run_as:?}");
    };
    let mut plan = env.plan();
    plan.env
        .push(("LG_FOREIGN".into(), key.to_string_lossy().into_owned()));
    let mut options = env.options(fast_policy(), Hooks::ready(), plan);
    options.run_as = run_as;
    let (h, rx, _) = Supervisor::spawn(options).await;
    let mut ev = Events {
        rx,
        seen: Vec::new(),
    };
    h.start().await.unwrap();
    let (pid, console) = ev.spawned().await;
    wait_output(&console, "started").await;

    let uids = proc_status(pid, "Uid");
    let gids = proc_status(pid, "Gid");
    assert!(uids.iter().all(|u| *u == uid.to_string()), "Uid {uids:?}");
    assert!(gids.iter().all(|g| *g == gid.to_string()), "Gid {gids:?}");
    assert!(
        proc_status(pid, "Groups").is_empty(),
        "supplementary groups kept"
    );
    assert_eq!(proc_status(pid, "NoNewPrivs"), vec!["1".to_owned()]);

    assert_eq!(
        fs::read_to_string(env.server.join("foreign"))
            .unwrap()
            .trim(),
        "denied"
    );
    // Its own configuration, secret or not, is the game's.
    assert_eq!(
        fs::read_to_string(env.server.join("own")).unwrap().trim(),
        "readable"
    );
    use std::os::unix::fs::MetadataExt;
    for f in ["", "server.cfg", "battleye", "battleye/beserver.cfg"] {
        let meta = fs::metadata(env.server.join(f)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (uid, gid), "owner of {f:?}");
    }
    h.kill().await.unwrap();
}

#[tokio::test]
async fn a_refused_run_as_starts_nothing_and_says_why() {
    let env = Env::new(SLEEPER);
    let mut options = env.options(fast_policy(), Hooks::ready(), env.plan());
    options.run_as = RunAs::Refused("set run_as.allow_agent_user = true".into());
    let (h, _ev, _) = Supervisor::spawn(options).await;
    let err = h.start().await.unwrap_err();
    assert!(
        matches!(&err, StartError::RunAs(r) if r.contains("allow_agent_user")),
        "{err}"
    );
    assert!(!env.server.join("server.cfg").exists(), "nothing written");
    assert!(!env.starts().exists(), "nothing launched");
}
