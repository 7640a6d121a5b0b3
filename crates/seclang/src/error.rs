//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong while loading rules. Evaluating a transaction
/// never fails: hostile input is recorded (REQBODY_ERROR, …), not returned.
///
/// Every variant is caused by the rules' author (a configuration error): the
/// fix is to edit the rules, retrying does not help.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A syntax or semantic error at a position in a rules file.
    #[error("{file}:{line}: {message}")]
    Parse {
        /// The file the directive came from (or `<inline>`).
        file: PathBuf,
        /// 1-based line of the directive's first line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A rule that parsed but cannot be compiled (bad regex, unknown operator, …).
    #[error("{file}:{line}: rule {rule_id}: {message}")]
    Rule {
        /// The file the rule came from.
        file: PathBuf,
        /// 1-based line of the rule.
        line: usize,
        /// The rule id (0 when the rule has none yet).
        rule_id: u64,
        /// What is wrong.
        message: String,
    },
    /// A file could not be read through the [`crate::FileLoader`].
    #[error("{path}: {source}")]
    Io {
        /// The file or glob.
        path: PathBuf,
        /// The loader's error.
        #[source]
        source: std::io::Error,
    },
}
