//! `t:lowercase` — ASCII lowercase.
//!
//! Example: `t:lowercase` turns `SeLeCt` into `select`.
//!
//! ModSecurity v3 uses `std::tolower` in the C locale: only `A`–`Z` change;
//! bytes ≥ 0x80 (UTF-8 or not) are left alone.

use std::borrow::Cow;

/// Applies `t:lowercase`.
pub(crate) fn lowercase(input: &[u8]) -> Cow<'_, [u8]> {
    if input.iter().any(u8::is_ascii_uppercase) {
        Cow::Owned(input.to_ascii_lowercase())
    } else {
        Cow::Borrowed(input)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::check;
    use super::lowercase;

    #[test]
    fn vectors() {
        check(
            lowercase,
            &[
                (b"", b""),
                (b"testcase", b"testcase"),
                (b"TestCase", b"testcase"),
                (b"TEST\0CASE", b"test\0case"),
                (b"\xc3\x89T\xff", b"\xc3\x89t\xff"),
                (b"@[`{", b"@[`{"),
            ],
        );
    }
}
