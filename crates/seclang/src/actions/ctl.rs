//! `ctl:` actions: configuration changes for the current transaction only,
//! applied when the rule (chain) matches.
//!
//! - `ruleEngine=On|Off|DetectionOnly`
//! - `ruleRemoveById=ID` or `=A-B`: later rules with that id do not run;
//! - `ruleRemoveByTag=TAG`: later rules with exactly that tag do not run
//!   (ModSecurity v3 compares tags as strings, v2 used a regex);
//! - `ruleRemoveTargetById=ID;VAR:key` / `ruleRemoveTargetByTag=TAG;VAR:key`:
//!   the rule(s) ignore that target;
//! - `requestBodyProcessor=URLENCODED|MULTIPART|JSON|XML`,
//!   `requestBodyAccess=On|Off`, `forceRequestBodyVariable=On|Off`,
//!   `responseBodyAccess=On|Off`, `auditEngine=…`, `auditLogParts=…`.

use crate::variables::{parse_targets, Target};

/// The rule engine mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EngineMode {
    /// Rules run and interventions are returned.
    #[default]
    On,
    /// No rule runs.
    Off,
    /// Rules run and are recorded; nothing is interrupted.
    DetectionOnly,
}

impl EngineMode {
    /// Parses `On`, `Off`, `DetectionOnly` (any case).
    pub fn parse(v: &str) -> Result<EngineMode, String> {
        match v.trim().to_ascii_lowercase().as_str() {
            "on" => Ok(EngineMode::On),
            "off" => Ok(EngineMode::Off),
            "detectiononly" => Ok(EngineMode::DetectionOnly),
            _ => Err(format!("invalid rule engine mode {v:?}")),
        }
    }
}

/// A parsed `ctl:` action.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Ctl {
    /// `ruleEngine`.
    RuleEngine(EngineMode),
    /// `ruleRemoveById` (inclusive range; a single id is `(id, id)`).
    RuleRemoveById(u64, u64),
    /// `ruleRemoveByTag` (exact tag).
    RuleRemoveByTag(String),
    /// `ruleRemoveTargetById`.
    RuleRemoveTargetById(u64, u64, Vec<Target>),
    /// `ruleRemoveTargetByTag`.
    RuleRemoveTargetByTag(String, Vec<Target>),
    /// `requestBodyProcessor` (upper-cased name).
    RequestBodyProcessor(String),
    /// `requestBodyAccess`.
    RequestBodyAccess(bool),
    /// `forceRequestBodyVariable`.
    ForceRequestBodyVariable(bool),
    /// `responseBodyAccess`.
    ResponseBodyAccess(bool),
    /// `auditEngine` (recorded for the audit logger).
    AuditEngine(String),
    /// `auditLogParts` (recorded for the audit logger).
    AuditLogParts(String),
}

/// Parses `On`/`Off` (any case).
pub fn on_off(v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "1" => Ok(true),
        "off" | "false" | "0" => Ok(false),
        _ => Err(format!("expected On or Off, got {v:?}")),
    }
}

/// Parses `N` or `A-B` into an inclusive range.
pub fn id_range(v: &str) -> Result<(u64, u64), String> {
    let v = v.trim();
    let parse = |s: &str| {
        s.trim()
            .parse::<u64>()
            .map_err(|_| format!("invalid rule id {s:?}"))
    };
    match v.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (parse(a)?, parse(b)?);
            if a > b {
                return Err(format!("invalid rule id range {v:?}"));
            }
            Ok((a, b))
        }
        None => {
            let a = parse(v)?;
            Ok((a, a))
        }
    }
}

impl Ctl {
    /// Parses the value after `ctl:`.
    pub fn parse(v: &str) -> Result<Ctl, String> {
        let (name, value) = v
            .split_once('=')
            .ok_or_else(|| format!("ctl: expected name=value in {v:?}"))?;
        let err = |e: String| format!("ctl:{name}: {e}");
        Ok(match name.trim().to_ascii_lowercase().as_str() {
            "ruleengine" => Ctl::RuleEngine(EngineMode::parse(value).map_err(err)?),
            "ruleremovebyid" => {
                let (a, b) = id_range(value).map_err(err)?;
                Ctl::RuleRemoveById(a, b)
            }
            "ruleremovebytag" => Ctl::RuleRemoveByTag(value.trim().to_string()),
            "ruleremovetargetbyid" => {
                let (id, targets) = value
                    .split_once(';')
                    .ok_or_else(|| err("expected ID;TARGET".into()))?;
                let (a, b) = id_range(id).map_err(err)?;
                Ctl::RuleRemoveTargetById(a, b, parse_targets(targets).map_err(err)?)
            }
            "ruleremovetargetbytag" => {
                let (tag, targets) = value
                    .split_once(';')
                    .ok_or_else(|| err("expected TAG;TARGET".into()))?;
                Ctl::RuleRemoveTargetByTag(
                    tag.trim().to_string(),
                    parse_targets(targets).map_err(err)?,
                )
            }
            "requestbodyprocessor" => {
                let p = value.trim().to_ascii_uppercase();
                if !matches!(p.as_str(), "URLENCODED" | "MULTIPART" | "JSON" | "XML") {
                    return Err(err(format!("unknown body processor {value:?}")));
                }
                Ctl::RequestBodyProcessor(p)
            }
            "requestbodyaccess" => Ctl::RequestBodyAccess(on_off(value).map_err(err)?),
            "forcerequestbodyvariable" => {
                Ctl::ForceRequestBodyVariable(on_off(value).map_err(err)?)
            }
            "responsebodyaccess" => Ctl::ResponseBodyAccess(on_off(value).map_err(err)?),
            "auditengine" => Ctl::AuditEngine(value.trim().to_string()),
            "auditlogparts" => Ctl::AuditLogParts(value.trim().to_string()),
            other => return Err(format!("unsupported ctl option {other}")),
        })
    }
}
