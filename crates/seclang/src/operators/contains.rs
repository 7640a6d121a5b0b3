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
    /// Searcher built once for a constant needle.
    finder: Option<memmem::Finder<'static>>,
}

impl Contains {
    pub(crate) fn new(argument: &str) -> Contains {
        let needle = Param::new(argument);
        let finder = needle
            .constant()
            .map(|c| memmem::Finder::new(c).into_owned());
        Contains { needle, finder }
    }
}

impl Operator for Contains {
    fn evaluate(&self, input: &[u8], ctx: &mut dyn OperatorContext) -> bool {
        match &self.finder {
            Some(finder) => finder.find(input).is_some(),
            None => memmem::find(input, &self.needle.value(ctx)).is_some(),
        }
    }

    fn required_literals(&self) -> Option<Vec<Vec<u8>>> {
        self.needle.literal_set(1)
    }
}
