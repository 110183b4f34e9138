//! Tracing set-up and the Prometheus counters served at `/metrics` (hand-written text
//! exposition).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Initialises `tracing` with `RUST_LOG` (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).try_init();
}

const BUCKETS_MS: [f64; 10] = [0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 1000.0];
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// A fixed-bucket histogram.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; 10],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let ms = d.as_secs_f64() * 1000.0;
        for (i, b) in BUCKETS_MS.iter().enumerate() {
            if ms <= *b {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} histogram\n"));
        for (i, b) in BUCKETS_MS.iter().enumerate() {
            let le = b / 1000.0;
            out.push_str(&format!(
                "{name}_bucket{{le=\"{le}\"}} {}\n",
                self.buckets[i].load(Ordering::Relaxed)
            ));
        }
        let c = self.count.load(Ordering::Relaxed);
        out.push_str(&format!("{name}_bucket{{le=\"+Inf\"}} {c}\n"));
        out.push_str(&format!(
            "{name}_sum {}\n",
            self.sum_us.load(Ordering::Relaxed) as f64 / 1e6
        ));
        out.push_str(&format!("{name}_count {c}\n"));
    }
}

/// Controller metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: [AtomicU64; 5],
    /// Request latency.
    pub latency: Histogram,
    /// argon2id verify time.
    pub argon2: Histogram,
    login_success: AtomicU64,
    login_failure: AtomicU64,
    login_throttled: AtomicU64,
    /// Agent events committed.
    link_events: AtomicU64,
    /// Log lines committed.
    link_log_lines: AtomicU64,
    /// Time of one ingest transaction.
    pub ingest: Histogram,
}

impl Metrics {
    /// Counts a response.
    pub fn record(&self, status: u16, d: Duration) {
        let i = usize::from((status / 100).clamp(1, 5) - 1);
        self.requests[i].fetch_add(1, Ordering::Relaxed);
        self.latency.observe(d);
    }

    /// Counts a login outcome.
    pub fn inc_login(&self, outcome: &str) {
        let c = match outcome {
            "success" => &self.login_success,
            "throttled" => &self.login_throttled,
            _ => &self.login_failure,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Records one committed ingest transaction.
    pub fn ingested(&self, events: usize, log_lines: usize, d: Duration) {
        self.link_events.fetch_add(events as u64, Ordering::Relaxed);
        self.link_log_lines
            .fetch_add(log_lines as u64, Ordering::Relaxed);
        self.ingest.observe(d);
    }

    /// Records an argon2 verification.
    pub fn observe_argon2(&self, d: Duration) {
        self.argon2.observe(d);
    }

    /// Prometheus text exposition.
    pub fn render(&self, uptime: Duration) -> String {
        let mut out = String::new();
        out.push_str("# HELP languard_http_requests_total HTTP responses by status class.\n# TYPE languard_http_requests_total counter\n");
        for (i, c) in STATUS_CLASSES.iter().enumerate() {
            out.push_str(&format!(
                "languard_http_requests_total{{status=\"{c}\"}} {}\n",
                self.requests[i].load(Ordering::Relaxed)
            ));
        }
        self.latency.render(
            "languard_http_request_duration_seconds",
            "HTTP request latency.",
            &mut out,
        );
        out.push_str("# HELP languard_logins_total Login attempts by outcome.\n# TYPE languard_logins_total counter\n");
        for (k, c) in [
            ("success", &self.login_success),
            ("failure", &self.login_failure),
            ("throttled", &self.login_throttled),
        ] {
            out.push_str(&format!(
                "languard_logins_total{{outcome=\"{k}\"}} {}\n",
                c.load(Ordering::Relaxed)
            ));
        }
        self.argon2.render(
            "languard_password_verify_seconds",
            "argon2id verification time.",
            &mut out,
        );
        out.push_str(&format!(
            "# HELP languard_link_events_total Agent events committed.\n# TYPE languard_link_events_total counter\nlanguard_link_events_total {}\n",
            self.link_events.load(Ordering::Relaxed)
        ));
        out.push_str(&format!(
            "# HELP languard_link_log_lines_total Log lines committed.\n# TYPE languard_link_log_lines_total counter\nlanguard_link_log_lines_total {}\n",
            self.link_log_lines.load(Ordering::Relaxed)
        ));
        self.ingest.render(
            "languard_link_ingest_seconds",
            "Time of one agent-event ingest transaction.",
            &mut out,
        );
        out.push_str(&format!("# HELP languard_uptime_seconds Seconds since start.\n# TYPE languard_uptime_seconds gauge\nlanguard_uptime_seconds {}\n", uptime.as_secs()));
        out
    }
}
