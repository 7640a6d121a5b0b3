//! `@verifyCPF`: true when the input holds a valid Brazilian CPF number: a
//! match of the argument regex with exactly 11 digits whose two check digits
//! are right and which is not one of the trivial numbers (`00000000000`,
//! `01234567890`, `11111111111`, …, `99999999999`).
//!
//! Argument: a PCRE pattern (same dialect as `@rx`) that finds candidates,
//! e.g. `\d{3}\.?\d{3}\.?\d{3}-?\d{2}`. Non-digits inside a candidate are
//! skipped; a candidate needs at least 11 digits and only its first 11 are
//! judged (as in ModSecurity). With the `capture` action `TX:0` is set to
//! the candidate that passed.
//!
//! ```text
//! SecRule ARGS "@verifyCPF \d{3}\.?\d{3}\.?\d{3}-?\d{2}" "id:15,block,capture"
//! ```
//!
//! Difference from ModSecurity v3: ModSecurity runs the regex on every
//! suffix of the input (so `^` and `\b` see each suffix start as the start
//! of the text, at quadratic cost, and a one-byte input is never checked);
//! this engine tries the leftmost candidate at or after each offset of the
//! whole input, as `@verifyCC` does, in linear time.

use regex::bytes::Regex;

use super::verify_cc::{candidate_regex, scan};
use super::{Operator, OperatorContext};

/// Numbers that pass the checksum but are refused as trivial.
const TRIVIAL: [&[u8; 11]; 11] = [
    b"00000000000",
    b"01234567890",
    b"11111111111",
    b"22222222222",
    b"33333333333",
    b"44444444444",
    b"55555555555",
    b"66666666666",
    b"77777777777",
    b"88888888888",
    b"99999999999",
];

/// Check digit of the first `n` digits with weights `n + 1` down to 2.
fn check_digit(digits: &[u32]) -> u32 {
    let n = digits.len() as u32;
    let sum: u32 = digits
        .iter()
        .enumerate()
        .map(|(i, d)| d * (n + 1 - i as u32))
        .sum();
    match sum % 11 {
        r if r < 2 => 0,
        r => 11 - r,
    }
}

/// ModSecurity's CPF check on one candidate.
pub(crate) fn is_cpf(candidate: &[u8]) -> bool {
    let mut text = [0u8; 11];
    let mut count = 0;
    for &b in candidate {
        if b.is_ascii_digit() {
            if count < 11 {
                text[count] = b;
            }
            count += 1;
        }
    }
    // ModSecurity stops collecting at 11 digits and requires exactly 11
    // collected; extra digits are ignored.
    if count < 11 || TRIVIAL.contains(&&text) {
        return false;
    }
    let digits = text.map(|b| u32::from(b - b'0'));
    let first = check_digit(&digits[..9]);
    let second = check_digit(&digits[..10]);
    digits[9] == first && digits[10] == second
}

/// Compiled `@verifyCPF`.
#[derive(Debug)]
pub(crate) struct VerifyCpf {
    regex: Regex,
}

impl VerifyCpf {
    pub(crate) fn new(argument: &str) -> Result<VerifyCpf, String> {
        Ok(VerifyCpf {
            regex: candidate_regex("verifyCPF", argument)?,
        })
    }
}

impl Operator for VerifyCpf {
    fn evaluate(&self, input: &[u8], ctx: &mut dyn OperatorContext) -> bool {
        scan(&self.regex, input, ctx, is_cpf)
    }
}

#[cfg(test)]
mod tests {
    use super::is_cpf;

    #[test]
    fn cpf_numbers() {
        assert!(is_cpf(b"529.982.247-25"));
        assert!(is_cpf(b"52998224725"));
        assert!(!is_cpf(b"52998224726"));
        assert!(!is_cpf(b"11111111111"));
        assert!(!is_cpf(b"5299822472"));
        // Digits beyond the 11th are ignored, as in ModSecurity.
        assert!(is_cpf(b"529982247259"));
    }
}
