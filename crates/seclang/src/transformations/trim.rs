//! `t:trim`, `t:trimLeft`, `t:trimRight` — remove leading and/or trailing
//! whitespace.
//!
//! Example: `t:trim` turns ` \tadmin \n` into `admin`.
//!
//! ModSecurity v3 uses `std::isspace` in the C locale: space, `\t`, `\n`,
//! `\v`, `\f`, `\r`. NUL and NBSP (`0xA0`) are NOT whitespace.
//! The result is owned whenever something was removed (the engine treats
//! `Cow::Borrowed` as "unchanged").

use std::borrow::Cow;

use super::util::is_c_space;

fn owned_if_shorter<'a>(input: &'a [u8], kept: &'a [u8]) -> Cow<'a, [u8]> {
    if kept.len() == input.len() {
        Cow::Borrowed(input)
    } else {
        Cow::Owned(kept.to_vec())
    }
}

fn strip_left(input: &[u8]) -> &[u8] {
    let start = input
        .iter()
        .position(|&b| !is_c_space(b))
        .unwrap_or(input.len());
    &input[start..]
}

fn strip_right(input: &[u8]) -> &[u8] {
    let end = input
        .iter()
        .rposition(|&b| !is_c_space(b))
        .map_or(0, |p| p + 1);
    &input[..end]
}

/// Applies `t:trim`.
pub(crate) fn trim(input: &[u8]) -> Cow<'_, [u8]> {
    owned_if_shorter(input, strip_left(strip_right(input)))
}

/// Applies `t:trimLeft`.
pub(crate) fn trim_left(input: &[u8]) -> Cow<'_, [u8]> {
    owned_if_shorter(input, strip_left(input))
}

/// Applies `t:trimRight`.
pub(crate) fn trim_right(input: &[u8]) -> Cow<'_, [u8]> {
    owned_if_shorter(input, strip_right(input))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::check;
    use super::{trim, trim_left, trim_right};

    #[test]
    fn vectors() {
        check(
            trim,
            &[
                (b"", b""),
                (b"TestCase", b"TestCase"),
                (b"  TestCase  ", b"TestCase"),
                (b" \t\n\x0b\x0c\rTest Case\r\n", b"Test Case"),
                (b"   ", b""),
                (b"\0 a \0", b"\0 a \0"),
                (b"\xa0a\xa0", b"\xa0a\xa0"),
            ],
        );
        check(
            trim_left,
            &[
                (b"", b""),
                (b"  TestCase  ", b"TestCase  "),
                (b"\t\nA", b"A"),
                (b"A ", b"A "),
                (b"   ", b""),
            ],
        );
        check(
            trim_right,
            &[
                (b"", b""),
                (b"  TestCase  ", b"  TestCase"),
                (b"A\r\n", b"A"),
                (b" A", b" A"),
                (b"   ", b""),
            ],
        );
    }
}
