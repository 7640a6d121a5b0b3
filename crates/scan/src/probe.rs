//! Banner grab and service identification from a project-written probe
//! set. A port is first read passively (SSH, SMTP, FTP, MySQL, POP3 and
//! IMAP speak first); if it stays silent, each probe is sent on a fresh
//! connection until a response is recognised.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest banner read from one connection: 4 KiB (bounds memory against a
/// service that streams endlessly).
pub const MAX_BANNER_BYTES: usize = 4096;
/// Longest banner text kept in a result: 120 characters (one table line).
pub const MAX_BANNER_CHARS: usize = 120;

/// `HEAD / HTTP/1.0`: any HTTP/1.x server answers with a status line.
const HTTP_PROBE: &[u8] = b"HEAD / HTTP/1.0\r\n\r\n";
/// Redis inline command; `+PONG` (or `-NOAUTH`/`-ERR`) identifies Redis.
const REDIS_PROBE: &[u8] = b"PING\r\n";
/// PostgreSQL SSLRequest (length 8, code 80877103): the server answers one
/// byte, `S` or `N`.
const PG_SSLREQUEST: &[u8] = &[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
/// MQTT 3.1.1 CONNECT, clean session, keep-alive 60 s, client id
/// "palisade": a broker answers CONNACK (0x20 0x02 ...).
const MQTT_CONNECT: &[u8] = &[
    0x10, 0x14, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x08, b'p', b'a',
    b'l', b'i', b's', b'a', b'd', b'e',
];

/// What was learned about an open port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identified {
    /// Service name: `http`, `tls`, `ssh`, `smtp`, `ftp`, `redis`, `mqtt`,
    /// `postgresql`, `mysql`, `pop3`, `imap`, or `unknown`.
    pub service: &'static str,
    /// First line of the response (printable ASCII, truncated), if any.
    pub banner: Option<String>,
    /// Redis answered PING without authentication.
    pub unauthenticated: bool,
}

/// Identifies the service on `addr`; every network step is bounded by
/// `wait`, so a server that accepts and hangs costs at most
/// `(1 + probes) * 2 * wait`.
pub async fn identify(addr: SocketAddr, wait: Duration) -> Identified {
    if let Some(first) = exchange(addr, None, wait).await {
        if let Some(id) = classify(&first) {
            return id;
        }
        return Identified {
            service: "unknown",
            banner: printable(&first),
            unauthenticated: false,
        };
    }
    let hello = client_hello();
    let probes: [&[u8]; 5] = [HTTP_PROBE, REDIS_PROBE, &hello, PG_SSLREQUEST, MQTT_CONNECT];
    for probe in probes {
        if let Some(resp) = exchange(addr, Some(probe), wait).await {
            if let Some(id) = classify(&resp) {
                // A real redis answers the HTTP probe with `-ERR unknown
                // command`: ask PING too, or an open redis would pass as
                // an authenticated one.
                if id.service == "redis" && probe != REDIS_PROBE {
                    if let Some(pong) = exchange(addr, Some(REDIS_PROBE), wait).await {
                        if let Some(better) = classify(&pong) {
                            if better.service == "redis" {
                                return better;
                            }
                        }
                    }
                }
                return id;
            }
        }
    }
    Identified {
        service: "unknown",
        banner: None,
        unauthenticated: false,
    }
}

/// Connects, optionally writes `probe`, and reads what arrives within
/// `wait` (stopping at [`MAX_BANNER_BYTES`]). `None`: nothing received.
async fn exchange(addr: SocketAddr, probe: Option<&[u8]>, wait: Duration) -> Option<Vec<u8>> {
    let mut s = tokio::time::timeout(wait, TcpStream::connect(addr))
        .await
        .ok()?
        .ok()?;
    if let Some(p) = probe {
        tokio::time::timeout(wait, s.write_all(p))
            .await
            .ok()?
            .ok()?;
    }
    let mut buf = vec![0u8; MAX_BANNER_BYTES];
    let mut len = 0;
    let deadline = tokio::time::Instant::now() + wait;
    // Keep reading until the deadline once something arrived: a banner
    // often comes in more than one segment (MySQL, HTTP headers).
    while len < buf.len() {
        match tokio::time::timeout_at(deadline, s.read(&mut buf[len..])).await {
            Ok(Ok(n)) if n > 0 => {
                len += n;
                // Enough to classify: stop early on a complete first line.
                if buf[..len].contains(&b'\n') || len >= 64 {
                    break;
                }
            }
            _ => break,
        }
    }
    (len > 0).then(|| {
        buf.truncate(len);
        buf
    })
}

/// Recognises a response; `None` when it matches no known service.
pub fn classify(r: &[u8]) -> Option<Identified> {
    let id = |service, banner| {
        Some(Identified {
            service,
            banner,
            unauthenticated: false,
        })
    };
    let line = first_line(r);
    if r.starts_with(b"HTTP/") {
        let server = header(r, "server");
        let banner = match server {
            Some(s) => format!("{} (server: {s})", line.unwrap_or_default()),
            None => line.unwrap_or_default(),
        };
        return id("http", Some(truncate(banner)));
    }
    if r.starts_with(b"SSH-") {
        return id("ssh", line);
    }
    if r.starts_with(b"+PONG") {
        return Some(Identified {
            service: "redis",
            banner: line,
            unauthenticated: true,
        });
    }
    if r.starts_with(b"-NOAUTH") || r.starts_with(b"-ERR") || r.starts_with(b"-DENIED") {
        return id("redis", line);
    }
    if r.starts_with(b"220") {
        let upper = String::from_utf8_lossy(r).to_ascii_uppercase();
        let service = if upper.contains("SMTP") || upper.contains("MAIL") {
            "smtp"
        } else {
            "ftp"
        };
        return id(service, line);
    }
    if r.starts_with(b"+OK") {
        return id("pop3", line);
    }
    if r.starts_with(b"* OK") {
        return id("imap", line);
    }
    // TLS record: handshake (ServerHello) or alert, major version 3.
    if r.len() >= 5 && (r[0] == 0x16 || r[0] == 0x15) && r[1] == 3 && r[2] <= 4 {
        return id("tls", None);
    }
    if r.len() >= 4 && r[0] == 0x20 && r[1] == 0x02 {
        return id("mqtt", Some(format!("CONNACK return code {}", r[3])));
    }
    if r == b"S" || r == b"N" {
        let banner = if r == b"S" {
            "SSL supported"
        } else {
            "SSL not supported"
        };
        return id("postgresql", Some(banner.to_string()));
    }
    if let Some(v) = mysql_greeting(r) {
        return id("mysql", Some(v));
    }
    None
}

/// MySQL initial handshake: 3-byte length, sequence 0, protocol 10, a
/// NUL-terminated server version; or an error packet (0xff) at sequence 0.
fn mysql_greeting(r: &[u8]) -> Option<String> {
    if r.len() < 6 || r[3] != 0 {
        return None;
    }
    let len = usize::from(r[0]) | usize::from(r[1]) << 8 | usize::from(r[2]) << 16;
    if len == 0 || len > 1 << 16 {
        return None;
    }
    match r[4] {
        0x0a => {
            let rest = &r[5..];
            let end = rest.iter().position(|&b| b == 0)?;
            let v = &rest[..end];
            (!v.is_empty() && v.iter().all(|b| b.is_ascii_graphic()))
                .then(|| format!("MySQL {}", String::from_utf8_lossy(v)))
        }
        0xff => Some(truncate(format!(
            "MySQL error: {}",
            printable(&r[7.min(r.len())..]).unwrap_or_default()
        ))),
        _ => None,
    }
}

fn header(r: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(r);
    text.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

fn first_line(r: &[u8]) -> Option<String> {
    let end = r.iter().position(|&b| b == b'\n').unwrap_or(r.len());
    printable(&r[..end])
}

/// Printable ASCII of `r` (others as `.`), trimmed and truncated.
fn printable(r: &[u8]) -> Option<String> {
    let s: String = r
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        })
        .collect();
    let s = s.trim_matches(|c: char| c == '.' || c == ' ').to_string();
    (!s.is_empty()).then(|| truncate(s))
}

fn truncate(mut s: String) -> String {
    if s.len() > MAX_BANNER_CHARS {
        s.truncate(MAX_BANNER_CHARS);
    }
    s
}

/// A TLS 1.2-compatible ClientHello offering common AEAD suites (TLS 1.3
/// and 1.2) and groups; any TLS server answers with a ServerHello or an
/// alert, both recognised as `tls`.
pub fn client_hello() -> Vec<u8> {
    let suites: [u16; 11] = [
        0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0x009c, 0x002f,
    ];
    let mut ext = Vec::new();
    // supported_groups: x25519, secp256r1, secp384r1.
    put_ext(&mut ext, 0x000a, &[0, 6, 0, 0x1d, 0, 0x17, 0, 0x18]);
    // ec_point_formats: uncompressed.
    put_ext(&mut ext, 0x000b, &[1, 0]);
    // signature_algorithms: ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256,
    // rsa_pkcs1_sha256, ecdsa_secp384r1_sha384, rsa_pss_rsae_sha384,
    // rsa_pkcs1_sha384, rsa_pss_rsae_sha512, rsa_pkcs1_sha512.
    put_ext(
        &mut ext,
        0x000d,
        &[0, 16, 4, 3, 8, 4, 4, 1, 5, 3, 8, 5, 5, 1, 8, 6, 6, 1],
    );
    let mut body = vec![3, 3];
    // Random: not secret here (no key exchange follows); a fixed pattern.
    body.extend((0u8..32).map(|i| i.wrapping_mul(37).wrapping_add(11)));
    body.push(0); // session id
    body.extend_from_slice(&((suites.len() * 2) as u16).to_be_bytes());
    for s in suites {
        body.extend_from_slice(&s.to_be_bytes());
    }
    body.extend_from_slice(&[1, 0]); // compression: null
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut hs = vec![1];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut rec = vec![0x16, 3, 1];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

fn put_ext(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_known_banners() {
        let c = |r: &[u8]| classify(r).map(|i| i.service);
        assert_eq!(c(b"SSH-2.0-OpenSSH_9.2p1\r\n"), Some("ssh"));
        assert_eq!(c(b"220 mx.example ESMTP Postfix\r\n"), Some("smtp"));
        assert_eq!(c(b"220 (vsFTPd 3.0.3)\r\n"), Some("ftp"));
        assert_eq!(c(b"-NOAUTH Authentication required.\r\n"), Some("redis"));
        assert_eq!(c(b"N"), Some("postgresql"));
        assert_eq!(c(&[0x20, 2, 0, 0]), Some("mqtt"));
        assert_eq!(c(&[0x15, 3, 3, 0, 2, 2, 40]), Some("tls"));
        let mut my = vec![0x4a, 0, 0, 0, 0x0a];
        my.extend_from_slice(b"8.0.36\0abcdefgh");
        assert_eq!(c(&my), Some("mysql"));
        assert_eq!(c(b"hello world"), None);
        let h = classify(b"HTTP/1.1 200 OK\r\nServer: nginx/1.22\r\n\r\n").unwrap();
        assert_eq!(h.service, "http");
        assert_eq!(
            h.banner.as_deref(),
            Some("HTTP/1.1 200 OK (server: nginx/1.22)")
        );
        assert!(classify(b"+PONG\r\n").unwrap().unauthenticated);
    }

    #[test]
    fn client_hello_lengths_are_consistent() {
        let h = client_hello();
        assert_eq!(usize::from(u16::from_be_bytes([h[3], h[4]])), h.len() - 5);
        let hs_len = usize::from(h[6]) << 16 | usize::from(h[7]) << 8 | usize::from(h[8]);
        assert_eq!(hs_len, h.len() - 9);
    }
}
