//! `t:md5` — replaces the value by its MD5 digest.
//!
//! Example: `t:md5` turns `TestCase` into the 16 raw digest bytes
//! `c9aba2c3…` (use `t:md5,t:hexEncode` for readable hex).
//!
//! ModSecurity v3: the output is the RAW 16-byte digest, not hex; the empty
//! value is hashed too (`d41d8cd98f00b204e9800998ecf8427e`).

use std::borrow::Cow;

use ::md5::{Digest, Md5};

/// Applies `t:md5`.
pub(crate) fn md5(input: &[u8]) -> Cow<'_, [u8]> {
    Cow::Owned(Md5::digest(input).to_vec())
}

#[cfg(test)]
mod tests {
    use super::md5;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn vectors() {
        for (input, expected) in [
            (&b""[..], "d41d8cd98f00b204e9800998ecf8427e"),
            (b"TestCase", "c9aba2c3e60126169e80e9a26ba273c1"),
            (b"Test\0Case", "e60a2ca81ba72ac33497715277296038"),
            (b"abc", "900150983cd24fb0d6963f7d28e17f72"),
        ] {
            assert_eq!(hex(&md5(input)), expected, "{input:?}");
        }
    }
}
