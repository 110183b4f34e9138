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

    /// `Some(retry_after_secs)` when the caller must wait.
    pub fn check(&self, ip: &str, account: &str) -> Option<u64> {
        let now = Instant::now();
        let mut st = self.state.lock().ok()?;
        let mut wait: Option<Duration> = None;
        for (key, kind) in Self::keys(ip, account) {
            let limit = if kind == 0 {
                self.per_ip
            } else {
                self.per_account
            } as usize;
            if let Some(q) = st.get_mut(&key) {
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
        wait.map(|w| w.as_secs().max(1))
    }

    /// Records a failure for both keys.
    pub fn fail(&self, ip: &str, account: &str) {
        let now = Instant::now();
        if let Ok(mut st) = self.state.lock() {
            if st.len() > 100_000 {
                let window = self.window;
                st.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < window));
            }
            for (key, _) in Self::keys(ip, account) {
                st.entry(key).or_default().push_back(now);
            }
        }
    }

    /// Clears the account's failures after a successful login.
    pub fn succeed(&self, account: &str) {
        if let Ok(mut st) = self.state.lock() {
            st.remove(&format!("acct:{}", account.to_lowercase()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_account_and_ip() {
        let t = LoginThrottle::new(4, 2, Duration::from_secs(60));
        assert!(t.check("1.1.1.1", "bob").is_none());
        t.fail("1.1.1.1", "bob");
        t.fail("1.1.1.1", "bob");
        assert!(t.check("1.1.1.1", "bob").is_some());
        assert!(
            t.check("2.2.2.2", "BOB").is_some(),
            "account limit spans IPs"
        );
        assert!(t.check("1.1.1.1", "alice").is_none());
        t.fail("1.1.1.1", "alice");
        t.fail("1.1.1.1", "carol");
        assert!(t.check("1.1.1.1", "dave").is_some(), "ip limit");
        t.succeed("bob");
        assert!(t.check("3.3.3.3", "bob").is_none());
    }
}
