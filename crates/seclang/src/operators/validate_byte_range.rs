//! `@validateByteRange`: true when the input holds a byte **outside** the
//! allowed ranges (rules use it to flag bad input).
//!
//! Argument: comma-separated byte values and inclusive ranges, each 0..=255:
//! `1-255`, `9,10,13,32-126,128-255`. White space around items is allowed.
//! An empty input never matches.
//!
//! ```text
//! SecRule ARGS "@validateByteRange 1-255" "id:920270,block"
//! ```
//!
//! Difference from ModSecurity v3: ModSecurity logs an unparsable item
//! (`a-b`, `300`, `20-10`) and silently ignores it (a single value above 255
//! even writes outside its table); this engine refuses the rule with an
//! error naming the item. Valid arguments behave the same.

use super::{Operator, OperatorContext};

/// `@validateByteRange` with its table of allowed bytes.
#[derive(Debug)]
pub(crate) struct ValidateByteRange {
    /// Bit `b` of `allowed[b / 64]` is set when byte `b` is allowed.
    allowed: [u64; 4],
}

/// Parses one byte value of an item.
fn parse_byte(text: &str, item: &str) -> Result<u8, String> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "@validateByteRange: {item:?} is not a byte value or range (expected e.g. 32-126)"
        ));
    }
    text.parse::<u8>()
        .map_err(|_| format!("@validateByteRange: {text} in {item:?} is outside 0..=255"))
}

impl ValidateByteRange {
    pub(crate) fn new(argument: &str) -> Result<ValidateByteRange, String> {
        let mut allowed = [0u64; 4];
        if argument.trim().is_empty() {
            return Err("@validateByteRange needs a list of byte ranges, e.g. 1-255".into());
        }
        for item in argument.split(',') {
            let (start, end) = match item.split_once('-') {
                Some((a, b)) => (parse_byte(a, item)?, parse_byte(b, item)?),
                None => {
                    let b = parse_byte(item, item)?;
                    (b, b)
                }
            };
            if start > end {
                return Err(format!(
                    "@validateByteRange: range {:?} has its start above its end",
                    item.trim()
                ));
            }
            for b in start..=end {
                allowed[usize::from(b / 64)] |= 1u64 << (b % 64);
            }
        }
        Ok(ValidateByteRange { allowed })
    }

    fn allows(&self, b: u8) -> bool {
        self.allowed[usize::from(b / 64)] & (1u64 << (b % 64)) != 0
    }
}

impl Operator for ValidateByteRange {
    fn evaluate(&self, input: &[u8], _ctx: &mut dyn OperatorContext) -> bool {
        input.iter().any(|&b| !self.allows(b))
    }

    /// It matches exactly when a byte outside the allowed ranges occurs.
    fn required_bytes(&self) -> Option<[u64; 4]> {
        Some(self.allowed.map(|w| !w))
    }
}
