//! The agent's file operations against a game that plants symlinks and hard links in
//! its own server folder, and swaps them while the agent works: nothing outside the
//! folder is ever read, changed, listed or deleted, and each refusal says why.
//!
//! Layout: `base/server` is the server folder, `base/outside` stands for the rest of
//! the host (`shadow` for `/etc/shadow`); both on one file system so hard links work.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use languard_agent::config::{AgentConfig, TelemetryConfig};
use languard_agent::host::Agent;
use languard_agent::host::files::{self, Protected};
use languard_shared::arma::spec::Arma3Spec;
use languard_shared::wire::request::{AgentError, ErrorCode};
use languard_shared::wire::spec::GameSpec;
use languard_shared::wire::{Request, ServerId, ServerSpec};
use nix::fcntl::{OFlag, RenameFlags};
use nix::sys::stat::Mode;

const SHADOW: &str = "root:$6$secret:19000:0:99999:7:::";
const MAX: u64 = 1 << 20;
const ROUNDS: usize = 2_000;

struct Host {
    _base: tempfile::TempDir,
    server: PathBuf,
    outside: PathBuf,
}

fn host() -> Host {
    let base = tempfile::tempdir().unwrap();
    let server = base.path().join("server");
    let outside = base.path().join("outside");
    fs::create_dir_all(server.join("mpmissions")).unwrap();
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("shadow"), SHADOW).unwrap();
    fs::write(outside.join("only-outside"), "x").unwrap();
    Host {
        _base: base,
        server,
        outside,
    }
}

fn none() -> Protected {
    Protected::default()
}

impl Host {
    /// The outside is exactly as [`host`] made it: same names, same contents.
    fn assert_outside_untouched(&self) {
        let mut names: Vec<_> = fs::read_dir(&self.outside)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["only-outside", "shadow"]);
        assert_eq!(
            fs::read_to_string(self.outside.join("shadow")).unwrap(),
            SHADOW
        );
        assert_eq!(
            fs::read_to_string(self.outside.join("only-outside")).unwrap(),
            "x"
        );
    }

    fn names(&self, dir: &str) -> Vec<String> {
        files::list(&self.server, dir, &none())
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect()
    }
}

fn assert_refused(res: Result<impl std::fmt::Debug, AgentError>, path: &str, why: &str) {
    let err = res.unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidPath, "{err}");
    assert_eq!(err.message, format!("{path:?}: {why}"));
}

#[test]
fn a_symlink_to_a_file_outside_is_never_followed() {
    let h = host();
    symlink(h.outside.join("shadow"), h.server.join("motd.txt")).unwrap();
    let why = "symlinks are not followed";
    assert_refused(
        files::read(&h.server, "motd.txt", MAX, &none()),
        "motd.txt",
        why,
    );
    assert_refused(
        files::write(&h.server, "motd.txt", b"evil".to_vec(), MAX, &none()),
        "motd.txt",
        why,
    );
    assert!(
        fs::symlink_metadata(h.server.join("motd.txt"))
            .unwrap()
            .is_symlink()
    );
    assert_eq!(h.names(""), ["mpmissions"], "the link is not listed");
    // Deleting removes the link itself, never its target.
    files::delete(&h.server, "motd.txt", &none()).unwrap();
    assert!(fs::symlink_metadata(h.server.join("motd.txt")).is_err());
    h.assert_outside_untouched();
}

#[test]
fn a_hard_link_to_a_file_outside_is_refused() {
    let h = host();
    fs::hard_link(h.outside.join("shadow"), h.server.join("motd.txt")).unwrap();
    let why = "hard-linked files are refused";
    assert_refused(
        files::read(&h.server, "motd.txt", MAX, &none()),
        "motd.txt",
        why,
    );
    assert_refused(
        files::write(&h.server, "motd.txt", b"evil".to_vec(), MAX, &none()),
        "motd.txt",
        why,
    );
    assert_refused(
        files::delete(&h.server, "motd.txt", &none()),
        "motd.txt",
        why,
    );
    assert_eq!(h.names(""), ["mpmissions"], "the hard link is not listed");
    assert_eq!(fs::metadata(h.outside.join("shadow")).unwrap().nlink(), 2);
    h.assert_outside_untouched();
}

#[test]
fn a_symlinked_folder_is_never_followed() {
    let h = host();
    symlink(&h.outside, h.server.join("mods")).unwrap();
    // Even one pointing back inside: its target could change between two calls.
    symlink(h.server.join("mpmissions"), h.server.join("inner")).unwrap();
    let why = "symlinks are not followed";
    for dir in ["mods", "inner"] {
        let file = format!("{dir}/shadow");
        assert_refused(files::read(&h.server, &file, MAX, &none()), &file, why);
        assert_refused(
            files::write(&h.server, &file, b"evil".to_vec(), MAX, &none()),
            &file,
            why,
        );
        let deep = format!("{dir}/new/deeper.txt");
        assert_refused(
            files::write(&h.server, &deep, b"evil".to_vec(), MAX, &none()),
            &deep,
            why,
        );
        assert_refused(files::delete(&h.server, &file, &none()), &file, why);
        assert_refused(files::list(&h.server, dir, &none()), dir, why);
    }
    assert!(
        fs::read_dir(h.server.join("mpmissions"))
            .unwrap()
            .next()
            .is_none()
    );
    h.assert_outside_untouched();
}

#[test]
fn a_fifo_under_a_file_name_does_not_hang_a_read() {
    let h = host();
    nix::unistd::mkfifo(
        h.server.join("pipe").as_path(),
        Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    assert_refused(
        files::read(&h.server, "pipe", MAX, &none()),
        "pipe",
        "not a regular file",
    );
    assert_eq!(h.names(""), ["mpmissions"]);
}

/// Flips `server/d` between a real folder and a symlink to the outside (atomically,
/// `RENAME_EXCHANGE` with `server/d-swap`) until dropped.
struct Flipper {
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<usize>>,
    /// The real folder, wherever its name is at the moment.
    real: File,
}

impl Flipper {
    fn start(h: &Host) -> Self {
        fs::create_dir_all(h.server.join("d")).unwrap();
        fs::write(h.server.join("d/shadow"), "inside").unwrap();
        symlink(&h.outside, h.server.join("d-swap")).unwrap();
        let real = File::open(h.server.join("d")).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let folder = File::open(&h.server).unwrap();
        let flag = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            let mut flips = 0;
            while !flag.load(Ordering::Relaxed) {
                nix::fcntl::renameat2(
                    &folder,
                    "d",
                    &folder,
                    "d-swap",
                    RenameFlags::RENAME_EXCHANGE,
                )
                .unwrap();
                flips += 1;
            }
            flips
        });
        Self {
            stop,
            thread: Some(thread),
            real,
        }
    }

    fn finish(mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

/// During the race a request either works on the real folder or is refused with one
/// of these (the name is a symlink, or was one during the walk). Checked only after
/// the outside was checked, so a leak is what fails first.
fn unexpected_refusals(errors: &[AgentError], path: &str) -> BTreeSet<String> {
    let allowed = ["symlinks are not followed", "not found", "not a folder"];
    errors
        .iter()
        .filter(|err| {
            err.code != ErrorCode::InvalidPath
                || !allowed
                    .iter()
                    .any(|why| err.message == format!("{path:?}: {why}"))
        })
        .map(ToString::to_string)
        .collect()
}

#[test]
fn a_folder_swapped_for_a_symlink_during_reads_never_leaks_the_outside() {
    let h = host();
    let flipper = Flipper::start(&h);
    let (mut ok, mut errors) = (0, Vec::new());
    for _ in 0..ROUNDS {
        match files::read(&h.server, "d/shadow", MAX, &none()) {
            Ok(data) => {
                assert_eq!(
                    String::from_utf8_lossy(&data),
                    "inside",
                    "read through the symlink"
                );
                ok += 1;
            }
            Err(err) => errors.push(err),
        }
    }
    let flips = flipper.finish();
    eprintln!(
        "reads: {ok} inside, {} refused, {flips} flips",
        errors.len()
    );
    h.assert_outside_untouched();
    assert_eq!(unexpected_refusals(&errors, "d/shadow"), BTreeSet::new());
}

#[test]
fn a_folder_swapped_for_a_symlink_during_writes_never_changes_the_outside() {
    let h = host();
    let flipper = Flipper::start(&h);
    let (mut ok, mut errors) = (0, Vec::new());
    for i in 0..ROUNDS {
        let data = format!("evil {i}").into_bytes();
        match files::write(&h.server, "d/shadow", data, MAX, &none()) {
            Ok(()) => ok += 1,
            Err(err) => errors.push(err),
        }
    }
    let flips = flipper.finish();
    eprintln!(
        "writes: {ok} inside, {} refused, {flips} flips",
        errors.len()
    );
    h.assert_outside_untouched();
    assert_eq!(unexpected_refusals(&errors, "d/shadow"), BTreeSet::new());
}

#[test]
fn a_folder_swapped_for_a_symlink_during_deletes_never_deletes_outside() {
    let h = host();
    let flipper = Flipper::start(&h);
    let (mut ok, mut errors) = (0, Vec::new());
    for _ in 0..ROUNDS {
        // Put the inside file back through the real folder's own handle.
        let created = nix::fcntl::openat(
            &flipper.real,
            "shadow",
            OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o644),
        );
        drop(created.unwrap());
        match files::delete(&h.server, "d/shadow", &none()) {
            Ok(()) => ok += 1,
            Err(err) => errors.push(err),
        }
        if !h.outside.join("shadow").exists() {
            break;
        }
    }
    let flips = flipper.finish();
    eprintln!(
        "deletes: {ok} inside, {} refused, {flips} flips",
        errors.len()
    );
    h.assert_outside_untouched();
    assert_eq!(unexpected_refusals(&errors, "d/shadow"), BTreeSet::new());
}

#[test]
fn a_folder_swapped_for_a_symlink_during_listings_never_lists_the_outside() {
    let h = host();
    let flipper = Flipper::start(&h);
    let mut errors = Vec::new();
    for _ in 0..ROUNDS {
        match files::list(&h.server, "d", &none()) {
            Ok(entries) => {
                let names: Vec<_> = entries.into_iter().map(|e| e.name).collect();
                assert_eq!(names, ["shadow"], "listed through the symlink");
            }
            Err(err) => errors.push(err),
        }
    }
    flipper.finish();
    h.assert_outside_untouched();
    assert_eq!(unexpected_refusals(&errors, "d"), BTreeSet::new());
}

fn spec(id: &str) -> ServerSpec {
    ServerSpec {
        id: ServerId::new(id).unwrap(),
        name: "Files test".into(),
        game: GameSpec::Arma3(Box::new(Arma3Spec {
            executable: "/nonexistent/arma3server_x64".into(),
            game_port: 2302,
            rcon_port: 2312,
            rcon_password: "FilesSecret1".into(),
            max_ping: None,
            restrict_rcon: None,
            server: Default::default(),
            basic: Default::default(),
            profile: None,
            launch: Default::default(),
        })),
        restart: Default::default(),
        timing: Default::default(),
        environment: Default::default(),
    }
}

/// The same through the agent's request interface, as the controller sends them.
#[tokio::test]
async fn file_requests_through_the_agent_refuse_planted_links() {
    let base = tempfile::tempdir().unwrap();
    let outside = base.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("shadow"), SHADOW).unwrap();
    let agent = Agent::start(AgentConfig {
        data_dir: base.path().join("agent"),
        servers_dir: base.path().join("servers"),
        telemetry: TelemetryConfig {
            metrics_interval_secs: 3600,
        },
        ..AgentConfig::default()
    })
    .await
    .unwrap();
    let id = ServerId::new("alpha").unwrap();
    agent
        .handle(Request::ApplySpec {
            spec: Box::new(spec("alpha")),
        })
        .await
        .unwrap();
    // The folder exists once a file request has been made.
    agent
        .handle(Request::ListFiles {
            server: id.clone(),
            dir: String::new(),
        })
        .await
        .unwrap();
    let folder: &Path = &base.path().join("servers/alpha");
    symlink(outside.join("shadow"), folder.join("soft.txt")).unwrap();
    fs::hard_link(outside.join("shadow"), folder.join("hard.txt")).unwrap();
    symlink(&outside, folder.join("mods")).unwrap();
    let cases = [
        ("soft.txt", "symlinks are not followed"),
        ("hard.txt", "hard-linked files are refused"),
        ("mods/shadow", "symlinks are not followed"),
    ];
    for (path, why) in cases {
        let expect = format!("{path:?}: {why}");
        let read = agent
            .handle(Request::ReadFile {
                server: id.clone(),
                path: path.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(
            (read.code, read.message),
            (ErrorCode::InvalidPath, expect.clone())
        );
        let write = agent
            .handle(Request::WriteFile {
                server: id.clone(),
                path: path.into(),
                data: b"evil".to_vec(),
            })
            .await
            .unwrap_err();
        assert_eq!(write.message, expect);
    }
    let listed = agent
        .handle(Request::ListFiles {
            server: id.clone(),
            dir: "mods".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(listed.message, "\"mods\": symlinks are not followed");
    let deleted = agent
        .handle(Request::DeleteFile {
            server: id.clone(),
            path: "hard.txt".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        deleted.message,
        "\"hard.txt\": hard-linked files are refused"
    );
    assert_eq!(fs::read_to_string(outside.join("shadow")).unwrap(), SHADOW);
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 1);
    agent.shutdown().await;
}
