//! `palisade scan web URL` and `palisade audit TARGET` (the `scan` crate
//! does the work), plus the progress bars every scan command shows on a
//! terminal. Exit codes as for every scan: 0 clean, 1 findings at or above
//! `--fail-on` (or matching a `fail` rule), 2 error (bad arguments,
//! unresolvable host, non-loopback target without `--yes`, a scan that
//! could not run).

use std::io::IsTerminal;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use clap::{Args, ValueEnum};
use scan::finding::{Finding, ToFindings};
use scan::progress::Progress;
use scan::report::{Builder, Outcome};
use scan::web::rules::Rules;
use scan::web::{self, client::Url};
use scan::Severity;

use crate::scan_cmd::Format;

/// Printed before every scan (stderr, so JSON on stdout stays clean).
const REMINDER: &str = "reminder: scan only hosts and code you are authorised to test";
/// Web targets an audit derives from open ports (default 4): bounds the
/// audit's time on a host with many HTTP listeners.
pub const MAX_AUDIT_WEB_TARGETS: usize = 4;
/// Fixed 4: TLS services one audit scans (the https URL's port, then TLS
/// ports found by the port scan). Bounds the handshakes an audit makes.
pub const MAX_AUDIT_TLS_TARGETS: usize = 4;
/// Ports on which a TLS service is taken for HTTPS by the audit.
const HTTPS_PORTS: &[u16] = &[443, 4443, 8443, 9443];

/// A progress bar on stderr fed by a [`Progress`] counter; drawn only when
/// stderr is a terminal, removed when dropped.
#[derive(Debug)]
pub struct Bar {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Bar {
    /// Starts polling `progress` every 100 ms under `label`.
    pub fn start(label: &str, progress: Arc<Progress>) -> Bar {
        let stop = Arc::new(AtomicBool::new(false));
        if !std::io::stderr().is_terminal() {
            return Bar { stop, thread: None };
        }
        // Hidden until the scan knows its amount of work (no "0/0" frame).
        let pb = indicatif::ProgressBar::with_draw_target(
            Some(0),
            indicatif::ProgressDrawTarget::hidden(),
        );
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} {elapsed_precise}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        pb.set_prefix(label.to_owned());
        let flag = stop.clone();
        let thread = std::thread::spawn(move || loop {
            let (done, total) = progress.get();
            // Nothing is drawn before the scan knows how much work it has.
            if total > 0 {
                if pb.is_hidden() {
                    pb.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                }
                pb.set_length(total.max(done));
                pb.set_position(done);
            }
            if flag.load(Ordering::Relaxed) {
                pb.finish_and_clear();
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        });
        Bar {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Settings shared by `scan web` and `audit` for the web scan.
#[derive(Args, Debug, Clone)]
pub struct WebOpts {
    /// Pages the crawl fetches at most.
    #[arg(long, default_value_t = web::MAX_PAGES)]
    pub max_pages: usize,
    /// Link depth followed from the start page.
    #[arg(long, default_value_t = web::MAX_DEPTH)]
    pub max_depth: usize,
    /// Whole web-scan time budget in seconds.
    #[arg(long, default_value_t = web::MAX_SCAN_TIME.as_secs())]
    pub time_budget: u64,
    /// Per-request timeout in milliseconds (connect to response head; again for the body).
    #[arg(long, default_value_t = web::client::REQUEST_TIMEOUT.as_millis() as u64)]
    pub timeout: u64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = web::DEFAULT_CONCURRENCY)]
    pub concurrency: usize,
    /// Requests (and port connects) started per second at most.
    #[arg(long)]
    pub rate: Option<u32>,
    /// Plain-HTTP port checked for a redirect to HTTPS (default: 80 when the URL is on 443).
    #[arg(long)]
    pub http_port: Option<u16>,
    /// Passive checks only: no probes for exposed files, methods, CORS or reflection.
    #[arg(long)]
    pub passive: bool,
    /// Rule file (TOML `[[rule]] id/action/reason`, or ZAP-style TSV) setting ids to fail/warn/ignore.
    #[arg(long)]
    pub rules: Option<PathBuf>,
}

impl WebOpts {
    fn options(&self, progress: Arc<Progress>) -> Result<web::Options, String> {
        if self.concurrency == 0
            || self.max_pages == 0
            || self.timeout == 0
            || self.time_budget == 0
        {
            return Err(
                "--concurrency, --max-pages, --timeout and --time-budget must be at least 1".into(),
            );
        }
        if self.rate == Some(0) {
            return Err("--rate must be at least 1 request per second".into());
        }
        Ok(web::Options {
            max_pages: self.max_pages,
            max_depth: self.max_depth,
            time_budget: Duration::from_secs(self.time_budget),
            request_timeout: Duration::from_millis(self.timeout),
            concurrency: self.concurrency,
            rate: self.rate,
            http_port: self.http_port,
            active: !self.passive,
            progress: Some(progress),
        })
    }

    fn load_rules(&self) -> Result<Rules, String> {
        match &self.rules {
            Some(p) => Rules::load(p),
            None => Ok(Rules::default()),
        }
    }
}

/// `palisade scan web`.
#[derive(Args, Debug)]
pub struct WebArgs {
    /// Start URL: http://host[:port]/path or https://…
    pub url: String,
    #[command(flatten)]
    pub web: WebOpts,
    /// Exit 1 when a finding is at least this severe (`never` to disable).
    #[arg(long, default_value = "medium")]
    pub fail_on: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Shorthand for `--format json`.
    #[arg(long)]
    pub json: bool,
    /// Shorthand for `--format jsonl` (one finding per line).
    #[arg(long)]
    pub jsonl: bool,
    /// Confirm you may scan a non-loopback target.
    #[arg(long)]
    pub yes: bool,
}

fn fail_level(s: &str) -> Result<Option<Severity>, String> {
    if s.eq_ignore_ascii_case("never") {
        return Ok(None);
    }
    Severity::parse(s).map(Some).ok_or_else(|| {
        format!("--fail-on {s:?}: expected info, low, medium, high, critical or never")
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

/// Resolves `host`, prints the target, refuses a non-loopback address
/// without `yes`.
fn confirm(
    rt: &tokio::runtime::Runtime,
    host: &str,
    what: &str,
    yes: bool,
) -> Result<IpAddr, String> {
    let ip = rt
        .block_on(scan::ports::resolve(host))
        .map_err(|e| e.to_string())?;
    eprintln!("target: {what} ({ip})");
    eprintln!("{REMINDER}");
    if !ip.is_loopback() && !yes {
        return Err(format!(
            "{ip} is not a loopback address: pass --yes to confirm you are allowed to scan it"
        ));
    }
    Ok(ip)
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String, String> {
    serde_json::to_string(v).map_err(|e| e.to_string())
}

fn print_finding(f: &Finding) {
    let rule = match f.action {
        Some(scan::finding::Action::Fail) => " [rule: fail]",
        Some(scan::finding::Action::Warn) => " [rule: warn]",
        _ => "",
    };
    println!("{:<8} {:<24} {}{rule}", f.severity, f.id, f.title);
    println!("{:<8} at {}", "", f.location);
    if !f.evidence.is_empty() {
        println!("{:<8} evidence: {}", "", f.evidence.replace('\n', " "));
    }
    println!("{:<8} fix: {}", "", f.fix);
}

/// Runs `scan web`; `Ok(true)` when a finding fails the gate.
pub fn web(a: WebArgs) -> Result<bool, String> {
    let gate = fail_level(&a.fail_on)?;
    let format = if a.json {
        Format::Json
    } else if a.jsonl {
        Format::Jsonl
    } else {
        a.format
    };
    let rules = a.web.load_rules()?;
    let url = Url::parse(&a.url).ok_or_else(|| scan::Error::Url(a.url.clone()).to_string())?;
    let progress = Arc::new(Progress::new());
    let opts = a.web.options(progress.clone())?;
    let rt = runtime()?;
    confirm(&rt, &url.host, &a.url, a.yes)?;
    let report = {
        let _bar = Bar::start("web", progress);
        rt.block_on(web::scan(&a.url, &opts))
            .map_err(|e| e.to_string())?
    };
    for e in &report.errors {
        eprintln!("warning: {}: {}", e.url, e.error);
    }
    for t in &report.truncated {
        eprintln!("warning: {t}: body cut at the size or time limit");
    }
    if report.budget_exhausted {
        eprintln!(
            "warning: time budget of {} s ran out; the report covers what was scanned",
            a.web.time_budget
        );
    }
    let (kept, ignored) = rules.apply(report.findings.clone());
    match format {
        Format::Json => {
            let mut v = serde_json::to_value(&report).map_err(|e| e.to_string())?;
            v["findings"] = serde_json::to_value(&kept).map_err(|e| e.to_string())?;
            v["ignored"] = ignored
                .iter()
                .map(|(f, why)| serde_json::json!({ "finding": f, "reason": why }))
                .collect();
            println!("{v}");
        }
        Format::Jsonl => {
            for f in &kept {
                println!("{}", to_json(f)?);
            }
        }
        Format::Table => {
            println!("{:<8} {:<24} FINDING", "SEVERITY", "ID");
            for f in &kept {
                print_finding(f);
            }
            for (f, why) in &ignored {
                println!("{:<8} {:<24} ignored by rule: {why}", "-", f.id);
            }
            println!(
                "{} finding(s), {} ignored, {} page(s), {} request(s), {} error(s), {} ms",
                kept.len(),
                ignored.len(),
                report.pages,
                report.requests,
                report.errors.len(),
                report.elapsed_ms
            );
        }
    }
    Ok(kept.iter().any(|f| f.fails(gate)))
}

/// Report formats of `audit`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditFormat {
    /// Human-readable text.
    Table,
    /// One JSON document (the whole report).
    Json,
    /// One JSON finding per line.
    Jsonl,
    /// SARIF 2.1.0 (GitHub code scanning and other SARIF viewers).
    Sarif,
    /// A self-contained HTML page.
    Html,
}

/// `palisade audit`.
#[derive(Args, Debug)]
pub struct AuditArgs {
    /// A URL (http:// or https://: web scan of it, port scan of its host) or a host
    /// (port scan, then a web scan of each HTTP(S) service found).
    pub target: String,
    /// Lockfiles to check against `--db` (Cargo.lock, poetry.lock, requirements*.txt,
    /// package-lock.json, go.sum); repeatable.
    #[arg(long = "lockfile")]
    pub lockfiles: Vec<PathBuf>,
    /// OSV database directory for `--lockfile`.
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// Maximum age of the database in days since its newest record (0: no limit).
    #[arg(long, default_value_t = 7)]
    pub max_age_days: u64,
    /// Ports to scan: `1-1024,8080,top100`, `-` for all.
    #[arg(long, default_value = "top100")]
    pub ports: String,
    /// Skip the port scan.
    #[arg(long)]
    pub no_ports: bool,
    /// Skip web scans.
    #[arg(long)]
    pub no_web: bool,
    /// Skip TLS scans (of the https URL and of every TLS port found).
    #[arg(long)]
    pub no_tls: bool,
    #[command(flatten)]
    pub web: WebOpts,
    /// Exit 1 when a finding is at least this severe (`never` to disable).
    #[arg(long, default_value = "high")]
    pub fail_on: String,
    /// Report format on stdout (or in `--output`).
    #[arg(long, value_enum, default_value_t = AuditFormat::Table)]
    pub format: AuditFormat,
    /// Shorthand for `--format json`.
    #[arg(long)]
    pub json: bool,
    /// Shorthand for `--format jsonl`.
    #[arg(long)]
    pub jsonl: bool,
    /// Write the report to this file instead of stdout.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Also write a SARIF 2.1.0 report to this file.
    #[arg(long)]
    pub sarif: Option<PathBuf>,
    /// Also write the HTML report to this file.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Confirm you may scan a non-loopback target.
    #[arg(long)]
    pub yes: bool,
}

/// Runs `palisade audit` and returns its exit code.
pub fn run_audit(a: AuditArgs) -> ExitCode {
    match audit(a) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn url_host(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

fn apply(rules: &Rules, findings: Vec<Finding>, summary: String) -> Outcome {
    let (findings, ignored) = rules.apply(findings);
    Outcome {
        findings,
        ignored,
        summary,
    }
}

fn audit(a: AuditArgs) -> Result<u8, String> {
    let gate = fail_level(&a.fail_on)?;
    let format = if a.json {
        AuditFormat::Json
    } else if a.jsonl {
        AuditFormat::Jsonl
    } else {
        a.format
    };
    let rules = a.web.load_rules()?;
    if !a.lockfiles.is_empty() && a.db.is_none() {
        return Err(
            "--lockfile needs --db DIR (an OSV database; see `scan deps --db-update`)".into(),
        );
    }
    let is_url = a.target.contains("://");
    let (host, start_url) = if is_url {
        let u =
            Url::parse(&a.target).ok_or_else(|| scan::Error::Url(a.target.clone()).to_string())?;
        (u.host.clone(), Some(a.target.clone()))
    } else {
        let h = a
            .target
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if h.is_empty() || h.contains(['/', ' ']) {
            return Err(format!(
                "target {:?}: expected a host name, an IP address or an http(s) URL",
                a.target
            ));
        }
        (h, None)
    };
    if a.no_ports && (a.no_web || !is_url) && a.lockfiles.is_empty() {
        return Err(
            "nothing to audit: --no-ports leaves no scan (give a URL for the web scan, or --lockfile)"
                .into(),
        );
    }
    let port_list = if a.no_ports {
        Vec::new()
    } else {
        scan::portspec::parse(&a.ports).map_err(|e| e.to_string())?
    };
    // Checked before anything runs, so a typo fails fast.
    let _ = a.web.options(Arc::new(Progress::new()))?;
    let rt = runtime()?;
    let ip = confirm(&rt, &host, &a.target, a.yes)?;
    let mut b = Builder::new(&a.target);

    let mut web_targets: Vec<String> = start_url.into_iter().collect();
    // host:port of TLS services: the https URL's, then each TLS port found.
    let mut tls_ports: Vec<u16> = Vec::new();
    if let Some(u) = web_targets.first().and_then(|t| Url::parse(t)) {
        if u.tls {
            tls_ports.push(u.port);
        }
    }
    if !a.no_ports {
        let progress = Arc::new(Progress::new());
        let opts = scan::ports::Options {
            rate: a.web.rate,
            progress: Some(progress.clone()),
            ..Default::default()
        };
        let report = {
            let _bar = Bar::start("ports", progress);
            rt.block_on(scan::ports::scan(ip, &port_list, &opts))
        };
        for p in &report.open {
            if p.service.as_deref() == Some("tls")
                && !tls_ports.contains(&p.port)
                && tls_ports.len() < MAX_AUDIT_TLS_TARGETS
            {
                tls_ports.push(p.port);
            }
        }
        if !is_url {
            for p in &report.open {
                let scheme = match p.service.as_deref() {
                    Some("http") => "http",
                    Some("tls") if HTTPS_PORTS.contains(&p.port) => "https",
                    _ => continue,
                };
                if web_targets.len() < MAX_AUDIT_WEB_TARGETS {
                    web_targets.push(format!("{scheme}://{}:{}/", url_host(&host), p.port));
                }
            }
        }
        let summary = format!(
            "{} open of {} port(s) scanned, {} ms",
            report.open.len(),
            report.scanned,
            report.elapsed_ms
        );
        b.add(
            "ports",
            &ip.to_string(),
            Ok(apply(&rules, report.findings(), summary)),
        );
    }

    if !a.no_tls {
        for port in &tls_ports {
            let mut opts = scan::tls::Options::new(&host, *port);
            opts.http = !a.no_web;
            let addr = std::net::SocketAddr::new(ip, *port);
            let result = {
                let progress = Arc::new(Progress::new());
                let _bar = Bar::start("tls", progress);
                rt.block_on(scan::tls::scan(addr, &opts))
            };
            let outcome = result.map_err(|e| e.to_string()).map(|r| {
                let summary = format!(
                    "grade {}{}, {} handshake(s), {} ms",
                    r.grade.grade,
                    if r.grade.grade_if_trusted != r.grade.grade {
                        format!(
                            " ({} if the certificate were trusted)",
                            r.grade.grade_if_trusted
                        )
                    } else {
                        String::new()
                    },
                    r.handshakes,
                    r.elapsed_ms
                );
                apply(&rules, r.findings(), summary)
            });
            b.add("tls", &format!("{}:{port}", url_host(&host)), outcome);
        }
    }

    if !a.no_web {
        for url in &web_targets {
            let progress = Arc::new(Progress::new());
            let opts = a.web.options(progress.clone())?;
            let result = {
                let _bar = Bar::start("web", progress);
                rt.block_on(web::scan(url, &opts))
            };
            let outcome = result.map_err(|e| e.to_string()).map(|r| {
                for e in &r.errors {
                    eprintln!("warning: {}: {}", e.url, e.error);
                }
                let summary = format!(
                    "{} page(s), {} request(s), {} error(s){}, {} ms",
                    r.pages,
                    r.requests,
                    r.errors.len(),
                    if r.budget_exhausted {
                        ", time budget ran out"
                    } else {
                        ""
                    },
                    r.elapsed_ms
                );
                apply(&rules, r.findings(), summary)
            });
            b.add("web", url, outcome);
        }
    }

    if let Some(db) = &a.db {
        if !a.lockfiles.is_empty() {
            let names: Vec<String> = a
                .lockfiles
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            let outcome = deps(db, &a.lockfiles, a.max_age_days)
                .map(|(findings, summary)| apply(&rules, findings, summary));
            b.add("deps", &names.join(", "), outcome);
        }
    }

    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let report = b.finish(now);
    let rendered = match format {
        AuditFormat::Table => scan::report::to_text(&report),
        AuditFormat::Json => format!("{}\n", to_json(&report)?),
        AuditFormat::Jsonl => {
            let mut s = String::new();
            for f in &report.findings {
                s.push_str(&to_json(f)?);
                s.push('\n');
            }
            s
        }
        AuditFormat::Sarif => format!("{:#}\n", scan::report::to_sarif(&report)),
        AuditFormat::Html => scan::report::to_html(&report),
    };
    match &a.output {
        Some(p) => write(p, &rendered)?,
        None => print!("{rendered}"),
    }
    if let Some(p) = &a.sarif {
        write(p, &format!("{:#}\n", scan::report::to_sarif(&report)))?;
    }
    if let Some(p) = &a.html {
        write(p, &scan::report::to_html(&report))?;
    }
    eprintln!(
        "grade {} (score {}), {} finding(s)",
        report.grade.letter,
        report.grade.score,
        report.findings.len()
    );
    let failed: Vec<&scan::report::Section> = report
        .sections
        .iter()
        .filter(|s| s.error.is_some())
        .collect();
    for s in &failed {
        eprintln!(
            "error: {} scan of {}: {}",
            s.scanner,
            s.target,
            s.error.as_deref().unwrap_or("")
        );
    }
    if !failed.is_empty() {
        return Ok(2);
    }
    Ok(u8::from(report.findings.iter().any(|f| f.fails(gate))))
}

fn deps(
    db: &Path,
    lockfiles: &[PathBuf],
    max_age_days: u64,
) -> Result<(Vec<Finding>, String), String> {
    let max_age = (max_age_days > 0).then(|| Duration::from_secs(max_age_days * 86400));
    let database =
        scan::osv::Database::load(db, max_age, SystemTime::now()).map_err(|e| e.to_string())?;
    let refs: Vec<&Path> = lockfiles.iter().map(|p| p.as_path()).collect();
    let report = scan::deps::audit(&refs, &database).map_err(|e| e.to_string())?;
    let summary = format!(
        "{} dependencies checked, {} unchecked, {} advisories",
        report.checked,
        report.unchecked.len(),
        report.advisories
    );
    Ok((report.findings(), summary))
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}
