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
//! Same as ModSecurity v3, with two changes to bound the work: the
//! candidate loop skips offsets that would find the same candidate again,
//! and it stops (no match) once [`MAX_CANDIDATE_BYTES`] of candidates have
//! been checked in one evaluation.

use regex::bytes::Regex;

use super::rx::{build, translate_pcre, REGEX_SIZE_LIMIT};
use super::{Operator, OperatorContext};

/// Total bytes of candidates `@verifyCC`/`@verifyCPF`/`@verifySSN` check in
/// one evaluation (default 4 MiB). A pattern with unbounded matches (`\d+`)
/// over a long run of digits would otherwise do quadratic work: each offset
/// yields a candidate almost as long as the input. ModSecurity has no bound.
/// Real card/CPF/SSN patterns match at most ~25 bytes, so this still allows
/// over 150,000 candidates.
pub const MAX_CANDIDATE_BYTES: usize = 4 << 20;

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
/// `capture`, `TX:0` is the candidate. Gives up (false) after
/// [`MAX_CANDIDATE_BYTES`] of candidates.
pub(crate) fn scan(
    regex: &Regex,
    input: &[u8],
    ctx: &mut dyn OperatorContext,
    verify: fn(&[u8]) -> bool,
) -> bool {
    let mut offset = 0;
    let mut budget = MAX_CANDIDATE_BYTES;
    while offset < input.len() {
        let Some(m) = regex.find_at(input, offset) else {
            return false;
        };
        budget = match budget.checked_sub(m.len().max(1)) {
            Some(left) => left,
            None => return false,
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
