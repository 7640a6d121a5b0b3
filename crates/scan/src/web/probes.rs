//! Safe active probes: GET/OPTIONS/TRACE requests that read, never write
//! (no PUT or DELETE is ever sent: allowed methods are read from `Allow`).

use super::checks::{excerpt, Collector};
use super::client::{Client, Response, Url};
use crate::Severity;

/// Reflection probes sent (default 20): bounds the requests one crawl's
/// query parameters can cause.
pub const MAX_REFLECT_PROBES: usize = 20;
/// Backup-file candidates tried per crawled file (default 3 suffixes on at
/// most [`MAX_BACKUP_BASES`] files).
pub const MAX_BACKUP_BASES: usize = 5;

/// Requests the probes plan to send (for progress): baseline, `.git/HEAD`,
/// `.env`, backups, admin paths, TRACE, OPTIONS, two CORS origins, the
/// reflection probes and the plain-HTTP check.
pub fn planned(pages: &[Url], params: usize, http_check: bool) -> u64 {
    let bases = pages
        .iter()
        .filter(|u| u.path.rsplit('/').next().is_some_and(|f| f.contains('.')))
        .take(MAX_BACKUP_BASES)
        .count();
    let n = 3 + bases * 3 + 4 + ADMIN.len() + 2 + 2 + params.min(MAX_REFLECT_PROBES);
    n as u64 + u64::from(http_check)
}

/// Admin and debug paths probed; `true`: a status/debug endpoint.
const ADMIN: &[(&str, bool)] = &[
    ("/admin/", false),
    ("/administrator/", false),
    ("/wp-admin/", false),
    ("/phpmyadmin/", false),
    ("/manager/html", false),
    ("/server-status", true),
    ("/server-info", true),
    ("/actuator/env", true),
    ("/debug/pprof/", true),
    ("/console/", true),
];

/// What a path that does not exist returns (soft-404 sites answer 200).
#[derive(Debug, Clone)]
pub struct Baseline {
    status: u16,
    len: usize,
}

impl Baseline {
    /// Fetches a random path that cannot exist.
    pub async fn fetch(client: &Client, root: &Url, nonce: &str) -> Option<(Baseline, Response)> {
        let url = root.with_path(&format!("/palisade-{nonce}-absent"));
        let r = client.request("GET", &url, &[]).await.ok()?;
        Some((
            Baseline {
                status: r.status,
                len: r.body.len(),
            },
            r,
        ))
    }

    /// `r` is a real hit: 200 and not the soft-404 page.
    fn is_hit(&self, r: &Response) -> bool {
        if r.status != 200 {
            return false;
        }
        if self.status != 200 {
            return true;
        }
        let (a, b) = (self.len as i64, r.body.len() as i64);
        (a - b).abs() > (a / 10).max(16)
    }
}

/// Exposed files: `.git/HEAD`, `.env`, backups, admin and debug pages.
pub async fn files(c: &mut Collector, client: &Client, root: &Url, base: &Baseline, pages: &[Url]) {
    if let Ok(r) = client
        .request("GET", &root.with_path("/.git/HEAD"), &[])
        .await
    {
        let t = r.text();
        let t = t.trim();
        if base.is_hit(&r)
            && (t.starts_with("ref: refs/")
                || (t.len() == 40 && t.bytes().all(|b| b.is_ascii_hexdigit())))
        {
            c.add(
                "WEB-EXPOSED-GIT",
                Severity::High,
                "Git repository exposed (/.git/HEAD readable)",
                format!("GET /.git/HEAD: {}", excerpt(t, 0)),
                "deny access to /.git/ (nginx `location ~ /\\.git { deny all; }`) and deploy without the repository",
                &root.with_path("/.git/HEAD"),
            );
        }
    }
    if let Ok(r) = client.request("GET", &root.with_path("/.env"), &[]).await {
        let t = r.text();
        let looks_env = !r.is_html()
            && t.lines().take(50).any(|l| {
                let l = l.trim();
                l.split_once('=').is_some_and(|(k, _)| {
                    !k.is_empty()
                        && k.bytes()
                            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
                })
            });
        if base.is_hit(&r) && looks_env {
            let keys: Vec<&str> = t
                .lines()
                .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim()))
                .take(5)
                .collect();
            c.add(
                "WEB-EXPOSED-ENV",
                Severity::High,
                "environment file exposed (/.env readable)",
                format!("GET /.env: keys {}", keys.join(", ")),
                "remove .env from the web root and rotate every secret it held",
                &root.with_path("/.env"),
            );
        }
    }
    // Backups of crawled files, and archives of the whole site.
    let mut candidates: Vec<String> = Vec::new();
    for p in pages
        .iter()
        .filter(|u| u.path.rsplit('/').next().is_some_and(|f| f.contains('.')))
        .take(MAX_BACKUP_BASES)
    {
        for suffix in [".bak", "~", ".old"] {
            candidates.push(format!("{}{suffix}", p.path));
        }
    }
    let host = root.host.trim_start_matches("www.").replace(':', "_");
    for name in [
        format!("{host}.zip"),
        "backup.zip".into(),
        "site.zip".into(),
        "www.zip".into(),
    ] {
        candidates.push(format!("/{name}"));
    }
    candidates.dedup();
    for path in candidates {
        let url = root.with_path(&path);
        let Ok(r) = client.request("GET", &url, &[]).await else {
            continue;
        };
        if base.is_hit(&r) && !r.is_html() {
            c.add(
                "WEB-EXPOSED-BACKUP",
                Severity::Medium,
                format!("backup file exposed: {path}"),
                format!(
                    "GET {path}: 200, {} bytes, Content-Type {}",
                    r.body.len(),
                    r.header("content-type").unwrap_or("none")
                ),
                "delete backup and archive files from the web root",
                &url,
            );
        }
    }
    for (path, debug) in ADMIN {
        let url = root.with_path(path);
        let Ok(r) = client.request("GET", &url, &[]).await else {
            continue;
        };
        if !base.is_hit(&r) {
            continue;
        }
        let title = page_title(&r.text());
        if *debug {
            c.add(
                "WEB-DEBUG-EXPOSED",
                Severity::Medium,
                format!("status/debug endpoint reachable: {path}"),
                format!("GET {path}: 200 {title}"),
                "restrict status and debug endpoints to localhost or an admin network",
                &url,
            );
        } else {
            c.add(
                "WEB-ADMIN-EXPOSED",
                Severity::Low,
                format!("admin interface reachable: {path}"),
                format!("GET {path}: 200 {title}"),
                "restrict admin interfaces by network (allow-list, VPN) in addition to a login",
                &url,
            );
        }
    }
}

pub(crate) fn page_title(html: &str) -> String {
    let lower = super::checks::prefix(html, 8192).to_ascii_lowercase();
    match (lower.find("<title>"), lower.find("</title>")) {
        (Some(a), Some(b)) if b > a + 7 => {
            format!("title {:?}", super::checks::clip(html[a + 7..b].trim()))
        }
        _ => String::new(),
    }
}

/// TRACE enabled, PUT/DELETE advertised in `Allow`.
pub async fn methods(c: &mut Collector, client: &Client, root: &Url) {
    if let Ok(r) = client
        .request("TRACE", root, &[("x-palisade-trace", "1")])
        .await
    {
        let echoed = r.text().to_ascii_lowercase().contains("x-palisade-trace");
        if r.status == 200
            && (echoed
                || r.header("content-type")
                    .is_some_and(|t| t.contains("message/http")))
        {
            c.add(
                "WEB-METHOD-TRACE",
                Severity::Medium,
                "TRACE method enabled",
                "TRACE / answered 200 and echoed the request",
                "disable TRACE (Apache `TraceEnable off`; reject it in the proxy)",
                root,
            );
        }
    }
    if let Ok(r) = client.request("OPTIONS", root, &[]).await {
        let allow: Vec<String> = r
            .headers_all("allow")
            .chain(r.headers_all("public"))
            .flat_map(|v| v.split(','))
            .map(|m| m.trim().to_ascii_uppercase())
            .collect();
        let bad: Vec<&str> = [
            "PUT",
            "DELETE",
            "CONNECT",
            "PROPPATCH",
            "MKCOL",
            "MOVE",
            "COPY",
        ]
        .into_iter()
        .filter(|m| allow.iter().any(|a| a == m))
        .collect();
        if (200..300).contains(&r.status) && !bad.is_empty() {
            c.add(
                "WEB-METHOD-UNSAFE",
                Severity::Medium,
                format!("dangerous methods allowed: {}", bad.join(", ")),
                format!("OPTIONS / Allow: {}", allow.join(", ")),
                "allow only the methods the application needs (GET, HEAD, POST)",
                root,
            );
        }
    }
}

/// CORS: a foreign and a `null` Origin, then what the server allows.
pub async fn cors(c: &mut Collector, client: &Client, url: &Url) {
    for origin in ["https://palisade-cors-probe.invalid", "null"] {
        let Ok(r) = client.request("GET", url, &[("origin", origin)]).await else {
            continue;
        };
        let Some(acao) = r.header("access-control-allow-origin").map(str::trim) else {
            continue;
        };
        let creds = r
            .header("access-control-allow-credentials")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        let evidence = format!(
            "Origin: {origin} -> Access-Control-Allow-Origin: {acao}{}",
            if creds {
                ", Access-Control-Allow-Credentials: true"
            } else {
                ""
            }
        );
        let fix = "allow only an explicit list of trusted origins; never reflect Origin or allow `null` with credentials";
        if origin == "null" {
            if acao == "null" && creds {
                c.add(
                    "WEB-CORS-NULL",
                    Severity::High,
                    "CORS trusts Origin: null with credentials",
                    &evidence,
                    fix,
                    url,
                );
            }
        } else if acao == origin && creds {
            c.add(
                "WEB-CORS-REFLECT",
                Severity::High,
                "CORS reflects any Origin with credentials",
                &evidence,
                fix,
                url,
            );
        } else if acao == origin {
            c.add(
                "WEB-CORS-REFLECT",
                Severity::Low,
                "CORS reflects any Origin (without credentials)",
                &evidence,
                fix,
                url,
            );
        } else if acao == "*" && creds {
            c.add(
                "WEB-CORS-WILDCARD-CREDS",
                Severity::Medium,
                "CORS allows * together with credentials",
                &evidence,
                fix,
                url,
            );
        }
    }
}

/// Reflected input: each parameter set in turn to a unique harmless marker
/// containing `<`; reported when the marker comes back unescaped in HTML.
pub async fn reflection(
    c: &mut Collector,
    client: &Client,
    targets: &[(Url, String)],
    nonce: &str,
) {
    let marker = format!("<plsd{nonce}>");
    let value = format!("%3Cplsd{nonce}%3E");
    for (url, param) in targets.iter().take(MAX_REFLECT_PROBES) {
        let mut probe = url.clone();
        let mut pairs: Vec<String> = url
            .query
            .as_deref()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let name = p.split_once('=').map_or(p, |(n, _)| n);
                if name == param {
                    format!("{name}={value}")
                } else {
                    p.to_owned()
                }
            })
            .collect();
        if !pairs
            .iter()
            .any(|p| p.split_once('=').map_or(p.as_str(), |(n, _)| n) == param)
        {
            pairs.push(format!("{param}={value}"));
        }
        probe.query = Some(pairs.join("&"));
        let Ok(r) = client.request("GET", &probe, &[]).await else {
            continue;
        };
        let text = r.text();
        if r.is_html() {
            if let Some(p) = text.find(&marker) {
                c.add(
                    "WEB-REFLECTED-INPUT",
                    Severity::High,
                    format!("parameter {param} reflected unescaped (likely XSS)"),
                    format!("GET {}: {}", probe.target(), excerpt(&text, p)),
                    "HTML-escape every parameter on output (context-aware templating) and add a strict Content-Security-Policy",
                    &probe,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn title_of_multibyte_page() {
        for pad in 0..4 {
            let html = format!(
                "<title>é</title>{}{}",
                "a".repeat(8190 + pad),
                "€".repeat(4)
            );
            assert_eq!(super::page_title(&html), "title \"é\"");
        }
        assert_eq!(super::page_title("<title></title>"), "");
    }
}
