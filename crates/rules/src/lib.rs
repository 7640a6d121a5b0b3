//! Where palisade's WAF rules come from.
//!
//! - [`builtin`]: a compact ruleset compiled into the binary, used when no
//!   OWASP CRS is installed (protocol sanity, SQLi, XSS, path traversal,
//!   command injection, scanners), loadable and excludable like any rules;
//!
//! Unlike `seclang` (pure), this crate does I/O: it reads the filesystem and,
//! for CRS installation, the network.

pub mod builtin;
mod error;

pub use error::Error;
