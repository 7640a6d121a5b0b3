//! `t:base64Encode` — standard Base64 encoding with `=` padding.
//!
//! Example: `t:base64Encode` turns `<script>` into `PHNjcmlwdD4=`.
//!
//! ModSecurity v3 (mbedTLS `mbedtls_base64_encode`): RFC 4648 alphabet
//! (`+`, `/`), padded, no line breaks; the empty value stays empty.

use std::borrow::Cow;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Applies `t:base64Encode`.
pub(crate) fn base64_encode(input: &[u8]) -> Cow<'_, [u8]> {
    if input.is_empty() {
        return Cow::Borrowed(input);
    }
    let mut out = Vec::with_capacity(input.len().div_ceil(3).saturating_mul(4));
    let sym = |v: u32| ALPHABET[(v & 0x3f) as usize];
    for chunk in input.chunks(3) {
        let b0 = u32::from(chunk[0]);
        let b1 = chunk.get(1).map_or(0, |&b| u32::from(b));
        let b2 = chunk.get(2).map_or(0, |&b| u32::from(b));
        let n = (b0 << 16) | (b1 << 8) | b2;
        out.push(sym(n >> 18));
        out.push(sym(n >> 12));
        out.push(if chunk.len() > 1 { sym(n >> 6) } else { b'=' });
        out.push(if chunk.len() > 2 { sym(n) } else { b'=' });
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::check;
    use super::base64_encode;

    #[test]
    fn vectors() {
        check(
            base64_encode,
            &[
                (b"", b""),
                (b"TestCase", b"VGVzdENhc2U="),
                (b"TestCase1", b"VGVzdENhc2Ux"),
                (b"TestCase12", b"VGVzdENhc2UxMg=="),
                (b"Test\0Case", b"VGVzdABDYXNl"),
                (b"\xff\xfe\xfd", b"//79"),
                (b"\xfb", b"+w=="),
            ],
        );
    }
}
