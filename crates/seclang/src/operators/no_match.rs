//! `@noMatch`: never matches.
//!
//! Argument: none (ignored).
//!
//! ```text
//! SecRule REQUEST_URI "@noMatch" "id:9,pass"
//! ```
//!
//! Same as ModSecurity v3.

use super::{Operator, OperatorContext};

/// `@noMatch`.
#[derive(Debug)]
pub(crate) struct NoMatch;

impl Operator for NoMatch {
    fn evaluate(&self, _input: &[u8], _ctx: &mut dyn OperatorContext) -> bool {
        false
    }
}
