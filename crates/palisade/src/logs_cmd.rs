//! `palisade logs analyze FILE...`: access logs (nginx/Apache combined or
//! common, palisade's JSON) run through the WAF rules offline; a terminal
//! summary, and optionally a JSON report and a self-contained HTML page.
//! Exit codes: 0 done, 2 error (a file unreadable, no rules, a report not
//! written). The work is in `monitor::analyze`.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use monitor::analyze::{self, html, report, LogFormat, Options, Progress, RuleChoice, RuleOptions};

/// `palisade logs` subcommands.
#[derive(Subcommand, Debug)]
pub enum LogsCmd {
    /// Run access logs through the WAF rules; report attacks, attacking
    /// clients, a timeline and attacks answered 2xx.
    Analyze(AnalyzeArgs),
}

/// Which rules judge the log.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RulesArg {
    /// The installed CRS if found, else the built-in rules.
    Auto,
    /// The OWASP CRS (an error when none is found).
    Crs,
    /// The built-in rules.
    Builtin,
}

/// Log line format.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormatArg {
    /// Per line: JSON objects, else combined/common.
    Auto,
    /// nginx/Apache combined.
    Combined,
    /// nginx/Apache common.
    Common,
    /// palisade's JSON access log.
    Json,
}

/// `palisade logs analyze` arguments.
#[derive(Args, Debug)]
pub struct AnalyzeArgs {
    /// Log files, plain or gzip (`-`: standard input).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Log line format.
    #[arg(long, value_enum, default_value_t = FormatArg::Auto)]
    format: FormatArg,
    /// Rules: the CRS when installed (auto), the CRS only, or the built-in rules.
    #[arg(long, value_enum, default_value_t = RulesArg::Auto)]
    rules: RulesArg,
    /// CRS directory (holding rules/); implies --rules crs.
    #[arg(long)]
    crs: Option<PathBuf>,
    /// Data directory where `palisade crs install` put the CRS (crs/current).
    #[arg(long, default_value = "data")]
    data_dir: PathBuf,
    /// CRS paranoia level (1-4).
    #[arg(long, default_value_t = 1)]
    paranoia: u8,
    /// Inbound anomaly score from which a request counts as an attack.
    #[arg(long, default_value_t = 5)]
    threshold: u32,
    /// Write the JSON report to FILE (`-`: standard output; the summary then goes to stderr).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write a self-contained HTML report to FILE.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Evaluate every line, even repeats (for rules that depend on the client address or time).
    #[arg(long)]
    no_cache: bool,
    /// Rows in the top-clients and top-rules tables.
    #[arg(long, default_value_t = report::DEFAULT_TOP)]
    top: usize,
    /// No terminal summary.
    #[arg(short, long)]
    quiet: bool,
    /// No progress bar (it is shown only when stderr is a terminal).
    #[arg(long)]
    no_progress: bool,
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(2)
}

fn write_file(path: &Path, text: &str) -> Result<(), String> {
    if path.as_os_str() == "-" {
        let mut out = std::io::stdout().lock();
        return out
            .write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| format!("standard output: {e}"));
    }
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// One line of progress on stderr, redrawn in place.
fn draw_progress(p: &Progress<'_>) {
    let name = p.path.display().to_string();
    let name = report::terminal_safe(&name);
    let rate = p.lines as f64 / p.elapsed.as_secs_f64().max(1e-3);
    let done = if p.size > 0 {
        let frac = (p.bytes as f64 / p.size as f64).clamp(0.0, 1.0);
        let filled = (frac * 24.0) as usize;
        format!(
            "[{}{}] {:>3.0}% {}/{}",
            "#".repeat(filled),
            "-".repeat(24 - filled),
            frac * 100.0,
            human_bytes(p.bytes),
            human_bytes(p.size)
        )
    } else {
        human_bytes(p.bytes)
    };
    let mut err = std::io::stderr().lock();
    let _ = write!(
        err,
        "\r\x1b[K{}/{} {name} {done} {} lines {:.0} lines/s",
        p.file + 1,
        p.files,
        p.lines,
        rate
    );
    let _ = err.flush();
}

/// Runs `palisade logs`.
pub fn run(cmd: LogsCmd) -> ExitCode {
    let LogsCmd::Analyze(a) = cmd;
    let rule_opts = RuleOptions {
        choice: match a.rules {
            RulesArg::Auto => RuleChoice::Auto,
            RulesArg::Crs => RuleChoice::Crs,
            RulesArg::Builtin => RuleChoice::Builtin,
        },
        crs_dir: a.crs.clone(),
        data_dir: a.data_dir.clone(),
        paranoia_level: a.paranoia,
        threshold: a.threshold,
    };
    let rules = match analyze::load_rules(&rule_opts) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let opts = Options {
        format: match a.format {
            FormatArg::Auto => LogFormat::Auto,
            FormatArg::Combined => LogFormat::Combined,
            FormatArg::Common => LogFormat::Common,
            FormatArg::Json => LogFormat::Json,
        },
        threads: a.threads,
        cache: !a.no_cache,
        flagged_lines: 0,
    };
    let show_progress = !a.no_progress && std::io::stderr().is_terminal();
    let progress: Option<&(dyn Fn(&Progress<'_>) + Sync)> = if show_progress {
        Some(&draw_progress)
    } else {
        None
    };
    let analysis = analyze::analyze(&a.files, &rules, &opts, progress);
    if show_progress {
        eprint!("\r\x1b[K");
    }
    let mut failed = false;
    if let Some(path) = &a.json {
        let text = match serde_json::to_string_pretty(&report::json(&analysis, a.top)) {
            Ok(t) => t + "\n",
            Err(e) => return fail(e),
        };
        if let Err(e) = write_file(path, &text) {
            eprintln!("error: cannot write the JSON report: {e}");
            failed = true;
        }
    }
    if let Some(path) = &a.html {
        if let Err(e) = write_file(path, &html::page(&analysis, a.top)) {
            eprintln!("error: cannot write the HTML report: {e}");
            failed = true;
        }
    }
    if !a.quiet {
        let text = report::text(&analysis, a.top);
        if a.json.as_deref() == Some(Path::new("-")) {
            eprint!("{text}");
        } else {
            print!("{text}");
        }
    }
    for f in &analysis.files {
        if let Some(e) = &f.error {
            eprintln!(
                "error: {}: {}",
                report::terminal_safe(&f.path.display().to_string()),
                report::terminal_safe(e)
            );
            failed = true;
        }
    }
    if failed {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}
