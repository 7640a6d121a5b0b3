//! SARIF 2.1.0 (OASIS): one run, one rule per finding id, one result per
//! finding, so GitHub code scanning and other SARIF viewers show the audit.

use serde_json::{json, Value};

use super::Audit;
use crate::finding::{Action, Finding};
use crate::Severity;

/// The schema URI written in `$schema`.
pub const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

fn level(f: &Finding) -> &'static str {
    match f.action {
        Some(Action::Fail) => return "error",
        Some(Action::Warn) => return "warning",
        _ => {}
    }
    match f.severity {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Info => "note",
    }
}

/// GitHub's `security-severity` (a CVSS-like number as a string).
fn security_severity(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "9.5",
        Severity::High => "8.0",
        Severity::Medium => "5.5",
        Severity::Low => "3.0",
        Severity::Info => "0.0",
    }
}

/// The artifact a finding is in: a URL, a lockfile, `tcp://host:port`.
fn uri(f: &Finding) -> String {
    let loc = f.location.split(" (and ").next().unwrap_or(&f.location);
    match f.scanner {
        "deps" => loc.split(": ").next().unwrap_or(loc).to_owned(),
        "ports" | "tls" => format!("tcp://{}", loc.trim_end_matches("/tcp")),
        _ => loc.to_owned(),
    }
}

/// The audit as a SARIF 2.1.0 log.
pub fn to_sarif(a: &Audit) -> Value {
    let mut rules: Vec<Value> = Vec::new();
    let mut index: Vec<String> = Vec::new();
    let mut results = Vec::new();
    for f in &a.findings {
        let rule_index = match index.iter().position(|i| i == &f.id) {
            Some(i) => i,
            None => {
                index.push(f.id.clone());
                rules.push(json!({
                    "id": f.id,
                    "name": f.id.replace('-', ""),
                    "shortDescription": { "text": f.title },
                    "help": { "text": f.fix },
                    "defaultConfiguration": { "level": level(f) },
                    "properties": {
                        "security-severity": security_severity(f.severity),
                        "tags": ["security", f.scanner],
                    }
                }));
                index.len() - 1
            }
        };
        let mut text = f.title.clone();
        if !f.evidence.is_empty() {
            text.push_str(&format!(" Evidence: {}", f.evidence));
        }
        text.push_str(&format!(" Fix: {}", f.fix));
        results.push(json!({
            "ruleId": f.id,
            "ruleIndex": rule_index,
            "level": level(f),
            "message": { "text": text },
            "locations": [{
                "physicalLocation": { "artifactLocation": { "uri": uri(f) } },
                "message": { "text": f.location },
            }],
            "properties": { "severity": f.severity.as_str(), "scanner": f.scanner },
        }));
    }
    let notifications: Vec<Value> = a
        .sections
        .iter()
        .filter_map(|s| {
            s.error.as_ref().map(|e| {
                json!({
                    "level": "error",
                    "message": { "text": format!("{} scan of {} failed: {e}", s.scanner, s.target) },
                })
            })
        })
        .collect();
    json!({
        "version": "2.1.0",
        "$schema": SCHEMA,
        "runs": [{
            "tool": { "driver": {
                "name": "palisade",
                "version": a.version,
                "informationUri": "https://example.invalid/palisade",
                "rules": rules,
            }},
            "invocations": [{
                "executionSuccessful": notifications.is_empty(),
                "toolExecutionNotifications": notifications,
            }],
            "results": results,
            "properties": {
                "target": a.target,
                "grade": a.grade.letter,
                "score": a.grade.score,
            },
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Builder;

    fn finding(id: &str, scanner: &'static str, sev: Severity, loc: &str) -> Finding {
        Finding {
            id: id.into(),
            scanner,
            severity: sev,
            title: "t".into(),
            evidence: String::new(),
            fix: "f".into(),
            location: loc.into(),
            action: None,
        }
    }

    #[test]
    fn structure_is_valid_sarif() {
        let mut b = Builder::new("http://127.0.0.1/");
        b.add(
            "web",
            "http://127.0.0.1/",
            Ok(crate::report::Outcome {
                findings: vec![
                    finding(
                        "WEB-HDR-CSP",
                        "web",
                        Severity::Medium,
                        "http://127.0.0.1/ (and 3 more)",
                    ),
                    finding("WEB-HDR-CSP", "web", Severity::Medium, "http://127.0.0.1/x"),
                    finding("GHSA-1", "deps", Severity::High, "Cargo.lock: foo 1.0.0"),
                    finding("PORT-OPEN", "ports", Severity::Info, "127.0.0.1:22/tcp"),
                ],
                ..Default::default()
            }),
        );
        b.add("tls", "127.0.0.1:443", Err("refused".into()));
        let s = to_sarif(&b.finish(0));
        validate(&s);
        let results = s["runs"][0]["results"].as_array().unwrap();
        assert_eq!(results.len(), 4);
        assert_eq!(
            s["runs"][0]["tool"]["driver"]["rules"]
                .as_array()
                .unwrap()
                .len(),
            3
        );
        let uris: Vec<&str> = results
            .iter()
            .map(|r| {
                r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                    .as_str()
                    .unwrap()
            })
            .collect();
        assert!(uris.contains(&"Cargo.lock"));
        assert!(uris.contains(&"tcp://127.0.0.1:22"));
        assert!(uris.contains(&"http://127.0.0.1/"));
        assert_eq!(s["runs"][0]["invocations"][0]["executionSuccessful"], false);
    }

    /// The SARIF 2.1.0 schema's required properties and enumerations for
    /// what we emit.
    pub(crate) fn validate(s: &Value) {
        assert_eq!(s["version"], "2.1.0");
        assert!(s["$schema"].as_str().unwrap().contains("sarif-2.1.0"));
        let runs = s["runs"].as_array().expect("runs is an array");
        assert!(!runs.is_empty());
        for run in runs {
            let driver = &run["tool"]["driver"];
            assert!(driver["name"].is_string(), "tool.driver.name required");
            let rules = driver["rules"].as_array().unwrap();
            for r in rules {
                assert!(r["id"].is_string());
            }
            for r in run["results"].as_array().expect("results is an array") {
                let id = r["ruleId"].as_str().expect("ruleId");
                let idx = r["ruleIndex"].as_u64().unwrap() as usize;
                assert_eq!(rules[idx]["id"], id, "ruleIndex points at ruleId");
                assert!(
                    ["none", "note", "warning", "error"].contains(&r["level"].as_str().unwrap())
                );
                assert!(r["message"]["text"].is_string(), "message.text required");
                let locs = r["locations"].as_array().unwrap();
                assert!(!locs.is_empty());
                for l in locs {
                    assert!(l["physicalLocation"]["artifactLocation"]["uri"].is_string());
                }
            }
        }
    }
}
