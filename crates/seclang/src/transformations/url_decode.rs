//! `t:urlDecode` — decodes URL (percent) encoding.
//!
//! Example: `SecRule ARGS "@rx <script" "id:1,t:urlDecode"` turns
//! `%3Cscript+x` into `<script x`.
//!
//! ModSecurity v3 behaviour (`urldecode_nonstrict_inplace`), reproduced
//! exactly:
//! - `%XY` with two hex digits (either case) becomes the byte `0xXY`
//!   (including `%00`, which yields a NUL byte).
//! - `+` becomes a space.
//! - An invalid sequence (`%zz`, `%4`, a trailing `%`) is kept as is: only
//!   the `%` is copied and decoding resumes at the next byte, so `%%41`
//!   becomes `%A`.
//! - No `%uXXXX` support (see `t:urlDecodeUni`); decoding is single pass.

use std::borrow::Cow;

use super::util::{is_hex, x2c, Builder};

/// Applies `t:urlDecode`.
pub(crate) fn url_decode(input: &[u8]) -> Cow<'_, [u8]> {
    if memchr::memchr2(b'%', b'+', input).is_none() {
        return Cow::Borrowed(input);
    }
    let mut out = Builder::new(input);
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'%' if i + 2 < input.len() && is_hex(input[i + 1]) && is_hex(input[i + 2]) => {
                out.push(x2c(input[i + 1], input[i + 2]));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::super::testutil::check;
    use super::url_decode;

    #[test]
    fn vectors() {
        check(
            url_decode,
            &[
                (b"", b""),
                (b"TestCase", b"TestCase"),
                (b"Test%20Case", b"Test Case"),
                (b"Test+Case", b"Test Case"),
                (b"%3cscript%3E", b"<script>"),
                (b"%00", b"\0"),
                (b"%ff%FF", b"\xff\xff"),
                (b"%", b"%"),
                (b"%4", b"%4"),
                (b"a%4", b"a%4"),
                (b"%zz", b"%zz"),
                (b"%4g", b"%4g"),
                (b"%%41", b"%A"),
                (b"%2541", b"%41"),
                (b"%u0041", b"%u0041"),
                (b"100%", b"100%"),
                (b"%41%", b"A%"),
            ],
        );
    }
}
