//! `t:urlEncode` — percent-encodes everything but `*` and ASCII
//! alphanumerics.
//!
//! Example: `t:urlEncode` turns `a b/c` into `a+b%2fc`.
//!
//! ModSecurity v3 behaviour, reproduced exactly: space becomes `+`; `*`,
//! `0`–`9`, `A`–`Z`, `a`–`z` are kept; every other byte (including `-`,
//! `.`, `_`, `~`, `+`, `%` and bytes ≥ 0x80) becomes `%xx` with LOWERCASE
//! hex digits.

use std::borrow::Cow;

use super::util::{Builder, HEX_LOWER};

/// Applies `t:urlEncode`.
pub(crate) fn url_encode(input: &[u8]) -> Cow<'_, [u8]> {
    let mut out = Builder::new(input);
    for &b in input {
        if b == b' ' {
            out.push(b'+');
        } else if b == b'*' || b.is_ascii_alphanumeric() {
            out.push(b);
        } else {
            out.push(b'%');
            out.push(HEX_LOWER[usize::from(b >> 4)]);
            out.push(HEX_LOWER[usize::from(b & 0x0f)]);
        }
    }
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::super::testutil::check;
    use super::url_encode;

    #[test]
    fn vectors() {
        check(
            url_encode,
            &[
                (b"", b""),
                (b"TestCase09*", b"TestCase09*"),
                (b"a b/c", b"a+b%2fc"),
                (b"-._~", b"%2d%2e%5f%7e"),
                (b"+%", b"%2b%25"),
                (b"\0\xff\x80", b"%00%ff%80"),
                (b"<script>", b"%3cscript%3e"),
                (b"  ", b"++"),
            ],
        );
    }
}
