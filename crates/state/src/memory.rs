//! The in-memory backend: sharded hash tables with a hard entry cap.
//!
//! Each table is split into [`SHARDS`] mutex-protected shards so concurrent
//! requests on different keys rarely contend, while every operation on one
//! key runs under one lock (GCRA is exact under concurrency). Each shard
//! remembers insertion order; when it is full the oldest entries are evicted
//! (expired ones are naturally the oldest), so a flood of distinct client
//! addresses costs a bounded amount of memory and at worst resets the budgets
//! of the oldest keys.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::config::MemoryConfig;
use crate::error::Result;
use crate::gcra;
use crate::types::{check_key, check_value, dur_us, Micros, Quota, RateDecision};

/// Shards per table. Default 64: enough that 2–64 cores rarely hit the same
/// lock, small enough that the per-shard cap stays meaningful.
pub const SHARDS: usize = 64;

/// Default cap on entries per table (rate-limit states, counters, key/value
/// entries each). Default 262,144 (≈ 40 MB for rate limits at typical key
/// sizes). Bounds a flood of distinct client IPs or header values: past it the
/// oldest entries are evicted.
pub const DEFAULT_MAX_ENTRIES: usize = 262_144;

/// Default cap on distinct-value sets (one per jail key). Default 65,536;
/// each set holds at most [`MAX_DISTINCT_MEMBERS`] 8-byte members, so the
/// worst case is ≈ 40 MB.
pub const DEFAULT_MAX_DISTINCT_SETS: usize = 65_536;

/// Members remembered per distinct-value set (e.g. distinct 404 paths of one
/// client). Default 64: counting saturates there, so jail thresholds on
/// distinct values must be at most this. Bounds one scanner's memory.
pub const MAX_DISTINCT_MEMBERS: usize = 64;

const NEVER: Micros = u64::MAX;

struct Slot<V> {
    value: V,
    expires: Micros,
    gen: u64,
}

struct Shard<V> {
    map: HashMap<Box<str>, Slot<V>>,
    order: VecDeque<(Box<str>, u64)>,
    next_gen: u64,
}

/// What an update closure decides.
pub(crate) enum Update<V, R> {
    /// Leave the table as it is (existing values may have been changed in
    /// place).
    Keep(R),
    /// Store this value with this expiry (only meaningful for an absent key).
    Insert(V, Micros, R),
    /// Delete the entry.
    Remove(R),
}

/// One capped, sharded table.
pub(crate) struct Table<V> {
    shards: Box<[Mutex<Shard<V>>]>,
    per_shard: usize,
    hasher: RandomState,
    evictions: AtomicU64,
}

impl<V> Table<V> {
    pub(crate) fn new(max_entries: usize) -> Table<V> {
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    map: HashMap::new(),
                    order: VecDeque::new(),
                    next_gen: 0,
                })
            })
            .collect();
        Table {
            shards,
            per_shard: max_entries.div_ceil(SHARDS).max(1),
            hasher: RandomState::new(),
            evictions: AtomicU64::new(0),
        }
    }

    fn shard(&self, key: &str) -> &Mutex<Shard<V>> {
        let h = self.hasher.hash_one(key) as usize;
        &self.shards[h % SHARDS]
    }

    /// Runs `f` on the live entry for `key` (`None` when absent or expired)
    /// under the shard lock and applies its decision.
    pub(crate) fn update<R>(
        &self,
        key: &str,
        now: Micros,
        f: impl FnOnce(Option<(&mut V, &mut Micros)>) -> Update<V, R>,
    ) -> R {
        let mut guard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        let shard = &mut *guard;
        let live = match shard.map.get_mut(key) {
            Some(s) if s.expires > now => Some(s),
            _ => None,
        };
        let had_live = live.is_some();
        match f(live.map(|s| (&mut s.value, &mut s.expires))) {
            Update::Keep(r) => r,
            Update::Remove(r) => {
                shard.map.remove(key);
                r
            }
            Update::Insert(value, expires, r) => {
                if had_live {
                    if let Some(s) = shard.map.get_mut(key) {
                        s.value = value;
                        s.expires = expires;
                    }
                    return r;
                }
                shard.map.remove(key);
                while shard.map.len() >= self.per_shard {
                    match shard.order.pop_front() {
                        Some((k, gen)) => {
                            if shard.map.get(&k).is_some_and(|s| s.gen == gen) {
                                shard.map.remove(&k);
                                self.evictions.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        None => break,
                    }
                }
                let gen = shard.next_gen;
                shard.next_gen += 1;
                let k: Box<str> = key.into();
                shard.order.push_back((k.clone(), gen));
                shard.map.insert(
                    k,
                    Slot {
                        value,
                        expires,
                        gen,
                    },
                );
                // Deleted and replaced keys leave stale order records; compact
                // when they dominate so the queue stays O(entries).
                if shard.order.len() > 2 * shard.map.len() + 32 {
                    let map = &shard.map;
                    shard
                        .order
                        .retain(|(k, g)| map.get(k).is_some_and(|s| s.gen == *g));
                }
                r
            }
        }
    }

    /// Live keys starting with `prefix`, at most `limit`, unsorted.
    pub(crate) fn keys_with_prefix(&self, prefix: &str, now: Micros, limit: usize) -> Vec<String> {
        let mut out = Vec::new();
        for s in self.shards.iter() {
            let g = s.lock().unwrap_or_else(|e| e.into_inner());
            for (k, slot) in g.map.iter() {
                if out.len() >= limit {
                    return out;
                }
                if slot.expires > now && k.starts_with(prefix) {
                    out.push(k.to_string());
                }
            }
        }
        out
    }

    /// Removes `key` whatever its state.
    pub(crate) fn remove(&self, key: &str) {
        let mut g = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        g.map.remove(key);
    }

    /// Drops expired entries; returns how many.
    pub(crate) fn purge(&self, now: Micros) -> usize {
        let mut n = 0;
        for s in self.shards.iter() {
            let mut g = s.lock().unwrap_or_else(|e| e.into_inner());
            let before = g.map.len();
            g.map.retain(|_, s| s.expires > now);
            n += before - g.map.len();
            let shard = &mut *g;
            let map = &shard.map;
            shard
                .order
                .retain(|(k, gen)| map.get(k).is_some_and(|s| s.gen == *gen));
        }
        n
    }

    /// Entries held (including expired ones not yet purged).
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).map.len())
            .sum()
    }

    pub(crate) fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }
}

pub(crate) fn expiry(now: Micros, ttl: Option<Duration>) -> Micros {
    match ttl {
        Some(t) => now.saturating_add(dur_us(t).max(1)),
        None => NEVER,
    }
}

/// A stable 8-byte digest of a distinct-set member: the same on every node
/// (Redis sets store it too) and collision resistant enough that a scanner
/// cannot make distinct paths count as one.
pub(crate) fn member_digest(member: &[u8]) -> [u8; 8] {
    use sha1::Digest;
    let d = sha1::Sha1::digest(member);
    let mut out = [0u8; 8];
    out.copy_from_slice(&d[..8]);
    out
}

/// Counters, rate-limit states and key/value entries in process memory.
pub(crate) struct MemoryBackend {
    gcra: Table<Micros>,
    counters: Table<u64>,
    distinct: Table<Vec<[u8; 8]>>,
    kv: Table<Box<[u8]>>,
}

impl std::fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBackend").finish_non_exhaustive()
    }
}

impl MemoryBackend {
    pub(crate) fn new(cfg: &MemoryConfig) -> MemoryBackend {
        MemoryBackend {
            gcra: Table::new(cfg.max_entries),
            counters: Table::new(cfg.max_entries),
            distinct: Table::new(cfg.max_distinct_sets),
            kv: Table::new(cfg.max_entries),
        }
    }

    pub(crate) fn rate_limit(
        &self,
        key: &str,
        quota: &Quota,
        cost: u32,
        now: Micros,
    ) -> Result<RateDecision> {
        check_key(key)?;
        quota.validate(cost)?;
        Ok(self.gcra.update(key, now, |cur| match cur {
            Some((tat, exp)) => {
                let (d, new) = gcra::step(Some(*tat), quota, cost, now);
                if let Some(n) = new {
                    *tat = n;
                    *exp = n;
                }
                Update::Keep(d)
            }
            None => match gcra::step(None, quota, cost, now) {
                (d, Some(n)) => Update::Insert(n, n, d),
                (d, None) => Update::Keep(d),
            },
        }))
    }

    pub(crate) fn incr(&self, key: &str, window: Duration, now: Micros) -> Result<u64> {
        check_key(key)?;
        Ok(self.counters.update(key, now, |cur| match cur {
            Some((c, _)) => {
                *c = c.saturating_add(1);
                Update::Keep(*c)
            }
            None => Update::Insert(1, expiry(now, Some(window)), 1),
        }))
    }

    pub(crate) fn add_distinct(
        &self,
        key: &str,
        member: &[u8],
        window: Duration,
        now: Micros,
    ) -> Result<u64> {
        check_key(key)?;
        let m = member_digest(member);
        Ok(self.distinct.update(key, now, |cur| match cur {
            Some((set, _)) => {
                if set.len() < MAX_DISTINCT_MEMBERS && !set.contains(&m) {
                    set.push(m);
                }
                Update::Keep(set.len() as u64)
            }
            None => Update::Insert(vec![m], expiry(now, Some(window)), 1),
        }))
    }

    pub(crate) fn kv_get(&self, key: &str, now: Micros) -> Result<Option<Vec<u8>>> {
        check_key(key)?;
        Ok(self
            .kv
            .update(key, now, |cur| Update::Keep(cur.map(|(v, _)| v.to_vec()))))
    }

    pub(crate) fn kv_set(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
        only_if_absent: bool,
        now: Micros,
    ) -> Result<bool> {
        check_key(key)?;
        check_value(value)?;
        let exp = expiry(now, ttl);
        Ok(self.kv.update(key, now, |cur| match cur {
            Some(_) if only_if_absent => Update::Keep(false),
            Some((v, e)) => {
                *v = value.into();
                *e = exp;
                Update::Keep(true)
            }
            None => Update::Insert(value.into(), exp, true),
        }))
    }

    pub(crate) fn kv_delete(&self, key: &str, now: Micros) -> Result<bool> {
        check_key(key)?;
        Ok(self.kv.update(key, now, |cur| match cur {
            Some(_) => Update::Remove(true),
            None => Update::Keep(false),
        }))
    }

    pub(crate) fn kv_take(&self, key: &str, now: Micros) -> Result<Option<Vec<u8>>> {
        check_key(key)?;
        Ok(self.kv.update(key, now, |cur| match cur {
            Some((v, _)) => Update::Remove(Some(v.to_vec())),
            None => Update::Keep(None),
        }))
    }

    pub(crate) fn kv_compare_delete(
        &self,
        key: &str,
        expected: &[u8],
        now: Micros,
    ) -> Result<bool> {
        check_key(key)?;
        Ok(self.kv.update(key, now, |cur| match cur {
            Some((v, _)) if **v == *expected => Update::Remove(true),
            _ => Update::Keep(false),
        }))
    }

    pub(crate) fn kv_keys(&self, prefix: &str, limit: usize, now: Micros) -> Vec<String> {
        self.kv.keys_with_prefix(prefix, now, limit)
    }

    /// Forgets the rate-limit state, counter and distinct set under `key`.
    pub(crate) fn reset(&self, key: &str) {
        self.gcra.remove(key);
        self.counters.remove(key);
        self.distinct.remove(key);
    }

    pub(crate) fn purge(&self, now: Micros) -> usize {
        self.gcra.purge(now)
            + self.counters.purge(now)
            + self.distinct.purge(now)
            + self.kv.purge(now)
    }

    pub(crate) fn evictions(&self) -> u64 {
        self.gcra.evictions()
            + self.counters.evictions()
            + self.distinct.evictions()
            + self.kv.evictions()
    }

    pub(crate) fn entries(&self) -> usize {
        self.gcra.len() + self.counters.len() + self.distinct.len() + self.kv.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_capped_and_evicts_oldest() {
        let t: Table<u32> = Table::new(SHARDS * 4);
        for i in 0..10_000u32 {
            t.update(&format!("ip{i}"), 0, |_| Update::Insert(i, NEVER, ()));
        }
        assert!(t.len() <= SHARDS * 4, "len {}", t.len());
        assert!(t.evictions() >= 10_000 - (SHARDS as u64) * 4);
        // The newest key survives, the first one was evicted.
        assert_eq!(
            t.update("ip9999", 0, |c| Update::Keep(c.map(|(v, _)| *v))),
            Some(9999)
        );
        assert_eq!(
            t.update("ip0", 0, |c| Update::Keep(c.map(|(v, _)| *v))),
            None
        );
    }

    #[test]
    fn order_queue_stays_bounded_under_churn() {
        let t: Table<u32> = Table::new(SHARDS * 4);
        for round in 0..2_000u32 {
            t.update("k", 0, |_| Update::Insert(round, NEVER, ()));
            t.update("k", 0, |_| Update::<u32, ()>::Remove(()));
        }
        let total: usize = t.shards.iter().map(|s| s.lock().unwrap().order.len()).sum();
        assert!(total < 100, "order records {total}");
    }
}
