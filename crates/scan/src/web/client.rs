//! The web scanner's HTTP/1.1 client: one connection per request, HTTP or
//! HTTPS (certificates are not judged here: `scan tls` does that, and a
//! test site with a self-signed certificate must still be scannable),
//! every step under a deadline, bodies capped, requests paced by a shared
//! rate and concurrency limiter.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

/// Time allowed for the TCP connect (default 5 s): bounds a filtered port
/// or a black-holed host.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time allowed for one request from connect to the response head, and
/// again for its body (default 10 s): bounds a server that accepts and
/// then never answers, or sends an endless slow body (cut there, the scan
/// goes on with what arrived).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes of a response body kept (default 1 MiB); the rest is not read:
/// bounds memory against huge or endless responses.
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// Response headers kept per response (default 200): bounds memory
/// against a server that sends endless headers (hyper also caps them).
pub const MAX_HEADERS: usize = 200;

/// A parsed absolute `http(s)://host[:port]/path?query` URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Url {
    /// `https`?
    pub tls: bool,
    /// Host name or IP address (IPv6 without brackets), lower case.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Path, starting with `/`.
    pub path: String,
    /// Query without `?`.
    pub query: Option<String>,
}

impl Url {
    /// Parses an absolute http(s) URL; the fragment is dropped.
    pub fn parse(s: &str) -> Option<Url> {
        let s = s.trim();
        let (tls, rest) = if s.len() >= 8 && s[..8].eq_ignore_ascii_case("https://") {
            (true, &s[8..])
        } else if s.len() >= 7 && s[..7].eq_ignore_ascii_case("http://") {
            (false, &s[7..])
        } else {
            return None;
        };
        let rest = rest.split('#').next().unwrap_or("");
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if authority.is_empty() || authority.contains('@') {
            return None;
        }
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let close = v6.find(']')?;
            let port = match &v6[close + 1..] {
                "" => default_port,
                p => p.strip_prefix(':')?.parse().ok()?,
            };
            (v6[..close].to_owned(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, "")) => (h.to_owned(), default_port),
                Some((h, p)) => (h.to_owned(), p.parse().ok()?),
                None => (authority.to_owned(), default_port),
            }
        };
        if host.is_empty()
            || port == 0
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b))
        {
            return None;
        }
        let (path, query) = match tail.split_once('?') {
            Some((p, q)) => (p, Some(q.to_owned())),
            None => (tail, None),
        };
        let path = if path.is_empty() { "/" } else { path };
        let url = Url {
            tls,
            host: host.to_ascii_lowercase(),
            port,
            path: normalize_path(path),
            query,
        };
        url.target_ok().then_some(url)
    }

    fn target_ok(&self) -> bool {
        let bad = |s: &str| s.bytes().any(|b| b <= b' ' || b == 0x7f || b == b'"');
        !bad(&self.path) && !self.query.as_deref().is_some_and(bad)
    }

    /// `scheme://host:port` (port always written).
    pub fn origin(&self) -> String {
        format!(
            "{}://{}:{}",
            if self.tls { "https" } else { "http" },
            self.host_for_url(),
            self.port
        )
    }

    fn host_for_url(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        }
    }

    /// Same scheme, host and port.
    pub fn same_origin(&self, other: &Url) -> bool {
        self.tls == other.tls && self.host == other.host && self.port == other.port
    }

    /// The request target: path and query.
    pub fn target(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone(),
        }
    }

    /// This URL with another path (no query).
    pub fn with_path(&self, path: &str) -> Url {
        Url {
            path: normalize_path(path),
            query: None,
            ..self.clone()
        }
    }

    /// Resolves a link (`href`, `src`, `action`, `Location`) against this
    /// URL; `None` for non-http schemes (`mailto:`, `javascript:`…) and
    /// garbage.
    pub fn join(&self, link: &str) -> Option<Url> {
        let link = link.trim();
        let lower = link.get(..8).unwrap_or(link).to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            return Url::parse(link);
        }
        if let Some(rest) = link.strip_prefix("//") {
            let scheme = if self.tls { "https://" } else { "http://" };
            return Url::parse(&format!("{scheme}{rest}"));
        }
        // Any other scheme (`mailto:`, `javascript:`, `data:`).
        if let Some(colon) = link.find(':') {
            if !link[..colon].contains(['/', '?', '#']) {
                return None;
            }
        }
        let link = link.split('#').next().unwrap_or("");
        if link.is_empty() {
            return Some(self.clone());
        }
        let (path, query) = match link.split_once('?') {
            Some((p, q)) => (p, Some(q.to_owned())),
            None => (link, None),
        };
        let path = if path.is_empty() {
            self.path.clone()
        } else if path.starts_with('/') {
            path.to_owned()
        } else {
            let dir = match self.path.rfind('/') {
                Some(i) => &self.path[..=i],
                None => "/",
            };
            format!("{dir}{path}")
        };
        let url = Url {
            path: normalize_path(&path),
            query,
            ..self.clone()
        };
        url.target_ok().then_some(url)
    }
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let default = if self.tls { 443 } else { 80 };
        let scheme = if self.tls { "https" } else { "http" };
        if self.port == default {
            write!(f, "{scheme}://{}{}", self.host_for_url(), self.target())
        } else {
            write!(
                f,
                "{scheme}://{}:{}{}",
                self.host_for_url(),
                self.port,
                self.target()
            )
        }
    }
}

/// Removes `.` and `..` segments (RFC 3986 §5.2.4) so `/a/../a/` and `/a/`
/// are one page to the crawler.
fn normalize_path(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "." => {
                if i == last {
                    out.push("");
                }
            }
            ".." => {
                out.pop();
                if i == last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    format!("/{}", out.join("/"))
}

/// One response: status, headers (names lower-case), body prefix.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers in order, names lower-case, values lossily decoded.
    pub headers: Vec<(String, String)>,
    /// The first [`MAX_BODY_BYTES`] of the body.
    pub body: Vec<u8>,
    /// The body was cut (size cap or the request timeout).
    pub truncated: bool,
}

impl Response {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name` (lower case).
    pub fn headers_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// `Content-Type` is HTML (or absent with a body that looks like HTML).
    pub fn is_html(&self) -> bool {
        match self.header("content-type") {
            Some(ct) => {
                let ct = ct.to_ascii_lowercase();
                ct.starts_with("text/html") || ct.starts_with("application/xhtml")
            }
            None => {
                let head = String::from_utf8_lossy(&self.body[..self.body.len().min(512)])
                    .to_ascii_lowercase();
                head.contains("<html") || head.contains("<!doctype html")
            }
        }
    }

    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Paces requests: at most `concurrency` in flight, at most `rate` started
/// per second.
#[derive(Debug)]
pub struct Limiter {
    slots: Semaphore,
    interval: Option<Duration>,
    next: Mutex<Instant>,
}

impl Limiter {
    /// `rate` requests per second (`None`: unpaced), `concurrency` at once.
    pub fn new(rate: Option<u32>, concurrency: usize) -> Limiter {
        Limiter {
            slots: Semaphore::new(concurrency.clamp(1, Semaphore::MAX_PERMITS)),
            interval: rate.filter(|&r| r > 0).map(|r| Duration::from_secs(1) / r),
            next: Mutex::new(Instant::now()),
        }
    }

    async fn acquire(&self) -> Option<SemaphorePermit<'_>> {
        let permit = self.slots.acquire().await.ok()?;
        if let Some(iv) = self.interval {
            let at = {
                // A poisoned lock only means another task panicked while
                // holding a timestamp: the value is still usable.
                let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
                let at = (*next).max(Instant::now());
                *next = at + iv;
                at
            };
            tokio::time::sleep_until(at).await;
        }
        Some(permit)
    }
}

/// The scanner's HTTP client.
#[derive(Debug, Clone)]
pub struct Client {
    tls: Arc<rustls::ClientConfig>,
    limiter: Arc<Limiter>,
    timeout: Duration,
    progress: Option<Arc<crate::progress::Progress>>,
    /// Requests sent (for the report).
    pub sent: Arc<std::sync::atomic::AtomicU64>,
}

impl Client {
    /// A client paced by `limiter`; `timeout` bounds connect-to-head and,
    /// separately, the body read.
    pub fn new(limiter: Arc<Limiter>, timeout: Duration) -> Result<Client, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
            .with_no_client_auth();
        Ok(Client {
            tls: Arc::new(config),
            limiter,
            timeout,
            progress: None,
            sent: Arc::default(),
        })
    }

    /// Marks every finished request (answered or failed) in `progress`.
    pub fn with_progress(mut self, progress: Arc<crate::progress::Progress>) -> Client {
        self.progress = Some(progress);
        self
    }

    /// Sends `method url` with `headers`; `Err` is a one-line reason
    /// (refused, timed out, not HTTP, TLS failure…). Never follows
    /// redirects.
    pub async fn request(
        &self,
        method: &str,
        url: &Url,
        headers: &[(&str, &str)],
    ) -> Result<Response, String> {
        let _permit = self
            .limiter
            .acquire()
            .await
            .ok_or_else(|| "scan stopped".to_owned())?;
        self.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let result = self.exchange(method, url, headers).await;
        if let Some(p) = &self.progress {
            p.inc(1);
        }
        result
    }

    async fn exchange(
        &self,
        method: &str,
        url: &Url,
        headers: &[(&str, &str)],
    ) -> Result<Response, String> {
        let head = tokio::time::timeout(self.timeout, self.head(method, url, headers))
            .await
            .map_err(|_| {
                format!(
                    "no response within {} ms (server hangs after accept?)",
                    self.timeout.as_millis()
                )
            })??;
        let (parts, mut body) = head.into_parts();
        let mut out = Vec::new();
        let mut truncated = false;
        let deadline = Instant::now() + self.timeout;
        if method != "HEAD" {
            loop {
                match tokio::time::timeout_at(deadline, body.frame()).await {
                    Err(_) => {
                        truncated = true;
                        break;
                    }
                    Ok(None) => break,
                    // A body cut by a reset still shows what arrived.
                    Ok(Some(Err(_))) => {
                        truncated = true;
                        break;
                    }
                    Ok(Some(Ok(frame))) => {
                        if let Ok(data) = frame.into_data() {
                            let room = MAX_BODY_BYTES - out.len();
                            if data.len() > room {
                                out.extend_from_slice(&data[..room]);
                                truncated = true;
                                break;
                            }
                            out.extend_from_slice(&data);
                        }
                    }
                }
            }
        }
        let headers = parts
            .headers
            .iter()
            .take(MAX_HEADERS)
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        Ok(Response {
            status: parts.status.as_u16(),
            headers,
            body: out,
            truncated,
        })
    }

    async fn head(
        &self,
        method: &str,
        url: &Url,
        headers: &[(&str, &str)],
    ) -> Result<hyper::Response<hyper::body::Incoming>, String> {
        let tcp = tokio::time::timeout(
            CONNECT_TIMEOUT.min(self.timeout),
            TcpStream::connect((url.host.as_str(), url.port)),
        )
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
            _ if e.to_string().contains("lookup") => format!("cannot resolve host {:?}", url.host),
            _ => format!("cannot connect: {e}"),
        })?;
        if url.tls {
            let name = rustls_pki_types::ServerName::try_from(url.host.clone())
                .map_err(|e| format!("invalid server name: {e}"))?;
            let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS handshake failed: {e}"))?;
            send(tls, method, url, headers).await
        } else {
            send(tcp, method, url, headers).await
        }
    }
}

async fn send<S>(
    stream: S,
    method: &str,
    url: &Url,
    headers: &[(&str, &str)],
) -> Result<hyper::Response<hyper::body::Incoming>, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        // Ends with the response body or an error the request reports.
        let _ = conn.await;
    });
    let default = if url.tls { 443 } else { 80 };
    let host = if url.port == default {
        url.host_for_url()
    } else {
        format!("{}:{}", url.host_for_url(), url.port)
    };
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(url.target())
        .header(hyper::header::HOST, host)
        .header(
            hyper::header::USER_AGENT,
            concat!("palisade-scan/", env!("CARGO_PKG_VERSION")),
        )
        .header(hyper::header::ACCEPT, "text/html,*/*;q=0.8");
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let req = req
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| e.to_string())?;
    sender.send_request(req).await.map_err(|e| {
        if e.is_parse() {
            format!("not an HTTP response: {e}")
        } else {
            e.to_string()
        }
    })
}

/// Accepts any server certificate: the web scan looks at HTTP behaviour;
/// certificate problems are `scan tls` findings. Signatures are still
/// checked so the handshake itself is a real one.
#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_join() {
        let u = Url::parse("http://Example.COM:8080/a/b/c.html?x=1#f").unwrap();
        assert_eq!(u.host, "example.com");
        assert_eq!(u.port, 8080);
        assert_eq!(u.target(), "/a/b/c.html?x=1");
        assert_eq!(u.join("d.html").unwrap().target(), "/a/b/d.html");
        assert_eq!(u.join("../d").unwrap().target(), "/a/d");
        assert_eq!(u.join("/x?y=2").unwrap().target(), "/x?y=2");
        assert_eq!(u.join("?q=1").unwrap().target(), "/a/b/c.html?q=1");
        assert_eq!(u.join("../../../../etc").unwrap().target(), "/etc");
        assert_eq!(
            u.join("//other.test/z").unwrap().to_string(),
            "http://other.test/z"
        );
        assert!(u.join("mailto:a@b").is_none());
        assert!(u.join("javascript:alert(1)").is_none());
        assert_eq!(
            u.join("#top").unwrap(),
            u.with_path("/a/b/c.html").join("?x=1").unwrap()
        );
        let v6 = Url::parse("https://[::1]:8443").unwrap();
        assert_eq!(v6.origin(), "https://[::1]:8443");
        assert_eq!(v6.to_string(), "https://[::1]:8443/");
        assert!(Url::parse("ftp://x/").is_none());
        assert!(Url::parse("http://u@x/").is_none());
        assert!(Url::parse("http://x:70000/").is_none());
        assert!(Url::parse("http://x/a b").is_none());
        assert!(Url::parse("http://").is_none());
        assert_eq!(Url::parse("https://h/./a/../b/.").unwrap().path, "/b/");
    }
}
