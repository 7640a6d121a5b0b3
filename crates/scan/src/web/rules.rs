//! Rule files: per finding id, `fail`, `warn` or `ignore`, with a reason.
//!
//! TOML:
//!
//! ```toml
//! [[rule]]
//! id = "WEB-HDR-PERMISSIONS"
//! action = "ignore"
//! reason = "API only, no browser features to restrict"
//! ```
//!
//! or ZAP baseline's tab-separated form, one rule a line
//! (`ID<TAB>ACTION<TAB>reason`, `#` comments). Ids may end in `*` to match a
//! prefix (`WEB-HDR-*`).

use std::path::Path;

use serde::Deserialize;

use crate::finding::{Action, Finding};

/// Largest rule file read (default 1 MiB): a rule file is a handful of lines.
pub const MAX_RULE_FILE_BYTES: u64 = 1 << 20;

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Rule {
    /// Finding id, or a prefix ending in `*`.
    pub id: String,
    /// What to do.
    #[serde(deserialize_with = "de_action")]
    pub action: Action,
    /// Why (shown with suppressed findings).
    #[serde(default)]
    pub reason: String,
}

fn de_action<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Action, D::Error> {
    let s = String::deserialize(d)?;
    Action::parse(&s).ok_or_else(|| {
        serde::de::Error::custom(format!("action {s:?}: expected fail, warn or ignore"))
    })
}

/// A set of rules; the first matching rule wins, exact ids before prefixes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    /// The rules in file order.
    pub rules: Vec<Rule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    rule: Vec<Rule>,
}

impl Rules {
    /// Reads a rule file: TOML, or ZAP-style TSV when the file has tabs and
    /// no `[[rule]]`.
    pub fn load(path: &Path) -> Result<Rules, String> {
        use std::io::Read;
        let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut text = String::new();
        file.take(MAX_RULE_FILE_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if text.len() as u64 > MAX_RULE_FILE_BYTES {
            return Err(format!(
                "{}: larger than {MAX_RULE_FILE_BYTES} bytes",
                path.display()
            ));
        }
        Rules::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses rule file text (see [`Rules::load`]).
    pub fn parse(text: &str) -> Result<Rules, String> {
        if text.contains('\t') && !text.contains("[[rule]]") {
            return Rules::parse_tsv(text);
        }
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        for r in &file.rule {
            check_id(&r.id)?;
        }
        Ok(Rules { rules: file.rule })
    }

    fn parse_tsv(text: &str) -> Result<Rules, String> {
        let mut rules = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let mut cols = line.split('\t');
            let id = cols.next().unwrap_or("").trim().to_owned();
            let action = cols.next().unwrap_or("").trim();
            let reason = cols.collect::<Vec<_>>().join(" ").trim().to_owned();
            let action = Action::parse(action).ok_or_else(|| {
                format!(
                    "line {}: action {action:?}: expected FAIL, WARN or IGNORE",
                    n + 1
                )
            })?;
            check_id(&id).map_err(|e| format!("line {}: {e}", n + 1))?;
            rules.push(Rule { id, action, reason });
        }
        Ok(Rules { rules })
    }

    /// The rule for `id`, if any.
    pub fn lookup(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id == id).or_else(|| {
            self.rules
                .iter()
                .find(|r| r.id.strip_suffix('*').is_some_and(|p| id.starts_with(p)))
        })
    }

    /// Sets each finding's action from the rules; returns the kept findings
    /// and the ignored ones with their reasons.
    pub fn apply(&self, findings: Vec<Finding>) -> (Vec<Finding>, Vec<(Finding, String)>) {
        let mut kept = Vec::new();
        let mut ignored = Vec::new();
        for mut f in findings {
            match self.lookup(&f.id) {
                Some(r) if r.action == Action::Ignore => {
                    f.action = Some(Action::Ignore);
                    ignored.push((f, r.reason.clone()));
                }
                Some(r) => {
                    f.action = Some(r.action);
                    kept.push(f);
                }
                None => kept.push(f),
            }
        }
        (kept, ignored)
    }
}

fn check_id(id: &str) -> Result<(), String> {
    let body = id.strip_suffix('*').unwrap_or(id);
    if body.is_empty()
        || !body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(format!(
            "rule id {id:?}: letters, digits, - _ . and a final * only"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Severity;

    fn finding(id: &str) -> Finding {
        Finding {
            id: id.into(),
            scanner: "web",
            severity: Severity::Low,
            title: String::new(),
            evidence: String::new(),
            fix: String::new(),
            location: String::new(),
            action: None,
        }
    }

    #[test]
    fn toml_and_tsv() {
        let r = Rules::parse(
            "[[rule]]\nid = \"WEB-HDR-CSP\"\naction = \"ignore\"\nreason = \"api\"\n\
             [[rule]]\nid = \"WEB-HDR-*\"\naction = \"FAIL\"\n",
        )
        .unwrap();
        assert_eq!(r.lookup("WEB-HDR-CSP").unwrap().action, Action::Ignore);
        assert_eq!(r.lookup("WEB-HDR-XCTO").unwrap().action, Action::Fail);
        assert!(r.lookup("WEB-COOKIE-SECURE").is_none());
        let (kept, ignored) = r.apply(vec![finding("WEB-HDR-CSP"), finding("WEB-HDR-XCTO")]);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].action, Some(Action::Fail));
        assert_eq!(ignored[0].1, "api");

        let t = Rules::parse(
            "# zap style\nWEB-HDR-CSP\tWARN\t(legacy app)\n\nWEB-DIR-LISTING\tIGNORE\n",
        )
        .unwrap();
        assert_eq!(t.rules.len(), 2);
        assert_eq!(t.lookup("WEB-HDR-CSP").unwrap().reason, "(legacy app)");
    }

    #[test]
    fn bad_rule_files() {
        assert!(Rules::parse("[[rule]]\nid = \"X\"\naction = \"maybe\"\n")
            .unwrap_err()
            .contains("expected fail, warn or ignore"));
        assert!(Rules::parse("[[rule]]\nid = \"a b\"\naction = \"warn\"\n").is_err());
        assert!(Rules::parse("X\tSOMETIMES\n")
            .unwrap_err()
            .contains("line 1"));
        assert!(Rules::parse("[[rules]]\nid = \"X\"\n").is_err());
        assert!(Rules::parse("not toml [").is_err());
    }
}
