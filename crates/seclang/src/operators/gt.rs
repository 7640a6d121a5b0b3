//! `@gt`: numeric comparison, true when `input > argument`.
//!
//! Argument: an integer or a macro (`%{tx.x}`) expanded at evaluation.
//! Both sides are parsed as ModSecurity v3 does: C `atoll` (leading white space,
//! optional sign, the leading decimal digits; no digits gives 0, overflow
//! saturates), so `"5 apples"` is 5 and `"abc"` is 0.
//!
//! ```text
//! SecRule &ARGS "@gt %{tx.max_num_args}" "id:920380,block"
//! ```
//!
//! Same as ModSecurity v3.

use super::{atoll, Number, Operator, OperatorContext};

/// Compiled `@gt`.
#[derive(Debug)]
pub(crate) struct Gt {
    operand: Number,
}

impl Gt {
    pub(crate) fn new(argument: &str) -> Gt {
        Gt {
            operand: Number::new(argument, atoll),
        }
    }
}

impl Operator for Gt {
    fn evaluate(&self, input: &[u8], ctx: &mut dyn OperatorContext) -> bool {
        atoll(input) > self.operand.value(ctx, atoll)
    }
}
