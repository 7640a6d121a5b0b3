//! `scan tls`: what a TLS server accepts and how good that is.
//!
//! - Protocols SSL 3.0 to TLS 1.3 and every accepted cipher suite, in the
//!   server's preference order, with hand-built ClientHellos ([`wire`]):
//!   offer all remaining suites, note the one chosen, drop it, repeat.
//! - Key-exchange groups (incl. X25519MLKEM768) one at a time through
//!   HelloRetryRequest (TLS 1.3) or the ServerKeyExchange curve (TLS 1.2).
//! - The certificate chain from the clear-text TLS 1.2 Certificate message
//!   (or a rustls handshake for TLS 1.3-only servers) judged by [`x509`] and
//!   by webpki against Mozilla's roots (plus `--ca`); OCSP stapling, secure
//!   renegotiation, compression, and HSTS from one HTTPS GET.
//! - A grade by the SSL Labs rating guide with the reason of every cap, and
//!   the Mozilla intermediate/modern compliance differences ([`grade`]).
//!
//! The result, [`TlsReport`], carries [`Finding`]s (id, severity, evidence,
//! fix) that an audit report can merge with other scanners' findings.

pub mod grade;
pub mod suites;
pub mod wire;
pub mod x509;

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::Severity;
use wire::{Flight, Hello, Outcome, Protocol, Timeouts};

/// TCP connect timeout per handshake: default 3 s. Bounds a filtered port.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// From ClientHello to the end of the server's first flight: default 5 s.
/// Bounds a server that accepts and then never answers.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Whole HTTPS GET for HSTS (handshake, request, headers): default 5 s.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest HTTP response head read for HSTS: default 32 KiB; bounds a
/// server that streams an endless header block.
pub const MAX_HTTP_HEAD: usize = 32 * 1024;
/// Certificates expiring within this many days are reported: default 30.
pub const EXPIRY_WARNING_DAYS: i64 = 30;
/// Handshakes in flight at once: default 6 (one enumeration per protocol
/// plus group probes). Keeps the scan polite to the target.
pub const MAX_PARALLEL: usize = 6;

/// What to scan and how.
#[derive(Debug, Clone)]
pub struct Options {
    /// Host name as given (SNI and certificate name check; an IP literal
    /// sends no SNI and is matched against IP SANs).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Per-handshake timeouts.
    pub connect_timeout: Duration,
    /// See [`HANDSHAKE_TIMEOUT`].
    pub handshake_timeout: Duration,
    /// Client certificate chain and key (PEM) for servers that require one.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Extra trust anchors (PEM) besides Mozilla's roots.
    pub ca_file: Option<PathBuf>,
    /// Send one HTTPS GET / to read HSTS.
    pub http: bool,
}

impl Options {
    /// Defaults for `host:port`.
    pub fn new(host: &str, port: u16) -> Self {
        Options {
            host: host.to_string(),
            port,
            connect_timeout: CONNECT_TIMEOUT,
            handshake_timeout: HANDSHAKE_TIMEOUT,
            client_cert: None,
            ca_file: None,
            http: true,
        }
    }
}

/// Splits `HOST:PORT`, `[v6]:PORT` or `HOST` (port 443).
pub fn parse_target(s: &str) -> Result<(String, u16), crate::Error> {
    let bad = || {
        crate::Error::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("target {s:?}: expected HOST:PORT"),
        ))
    };
    if let Some(rest) = s.strip_prefix('[') {
        let (h, tail) = rest.split_once(']').ok_or_else(bad)?;
        let port = match tail.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| bad())?,
            None if tail.is_empty() => 443,
            None => return Err(bad()),
        };
        return Ok((h.to_string(), port));
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => {
            if h.is_empty() {
                return Err(bad());
            }
            Ok((h.to_string(), p.parse().map_err(|_| bad())?))
        }
        Some(_) => Ok((s.to_string(), 443)), // bare IPv6 literal
        None if !s.is_empty() => Ok((s.to_string(), 443)),
        None => Err(bad()),
    }
}

/// One accepted suite.
#[derive(Debug, Clone, Serialize)]
pub struct AcceptedSuite {
    /// Code point.
    pub id: u16,
    /// IANA name.
    pub name: String,
    /// Table entry (`None` for a code point the table does not know).
    pub info: Option<suites::SuiteInfo>,
    /// ECDHE curve / DHE size seen for this suite, e.g. `x25519`, `DH 2048`.
    pub kx_detail: Option<String>,
}

/// One protocol version.
#[derive(Debug, Clone, Serialize)]
pub struct ProtocolResult {
    /// Version.
    pub protocol: Protocol,
    /// Accepted.
    pub supported: bool,
    /// Accepted suites, server preference first.
    pub suites: Vec<AcceptedSuite>,
    /// Why the first hello was refused (alert name), when it was.
    pub refused: Option<String>,
    /// The server picks by its own order (`Some(false)`: it follows the
    /// client's, so `suites` is in the scanner's table order; `None`:
    /// fewer than two suites).
    pub server_order: Option<bool>,
}

/// One key-exchange group.
#[derive(Debug, Clone, Serialize)]
pub struct GroupResult {
    /// Code point.
    pub id: u16,
    /// Name (`X25519MLKEM768`, `x25519`, `ffdhe2048`).
    pub name: String,
    /// Accepted by the server.
    pub supported: bool,
}

/// The certificate chain as served.
#[derive(Debug, Clone, Serialize)]
pub struct CertReport {
    /// Certificates in the order the server sent them (leaf first).
    pub chain: Vec<x509::CertInfo>,
    /// The leaf's names match the scanned host.
    pub hostname_match: bool,
    /// webpki accepted the chain for this host now.
    pub trusted: bool,
    /// Why webpki did not (`UnknownIssuer`, `Expired`, `NotValidForName`...).
    pub trust_error: Option<String>,
    /// Each certificate is issued by the next one.
    pub chain_in_order: bool,
    /// The leaf is self-signed.
    pub self_signed: bool,
    /// Days until the leaf expires (negative: expired).
    pub days_left: i64,
}

/// The HTTPS GET answer.
#[derive(Debug, Clone, Serialize)]
pub struct HttpInfo {
    /// HTTP status code.
    pub status: u16,
    /// Strict-Transport-Security header value.
    pub hsts: Option<String>,
    /// Its max-age in seconds.
    pub hsts_max_age: Option<u64>,
}

/// A problem found, in the shape every palisade scanner reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable id (`tls.protocol.tls10`, `tls.cert.expired`...).
    pub id: String,
    /// Severity for `--fail-on`.
    pub severity: Severity,
    /// One-line title.
    pub title: String,
    /// What was seen.
    pub evidence: String,
    /// How to fix it.
    pub fix: String,
}

/// Everything `scan tls` learned.
#[derive(Debug, Clone, Serialize)]
pub struct TlsReport {
    /// `host:port` as given.
    pub target: String,
    /// Address scanned.
    pub addr: SocketAddr,
    /// SNI sent (none for an IP literal).
    pub sni: Option<String>,
    /// Per protocol, oldest first.
    pub protocols: Vec<ProtocolResult>,
    /// Key-exchange groups probed.
    pub groups: Vec<GroupResult>,
    /// Smallest DHE prime seen, bits.
    pub dh_bits: Option<u32>,
    /// Certificate chain, when one was obtained.
    pub certificate: Option<CertReport>,
    /// An OCSP response was stapled.
    pub ocsp_stapled: Option<bool>,
    /// RFC 5746 secure renegotiation (`None`: TLS 1.3 only, not applicable).
    pub secure_renegotiation: Option<bool>,
    /// The server accepted DEFLATE compression (CRIME).
    pub compression: Option<bool>,
    /// The server asks for a client certificate.
    pub client_cert_requested: bool,
    /// HTTPS GET / answer (`None`: not HTTP, or the request failed).
    pub http: Option<HttpInfo>,
    /// Why the HTTPS GET gave nothing, when it did.
    pub http_error: Option<String>,
    /// SSL Labs style grade.
    pub grade: grade::Grade,
    /// Mozilla server-side TLS profiles.
    pub mozilla: Vec<grade::Compliance>,
    /// Findings, most severe first.
    pub findings: Vec<Finding>,
    /// Handshakes made.
    pub handshakes: u32,
    /// Wall time.
    pub elapsed_ms: u64,
}

impl TlsReport {
    /// Suites accepted for `p`.
    pub fn suites(&self, p: Protocol) -> &[AcceptedSuite] {
        self.protocols
            .iter()
            .find(|r| r.protocol == p)
            .map(|r| r.suites.as_slice())
            .unwrap_or(&[])
    }

    /// Protocols accepted.
    pub fn supported(&self) -> Vec<Protocol> {
        self.protocols
            .iter()
            .filter(|r| r.supported)
            .map(|r| r.protocol)
            .collect()
    }
}

struct Ctx {
    addr: SocketAddr,
    sni: Option<String>,
    t: Timeouts,
    handshakes: std::sync::atomic::AtomicU32,
    gate: tokio::sync::Semaphore,
}

impl Ctx {
    async fn probe(&self, h: &Hello<'_>, full: bool) -> io::Result<Outcome> {
        let bytes = wire::encode(h);
        let _permit = self
            .gate
            .acquire()
            .await
            .map_err(|e| io::Error::other(e.to_string()))?;
        self.handshakes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        wire::probe(self.addr, &bytes, full, self.t).await
    }
}

/// Resolves the target (first address).
pub async fn resolve(host: &str, port: u16) -> Result<SocketAddr, crate::Error> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let mut addrs = tokio::net::lookup_host((host, port))
        .await
        .map_err(|_| crate::Error::Resolve(host.to_string()))?;
    addrs
        .next()
        .ok_or_else(|| crate::Error::Resolve(host.to_string()))
}

/// Scans `addr` (resolved from `opts.host`). An error means the target is
/// not a TLS server the scanner could talk to (refused, hung, garbage);
/// everything else is in the report.
pub async fn scan(addr: SocketAddr, opts: &Options) -> Result<TlsReport, crate::Error> {
    let started = Instant::now();
    let sni = opts
        .host
        .parse::<IpAddr>()
        .is_err()
        .then(|| opts.host.clone());
    let ctx = Arc::new(Ctx {
        addr,
        sni: sni.clone(),
        t: Timeouts {
            connect: opts.connect_timeout,
            handshake: opts.handshake_timeout,
        },
        handshakes: std::sync::atomic::AtomicU32::new(0),
        gate: tokio::sync::Semaphore::new(MAX_PARALLEL),
    });

    // A first probe tells a dead, hung or non-TLS port apart from a TLS
    // server quickly, before dozens of handshakes each wait for a timeout.
    {
        let all = suites::legacy_ids();
        let h = Hello::new(Protocol::Tls12, &all, ctx.sni.as_deref());
        ctx.probe(&h, false).await.map_err(crate::Error::Io)?;
    }

    let mut set = tokio::task::JoinSet::new();
    for p in Protocol::ALL {
        let c = ctx.clone();
        set.spawn(async move { (p, enumerate(&c, p).await) });
    }
    let mut protocols = Vec::new();
    let mut first_err: Option<io::Error> = None;
    while let Some(r) = set.join_next().await {
        let Ok((p, r)) = r else { continue };
        match r {
            Ok(pr) => protocols.push(pr),
            Err(e) => {
                protocols.push(ProtocolResult {
                    protocol: p,
                    supported: false,
                    suites: Vec::new(),
                    refused: Some(e.to_string()),
                    server_order: None,
                });
                first_err.get_or_insert(e);
            }
        }
    }
    protocols.sort_by_key(|p| p.protocol);
    if !protocols.iter().any(|p| p.supported) {
        if let Some(e) = first_err {
            return Err(crate::Error::Io(e));
        }
        let why = protocols
            .iter()
            .filter_map(|p| p.refused.clone())
            .next()
            .unwrap_or_default();
        return Err(crate::Error::Io(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{addr} accepted no SSL/TLS protocol version ({why})"),
        )));
    }

    let groups = probe_groups(&ctx, &protocols).await;
    let detail = details(&ctx, &mut protocols).await;

    let mut report = TlsReport {
        target: format!("{}:{}", opts.host, opts.port),
        addr,
        sni,
        protocols,
        groups,
        dh_bits: detail.dh_bits,
        certificate: None,
        ocsp_stapled: detail.ocsp,
        secure_renegotiation: detail.reneg,
        compression: detail.compression,
        client_cert_requested: detail.cert_request,
        http: None,
        http_error: None,
        grade: grade::Grade::default(),
        mozilla: Vec::new(),
        findings: Vec::new(),
        handshakes: 0,
        elapsed_ms: 0,
    };

    // rustls: chain for TLS 1.3-only servers, trust, and the HSTS GET.
    let supports_modern = report.supported().iter().any(|p| *p >= Protocol::Tls12);
    let mut chain = detail.certs;
    let mut ocsp = detail.ocsp_bytes;
    if !opts.http {
        report.http_error = Some("not checked (--no-http)".into());
    }
    if supports_modern && (opts.http || chain.is_empty()) {
        let o = opts.clone();
        let name = opts.host.clone();
        let res = tokio::task::spawn_blocking(move || https_get(addr, &name, &o))
            .await
            .map_err(|e| crate::Error::Io(io::Error::other(e.to_string())))?;
        if chain.is_empty() && !res.chain.is_empty() {
            chain = res.chain;
            // rustls asks for a staple (status_request) in every hello.
            report.ocsp_stapled = Some(res.ocsp.is_some());
        }
        if ocsp.is_none() && res.ocsp.is_some() {
            ocsp = res.ocsp;
            report.ocsp_stapled = Some(true);
        }
        match res.http {
            Ok(h) => report.http = h,
            Err(e) => report.http_error = Some(e),
        }
    }
    if !chain.is_empty() {
        report.certificate = Some(judge_chain(
            &chain,
            &opts.host,
            opts.ca_file.as_ref(),
            ocsp.as_deref(),
        )?);
    }

    report.grade = grade::grade(&report);
    report.mozilla = grade::mozilla(&report);
    report.findings = findings(&report);
    report.handshakes = ctx.handshakes.load(std::sync::atomic::Ordering::Relaxed);
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// Offers all remaining suites until the server refuses: the order in
/// which they are chosen is the server's preference (or, for a server
/// that follows the client, the table order).
async fn enumerate(ctx: &Ctx, p: Protocol) -> io::Result<ProtocolResult> {
    let mut remaining = if p == Protocol::Tls13 {
        suites::tls13_ids()
    } else {
        suites::legacy_ids()
    };
    let mut out = ProtocolResult {
        protocol: p,
        supported: false,
        suites: Vec::new(),
        refused: None,
        server_order: None,
    };
    // Bounded: every round removes one suite from `remaining`.
    while !remaining.is_empty() {
        let h = Hello::new(p, &remaining, ctx.sni.as_deref());
        match ctx.probe(&h, false).await? {
            Outcome::Accepted(f) if f.version == p.wire() => {
                let Some(pos) = remaining.iter().position(|s| *s == f.suite) else {
                    // A suite we did not offer: a broken server; stop here.
                    break;
                };
                remaining.remove(pos);
                out.supported = true;
                out.suites.push(AcceptedSuite {
                    id: f.suite,
                    name: suites::lookup(f.suite)
                        .map(|s| s.name.to_string())
                        .unwrap_or_else(|| suites::unknown_name(f.suite)),
                    info: suites::lookup(f.suite),
                    kx_detail: f.group.map(wire::group_name),
                });
            }
            Outcome::Accepted(f) => {
                if out.suites.is_empty() {
                    out.refused = Some(format!("server answered with version 0x{:04x}", f.version));
                }
                break;
            }
            Outcome::Rejected(why) => {
                if out.suites.is_empty() {
                    out.refused = Some(why);
                }
                break;
            }
        }
    }
    // Offer the accepted suites reversed: a server that keeps choosing its
    // favourite enforces its own order.
    if out.suites.len() >= 2 {
        let reversed: Vec<u16> = out.suites.iter().rev().map(|s| s.id).collect();
        let h = Hello::new(p, &reversed, ctx.sni.as_deref());
        if let Outcome::Accepted(f) = ctx.probe(&h, false).await? {
            out.server_order = Some(f.suite == out.suites[0].id);
        }
    }
    Ok(out)
}

async fn probe_groups(ctx: &Arc<Ctx>, protocols: &[ProtocolResult]) -> Vec<GroupResult> {
    let tls13 = protocols
        .iter()
        .find(|p| p.protocol == Protocol::Tls13 && p.supported);
    let tls12_ecdhe: Vec<u16> = protocols
        .iter()
        .filter(|p| p.protocol == Protocol::Tls12)
        .flat_map(|p| p.suites.iter())
        .filter(|s| s.info.as_ref().is_some_and(|i| i.kx == "ECDHE"))
        .map(|s| s.id)
        .collect();
    let mut set = tokio::task::JoinSet::new();
    for &(id, name) in wire::GROUPS {
        let c = ctx.clone();
        let t13: Option<Vec<u16>> = tls13.map(|p| p.suites.iter().map(|s| s.id).collect());
        let ecdhe = tls12_ecdhe.clone();
        set.spawn(async move {
            let groups = [id];
            let ok = if let Some(s13) = t13 {
                // Empty key share: the server must name the group in a
                // HelloRetryRequest, so no real key is needed for any group.
                let mut h = Hello::new(Protocol::Tls13, &s13, c.sni.as_deref());
                h.groups = Some(&groups);
                h.key_share = false;
                matches!(c.probe(&h, false).await, Ok(Outcome::Accepted(f)) if f.version == 0x0304)
            } else if !ecdhe.is_empty() && (id >> 8) == 0 {
                let mut h = Hello::new(Protocol::Tls12, &ecdhe, c.sni.as_deref());
                h.groups = Some(&groups);
                matches!(c.probe(&h, true).await, Ok(Outcome::Accepted(f)) if f.ske_group == Some(id))
            } else {
                false
            };
            GroupResult {
                id,
                name: name.to_string(),
                supported: ok,
            }
        });
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        if let Ok(g) = r {
            out.push(g);
        }
    }
    out.sort_by_key(|g| wire::GROUPS.iter().position(|(i, _)| *i == g.id));
    out
}

#[derive(Default)]
struct Detail {
    certs: Vec<Vec<u8>>,
    ocsp_bytes: Option<Vec<u8>>,
    ocsp: Option<bool>,
    reneg: Option<bool>,
    compression: Option<bool>,
    dh_bits: Option<u32>,
    cert_request: bool,
}

/// Full clear-text flights: certificate chain, staple, renegotiation_info,
/// compression, DH size, client-certificate request, and the curve or DH
/// size each key-exchange suite uses.
async fn details(ctx: &Ctx, protocols: &mut [ProtocolResult]) -> Detail {
    let mut d = Detail::default();
    let legacy = protocols
        .iter()
        .filter(|p| p.supported && p.protocol < Protocol::Tls13)
        .max_by_key(|p| p.protocol)
        .map(|p| {
            (
                p.protocol,
                p.suites.iter().map(|s| s.id).collect::<Vec<u16>>(),
            )
        });
    let Some((p, ids)) = legacy else {
        return d;
    };
    let mut h = Hello::new(p, &ids, ctx.sni.as_deref());
    h.status_request = true;
    if let Ok(Outcome::Accepted(f)) = ctx.probe(&h, true).await {
        d.certs = f.certs.clone();
        d.ocsp = Some(f.ocsp.is_some());
        d.ocsp_bytes = f.ocsp.clone();
        d.reneg = Some(f.renegotiation_info);
        d.cert_request = f.cert_request;
    }
    let mut h = Hello::new(p, &ids, ctx.sni.as_deref());
    h.deflate = true;
    if let Ok(Outcome::Accepted(f)) = ctx.probe(&h, false).await {
        d.compression = Some(f.compression != 0);
    }
    // The curve or DH size of each forward-secret suite (one handshake each).
    for pr in protocols.iter_mut().filter(|x| x.protocol == p) {
        for s in pr.suites.iter_mut() {
            let kx = s.info.as_ref().map(|i| i.kx).unwrap_or("");
            if kx != "ECDHE" && kx != "DHE" {
                continue;
            }
            let one = [s.id];
            let h = Hello::new(p, &one, ctx.sni.as_deref());
            if let Ok(Outcome::Accepted(f)) = ctx.probe(&h, true).await {
                apply_kx(s, &f, &mut d);
            }
        }
    }
    // Copy the detail to the same suites in older protocols.
    let known: Vec<(u16, Option<String>)> = protocols
        .iter()
        .filter(|x| x.protocol == p)
        .flat_map(|x| x.suites.iter().map(|s| (s.id, s.kx_detail.clone())))
        .collect();
    for pr in protocols.iter_mut().filter(|x| x.protocol < p) {
        for s in pr.suites.iter_mut() {
            if let Some((_, k)) = known.iter().find(|(i, _)| *i == s.id) {
                s.kx_detail = k.clone();
            }
        }
    }
    d
}

fn apply_kx(s: &mut AcceptedSuite, f: &Flight, d: &mut Detail) {
    if let Some(g) = f.ske_group {
        s.kx_detail = Some(wire::group_name(g));
    }
    if let Some(b) = f.dh_bits {
        s.kx_detail = Some(format!("DH {b}"));
        d.dh_bits = Some(d.dh_bits.map_or(b, |x| x.min(b)));
    }
}

struct HttpsResult {
    chain: Vec<Vec<u8>>,
    ocsp: Option<Vec<u8>>,
    http: Result<Option<HttpInfo>, String>,
}

/// Records what the server presents and accepts it: the scanner judges the
/// chain itself ([`judge_chain`]); rejecting here would hide everything else.
#[derive(Debug)]
struct Recorder {
    seen: Mutex<(Vec<Vec<u8>>, Vec<u8>)>,
    algs: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl rustls::client::danger::ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if let Ok(mut g) = self.seen.lock() {
            g.0 = std::iter::once(end_entity.to_vec())
                .chain(intermediates.iter().map(|c| c.to_vec()))
                .collect();
            g.1 = ocsp.to_vec();
        }
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algs.supported_schemes()
    }
}

fn server_name(host: &str) -> Result<rustls::pki_types::ServerName<'static>, String> {
    rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| e.to_string())
}

fn load_client_auth(
    cert: &PathBuf,
    key: &PathBuf,
) -> Result<
    (
        Vec<rustls::pki_types::CertificateDer<'static>>,
        rustls::pki_types::PrivateKeyDer<'static>,
    ),
    String,
> {
    use rustls::pki_types::pem::PemObject;
    let certs: Vec<_> = rustls::pki_types::CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("--client-cert {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("--client-cert {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("--client-cert {}: no certificate", cert.display()));
    }
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("--client-key {}: {e}", key.display()))?;
    Ok((certs, key))
}

/// Checks the client certificate and key files before any connection, so
/// a typo is an error rather than a confusing scan result.
pub fn check_client_auth(cert: &PathBuf, key: &PathBuf) -> Result<(), crate::Error> {
    load_client_auth(cert, key)
        .map(|_| ())
        .map_err(|e| crate::Error::Io(io::Error::new(io::ErrorKind::InvalidInput, e)))
}

/// A normal rustls handshake (with the client certificate, if any), then
/// `GET /` to read Strict-Transport-Security. Blocking, bounded by
/// [`HTTP_TIMEOUT`] on every socket operation.
fn https_get(addr: SocketAddr, host: &str, o: &Options) -> HttpsResult {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let rec = Arc::new(Recorder {
        seen: Mutex::new((Vec::new(), Vec::new())),
        algs: provider.signature_verification_algorithms,
    });
    let mut out = HttpsResult {
        chain: Vec::new(),
        ocsp: None,
        http: Ok(None),
    };
    let res = (|| -> Result<Option<HttpInfo>, String> {
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(rec.clone());
        let cfg = match &o.client_cert {
            Some((c, k)) => {
                let (certs, key) = load_client_auth(c, k)?;
                builder
                    .with_client_auth_cert(certs, key)
                    .map_err(|e| format!("client certificate: {e}"))?
            }
            None => builder.with_no_client_auth(),
        };
        let mut cfg = cfg;
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        let name = server_name(host)?;
        let conn = rustls::ClientConnection::new(Arc::new(cfg), name).map_err(|e| e.to_string())?;
        let sock = std::net::TcpStream::connect_timeout(&addr, o.connect_timeout)
            .map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(HTTP_TIMEOUT))
            .map_err(|e| e.to_string())?;
        sock.set_write_timeout(Some(HTTP_TIMEOUT))
            .map_err(|e| e.to_string())?;
        let deadline = Instant::now() + HTTP_TIMEOUT;
        let mut tls = rustls::StreamOwned::new(conn, sock);
        if !o.http {
            // Only the chain is wanted (TLS 1.3-only server): finish the
            // handshake, send nothing.
            while tls.conn.is_handshaking() {
                if Instant::now() > deadline {
                    return Err(format!(
                        "TLS handshake longer than {} ms",
                        HTTP_TIMEOUT.as_millis()
                    ));
                }
                tls.conn
                    .complete_io(&mut tls.sock)
                    .map_err(|e| format!("TLS handshake: {e}"))?;
            }
            return Err("not checked (--no-http)".into());
        }
        let req = format!("GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: palisade-scan\r\nConnection: close\r\n\r\n");
        tls.write_all(req.as_bytes())
            .map_err(|e| format!("TLS handshake or request: {e}"))?;
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            if head.len() > MAX_HTTP_HEAD {
                return Err(format!(
                    "HTTP response head larger than {MAX_HTTP_HEAD} bytes"
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no HTTP answer within {} ms",
                    HTTP_TIMEOUT.as_millis()
                ));
            }
            match tls.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
                Err(e) if head.is_empty() => return Err(format!("TLS/HTTP: {e}")),
                Err(_) => break,
            }
        }
        Ok(parse_http_head(&head))
    })();
    if let Ok(g) = rec.seen.lock() {
        out.chain = g.0.clone();
        out.ocsp = (!g.1.is_empty()).then(|| g.1.clone());
    }
    out.http = res;
    out
}

/// Status and HSTS from a response head; `None` when it is not HTTP.
pub fn parse_http_head(head: &[u8]) -> Option<HttpInfo> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let status_line = lines.next()?;
    if !status_line.starts_with("HTTP/") {
        return None;
    }
    let status = status_line.split(' ').nth(1)?.parse().ok()?;
    let mut info = HttpInfo {
        status,
        hsts: None,
        hsts_max_age: None,
    };
    for l in lines {
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.trim().eq_ignore_ascii_case("strict-transport-security") {
                let v = v.trim().to_string();
                info.hsts_max_age = v.split(';').find_map(|d| {
                    let (k, v) = d.trim().split_once('=')?;
                    k.trim()
                        .eq_ignore_ascii_case("max-age")
                        .then(|| v.trim().trim_matches('"').parse().ok())?
                });
                info.hsts = Some(v);
            }
        }
    }
    Some(info)
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Parses and judges the chain; webpki decides trust against Mozilla's
/// roots plus `ca_file`.
fn judge_chain(
    chain: &[Vec<u8>],
    host: &str,
    ca_file: Option<&PathBuf>,
    ocsp: Option<&[u8]>,
) -> Result<CertReport, crate::Error> {
    let infos: Vec<x509::CertInfo> = chain.iter().filter_map(|c| x509::parse(c)).collect();
    let leaf = infos.first().cloned().unwrap_or_default();
    let now = now_unix();
    let chain_in_order = infos
        .windows(2)
        .all(|w| w[0].issuer_der == w[1].subject_der);
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        use rustls::pki_types::pem::PemObject;
        let it = rustls::pki_types::CertificateDer::pem_file_iter(path).map_err(|e| {
            crate::Error::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("--ca {}: {e}", path.display()),
            ))
        })?;
        for c in it.flatten() {
            let _ = roots.add(c);
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let (trusted, trust_error) = match rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        provider,
    )
    .build()
    {
        Ok(v) => {
            use rustls::client::danger::ServerCertVerifier;
            let ee = rustls::pki_types::CertificateDer::from(chain[0].clone());
            let rest: Vec<_> = chain[1..]
                .iter()
                .map(|c| rustls::pki_types::CertificateDer::from(c.clone()))
                .collect();
            match server_name(host) {
                Ok(name) => match v.verify_server_cert(
                    &ee,
                    &rest,
                    &name,
                    ocsp.unwrap_or(&[]),
                    rustls::pki_types::UnixTime::now(),
                ) {
                    Ok(_) => (true, None),
                    Err(e) => (false, Some(trust_reason(&e))),
                },
                Err(e) => (false, Some(e)),
            }
        }
        Err(e) => (false, Some(e.to_string())),
    };
    Ok(CertReport {
        hostname_match: x509::matches_host(&leaf, host),
        self_signed: leaf.self_issued,
        days_left: (leaf.not_after - now).div_euclid(86400),
        chain: infos,
        trusted,
        trust_error,
        chain_in_order,
    })
}

/// webpki's verdict in words an operator acts on.
fn trust_reason(e: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    let rustls::Error::InvalidCertificate(c) = e else {
        return e.to_string();
    };
    match c {
        C::UnknownIssuer => "UnknownIssuer: not issued by a trusted CA".into(),
        C::Expired | C::ExpiredContext { .. } => "Expired: the certificate has expired".into(),
        C::NotValidYet | C::NotValidYetContext { .. } => "NotValidYet: the certificate is not valid yet".into(),
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            "NotValidForName: the certificate does not cover this host name".into()
        }
        C::BadSignature => "BadSignature: a signature in the chain does not verify".into(),
        C::Revoked => "Revoked".into(),
        C::Other(o) if o.to_string().contains("CaUsedAsEndEntity") => {
            "CaUsedAsEndEntity: a CA certificate (basicConstraints CA:TRUE) is served as the server certificate".into()
        }
        other => format!("{other:?}"),
    }
}

fn f(id: &str, severity: Severity, title: &str, evidence: String, fix: &str) -> Finding {
    Finding {
        id: id.to_string(),
        severity,
        title: title.to_string(),
        evidence,
        fix: fix.to_string(),
    }
}

/// The findings of a report, most severe first.
pub fn findings(r: &TlsReport) -> Vec<Finding> {
    use Severity::*;
    let mut out = Vec::new();
    let sup = r.supported();
    let names = |p: Protocol| -> String {
        r.suites(p)
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (p, id, sev) in [
        (Protocol::Ssl3, "tls.protocol.sslv3", Critical),
        (Protocol::Tls10, "tls.protocol.tls10", Medium),
        (Protocol::Tls11, "tls.protocol.tls11", Medium),
    ] {
        if sup.contains(&p) {
            out.push(f(
                id,
                sev,
                &format!("{p} is enabled"),
                format!("{p} accepted with {}", names(p)),
                "Allow only TLS 1.2 and TLS 1.3 (nginx: ssl_protocols TLSv1.2 TLSv1.3;).",
            ));
        }
    }
    if !sup.contains(&Protocol::Tls13) {
        out.push(f(
            "tls.protocol.no-tls13",
            Low,
            "TLS 1.3 is not supported",
            format!(
                "accepted: {}",
                sup.iter().map(|p| p.name()).collect::<Vec<_>>().join(", ")
            ),
            "Enable TLS 1.3.",
        ));
    }
    let mut insecure = Vec::new();
    let mut weak = Vec::new();
    for pr in &r.protocols {
        for s in &pr.suites {
            match s.info.as_ref().map(|i| i.strength) {
                Some(suites::Strength::Insecure) => {
                    insecure.push(format!("{} {}", pr.protocol, s.name))
                }
                Some(suites::Strength::Weak) => weak.push(format!("{} {}", pr.protocol, s.name)),
                _ => {}
            }
        }
    }
    if !insecure.is_empty() {
        out.push(f(
            "tls.cipher.insecure",
            High,
            "Insecure cipher suites accepted (NULL, EXPORT, RC4, DES, 3DES or anonymous)",
            insecure.join("; "),
            "Remove these suites; offer only ECDHE/DHE with AES-GCM or ChaCha20-Poly1305.",
        ));
    }
    if !weak.is_empty() {
        out.push(f(
            "tls.cipher.weak",
            Low,
            "Weak cipher suites accepted (CBC or no forward secrecy)",
            weak.join("; "),
            "Prefer ECDHE with AEAD ciphers (Mozilla intermediate list).",
        ));
    }
    let any_fs = r
        .protocols
        .iter()
        .flat_map(|p| p.suites.iter())
        .any(|s| s.info.as_ref().is_some_and(|i| i.forward_secret));
    if !any_fs {
        out.push(f(
            "tls.kx.no-forward-secrecy",
            Medium,
            "No forward-secret key exchange",
            "no ECDHE/DHE suite accepted".into(),
            "Enable ECDHE suites.",
        ));
    }
    if let Some(b) = r.dh_bits.filter(|b| *b < 2048) {
        out.push(f(
            "tls.kx.weak-dh",
            if b < 1024 { High } else { Medium },
            "Weak Diffie-Hellman parameters",
            format!("DHE prime of {b} bits"),
            "Use 2048-bit (ffdhe2048) or larger DH parameters, or drop DHE.",
        ));
    }
    if r.compression == Some(true) {
        out.push(f(
            "tls.compression",
            High,
            "TLS compression enabled (CRIME)",
            "server accepted DEFLATE".into(),
            "Disable TLS compression.",
        ));
    }
    if r.secure_renegotiation == Some(false) {
        out.push(f(
            "tls.renegotiation.insecure",
            Medium,
            "Secure renegotiation (RFC 5746) not supported",
            "no renegotiation_info in ServerHello".into(),
            "Upgrade the TLS library.",
        ));
    }
    if let Some(c) = &r.certificate {
        let leaf = c.chain.first();
        if c.days_left < 0 {
            out.push(f(
                "tls.cert.expired",
                High,
                "Certificate expired",
                format!("notAfter was {} days ago", -c.days_left),
                "Renew the certificate.",
            ));
        } else if c.days_left < EXPIRY_WARNING_DAYS {
            out.push(f(
                "tls.cert.expires-soon",
                Medium,
                "Certificate expires soon",
                format!("{} days left", c.days_left),
                "Renew the certificate (automate with ACME).",
            ));
        }
        if leaf.is_some_and(|l| l.not_before > now_unix()) {
            out.push(f(
                "tls.cert.not-yet-valid",
                High,
                "Certificate not yet valid",
                "notBefore is in the future".into(),
                "Check the server clock and the certificate.",
            ));
        }
        if !c.hostname_match {
            out.push(f(
                "tls.cert.hostname-mismatch",
                High,
                "Certificate does not match the host name",
                format!(
                    "SAN {:?}, CN {:?}",
                    leaf.map(|l| l.san.clone()).unwrap_or_default(),
                    leaf.and_then(|l| l.common_name.clone())
                ),
                "Serve a certificate whose subjectAltName covers this name.",
            ));
        }
        if c.self_signed {
            out.push(f(
                "tls.cert.self-signed",
                High,
                "Self-signed certificate",
                leaf.map(|l| l.subject.clone()).unwrap_or_default(),
                "Use a certificate from a trusted CA.",
            ));
        }
        if !c.trusted {
            out.push(f(
                "tls.cert.untrusted",
                High,
                "Certificate chain not trusted",
                c.trust_error.clone().unwrap_or_default(),
                "Serve the full chain from a publicly trusted CA (or pass --ca for a private CA).",
            ));
        }
        if !c.chain_in_order {
            out.push(f(
                "tls.cert.chain-order",
                Low,
                "Certificate chain out of order",
                "a certificate is not issued by the next one".into(),
                "Serve leaf first, then each issuer in order.",
            ));
        }
        if let Some(l) = leaf {
            let weak_key = match l.key_type.as_str() {
                "RSA" | "DSA" => l.key_bits < 2048,
                "EC" => l.key_bits < 256,
                _ => false,
            };
            if weak_key {
                out.push(f(
                    "tls.cert.weak-key",
                    High,
                    "Weak certificate key",
                    format!("{} {} bits", l.key_type, l.key_bits),
                    "Use RSA 2048+ or ECDSA P-256.",
                ));
            }
            let sig = l.signature_algorithm.to_ascii_lowercase();
            if !c.self_signed && (sig.contains("sha1") || sig.contains("md5")) {
                out.push(f(
                    "tls.cert.weak-signature",
                    High,
                    "Certificate signed with SHA-1 or MD5",
                    l.signature_algorithm.clone(),
                    "Reissue with SHA-256.",
                ));
            }
        }
    }
    if r.ocsp_stapled == Some(false) {
        out.push(f(
            "tls.ocsp.not-stapled",
            Info,
            "No OCSP staple",
            "no CertificateStatus in reply to status_request".into(),
            "Enable OCSP stapling (nginx: ssl_stapling on;).",
        ));
    }
    match &r.http {
        Some(h) if h.hsts.is_none() => out.push(f(
            "tls.hsts.missing",
            Low,
            "No Strict-Transport-Security header",
            format!("GET / answered {} without HSTS", h.status),
            "Send Strict-Transport-Security: max-age=63072000.",
        )),
        Some(h) if h.hsts_max_age.unwrap_or(0) < grade::HSTS_MIN_AGE => out.push(f(
            "tls.hsts.short",
            Low,
            "HSTS max-age shorter than 180 days",
            h.hsts.clone().unwrap_or_default(),
            "Use max-age=63072000 (two years).",
        )),
        _ => {}
    }
    if r.client_cert_requested {
        out.push(f(
            "tls.client-cert.requested",
            Info,
            "Server requests a client certificate",
            "CertificateRequest in the TLS 1.2 flight".into(),
            "Pass --client-cert/--client-key to scan the application behind it.",
        ));
    }
    for c in &r.grade.caps {
        out.push(f(
            "tls.grade.cap",
            Info,
            &format!("Grade capped at {}", c.max),
            c.reason.clone(),
            "See the related finding.",
        ));
    }
    out.sort_by_key(|f| std::cmp::Reverse(f.severity));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            parse_target("a.example:8443").unwrap(),
            ("a.example".into(), 8443)
        );
        assert_eq!(
            parse_target("a.example").unwrap(),
            ("a.example".into(), 443)
        );
        assert_eq!(parse_target("[::1]:443").unwrap(), ("::1".into(), 443));
        assert_eq!(parse_target("::1").unwrap(), ("::1".into(), 443));
        assert!(parse_target("a:b").is_err());
        assert!(parse_target(":1").is_err());
        assert!(parse_target("").is_err());
    }

    #[test]
    fn hsts_head() {
        let h = parse_http_head(
            b"HTTP/1.1 200 OK\r\nStrict-Transport-Security: max-age=63072000; includeSubDomains\r\n\r\n",
        )
        .unwrap();
        assert_eq!((h.status, h.hsts_max_age), (200, Some(63072000)));
        assert!(parse_http_head(b"SSH-2.0-x\r\n").is_none());
    }
}
