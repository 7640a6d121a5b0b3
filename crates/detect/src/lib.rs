//! SQL injection and cross-site-scripting detectors that behave like
//! libinjection's `libinjection_sqli` and `libinjection_xss`.
//!
//! ```text
//!  input bytes ──► sqli::tokenize ──► fold ──► fingerprint ──► table lookup ──► Some(fp)
//!              └─► html5::tokenize (5 start contexts) ──► xss heuristics ──► bool
//! ```
//!
//! The crate is pure: no I/O, no allocation that grows with anything but the
//! input, no panics on any byte sequence. The fingerprint and keyword tables
//! are data from libinjection (BSD-3-Clause, see `NOTICE`); the logic is ours.

pub mod html5;
pub mod sqli;
pub mod xss;

pub use sqli::{detect_sqli, Fingerprint};
pub use xss::detect_xss;
