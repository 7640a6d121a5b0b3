//! `@detectXSS`: libinjection-compatible cross-site-scripting detection
//! ([`detect::detect_xss`]).
//!
//! Argument: none (ignored).
//! On a match with the `capture` action, `TX:0` is set to the whole input,
//! as ModSecurity v3 does (libinjection's XSS check has no fingerprint).
//!
//! ```text
//! SecRule ARGS "@detectXSS" "id:941100,block"
//! ```
//!
//! Same as ModSecurity v3.

use super::{Operator, OperatorContext};

/// `@detectXSS`.
#[derive(Debug)]
pub(crate) struct DetectXss;

impl Operator for DetectXss {
    fn evaluate(&self, input: &[u8], ctx: &mut dyn OperatorContext) -> bool {
        if detect::detect_xss(input) {
            if ctx.capturing() {
                ctx.set_capture(0, input);
            }
            true
        } else {
            false
        }
    }
}
