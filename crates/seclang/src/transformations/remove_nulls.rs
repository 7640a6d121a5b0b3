//! `t:removeNulls` — removes every NUL byte.
//!
//! Example: `t:removeNulls` turns `a\0d\0min` into `admin`.
//!
//! ModSecurity v3: removes bytes equal to `0x00`, nothing else.

use std::borrow::Cow;

/// Applies `t:removeNulls`.
pub(crate) fn remove_nulls(input: &[u8]) -> Cow<'_, [u8]> {
    if memchr::memchr(0, input).is_none() {
        return Cow::Borrowed(input);
    }
    Cow::Owned(input.iter().copied().filter(|&b| b != 0).collect())
}

#[cfg(test)]
mod tests {
    use super::super::testutil::check;
    use super::remove_nulls;

    #[test]
    fn vectors() {
        check(
            remove_nulls,
            &[
                (b"", b""),
                (b"TestCase", b"TestCase"),
                (b"Test\0Case", b"TestCase"),
                (b"\0\0\0", b""),
                (b"\0Test\0Case\0", b"TestCase"),
                (b"a\x01b ", b"a\x01b "),
            ],
        );
    }
}
