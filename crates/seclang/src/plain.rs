//! Plain values: deciding without running them that a transformation chain
//! leaves a value unchanged (or only lower-cases it).
//!
//! Most benign request data (`hello world`, `en-US,en;q=0.5`, a session id)
//! holds no byte any CRS transformation acts on: no `%`, `&`, `\`, NUL,
//! comment marker or whitespace run. For such a value every link of a chain
//! like `t:urlDecodeUni,t:htmlEntityDecode,t:jsDecode,t:lowercase` is the
//! identity except `lowercase`, so the transformed text is either the value
//! itself or its one lower-cased copy, whatever the chain. The engine then
//! skips the per-(value, chain) cache entirely.
//!
//! Each transformation declares (in [`step`]) the bytes it may act on and
//! the byte patterns ([`Features::flags`]) it may act on; a chain's
//! [`Profile`] composes them at load time. A value's [`Features`] are
//! computed once per transaction. The declarations are checked against the
//! transformations themselves by exhaustive tests over short strings.

use crate::tcache::ByteSet;
use crate::transformations::Transformation;

/// Two adjacent C whitespace bytes.
pub(crate) const WS_RUN: u8 = 1;
/// A C whitespace byte first or last.
pub(crate) const EDGE_WS: u8 = 2;
/// A C whitespace byte followed by `/` or `(`.
pub(crate) const WS_SLASH: u8 = 4;
/// `--`.
pub(crate) const DASH2: u8 = 8;
/// `//`.
pub(crate) const SLASH2: u8 = 16;
/// `0x` or `0X`.
pub(crate) const HEX0X: u8 = 32;

/// The C whitespace bytes (`isspace`).
const C_SPACE: ByteSet = set(b" \t\n\x0b\x0c\r");

fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// What a value holds that transformations may act on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Features {
    /// Bytes present.
    pub(crate) bytes: ByteSet,
    /// Byte patterns present (`WS_RUN`, `EDGE_WS`, …).
    pub(crate) flags: u8,
}

impl Features {
    /// The bytes in one pass over `v`; the patterns only when the bytes
    /// they need are present (most values need no second pass).
    pub(crate) fn of(v: &[u8]) -> Features {
        let mut bytes = [0u64; 4];
        for &b in v {
            bytes[usize::from(b >> 6)] |= 1 << (b & 63);
        }
        let has = |set: &ByteSet| (0..4).any(|w| bytes[w] & set[w] != 0);
        let mut flags = 0u8;
        if has(&C_SPACE) {
            if let (Some(&f), Some(&l)) = (v.first(), v.last()) {
                if is_c_space(f) || is_c_space(l) {
                    flags |= EDGE_WS;
                }
            }
            for w in v.windows(2) {
                if is_c_space(w[0]) {
                    if is_c_space(w[1]) {
                        flags |= WS_RUN;
                    } else if w[1] == b'/' || w[1] == b'(' {
                        flags |= WS_SLASH;
                    }
                }
            }
        }
        if has(&set(b"-")) && memchr::memmem::find(v, b"--").is_some() {
            flags |= DASH2;
        }
        if has(&set(b"/")) && memchr::memmem::find(v, b"//").is_some() {
            flags |= SLASH2;
        }
        if has(&set(b"0"))
            && has(&set(b"xX"))
            && v.windows(2)
                .any(|w| w[0] == b'0' && (w[1] == b'x' || w[1] == b'X'))
        {
            flags |= HEX0X;
        }
        Features { bytes, flags }
    }

    /// Whether the value holds an ASCII upper-case letter.
    pub(crate) fn has_upper(&self) -> bool {
        // 'A'..='Z' are 65..=90: bits 1..=26 of word 1.
        self.bytes[1] & (((1u64 << 26) - 1) << 1) != 0
    }
}

/// How one transformation treats plain values: it returns its input
/// unchanged (or ASCII lower-cased when `lowers`) whenever the input holds
/// none of `acts_on` and none of the patterns `flags`.
#[derive(Clone, Copy, Debug)]
struct Step {
    acts_on: ByteSet,
    flags: u8,
    lowers: bool,
}

const fn set(bytes: &[u8]) -> ByteSet {
    let mut s = [0u64; 4];
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        s[(b >> 6) as usize] |= 1 << (b & 63);
        i += 1;
    }
    s
}

/// Every byte 0x80..=0xff and NUL.
const NON_ASCII_OR_NUL: ByteSet = [1, 0, u64::MAX, u64::MAX];

/// The plain-value behaviour of a transformation, by name; `None` when it
/// changes (nearly) every value (`length`, `md5`, `base64Decode`, …).
fn step(name: &str) -> Option<Step> {
    let (acts_on, flags, lowers) = match name {
        "urlDecode" | "urlDecodeUni" => (set(b"%+"), 0, false),
        "jsDecode" | "cssDecode" | "escapeSeqDecode" => (set(b"\\"), 0, false),
        "htmlEntityDecode" => (set(b"&"), 0, false),
        "utf8toUnicode" => (NON_ASCII_OR_NUL, 0, false),
        "removeNulls" | "replaceNulls" => (set(b"\0"), 0, false),
        "removeWhitespace" => (set(b" \t\n\x0b\x0c\r\xa0\xc2"), 0, false),
        "compressWhitespace" => (set(b"\t\n\x0b\x0c\r"), WS_RUN, false),
        "trim" | "trimLeft" | "trimRight" => ([0; 4], EDGE_WS, false),
        "cmdLine" => (set(b"\"'\\^,;\t\r\n"), WS_RUN | WS_SLASH, true),
        "replaceComments" => (set(b"*"), 0, false),
        "removeComments" | "removeCommentsChar" => (set(b"*#"), DASH2, false),
        "normalizePath" | "normalisePath" => (set(b"."), SLASH2, false),
        "normalizePathWin" | "normalisePathWin" => (set(b".\\"), SLASH2, false),
        "sqlHexDecode" => ([0; 4], HEX0X, false),
        "lowercase" => ([0; 4], 0, true),
        _ => return None,
    };
    Some(Step {
        acts_on,
        flags,
        lowers,
    })
}

/// What a whole chain does to plain values: a value whose bytes all lie in
/// `allowed` and which has none of the patterns `flags` comes out unchanged,
/// or ASCII lower-cased when `lowers`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Profile {
    allowed: ByteSet,
    flags: u8,
    /// Whether the result is the lower-cased value.
    pub(crate) lowers: bool,
}

impl Profile {
    /// The empty chain.
    pub(crate) const IDENTITY: Profile = Profile {
        allowed: [u64::MAX; 4],
        flags: 0,
        lowers: false,
    };

    /// The profile of this chain followed by `t`; `None` when `t` has no
    /// plain-value behaviour.
    pub(crate) fn then(self, t: &Transformation) -> Option<Profile> {
        let s = step(t.name)?;
        let mut allowed = [0u64; 4];
        for b in 0..=255u8 {
            let w = usize::from(b >> 6);
            if self.allowed[w] & (1 << (b & 63)) == 0 {
                continue;
            }
            // Earlier steps lower-cased the value: `t` sees the lower case.
            let seen = if self.lowers {
                b.to_ascii_lowercase()
            } else {
                b
            };
            if s.acts_on[usize::from(seen >> 6)] & (1 << (seen & 63)) == 0 {
                allowed[w] |= 1 << (b & 63);
            }
        }
        // The patterns hold no letters but `x`/`X` (both flagged), so they
        // are the same before and after lower-casing.
        Some(Profile {
            allowed,
            flags: self.flags | s.flags,
            lowers: self.lowers || s.lowers,
        })
    }

    /// Whether the chain leaves a value with features `f` unchanged (or
    /// only lower-cased, see [`Profile::lowers`]).
    pub(crate) fn accepts(&self, f: &Features) -> bool {
        f.flags & self.flags == 0 && (0..4).all(|w| f.bytes[w] & !self.allowed[w] == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transformations::{all, lookup};

    /// Bytes every declaration mentions, plus ordinary ones.
    const ALPHABET: &[u8] = b"%+\\&\0 \t\n\x0b\r\xa0\xc2\xe9\"'^,;/(*#-.0xXaZ<!>u";

    fn check(chain: &[Transformation], profile: &Profile, v: &[u8]) {
        let f = Features::of(v);
        if !profile.accepts(&f) {
            return;
        }
        let out = crate::transformations::apply_chain(chain, v);
        let expected = if profile.lowers {
            v.to_ascii_lowercase()
        } else {
            v.to_vec()
        };
        assert_eq!(
            &*out,
            expected.as_slice(),
            "{chain:?} on {v:?} (profile {profile:?})"
        );
    }

    fn strings(max: usize, mut each: impl FnMut(&[u8])) {
        let mut v = Vec::new();
        fn rec(v: &mut Vec<u8>, max: usize, each: &mut impl FnMut(&[u8])) {
            each(v);
            if v.len() == max {
                return;
            }
            for &b in ALPHABET {
                v.push(b);
                rec(v, max, each);
                v.pop();
            }
        }
        rec(&mut v, max, &mut each);
    }

    /// Longer values built from the alphabet (a fixed generator, so a
    /// failure reproduces).
    fn random_strings(mut each: impl FnMut(&[u8])) {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut v = Vec::new();
        for _ in 0..20_000 {
            v.clear();
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let len = (x >> 60) as usize;
            for _ in 0..len {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                v.push(ALPHABET[((x >> 33) % ALPHABET.len() as u64) as usize]);
            }
            each(&v);
        }
    }

    #[test]
    fn each_declared_transformation_is_identity_on_plain_values() {
        let declared: Vec<Transformation> = all()
            .iter()
            .copied()
            .filter(|t| step(t.name).is_some())
            .collect();
        assert!(declared.len() >= 20, "{declared:?}");
        for t in &declared {
            let p = Profile::IDENTITY.then(t).unwrap();
            strings(3, |v| check(std::slice::from_ref(t), &p, v));
            random_strings(|v| check(std::slice::from_ref(t), &p, v));
        }
    }

    #[test]
    fn chains_are_identity_on_plain_values() {
        // CRS chains, including steps after a lower-casing one.
        let chains: &[&[&str]] = &[
            &[
                "urlDecodeUni",
                "htmlEntityDecode",
                "jsDecode",
                "cssDecode",
                "removeNulls",
            ],
            &[
                "utf8toUnicode",
                "urlDecodeUni",
                "htmlEntityDecode",
                "jsDecode",
                "cssDecode",
            ],
            &["cmdLine", "normalizePath", "removeWhitespace"],
            &[
                "lowercase",
                "sqlHexDecode",
                "replaceComments",
                "compressWhitespace",
            ],
            &[
                "urlDecodeUni",
                "lowercase",
                "cmdLine",
                "trim",
                "removeCommentsChar",
            ],
            &[
                "normalizePathWin",
                "removeComments",
                "replaceNulls",
                "escapeSeqDecode",
            ],
        ];
        for names in chains {
            let chain: Vec<Transformation> = names.iter().map(|n| lookup(n).unwrap()).collect();
            let mut p = Profile::IDENTITY;
            for t in &chain {
                p = p.then(t).unwrap();
            }
            strings(3, |v| check(&chain, &p, v));
            random_strings(|v| check(&chain, &p, v));
        }
    }

    /// The patterns by their definitions, byte pair by byte pair.
    fn naive(v: &[u8]) -> Features {
        let mut f = Features::default();
        for &b in v {
            f.bytes[usize::from(b >> 6)] |= 1 << (b & 63);
        }
        for w in v.windows(2) {
            let (a, b) = (w[0], w[1]);
            let pairs = [
                (WS_RUN, is_c_space(a) && is_c_space(b)),
                (WS_SLASH, is_c_space(a) && (b == b'/' || b == b'(')),
                (DASH2, a == b'-' && b == b'-'),
                (SLASH2, a == b'/' && b == b'/'),
                (HEX0X, a == b'0' && (b == b'x' || b == b'X')),
            ];
            for (flag, hit) in pairs {
                if hit {
                    f.flags |= flag;
                }
            }
        }
        if v.first().is_some_and(|&b| is_c_space(b)) || v.last().is_some_and(|&b| is_c_space(b)) {
            f.flags |= EDGE_WS;
        }
        f
    }

    #[test]
    fn features_match_their_definitions() {
        strings(3, |v| assert_eq!(Features::of(v), naive(v), "{v:?}"));
        random_strings(|v| assert_eq!(Features::of(v), naive(v), "{v:?}"));
    }

    #[test]
    fn benign_values_are_plain_and_others_not() {
        let p = [
            "urlDecodeUni",
            "htmlEntityDecode",
            "lowercase",
            "compressWhitespace",
        ]
        .iter()
        .fold(Profile::IDENTITY, |p, n| {
            p.then(&lookup(n).unwrap()).unwrap()
        });
        assert!(p.lowers);
        for v in [&b"hello world"[..], b"en-US,en;q=0.5", b"Mozilla/5.0 (X11)"] {
            assert!(p.accepts(&Features::of(v)), "{v:?}");
        }
        for v in [&b"a%20b"[..], b"a&amp;b", b"a  b", b"a+b"] {
            assert!(!p.accepts(&Features::of(v)), "{v:?}");
        }
        assert!(Features::of(b"aB").has_upper());
        assert!(!Features::of(b"ab@[`{").has_upper());
        // No plain behaviour: the chain has no profile.
        assert!(Profile::IDENTITY.then(&lookup("md5").unwrap()).is_none());
    }
}
