//! Reconnect delays: exponential with full jitter (a uniformly random delay between
//! zero and the current ceiling), so a fleet of agents that lost the controller at the
//! same moment does not come back in lockstep.

use std::time::Duration;

use rand::Rng;

/// Exponential backoff with full jitter.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    ceiling: Duration,
}

impl Backoff {
    /// Ceilings `initial`, `2 × initial`, … up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        let initial = initial.max(Duration::from_millis(1));
        let max = max.max(initial);
        Self {
            initial,
            max,
            ceiling: initial,
        }
    }

    /// The next delay; the ceiling then doubles (up to the maximum).
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling;
        self.ceiling = self.ceiling.saturating_mul(2).min(self.max);
        let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::rng().random_range(0..=millis))
    }

    /// Back to the first ceiling (after a connection was accepted).
    pub fn reset(&mut self) {
        self.ceiling = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        let mut ceilings = Vec::new();
        for _ in 0..10 {
            ceilings.push(b.ceiling);
            let d = b.next_delay();
            assert!(d <= *ceilings.last().unwrap());
        }
        assert_eq!(ceilings[0], Duration::from_millis(500));
        assert_eq!(ceilings[1], Duration::from_secs(1));
        assert_eq!(ceilings[6], Duration::from_secs(30));
        assert_eq!(ceilings[9], Duration::from_secs(30));
        b.reset();
        assert_eq!(b.ceiling, Duration::from_millis(500));
    }

    #[test]
    fn jitter_spreads_delays() {
        let mut b = Backoff::new(Duration::from_secs(10), Duration::from_secs(10));
        let delays: std::collections::BTreeSet<_> = (0..50).map(|_| b.next_delay()).collect();
        assert!(delays.len() > 10, "{delays:?}");
    }
}
