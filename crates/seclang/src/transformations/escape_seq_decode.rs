//! `t:escapeSeqDecode` — decodes ANSI C escape sequences.
//!
//! Example: `t:escapeSeqDecode` turns `\x3cscript\076` into `<script>`.
//!
//! ModSecurity v3 behaviour, reproduced exactly:
//! - `\a \b \f \n \r \t \v \\ \? \' \"` become the C characters.
//! - `\xHH` / `\XHH` (two hex digits) becomes that byte.
//! - `\O`, `\OO`, `\OOO` (octal) become one byte, the value truncated to
//!   8 bits (`\666` → `0xB6`; unlike `t:jsDecode` there is no clamping).
//! - Any other `\C` (including `\x` without two hex digits and `\8`)
//!   becomes `C`: the backslash is dropped.
//! - A lone `\` at the very end is kept.

use std::borrow::Cow;

use super::js_decode::{is_octal, octal_escape};
use super::util::{is_hex, x2c, Builder};

/// Applies `t:escapeSeqDecode`.
pub(crate) fn escape_seq_decode(input: &[u8]) -> Cow<'_, [u8]> {
    let Some(first) = memchr::memchr(b'\\', input) else {
        return Cow::Borrowed(input);
    };
    let len = input.len();
    let mut out = Builder::new(input);
    out.extend(&input[..first]);
    let mut i = first;
    while i < len {
        if input[i] != b'\\' || i + 1 >= len {
            out.push(input[i]);
            i += 1;
            continue;
        }
        let c = input[i + 1];
        let simple = match c {
            b'a' => Some(0x07),
            b'b' => Some(0x08),
            b'f' => Some(0x0c),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'v' => Some(0x0b),
            b'\\' | b'?' | b'\'' | b'"' => Some(c),
            _ => None,
        };
        if let Some(byte) = simple {
            out.push(byte);
            i += 2;
        } else if matches!(c, b'x' | b'X')
            && i + 3 < len
            && is_hex(input[i + 2])
            && is_hex(input[i + 3])
        {
            out.push(x2c(input[i + 2], input[i + 3]));
            i += 4;
        } else if is_octal(c) {
            let (byte, used) = octal_escape(&input[i + 1..], false);
            out.push(byte);
            i += 1 + used;
        } else {
            out.push(c);
            i += 2;
        }
    }
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::super::testutil::check;
    use super::escape_seq_decode;

    #[test]
    fn vectors() {
        check(
            escape_seq_decode,
            &[
                (b"", b""),
                (b"TestCase", b"TestCase"),
                (b"\\x3cscript\\076", b"<script>"),
                (b"\\a\\b\\f\\n\\r\\t\\v", b"\x07\x08\x0c\n\r\t\x0b"),
                (b"\\\\\\?\\'\\\"", b"\\?'\""),
                (b"\\x41\\X41", b"AA"),
                (b"\\x4", b"x4"),
                (b"\\xg1", b"xg1"),
                (b"\\0\\1\\12\\123\\1234", b"\0\x01\x0a\x53\x534"),
                (b"\\666", b"\xb6"),
                (b"\\777", b"\xff"),
                (b"\\8\\9", b"89"),
                (b"\\q", b"q"),
                (b"\\", b"\\"),
                (b"ab\\", b"ab\\"),
                (b"\\\0", b"\0"),
            ],
        );
    }
}
