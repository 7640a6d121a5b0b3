//! `t:parityEven7bit`, `t:parityOdd7bit`, `t:parityZero7bit` — set the top
//! bit of every byte as a 7-bit parity bit.
//!
//! Example: `t:parityZero7bit` turns `\xC1` into `A`.
//!
//! ModSecurity v3 behaviour, reproduced exactly: for the even/odd variants
//! the parity is computed over ALL 8 bits of the input byte (including its
//! current top bit). `parityEven7bit` sets bit 7 when that count is odd and
//! clears it otherwise; `parityOdd7bit` does the opposite; `parityZero7bit`
//! clears bit 7. The empty value stays empty.

use std::borrow::Cow;

fn map_bytes(input: &[u8], f: impl Fn(u8) -> u8) -> Cow<'_, [u8]> {
    if input.iter().all(|&b| f(b) == b) {
        return Cow::Borrowed(input);
    }
    Cow::Owned(input.iter().map(|&b| f(b)).collect())
}

fn odd_parity(b: u8) -> bool {
    b.count_ones() % 2 == 1
}

/// Applies `t:parityEven7bit`.
pub(crate) fn parity_even_7bit(input: &[u8]) -> Cow<'_, [u8]> {
    map_bytes(input, |b| if odd_parity(b) { b | 0x80 } else { b & 0x7f })
}

/// Applies `t:parityOdd7bit`.
pub(crate) fn parity_odd_7bit(input: &[u8]) -> Cow<'_, [u8]> {
    map_bytes(input, |b| if odd_parity(b) { b & 0x7f } else { b | 0x80 })
}

/// Applies `t:parityZero7bit`.
pub(crate) fn parity_zero_7bit(input: &[u8]) -> Cow<'_, [u8]> {
    map_bytes(input, |b| b & 0x7f)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::check;
    use super::{parity_even_7bit, parity_odd_7bit, parity_zero_7bit};

    #[test]
    fn vectors() {
        check(
            parity_even_7bit,
            &[
                (b"", b""),
                (b"\x00\x03", b"\x00\x03"),
                (b"A", b"A"),
                (b"C", b"\xc3"),
                (b"\x01", b"\x81"),
                (b"\x81", b"\x01"),
                (b"\xc3", b"\x43"),
            ],
        );
        check(
            parity_odd_7bit,
            &[
                (b"", b""),
                (b"A", b"\xc1"),
                (b"C", b"C"),
                (b"\x01", b"\x01"),
                (b"\x81", b"\x81"),
                (b"\x00", b"\x80"),
            ],
        );
        check(
            parity_zero_7bit,
            &[
                (b"", b""),
                (b"TestCase", b"TestCase"),
                (b"\xc1\xff\x80", b"A\x7f\x00"),
            ],
        );
    }
}
