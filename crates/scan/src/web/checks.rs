//! Passive checks: everything judged from responses the crawl fetched
//! anyway (headers, cookies, error pages, mixed content, listings, forms).

use std::collections::BTreeMap;

use super::client::{Response, Url};
use super::html::Tag;
use crate::finding::Finding;
use crate::Severity;

/// Evidence kept per finding (default 300 characters): enough to show the
/// header or body excerpt, bounded against huge values.
pub const MAX_EVIDENCE_CHARS: usize = 300;
/// HSTS `max-age` below this is reported (default 15,768,000 s = 6 months,
/// the SSL Labs / Mozilla minimum): a short HSTS lapses between visits.
pub const MIN_HSTS_MAX_AGE: u64 = 15_768_000;

/// Distinct findings kept per scan (default 500): titles carry cookie and
/// parameter names the site chooses, so a hostile site could otherwise
/// mint unbounded findings.
pub const MAX_FINDINGS: usize = 500;

/// Findings keyed by id and title, counting every further URL that shows
/// the same problem, so a missing header on 100 pages is one finding.
#[derive(Debug, Default)]
pub struct Collector {
    found: BTreeMap<(String, String), (Finding, usize)>,
}

impl Collector {
    /// Adds a finding (or counts another instance of it).
    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &mut self,
        id: &str,
        severity: Severity,
        title: impl Into<String>,
        evidence: impl AsRef<str>,
        fix: &str,
        location: &Url,
    ) {
        let title = title.into();
        let key = (id.to_owned(), title.clone());
        if self.found.len() >= MAX_FINDINGS && !self.found.contains_key(&key) {
            return;
        }
        self.found
            .entry(key)
            .and_modify(|(_, n)| *n += 1)
            .or_insert_with(|| {
                (
                    Finding {
                        id: id.to_owned(),
                        scanner: "web",
                        severity,
                        title,
                        evidence: clip(evidence.as_ref()),
                        fix: fix.to_owned(),
                        location: location.to_string(),
                        action: None,
                    },
                    1,
                )
            });
    }

    /// Whether a finding with `id` was recorded.
    pub fn has(&self, id: &str) -> bool {
        self.found.keys().any(|(i, _)| i == id)
    }

    /// The findings, most severe first, then by id.
    pub fn into_findings(self) -> Vec<Finding> {
        let mut out: Vec<Finding> = self
            .found
            .into_values()
            .map(|(mut f, n)| {
                if n > 1 {
                    f.location = format!("{} (and {} more)", f.location, n - 1);
                }
                f
            })
            .collect();
        out.sort_by(|a, b| b.severity.cmp(&a.severity).then_with(|| a.id.cmp(&b.id)));
        out
    }
}

/// Cuts untrusted evidence to [`MAX_EVIDENCE_CHARS`] and replaces control
/// characters, so a terminal is never driven by the target.
pub fn clip(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(MAX_EVIDENCE_CHARS)
        .map(|c| if c.is_control() && c != '\n' { ' ' } else { c })
        .collect();
    if s.chars().count() > MAX_EVIDENCE_CHARS {
        out.push('…');
    }
    out
}

/// Header checks that apply to the site as a whole (run on HTML pages).
pub fn headers(c: &mut Collector, url: &Url, r: &Response) {
    let ok = (200..300).contains(&r.status);
    let csp = r.header("content-security-policy");
    if ok && r.is_html() {
        match csp {
            None => c.add(
                "WEB-HDR-CSP",
                Severity::Medium,
                "Content-Security-Policy header missing",
                "no Content-Security-Policy header on an HTML page",
                "send a Content-Security-Policy, e.g. `default-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'`",
                url,
            ),
            Some(p) => {
                if let Some(weak) = weak_csp(p) {
                    c.add(
                        "WEB-HDR-CSP-WEAK",
                        Severity::Low,
                        "Content-Security-Policy allows script injection",
                        format!("Content-Security-Policy: {p} ({weak})"),
                        "remove 'unsafe-inline'/'unsafe-eval' and wildcards from script-src/default-src; use nonces or hashes",
                        url,
                    );
                }
            }
        }
        let frame_ancestors = csp.is_some_and(|p| directive(p, "frame-ancestors").is_some());
        let xfo = r
            .header("x-frame-options")
            .map(|v| v.trim().to_ascii_lowercase());
        let xfo_ok = matches!(xfo.as_deref(), Some("deny") | Some("sameorigin"));
        if !frame_ancestors && !xfo_ok {
            c.add(
                "WEB-HDR-FRAME",
                Severity::Medium,
                "page can be framed (clickjacking)",
                match xfo {
                    Some(v) => format!("X-Frame-Options: {v}; no CSP frame-ancestors"),
                    None => "no X-Frame-Options and no CSP frame-ancestors".to_owned(),
                },
                "send `Content-Security-Policy: frame-ancestors 'none'` (or 'self') and `X-Frame-Options: DENY`",
                url,
            );
        }
        match r.header("referrer-policy").map(|v| v.to_ascii_lowercase()) {
            None => c.add(
                "WEB-HDR-REFERRER",
                Severity::Low,
                "Referrer-Policy header missing",
                "no Referrer-Policy header",
                "send `Referrer-Policy: strict-origin-when-cross-origin` (or `no-referrer`)",
                url,
            ),
            Some(v) if v.contains("unsafe-url") || v.trim() == "no-referrer-when-downgrade" => c
                .add(
                    "WEB-HDR-REFERRER",
                    Severity::Low,
                    "Referrer-Policy leaks full URLs",
                    format!("Referrer-Policy: {v}"),
                    "send `Referrer-Policy: strict-origin-when-cross-origin` (or `no-referrer`)",
                    url,
                ),
            Some(_) => {}
        }
        if r.header("permissions-policy").is_none() {
            c.add(
                "WEB-HDR-PERMISSIONS",
                Severity::Low,
                "Permissions-Policy header missing",
                "no Permissions-Policy header",
                "send a Permissions-Policy disabling features the site does not use, e.g. `camera=(), microphone=(), geolocation=()`",
                url,
            );
        }
    }
    if ok
        && !r
            .header("x-content-type-options")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("nosniff"))
    {
        c.add(
            "WEB-HDR-XCTO",
            Severity::Low,
            "X-Content-Type-Options: nosniff missing",
            r.header("x-content-type-options")
                .map_or("header absent".to_owned(), |v| {
                    format!("X-Content-Type-Options: {v}")
                }),
            "send `X-Content-Type-Options: nosniff` on every response",
            url,
        );
    }
    if url.tls {
        match r.header("strict-transport-security") {
            None => c.add(
                "WEB-HDR-HSTS",
                Severity::Medium,
                "Strict-Transport-Security header missing",
                "no Strict-Transport-Security header on an HTTPS response",
                "send `Strict-Transport-Security: max-age=31536000; includeSubDomains`",
                url,
            ),
            Some(v) => {
                let age = directive(v, "max-age")
                    .and_then(|a| a.trim_matches('"').parse::<u64>().ok())
                    .unwrap_or(0);
                if age < MIN_HSTS_MAX_AGE {
                    c.add(
                        "WEB-HDR-HSTS",
                        Severity::Low,
                        "Strict-Transport-Security max-age too short",
                        format!("Strict-Transport-Security: {v}"),
                        "use a max-age of at least 15768000 (6 months), ideally 31536000",
                        url,
                    );
                }
            }
        }
    }
    info_headers(c, url, r);
    cookies(c, url, r);
}

/// The value of `name` in a `;`-separated directive list (CSP, HSTS);
/// `Some("")` for a bare directive.
fn directive<'a>(policy: &'a str, name: &str) -> Option<&'a str> {
    policy.split([';', ',']).find_map(|d| {
        let d = d.trim();
        let (n, v) = d.split_once([' ', '=']).unwrap_or((d, ""));
        n.eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

fn weak_csp(policy: &str) -> Option<&'static str> {
    let scripts = directive(policy, "script-src").or_else(|| directive(policy, "default-src"))?;
    let s = scripts.to_ascii_lowercase();
    let has_nonce =
        s.contains("'nonce-") || s.contains("'sha256-") || s.contains("'strict-dynamic'");
    if s.contains("'unsafe-inline'") && !has_nonce {
        return Some("'unsafe-inline' scripts");
    }
    if s.contains("'unsafe-eval'") {
        return Some("'unsafe-eval'");
    }
    if s.split_whitespace()
        .any(|t| t == "*" || t == "http:" || t == "https:" || t == "data:")
    {
        return Some("scripts from any host");
    }
    None
}

fn info_headers(c: &mut Collector, url: &Url, r: &Response) {
    for name in [
        "server",
        "x-powered-by",
        "x-aspnet-version",
        "x-aspnetmvc-version",
    ] {
        let Some(v) = r.header(name) else { continue };
        let versioned = v.bytes().any(|b| b.is_ascii_digit());
        if name == "server" && !versioned {
            continue;
        }
        let (id, title) = if name == "server" {
            (
                "WEB-INFO-SERVER",
                "Server header discloses the software version",
            )
        } else {
            ("WEB-INFO-POWEREDBY", "response discloses the framework")
        };
        c.add(
            id,
            Severity::Low,
            title,
            format!("{name}: {v}"),
            "remove version details (nginx `server_tokens off`, Apache `ServerTokens Prod`, drop X-Powered-By)",
            url,
        );
    }
}

fn cookies(c: &mut Collector, url: &Url, r: &Response) {
    for v in r.headers_all("set-cookie") {
        let mut parts = v.split(';');
        let name = parts
            .next()
            .and_then(|nv| nv.split_once('='))
            .map_or("", |(n, _)| n.trim())
            .to_owned();
        if name.is_empty() {
            continue;
        }
        let attrs: Vec<String> = parts.map(|p| p.trim().to_ascii_lowercase()).collect();
        let has = |a: &str| {
            attrs
                .iter()
                .any(|x| x == a || x.starts_with(&format!("{a}=")))
        };
        let same_site = attrs
            .iter()
            .find_map(|x| x.strip_prefix("samesite="))
            .map(|s| s.trim().to_owned());
        let shown = redact_cookie(v);
        if url.tls && !has("secure") {
            c.add(
                "WEB-COOKIE-SECURE",
                Severity::Medium,
                format!("cookie {name} without the Secure flag"),
                &shown,
                "add `Secure` so the cookie is never sent over plain HTTP",
                url,
            );
        }
        if !has("httponly") {
            c.add(
                "WEB-COOKIE-HTTPONLY",
                Severity::Low,
                format!("cookie {name} without the HttpOnly flag"),
                &shown,
                "add `HttpOnly` unless scripts must read the cookie",
                url,
            );
        }
        match same_site.as_deref() {
            None => c.add(
                "WEB-COOKIE-SAMESITE",
                Severity::Low,
                format!("cookie {name} without SameSite"),
                &shown,
                "add `SameSite=Lax` (or `Strict`)",
                url,
            ),
            Some("none") if !has("secure") => c.add(
                "WEB-COOKIE-SAMESITE",
                Severity::Low,
                format!("cookie {name} with SameSite=None but not Secure"),
                &shown,
                "SameSite=None requires Secure; prefer `SameSite=Lax`",
                url,
            ),
            Some(_) => {}
        }
    }
}

/// A `Set-Cookie` value with the cookie's value hidden (evidence must not
/// leak a session token into reports).
fn redact_cookie(v: &str) -> String {
    let (first, rest) = v.split_once(';').unwrap_or((v, ""));
    let name = first.split_once('=').map_or(first, |(n, _)| n).trim();
    if rest.is_empty() {
        format!("Set-Cookie: {name}=…")
    } else {
        format!("Set-Cookie: {name}=…;{rest}")
    }
}

/// Patterns of error pages and stack traces, with what they reveal.
const ERROR_SIGNS: &[(&str, &str)] = &[
    ("Traceback (most recent call last)", "Python traceback"),
    ("Exception in thread \"", "Java exception"),
    ("\tat java.", "Java stack trace"),
    ("at org.springframework.", "Spring stack trace"),
    ("<b>Fatal error</b>:", "PHP fatal error"),
    ("<b>Warning</b>:", "PHP warning"),
    ("Stack trace:\n#0 ", "PHP stack trace"),
    ("You have an error in your SQL syntax", "MySQL error"),
    ("SQLSTATE[", "PDO/SQL error"),
    ("Microsoft OLE DB Provider", "OLE DB error"),
    ("ORA-0", "Oracle error"),
    ("Server Error in '/' Application", "ASP.NET error page"),
    ("panicked at ", "Rust panic"),
    ("goroutine 1 [running]", "Go panic"),
    ("node_modules/express", "Express stack trace"),
    ("Whoops! There was an error", "Laravel debug page"),
    ("DEBUG = True", "Django debug page"),
];

/// Body checks: error pages, directory listings, mixed content, forms.
pub fn body(c: &mut Collector, url: &Url, r: &Response, tags: &[Tag]) {
    let text = r.text();
    for (sign, what) in ERROR_SIGNS {
        if let Some(p) = text.find(sign) {
            c.add(
                "WEB-INFO-ERROR",
                Severity::Medium,
                format!("{what} disclosed"),
                excerpt(&text, p),
                "turn off debug output in production; show a generic error page and log details server-side",
                url,
            );
            break;
        }
    }
    if !r.is_html() {
        return;
    }
    let lower_head = prefix(&text, 4096).to_ascii_lowercase();
    if lower_head.contains("<title>index of /")
        || lower_head.contains("<h1>index of /")
        || lower_head.contains("<title>directory listing for")
    {
        let p = lower_head
            .find("index of /")
            .or_else(|| lower_head.find("directory listing"))
            .unwrap_or(0);
        c.add(
            "WEB-DIR-LISTING",
            Severity::Medium,
            "directory listing enabled",
            excerpt(&text, p),
            "turn off automatic indexes (nginx `autoindex off`, Apache `Options -Indexes`)",
            url,
        );
    }
    let mut has_password = false;
    for t in tags {
        if t.name == "input"
            && t.attr("type")
                .is_some_and(|v| v.eq_ignore_ascii_case("password"))
        {
            has_password = true;
        }
        if url.tls {
            let attr = match t.name.as_str() {
                "script" | "img" | "iframe" | "audio" | "video" | "source" | "embed" | "track" => {
                    t.attr("src")
                }
                "object" => t.attr("data"),
                "link"
                    if t.attr("rel")
                        .is_some_and(|r| r.to_ascii_lowercase().contains("stylesheet")) =>
                {
                    t.attr("href")
                }
                _ => None,
            };
            if let Some(src) = attr.filter(|s| s.trim().to_ascii_lowercase().starts_with("http://"))
            {
                c.add(
                    "WEB-MIXED-CONTENT",
                    Severity::Medium,
                    "HTTPS page loads resources over HTTP",
                    format!("<{} … {}>", t.name, src.trim()),
                    "load every subresource over HTTPS (or send `Content-Security-Policy: upgrade-insecure-requests`)",
                    url,
                );
            }
        }
        if t.name == "form" {
            if let Some(action) = t.attr("action") {
                if url.tls && action.trim().to_ascii_lowercase().starts_with("http://") {
                    c.add(
                        "WEB-FORM-ACTION-HTTP",
                        Severity::Medium,
                        "HTTPS form submits over plain HTTP",
                        format!("<form action=\"{}\">", action.trim()),
                        "point the form action at an https:// URL (or a relative path)",
                        url,
                    );
                }
            }
        }
    }
    if has_password && !url.tls {
        c.add(
            "WEB-FORM-PASSWORD-HTTP",
            Severity::High,
            "password field on a page served over plain HTTP",
            "<input type=\"password\"> on an http:// page",
            "serve the site (at least every page with a login form) over HTTPS only",
            url,
        );
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a
/// character boundary (slicing a target's text at a fixed byte offset
/// would panic inside a multi-byte character).
pub fn prefix(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A one-line excerpt of `text` from a little before byte `p`, starting
/// at a word boundary so it does not open mid-word.
pub fn excerpt(text: &str, p: usize) -> String {
    let p = (0..=p.min(text.len()))
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    let before = &text[..p];
    let mut start = before.char_indices().rev().nth(24).map_or(0, |(i, _)| i);
    if start > 0 {
        if let Some(ws) = before[start..].find(char::is_whitespace) {
            start += ws;
        } else {
            start = p;
        }
    }
    let s: String = text[start..].chars().take(160).collect();
    clip(&s.split_whitespace().collect::<Vec<_>>().join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::html;

    fn resp(headers: &[(&str, &str)], body: &str) -> Response {
        Response {
            status: 200,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
            truncated: false,
        }
    }

    fn ids(c: Collector) -> Vec<String> {
        let mut v: Vec<String> = c.into_findings().into_iter().map(|f| f.id).collect();
        v.sort();
        v.dedup();
        v
    }

    #[test]
    fn missing_headers_and_cookies() {
        let url = Url::parse("https://h/").unwrap();
        let r = resp(
            &[
                ("content-type", "text/html"),
                ("server", "nginx/1.22.1"),
                ("set-cookie", "sid=SECRETVALUE; Path=/"),
            ],
            "<html></html>",
        );
        let mut c = Collector::default();
        headers(&mut c, &url, &r);
        let f = c.into_findings();
        let cookie = f.iter().find(|f| f.id == "WEB-COOKIE-SECURE").unwrap();
        assert!(
            !cookie.evidence.contains("SECRETVALUE"),
            "{}",
            cookie.evidence
        );
        let mut c = Collector::default();
        headers(&mut c, &url, &r);
        assert_eq!(
            ids(c),
            [
                "WEB-COOKIE-HTTPONLY",
                "WEB-COOKIE-SAMESITE",
                "WEB-COOKIE-SECURE",
                "WEB-HDR-CSP",
                "WEB-HDR-FRAME",
                "WEB-HDR-HSTS",
                "WEB-HDR-PERMISSIONS",
                "WEB-HDR-REFERRER",
                "WEB-HDR-XCTO",
                "WEB-INFO-SERVER"
            ]
        );
    }

    #[test]
    fn hardened_headers_pass() {
        let url = Url::parse("https://h/").unwrap();
        let r = resp(
            &[
                ("content-type", "text/html; charset=utf-8"),
                (
                    "content-security-policy",
                    "default-src 'self'; frame-ancestors 'none'",
                ),
                (
                    "strict-transport-security",
                    "max-age=63072000; includeSubDomains",
                ),
                ("x-content-type-options", "nosniff"),
                ("referrer-policy", "no-referrer"),
                ("permissions-policy", "camera=()"),
                ("server", "nginx"),
                ("set-cookie", "sid=x; Secure; HttpOnly; SameSite=Strict"),
            ],
            "<html><form action=/login><input type=password></form></html>",
        );
        let mut c = Collector::default();
        headers(&mut c, &url, &r);
        body(&mut c, &url, &r, &html::tags(&r.text()));
        assert!(ids(c).is_empty());
    }

    #[test]
    fn multibyte_text_at_slice_limits_does_not_panic() {
        let url = Url::parse("http://h/").unwrap();
        for pad in 0..4 {
            let html = format!(
                "{}{}<title>Index of /x</title>",
                "a".repeat(4094 + pad),
                "é€😀".repeat(3)
            );
            let r = resp(&[("content-type", "text/html")], &html);
            let mut c = Collector::default();
            body(&mut c, &url, &r, &html::tags(&html));
            assert_eq!(prefix("é", 1), "");
            assert!(excerpt(&html, 4095).len() <= 4 * 160 + 3);
        }
    }

    #[test]
    fn findings_are_capped() {
        let url = Url::parse("http://h/").unwrap();
        let mut c = Collector::default();
        for i in 0..2 * MAX_FINDINGS {
            c.add("WEB-X", Severity::Low, format!("cookie c{i}"), "", "", &url);
        }
        c.add("WEB-X", Severity::Low, "cookie c0", "", "", &url);
        let f = c.into_findings();
        assert_eq!(f.len(), MAX_FINDINGS);
        assert!(f.iter().any(|f| f.location.ends_with("(and 1 more)")));
    }

    #[test]
    fn weak_policies() {
        assert!(weak_csp("default-src 'self' 'unsafe-inline'").is_some());
        assert!(weak_csp("script-src 'nonce-abc' 'unsafe-inline'").is_none());
        assert!(weak_csp("script-src *").is_some());
        assert!(weak_csp("img-src *").is_none());
        let url = Url::parse("https://h/").unwrap();
        let r = resp(&[("strict-transport-security", "max-age=300")], "");
        let mut c = Collector::default();
        headers(&mut c, &url, &r);
        assert!(c.has("WEB-HDR-HSTS"));
    }

    #[test]
    fn body_findings() {
        let url = Url::parse("https://h/").unwrap();
        let html =
            "<html><title>Index of /files</title><script src='http://cdn.test/x.js'></script>\
                    <form action='http://h/login'></form></html>";
        let r = resp(&[("content-type", "text/html")], html);
        let mut c = Collector::default();
        body(&mut c, &url, &r, &html::tags(html));
        assert_eq!(
            ids(c),
            [
                "WEB-DIR-LISTING",
                "WEB-FORM-ACTION-HTTP",
                "WEB-MIXED-CONTENT"
            ]
        );
        let url = Url::parse("http://h/").unwrap();
        let html = "<form><input type=password></form>Traceback (most recent call last):\n File";
        let r = resp(&[("content-type", "text/html")], html);
        let mut c = Collector::default();
        body(&mut c, &url, &r, &html::tags(html));
        assert_eq!(ids(c), ["WEB-FORM-PASSWORD-HTTP", "WEB-INFO-ERROR"]);
    }
}
