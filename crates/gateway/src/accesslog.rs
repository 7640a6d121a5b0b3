//! Access log: one JSON line per request, written by a dedicated thread so a
//! slow disk never blocks request handling. The queue is bounded; when it is
//! full, lines are dropped and counted.

use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::AccessLog as Target;
use crate::error::{Error, Result};
use crate::limits::ACCESS_LOG_QUEUE;
use crate::metrics::Metrics;

/// One access-log record.
#[derive(Debug)]
pub struct Record<'a> {
    /// Request id.
    pub request_id: &'a str,
    /// Client IP.
    pub client_ip: IpAddr,
    /// Method.
    pub method: &'a str,
    /// Host (header or authority).
    pub host: &'a str,
    /// Path and query.
    pub path: &'a str,
    /// Status sent.
    pub status: u16,
    /// Request body bytes received.
    pub bytes_in: u64,
    /// Response body bytes sent.
    pub bytes_out: u64,
    /// Total duration.
    pub duration: Duration,
    /// Route name, `-` when none.
    pub route: &'a str,
    /// Upstream server, `-` when none.
    pub upstream: &'a str,
    /// Time to the upstream response head.
    pub upstream_duration: Option<Duration>,
    /// Why the gateway answered itself (error), if it did.
    pub error: Option<&'a str>,
    /// Whether the response body completed.
    pub complete: bool,
}

/// The access-log writer handle.
#[derive(Debug, Clone)]
pub struct AccessLogger {
    tx: Option<SyncSender<String>>,
    metrics: Arc<Metrics>,
}

impl AccessLogger {
    /// Opens the destination and starts the writer thread.
    pub fn open(target: &Target, metrics: Arc<Metrics>) -> Result<Self> {
        let out: Box<dyn Write + Send> = match target {
            Target::Off => return Ok(AccessLogger { tx: None, metrics }),
            Target::Stdout => Box::new(std::io::stdout()),
            Target::File(p) => Box::new(open_append(p)?),
        };
        let (tx, rx) = sync_channel(ACCESS_LOG_QUEUE);
        std::thread::Builder::new()
            .name("palisade-access-log".into())
            .spawn(move || writer(rx, out))
            .map_err(|e| Error::io("cannot start access-log thread", e))?;
        Ok(AccessLogger {
            tx: Some(tx),
            metrics,
        })
    }

    /// Whether logging is enabled.
    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Queues one record.
    pub fn log(&self, r: &Record<'_>) {
        let Some(tx) = &self.tx else { return };
        let line = format_record(r, SystemTime::now());
        if let Err(TrySendError::Full(_)) = tx.try_send(line) {
            self.metrics
                .access_log_dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

fn open_append(p: &Path) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(p)
        .map_err(|e| Error::io(format!("cannot open access log {}", p.display()), e))
}

fn writer(rx: Receiver<String>, out: Box<dyn Write + Send>) {
    let mut w = std::io::BufWriter::with_capacity(64 * 1024, out);
    while let Ok(line) = rx.recv() {
        let _ = w.write_all(line.as_bytes());
        // Drain what is queued, then flush once: batching without delaying lines.
        while let Ok(line) = rx.try_recv() {
            let _ = w.write_all(line.as_bytes());
        }
        let _ = w.flush();
    }
    let _ = w.flush();
}

/// Formats a record as one JSON line (with trailing newline).
pub fn format_record(r: &Record<'_>, now: SystemTime) -> String {
    let mut s = String::with_capacity(320);
    s.push_str("{\"time\":\"");
    rfc3339(&mut s, now);
    s.push_str("\",\"request_id\":");
    json_str(&mut s, r.request_id);
    s.push_str(",\"client_ip\":\"");
    s.push_str(&r.client_ip.to_string());
    s.push_str("\",\"method\":");
    json_str(&mut s, r.method);
    s.push_str(",\"host\":");
    json_str(&mut s, r.host);
    s.push_str(",\"path\":");
    json_str(&mut s, r.path);
    use std::fmt::Write as _;
    let _ = write!(
        s,
        ",\"status\":{},\"bytes_in\":{},\"bytes_out\":{},\"duration_ms\":{:.3},\"route\":",
        r.status,
        r.bytes_in,
        r.bytes_out,
        r.duration.as_secs_f64() * 1000.0
    );
    json_str(&mut s, r.route);
    s.push_str(",\"upstream\":");
    json_str(&mut s, r.upstream);
    match r.upstream_duration {
        Some(d) => {
            let _ = write!(s, ",\"upstream_ms\":{:.3}", d.as_secs_f64() * 1000.0);
        }
        None => s.push_str(",\"upstream_ms\":null"),
    }
    if let Some(e) = r.error {
        s.push_str(",\"error\":");
        json_str(&mut s, e);
    }
    if !r.complete {
        s.push_str(",\"aborted\":true");
    }
    s.push_str("}\n");
    s
}

fn json_str(s: &mut String, v: &str) {
    s.push('"');
    for c in v.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                use std::fmt::Write as _;
                let _ = write!(s, "\\u{:04x}", c as u32);
            }
            c => s.push(c),
        }
    }
    s.push('"');
}

/// Appends `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn rfc3339(s: &mut String, t: SystemTime) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, dd) = civil_from_days(days);
    use std::fmt::Write as _;
    let _ = write!(
        s,
        "{y:04}-{m:02}-{dd:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        d.subsec_millis()
    );
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_is_one_valid_json_line() {
        let r = Record {
            request_id: "abc",
            client_ip: "127.0.0.1".parse().unwrap(),
            method: "GET",
            host: "ex\"ample",
            path: "/a\nb\u{1}",
            status: 200,
            bytes_in: 3,
            bytes_out: 5,
            duration: Duration::from_micros(1500),
            route: "*/",
            upstream: "127.0.0.1:3000",
            upstream_duration: Some(Duration::from_millis(1)),
            error: None,
            complete: true,
        };
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let line = format_record(&r, t);
        assert!(line.ends_with("}\n") && line.matches('\n').count() == 1);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["time"], "2023-11-14T22:13:20.123Z");
        assert_eq!(v["host"], "ex\"ample");
        assert_eq!(v["path"], "/a\nb\u{1}");
        assert_eq!(v["status"], 200);
        assert_eq!(v["duration_ms"], 1.5);
        assert_eq!(v["upstream_ms"], 1.0);
        assert_eq!(v["route"], "*/");
    }
}
