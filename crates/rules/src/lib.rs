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

use std::path::Path;

use seclang::RulesetBuilder;

/// The rules [`load_default`] chose.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Selected {
    /// An OWASP CRS installation (see [`crs::locate`]).
    Crs(crs::CrsInstall),
    /// No CRS was found: the [`builtin`] rules.
    Builtin,
}

/// Adds the rules palisade loads by default to `builder`: the CRS that
/// [`crs::locate`] finds (`configured`, then `<data_dir>/crs/current`,
/// then Debian's package), else the built-in rules. A `configured`
/// directory without a CRS is an error, not a silent fallback.
pub fn load_default<'a>(
    builder: RulesetBuilder<'a>,
    configured: Option<&Path>,
    data_dir: &Path,
) -> Result<(RulesetBuilder<'a>, Selected), Error> {
    match crs::locate(configured, data_dir) {
        Some(install) => Ok((install.add_to(builder)?, Selected::Crs(install))),
        None => match configured {
            Some(p) => Err(Error::Layout(format!(
                "{}: no CRS there (expected a rules/ directory)",
                p.display()
            ))),
            None => Ok((builtin::add_to(builder)?, Selected::Builtin)),
        },
    }
}
