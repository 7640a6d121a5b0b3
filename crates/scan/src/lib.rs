//! palisade scanners.
//!
//! - [`ports`]: asynchronous TCP connect scan with adaptive concurrency
//!   bounded by the open-file limit, self-connect guard and banner-based
//!   service identification ([`probe`]); port lists from [`portspec`].
//! - [`deps`]: lockfiles (Cargo.lock, requirements.txt, poetry.lock,
//!   package-lock.json, go.sum) checked against an OSV advisory database on
//!   disk ([`osv`]), with semver and PEP 440 ([`pep440`]) range evaluation;
//!   [`dbupdate`] downloads and installs an OSV bulk export.
//!
//! - [`target`]: CIDR targets expanded into bounded host lists.
//! - [`web`]: a ZAP-baseline-like web scan (bounded crawl, passive checks,
//!   safe active probes, rule files).
//! - [`finding`]: the common [`finding::Finding`] every scanner maps to, and
//!   [`report`]: the `palisade audit` report (terminal, JSON, SARIF, HTML,
//!   grade).
//!
//! Findings carry a [`Severity`] so a CLI can gate on `--fail-on`.

pub mod dbupdate;
pub mod deps;
pub mod finding;
pub mod osv;
pub mod pep440;
pub mod ports;
pub mod portspec;
pub mod probe;
pub mod progress;
pub mod report;
pub mod target;
pub mod tls;
pub mod web;

use serde::Serialize;

/// Everything that stops a scan from producing a trustworthy result.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A port specification such as `1-1024,8080,top100` is malformed.
    #[error("port spec: {0}")]
    PortSpec(String),
    /// The host name did not resolve to any address.
    #[error("cannot resolve host {0:?}")]
    Resolve(String),
    /// A lockfile could not be read or parsed.
    #[error("lockfile {path}: {msg}")]
    Lockfile {
        /// The lockfile path.
        path: String,
        /// What is wrong with it.
        msg: String,
    },
    /// The advisory database is missing, empty, unreadable or stale.
    #[error("advisory database {path}: {msg}")]
    Database {
        /// The database directory.
        path: String,
        /// What is wrong with it.
        msg: String,
    },
    /// A target is not an `http://` or `https://` URL.
    #[error("invalid URL {0:?}: expected http(s)://host[:port][/path]")]
    Url(String),
    /// An HTTP exchange failed (refused, timed out, not HTTP, TLS failure).
    #[error("{url}: {reason}")]
    Http {
        /// The URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// An I/O error outside a lockfile or the database.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// How bad a finding is; ordered so `a >= b` means "at least as severe".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Informational (an open port).
    Info,
    /// Low.
    Low,
    /// Medium (GHSA "MODERATE").
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

impl Severity {
    /// Parses `info|low|medium|moderate|high|critical` (any case).
    pub fn parse(s: &str) -> Option<Severity> {
        match s.to_ascii_lowercase().as_str() {
            "info" | "none" => Some(Severity::Info),
            "low" => Some(Severity::Low),
            "medium" | "moderate" => Some(Severity::Medium),
            "high" => Some(Severity::High),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}
