//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong while finding, installing or loading rules.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Rules did not parse or compile.
    #[error("{0}")]
    Rules(#[from] seclang::Error),
    /// A file or directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
}
