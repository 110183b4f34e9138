//! Telemetry: what the agent observes about a running game server, for any game.
//!
//! - [`tail`]: follows the newest log file in a directory (captured console output, or
//!   the files the game writes itself) and emits lines, parsed by the game adapter's
//!   parser, in bounded batches with a resumable checkpoint.
//! - [`metrics`]: host and per-process resource usage (CPU, memory, disks, network).
//!
//! Players are tracked by each game's adapter (`crate::games`), which knows how its
//! game reports them.

pub mod metrics;
pub mod tail;

use std::time::{Duration, Instant};

/// Logs a recurring failure without flooding the log: the first occurrence at once,
/// then at most one line per `interval` with the number of occurrences suppressed in
/// between. [`RateLimitedLog::recovered`] logs once when the failure stops.
#[derive(Debug)]
pub(crate) struct RateLimitedLog {
    interval: Duration,
    last: Option<Instant>,
    suppressed: u64,
    failing: bool,
}

impl RateLimitedLog {
    pub(crate) fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: None,
            suppressed: 0,
            failing: false,
        }
    }

    /// Records one failure; `Some(suppressed)` when it should be logged now.
    pub(crate) fn failure(&mut self) -> Option<u64> {
        self.failing = true;
        let now = Instant::now();
        match self.last {
            Some(last) if now.duration_since(last) < self.interval => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }

    /// Records a success; true once after a streak of failures.
    pub(crate) fn recovered(&mut self) -> bool {
        let was = self.failing;
        self.failing = false;
        self.last = None;
        self.suppressed = 0;
        was
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn telemetry_rate_limited_log() {
        let mut l = RateLimitedLog::new(Duration::from_secs(3600));
        assert_eq!(l.failure(), Some(0));
        assert_eq!(l.failure(), None);
        assert_eq!(l.failure(), None);
        assert!(l.recovered());
        assert!(!l.recovered());
        assert_eq!(l.failure(), Some(0));
        let mut l = RateLimitedLog::new(Duration::ZERO);
        assert_eq!(l.failure(), Some(0));
        assert_eq!(l.failure(), Some(0));
    }
}
