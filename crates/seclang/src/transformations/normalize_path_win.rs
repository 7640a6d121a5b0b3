//! `t:normalizePathWin` (alias `t:normalisePathWin`) — `t:normalizePath`
//! with `\` treated as a separator.
//!
//! Example: `t:normalizePathWin` turns `C:\a\..\b\.\c` into `C:/b/c`.
//!
//! ModSecurity v3 behaviour, reproduced exactly: as `t:normalizePath`, but
//! `\` counts as a separator and is converted to `/` as the path is
//! walked. Quirk: inside a run of several separators the last one is the
//! one copied and, if it is a `\` that was skipped over, it is copied
//! unconverted (`a/\\b` → `a\b`).

use std::borrow::Cow;

use super::normalize_path::normalize;

/// Applies `t:normalizePathWin`.
pub(crate) fn normalize_path_win(input: &[u8]) -> Cow<'_, [u8]> {
    normalize(input, true)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::check;
    use super::normalize_path_win;

    #[test]
    fn vectors() {
        check(
            normalize_path_win,
            &[
                (b"", b""),
                (b"/foo/bar", b"/foo/bar"),
                (b"C:\\a\\..\\b\\.\\c", b"C:/b/c"),
                (b"\\foo\\bar", b"/foo/bar"),
                (b"\\..\\..\\x", b"/x"),
                (b"..\\x", b"../x"),
                (b"a\\", b"a/"),
                (b"a/\\\\b", b"a\\b"),
                (b"\\\\server\\share", b"/server/share"),
            ],
        );
    }
}
