//! `@validateUtf8Encoding`: true when the input is **not** valid UTF-8 by
//! ModSecurity's rules (rules use it to flag bad input).
//!
//! Argument: none (ignored).
//! The input matches when a sequence is truncated, a continuation byte is
//! not `10xxxxxx`, a lead byte is `0x80..=0xBF` or `0xF5..=0xFF`, the
//! encoding is overlong (`C0 80`), or it encodes a surrogate
//! (`U+D800..=U+DFFF`). An empty or ASCII input never matches.
//!
//! ```text
//! SecRule ARGS "@validateUtf8Encoding" "id:920250,block"
//! ```
//!
//! Difference from Rust's `str::from_utf8`, kept on purpose to behave like
//! ModSecurity v3: four-byte sequences with lead byte `F4` encoding code
//! points above `U+10FFFF` (`F4 90 80 80`) are accepted as valid.

use super::{Operator, OperatorContext};

/// `@validateUtf8Encoding`.
#[derive(Debug)]
pub(crate) struct ValidateUtf8Encoding;

/// Length of the valid character at the start of `input` (non-empty), or
/// `None` when it is invalid.
fn character_len(input: &[u8]) -> Option<usize> {
    let lead = input[0];
    let (len, initial) = match lead {
        0x00..=0x7f => return Some(1),
        _ if lead & 0xe0 == 0xc0 => (2, u32::from(lead & 0x1f)),
        _ if lead & 0xf0 == 0xe0 => (3, u32::from(lead & 0x0f)),
        _ if lead & 0xf8 == 0xf0 => {
            if lead >= 0xf5 {
                return None;
            }
            (4, u32::from(lead & 0x07))
        }
        _ => return None,
    };
    let tail = input.get(1..len)?;
    let mut code = initial;
    for &b in tail {
        if b & 0xc0 != 0x80 {
            return None;
        }
        code = (code << 6) | u32::from(b & 0x3f);
    }
    let minimum = match len {
        2 => 0x80,
        3 => 0x800,
        _ => 0x1_0000,
    };
    if (0xd800..=0xdfff).contains(&code) || code < minimum {
        return None;
    }
    Some(len)
}

/// True when `input` is valid UTF-8 by ModSecurity's rules.
pub(crate) fn is_valid_utf8(input: &[u8]) -> bool {
    let mut i = 0;
    while i < input.len() {
        // Fast path over ASCII runs: the common case for request data.
        if input[i].is_ascii() {
            i += 1;
            continue;
        }
        match character_len(&input[i..]) {
            Some(len) => i += len,
            None => return false,
        }
    }
    true
}

impl Operator for ValidateUtf8Encoding {
    fn evaluate(&self, input: &[u8], _ctx: &mut dyn OperatorContext) -> bool {
        !is_valid_utf8(input)
    }
}

#[cfg(test)]
mod tests {
    use super::is_valid_utf8;

    #[test]
    fn agrees_with_std_below_u10ffff() {
        // Every 1-, 2- and 3-byte sequence, and 4-byte ones with a sampled
        // tail: ModSecurity's rules equal the standard's except above U+10FFFF.
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let two = [a, b];
                assert_eq!(
                    is_valid_utf8(&two),
                    std::str::from_utf8(&two).is_ok(),
                    "{two:x?}"
                );
                for c in [0x00, 0x7f, 0x80, 0xbf, 0xc0, 0xff] {
                    let three = [a, b, c];
                    let four = [a, b, c, 0x80];
                    assert_eq!(
                        is_valid_utf8(&three),
                        std::str::from_utf8(&three).is_ok(),
                        "{three:x?}"
                    );
                    let above_max = a == 0xf4 && b >= 0x90 && b & 0xc0 == 0x80 && c & 0xc0 == 0x80;
                    assert_eq!(
                        is_valid_utf8(&four),
                        std::str::from_utf8(&four).is_ok() || above_max,
                        "{four:x?}"
                    );
                }
            }
        }
    }
}
