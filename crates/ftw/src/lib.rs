//! go-ftw compatible runner for the OWASP CRS regression suite.
//!
//! Two layers:
//!
//! * [`model`], [`load`], [`request`]: the YAML test format, its overrides
//!   files, and the raw request bytes go-ftw would send for each stage. No
//!   engine dependency.
//! * [`runner`]: runs tests against a [`runner::Target`] (the thing that
//!   takes one stage's raw request and answers a status, a response and
//!   the WAF log lines), checks go-ftw's expectations, applies platform
//!   overrides and produces a [`runner::Summary`]. [`http1`] is the lenient
//!   request parser in-process targets use.
//!
//! ```
//! use ftw::{load, request};
//! let yaml = r#"
//! rule_id: 911100
//! tests:
//!   - test_id: 1
//!     stages:
//!       - input:
//!           method: "FOO"
//!           headers: {Host: localhost}
//!         output:
//!           log: {expect_ids: [911100]}
//! "#;
//! let file = load::parse_test(yaml, "911100.yaml").unwrap().unwrap();
//! let raw = request::build_request(&file.tests[0].stages[0].input).unwrap();
//! assert_eq!(raw, b"FOO / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
//! ```

use std::path::PathBuf;

pub use inprocess::{run_in_process, InProcess};
pub use runner::{Filter, StageRequest, StageResponse, Summary, Target};
pub use socket::SocketTarget;

pub mod http1;
pub mod inprocess;
pub mod load;
pub mod model;
pub mod request;
pub mod runner;
pub mod socket;

/// Everything that can go wrong while loading or running tests.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or directory could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file exceeds [`load::MAX_FILE_SIZE`].
    #[error("{path}: {size} bytes exceeds the test file size limit")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
    },
    /// Directory nesting exceeds [`load::MAX_DIR_DEPTH`].
    #[error("{path}: directories nested too deeply")]
    TooDeep {
        /// The directory.
        path: PathBuf,
    },
    /// Invalid YAML or a value of the wrong type.
    #[error("{path}: {message}")]
    Yaml {
        /// The file.
        path: PathBuf,
        /// What the YAML parser said.
        message: String,
    },
    /// No `rule_id` and no number in the file name.
    #[error("{path}: no rule_id and no number in the file name")]
    NoRuleId {
        /// The file.
        path: PathBuf,
    },
    /// `encoded_request` / `encoded_data` is not valid base64.
    #[error("invalid base64: {0}")]
    Base64(String),
    /// A regular expression in a test or filter does not compile.
    #[error("invalid regex {pattern:?}: {message}")]
    Regex {
        /// The pattern.
        pattern: String,
        /// Why.
        message: String,
    },
    /// The target could not be set up or failed outside a test's control.
    #[error("target: {0}")]
    Target(String),
}
