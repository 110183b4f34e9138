//! The live process (our child or an adopted one), its identity, signals and the run
//! record that makes adoption possible.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use sysinfo::{ProcessRefreshKind, ProcessStatus, ProcessesToUpdate, System, UpdateKind};
use tokio::time::{Interval, MissedTickBehavior};

use super::ExitInfo;

/// Persisted per server while a process runs: `data_dir/<server_id>.run.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub server_id: String,
    pub pid: u32,
    /// Process group id (equals `pid`: we start every server as a group leader).
    pub pgid: u32,
    /// sysinfo `Process::start_time()`, seconds since the epoch.
    pub start_time: u64,
    pub executable: PathBuf,
    /// File name of `executable`; compared with the process name on adoption.
    pub exe_name: String,
    pub console_file: PathBuf,
    /// Unix seconds.
    pub started_at: u64,
}

pub(crate) fn record_path(data_dir: &Path, server_id: &str) -> PathBuf {
    data_dir.join(format!("{server_id}.run.json"))
}

/// What the OS says about a PID right now.
pub(crate) struct Identity {
    pub start_time: u64,
    pub name: Vec<u8>,
    pub exe_name: Option<Vec<u8>>,
    pub zombie: bool,
}

pub(crate) fn identity(sys: &mut System, pid: u32) -> Option<Identity> {
    let spid = sysinfo::Pid::from_u32(pid);
    sys.refresh_processes_specifics(
        ProcessesToUpdate::Some(&[spid]),
        true,
        ProcessRefreshKind::nothing().with_exe(UpdateKind::Always),
    );
    let p = sys.process(spid)?;
    Some(Identity {
        start_time: p.start_time(),
        name: p.name().as_bytes().to_vec(),
        exe_name: p
            .exe()
            .and_then(|e| e.file_name())
            .map(|n| n.as_bytes().to_vec()),
        zombie: matches!(p.status(), ProcessStatus::Zombie | ProcessStatus::Dead),
    })
}

fn to_pid(pid: u32) -> Option<Pid> {
    i32::try_from(pid)
        .ok()
        .filter(|p| *p > 0)
        .map(Pid::from_raw)
}

/// `kill(pid, 0)`: exists (EPERM also means it exists).
pub(crate) fn pid_exists(pid: u32) -> bool {
    match to_pid(pid) {
        Some(p) => matches!(kill(p, None), Ok(()) | Err(Errno::EPERM)),
        None => false,
    }
}

/// Does the live process `pid` match the record's start time and executable name?
pub(crate) fn matches(
    sys: &mut System,
    pid: u32,
    start_time: u64,
    exe_name: &str,
) -> Result<(), String> {
    if !pid_exists(pid) {
        return Err(format!("pid {pid} does not exist"));
    }
    let id = identity(sys, pid).ok_or_else(|| format!("pid {pid} is not visible"))?;
    if id.zombie {
        return Err(format!("pid {pid} has exited"));
    }
    if id.start_time.abs_diff(start_time) > 1 {
        return Err(format!(
            "pid {pid} started at {} but the record says {start_time} (PID reused)",
            id.start_time
        ));
    }
    let want = exe_name.as_bytes();
    // comm is truncated to 15 bytes by the kernel.
    let comm_ok = id.name == want || (want.len() > 15 && id.name == want[..15]);
    let exe_ok = id.exe_name.as_deref() == Some(want);
    if !comm_ok && !exe_ok {
        return Err(format!(
            "pid {pid} is {:?}, not {exe_name}",
            String::from_utf8_lossy(&id.name)
        ));
    }
    Ok(())
}

pub(crate) enum Proc {
    Child(tokio::process::Child),
    Adopted {
        start_time: u64,
        exe_name: String,
        /// Signal the group only if the process still leads its own group.
        group: bool,
        ticker: Interval,
        sys: Box<System>,
    },
}

pub(crate) struct Live {
    pub pid: u32,
    pub console_file: PathBuf,
    pub proc: Proc,
}

impl Live {
    pub fn child(pid: u32, console_file: PathBuf, child: tokio::process::Child) -> Self {
        Self {
            pid,
            console_file,
            proc: Proc::Child(child),
        }
    }

    pub fn adopted(
        pid: u32,
        console_file: PathBuf,
        start_time: u64,
        exe_name: String,
        group: bool,
        sys: System,
    ) -> Self {
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self {
            pid,
            console_file,
            proc: Proc::Adopted {
                start_time,
                exe_name,
                group,
                ticker,
                sys: Box::new(sys),
            },
        }
    }

    /// Resolves when the process has exited. Cancel-safe.
    pub async fn wait(&mut self) -> ExitInfo {
        let pid = self.pid;
        match &mut self.proc {
            Proc::Child(child) => match child.wait().await {
                Ok(st) => ExitInfo {
                    code: st.code(),
                    signal: st.signal(),
                },
                Err(e) => {
                    tracing::warn!(pid, error = %e, "waiting for child failed; treating it as exited");
                    ExitInfo::default()
                }
            },
            Proc::Adopted {
                start_time,
                exe_name,
                ticker,
                sys,
                ..
            } => loop {
                ticker.tick().await;
                if let Err(why) = matches(sys, pid, *start_time, exe_name) {
                    tracing::debug!(pid, %why, "adopted process is gone");
                    return ExitInfo::default();
                }
            },
        }
    }

    /// Signals the process group (or, for an adopted process that no longer leads its
    /// group, the process). Adopted processes are re-identified first.
    pub fn signal(&mut self, sig: Signal) {
        let Some(pid) = to_pid(self.pid) else { return };
        let group = match &mut self.proc {
            Proc::Child(_) => true,
            Proc::Adopted {
                start_time,
                exe_name,
                group,
                sys,
                ..
            } => {
                if let Err(why) = matches(sys, self.pid, *start_time, exe_name) {
                    tracing::debug!(pid = self.pid, %why, "not signalling: process is gone");
                    return;
                }
                *group
            }
        };
        let res = if group {
            killpg(pid, sig)
        } else {
            kill(pid, sig)
        };
        match res {
            Ok(()) => tracing::info!(pid = self.pid, ?sig, group, "signalled"),
            Err(Errno::ESRCH) => {}
            Err(e) => tracing::warn!(pid = self.pid, ?sig, error = %e, "signal failed"),
        }
    }

    /// After the leader exited: SIGKILL whatever is left in its process group. The
    /// group id cannot be reused by a new process while members remain.
    pub fn kill_stragglers(&self) {
        let group = match &self.proc {
            Proc::Child(_) => true,
            Proc::Adopted { group, .. } => *group,
        };
        if !group {
            return;
        }
        if let Some(pid) = to_pid(self.pid) {
            match killpg(pid, Signal::SIGKILL) {
                Ok(()) => tracing::info!(pgid = self.pid, "killed leftover processes of the group"),
                Err(Errno::ESRCH) => {}
                Err(e) => {
                    tracing::warn!(pgid = self.pid, error = %e, "cleaning up the group failed")
                }
            }
        }
    }
}

/// Our process group id is our pid? (Used to decide group signalling on adoption.)
pub(crate) fn leads_group(pid: u32) -> bool {
    to_pid(pid)
        .and_then(|p| nix::unistd::getpgid(Some(p)).ok())
        .is_some_and(|g| g.as_raw() == p_raw(pid))
}

fn p_raw(pid: u32) -> i32 {
    i32::try_from(pid).unwrap_or(-1)
}
