//! `t:normalizePath` (alias `t:normalisePath`) — removes `./`, `../`
//! back-references and repeated slashes from a path.
//!
//! Example: `t:normalizePath` turns `/a/b/../c//./d` into `/a/c/d`.
//!
//! ModSecurity v3 behaviour (`normalize_path_inplace`), reproduced exactly:
//! - `//…/` collapses to one `/`; `/./` and a leading `./` are removed;
//!   `seg/../` removes `seg`.
//! - An absolute path never climbs above `/` (`/../../x` → `/x`).
//! - A relative path keeps back-references it cannot resolve
//!   (`../x` → `../x`, `a/../../x` → `../x`).
//! - A trailing `/` is kept only if the input had one; a path ending in `.`
//!   or `..` is resolved (`/a/b/..` → `/a`, `/a/.` → `/a`).
//! - Quirk: ModSecurity only looks at the last two bytes of a segment, so
//!   any segment ending in `..` is taken for a back-reference and removal
//!   starts three bytes before its end (`/a/b..` → `/a`, `/a.../b` → `/b`,
//!   `/...` → empty).
//! - Only `/` is a separator (see `t:normalizePathWin` for `\`). No
//!   URL decoding is done.

use std::borrow::Cow;

/// Applies `t:normalizePath`.
pub(crate) fn normalize_path(input: &[u8]) -> Cow<'_, [u8]> {
    normalize(input, false)
}

/// Shared by `normalizePath` and `normalizePathWin`.
pub(crate) fn normalize(input: &[u8], win: bool) -> Cow<'_, [u8]> {
    if !may_change(input, win) {
        return Cow::Borrowed(input);
    }
    let out = normalize_slow(input, win);
    if out == input {
        Cow::Borrowed(input)
    } else {
        Cow::Owned(out)
    }
}

/// Without a `.`, a `//` or (Windows) a `\`, every byte is copied as is:
/// this avoids allocating for the common clean path.
fn may_change(input: &[u8], win: bool) -> bool {
    memchr::memchr(b'.', input).is_some()
        || memchr::memmem::find(input, b"//").is_some()
        || (win && memchr::memchr(b'\\', input).is_some())
}

/// The normalisation proper, on a copy (ModSecurity rewrites `\` to `/` in
/// its source buffer as it goes, and so do we).
fn normalize_slow(input: &[u8], win: bool) -> Vec<u8> {
    let mut buf = input.to_vec();
    let Some(end) = buf.len().checked_sub(1) else {
        return buf;
    };
    let is_sep = |b: u8| b == b'/' || (win && b == b'\\');
    let relative = !is_sep(buf[0]);
    let trailing = is_sep(buf[end]);
    let mut hit_root = false;
    let mut done = false;
    let mut src = 0usize;
    let mut dst = 0usize;

    while !done && src <= end && dst <= end {
        if win {
            if buf[src] == b'\\' {
                buf[src] = b'/';
            }
            if src < end && buf[src + 1] == b'\\' {
                buf[src + 1] = b'/';
            }
        }

        // Normalise only at the end of a segment, and always at the end of
        // the input.
        let segment_end = if src == end {
            done = true;
            true
        } else {
            buf[src + 1] == b'/'
        };

        let mut copy = true;
        if segment_end {
            if src != end && buf[src] == b'/' {
                // Empty segment: the copy step collapses the slashes.
            } else if buf[src] == b'.' {
                if dst > 0 && buf[dst - 1] == b'.' {
                    // `..`: a back-reference.
                    if relative && (hit_root || dst <= 2) {
                        // Nothing to remove: keep the `..` as is.
                        hit_root = true;
                    } else {
                        // Drop the `..` and the previous segment.
                        let mut d = dst as isize - 3;
                        while d > 0 && buf[d as usize] != b'/' {
                            d -= 1;
                        }
                        if d <= 0 {
                            // Never climb above the root.
                            hit_root = true;
                            d = 0;
                            if !relative && src == end {
                                d = 1;
                            }
                        }
                        dst = d as usize;
                        if done {
                            copy = false;
                        } else {
                            src += 1;
                        }
                    }
                } else if dst == 0 {
                    // Leading `./` of a relative path.
                    if done {
                        copy = false;
                    } else {
                        src += 1;
                    }
                } else if buf[dst - 1] == b'/' {
                    // `/./`
                    if done {
                        copy = false;
                    } else {
                        dst -= 1;
                        src += 1;
                    }
                }
            } else if dst > 0 {
                hit_root = false;
            }
        }

        if copy {
            if buf[src] == b'/' {
                // Collapse runs of separators onto the last one.
                while src < end && is_sep(buf[src + 1]) {
                    src += 1;
                }
                // A relative path does not gain a leading slash.
                if relative && dst == 0 {
                    src += 1;
                    continue;
                }
            }
            buf[dst] = buf[src];
            dst += 1;
            src += 1;
        }
    }

    if !trailing && dst > 0 && buf[dst - 1] == b'/' {
        dst -= 1;
    }
    buf.truncate(dst);
    buf
}

#[cfg(test)]
mod tests {
    use super::super::testutil::check;
    use super::{may_change, normalize_path, normalize_slow};

    #[test]
    fn vectors() {
        check(
            normalize_path,
            &[
                (b"", b""),
                (b"/foo/bar/baz", b"/foo/bar/baz"),
                (b"/a/b/../c//./d", b"/a/c/d"),
                (b"/foo/bar/../baz", b"/foo/baz"),
                (b"/foo/./bar", b"/foo/bar"),
                (b"/foo//bar///baz", b"/foo/bar/baz"),
                (b"/../../x", b"/x"),
                (b"/..", b""),
                (b"/.", b""),
                (b"..", b".."),
                (b".", b""),
                (b"./x", b"x"),
                (b"../x", b"../x"),
                (b"a/../../x", b"../x"),
                (b"a/b/../../../x", b"../x"),
                (b"/a/b/..", b"/a"),
                (b"/a/.", b"/a"),
                (b"/a/b/", b"/a/b/"),
                (b"/a/b/./", b"/a/b/"),
                (b"/a/b/../", b"/a/"),
                (b"//", b"/"),
                (b"a//b", b"a/b"),
                (b"a\\..\\b", b"a\\..\\b"),
                (b"/a.b/c..d/.e", b"/a.b/c..d/.e"),
                (b"/...", b""),
                (b"/a.../b", b"/b"),
                (b"/a/b..", b"/a"),
            ],
        );
    }

    /// The allocation-free shortcut must agree with the full algorithm.
    #[test]
    fn fast_path_agrees_with_full_algorithm() {
        let alphabet = b"/.a\\";
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..50_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 9) as usize;
            let s: Vec<u8> = (0..len)
                .map(|k| alphabet[((seed >> (8 + 2 * k)) & 3) as usize])
                .collect();
            for win in [false, true] {
                if !may_change(&s, win) {
                    assert_eq!(
                        normalize_slow(&s, win),
                        s,
                        "{:?} win={win}",
                        String::from_utf8_lossy(&s)
                    );
                }
            }
        }
    }
}
