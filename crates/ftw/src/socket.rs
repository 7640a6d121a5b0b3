//! The socket [`Target`]: sends each stage's raw bytes to a running
//! gateway and reads the rule ids the request fired from its ModSecurity v3
//! JSON audit log, as go-ftw does against Apache or nginx.
//!
//! Per stage:
//!
//! 1. note the audit log's size (the start of this stage's window);
//! 2. connect, write the raw request, read one response (status line,
//!    headers and a body framed by `Content-Length`, chunked encoding or
//!    the connection's end), close; a connection that fails or ends
//!    without a response is the error `expect_error` tests want;
//! 3. send go-ftw's *end marker*: `GET /status/200` with the stage id in a
//!    `X-CRS-Test` header, on a new connection. The gateway writes a
//!    transaction's audit record before it handles a request that arrives
//!    after that transaction's connection closed, so once the marker is
//!    answered the stage's records are in the file (go-ftw re-sends its
//!    marker until it shows up in the log for the same reason);
//! 4. read the log from the start of the window and keep the records whose
//!    `client_ip`/`client_port` are the stage connection's local address.
//!
//! go-ftw delimits a stage's log lines with a start and an end marker and
//! must therefore run one request at a time. Matching the connection's
//! address instead keeps a stage's records apart from those of stages
//! running at the same time on other connections (the kernel never gives
//! two live connections to one server the same local port), so the suite
//! runs on several connections in parallel.
//!
//! Each audit message becomes one ModSecurity error-log style line
//! (`ModSecurity: Warning. <match> [file ".."] [line ".."] [id ".."]
//! [msg ".."] [data ".."] [severity ".."] … [tag ".."]`): what go-ftw's
//! `match_regex` / `no_match_regex` patterns are written against.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::runner::{StageRequest, StageResponse, Target};

/// Largest response read per stage (default 16 MiB); the rest is dropped.
/// Bounds memory against a backend answering without end.
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// Largest audit-log window read per stage (default 64 MiB). With stages
/// in parallel the window holds other stages' records too; this bounds
/// memory if the log grows by something else entirely.
pub const MAX_LOG_WINDOW: u64 = 64 * 1024 * 1024;

/// Default time allowed for connecting and for each read or write (10 s).
pub const DEFAULT_IO_TIMEOUT: Duration = Duration::from_secs(10);

/// The header go-ftw puts the stage id in (`LogMarkerHeaderName`).
pub const MARKER_HEADER: &str = "X-CRS-Test";

/// Sends stages to a running gateway; see the module docs.
#[derive(Debug, Clone)]
pub struct SocketTarget {
    addr: SocketAddr,
    audit_log: PathBuf,
    timeout: Duration,
}

impl SocketTarget {
    /// A target at `addr` whose audit log (ModSecurity v3 JSON, one record
    /// per line) is the file `audit_log`.
    pub fn new(addr: SocketAddr, audit_log: impl Into<PathBuf>) -> Self {
        SocketTarget {
            addr,
            audit_log: audit_log.into(),
            timeout: DEFAULT_IO_TIMEOUT,
        }
    }

    /// Sets the connect / read / write timeout (default [`DEFAULT_IO_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn connect(&self) -> Result<TcpStream, String> {
        let s = TcpStream::connect_timeout(&self.addr, self.timeout)
            .map_err(|e| format!("cannot connect to {}: {e}", self.addr))?;
        let _ = s.set_nodelay(true);
        s.set_read_timeout(Some(self.timeout))
            .and_then(|()| s.set_write_timeout(Some(self.timeout)))
            .map_err(|e| format!("socket: {e}"))?;
        Ok(s)
    }

    fn log_len(&self) -> u64 {
        std::fs::metadata(&self.audit_log).map_or(0, |m| m.len())
    }

    /// Sends go-ftw's end marker and waits for its answer.
    fn end_marker(&self, id: &str) -> Result<(), String> {
        let mut s = self.connect().map_err(|e| format!("end marker: {e}"))?;
        let req = format!(
            "GET /status/200 HTTP/1.1\r\nAccept: */*\r\nUser-Agent: go-ftw test agent\r\nHost: localhost\r\n{MARKER_HEADER}: {id}\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes())
            .map_err(|e| format!("end marker: {e}"))?;
        read_response(&mut s, false, self.timeout)
            .map(|_| ())
            .map_err(|e| format!("end marker: {e}"))
    }

    /// The log bytes from `from` to the end (at most [`MAX_LOG_WINDOW`]).
    fn log_window(&self, from: u64) -> Result<Vec<u8>, String> {
        let mut f = match File::open(&self.audit_log) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(format!("audit log {}: {e}", self.audit_log.display())),
        };
        let len = f.metadata().map_or(0, |m| m.len());
        // A log that shrank was rotated or truncated: read it whole.
        let from = if len < from { 0 } else { from };
        f.seek(SeekFrom::Start(from))
            .map_err(|e| format!("audit log: {e}"))?;
        let mut buf = Vec::new();
        f.take(MAX_LOG_WINDOW)
            .read_to_end(&mut buf)
            .map_err(|e| format!("audit log: {e}"))?;
        Ok(buf)
    }
}

impl Target for SocketTarget {
    fn send(&self, request: &StageRequest<'_>) -> Result<StageResponse, String> {
        let start = self.log_len();
        let head_only = request.raw.starts_with(b"HEAD ");
        let mut s = self.connect()?;
        let local = s.local_addr().map_err(|e| format!("socket: {e}"))?;
        // A write error is not final: the gateway may have answered (and
        // closed) before reading the whole request.
        let written = s.write_all(request.raw);
        let answer = read_response(&mut s, head_only, self.timeout);
        drop(s);
        let marker = format!("{}-{}-end", request.test_id, request.stage);
        self.end_marker(&marker)?;
        let (status, response) = match (answer, written) {
            (Ok(a), _) => a,
            (Err(e), Err(w)) => return Err(format!("{e} (write: {w})")),
            (Err(e), Ok(())) => return Err(e),
        };
        let window = self.log_window(start)?;
        let mut out = StageResponse {
            status,
            response,
            ..StageResponse::default()
        };
        for record in records_for(&window, local) {
            collect_messages(&record, &mut out);
        }
        Ok(out)
    }
}

/// Reads one HTTP/1 response: `(status, raw bytes)`. Interim 1xx answers
/// are skipped. `Err` when the connection fails or ends before a complete
/// status line and header block arrived.
pub fn read_response(
    s: &mut impl Read,
    head_only: bool,
    timeout: Duration,
) -> Result<(u16, Vec<u8>), String> {
    let deadline = Instant::now() + timeout * 3;
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let mut eof = false;
    // Reads more; Ok(false) at end of stream.
    let mut more = |buf: &mut Vec<u8>, eof: &mut bool| -> Result<bool, String> {
        if *eof || buf.len() >= MAX_RESPONSE_BYTES || Instant::now() > deadline {
            return Ok(false);
        }
        match s.read(&mut chunk) {
            Ok(0) => {
                *eof = true;
                Ok(false)
            }
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Ok(true),
            Err(e) => Err(e.to_string()),
        }
    };
    let mut head_start = 0;
    loop {
        // One response head.
        let head_end = loop {
            if let Some(i) = find(&buf[head_start..], b"\r\n\r\n") {
                break head_start + i + 4;
            }
            match more(&mut buf, &mut eof) {
                Ok(true) => {}
                Ok(false) if buf.len() == head_start => {
                    return Err("connection closed without a response".into())
                }
                Ok(false) => return Err("incomplete response head".into()),
                Err(e) if buf.len() == head_start => return Err(e),
                Err(e) => return Err(format!("incomplete response head: {e}")),
            }
        };
        let head = &buf[head_start..head_end];
        let status = parse_status(head).ok_or("malformed status line")?;
        if (100..200).contains(&status) && status != 101 {
            head_start = head_end;
            continue;
        }
        let framing = if head_only || status == 204 || status == 304 {
            Framing::None
        } else {
            framing(head)
        };
        let body_start = head_end;
        match framing {
            Framing::None => {}
            Framing::Length(n) => {
                let want = body_start.saturating_add(n).min(MAX_RESPONSE_BYTES);
                while buf.len() < want {
                    if !more(&mut buf, &mut eof).unwrap_or(false) {
                        break;
                    }
                }
                buf.truncate(want);
            }
            Framing::Chunked => {
                while !chunked_complete(&buf[body_start..]) {
                    if !more(&mut buf, &mut eof).unwrap_or(false) {
                        break;
                    }
                }
            }
            Framing::Close => while more(&mut buf, &mut eof).unwrap_or(false) {},
        }
        // Everything before this response's head was interim answers.
        let raw = buf.split_off(head_start);
        return Ok((status, raw));
    }
}

enum Framing {
    None,
    Length(usize),
    Chunked,
    Close,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn parse_status(head: &[u8]) -> Option<u16> {
    let line = head.split(|&b| b == b'\n').next()?;
    let mut parts = line.split(|&b| b == b' ');
    let version = parts.next()?;
    if !version.starts_with(b"HTTP/") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 {
        return None;
    }
    std::str::from_utf8(code).ok()?.parse().ok()
}

fn framing(head: &[u8]) -> Framing {
    let mut length = None;
    for line in head.split(|&b| b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if name.eq_ignore_ascii_case(b"transfer-encoding")
            && value.to_ascii_lowercase().ends_with(b"chunked")
        {
            return Framing::Chunked;
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            length = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
        }
    }
    length.map_or(Framing::Close, Framing::Length)
}

/// True when `body` holds a complete chunked body (last chunk and the
/// empty line after any trailers).
fn chunked_complete(mut body: &[u8]) -> bool {
    loop {
        let Some(eol) = find(body, b"\r\n") else {
            return false;
        };
        let size_text = body[..eol]
            .split(|&b| b == b';')
            .next()
            .unwrap_or_default()
            .trim_ascii();
        let Some(size) = std::str::from_utf8(size_text)
            .ok()
            .and_then(|t| usize::from_str_radix(t, 16).ok())
        else {
            // Not chunked after all: stop waiting for more.
            return true;
        };
        body = &body[eol + 2..];
        if size == 0 {
            // Trailers, then an empty line.
            let mut rest = body;
            loop {
                let Some(eol) = find(rest, b"\r\n") else {
                    return false;
                };
                if eol == 0 {
                    return true;
                }
                rest = &rest[eol + 2..];
            }
        }
        match size.checked_add(2) {
            Some(n) if body.len() >= n => body = &body[n..],
            _ => return false,
        }
    }
}

/// The audit records in `window` (one JSON object per line) written for
/// requests that came from `local` (the test connection's address seen
/// from the gateway). Lines that are not JSON (a record still being
/// written by another stage) are skipped.
pub fn records_for(window: &[u8], local: SocketAddr) -> Vec<Value> {
    window
        .split(|&b| b == b'\n')
        .filter(|l| !l.trim_ascii().is_empty())
        .filter_map(|l| serde_json::from_slice::<Value>(l).ok())
        .filter(|v| {
            let t = &v["transaction"];
            let port_ok = t["client_port"].as_u64() == Some(u64::from(local.port()));
            let ip_ok = t["client_ip"]
                .as_str()
                .and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
                .is_none_or(|ip| same_ip(ip, local.ip()));
            port_ok && ip_ok
        })
        .collect()
}

fn same_ip(a: std::net::IpAddr, b: std::net::IpAddr) -> bool {
    let canon = |ip: std::net::IpAddr| match ip {
        std::net::IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(std::net::IpAddr::V6(v6), std::net::IpAddr::V4),
        v4 => v4,
    };
    canon(a) == canon(b)
}

/// Adds the fired rule ids and one ModSecurity-style log line per message
/// of an audit `record` to `out`.
pub fn collect_messages(record: &Value, out: &mut StageResponse) {
    let t = &record["transaction"];
    let uri = t["request"]["uri"].as_str().unwrap_or("");
    let unique_id = t["unique_id"].as_str().unwrap_or("");
    let host = t["host_ip"].as_str().unwrap_or("");
    for m in t["messages"].as_array().into_iter().flatten() {
        let d = &m["details"];
        let text = |v: &Value| match v {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        };
        let id_text = text(&d["ruleId"]);
        if let Ok(id) = id_text.parse::<u64>() {
            out.fired.push(id);
        }
        let mut line = format!(
            "ModSecurity: Warning. {} [file \"{}\"] [line \"{}\"] [id \"{id_text}\"]",
            text(&d["match"]),
            text(&d["file"]),
            text(&d["lineNumber"]),
        );
        let rev = text(&d["rev"]);
        if !rev.is_empty() {
            line.push_str(&format!(" [rev \"{rev}\"]"));
        }
        line.push_str(&format!(
            " [msg \"{}\"] [data \"{}\"] [severity \"{}\"] [ver \"{}\"] [maturity \"{}\"] [accuracy \"{}\"]",
            text(&m["message"]),
            text(&d["data"]),
            text(&d["severity"]),
            text(&d["ver"]),
            text(&d["maturity"]),
            text(&d["accuracy"]),
        ));
        for tag in d["tags"].as_array().into_iter().flatten() {
            line.push_str(&format!(" [tag \"{}\"]", text(tag)));
        }
        line.push_str(&format!(
            " [hostname \"{host}\"] [uri \"{uri}\"] [unique_id \"{unique_id}\"]"
        ));
        out.log.push(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two records as the gateway writes them, a partial line, and one
    /// record of another connection.
    const LOG: &str = concat!(
        r#"{"transaction":{"client_ip":"127.0.0.1","time_stamp":"Mon Nov 23 15:13:23 2026","server_id":"x","client_port":40312,"host_ip":"127.0.0.1","host_port":8080,"unique_id":"abc","request":{"method":"GET","http_version":1.1,"uri":"/?q=1' or 1=1","headers":{"Host":"localhost","X-Dup":"1","X-Dup":"2"}},"response":{"http_code":200,"headers":{}},"producer":{},"messages":[{"message":"SQL Injection Attack Detected via libinjection","details":{"match":"detected SQLi using libinjection.","reference":"","ruleId":"942100","file":"/crs/rules/REQUEST-942-APPLICATION-ATTACK-SQLI.conf","lineNumber":"46","data":"Matched Data: s&1 found within ARGS:q: 1' or 1=1","severity":"2","ver":"OWASP_CRS/4.0","rev":"","tags":["attack-sqli","paranoia-level/1"],"maturity":"0","accuracy":"0"}},{"message":"Inbound Anomaly Score Exceeded (Total Score: 5)","details":{"match":"Matched \"Operator `Ge' with parameter `5' against variable `TX:BLOCKING_INBOUND_ANOMALY_SCORE' (Value: `5' )","reference":"","ruleId":"949110","file":"f","lineNumber":"1","data":"","severity":"0","ver":"","rev":"","tags":[],"maturity":"0","accuracy":"0"}}]}}"#,
        "\n",
        r#"{"transaction":{"client_ip":"127.0.0.1","client_port":40999,"unique_id":"other","request":{"uri":"/"},"messages":[{"message":"m","details":{"ruleId":"920350"}}]}}"#,
        "\n",
        r#"{"transaction":{"client_ip":"127.0.0.1","client_port":40312,"unique_id":"second","request":{"uri":"/b"},"messages":[{"message":"m2","details":{"ruleId":"920280"}}]}}"#,
        "\n",
        r#"{"transaction":{"client_ip":"127.0.0.1","client_port":40312,"uni"#,
    );

    #[test]
    fn records_are_matched_by_connection_and_ids_read() {
        let local: SocketAddr = "127.0.0.1:40312".parse().unwrap();
        let recs = records_for(LOG.as_bytes(), local);
        assert_eq!(
            recs.len(),
            2,
            "the partial line and the other port are skipped"
        );
        let mut out = StageResponse::default();
        for r in &recs {
            collect_messages(r, &mut out);
        }
        assert_eq!(out.fired, [942100, 949110, 920280]);
        assert!(out.log[0].contains(
            "[id \"942100\"] [msg \"SQL Injection Attack Detected via libinjection\"] [data \"Matched Data: s&1 found within ARGS:q: 1' or 1=1\"] [severity \"2\"]"
        ), "{}", out.log[0]);
        assert!(out.log[0].contains("[tag \"attack-sqli\"] [tag \"paranoia-level/1\"]"));
        // The CRS suite's own patterns match these lines.
        let re = regex::Regex::new(r#"\[id "\d+"\]"#).unwrap();
        assert!(out.log.iter().all(|l| re.is_match(l)));
        let re = regex::Regex::new(r"Inbound Anomaly Score Exceeded \(Total Score: ").unwrap();
        assert!(re.is_match(&out.log[1]));
        let re = regex::Regex::new("found within ARGS:q").unwrap();
        assert!(re.is_match(&out.log[0]));

        let other: SocketAddr = "127.0.0.2:40312".parse().unwrap();
        assert!(records_for(LOG.as_bytes(), other).is_empty());
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:40999".parse().unwrap();
        assert_eq!(records_for(LOG.as_bytes(), mapped).len(), 1);
    }

    fn read(bytes: &[u8], head: bool) -> Result<(u16, Vec<u8>), String> {
        read_response(&mut &bytes[..], head, Duration::from_secs(1))
    }

    #[test]
    fn responses_are_framed_like_a_client_does() {
        let (s, r) = read(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcEXTRA",
            false,
        )
        .unwrap();
        assert_eq!(
            (s, &r[..]),
            (200, &b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"[..])
        );
        let chunked =
            b"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        assert_eq!(read(chunked, false).unwrap().0, 403);
        let interim =
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n";
        let (s, r) = read(interim, false).unwrap();
        assert_eq!(s, 201);
        assert!(r.starts_with(b"HTTP/1.1 201"));
        let (s, r) = read(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", true).unwrap();
        assert_eq!((s, r.len()), (200, 39));
        let (_, r) = read(b"HTTP/1.0 200 OK\r\n\r\nuntil the end", false).unwrap();
        assert!(r.ends_with(b"until the end"));
        assert_eq!(
            read(b"", false).unwrap_err(),
            "connection closed without a response"
        );
        assert_eq!(
            read(b"HTTP/1.1 200 OK\r\nX: y", false).unwrap_err(),
            "incomplete response head"
        );
        assert_eq!(
            read(b"garbage\r\n\r\n", false).unwrap_err(),
            "malformed status line"
        );
        assert!(chunked_complete(b"0\r\nT: v\r\n\r\n"));
        assert!(!chunked_complete(b"5\r\nab"));
        assert!(!chunked_complete(b"ffffffffffffffff\r\n"));
    }
}
