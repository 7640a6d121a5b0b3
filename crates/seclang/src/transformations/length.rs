//! `t:length` — replaces the value by its length in bytes, as decimal text.
//!
//! Example: `SecRule ARGS "@gt 100" "id:1,t:length"` — `hello` becomes `5`.
//!
//! ModSecurity v3: `std::to_string(value.size())`; the empty value becomes
//! `0`. The result only borrows when it equals the input (the input `1` has
//! length 1).

use std::borrow::Cow;

/// Applies `t:length`.
pub(crate) fn length(input: &[u8]) -> Cow<'_, [u8]> {
    let text = input.len().to_string().into_bytes();
    if text == input {
        Cow::Borrowed(input)
    } else {
        Cow::Owned(text)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::check;
    use super::length;

    #[test]
    fn vectors() {
        check(
            length,
            &[
                (b"", b"0"),
                (b"1", b"1"),
                (b"0", b"1"),
                (b"hello", b"5"),
                (b"Test\0Case", b"9"),
                (b"\xc3\xa9", b"2"),
                (&[b'x'; 1000], b"1000"),
            ],
        );
    }
}
