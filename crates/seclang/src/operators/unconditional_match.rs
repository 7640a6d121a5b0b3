//! `@unconditionalMatch`: always matches.
//!
//! Argument: none (ignored).
//!
//! ```text
//! SecRule REQUEST_URI "@unconditionalMatch" "id:8,pass,setvar:tx.seen=1"
//! ```
//!
//! Same as ModSecurity v3.

use super::{Operator, OperatorContext};

/// `@unconditionalMatch`.
#[derive(Debug)]
pub(crate) struct UnconditionalMatch;

impl Operator for UnconditionalMatch {
    fn evaluate(&self, _input: &[u8], _ctx: &mut dyn OperatorContext) -> bool {
        true
    }
}
