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
//!
//! The cache also holds, per transformed value, which required literals of
//! the whole rule set occur in it (one aho-corasick pass, see
//! [`Prefilter`]): an operator none of whose required literals occur cannot
//! match, so its regex is not run.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use aho_corasick::AhoCorasick;

use crate::ruleset::TNode;

/// A multiplicative hasher for the cache's integer keys. The keys are
/// (collection, index, chain node) numbers the engine assigns, not request
/// bytes, so SipHash's flooding resistance buys nothing here.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// Largest required-literal set of one operator the prefilter takes; bigger
/// sets (long `@pm` lists) are left to the operator itself, which is an
/// automaton already. Default 512.
pub const MAX_RULE_LITERALS: usize = 512;

/// The required literals of every operator of a rule set, in one automaton
/// (ASCII case-insensitive) and one for case-sensitive literals.
#[derive(Debug)]
pub(crate) struct Prefilter {
    ci: Option<AhoCorasick>,
    cs: Option<AhoCorasick>,
    /// Literal id of the first case-sensitive pattern.
    cs_offset: u32,
    /// `u64` words per bit set.
    pub(crate) words: usize,
}

impl Prefilter {
    /// Builds the automata; literal ids are `0..ci.len()` then the
    /// case-sensitive ones.
    pub(crate) fn new(ci: &[Vec<u8>], cs: &[Vec<u8>]) -> Option<Prefilter> {
        let total = ci.len() + cs.len();
        if total == 0 {
            return None;
        }
        let build = |lits: &[Vec<u8>], fold: bool| -> Option<AhoCorasick> {
            if lits.is_empty() {
                return None;
            }
            AhoCorasick::builder()
                .ascii_case_insensitive(fold)
                .build(lits)
                .ok()
        };
        let ci_ac = build(ci, true);
        let cs_ac = build(cs, false);
        // A literal set that failed to build disables the prefilter rather
        // than making rules unmatchable.
        if (!ci.is_empty() && ci_ac.is_none()) || (!cs.is_empty() && cs_ac.is_none()) {
            return None;
        }
        Some(Prefilter {
            ci: ci_ac,
            cs: cs_ac,
            cs_offset: ci.len() as u32,
            words: total.div_ceil(64),
        })
    }

    /// Sets the bit of every literal occurring in `input`.
    fn scan(&self, input: &[u8], out: &mut [u64]) {
        let mut set = |id: u32| {
            let id = id as usize;
            out[id / 64] |= 1 << (id % 64);
        };
        if let Some(ac) = &self.ci {
            for m in ac.find_overlapping_iter(input) {
                set(m.pattern().as_u32());
            }
        }
        if let Some(ac) = &self.cs {
            for m in ac.find_overlapping_iter(input) {
                set(self.cs_offset + m.pattern().as_u32());
            }
        }
    }
}

/// The bytes a slot stands for.
fn bytes<'a>(arena: &'a [Vec<u8>], input: &'a [u8], slot: Slot) -> &'a [u8] {
    match slot {
        Slot::Input => input,
        Slot::Owned(s) => &arena[s as usize],
    }
}

/// Marks a case-sensitive literal id in a rule's list (the bit index is
/// `cs_offset + id` once the automata are built).
pub(crate) const CASE_SENSITIVE: u32 = 1 << 31;

impl Prefilter {
    /// Whether any literal of `ids` (case-sensitive ones tagged with
    /// [`CASE_SENSITIVE`]) is set in `bits`.
    pub(crate) fn any(&self, bits: &[u64], ids: &[u32]) -> bool {
        ids.iter().any(|&id| {
            let id = if id & CASE_SENSITIVE != 0 {
                (self.cs_offset + (id & !CASE_SENSITIVE)) as usize
            } else {
                id as usize
            };
            bits.get(id / 64).is_some_and(|w| w & (1 << (id % 64)) != 0)
        })
    }
}

/// Most literal bit sets kept per transaction (each is one bit per literal
/// of the rule set, about 400 bytes for CRS). Bounds memory for requests
/// with thousands of arguments; beyond it operators run unfiltered.
/// Default 8192.
pub const MAX_LITERAL_SETS: usize = 8192;

/// Most cached transformation results per transaction; beyond it results
/// are computed without caching. Bounds memory for requests with huge
/// numbers of arguments. Default 65 536.
pub const MAX_CACHE_ENTRIES: usize = 65_536;

#[derive(Clone, Copy, Debug)]
enum Slot {
    /// The untransformed value (every step so far changed nothing), so a
    /// hit is always a single probe.
    Input,
    /// Bytes in the arena.
    Owned(u32),
}

/// The cache.
#[derive(Debug, Default)]
pub(crate) struct TCache {
    map: IdMap<(u64, u32), Slot>,
    arena: Vec<Vec<u8>>,
    used: usize,
    /// (value, chain node) → offset of its literal bit set in `bits`.
    lits: IdMap<(u64, u32), usize>,
    bits: Vec<u64>,
}

impl TCache {
    /// Forgets every result (keeps the buffers).
    pub(crate) fn clear(&mut self) {
        self.map.clear();
        self.used = 0;
        self.lits.clear();
        self.bits.clear();
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
        // Longest cached prefix (usually the whole chain: one probe).
        let mut done = chain.len();
        let mut slot = Slot::Input;
        while done > 0 {
            if let Some(&s) = self.map.get(&(src, chain[done - 1])) {
                slot = s;
                break;
            }
            done -= 1;
        }
        if done < chain.len() && self.map.len() + chain.len() > MAX_CACHE_ENTRIES {
            return None;
        }
        for &node in &chain[done..] {
            if let Some(t) = nodes[node as usize].transformation {
                let next = {
                    let cur = bytes(&self.arena, input, slot);
                    match (t.apply)(cur) {
                        std::borrow::Cow::Borrowed(b) if b.len() == cur.len() => None,
                        std::borrow::Cow::Borrowed(b) => Some(b.to_vec()),
                        std::borrow::Cow::Owned(v) => Some(v),
                    }
                };
                if let Some(v) = next {
                    slot = Slot::Owned(self.store_owned(v));
                }
            }
            self.map.insert((src, node), slot);
        }
        Some(bytes(&self.arena, input, slot))
    }

    /// Like [`TCache::apply`], also returning which literals of `pf` occur in
    /// the result (computed once per value and chain).
    pub(crate) fn apply_with_literals<'a>(
        &'a mut self,
        nodes: &[TNode],
        pf: &Prefilter,
        src: u64,
        input: &'a [u8],
        chain: &[u32],
    ) -> Option<(&'a [u8], Option<&'a [u64]>)> {
        self.apply(nodes, src, input, chain)?;
        let node = chain.last().copied().unwrap_or(0);
        let slot = match chain.last() {
            Some(&last) => self.map.get(&(src, last)).copied().unwrap_or(Slot::Input),
            None => Slot::Input,
        };
        let value = bytes(&self.arena, input, slot);
        let offset = match self.lits.get(&(src, node)) {
            Some(&o) => o,
            None if self.lits.len() >= MAX_LITERAL_SETS => return Some((value, None)),
            None => {
                let o = self.bits.len();
                self.bits.resize(o + pf.words, 0);
                pf.scan(value, &mut self.bits[o..]);
                self.lits.insert((src, node), o);
                o
            }
        };
        Some((value, Some(&self.bits[offset..offset + pf.words])))
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

    #[test]
    fn cached_chains_agree_with_uncached() {
        let names = [
            "lowercase",
            "urlDecodeUni",
            "compressWhitespace",
            "trim",
            "removeNulls",
        ];
        let tfs: Vec<Transformation> = names
            .iter()
            .map(|n| crate::transformations::lookup(n).unwrap())
            .collect();
        // Prefix tree over every chain of length 1..=3 of the five.
        let mut nodes = vec![TNode {
            transformation: None,
        }];
        let mut index = HashMap::new();
        let mut chains = Vec::new();
        for a in 0..5 {
            for b in 0..=5 {
                for c in 0..=5 {
                    let chain: Vec<usize> = [a, b, c].into_iter().filter(|&i| i < 5).collect();
                    let mut node = 0u32;
                    let mut ids = Vec::new();
                    for &t in &chain {
                        node = *index.entry((node, t)).or_insert_with(|| {
                            nodes.push(TNode {
                                transformation: Some(tfs[t]),
                            });
                            (nodes.len() - 1) as u32
                        });
                        ids.push(node);
                    }
                    chains.push((chain, ids));
                }
            }
        }
        let inputs: [&[u8]; 4] = [b"  Hello%20WORLD\0 ", b"plain", b"A%00B  c", b""];
        let mut cache = TCache::default();
        for (src, input) in inputs.iter().enumerate() {
            for (chain, ids) in &chains {
                let list: Vec<Transformation> = chain.iter().map(|&i| tfs[i]).collect();
                let expected = apply_uncached(&list, input).into_owned();
                let got = cache.apply(&nodes, src as u64, input, ids).unwrap();
                assert_eq!(got, expected.as_slice(), "{chain:?} on {input:?}");
            }
        }
    }
}
