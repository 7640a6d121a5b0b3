//! `@contains`: true when the argument occurs anywhere in the input.
//!
//! Argument: a byte string, macros (`%{tx.x}`) expanded at evaluation.
//! Case-sensitive; an empty argument matches every input (as `find("")` does
//! in ModSecurity).
//!
//! ```text
//! SecRule REQUEST_LINE "@contains /admin" "id:1,deny"
//! ```
//!
//! Same as ModSecurity v3.

use memchr::memmem;

use super::{Operator, OperatorContext, Param};

/// Compiled `@contains`.
#[derive(Debug)]
pub(crate) struct Contains {
    needle: Param,
}

impl Contains {
    pub(crate) fn new(argument: &str) -> Contains {
        Contains {
            needle: Param::new(argument),
        }
    }
}

impl Operator for Contains {
    fn evaluate(&self, input: &[u8], ctx: &mut dyn OperatorContext) -> bool {
        let needle = self.needle.value(ctx);
        memmem::find(input, &needle).is_some()
    }

    fn required_literals(&self) -> Option<Vec<Vec<u8>>> {
        self.needle.literal_set(1)
    }
}
