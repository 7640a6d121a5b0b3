//! ModSecurity SecLang: parser, compiled ruleset and transaction engine.
//!
//! ```text
//!  .conf files ──► parser (AST, positions) ──► compile ──► Ruleset (immutable, Arc, Send + Sync)
//!                                                             │
//!  request line, headers, body chunks ──► Transaction ◄───────┘  (one per request)
//!  response status, headers, body     ──►     │ phases 1..5
//!                                             ▼
//!                               Intervention + matched rules (audit data)
//! ```
//!
//! The crate is pure: files are read only through the caller's [`FileLoader`],
//! time comes from the transaction's inputs.

pub mod body;
pub mod error;
pub mod loader;
pub mod macros;
pub mod operators;
pub mod transformations;

pub use error::Error;
pub use loader::FileLoader;
#[cfg(feature = "fs")]
pub use loader::FsLoader;
pub use macros::{MacroResolver, MacroString};
