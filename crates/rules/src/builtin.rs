//! The built-in ruleset: SecLang rules embedded in the binary, for when no
//! OWASP CRS is installed.
//!
//! ```text
//!  crates/rules/builtin/*.conf ──include_str!──► RULES ──► add_to(builder) ──► Ruleset
//! ```
//!
//! The rules score like the CRS (each finding adds its severity's score to
//! `TX:palisade_anomaly_score`; CRITICAL 5, ERROR 4, WARNING 3) and rules
//! 1900900/1900901 deny with 403 at the end of phases 1 and 2 when the score
//! reaches `TX:palisade_inbound_threshold` (default [`DEFAULT_THRESHOLD`]).
//! Ids live in [`ID_RANGE`]; every rule carries [`TAG`] and one
//! `palisade-builtin/<category>` tag, so `SecRuleRemoveById 1900000-1900999`
//! or `SecRuleRemoveByTag palisade-builtin/xss` placed after them lift them.
//! docs/waf.md lists the rules and their false-positive risks.

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use seclang::RulesetBuilder;

/// Rule ids of the built-in ruleset, in a block the ModSecurity id
/// reservation list leaves unassigned (CRS: 900000–999999; local rules:
/// 1–99999).
pub const ID_RANGE: RangeInclusive<u64> = 1_900_000..=1_900_999;

/// Tag carried by every built-in rule.
pub const TAG: &str = "palisade-builtin";

/// Inbound anomaly score at which the built-in rules deny (one CRITICAL
/// finding).
pub const DEFAULT_THRESHOLD: u32 = 5;

/// Directory name the built-in files appear under in messages and listings
/// (`<builtin>/50-sqli.conf:12`). It does not exist on disk: an `Include`
/// inside a built-in file would fail, and none has one.
pub const VIRTUAL_DIR: &str = "<builtin>";

/// The built-in files, `(file name, SecLang text)`, in load order.
pub const RULES: &[(&str, &str)] = &[
    ("00-setup.conf", include_str!("../builtin/00-setup.conf")),
    (
        "10-protocol.conf",
        include_str!("../builtin/10-protocol.conf"),
    ),
    (
        "20-scanners.conf",
        include_str!("../builtin/20-scanners.conf"),
    ),
    (
        "30-traversal.conf",
        include_str!("../builtin/30-traversal.conf"),
    ),
    ("40-rce.conf", include_str!("../builtin/40-rce.conf")),
    ("50-sqli.conf", include_str!("../builtin/50-sqli.conf")),
    ("60-xss.conf", include_str!("../builtin/60-xss.conf")),
    (
        "90-evaluation.conf",
        include_str!("../builtin/90-evaluation.conf"),
    ),
];

/// The name a built-in file is registered under (`<builtin>/NAME`).
pub fn path_of(name: &str) -> PathBuf {
    Path::new(VIRTUAL_DIR).join(name)
}

/// Adds every built-in file to `builder`, in order. Add user rules (and
/// their `SecRuleRemove*`/`SecRuleUpdate*` directives) after it; engine
/// settings (`SecRuleEngine`, `SecRequestBodyAccess`…) are left to the
/// caller: the built-in files set none.
pub fn add_to(builder: RulesetBuilder<'_>) -> Result<RulesetBuilder<'_>, crate::Error> {
    let mut builder = builder;
    for (name, text) in RULES {
        builder = builder.add_str(text, path_of(name))?;
    }
    Ok(builder)
}

/// Whether `id` belongs to the built-in ruleset.
pub fn is_builtin(id: u64) -> bool {
    ID_RANGE.contains(&id)
}
