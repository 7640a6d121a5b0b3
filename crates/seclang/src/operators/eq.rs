//! `@eq`: numeric comparison, true when `input == argument`.
//!
//! Argument: an integer or a macro (`%{tx.x}`) expanded at evaluation.
//! Both sides are parsed as ModSecurity v3 does: C++ `std::stoi` with errors mapped to
//! 0 (leading white space, optional sign, the leading decimal digits; no
//! digits gives 0, and a value outside the 32-bit `int` range also gives 0
//! because `stoi` throws), so `"5 apples"` is 5 and `"abc"` is 0.
//!
//! ```text
//! SecRule &REQUEST_HEADERS:Host "@eq 0" "id:920280,block"
//! ```
//!
//! Same as ModSecurity v3.

use super::{stoi, Number, Operator, OperatorContext};

/// Compiled `@eq`.
#[derive(Debug)]
pub(crate) struct Eq {
    operand: Number,
}

impl Eq {
    pub(crate) fn new(argument: &str) -> Eq {
        Eq {
            operand: Number::new(argument, stoi),
        }
    }
}

impl Operator for Eq {
    fn evaluate(&self, input: &[u8], ctx: &mut dyn OperatorContext) -> bool {
        stoi(input) == self.operand.value(ctx, stoi)
    }
}
