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
//!
//! ```
//! use std::sync::Arc;
//! use seclang::{Ruleset, TransactionInput, FsLoader};
//!
//! let rules = r#"
//! SecRuleEngine On
//! SecRule ARGS:q "@unconditionalMatch" "id:1,phase:1,deny,status:403,msg:'q seen'"
//! "#;
//! let rs = Arc::new(Ruleset::from_str(rules, "inline.conf", &FsLoader).unwrap());
//! let mut tx = rs.transaction(TransactionInput::default());
//! tx.request_line("GET", "/?q=1", "HTTP/1.1");
//! let i = tx.process_request_headers().unwrap();
//! assert_eq!((i.status, i.rule_id), (403, 1));
//! ```

pub mod actions;
pub mod body;
mod body_glue;
pub mod error;
pub mod loader;
pub mod macros;
mod memo;
pub mod operators;
pub mod parser;
mod plain;
pub mod ruleset;
pub mod store;
mod tcache;
pub mod transaction;
pub mod transformations;
pub mod variables;

pub use actions::ctl::EngineMode;
pub use error::Error;
pub use loader::FileLoader;
#[cfg(feature = "fs")]
pub use loader::FsLoader;
pub use macros::{MacroResolver, MacroString};
pub use parser::ast::LimitAction;
pub use ruleset::{Config, Rule, Ruleset, RulesetBuilder};
pub use store::{CollectionStore, MemoryStore};
pub use transaction::{
    Intervention, InterventionAction, MatchedRule, Transaction, TransactionInput,
};
pub use variables::Var;
