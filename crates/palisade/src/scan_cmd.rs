//! `palisade scan`: TCP port scan with service identification, and the
//! dependency audit against an OSV database (the `scan` crate does the
//! work). Exit codes: 0 clean, 1 findings at or above `--fail-on`,
//! 2 error (bad arguments, unresolvable host, missing or stale database).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::{Subcommand, ValueEnum};
use scan::{Error, Severity};

/// Printed before every scan (stderr, so JSON on stdout stays clean).
const REMINDER: &str = "reminder: scan only hosts and code you are authorised to test";

/// Output format.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Human-readable table.
    Table,
    /// One JSON document.
    Json,
    /// One JSON object per line (per open port / finding).
    Jsonl,
}

/// `palisade scan` subcommands.
#[derive(Subcommand, Debug)]
pub enum ScanCmd {
    /// TCP connect scan with banner grab and service identification.
    Ports {
        /// Host name, IP address, or CIDR range (`192.0.2.0/28`, at most
        /// 4096 hosts).
        host: String,
        /// Ports: `1-1024,8080,top100`, `-` for all (default: top100).
        #[arg(short, long, default_value = "top100")]
        ports: String,
        /// Per-connect timeout in milliseconds.
        #[arg(long, default_value_t = 1000)]
        timeout: u64,
        /// Banner read timeout in milliseconds (0: no service identification).
        #[arg(long, default_value_t = 500)]
        banner_timeout: u64,
        /// Concurrent connects (capped by the open-file limit).
        #[arg(long, default_value_t = scan::ports::DEFAULT_CONCURRENCY)]
        concurrency: usize,
        /// Connects started per second at most (default: no limit).
        #[arg(long)]
        rate: Option<u32>,
        /// Exit 1 when a finding is at least this severe (`never` to disable).
        #[arg(long, default_value = "high")]
        fail_on: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Shorthand for `--format json`.
        #[arg(long)]
        json: bool,
        /// Shorthand for `--format jsonl`.
        #[arg(long)]
        jsonl: bool,
        /// Confirm you may scan a non-loopback target.
        #[arg(long)]
        yes: bool,
    },
    /// TLS: protocols, cipher suites, groups, certificate, HSTS, grade.
    Tls {
        /// `HOST:PORT` (port 443 when omitted; `[::1]:443` for IPv6).
        target: String,
        /// Client certificate chain (PEM) for servers that require one.
        #[arg(long, requires = "client_key")]
        client_cert: Option<PathBuf>,
        /// Private key (PEM) of `--client-cert`.
        #[arg(long, requires = "client_cert")]
        client_key: Option<PathBuf>,
        /// Extra trusted CA certificates (PEM) besides Mozilla's roots.
        #[arg(long)]
        ca: Option<PathBuf>,
        /// Per-handshake timeout in milliseconds.
        #[arg(long, default_value_t = scan::tls::HANDSHAKE_TIMEOUT.as_millis() as u64)]
        timeout: u64,
        /// Do not send the HTTPS GET that reads HSTS.
        #[arg(long)]
        no_http: bool,
        /// Exit 1 when a finding is at least this severe (`never` to disable).
        #[arg(long, default_value = "high")]
        fail_on: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Shorthand for `--format json`.
        #[arg(long)]
        json: bool,
        /// Confirm you may scan a non-loopback target.
        #[arg(long)]
        yes: bool,
    },
    /// Check lockfiles against an OSV advisory database directory.
    Deps {
        /// Cargo.lock, poetry.lock, requirements*.txt, package-lock.json, go.sum.
        #[arg(required_unless_present = "db_update")]
        lockfiles: Vec<PathBuf>,
        /// OSV database directory (JSON records from OSV's bulk exports).
        #[arg(long)]
        db: PathBuf,
        /// First download this OSV export zip (e.g. `…/crates.io/all.zip`) into DB/<ecosystem>.
        #[arg(long, value_name = "URL")]
        db_update: Vec<String>,
        /// Maximum age of the database in days since its newest record (0: no limit).
        #[arg(long, default_value_t = 7)]
        max_age_days: u64,
        /// Exit 1 when a finding is at least this severe (`never` to disable).
        #[arg(long, default_value = "low")]
        fail_on: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Shorthand for `--format json`.
        #[arg(long)]
        json: bool,
        /// Shorthand for `--format jsonl`.
        #[arg(long)]
        jsonl: bool,
    },
    /// Web baseline scan: bounded crawl, passive checks, safe active probes.
    Web(Box<crate::audit_cmd::WebArgs>),
}

/// Runs a scan command and returns its exit code.
pub fn run(cmd: ScanCmd) -> ExitCode {
    match run_inner(cmd) {
        Ok(true) => ExitCode::from(1),
        Ok(false) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn fail_level(s: &str) -> Result<Option<Severity>, String> {
    if s.eq_ignore_ascii_case("never") {
        return Ok(None);
    }
    Severity::parse(s).map(Some).ok_or_else(|| {
        format!("--fail-on {s:?}: expected info, low, medium, high, critical or never")
    })
}

/// `Ok(true)`: findings at or above the gate.
fn run_inner(cmd: ScanCmd) -> Result<bool, String> {
    match cmd {
        ScanCmd::Ports {
            host,
            ports,
            timeout,
            banner_timeout,
            concurrency,
            rate,
            fail_on,
            format,
            json,
            jsonl,
            yes,
        } => {
            let gate = fail_level(&fail_on)?;
            let format = pick(format, json, jsonl);
            if rate == Some(0) {
                return Err("--rate must be at least 1 connect per second".into());
            }
            let list = scan::portspec::parse(&ports).map_err(|e| e.to_string())?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            let range = scan::target::expand_cidr(&host).map_err(|e| e.to_string())?;
            let ips = match &range {
                Some(hosts) => hosts.clone(),
                None => vec![rt
                    .block_on(scan::ports::resolve(&host))
                    .map_err(|e: Error| e.to_string())?],
            };
            match &range {
                Some(h) => eprintln!(
                    "target: {host} ({} hosts), {} ports ({ports})",
                    h.len(),
                    list.len()
                ),
                None => eprintln!(
                    "target: {host} ({}), {} ports ({ports})",
                    ips[0],
                    list.len()
                ),
            }
            eprintln!("{REMINDER}");
            if let Some(ip) = ips.iter().find(|ip| !ip.is_loopback()) {
                if !yes {
                    return Err(format!(
                        "{ip} is not a loopback address: pass --yes to confirm you are allowed to scan it"
                    ));
                }
            }
            let progress = std::sync::Arc::new(scan::progress::Progress::new());
            let opts = scan::ports::Options {
                timeout: Duration::from_millis(timeout.max(1)),
                concurrency,
                banner_timeout: (banner_timeout > 0).then(|| Duration::from_millis(banner_timeout)),
                rate,
                progress: Some(progress.clone()),
            };
            let reports: Vec<scan::ports::Report> = {
                let _bar = crate::audit_cmd::Bar::start("ports", progress);
                ips.iter()
                    .map(|ip| rt.block_on(scan::ports::scan(*ip, &list, &opts)))
                    .collect()
            };
            match format {
                // One report for one host (as before); an array for a range.
                Format::Json if range.is_none() => println!("{}", to_json(&reports[0])?),
                Format::Json => println!("{}", to_json(&reports)?),
                Format::Jsonl => {
                    for r in &reports {
                        for p in &r.open {
                            if range.is_some() {
                                let mut v = serde_json::to_value(p).map_err(|e| e.to_string())?;
                                v["host"] = serde_json::Value::String(r.target.to_string());
                                println!("{}", to_json(&v)?);
                            } else {
                                println!("{}", to_json(p)?);
                            }
                        }
                    }
                }
                Format::Table => {
                    let host_col = range.is_some();
                    if host_col {
                        print!("{:<40} ", "HOST");
                    }
                    println!(
                        "{:<10} {:<6} {:<11} {:<8} BANNER",
                        "PORT", "STATE", "SERVICE", "SEVERITY"
                    );
                    for r in &reports {
                        for p in &r.open {
                            if host_col {
                                print!("{:<40} ", r.target.to_string());
                            }
                            println!(
                                "{:<10} {:<6} {:<11} {:<8} {}",
                                format!("{}/tcp", p.port),
                                "open",
                                p.service.as_deref().unwrap_or("-"),
                                p.severity,
                                p.banner.as_deref().unwrap_or("")
                            );
                        }
                    }
                    let sum =
                        |f: fn(&scan::ports::Report) -> usize| reports.iter().map(f).sum::<usize>();
                    println!(
                        "{}{} open, {} scanned, {} timed out, {} self-connects ignored, concurrency {}, {} ms",
                        if host_col { format!("{} hosts: ", reports.len()) } else { String::new() },
                        sum(|r| r.open.len()),
                        sum(|r| r.scanned),
                        sum(|r| r.timed_out),
                        sum(|r| r.self_connects),
                        reports.iter().map(|r| r.concurrency).max().unwrap_or(0),
                        reports.iter().map(|r| r.elapsed_ms).sum::<u128>()
                    );
                }
            }
            Ok(gate.is_some_and(|g| {
                reports
                    .iter()
                    .any(|r| r.open.iter().any(|p| p.severity >= g))
            }))
        }
        ScanCmd::Tls {
            target,
            client_cert,
            client_key,
            ca,
            timeout,
            no_http,
            fail_on,
            format,
            json,
            yes,
        } => {
            let gate = fail_level(&fail_on)?;
            let format = if json { Format::Json } else { format };
            let (host, port) = scan::tls::parse_target(&target).map_err(|e| e.to_string())?;
            let mut opts = scan::tls::Options::new(&host, port);
            opts.handshake_timeout = Duration::from_millis(timeout.max(1));
            opts.http = !no_http;
            opts.ca_file = ca;
            if let (Some(c), Some(k)) = (client_cert, client_key) {
                scan::tls::check_client_auth(&c, &k).map_err(|e| e.to_string())?;
                opts.client_cert = Some((c, k));
            }
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            let addr = rt
                .block_on(scan::tls::resolve(&host, port))
                .map_err(|e: Error| e.to_string())?;
            eprintln!("target: {target} ({addr})");
            eprintln!("{REMINDER}");
            if !addr.ip().is_loopback() && !yes {
                return Err(format!(
                    "{} is not a loopback address: pass --yes to confirm you are allowed to scan it",
                    addr.ip()
                ));
            }
            let report = rt
                .block_on(scan::tls::scan(addr, &opts))
                .map_err(|e| format!("{target}: {e}"))?;
            match format {
                Format::Json => println!("{}", to_json(&report)?),
                Format::Jsonl => {
                    for f in &report.findings {
                        println!("{}", to_json(f)?);
                    }
                }
                Format::Table => crate::scan_tls_out::print(&report),
            }
            Ok(gate.is_some_and(|g| report.findings.iter().any(|f| f.severity >= g)))
        }
        ScanCmd::Deps {
            lockfiles,
            db,
            db_update,
            max_age_days,
            fail_on,
            format,
            json,
            jsonl,
        } => {
            let gate = fail_level(&fail_on)?;
            let format = pick(format, json, jsonl);
            if !db_update.is_empty() {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                for url in &db_update {
                    eprintln!("downloading {url} into {}", db.display());
                    let u = rt
                        .block_on(scan::dbupdate::update(url, &db))
                        .map_err(|e| e.to_string())?;
                    eprintln!(
                        "installed {} advisories ({} bytes) in {}{}",
                        u.advisories,
                        u.archive_bytes,
                        u.dir.display(),
                        if u.invalid.is_empty() {
                            String::new()
                        } else {
                            format!(", {} invalid entries skipped", u.invalid.len())
                        }
                    );
                }
                if lockfiles.is_empty() {
                    return Ok(false);
                }
            }
            let names: Vec<String> = lockfiles.iter().map(|p| p.display().to_string()).collect();
            eprintln!("target: {} (database {})", names.join(", "), db.display());
            eprintln!("{REMINDER}");
            let max_age = (max_age_days > 0).then(|| Duration::from_secs(max_age_days * 86400));
            let database = scan::osv::Database::load(&db, max_age, SystemTime::now())
                .map_err(|e| e.to_string())?;
            for (path, why) in &database.skipped {
                eprintln!("warning: skipped advisory {}: {why}", path.display());
            }
            let refs: Vec<&std::path::Path> = lockfiles.iter().map(|p| p.as_path()).collect();
            let report = scan::deps::audit(&refs, &database).map_err(|e| e.to_string())?;
            for (d, why) in &report.unchecked {
                eprintln!(
                    "warning: not checked {} {} {}: {why}",
                    d.ecosystem, d.name, d.version
                );
            }
            match format {
                Format::Json => println!("{}", to_json(&report)?),
                Format::Jsonl => {
                    for f in &report.findings {
                        println!("{}", to_json(f)?);
                    }
                }
                Format::Table => {
                    println!(
                        "{:<9} {:<20} {:<10} {:<30} {:<12} SUMMARY",
                        "SEVERITY", "ID", "ECOSYSTEM", "PACKAGE", "VERSION"
                    );
                    for f in &report.findings {
                        println!(
                            "{:<9} {:<20} {:<10} {:<30} {:<12} {}",
                            f.severity,
                            f.id,
                            f.dependency.ecosystem,
                            f.dependency.name,
                            f.dependency.version,
                            f.summary.as_deref().unwrap_or("")
                        );
                    }
                    println!(
                        "{} vulnerable, {} dependencies checked, {} unchecked, {} advisories",
                        report.findings.len(),
                        report.checked,
                        report.unchecked.len(),
                        report.advisories
                    );
                }
            }
            Ok(gate.is_some_and(|g| report.findings.iter().any(|f| f.severity >= g)))
        }
        ScanCmd::Web(args) => crate::audit_cmd::web(*args),
    }
}

fn pick(format: Format, json: bool, jsonl: bool) -> Format {
    if json {
        Format::Json
    } else if jsonl {
        Format::Jsonl
    } else {
        format
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String, String> {
    serde_json::to_string(v).map_err(|e| e.to_string())
}
