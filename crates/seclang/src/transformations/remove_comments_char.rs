//! `t:removeCommentsChar` — removes comment delimiters (not the comments).
//!
//! Example: `t:removeCommentsChar` turns `UNION/*x*/SELECT` into
//! `UNIONxSELECT`.
//!
//! ModSecurity v3 behaviour, reproduced exactly: removes every `/*`, `*/`,
//! `<!--`, `-->`, `--` and `#`, scanning left to right (so `--->` loses `--`
//! and keeps `->`); the text between delimiters is kept.

use std::borrow::Cow;

use super::util::Builder;

/// Applies `t:removeCommentsChar`.
pub(crate) fn remove_comments_char(input: &[u8]) -> Cow<'_, [u8]> {
    let len = input.len();
    let at = |k: usize, pat: &[u8]| input.get(k..k + pat.len()) == Some(pat);
    let mut out = Builder::new(input);
    let mut i = 0;
    while i < len {
        let skip = if at(i, b"/*") || at(i, b"*/") {
            2
        } else if at(i, b"<!--") {
            4
        } else if at(i, b"-->") {
            3
        } else if at(i, b"--") {
            2
        } else if input[i] == b'#' {
            1
        } else {
            0
        };
        if skip == 0 {
            out.push(input[i]);
            i += 1;
        } else {
            i += skip;
        }
    }
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::super::testutil::check;
    use super::remove_comments_char;

    #[test]
    fn vectors() {
        check(
            remove_comments_char,
            &[
                (b"", b""),
                (b"TestCase", b"TestCase"),
                (b"/* TestCase */", b" TestCase "),
                (b"UNION/*x*/SELECT", b"UNIONxSELECT"),
                (b"<!-- x -->", b" x "),
                (b"1--x", b"1x"),
                (b"a#b#", b"ab"),
                (b"--->", b"->"),
                (b"-->", b""),
                (b"<!-", b"<!-"),
                (b"a-b*c/d", b"a-b*c/d"),
                (b"/*/", b"/"),
            ],
        );
    }
}
