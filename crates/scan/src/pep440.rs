//! PEP 440 version parsing and ordering (PyPI): epoch, release, pre
//! (a/b/rc and spellings alpha, beta, c, pre, preview), post, dev, local.

use std::cmp::Ordering;

/// Sort key: epoch, release, pre, post, dev.
type Key<'a> = (u64, &'a [u64], (i8, u8, u64), (i8, u64), (i8, u64));

/// A parsed PEP 440 version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    epoch: u64,
    release: Vec<u64>,
    pre: Option<(u8, u64)>,
    post: Option<u64>,
    dev: Option<u64>,
    local: Vec<String>,
}

/// Longest version string accepted: 128 bytes (bounds hostile lockfiles).
pub const MAX_VERSION_LEN: usize = 128;

impl Version {
    /// Parses a version; `None` when it is not PEP 440.
    pub fn parse(s: &str) -> Option<Version> {
        if s.len() > MAX_VERSION_LEN {
            return None;
        }
        let s = s.trim().to_ascii_lowercase();
        let s = s.strip_prefix('v').unwrap_or(&s);
        let (s, local) = match s.split_once('+') {
            Some((a, l)) => (a, l.split(['.', '-', '_']).map(str::to_string).collect()),
            None => (s, Vec::new()),
        };
        let (epoch, rest) = match s.split_once('!') {
            Some((e, r)) => (e.parse().ok()?, r),
            None => (0, s),
        };
        let b = rest.as_bytes();
        let mut i = 0;
        let mut release = Vec::new();
        loop {
            let (n, j) = number(b, i)?;
            release.push(n);
            i = j;
            if i < b.len() && b[i] == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
                i += 1;
            } else {
                break;
            }
        }
        let (mut pre, mut post, mut dev) = (None, None, None);
        while i < b.len() {
            if matches!(b[i], b'.' | b'-' | b'_') {
                i += 1;
            }
            let word_end = b[i..]
                .iter()
                .position(|c| !c.is_ascii_alphabetic())
                .map_or(b.len(), |p| i + p);
            let word = &rest[i..word_end];
            i = word_end;
            if i < b.len() && matches!(b[i], b'.' | b'-' | b'_') && !word.is_empty() {
                i += 1;
            }
            let (n, j) = number(b, i).unwrap_or((0, i));
            i = j;
            match word {
                "a" | "alpha" if pre.is_none() => pre = Some((0, n)),
                "b" | "beta" if pre.is_none() => pre = Some((1, n)),
                "rc" | "c" | "pre" | "preview" if pre.is_none() => pre = Some((2, n)),
                "post" | "rev" | "r" if post.is_none() => post = Some(n),
                // "1.0-1": implicit post release.
                "" if post.is_none() && j > word_end => post = Some(n),
                "dev" if dev.is_none() => dev = Some(n),
                _ => return None,
            }
        }
        while release.len() > 1 && release.last() == Some(&0) {
            release.pop();
        }
        Some(Version {
            epoch,
            release,
            pre,
            post,
            dev,
            local,
        })
    }

    /// Sort key per PEP 440: a dev release of a final version sorts before
    /// its pre-releases; a final release after them.
    fn key(&self) -> Key<'_> {
        let pre = match (self.pre, self.post, self.dev) {
            (None, None, Some(_)) => (-1, 0, 0),
            (None, _, _) => (1, 0, 0),
            (Some((k, n)), _, _) => (0, k, n),
        };
        let post = self.post.map_or((-1, 0), |n| (0, n));
        let dev = self.dev.map_or((1, 0), |n| (0, n));
        (self.epoch, &self.release, pre, post, dev)
    }
}

fn number(b: &[u8], i: usize) -> Option<(u64, usize)> {
    let end = b[i..]
        .iter()
        .position(|c| !c.is_ascii_digit())
        .map_or(b.len(), |p| i + p);
    if end == i || end - i > 18 {
        return None;
    }
    std::str::from_utf8(&b[i..end])
        .ok()?
        .parse()
        .ok()
        .map(|n| (n, end))
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key()).then_with(|| {
            // Local segments: numeric beats alphanumeric; longer wins ties.
            for (a, b) in self.local.iter().zip(&other.local) {
                let o = match (a.parse::<u64>(), b.parse::<u64>()) {
                    (Ok(x), Ok(y)) => x.cmp(&y),
                    (Ok(_), Err(_)) => Ordering::Greater,
                    (Err(_), Ok(_)) => Ordering::Less,
                    (Err(_), Err(_)) => a.cmp(b),
                };
                if o != Ordering::Equal {
                    return o;
                }
            }
            self.local.len().cmp(&other.local.len())
        })
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordering_follows_pep440() {
        let order = [
            "1.0.dev0",
            "1.0a1",
            "1.0a2.dev1",
            "1.0a2",
            "1.0b1",
            "1.0rc1",
            "1.0",
            "1.0+local",
            "1.0.post1.dev0",
            "1.0.post1",
            "1.1",
            "2.0",
            "1!0.1",
        ];
        for w in order.windows(2) {
            let (a, b) = (Version::parse(w[0]).unwrap(), Version::parse(w[1]).unwrap());
            assert!(a < b, "{} < {}", w[0], w[1]);
        }
        assert_eq!(Version::parse("1.0.0"), Version::parse("1.0"));
        assert_eq!(Version::parse("1.0-ALPHA-1"), Version::parse("1.0a1"));
        assert_eq!(Version::parse("1.0-1"), Version::parse("1.0.post1"));
        assert!(Version::parse("2.10") > Version::parse("2.9"));
        for bad in ["", "abc", "1.0foo", "1..0", "1.0a1a2"] {
            assert!(Version::parse(bad).is_none(), "{bad}");
        }
    }
}
