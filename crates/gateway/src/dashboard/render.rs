//! Server-rendered HTML of the dashboard pages. Every string that can come
//! from a client (URIs, rule match data, user names, ban reasons, routes)
//! goes through [`esc`]; numbers are formatted directly. No inline script
//! or style: the CSP allows only `/dashboard/app.js` and `/dashboard/app.css`.

use std::fmt::Write as _;

use serde_json::Value;

/// HTML-escapes text for element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    identity::web::html_escape(s)
}

/// A JSON value shown as text (strings without quotes), escaped.
pub fn esc_v(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => esc(s),
        other => esc(&other.to_string()),
    }
}

/// Which navigation entry is current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    /// Overview.
    Overview,
    /// Live feed.
    Live,
    /// Bans.
    Bans,
    /// Rule tuning.
    Tuning,
    /// Event detail (no entry highlighted).
    None,
}

/// The page frame: header with navigation and a logout form.
pub fn page(title: &str, nav: Nav, user: &str, csrf: &str, body: &str) -> String {
    let item = |n: Nav, href: &str, label: &str| {
        format!(
            "<a href=\"{href}\"{}>{label}</a>",
            if n == nav { " class=\"on\"" } else { "" }
        )
    };
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
<meta name=\"robots\" content=\"noindex\">\n<title>{t} – palisade</title>\n\
<link rel=\"stylesheet\" href=\"/dashboard/app.css\">\n</head>\n<body>\n<header>\n\
<span class=\"brand\">palisade</span>\n<nav>{}{}{}{}</nav>\n\
<form method=\"post\" action=\"/dashboard/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{c}\">\
<button type=\"submit\" id=\"logout\">Sign out {u}</button></form>\n</header>\n\
<main>\n<h1>{t}</h1>\n{body}</main>\n<script src=\"/dashboard/app.js\"></script>\n</body>\n</html>\n",
        item(Nav::Overview, "/dashboard/", "Overview"),
        item(Nav::Live, "/dashboard/live", "Live"),
        item(Nav::Bans, "/dashboard/bans", "Bans"),
        item(Nav::Tuning, "/dashboard/tuning", "Rule tuning"),
        t = esc(title),
        c = esc(csrf),
        u = esc(user),
    )
}

/// The dashboard's own login form.
pub fn login(csrf: &str, error: Option<&str>) -> String {
    let err = error
        .map(|e| {
            format!(
                "<p class=\"msg err\" role=\"alert\" id=\"error\">{}</p>\n",
                esc(e)
            )
        })
        .unwrap_or_default();
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
<meta name=\"robots\" content=\"noindex\">\n<title>Sign in – palisade dashboard</title>\n\
<link rel=\"stylesheet\" href=\"/dashboard/app.css\">\n</head>\n<body>\n<main class=\"login\">\n\
<h1>palisade dashboard</h1>\n{err}<form method=\"post\" action=\"/dashboard/login\">\n\
<input type=\"hidden\" name=\"csrf\" value=\"{c}\">\n\
<label for=\"username\">Username</label><input type=\"text\" id=\"username\" name=\"username\" autocomplete=\"username\" required>\n\
<label for=\"password\">Password</label><input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" required>\n\
<label for=\"code\">Authenticator code (if enrolled)</label><input type=\"text\" id=\"code\" name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\">\n\
<p><button type=\"submit\" id=\"submit\">Sign in</button></p>\n</form>\n</main>\n</body>\n</html>\n",
        c = esc(csrf)
    )
}

/// A short message page (errors, 403).
pub fn message(title: &str, text: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{t}</title>\n\
<link rel=\"stylesheet\" href=\"/dashboard/app.css\">\n</head>\n<body>\n<main class=\"login\">\n\
<h1>{t}</h1>\n<p>{m}</p>\n<p><a href=\"/dashboard/login\">Sign in as another user</a></p>\n</main>\n</body>\n</html>\n",
        t = esc(title),
        m = esc(text)
    )
}

/// Time in unix microseconds as `YYYY-MM-DD HH:MM:SSZ`.
pub fn time(us: u64) -> String {
    let secs = us / 1_000_000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil from days (Howard Hinnant's algorithm).
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
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// One sample bucket of the requests-vs-blocked chart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bucket {
    /// Bucket start, unix seconds.
    pub start_s: u64,
    /// Requests answered in the bucket.
    pub requests: u64,
    /// Requests blocked (WAF or shield) in the bucket.
    pub blocked: u64,
}

/// Requests vs blocked as an inline SVG bar chart (no script).
pub fn chart(buckets: &[Bucket]) -> String {
    const W: f64 = 600.0;
    const H: f64 = 160.0;
    const PAD: f64 = 20.0;
    let max = buckets
        .iter()
        .map(|b| b.requests.max(b.blocked))
        .max()
        .unwrap_or(0)
        .max(1);
    let n = buckets.len().max(1) as f64;
    let bw = (W - PAD) / n;
    let mut s = format!(
        "<svg viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"requests and blocked requests over time\" id=\"chart\">\n\
<line class=\"axis\" x1=\"{PAD}\" y1=\"{y0}\" x2=\"{W}\" y2=\"{y0}\"/>\n<text x=\"0\" y=\"10\">{max}</text>\n<text x=\"0\" y=\"{y0}\">0</text>\n",
        y0 = H - PAD
    );
    let scale = (H - 2.0 * PAD) / max as f64;
    for (i, b) in buckets.iter().enumerate() {
        let x = PAD + i as f64 * bw;
        let hr = b.requests as f64 * scale;
        let hb = b.blocked as f64 * scale;
        let _ = writeln!(
            s,
            "<rect class=\"req\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{hr:.1}\"><title>{} requests</title></rect>\
<rect class=\"blk\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{hb:.1}\"><title>{} blocked</title></rect>",
            H - PAD - hr,
            (bw * 0.45).max(0.5),
            b.requests,
            x + bw * 0.45,
            H - PAD - hb,
            (bw * 0.45).max(0.5),
            b.blocked,
        );
    }
    if let (Some(f), Some(l)) = (buckets.first(), buckets.last()) {
        let _ = writeln!(
            s,
            "<text x=\"{PAD}\" y=\"{H}\">{}</text><text x=\"{}\" y=\"{H}\" text-anchor=\"end\">{}</text>",
            &time(f.start_s * 1_000_000)[11..],
            W,
            &time(l.start_s * 1_000_000)[11..]
        );
    }
    s.push_str("</svg>\n");
    s
}

/// A two-column "name, count" table; names escaped, optional link per row.
pub fn count_table(
    id: &str,
    head: (&str, &str),
    rows: &[(String, u64)],
    link: Option<&dyn Fn(&str) -> String>,
) -> String {
    let mut s = format!(
        "<div class=\"scroll\"><table id=\"{id}\"><thead><tr><th>{}</th><th>{}</th></tr></thead><tbody>\n",
        esc(head.0),
        esc(head.1)
    );
    if rows.is_empty() {
        s.push_str("<tr><td colspan=\"2\" class=\"muted\">none</td></tr>\n");
    }
    for (k, n) in rows {
        let name = match link {
            Some(f) => format!("<a href=\"{}\">{}</a>", esc(&f(k)), esc(k)),
            None => esc(k),
        };
        let _ = writeln!(s, "<tr><td class=\"wrap\">{name}</td><td>{n}</td></tr>");
    }
    s.push_str("</tbody></table></div>\n");
    s
}

/// Percent-encodes a query-string value (unreserved characters kept).
pub fn qs(s: &str) -> String {
    identity::web::pct_encode(s)
}

/// The detail link of a stored event: by its id (by time, client and
/// kind for events stored before events had ids).
pub fn event_link(e: &Value) -> String {
    if let Some(id) = e["id"].as_u64().filter(|&id| id > 0) {
        return format!("/dashboard/event?id={id}");
    }
    format!(
        "/dashboard/event?t={}&c={}&k={}",
        e["time_us"].as_u64().unwrap_or(0),
        qs(e["client"].as_str().unwrap_or("-")),
        qs(e["kind"].as_str().unwrap_or(""))
    )
}

/// The one-line summary of an event ("GET /x", a ban's net, a user…).
pub fn summary(e: &Value) -> String {
    if let Some(u) = e["uri"].as_str() {
        return format!("{} {u}", e["method"].as_str().unwrap_or(""));
    }
    for k in [
        "detail", "reason", "net", "user", "error", "key", "listener",
    ] {
        if let Some(v) = e[k].as_str() {
            return v.to_string();
        }
    }
    String::new()
}

/// Rows of the events table (`<tbody id="feed">` on the live page).
pub fn events_table(id: &str, events: &[Value]) -> String {
    let mut s = format!(
        "<div class=\"scroll\"><table><thead><tr><th>Time</th><th>Kind</th><th>Client</th><th>Route</th><th>Request / detail</th><th>Rules</th><th></th></tr></thead>\n<tbody id=\"{id}\">\n"
    );
    for e in events {
        let kind = e["kind"].as_str().unwrap_or("");
        let rules: Vec<String> = e["rules"]
            .as_array()
            .map(|r| r.iter().map(|h| h["id"].to_string()).collect())
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td class=\"k-{k_cls}\">{}</td><td>{}</td><td>{}</td><td class=\"wrap\">{}</td><td>{}</td><td><a href=\"{}\">detail</a></td></tr>",
            time(e["time_us"].as_u64().unwrap_or(0)),
            esc(kind),
            esc_v(&e["client"]),
            esc_v(&e["route"]),
            esc(&summary(e)),
            esc(&rules.join(" ")),
            esc(&event_link(e)),
            k_cls = kind.bytes().filter(|b| b.is_ascii_lowercase() || *b == b'_').map(char::from).collect::<String>(),
        );
    }
    s.push_str("</tbody></table></div>\n");
    s
}

/// The detail of one event: common fields, the request, the matched rules
/// with their data, and what was done.
pub fn event_detail(e: &Value) -> String {
    let kind = e["kind"].as_str().unwrap_or("");
    let action = match kind {
        "waf_block" => format!(
            "Blocked by the WAF (status {}, anomaly score {}).",
            e["status"], e["score"]
        ),
        "waf_match" => format!(
            "Logged by the WAF, request passed (status {}, anomaly score {}).",
            e["status"], e["score"]
        ),
        "shield_refused" => "Refused by the shield (deny list or ban).".into(),
        "rate_limited" => "Answered 429 by a rate limit.".into(),
        "shield_ban" => "A network was banned.".into(),
        "shield_unban" => "A ban was lifted.".into(),
        other => format!("Event {other}."),
    };
    let mut s = String::from("<div class=\"scroll\"><table id=\"event\"><tbody>\n");
    let mut row = |k: &str, v: String| {
        let _ = writeln!(s, "<tr><th>{}</th><td class=\"wrap\">{v}</td></tr>", esc(k));
    };
    row("Time", time(e["time_us"].as_u64().unwrap_or(0)));
    row("Kind", esc(kind));
    row("Action", esc(&action));
    row("Client", esc_v(&e["client"]));
    row("Route", esc_v(&e["route"]));
    row("Request id", esc_v(&e["request_id"]));
    if e.get("uri").is_some() {
        row("Method", esc_v(&e["method"]));
        row("URI", format!("<code>{}</code>", esc_v(&e["uri"])));
    }
    if let Some(o) = e.as_object() {
        for (k, v) in o {
            if matches!(
                k.as_str(),
                "time_us"
                    | "kind"
                    | "client"
                    | "route"
                    | "request_id"
                    | "method"
                    | "uri"
                    | "rules"
                    | "features"
            ) {
                continue;
            }
            row(k, esc_v(v));
        }
    }
    s.push_str("</tbody></table></div>\n");
    if let Some(rules) = e["rules"].as_array() {
        s.push_str("<h2>Matched rules</h2>\n<div class=\"scroll\"><table id=\"rules\"><thead><tr><th>Rule</th><th>Severity</th><th>Category</th><th>Message</th><th>Matched data</th></tr></thead><tbody>\n");
        for r in rules {
            let _ = writeln!(
                s,
                "<tr><td><a href=\"/dashboard/tuning?rule={id}\">{id}</a></td><td>{}</td><td>{}</td><td class=\"wrap\">{}</td><td class=\"wrap\"><code>{}</code></td></tr>",
                esc_v(&r["severity"]),
                esc_v(&r["category"]),
                esc_v(&r["msg"]),
                esc_v(&r["data"]),
                id = r["id"].as_u64().unwrap_or(0),
            );
        }
        s.push_str("</tbody></table></div>\n");
    }
    if let Some(f) = e["features"].as_array() {
        s.push_str("<h2>Deviations</h2>\n<pre>");
        for d in f {
            let _ = writeln!(s, "{}", esc(&d.to_string()));
        }
        s.push_str("</pre>\n");
    }
    s
}

/// Whether a path can be quoted into a SecLang suggestion as is (anything
/// else would need escaping an operator should see and think about).
pub fn seclang_safe(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= 256
        && path.starts_with('/')
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-_.~%".contains(&b))
}

/// The suggested SecLang exclusion for `rule` firing on `path`: a phase-1
/// rule that removes it for that path with `ctl:ruleRemoveById`. `id` is
/// the new exclusion rule's id.
pub fn exclusion(id: u64, rule: u64, path: &str) -> Option<String> {
    seclang_safe(path).then(|| {
        format!(
            "SecRule REQUEST_FILENAME \"@beginsWith {path}\" \\\n    \"id:{id},phase:1,pass,nolog,ctl:ruleRemoveById={rule}\""
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn attacker_strings_are_escaped_in_tables_and_detail() {
        let e = json!({
            "time_us": 1_700_000_000_000_000u64, "kind": "waf_block", "client": "192.0.2.1",
            "route": "<b>r</b>", "method": "GET", "uri": "/?q=<script>alert(1)</script>",
            "status": 403, "score": 5, "request_id": "\"><img src=x onerror=alert(1)>",
            "rules": [{"id": 941100, "msg": "XSS <script>", "severity": 2, "category": "xss",
                       "data": "Matched Data: <script>alert(1)</script>"}]
        });
        for html in [
            events_table("t", std::slice::from_ref(&e)),
            event_detail(&e),
        ] {
            assert!(!html.contains("<script>"), "{html}");
            assert!(!html.contains("<img"), "{html}");
            assert!(!html.contains("<b>"), "{html}");
            assert!(
                html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
                "{html}"
            );
        }
    }

    #[test]
    fn times_render_in_utc() {
        assert_eq!(time(1_700_000_000_000_000), "2023-11-14 22:13:20Z");
        assert_eq!(time(0), "1970-01-01 00:00:00Z");
    }

    #[test]
    fn exclusions_only_for_plain_paths() {
        let x = exclusion(1000, 942100, "/api/search").unwrap();
        assert!(x.contains("@beginsWith /api/search"));
        assert!(x.contains("ctl:ruleRemoveById=942100"));
        assert!(exclusion(1000, 1, "/a\"b").is_none());
        assert!(exclusion(1000, 1, "/a b").is_none());
        assert!(exclusion(1000, 1, "x").is_none());
    }

    #[test]
    fn chart_scales_bars_to_the_largest_bucket() {
        let svg = chart(&[
            Bucket {
                start_s: 0,
                requests: 10,
                blocked: 5,
            },
            Bucket {
                start_s: 60,
                requests: 0,
                blocked: 0,
            },
        ]);
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("<title>10 requests</title>"));
        assert!(svg.contains("<title>5 blocked</title>"));
        assert_eq!(svg.matches("<rect").count(), 4);
    }
}
