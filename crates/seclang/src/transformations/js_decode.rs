//! `t:jsDecode` — decodes JavaScript escape sequences.
//!
//! Example: `t:jsDecode` turns `\x3cscript\u003e` into `<script>`.
//!
//! ModSecurity v3 behaviour, reproduced exactly:
//! - `\uHHHH` (lowercase `u`, four hex digits) becomes ONE byte: the low
//!   byte of the code point, except full-width ASCII `FF01`–`FF5E`, which
//!   maps to `0x21`–`0x7E` (`\uff1c` → `<`).
//! - `\xHH` (lowercase `x`, two hex digits) becomes that byte.
//! - `\OOO`: one to three octal digits become one byte; a three-digit
//!   sequence whose first digit is above `3` uses only two digits (so the
//!   value fits a byte: `\777` → `?7`).
//! - `\a \b \f \n \r \t \v` become their control characters; any other
//!   `\C` (including `\\`, `\'`, `\"`, and `\u`/`\x` without enough hex
//!   digits) becomes `C`.
//! - A lone `\` at the very end is kept.

use std::borrow::Cow;

use super::util::{is_hex, unicode_low_byte, x2c, Builder};

/// Applies `t:jsDecode`.
pub(crate) fn js_decode(input: &[u8]) -> Cow<'_, [u8]> {
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
        if i + 5 < len && input[i + 1] == b'u' && input[i + 2..i + 6].iter().all(|&c| is_hex(c)) {
            out.push(unicode_low_byte([
                input[i + 2],
                input[i + 3],
                input[i + 4],
                input[i + 5],
            ]));
            i += 6;
        } else if i + 3 < len
            && input[i + 1] == b'x'
            && is_hex(input[i + 2])
            && is_hex(input[i + 3])
        {
            out.push(x2c(input[i + 2], input[i + 3]));
            i += 4;
        } else if i + 1 < len && is_octal(input[i + 1]) {
            let (byte, used) = octal_escape(&input[i + 1..], true);
            out.push(byte);
            i += 1 + used;
        } else if i + 1 < len {
            out.push(match input[i + 1] {
                b'a' => 0x07,
                b'b' => 0x08,
                b'f' => 0x0c,
                b'n' => b'\n',
                b'r' => b'\r',
                b't' => b'\t',
                b'v' => 0x0b,
                c => c,
            });
            i += 2;
        } else {
            out.push(b'\\');
            i += 1;
        }
    }
    out.finish()
}

#[inline]
pub(crate) fn is_octal(b: u8) -> bool {
    (b'0'..=b'7').contains(&b)
}

/// Reads up to three octal digits from `digits` (the first is known to be
/// octal) and returns the byte and the number of digits used. With
/// `clamp_to_byte` (jsDecode), three digits starting above `3` use only two,
/// as ModSecurity does; without it (escapeSeqDecode) the value is truncated
/// to 8 bits.
pub(crate) fn octal_escape(digits: &[u8], clamp_to_byte: bool) -> (u8, usize) {
    let mut n = digits.iter().take(3).take_while(|&&d| is_octal(d)).count();
    if clamp_to_byte && n == 3 && digits[0] > b'3' {
        n = 2;
    }
    let value = digits[..n]
        .iter()
        .fold(0u32, |acc, &d| acc * 8 + u32::from(d - b'0'));
    (value as u8, n)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::check;
    use super::js_decode;

    #[test]
    fn vectors() {
        check(
            js_decode,
            &[
                (b"", b""),
                (b"TestCase", b"TestCase"),
                (b"\\x3cscript\\u003e", b"<script>"),
                (b"\\u0041\\u0141\\u4e2d", b"AA\x2d"),
                (b"\\uff1c\\uFF1e\\uff5e\\uff5f\\uff00", b"<>~\x5f\0"),
                (b"\\U0041", b"U0041"),
                (b"\\X41", b"X41"),
                (b"\\u004", b"u004"),
                (b"\\u00g1", b"u00g1"),
                (b"\\x4", b"x4"),
                (b"\\x4g", b"x4g"),
                (b"\\101\\60\\0", b"A0\0"),
                (b"\\1011", b"A1"),
                (b"\\377", b"\xff"),
                (b"\\400", b" 0"),
                (b"\\777", b"?7"),
                (b"\\8\\9", b"89"),
                (b"\\a\\b\\f\\n\\r\\t\\v", b"\x07\x08\x0c\n\r\t\x0b"),
                (b"\\\\\\'\\\"\\?", b"\\'\"?"),
                (b"\\", b"\\"),
                (b"abc\\", b"abc\\"),
                (b"\\\\x41", b"\\x41"),
                (b"\\\0", b"\0"),
            ],
        );
    }
}
