//! `@ge`: numeric comparison, true when `input >= argument`.
//!
//! Argument: an integer or a macro (`%{tx.x}`) expanded at evaluation.
//! Both sides are parsed as ModSecurity v3 does: C `atoll` (leading white space,
//! optional sign, the leading decimal digits; no digits gives 0, overflow
//! saturates), so `"5 apples"` is 5 and `"abc"` is 0.
//!
//! ```text
//! SecRule TX:BLOCKING_INBOUND_ANOMALY_SCORE "@ge %{tx.inbound_anomaly_score_threshold}" "id:949110,deny"
//! ```
//!
//! Same as ModSecurity v3.

use super::{atoll, Number, Operator, OperatorContext};

/// Compiled `@ge`.
#[derive(Debug)]
pub(crate) struct Ge {
    operand: Number,
}

impl Ge {
    pub(crate) fn new(argument: &str) -> Ge {
        Ge {
            operand: Number::new(argument, atoll),
        }
    }
}

impl Operator for Ge {
    fn evaluate(&self, input: &[u8], ctx: &mut dyn OperatorContext) -> bool {
        atoll(input) >= self.operand.value(ctx, atoll)
    }
}
