//! Alerts: events that pass a sink's filter (kinds, severity, rule ids)
//! are batched per kind, deduplicated, and delivered to webhooks (generic
//! JSON or Slack-compatible) or syslog (RFC 5424 over UDP or TCP) with
//! bounded retries.
//!
//! ```text
//! event ─► filter ─► batch per kind (opens at the first event, closes
//!   after `batch`) ─► count ≥ threshold? ─► one alert with counts, top
//!   clients, rules, routes ─► kind muted for `dedup`: further events are
//!   only counted, and one follow-up alert carries their count when the
//!   mute ends ─► delivery queue (MAX_PENDING_ALERTS) ─► retries with
//!   exponential back-off (RETRY_BASE · 2ⁿ, at most MAX_RETRIES)
//! ```
//!
//! So an attack wave of thousands of blocked requests gives one alert
//! (plus at most one follow-up per dedup window while it lasts).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::config::{AlertConfig, SinkType};
use crate::events::{Event, Subscription};
use crate::metrics::MonitorMetrics;

/// Fixed 8: most delivery retries whatever the config says. Bounds the
/// time one alert can hold the delivery queue (1+2+…+128 s ≈ 4 min).
pub const MAX_RETRIES: u32 = 8;

/// Fixed 1s: first retry delay (doubled each retry, at most
/// [`MAX_RETRY_DELAY`]).
pub const RETRY_BASE: Duration = Duration::from_secs(1);

/// Fixed 60s: longest wait between retries.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);

/// Fixed 64: alerts waiting for delivery per sink; past it new alerts are
/// dropped (counted in `palisade_alerts_failed_total`). Bounds memory when
/// a receiver is down.
pub const MAX_PENDING_ALERTS: usize = 64;

/// Fixed 10: clients, rules and routes listed in an alert (most frequent
/// first); all are counted.
pub const TOP_N: usize = 10;

/// Fixed 10 000: distinct clients (and rules, routes) counted per batch;
/// past it they are summed under `other`. Bounds a batch's memory against
/// a distributed attack.
pub const MAX_BATCH_KEYS: usize = 10_000;

/// Fixed 10s: connect + send + first response line for one delivery.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Fixed 100ms: how often batch and dedup windows are checked.
const TICK: Duration = Duration::from_millis(100);

/// A parsed `http(s)://host[:port]/path` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// https.
    pub tls: bool,
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Path and query.
    pub target: String,
}

/// Parses a webhook URL (no user info, no fragment).
pub fn parse_url(url: &str) -> Result<Url, String> {
    let bad = |why: &str| format!("`{url}`: {why}");
    let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(bad("must start with http:// or https://"));
    };
    let (authority, target) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(bad("no host (or user info, which is not supported)"));
    }
    if target.bytes().any(|b| b <= b' ' || b == 0x7f || b == b'#') {
        return Err(bad("spaces, control characters or a fragment in the path"));
    }
    let default = if tls { 443 } else { 80 };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let end = v6.find(']').ok_or_else(|| bad("unclosed ["))?;
        let port = match &v6[end + 1..] {
            "" => default,
            p => p
                .strip_prefix(':')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| bad("bad port"))?,
        };
        (v6[..end].to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().map_err(|_| bad("bad port"))?),
            None => (authority.to_string(), default),
        }
    };
    if host.is_empty() || host.bytes().any(|b| b <= b' ' || b == b'/' || b == 0x7f) {
        return Err(bad("bad host"));
    }
    Ok(Url {
        tls,
        host,
        port,
        target: target.to_string(),
    })
}

/// Counts per key, capped at [`MAX_BATCH_KEYS`] keys.
#[derive(Debug, Default, Clone)]
struct Counts(HashMap<String, u64>);

impl Counts {
    fn add(&mut self, k: &str) {
        if let Some(n) = self.0.get_mut(k) {
            *n += 1;
        } else if self.0.len() < MAX_BATCH_KEYS {
            self.0.insert(k.to_string(), 1);
        } else {
            *self.0.entry("other".to_string()).or_default() += 1;
        }
    }

    fn top(&self) -> Vec<(String, u64)> {
        let mut v: Vec<_> = self.0.iter().map(|(k, n)| (k.clone(), *n)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v.truncate(TOP_N);
        v
    }
}

/// The events of one kind collected for one alert.
#[derive(Debug, Clone)]
struct Batch {
    kind: &'static str,
    count: u64,
    severity: u8,
    first_us: u64,
    last_us: u64,
    clients: Counts,
    rules: Counts,
    rule_msgs: HashMap<String, String>,
    routes: Counts,
    sample: Arc<Event>,
    opened: Instant,
}

impl Batch {
    fn new(e: &Arc<Event>, now: Instant) -> Batch {
        Batch {
            kind: e.kind.name(),
            count: 0,
            severity: 7,
            first_us: e.time_us,
            last_us: e.time_us,
            clients: Counts::default(),
            rules: Counts::default(),
            rule_msgs: HashMap::new(),
            routes: Counts::default(),
            sample: e.clone(),
            opened: now,
        }
    }

    fn add(&mut self, e: &Arc<Event>) {
        self.count += 1;
        self.severity = self.severity.min(e.kind.severity());
        self.first_us = self.first_us.min(e.time_us);
        self.last_us = self.last_us.max(e.time_us);
        if let Some(c) = e.client {
            self.clients.add(&c.to_string());
        }
        if let Some(r) = &e.route {
            self.routes.add(r);
        }
        for r in e.kind.rules() {
            let id = r.id.to_string();
            self.rules.add(&id);
            if self.rule_msgs.len() < TOP_N * 10 && !self.rule_msgs.contains_key(&id) {
                self.rule_msgs.insert(id, r.msg.clone());
            }
        }
    }
}

/// An alert ready to deliver.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// The sink's name.
    pub sink: String,
    /// Event kind.
    pub kind: String,
    /// Events in the batch.
    pub count: u64,
    /// Most severe event (syslog scale).
    pub severity: u8,
    /// First and last event time, unix microseconds.
    pub first_us: u64,
    /// Last event time.
    pub last_us: u64,
    /// Top clients with counts.
    pub clients: Vec<(String, u64)>,
    /// Top rule ids with counts.
    pub rules: Vec<(String, u64)>,
    /// Messages of the listed rules.
    pub rule_msgs: HashMap<String, String>,
    /// Top routes with counts.
    pub routes: Vec<(String, u64)>,
    /// One event of the batch, as JSON.
    pub sample: serde_json::Value,
    /// A follow-up: these events came while the kind was muted after an
    /// earlier alert.
    pub follow_up: bool,
}

impl Alert {
    fn from_batch(sink: &str, b: &Batch, follow_up: bool) -> Alert {
        Alert {
            sink: sink.to_string(),
            kind: b.kind.to_string(),
            count: b.count,
            severity: b.severity,
            first_us: b.first_us,
            last_us: b.last_us,
            clients: b.clients.top(),
            rules: b.rules.top(),
            rule_msgs: b
                .rules
                .top()
                .iter()
                .filter_map(|(id, _)| b.rule_msgs.get(id).map(|m| (id.clone(), m.clone())))
                .collect(),
            routes: b.routes.top(),
            sample: serde_json::to_value(&*b.sample).unwrap_or_default(),
            follow_up,
        }
    }

    /// One-line summary (Slack text, syslog MSG).
    pub fn summary(&self) -> String {
        let secs = (self.last_us.saturating_sub(self.first_us)) / 1_000_000;
        let mut s = format!(
            "palisade: {} {} event{} in {}s{}",
            self.count,
            self.kind,
            if self.count == 1 { "" } else { "s" },
            secs,
            if self.follow_up { " (continuing)" } else { "" }
        );
        if let Some((c, n)) = self.clients.first() {
            let _ = write!(s, "; top client {c} ×{n}");
        }
        if let Some((r, n)) = self.rules.first() {
            let _ = write!(s, "; top rule {r} ×{n}");
            if let Some(m) = self.rule_msgs.get(r) {
                let _ = write!(s, " ({m})");
            }
        }
        if let Some((r, n)) = self.routes.first() {
            let _ = write!(s, "; route {r} ×{n}");
        }
        s
    }

    /// The generic webhook document.
    pub fn to_json(&self) -> serde_json::Value {
        let list = |v: &[(String, u64)], key: &str| -> serde_json::Value {
            v.iter()
                .map(|(k, n)| json!({ key: k, "count": n }))
                .collect()
        };
        json!({
            "source": "palisade",
            "sink": self.sink,
            "kind": self.kind,
            "count": self.count,
            "severity": self.severity,
            "first_us": self.first_us,
            "last_us": self.last_us,
            "follow_up": self.follow_up,
            "summary": self.summary(),
            "clients": list(&self.clients, "client"),
            "rules": self.rules.iter().map(|(id, n)| json!({
                "id": id, "count": n, "msg": self.rule_msgs.get(id).cloned().unwrap_or_default()
            })).collect::<Vec<_>>(),
            "routes": list(&self.routes, "route"),
            "sample": self.sample,
        })
    }

    /// Slack's incoming-webhook document; `&`, `<`, `>` escaped as Slack
    /// requires (attacker data cannot make links or mentions).
    pub fn to_slack(&self) -> serde_json::Value {
        let text = self
            .summary()
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        json!({ "text": text })
    }

    /// An RFC 5424 syslog message (facility local0), with the counts as
    /// structured data.
    pub fn to_syslog(&self, hostname: &str) -> String {
        let pri = 16 * 8 + u32::from(self.severity.min(7));
        let ts = rfc3339_us(self.last_us);
        let host = header_field(hostname, 255);
        let msgid = header_field(&self.kind, 32);
        let mut sd = format!(
            "[palisade@32473 kind=\"{}\" count=\"{}\" follow_up=\"{}\"",
            sd_escape(&self.kind),
            self.count,
            self.follow_up
        );
        if let Some((c, n)) = self.clients.first() {
            let _ = write!(
                sd,
                " top_client=\"{}\" top_client_count=\"{n}\"",
                sd_escape(c)
            );
        }
        if let Some((r, n)) = self.rules.first() {
            let _ = write!(sd, " top_rule=\"{}\" top_rule_count=\"{n}\"", sd_escape(r));
        }
        if let Some((r, _)) = self.routes.first() {
            let _ = write!(sd, " route=\"{}\"", sd_escape(r));
        }
        sd.push(']');
        // MSG: the summary without line breaks (one message per datagram
        // or frame).
        let msg: String = self
            .summary()
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        format!("<{pri}>1 {ts} {host} palisade - {msgid} {sd} {msg}")
    }
}

/// Escapes an RFC 5424 SD-PARAM value: `"`, `\` and `]` get a backslash.
pub fn sd_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A syslog header field: printable US-ASCII only, at most `max` bytes,
/// `-` when empty.
fn header_field(s: &str, max: usize) -> String {
    let v: String = s
        .bytes()
        .filter(|b| (33..=126).contains(b))
        .take(max)
        .map(char::from)
        .collect();
    if v.is_empty() {
        "-".into()
    } else {
        v
    }
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
pub fn rfc3339_us(us: u64) -> String {
    let secs = (us / 1_000_000) as i64;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60,
        us % 1_000_000
    )
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "palisade".into())
}

/// Sends one HTTP/1.1 POST and reads the status line: `Ok` on 2xx.
async fn post<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    url: &Url,
    body: &[u8],
) -> Result<(), String> {
    let host = if url.host.contains(':') {
        format!("[{}]", url.host)
    } else {
        url.host.clone()
    };
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {host}:{}\r\nUser-Agent: palisade-alerts\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        url.target,
        url.port,
        body.len()
    );
    s.write_all(head.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    s.write_all(body).await.map_err(|e| e.to_string())?;
    s.flush().await.map_err(|e| e.to_string())?;
    // The status line is in the first bytes; 1 KiB is plenty.
    let mut buf = [0u8; 1024];
    let mut got = 0;
    while got < 12 {
        let n = s.read(&mut buf[got..]).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed before a response".into());
        }
        got += n;
    }
    let line = String::from_utf8_lossy(&buf[..got]);
    let code: u16 = line
        .strip_prefix("HTTP/1.")
        .and_then(|r| r.get(2..5))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| "not an HTTP response".to_string())?;
    if (200..300).contains(&code) {
        Ok(())
    } else {
        Err(format!("receiver answered {code}"))
    }
}

/// A delivery destination.
#[derive(Debug, Clone)]
enum Target {
    Http { url: Url, slack: bool },
    SyslogUdp(String),
    SyslogTcp(String),
}

async fn deliver_once(t: &Target, alert: &Alert, host: &str) -> Result<(), String> {
    match t {
        Target::Http { url, slack } => {
            let doc = if *slack {
                alert.to_slack()
            } else {
                alert.to_json()
            };
            let body = doc.to_string();
            let tcp = TcpStream::connect((url.host.as_str(), url.port))
                .await
                .map_err(|e| format!("connect {}:{}: {e}", url.host, url.port))?;
            let _ = tcp.set_nodelay(true);
            if url.tls {
                let mut roots = rustls::RootCertStore::empty();
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_no_client_auth();
                let name = rustls_pki_types::ServerName::try_from(url.host.clone())
                    .map_err(|e| e.to_string())?;
                let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS: {e}"))?;
                post(tls, url, body.as_bytes()).await
            } else {
                post(tcp, url, body.as_bytes()).await
            }
        }
        Target::SyslogUdp(addr) => {
            let to = tokio::net::lookup_host(addr.as_str())
                .await
                .map_err(|e| e.to_string())?
                .next()
                .ok_or("address does not resolve")?;
            let bind: std::net::SocketAddr = if to.is_ipv6() {
                "[::]:0".parse().map_err(|_| "bind")?
            } else {
                "0.0.0.0:0".parse().map_err(|_| "bind")?
            };
            let sock = UdpSocket::bind(bind).await.map_err(|e| e.to_string())?;
            // RFC 5426: one message per datagram; keep it under 2 KiB.
            let mut msg = alert.to_syslog(host);
            if msg.len() > 2048 {
                msg = crate::events::clip(&msg, 2048);
            }
            sock.send_to(msg.as_bytes(), to)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        Target::SyslogTcp(addr) => {
            let mut s = TcpStream::connect(addr.as_str())
                .await
                .map_err(|e| format!("connect {addr}: {e}"))?;
            let msg = alert.to_syslog(host);
            // RFC 6587 octet counting: "LEN SP MSG".
            let frame = format!("{} {msg}", msg.len());
            s.write_all(frame.as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            s.shutdown().await.map_err(|e| e.to_string())
        }
    }
}

/// One alert sink: filter, batches, dedup and its delivery task.
#[derive(Debug)]
pub struct Sink {
    cfg: AlertConfig,
    tx: mpsc::Sender<Alert>,
    pending: HashMap<&'static str, Batch>,
    muted: HashMap<&'static str, (Instant, Option<Batch>)>,
    metrics: Arc<MonitorMetrics>,
}

impl Sink {
    /// A sink; its delivery task is spawned on the current runtime.
    pub fn spawn(cfg: AlertConfig, metrics: Arc<MonitorMetrics>) -> Result<Sink, String> {
        let target = match cfg.kind {
            SinkType::Webhook | SinkType::Slack => Target::Http {
                url: parse_url(cfg.url.as_deref().unwrap_or(""))?,
                slack: cfg.kind == SinkType::Slack,
            },
            SinkType::SyslogUdp => Target::SyslogUdp(cfg.address.clone().unwrap_or_default()),
            SinkType::SyslogTcp => Target::SyslogTcp(cfg.address.clone().unwrap_or_default()),
        };
        let (tx, rx) = mpsc::channel(MAX_PENDING_ALERTS);
        let retries = cfg.retries.min(MAX_RETRIES);
        tokio::spawn(deliver_loop(
            rx,
            target,
            retries,
            cfg.name.clone(),
            metrics.clone(),
        ));
        Ok(Sink {
            cfg,
            tx,
            pending: HashMap::new(),
            muted: HashMap::new(),
            metrics,
        })
    }

    /// Whether the event passes the sink's filter.
    pub fn wants(&self, e: &Event) -> bool {
        let name = e.kind.name();
        if !self.cfg.kinds.iter().any(|k| k == name) || e.kind.severity() > self.cfg.min_severity {
            return false;
        }
        if self.cfg.rules.is_empty() {
            return true;
        }
        e.kind
            .rules()
            .iter()
            .any(|r| self.cfg.rules.contains(&r.id))
    }

    /// Adds an event (if wanted) to its kind's batch or, while the kind is
    /// muted, to the follow-up count.
    pub fn offer(&mut self, e: &Arc<Event>, now: Instant) {
        if !self.wants(e) {
            return;
        }
        let k = e.kind.name();
        if let Some((_, follow)) = self.muted.get_mut(k) {
            follow.get_or_insert_with(|| Batch::new(e, now)).add(e);
            return;
        }
        self.pending
            .entry(k)
            .or_insert_with(|| Batch::new(e, now))
            .add(e);
    }

    /// Closes batches whose window ended and ends mutes; returns the
    /// alerts to send (also queued for delivery).
    pub fn tick(&mut self, now: Instant) -> Vec<Alert> {
        let mut out = Vec::new();
        let batch = self.cfg.batch.0;
        let dedup = self.cfg.dedup.0;
        let done: Vec<&'static str> = self
            .pending
            .iter()
            .filter(|(_, b)| now.duration_since(b.opened) >= batch)
            .map(|(k, _)| *k)
            .collect();
        for k in done {
            if let Some(b) = self.pending.remove(k) {
                if b.count >= self.cfg.threshold {
                    out.push(Alert::from_batch(&self.cfg.name, &b, false));
                    self.muted.insert(k, (now + dedup, None));
                }
            }
        }
        let ended: Vec<&'static str> = self
            .muted
            .iter()
            .filter(|(_, (until, _))| now >= *until)
            .map(|(k, _)| *k)
            .collect();
        for k in ended {
            if let Some((_, follow)) = self.muted.remove(k) {
                if let Some(b) = follow.filter(|b| b.count >= self.cfg.threshold) {
                    out.push(Alert::from_batch(&self.cfg.name, &b, true));
                    self.muted.insert(k, (now + dedup, None));
                }
            }
        }
        for a in &out {
            if self.tx.try_send(a.clone()).is_err() {
                self.metrics.alerts_failed.fetch_add(1, Relaxed);
                tracing::warn!(sink = %self.cfg.name, "alert dropped: delivery queue full");
            }
        }
        out
    }
}

async fn deliver_loop(
    mut rx: mpsc::Receiver<Alert>,
    target: Target,
    retries: u32,
    name: String,
    metrics: Arc<MonitorMetrics>,
) {
    let host = hostname();
    while let Some(alert) = rx.recv().await {
        let mut attempt = 0u32;
        loop {
            let r = tokio::time::timeout(DELIVERY_TIMEOUT, deliver_once(&target, &alert, &host))
                .await
                .unwrap_or_else(|_| Err("timed out".into()));
            match r {
                Ok(()) => {
                    metrics.alerts_sent.fetch_add(1, Relaxed);
                    break;
                }
                Err(e) if attempt < retries => {
                    let delay = RETRY_BASE
                        .saturating_mul(1u32 << attempt.min(16))
                        .min(MAX_RETRY_DELAY);
                    tracing::warn!(sink = %name, error = %e, attempt, retry_in = ?delay, "alert delivery failed; retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(e) => {
                    metrics.alerts_failed.fetch_add(1, Relaxed);
                    tracing::error!(sink = %name, error = %e, "alert delivery failed; giving up");
                    break;
                }
            }
        }
    }
}

/// Runs every sink over `sub` until the bus closes.
pub async fn run(mut sinks: Vec<Sink>, mut sub: Subscription) {
    // Events are taken every TICK rather than one wake-up per event: an
    // attack wave costs the alert task ten wake-ups a second, and batches
    // and dedup windows are seconds long anyway.
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch = Vec::new();
    loop {
        tick.tick().await;
        let closed = sub.is_closed();
        let now = Instant::now();
        sub.drain_into(&mut batch, crate::events::BUS_CAPACITY);
        for e in batch.drain(..) {
            for s in &mut sinks {
                s.offer(&e, now);
            }
        }
        for s in &mut sinks {
            s.tick(now);
        }
        if closed {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Dur;
    use crate::events::{Kind, RuleHit};
    use tokio::net::TcpListener;

    fn block(client: &str, rule: u64) -> Arc<Event> {
        Arc::new(
            Event::new(Kind::WafBlock {
                method: "GET".into(),
                uri: "/?q=<script>".into(),
                status: 403,
                score: 5,
                rules: vec![RuleHit {
                    id: rule,
                    msg: "XSS <b>\"]".into(),
                    severity: 2,
                    category: "xss".into(),
                    data: String::new(),
                }],
            })
            .client(client.parse().unwrap())
            .route("app"),
        )
    }

    fn cfg(kind: SinkType, url: Option<String>, address: Option<String>) -> AlertConfig {
        AlertConfig {
            name: "t".into(),
            kind,
            url,
            address,
            kinds: vec!["waf_block".into(), "shield_ban".into()],
            min_severity: 5,
            rules: vec![],
            threshold: 1,
            batch: Dur(Duration::from_secs(10)),
            dedup: Dur(Duration::from_secs(300)),
            retries: 3,
        }
    }

    #[test]
    fn urls_parse() {
        let u = parse_url("https://hooks.slack.com/services/T/B/x?y=1").unwrap();
        assert_eq!(
            (u.tls, u.port, u.target.as_str()),
            (true, 443, "/services/T/B/x?y=1")
        );
        let u = parse_url("http://[::1]:8080").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.target.as_str()),
            ("::1", 8080, "/")
        );
        for bad in [
            "ftp://x",
            "http://",
            "http://u@h/",
            "http://h/a b",
            "http://h:x/",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_wave_gives_one_alert_then_one_follow_up_per_dedup_window() {
        let m = Arc::new(MonitorMetrics::default());
        let mut s = Sink::spawn(
            cfg(SinkType::Webhook, Some("http://127.0.0.1:9/".into()), None),
            m,
        )
        .unwrap();
        let t0 = Instant::now();
        for i in 0..1000 {
            s.offer(&block(&format!("10.0.0.{}", i % 3), 941100), t0);
        }
        assert!(
            s.tick(t0 + Duration::from_secs(5)).is_empty(),
            "batch still open"
        );
        let a = s.tick(t0 + Duration::from_secs(10));
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].count, 1000);
        assert_eq!(a[0].clients.len(), 3);
        assert_eq!(a[0].rules, vec![("941100".to_string(), 1000)]);
        // The wave goes on: muted, counted.
        for _ in 0..500 {
            s.offer(&block("10.0.0.1", 941100), t0 + Duration::from_secs(20));
        }
        assert!(s.tick(t0 + Duration::from_secs(100)).is_empty());
        let f = s.tick(t0 + Duration::from_secs(311));
        assert_eq!(f.len(), 1);
        assert!(f[0].follow_up);
        assert_eq!(f[0].count, 500);
        // Quiet afterwards: nothing more.
        assert!(s.tick(t0 + Duration::from_secs(700)).is_empty());
    }

    #[tokio::test]
    async fn filters_by_kind_severity_rule_and_threshold() {
        let m = Arc::new(MonitorMetrics::default());
        let mut c = cfg(SinkType::Webhook, Some("http://127.0.0.1:9/".into()), None);
        c.rules = vec![942100];
        c.threshold = 5;
        let mut s = Sink::spawn(c, m).unwrap();
        assert!(!s.wants(&block("10.0.0.1", 941100)), "other rule");
        assert!(s.wants(&block("10.0.0.1", 942100)));
        assert!(
            !s.wants(&Event::new(Kind::ChallengeSolved)),
            "kind not listed"
        );
        let t0 = Instant::now();
        for _ in 0..4 {
            s.offer(&block("10.0.0.1", 942100), t0);
        }
        assert!(
            s.tick(t0 + Duration::from_secs(11)).is_empty(),
            "under threshold"
        );
        for _ in 0..5 {
            s.offer(&block("10.0.0.1", 942100), t0 + Duration::from_secs(12));
        }
        assert_eq!(s.tick(t0 + Duration::from_secs(23)).len(), 1);
    }

    #[test]
    fn syslog_is_rfc5424_with_escaped_sd_params() {
        let b = {
            let e = block("10.0.0.1", 941100);
            let mut b = Batch::new(&e, Instant::now());
            b.add(&e);
            b.routes = Counts::default();
            b.routes.add("a\"]\\b");
            b
        };
        let a = Alert::from_batch("t", &b, false);
        let line = a.to_syslog("host name\n");
        assert!(line.starts_with("<130>1 "), "{line}");
        let parts: Vec<&str> = line.splitn(7, ' ').collect();
        assert_eq!(parts[2], "hostname");
        assert_eq!(parts[3], "palisade");
        assert_eq!(parts[5], "waf_block");
        assert!(line.contains("route=\"a\\\"\\]\\\\b\""), "{line}");
        assert!(!line.contains('\n'));
        assert_eq!(sd_escape("x\"]\\"), "x\\\"\\]\\\\");
        assert_eq!(
            rfc3339_us(1_700_000_000_000_001),
            "2023-11-14T22:13:20.000001Z"
        );
        // Slack text cannot carry markup or mentions.
        let s = a.to_slack()["text"].as_str().unwrap().to_string();
        assert!(s.contains("&lt;b&gt;") && !s.contains("<b>"), "{s}");
    }

    /// A loopback HTTP receiver: answers the first `fail` requests 500,
    /// then 200; returns the bodies it accepted.
    async fn receiver(fail: usize) -> (std::net::SocketAddr, mpsc::Receiver<String>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            let mut n = 0;
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let k = s.read(&mut chunk).await.unwrap();
                    if k == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..k]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some(i) = text.find("\r\n\r\n") {
                        let len: usize = text
                            .lines()
                            .find_map(|l| l.strip_prefix("Content-Length: "))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        if buf.len() >= i + 4 + len {
                            break;
                        }
                    }
                }
                n += 1;
                let ok = n > fail;
                let status = if ok {
                    "200 OK"
                } else {
                    "500 Internal Server Error"
                };
                let _ = s
                    .write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .await;
                if ok {
                    let text = String::from_utf8_lossy(&buf).to_string();
                    let body = text
                        .split_once("\r\n\r\n")
                        .map(|x| x.1.to_string())
                        .unwrap_or_default();
                    let _ = tx.send(body).await;
                }
            }
        });
        (addr, rx)
    }

    #[tokio::test]
    async fn webhook_delivery_retries_after_a_failure() {
        let (addr, mut rx) = receiver(1).await;
        let m = Arc::new(MonitorMetrics::default());
        let mut s = Sink::spawn(
            cfg(SinkType::Webhook, Some(format!("http://{addr}/hook")), None),
            m.clone(),
        )
        .unwrap();
        let t0 = Instant::now();
        s.offer(&block("10.0.0.1", 941100), t0);
        assert_eq!(s.tick(t0 + Duration::from_secs(10)).len(), 1);
        let body = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["kind"], "waf_block");
        assert_eq!(v["count"], 1);
        assert_eq!(v["rules"][0]["id"], "941100");
        assert_eq!(v["sample"]["uri"], "/?q=<script>");
        // Counted once the receiver's answer is read.
        for _ in 0..100 {
            if m.alerts_sent.load(Relaxed) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(m.alerts_sent.load(Relaxed), 1);
    }

    #[tokio::test]
    async fn slack_and_syslog_sinks_deliver_on_loopback() {
        let (addr, mut rx) = receiver(0).await;
        let m = Arc::new(MonitorMetrics::default());
        let mut slack = Sink::spawn(
            cfg(SinkType::Slack, Some(format!("http://{addr}/x")), None),
            m.clone(),
        )
        .unwrap();
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut sys_udp = Sink::spawn(
            cfg(
                SinkType::SyslogUdp,
                None,
                Some(udp.local_addr().unwrap().to_string()),
            ),
            m.clone(),
        )
        .unwrap();
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut sys_tcp = Sink::spawn(
            cfg(
                SinkType::SyslogTcp,
                None,
                Some(tcp.local_addr().unwrap().to_string()),
            ),
            m.clone(),
        )
        .unwrap();
        let t0 = Instant::now();
        for s in [&mut slack, &mut sys_udp, &mut sys_tcp] {
            s.offer(&block("10.0.0.1", 941100), t0);
            assert_eq!(s.tick(t0 + Duration::from_secs(10)).len(), 1);
        }
        let body = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(v["text"]
            .as_str()
            .unwrap()
            .starts_with("palisade: 1 waf_block event"));
        let mut buf = [0u8; 4096];
        let (n, _) = tokio::time::timeout(Duration::from_secs(10), udp.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        let msg = String::from_utf8_lossy(&buf[..n]).to_string();
        assert!(
            msg.starts_with("<130>1 ") && msg.contains("count=\"1\""),
            "{msg}"
        );
        let (mut c, _) = tokio::time::timeout(Duration::from_secs(10), tcp.accept())
            .await
            .unwrap()
            .unwrap();
        let mut framed = String::new();
        tokio::time::timeout(Duration::from_secs(10), c.read_to_string(&mut framed))
            .await
            .unwrap()
            .unwrap();
        let (len, rest) = framed.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), rest.len());
        assert!(rest.starts_with("<130>1 "));
    }
}
