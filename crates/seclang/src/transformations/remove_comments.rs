//! `t:removeComments` — removes C, HTML and SQL comments.
//!
//! Example: `t:removeComments` turns `UNION/**/SELECT` into `UNIONSELECT`
//! and `1 OR 1=1 -- x` into `1 OR 1=1 `.
//!
//! ModSecurity v3 behaviour, reproduced exactly (quirks included):
//! - `/* … */` and `<!-- … -->` are removed. An unterminated comment is
//!   replaced by one space.
//! - `--` or `#` outside a comment ends the value: it and everything after
//!   it are removed.
//! - The byte right after a closing `*/` or `-->` is copied WITHOUT being
//!   examined (so `/**//*x*/` keeps the second `/`, giving `/*x*/`, and
//!   `/**/#x` keeps `#x`).
//! - When the closing `*/` or `-->` ends the input, ModSecurity copies the
//!   string's NUL terminator: the output then ends with a `0x00` byte
//!   (`/* x */` → `\0`).

use std::borrow::Cow;

use super::util::Builder;

/// Applies `t:removeComments`.
pub(crate) fn remove_comments(input: &[u8]) -> Cow<'_, [u8]> {
    let len = input.len();
    let at = |k: usize, pat: &[u8]| input.get(k..k + pat.len()) == Some(pat);
    let mut out = Builder::new(input);
    let mut i = 0;
    let mut in_comment = false;
    while i < len {
        if !in_comment {
            if at(i, b"/*") {
                in_comment = true;
                i += 2;
            } else if at(i, b"<!--") {
                in_comment = true;
                i += 4;
            } else if at(i, b"--") || input[i] == b'#' {
                // The rest of the value is a line comment.
                return out.finish();
            } else {
                out.push(input[i]);
                i += 1;
            }
        } else {
            let end = if at(i, b"*/") {
                2
            } else if at(i, b"-->") {
                3
            } else {
                0
            };
            if end == 0 {
                i += 1;
                continue;
            }
            in_comment = false;
            i += end;
            // ModSecurity copies the next byte unexamined; at the end of the
            // input that is the C string terminator.
            out.push(input.get(i).copied().unwrap_or(0));
            i += 1;
        }
    }
    if in_comment {
        out.push(b' ');
    }
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::super::testutil::check;
    use super::remove_comments;

    #[test]
    fn vectors() {
        check(
            remove_comments,
            &[
                (b"", b""),
                (b"TestCase", b"TestCase"),
                (b"Test\0Case", b"Test\0Case"),
                (b"/* TestCase */", b"\0"),
                (b"/*TestCase*/", b"\0"),
                (b"Before/* TestCase */After", b"BeforeAfter"),
                (b"Before TestCase */ After", b"Before TestCase */ After"),
                (b"/*Before/* Test\r\nCase ", b" "),
                (b"Before /* Test\nCase ", b"Before  "),
                (b"Before /* */ ops */ Test", b"Before  ops */ Test"),
                (b"UNION/**/SELECT", b"UNIONSELECT"),
                (b"/**//*x*/", b"/*x*/"),
                (b"/**/#x", b"#x"),
                (b"a<!-- x -->b", b"ab"),
                (b"a<!-- x -->", b"a\0"),
                (b"a<!-- x", b"a "),
                (b"a<!-", b"a<!-"),
                (b"1 OR 1=1 -- x", b"1 OR 1=1 "),
                (b"1 OR 1=1 # x", b"1 OR 1=1 "),
                (b"--", b""),
                (b"#", b""),
                (b"a-b", b"a-b"),
                (b"a/", b"a/"),
                (b"/*", b" "),
                (b"/*/", b" "),
            ],
        );
    }
}
