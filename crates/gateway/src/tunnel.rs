//! TCP and TLS tunnels: `protocol = "tcp"` (plain passthrough) and
//! `protocol = "tls"` (terminate TLS, optionally with client certificates,
//! forward plain bytes to the upstream, or TLS again with `upstream_tls`),
//! plus the client-certificate settings shared with https listeners
//! (`client_auth`, `client_ca`, `crl`) and the per-device policy (`allow`).
//!
//! Every connection ends with one `tunnel closed` event (peer, identity,
//! bytes each way, duration, reason); every refusal logs `tunnel refused` with
//! the reason (no certificate, unknown CA, expired, revoked, policy, garbage
//! instead of a handshake, upstream unreachable or failing its TLS check).
//! Both are tracing events with target `tunnel`.
//!
//! On graceful shutdown the listener stops accepting at once; open tunnels
//! keep flowing until they end or the shutdown grace period is (almost)
//! over, when palisade closes them (`reason = "shutdown"`).
//!
//! After every applied reload each open `tls` tunnel re-checks its client
//! certificate against the new CA bundle, CRLs and `allow` policy, and is
//! cut when the new generation would refuse it (`reason = "certificate
//! revoked (after reload)"`): revoking a device ends its open sessions.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use toml::Spanned;

use crate::config::{Protocol, V};
use crate::error::{Error, Result};
use crate::limits::parse_duration;
use crate::server::Shared;

/// Default idle timeout of a tunnel (no byte in either direction): 5 minutes.
/// Bounds the sockets and buffers a client can pin by opening and abandoning
/// connections.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Copy buffer per direction: 16 KiB. Bounds memory per tunnel to 32 KiB of
/// buffers whatever the peers send.
pub const COPY_BUF: usize = 16 * 1024;

/// Most `allow` patterns on one listener: 256. Bounds the per-connection
/// policy check a config can make expensive.
pub const MAX_ALLOW_PATTERNS: usize = 256;

/// Most certificates in a client CA bundle or CRLs per listener: 1024.
/// Bounds memory and startup time a bad file can cost.
pub const MAX_TRUST_ITEMS: usize = 1024;

/// How long before the end of the shutdown grace period palisade closes
/// the tunnels still open: 200 ms, so their `tunnel closed` events are
/// written before the process exits.
pub const SHUTDOWN_CLOSE_MARGIN: Duration = Duration::from_millis(200);

/// Tracing target of every tunnel event (accept, refusal, close).
pub const LOG_TARGET: &str = "tunnel";

/// Default header carrying the verified client identity upstream on https
/// listeners with client certificates.
pub const DEFAULT_IDENTITY_HEADER: &str = "x-client-identity";

/// Client-certificate mode of a `tls` or `https` listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// No client certificate is asked for.
    #[default]
    None,
    /// A certificate is asked for; when one is sent it must verify.
    Optional,
    /// Connections without a valid certificate are refused.
    Required,
}

/// One `allow` pattern: a certificate field and a value (a trailing `*`
/// matches any suffix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowPattern {
    /// `cn`, `ou`, `dns` or `uri`.
    pub field: Field,
    /// The value; ends with `*` for a prefix match.
    pub value: String,
}

/// A certificate field that `allow` patterns match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// Subject common name.
    Cn,
    /// Subject organisational unit.
    Ou,
    /// DNS subjectAltName (case-insensitive).
    Dns,
    /// URI subjectAltName (SPIFFE IDs).
    Uri,
}

impl AllowPattern {
    /// Parses `cn:NAME`, `ou:NAME`, `dns:NAME` or `uri:URI`.
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        let (f, v) = s
            .split_once(':')
            .ok_or_else(|| format!("`{s}`: expected cn:, ou:, dns: or uri: followed by a value"))?;
        let field = match f.to_ascii_lowercase().as_str() {
            "cn" => Field::Cn,
            "ou" => Field::Ou,
            "dns" => Field::Dns,
            "uri" => Field::Uri,
            _ => return Err(format!("`{s}`: unknown field `{f}` (cn, ou, dns, uri)")),
        };
        if v.is_empty() || v[..v.len() - 1].contains('*') {
            return Err(format!(
                "`{s}`: the value must be non-empty and `*` may only end it"
            ));
        }
        let value = if field == Field::Dns {
            v.to_ascii_lowercase()
        } else {
            v.to_string()
        };
        Ok(AllowPattern { field, value })
    }

    fn matches_value(&self, got: &str) -> bool {
        let got = if self.field == Field::Dns {
            std::borrow::Cow::Owned(got.to_ascii_lowercase())
        } else {
            std::borrow::Cow::Borrowed(got)
        };
        match self.value.strip_suffix('*') {
            Some(prefix) => got.starts_with(prefix),
            None => *got == self.value,
        }
    }

    /// Whether the identity has a field value matching this pattern.
    pub fn matches(&self, id: &Identity) -> bool {
        let values = match self.field {
            Field::Cn => &id.cn,
            Field::Ou => &id.ou,
            Field::Dns => &id.dns,
            Field::Uri => &id.uri,
        };
        values.iter().any(|v| self.matches_value(v))
    }
}

/// Tunnel and client-certificate settings of one listener.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TunnelSettings {
    /// tcp/tls: the `[[upstream]]` the bytes go to.
    pub upstream: Option<String>,
    /// tcp/tls: idle timeout. Default [`DEFAULT_IDLE_TIMEOUT`].
    pub idle_timeout: Duration,
    /// tls/https: client certificates.
    pub client_auth: ClientAuth,
    /// PEM bundle of trusted client CAs (needed unless `client_auth = none`).
    pub client_ca: Option<PathBuf>,
    /// PEM CRL files, re-read at every reload.
    pub crls: Vec<PathBuf>,
    /// tls: certificates allowed through (any pattern matches); empty = any
    /// verified certificate.
    pub allow: Vec<AllowPattern>,
    /// https: header carrying the verified identity upstream (always
    /// stripped from client requests).
    pub identity_header: String,
    /// tcp/tls: speak TLS to the upstream.
    pub upstream_tls: Option<UpstreamTls>,
    /// tcp/tls: start each upstream connection with a PROXY protocol v2
    /// header (client address; for tls: version, cipher, SNI, client CN).
    pub proxy_protocol: bool,
}

/// `upstream_tls` of a tcp/tls listener: re-encryption towards the upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTls {
    /// PEM bundle of the CAs that may sign the upstream's certificate.
    pub ca: PathBuf,
    /// Name sent as SNI and checked against the upstream's certificate
    /// (a DNS name or an IP address).
    pub sni: String,
    /// Client certificate chain (PEM) presented to the upstream.
    pub cert: Option<PathBuf>,
    /// Its private key (PEM).
    pub key: Option<PathBuf>,
}

/// `upstream_tls = { ca = "...", sni = "...", cert = "...", key = "..." }`
/// as written.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstreamTls {
    ca: PathBuf,
    sni: String,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

/// The tunnel keys of a `[[listener]]` as written.
#[derive(Debug, Default)]
pub(crate) struct RawTunnelKeys {
    pub upstream: Option<Spanned<String>>,
    pub idle_timeout: Option<Spanned<String>>,
    pub client_auth: Option<Spanned<ClientAuth>>,
    pub client_ca: Option<Spanned<PathBuf>>,
    pub crl: Option<Spanned<Vec<PathBuf>>>,
    pub allow: Option<Spanned<Vec<String>>>,
    pub identity_header: Option<Spanned<String>>,
    pub upstream_tls: Option<Spanned<RawUpstreamTls>>,
    pub proxy_protocol: Option<Spanned<bool>>,
}

/// Validates the tunnel keys of one listener.
pub(crate) fn validate(v: &V, protocol: Protocol, raw: RawTunnelKeys) -> Result<TunnelSettings> {
    let tunnel = matches!(protocol, Protocol::Tcp | Protocol::Tls);
    let tls = matches!(protocol, Protocol::Tls | Protocol::Https);
    let mut s = TunnelSettings {
        idle_timeout: DEFAULT_IDLE_TIMEOUT,
        identity_header: DEFAULT_IDENTITY_HEADER.to_string(),
        ..TunnelSettings::default()
    };
    match raw.upstream {
        Some(u) if tunnel => s.upstream = Some(u.into_inner()),
        Some(u) => {
            return v.err(
                u.span(),
                "listener.upstream",
                "only valid on tcp and tls listeners (http listeners use [[route]])",
            )
        }
        None if tunnel => {
            return v.err(
                0..0,
                "listener.upstream",
                "tcp and tls listeners need `upstream = \"NAME\"`",
            )
        }
        None => {}
    }
    if let Some(t) = raw.idle_timeout {
        if !tunnel {
            return v.err(
                t.span(),
                "listener.idle_timeout",
                "only valid on tcp and tls listeners",
            );
        }
        match parse_duration(t.get_ref()) {
            Ok(d) if !d.is_zero() => s.idle_timeout = d,
            Ok(_) => {
                return v.err(
                    t.span(),
                    "listener.idle_timeout",
                    "must be greater than zero",
                )
            }
            Err(e) => return v.err(t.span(), "listener.idle_timeout", e),
        }
    }
    if let Some(a) = &raw.client_auth {
        if !tls {
            return v.err(
                a.span(),
                "listener.client_auth",
                "only valid on tls and https listeners",
            );
        }
        s.client_auth = *a.get_ref();
    }
    if let Some(ca) = raw.client_ca {
        if s.client_auth == ClientAuth::None {
            return v.err(
                ca.span(),
                "listener.client_ca",
                "needs client_auth = \"optional\" or \"required\"",
            );
        }
        s.client_ca = Some(ca.into_inner());
    } else if s.client_auth != ClientAuth::None {
        let span = raw.client_auth.as_ref().map(|a| a.span()).unwrap_or(0..0);
        return v.err(
            span,
            "listener.client_ca",
            "client_auth needs `client_ca = \"PATH\"` (a PEM CA bundle, e.g. pki/ca-bundle.pem)",
        );
    }
    if let Some(c) = raw.crl {
        if s.client_auth == ClientAuth::None {
            return v.err(
                c.span(),
                "listener.crl",
                "needs client_auth = \"optional\" or \"required\"",
            );
        }
        s.crls = c.into_inner();
    }
    if let Some(a) = raw.allow {
        if protocol != Protocol::Tls || s.client_auth == ClientAuth::None {
            return v.err(
                a.span(),
                "listener.allow",
                "only valid on tls listeners with client_auth",
            );
        }
        if a.get_ref().len() > MAX_ALLOW_PATTERNS {
            return v.err(
                a.span(),
                "listener.allow",
                format!("at most {MAX_ALLOW_PATTERNS} patterns"),
            );
        }
        for p in a.get_ref() {
            match AllowPattern::parse(p) {
                Ok(p) => s.allow.push(p),
                Err(e) => return v.err(a.span(), "listener.allow", e),
            }
        }
    }
    if let Some(h) = raw.identity_header {
        if protocol != Protocol::Https {
            return v.err(
                h.span(),
                "listener.identity_header",
                "only valid on https listeners",
            );
        }
        if http::HeaderName::from_bytes(h.get_ref().as_bytes()).is_err() {
            return v.err(
                h.span(),
                "listener.identity_header",
                "not a valid header name",
            );
        }
        s.identity_header = h.get_ref().to_ascii_lowercase();
    }
    if let Some(p) = raw.proxy_protocol {
        if !tunnel {
            return v.err(
                p.span(),
                "listener.proxy_protocol",
                "only valid on tcp and tls listeners",
            );
        }
        s.proxy_protocol = *p.get_ref();
    }
    if let Some(u) = raw.upstream_tls {
        let span = u.span();
        if !tunnel {
            return v.err(
                span,
                "listener.upstream_tls",
                "only valid on tcp and tls listeners (https routes speak plain HTTP upstream)",
            );
        }
        let u = u.into_inner();
        if rustls_pki_types::ServerName::try_from(u.sni.as_str()).is_err() {
            return v.err(
                span,
                "listener.upstream_tls.sni",
                format!("`{}` is not a DNS name or IP address", u.sni),
            );
        }
        if u.cert.is_some() != u.key.is_some() {
            return v.err(
                span,
                "listener.upstream_tls",
                "`cert` and `key` go together (the client certificate for the upstream)",
            );
        }
        s.upstream_tls = Some(UpstreamTls {
            ca: u.ca,
            sni: u.sni,
            cert: u.cert,
            key: u.key,
        });
    }
    Ok(s)
}

/// Builds the TLS client config towards the upstream of a tcp/tls
/// listener with `upstream_tls` (`None` without it). Files are read now, at
/// load and at every reload, so a bad file rejects the config with its path.
pub fn upstream_client_config(s: &TunnelSettings) -> Result<Option<Arc<rustls::ClientConfig>>> {
    let Some(u) = &s.upstream_tls else {
        return Ok(None);
    };
    let mut roots = RootCertStore::empty();
    let mut n = 0usize;
    for c in CertificateDer::pem_file_iter(&u.ca).map_err(|e| cert_err(&u.ca, format!("{e:?}")))? {
        let c = c.map_err(|e| cert_err(&u.ca, format!("invalid PEM: {e:?}")))?;
        n += 1;
        if n > MAX_TRUST_ITEMS {
            return Err(cert_err(
                &u.ca,
                format!("more than {MAX_TRUST_ITEMS} certificates"),
            ));
        }
        roots
            .add(c)
            .map_err(|e| cert_err(&u.ca, format!("not a usable CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(cert_err(&u.ca, "no CERTIFICATE in the upstream CA bundle"));
    }
    let b = rustls::ClientConfig::builder_with_provider(Arc::new(crate::tls::crypto_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| cert_err(&u.ca, e.to_string()))?
        .with_root_certificates(roots);
    let cfg = match (&u.cert, &u.key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .map_err(|e| cert_err(cert, format!("{e:?}")))?
                .take(MAX_TRUST_ITEMS)
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| cert_err(cert, format!("invalid PEM: {e:?}")))?;
            if chain.is_empty() {
                return Err(cert_err(cert, "no CERTIFICATE in the file"));
            }
            let k = rustls_pki_types::PrivateKeyDer::from_pem_file(key)
                .map_err(|e| cert_err(key, format!("no usable private key: {e:?}")))?;
            b.with_client_auth_cert(chain, k)
                .map_err(|e| cert_err(key, format!("key does not fit the certificate: {e}")))?
        }
        _ => b.with_no_client_auth(),
    };
    Ok(Some(Arc::new(cfg)))
}

// ------------------------------------------------------------- rustls setup

fn cert_err(path: &Path, message: impl Into<String>) -> Error {
    Error::Certificate {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Builds the client-certificate verifier of a listener (`None` when
/// `client_auth = none`). CA bundle and CRLs are read now: a reload re-reads
/// them, and open tunnels are re-checked against the new verifier.
pub fn client_verifier(
    s: &TunnelSettings,
) -> Result<Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>> {
    let Some(ca) = &s.client_ca else {
        return Ok(None);
    };
    if s.client_auth == ClientAuth::None {
        return Ok(None);
    }
    let mut roots = RootCertStore::empty();
    let mut n = 0usize;
    for c in CertificateDer::pem_file_iter(ca).map_err(|e| cert_err(ca, format!("{e:?}")))? {
        let c = c.map_err(|e| cert_err(ca, format!("invalid PEM: {e:?}")))?;
        n += 1;
        if n > MAX_TRUST_ITEMS {
            return Err(cert_err(
                ca,
                format!("more than {MAX_TRUST_ITEMS} certificates"),
            ));
        }
        roots
            .add(c)
            .map_err(|e| cert_err(ca, format!("not a usable CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(cert_err(ca, "no CERTIFICATE in the client CA bundle"));
    }
    let mut crls = Vec::new();
    for p in &s.crls {
        let before = crls.len();
        for c in CertificateRevocationListDer::pem_file_iter(p)
            .map_err(|e| cert_err(p, format!("cannot read CRL: {e:?}")))?
        {
            let c = c.map_err(|e| cert_err(p, format!("invalid CRL PEM: {e:?}")))?;
            crls.push(c);
            if crls.len() > MAX_TRUST_ITEMS {
                return Err(cert_err(p, format!("more than {MAX_TRUST_ITEMS} CRLs")));
            }
        }
        // A configured CRL file without a CRL (truncated, overwritten,
        // wrong file) must not silently turn revocation checking off.
        if crls.len() == before {
            return Err(cert_err(p, "no X509 CRL in the file"));
        }
    }
    let mut b = WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(crate::tls::crypto_provider()),
    );
    if !crls.is_empty() {
        // The device PKI publishes the issuing CA's CRL only; the CAs above
        // it are trusted as configured.
        b = b.with_crls(crls).only_check_end_entity_revocation();
    }
    if s.client_auth == ClientAuth::Optional {
        b = b.allow_unauthenticated();
    }
    let v = b.build().map_err(|e| {
        let path = s.crls.first().map(PathBuf::as_path).unwrap_or(ca);
        cert_err(path, format!("cannot build the client verifier: {e}"))
    })?;
    Ok(Some(v))
}

// ------------------------------------------------------------ identities

/// What a verified client certificate says about its holder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// Subject CN values.
    pub cn: Vec<String>,
    /// Subject OU values.
    pub ou: Vec<String>,
    /// DNS SANs.
    pub dns: Vec<String>,
    /// URI SANs.
    pub uri: Vec<String>,
}

impl Identity {
    /// Reads subject CN/OU and DNS/URI SANs from a DER certificate;
    /// `None` when it does not parse.
    pub fn from_der(der: &[u8]) -> Option<Identity> {
        use crate::tls::tlv;
        let (0x30, cert, _) = tlv(der)? else {
            return None;
        };
        let (0x30, tbs, _) = tlv(cert)? else {
            return None;
        };
        let mut rest = tbs;
        let (tag, _, r) = tlv(rest)?;
        if tag == 0xa0 {
            rest = r;
        }
        let (_, _, r) = tlv(rest)?; // serial
        let (_, _, r) = tlv(r)?; // signature algorithm
        let (_, _, r) = tlv(r)?; // issuer
        let (_, _, r) = tlv(r)?; // validity
        let (0x30, mut subject, r) = tlv(r)? else {
            return None;
        };
        let mut id = Identity::default();
        while !subject.is_empty() {
            let (_, set, next) = tlv(subject)?;
            subject = next;
            let mut set = set;
            while !set.is_empty() {
                let (_, atv, next) = tlv(set)?;
                set = next;
                let (0x06, oid, val) = tlv(atv)? else {
                    return None;
                };
                let (_, val, _) = tlv(val)?;
                let val = String::from_utf8_lossy(val).into_owned();
                match oid {
                    [0x55, 0x04, 0x03] => id.cn.push(val),
                    [0x55, 0x04, 0x0b] => id.ou.push(val),
                    _ => {}
                }
            }
        }
        let (_, _, mut r) = tlv(r)?; // spki
        while !r.is_empty() {
            let (tag, content, next) = tlv(r)?;
            r = next;
            if tag != 0xa3 {
                continue;
            }
            let (0x30, mut exts, _) = tlv(content)? else {
                return None;
            };
            while !exts.is_empty() {
                let (_, ext, next) = tlv(exts)?;
                exts = next;
                let (0x06, oid, e) = tlv(ext)? else {
                    return None;
                };
                if oid != [0x55, 0x1d, 0x11] {
                    continue;
                }
                let (mut tag, mut val, e2) = tlv(e)?;
                if tag == 0x01 {
                    (tag, val, _) = tlv(e2)?;
                }
                if tag != 0x04 {
                    return None;
                }
                let (0x30, mut gn, _) = tlv(val)? else {
                    return None;
                };
                while !gn.is_empty() {
                    let (t, v, next) = tlv(gn)?;
                    gn = next;
                    let s = String::from_utf8_lossy(v).into_owned();
                    match t {
                        0x82 => id.dns.push(s),
                        0x86 => id.uri.push(s),
                        _ => {}
                    }
                }
            }
        }
        Some(id)
    }

    /// One name for logs and the identity header: CN, else first URI SAN,
    /// else first DNS SAN.
    pub fn display_name(&self) -> String {
        self.cn
            .first()
            .or_else(|| self.uri.first())
            .or_else(|| self.dns.first())
            .cloned()
            .unwrap_or_default()
    }
}

/// The verified identity of a TLS connection's client, if it sent a certificate.
pub fn peer_identity(conn: &rustls::ServerConnection) -> Option<Identity> {
    let leaf = conn.peer_certificates()?.first()?;
    Identity::from_der(leaf.as_ref())
}

/// Records the verified client identity of an https connection.
pub fn set_identity(
    slot: &std::sync::OnceLock<http::HeaderValue>,
    conn: &rustls::ServerConnection,
) {
    if let Some(id) = peer_identity(conn) {
        if let Ok(v) = http::HeaderValue::from_str(&id.display_name()) {
            let _ = slot.set(v);
        }
    }
}

/// On https listeners: removes the identity header a client sent, and sets
/// it to the verified client-certificate identity when there is one.
pub fn forward_identity(
    h: &mut http::HeaderMap,
    l: &crate::server::ListenerRt,
    identity: Option<&http::HeaderValue>,
) {
    if l.cfg.protocol != Protocol::Https {
        return;
    }
    let Ok(name) = http::HeaderName::from_bytes(l.cfg.tunnel.identity_header.as_bytes()) else {
        return;
    };
    h.remove(&name);
    if let Some(v) = identity {
        h.insert(name, v.clone());
    }
}

/// Why a TLS handshake failed, in words for the refusal event.
pub fn refusal_reason(e: &std::io::Error) -> String {
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(re) => rustls_reason(re),
        None => format!("handshake failed: {e}"),
    }
}

/// A certificate verification failure in words.
fn rustls_reason(re: &rustls::Error) -> String {
    match re {
        rustls::Error::NoCertificatesPresented => "no client certificate".to_string(),
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => "certificate from an unknown CA".to_string(),
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "certificate expired".to_string()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "certificate not yet valid".to_string()
            }
            CertificateError::Revoked => "certificate revoked".to_string(),
            CertificateError::BadSignature => "bad certificate signature".to_string(),
            other => format!("invalid certificate: {other:?}"),
        },
        other => format!("handshake failed: {other}"),
    }
}

// ------------------------------------------------------------ accept loop

/// Whether the listener at `key` is a tunnel (tcp or tls).
pub fn owns(shared: &Shared, key: SocketAddr) -> bool {
    shared
        .runtime
        .load()
        .listeners
        .get(&key)
        .is_some_and(|l| matches!(l.cfg.protocol, Protocol::Tcp | Protocol::Tls))
}

/// What a tunnel needs besides its socket, read from the config
/// generation current when it was accepted.
struct Conn {
    peer: SocketAddr,
    l: Arc<crate::server::ListenerRt>,
    servers: Vec<SocketAddr>,
    start: usize,
    connect_timeout: Duration,
    handshake_timeout: Duration,
    grace: Duration,
    shutdown: watch::Receiver<bool>,
    mon: Arc<monitor::Monitor>,
    /// Changes after each applied reload: see [`revalidate`].
    generation: watch::Receiver<u64>,
    shared: Arc<Shared>,
    key: SocketAddr,
}

/// Accept loop of a tcp or tls listener; each accepted connection reads
/// the current config generation (so reloaded CRLs apply to new
/// connections, and open tunnels are re-checked by `revalidate`). Returns as soon as `stop` fires, which
/// closes the listening socket: new connections are refused at once.
pub async fn accept_loop(
    listener: TcpListener,
    key: SocketAddr,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let rr = Arc::new(AtomicUsize::new(0));
    loop {
        let accepted = tokio::select! {
            _ = stop.changed() => break,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, peer)) => {
                let Some(shield) = crate::shield_glue::on_accept(&shared, peer.ip()) else {
                    continue;
                };
                let rt = shared.runtime.load();
                let Some(l) = rt.listeners.get(&key).cloned() else {
                    continue;
                };
                let Some(permit) =
                    crate::server::ConnPermit::acquire(&shared, peer.ip(), &rt.config.limits)
                else {
                    tracing::info!(target: LOG_TARGET, %peer, listener = %l.cfg.name, reason = "connection cap reached", "tunnel refused");
                    crate::events_glue::tunnel_deny(
                        &shared.monitor,
                        peer.ip(),
                        &l.cfg.name,
                        "",
                        "connection cap reached",
                    );
                    continue;
                };
                let servers: Vec<SocketAddr> = l
                    .cfg
                    .tunnel
                    .upstream
                    .as_ref()
                    .and_then(|u| rt.pools.get(u))
                    .map(|p| p.config.servers.iter().map(|s| s.addr).collect())
                    .unwrap_or_default();
                let conn = Conn {
                    peer,
                    l,
                    servers,
                    start: rr.fetch_add(1, Ordering::Relaxed),
                    connect_timeout: rt.config.limits.upstream_connect_timeout,
                    handshake_timeout: rt.config.limits.header_read_timeout,
                    grace: rt.config.server.shutdown_grace,
                    shutdown: shared.shutdown_signal(),
                    mon: shared.monitor.clone(),
                    generation: shared.generation_signal(),
                    shared: shared.clone(),
                    key,
                };
                drop(rt);
                tokio::spawn(async move {
                    let _shield = shield;
                    let _permit = permit;
                    serve(stream, conn).await;
                });
            }
            Err(e) => {
                tracing::warn!(target: LOG_TARGET, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn connect_upstream(
    servers: &[SocketAddr],
    start: usize,
    timeout: Duration,
) -> Option<TcpStream> {
    for i in 0..servers.len() {
        let addr = servers[(start + i) % servers.len()];
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                return Some(s);
            }
            Ok(Err(e)) => {
                tracing::debug!(target: LOG_TARGET, upstream = %addr, error = %e, "tunnel upstream connect failed")
            }
            Err(_) => {
                tracing::debug!(target: LOG_TARGET, upstream = %addr, "tunnel upstream connect timed out")
            }
        }
    }
    None
}

fn refuse(c: &Conn, reason: &str, identity: &str) {
    tracing::info!(
        target: LOG_TARGET,
        peer = %c.peer,
        listener = c.l.cfg.name.as_str(),
        identity,
        reason,
        "tunnel refused"
    );
    crate::events_glue::tunnel_deny(&c.mon, c.peer.ip(), &c.l.cfg.name, identity, reason);
}

async fn serve(stream: TcpStream, c: Conn) {
    let _ = stream.set_nodelay(true);
    let began = Instant::now();
    let local = stream.local_addr().ok();
    let pp =
        |tls: Option<&crate::proxy_protocol::TlsInfo>| match (c.l.cfg.tunnel.proxy_protocol, local)
        {
            (true, Some(local)) => Some(crate::proxy_protocol::v2_header(c.peer, local, tls)),
            _ => None,
        };
    match &c.l.tls {
        None => to_upstream(stream, &c, "", began, pp(None), None).await,
        Some(acceptor) => {
            let tls = match tokio::time::timeout(c.handshake_timeout, acceptor.accept(stream)).await
            {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return refuse(&c, &refusal_reason(&e), ""),
                Err(_) => return refuse(&c, "handshake timed out", ""),
            };
            let id = peer_identity(tls.get_ref().1);
            let ident = id.as_ref().map(Identity::display_name).unwrap_or_default();
            let allow = &c.l.cfg.tunnel.allow;
            if !allow.is_empty() {
                let ok = id
                    .as_ref()
                    .is_some_and(|id| allow.iter().any(|p| p.matches(id)));
                if !ok {
                    refuse(&c, "certificate not allowed by listener policy", &ident);
                    let mut tls = tls;
                    let _ = tls.shutdown().await;
                    return;
                }
            }
            let info = tls_info(tls.get_ref().1, id.as_ref());
            let chain: Vec<CertificateDer<'static>> = tls
                .get_ref()
                .1
                .peer_certificates()
                .map(|c| c.iter().map(|d| d.clone().into_owned()).collect())
                .unwrap_or_default();
            to_upstream(tls, &c, &ident, began, pp(Some(&info)), Some(chain)).await;
        }
    }
}

/// What the TLS layer established, for the PROXY v2 header.
fn tls_info(
    conn: &rustls::ServerConnection,
    id: Option<&Identity>,
) -> crate::proxy_protocol::TlsInfo {
    crate::proxy_protocol::TlsInfo {
        version: match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".into(),
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".into(),
            Some(v) => format!("{v:?}"),
            None => String::new(),
        },
        cipher: conn
            .negotiated_cipher_suite()
            .and_then(|s| s.suite().as_str())
            .unwrap_or("")
            .to_string(),
        sni: conn.server_name().map(str::to_string),
        client_cn: id.and_then(|i| i.cn.first().cloned()),
        client_cert: conn.peer_certificates().is_some_and(|c| !c.is_empty()),
    }
}

/// Connects the upstream (over TLS with `upstream_tls`), sends the PROXY
/// header when configured, and pipes.
async fn to_upstream<C>(
    client: C,
    c: &Conn,
    ident: &str,
    began: Instant,
    pp: Option<Vec<u8>>,
    chain: Option<Vec<CertificateDer<'static>>>,
) where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let Some(mut up) = connect_upstream(&c.servers, c.start, c.connect_timeout).await else {
        return refuse(c, "upstream unreachable", ident);
    };
    if let Some(h) = pp {
        match tokio::time::timeout(c.connect_timeout, up.write_all(&h)).await {
            Ok(Ok(())) => {}
            _ => return refuse(c, "upstream did not take the PROXY header", ident),
        }
    }
    crate::events_glue::tunnel_accept(&c.mon, c.peer.ip(), &c.l.cfg.name, ident);
    let (Some(cfg), Some(u)) = (&c.l.upstream_tls, &c.l.cfg.tunnel.upstream_tls) else {
        return pipe(client, up, c, ident, began, chain.as_deref()).await;
    };
    // Validated at config load; a failure here only means a changed config.
    let Ok(name) = rustls_pki_types::ServerName::try_from(u.sni.clone()) else {
        return refuse(c, "upstream_tls.sni is not a valid name", ident);
    };
    let connector = tokio_rustls::TlsConnector::from(cfg.clone());
    match tokio::time::timeout(c.handshake_timeout, connector.connect(name, up)).await {
        Ok(Ok(up)) => pipe(client, up, c, ident, began, chain.as_deref()).await,
        Ok(Err(e)) => refuse(c, &format!("upstream TLS failed: {e}"), ident),
        Err(_) => refuse(c, "upstream TLS handshake timed out", ident),
    }
}

/// Milliseconds since `began`, for the idle clock.
fn ms_since(began: Instant) -> u64 {
    u64::try_from(began.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Copies one direction until EOF, then half-closes the writer.
async fn copy_half<R, W>(
    mut r: R,
    mut w: W,
    count: &AtomicU64,
    last: &AtomicU64,
    began: Instant,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; COPY_BUF];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(n) => n,
            Err(e) => {
                // Pass the end on (e.g. a TLS client that closed without
                // close_notify), or the other side would wait for bytes
                // that never come until the idle timeout.
                let _ = w.shutdown().await;
                return Err(e);
            }
        };
        if n == 0 {
            // Half-close: the other direction keeps flowing.
            let _ = w.shutdown().await;
            return Ok(());
        }
        w.write_all(&buf[..n]).await?;
        count.fetch_add(n as u64, Ordering::Relaxed);
        last.store(ms_since(began), Ordering::Relaxed);
    }
}

/// Resolves when graceful shutdown has started and the grace period, less
/// [`SHUTDOWN_CLOSE_MARGIN`], has passed; never when shutdown does not come.
async fn shutdown_deadline(mut sd: watch::Receiver<bool>, grace: Duration) {
    while !*sd.borrow_and_update() {
        if sd.changed().await.is_err() {
            // The gateway is gone without a shutdown: nothing to wait for.
            std::future::pending::<()>().await;
        }
    }
    tokio::time::sleep(grace.saturating_sub(SHUTDOWN_CLOSE_MARGIN)).await;
}

/// Why a tunnel accepted under an older config generation may not stay
/// open under the current one (`None`: it may). A reload that publishes a
/// CRL revoking the device, drops its CA, or narrows the listener's `allow`
/// policy cuts the tunnels it would refuse now, the way a revocation is
/// expected to work; a certificate that merely expired since the handshake
/// is cut for the same reason. `chain` is the client's certificates, end
/// entity first (`None` on tcp listeners, empty when none was presented).
fn revalidate(c: &Conn, chain: Option<&[CertificateDer<'static>]>) -> Option<String> {
    let rt = c.shared.runtime.load();
    // A listener removed from the config stops accepting; its open
    // tunnels drain as before.
    let l = rt.listeners.get(&c.key)?;
    if let Some(v) = &l.client_verifier {
        match chain.and_then(|ch| ch.split_first()) {
            Some((ee, rest)) => {
                if let Err(e) = v.verify_client_cert(ee, rest, rustls_pki_types::UnixTime::now()) {
                    return Some(format!("{} (after reload)", rustls_reason(&e)));
                }
            }
            None if v.client_auth_mandatory() => {
                return Some("no client certificate (required after reload)".to_string());
            }
            None => {}
        }
    }
    let allow = &l.cfg.tunnel.allow;
    if !allow.is_empty() {
        let id = chain
            .and_then(<[_]>::first)
            .and_then(|d| Identity::from_der(d));
        if !id.is_some_and(|id| allow.iter().any(|p| p.matches(&id))) {
            return Some("certificate no longer allowed by listener policy".to_string());
        }
    }
    None
}

async fn pipe<C, U>(
    client: C,
    up: U,
    c: &Conn,
    identity: &str,
    began: Instant,
    chain: Option<&[CertificateDer<'static>]>,
) where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let (cr, cw) = tokio::io::split(client);
    let (ur, uw) = tokio::io::split(up);
    let to_up = AtomicU64::new(0);
    let to_client = AtomicU64::new(0);
    let last = AtomicU64::new(0);
    let copy = async {
        let (a, b) = tokio::join!(
            copy_half(cr, uw, &to_up, &last, began),
            copy_half(ur, cw, &to_client, &last, began)
        );
        match (a, b) {
            (Ok(()), Ok(())) => "closed".to_string(),
            // Many device stacks just close the socket; the bytes before
            // it were delivered, so this is an ordinary end.
            (Err(e), _) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                "closed (client sent no close_notify)".to_string()
            }
            (Err(e), _) => format!("client error: {e}"),
            (_, Err(e)) => format!("upstream error: {e}"),
        }
    };
    let idle_ms = u64::try_from(c.l.cfg.tunnel.idle_timeout.as_millis()).unwrap_or(u64::MAX);
    let watchdog = async {
        loop {
            let since = ms_since(began).saturating_sub(last.load(Ordering::Relaxed));
            if since >= idle_ms {
                return "idle timeout".to_string();
            }
            tokio::time::sleep(Duration::from_millis(idle_ms - since)).await;
        }
    };
    let recheck = async {
        let mut generation = c.generation.clone();
        loop {
            if generation.changed().await.is_err() {
                // The gateway is gone: nothing will reload any more.
                std::future::pending::<()>().await;
            }
            if let Some(reason) = revalidate(c, chain) {
                return reason;
            }
        }
    };
    let reason = tokio::select! {
        r = copy => r,
        r = watchdog => r,
        r = recheck => r,
        () = shutdown_deadline(c.shutdown.clone(), c.grace) => "shutdown".to_string(),
    };
    tracing::info!(
        target: LOG_TARGET,
        peer = %c.peer,
        listener = c.l.cfg.name.as_str(),
        identity,
        bytes_in = to_up.load(Ordering::Relaxed),
        bytes_out = to_client.load(Ordering::Relaxed),
        duration_ms = ms_since(began),
        reason = %reason,
        "tunnel closed"
    );
    crate::events_glue::tunnel_close(
        &c.mon,
        c.peer.ip(),
        &c.l.cfg.name,
        identity,
        &reason,
        to_up.load(Ordering::Relaxed),
        to_client.load(Ordering::Relaxed),
        ms_since(began),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_parse_and_match() {
        let id = Identity {
            cn: vec!["sensor-01".into()],
            ou: vec!["devices".into()],
            dns: vec!["Sensor-01.iot.acme".into()],
            uri: vec!["spiffe://acme/device/sensor-01".into()],
        };
        let m = |s: &str| AllowPattern::parse(s).unwrap().matches(&id);
        assert!(m("cn:sensor-01"));
        assert!(m("cn:sensor-*"));
        assert!(!m("cn:sensor-0"));
        assert!(m("ou:devices"));
        assert!(m("dns:sensor-01.IOT.acme"));
        assert!(m("uri:spiffe://acme/device/*"));
        assert!(!m("uri:spiffe://other/*"));
        assert!(AllowPattern::parse("xx:1").is_err());
        assert!(AllowPattern::parse("cn:").is_err());
        assert!(AllowPattern::parse("cn:a*b").is_err());
        assert!(AllowPattern::parse("nocolon").is_err());
    }

    #[test]
    fn identity_from_rcgen_certificate() {
        let mut p = rcgen::CertificateParams::new(vec!["dev.example".to_string()]).unwrap();
        p.subject_alt_names.push(rcgen::SanType::URI(
            rcgen::Ia5String::try_from("spiffe://acme/device/x").unwrap(),
        ));
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "dev-x");
        p.distinguished_name
            .push(rcgen::DnType::OrganizationalUnitName, "devices");
        let kp = rcgen::KeyPair::generate().unwrap();
        let c = p.self_signed(&kp).unwrap();
        let id = Identity::from_der(c.der()).unwrap();
        assert_eq!(id.cn, vec!["dev-x"]);
        assert_eq!(id.ou, vec!["devices"]);
        assert_eq!(id.dns, vec!["dev.example"]);
        assert_eq!(id.uri, vec!["spiffe://acme/device/x"]);
        assert_eq!(id.display_name(), "dev-x");
        assert_eq!(Identity::from_der(b"\x30\x82garbage"), None);
        assert_eq!(Identity::from_der(&[]), None);
    }

    fn settings(u: UpstreamTls) -> TunnelSettings {
        TunnelSettings {
            upstream_tls: Some(u),
            ..TunnelSettings::default()
        }
    }

    #[test]
    fn upstream_client_config_reports_the_bad_file() {
        let dir = std::env::temp_dir().join(format!("tunnel-uptls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let kp = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(vec!["ca.test".to_string()]).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = p.self_signed(&kp).unwrap();
        let ca_pem = dir.join("ca.pem");
        std::fs::write(&ca_pem, ca.pem()).unwrap();
        let other = rcgen::KeyPair::generate().unwrap();
        let key_pem = dir.join("other.key");
        std::fs::write(&key_pem, other.serialize_pem()).unwrap();
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "not pem\n").unwrap();
        let u = |ca: &Path, cert: Option<&Path>, key: Option<&Path>| UpstreamTls {
            ca: ca.to_path_buf(),
            sni: "up.test".into(),
            cert: cert.map(Path::to_path_buf),
            key: key.map(Path::to_path_buf),
        };
        // Not configured: nothing to build.
        assert!(upstream_client_config(&TunnelSettings::default())
            .unwrap()
            .is_none());
        // A CA bundle alone, and one with a client certificate.
        assert!(upstream_client_config(&settings(u(&ca_pem, None, None)))
            .unwrap()
            .is_some());
        let e = |s: TunnelSettings| upstream_client_config(&s).unwrap_err().to_string();
        let msg = e(settings(u(&dir.join("missing.pem"), None, None)));
        assert!(msg.contains("missing.pem"), "{msg}");
        let msg = e(settings(u(&junk, None, None)));
        assert!(
            msg.contains("junk.pem") && msg.contains("no CERTIFICATE"),
            "{msg}"
        );
        // A key that does not belong to the certificate.
        let msg = e(settings(u(&ca_pem, Some(&ca_pem), Some(&key_pem))));
        assert!(
            msg.contains("other.key") && msg.contains("does not fit"),
            "{msg}"
        );
        let msg = e(settings(u(&ca_pem, Some(&ca_pem), Some(&junk))));
        assert!(
            msg.contains("junk.pem") && msg.contains("private key"),
            "{msg}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
