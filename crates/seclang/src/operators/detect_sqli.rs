//! `@detectSQLi`: libinjection-compatible SQL injection detection
//! ([`detect::detect_sqli`]).
//!
//! Argument: none (ignored).
//! On a match with the `capture` action, `TX:0` is set to the libinjection
//! fingerprint (e.g. `s&1c`), as ModSecurity v3 does; CRS logs it through
//! `logdata:'... %{TX.0}'`. Without `capture`, nothing is stored.
//!
//! ```text
//! SecRule ARGS "@detectSQLi" "id:942100,capture,block,logdata:'%{TX.0}'"
//! ```
//!
//! Same as ModSecurity v3.

use super::{Operator, OperatorContext};

/// `@detectSQLi`.
#[derive(Debug)]
pub(crate) struct DetectSqli;

impl Operator for DetectSqli {
    fn evaluate(&self, input: &[u8], ctx: &mut dyn OperatorContext) -> bool {
        match detect::detect_sqli(input) {
            Some(fingerprint) => {
                if ctx.capturing() {
                    ctx.set_capture(0, fingerprint.as_str().as_bytes());
                }
                true
            }
            None => false,
        }
    }
}
