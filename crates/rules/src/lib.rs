//! Where palisade's WAF rules come from.
//!
//! - [`builtin`]: a compact ruleset compiled into the binary, used when no
//!   OWASP CRS is installed (protocol sanity, SQLi, XSS, path traversal,
//!   command injection, scanners), loadable and excludable like any rules;
//! - [`crs`]: finding an installed OWASP CRS (configured path, the data
//!   directory, Debian's package) and installing a release archive
//!   (download, SHA-256 check, safe unpacking, atomic switch).
//!
//! Unlike `seclang` (pure), this crate does I/O: it reads the filesystem and,
//! for CRS installation, the network.

pub mod builtin;
pub mod crs;
mod error;
mod http;

pub use error::Error;
