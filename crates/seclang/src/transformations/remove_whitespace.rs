//! `t:removeWhitespace` — removes all whitespace.
//!
//! Example: `t:removeWhitespace` turns `s e l\te\nc t` into `select`.
//!
//! ModSecurity v3 behaviour, reproduced exactly: removes C-locale `isspace`
//! bytes (space, `\t`, `\n`, `\v`, `\f`, `\r`), NBSP `0xA0`, AND every
//! `0xC2` byte (meant as the lead byte of UTF-8 NBSP `C2 A0`, but removed
//! wherever it appears: `C2 A9` "©" becomes `A9`).

use std::borrow::Cow;

use super::util::is_c_space;

#[inline]
fn removed(b: u8) -> bool {
    is_c_space(b) || b == 0xa0 || b == 0xc2
}

/// Applies `t:removeWhitespace`.
pub(crate) fn remove_whitespace(input: &[u8]) -> Cow<'_, [u8]> {
    if !input.iter().any(|&b| removed(b)) {
        return Cow::Borrowed(input);
    }
    let mut out = Vec::with_capacity(input.len());
    out.extend(input.iter().copied().filter(|&b| !removed(b)));
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::check;
    use super::remove_whitespace;

    #[test]
    fn vectors() {
        check(
            remove_whitespace,
            &[
                (b"", b""),
                (b"TestCase", b"TestCase"),
                (b"s e l\te\nc t", b"select"),
                (b" \t\n\x0b\x0c\r", b""),
                (b"a\xc2\xa0b", b"ab"),
                (b"a\xa0b", b"ab"),
                (b"\xc2\xa9", b"\xa9"),
                (b"a\0b", b"a\0b"),
            ],
        );
    }
}
