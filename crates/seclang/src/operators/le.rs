//! `@le`: numeric comparison, true when `input <= argument`.
//!
//! Argument: an integer or a macro (`%{tx.x}`) expanded at evaluation.
//! Both sides are parsed as ModSecurity v3 does: C `atoll` (leading white space,
//! optional sign, the leading decimal digits; no digits gives 0, overflow
//! saturates), so `"5 apples"` is 5 and `"abc"` is 0.
//!
//! ```text
//! SecRule REQUEST_BODY_LENGTH "@le 1024" "id:7,pass"
//! ```
//!
//! Same as ModSecurity v3.

use super::{atoll, Number, Operator, OperatorContext};

/// Compiled `@le`.
#[derive(Debug)]
pub(crate) struct Le {
    operand: Number,
}

impl Le {
    pub(crate) fn new(argument: &str) -> Le {
        Le {
            operand: Number::new(argument, atoll),
        }
    }
}

impl Operator for Le {
    fn evaluate(&self, input: &[u8], ctx: &mut dyn OperatorContext) -> bool {
        atoll(input) <= self.operand.value(ctx, atoll)
    }
}
