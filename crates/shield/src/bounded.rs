//! A hash map with a hard capacity: when full, inserting a new key evicts the
//! oldest inserted one. Used for every per-client table, so a flood of
//! distinct addresses costs a bounded amount of memory.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// A capped map; eviction order is insertion order (oldest first).
#[derive(Debug)]
pub struct BoundedMap<K, V> {
    map: HashMap<K, (V, u64)>,
    order: VecDeque<(K, u64)>,
    cap: usize,
    next_gen: u64,
    evicted: u64,
}

impl<K: Hash + Eq + Clone, V> BoundedMap<K, V> {
    /// An empty map holding at most `cap` entries (at least 1).
    pub fn new(cap: usize) -> Self {
        BoundedMap {
            map: HashMap::new(),
            order: VecDeque::new(),
            cap: cap.max(1),
            next_gen: 0,
            evicted: 0,
        }
    }

    /// The value for `k`.
    pub fn get(&self, k: &K) -> Option<&V> {
        self.map.get(k).map(|(v, _)| v)
    }

    /// The value for `k`, mutable.
    pub fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        self.map.get_mut(k).map(|(v, _)| v)
    }

    /// The value for `k`, inserted with `make` (evicting the oldest entry
    /// when full) if absent.
    pub fn get_or_insert_with(&mut self, k: K, make: impl FnOnce() -> V) -> &mut V {
        if !self.map.contains_key(&k) {
            self.make_room();
            let g = self.next_gen;
            self.next_gen += 1;
            self.order.push_back((k.clone(), g));
        }
        let g = self.next_gen.wrapping_sub(1);
        &mut self.map.entry(k).or_insert_with(|| (make(), g)).0
    }

    /// Inserts or replaces.
    pub fn insert(&mut self, k: K, v: V) {
        if let Some((old, _)) = self.map.get_mut(&k) {
            *old = v;
            return;
        }
        self.make_room();
        let g = self.next_gen;
        self.next_gen += 1;
        self.order.push_back((k.clone(), g));
        self.map.insert(k, (v, g));
    }

    /// Removes `k`.
    pub fn remove(&mut self, k: &K) -> Option<V> {
        let r = self.map.remove(k).map(|(v, _)| v);
        self.compact();
        r
    }

    /// Keeps only the entries for which `f` is true.
    pub fn retain(&mut self, mut f: impl FnMut(&K, &mut V) -> bool) {
        self.map.retain(|k, (v, _)| f(k, v));
        self.compact();
    }

    /// Iterates over the entries (no particular order).
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.map.iter().map(|(k, (v, _))| (k, v))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Entries evicted so far because the map was full.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    fn make_room(&mut self) {
        while self.map.len() >= self.cap {
            let Some((k, g)) = self.order.pop_front() else {
                return;
            };
            // Stale queue entries (removed keys) are skipped.
            if self.map.get(&k).is_some_and(|(_, eg)| *eg == g) {
                self.map.remove(&k);
                self.evicted += 1;
            }
        }
    }

    /// Drops stale queue entries once they outnumber live ones, keeping the
    /// queue within twice the capacity.
    fn compact(&mut self) {
        if self.order.len() > 2 * self.map.len() + 16 {
            let map = &self.map;
            self.order
                .retain(|(k, g)| map.get(k).is_some_and(|(_, eg)| eg == g));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_oldest_when_full() {
        let mut m = BoundedMap::new(3);
        for i in 0..3 {
            *m.get_or_insert_with(i, || 0) += 1;
        }
        *m.get_or_insert_with(0, || 0) += 1; // update: no reordering
        m.get_or_insert_with(3, || 0);
        assert_eq!(m.len(), 3);
        assert!(m.get(&0).is_none(), "oldest inserted is evicted");
        assert!(m.get(&3).is_some());
        assert_eq!(m.evicted(), 1);
    }

    #[test]
    fn flood_of_distinct_keys_stays_bounded() {
        let mut m = BoundedMap::new(1000);
        for i in 0..100_000u32 {
            m.get_or_insert_with(i, || i);
            if i % 3 == 0 {
                m.remove(&i);
            }
        }
        assert!(m.len() <= 1000);
        assert!(m.order.len() <= 2 * 1000 + 16);
    }
}
