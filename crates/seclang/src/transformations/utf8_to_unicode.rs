//! `t:utf8toUnicode` — rewrites UTF-8 sequences as `%uXXXX`.
//!
//! Example: `t:utf8toUnicode` turns `é<` (`C3 A9 3C`) into `%u00e9<`.
//!
//! ModSecurity v3 behaviour, reproduced exactly:
//! - ASCII bytes are copied, except that a NUL byte that is not the last
//!   byte is dropped (ModSecurity writes it without advancing its output).
//! - A well-formed 2-, 3- or 4-byte sequence becomes `%u` + the code point
//!   in lowercase hex, zero-padded to at least 4 digits (`%u00e9`,
//!   `%u1f600`). No check that the code point is in range; the lead byte is
//!   re-emitted raw after the escape for surrogates (`U+D800`–`U+DFFF`) and
//!   for overlong forms (`C0 80` → `%u0000` + `C0`).
//! - A 4-byte lead byte `F5`–`F7` is first emitted raw, then processed.
//! - A lead byte whose continuation bytes are missing or invalid is DROPPED
//!   and processing resumes at the next byte (`C3 41` → `A`).
//! - Stray continuation bytes (`80`–`BF`) and `F8`–`FF` are copied raw.

use std::borrow::Cow;

use super::util::{Builder, HEX_LOWER};

/// Applies `t:utf8toUnicode`.
pub(crate) fn utf8_to_unicode(input: &[u8]) -> Cow<'_, [u8]> {
    let len = input.len();
    let mut out = Builder::new(input);
    let mut i = 0;
    while i < len {
        let c = input[i];
        let cont = |k: usize| input.get(i + k).is_some_and(|&b| b & 0xc0 == 0x80);
        let seq_len = if c & 0x80 == 0 {
            // ModSecurity overwrites a non-final NUL with the next output.
            if c != 0 || i + 1 >= len {
                out.push(c);
            }
            i += 1;
            continue;
        } else if c & 0xe0 == 0xc0 {
            2
        } else if c & 0xf0 == 0xe0 {
            3
        } else if c & 0xf8 == 0xf0 {
            if c >= 0xf5 {
                out.push(c);
            }
            4
        } else {
            out.push(c);
            i += 1;
            continue;
        };
        if !(1..seq_len).all(cont) {
            i += 1;
            continue;
        }
        let bytes = &input[i..i + seq_len];
        let lead_bits = match seq_len {
            2 => u32::from(c & 0x1f),
            3 => u32::from(c & 0x0f),
            _ => u32::from(c & 0x07),
        };
        let d = bytes[1..]
            .iter()
            .fold(lead_bits, |acc, &b| (acc << 6) | u32::from(b & 0x3f));
        push_code_point(&mut out, d);
        if (0xd800..=0xdfff).contains(&d) {
            out.push(c);
        }
        let overlong = match seq_len {
            2 => d < 0x80,
            3 => d < 0x800,
            _ => d < 0x10000,
        };
        if overlong {
            out.push(c);
        }
        i += seq_len;
    }
    out.finish()
}

fn push_code_point(out: &mut Builder<'_>, d: u32) {
    out.extend(b"%u");
    let digits = (32 - d.leading_zeros()).div_ceil(4).max(1) as usize;
    for _ in digits..4 {
        out.push(b'0');
    }
    for k in (0..digits).rev() {
        out.push(HEX_LOWER[((d >> (4 * k)) & 0xf) as usize]);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::check;
    use super::utf8_to_unicode;

    #[test]
    fn vectors() {
        check(
            utf8_to_unicode,
            &[
                (b"", b""),
                (b"TestCase", b"TestCase"),
                (b"\xc3\xa9<", b"%u00e9<"),
                (b"\xc4\x80", b"%u0100"),
                (b"\xe4\xb8\xad", b"%u4e2d"),
                (b"\xef\xbc\x9c", b"%uff1c"),
                (b"\xf0\x9f\x98\x80", b"%u1f600"),
                (b"\xf4\x8f\xbf\xbf", b"%u10ffff"),
                (b"\xf7\xbf\xbf\xbf", b"\xf7%u1fffff"),
                (b"\xc0\x80", b"%u0000\xc0"),
                (b"\xe0\x80\x80", b"%u0000\xe0"),
                (b"\xed\xa0\x80", b"%ud800\xed"),
                (b"\xc3A", b"A"),
                (b"A\xc3", b"A"),
                (b"\xe4\xb8", b"\xb8"),
                (b"\x80\xbf", b"\x80\xbf"),
                (b"\xff\xfe", b"\xff\xfe"),
                (b"a\0b", b"ab"),
                (b"ab\0", b"ab\0"),
                (b"\0\0", b"\0"),
                (b"\0\xc3\xa9", b"%u00e9"),
            ],
        );
    }
}
