//! Where the shield keeps state that must be exact and may be shared between
//! nodes: rate-limit TATs, bans and single-use challenge keys. [`MemoryStore`]
//! is the in-process implementation; a shared backend implements the same
//! trait.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::{Mutex, RwLock};

use crate::bounded::BoundedMap;
use crate::error::Error;
use crate::gcra::{self, Decision, Quota};
use crate::ipset::IpNet;

/// Default 100 000: rate-limit keys kept per shard (16 shards). Bounds memory
/// against floods of distinct client addresses or header values; the oldest
/// key is forgotten first (it then starts again with a full budget).
pub const MAX_RATE_KEYS_PER_SHARD: usize = 100_000;
/// Default 1 000 000: bans kept. Bounds memory against an attacker who makes
/// us ban a flood of distinct addresses; the oldest ban is dropped first.
pub const MAX_BANS: usize = 1_000_000;
/// Default 200 000: challenge keys remembered as used. Bounds memory against
/// a flood of solved challenges (each needs real work to produce).
pub const MAX_CLAIMED_KEYS: usize = 200_000;
/// Fixed 16: shards of the rate-limit table (lock contention).
const SHARDS: usize = 16;

/// One ban: a network refused until `expires_ms` (unix milliseconds).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Ban {
    /// The banned network (a single address, or an IPv6 /64 by default).
    pub net: IpNet,
    /// Why (shown in `palisade ban list` and the log).
    pub reason: String,
    /// The jail that banned it, or `manual`.
    pub jail: String,
    /// When it was created (unix ms).
    pub created_ms: u64,
    /// When it ends (unix ms); `None`: until deleted.
    pub expires_ms: Option<u64>,
    /// How many times this network was banned by a jail (escalation).
    pub offences: u32,
}

impl Ban {
    /// True while the ban is in force at `now_ms`.
    pub fn active(&self, now_ms: u64) -> bool {
        self.expires_ms.is_none_or(|e| now_ms < e)
    }
}

/// Storage for exact, possibly shared, shield state.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Atomically checks a GCRA quota for `key` at `now_us` and records the
    /// request when it is allowed.
    fn rate(&self, key: &str, quota: Quota, now_us: u64) -> Result<Decision, Error>;
    /// Adds or replaces the ban of `ban.net`.
    fn ban(&self, ban: Ban) -> Result<(), Error>;
    /// Removes the ban of exactly `net`; true when there was one.
    fn unban(&self, net: IpNet) -> Result<bool, Error>;
    /// The active ban covering `ip`, if any.
    fn banned(&self, ip: IpAddr, now_ms: u64) -> Result<Option<Ban>, Error>;
    /// Every active ban.
    fn bans(&self, now_ms: u64) -> Result<Vec<Ban>, Error>;
    /// Marks `key` used until `until_ms`; false when it already was (the
    /// compare-and-set that makes challenge answers single-use).
    fn claim(&self, key: &str, until_ms: u64, now_ms: u64) -> Result<bool, Error>;
}

#[derive(Debug)]
struct BanTable {
    map: BoundedMap<IpNet, Ban>,
    /// Prefix lengths present, per family: a lookup tries only these.
    v4: BTreeSet<u8>,
    v6: BTreeSet<u8>,
}

/// The in-process store: sharded maps behind mutexes, every table capped.
#[derive(Debug)]
pub struct MemoryStore {
    rates: [Mutex<BoundedMap<String, u64>>; SHARDS],
    bans: RwLock<BanTable>,
    claims: Mutex<BoundedMap<String, u64>>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::with_caps(MAX_RATE_KEYS_PER_SHARD, MAX_BANS, MAX_CLAIMED_KEYS)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl MemoryStore {
    /// A store with explicit capacities (tests use small ones).
    pub fn with_caps(rate_keys_per_shard: usize, bans: usize, claims: usize) -> MemoryStore {
        MemoryStore {
            rates: std::array::from_fn(|_| Mutex::new(BoundedMap::new(rate_keys_per_shard))),
            bans: RwLock::new(BanTable {
                map: BoundedMap::new(bans),
                v4: BTreeSet::new(),
                v6: BTreeSet::new(),
            }),
            claims: Mutex::new(BoundedMap::new(claims)),
        }
    }

    fn shard(&self, key: &str) -> &Mutex<BoundedMap<String, u64>> {
        // FNV-1a: cheap and good enough to spread keys over 16 locks.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in key.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        &self.rates[(h % SHARDS as u64) as usize]
    }

    /// Rate-limit keys currently tracked (all shards).
    pub fn rate_keys(&self) -> usize {
        self.rates.iter().map(|s| lock(s).len()).sum()
    }
}

impl Store for MemoryStore {
    fn rate(&self, key: &str, quota: Quota, now_us: u64) -> Result<Decision, Error> {
        let mut m = lock(self.shard(key));
        let tat = m.get(&key.to_string()).copied();
        let d = gcra::check(quota, tat, now_us);
        if d.allowed {
            m.insert(key.to_string(), d.new_tat);
        }
        Ok(d)
    }

    fn ban(&self, ban: Ban) -> Result<(), Error> {
        let mut t = match self.bans.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let p = ban.net.prefix();
        if ban.net.addr().is_ipv4() {
            t.v4.insert(p);
        } else {
            t.v6.insert(p);
        }
        t.map.insert(ban.net, ban);
        Ok(())
    }

    fn unban(&self, net: IpNet) -> Result<bool, Error> {
        let mut t = match self.bans.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        Ok(t.map.remove(&net).is_some())
    }

    fn banned(&self, ip: IpAddr, now_ms: u64) -> Result<Option<Ban>, Error> {
        let t = match self.bans.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if t.map.is_empty() {
            return Ok(None);
        }
        let ip = ip.to_canonical();
        let lens = if ip.is_ipv4() { &t.v4 } else { &t.v6 };
        // Most specific first.
        for p in lens.iter().rev() {
            if let Some(net) = IpNet::new(ip, *p) {
                if let Some(b) = t.map.get(&net) {
                    if b.active(now_ms) {
                        return Ok(Some(b.clone()));
                    }
                }
            }
        }
        Ok(None)
    }

    fn bans(&self, now_ms: u64) -> Result<Vec<Ban>, Error> {
        let mut t = match self.bans.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        t.map.retain(|_, b| b.active(now_ms));
        let mut v: Vec<Ban> = t.map.iter().map(|(_, b)| b.clone()).collect();
        v.sort_by(|a, b| a.created_ms.cmp(&b.created_ms).then(a.net.cmp(&b.net)));
        Ok(v)
    }

    fn claim(&self, key: &str, until_ms: u64, now_ms: u64) -> Result<bool, Error> {
        let mut m = lock(&self.claims);
        let k = key.to_string();
        if m.get(&k).is_some_and(|&u| now_ms < u) {
            return Ok(false);
        }
        m.insert(k, until_ms);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    fn ban(net: &str, exp: Option<u64>) -> Ban {
        Ban {
            net: net.parse().unwrap(),
            reason: "t".into(),
            jail: "manual".into(),
            created_ms: 0,
            expires_ms: exp,
            offences: 1,
        }
    }

    #[test]
    fn bans_cover_networks_and_expire() {
        let s = MemoryStore::default();
        s.ban(ban("2001:db8:1:2::/64", Some(1000))).unwrap();
        s.ban(ban("198.51.100.7", None)).unwrap();
        let ip = |x: &str| x.parse::<IpAddr>().unwrap();
        assert!(s.banned(ip("2001:db8:1:2::99"), 10).unwrap().is_some());
        assert!(s.banned(ip("2001:db8:1:3::99"), 10).unwrap().is_none());
        assert!(
            s.banned(ip("2001:db8:1:2::99"), 1000).unwrap().is_none(),
            "expired"
        );
        assert!(s.banned(ip("198.51.100.7"), 10).unwrap().is_some());
        assert!(s.banned(ip("::ffff:198.51.100.7"), 10).unwrap().is_some());
        assert_eq!(
            s.bans(2000).unwrap().len(),
            1,
            "expired bans are not listed"
        );
        assert!(s.unban("198.51.100.7".parse().unwrap()).unwrap());
        assert!(!s.unban("198.51.100.7".parse().unwrap()).unwrap());
        assert!(s.banned(ip("198.51.100.7"), 10).unwrap().is_none());
    }

    #[test]
    fn claims_are_single_use_until_expiry() {
        let s = MemoryStore::default();
        assert!(s.claim("a", 100, 0).unwrap());
        assert!(!s.claim("a", 100, 50).unwrap());
        assert!(s.claim("a", 300, 100).unwrap());
    }

    #[test]
    fn concurrent_rate_checks_are_exact() {
        // burst 100, ~no refill: 8 threads × 50 tries must get exactly 100.
        let s = Arc::new(MemoryStore::default());
        let q = Quota::new(1, Duration::from_secs(3600), 100);
        let allowed: usize = (0..8)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || {
                    (0..50)
                        .filter(|_| s.rate("k", q, 1_000_000).unwrap().allowed)
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
    fn rate_table_is_capped() {
        let s = MemoryStore::with_caps(10, 10, 10);
        let q = Quota::new(1, Duration::from_secs(1), 1);
        for i in 0..10_000 {
            s.rate(&format!("ip:{i}"), q, 0).unwrap();
        }
        assert!(s.rate_keys() <= 16 * 10);
    }
}
