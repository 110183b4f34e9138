//! Throttling of password guesses (login and password change).
//!
//! A lockout per account would let anyone lock the admin out with a few wrong passwords, so
//! the main brake is per (account, source): after `per_source` failures a source must wait
//! `backoff_base`, doubling with each further failure up to `backoff_max`; a success from
//! that source clears it, and another source is not affected. Two sliding windows stay as
//! coarse brakes: failures per source over all accounts (one address spraying names) and
//! failures per account over all sources (distributed guessing; its limit is meant to be
//! far above what one source can reach before its backoff grows).
//!
//! A source is the client IP; IPv6 addresses count per /64, which one host usually owns
//! whole. In memory on purpose: ephemeral, and each replica throttles on its own.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries kept before idle ones are pruned.
const PRUNE_ABOVE: usize = 100_000;

/// The limits (from `config::LoginThrottle`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Failures per source within `window`, over all accounts.
    pub per_ip: u32,
    /// Failures per account within `window`, over all sources.
    pub per_account: u32,
    /// Window of `per_ip` and `per_account`.
    pub window: Duration,
    /// Failures of one account from one source before backoff starts.
    pub per_source: u32,
    /// First backoff.
    pub backoff_base: Duration,
    /// Longest backoff.
    pub backoff_max: Duration,
}

#[derive(Debug)]
struct Source {
    failures: u32,
    last: Instant,
}

#[derive(Debug, Default)]
struct State {
    /// `ip:<source>` and `acct:<account>` → attempts within the window.
    windows: HashMap<String, VecDeque<Instant>>,
    /// (account, source) → consecutive failures.
    sources: HashMap<(String, String), Source>,
}

/// Failure counters.
#[derive(Debug)]
pub struct LoginThrottle {
    limits: Limits,
    state: Mutex<State>,
}

/// The throttling key of a client address: IPv4 as is, IPv6 by its /64; anything else
/// (no address known) as given.
pub fn source_key(ip: &str) -> String {
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        Ok(IpAddr::V4(v4)) => v4.to_string(),
        Err(_) => ip.to_owned(),
    }
}

fn ceil_secs(d: Duration) -> u64 {
    u64::try_from(d.as_millis().div_ceil(1000))
        .unwrap_or(u64::MAX)
        .max(1)
}

impl LoginThrottle {
    /// New throttle.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            state: Mutex::new(State::default()),
        }
    }

    /// Backoff after `failures` consecutive failures of one source.
    fn backoff(&self, failures: u32) -> Duration {
        let over = failures.saturating_sub(self.limits.per_source);
        let factor = 1u32.checked_shl(over.min(31)).unwrap_or(u32::MAX);
        self.limits
            .backoff_base
            .saturating_mul(factor)
            .min(self.limits.backoff_max)
    }

    /// A source's failures are forgotten after this long without one.
    fn forget_after(&self) -> Duration {
        self.limits.backoff_max.max(self.limits.window) * 2
    }

    fn prune(&self, st: &mut State, now: Instant) {
        let window = self.limits.window;
        st.windows
            .retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < window));
        let forget = self.forget_after();
        st.sources
            .retain(|_, s| now.duration_since(s.last) < forget);
    }

    /// Reserves one attempt for `(ip, account)` atomically: `Err(retry_after_secs)` when a
    /// limit is reached; otherwise the attempt is counted at once (so parallel requests
    /// cannot all pass the check before any failure is recorded) and stays counted as a
    /// failure unless [`LoginThrottle::succeed`] releases it.
    pub fn reserve(&self, ip: &str, account: &str) -> Result<Attempt, u64> {
        let now = Instant::now();
        let Ok(mut st) = self.state.lock() else {
            return Err(1);
        };
        if st.windows.len() + st.sources.len() > PRUNE_ABOVE {
            self.prune(&mut st, now);
        }
        let source = source_key(ip);
        let account = account.to_lowercase();
        let window_keys = [
            (format!("ip:{source}"), self.limits.per_ip),
            (format!("acct:{account}"), self.limits.per_account),
        ];
        let mut wait = Duration::ZERO;
        for (key, limit) in &window_keys {
            if let Some(q) = st.windows.get_mut(key) {
                while q
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= self.limits.window)
                {
                    q.pop_front();
                }
                if q.len() >= *limit as usize
                    && let Some(oldest) = q.front()
                {
                    wait = wait.max(
                        self.limits
                            .window
                            .saturating_sub(now.duration_since(*oldest)),
                    );
                }
            }
        }
        let skey = (account, source);
        if let Some(s) = st.sources.get(&skey) {
            if now.duration_since(s.last) >= self.forget_after() {
                st.sources.remove(&skey);
            } else if s.failures >= self.limits.per_source {
                let ready = s.last + self.backoff(s.failures);
                wait = wait.max(ready.saturating_duration_since(now));
            }
        }
        if !wait.is_zero() {
            return Err(ceil_secs(wait));
        }
        for (key, _) in &window_keys {
            st.windows.entry(key.clone()).or_default().push_back(now);
        }
        let s = st.sources.entry(skey.clone()).or_insert(Source {
            failures: 0,
            last: now,
        });
        s.failures = s.failures.saturating_add(1);
        s.last = now;
        Ok(Attempt {
            ip_key: window_keys[0].0.clone(),
            account_key: window_keys[1].0.clone(),
            source: skey,
            at: now,
        })
    }

    /// A failed attempt: the source's backoff runs from now (the check may have taken a
    /// while), not from when the attempt was reserved.
    pub fn fail(&self, attempt: Attempt) {
        if let Ok(mut st) = self.state.lock()
            && let Some(s) = st.sources.get_mut(&attempt.source)
        {
            s.last = s.last.max(Instant::now());
        }
    }

    /// A successful attempt: releases it from both windows and clears the source's
    /// failures for this account. Other sources' failures stay counted.
    pub fn succeed(&self, attempt: Attempt) {
        if let Ok(mut st) = self.state.lock() {
            for key in [&attempt.ip_key, &attempt.account_key] {
                if let Some(q) = st.windows.get_mut(key)
                    && let Some(pos) = q.iter().rposition(|t| *t == attempt.at)
                {
                    q.remove(pos);
                }
            }
            st.sources.remove(&attempt.source);
        }
    }
}

/// One reserved attempt (see [`LoginThrottle::reserve`]); dropping it without
/// [`LoginThrottle::succeed`] leaves it counted as a failure.
#[derive(Debug)]
#[must_use]
pub struct Attempt {
    ip_key: String,
    account_key: String,
    source: (String, String),
    at: Instant,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            per_ip: 1000,
            per_account: 1000,
            window: Duration::from_secs(300),
            per_source: 3,
            backoff_base: Duration::from_secs(60),
            backoff_max: Duration::from_secs(900),
        }
    }

    #[test]
    fn a_guessing_source_does_not_block_another() {
        let t = LoginThrottle::new(limits());
        for _ in 0..3 {
            t.fail(t.reserve("203.0.113.1", "Admin").unwrap());
        }
        assert_eq!(t.reserve("203.0.113.1", "admin").err(), Some(60));
        // Same account, other source: free; same source, other account: free.
        let ok = t.reserve("198.51.100.1", "admin").unwrap();
        t.succeed(ok);
        assert!(t.reserve("203.0.113.1", "bob").is_ok());
        // The attacker's backoff stays.
        assert!(t.reserve("203.0.113.1", "admin").is_err());
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let t = LoginThrottle::new(limits());
        let secs = |n| t.backoff(n).as_secs();
        assert_eq!([secs(3), secs(4), secs(5), secs(6)], [60, 120, 240, 480]);
        assert_eq!(secs(7), 900);
        assert_eq!(secs(u32::MAX), 900);
    }

    #[test]
    fn ipv6_counts_per_64() {
        assert_eq!(
            source_key("2001:db8:1:2::1"),
            source_key("2001:db8:1:2:ffff::9")
        );
        assert_ne!(source_key("2001:db8:1:2::1"), source_key("2001:db8:1:3::1"));
        assert_eq!(source_key("::ffff:192.0.2.1"), "192.0.2.1");
        assert_eq!(source_key(""), "");
        let t = LoginThrottle::new(limits());
        for i in 0..3 {
            t.fail(t.reserve(&format!("2001:db8::{i}"), "zed").unwrap());
        }
        assert!(t.reserve("2001:db8::77", "zed").is_err());
    }

    #[test]
    fn windows_limit_per_ip_and_per_account() {
        let t = LoginThrottle::new(Limits {
            per_ip: 4,
            per_account: 2,
            per_source: 100,
            ..limits()
        });
        let _ = t.reserve("1.1.1.1", "bob").unwrap();
        let _ = t.reserve("2.2.2.2", "bob").unwrap();
        assert!(
            t.reserve("3.3.3.3", "BOB").is_err(),
            "account limit spans IPs"
        );
        let _ = t.reserve("1.1.1.1", "alice").unwrap();
        let _ = t.reserve("1.1.1.1", "carol").unwrap();
        let _ = t.reserve("1.1.1.1", "dave").unwrap();
        assert!(t.reserve("1.1.1.1", "erin").is_err(), "ip limit");
    }

    #[test]
    fn success_releases_its_own_attempt_only() {
        let t = LoginThrottle::new(Limits {
            per_account: 3,
            ..limits()
        });
        let attacker = t.reserve("9.9.9.9", "zed").unwrap();
        let _ = t.reserve("9.9.9.8", "zed").unwrap();
        let mine = t.reserve("1.2.3.4", "zed").unwrap();
        assert!(
            t.reserve("1.2.3.4", "zed").is_err(),
            "in-flight attempts count"
        );
        t.succeed(mine);
        t.fail(attacker);
        assert!(t.reserve("1.2.3.4", "zed").is_ok());
        assert!(
            t.reserve("1.2.3.4", "zed").is_err(),
            "others' failures stay"
        );
    }

    #[test]
    fn parallel_reservations_never_exceed_the_source_limit() {
        let t = std::sync::Arc::new(LoginThrottle::new(Limits {
            per_source: 5,
            ..limits()
        }));
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
