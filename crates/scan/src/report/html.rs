//! A self-contained HTML page: inline CSS, no script, no external
//! resource; every string from a target or a scanner is HTML-escaped.

use std::fmt::Write;

use super::Audit;
use crate::web::html::escape;
use crate::Severity;

const STYLE: &str = "
body{font:15px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:72rem;padding:0 1rem;color:#1d2430}
h1{margin-bottom:.2rem} h2{margin-top:2rem;border-bottom:1px solid #dde2ea;padding-bottom:.3rem}
.grade{display:inline-block;font-size:3rem;font-weight:700;width:5rem;height:5rem;line-height:5rem;text-align:center;border-radius:.6rem;color:#fff;margin-right:1rem;vertical-align:middle}
.g-A\\+,.g-A{background:#2e8540}.g-B{background:#6b9b37}.g-C{background:#d19a00}.g-D{background:#d5661b}.g-F{background:#c62828}
table{border-collapse:collapse;width:100%;margin:.5rem 0} th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #e6e9ef;vertical-align:top}
th{background:#f4f6f9} td>code{white-space:nowrap} code,pre{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:13px}
pre{white-space:pre-wrap;word-break:break-all;margin:0;background:#f7f8fa;padding:.3rem .4rem;border-radius:.25rem}
.sev{font-weight:600;padding:.05rem .45rem;border-radius:.25rem;color:#fff;font-size:12px;text-transform:uppercase}
.s-critical{background:#7b1fa2}.s-high{background:#c62828}.s-medium{background:#d5661b}.s-low{background:#607d8b}.s-info{background:#9aa5b1}
.fail{color:#c62828;font-weight:600} .muted{color:#5f6b7a}
";

fn sev(s: Severity) -> String {
    format!("<span class=\"sev s-{0}\">{0}</span>", s.as_str())
}

/// The audit as one HTML document.
pub fn to_html(a: &Audit) -> String {
    let e = escape;
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
         <title>palisade audit: {}</title><style>{STYLE}</style></head><body>",
        e(&a.target)
    );
    let _ = write!(
        h,
        "<h1>palisade audit</h1><p class=\"muted\">{} &middot; {} &middot; palisade {}</p>",
        e(&a.target),
        e(&a.generated),
        e(a.version)
    );
    let _ = write!(
        h,
        "<p><span class=\"grade g-{0}\">{0}</span>score {1}/100, {2} finding(s)</p>",
        e(&a.grade.letter),
        a.grade.score,
        a.findings.len()
    );
    if !a.grade.caps.is_empty() {
        h.push_str("<ul>");
        for c in &a.grade.caps {
            let _ = write!(h, "<li>{}</li>", e(c));
        }
        h.push_str("</ul>");
    }
    h.push_str(
        "<p class=\"muted\">Grading: 100 points minus 40 per critical, 20 per high, 8 per medium, \
         3 per low finding; A &ge; 90, B &ge; 80, C &ge; 70, D &ge; 60, else F; A+ when nothing \
         above info was found. Any critical caps at F, any high at C, a failed scan at C.</p>",
    );
    if !a.fixes.is_empty() {
        h.push_str("<h2>Fix first</h2><ol>");
        for f in &a.fixes {
            let _ = write!(
                h,
                "<li>{} {} <span class=\"muted\">(+{} points; {})</span></li>",
                sev(f.severity),
                e(&f.fix),
                f.gain,
                e(&f.ids.join(", "))
            );
        }
        h.push_str("</ol>");
    }
    h.push_str("<h2>Scans</h2><table><tr><th>scanner</th><th>target</th><th>result</th></tr>");
    for s in &a.sections {
        let result = match &s.error {
            Some(err) => format!("<span class=\"fail\">failed:</span> {}", e(err)),
            None => format!("{} finding(s); {}", s.findings, e(&s.summary)),
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td><code>{}</code></td><td>{result}</td></tr>",
            e(&s.scanner),
            e(&s.target)
        );
    }
    h.push_str("</table>");
    let _ = write!(h, "<h2>Findings ({})</h2>", a.findings.len());
    if a.findings.is_empty() {
        h.push_str("<p>No findings.</p>");
    } else {
        h.push_str(
            "<table><tr><th>severity</th><th>id</th><th>finding</th><th>evidence</th><th>fix</th></tr>",
        );
        for f in &a.findings {
            let _ = write!(
                h,
                "<tr><td>{}</td><td><code>{}</code></td><td>{}<br><span class=\"muted\">{}</span></td>\
                 <td><pre>{}</pre></td><td>{}</td></tr>",
                sev(f.severity),
                e(&f.id),
                e(&f.title),
                e(&f.location),
                e(&f.evidence),
                e(&f.fix)
            );
        }
        h.push_str("</table>");
    }
    if !a.suppressed.is_empty() {
        h.push_str("<h2>Ignored by rule file</h2><table><tr><th>id</th><th>finding</th><th>reason</th></tr>");
        for s in &a.suppressed {
            let _ = write!(
                h,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                e(&s.finding.id),
                e(&s.finding.title),
                e(&s.reason)
            );
        }
        h.push_str("</table>");
    }
    h.push_str("</body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{tests::f, Builder};

    #[test]
    fn self_contained_and_escaped() {
        let mut b = Builder::new("http://t/<script>");
        let mut x = f("WEB-X", Severity::High);
        x.title = "<img src=x onerror=alert(1)>".into();
        b.add(
            "web",
            "http://t/\"><b>",
            Ok(crate::report::Outcome {
                findings: vec![x],
                ignored: vec![],
                summary: "1 page".into(),
            }),
        );
        b.add("ports", "t", Err("<refused>".into()));
        let html = to_html(&b.finish(0));
        for raw in ["<script>", "<img", "<b>", "<refused>"] {
            assert!(!html.contains(raw), "{raw} not escaped");
        }
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
        assert!(!html.contains("http://t/") || html.contains("http://t/&lt;script&gt;"));
        for external in ["<link", "src=\"http", "src='http", "@import", "url("] {
            assert!(!html.contains(external), "external resource {external}");
        }
        assert!(html.contains("class=\"grade g-C\""));
        assert!(html.starts_with("<!doctype html>"));
    }
}
