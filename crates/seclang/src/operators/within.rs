//! `@within`: true when the *input* occurs somewhere in the argument.
//!
//! Argument: a byte string, usually a macro holding a list
//! (`%{tx.allowed_methods}` = `GET HEAD POST OPTIONS`). The test is a plain
//! case-sensitive substring search of the input in the argument, exactly as
//! ModSecurity v3 does it: there is no tokenising, so `HEAD` and `EA` are both
//! "within" `GET HEAD`; CRS lists rely on delimiters (`|`, `/`, spaces) added
//! by the rules themselves. An **empty input always matches** (ModSecurity
//! returns true before searching).
//!
//! ```text
//! SecRule REQUEST_METHOD "!@within %{tx.allowed_methods}" "id:911100,block"
//! ```
//!
//! Same as ModSecurity v3. No required literals: the input is the needle.

use memchr::memmem;

use super::{Operator, OperatorContext, Param};

/// Compiled `@within`.
#[derive(Debug)]
pub(crate) struct Within {
    haystack: Param,
}

impl Within {
    pub(crate) fn new(argument: &str) -> Within {
        Within {
            haystack: Param::new(argument),
        }
    }
}

impl Operator for Within {
    fn evaluate(&self, input: &[u8], ctx: &mut dyn OperatorContext) -> bool {
        if input.is_empty() {
            return true;
        }
        memmem::find(&self.haystack.value(ctx), input).is_some()
    }
}
