//! `@verifySSN`: true when the input holds a plausible US social security
//! number: a match of the argument regex with exactly 9 digits, area (first
//! 3) not 000, 666 or >= 740, group (next 2) not 00, serial (last 4) not
//! 0000, and not all digits equal or ascending by one (`123456789`).
//!
//! Argument: a PCRE pattern (same dialect as `@rx`) that finds candidates,
//! e.g. `\d{3}-?\d{2}-?\d{4}`. Non-digits inside a candidate are skipped.
//! With the `capture` action `TX:0` is set to the candidate that passed.
//!
//! ```text
//! SecRule ARGS "@verifySSN \d{3}-?\d{2}-?\d{4}" "id:16,block,capture"
//! ```
//!
//! Difference from ModSecurity v3: as for `@verifyCPF`, candidates are the
//! leftmost match at or after each offset of the whole input (ModSecurity
//! re-runs the regex on every suffix).

use regex::bytes::Regex;

use super::verify_cc::{candidate_regex, scan};
use super::{Operator, OperatorContext};

/// ModSecurity's SSN plausibility check on one candidate.
pub(crate) fn is_ssn(candidate: &[u8]) -> bool {
    let mut digits = [0u32; 9];
    let mut count = 0;
    for &b in candidate {
        if b.is_ascii_digit() {
            if count < 9 {
                digits[count] = u32::from(b - b'0');
            }
            count += 1;
        }
    }
    if count != 9 {
        return false;
    }
    let ascending = digits.windows(2).all(|w| w[0] + 1 == w[1]);
    let repeated = digits.windows(2).all(|w| w[0] == w[1]);
    if ascending || repeated {
        return false;
    }
    let number = |ds: &[u32]| ds.iter().fold(0, |acc, d| acc * 10 + d);
    let (area, group, serial) = (
        number(&digits[..3]),
        number(&digits[3..5]),
        number(&digits[5..]),
    );
    area != 0 && group != 0 && serial != 0 && area < 740 && area != 666
}

/// Compiled `@verifySSN`.
#[derive(Debug)]
pub(crate) struct VerifySsn {
    regex: Regex,
}

impl VerifySsn {
    pub(crate) fn new(argument: &str) -> Result<VerifySsn, String> {
        Ok(VerifySsn {
            regex: candidate_regex("verifySSN", argument)?,
        })
    }
}

impl Operator for VerifySsn {
    fn evaluate(&self, input: &[u8], ctx: &mut dyn OperatorContext) -> bool {
        scan(&self.regex, input, ctx, is_ssn)
    }
}

#[cfg(test)]
mod tests {
    use super::is_ssn;

    #[test]
    fn ssn_numbers() {
        assert!(is_ssn(b"078-05-1120"));
        assert!(is_ssn(b"219099999"));
        assert!(!is_ssn(b"000-12-3456"));
        assert!(!is_ssn(b"666-12-3456"));
        assert!(!is_ssn(b"740-12-3456"));
        assert!(!is_ssn(b"123-00-4567"));
        assert!(!is_ssn(b"123-45-0000"));
        assert!(!is_ssn(b"123456789"));
        assert!(!is_ssn(b"111111111"));
        assert!(!is_ssn(b"12345678"));
    }
}
