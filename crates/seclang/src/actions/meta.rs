//! Metadata actions: `id`, `phase`, `msg`, `logdata`, `severity`, `tag`,
//! `ver`, `rev`, `maturity`, `accuracy`, and the logging switches `log`,
//! `nolog`, `auditlog`, `noauditlog`, plus `capture` and `multiMatch`.
//!
//! They do not change the transaction; the engine copies them into the
//! matched-rule record. In a chain they belong to the chain's first rule.
//! `msg` and `logdata` are expanded when the whole chain matched, so
//! `%{MATCHED_VAR}` refers to the last variable that matched.

use super::{need, number, Action};
use crate::macros::MacroString;

/// Severity names in ModSecurity's order (index = numeric severity).
pub const SEVERITIES: [&str; 8] = [
    "EMERGENCY",
    "ALERT",
    "CRITICAL",
    "ERROR",
    "WARNING",
    "NOTICE",
    "INFO",
    "DEBUG",
];

pub(super) fn parse(name: &str, value: Option<&str>) -> Result<Option<Action>, String> {
    Ok(Some(match name {
        "id" => {
            let id: u64 = number(name, value)?;
            if id == 0 {
                return Err("action id: 0 is not a valid rule id".into());
            }
            Action::Id(id)
        }
        "phase" => Action::Phase(parse_phase(need(name, value)?)?),
        "msg" => Action::Msg(MacroString::parse(need(name, value)?)),
        "logdata" => Action::LogData(MacroString::parse(need(name, value)?)),
        "severity" => Action::Severity(parse_severity(need(name, value)?)?),
        "tag" => Action::Tag(MacroString::parse(need(name, value)?)),
        "ver" => Action::Ver(need(name, value)?.to_string()),
        "rev" => Action::Rev(need(name, value)?.to_string()),
        "maturity" => Action::Maturity(number(name, value)?),
        "accuracy" => Action::Accuracy(number(name, value)?),
        "capture" => Action::Capture,
        "multimatch" => Action::MultiMatch,
        "log" => Action::Log,
        "nolog" => Action::NoLog,
        "auditlog" => Action::AuditLog,
        "noauditlog" => Action::NoAuditLog,
        _ => return Ok(None),
    }))
}

/// `1`..`5`, or `request` (2), `response` (4), `logging` (5).
pub fn parse_phase(v: &str) -> Result<u8, String> {
    let v = v.trim();
    let p = match v.to_ascii_lowercase().as_str() {
        "request" => 2,
        "response" => 4,
        "logging" => 5,
        other => other
            .parse::<u8>()
            .map_err(|_| format!("action phase: invalid phase {v:?}"))?,
    };
    if !(1..=5).contains(&p) {
        return Err(format!("action phase: invalid phase {v:?}"));
    }
    Ok(p)
}

/// A number 0..=7 or one of [`SEVERITIES`] (any case).
pub fn parse_severity(v: &str) -> Result<u8, String> {
    let v = v.trim();
    if let Ok(n) = v.parse::<u8>() {
        if n <= 7 {
            return Ok(n);
        }
    }
    SEVERITIES
        .iter()
        .position(|s| s.eq_ignore_ascii_case(v))
        .map(|p| p as u8)
        .ok_or_else(|| format!("action severity: invalid severity {v:?}"))
}
