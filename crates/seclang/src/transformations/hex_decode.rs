//! `t:hexDecode` — decodes a string of hex digit pairs.
//!
//! Example: `t:hexDecode` turns `3c7363726970743e` into `<script>`.
//!
//! ModSecurity v3 behaviour, reproduced exactly:
//! - Every pair of bytes becomes one byte, WITHOUT validation: a non-hex
//!   byte contributes ModSecurity's `x2c` arithmetic (`0z` → `#`), it is not
//!   an error and does not stop decoding.
//! - With an odd length the last byte is dropped (`414` → `A`).
//!   ModSecurity reads past the end of its buffer for a one-byte input
//!   (undefined behaviour there); here a single byte decodes to the empty
//!   string, consistently with the other odd lengths.

use std::borrow::Cow;

use super::util::x2c;

/// Applies `t:hexDecode`.
pub(crate) fn hex_decode(input: &[u8]) -> Cow<'_, [u8]> {
    if input.is_empty() {
        return Cow::Borrowed(input);
    }
    Cow::Owned(
        input
            .chunks_exact(2)
            .map(|pair| x2c(pair[0], pair[1]))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::super::testutil::check;
    use super::hex_decode;

    #[test]
    fn vectors() {
        check(
            hex_decode,
            &[
                (b"", b""),
                (b"5465737443617365", b"TestCase"),
                (b"546573740043617365", b"Test\0Case"),
                (b"3C3c", b"<<"),
                (b"FFff00", b"\xff\xff\0"),
                (b"414", b"A"),
                (b"4", b""),
                (b"0z", b"#"),
                (
                    b"01234567890a0z01234567890a",
                    b"\x01#Eg\x89\x0a#\x01#Eg\x89\x0a",
                ),
                (b"zz", b"\x53"),
            ],
        );
    }
}
