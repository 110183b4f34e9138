//! Pre-launch checks (ports), the console file and the spawn (as the game user).

use std::fs::{self, File};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::os::fd::OwnedFd;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::{Mode, mkdirat};
use nix::unistd::{UnlinkatFlags, unlinkat};
use std::process::Stdio;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{LaunchPlan, PortCheck, Protocol, RunAs, StartError};

/// Variables passed through from the agent's environment (everything else is dropped).
const INHERITED_ENV: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR",
];
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Every port must be bindable on 0.0.0.0 and on 127.0.0.1.
pub(crate) fn check_ports(ports: &[PortCheck]) -> Result<(), StartError> {
    for p in ports {
        for ip in [Ipv4Addr::UNSPECIFIED, Ipv4Addr::LOCALHOST] {
            let addr = SocketAddr::new(IpAddr::V4(ip), p.port);
            let res = match p.protocol {
                Protocol::Udp => UdpSocket::bind(addr).map(drop),
                Protocol::Tcp => TcpListener::bind(addr).map(drop),
            };
            if let Err(e) = res {
                tracing::info!(%addr, protocol = %p.protocol, error = %e, "Port is not free.");
                return Err(StartError::PortInUse {
                    port: p.port,
                    protocol: p.protocol,
                });
            }
        }
    }
    Ok(())
}

/// The console folder, opened. Below the server folder every component is opened with
/// `O_NOFOLLOW` relative to its parent (and created if missing): the server folder
/// belongs to the game user, who could otherwise plant a symlink and have the agent
/// create (or, when pruning, delete) files anywhere on the host.
pub(crate) fn open_console_dir(cwd: &Path, dir: &Path) -> io::Result<OwnedFd> {
    let open_dir = |at: &OwnedFd, name: &std::ffi::OsStr| {
        openat(
            at,
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
    };
    let Ok(below) = dir.strip_prefix(cwd) else {
        // Not in the server folder: an agent-controlled place.
        fs::create_dir_all(dir)?;
        return Ok(nix::fcntl::open(
            dir,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?);
    };
    fs::create_dir_all(cwd)?;
    // The server folder's own name sits in the servers folder, which only the agent
    // can change.
    let mut fd = nix::fcntl::open(
        cwd,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    for component in below.components() {
        let std::path::Component::Normal(name) = component else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "console folder must be a plain path below the server folder",
            ));
        };
        match mkdirat(&fd, name, Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(e.into()),
        }
        fd = open_dir(&fd, name).map_err(|e| match e {
            Errno::ELOOP | Errno::ENOTDIR => io::Error::new(
                io::ErrorKind::InvalidInput,
                "the console folder is a symlink or not a folder",
            ),
            e => e.into(),
        })?;
    }
    Ok(fd)
}

/// Creates a new `console_YYYY-MM-DD_HH-MM-SS.log` (UTC) in the opened console folder,
/// for append (`O_EXCL | O_NOFOLLOW`: never through a planted link). Returns its name.
pub(crate) fn create_console(dir: &OwnedFd, now: SystemTime) -> io::Result<(String, File)> {
    let stem = console_stem(now);
    for n in 1..1000u32 {
        let name = if n == 1 {
            format!("{stem}.log")
        } else {
            format!("{stem}_{n}.log")
        };
        match openat(
            dir,
            name.as_str(),
            OFlag::O_WRONLY
                | OFlag::O_APPEND
                | OFlag::O_CREAT
                | OFlag::O_EXCL
                | OFlag::O_NOFOLLOW
                | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o640),
        ) {
            Ok(fd) => return Ok((name, File::from(fd))),
            Err(Errno::EEXIST) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "too many console files for one second",
    ))
}

/// Sort key of a `console_<stem>[_N].log` name: (stem, N); `None` for other files.
fn console_key(name: &str) -> Option<(String, u32)> {
    let rest = name.strip_prefix("console_")?.strip_suffix(".log")?;
    let stem = rest.get(..19)?;
    let n = match rest.get(19..)? {
        "" => 1,
        suffix => suffix.strip_prefix('_')?.parse().ok()?,
    };
    Some((stem.to_owned(), n))
}

/// Deletes the oldest `console_*.log` files in the opened console folder so that at
/// most `keep` remain; `current` (the file just created) is never deleted. Listing and
/// deleting go through the open folder, so a folder swapped for a link meanwhile
/// changes nothing elsewhere. Failures are logged.
pub(crate) fn prune_consoles(dir: &OwnedFd, keep: usize, current: &str) {
    use std::os::fd::AsRawFd;
    // The open folder itself, whatever its path has become.
    let Ok(entries) = fs::read_dir(format!("/proc/self/fd/{}", dir.as_raw_fd())) else {
        return;
    };
    let mut consoles: Vec<((String, u32), String)> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_owned();
            Some((console_key(&name)?, name))
        })
        .collect();
    consoles.sort();
    let excess = consoles.len().saturating_sub(keep);
    for (_, name) in consoles.into_iter().take(excess) {
        if name == current {
            continue;
        }
        if let Err(e) = unlinkat(dir, name.as_str(), UnlinkatFlags::NoRemoveDir) {
            tracing::warn!(file = %name, error = %e, "cannot delete an old console file");
        }
    }
}

pub(crate) fn console_stem(now: SystemTime) -> String {
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "console_{y:04}-{m:02}-{d:02}_{:02}-{:02}-{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Spawns `executable` (the plan's, as the allow-list resolved it) in its own process
/// group with the console file as stdout/stderr, as the game user when there is one
/// (std's `uid`/`gid`: setgid, setgroups(0), setuid in the child). Not `kill_on_drop`:
/// the game must outlive the agent.
pub(crate) fn spawn(
    plan: &LaunchPlan,
    executable: &Path,
    run_as: &RunAs,
    console: File,
) -> io::Result<tokio::process::Child> {
    let stderr = console.try_clone()?;
    let mut cmd = tokio::process::Command::new(executable);
    cmd.args(&plan.args)
        .current_dir(&plan.cwd)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::from(console))
        .stderr(Stdio::from(stderr))
        .process_group(0)
        .kill_on_drop(false);
    for key in INHERITED_ENV {
        if let Some(v) = std::env::var_os(key) {
            cmd.env(key, v);
        } else if *key == "PATH" {
            cmd.env(key, DEFAULT_PATH);
        }
    }
    match run_as {
        RunAs::User { name, uid, gid } => {
            super::run_as::no_new_privs()?;
            // A system user's home usually does not exist; the server folder is the
            // one place the game may write.
            cmd.uid(*uid)
                .gid(*gid)
                .env("USER", name)
                .env("LOGNAME", name)
                .env("HOME", &plan.cwd);
        }
        RunAs::AgentUser => {}
        RunAs::Refused(reason) => return Err(io::Error::other(reason.clone())),
    }
    cmd.envs(plan.env.iter().map(|(k, v)| (k, v)));
    cmd.spawn()
}
