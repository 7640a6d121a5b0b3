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

use crate::plain::Features;
use crate::ruleset::TNode;
use crate::variables::data::{Data, Src, UnionSrc};

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

/// A set of bytes: bit `b % 64` of word `b / 64`.
pub(crate) type ByteSet = [u64; 4];

/// Whether two byte sets share a byte.
pub(crate) fn intersects(a: &ByteSet, b: &ByteSet) -> bool {
    (a[0] & b[0]) | (a[1] & b[1]) | (a[2] & b[2]) | (a[3] & b[3]) != 0
}

/// The bytes present in `input`.
fn byte_set(input: &[u8]) -> ByteSet {
    let mut set = [0u64; 4];
    for &b in input {
        set[usize::from(b >> 6)] |= 1 << (b & 63);
    }
    set
}

/// The required literals of every operator of a rule set, in one automaton
/// (ASCII case-insensitive) and one for case-sensitive literals.
#[derive(Debug)]
pub(crate) struct Prefilter {
    ci: Option<AhoCorasick>,
    cs: Option<AhoCorasick>,
    /// Number of literal ids (case-insensitive then case-sensitive).
    total: usize,
    /// Literal id of the first case-sensitive pattern.
    cs_offset: u32,
}

impl Prefilter {
    /// Builds the automata; literal ids are `0..ci.len()` then the
    /// case-sensitive ones. `None` when an automaton cannot be built (the
    /// engine then runs every operator).
    pub(crate) fn new(ci: &[Vec<u8>], cs: &[Vec<u8>]) -> Option<Prefilter> {
        let build = |lits: &[Vec<u8>], fold: bool| -> Option<AhoCorasick> {
            if lits.is_empty() {
                return None;
            }
            // A DFA: the set is fixed at load and scanned for every distinct
            // transformed value, so search speed beats build time and memory.
            AhoCorasick::builder()
                .ascii_case_insensitive(fold)
                .kind(Some(aho_corasick::AhoCorasickKind::DFA))
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
            total: ci.len() + cs.len(),
            cs_offset: ci.len() as u32,
        })
    }

    /// Appends the id of every literal occurring in `input` to `out`, each
    /// once, sorted (case-sensitive ones tagged with [`CASE_SENSITIVE`], as
    /// in rules' lists). `seen` is a scratch bit set, left all clear.
    fn scan(&self, input: &[u8], out: &mut Vec<u32>, seen: &mut Vec<u64>) {
        if seen.len() < self.total.div_ceil(64) {
            seen.resize(self.total.div_ceil(64), 0);
        }
        let start = out.len();
        let mut add = |bit: u32, id: u32| {
            let (w, m) = ((bit / 64) as usize, 1u64 << (bit % 64));
            if seen[w] & m == 0 {
                seen[w] |= m;
                out.push(id);
            }
        };
        if let Some(ac) = &self.ci {
            for m in ac.find_overlapping_iter(input) {
                let id = m.pattern().as_u32();
                add(id, id);
            }
        }
        if let Some(ac) = &self.cs {
            for m in ac.find_overlapping_iter(input) {
                let id = m.pattern().as_u32();
                add(self.cs_offset + id, id | CASE_SENSITIVE);
            }
        }
        for &id in &out[start..] {
            let bit = if id & CASE_SENSITIVE != 0 {
                self.cs_offset + (id & !CASE_SENSITIVE)
            } else {
                id
            };
            seen[(bit / 64) as usize] = 0;
        }
        out[start..].sort_unstable();
    }

    /// Whether an operator with required literals `lits` (sorted) and
    /// required bytes `bytes` can match a value whose scan is `found`.
    pub(crate) fn possible(
        found: &Found<'_>,
        lits: Option<&[u32]>,
        bytes: Option<&ByteSet>,
    ) -> bool {
        if let Some(b) = bytes {
            if !intersects(b, &found.bytes) {
                return false;
            }
        }
        match lits {
            Some(lits) => found
                .literals
                .iter()
                .any(|id| lits.binary_search(id).is_ok()),
            None => true,
        }
    }
}

/// The bytes a slot stands for.
fn bytes<'a>(arena: &'a [Owned], input: &'a [u8], slot: Slot) -> &'a [u8] {
    match slot {
        Slot::Input => input,
        Slot::Owned(s) => &arena[s as usize].bytes,
    }
}

/// Marks a case-sensitive literal id in a rule's list (the bit index is
/// `cs_offset + id` once the automata are built).
pub(crate) const CASE_SENSITIVE: u32 = 1 << 31;

/// Most distinct transformed values scanned for literals per transaction.
/// Bounds memory for requests with thousands of arguments; beyond it
/// operators run unfiltered. Default 8192.
pub const MAX_LITERAL_SETS: usize = 8192;

/// Most literal occurrences recorded per transaction (4 bytes each), over
/// all scanned values: bounds the memory a request full of rule keywords
/// can take. Beyond it operators run unfiltered. Default 262 144.
pub const MAX_FOUND_LITERALS: usize = 262_144;

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

/// What the prefilter found in one distinct transformed value.
#[derive(Clone, Copy, Debug)]
struct Scan {
    /// Range of its literal ids in [`TCache::found`].
    start: u32,
    len: u32,
    /// Bytes present.
    bytes: ByteSet,
}

/// A transformed value's prefilter facts.
#[derive(Debug)]
pub(crate) struct Found<'a> {
    /// Sorted ids of the rule set's literals occurring in it.
    pub(crate) literals: &'a [u32],
    /// Bytes present in it.
    pub(crate) bytes: ByteSet,
}

/// A transformed value the cache owns, with its scan once made.
#[derive(Debug, Default)]
struct Owned {
    bytes: Vec<u8>,
    scan: Option<Scan>,
}

/// One value's facts (see [`TCache::vals`]).
#[derive(Clone, Copy, Debug)]
struct Val {
    features: Features,
    scan: Option<Scan>,
    /// Arena slot of the lower-cased copy, once made.
    lower: Option<u32>,
}

/// Union keys of chains that leave every value of a collection unchanged
/// (resp. lower-case them): all such chains share one union.
const PLAIN_UNION: u32 = u32::MAX;
const PLAIN_LOWER_UNION: u32 = u32::MAX - 1;

/// Transformation results a new cache has room for before it grows
/// (a CRS benign GET stores ~400, a 2 KB JSON POST ~4,000): growing a hash
/// map from empty rehashes it a dozen times per transaction. Default 1024.
const INITIAL_ENTRIES: usize = 1024;

/// The cache.
#[derive(Debug)]
pub(crate) struct TCache {
    map: IdMap<(u64, u32), Slot>,
    arena: Vec<Owned>,
    used: usize,
    /// Per value identity: its index in `vals`.
    val_index: IdMap<u64, u32>,
    /// Per value: its plain-value features, the scan of its untransformed
    /// bytes (shared by every chain that leaves it unchanged) and its
    /// lower-cased copy.
    vals: Vec<Val>,
    /// Per collection (or scalar): the union of its values' features.
    coll_features: IdMap<u32, Features>,
    scans: usize,
    found: Vec<u32>,
    seen: Vec<u64>,
    /// Per (collection or scalar, chain node): the union of the scans of
    /// every value there, transformed by the chain.
    unions: IdMap<(u32, u32), Scan>,
    union_tmp: Vec<u32>,
}

impl Default for TCache {
    fn default() -> Self {
        TCache {
            map: IdMap::with_capacity_and_hasher(INITIAL_ENTRIES, Default::default()),
            arena: Vec::new(),
            used: 0,
            val_index: IdMap::with_capacity_and_hasher(INITIAL_ENTRIES / 8, Default::default()),
            vals: Vec::new(),
            coll_features: IdMap::default(),
            scans: 0,
            found: Vec::new(),
            seen: Vec::new(),
            unions: IdMap::default(),
            union_tmp: Vec::new(),
        }
    }
}

impl TCache {
    /// A cache without buffers (a placeholder; allocates nothing).
    pub(crate) fn empty() -> TCache {
        TCache {
            map: IdMap::default(),
            arena: Vec::new(),
            used: 0,
            val_index: IdMap::default(),
            vals: Vec::new(),
            coll_features: IdMap::default(),
            scans: 0,
            found: Vec::new(),
            seen: Vec::new(),
            unions: IdMap::default(),
            union_tmp: Vec::new(),
        }
    }

    /// Heap bytes held (approximately).
    pub(crate) fn retained_bytes(&self) -> usize {
        use std::mem::size_of;
        self.map.capacity() * (size_of::<((u64, u32), Slot)>() + 1)
            + self
                .arena
                .iter()
                .map(|o| o.bytes.capacity() + size_of::<Owned>())
                .sum::<usize>()
            + self.val_index.capacity() * (size_of::<(u64, u32)>() + 1)
            + self.vals.capacity() * size_of::<Val>()
            + self.coll_features.capacity() * (size_of::<(u32, Features)>() + 1)
            + (self.found.capacity() + self.union_tmp.capacity()) * 4
            + self.seen.capacity() * 8
            + self.unions.capacity() * (size_of::<((u32, u32), Scan)>() + 1)
    }

    /// Forgets every result (keeps the buffers).
    pub(crate) fn clear(&mut self) {
        self.map.clear();
        self.used = 0;
        self.val_index.clear();
        self.vals.clear();
        self.coll_features.clear();
        self.scans = 0;
        self.found.clear();
        self.unions.clear();
    }

    fn store_owned(&mut self, bytes: Vec<u8>) -> u32 {
        let owned = Owned { bytes, scan: None };
        if self.used < self.arena.len() {
            self.arena[self.used] = owned;
        } else {
            self.arena.push(owned);
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
        let slot = self.resolve(nodes, src, input, chain)?;
        Some(bytes(&self.arena, input, slot))
    }

    /// The value's index in `vals` (`None`: too many values).
    fn val(&mut self, src: u64, input: &[u8]) -> Option<u32> {
        if let Some(&i) = self.val_index.get(&src) {
            return Some(i);
        }
        if self.vals.len() >= MAX_CACHE_ENTRIES {
            return None;
        }
        let i = self.vals.len() as u32;
        self.vals.push(Val {
            features: Features::of(input),
            scan: None,
            lower: None,
        });
        self.val_index.insert(src, i);
        Some(i)
    }

    /// Applies the chain ending at `node` through its plain-value profile
    /// when the value is plain for it: no cache entry, no transformation.
    fn plain(&mut self, nodes: &[TNode], src: u64, input: &[u8], node: u32) -> Option<(Slot, u32)> {
        let profile = nodes[node as usize].plain?;
        let vi = self.val(src, input)?;
        let v = self.vals[vi as usize];
        if !profile.accepts(&v.features) {
            return None;
        }
        if !profile.lowers || !v.features.has_upper() {
            return Some((Slot::Input, vi));
        }
        let slot = match v.lower {
            Some(s) => s,
            None => {
                let s = self.store_owned(input.to_ascii_lowercase());
                self.vals[vi as usize].lower = Some(s);
                s
            }
        };
        Some((Slot::Owned(slot), vi))
    }

    fn resolve(&mut self, nodes: &[TNode], src: u64, input: &[u8], chain: &[u32]) -> Option<Slot> {
        let Some(&last) = chain.last() else {
            return Some(Slot::Input);
        };
        if let Some((slot, _)) = self.plain(nodes, src, input, last) {
            return Some(slot);
        }
        self.resolve_cached(nodes, src, input, chain)
    }

    /// [`TCache::resolve`] through the (value, chain node) map.
    fn resolve_cached(
        &mut self,
        nodes: &[TNode],
        src: u64,
        input: &[u8],
        chain: &[u32],
    ) -> Option<Slot> {
        if chain.is_empty() {
            return Some(Slot::Input);
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
        if done == chain.len() {
            return Some(slot);
        }
        if self.map.len() + chain.len() > MAX_CACHE_ENTRIES {
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
        Some(slot)
    }

    /// Like [`TCache::apply`], also returning which literals of `pf` and
    /// which bytes occur in the result (scanned once per distinct
    /// transformed value: chains that leave the value unchanged share the
    /// scan). `None` facts: too many scans this transaction.
    pub(crate) fn apply_filtered<'a>(
        &'a mut self,
        nodes: &[TNode],
        pf: &Prefilter,
        src: u64,
        input: &'a [u8],
        chain: &[u32],
    ) -> Option<(&'a [u8], Option<Found<'a>>)> {
        let (slot, vi) = match chain.last().and_then(|&n| self.plain(nodes, src, input, n)) {
            Some((slot, vi)) => (slot, Some(vi)),
            None => (self.resolve_cached(nodes, src, input, chain)?, None),
        };
        let vi = match (slot, vi) {
            (Slot::Input, None) => self.val(src, input),
            _ => vi,
        };
        let known = match slot {
            Slot::Input => vi.and_then(|i| self.vals[i as usize].scan),
            Slot::Owned(i) => self.arena[i as usize].scan,
        };
        let scan = match known {
            Some(s) => Some(s),
            None if self.scans >= MAX_LITERAL_SETS || self.found.len() >= MAX_FOUND_LITERALS => {
                None
            }
            None => {
                let value = bytes(&self.arena, input, slot);
                let start = self.found.len();
                pf.scan(value, &mut self.found, &mut self.seen);
                let s = Scan {
                    start: start as u32,
                    len: (self.found.len() - start) as u32,
                    bytes: byte_set(value),
                };
                self.scans += 1;
                match (slot, vi) {
                    (Slot::Input, Some(i)) => self.vals[i as usize].scan = Some(s),
                    (Slot::Input, None) => {}
                    (Slot::Owned(i), _) => self.arena[i as usize].scan = Some(s),
                }
                Some(s)
            }
        };
        let value = bytes(&self.arena, input, slot);
        let found = scan.map(|s| Found {
            literals: &self.found[s.start as usize..(s.start + s.len) as usize],
            bytes: s.bytes,
        });
        Some((value, found))
    }
}

impl TCache {
    /// The union of the features of every value of `src` (`None`: too
    /// many values).
    fn coll_features(&mut self, data: &Data, src: UnionSrc, key: u32) -> Option<Features> {
        if let Some(f) = self.coll_features.get(&key) {
            return Some(*f);
        }
        let mut all = Features::default();
        let mut add = |this: &mut TCache, id: Option<u64>, value: &[u8]| -> bool {
            match id.and_then(|id| this.val(id, value)) {
                Some(i) => {
                    let f = this.vals[i as usize].features;
                    for (w, x) in all.bytes.iter_mut().zip(f.bytes) {
                        *w |= x;
                    }
                    all.flags |= f.flags;
                    true
                }
                None => false,
            }
        };
        let complete = match src {
            UnionSrc::Coll(coll, name) => {
                data.coll(coll)
                    .entries
                    .iter()
                    .enumerate()
                    .all(|(idx, (k, v))| {
                        let id = Src::Entry {
                            coll,
                            idx: idx as u32,
                            name,
                        }
                        .cache_id();
                        add(self, id, if name { k } else { v })
                    })
            }
            UnionSrc::Scalar(v) => add(
                self,
                Src::Scalar(v).cache_id(),
                data.scalar(v).unwrap_or_default(),
            ),
        };
        if !complete {
            return None;
        }
        self.coll_features.insert(key, all);
        Some(all)
    }

    /// What the prefilter finds over every value of `src` transformed by
    /// `chain` (literals: the union, sorted; bytes: the union): an operator
    /// impossible on this is impossible on each of those values, so a rule
    /// over them can be skipped without selecting them one by one. `None`
    /// when some value could not be scanned (limits).
    pub(crate) fn union_found(
        &mut self,
        nodes: &[TNode],
        pf: &Prefilter,
        data: &Data,
        src: UnionSrc,
        chain: &[u32],
    ) -> Option<Found<'_>> {
        let mut node = chain.last().copied().unwrap_or(0);
        let key = match src {
            UnionSrc::Coll(v, name) => (v as u32) | (u32::from(name) << 30),
            UnionSrc::Scalar(v) => (v as u32) | (1 << 31),
        };
        // Chains that leave every value there unchanged (or lower-case it)
        // share one union.
        if let Some(p) = nodes[node as usize].plain {
            if let Some(f) = self.coll_features(data, src, key) {
                if p.accepts(&f) {
                    node = if p.lowers {
                        PLAIN_LOWER_UNION
                    } else {
                        PLAIN_UNION
                    };
                }
            }
        }
        if let Some(s) = self.unions.get(&(key, node)).copied() {
            return Some(Found {
                literals: &self.found[s.start as usize..(s.start + s.len) as usize],
                bytes: s.bytes,
            });
        }
        let mut tmp = std::mem::take(&mut self.union_tmp);
        tmp.clear();
        let mut bytes = [0u64; 4];
        let mut add = |this: &mut TCache, id: u64, value: &[u8]| -> bool {
            match this.apply_filtered(nodes, pf, id, value, chain) {
                Some((_, Some(f))) => {
                    tmp.extend_from_slice(f.literals);
                    for (w, x) in bytes.iter_mut().zip(f.bytes) {
                        *w |= x;
                    }
                    true
                }
                _ => false,
            }
        };
        let complete = match src {
            UnionSrc::Coll(coll, name) => {
                data.coll(coll)
                    .entries
                    .iter()
                    .enumerate()
                    .all(|(idx, (k, v))| {
                        let id = Src::Entry {
                            coll,
                            idx: idx as u32,
                            name,
                        }
                        .cache_id();
                        let value = if name { k } else { v };
                        id.is_some_and(|id| add(self, id, value))
                    })
            }
            UnionSrc::Scalar(v) => Src::Scalar(v)
                .cache_id()
                .is_some_and(|id| add(self, id, data.scalar(v).unwrap_or_default())),
        };
        if !complete || self.found.len() + tmp.len() > MAX_FOUND_LITERALS {
            self.union_tmp = tmp;
            return None;
        }
        tmp.sort_unstable();
        tmp.dedup();
        let start = self.found.len();
        self.found.extend_from_slice(&tmp);
        self.union_tmp = tmp;
        let s = Scan {
            start: start as u32,
            len: (self.found.len() - start) as u32,
            bytes,
        };
        self.unions.insert((key, node), s);
        Some(Found {
            literals: &self.found[start..],
            bytes,
        })
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
                plain: None,
            },
            TNode {
                transformation: Some(Transformation {
                    name: "upper",
                    apply: upper,
                }),
                plain: None,
            },
            TNode {
                transformation: Some(Transformation {
                    name: "trimx",
                    apply: trim_x,
                }),
                plain: None,
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
        for plain in [false, true] {
            chains_agree(&tfs, plain);
        }
    }

    /// Every chain of length 1..=3 of `tfs`, through the cache (and the
    /// plain-value profiles when `plain`), equals running it.
    fn chains_agree(tfs: &[Transformation], plain: bool) {
        use crate::plain::Profile;
        let mut nodes = vec![TNode {
            transformation: None,
            plain: plain.then_some(Profile::IDENTITY),
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
                        let parent = nodes[node as usize].plain;
                        node = *index.entry((node, t)).or_insert_with(|| {
                            nodes.push(TNode {
                                transformation: Some(tfs[t]),
                                plain: parent.and_then(|p| p.then(&tfs[t])),
                            });
                            (nodes.len() - 1) as u32
                        });
                        ids.push(node);
                    }
                    chains.push((chain, ids));
                }
            }
        }
        let inputs: [&[u8]; 6] = [
            b"  Hello%20WORLD\0 ",
            b"plain",
            b"A%00B  c",
            b"",
            b"Hello World",
            b"Hello  World",
        ];
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
