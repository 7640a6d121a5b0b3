//! `t:hexEncode` — encodes every byte as two lowercase hex digits.
//!
//! Example: `t:hexEncode` turns `<a>` into `3c613e`.
//!
//! ModSecurity v3: lowercase digits, no separators; the empty value stays
//! empty.

use std::borrow::Cow;

use super::util::HEX_LOWER;

/// Applies `t:hexEncode`.
pub(crate) fn hex_encode(input: &[u8]) -> Cow<'_, [u8]> {
    if input.is_empty() {
        return Cow::Borrowed(input);
    }
    let mut out = Vec::with_capacity(input.len().saturating_mul(2));
    for &b in input {
        out.push(HEX_LOWER[usize::from(b >> 4)]);
        out.push(HEX_LOWER[usize::from(b & 0x0f)]);
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::check;
    use super::hex_encode;

    #[test]
    fn vectors() {
        check(
            hex_encode,
            &[
                (b"", b""),
                (b"TestCase", b"5465737443617365"),
                (b"Test\0Case", b"546573740043617365"),
                (b"<a>", b"3c613e"),
                (b"\xff\x00\x7f\x80", b"ff007f80"),
            ],
        );
    }
}
