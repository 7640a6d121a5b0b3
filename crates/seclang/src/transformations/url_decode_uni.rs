//! `t:urlDecodeUni` — URL decoding plus Microsoft IIS `%uXXXX` encoding.
//!
//! Example: `t:urlDecodeUni` turns `%u003cscript%uff1e` into `<script>`.
//!
//! ModSecurity v3 behaviour, reproduced exactly:
//! - `%uXXXX` / `%UXXXX` with four hex digits becomes ONE byte: the low byte
//!   of the code point (`%u0141` → `0x41`), except full-width ASCII
//!   `FF01`–`FF5E`, which maps to `0x21`–`0x7E` (`%uff1c` → `<`). Every other
//!   code point keeps only its low byte (`%u4e2d` → `0x2d`, `%uff00` →
//!   `0x00`, `%uff5f` → `0x5f`). (ModSecurity can also consult a
//!   `SecUnicodeMapFile` table; that directive is not supported, so the
//!   built-in reduction always applies, as in a default ModSecurity.)
//! - `%u` not followed by four hex digits (or too close to the end) copies
//!   `%u` and resumes right after it, so `%u%41` becomes `%uA`.
//! - `%XY` with two hex digits decodes as in `t:urlDecode`; an invalid `%`
//!   is copied and decoding resumes at the next byte.
//! - `+` becomes a space.

use std::borrow::Cow;

use super::util::{is_hex, unicode_low_byte, x2c, Builder};

/// Applies `t:urlDecodeUni`.
pub(crate) fn url_decode_uni(input: &[u8]) -> Cow<'_, [u8]> {
    if memchr::memchr2(b'%', b'+', input).is_none() {
        return Cow::Borrowed(input);
    }
    let mut out = Builder::new(input);
    let len = input.len();
    let mut i = 0;
    while i < len {
        let b = input[i];
        if b == b'%' {
            if i + 1 < len && matches!(input[i + 1], b'u' | b'U') {
                if i + 5 < len && input[i + 2..i + 6].iter().all(|&c| is_hex(c)) {
                    out.push(unicode_low_byte([
                        input[i + 2],
                        input[i + 3],
                        input[i + 4],
                        input[i + 5],
                    ]));
                    i += 6;
                } else {
                    out.push(b'%');
                    out.push(input[i + 1]);
                    i += 2;
                }
            } else if i + 2 < len && is_hex(input[i + 1]) && is_hex(input[i + 2]) {
                out.push(x2c(input[i + 1], input[i + 2]));
                i += 3;
            } else {
                out.push(b'%');
                i += 1;
            }
        } else {
            out.push(if b == b'+' { b' ' } else { b });
            i += 1;
        }
    }
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::super::testutil::check;
    use super::url_decode_uni;

    #[test]
    fn vectors() {
        check(
            url_decode_uni,
            &[
                (b"", b""),
                (b"TestCase", b"TestCase"),
                (b"Test+Case", b"Test Case"),
                (b"%41%42", b"AB"),
                (b"%u0041", b"A"),
                (b"%U0041", b"A"),
                (b"%u0141", b"A"),
                (b"%u4e2d", b"\x2d"),
                (b"%uff1c%uFF1E", b"<>"),
                (b"%uff01", b"!"),
                (b"%uff5e", b"~"),
                (b"%uff5f", b"\x5f"),
                (b"%uff00", b"\0"),
                (b"%ufe3c", b"\x3c"),
                (b"%u00", b"%u00"),
                (b"%u004", b"%u004"),
                (b"%u00411", b"A1"),
                (b"%u004g", b"%u004g"),
                (b"%u%41", b"%uA"),
                (b"%u", b"%u"),
                (b"%", b"%"),
                (b"%4", b"%4"),
                (b"%zz%41", b"%zzA"),
                (b"%%u0041", b"%A"),
            ],
        );
    }
}
