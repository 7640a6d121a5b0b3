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
    /// Searcher built once for a constant needle.
    finder: Option<memmem::Finder<'static>>,
}

impl StrMatch {
    pub(crate) fn new(argument: &str) -> StrMatch {
        let needle = Param::new(argument);
        let finder = needle
            .constant()
            .map(|c| memmem::Finder::new(c).into_owned());
        StrMatch { needle, finder }
    }
}

impl Operator for StrMatch {
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
