//! `@verifyCC`: true when the input holds a credit card number: a match of
//! the argument regex whose digits pass the Luhn (mod 10) check.
//!
//! Argument: a PCRE pattern (same dialect and translation as `@rx`) that
//! finds candidate numbers, e.g. `\d{13,16}`. Every candidate is tried, in
//! the way ModSecurity v3 does it: for each start offset, the leftmost match
//! starting there or later; non-digits inside a candidate (spaces, dashes)
//! are skipped by the checksum. With the `capture` action `TX:0` is set to
//! the candidate that passed.
//!
//! ```text
//! SecRule ARGS "@verifyCC \d{13,16}" "id:14,block,capture,logdata:'%{TX.0}'"
//! ```
//!
//! Same as ModSecurity v3; the candidate loop skips offsets that would find
//! the same candidate again, so it runs in linear time.

use regex::bytes::Regex;

use super::rx::{build, translate_pcre, REGEX_SIZE_LIMIT};
use super::{Operator, OperatorContext};

/// Compiles the candidate regex of `@verifyCC`/`@verifyCPF`/`@verifySSN`.
pub(crate) fn candidate_regex(operator: &str, argument: &str) -> Result<Regex, String> {
    if argument.is_empty() {
        return Err(format!(
            "@{operator} needs a regular expression that finds candidates"
        ));
    }
    let translated = translate_pcre(argument.as_bytes())
        .map_err(|e| format!("@{operator} {argument:?}: {e}"))?;
    build(&translated, REGEX_SIZE_LIMIT)
        .map_err(|e| format!("@{operator} {argument:?}: cannot compile: {e}"))
}

/// Tries `verify` on each candidate: for every start offset, the leftmost
/// match at or after it (ModSecurity's loop). Offsets between two match
/// starts yield the same match, so they are skipped. On success with
/// `capture`, `TX:0` is the candidate.
pub(crate) fn scan(
    regex: &Regex,
    input: &[u8],
    ctx: &mut dyn OperatorContext,
    verify: fn(&[u8]) -> bool,
) -> bool {
    let mut offset = 0;
    while offset < input.len() {
        let Some(m) = regex.find_at(input, offset) else {
            return false;
        };
        if verify(m.as_bytes()) {
            if ctx.capturing() {
                ctx.set_capture(0, m.as_bytes());
            }
            return true;
        }
        offset = m.start().max(offset) + 1;
    }
    false
}

/// Luhn mod-10 check over the ASCII digits of `candidate` (other bytes are
/// skipped); no digit at all fails.
pub(crate) fn luhn(candidate: &[u8]) -> bool {
    let mut sum = 0u32;
    let mut digits = 0usize;
    for &b in candidate.iter().rev() {
        if !b.is_ascii_digit() {
            continue;
        }
        let d = u32::from(b - b'0');
        sum += if digits % 2 == 1 {
            if d * 2 > 9 {
                d * 2 - 9
            } else {
                d * 2
            }
        } else {
            d
        };
        digits += 1;
    }
    digits > 0 && sum % 10 == 0
}

/// Compiled `@verifyCC`.
#[derive(Debug)]
pub(crate) struct VerifyCc {
    regex: Regex,
}

impl VerifyCc {
    pub(crate) fn new(argument: &str) -> Result<VerifyCc, String> {
        Ok(VerifyCc {
            regex: candidate_regex("verifyCC", argument)?,
        })
    }
}

impl Operator for VerifyCc {
    fn evaluate(&self, input: &[u8], ctx: &mut dyn OperatorContext) -> bool {
        scan(&self.regex, input, ctx, luhn)
    }
}

#[cfg(test)]
mod tests {
    use super::luhn;

    #[test]
    fn luhn_known_numbers() {
        assert!(luhn(b"4111111111111111"));
        assert!(luhn(b"4111 1111-1111 1111"));
        assert!(luhn(b"79927398713"));
        assert!(luhn(b"0"));
        assert!(!luhn(b"4111111111111112"));
        assert!(!luhn(b"79927398710"));
        assert!(!luhn(b""));
        assert!(!luhn(b"abc"));
    }
}
