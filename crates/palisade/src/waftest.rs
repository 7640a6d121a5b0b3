//! `palisade waf test`: the OWASP CRS regression suite (go-ftw's YAML
//! format) against a running palisade, over sockets.
//!
//! ```text
//! palisade waf test --target 127.0.0.1:8080 --audit-log data/audit.log \
//!     --tests ../shared/crs-v4/tests/tests --overrides crates/ftw/overrides/palisade.yaml
//! ```
//!
//! Each stage's raw bytes go to `--target`; the rule ids it fired come
//! from palisade's ModSecurity v3 JSON audit log (see
//! [`ftw::socket`] for how a stage finds its records). Output: per-file
//! counts, every failure, the slowest tests, then `N passed, M failed, …`.
//! Exit code 0 only when no test failed.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ftw::{load, runner, Filter, SocketTarget};

/// Arguments of `palisade waf test`.
#[derive(clap::Args, Debug)]
pub struct TestArgs {
    /// palisade's HTTP listener (host:port).
    #[arg(long)]
    pub target: String,
    /// palisade's audit log (ModSecurity v3 JSON, one record per line).
    #[arg(long)]
    pub audit_log: PathBuf,
    /// Directory of go-ftw YAML tests (searched recursively).
    #[arg(long)]
    pub tests: PathBuf,
    /// Overrides file in the CRS / go-ftw format.
    #[arg(long)]
    pub overrides: Option<PathBuf>,
    /// Run only tests whose "<rule>-<test>" id matches this regex (wins over --exclude).
    #[arg(long)]
    pub include: Option<String>,
    /// Skip tests whose "<rule>-<test>" id matches this regex.
    #[arg(long)]
    pub exclude: Option<String>,
    /// Connections used in parallel (1-8).
    #[arg(long, default_value_t = 4)]
    pub threads: usize,
    /// Seconds allowed to connect and for each read or write.
    #[arg(long, default_value_t = 10)]
    pub timeout: u64,
}

/// Errors of `waf test` before any test ran (exit 2).
#[derive(Debug)]
pub struct SetupError(pub String);

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Runs the suite; prints the report on stdout. `Ok(true)` when every
/// selected test passed.
pub fn run(args: &TestArgs) -> Result<bool, SetupError> {
    let addr: SocketAddr = args
        .target
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| SetupError(format!("--target {}: not a host:port", args.target)))?;
    let filter = Filter::new(args.include.as_deref(), args.exclude.as_deref())
        .map_err(|e| SetupError(e.to_string()))?;
    let tests = load::load_tests(&args.tests).map_err(|e| SetupError(e.to_string()))?;
    if tests.is_empty() {
        return Err(SetupError(format!(
            "{}: no test file found",
            args.tests.display()
        )));
    }
    let overrides = args
        .overrides
        .as_deref()
        .map(load::load_overrides)
        .transpose()
        .map_err(|e| SetupError(e.to_string()))?;
    let target =
        SocketTarget::new(addr, &args.audit_log).with_timeout(Duration::from_secs(args.timeout));
    // Refuse to run thousands of tests against nothing.
    std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(args.timeout))
        .map_err(|e| SetupError(format!("cannot connect to {addr}: {e}")))?;

    let started = Instant::now();
    let summary = runner::run(&target, &tests, overrides.as_ref(), &filter, args.threads);
    let mut report = summary.report();
    // The closing line stays last: tools read it.
    let last = report
        .trim_end()
        .rsplit('\n')
        .next()
        .unwrap_or("")
        .to_owned();
    report.truncate(report.trim_end().len() - last.len());
    report.push_str(&format!(
        "elapsed: {:.1}s on {} connection(s)\n\n{last}\n",
        started.elapsed().as_secs_f64(),
        args.threads.clamp(1, runner::MAX_THREADS)
    ));
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(report.as_bytes());
    Ok(summary.failed == 0)
}
