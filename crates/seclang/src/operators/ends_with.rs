//! `@endsWith`: true when the input ends with the argument.
//!
//! Argument: a byte string, macros expanded at evaluation (CRS:
//! `!@endsWith %{request_headers.host}`). Case-sensitive; an empty argument
//! matches every input.
//!
//! ```text
//! SecRule REQUEST_FILENAME "@endsWith .php" "id:4,deny"
//! ```
//!
//! Same as ModSecurity v3.

use super::{Operator, OperatorContext, Param};

/// Compiled `@endsWith`.
#[derive(Debug)]
pub(crate) struct EndsWith {
    suffix: Param,
}

impl EndsWith {
    pub(crate) fn new(argument: &str) -> EndsWith {
        EndsWith {
            suffix: Param::new(argument),
        }
    }
}

impl Operator for EndsWith {
    fn evaluate(&self, input: &[u8], ctx: &mut dyn OperatorContext) -> bool {
        input.ends_with(&self.suffix.value(ctx))
    }

    fn required_literals(&self) -> Option<Vec<Vec<u8>>> {
        self.suffix.literal_set(1)
    }
}
