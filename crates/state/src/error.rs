//! The crate's one error type. Every variant says whether retrying the same
//! operation later can succeed ([`Error::is_retryable`]).

use std::time::Duration;

/// Everything that can go wrong in a state operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The caller passed something the store refuses (an empty or oversized
    /// key, a zero rate, a ban reason over the length limit, …). Retrying
    /// the same call cannot help.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The `[state]` configuration is unusable (unknown backend, bad Redis
    /// URL, a failure mode a class does not support). Not retryable: fix the
    /// config.
    #[error("invalid state configuration: {0}")]
    Config(String),
    /// A bounded table is full of live entries that must not be evicted
    /// (e.g. bans). Retryable: entries expire or are deleted.
    #[error("state capacity exceeded: {0}")]
    CapacityExceeded(String),
    /// The backend cannot be reached right now (Redis down or reconnecting,
    /// SQLite thread gone). Retryable.
    #[error("state backend unavailable: {0}")]
    Unavailable(String),
    /// The backend did not answer within the configured timeout. Retryable.
    #[error("state backend timed out after {0:?}")]
    Timeout(Duration),
    /// SQLite reported an error. Retryable only when the database was busy
    /// or locked by another process.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Redis answered with an error reply (e.g. `WRONGTYPE`, `NOAUTH`).
    /// Retryable only for transient replies (`LOADING`, `BUSY`, `TRYAGAIN`,
    /// `MASTERDOWN`).
    #[error("redis replied with an error: {0}")]
    Redis(String),
    /// Redis sent something that is not valid RESP2 or not the expected reply
    /// shape; the connection is dropped and re-established. Retryable.
    #[error("redis protocol error: {0}")]
    Protocol(String),
    /// A socket or file operation failed. Retryable.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// Stored data could not be decoded (hand-edited database, another
    /// program writing the same Redis keys). Not retryable.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
}

impl Error {
    /// Whether retrying the same operation later can succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::InvalidInput(_) | Error::Config(_) | Error::Corrupt(_) => false,
            Error::CapacityExceeded(_)
            | Error::Unavailable(_)
            | Error::Timeout(_)
            | Error::Protocol(_)
            | Error::Io(_) => true,
            Error::Sqlite(e) => matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            ),
            Error::Redis(msg) => ["LOADING", "BUSY", "TRYAGAIN", "MASTERDOWN"]
                .iter()
                .any(|p| msg.starts_with(p)),
        }
    }

    /// Whether this error means the backend itself is unhealthy (as opposed to
    /// a bad request): these trigger the configured failure mode.
    pub fn is_backend_failure(&self) -> bool {
        self.is_retryable() && !matches!(self, Error::CapacityExceeded(_))
    }
}

/// Result alias for state operations.
pub type Result<T> = std::result::Result<T, Error>;
