//! The node-local ban index every backend answers `ban_check` from.
//!
//! Checks run on every request, so they never leave the process: memory is
//! the ban table itself, SQLite loads its table here at start and writes
//! through, Redis fills it from a full sync and keeps it current through
//! pub/sub. A check is one atomic load when no ban exists, else a read lock
//! and one hash lookup per prefix length in use (typically `/32`, `/128`,
//! `/64`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use crate::error::{Error, Result};
use crate::types::{canonical, mask, Ban, IpPrefix, Micros};

/// Most bans held at once. Default 1,000,000 (≈ 200 MB worst case). Bounds
/// the attack where many distinct addresses (an IPv6 botnet has many /64s)
/// trip jails: past it, expired bans are purged and if none expired the new
/// ban is refused with [`Error::CapacityExceeded`] (existing bans stay).
pub const MAX_BANS: usize = 1_000_000;

#[derive(Debug)]
struct Index {
    map: HashMap<IpPrefix, Arc<Ban>>,
    /// How many bans use each prefix length, per family.
    v4_lens: [u32; 33],
    v6_lens: [u32; 129],
    /// Prefix lengths in use, most specific first.
    v4_active: Vec<u8>,
    v6_active: Vec<u8>,
    /// Sequence number of the last local change.
    seq: u64,
    /// Targets changed locally (added or removed) and the sequence number
    /// of the change, so a full resync built from an older snapshot does
    /// not undo them. Pruned at each resync.
    touched: HashMap<IpPrefix, u64>,
}

impl Default for Index {
    fn default() -> Self {
        Index {
            map: HashMap::new(),
            v4_lens: [0; 33],
            v6_lens: [0; 129],
            v4_active: Vec::new(),
            v6_active: Vec::new(),
            seq: 0,
            touched: HashMap::new(),
        }
    }
}

impl Index {
    fn count_len(&mut self, p: &IpPrefix, delta: i32) {
        let (counts, active): (&mut [u32], _) = if p.addr().is_ipv4() {
            (&mut self.v4_lens, &mut self.v4_active)
        } else {
            (&mut self.v6_lens, &mut self.v6_active)
        };
        let c = &mut counts[usize::from(p.prefix_len())];
        *c = c.saturating_add_signed(delta);
        active.clear();
        active.extend(
            (0..counts.len())
                .rev()
                .filter(|&l| counts[l] > 0)
                .map(|l| l as u8),
        );
    }

    fn touch(&mut self, target: IpPrefix) {
        self.seq += 1;
        let seq = self.seq;
        self.touched.insert(target, seq);
    }

    fn insert(&mut self, ban: Arc<Ban>) {
        let target = ban.target;
        if self.map.insert(target, ban).is_none() {
            self.count_len(&target, 1);
        }
    }

    fn remove(&mut self, target: &IpPrefix) -> bool {
        if self.map.remove(target).is_some() {
            self.count_len(target, -1);
            true
        } else {
            false
        }
    }
}

/// The node-local ban table.
#[derive(Debug, Default)]
pub(crate) struct BanCache {
    index: RwLock<Index>,
    len: AtomicUsize,
}

impl BanCache {
    /// The ban covering `ip` at `now`, most specific prefix first.
    pub(crate) fn check(&self, ip: IpAddr, now: Micros) -> Option<Arc<Ban>> {
        if self.len.load(Ordering::Acquire) == 0 {
            return None;
        }
        let ip = canonical(ip);
        let idx = self.index.read().unwrap_or_else(|e| e.into_inner());
        let lens = if ip.is_ipv4() {
            &idx.v4_active
        } else {
            &idx.v6_active
        };
        for &len in lens {
            let key = match IpPrefix::new(mask(ip, len), len) {
                Ok(k) => k,
                Err(_) => continue,
            };
            if let Some(b) = idx.map.get(&key) {
                if b.active_at(now) {
                    return Some(Arc::clone(b));
                }
            }
        }
        None
    }

    /// Adds or replaces a ban. Refuses past [`MAX_BANS`] after purging
    /// expired ones.
    pub(crate) fn insert(&self, ban: Ban, now: Micros) -> Result<()> {
        let mut idx = self.index.write().unwrap_or_else(|e| e.into_inner());
        if idx.map.len() >= MAX_BANS && !idx.map.contains_key(&ban.target) {
            purge_locked(&mut idx, now);
            if idx.map.len() >= MAX_BANS {
                return Err(Error::CapacityExceeded(format!(
                    "{MAX_BANS} active bans (MAX_BANS)"
                )));
            }
        }
        idx.touch(ban.target);
        idx.insert(Arc::new(ban));
        self.len.store(idx.map.len(), Ordering::Release);
        Ok(())
    }

    /// Removes the ban on exactly `target`; true when one existed.
    pub(crate) fn remove(&self, target: &IpPrefix) -> bool {
        let mut idx = self.index.write().unwrap_or_else(|e| e.into_inner());
        idx.touch(*target);
        let removed = idx.remove(target);
        self.len.store(idx.map.len(), Ordering::Release);
        removed
    }

    /// The ban on exactly `target`, if any (active or not).
    pub(crate) fn get(&self, target: &IpPrefix) -> Option<Arc<Ban>> {
        let idx = self.index.read().unwrap_or_else(|e| e.into_inner());
        idx.map.get(target).cloned()
    }

    /// A marker to take before reading a snapshot from the backend, for
    /// [`BanCache::replace_all_since`].
    pub(crate) fn seq(&self) -> u64 {
        self.index.read().unwrap_or_else(|e| e.into_inner()).seq
    }

    /// Replaces the whole table (a full resync from the shared backend).
    pub(crate) fn replace_all(&self, bans: impl IntoIterator<Item = Ban>) {
        self.replace_all_since(u64::MAX, bans);
    }

    /// Replaces the table with a snapshot read after [`BanCache::seq`]
    /// returned `since`, keeping local changes made after that point (the
    /// snapshot may predate them).
    pub(crate) fn replace_all_since(&self, since: u64, bans: impl IntoIterator<Item = Ban>) {
        let mut fresh = Index::default();
        for b in bans.into_iter().take(MAX_BANS) {
            fresh.insert(Arc::new(b));
        }
        let mut idx = self.index.write().unwrap_or_else(|e| e.into_inner());
        let newer: Vec<(IpPrefix, u64)> = idx
            .touched
            .iter()
            .filter(|(_, &s)| s > since)
            .map(|(t, s)| (*t, *s))
            .collect();
        for (t, _) in &newer {
            match idx.map.get(t) {
                Some(b) => fresh.insert(Arc::clone(b)),
                None => {
                    fresh.remove(t);
                }
            }
        }
        fresh.seq = idx.seq;
        fresh.touched = newer.into_iter().collect();
        *idx = fresh;
        self.len.store(idx.map.len(), Ordering::Release);
    }

    /// Active bans, sorted by target.
    pub(crate) fn list(&self, now: Micros) -> Vec<Ban> {
        let idx = self.index.read().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<Ban> = idx
            .map
            .values()
            .filter(|b| b.active_at(now))
            .map(|b| (**b).clone())
            .collect();
        v.sort_by_key(|b| b.target);
        v
    }

    /// Drops expired bans; returns how many.
    pub(crate) fn purge(&self, now: Micros) -> usize {
        let mut idx = self.index.write().unwrap_or_else(|e| e.into_inner());
        let n = purge_locked(&mut idx, now);
        self.len.store(idx.map.len(), Ordering::Release);
        n
    }

    /// Number of bans held (including expired ones not yet purged).
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }
}

fn purge_locked(idx: &mut Index, now: Micros) -> usize {
    let expired: Vec<IpPrefix> = idx
        .map
        .values()
        .filter(|b| !b.active_at(now))
        .map(|b| b.target)
        .collect();
    for t in &expired {
        idx.remove(t);
    }
    expired.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ban(target: &str, expires: Option<Micros>) -> Ban {
        Ban {
            target: target.parse().unwrap(),
            reason: "r".into(),
            jail: "j".into(),
            created_us: 0,
            expires_us: expires,
            offences: 1,
        }
    }

    #[test]
    fn prefix_bans_cover_their_network_only() {
        let c = BanCache::default();
        c.insert(ban("2001:db8:1:2::/64", None), 0).unwrap();
        c.insert(ban("10.0.0.0/8", Some(100)), 0).unwrap();
        assert!(c.check("2001:db8:1:2::99".parse().unwrap(), 0).is_some());
        assert!(c.check("2001:db8:1:3::1".parse().unwrap(), 0).is_none());
        assert!(c.check("10.9.8.7".parse().unwrap(), 50).is_some());
        assert!(c.check("::ffff:10.9.8.7".parse().unwrap(), 50).is_some());
        assert!(
            c.check("10.9.8.7".parse().unwrap(), 100).is_none(),
            "expired"
        );
        assert!(c.check("11.0.0.1".parse().unwrap(), 0).is_none());
        assert_eq!(c.purge(100), 1);
        assert!(c.remove(&"2001:db8:1:2::/64".parse().unwrap()));
        assert_eq!(c.len(), 0);
        assert!(c.check("2001:db8:1:2::99".parse().unwrap(), 0).is_none());
    }

    #[test]
    fn resync_from_an_older_snapshot_keeps_newer_local_changes() {
        let c = BanCache::default();
        c.insert(ban("192.0.2.1", None), 0).unwrap();
        let since = c.seq();
        // Snapshot read now holds 192.0.2.1 and 192.0.2.3; meanwhile this
        // node adds .2 and deletes .1.
        c.insert(ban("192.0.2.2", None), 0).unwrap();
        c.remove(&"192.0.2.1".parse().unwrap());
        c.replace_all_since(since, [ban("192.0.2.1", None), ban("192.0.2.3", None)]);
        assert!(
            c.check("192.0.2.1".parse().unwrap(), 0).is_none(),
            "local delete kept"
        );
        assert!(
            c.check("192.0.2.2".parse().unwrap(), 0).is_some(),
            "local add kept"
        );
        assert!(
            c.check("192.0.2.3".parse().unwrap(), 0).is_some(),
            "remote ban loaded"
        );
        // A later snapshot is authoritative again.
        let since = c.seq();
        c.replace_all_since(since, [ban("192.0.2.3", None)]);
        assert!(c.check("192.0.2.2".parse().unwrap(), 0).is_none());
        assert_eq!(c.len(), 1);
    }
}
