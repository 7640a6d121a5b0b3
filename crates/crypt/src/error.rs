//! The crate's one error type.

/// Everything that can go wrong in this crate. Messages never contain key
/// material or plaintext.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A key is not 32 bytes of url-safe base64 (Fernet) or has the wrong length.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// A Fernet token is malformed, was made with another key, or was altered.
    /// (One variant for all of these, like Python's `InvalidToken`: telling
    /// them apart would help an attacker.)
    #[error("invalid token (malformed, altered, or made with another key)")]
    InvalidToken,
    /// A Fernet token is authentic but older than the allowed TTL.
    #[error("token expired: made at {timestamp}, ttl {ttl}s, now {now}")]
    Expired {
        /// The token's timestamp (Unix seconds).
        timestamp: u64,
        /// The TTL that was applied.
        ttl: u64,
        /// The time used for the check.
        now: u64,
    },
    /// A Fernet token's timestamp lies further in the future than the allowed clock skew.
    #[error("token timestamp {timestamp} is in the future (now {now})")]
    FromFuture {
        /// The token's timestamp (Unix seconds).
        timestamp: u64,
        /// The time used for the check.
        now: u64,
    },
    /// An encrypted stream is not in the palisade stream format.
    #[error("not a palisade encrypted stream: {0}")]
    StreamFormat(String),
    /// An encrypted stream failed authentication: altered, reordered,
    /// truncated or made with another key.
    #[error("encrypted stream failed authentication at chunk {chunk}: {reason}")]
    StreamAuth {
        /// Index of the chunk that failed.
        chunk: u64,
        /// What was detected.
        reason: &'static str,
    },
    /// An input exceeds one of the crate's limits.
    #[error("{0}")]
    Limit(String),
    /// A manifest is malformed or its signature does not verify.
    #[error("manifest: {0}")]
    Manifest(String),
    /// Reading or writing failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The operating system's random number generator failed.
    #[error("random number generator failed: {0}")]
    Random(String),
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}
