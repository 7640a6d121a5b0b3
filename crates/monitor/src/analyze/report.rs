//! The terminal summary and the JSON report of an [`Analysis`].
//!
//! Log-derived strings are attacker-controlled: the terminal summary
//! replaces control characters (an escape sequence in a logged URI must
//! not drive the operator's terminal), JSON escapes by construction, and
//! the HTML page escapes everything ([`super::html`]).

use std::fmt::Write as _;

use serde_json::{json, Value};

use super::behaviour::ClientStats;
use super::engine::category_names;
use super::{Analysis, Sample, CATEGORIES};

/// Rows in the "top" tables (clients, rules) by default.
pub const DEFAULT_TOP: usize = 10;

/// Replaces control characters (C0, DEL, C1) by `\xHH` / `\u{..}` for a
/// terminal.
pub fn terminal_safe(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

/// `2026-10-10 11:55` (UTC) from Unix seconds.
pub fn format_time(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let rem = t.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rem / 3600,
        (rem / 60) % 60
    )
}

/// Clients worth showing: those with attacks or behaviour flags, most
/// attacks first, then most requests; at most `n`.
pub fn top_clients(a: &Analysis, n: usize) -> Vec<(&String, &ClientStats, Vec<&'static str>)> {
    let mut v: Vec<_> = a
        .summary
        .clients
        .iter()
        .map(|(k, s)| (k, s, s.flags()))
        .filter(|(_, s, f)| s.attacks > 0 || !f.is_empty())
        .collect();
    v.sort_by(|x, y| {
        (y.1.attacks, y.2.len(), y.1.requests, x.0).cmp(&(
            x.1.attacks,
            x.2.len(),
            x.1.requests,
            y.0,
        ))
    });
    v.truncate(n);
    v
}

/// Clients flagged by the behaviour heuristics (all of them, sorted by address).
pub fn flagged_clients(a: &Analysis) -> Vec<(&String, &ClientStats, Vec<&'static str>)> {
    let mut v: Vec<_> = a
        .summary
        .clients
        .iter()
        .map(|(k, s)| (k, s, s.flags()))
        .filter(|(_, _, f)| !f.is_empty())
        .collect();
    v.sort_by(|x, y| x.0.cmp(y.0));
    v
}

/// Attack categories with counts, most first.
pub fn categories(a: &Analysis) -> Vec<(&'static str, u64)> {
    let mut v: Vec<_> = CATEGORIES
        .iter()
        .zip(a.summary.by_category.iter())
        .filter(|(_, n)| **n > 0)
        .map(|(c, n)| (*c, *n))
        .collect();
    v.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(y.0)));
    v
}

/// Rules with counts, most first.
pub fn top_rules(a: &Analysis, n: usize) -> Vec<(u64, u64, &str)> {
    let mut v: Vec<_> = a
        .summary
        .by_rule
        .iter()
        .map(|(id, c)| {
            (
                *id,
                *c,
                a.rule_messages.get(id).map(String::as_str).unwrap_or(""),
            )
        })
        .collect();
    v.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0)));
    v.truncate(n);
    v
}

fn rate(a: &Analysis) -> f64 {
    a.summary.lines as f64 / a.elapsed.as_secs_f64().max(1e-6)
}

fn sample_line(a: &Analysis, s: &Sample) -> String {
    let file = a
        .files
        .get(s.at.file)
        .map(|f| f.path.display().to_string())
        .unwrap_or_default();
    format!(
        "{}:{} {} {} {} -> {} [{}] rules {}",
        terminal_safe(&file),
        s.at.line,
        terminal_safe(&s.client),
        terminal_safe(&s.method),
        terminal_safe(&s.uri),
        s.status,
        category_names(s.verdict.categories)
            .collect::<Vec<_>>()
            .join(","),
        s.verdict
            .rules
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(",")
    )
}

fn pct(n: u64, d: u64) -> f64 {
    if d == 0 {
        0.0
    } else {
        100.0 * n as f64 / d as f64
    }
}

/// The terminal summary.
pub fn text(a: &Analysis, top: usize) -> String {
    let s = &a.summary;
    let mut o = String::new();
    let _ = writeln!(o, "rules: {}", a.rules);
    for f in &a.files {
        let _ = writeln!(
            o,
            "file: {} ({} lines{}{})",
            terminal_safe(&f.path.display().to_string()),
            f.lines,
            if f.gzip { ", gzip" } else { "" },
            f.error
                .as_ref()
                .map(|e| format!(", ERROR: {}", terminal_safe(e)))
                .unwrap_or_default()
        );
    }
    let skipped: u64 = s.skipped.values().sum();
    let _ = writeln!(
        o,
        "lines: {} read, {} requests, {} without request line, {} skipped in {:.1} s ({:.0} lines/s, {} threads, {:.1}% verdicts cached)",
        s.lines,
        s.requests,
        s.no_request,
        skipped,
        a.elapsed.as_secs_f64(),
        rate(a),
        a.threads,
        pct(s.cache_hits, s.cache_hits + s.evaluated)
    );
    if skipped > 0 {
        let reasons: Vec<String> = s
            .skipped
            .iter()
            .map(|(k, n)| format!("{} {n}", k.name()))
            .collect();
        let sample: Vec<String> = s
            .skipped_samples
            .iter()
            .map(|(at, k)| {
                let file = a
                    .files
                    .get(at.file)
                    .map(|f| f.path.display().to_string())
                    .unwrap_or_default();
                format!("{}:{} ({})", terminal_safe(&file), at.line, k.name())
            })
            .collect();
        let _ = writeln!(
            o,
            "skipped: {} — e.g. {}",
            reasons.join(", "),
            sample.join(" ")
        );
    }
    let _ = writeln!(
        o,
        "attacks: {} of {} requests ({:.2}%), suspicious successes (attack answered 2xx): {}",
        s.attacks,
        s.requests,
        pct(s.attacks, s.requests),
        s.suspicious_successes
    );
    let cats = categories(a);
    if !cats.is_empty() {
        let _ = writeln!(o, "\nattacks by category:");
        for (c, n) in cats {
            let _ = writeln!(o, "  {c:<11} {n:>9}");
        }
    }
    let rules = top_rules(a, top);
    if !rules.is_empty() {
        let _ = writeln!(o, "\ntop rules:");
        for (id, n, msg) in rules {
            let _ = writeln!(o, "  {id:>7} {n:>9}  {}", terminal_safe(msg));
        }
    }
    let clients = top_clients(a, top);
    if !clients.is_empty() {
        let _ = writeln!(o, "\ntop attacking / suspicious clients:");
        let _ = writeln!(
            o,
            "  {:<40} {:>8} {:>8} {:>6} {:>6} {:>7}  categories / flags",
            "client", "requests", "attacks", "2xx!", "4xx%", "paths"
        );
        for (c, st, flags) in clients {
            let mut what: Vec<&str> = category_names(st.categories).collect();
            what.extend(flags.iter().copied());
            let _ = writeln!(
                o,
                "  {:<40} {:>8} {:>8} {:>6} {:>5.0}% {:>7}  {}",
                terminal_safe(c),
                st.requests,
                st.attacks,
                st.suspicious_successes,
                100.0 * st.ratio_4xx(),
                st.distinct_paths(),
                what.join(",")
            );
        }
    }
    if s.untracked_requests > 0 {
        let _ = writeln!(
            o,
            "  ({} requests from clients past the {} tracked)",
            s.untracked_requests,
            super::MAX_CLIENTS
        );
    }
    let tl = s.timeline.display(24);
    if !tl.is_empty() {
        let _ = writeln!(o, "\ntimeline (UTC):");
        let max = tl.iter().map(|b| b.2).max().unwrap_or(1).max(1);
        for (start, _w, r, at) in tl {
            let bar = "#".repeat(((r * 40) / max) as usize);
            let _ = writeln!(
                o,
                "  {}  {r:>9} req {at:>7} attacks  {bar}",
                format_time(start)
            );
        }
    }
    if !s.success_samples.is_empty() {
        let _ = writeln!(
            o,
            "\nsuspicious successes (first {}):",
            s.success_samples.len().min(top)
        );
        for x in s.success_samples.iter().take(top) {
            let _ = writeln!(o, "  {}", sample_line(a, x));
        }
    }
    o
}

fn sample_json(a: &Analysis, s: &Sample) -> Value {
    json!({
        "file": a.files.get(s.at.file).map(|f| f.path.display().to_string()),
        "line": s.at.line,
        "client": s.client,
        "time": s.time,
        "method": s.method,
        "uri": s.uri,
        "status": s.status,
        "categories": category_names(s.verdict.categories).collect::<Vec<_>>(),
        "rules": s.verdict.rules,
        "score": s.verdict.score,
    })
}

fn client_json(c: &str, s: &ClientStats, flags: &[&str]) -> Value {
    json!({
        "client": c,
        "requests": s.requests,
        "attacks": s.attacks,
        "suspicious_successes": s.suspicious_successes,
        "status_4xx": s.status_4xx,
        "status_5xx": s.status_5xx,
        "ratio_4xx": s.ratio_4xx(),
        "distinct_paths": s.distinct_paths(),
        "requests_per_second": s.rate(),
        "first": s.first,
        "last": s.last,
        "categories": category_names(s.categories).collect::<Vec<_>>(),
        "flags": flags,
    })
}

/// The JSON report.
pub fn json(a: &Analysis, top: usize) -> Value {
    let s = &a.summary;
    json!({
        "rules": a.rules,
        "elapsed_seconds": a.elapsed.as_secs_f64(),
        "lines_per_second": rate(a),
        "threads": a.threads,
        "files": a.files.iter().map(|f| json!({
            "path": f.path.display().to_string(),
            "lines": f.lines,
            "bytes": f.bytes,
            "gzip": f.gzip,
            "error": f.error,
        })).collect::<Vec<_>>(),
        "lines": s.lines,
        "entries": s.entries,
        "requests": s.requests,
        "no_request_line": s.no_request,
        "skipped": s.skipped.iter().map(|(k, n)| (k.name().to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
        "skipped_sample": s.skipped_samples.iter().map(|(at, k)| json!({
            "file": a.files.get(at.file).map(|f| f.path.display().to_string()),
            "line": at.line,
            "reason": k.name(),
        })).collect::<Vec<_>>(),
        "status_classes": (1..6).map(|i| (format!("{i}xx"), json!(s.status_classes[i]))).collect::<serde_json::Map<_, _>>(),
        "attacks": s.attacks,
        "suspicious_successes": s.suspicious_successes,
        "cache_hits": s.cache_hits,
        "evaluated": s.evaluated,
        "by_category": categories(a).into_iter().map(|(c, n)| (c.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
        "top_rules": top_rules(a, top).into_iter().map(|(id, n, m)| json!({"id": id, "count": n, "message": m})).collect::<Vec<_>>(),
        "top_clients": top_clients(a, top).into_iter().map(|(c, st, f)| client_json(c, st, &f)).collect::<Vec<_>>(),
        "flagged_clients": flagged_clients(a).into_iter().map(|(c, st, f)| client_json(c, st, &f)).collect::<Vec<_>>(),
        "untracked_requests": s.untracked_requests,
        "timeline": {
            "bucket_seconds": s.timeline.width,
            "buckets": s.timeline.buckets.iter().map(|(k, (r, at))| json!({
                "start": k * s.timeline.width, "requests": r, "attacks": at,
            })).collect::<Vec<_>>(),
        },
        "attack_samples": s.attack_samples.iter().map(|x| sample_json(a, x)).collect::<Vec<_>>(),
        "suspicious_success_samples": s.success_samples.iter().map(|x| sample_json(a, x)).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(terminal_safe("a\x1b[2Jb\u{9b}"), "a\\u{1b}[2Jb\\u{9b}");
        assert_eq!(format_time(1_791_633_336), "2026-10-10 11:55");
        assert_eq!(format_time(0), "1970-01-01 00:00");
    }
}
