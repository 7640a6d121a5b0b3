//! `@strmatch`: true when the argument occurs anywhere in the input.
//!
//! Argument: a byte string, macros expanded at evaluation. Case-sensitive.
//!
//! ```text
//! SecRule REQUEST_HEADERS:User-Agent "@strmatch WebZIP" "id:2,deny"
//! ```
//!
//! ModSecurity v3 implements it as a plain substring search (v2 used
//! Boyer-Moore-Horspool, with the same result), so it behaves like
//! `@contains`; so does this engine (an empty argument matches everything).

use memchr::memmem;

use super::{Operator, OperatorContext, Param};

/// Compiled `@strmatch`.
#[derive(Debug)]
pub(crate) struct StrMatch {
    needle: Param,
}

impl StrMatch {
    pub(crate) fn new(argument: &str) -> StrMatch {
        StrMatch {
            needle: Param::new(argument),
        }
    }
}

impl Operator for StrMatch {
    fn evaluate(&self, input: &[u8], ctx: &mut dyn OperatorContext) -> bool {
        let needle = self.needle.value(ctx);
        memmem::find(input, &needle).is_some()
    }

    fn required_literals(&self) -> Option<Vec<Vec<u8>>> {
        self.needle.literal_set(1)
    }
}
