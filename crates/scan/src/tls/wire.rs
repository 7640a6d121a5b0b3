//! TLS on the wire, by hand: a ClientHello encoder for any protocol version
//! and any list of suites (including ones no modern library will speak), and
//! a bounded reader for the server's first flight (ServerHello,
//! HelloRetryRequest, Certificate, CertificateStatus, ServerKeyExchange,
//! CertificateRequest, alerts). The scanner never finishes a handshake: it
//! only needs what the server says in clear text.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest first flight read: default 256 KiB. Certificate chains are a few
/// KiB; this bounds memory against a server that streams handshake bytes.
pub const MAX_FLIGHT_BYTES: usize = 256 * 1024;

/// Largest record payload accepted: 2^14 plus the 2,048 bytes of expansion
/// TLS allows. Anything larger is not TLS (garbage or another protocol).
pub const MAX_RECORD_LEN: usize = 16384 + 2048;

/// Protocol versions the scanner probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum Protocol {
    /// SSL 3.0.
    #[serde(rename = "SSLv3")]
    Ssl3,
    /// TLS 1.0.
    #[serde(rename = "TLSv1.0")]
    Tls10,
    /// TLS 1.1.
    #[serde(rename = "TLSv1.1")]
    Tls11,
    /// TLS 1.2.
    #[serde(rename = "TLSv1.2")]
    Tls12,
    /// TLS 1.3.
    #[serde(rename = "TLSv1.3")]
    Tls13,
}

impl Protocol {
    /// All probed versions, oldest first.
    pub const ALL: [Protocol; 5] = [
        Protocol::Ssl3,
        Protocol::Tls10,
        Protocol::Tls11,
        Protocol::Tls12,
        Protocol::Tls13,
    ];

    /// Wire version number.
    pub fn wire(self) -> u16 {
        match self {
            Protocol::Ssl3 => 0x0300,
            Protocol::Tls10 => 0x0301,
            Protocol::Tls11 => 0x0302,
            Protocol::Tls12 => 0x0303,
            Protocol::Tls13 => 0x0304,
        }
    }

    /// Name as sslscan and OpenSSL print it (`TLSv1.2`).
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Ssl3 => "SSLv3",
            Protocol::Tls10 => "TLSv1.0",
            Protocol::Tls11 => "TLSv1.1",
            Protocol::Tls12 => "TLSv1.2",
            Protocol::Tls13 => "TLSv1.3",
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

/// Named groups (key exchange) the scanner knows: (code point, name).
pub const GROUPS: &[(u16, &str)] = &[
    (0x11EC, "X25519MLKEM768"),
    (0x11EB, "SecP256r1MLKEM768"),
    (0x11ED, "SecP384r1MLKEM1024"),
    (0x001D, "x25519"),
    (0x001E, "x448"),
    (0x0017, "secp256r1"),
    (0x0018, "secp384r1"),
    (0x0019, "secp521r1"),
    (0x001A, "brainpoolP256r1"),
    (0x001B, "brainpoolP384r1"),
    (0x001C, "brainpoolP512r1"),
    (0x0100, "ffdhe2048"),
    (0x0101, "ffdhe3072"),
    (0x0102, "ffdhe4096"),
    (0x0103, "ffdhe6144"),
    (0x0104, "ffdhe8192"),
];

/// Name of a named group.
pub fn group_name(id: u16) -> String {
    GROUPS
        .iter()
        .find(|(g, _)| *g == id)
        .map(|(_, n)| (*n).to_string())
        .unwrap_or_else(|| format!("0x{id:04X}"))
}

/// Groups offered in ordinary TLS 1.0-1.2 hellos.
const DEFAULT_GROUPS: &[u16] = &[
    0x001D, 0x0017, 0x0018, 0x0019, 0x001E, 0x001A, 0x001B, 0x001C, 0x0100, 0x0101, 0x0102, 0x0103,
    0x0104,
];

/// Groups offered in ordinary TLS 1.3 hellos: the classical ones plus the
/// post-quantum hybrids, last, so a server that supports only a hybrid
/// still answers (with a HelloRetryRequest, as no hybrid share is sent).
const DEFAULT_GROUPS_TLS13: &[u16] = &[
    0x001D, 0x0017, 0x0018, 0x0019, 0x001E, 0x001A, 0x001B, 0x001C, 0x0100, 0x0101, 0x0102, 0x0103,
    0x0104, 0x11EC, 0x11EB, 0x11ED,
];

/// Signature algorithms offered (TLS 1.2+): everything, old and new, so the
/// server never refuses for lack of a scheme.
const SIG_ALGS: &[u16] = &[
    0x0403, 0x0503, 0x0603, 0x0807, 0x0808, 0x0804, 0x0805, 0x0806, 0x0809, 0x080A, 0x080B, 0x0401,
    0x0501, 0x0601, 0x0303, 0x0301, 0x0302, 0x0402, 0x0203, 0x0201, 0x0202,
];

/// What to put in a ClientHello.
#[derive(Debug, Clone)]
pub struct Hello<'a> {
    /// Version offered (TLS 1.3 via `supported_versions`).
    pub protocol: Protocol,
    /// Suites offered, in order.
    pub suites: &'a [u16],
    /// SNI host name (never an IP literal).
    pub sni: Option<&'a str>,
    /// Groups offered; `None`: the default classical list.
    pub groups: Option<&'a [u16]>,
    /// TLS 1.3: send an x25519 key share (else an empty list, so the
    /// server must answer with a HelloRetryRequest naming its group).
    pub key_share: bool,
    /// Ask for an OCSP staple (`status_request`).
    pub status_request: bool,
    /// Offer DEFLATE compression before NULL.
    pub deflate: bool,
}

impl<'a> Hello<'a> {
    /// A hello for `protocol` offering `suites` with default extensions.
    pub fn new(protocol: Protocol, suites: &'a [u16], sni: Option<&'a str>) -> Self {
        Hello {
            protocol,
            suites,
            sni,
            groups: None,
            key_share: true,
            status_request: false,
            deflate: false,
        }
    }
}

/// Unique bytes for random fields. The scanner never completes a key
/// exchange, so these need to be unpredictable only enough to be unique.
fn pseudo_random(out: &mut [u8]) {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let state = std::collections::hash_map::RandomState::new();
    for chunk in out.chunks_mut(8) {
        let mut h = state.build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        let v = h.finish().to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
}

fn put_u16(b: &mut Vec<u8>, v: u16) {
    b.extend_from_slice(&v.to_be_bytes());
}

fn put_u24(b: &mut Vec<u8>, v: usize) {
    b.extend_from_slice(&[(v >> 16) as u8, (v >> 8) as u8, v as u8]);
}

fn ext(b: &mut Vec<u8>, typ: u16, body: &[u8]) {
    put_u16(b, typ);
    put_u16(b, body.len() as u16);
    b.extend_from_slice(body);
}

fn u16_list(items: &[u16]) -> Vec<u8> {
    let mut v = Vec::with_capacity(2 + items.len() * 2);
    put_u16(&mut v, (items.len() * 2) as u16);
    for i in items {
        put_u16(&mut v, *i);
    }
    v
}

/// Encodes a ClientHello as one handshake record.
pub fn encode(h: &Hello<'_>) -> Vec<u8> {
    let tls13 = h.protocol == Protocol::Tls13;
    let mut body = Vec::with_capacity(1024);
    put_u16(&mut body, h.protocol.wire().min(0x0303));
    let mut random = [0u8; 32];
    pseudo_random(&mut random);
    body.extend_from_slice(&random);
    if tls13 {
        // A legacy session id makes middleboxes treat the hello as TLS 1.2.
        let mut sid = [0u8; 32];
        pseudo_random(&mut sid);
        body.push(32);
        body.extend_from_slice(&sid);
    } else {
        body.push(0);
    }
    body.extend_from_slice(&u16_list(h.suites));
    if h.deflate {
        body.extend_from_slice(&[2, 1, 0]);
    } else {
        body.extend_from_slice(&[1, 0]);
    }
    if h.protocol != Protocol::Ssl3 {
        let mut exts = Vec::with_capacity(512);
        if let Some(name) = h.sni {
            let mut sn = Vec::new();
            put_u16(&mut sn, (name.len() + 3) as u16);
            sn.push(0);
            put_u16(&mut sn, name.len() as u16);
            sn.extend_from_slice(name.as_bytes());
            ext(&mut exts, 0x0000, &sn);
        }
        let groups = h.groups.unwrap_or(if tls13 {
            DEFAULT_GROUPS_TLS13
        } else {
            DEFAULT_GROUPS
        });
        ext(&mut exts, 0x000A, &u16_list(groups));
        ext(&mut exts, 0x000B, &[3, 0, 1, 2]);
        if h.protocol >= Protocol::Tls12 {
            ext(&mut exts, 0x000D, &u16_list(SIG_ALGS));
        }
        if h.status_request {
            ext(&mut exts, 0x0005, &[1, 0, 0, 0, 0]);
        }
        if !tls13 {
            ext(&mut exts, 0xFF01, &[0]);
        }
        if tls13 {
            ext(&mut exts, 0x002B, &[2, 0x03, 0x04]);
            ext(&mut exts, 0x002D, &[1, 1]);
            let mut ks = Vec::new();
            let x25519_offered = groups.contains(&0x001D);
            if h.key_share && x25519_offered {
                let mut key = [0u8; 32];
                pseudo_random(&mut key);
                put_u16(&mut ks, 36);
                put_u16(&mut ks, 0x001D);
                put_u16(&mut ks, 32);
                ks.extend_from_slice(&key);
            } else {
                put_u16(&mut ks, 0);
            }
            ext(&mut exts, 0x0033, &ks);
        }
        put_u16(&mut body, exts.len() as u16);
        body.extend_from_slice(&exts);
    }
    let mut hs = Vec::with_capacity(body.len() + 4);
    hs.push(1);
    put_u24(&mut hs, body.len());
    hs.extend_from_slice(&body);
    let mut rec = Vec::with_capacity(hs.len() + 5);
    rec.push(22);
    put_u16(
        &mut rec,
        if h.protocol == Protocol::Ssl3 {
            0x0300
        } else {
            0x0301
        },
    );
    put_u16(&mut rec, hs.len() as u16);
    rec.extend_from_slice(&hs);
    rec
}

/// The HelloRetryRequest marker: ServerHello.random = SHA-256("HelloRetryRequest").
const HRR_RANDOM: [u8; 32] = [
    0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11, 0xBE, 0x1D, 0x8C, 0x02, 0x1E, 0x65, 0xB8, 0x91,
    0xC2, 0xA2, 0x11, 0x16, 0x7A, 0xBB, 0x8C, 0x5E, 0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8, 0x33, 0x9C,
];

/// What the server said in clear text.
#[derive(Debug, Clone, Default)]
pub struct Flight {
    /// Negotiated version (`supported_versions` if present, else ServerHello.version).
    pub version: u16,
    /// Chosen suite.
    pub suite: u16,
    /// Chosen compression method (0: none, 1: DEFLATE).
    pub compression: u8,
    /// The answer was a HelloRetryRequest.
    pub hrr: bool,
    /// The server echoed `renegotiation_info` (RFC 5746 secure renegotiation).
    pub renegotiation_info: bool,
    /// The server acknowledged `status_request` in its ServerHello.
    pub status_request_ack: bool,
    /// TLS 1.3 key share (or HRR) group.
    pub group: Option<u16>,
    /// Certificate chain (DER), TLS 1.2 and older.
    pub certs: Vec<Vec<u8>>,
    /// Stapled OCSP response (CertificateStatus).
    pub ocsp: Option<Vec<u8>>,
    /// ECDHE curve from the ServerKeyExchange.
    pub ske_group: Option<u16>,
    /// Bits of the DHE prime from the ServerKeyExchange.
    pub dh_bits: Option<u32>,
    /// The server asked for a client certificate.
    pub cert_request: bool,
}

/// The server's answer to one ClientHello.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// A ServerHello (or HelloRetryRequest).
    Accepted(Box<Flight>),
    /// An alert, or the connection closed/reset before a ServerHello.
    Rejected(String),
}

/// Alert description names (RFC 8446 section 6).
pub fn alert_name(d: u8) -> &'static str {
    match d {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        22 => "record_overflow",
        40 => "handshake_failure",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        47 => "illegal_parameter",
        48 => "unknown_ca",
        50 => "decode_error",
        51 => "decrypt_error",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        86 => "inappropriate_fallback",
        90 => "user_canceled",
        109 => "missing_extension",
        110 => "unsupported_extension",
        112 => "unrecognized_name",
        116 => "certificate_required",
        120 => "no_application_protocol",
        _ => "alert",
    }
}

/// Timeouts of one probe.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// TCP connect.
    pub connect: Duration,
    /// From ClientHello sent to the end of the server's first flight.
    pub handshake: Duration,
}

/// Connects, sends `hello`, reads the answer. `full`: keep reading the
/// TLS 1.2 flight up to ServerHelloDone (certificates, staple, key exchange).
///
/// Errors are transport failures that say the target is not a working TLS
/// server (refused, timed out, garbage); a TLS-level "no" is `Rejected`.
pub async fn probe(addr: SocketAddr, hello: &[u8], full: bool, t: Timeouts) -> io::Result<Outcome> {
    let mut s = match tokio::time::timeout(t.connect, TcpStream::connect(addr)).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "connect to {addr} timed out after {} ms",
                    t.connect.as_millis()
                ),
            ))
        }
    };
    let _ = s.set_nodelay(true);
    match tokio::time::timeout(t.handshake, exchange(&mut s, hello, full)).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "no TLS answer from {addr} within {} ms (server accepted the connection and hung)",
                t.handshake.as_millis()
            ),
        )),
    }
}

async fn exchange(s: &mut TcpStream, hello: &[u8], full: bool) -> io::Result<Outcome> {
    if let Err(e) = s.write_all(hello).await {
        return reset_or(e);
    }
    let mut raw: Vec<u8> = Vec::with_capacity(8192);
    let mut hs: Vec<u8> = Vec::new();
    let mut flight: Option<Flight> = None;
    let mut pos = 0usize; // consumed bytes of `raw`
    let mut hs_pos = 0usize; // consumed bytes of `hs`
    let mut buf = [0u8; 8192];
    loop {
        // Parse every complete record in `raw`.
        while raw.len() - pos >= 5 {
            let h = &raw[pos..pos + 5];
            let typ = h[0];
            if !(20..=24).contains(&typ) || h[1] != 3 {
                return Err(not_tls(&raw[pos..]));
            }
            let len = usize::from(u16::from_be_bytes([h[3], h[4]]));
            if len > MAX_RECORD_LEN {
                return Err(not_tls(&raw[pos..]));
            }
            if raw.len() - pos < 5 + len {
                break;
            }
            let payload = raw[pos + 5..pos + 5 + len].to_vec();
            pos += 5 + len;
            match typ {
                21 => {
                    if let Some(f) = flight {
                        // An alert after ServerHello (e.g. certificate_required).
                        return Ok(Outcome::Accepted(Box::new(f)));
                    }
                    let d = payload.get(1).copied().unwrap_or(0);
                    return Ok(Outcome::Rejected(format!("alert {}", alert_name(d))));
                }
                22 => hs.extend_from_slice(&payload),
                // ChangeCipherSpec / encrypted data: the clear-text part is over.
                _ => {
                    if let Some(f) = flight {
                        return Ok(Outcome::Accepted(Box::new(f)));
                    }
                    return Err(not_tls(&payload));
                }
            }
            // Parse every complete handshake message.
            while hs.len() - hs_pos >= 4 {
                let m = &hs[hs_pos..];
                let mlen = (usize::from(m[1]) << 16) | (usize::from(m[2]) << 8) | usize::from(m[3]);
                if mlen > MAX_FLIGHT_BYTES {
                    return Err(not_tls(m));
                }
                if m.len() < 4 + mlen {
                    break;
                }
                let typ = m[0];
                let body = m[4..4 + mlen].to_vec();
                hs_pos += 4 + mlen;
                match (typ, flight.as_mut()) {
                    (2, None) => {
                        let f = parse_server_hello(&body)
                            .ok_or_else(|| invalid("malformed ServerHello"))?;
                        if !full || f.hrr || f.version >= 0x0304 {
                            return Ok(Outcome::Accepted(Box::new(f)));
                        }
                        flight = Some(f);
                    }
                    (11, Some(f)) => f.certs = parse_certificates(&body).unwrap_or_default(),
                    // CertificateStatus: status_type(1)=ocsp, u24 length, response.
                    (22, Some(f)) if body.len() > 4 && body[0] == 1 => {
                        f.ocsp = Some(body[4..].to_vec());
                    }
                    (12, Some(f)) => parse_ske(&body, f),
                    (13, Some(f)) => f.cert_request = true,
                    (14, Some(_)) => {
                        return Ok(Outcome::Accepted(Box::new(flight.unwrap_or_default())));
                    }
                    (_, None) => return Err(invalid("handshake message before ServerHello")),
                    _ => {}
                }
            }
        }
        if raw.len() > MAX_FLIGHT_BYTES {
            return Err(invalid(&format!(
                "server flight larger than {MAX_FLIGHT_BYTES} bytes"
            )));
        }
        let n = match s.read(&mut buf).await {
            Ok(n) => n,
            Err(e) => {
                if let Some(f) = flight {
                    return Ok(Outcome::Accepted(Box::new(f)));
                }
                return reset_or(e);
            }
        };
        if n == 0 {
            if let Some(f) = flight {
                return Ok(Outcome::Accepted(Box::new(f)));
            }
            if raw.len() > pos {
                return Err(not_tls(&raw[pos..]));
            }
            return Ok(Outcome::Rejected("connection closed".into()));
        }
        raw.extend_from_slice(&buf[..n]);
    }
}

/// A reset before any answer is how many servers refuse a protocol they
/// do not speak; other I/O errors are real failures.
fn reset_or(e: io::Error) -> io::Result<Outcome> {
    match e.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionAborted => Ok(Outcome::Rejected("connection reset".into())),
        _ => Err(e),
    }
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

fn not_tls(bytes: &[u8]) -> io::Error {
    let head: String = bytes
        .iter()
        .take(16)
        .map(|b| {
            if b.is_ascii_graphic() || *b == b' ' {
                char::from(*b)
            } else {
                '.'
            }
        })
        .collect();
    invalid(&format!(
        "not TLS: the server answered with non-TLS bytes {head:?}"
    ))
}

/// A bounds-checked cursor over a byte slice.
struct Cur<'a> {
    b: &'a [u8],
}

impl<'a> Cur<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.b.len() < n {
            return None;
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Some(h)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn u24(&mut self) -> Option<usize> {
        self.take(3)
            .map(|b| (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]))
    }
}

fn parse_server_hello(body: &[u8]) -> Option<Flight> {
    let mut c = Cur { b: body };
    let version = c.u16()?;
    let random = c.take(32)?;
    let sid_len = usize::from(c.u8()?);
    c.take(sid_len)?;
    let suite = c.u16()?;
    let compression = c.u8()?;
    let mut f = Flight {
        version,
        suite,
        compression,
        hrr: random == HRR_RANDOM,
        ..Flight::default()
    };
    if let Some(ext_len) = c.u16() {
        let mut e = Cur {
            b: c.take(usize::from(ext_len))?,
        };
        while !e.b.is_empty() {
            let typ = e.u16()?;
            let len = usize::from(e.u16()?);
            let data = e.take(len)?;
            match typ {
                0xFF01 => f.renegotiation_info = true,
                0x0005 => f.status_request_ack = true,
                0x002B if data.len() == 2 => f.version = u16::from_be_bytes([data[0], data[1]]),
                0x0033 if data.len() >= 2 => {
                    f.group = Some(u16::from_be_bytes([data[0], data[1]]));
                }
                _ => {}
            }
        }
    }
    Some(f)
}

fn parse_certificates(body: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut c = Cur { b: body };
    let total = c.u24()?;
    let mut l = Cur { b: c.take(total)? };
    let mut out = Vec::new();
    while !l.b.is_empty() {
        let n = l.u24()?;
        out.push(l.take(n)?.to_vec());
    }
    Some(out)
}

/// ServerKeyExchange: ECDHE names its curve; DHE sends its prime (whose
/// size is the DH strength). Which one it is follows from the first bytes:
/// an ECDHE key exchange starts with curve_type 3 (named_curve).
fn parse_ske(body: &[u8], f: &mut Flight) {
    let kx = super::suites::lookup(f.suite).map(|s| s.kx);
    let mut c = Cur { b: body };
    match kx {
        Some("ECDHE") | Some("ECDH") if c.u8() == Some(3) => f.ske_group = c.u16(),
        Some("DHE") | Some("DH") => {
            if let Some(plen) = c.u16() {
                if let Some(p) = c.take(usize::from(plen)) {
                    let p = match p.iter().position(|b| *b != 0) {
                        Some(i) => &p[i..],
                        None => &[],
                    };
                    let bits = p.len() as u32 * 8 - p.first().map_or(0, |b| b.leading_zeros());
                    f.dh_bits = Some(bits);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_layout() {
        let suites = [0xC02F, 0x002F];
        let rec = encode(&Hello::new(Protocol::Tls12, &suites, Some("example.com")));
        assert_eq!(&rec[..3], &[22, 3, 1]);
        assert_eq!(
            usize::from(u16::from_be_bytes([rec[3], rec[4]])),
            rec.len() - 5
        );
        assert_eq!(rec[5], 1);
        assert_eq!(&rec[9..11], &[3, 3]);
        // session id empty, then the suite list.
        assert_eq!(rec[43], 0);
        assert_eq!(&rec[44..50], &[0, 4, 0xC0, 0x2F, 0x00, 0x2F]);
        assert!(rec.windows(11).any(|w| w == b"example.com"));
        let ssl3 = encode(&Hello::new(Protocol::Ssl3, &suites, Some("example.com")));
        assert_eq!(&ssl3[1..3], &[3, 0]);
        assert!(!ssl3.windows(11).any(|w| w == b"example.com"));
    }

    #[test]
    fn server_hello_parse_and_hrr() {
        let mut sh = vec![3, 3];
        sh.extend_from_slice(&HRR_RANDOM);
        sh.push(0);
        sh.extend_from_slice(&[0x13, 0x01, 0]);
        let exts = [0x00, 0x2B, 0, 2, 3, 4, 0x00, 0x33, 0, 2, 0x11, 0xEC];
        sh.extend_from_slice(&(exts.len() as u16).to_be_bytes());
        sh.extend_from_slice(&exts);
        let f = parse_server_hello(&sh).unwrap();
        assert!(f.hrr);
        assert_eq!(
            (f.version, f.suite, f.group),
            (0x0304, 0x1301, Some(0x11EC))
        );
        assert!(parse_server_hello(&sh[..20]).is_none());
    }

    /// Random and truncated server messages never panic the parsers.
    #[test]
    fn hostile_server_messages_do_not_panic() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let len = (next() % 200) as usize;
            let mut b: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if len > 2 && next() % 2 == 0 {
                b[0] = 3;
                b[1] = 3;
            }
            let _ = parse_server_hello(&b);
            let _ = parse_certificates(&b);
            let mut f = Flight {
                suite: [0xC02F, 0x009E, 0x002F][(next() % 3) as usize],
                ..Flight::default()
            };
            parse_ske(&b, &mut f);
            let _ = super::super::x509::parse(&b);
        }
    }
}
