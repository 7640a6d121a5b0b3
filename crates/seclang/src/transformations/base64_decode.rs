//! `t:base64Decode` — strict Base64 decoding.
//!
//! Example: `t:base64Decode` turns `PHNjcmlwdD4=` into `<script>`.
//!
//! ModSecurity v3 behaviour (it calls mbedTLS `mbedtls_base64_decode`),
//! reproduced exactly:
//! - The input is cut at its first NUL byte (ModSecurity passes
//!   `strlen(value)`).
//! - Validation comes first and is all-or-nothing: any byte outside the
//!   Base64 alphabet, more than two `=`, a digit after `=`, a `\r` not
//!   followed by `\n`, or spaces followed by anything but a line end make
//!   the WHOLE result empty. (ModSecurity v2 and Coraza instead stop at the
//!   first invalid byte and keep what was decoded; v3 does not.)
//! - Line breaks (`\n`, `\r\n`) are ignored anywhere; spaces are allowed
//!   only right before a line break or at the end.
//! - Digits are decoded in groups of four (`=` counting as a digit); a final
//!   incomplete group (missing padding) is silently dropped: `QUJD` → `ABC`,
//!   `QUI` → empty, `QUI=` → `AB`.
//! - The empty input stays empty.

use std::borrow::Cow;

/// Value of a Base64 digit, `None` for anything else (including `=`).
#[inline]
pub(crate) fn b64_value(b: u8) -> Option<u8> {
    match b {
        b'A'..=b'Z' => Some(b - b'A'),
        b'a'..=b'z' => Some(b - b'a' + 26),
        b'0'..=b'9' => Some(b - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// Applies `t:base64Decode`.
pub(crate) fn base64_decode(input: &[u8]) -> Cow<'_, [u8]> {
    if input.is_empty() {
        return Cow::Borrowed(input);
    }
    let src = match memchr::memchr(0, input) {
        Some(nul) => &input[..nul],
        None => input,
    };
    if !is_valid(src) {
        return Cow::Owned(Vec::new());
    }
    let mut out = Vec::with_capacity(src.len() / 4 * 3 + 3);
    let mut acc: u32 = 0;
    let mut digits = 0;
    let mut equals = 0;
    for &b in src {
        if matches!(b, b'\r' | b'\n' | b' ') {
            continue;
        }
        acc <<= 6;
        if b == b'=' {
            equals += 1;
        } else {
            acc |= u32::from(b64_value(b).unwrap_or(0));
        }
        digits += 1;
        if digits == 4 {
            digits = 0;
            out.push((acc >> 16) as u8);
            if equals <= 1 {
                out.push((acc >> 8) as u8);
            }
            if equals == 0 {
                out.push(acc as u8);
            }
        }
    }
    if out == input {
        return Cow::Borrowed(input);
    }
    Cow::Owned(out)
}

/// mbedTLS's first pass: does the whole input decode?
fn is_valid(src: &[u8]) -> bool {
    let mut equals = 0;
    let mut i = 0;
    while i < src.len() {
        let mut spaces = false;
        while i < src.len() && src[i] == b' ' {
            i += 1;
            spaces = true;
        }
        if i == src.len() {
            break;
        }
        let b = src[i];
        i += 1;
        if b == b'\n' || (b == b'\r' && src.get(i) == Some(&b'\n')) {
            continue;
        }
        if spaces {
            return false;
        }
        if b == b'=' {
            equals += 1;
            if equals > 2 {
                return false;
            }
        } else if equals != 0 || b64_value(b).is_none() {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::super::testutil::check;
    use super::base64_decode;

    #[test]
    fn vectors() {
        check(
            base64_decode,
            &[
                (b"", b""),
                (b"VGVzdENhc2U=", b"TestCase"),
                (b"VGVzdENhc2Ux", b"TestCase1"),
                (b"VGVzdENhc2UxMg==", b"TestCase12"),
                (b"VGVzdABDYXNl", b"Test\0Case"),
                (b"PHNjcmlwdD4=", b"<script>"),
                (b"QUJD", b"ABC"),
                (b"QUI=", b"AB"),
                (b"QQ==", b"A"),
                (b"QUI", b""),
                (b"QUJDRA", b"ABC"),
                (b"QUJD\nRA==", b"ABCD"),
                (b"QUJD\r\nRA==", b"ABCD"),
                (b"QUJD  \nRA==", b"ABCD"),
                (b"QUJDRA==  ", b"ABCD"),
                (b"QUJD RA==", b""),
                (b"QUJD\rRA==", b""),
                (b"QUJD!RA==", b""),
                (b"QU=JD", b""),
                (b"Q===", b""),
                (b"QUJD\xffRA==", b""),
                (b"-_-_", b""),
                (b"QUJD\0!!!", b"ABC"),
                (b"\0QUJD", b""),
                (b"==", b""),
            ],
        );
    }
}
