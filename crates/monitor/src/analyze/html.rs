//! The self-contained HTML report: one file, inline CSS and inline SVG
//! charts, no script, no external resource (it opens offline and leaks
//! nothing when mailed around).
//!
//! Every string that comes from a log (clients, methods, targets, file
//! names, rule messages) goes through [`esc`]: a logged
//! `<script>` request must show as text, not run in the analyst's browser.

use std::fmt::Write as _;

use super::engine::category_names;
use super::report::{categories, flagged_clients, format_time, top_clients, top_rules};
use super::{Analysis, Sample};

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters have no business in a page: shown as U+FFFD.
            c if c.is_control() && c != '\t' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:1em;color:#222}\
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em;border-bottom:1px solid #ddd}\
.cards{display:flex;flex-wrap:wrap;gap:.6em}.card{border:1px solid #ddd;border-radius:6px;padding:.5em .8em;min-width:9em}\
.card b{display:block;font-size:1.4em}.bad b{color:#b00}\
table{border-collapse:collapse;width:100%;font-size:13px}td,th{border-bottom:1px solid #eee;padding:3px 6px;text-align:left;vertical-align:top}\
td.n,th.n{text-align:right}code{word-break:break-all;font-size:12px}svg{max-width:100%;height:auto}\
.muted{color:#777}";

fn card(o: &mut String, label: &str, value: &str, bad: bool) {
    let _ = write!(
        o,
        "<div class=\"card{}\"><b>{}</b>{}</div>",
        if bad { " bad" } else { "" },
        esc(value),
        esc(label)
    );
}

fn timeline_svg(o: &mut String, a: &Analysis) {
    let tl = a.summary.timeline.display(96);
    if tl.is_empty() {
        o.push_str("<p class=\"muted\">No timestamps.</p>");
        return;
    }
    let (w, h, left, bottom) = (960.0_f64, 220.0_f64, 50.0_f64, 30.0_f64);
    let max = tl.iter().map(|b| b.2).max().unwrap_or(1).max(1) as f64;
    let bw = (w - left) / tl.len() as f64;
    let _ = write!(
        o,
        "<svg viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"requests and attacks over time\">"
    );
    let _ = write!(
        o,
        "<text x=\"0\" y=\"12\" font-size=\"11\">{}</text><text x=\"0\" y=\"{}\" font-size=\"11\">0</text>",
        max as u64,
        h - bottom
    );
    for (i, (start, _, r, at)) in tl.iter().enumerate() {
        let x = left + i as f64 * bw;
        let rh = (*r as f64 / max) * (h - bottom - 10.0);
        let ah = (*at as f64 / max) * (h - bottom - 10.0);
        let _ = write!(
            o,
            "<g><title>{} UTC: {r} requests, {at} attacks</title>\
             <rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{rh:.1}\" fill=\"#9ab\"/>\
             <rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{ah:.1}\" fill=\"#c33\"/></g>",
            esc(&format_time(*start)),
            h - bottom - rh,
            (bw - 1.0).max(0.5),
            h - bottom - ah,
            (bw - 1.0).max(0.5),
        );
    }
    if let (Some(first), Some(last)) = (tl.first(), tl.last()) {
        let _ = write!(
            o,
            "<text x=\"{left}\" y=\"{}\" font-size=\"11\">{}</text>\
             <text x=\"{w}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">{}</text>",
            h - 10.0,
            esc(&format_time(first.0)),
            h - 10.0,
            esc(&format_time(last.0 + last.1))
        );
    }
    o.push_str("</svg><p class=\"muted\">Blue: requests; red: attacks (UTC).</p>");
}

fn categories_svg(o: &mut String, a: &Analysis) {
    let cats = categories(a);
    if cats.is_empty() {
        o.push_str("<p>No attack found.</p>");
        return;
    }
    let max = cats.iter().map(|c| c.1).max().unwrap_or(1).max(1) as f64;
    let row = 22.0;
    let h = row * cats.len() as f64 + 4.0;
    let _ = write!(
        o,
        "<svg viewBox=\"0 0 700 {h}\" role=\"img\" aria-label=\"attacks by category\">"
    );
    for (i, (c, n)) in cats.iter().enumerate() {
        let y = i as f64 * row + 2.0;
        let bw = (*n as f64 / max) * 480.0;
        let _ = write!(
            o,
            "<text x=\"0\" y=\"{:.1}\" font-size=\"13\">{}</text>\
             <rect x=\"110\" y=\"{y:.1}\" width=\"{bw:.1}\" height=\"{:.1}\" fill=\"#c33\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\">{n}</text>",
            y + 15.0,
            esc(c),
            row - 6.0,
            115.0 + bw,
            y + 14.0
        );
    }
    o.push_str("</svg>");
}

fn samples(o: &mut String, a: &Analysis, rows: &[Sample]) {
    o.push_str("<table><tr><th>where</th><th>client</th><th>request</th><th class=\"n\">status</th><th>categories</th><th>rules</th></tr>");
    for s in rows {
        let file = a
            .files
            .get(s.at.file)
            .map(|f| f.path.display().to_string())
            .unwrap_or_default();
        let _ = write!(
            o,
            "<tr><td>{}:{}<br><span class=\"muted\">{}</span></td><td>{}</td><td><code>{} {}</code></td><td class=\"n\">{}</td><td>{}</td><td>{}</td></tr>",
            esc(&file),
            s.at.line,
            s.time.map(format_time).unwrap_or_default(),
            esc(&s.client),
            esc(&s.method),
            esc(&s.uri),
            s.status,
            esc(&category_names(s.verdict.categories).collect::<Vec<_>>().join(", ")),
            s.verdict.rules.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
        );
    }
    o.push_str("</table>");
}

fn clients_table(o: &mut String, rows: &[(&String, &super::ClientStats, Vec<&'static str>)]) {
    o.push_str("<table><tr><th>client</th><th class=\"n\">requests</th><th class=\"n\">attacks</th><th class=\"n\">attacks 2xx</th><th class=\"n\">4xx</th><th class=\"n\">paths</th><th class=\"n\">req/s</th><th>categories</th><th>flags</th></tr>");
    for (c, s, f) in rows {
        let _ = write!(
            o,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{:.0}%</td><td class=\"n\">{}</td><td class=\"n\">{:.2}</td><td>{}</td><td>{}</td></tr>",
            esc(c),
            s.requests,
            s.attacks,
            s.suspicious_successes,
            100.0 * s.ratio_4xx(),
            s.distinct_paths(),
            s.rate(),
            esc(&category_names(s.categories).collect::<Vec<_>>().join(", ")),
            esc(&f.join(", "))
        );
    }
    o.push_str("</table>");
}

/// The HTML page.
pub fn page(a: &Analysis, top: usize) -> String {
    let s = &a.summary;
    let mut o = String::with_capacity(64 * 1024);
    o.push_str("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
        <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
        <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
        <title>palisade log analysis</title><style>");
    o.push_str(CSS);
    o.push_str("</style></head><body><h1>palisade log analysis</h1>");
    let _ = write!(o, "<p class=\"muted\">Rules: {}.<br>Files: ", esc(&a.rules));
    for (i, f) in a.files.iter().enumerate() {
        if i > 0 {
            o.push_str(", ");
        }
        let _ = write!(
            o,
            "<code>{}</code> ({} lines",
            esc(&f.path.display().to_string()),
            f.lines
        );
        if f.gzip {
            o.push_str(", gzip");
        }
        if let Some(e) = &f.error {
            let _ = write!(o, ", <b>error: {}</b>", esc(e));
        }
        o.push(')');
    }
    o.push_str("</p><div class=\"cards\">");
    let skipped: u64 = s.skipped.values().sum();
    card(&mut o, "lines", &s.lines.to_string(), false);
    card(&mut o, "requests", &s.requests.to_string(), false);
    card(&mut o, "attacks", &s.attacks.to_string(), s.attacks > 0);
    card(
        &mut o,
        "attacks answered 2xx",
        &s.suspicious_successes.to_string(),
        s.suspicious_successes > 0,
    );
    card(&mut o, "clients", &s.clients.len().to_string(), false);
    card(&mut o, "lines skipped", &skipped.to_string(), skipped > 0);
    o.push_str("</div><h2>Timeline</h2>");
    timeline_svg(&mut o, a);
    o.push_str("<h2>Attacks by category</h2>");
    categories_svg(&mut o, a);
    o.push_str("<h2>Top attacking and suspicious clients</h2>");
    clients_table(&mut o, &top_clients(a, top));
    let flagged = flagged_clients(a);
    if !flagged.is_empty() {
        o.push_str("<h2>Behaviour flags (scanner: many distinct paths, mostly 4xx; burst: high request rate)</h2>");
        clients_table(&mut o, &flagged);
    }
    o.push_str("<h2>Top rules</h2><table><tr><th class=\"n\">rule</th><th class=\"n\">attacks</th><th>message</th></tr>");
    for (id, n, m) in top_rules(a, top) {
        let _ = write!(
            o,
            "<tr><td class=\"n\">{id}</td><td class=\"n\">{n}</td><td>{}</td></tr>",
            esc(m)
        );
    }
    o.push_str("</table>");
    let _ = write!(
        o,
        "<h2>Suspicious successes: attacks answered 2xx ({} in all; first {} shown)</h2>",
        s.suspicious_successes,
        s.success_samples.len()
    );
    samples(&mut o, a, &s.success_samples);
    let _ = write!(
        o,
        "<h2>First attacks ({} shown)</h2>",
        s.attack_samples.len()
    );
    samples(&mut o, a, &s.attack_samples);
    if skipped > 0 {
        o.push_str("<h2>Skipped lines</h2><p>");
        for (k, n) in &s.skipped {
            let _ = write!(o, "{}: {n}. ", esc(k.name()));
        }
        o.push_str("Sample: ");
        for (at, k) in &s.skipped_samples {
            let file = a
                .files
                .get(at.file)
                .map(|f| f.path.display().to_string())
                .unwrap_or_default();
            let _ = write!(
                o,
                "<code>{}:{}</code> ({}) ",
                esc(&file),
                at.line,
                esc(k.name())
            );
        }
        o.push_str("</p>");
    }
    let _ = writeln!(
        o,
        "<p class=\"muted\">{} lines in {:.1} s with {} threads.</p></body></html>",
        s.lines,
        a.elapsed.as_secs_f64(),
        a.threads
    );
    o
}

#[cfg(test)]
mod tests {
    use super::esc;

    #[test]
    fn escapes_markup_and_controls() {
        assert_eq!(
            esc("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
        assert!(!esc("a\u{1b}b").contains('\u{1b}'));
    }
}
