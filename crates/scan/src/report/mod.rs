//! The `palisade audit` report: findings of every scanner that ran, an
//! overall grade with the reason for every cap, prioritised fixes, and
//! renderers for the terminal, JSON, SARIF 2.1.0 and a self-contained HTML
//! page.
//!
//! # Grade
//!
//! The score starts at 100 and each finding (after rule files) costs
//! critical 40, high 20, medium 8, low 3, info 0 points (floor 0). Letters:
//! A ≥ 90, B ≥ 80, C ≥ 70, D ≥ 60, else F; A+ when nothing above info was
//! found. Caps, each printed with its reason: any critical finding → F;
//! any high finding → at most C; a scanner that failed (the audit is
//! incomplete) → at most C.

mod html;
mod sarif;

use serde::Serialize;

use crate::finding::Finding;
use crate::Severity;

pub use html::to_html;
pub use sarif::to_sarif;

/// Prioritised fixes listed (default 10).
pub const MAX_FIXES: usize = 10;

/// Points a finding costs, by severity.
pub fn penalty(s: Severity) -> u32 {
    match s {
        Severity::Critical => 40,
        Severity::High => 20,
        Severity::Medium => 8,
        Severity::Low => 3,
        Severity::Info => 0,
    }
}

/// How one scanner's run went.
#[derive(Debug, Clone, Serialize)]
pub struct Section {
    /// `ports`, `tls`, `web`, `deps`.
    pub scanner: String,
    /// What it scanned.
    pub target: String,
    /// `None`: finished; `Some`: why it failed (the audit is incomplete).
    pub error: Option<String>,
    /// One line: pages/ports/dependencies covered.
    pub summary: String,
    /// Findings it produced (after rule files).
    pub findings: usize,
}

/// The overall grade.
#[derive(Debug, Clone, Serialize)]
pub struct Grade {
    /// `A+`, `A`…`F`.
    pub letter: String,
    /// 0-100.
    pub score: u32,
    /// Why the letter is lower than the score alone gives.
    pub caps: Vec<String>,
}

/// One fix and what it resolves, in priority order.
#[derive(Debug, Clone, Serialize)]
pub struct Fix {
    /// The most severe finding it resolves.
    pub severity: Severity,
    /// What to do.
    pub fix: String,
    /// Finding ids it resolves.
    pub ids: Vec<String>,
    /// Points the score gains.
    pub gain: u32,
}

/// The audit of one target.
#[derive(Debug, Clone, Serialize)]
pub struct Audit {
    /// The target as given.
    pub target: String,
    /// When the audit ran (RFC 3339, UTC).
    pub generated: String,
    /// palisade version.
    pub version: &'static str,
    /// The grade.
    pub grade: Grade,
    /// Findings, most severe first.
    pub findings: Vec<Finding>,
    /// Findings a rule file ignored, with the reason (JSON key `ignored`,
    /// as in `scan web --json`).
    #[serde(rename = "ignored")]
    pub suppressed: Vec<Suppressed>,
    /// Prioritised fixes.
    pub fixes: Vec<Fix>,
    /// Each scanner's run.
    pub sections: Vec<Section>,
}

/// A finding a rule file set to `ignore`.
#[derive(Debug, Clone, Serialize)]
pub struct Suppressed {
    /// The finding.
    pub finding: Finding,
    /// The rule's reason.
    pub reason: String,
}

/// One scanner's successful run, ready for [`Builder::add`].
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Findings kept after the rule file.
    pub findings: Vec<Finding>,
    /// Findings the rule file ignored, with the reason.
    pub ignored: Vec<(Finding, String)>,
    /// One line: what was covered.
    pub summary: String,
}

/// Collects scanner results into an [`Audit`].
#[derive(Debug, Default)]
pub struct Builder {
    target: String,
    sections: Vec<Section>,
    findings: Vec<Finding>,
    suppressed: Vec<Suppressed>,
}

impl Builder {
    /// An empty audit of `target`.
    pub fn new(target: &str) -> Builder {
        Builder {
            target: target.to_owned(),
            ..Builder::default()
        }
    }

    /// Adds one scanner's outcome: its findings (already filtered by the
    /// rule file: `ignored` are the suppressed ones) or its error.
    pub fn add(&mut self, scanner: &str, target: &str, outcome: Result<Outcome, String>) {
        match outcome {
            Ok(Outcome {
                findings,
                ignored,
                summary,
            }) => {
                self.sections.push(Section {
                    scanner: scanner.to_owned(),
                    target: target.to_owned(),
                    error: None,
                    summary,
                    findings: findings.len(),
                });
                self.findings.extend(findings);
                self.suppressed.extend(
                    ignored
                        .into_iter()
                        .map(|(finding, reason)| Suppressed { finding, reason }),
                );
            }
            Err(e) => self.sections.push(Section {
                scanner: scanner.to_owned(),
                target: target.to_owned(),
                error: Some(e),
                summary: String::new(),
                findings: 0,
            }),
        }
    }

    /// Grades, sorts and prioritises; `now` is seconds since the epoch.
    pub fn finish(mut self, now: u64) -> Audit {
        self.findings.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then_with(|| a.scanner.cmp(b.scanner))
                .then_with(|| a.id.cmp(&b.id))
        });
        let grade = grade(&self.findings, &self.sections);
        let fixes = fixes(&self.findings);
        Audit {
            target: self.target,
            generated: rfc3339(now),
            version: env!("CARGO_PKG_VERSION"),
            grade,
            findings: self.findings,
            suppressed: self.suppressed,
            fixes,
            sections: self.sections,
        }
    }
}

/// Computes the grade (see the module documentation).
pub fn grade(findings: &[Finding], sections: &[Section]) -> Grade {
    let lost: u32 = findings.iter().map(|f| penalty(f.severity)).sum();
    let score = 100u32.saturating_sub(lost);
    let mut letter = match score {
        90.. => 'A',
        80..=89 => 'B',
        70..=79 => 'C',
        60..=69 => 'D',
        _ => 'F',
    };
    let mut caps = Vec::new();
    let mut cap = |max: char, why: String, letter: &mut char| {
        if *letter < max {
            *letter = max;
            caps.push(why);
        }
    };
    let count = |s: Severity| findings.iter().filter(|f| f.severity == s).count();
    let critical = count(Severity::Critical);
    if critical > 0 {
        cap(
            'F',
            format!("capped at F: {critical} critical finding(s)"),
            &mut letter,
        );
    }
    let high = count(Severity::High);
    if high > 0 {
        cap(
            'C',
            format!("capped at C: {high} high finding(s)"),
            &mut letter,
        );
    }
    for s in sections.iter().filter(|s| s.error.is_some()) {
        cap(
            'C',
            format!(
                "capped at C: the {} scan of {} failed, the audit is incomplete",
                s.scanner, s.target
            ),
            &mut letter,
        );
    }
    let plus = letter == 'A' && findings.iter().all(|f| f.severity == Severity::Info);
    Grade {
        letter: if plus {
            "A+".into()
        } else {
            letter.to_string()
        },
        score,
        caps,
    }
}

fn fixes(findings: &[Finding]) -> Vec<Fix> {
    let mut out: Vec<Fix> = Vec::new();
    for f in findings.iter().filter(|f| f.severity > Severity::Info) {
        match out.iter_mut().find(|x| x.fix == f.fix) {
            Some(x) => {
                x.severity = x.severity.max(f.severity);
                x.gain += penalty(f.severity);
                if !x.ids.contains(&f.id) {
                    x.ids.push(f.id.clone());
                }
            }
            None => out.push(Fix {
                severity: f.severity,
                fix: f.fix.clone(),
                ids: vec![f.id.clone()],
                gain: penalty(f.severity),
            }),
        }
    }
    out.sort_by(|a, b| b.severity.cmp(&a.severity).then(b.gain.cmp(&a.gain)));
    out.truncate(MAX_FIXES);
    out
}

/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since the epoch.
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The report for a terminal: grade, sections, findings, fixes.
pub fn to_text(a: &Audit) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "palisade audit of {} ({})", a.target, a.generated);
    let _ = writeln!(s, "grade: {} (score {}/100)", a.grade.letter, a.grade.score);
    for c in &a.grade.caps {
        let _ = writeln!(s, "  {c}");
    }
    let _ = writeln!(s, "\nscans:");
    for sec in &a.sections {
        match &sec.error {
            None => {
                let _ = writeln!(
                    s,
                    "  {:<6} {:<40} ok, {} finding(s); {}",
                    sec.scanner, sec.target, sec.findings, sec.summary
                );
            }
            Some(e) => {
                let _ = writeln!(s, "  {:<6} {:<40} FAILED: {e}", sec.scanner, sec.target);
            }
        }
    }
    let _ = writeln!(s, "\nfindings ({}):", a.findings.len());
    for f in &a.findings {
        let _ = writeln!(
            s,
            "  {:<8} {:<22} {}\n           at {}\n           evidence: {}",
            f.severity,
            f.id,
            f.title,
            f.location,
            if f.evidence.is_empty() {
                "-"
            } else {
                &f.evidence
            }
        );
    }
    if !a.suppressed.is_empty() {
        let _ = writeln!(s, "\nignored by rule file ({}):", a.suppressed.len());
        for x in &a.suppressed {
            let _ = writeln!(
                s,
                "  {:<22} {} ({})",
                x.finding.id, x.finding.title, x.reason
            );
        }
    }
    if !a.fixes.is_empty() {
        let _ = writeln!(s, "\nfix first:");
        for (i, f) in a.fixes.iter().enumerate() {
            let _ = writeln!(
                s,
                "  {}. [{}] {} (+{} points; {})",
                i + 1,
                f.severity,
                f.fix,
                f.gain,
                f.ids.join(", ")
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn f(id: &str, sev: Severity) -> Finding {
        Finding {
            id: id.into(),
            scanner: "web",
            severity: sev,
            title: format!("title of {id}"),
            evidence: "<script>alert(1)</script>".into(),
            fix: format!("fix {id}"),
            location: "http://127.0.0.1:8080/".into(),
            action: None,
        }
    }

    #[test]
    fn grades_and_caps() {
        let g = grade(&[], &[]);
        assert_eq!((g.letter.as_str(), g.score), ("A+", 100));
        let g = grade(&[f("a", Severity::Low), f("b", Severity::Info)], &[]);
        assert_eq!((g.letter.as_str(), g.score), ("A", 97));
        let g = grade(&[f("a", Severity::Medium), f("b", Severity::Medium)], &[]);
        assert_eq!((g.letter.as_str(), g.score), ("B", 84));
        let g = grade(&[f("a", Severity::High)], &[]);
        assert_eq!((g.letter.as_str(), g.score), ("C", 80));
        assert!(g.caps[0].contains("1 high"));
        let g = grade(&[f("a", Severity::Critical)], &[]);
        assert_eq!(g.letter, "F");
        let failed = Section {
            scanner: "web".into(),
            target: "x".into(),
            error: Some("refused".into()),
            summary: String::new(),
            findings: 0,
        };
        let g = grade(&[], &[failed]);
        assert_eq!(g.letter, "C");
        assert!(g.caps[0].contains("incomplete"));
        let many: Vec<Finding> = (0..20)
            .map(|i| f(&i.to_string(), Severity::Medium))
            .collect();
        assert_eq!(grade(&many, &[]).score, 0);
    }

    #[test]
    fn fixes_are_prioritised_and_merged() {
        let mut a = f("A", Severity::Low);
        a.fix = "same".into();
        let mut b = f("B", Severity::Medium);
        b.fix = "same".into();
        let c = f("C", Severity::High);
        let x = fixes(&[a, b, c]);
        assert_eq!(x[0].ids, ["C"]);
        assert_eq!(
            (x[1].ids.len(), x[1].gain, x[1].severity),
            (2, 11, Severity::Medium)
        );
    }

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_000_000), "2026-11-18T11:06:40Z");
    }
}
