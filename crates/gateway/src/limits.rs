//! Every resource limit of the gateway: a named constant with its default and
//! the attack it bounds, and the [`Limits`] struct that config overrides.

use std::time::Duration;

/// Default 16 KiB: bytes of a request's header block (request line excluded).
/// Bounds memory per connection against huge-header floods (answered 431).
pub const MAX_HEADER_BYTES: u64 = 16 * 1024;
/// Default 100: header fields per request. Bounds CPU/memory spent on header
/// maps against many-tiny-headers floods (answered 431).
pub const MAX_HEADERS: usize = 100;
/// Default 8192: bytes of the request target. Bounds URI buffers and what a
/// path-based attack can smuggle into logs and upstreams (answered 414).
pub const MAX_URI_BYTES: u64 = 8192;
/// Default 10 MiB: bytes of a request body, streamed or not. Bounds upload
/// floods and what an upstream must swallow (answered 413).
pub const MAX_BODY_BYTES: u64 = 10 * 1024 * 1024;
/// Default 10 s: time to receive a complete request head (and the TLS
/// handshake). Bounds slowloris clients that trickle headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default 30 s: longest silence while a request body is being received, and
/// longest time a client may read nothing of its response. Bounds stalled
/// uploads and slow-read clients that pin a connection and an upstream slot.
pub const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default 1 KiB/s: minimum average body rate, measured only over the time
/// the gateway waits for the client, after a grace second. Bounds slow-POST
/// (R-U-Dead-Yet) clients that send one byte just before each idle timeout.
pub const BODY_MIN_RATE: u64 = 1024;
/// Default 5 s: TCP connect to an upstream server. Bounds how long a request
/// waits on a black-holed server before the next one is tried.
pub const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default 60 s: time from sending the request to receiving the upstream's
/// response head. Bounds requests pinned by a hung upstream (answered 504).
pub const UPSTREAM_RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default 60 s: idle time of a client keep-alive connection between
/// requests. Bounds idle sockets held open by clients.
pub const KEEPALIVE_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default 10000: open client connections in total. Bounds file descriptors
/// and memory against connection floods.
pub const MAX_CONNECTIONS: usize = 10_000;
/// Default 256: open client connections per client IP address. Bounds how
/// much of [`MAX_CONNECTIONS`] one client can take.
pub const MAX_CONNECTIONS_PER_IP: usize = 256;
/// Default 100: concurrent HTTP/2 streams per connection. Bounds the work one
/// h2 connection can start at once (and rapid-reset style floods).
pub const H2_MAX_CONCURRENT_STREAMS: u32 = 100;
/// Default 30 s: on SIGTERM, how long in-flight requests may finish before the
/// process exits anyway. Bounds shutdown time against never-ending requests.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// Default 10 s: how long a server that refused a connection stays out of its
/// pool (passive ejection). Bounds the latency cost of retrying a dead server.
pub const EJECT_COOLDOWN: Duration = Duration::from_secs(10);
/// Fixed 256: idle keep-alive connections kept per upstream server. Bounds
/// file descriptors held towards upstreams after a burst.
pub const MAX_IDLE_PER_SERVER: usize = 256;
/// Fixed 64: servers per upstream (a bit set tracks the servers tried).
/// Bounds retry work per request.
pub const MAX_SERVERS_PER_UPSTREAM: usize = 64;
/// Fixed 128: bytes of an incoming `X-Request-Id` kept as is; longer or
/// non-printable ids are replaced. Bounds log/header injection through ids.
pub const MAX_REQUEST_ID_BYTES: usize = 128;
/// Fixed 64: bytes allowed on a request line beyond the URI (method, version).
/// Bounds the request line together with [`MAX_URI_BYTES`].
pub const REQUEST_LINE_SLACK: u64 = 64;
/// Fixed 4096: bytes of one chunk-size line including extensions. Bounds
/// chunk-extension floods in chunked bodies.
pub const MAX_CHUNK_LINE_BYTES: usize = 4096;
/// Fixed 1 MiB: size of a config file. Bounds memory used to parse config.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;
/// Fixed 65536: access-log lines queued for the writer thread; when full,
/// lines are dropped and counted instead of growing memory or blocking requests.
pub const ACCESS_LOG_QUEUE: usize = 65_536;

/// Limits in force for one runtime config (all overridable in `[limits]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// See [`MAX_HEADER_BYTES`].
    pub max_header_bytes: u64,
    /// See [`MAX_HEADERS`].
    pub max_headers: usize,
    /// See [`MAX_URI_BYTES`].
    pub max_uri_bytes: u64,
    /// See [`MAX_BODY_BYTES`].
    pub max_body_bytes: u64,
    /// See [`HEADER_READ_TIMEOUT`].
    pub header_read_timeout: Duration,
    /// See [`BODY_IDLE_TIMEOUT`].
    pub body_idle_timeout: Duration,
    /// See [`BODY_MIN_RATE`]; 0 disables the check.
    pub body_min_rate: u64,
    /// See [`UPSTREAM_CONNECT_TIMEOUT`].
    pub upstream_connect_timeout: Duration,
    /// See [`UPSTREAM_RESPONSE_TIMEOUT`].
    pub upstream_response_timeout: Duration,
    /// See [`KEEPALIVE_IDLE_TIMEOUT`].
    pub keepalive_idle_timeout: Duration,
    /// See [`MAX_CONNECTIONS`].
    pub max_connections: usize,
    /// See [`MAX_CONNECTIONS_PER_IP`].
    pub max_connections_per_ip: usize,
    /// See [`H2_MAX_CONCURRENT_STREAMS`].
    pub h2_max_concurrent_streams: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: MAX_HEADER_BYTES,
            max_headers: MAX_HEADERS,
            max_uri_bytes: MAX_URI_BYTES,
            max_body_bytes: MAX_BODY_BYTES,
            header_read_timeout: HEADER_READ_TIMEOUT,
            body_idle_timeout: BODY_IDLE_TIMEOUT,
            body_min_rate: BODY_MIN_RATE,
            upstream_connect_timeout: UPSTREAM_CONNECT_TIMEOUT,
            upstream_response_timeout: UPSTREAM_RESPONSE_TIMEOUT,
            keepalive_idle_timeout: KEEPALIVE_IDLE_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
            max_connections_per_ip: MAX_CONNECTIONS_PER_IP,
            h2_max_concurrent_streams: H2_MAX_CONCURRENT_STREAMS,
        }
    }
}

/// Parses a duration such as `250ms`, `30s`, `5m`, `1h` (a positive integer
/// followed by a unit; `0s` is allowed).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("duration `{s}` needs a unit: ms, s, m or h (e.g. \"30s\")"))?;
    let (num, unit) = s.split_at(split);
    let unit = unit.trim();
    if num.is_empty() {
        return Err(format!(
            "duration `{s}` must start with a number (e.g. \"30s\")"
        ));
    }
    let n: u64 = num
        .parse()
        .map_err(|_| format!("duration `{s}` is too large"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => {
            return Err(format!(
                "duration `{s}` has unknown unit `{unit}`: use ms, s, m or h"
            ))
        }
    };
    // Bound: 1 year. Larger values are certainly typos and overflow Instant math.
    if d > Duration::from_secs(365 * 24 * 3600) {
        return Err(format!("duration `{s}` is longer than one year"));
    }
    Ok(d)
}

/// Parses a size such as `16KiB`, `10MiB`, `1GiB`, `500KB`, `512B` or `4096`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    if num.is_empty() {
        return Err(format!(
            "size `{s}` must start with a number (e.g. \"16KiB\")"
        ));
    }
    let n: u64 = num
        .parse()
        .map_err(|_| format!("size `{s}` is too large"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => {
            return Err(format!(
                "size `{s}` has unknown unit `{other}`: use B, KiB, MiB, GiB, KB, MB or GB"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size `{s}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert!(parse_duration("30").unwrap_err().contains("needs a unit"));
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("3 days")
            .unwrap_err()
            .contains("unit `days`"));
        assert_eq!(parse_duration("3 s"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("10y").is_err());
        assert!(parse_duration("99999999999999999999s").is_err());
        assert!(parse_duration("9000h").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("16KiB"), Ok(16384));
        assert_eq!(parse_size("10MiB"), Ok(10 * 1024 * 1024));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("500KB"), Ok(500_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("12B"), Ok(12));
        assert!(parse_size("12 bananas").is_err());
        assert!(parse_size("KiB").is_err());
        assert!(parse_size("99999999999999GiB").is_err());
    }
}
