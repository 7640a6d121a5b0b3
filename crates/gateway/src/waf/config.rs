//! The `[waf]` table, `[waf.audit_log]` and each route's `[route.waf]`:
//! raw TOML types and their validation into [`WafConfig`] / [`RouteWaf`].
//!
//! Route settings fall back to the `[waf]` defaults; a route without a
//! `waf` table takes the global `mode` (default `off`). A route whose WAF
//! is on and names no rule source gets the `builtin` rules.

use std::path::PathBuf;

use monitor::{AuditMode, RelevantStatus};
use serde::Deserialize;
use toml::Spanned;

use crate::config::V;
use crate::error::Result;

/// Highest CRS paranoia level.
pub const MAX_PARANOIA_LEVEL: u8 = 4;

/// Largest accepted anomaly threshold (CRS scores are small integers; a
/// huge value is a typo that would silently disable blocking).
pub const MAX_ANOMALY_THRESHOLD: u32 = 10_000;

/// Most exclusions per route (each one is a directive compiled with the
/// rules; bounds config-driven compile work).
pub const MAX_EXCLUSIONS: usize = 1000;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWaf {
    mode: Option<Spanned<String>>,
    crs: Option<Spanned<PathBuf>>,
    paranoia_level: Option<Spanned<i64>>,
    inbound_anomaly_threshold: Option<Spanned<i64>>,
    outbound_anomaly_threshold: Option<Spanned<i64>>,
    response_inspection: Option<bool>,
    audit_log: Option<RawAuditLog>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuditLog {
    path: Option<PathBuf>,
    mode: Option<Spanned<String>>,
    relevant_statuses: Option<Spanned<Vec<String>>>,
}

/// `crs = true` (the `[waf] crs` install) or `crs = "/path"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawCrs {
    On(bool),
    Path(PathBuf),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRouteWaf {
    mode: Option<Spanned<String>>,
    crs: Option<Spanned<RawCrs>>,
    builtin: Option<bool>,
    rules: Option<Vec<Spanned<String>>>,
    inline: Option<Spanned<String>>,
    paranoia_level: Option<Spanned<i64>>,
    inbound_anomaly_threshold: Option<Spanned<i64>>,
    outbound_anomaly_threshold: Option<Spanned<i64>>,
    response_inspection: Option<bool>,
    #[serde(default)]
    exclusions: Vec<RawExclusion>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExclusion {
    id: Option<Spanned<i64>>,
    tag: Option<Spanned<String>>,
    target: Option<Spanned<String>>,
}

/// What the WAF does with a route's requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum WafMode {
    /// Not inspected; bodies stream untouched.
    #[default]
    Off,
    /// Inspected and logged; nothing is blocked (`DetectionOnly`).
    Detect,
    /// Inspected; interventions answer the client (`On`).
    Block,
}

/// Where a route's rules come from, in load order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RuleSource {
    /// A CRS install: `crs-setup.conf` (or `.example`), the palisade
    /// settings (paranoia level, thresholds), then `rules/*.conf`.
    Crs(PathBuf),
    /// palisade's embedded ruleset.
    Builtin,
    /// A `.conf` file or a glob of them.
    File(String),
    /// Rules text from the config.
    Inline(String),
}

/// A rule exclusion, compiled after the rules.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Exclusion {
    /// `SecRuleRemoveById`.
    Id(u64),
    /// `SecRuleRemoveByTag`.
    Tag(String),
    /// `SecRuleUpdateTargetById id "!target"`.
    TargetById(u64, String),
    /// `SecRuleUpdateTargetByTag "tag" "!target"`.
    TargetByTag(String, String),
}

/// `[waf.audit_log]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditLogConfig {
    /// File (appended to). Default `<data_dir>/audit.log`.
    pub path: Option<PathBuf>,
    /// `relevant` (default), `all` or `off`.
    pub mode: AuditMode,
    /// Statuses that make a transaction relevant. Default `5xx 4xx !404`.
    pub relevant_statuses: RelevantStatus,
}

/// `[waf]`: defaults for every route and the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WafConfig {
    /// Mode of routes without their own `mode`. Default off.
    pub mode: WafMode,
    /// The CRS install used by `crs = true`.
    pub crs: Option<PathBuf>,
    /// Default paranoia level (1..=4). Default 1.
    pub paranoia_level: u8,
    /// Default inbound anomaly threshold. Default 5.
    pub inbound_anomaly_threshold: u32,
    /// Default outbound anomaly threshold. Default 4.
    pub outbound_anomaly_threshold: u32,
    /// Default for response inspection (phases 3/4 bodies). Default false.
    pub response_inspection: bool,
    /// The audit log.
    pub audit_log: AuditLogConfig,
}

impl Default for WafConfig {
    fn default() -> Self {
        WafConfig {
            mode: WafMode::Off,
            crs: None,
            paranoia_level: 1,
            inbound_anomaly_threshold: 5,
            outbound_anomaly_threshold: 4,
            response_inspection: false,
            audit_log: AuditLogConfig {
                path: None,
                mode: AuditMode::Relevant,
                relevant_statuses: RelevantStatus::default(),
            },
        }
    }
}

/// A route's WAF settings (only for routes whose mode is not off).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RouteWaf {
    /// Detect or block.
    pub mode: WafMode,
    /// Rule sources in load order.
    pub sources: Vec<RuleSource>,
    /// CRS paranoia level (blocking and detection), 1..=4.
    pub paranoia_level: u8,
    /// CRS inbound anomaly score threshold.
    pub inbound_anomaly_threshold: u32,
    /// CRS outbound anomaly score threshold.
    pub outbound_anomaly_threshold: u32,
    /// Inspect response bodies (`SecResponseBodyAccess On`).
    pub response_inspection: bool,
    /// Exclusions, applied after the rules.
    pub exclusions: Vec<Exclusion>,
}

fn parse_mode(v: &V, s: &Spanned<String>, key: &str) -> Result<WafMode> {
    match s.get_ref().as_str() {
        "off" => Ok(WafMode::Off),
        "detect" => Ok(WafMode::Detect),
        "block" => Ok(WafMode::Block),
        other => v.err(
            s.span(),
            key,
            format!("`{other}`: expected \"block\", \"detect\" or \"off\""),
        ),
    }
}

fn paranoia(v: &V, s: &Spanned<i64>, key: &str) -> Result<u8> {
    match u8::try_from(*s.get_ref()) {
        Ok(n) if (1..=MAX_PARANOIA_LEVEL).contains(&n) => Ok(n),
        _ => v.err(s.span(), key, "must be 1, 2, 3 or 4"),
    }
}

fn threshold(v: &V, s: &Spanned<i64>, key: &str) -> Result<u32> {
    match u32::try_from(*s.get_ref()) {
        Ok(n) if (1..=MAX_ANOMALY_THRESHOLD).contains(&n) => Ok(n),
        _ => v.err(
            s.span(),
            key,
            format!("must be an integer between 1 and {MAX_ANOMALY_THRESHOLD}"),
        ),
    }
}

/// A tag or target written into a generated directive between double
/// quotes: quotes, backslashes and line breaks would change its meaning.
fn quotable(v: &V, s: &Spanned<String>, key: &str) -> Result<String> {
    let t = s.get_ref().trim();
    if t.is_empty() || t.contains(['"', '\\', '\n', '\r']) {
        return v.err(
            s.span(),
            key,
            "must be non-empty, without quotes, backslashes or line breaks",
        );
    }
    Ok(t.to_string())
}

pub(crate) fn validate_global(v: &V, raw: Option<RawWaf>) -> Result<WafConfig> {
    let d = WafConfig::default();
    let Some(raw) = raw else {
        return Ok(d);
    };
    let audit = raw.audit_log.unwrap_or_default();
    let audit_log = AuditLogConfig {
        path: audit.path,
        mode: match &audit.mode {
            None => AuditMode::Relevant,
            Some(m) => match m.get_ref().parse() {
                Ok(m) => m,
                Err(e) => return v.err(m.span(), "waf.audit_log.mode", e.to_string()),
            },
        },
        relevant_statuses: match &audit.relevant_statuses {
            None => RelevantStatus::default(),
            Some(s) => match RelevantStatus::parse(s.get_ref()) {
                Ok(r) => r,
                Err(e) => return v.err(s.span(), "waf.audit_log.relevant_statuses", e.to_string()),
            },
        },
    };
    Ok(WafConfig {
        mode: match &raw.mode {
            Some(m) => parse_mode(v, m, "waf.mode")?,
            None => d.mode,
        },
        crs: raw.crs.map(Spanned::into_inner),
        paranoia_level: match &raw.paranoia_level {
            Some(p) => paranoia(v, p, "waf.paranoia_level")?,
            None => d.paranoia_level,
        },
        inbound_anomaly_threshold: match &raw.inbound_anomaly_threshold {
            Some(t) => threshold(v, t, "waf.inbound_anomaly_threshold")?,
            None => d.inbound_anomaly_threshold,
        },
        outbound_anomaly_threshold: match &raw.outbound_anomaly_threshold {
            Some(t) => threshold(v, t, "waf.outbound_anomaly_threshold")?,
            None => d.outbound_anomaly_threshold,
        },
        response_inspection: raw.response_inspection.unwrap_or(d.response_inspection),
        audit_log,
    })
}

/// A route's settings; `None` when its WAF is off. `at` locates the route
/// (for errors about the route as a whole).
pub(crate) fn validate_route(
    v: &V,
    global: &WafConfig,
    raw: Option<RawRouteWaf>,
    at: std::ops::Range<usize>,
) -> Result<Option<RouteWaf>> {
    let raw = raw.unwrap_or_default();
    let mode = match &raw.mode {
        Some(m) => parse_mode(v, m, "route.waf.mode")?,
        None => global.mode,
    };
    let mut sources = Vec::new();
    if let Some(c) = &raw.crs {
        match c.get_ref() {
            RawCrs::On(false) => {}
            RawCrs::On(true) => {
                match &global.crs {
                    Some(p) => sources.push(RuleSource::Crs(p.clone())),
                    None => return v.err(
                        c.span(),
                        "route.waf.crs",
                        "`crs = true` needs the CRS location in [waf] crs (or give the path here)",
                    ),
                }
            }
            RawCrs::Path(p) => sources.push(RuleSource::Crs(p.clone())),
        }
    }
    if raw.builtin == Some(true) {
        sources.push(RuleSource::Builtin);
    }
    for f in raw.rules.iter().flatten() {
        if f.get_ref().trim().is_empty() {
            return v.err(f.span(), "route.waf.rules", "empty rules path");
        }
        sources.push(RuleSource::File(f.get_ref().clone()));
    }
    if let Some(t) = &raw.inline {
        sources.push(RuleSource::Inline(t.get_ref().clone()));
    }
    if sources.is_empty() && raw.builtin != Some(false) {
        sources.push(RuleSource::Builtin);
    }
    if sources.is_empty() && mode != WafMode::Off {
        return v.err(
            at,
            "route.waf",
            "the WAF is on but every rule source is disabled (builtin = false and no crs, rules or inline)",
        );
    }
    if raw.exclusions.len() > MAX_EXCLUSIONS {
        return v.err(
            at,
            "route.waf.exclusions",
            format!("at most {MAX_EXCLUSIONS} exclusions per route"),
        );
    }
    let mut exclusions = Vec::new();
    for e in &raw.exclusions {
        let id = match &e.id {
            Some(i) => match u64::try_from(*i.get_ref()) {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    return v.err(
                        i.span(),
                        "route.waf.exclusions.id",
                        "must be a rule id (a positive integer)",
                    )
                }
            },
            None => None,
        };
        let tag = match &e.tag {
            Some(t) => Some(quotable(v, t, "route.waf.exclusions.tag")?),
            None => None,
        };
        let target = match &e.target {
            Some(t) => {
                let s = quotable(v, t, "route.waf.exclusions.target")?;
                if s.starts_with('!') || s.contains([',', '|', ' ']) {
                    return v.err(
                        t.span(),
                        "route.waf.exclusions.target",
                        "one variable such as \"ARGS:q\" or \"REQUEST_COOKIES:/^sess/\" (no `!`, `|`, `,` or spaces)",
                    );
                }
                Some(s)
            }
            None => None,
        };
        exclusions.push(match (id, tag, target) {
            (Some(i), None, None) => Exclusion::Id(i),
            (None, Some(t), None) => Exclusion::Tag(t),
            (Some(i), None, Some(x)) => Exclusion::TargetById(i, x),
            (None, Some(t), Some(x)) => Exclusion::TargetByTag(t, x),
            _ => {
                let span =
                    e.id.as_ref()
                        .map(|s| s.span())
                        .or_else(|| e.tag.as_ref().map(|s| s.span()))
                        .or_else(|| e.target.as_ref().map(|s| s.span()))
                        .unwrap_or(at.clone());
                return v.err(
                    span,
                    "route.waf.exclusions",
                    "an exclusion names exactly one of `id` or `tag`, and optionally a `target`",
                );
            }
        });
    }
    // Every key is checked even on a route that is off, so turning it on
    // later cannot reveal an old mistake.
    let w = RouteWaf {
        mode,
        sources,
        paranoia_level: match &raw.paranoia_level {
            Some(p) => paranoia(v, p, "route.waf.paranoia_level")?,
            None => global.paranoia_level,
        },
        inbound_anomaly_threshold: match &raw.inbound_anomaly_threshold {
            Some(t) => threshold(v, t, "route.waf.inbound_anomaly_threshold")?,
            None => global.inbound_anomaly_threshold,
        },
        outbound_anomaly_threshold: match &raw.outbound_anomaly_threshold {
            Some(t) => threshold(v, t, "route.waf.outbound_anomaly_threshold")?,
            None => global.outbound_anomaly_threshold,
        },
        response_inspection: raw
            .response_inspection
            .unwrap_or(global.response_inspection),
        exclusions,
    };
    Ok((mode != WafMode::Off).then_some(w))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;
    use crate::error::Error;

    const BASE: &str = r#"
[[listener]]
name = "web"
listen = "127.0.0.1:8080"
protocol = "http"

[[upstream]]
name = "app"
servers = ["127.0.0.1:3000"]

[[route]]
upstream = "app"
"#;

    fn err(text: &str) -> crate::error::ConfigError {
        match parse(text, "t.toml") {
            Err(Error::Config(e)) => *e,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn example_file_documents_the_waf_defaults() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../palisade.example.toml");
        let c = crate::config::load_file(std::path::Path::new(path)).unwrap();
        assert_eq!(c.waf, WafConfig::default());
        assert!(c.routes.iter().all(|r| r.waf.is_none()));
    }

    #[test]
    fn routes_inherit_global_settings_and_default_to_builtin() {
        let c = parse(
            &format!("[waf]\nmode = \"detect\"\nparanoia_level = 2\n{BASE}"),
            "t.toml",
        )
        .unwrap();
        let w = c.routes[0].waf.as_ref().unwrap();
        assert_eq!(w.mode, WafMode::Detect);
        assert_eq!(w.sources, [RuleSource::Builtin]);
        assert_eq!(w.paranoia_level, 2);
        assert_eq!(
            (w.inbound_anomaly_threshold, w.outbound_anomaly_threshold),
            (5, 4)
        );
        // Off by default.
        assert!(parse(BASE, "t.toml").unwrap().routes[0].waf.is_none());
    }

    #[test]
    fn route_settings_sources_and_exclusions() {
        let text = format!(
            "[waf]\ncrs = \"/opt/crs\"\n{BASE}[route.waf]\nmode = \"block\"\ncrs = true\nrules = [\"/r/*.conf\"]\n\
             inline = \"SecRule ARGS \\\"@rx x\\\" \\\"id:1,deny\\\"\"\nresponse_inspection = true\n\
             exclusions = [{{ id = 942100 }}, {{ tag = \"attack-xss\" }}, {{ id = 1, target = \"ARGS:q\" }}, {{ tag = \"t\", target = \"ARGS\" }}]\n"
        );
        let c = parse(&text, "t.toml").unwrap();
        let w = c.routes[0].waf.as_ref().unwrap();
        assert_eq!(
            w.sources,
            [
                RuleSource::Crs("/opt/crs".into()),
                RuleSource::File("/r/*.conf".into()),
                RuleSource::Inline("SecRule ARGS \"@rx x\" \"id:1,deny\"".into()),
            ]
        );
        assert!(w.response_inspection);
        assert_eq!(
            w.exclusions,
            [
                Exclusion::Id(942100),
                Exclusion::Tag("attack-xss".into()),
                Exclusion::TargetById(1, "ARGS:q".into()),
                Exclusion::TargetByTag("t".into(), "ARGS".into()),
            ]
        );
    }

    #[test]
    fn bad_values_are_located() {
        let e = err(&format!("{BASE}[route.waf]\nmode = \"blok\"\n"));
        assert_eq!((e.line, e.column), (14, 8));
        assert_eq!(e.key.as_deref(), Some("route.waf.mode"));
        let e = err(&format!("{BASE}[route.waf]\nparanoia_level = 5\n"));
        assert_eq!(e.key.as_deref(), Some("route.waf.paranoia_level"));
        assert_eq!(e.line, 14);
        let e = err(&format!(
            "{BASE}[route.waf]\ncrs = true\nmode = \"block\"\n"
        ));
        assert!(e.message.contains("[waf] crs"), "{}", e.message);
        let e = err(&format!(
            "{BASE}[route.waf]\nexclusions = [{{ id = 1, tag = \"x\" }}]\n"
        ));
        assert_eq!(e.key.as_deref(), Some("route.waf.exclusions"));
        let e = err(&format!(
            "{BASE}[route.waf]\nexclusions = [{{ id = 1, target = \"!ARGS\" }}]\n"
        ));
        assert_eq!(e.key.as_deref(), Some("route.waf.exclusions.target"));
        let e = err(&format!(
            "{BASE}[route.waf]\nexclusions = [{{ tag = \"a\\\"b\" }}]\n"
        ));
        assert_eq!(e.key.as_deref(), Some("route.waf.exclusions.tag"));
        let e = err(&format!("[waf.audit_log]\nmode = \"sometimes\"\n{BASE}"));
        assert_eq!(e.key.as_deref(), Some("waf.audit_log.mode"));
        assert_eq!(e.line, 2);
        let e = err(&format!(
            "[waf.audit_log]\nrelevant_statuses = [\"6xx\"]\n{BASE}"
        ));
        assert_eq!(e.key.as_deref(), Some("waf.audit_log.relevant_statuses"));
        let e = err(&format!("{BASE}[route.waf]\nmode = \"block\"\nbogus = 1\n"));
        assert!(e.message.contains("unknown field"), "{}", e.message);
        let e = err(&format!(
            "{BASE}[route.waf]\nmode = \"block\"\nbuiltin = false\n"
        ));
        assert!(
            e.message.contains("every rule source is disabled"),
            "{}",
            e.message
        );
    }
}
