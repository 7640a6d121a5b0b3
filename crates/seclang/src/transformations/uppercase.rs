//! `t:uppercase` — ASCII uppercase.
//!
//! Example: `t:uppercase` turns `SeLeCt` into `SELECT`.
//!
//! ModSecurity v3 uses `std::toupper` in the C locale: only `a`–`z` change;
//! bytes ≥ 0x80 are left alone.

use std::borrow::Cow;

/// Applies `t:uppercase`.
pub(crate) fn uppercase(input: &[u8]) -> Cow<'_, [u8]> {
    if input.iter().any(u8::is_ascii_lowercase) {
        Cow::Owned(input.to_ascii_uppercase())
    } else {
        Cow::Borrowed(input)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::check;
    use super::uppercase;

    #[test]
    fn vectors() {
        check(
            uppercase,
            &[
                (b"", b""),
                (b"TESTCASE", b"TESTCASE"),
                (b"TestCase", b"TESTCASE"),
                (b"test\0case", b"TEST\0CASE"),
                (b"\xc3\xa9t\xff", b"\xc3\xa9T\xff"),
                (b"@[`{", b"@[`{"),
            ],
        );
    }
}
