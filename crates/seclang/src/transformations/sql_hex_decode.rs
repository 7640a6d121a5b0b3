//! `t:sqlHexDecode` — decodes SQL hex literals (`0x414243` → `ABC`).
//!
//! Example: `t:sqlHexDecode` turns `SELECT 0x3c736372697074` into
//! `SELECT <script`.
//!
//! ModSecurity v3 behaviour, reproduced exactly:
//! - `0x` / `0X` followed by at least two hex digits starts a literal; every
//!   following complete pair of hex digits is decoded; the literal ends at
//!   the first byte that does not complete a hex pair (an odd trailing digit
//!   is kept: `0x414` → `A4`).
//! - `0x` followed by fewer than two hex digits is kept as is.
//! - The literal may start anywhere, even inside a word (`a0x41` → `aA`).

use std::borrow::Cow;

use super::util::{is_hex, x2c, Builder};

/// Applies `t:sqlHexDecode`.
pub(crate) fn sql_hex_decode(input: &[u8]) -> Cow<'_, [u8]> {
    let len = input.len();
    let mut out = Builder::new(input);
    let mut i = 0;
    while i < len {
        if i + 3 < len
            && input[i] == b'0'
            && matches!(input[i + 1], b'x' | b'X')
            && is_hex(input[i + 2])
            && is_hex(input[i + 3])
        {
            i += 2;
            while i + 1 < len && is_hex(input[i]) && is_hex(input[i + 1]) {
                out.push(x2c(input[i], input[i + 1]));
                i += 2;
            }
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
    use super::sql_hex_decode;

    #[test]
    fn vectors() {
        check(
            sql_hex_decode,
            &[
                (b"", b""),
                (b"TestCase", b"TestCase"),
                (b"0x414243", b"ABC"),
                (b"0X414243", b"ABC"),
                (b"SELECT 0x3c736372697074", b"SELECT <script"),
                (b"0x414", b"A4"),
                (b"0x4", b"0x4"),
                (b"0x", b"0x"),
                (b"0xg1", b"0xg1"),
                (b"a0x41b", b"aAb"),
                (b"0x41 0x42", b"A B"),
                (b"00x41", b"0A"),
                (b"0x0x41", b"0xA"),
            ],
        );
    }
}
