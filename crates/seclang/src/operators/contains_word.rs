//! `@containsWord`: true when the argument occurs in the input as a whole
//! word.
//!
//! Argument: a byte string, macros expanded at evaluation. Case-sensitive.
//! An occurrence counts when the byte before it (if any) and the byte after
//! it (if any) are not ASCII letters. As in ModSecurity v3, only `A-Z`/`a-z`
//! are word characters: digits, `_` and bytes >= 0x80 are boundaries, so
//! `select` is a word in `1select_`. An empty argument matches every input;
//! otherwise an empty input never matches.
//!
//! ```text
//! SecRule ARGS "@containsWord select" "id:6,deny"
//! ```
//!
//! Same as ModSecurity v3.

use memchr::memmem;

use super::{Operator, OperatorContext, Param};

/// Compiled `@containsWord`.
#[derive(Debug)]
pub(crate) struct ContainsWord {
    word: Param,
    /// Searcher built once for a constant word.
    finder: Option<memmem::Finder<'static>>,
}

impl ContainsWord {
    pub(crate) fn new(argument: &str) -> ContainsWord {
        let word = Param::new(argument);
        let finder = word.constant().map(|c| memmem::Finder::new(c).into_owned());
        ContainsWord { word, finder }
    }
}

/// True when `pos` is outside `input` or `input[pos]` is not an ASCII letter.
fn boundary(input: &[u8], pos: Option<usize>) -> bool {
    match pos.and_then(|p| input.get(p)) {
        Some(b) => !b.is_ascii_alphabetic(),
        None => true,
    }
}

impl Operator for ContainsWord {
    fn evaluate(&self, input: &[u8], ctx: &mut dyn OperatorContext) -> bool {
        let word = self.word.value(ctx);
        if word.is_empty() {
            return true;
        }
        // Overlapping occurrences, as ModSecurity's `find(word, pos + 1)`
        // loop: a later occurrence may be a word when an earlier one is not.
        let built;
        let finder = match &self.finder {
            Some(f) => f,
            None => {
                built = memmem::Finder::new(&*word);
                &built
            }
        };
        let mut from = 0;
        while let Some(found) = input.get(from..).and_then(|rest| finder.find(rest)) {
            let pos = from + found;
            if boundary(input, pos.checked_sub(1)) && boundary(input, Some(pos + word.len())) {
                return true;
            }
            from = pos + 1;
        }
        false
    }

    fn required_literals(&self) -> Option<Vec<Vec<u8>>> {
        self.word.literal_set(1)
    }
}
