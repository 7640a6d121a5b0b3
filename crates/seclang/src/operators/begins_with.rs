//! `@beginsWith`: true when the input starts with the argument.
//!
//! Argument: a byte string, macros expanded at evaluation. Case-sensitive;
//! an empty argument matches every input.
//!
//! ```text
//! SecRule REQUEST_URI "@beginsWith /api/" "id:3,pass,nolog"
//! ```
//!
//! Same as ModSecurity v3.

use super::{Operator, OperatorContext, Param};

/// Compiled `@beginsWith`.
#[derive(Debug)]
pub(crate) struct BeginsWith {
    prefix: Param,
}

impl BeginsWith {
    pub(crate) fn new(argument: &str) -> BeginsWith {
        BeginsWith {
            prefix: Param::new(argument),
        }
    }
}

impl Operator for BeginsWith {
    fn evaluate(&self, input: &[u8], ctx: &mut dyn OperatorContext) -> bool {
        input.starts_with(&self.prefix.value(ctx))
    }

    fn required_literals(&self) -> Option<Vec<Vec<u8>>> {
        self.prefix.literal_set(1)
    }
}
