//! The shield's one error type.

/// Errors of the shield: list files, ban administration, storage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A list entry is malformed.
    #[error("{file}:{line}: {message}")]
    List {
        /// The list file (or config key) it came from.
        file: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A list file cannot be read.
    #[error("cannot read list file {file}: {message}")]
    ListRead {
        /// The file.
        file: String,
        /// Why.
        message: String,
    },
    /// A ban request is invalid (bad address, reason too long, ...).
    #[error("invalid ban: {0}")]
    InvalidBan(String),
    /// The storage backend failed.
    #[error("shield storage: {0}")]
    Store(String),
}
