//! Per-transaction cache of transformation results.
//!
//! Keyed by (value identity, transformation-chain prefix node): rules that
//! share a chain prefix (CRS: `t:none,t:urlDecodeUni,…` on ARGS) reuse the
//! work of earlier rules. A step that changes nothing stores no bytes, and
//! the arena keeps its buffers across [`TCache::clear`] so a warmed-up
//! transaction allocates only for transformations that really rewrite data.
//!
//! Only values whose bytes cannot change while the cache is valid are
//! cached (request/response data, identified by collection and index); the
//! transaction clears the cache whenever it adds data.

use std::collections::HashMap;

use crate::ruleset::TNode;

/// Most cached transformation results per transaction; beyond it results
/// are computed without caching. Bounds memory for requests with huge
/// numbers of arguments. Default 65 536.
pub const MAX_CACHE_ENTRIES: usize = 65_536;

#[derive(Clone, Copy, Debug)]
enum Slot {
    /// Same bytes as the previous step of the chain.
    Same,
    /// Bytes in the arena.
    Owned(u32),
}

/// The cache.
#[derive(Debug, Default)]
pub(crate) struct TCache {
    map: HashMap<(u64, u32), Slot>,
    arena: Vec<Vec<u8>>,
    used: usize,
}

impl TCache {
    /// Forgets every result (keeps the buffers).
    pub(crate) fn clear(&mut self) {
        self.map.clear();
        self.used = 0;
    }

    fn store_owned(&mut self, bytes: Vec<u8>) -> u32 {
        if self.used < self.arena.len() {
            self.arena[self.used] = bytes;
        } else {
            self.arena.push(bytes);
        }
        self.used += 1;
        (self.used - 1) as u32
    }

    /// The result of step `step` of `chain` (`None` = the input itself).
    fn resolve<'a>(
        &'a self,
        src: u64,
        input: &'a [u8],
        chain: &[u32],
        step: Option<usize>,
    ) -> &'a [u8] {
        let mut step = step;
        while let Some(j) = step {
            match self.map.get(&(src, chain[j])) {
                Some(Slot::Owned(s)) => return &self.arena[*s as usize],
                Some(Slot::Same) => step = j.checked_sub(1),
                // Steps are inserted in order, so an earlier step is always
                // present when a later one is; fall back to the input.
                None => return input,
            }
        }
        input
    }

    /// Applies `chain` (prefix-tree nodes) to `input`, identified by `src`,
    /// reusing and filling the cache. Returns `None` when the cache is full
    /// (the caller then computes without it).
    pub(crate) fn apply<'a>(
        &'a mut self,
        nodes: &[TNode],
        src: u64,
        input: &'a [u8],
        chain: &[u32],
    ) -> Option<&'a [u8]> {
        if chain.is_empty() {
            return Some(input);
        }
        let mut done = chain.len();
        while done > 0 && !self.map.contains_key(&(src, chain[done - 1])) {
            done -= 1;
        }
        if done < chain.len() && self.map.len() + chain.len() > MAX_CACHE_ENTRIES {
            return None;
        }
        for j in done..chain.len() {
            let Some(t) = nodes[chain[j] as usize].transformation else {
                self.map.insert((src, chain[j]), Slot::Same);
                continue;
            };
            let slot = {
                let cur = self.resolve(src, input, chain, j.checked_sub(1));
                match (t.apply)(cur) {
                    std::borrow::Cow::Borrowed(b) if b.len() == cur.len() => None,
                    std::borrow::Cow::Borrowed(b) => Some(Err(b.to_vec())),
                    std::borrow::Cow::Owned(v) => Some(Ok(v)),
                }
            };
            let slot = match slot {
                None => Slot::Same,
                Some(Ok(v)) | Some(Err(v)) => Slot::Owned(self.store_owned(v)),
            };
            self.map.insert((src, chain[j]), slot);
        }
        Some(self.resolve(src, input, chain, Some(chain.len() - 1)))
    }
}

/// Applies `transformations` without the cache; `out` receives every
/// intermediate value that differs from the previous one when `all` is set
/// (multiMatch), else only the final value.
pub(crate) fn apply_uncached<'a>(
    transformations: &[crate::transformations::Transformation],
    input: &'a [u8],
) -> std::borrow::Cow<'a, [u8]> {
    use std::borrow::Cow;
    let mut cur: Cow<'a, [u8]> = Cow::Borrowed(input);
    for t in transformations {
        let next = match (t.apply)(&cur) {
            Cow::Borrowed(b) if b.len() == cur.len() => None,
            Cow::Borrowed(b) => Some(b.to_vec()),
            Cow::Owned(v) => Some(v),
        };
        if let Some(n) = next {
            cur = Cow::Owned(n);
        }
    }
    cur
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transformations::Transformation;
    use std::borrow::Cow;

    fn upper(i: &[u8]) -> Cow<'_, [u8]> {
        if i.iter().any(u8::is_ascii_lowercase) {
            Cow::Owned(i.to_ascii_uppercase())
        } else {
            Cow::Borrowed(i)
        }
    }
    fn trim_x(i: &[u8]) -> Cow<'_, [u8]> {
        Cow::Borrowed(i.strip_prefix(b"X").unwrap_or(i))
    }

    #[test]
    fn caches_prefixes_and_sub_slices() {
        let nodes = vec![
            TNode {
                transformation: None,
            },
            TNode {
                transformation: Some(Transformation {
                    name: "upper",
                    apply: upper,
                }),
            },
            TNode {
                transformation: Some(Transformation {
                    name: "trimx",
                    apply: trim_x,
                }),
            },
        ];
        let mut c = TCache::default();
        assert_eq!(c.apply(&nodes, 7, b"xab", &[1]).unwrap(), b"XAB");
        assert_eq!(c.apply(&nodes, 7, b"xab", &[1, 2]).unwrap(), b"AB");
        assert_eq!(c.map.len(), 2);
        // Identity with an unchanged value stores no bytes.
        assert_eq!(c.apply(&nodes, 8, b"AB", &[1, 2]).unwrap(), b"AB");
        assert_eq!(c.used, 2);
        c.clear();
        assert_eq!(c.apply(&nodes, 7, b"q", &[1]).unwrap(), b"Q");
    }
}
