//! `scan web`: a ZAP-baseline-like scan of one site.
//!
//! 1. The start URL's redirects are followed (same host; a loop or a chain
//!    longer than [`MAX_REDIRECTS`] is a finding).
//! 2. A bounded breadth-first crawl of the same origin ([`MAX_PAGES`],
//!    [`MAX_DEPTH`], the time budget; robots.txt is not consulted: this is
//!    an audit of a site you are allowed to test).
//! 3. Passive checks on every response ([`checks`]).
//! 4. Safe active probes ([`probes`]): exposed files, methods, CORS,
//!    reflected input, HTTP→HTTPS redirect.
//!
//! Every finding id is stable (`WEB-…`, listed in docs/scan.md); a rule
//! file ([`rules`]) sets ids to fail, warn or ignore.

pub mod checks;
pub mod client;
pub mod html;
pub mod probes;
pub mod rules;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::finding::Finding;
use crate::progress::Progress;
use crate::{Error, Severity};
use checks::Collector;
use client::{Client, Limiter, Response, Url};

/// Pages fetched by the crawl (default 100): bounds requests and time on a
/// site with endless generated links.
pub const MAX_PAGES: usize = 100;
/// Link depth followed from the start page (default 3).
pub const MAX_DEPTH: usize = 3;
/// Whole-scan time budget (default 120 s): crawl and probes stop there and
/// the report shows what was found.
pub const MAX_SCAN_TIME: Duration = Duration::from_secs(120);
/// Redirects followed from the start URL (default 10): more, or a URL seen
/// twice, is a redirect loop.
pub const MAX_REDIRECTS: usize = 10;
/// Distinct URLs remembered (default 10,000): bounds memory against pages
/// with millions of links.
pub const MAX_SEEN_URLS: usize = 10_000;
/// Page errors kept in the report (default 50).
pub const MAX_ERRORS: usize = 50;
/// Requests in flight at once (default 4): a polite default for a site
/// that also serves users.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// Scan settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// Crawl page limit.
    pub max_pages: usize,
    /// Crawl depth limit.
    pub max_depth: usize,
    /// Whole-scan time budget.
    pub time_budget: Duration,
    /// Per-request timeout (connect to response head; also per body).
    pub request_timeout: Duration,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Requests started per second (`None`: unpaced).
    pub rate: Option<u32>,
    /// Plain-HTTP port checked for a redirect to HTTPS when the target is
    /// https (`None`: 80 when the target is on 443, else not checked).
    pub http_port: Option<u16>,
    /// Run the active probes (exposed files, methods, CORS, reflection).
    pub active: bool,
    /// Updated as pages and probes complete.
    pub progress: Option<Arc<Progress>>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            max_pages: MAX_PAGES,
            max_depth: MAX_DEPTH,
            time_budget: MAX_SCAN_TIME,
            request_timeout: client::REQUEST_TIMEOUT,
            concurrency: DEFAULT_CONCURRENCY,
            rate: None,
            http_port: None,
            active: true,
            progress: None,
        }
    }
}

/// A URL that could not be fetched.
#[derive(Debug, Clone, Serialize)]
pub struct PageError {
    /// The URL.
    pub url: String,
    /// Why.
    pub error: String,
}

/// The result of a web scan.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The start URL as given.
    pub target: String,
    /// The URL the crawl started from (after redirects).
    pub start: String,
    /// Pages fetched by the crawl.
    pub pages: usize,
    /// Requests sent in total.
    pub requests: u64,
    /// Findings, most severe first.
    pub findings: Vec<Finding>,
    /// URLs that failed (timeouts, resets, garbage), at most [`MAX_ERRORS`].
    pub errors: Vec<PageError>,
    /// URLs whose body was cut at the size or time limit.
    pub truncated: Vec<String>,
    /// The time budget ran out before the crawl and probes finished.
    pub budget_exhausted: bool,
    /// Wall time.
    pub elapsed_ms: u128,
}

impl crate::finding::ToFindings for Report {
    fn findings(&self) -> Vec<Finding> {
        self.findings.clone()
    }
}

fn nonce() -> String {
    let mut b = [0u8; 6];
    // Without OS randomness the marker is still unique enough per scan.
    if getrandom::getrandom(&mut b).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        b.copy_from_slice(&t.to_le_bytes()[..6]);
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Things a crawled page points at that the probes use.
#[derive(Default)]
struct Discovered {
    pages: Vec<Url>,
    /// (URL, parameter) pairs for the reflection probe.
    params: Vec<(Url, String)>,
    param_keys: HashSet<(String, String)>,
}

impl Discovered {
    fn add_param(&mut self, url: &Url, name: &str) {
        if name.is_empty() || self.params.len() >= probes::MAX_REFLECT_PROBES {
            return;
        }
        if self.param_keys.insert((url.path.clone(), name.to_owned())) {
            self.params.push((url.clone(), name.to_owned()));
        }
    }
}

/// Scans the site at `target` (an `http://` or `https://` URL).
///
/// `Err` when the target is not a URL, does not resolve, or its start page
/// cannot be fetched at all (refused, timed out, not HTTP); problems after
/// that are findings or entries in [`Report::errors`].
pub async fn scan(target: &str, opts: &Options) -> Result<Report, Error> {
    let started = Instant::now();
    let deadline = started + opts.time_budget;
    let start = Url::parse(target).ok_or_else(|| Error::Url(target.to_owned()))?;
    crate::ports::resolve(&start.host).await?;
    let limiter = Arc::new(Limiter::new(opts.rate, opts.concurrency));
    let progress = opts.progress.clone().unwrap_or_default();
    // Progress counts requests: each phase adds what it plans to send,
    // the client marks each one done.
    let client = Client::new(limiter, opts.request_timeout)
        .map_err(|e| Error::Http {
            url: target.to_owned(),
            reason: e,
        })?
        .with_progress(progress.clone());
    let mut c = Collector::default();
    let mut errors = Vec::new();
    let mut truncated = Vec::new();

    // 1. Redirects of the start URL.
    progress.add_total(1);
    let mut current = start.clone();
    let mut chain: Vec<Url> = vec![current.clone()];
    let mut first: Option<Response> = None;
    let mut looped = false;
    for _ in 0..=MAX_REDIRECTS {
        progress.add_total(1);
        let r = client
            .request("GET", &current, &[])
            .await
            .map_err(|reason| Error::Http {
                url: current.to_string(),
                reason,
            })?;
        checks::headers(&mut c, &current, &r);
        let next = ((300..400).contains(&r.status))
            .then(|| r.header("location"))
            .flatten()
            .and_then(|l| current.join(l));
        match next {
            Some(n) if n.host == start.host => {
                if chain.contains(&n) {
                    looped = true;
                    chain.push(n);
                    break;
                }
                chain.push(n.clone());
                current = n;
            }
            Some(n) => {
                return Err(Error::Http {
                    url: current.to_string(),
                    reason: format!(
                        "redirects to another host ({n}); scan that URL instead if you may"
                    ),
                })
            }
            None => {
                first = Some(r);
                break;
            }
        }
    }
    if first.is_none() {
        let shown: Vec<String> = chain.iter().take(6).map(|u| u.to_string()).collect();
        c.add(
            "WEB-REDIRECT-LOOP",
            Severity::Low,
            if looped {
                "redirect loop"
            } else {
                "redirect chain too long"
            },
            format!(
                "{}{}",
                shown.join(" -> "),
                if chain.len() > 6 { " -> …" } else { "" }
            ),
            "make every redirect end at a page that answers 200 (check scheme/host rewrite rules)",
            &start,
        );
    }
    if !start.tls && !current.tls && first.is_some() {
        c.add(
            "WEB-HTTP-NO-REDIRECT",
            Severity::Medium,
            "site served over plain HTTP without a redirect to HTTPS",
            format!("GET {start} answered without redirecting to https://"),
            "serve the site over HTTPS and redirect every http:// request to it (301), then send HSTS",
            &start,
        );
    }

    // 2. Crawl.
    let root = current.clone();
    let mut found = Discovered::default();
    let mut pages = 0usize;
    let mut budget_exhausted = false;
    if let Some(r) = first {
        let mut seen: HashSet<String> = chain.iter().map(|u| u.to_string()).collect();
        let mut queue: std::collections::VecDeque<(Url, usize)> = Default::default();
        pages += 1;
        page(
            &mut c, &root, &r, 0, opts, &mut seen, &mut queue, &mut found,
        );
        if r.truncated {
            truncated.push(root.to_string());
        }
        let mut set: JoinSet<(Url, usize, Result<Response, String>)> = JoinSet::new();
        loop {
            while set.len() < opts.concurrency.max(1) && pages + set.len() < opts.max_pages {
                let Some((url, depth)) = queue.pop_front() else {
                    break;
                };
                let client = client.clone();
                progress.add_total(1);
                set.spawn(async move {
                    let r = client.request("GET", &url, &[]).await;
                    (url, depth, r)
                });
            }
            let joined = match tokio::time::timeout_at(deadline, set.join_next()).await {
                Err(_) => {
                    budget_exhausted = true;
                    set.abort_all();
                    break;
                }
                Ok(None) => break,
                Ok(Some(j)) => j,
            };
            // A crawl task has no panicking code; a join error is skipped.
            let Ok((url, depth, r)) = joined else {
                continue;
            };
            match r {
                Err(error) => {
                    if errors.len() < MAX_ERRORS {
                        errors.push(PageError {
                            url: url.to_string(),
                            error,
                        });
                    }
                }
                Ok(r) => {
                    pages += 1;
                    if r.truncated {
                        truncated.push(url.to_string());
                    }
                    checks::headers(&mut c, &url, &r);
                    if (300..400).contains(&r.status) {
                        if let Some(n) = r.header("location").and_then(|l| url.join(l)) {
                            enqueue(&root, n, depth, opts, &mut seen, &mut queue);
                        }
                    } else {
                        page(
                            &mut c, &url, &r, depth, opts, &mut seen, &mut queue, &mut found,
                        );
                    }
                }
            }
        }
    }

    // 3. Active probes, within what is left of the budget.
    if opts.active && !budget_exhausted {
        if found.params.is_empty() {
            found.add_param(&root, "q");
        }
        let http_port = if root.tls {
            opts.http_port.or((root.port == 443).then_some(80))
        } else {
            None
        };
        progress.add_total(probes::planned(
            &found.pages,
            found.params.len(),
            http_port.is_some(),
        ));
        let nonce = nonce();
        let probes = async {
            if let Some((base, r404)) = probes::Baseline::fetch(&client, &root, &nonce).await {
                // The error page says what the server runs.
                checks::body(&mut c, &root.with_path("/palisade-absent"), &r404, &[]);
                probes::files(&mut c, &client, &root, &base, &found.pages).await;
            }
            probes::methods(&mut c, &client, &root).await;
            probes::cors(&mut c, &client, &root).await;
            probes::reflection(&mut c, &client, &found.params, &nonce).await;
            if let Some(port) = http_port {
                let http = Url {
                    tls: false,
                    port,
                    ..root.with_path("/")
                };
                if let Ok(r) = client.request("GET", &http, &[]).await {
                    let to_https = (300..400).contains(&r.status)
                        && r.header("location")
                            .is_some_and(|l| l.trim().to_ascii_lowercase().starts_with("https://"));
                    if !to_https {
                        c.add(
                            "WEB-HTTP-NO-REDIRECT",
                            Severity::Medium,
                            "plain HTTP does not redirect to HTTPS",
                            format!(
                                "GET {http}: {}{}",
                                r.status,
                                r.header("location")
                                    .map(|l| format!(" Location: {l}"))
                                    .unwrap_or_default()
                            ),
                            "redirect every http:// request to https:// with a 301",
                            &http,
                        );
                    }
                }
            }
        };
        if tokio::time::timeout_at(deadline, probes).await.is_err() {
            budget_exhausted = true;
        }
    }

    // Planned probes that were not sent (no baseline, budget) count as done.
    let (done, total) = progress.get();
    progress.inc(total.saturating_sub(done));
    Ok(Report {
        target: target.to_owned(),
        start: root.to_string(),
        pages,
        requests: client.sent.load(std::sync::atomic::Ordering::Relaxed),
        findings: c.into_findings(),
        errors,
        truncated,
        budget_exhausted,
        elapsed_ms: started.elapsed().as_millis(),
    })
}

/// Link-looking paths the crawler does not fetch (assets, archives).
const SKIP_EXT: &[&str] = &[
    ".png", ".jpg", ".jpeg", ".gif", ".svg", ".ico", ".webp", ".css", ".js", ".woff", ".woff2",
    ".ttf", ".pdf", ".zip", ".gz", ".tar", ".mp4", ".mp3", ".webm", ".map",
];

fn enqueue(
    root: &Url,
    url: Url,
    depth: usize,
    opts: &Options,
    seen: &mut HashSet<String>,
    queue: &mut std::collections::VecDeque<(Url, usize)>,
) {
    if depth + 1 > opts.max_depth || !root.same_origin(&url) || seen.len() >= MAX_SEEN_URLS {
        return;
    }
    let lower = url.path.to_ascii_lowercase();
    if SKIP_EXT.iter().any(|e| lower.ends_with(e)) {
        return;
    }
    if seen.insert(url.to_string()) {
        queue.push_back((url, depth + 1));
    }
}

/// Passive body checks on a fetched page, then its links into the queue.
#[allow(clippy::too_many_arguments)]
fn page(
    c: &mut Collector,
    url: &Url,
    r: &Response,
    depth: usize,
    opts: &Options,
    seen: &mut HashSet<String>,
    queue: &mut std::collections::VecDeque<(Url, usize)>,
    found: &mut Discovered,
) {
    let tags = if r.is_html() {
        html::tags(&r.text())
    } else {
        Vec::new()
    };
    checks::body(c, url, r, &tags);
    if (200..300).contains(&r.status) && found.pages.len() < MAX_PAGES {
        found.pages.push(url.clone());
    }
    if let Some(q) = &url.query {
        for pair in q.split('&') {
            found.add_param(url, pair.split_once('=').map_or(pair, |(n, _)| n));
        }
    }
    let mut form: Option<Url> = None;
    for t in &tags {
        let link = match t.name.as_str() {
            "a" | "area" => t.attr("href"),
            "iframe" | "frame" => t.attr("src"),
            "form" => {
                let get = t
                    .attr("method")
                    .is_none_or(|m| m.eq_ignore_ascii_case("get"));
                form = get
                    .then(|| url.join(t.attr("action").unwrap_or("")))
                    .flatten()
                    .filter(|u| root_same(url, u));
                t.attr("action")
            }
            "input" | "textarea" | "select" => {
                if let (Some(f), Some(name)) = (&form, t.attr("name")) {
                    let typ = t.attr("type").unwrap_or("text").to_ascii_lowercase();
                    if !matches!(typ.as_str(), "password" | "submit" | "file" | "hidden") {
                        found.add_param(f, name);
                    }
                }
                None
            }
            _ => None,
        };
        if let Some(n) = link.and_then(|l| url.join(l)) {
            enqueue(url, n, depth, opts, seen, queue);
        }
    }
}

fn root_same(a: &Url, b: &Url) -> bool {
    a.same_origin(b)
}
