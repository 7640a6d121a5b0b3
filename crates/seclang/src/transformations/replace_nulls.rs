//! `t:replaceNulls` — replaces every NUL byte by a space.
//!
//! Example: `t:replaceNulls` turns `a\0b` into `a b`.
//!
//! ModSecurity v3: each `0x00` becomes `0x20`, nothing else changes.

use std::borrow::Cow;

/// Applies `t:replaceNulls`.
pub(crate) fn replace_nulls(input: &[u8]) -> Cow<'_, [u8]> {
    if memchr::memchr(0, input).is_none() {
        return Cow::Borrowed(input);
    }
    Cow::Owned(
        input
            .iter()
            .map(|&b| if b == 0 { b' ' } else { b })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::super::testutil::check;
    use super::replace_nulls;

    #[test]
    fn vectors() {
        check(
            replace_nulls,
            &[
                (b"", b""),
                (b"TestCase", b"TestCase"),
                (b"Test\0Case", b"Test Case"),
                (b"\0\0", b"  "),
                (b"\0Test\0Case\0", b" Test Case "),
            ],
        );
    }
}
