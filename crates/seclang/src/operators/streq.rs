//! `@streq`: true when the input equals the argument byte for byte.
//!
//! Argument: a byte string, macros expanded at evaluation (CRS:
//! `@streq %{TX.2}`). Case-sensitive; an empty argument matches only the
//! empty input.
//!
//! ```text
//! SecRule REQUEST_METHOD "@streq POST" "id:5,pass,nolog"
//! ```
//!
//! Same as ModSecurity v3.

use super::{Operator, OperatorContext, Param};

/// Compiled `@streq`.
#[derive(Debug)]
pub(crate) struct StrEq {
    expected: Param,
}

impl StrEq {
    pub(crate) fn new(argument: &str) -> StrEq {
        StrEq {
            expected: Param::new(argument),
        }
    }
}

impl Operator for StrEq {
    fn evaluate(&self, input: &[u8], ctx: &mut dyn OperatorContext) -> bool {
        *input == *self.expected.value(ctx)
    }

    fn required_literals(&self) -> Option<Vec<Vec<u8>>> {
        self.expected.literal_set(1)
    }
}
