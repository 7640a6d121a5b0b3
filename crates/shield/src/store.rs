//! Node-local GCRA state for the accept-time new-connection rate: it
//! protects this node's sockets, so it is never shared (and never waits on
//! a network store in the accept loop). Shared, exact state (request rate
//! limits, bans, single-use challenge keys) lives in `state::Store`.

use std::sync::Mutex;

use crate::bounded::BoundedMap;
use crate::gcra::{self, Decision, Quota};

/// Default 20 000: addresses tracked per shard (16 shards). Bounds memory
/// against floods of connections from distinct addresses; the oldest address
/// is forgotten first (it then starts again with a full budget).
pub const MAX_LOCAL_KEYS_PER_SHARD: usize = 20_000;
/// Fixed 16: shards of the table (lock contention at accept).
const SHARDS: usize = 16;

/// A capped, sharded map of GCRA states.
#[derive(Debug)]
pub struct LocalRates {
    shards: [Mutex<BoundedMap<std::net::IpAddr, u64>>; SHARDS],
}

impl Default for LocalRates {
    fn default() -> Self {
        LocalRates::with_cap(MAX_LOCAL_KEYS_PER_SHARD)
    }
}

impl LocalRates {
    /// A table holding at most `per_shard` keys per shard.
    pub fn with_cap(per_shard: usize) -> LocalRates {
        LocalRates {
            shards: std::array::from_fn(|_| Mutex::new(BoundedMap::new(per_shard))),
        }
    }

    fn shard(&self, ip: &std::net::IpAddr) -> &Mutex<BoundedMap<std::net::IpAddr, u64>> {
        let h = match ip {
            std::net::IpAddr::V4(v) => u64::from(u32::from(*v)),
            std::net::IpAddr::V6(v) => {
                let x = u128::from(*v);
                (x as u64) ^ ((x >> 64) as u64)
            }
        };
        &self.shards[(h.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 60) as usize % SHARDS]
    }

    /// Atomically checks `quota` for `ip` at `now_us`, counting the attempt
    /// when allowed.
    pub fn check(&self, ip: std::net::IpAddr, quota: Quota, now_us: u64) -> Decision {
        let mut m = match self.shard(&ip).lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let d = gcra::check(quota, m.get(&ip).copied(), now_us);
        if d.allowed {
            m.insert(ip, d.new_tat);
        }
        d
    }

    /// Addresses tracked (all shards).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| match s.lock() {
                Ok(g) => g.len(),
                Err(p) => p.into_inner().len(),
            })
            .sum()
    }

    /// True when nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn concurrent_checks_are_exact() {
        // burst 100, ~no refill: 8 threads x 50 tries get exactly 100.
        let s = Arc::new(LocalRates::default());
        let q = Quota::new(1, Duration::from_secs(3600), 100);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let allowed: usize = (0..8)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || {
                    (0..50)
                        .filter(|_| s.check(ip, q, 1_000_000).allowed)
                        .count()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .sum();
        assert_eq!(allowed, 100);
    }

    #[test]
    fn table_is_capped() {
        let s = LocalRates::with_cap(10);
        let q = Quota::new(1, Duration::from_secs(1), 1);
        for i in 0..10_000u32 {
            s.check(IpAddr::V4(i.into()), q, 0);
        }
        assert!(s.len() <= 16 * 10);
    }
}
