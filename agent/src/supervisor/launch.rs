//! Pre-launch checks (allow-list, executable, ports), the console file and the spawn.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{LaunchPlan, PortCheck, Protocol, StartError};

/// Variables passed through from the agent's environment (everything else is dropped).
const INHERITED_ENV: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR",
];
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

fn name_allowed(p: &Path, allowed: &[String]) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| allowed.iter().any(|a| a == n))
}

/// The file name (of the path and, through symlinks, of the real file) must be
/// allow-listed; the file must exist, be a regular file and executable.
pub(crate) fn check_executable(exe: &Path, allowed: &[String]) -> Result<(), StartError> {
    let bad = |reason: String| StartError::Executable {
        path: exe.to_path_buf(),
        reason,
    };
    if !name_allowed(exe, allowed) {
        return Err(StartError::NotAllowed(exe.to_path_buf()));
    }
    if !exe.is_absolute() {
        return Err(bad("path is not absolute".into()));
    }
    let meta = fs::metadata(exe).map_err(|e| bad(e.to_string()))?;
    if !meta.is_file() {
        return Err(bad("not a regular file".into()));
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(bad("not executable".into()));
    }
    let real = fs::canonicalize(exe).map_err(|e| bad(e.to_string()))?;
    if !name_allowed(&real, allowed) {
        return Err(StartError::NotAllowed(real));
    }
    Ok(())
}

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
                return Err(StartError::PortInUse {
                    port: p.port,
                    protocol: p.protocol,
                    addr: addr.to_string(),
                    reason: e.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// Creates a new `console_YYYY-MM-DD_HH-MM-SS.log` (UTC) in `dir`, opened for append.
pub(crate) fn create_console(dir: &Path, now: SystemTime) -> io::Result<(PathBuf, File)> {
    fs::create_dir_all(dir)?;
    let stem = console_stem(now);
    for n in 1..1000u32 {
        let name = if n == 1 {
            format!("{stem}.log")
        } else {
            format!("{stem}_{n}.log")
        };
        let path = dir.join(name);
        match OpenOptions::new()
            .append(true)
            .create_new(true)
            .mode(0o640)
            .open(&path)
        {
            Ok(f) => return Ok((path, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
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

/// Deletes the oldest `console_*.log` files in `dir` so that at most `keep` remain;
/// `current` (the file just created) is never deleted. Failures are logged.
pub(crate) fn prune_consoles(dir: &Path, keep: usize, current: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut consoles: Vec<((String, u32), PathBuf)> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| {
            let key = console_key(e.file_name().to_str()?)?;
            Some((key, e.path()))
        })
        .collect();
    consoles.sort();
    let excess = consoles.len().saturating_sub(keep);
    for (_, path) in consoles.into_iter().take(excess) {
        if path == current {
            continue;
        }
        if let Err(e) = fs::remove_file(&path) {
            tracing::warn!(file = %path.display(), error = %e, "cannot delete an old console file");
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

/// Spawns the plan's executable in its own process group with the console file as
/// stdout/stderr. Not `kill_on_drop`: the game must outlive the agent.
pub(crate) fn spawn(plan: &LaunchPlan, console: File) -> io::Result<tokio::process::Child> {
    let stderr = console.try_clone()?;
    let mut cmd = tokio::process::Command::new(&plan.executable);
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
    cmd.envs(plan.env.iter().map(|(k, v)| (k, v)));
    cmd.spawn()
}
