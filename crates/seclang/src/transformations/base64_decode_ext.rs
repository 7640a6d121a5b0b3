//! `t:base64DecodeExt` — forgiving Base64 decoding.
//!
//! Example: `t:base64DecodeExt` turns `PHNj.cmlw dD4` into `<script>`.
//!
//! ModSecurity v3 behaviour (`Base64::decode_forgiven_engine`), reproduced
//! exactly:
//! - Every byte outside the Base64 alphabet (whitespace, `.`, `-`, `_`,
//!   bytes ≥ 0x80, NUL, …) is skipped; decoding continues.
//! - `=` is skipped too, except that an `=` seen when the number of digits
//!   decoded so far is 1 mod 4 and that is not followed by another `=`
//!   makes the WHOLE result empty (`Q=x` → empty, `Q==` → empty).
//! - A trailing partial group contributes its complete bytes: `QUI` → `AB`,
//!   `QUJDR` → `ABC`.
//! - Quirk kept for byte compatibility: ModSecurity tests "was the last byte
//!   `=`" on a variable that, for a digit, holds the digit's value; the digit
//!   `9` has value 61, the code of `=`. So when the input ends with `=` or
//!   with `9` and the digit count is 1 mod 4, the result is empty
//!   (`QUJD9` → empty, whereas `QUJDR` → `ABC`).
//! - The empty input stays empty.

use std::borrow::Cow;

use super::base64_decode::b64_value;

/// Applies `t:base64DecodeExt`.
pub(crate) fn base64_decode_ext(input: &[u8]) -> Cow<'_, [u8]> {
    if input.is_empty() {
        return Cow::Borrowed(input);
    }
    let mut out = Vec::with_capacity(input.len() / 4 * 3 + 3);
    // Bits of the byte being assembled (ModSecurity writes it in pieces).
    let mut pending: u8 = 0;
    let mut count: usize = 0;
    // What ModSecurity's `ch` holds after the last byte: `=` for padding,
    // the digit value for a digit, something else for a skipped byte.
    let mut last_is_pad_code = false;
    for (idx, &b) in input.iter().enumerate() {
        if b == b'=' {
            last_is_pad_code = true;
            if input.get(idx + 1) != Some(&b'=') && count % 4 == 1 {
                return Cow::Owned(Vec::new());
            }
            continue;
        }
        let Some(v) = b64_value(b) else {
            last_is_pad_code = false;
            continue;
        };
        last_is_pad_code = v == b'=';
        match count % 4 {
            0 => pending = v << 2,
            1 => {
                out.push(pending | (v >> 4));
                pending = (v & 0x0f) << 4;
            }
            2 => {
                out.push(pending | (v >> 2));
                pending = (v & 0x03) << 6;
            }
            _ => out.push(pending | v),
        }
        count += 1;
    }
    if last_is_pad_code && count % 4 == 1 {
        return Cow::Owned(Vec::new());
    }
    if out == input {
        return Cow::Borrowed(input);
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::check;
    use super::base64_decode_ext;

    #[test]
    fn vectors() {
        check(
            base64_decode_ext,
            &[
                (b"", b""),
                (b"VGVzdENhc2U=", b"TestCase"),
                (b"VGVzdENhc2UxMg==", b"TestCase12"),
                (b"VGVzdABDYXNl", b"Test\0Case"),
                (b"PHNj.cmlw dD4", b"<script>"),
                (b"QUJD", b"ABC"),
                (b"QUI", b"AB"),
                (b"QUJDR", b"ABC"),
                (b"QUJD9", b""),
                (b"QUJD9Q", b"ABC\xf5"),
                (b"Q=x", b""),
                (b"Q==", b""),
                (b"Q", b""),
                (b"QQ=", b"A"),
                (b"QUJD!\xff\0-_RA==", b"ABCD"),
                (b"Q\nU\r\nJ\tD", b"ABC"),
                (b"!!!", b""),
                (b"=", b""),
            ],
        );
    }
}
