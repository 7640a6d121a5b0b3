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
    /// A version that cannot name a directory (`/`, `..`, empty, too long).
    #[error("invalid CRS version {0:?}: use digits, letters, '.', '-' and '_' (e.g. 4.28.0)")]
    InvalidVersion(String),
    /// Not an `http://` or `https://` URL palisade can fetch.
    #[error("invalid URL {0:?}: expected http://HOST[:PORT]/PATH or https://…")]
    InvalidUrl(String),
    /// Connecting, TLS or HTTP failed.
    #[error("download of {url} failed: {reason}")]
    Download {
        /// The URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The server answered with an error status.
    #[error("download of {url} failed: HTTP status {status}")]
    HttpStatus {
        /// The URL.
        url: String,
        /// The status.
        status: u16,
    },
    /// Redirect loop or chain longer than the limit.
    #[error("download of {url} failed: more than {limit} redirects")]
    TooManyRedirects {
        /// The first URL.
        url: String,
        /// The limit.
        limit: usize,
    },
    /// A size limit was exceeded.
    #[error("{what} exceeds the limit of {limit}")]
    TooLarge {
        /// What was too large.
        what: String,
        /// The limit (bytes or entries).
        limit: u64,
    },
    /// `--sha256` is not 64 hex digits.
    #[error("invalid SHA-256 {0:?}: expected 64 hex digits")]
    InvalidSha256(String),
    /// The archive's digest differs from the expected one.
    #[error("checksum mismatch: expected sha256 {expected}, the archive has {actual}; refusing to install")]
    ChecksumMismatch {
        /// Expected digest.
        expected: String,
        /// The archive's digest.
        actual: String,
    },
    /// No checksum given and none found next to the archive.
    #[error("no checksum: none given with --sha256 and {source_name} is not available ({reason}); pass --sha256 HEX, or --insecure-skip-verify to install unverified")]
    NoChecksum {
        /// Where the checksum file was looked for.
        source_name: String,
        /// Why it could not be read.
        reason: String,
    },
    /// The checksum file holds no SHA-256.
    #[error("{source_name} holds no SHA-256 (64 hex digits)")]
    BadChecksumFile {
        /// The checksum file.
        source_name: String,
    },
    /// The archive is not a valid .tar.gz.
    #[error("corrupt archive: {0}")]
    Archive(String),
    /// The archive holds an entry that would write outside the target
    /// directory or is not a plain file, directory or safe link.
    #[error("unsafe archive entry {entry:?}: {reason}; refusing to install")]
    UnsafeArchive {
        /// The entry's path as stored.
        entry: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The archive does not look like a CRS release.
    #[error("{0}")]
    Layout(String),
}
