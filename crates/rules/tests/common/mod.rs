//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use seclang::{FsLoader, Ruleset, RulesetBuilder};

/// Engine settings a gateway gives the built-in rules (the rules set none).
pub const ENGINE: &str = "SecRuleEngine On\nSecRequestBodyAccess On\n\
SecRequestBodyLimit 13107200\nSecRequestBodyNoFilesLimit 131072\n";

/// `../shared` from the repository root, or `$PALISADE_SHARED`.
pub fn shared() -> PathBuf {
    std::env::var_os("PALISADE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared")))
}

/// Engine settings, the built-in rules, then `extra` (exclusions…).
pub fn builtin_with(extra: &str) -> Arc<Ruleset> {
    let b = RulesetBuilder::new(&FsLoader)
        .add_str(ENGINE, "engine.conf")
        .unwrap();
    let b = rules::builtin::add_to(b).unwrap();
    Arc::new(b.add_str(extra, "extra.conf").unwrap().build().unwrap())
}
