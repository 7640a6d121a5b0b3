//! `@lt`: numeric comparison, true when `input < argument`.
//!
//! Argument: an integer or a macro (`%{tx.x}`) expanded at evaluation.
//! Both sides are parsed as ModSecurity v3 does: C `atoll` (leading white space,
//! optional sign, the leading decimal digits; no digits gives 0, overflow
//! saturates), so `"5 apples"` is 5 and `"abc"` is 0.
//!
//! ```text
//! SecRule TX:DETECTION_PARANOIA_LEVEL "@lt 2" "id:920013,skipAfter:END"
//! ```
//!
//! Same as ModSecurity v3.

use super::{atoll, Number, Operator, OperatorContext};

/// Compiled `@lt`.
#[derive(Debug)]
pub(crate) struct Lt {
    operand: Number,
}

impl Lt {
    pub(crate) fn new(argument: &str) -> Lt {
        Lt {
            operand: Number::new(argument, atoll),
        }
    }
}

impl Operator for Lt {
    fn evaluate(&self, input: &[u8], ctx: &mut dyn OperatorContext) -> bool {
        atoll(input) < self.operand.value(ctx, atoll)
    }
}
