//! `@validateUrlEncoding`: true when the input holds an **invalid** URL
//! encoding (rules use it to flag bad input).
//!
//! Argument: none (ignored).
//! Every `%` must be followed by two hexadecimal digits. A `%` with fewer
//! than two bytes after it, or followed by a non-hex digit, makes the
//! operator match. An empty input does not match. Other bytes (including
//! NUL and bytes >= 0x80) are not checked.
//!
//! ```text
//! SecRule REQUEST_URI_RAW "@validateUrlEncoding" "id:920220,block"
//! ```
//!
//! Same as ModSecurity v3.

use super::{Operator, OperatorContext};

/// `@validateUrlEncoding`.
#[derive(Debug)]
pub(crate) struct ValidateUrlEncoding;

/// True when every `%` in `input` starts a valid `%XX` sequence.
pub(crate) fn is_valid_url_encoding(input: &[u8]) -> bool {
    let mut i = 0;
    while let Some(offset) = memchr::memchr(b'%', &input[i..]) {
        let pos = i + offset;
        match (input.get(pos + 1), input.get(pos + 2)) {
            (Some(a), Some(b)) if a.is_ascii_hexdigit() && b.is_ascii_hexdigit() => i = pos + 3,
            _ => return false,
        }
    }
    true
}

impl Operator for ValidateUrlEncoding {
    fn evaluate(&self, input: &[u8], _ctx: &mut dyn OperatorContext) -> bool {
        !input.is_empty() && !is_valid_url_encoding(input)
    }
}
