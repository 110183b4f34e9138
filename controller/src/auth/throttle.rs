//! Login throttling: failed attempts per client IP and per account in a sliding window.
//! In-memory on purpose (ephemeral; each replica throttles on its own).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failure counters.
#[derive(Debug)]
pub struct LoginThrottle {
    per_ip: u32,
    per_account: u32,
    window: Duration,
    state: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl LoginThrottle {
    /// New throttle.
    pub fn new(per_ip: u32, per_account: u32, window: Duration) -> Self {
        Self {
            per_ip,
            per_account,
            window,
            state: Mutex::new(HashMap::new()),
        }
    }

    fn keys(ip: &str, account: &str) -> [(String, u32); 2] {
        [
            (format!("ip:{ip}"), 0),
            (format!("acct:{}", account.to_lowercase()), 1),
        ]
    }

    /// Reserves one attempt for `(ip, account)` atomically: `Err(retry_after_secs)` when the
    /// failures plus the attempts still in flight already reach a limit; otherwise the
    /// attempt is counted at once (so parallel requests cannot all pass the check before
    /// any failure is recorded) and stays counted as a failure unless
    /// [`LoginThrottle::succeed`] releases it.
    pub fn reserve(&self, ip: &str, account: &str) -> Result<Attempt, u64> {
        let now = Instant::now();
        let Ok(mut st) = self.state.lock() else {
            return Err(1);
        };
        if st.len() > 100_000 {
            let window = self.window;
            st.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < window));
        }
        let keys = Self::keys(ip, account);
        let mut wait: Option<Duration> = None;
        for (key, kind) in &keys {
            let limit = if *kind == 0 {
                self.per_ip
            } else {
                self.per_account
            } as usize;
            if let Some(q) = st.get_mut(key) {
                while q
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= self.window)
                {
                    q.pop_front();
                }
                if q.len() >= limit
                    && let Some(oldest) = q.front()
                {
                    let w = self.window.saturating_sub(now.duration_since(*oldest));
                    wait = Some(wait.map_or(w, |x| x.max(w)));
                }
            }
        }
        if let Some(w) = wait {
            return Err(w.as_secs().max(1));
        }
        for (key, _) in &keys {
            st.entry(key.clone()).or_default().push_back(now);
        }
        Ok(Attempt {
            ip_key: keys[0].0.clone(),
            at: now,
        })
    }

    /// `Some(retry_after_secs)` when the caller must wait (read-only; see [`Self::reserve`]).
    pub fn check(&self, ip: &str, account: &str) -> Option<u64> {
        let now = Instant::now();
        let st = self.state.lock().ok()?;
        let mut wait: Option<Duration> = None;
        for (key, kind) in Self::keys(ip, account) {
            let limit = if kind == 0 {
                self.per_ip
            } else {
                self.per_account
            } as usize;
            if let Some(q) = st.get(&key) {
                let live: Vec<&Instant> = q
                    .iter()
                    .filter(|t| now.duration_since(**t) < self.window)
                    .collect();
                if live.len() >= limit
                    && let Some(oldest) = live.first()
                {
                    let w = self.window.saturating_sub(now.duration_since(**oldest));
                    wait = Some(wait.map_or(w, |x| x.max(w)));
                }
            }
        }
        wait.map(|w| w.as_secs().max(1))
    }

    /// A successful login: releases the reserved attempt from the IP's count and clears the
    /// account's failures.
    pub fn succeed(&self, attempt: Attempt, account: &str) {
        if let Ok(mut st) = self.state.lock() {
            if let Some(q) = st.get_mut(&attempt.ip_key)
                && let Some(pos) = q.iter().rposition(|t| *t == attempt.at)
            {
                q.remove(pos);
            }
            st.remove(&format!("acct:{}", account.to_lowercase()));
        }
    }
}

/// One reserved login attempt (see [`LoginThrottle::reserve`]); dropping it without
/// [`LoginThrottle::succeed`] leaves it counted as a failure.
#[derive(Debug)]
#[must_use]
pub struct Attempt {
    ip_key: String,
    at: Instant,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_account_and_ip() {
        let t = LoginThrottle::new(4, 2, Duration::from_secs(60));
        assert!(t.check("1.1.1.1", "bob").is_none());
        let _ = t.reserve("1.1.1.1", "bob").unwrap();
        let _ = t.reserve("1.1.1.1", "bob").unwrap();
        assert!(t.check("1.1.1.1", "bob").is_some());
        assert!(
            t.reserve("2.2.2.2", "BOB").is_err(),
            "account limit spans IPs"
        );
        assert!(t.check("1.1.1.1", "alice").is_none());
        let _ = t.reserve("1.1.1.1", "alice").unwrap();
        let _ = t.reserve("1.1.1.1", "carol").unwrap();
        assert!(t.reserve("1.1.1.1", "dave").is_err(), "ip limit");
        let ok = t.reserve("3.3.3.3", "erin").unwrap();
        t.succeed(ok, "bob");
        assert!(t.check("3.3.3.3", "bob").is_none());
    }

    #[test]
    fn reservations_count_in_flight_attempts_and_success_releases() {
        let t = LoginThrottle::new(100, 3, Duration::from_secs(60));
        // Three attempts in flight: the fourth is refused before any of them has failed.
        let a: Vec<Attempt> = (0..3)
            .map(|_| t.reserve("9.9.9.9", "zed").unwrap())
            .collect();
        assert!(t.reserve("9.9.9.9", "zed").is_err());
        // A success releases its own attempt from the IP count and clears the account.
        let mut a = a.into_iter();
        t.succeed(a.next().unwrap(), "zed");
        assert!(t.reserve("9.9.9.9", "zed").is_ok());
    }

    #[test]
    fn parallel_reservations_never_exceed_the_limit() {
        let t = std::sync::Arc::new(LoginThrottle::new(1000, 5, Duration::from_secs(60)));
        let handles: Vec<_> = (0..32)
            .map(|_| {
                let t = t.clone();
                std::thread::spawn(move || t.reserve("1.2.3.4", "mallory").is_ok())
            })
            .collect();
        let passed = handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|ok| *ok)
            .count();
        assert_eq!(passed, 5);
    }
}
