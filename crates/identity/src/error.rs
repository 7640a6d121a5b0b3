//! The one error type of the identity crate.

use std::time::Duration;

/// Everything that can go wrong in identity operations. Messages are meant
/// for operators and, where marked, may be shown to the user.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A username failed validation (empty, too long, control characters).
    #[error("invalid username: {0}")]
    InvalidUsername(String),
    /// A password was refused by the policy; the text says why.
    #[error("password rejected: {0}")]
    WeakPassword(String),
    /// Input longer than a named limit.
    #[error("{what} too long ({len} bytes, limit {limit})")]
    TooLong {
        /// What was too long.
        what: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// A stored password hash is not a valid argon2 PHC string.
    #[error("malformed password hash: {0}")]
    BadHash(String),
    /// Too many hashes in flight: try again later (login flood).
    #[error("password hashing busy: too many concurrent logins")]
    Busy,
    /// The user does not exist.
    #[error("no such user: {0}")]
    NoSuchUser(String),
    /// The user already exists.
    #[error("user already exists: {0}")]
    UserExists(String),
    /// TOTP secret or code malformed, or TOTP not enrolled.
    #[error("totp: {0}")]
    Totp(String),
    /// Login temporarily refused after too many failures.
    #[error("too many failed attempts; retry in {}s", .retry_after.as_secs().max(1))]
    Locked {
        /// When the lock lifts.
        retry_after: Duration,
    },
    /// An access rule is invalid (bad CIDR, regex, policy).
    #[error("access rule {rule}: {msg}")]
    Rule {
        /// Rule name or index.
        rule: String,
        /// What is wrong.
        msg: String,
    },
    /// A breached-password list could not be read or is malformed.
    #[error("breached-password list: {0}")]
    BreachList(String),
    /// The user database failed.
    #[error("user database: {0}")]
    Db(#[from] rusqlite::Error),
    /// The state store (sessions, counters) failed.
    #[error("state store: {0}")]
    State(#[from] state::Error),
    /// File I/O.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A stored record could not be decoded.
    #[error("corrupt record: {0}")]
    Corrupt(String),
}

/// Result with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
