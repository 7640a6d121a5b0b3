//! `t:sha1` — replaces the value by its SHA-1 digest.
//!
//! Example: `t:sha1,t:hexEncode` turns `abc` into
//! `a9993e364706816aba3e25717850c26c9cd0d89d`.
//!
//! ModSecurity v3: the output is the RAW 20-byte digest, not hex; the empty
//! value is hashed too.

use std::borrow::Cow;

use ::sha1::{Digest, Sha1};

/// Applies `t:sha1`.
pub(crate) fn sha1(input: &[u8]) -> Cow<'_, [u8]> {
    Cow::Owned(Sha1::digest(input).to_vec())
}

#[cfg(test)]
mod tests {
    use super::sha1;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn vectors() {
        for (input, expected) in [
            (&b""[..], "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
            (b"abc", "a9993e364706816aba3e25717850c26c9cd0d89d"),
            (
                b"\x00\x01\x02\x03\x04\x05\x06\x07\x08",
                "63bf60c7105a07a2b125bbf89e61abdabc6978c2",
            ),
            (b"TestCase", "a70ce38389e318bd2be18a0111c6dc76bd2cd9ed"),
        ] {
            assert_eq!(hex(&sha1(input)), expected, "{input:?}");
        }
    }
}
