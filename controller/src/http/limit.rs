//! Connection slots: a total and a per-client-address cap, taken at accept time and held
//! by the socket itself, so an upgraded WebSocket keeps its slot until it closes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Every slot is taken.
    #[error("connection limit reached")]
    Total,
    /// This client address holds its share already.
    #[error("per-address connection limit reached")]
    PerAddress,
}

/// The client a slot is counted against: an IPv4 address, or an IPv6 /64 (one
/// subscriber usually owns a whole /64, so counting single addresses would not bind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ClientKey {
    V4([u8; 4]),
    V6Prefix(u64),
}

impl From<IpAddr> for ClientKey {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(a) => Self::V4(a.octets()),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => Self::V4(v4.octets()),
                None => Self::V6Prefix((u128::from(a) >> 64) as u64),
            },
        }
    }
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_client: HashMap<ClientKey, usize>,
}

/// Hands out connection slots.
pub struct ConnLimiter {
    max_total: usize,
    /// 0 = no per-address limit.
    max_per_client: usize,
    counts: Mutex<Counts>,
}

/// One taken slot; dropping it gives the slot back.
pub struct Slot {
    limiter: Arc<ConnLimiter>,
    key: ClientKey,
}

impl ConnLimiter {
    /// `max_per_client` 0 disables the per-address cap.
    pub fn new(max_total: usize, max_per_client: usize) -> Arc<Self> {
        Arc::new(Self {
            max_total,
            max_per_client,
            counts: Mutex::new(Counts::default()),
        })
    }

    /// Takes a slot for a connection from `ip`, or says why not.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refused> {
        let key = ClientKey::from(ip);
        let mut c = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if c.total >= self.max_total {
            return Err(Refused::Total);
        }
        let mine = c.per_client.get(&key).copied().unwrap_or(0);
        if self.max_per_client > 0 && mine >= self.max_per_client {
            return Err(Refused::PerAddress);
        }
        c.total += 1;
        c.per_client.insert(key, mine + 1);
        Ok(Slot {
            limiter: self.clone(),
            key,
        })
    }

    /// Open connections right now.
    pub fn open(&self) -> usize {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .total
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self
            .limiter
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_client.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                c.per_client.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::net::Ipv6Addr;

    fn v6(s: &str) -> IpAddr {
        IpAddr::V6(s.parse::<Ipv6Addr>().unwrap())
    }

    #[test]
    fn total_and_per_address_caps_and_release() {
        let l = ConnLimiter::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = l.try_acquire(a).unwrap();
        let _a2 = l.try_acquire(a).unwrap();
        assert_eq!(l.try_acquire(a).err(), Some(Refused::PerAddress));
        let _b1 = l.try_acquire(b).unwrap();
        assert_eq!(l.try_acquire(b).err(), Some(Refused::Total));
        drop(a1);
        assert_eq!(l.open(), 2);
        let _a3 = l.try_acquire(a).unwrap();
        assert_eq!(l.open(), 3);
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_v4_as_v4() {
        let l = ConnLimiter::new(100, 1);
        let _x = l.try_acquire(v6("2001:db8:1:2::1")).unwrap();
        assert_eq!(
            l.try_acquire(v6("2001:db8:1:2:ffff::9")).err(),
            Some(Refused::PerAddress),
            "same /64"
        );
        let _y = l.try_acquire(v6("2001:db8:1:3::1")).unwrap();
        let _z = l.try_acquire("192.0.2.7".parse().unwrap()).unwrap();
        assert_eq!(
            l.try_acquire(v6("::ffff:192.0.2.7")).err(),
            Some(Refused::PerAddress)
        );
    }

    #[test]
    fn zero_per_address_means_unlimited() {
        let l = ConnLimiter::new(5, 0);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let slots: Vec<_> = (0..5).map(|_| l.try_acquire(ip).unwrap()).collect();
        assert_eq!(l.try_acquire(ip).err(), Some(Refused::Total));
        drop(slots);
        assert_eq!(l.open(), 0);
    }
}
