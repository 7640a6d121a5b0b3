//! `t:cssDecode` — decodes CSS 2 escapes.
//!
//! Example: `t:cssDecode` turns `ja\vascri\70 t` into `javascript`.
//!
//! ModSecurity v3 behaviour, reproduced exactly:
//! - `\` followed by 1–6 hex digits becomes ONE byte built from the last two
//!   digits (one digit: its value). With exactly 4 digits, or 5 digits
//!   starting with `0`, or 6 digits starting with `00`, full-width ASCII is
//!   mapped: if the two digits before the last two are `ff` (any case) and
//!   the low byte is `01`–`5E`, `0x20` is added (`\ff1c` → `<`).
//! - One whitespace byte (C `isspace`) right after a hex escape is consumed.
//! - `\` followed by a newline: both are removed (line continuation).
//! - `\` followed by any other byte: the `\` is removed, the byte kept.
//! - A `\` at the very end is removed.

use std::borrow::Cow;

use super::util::{is_c_space, is_hex, x2c, xsingle2c, Builder};

/// Longest hex escape CSS allows.
const MAX_HEX_DIGITS: usize = 6;

/// Applies `t:cssDecode`.
pub(crate) fn css_decode(input: &[u8]) -> Cow<'_, [u8]> {
    let Some(first) = memchr::memchr(b'\\', input) else {
        return Cow::Borrowed(input);
    };
    let len = input.len();
    let mut out = Builder::new(input);
    out.extend(&input[..first]);
    let mut i = first;
    while i < len {
        if input[i] != b'\\' {
            out.push(input[i]);
            i += 1;
            continue;
        }
        i += 1; // the backslash itself is never copied
        if i >= len {
            break;
        }
        let n = input[i..]
            .iter()
            .take(MAX_HEX_DIGITS)
            .take_while(|&&c| is_hex(c))
            .count();
        if n > 0 {
            let digits = &input[i..i + n];
            let byte = if n == 1 {
                xsingle2c(digits[0])
            } else {
                x2c(digits[n - 2], digits[n - 1])
            };
            let full_check = match n {
                4 => true,
                5 => digits[0] == b'0',
                6 => digits[0] == b'0' && digits[1] == b'0',
                _ => false,
            };
            let full_width = full_check
                && byte > 0x00
                && byte < 0x5f
                && matches!(digits[n - 3], b'f' | b'F')
                && matches!(digits[n - 4], b'f' | b'F');
            out.push(if full_width { byte + 0x20 } else { byte });
            i += n;
            if i < len && is_c_space(input[i]) {
                i += 1;
            }
        } else if input[i] == b'\n' {
            i += 1;
        } else {
            out.push(input[i]);
            i += 1;
        }
    }
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::super::testutil::check;
    use super::css_decode;

    #[test]
    fn vectors() {
        check(
            css_decode,
            &[
                (b"", b""),
                (b"TestCase", b"TestCase"),
                (b"ja\\vascri\\70 t", b"javascript"),
                (b"\\41", b"A"),
                (b"\\041", b"A"),
                (b"\\0041", b"A"),
                (b"\\00041", b"A"),
                (b"\\000041", b"A"),
                (b"\\a", b"\x0a"),
                (b"\\A", b"\x0a"),
                (b"\\1234567", b"\x567"),
                (b"\\ff1c", b"<"),
                (b"\\FF5E", b"~"),
                (b"\\ff5f", b"\x5f"),
                (b"\\0ff1c", b"<"),
                (b"\\00ff1c", b"<"),
                (b"\\1ff1c", b"\x1c"),
                (b"\\01ff1c", b"\x1c"),
                (b"\\41 B", b"AB"),
                (b"\\41\tB", b"AB"),
                (b"\\41  B", b"A B"),
                (b"\\41\x0bB", b"AB"),
                (b"a\\\nb", b"ab"),
                (b"\\g\\\\\\'", b"g\\'"),
                (b"\\", b""),
                (b"abc\\", b"abc"),
                (b"\\\0", b"\0"),
            ],
        );
    }
}
