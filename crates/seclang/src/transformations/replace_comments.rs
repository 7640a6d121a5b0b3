//! `t:replaceComments` — replaces each C comment by one space.
//!
//! Example: `t:replaceComments` turns `UNION/**/SELECT` into
//! `UNION SELECT`.
//!
//! ModSecurity v3 behaviour, reproduced exactly: only `/* … */` is handled
//! (not `<!-- -->`, `--` or `#`); each comment becomes one space; an
//! unterminated comment also becomes one space; a lone `*/` is kept.

use std::borrow::Cow;

use super::util::Builder;

/// Applies `t:replaceComments`.
pub(crate) fn replace_comments(input: &[u8]) -> Cow<'_, [u8]> {
    let Some(first) = memchr::memmem::find(input, b"/*") else {
        return Cow::Borrowed(input);
    };
    let mut out = Builder::new(input);
    out.extend(&input[..first]);
    let mut rest = &input[first + 2..];
    loop {
        // Inside a comment.
        match memchr::memmem::find(rest, b"*/") {
            Some(end) => {
                out.push(b' ');
                rest = &rest[end + 2..];
            }
            None => {
                out.push(b' ');
                break;
            }
        }
        // Outside a comment.
        match memchr::memmem::find(rest, b"/*") {
            Some(start) => {
                out.extend(&rest[..start]);
                rest = &rest[start + 2..];
            }
            None => {
                out.extend(rest);
                break;
            }
        }
    }
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::super::testutil::check;
    use super::replace_comments;

    #[test]
    fn vectors() {
        check(
            replace_comments,
            &[
                (b"", b""),
                (b"TestCase", b"TestCase"),
                (b"/* TestCase */", b" "),
                (b"Before/* TestCase */After", b"Before After"),
                (b"Before TestCase */ After", b"Before TestCase */ After"),
                (b"/*Before/* Test\r\nCase ", b" "),
                (b"Before/* T*/ /* e */ /* s */", b"Before     "),
                (b"UNION/**/SELECT", b"UNION SELECT"),
                (b"/*/", b" "),
                (b"/**/", b" "),
                (b"a<!-- x -->b -- #", b"a<!-- x -->b -- #"),
                (b"/**//**/", b"  "),
                (b"a/", b"a/"),
            ],
        );
    }
}
