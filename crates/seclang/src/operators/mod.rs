//! Operators (`@rx`, `@pm`, `@detectSQLi`, …): one file per operator behind
//! the registry in [`compile`].
//!
//! An operator is compiled once per rule (regexes, phrase automata, IP sets
//! are built here) and evaluated many times with no allocation unless it
//! captures or its argument holds a macro.

use std::borrow::Cow;
use std::fmt;
use std::path::Path;

use crate::loader::FileLoader;
use crate::macros::MacroString;

/// What an operator may ask of the transaction while it evaluates.
pub trait OperatorContext {
    /// Expands a macro argument (`@eq %{tx.inbound_anomaly_score_threshold}`).
    fn expand<'a>(&self, arg: &'a MacroString) -> Cow<'a, [u8]>;
    /// Whether the rule has the `capture` action; operators skip capture work otherwise.
    fn capturing(&self) -> bool;
    /// Stores capture `index` (0..=9) as `TX:index`.
    fn set_capture(&mut self, index: usize, value: &[u8]);
}

/// A compiled operator.
pub trait Operator: Send + Sync + fmt::Debug {
    /// True when `input` matches. Negation (`!@`) is applied by the caller.
    fn evaluate(&self, input: &[u8], ctx: &mut dyn OperatorContext) -> bool;

    /// Byte strings of which at least one must occur in the input (ASCII case
    /// folded to lower case when [`Operator::literals_case_insensitive`]) for
    /// [`Operator::evaluate`] to return true. The engine runs one aho-corasick
    /// pass over all rules' literals and skips operators none of whose
    /// literals occur. `None` means no such set is known.
    fn required_literals(&self) -> Option<Vec<Vec<u8>>> {
        None
    }

    /// Whether [`Operator::required_literals`] must be matched ASCII-case-insensitively.
    fn literals_case_insensitive(&self) -> bool {
        false
    }
}

/// Where an operator's data files are resolved from.
#[derive(Clone, Copy)]
pub struct CompileContext<'a> {
    /// Loader for `@pmFromFile`, `@ipMatchFromFile`.
    pub files: &'a dyn FileLoader,
    /// Directory of the rules file that holds the rule; relative data file
    /// names resolve against it.
    pub base_dir: &'a Path,
}

impl fmt::Debug for CompileContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompileContext")
            .field("base_dir", &self.base_dir)
            .finish_non_exhaustive()
    }
}

/// Compiles operator `name` (without `@`, any case) with its raw `argument`.
/// The error is a message; the parser wraps it with file, line and rule id.
pub fn compile(
    name: &str,
    argument: &str,
    _ctx: &CompileContext<'_>,
) -> Result<Box<dyn Operator>, String> {
    match name.to_ascii_lowercase().as_str() {
        "unconditionalmatch" => Ok(Box::new(Unconditional)),
        _ => Err(format!(
            "unsupported operator @{name} (argument {argument:?})"
        )),
    }
}

/// `@unconditionalMatch`: always matches.
#[derive(Debug)]
struct Unconditional;

impl Operator for Unconditional {
    fn evaluate(&self, _input: &[u8], _ctx: &mut dyn OperatorContext) -> bool {
        true
    }
}
