//! Asynchronous TCP connect scan.
//!
//! Connects run concurrently, bounded by the requested concurrency and by
//! the process's open-file limit (minus a reserve); when the kernel still
//! reports "too many open files" the scanner lowers its concurrency and
//! retries the port instead of reporting it closed. A connect whose local
//! address equals its remote address is a TCP self-connect (possible on
//! loopback for ports in the ephemeral range) and is not an open port.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::probe;
use crate::Severity;

/// Default per-connect timeout: 1000 ms (a filtered port costs this much).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(1000);
/// Default banner read timeout per step: 500 ms (bounds a server that
/// accepts and never speaks).
pub const DEFAULT_BANNER_TIMEOUT: Duration = Duration::from_millis(500);
/// Default upper bound on concurrent connects: 4096.
pub const DEFAULT_CONCURRENCY: usize = 4096;
/// File descriptors left free for the rest of the process: 64 (the
/// runtime, stdio, the banner connections).
pub const FD_RESERVE: usize = 64;
/// Concurrent banner grabs: 32 (each may open several connections).
pub const BANNER_CONCURRENCY: usize = 32;
/// Retries of one port after EMFILE/ENFILE before giving up: 8.
pub const MAX_FD_RETRIES: u32 = 8;

/// Scan settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// Per-connect timeout.
    pub timeout: Duration,
    /// Requested concurrency (further bounded by the open-file limit).
    pub concurrency: usize,
    /// Banner read timeout; `None` skips service identification.
    pub banner_timeout: Option<Duration>,
    /// Connects started per second (`None`: as fast as concurrency allows).
    pub rate: Option<u32>,
    /// Counts ports done (total = ports scanned).
    pub progress: Option<std::sync::Arc<crate::progress::Progress>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            timeout: DEFAULT_TIMEOUT,
            concurrency: DEFAULT_CONCURRENCY,
            banner_timeout: Some(DEFAULT_BANNER_TIMEOUT),
            rate: None,
            progress: None,
        }
    }
}

/// One open port.
#[derive(Debug, Clone, Serialize)]
pub struct OpenPort {
    /// Port number.
    pub port: u16,
    /// Service name (see [`probe::Identified::service`]), `None` when
    /// identification was skipped.
    pub service: Option<String>,
    /// First line of the service's banner.
    pub banner: Option<String>,
    /// `info` for an open port; `high` for a Redis answering without auth.
    pub severity: Severity,
}

/// A finished scan.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Address scanned.
    pub target: IpAddr,
    /// Number of ports tried.
    pub scanned: usize,
    /// Open ports, ascending.
    pub open: Vec<OpenPort>,
    /// Ports whose connect timed out (filtered or dropped).
    pub timed_out: usize,
    /// Self-connects discarded (loopback artefacts, not open ports).
    pub self_connects: usize,
    /// Concurrency actually used (after the open-file bound and any
    /// reduction on EMFILE).
    pub concurrency: usize,
    /// Wall time in milliseconds.
    pub elapsed_ms: u128,
}

/// The soft open-file limit (RLIMIT_NOFILE) from `/proc/self/limits`;
/// `None` when unavailable or "unlimited".
pub fn open_file_limit() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The concurrency used for `requested`: at least 1, at most the
/// open-file limit minus [`FD_RESERVE`].
pub fn effective_concurrency(requested: usize) -> usize {
    let cap = open_file_limit()
        .map(|l| l.saturating_sub(FD_RESERVE))
        .unwrap_or(usize::MAX);
    requested.min(cap).max(1)
}

enum Outcome {
    Open,
    Closed,
    TimedOut,
    SelfConnect,
    OutOfFds,
}

async fn try_port(addr: SocketAddr, timeout: Duration) -> Outcome {
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Err(_) => Outcome::TimedOut,
        Ok(Err(e)) => match e.raw_os_error() {
            // EMFILE / ENFILE: our own limit, says nothing about the port.
            Some(24) | Some(23) => Outcome::OutOfFds,
            _ => Outcome::Closed,
        },
        Ok(Ok(s)) => match (s.local_addr(), s.peer_addr()) {
            (Ok(l), Ok(p)) if l == p => Outcome::SelfConnect,
            _ => Outcome::Open,
        },
    }
}

/// Scans `ports` on `target`.
pub async fn scan(target: IpAddr, ports: &[u16], opts: &Options) -> Report {
    let start = Instant::now();
    let mut limit = effective_concurrency(opts.concurrency);
    let mut open = Vec::new();
    let (mut timed_out, mut self_connects) = (0, 0);
    let mut set: JoinSet<(u16, u32, Outcome)> = JoinSet::new();
    // Ports waiting for a retry after EMFILE, with their retry count.
    let mut retry: Vec<(u16, u32)> = Vec::new();
    let mut next = ports.iter().peekable();
    // Rate limit as a schedule (connect n may start at t0 + n / rate), so
    // a late wake-up lets several connects start at once instead of
    // drifting; completions are handled while waiting for the next slot.
    let rate = opts.rate.filter(|&r| r > 0).map(f64::from);
    let t0 = tokio::time::Instant::now();
    let mut started: u64 = 0;
    let slot = |n: u64, r: f64| t0 + Duration::from_secs_f64(n as f64 / r);
    if let Some(p) = &opts.progress {
        p.add_total(ports.len() as u64);
    }
    loop {
        while set.len() < limit {
            if let Some(r) = rate {
                if slot(started, r) > tokio::time::Instant::now() {
                    break;
                }
            }
            let (port, tries) = match retry.pop() {
                Some(r) => r,
                None => match next.next() {
                    Some(&p) => (p, 0),
                    None => break,
                },
            };
            started += 1;
            let timeout = opts.timeout;
            set.spawn(async move {
                if tries > 0 {
                    tokio::time::sleep(Duration::from_millis(10 << tries.min(6))).await;
                }
                (
                    port,
                    tries,
                    try_port(SocketAddr::new(target, port), timeout).await,
                )
            });
        }
        let more = !retry.is_empty() || next.peek().is_some();
        let joined = match rate {
            Some(r) if more => {
                let at = slot(started, r);
                if set.is_empty() {
                    tokio::time::sleep_until(at).await;
                    continue;
                }
                match tokio::time::timeout_at(at, set.join_next()).await {
                    Err(_) => continue,
                    Ok(j) => j,
                }
            }
            _ => set.join_next().await,
        };
        let Some(joined) = joined else {
            break;
        };
        // A panicked task cannot happen (no panicking code inside); treat
        // it as a closed port rather than aborting the scan.
        let Ok((port, tries, outcome)) = joined else {
            continue;
        };
        if let (Some(p), false) = (&opts.progress, matches!(outcome, Outcome::OutOfFds)) {
            p.inc(1);
        }
        match outcome {
            Outcome::Open => open.push(port),
            Outcome::Closed => {}
            Outcome::TimedOut => timed_out += 1,
            Outcome::SelfConnect => self_connects += 1,
            Outcome::OutOfFds => {
                // Adapt: fewer sockets at once, then try the port again.
                limit = (limit * 3 / 4).max(1);
                if tries < MAX_FD_RETRIES {
                    retry.push((port, tries + 1));
                } else {
                    timed_out += 1;
                }
            }
        }
    }
    open.sort_unstable();
    let open = identify_all(target, &open, opts.banner_timeout).await;
    Report {
        target,
        scanned: ports.len(),
        open,
        timed_out,
        self_connects,
        concurrency: limit,
        elapsed_ms: start.elapsed().as_millis(),
    }
}

async fn identify_all(target: IpAddr, ports: &[u16], wait: Option<Duration>) -> Vec<OpenPort> {
    let Some(wait) = wait else {
        return ports
            .iter()
            .map(|&port| OpenPort {
                port,
                service: None,
                banner: None,
                severity: Severity::Info,
            })
            .collect();
    };
    let mut out = Vec::with_capacity(ports.len());
    let mut set = JoinSet::new();
    let mut next = ports.iter();
    loop {
        while set.len() < BANNER_CONCURRENCY {
            let Some(&port) = next.next() else { break };
            set.spawn(async move {
                let id = probe::identify(SocketAddr::new(target, port), wait).await;
                OpenPort {
                    port,
                    service: Some(id.service.to_string()),
                    banner: id.banner,
                    severity: if id.unauthenticated {
                        Severity::High
                    } else {
                        Severity::Info
                    },
                }
            });
        }
        match set.join_next().await {
            Some(Ok(p)) => out.push(p),
            Some(Err(_)) => {}
            None => break,
        }
    }
    out.sort_unstable_by_key(|p| p.port);
    out
}

/// Resolves `host` (an address or a name) to its first address.
pub async fn resolve(host: &str) -> Result<IpAddr, crate::Error> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ip);
    }
    let mut addrs = tokio::net::lookup_host((host, 0))
        .await
        .map_err(|_| crate::Error::Resolve(host.to_string()))?;
    addrs
        .next()
        .map(|a| a.ip())
        .ok_or_else(|| crate::Error::Resolve(host.to_string()))
}
