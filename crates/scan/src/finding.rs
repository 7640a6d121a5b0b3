//! One finding type shared by every scanner, so `palisade audit` can merge
//! ports, TLS, web and dependency results into one report (terminal, JSON,
//! SARIF, HTML) and gate CI on one severity scale.
//!
//! Each scanner keeps its own detailed report type; [`ToFindings`] turns it
//! into [`Finding`]s. The TLS scanner plugs in the same way: implement
//! `ToFindings` for its report (see the TLS report's impl below).

use serde::Serialize;

use crate::Severity;

/// What a rule file (or the default) says to do with a finding id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Always fails the run (exit 1), whatever `--fail-on` says.
    Fail,
    /// Reported, never fails the run.
    Warn,
    /// Not reported (counted as suppressed, with its reason).
    Ignore,
}

impl Action {
    /// Parses `fail|warn|ignore` (any case; ZAP's `FAIL`/`WARN`/`IGNORE`).
    pub fn parse(s: &str) -> Option<Action> {
        match s.to_ascii_lowercase().as_str() {
            "fail" => Some(Action::Fail),
            "warn" | "info" => Some(Action::Warn),
            "ignore" | "off" => Some(Action::Ignore),
            _ => None,
        }
    }
}

/// One problem found by a scanner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable identifier, e.g. `WEB-HDR-CSP`, `PORT-OPEN`, `GHSA-…`.
    pub id: String,
    /// Which scanner produced it: `ports`, `tls`, `web`, `deps`.
    pub scanner: &'static str,
    /// How bad it is.
    pub severity: Severity,
    /// One-line description.
    pub title: String,
    /// What was observed (a header, a body excerpt, a banner); untrusted
    /// text from the target, so renderers escape it.
    pub evidence: String,
    /// How to fix it.
    pub fix: String,
    /// Where: a URL, `host:port/tcp`, or `lockfile: package version`.
    pub location: String,
    /// The action a rule file set (`None`: gate on severity).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
}

impl Finding {
    /// Whether this finding fails a run gated at `gate` (`None`: never on
    /// severity). A `fail` rule always fails, a `warn` rule never does.
    pub fn fails(&self, gate: Option<Severity>) -> bool {
        match self.action {
            Some(Action::Fail) => true,
            Some(Action::Warn) | Some(Action::Ignore) => false,
            None => gate.is_some_and(|g| self.severity >= g),
        }
    }
}

/// A scanner report that can be expressed as [`Finding`]s.
pub trait ToFindings {
    /// The findings, most severe first is not required (the report sorts).
    fn findings(&self) -> Vec<Finding>;
}

impl ToFindings for crate::ports::Report {
    fn findings(&self) -> Vec<Finding> {
        self.open
            .iter()
            .map(|p| {
                let service = p.service.as_deref().unwrap_or("unknown");
                let unauth = p.severity >= Severity::High;
                Finding {
                    id: if unauth {
                        "PORT-UNAUTH-SERVICE".to_owned()
                    } else {
                        "PORT-OPEN".to_owned()
                    },
                    scanner: "ports",
                    severity: p.severity,
                    title: if unauth {
                        format!("{service} answers without authentication on port {}", p.port)
                    } else {
                        format!("open port {}/tcp ({service})", p.port)
                    },
                    evidence: p.banner.clone().unwrap_or_default(),
                    fix: if unauth {
                        format!(
                            "require authentication on {service} or bind it to localhost / a private network; firewall port {}",
                            p.port
                        )
                    } else {
                        "close the port or restrict it with a firewall if it need not be reachable"
                            .to_owned()
                    },
                    location: location_port(self.target, p.port),
                    action: None,
                }
            })
            .collect()
    }
}

fn location_port(ip: std::net::IpAddr, port: u16) -> String {
    match ip {
        std::net::IpAddr::V6(v6) => format!("[{v6}]:{port}/tcp"),
        std::net::IpAddr::V4(v4) => format!("{v4}:{port}/tcp"),
    }
}

impl ToFindings for crate::deps::Report {
    fn findings(&self) -> Vec<Finding> {
        self.findings
            .iter()
            .map(|f| {
                let aliases = if f.aliases.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", f.aliases.join(", "))
                };
                Finding {
                    id: f.id.clone(),
                    scanner: "deps",
                    severity: f.severity,
                    title: format!(
                        "{} {} {} is affected by {}{aliases}",
                        f.dependency.ecosystem, f.dependency.name, f.dependency.version, f.id
                    ),
                    evidence: f.summary.clone().unwrap_or_default(),
                    fix: format!(
                        "upgrade {} to a version outside the affected ranges of {} (see https://osv.dev/vulnerability/{})",
                        f.dependency.name, f.id, f.id
                    ),
                    location: format!("{}: {} {}", f.lockfile, f.dependency.name, f.dependency.version),
                    action: None,
                }
            })
            .collect()
    }
}

impl ToFindings for crate::tls::TlsReport {
    /// The TLS scan's own findings, ids unchanged (`tls.protocol.tls10`,
    /// `tls.cert.expired`, ...) so one rule file serves `scan tls` and
    /// `audit` alike; located at the scanned `host:port/tcp`.
    fn findings(&self) -> Vec<Finding> {
        let location = match self.addr.ip() {
            std::net::IpAddr::V6(v6) => format!("[{v6}]:{}/tcp", self.addr.port()),
            std::net::IpAddr::V4(v4) => format!("{v4}:{}/tcp", self.addr.port()),
        };
        self.findings
            .iter()
            .map(|f| Finding {
                id: f.id.clone(),
                scanner: "tls",
                severity: f.severity,
                title: f.title.clone(),
                evidence: f.evidence.clone(),
                fix: f.fix.clone(),
                location: location.clone(),
                action: None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(sev: Severity, action: Option<Action>) -> Finding {
        Finding {
            id: "X".into(),
            scanner: "web",
            severity: sev,
            title: String::new(),
            evidence: String::new(),
            fix: String::new(),
            location: String::new(),
            action,
        }
    }

    #[test]
    fn gate() {
        assert!(f(Severity::High, None).fails(Some(Severity::Medium)));
        assert!(!f(Severity::Low, None).fails(Some(Severity::Medium)));
        assert!(!f(Severity::Critical, None).fails(None));
        assert!(f(Severity::Info, Some(Action::Fail)).fails(None));
        assert!(!f(Severity::Critical, Some(Action::Warn)).fails(Some(Severity::Info)));
        assert_eq!(Action::parse("IGNORE"), Some(Action::Ignore));
        assert_eq!(Action::parse("nope"), None);
    }
}
