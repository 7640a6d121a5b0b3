//! palisade's monitoring crate.
//!
//! - [`audit`]: the WAF audit log in ModSecurity v3's JSON format, one
//!   object per line, readable by the tools that read ModSecurity's
//!   (CrowdSec, Wazuh, ELK, go-ftw).
//! - [`analyze`]: `palisade logs analyze`, nginx/Apache/palisade access
//!   logs run through the WAF rules offline, with a terminal, JSON and
//!   HTML report.
//!
//! The event bus, dashboard, alerts and anomaly detection described in
//! DESIGN.md will live here too.

pub mod analyze;
pub mod audit;

pub use audit::{AuditLog, AuditMode, Error, Message, Record, RelevantStatus};
