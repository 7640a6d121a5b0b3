//! `t:compressWhitespace` — turns each run of whitespace into one space.
//!
//! Example: `t:compressWhitespace` turns `union \t\n select` into
//! `union select`.
//!
//! ModSecurity v3: whitespace is C-locale `isspace` (space, `\t`, `\n`,
//! `\v`, `\f`, `\r`); NBSP (`0xA0`) and NUL are not whitespace. Leading
//! and trailing runs become a single space too (they are not removed).

use std::borrow::Cow;

use super::util::{is_c_space, Builder};

/// Applies `t:compressWhitespace`.
pub(crate) fn compress_whitespace(input: &[u8]) -> Cow<'_, [u8]> {
    let mut out = Builder::new(input);
    let mut in_space = false;
    for &b in input {
        if is_c_space(b) {
            if !in_space {
                out.push(b' ');
                in_space = true;
            }
        } else {
            out.push(b);
            in_space = false;
        }
    }
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::super::testutil::check;
    use super::compress_whitespace;

    #[test]
    fn vectors() {
        check(
            compress_whitespace,
            &[
                (b"", b""),
                (b"Test Case", b"Test Case"),
                (b"Test  Case", b"Test Case"),
                (b"union \t\n select", b"union select"),
                (b"\tTest", b" Test"),
                (b"  a  ", b" a "),
                (b"\r\n", b" "),
                (b"a\x0b\x0cb", b"a b"),
                (b"a\xa0\xa0b", b"a\xa0\xa0b"),
                (b"a\0\0b", b"a\0\0b"),
            ],
        );
    }
}
