//! Host and per-process resource usage, sampled with `sysinfo`.
//!
//! [`MetricsSampler`] keeps its `sysinfo` state alive between samples: CPU usage is a
//! difference of two readings, so the first sample of a process reports `None` and the
//! host CPU is primed when the sampler is created. Only what is reported is refreshed
//! (global CPU times, memory, the listed pids with CPU and memory, disk space, network
//! counters); the process table of the whole host is never scanned.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use sysinfo::{
    CpuRefreshKind, DiskRefreshKind, Disks, MemoryRefreshKind, Networks, Pid, ProcessRefreshKind,
    ProcessesToUpdate, System,
};
use thiserror::Error;
use tokio::sync::{mpsc, watch};

#[derive(Debug, Error)]
#[error("cannot read system metrics: {0}")]
pub struct MetricsError(String);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiskMetrics {
    pub mount: PathBuf,
    pub total: u64,
    pub available: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetMetrics {
    pub iface: String,
    /// Average since the previous sample (0 on the first).
    pub rx_bytes_per_s: f64,
    pub tx_bytes_per_s: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LoadAverage {
    pub one: f64,
    pub five: f64,
    pub fifteen: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostMetrics {
    pub at: SystemTime,
    /// All cores together, 0–100.
    pub cpu_percent: f32,
    pub mem_used: u64,
    pub mem_total: u64,
    pub swap_used: u64,
    pub swap_total: u64,
    /// One entry per mount point (first seen wins), zero-sized file systems skipped.
    pub disks: Vec<DiskMetrics>,
    /// Every interface except loopback, sorted by name.
    pub net: Vec<NetMetrics>,
    /// `None` where the platform has no load average.
    pub load_avg: Option<LoadAverage>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessMetrics {
    pub pid: u32,
    /// Percent of one core (a process using two cores fully reports 200). `None` on
    /// the first sample of this pid (two readings are needed).
    pub cpu_percent: Option<f32>,
    pub rss_bytes: u64,
    /// Entries in `/proc/<pid>/task`; `None` if unreadable (or not Linux).
    pub threads: Option<u32>,
    pub uptime: Duration,
}

/// One tick of [`MetricsSampler::run`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsSample {
    pub host: HostMetrics,
    /// The requested pids that exist, in request order.
    pub processes: Vec<ProcessMetrics>,
    /// Wall time the sample took to collect (it should stay in the low milliseconds).
    pub cost: Duration,
}

pub struct MetricsSampler {
    system: System,
    disks: Disks,
    networks: Networks,
    last_net: Instant,
    /// Per pid sampled before: accumulated CPU time (ms) and when it was read. CPU% is
    /// computed from these rather than taken from sysinfo, which reports 0 for a
    /// process that had not used any CPU tick at its first refresh.
    seen: HashMap<Pid, (u64, Instant)>,
}

impl std::fmt::Debug for MetricsSampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsSampler").finish_non_exhaustive()
    }
}

impl MetricsSampler {
    /// Default time between samples of [`MetricsSampler::run`].
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

    /// Loads the disk and interface lists and primes the CPU counters.
    pub fn new() -> Result<Self, MetricsError> {
        let err = |e: sysinfo::Error| MetricsError(e.to_string());
        let mut system = System::new().map_err(err)?;
        system.refresh_cpu_specifics(CpuRefreshKind::nothing().with_usage());
        let disks =
            Disks::new_with_refreshed_list_specifics(DiskRefreshKind::nothing().with_storage())
                .map_err(err)?;
        let networks = Networks::new_with_refreshed_list().map_err(err)?;
        Ok(Self {
            system,
            disks,
            networks,
            last_net: Instant::now(),
            seen: HashMap::new(),
        })
    }

    /// Host-wide figures.
    pub fn sample_host(&mut self) -> HostMetrics {
        self.system
            .refresh_cpu_specifics(CpuRefreshKind::nothing().with_usage());
        self.system
            .refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram().with_swap());
        self.disks
            .refresh_specifics(true, DiskRefreshKind::nothing().with_storage());
        self.networks.refresh(true);
        let now = Instant::now();
        let secs = now.duration_since(self.last_net).as_secs_f64();
        self.last_net = now;

        let mut disks: Vec<DiskMetrics> = Vec::new();
        for d in self.disks.iter() {
            if d.total_space() == 0 || disks.iter().any(|x| x.mount == d.mount_point()) {
                continue;
            }
            disks.push(DiskMetrics {
                mount: d.mount_point().to_path_buf(),
                total: d.total_space(),
                available: d.available_space(),
            });
        }
        let rate = |bytes: u64| if secs > 0.0 { bytes as f64 / secs } else { 0.0 };
        let mut net: Vec<NetMetrics> = self
            .networks
            .iter()
            .map(|(name, data)| (name.to_string_lossy().into_owned(), data))
            .filter(|(name, _)| name != "lo")
            .map(|(iface, data)| NetMetrics {
                iface,
                rx_bytes_per_s: rate(data.received()),
                tx_bytes_per_s: rate(data.transmitted()),
            })
            .collect();
        net.sort_by(|a, b| a.iface.cmp(&b.iface));
        let load_avg = System::load_average().ok().map(|l| LoadAverage {
            one: l.one,
            five: l.five,
            fifteen: l.fifteen,
        });
        HostMetrics {
            at: SystemTime::now(),
            cpu_percent: self.system.global_cpu_usage(),
            mem_used: self.system.used_memory(),
            mem_total: self.system.total_memory(),
            swap_used: self.system.used_swap(),
            swap_total: self.system.total_swap(),
            disks,
            net,
            load_avg,
        }
    }

    /// Figures for the given pids; pids that do not exist are left out.
    pub fn sample_processes(&mut self, pids: &[u32]) -> Vec<ProcessMetrics> {
        if pids.is_empty() {
            self.seen.clear();
            return Vec::new();
        }
        let pids: Vec<Pid> = pids.iter().map(|&p| Pid::from_u32(p)).collect();
        self.system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&pids),
            true,
            ProcessRefreshKind::nothing()
                .with_cpu()
                .with_memory()
                .without_tasks(),
        );
        let now = Instant::now();
        let mut out = Vec::with_capacity(pids.len());
        let mut seen = HashMap::with_capacity(pids.len());
        for pid in &pids {
            let Some(p) = self.system.process(*pid) else {
                continue;
            };
            let cpu_ms = p.accumulated_cpu_time();
            let cpu_percent = self.seen.get(pid).and_then(|&(prev_ms, prev_at)| {
                let wall = now.duration_since(prev_at).as_secs_f64();
                (wall > 0.0 && cpu_ms >= prev_ms)
                    .then(|| ((cpu_ms - prev_ms) as f64 / 1000.0 / wall * 100.0) as f32)
            });
            seen.insert(*pid, (cpu_ms, now));
            out.push(ProcessMetrics {
                pid: pid.as_u32(),
                cpu_percent,
                rss_bytes: p.memory(),
                threads: thread_count(pid.as_u32()),
                uptime: Duration::from_secs(p.run_time()),
            });
        }
        self.seen = seen;
        out
    }

    /// Host and processes in one go, with its cost.
    pub fn sample(&mut self, pids: &[u32]) -> MetricsSample {
        let start = Instant::now();
        let host = self.sample_host();
        let processes = self.sample_processes(pids);
        MetricsSample {
            host,
            processes,
            cost: start.elapsed(),
        }
    }

    /// Samples every `interval` (the pids to watch are read from `pids` at each tick)
    /// until `out` is closed. Sampling runs on the blocking pool.
    pub async fn run(
        self,
        interval: Duration,
        pids: watch::Receiver<Vec<u32>>,
        out: mpsc::Sender<MetricsSample>,
    ) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sampler = self;
        loop {
            tokio::select! {
                _ = out.closed() => return,
                _ = tick.tick() => {}
            }
            let watched = pids.borrow().clone();
            let joined = tokio::task::spawn_blocking(move || {
                let s = sampler.sample(&watched);
                (sampler, s)
            })
            .await;
            let sample;
            (sampler, sample) = match joined {
                Ok(v) => v,
                Err(e) => {
                    tracing::error!(error = %e, "metrics sampler panicked; metrics stop");
                    return;
                }
            };
            if out.send(sample).await.is_err() {
                return;
            }
        }
    }
}

#[cfg(target_os = "linux")]
fn thread_count(pid: u32) -> Option<u32> {
    let entries = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    Some(entries.count() as u32)
}

#[cfg(not(target_os = "linux"))]
fn thread_count(_pid: u32) -> Option<u32> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_own_process_and_host_totals() {
        let mut s = MetricsSampler::new().unwrap();
        let me = std::process::id();
        let first = s.sample(&[me, 0x7fff_fff0]);
        assert_eq!(first.processes.len(), 1, "nonexistent pid left out");
        let p = &first.processes[0];
        assert_eq!(p.pid, me);
        assert!(p.rss_bytes > 0);
        assert!(p.threads.is_some_and(|t| t >= 1));
        assert_eq!(p.cpu_percent, None);
        let h = &first.host;
        assert!(h.mem_total > 0 && h.mem_used > 0 && h.mem_used <= h.mem_total);
        assert!(h.swap_used <= h.swap_total);
        assert!((0.0..=100.0).contains(&h.cpu_percent));
        assert!(h.disks.iter().all(|d| d.available <= d.total));
        assert!(
            h.net
                .iter()
                .all(|n| n.rx_bytes_per_s >= 0.0 && n.iface != "lo")
        );
        assert!(h.load_avg.is_some());
        std::thread::sleep(Duration::from_millis(250));
        let second = s.sample(&[me]);
        assert!(second.processes[0].cpu_percent.is_some());
        // The cost of one steady-state sample, for the record.
        let mut costs: Vec<Duration> = (0..5).map(|_| s.sample(&[me]).cost).collect();
        costs.sort();
        eprintln!(
            "metrics: one sample costs {:?} (median of 5), {} disks, {} interfaces",
            costs[2],
            second.host.disks.len(),
            second.host.net.len()
        );
        assert!(costs[2] < Duration::from_millis(200));
    }

    #[test]
    fn metrics_busy_child_shows_cpu() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .unwrap();
        let pid = child.id();
        let mut s = MetricsSampler::new().unwrap();
        let _ = s.sample_processes(&[pid]);
        std::thread::sleep(Duration::from_millis(600));
        let m = s.sample_processes(&[pid]);
        child.kill().unwrap();
        child.wait().unwrap();
        let cpu = m[0].cpu_percent.unwrap();
        eprintln!("metrics: busy child at {cpu:.1}% of a core");
        assert!(cpu > 5.0, "busy loop shows {cpu}%");
        assert!(cpu <= 100.0 * std::thread::available_parallelism().map_or(1, |n| n.get()) as f32);
        assert!(m[0].uptime < Duration::from_secs(60));
    }

    #[tokio::test]
    async fn metrics_run_samples_until_closed() {
        let s = MetricsSampler::new().unwrap();
        let (_pid_tx, pid_rx) = watch::channel(vec![std::process::id()]);
        let (tx, mut rx) = mpsc::channel(2);
        let task = tokio::spawn(s.run(Duration::from_millis(50), pid_rx, tx));
        let a = rx.recv().await.unwrap();
        let b = rx.recv().await.unwrap();
        assert_eq!(a.processes[0].cpu_percent, None);
        assert!(b.processes[0].cpu_percent.is_some());
        drop(rx);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
    }
}
