//! Configuration: TOML parsed once into validated types.
//!
//! Parsing happens in two steps: serde deserializes the raw document (unknown
//! keys and wrong types are rejected with their position), then [`validate`]
//! checks values and cross-references and produces a [`Config`] that the rest
//! of the gateway can trust. Every error names file, line, column and key.

use std::collections::HashSet;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use toml::Spanned;

use crate::error::{ConfigError, Error, Result};
use crate::limits::{self, parse_duration, parse_size, Limits};

#[path = "shield_config.rs"]
pub mod shield;

/// The embedded default used by `palisade serve` without `-c`: an http
/// listener on 127.0.0.1:8080 in front of the built-in demo upstream
/// (`demo` is replaced by the in-process server's address at start).
pub const EMBEDDED_DEFAULT: &str = r#"
[server]
data_dir = "./data"
access_log = "stdout"

[admin]
listen = "127.0.0.1:9901"

[[listener]]
name = "web"
listen = "127.0.0.1:8080"
protocol = "http"

[[upstream]]
name = "demo"
servers = ["127.0.0.1:1"]

[[route]]
path_prefix = "/"
upstream = "demo"
# The WAF in block mode with the built-in rules (no CRS needed); try
# curl 'http://127.0.0.1:8080/?q=1%27%20or%201=1--'
[route.waf]
mode = "block"
"#;

/// Name under which the embedded default reports errors.
pub const EMBEDDED_NAME: &str = "<embedded default>";

// ---------------------------------------------------------------- raw types

/// A duration in config syntax (`"30s"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Dur(Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a duration string such as \"250ms\", \"30s\", \"5m\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Dur, E> {
                parse_duration(v).map(Dur).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

/// A size in config syntax (`4096` or `"16KiB"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Size(u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Size;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a size: an integer (bytes) or a string such as \"16KiB\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Size, E> {
                u64::try_from(v)
                    .map(Size)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Size, E> {
                Ok(Size(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Size, E> {
                parse_size(v).map(Size).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    admin: RawAdmin,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    listener: Vec<RawListener>,
    #[serde(default)]
    upstream: Vec<RawUpstream>,
    #[serde(default)]
    route: Vec<RawRoute>,
    waf: Option<crate::waf::config::RawWaf>,
    #[serde(default)]
    shield: shield::RawShield,
    #[serde(default)]
    state: state::StateConfig,
    identity: Option<identity::IdentityConfig>,
    monitor: Option<monitor::Config>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    data_dir: Option<PathBuf>,
    shutdown_grace: Option<Dur>,
    access_log: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_header_bytes: Option<Size>,
    max_headers: Option<Spanned<u64>>,
    max_uri_bytes: Option<Size>,
    max_body_bytes: Option<Size>,
    header_read_timeout: Option<Dur>,
    body_idle_timeout: Option<Dur>,
    body_min_rate: Option<Size>,
    upstream_connect_timeout: Option<Dur>,
    upstream_response_timeout: Option<Dur>,
    keepalive_idle_timeout: Option<Dur>,
    max_connections: Option<Spanned<u64>>,
    max_connections_per_ip: Option<Spanned<u64>>,
    h2_max_concurrent_streams: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
/// Protocol spoken by a listener.
pub enum Protocol {
    /// Plain HTTP/1.1 (and h2c with prior knowledge).
    Http,
    /// HTTP over TLS (h2 and http/1.1 via ALPN).
    Https,
    /// Plain TCP passthrough to an upstream (docs/gateway.md, tunnels).
    Tcp,
    /// TLS terminated here (optionally mTLS), plain TCP to the upstream.
    Tls,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListener {
    name: Spanned<String>,
    listen: Spanned<SocketAddr>,
    protocol: Protocol,
    #[serde(default)]
    redirect_to_https: Option<Spanned<bool>>,
    #[serde(default)]
    hsts: Option<Spanned<String>>,
    #[serde(default)]
    certificate: Vec<RawCert>,
    upstream: Option<Spanned<String>>,
    idle_timeout: Option<Spanned<String>>,
    client_auth: Option<Spanned<crate::tunnel::ClientAuth>>,
    client_ca: Option<Spanned<PathBuf>>,
    crl: Option<Spanned<Vec<PathBuf>>>,
    allow: Option<Spanned<Vec<String>>>,
    identity_header: Option<Spanned<String>>,
    upstream_tls: Option<Spanned<crate::tunnel::RawUpstreamTls>>,
    proxy_protocol: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCert {
    cert: Spanned<PathBuf>,
    key: Spanned<PathBuf>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
/// Load-balancing algorithm of an upstream.
pub enum Balance {
    /// Each server in turn.
    #[default]
    RoundRobin,
    /// The server with the fewest requests in flight.
    LeastConn,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    name: Spanned<String>,
    servers: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    balance: Balance,
    eject_cooldown: Option<Dur>,
    health_check: Option<RawHealth>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    path: Option<Spanned<String>>,
    interval: Option<Dur>,
    timeout: Option<Dur>,
    healthy_threshold: Option<Spanned<u64>>,
    unhealthy_threshold: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    name: Option<Spanned<String>>,
    host: Option<Spanned<String>>,
    path_prefix: Option<Spanned<String>>,
    upstream: Spanned<String>,
    waf: Option<crate::waf::config::RawRouteWaf>,
}

// ---------------------------------------------------------- validated types

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it was read from (`None`: embedded default).
    pub source: Option<PathBuf>,
    /// `[server]`.
    pub server: ServerConfig,
    /// `[admin]`.
    pub admin: AdminConfig,
    /// `[limits]`.
    pub limits: Limits,
    /// `[[listener]]`, at least one.
    pub listeners: Vec<ListenerConfig>,
    /// `[[upstream]]`.
    pub upstreams: Vec<UpstreamConfig>,
    /// `[[route]]`.
    pub routes: Vec<RouteConfig>,
    /// `[waf]`: WAF defaults and the audit log.
    pub waf: crate::waf::config::WafConfig,
    /// `[shield]` (docs/shield.md).
    pub shield: shield::ShieldSettings,
    /// `[state]`: where bans, rate-limit budgets and sessions are kept.
    pub state: state::StateConfig,
    /// `[identity]`: login portal, sessions, access rules (docs/identity.md).
    pub identity: Option<std::sync::Arc<crate::identity_glue::IdentitySettings>>,
    /// `[monitor]`: events, event store, anomaly model, alerts (docs/monitoring.md).
    pub monitor: monitor::Config,
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Data directory (dev certificates, pid file). Default `./data`.
    pub data_dir: PathBuf,
    /// SIGTERM drain deadline. Default [`limits::SHUTDOWN_GRACE`].
    pub shutdown_grace: Duration,
    /// Access log destination. Default stdout.
    pub access_log: AccessLog,
}

/// Where access-log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLog {
    /// Standard output.
    Stdout,
    /// Disabled.
    Off,
    /// Appended to this file.
    File(PathBuf),
}

/// `[admin]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// Address of the admin listener; `None` when `listen = "off"`.
    pub listen: Option<SocketAddr>,
}

/// One `[[listener]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerConfig {
    /// Unique name.
    pub name: String,
    /// Socket address.
    pub listen: SocketAddr,
    /// http or https.
    pub protocol: Protocol,
    /// http only: answer every request with a 308 to https.
    pub redirect_to_https: bool,
    /// https only: value of the Strict-Transport-Security header.
    pub hsts: Option<String>,
    /// https only: certificates, chosen by SNI; empty = self-signed dev cert.
    pub certificates: Vec<CertFiles>,
    /// tcp/tls tunnel and client-certificate settings.
    pub tunnel: crate::tunnel::TunnelSettings,
}

/// A certificate chain file and its private key file (PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    /// Chain, leaf first.
    pub cert: PathBuf,
    /// PKCS#8, PKCS#1 or SEC1 private key.
    pub key: PathBuf,
    /// Where the `cert` key sits in the config (for error messages).
    pub origin: Origin,
}

/// A position in the config source, for errors found after parsing
/// (unreadable certificate files).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Origin {
    /// File name.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

/// One `[[upstream]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamConfig {
    /// Unique name.
    pub name: String,
    /// Servers with the label they were written as.
    pub servers: Vec<ServerAddr>,
    /// Balancing algorithm.
    pub balance: Balance,
    /// Passive ejection cooldown after a connect failure.
    pub eject_cooldown: Duration,
    /// Active health checks.
    pub health_check: Option<HealthCheckConfig>,
}

/// An upstream server address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAddr {
    /// As written in the config (`app.internal:3000`), used in metrics.
    pub label: String,
    /// Resolved at load time.
    pub addr: SocketAddr,
}

/// `[upstream.health_check]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckConfig {
    /// Path requested with GET. Default `/`.
    pub path: String,
    /// Time between checks. Default 5 s.
    pub interval: Duration,
    /// Timeout of one check. Default 2 s.
    pub timeout: Duration,
    /// Consecutive successes that bring a server back. Default 2.
    pub healthy_threshold: u32,
    /// Consecutive failures that take a server out. Default 3.
    pub unhealthy_threshold: u32,
}

/// Host part of a route.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostMatch {
    /// Any host.
    Any,
    /// Exactly this host (lowercase, no port).
    Exact(String),
    /// `*.example.com`: stores `.example.com`; matches any subdomain.
    Wildcard(String),
}

/// One `[[route]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteConfig {
    /// Name used in metrics and logs (default: host + path prefix).
    pub name: String,
    /// Host match.
    pub host: HostMatch,
    /// Path prefix (starts with `/`).
    pub path_prefix: String,
    /// Upstream name (exists).
    pub upstream: String,
    /// `[route.waf]`; `None` when the WAF is off for this route.
    pub waf: Option<crate::waf::config::RouteWaf>,
}

// ---------------------------------------------------------------- loading

/// Reads and validates a config file.
pub fn load_file(path: &Path) -> Result<Config> {
    let meta = std::fs::metadata(path).map_err(|source| Error::ConfigRead {
        path: path.to_path_buf(),
        source,
    })?;
    if meta.len() > limits::MAX_CONFIG_BYTES {
        return Err(Error::ConfigRead {
            path: path.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("larger than {} bytes", limits::MAX_CONFIG_BYTES),
            ),
        });
    }
    let text = std::fs::read_to_string(path).map_err(|source| Error::ConfigRead {
        path: path.to_path_buf(),
        source,
    })?;
    let mut cfg = parse(&text, &path.display().to_string())?;
    cfg.source = Some(path.to_path_buf());
    Ok(cfg)
}

/// Parses and validates config text; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<Config> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let span = e.span();
        let start = span.as_ref().map(|s| s.start);
        Error::Config(Box::new(locate(text, file, start, None, e.message())))
    })?;
    validate(raw, text, file)
}

/// Builds a located error; when `key` is `None`, the key is read from the text
/// around `offset` (the table header above and the `key =` on the line).
fn locate(
    text: &str,
    file: &str,
    offset: Option<usize>,
    key: Option<String>,
    message: &str,
) -> ConfigError {
    let (line, column) = offset.map(|o| line_col(text, o)).unwrap_or((0, 0));
    let key = key.or_else(|| offset.and_then(|o| key_at(text, o)));
    ConfigError {
        file: file.to_string(),
        line,
        column,
        key,
        message: message.trim().to_string(),
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let column = before
        .get(line_start..)
        .map(|s| s.chars().count())
        .unwrap_or(0)
        + 1;
    (line, column)
}

/// Best-effort dotted key at a byte offset: `table.key`.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let before = text.get(..offset.min(text.len()))?;
    let mut table: Option<String> = None;
    let mut key: Option<String> = None;
    // Walk lines backwards from the offset: the first `key =` found names the
    // key (multi-line arrays put the value on later lines), the first table
    // header names the table.
    let line_end = text
        .get(offset..)
        .and_then(|rest| rest.find('\n'))
        .map(|i| offset + i)
        .unwrap_or(text.len());
    let upto = text.get(..line_end).unwrap_or(before);
    for line in upto.lines().rev() {
        let t = line.trim();
        if t.starts_with('[') {
            let name = t
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim();
            table = Some(name.to_string());
            break;
        }
        if key.is_none() {
            if let Some((k, _)) = t.split_once('=') {
                let k = k.trim().trim_matches('"');
                if !k.is_empty() && !k.starts_with('#') {
                    key = Some(k.to_string());
                }
            }
        }
    }
    match (table, key) {
        (Some(t), Some(k)) => Some(format!("{t}.{k}")),
        (None, Some(k)) => Some(k),
        (Some(t), None) => Some(t),
        (None, None) => None,
    }
}

pub(crate) struct V<'a> {
    text: &'a str,
    file: &'a str,
}

impl V<'_> {
    pub(crate) fn err<T>(
        &self,
        span: std::ops::Range<usize>,
        key: &str,
        msg: impl AsRef<str>,
    ) -> Result<T> {
        Err(Error::Config(Box::new(locate(
            self.text,
            self.file,
            Some(span.start),
            Some(key.to_string()),
            msg.as_ref(),
        ))))
    }
    fn origin(&self, span: std::ops::Range<usize>) -> Origin {
        let (line, column) = line_col(self.text, span.start);
        Origin {
            file: self.file.to_string(),
            line,
            column,
        }
    }
}

fn positive_u32(v: &V, s: &Spanned<u64>, key: &str) -> Result<u32> {
    match u32::try_from(*s.get_ref()) {
        Ok(n) if n > 0 => Ok(n),
        _ => v.err(s.span(), key, "must be an integer between 1 and 4294967295"),
    }
}

fn positive_usize(v: &V, s: &Spanned<u64>, key: &str) -> Result<usize> {
    match usize::try_from(*s.get_ref()) {
        Ok(n) if n > 0 => Ok(n),
        _ => v.err(s.span(), key, "must be a positive integer"),
    }
}

fn validate(raw: RawConfig, text: &str, file: &str) -> Result<Config> {
    let v = V { text, file };
    let missing = |key: &str, msg: &str| -> Error {
        Error::Config(Box::new(ConfigError {
            file: file.to_string(),
            line: 0,
            column: 0,
            key: Some(key.to_string()),
            message: msg.to_string(),
        }))
    };

    // [server]
    let access_log = match raw.server.access_log.as_deref() {
        None | Some("stdout") => AccessLog::Stdout,
        Some("off") => AccessLog::Off,
        Some("") => {
            return Err(missing(
                "server.access_log",
                "must be \"stdout\", \"off\" or a file path",
            ))
        }
        Some(p) => AccessLog::File(PathBuf::from(p)),
    };
    let server = ServerConfig {
        data_dir: raw
            .server
            .data_dir
            .unwrap_or_else(|| PathBuf::from("./data")),
        shutdown_grace: raw
            .server
            .shutdown_grace
            .map(|d| d.0)
            .unwrap_or(limits::SHUTDOWN_GRACE),
        access_log,
    };

    // [admin]
    let admin = AdminConfig {
        listen: match raw.admin.listen.as_deref() {
            None => Some(SocketAddr::from(([127, 0, 0, 1], 9901))),
            Some("off") => None,
            Some(s) => Some(s.parse::<SocketAddr>().map_err(|_| {
                missing(
                    "admin.listen",
                    &format!("`{s}` is not a socket address like 127.0.0.1:9901 (or \"off\")"),
                )
            })?),
        },
    };

    // [limits]
    let d = Limits::default();
    let l = &raw.limits;
    let limits = Limits {
        max_header_bytes: l
            .max_header_bytes
            .map(|s| s.0)
            .unwrap_or(d.max_header_bytes),
        max_headers: match &l.max_headers {
            Some(s) => positive_usize(&v, s, "limits.max_headers")?,
            None => d.max_headers,
        },
        max_uri_bytes: l.max_uri_bytes.map(|s| s.0).unwrap_or(d.max_uri_bytes),
        max_body_bytes: l.max_body_bytes.map(|s| s.0).unwrap_or(d.max_body_bytes),
        header_read_timeout: l
            .header_read_timeout
            .map(|s| s.0)
            .unwrap_or(d.header_read_timeout),
        body_idle_timeout: l
            .body_idle_timeout
            .map(|s| s.0)
            .unwrap_or(d.body_idle_timeout),
        body_min_rate: l.body_min_rate.map(|s| s.0).unwrap_or(d.body_min_rate),
        upstream_connect_timeout: l
            .upstream_connect_timeout
            .map(|s| s.0)
            .unwrap_or(d.upstream_connect_timeout),
        upstream_response_timeout: l
            .upstream_response_timeout
            .map(|s| s.0)
            .unwrap_or(d.upstream_response_timeout),
        keepalive_idle_timeout: l
            .keepalive_idle_timeout
            .map(|s| s.0)
            .unwrap_or(d.keepalive_idle_timeout),
        max_connections: match &l.max_connections {
            Some(s) => positive_usize(&v, s, "limits.max_connections")?,
            None => d.max_connections,
        },
        max_connections_per_ip: match &l.max_connections_per_ip {
            Some(s) => positive_usize(&v, s, "limits.max_connections_per_ip")?,
            None => d.max_connections_per_ip,
        },
        h2_max_concurrent_streams: match &l.h2_max_concurrent_streams {
            Some(s) => positive_u32(&v, s, "limits.h2_max_concurrent_streams")?,
            None => d.h2_max_concurrent_streams,
        },
    };
    for (name, dur) in [
        ("limits.header_read_timeout", limits.header_read_timeout),
        ("limits.body_idle_timeout", limits.body_idle_timeout),
        (
            "limits.upstream_connect_timeout",
            limits.upstream_connect_timeout,
        ),
        (
            "limits.upstream_response_timeout",
            limits.upstream_response_timeout,
        ),
        (
            "limits.keepalive_idle_timeout",
            limits.keepalive_idle_timeout,
        ),
    ] {
        if dur.is_zero() {
            return Err(missing(name, "must be greater than zero"));
        }
    }
    for (name, n) in [
        ("limits.max_header_bytes", limits.max_header_bytes),
        ("limits.max_uri_bytes", limits.max_uri_bytes),
    ] {
        if !(64..=1024 * 1024).contains(&n) {
            return Err(missing(name, "must be between 64 bytes and 1MiB"));
        }
    }

    // [[listener]]
    if raw.listener.is_empty() {
        return Err(missing("listener", "at least one [[listener]] is required"));
    }
    let mut listeners = Vec::new();
    let mut names = HashSet::new();
    let mut addrs = HashSet::new();
    let mut tunnel_refs = Vec::new();
    for rl in raw.listener {
        let name = rl.name.get_ref().trim().to_string();
        if name.is_empty() {
            return v.err(rl.name.span(), "listener.name", "must not be empty");
        }
        if !names.insert(name.clone()) {
            return v.err(
                rl.name.span(),
                "listener.name",
                format!("duplicate listener name `{name}`"),
            );
        }
        let listen = *rl.listen.get_ref();
        if !addrs.insert(listen) || Some(listen) == admin.listen {
            return v.err(
                rl.listen.span(),
                "listener.listen",
                format!("address {listen} is used twice"),
            );
        }
        let redirect = rl
            .redirect_to_https
            .as_ref()
            .map(|b| *b.get_ref())
            .unwrap_or(false);
        if redirect && rl.protocol != Protocol::Http {
            let span = rl
                .redirect_to_https
                .as_ref()
                .map(|b| b.span())
                .unwrap_or(0..0);
            return v.err(
                span,
                "listener.redirect_to_https",
                "only valid on an http listener",
            );
        }
        let hsts = match rl.hsts {
            Some(h) => {
                if rl.protocol != Protocol::Https {
                    return v.err(h.span(), "listener.hsts", "only valid on an https listener");
                }
                if http::HeaderValue::from_str(h.get_ref()).is_err() || h.get_ref().is_empty() {
                    return v.err(h.span(), "listener.hsts", "not a valid header value");
                }
                Some(h.into_inner())
            }
            None => None,
        };
        if matches!(rl.protocol, Protocol::Http | Protocol::Tcp) && !rl.certificate.is_empty() {
            let span = rl.certificate[0].cert.span();
            return v.err(
                span,
                "listener.certificate",
                "certificates need protocol = \"https\" or \"tls\"",
            );
        }
        if let Some(u) = &rl.upstream {
            tunnel_refs.push((u.get_ref().clone(), u.span()));
        }
        let tunnel = crate::tunnel::validate(
            &v,
            rl.protocol,
            crate::tunnel::RawTunnelKeys {
                upstream: rl.upstream,
                idle_timeout: rl.idle_timeout,
                client_auth: rl.client_auth,
                client_ca: rl.client_ca,
                crl: rl.crl,
                allow: rl.allow,
                identity_header: rl.identity_header,
                upstream_tls: rl.upstream_tls,
                proxy_protocol: rl.proxy_protocol,
            },
        )?;
        let certificates = rl
            .certificate
            .into_iter()
            .map(|c| CertFiles {
                origin: v.origin(c.cert.span()),
                cert: c.cert.into_inner(),
                key: c.key.into_inner(),
            })
            .collect();
        listeners.push(ListenerConfig {
            name,
            listen,
            protocol: rl.protocol,
            redirect_to_https: redirect,
            hsts,
            certificates,
            tunnel,
        });
    }

    // [[upstream]]
    let mut upstreams = Vec::new();
    let mut unames = HashSet::new();
    for ru in raw.upstream {
        let name = ru.name.get_ref().trim().to_string();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return v.err(
                ru.name.span(),
                "upstream.name",
                "must be non-empty letters, digits, '-', '_' or '.'",
            );
        }
        if !unames.insert(name.clone()) {
            return v.err(
                ru.name.span(),
                "upstream.name",
                format!("duplicate upstream name `{name}`"),
            );
        }
        if ru.servers.get_ref().is_empty() {
            return v.err(
                ru.servers.span(),
                "upstream.servers",
                "at least one server is required",
            );
        }
        if ru.servers.get_ref().len() > limits::MAX_SERVERS_PER_UPSTREAM {
            return v.err(
                ru.servers.span(),
                "upstream.servers",
                format!(
                    "at most {} servers per upstream",
                    limits::MAX_SERVERS_PER_UPSTREAM
                ),
            );
        }
        let mut servers = Vec::new();
        for s in ru.servers.get_ref() {
            let label = s.get_ref().trim().to_string();
            let addr = match label.parse::<SocketAddr>() {
                Ok(a) => a,
                Err(_) => match label.to_socket_addrs().ok().and_then(|mut it| it.next()) {
                    Some(a) => a,
                    None => {
                        return v.err(
                            s.span(),
                            "upstream.servers",
                            format!("`{label}` is not host:port (or the host does not resolve)"),
                        )
                    }
                },
            };
            if servers.iter().any(|x: &ServerAddr| x.label == label) {
                return v.err(
                    s.span(),
                    "upstream.servers",
                    format!("server `{label}` listed twice"),
                );
            }
            servers.push(ServerAddr { label, addr });
        }
        let health_check = match ru.health_check {
            None => None,
            Some(h) => {
                let path = match h.path {
                    Some(p) => {
                        if !p.get_ref().starts_with('/')
                            || p.get_ref().parse::<http::uri::PathAndQuery>().is_err()
                        {
                            return v.err(
                                p.span(),
                                "upstream.health_check.path",
                                "must be a path starting with '/'",
                            );
                        }
                        p.into_inner()
                    }
                    None => "/".to_string(),
                };
                let interval = h.interval.map(|d| d.0).unwrap_or(Duration::from_secs(5));
                let timeout = h.timeout.map(|d| d.0).unwrap_or(Duration::from_secs(2));
                if interval.is_zero() || timeout.is_zero() {
                    return Err(missing(
                        "upstream.health_check",
                        "interval and timeout must be greater than zero",
                    ));
                }
                HealthCheckConfig {
                    path,
                    interval,
                    timeout,
                    healthy_threshold: match &h.healthy_threshold {
                        Some(s) => positive_u32(&v, s, "upstream.health_check.healthy_threshold")?,
                        None => 2,
                    },
                    unhealthy_threshold: match &h.unhealthy_threshold {
                        Some(s) => {
                            positive_u32(&v, s, "upstream.health_check.unhealthy_threshold")?
                        }
                        None => 3,
                    },
                }
                .into()
            }
        };
        upstreams.push(UpstreamConfig {
            name,
            servers,
            balance: ru.balance,
            eject_cooldown: ru
                .eject_cooldown
                .map(|d| d.0)
                .unwrap_or(limits::EJECT_COOLDOWN),
            health_check,
        });
    }
    for (name, span) in tunnel_refs {
        if !unames.contains(name.trim()) {
            return v.err(
                span,
                "listener.upstream",
                format!("unknown upstream `{name}`"),
            );
        }
    }

    // [waf] before the routes, which inherit its defaults.
    let waf = crate::waf::config::validate_global(&v, raw.waf)?;

    // [[route]]
    let mut routes: Vec<RouteConfig> = Vec::new();
    let mut seen = HashSet::new();
    let mut rnames = HashSet::new();
    for rr in raw.route {
        let host = match &rr.host {
            None => HostMatch::Any,
            Some(h) => match parse_host_match(h.get_ref()) {
                Ok(m) => m,
                Err(msg) => return v.err(h.span(), "route.host", msg),
            },
        };
        let (path_prefix, pspan) = match rr.path_prefix {
            Some(p) => {
                let span = p.span();
                let s = p.into_inner();
                if !s.starts_with('/')
                    || s.parse::<http::uri::PathAndQuery>().is_err()
                    || s.contains('?')
                {
                    return v.err(
                        span,
                        "route.path_prefix",
                        "must be a path starting with '/'",
                    );
                }
                (s, span)
            }
            None => ("/".to_string(), rr.upstream.span()),
        };
        let up = rr.upstream.get_ref();
        if !unames.contains(up.as_str()) {
            return v.err(
                rr.upstream.span(),
                "route.upstream",
                format!("no [[upstream]] named `{up}`"),
            );
        }
        if !seen.insert((host.clone(), path_prefix.clone())) {
            return v.err(
                pspan,
                "route.path_prefix",
                "another route has the same host and path_prefix",
            );
        }
        let name = match &rr.name {
            Some(n) => n.get_ref().clone(),
            None => {
                let h = match &host {
                    HostMatch::Any => "*".to_string(),
                    HostMatch::Exact(h) => h.clone(),
                    HostMatch::Wildcard(s) => format!("*{s}"),
                };
                format!("{h}{path_prefix}")
            }
        };
        if !rnames.insert(name.clone()) {
            let span = rr.name.as_ref().map(|n| n.span()).unwrap_or(pspan);
            return v.err(span, "route.name", format!("duplicate route name `{name}`"));
        }
        let route_waf = crate::waf::config::validate_route(&v, &waf, rr.waf, rr.upstream.span())?;
        routes.push(RouteConfig {
            name,
            host,
            path_prefix,
            upstream: up.clone(),
            waf: route_waf,
        });
    }

    let shield = shield::validate(raw.shield, &v, &routes)?;
    let state = shield::validate_state(raw.state, &v, &server)?;
    let identity = crate::identity_glue::validate(raw.identity, file)?;
    let monitor = crate::events_glue::validate_config(raw.monitor, &v, text.find("[monitor"))?;
    Ok(Config {
        source: None,
        server,
        admin,
        limits,
        listeners,
        upstreams,
        routes,
        waf,
        shield,
        state,
        identity,
        monitor,
    })
}

/// Parses a route `host`: `example.com`, `*.example.com` or `*` (any).
fn parse_host_match(h: &str) -> std::result::Result<HostMatch, String> {
    let h = h.trim().to_ascii_lowercase();
    if h == "*" || h.is_empty() {
        return Ok(HostMatch::Any);
    }
    let (wild, name) = match h.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, h.as_str()),
    };
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !valid {
        return Err(format!(
            "`{h}` is not a host name, `*.` wildcard or `*` (no port, no scheme)"
        ));
    }
    Ok(if wild {
        HostMatch::Wildcard(format!(".{name}"))
    } else {
        HostMatch::Exact(name.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> ConfigError {
        match parse(text, "t.toml") {
            Err(Error::Config(e)) => *e,
            other => panic!("expected config error, got {other:?}"),
        }
    }

    const MIN: &str = r#"
[[listener]]
name = "web"
listen = "127.0.0.1:8080"
protocol = "http"

[[upstream]]
name = "app"
servers = ["127.0.0.1:3000"]

[[route]]
upstream = "app"
"#;

    #[test]
    fn embedded_default_is_valid() {
        let c = parse(EMBEDDED_DEFAULT, EMBEDDED_NAME).unwrap();
        assert_eq!(c.listeners[0].listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.admin.listen, Some("127.0.0.1:9901".parse().unwrap()));
        // The demo protects out of the box: built-in rules in block mode.
        let waf = c.routes[0]
            .waf
            .as_ref()
            .expect("the demo route has the WAF on");
        assert_eq!(waf.mode, crate::waf::config::WafMode::Block);
        assert_eq!(waf.sources, vec![crate::waf::config::RuleSource::Builtin]);
        assert_eq!(crate::waf::check_rules(&c).unwrap(), 1);
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = parse(MIN, "t.toml").unwrap();
        assert_eq!(c.limits, Limits::default());
        assert_eq!(c.server.shutdown_grace, limits::SHUTDOWN_GRACE);
        assert_eq!(c.routes[0].path_prefix, "/");
        assert_eq!(c.routes[0].host, HostMatch::Any);
        assert_eq!(c.routes[0].name, "*/");
        assert_eq!(c.upstreams[0].balance, Balance::RoundRobin);
    }

    #[test]
    fn unknown_key_is_located() {
        let e = err(&format!("{MIN}\n[limits]\nmax_bodyy = 3\n"));
        assert_eq!(e.line, 15);
        assert_eq!(e.column, 1);
        assert_eq!(e.key.as_deref(), Some("limits.max_bodyy"));
        assert!(e.message.contains("unknown field"), "{}", e.message);
    }

    #[test]
    fn bad_duration_is_located() {
        let e = err(&format!(
            "{MIN}\n[limits]\nheader_read_timeout = \"10 parsecs\"\n"
        ));
        assert_eq!((e.line, e.column), (15, 23));
        assert_eq!(e.key.as_deref(), Some("limits.header_read_timeout"));
        assert!(e.message.contains("unit"), "{}", e.message);
    }

    #[test]
    fn wrong_type_is_located() {
        let e = err(&format!("{MIN}\n[limits]\nmax_headers = \"many\"\n"));
        assert_eq!(e.line, 15);
        assert_eq!(e.key.as_deref(), Some("limits.max_headers"));
    }

    #[test]
    fn bad_address_is_located() {
        let e = err(&MIN.replace("127.0.0.1:8080", "127.0.0.1:80800"));
        assert_eq!(e.line, 4);
        assert_eq!(e.key.as_deref(), Some("listener.listen"));
    }

    #[test]
    fn route_to_unknown_upstream() {
        let e = err(&MIN.replace("upstream = \"app\"", "upstream = \"nope\""));
        assert_eq!(e.line, 12);
        assert_eq!(e.key.as_deref(), Some("route.upstream"));
        assert!(e.message.contains("nope"));
    }

    #[test]
    fn bad_server_and_host() {
        let e = err(&MIN.replace("127.0.0.1:3000", "no port here"));
        assert_eq!(e.key.as_deref(), Some("upstream.servers"));
        assert_eq!(e.line, 9);
        let e = err(&MIN.replace(
            "upstream = \"app\"",
            "host = \"exa mple.com\"\nupstream = \"app\"",
        ));
        assert_eq!(e.key.as_deref(), Some("route.host"));
    }

    #[test]
    fn duplicates_and_cross_checks() {
        let dup = format!("{MIN}\n[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:8081\"\nprotocol = \"http\"\n");
        assert!(err(&dup).message.contains("duplicate listener"));
        let hsts = MIN.replace(
            "protocol = \"http\"",
            "protocol = \"http\"\nhsts = \"max-age=1\"",
        );
        assert_eq!(err(&hsts).key.as_deref(), Some("listener.hsts"));
        let none = "[server]\n";
        assert!(err(none).message.contains("at least one [[listener]]"));
        let zero = format!("{MIN}\n[limits]\nmax_connections = 0\n");
        assert_eq!(err(&zero).key.as_deref(), Some("limits.max_connections"));
        let dup_route = format!("{MIN}\n[[route]]\npath_prefix = \"/\"\nupstream = \"app\"\n");
        assert!(err(&dup_route).message.contains("same host"));
    }

    #[test]
    fn example_file_documents_the_real_defaults() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../palisade.example.toml");
        let c = load_file(Path::new(path)).unwrap();
        assert_eq!(c.limits, Limits::default());
        assert_eq!(c.server.shutdown_grace, limits::SHUTDOWN_GRACE);
        assert_eq!(c.server.data_dir, PathBuf::from("./data"));
        assert_eq!(c.server.access_log, AccessLog::Stdout);
        assert_eq!(c.admin.listen, Some("127.0.0.1:9901".parse().unwrap()));
        let u = &c.upstreams[0];
        assert_eq!(u.eject_cooldown, limits::EJECT_COOLDOWN);
        assert_eq!(u.balance, Balance::default());
        let hc = u.health_check.as_ref().unwrap();
        assert_eq!(
            (hc.interval, hc.timeout),
            (Duration::from_secs(5), Duration::from_secs(2))
        );
        assert_eq!((hc.healthy_threshold, hc.unhealthy_threshold), (2, 3));
        assert_eq!(hc.path, "/");
        assert!(!c.listeners[0].redirect_to_https);
    }

    #[test]
    fn full_config_parses() {
        let text = r#"
[server]
data_dir = "/tmp/x"
shutdown_grace = "5s"
access_log = "off"
[admin]
listen = "off"
[limits]
max_header_bytes = "8KiB"
max_body_bytes = 1024
body_min_rate = "2KiB"
[[listener]]
name = "tls"
listen = "127.0.0.1:8443"
protocol = "https"
hsts = "max-age=60"
  [[listener.certificate]]
  cert = "a.pem"
  key = "a.key"
[[upstream]]
name = "app"
servers = ["127.0.0.1:3000", "localhost:3001"]
balance = "least_conn"
  [upstream.health_check]
  path = "/health"
  interval = "1s"
  unhealthy_threshold = 1
[[route]]
host = "*.Example.com"
path_prefix = "/api"
upstream = "app"
"#;
        let c = parse(text, "t.toml").unwrap();
        assert_eq!(c.server.access_log, AccessLog::Off);
        assert_eq!(c.admin.listen, None);
        assert_eq!(c.limits.max_header_bytes, 8192);
        assert_eq!(c.limits.max_body_bytes, 1024);
        assert_eq!(c.limits.body_min_rate, 2048);
        assert_eq!(c.listeners[0].certificates[0].origin.line, 18);
        assert_eq!(c.upstreams[0].balance, Balance::LeastConn);
        let hc = c.upstreams[0].health_check.as_ref().unwrap();
        assert_eq!((hc.healthy_threshold, hc.unhealthy_threshold), (2, 1));
        assert_eq!(c.routes[0].host, HostMatch::Wildcard(".example.com".into()));
        assert_eq!(c.routes[0].name, "*.example.com/api");
    }
}
