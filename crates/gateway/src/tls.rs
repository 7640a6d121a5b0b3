//! TLS: certificate loading, SNI selection, the rustls server config
//! (TLS 1.2/1.3, forward-secret AEAD suites only, ALPN h2 + http/1.1) and the
//! self-signed development certificate.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::crypto::ring as provider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{CertFiles, ListenerConfig};
use crate::error::{Error, Result};

/// File names of the development certificate in the data directory.
pub const DEV_CERT_FILE: &str = "dev-cert.pem";
/// File name of the development key in the data directory.
pub const DEV_KEY_FILE: &str = "dev-key.pem";

/// A loaded certificate with the facts the gateway reports about it.
#[derive(Clone)]
pub struct LoadedCert {
    /// Chain + signing key.
    pub key: Arc<CertifiedKey>,
    /// DNS names from the subjectAltName extension (lowercase).
    pub names: Vec<String>,
    /// notAfter as Unix seconds.
    pub not_after: i64,
    /// The certificate file.
    pub path: PathBuf,
}

impl fmt::Debug for LoadedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedCert")
            .field("names", &self.names)
            .field("not_after", &self.not_after)
            .field("path", &self.path)
            .finish()
    }
}

fn cert_err(path: &Path, message: impl Into<String>) -> Error {
    Error::Certificate {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// The crypto provider: *ring*, with only forward-secret AEAD suites (all
/// TLS 1.3 suites; ECDHE + AES-GCM/ChaCha20-Poly1305 for TLS 1.2).
pub fn crypto_provider() -> rustls::crypto::CryptoProvider {
    use provider::cipher_suite::*;
    rustls::crypto::CryptoProvider {
        cipher_suites: vec![
            TLS13_AES_256_GCM_SHA384,
            TLS13_AES_128_GCM_SHA256,
            TLS13_CHACHA20_POLY1305_SHA256,
            TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ],
        ..provider::default_provider()
    }
}

/// Loads a PEM chain and key, checks they belong together.
pub fn load_cert(cert: &Path, key: &Path) -> Result<LoadedCert> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| cert_err(cert, pem_msg(e)))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| cert_err(cert, pem_msg(e)))?;
    let Some(leaf) = chain.first() else {
        return Err(cert_err(cert, "no CERTIFICATE block in the PEM file"));
    };
    let (not_after, names) =
        parse_leaf(leaf).ok_or_else(|| cert_err(cert, "not a valid X.509 certificate"))?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| cert_err(key, pem_msg(e)))?;
    let ck = CertifiedKey::from_der(chain, key_der, &crypto_provider()).map_err(|e| {
        cert_err(
            key,
            format!("key does not fit certificate {}: {e}", cert.display()),
        )
    })?;
    Ok(LoadedCert {
        key: Arc::new(ck),
        names,
        not_after,
        path: cert.to_path_buf(),
    })
}

fn pem_msg(e: rustls_pki_types::pem::Error) -> String {
    match e {
        rustls_pki_types::pem::Error::Io(io) if io.kind() == std::io::ErrorKind::NotFound => {
            "file not found".to_string()
        }
        rustls_pki_types::pem::Error::Io(io) => format!("cannot read: {io}"),
        rustls_pki_types::pem::Error::NoItemsFound => {
            "no PEM item of the expected type (CERTIFICATE / PRIVATE KEY)".to_string()
        }
        other => format!("invalid PEM: {other:?}"),
    }
}

/// Picks the certificate by SNI: exact name, then `*.` wildcard, then the
/// listener's first certificate.
pub struct SniResolver {
    exact: HashMap<String, Arc<CertifiedKey>>,
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

impl fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SniResolver")
            .field("exact", &self.exact.keys().collect::<Vec<_>>())
            .field("wildcard", &self.wildcard.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl SniResolver {
    /// Builds a resolver; `certs` must not be empty.
    pub fn new(certs: &[LoadedCert]) -> Option<Self> {
        let default = certs.first()?.key.clone();
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        for c in certs {
            for n in &c.names {
                match n.strip_prefix("*.") {
                    Some(suffix) => {
                        wildcard
                            .entry(suffix.to_string())
                            .or_insert_with(|| c.key.clone());
                    }
                    None => {
                        exact.entry(n.clone()).or_insert_with(|| c.key.clone());
                    }
                }
            }
        }
        Some(SniResolver {
            exact,
            wildcard,
            default,
        })
    }

    /// The certificate for a server name.
    pub fn pick(&self, sni: Option<&str>) -> Arc<CertifiedKey> {
        if let Some(name) = sni {
            let name = name.to_ascii_lowercase();
            if let Some(k) = self.exact.get(&name) {
                return k.clone();
            }
            if let Some((_, parent)) = name.split_once('.') {
                if let Some(k) = self.wildcard.get(parent) {
                    return k.clone();
                }
            }
        }
        self.default.clone()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.pick(hello.server_name()))
    }
}

/// Builds the rustls server config of an https listener.
pub fn server_config(certs: &[LoadedCert]) -> Result<Arc<rustls::ServerConfig>> {
    let resolver =
        SniResolver::new(certs).ok_or_else(|| cert_err(Path::new("-"), "no certificate"))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(crypto_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| cert_err(Path::new("-"), e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Builds the rustls server config of an https or tls listener: client
/// certificates per `client_auth`/`client_ca`/`crl`, ALPN only on https.
pub fn listener_server_config(
    l: &ListenerConfig,
    certs: &[LoadedCert],
    client_verifier: Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>,
) -> Result<Arc<rustls::ServerConfig>> {
    let resolver =
        SniResolver::new(certs).ok_or_else(|| cert_err(Path::new("-"), "no certificate"))?;
    let b = rustls::ServerConfig::builder_with_provider(Arc::new(crypto_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| cert_err(Path::new("-"), e.to_string()))?;
    let b = match client_verifier {
        Some(v) => b.with_client_cert_verifier(v),
        None => b.with_no_client_auth(),
    };
    let mut cfg = b.with_cert_resolver(Arc::new(resolver));
    if l.protocol == crate::config::Protocol::Https {
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    }
    Ok(Arc::new(cfg))
}

/// Loads a listener's certificates, or the development certificate
/// (generated into `data_dir` when missing) when none is configured.
pub fn listener_certs(l: &ListenerConfig, data_dir: &Path) -> Result<Vec<LoadedCert>> {
    if l.certificates.is_empty() {
        let (cert, key) = dev_certificate(data_dir)?;
        return Ok(vec![load_cert(&cert, &key)?]);
    }
    l.certificates
        .iter()
        .map(|c: &CertFiles| {
            load_cert(&c.cert, &c.key).map_err(|e| match e {
                Error::Certificate { path, message } => Error::Certificate {
                    path,
                    message: format!(
                        "{message} (configured at {}:{}:{})",
                        c.origin.file, c.origin.line, c.origin.column
                    ),
                },
                other => other,
            })
        })
        .collect()
}

/// Returns (cert, key) paths of the self-signed development certificate for
/// `localhost`, `127.0.0.1` and `::1`, generating it if it does not exist.
pub fn dev_certificate(data_dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let cert = data_dir.join(DEV_CERT_FILE);
    let key = data_dir.join(DEV_KEY_FILE);
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    std::fs::create_dir_all(data_dir).map_err(|e| {
        Error::io(
            format!("cannot create data directory {}", data_dir.display()),
            e,
        )
    })?;
    let gen_err = |e: rcgen::Error| cert_err(&cert, format!("cannot generate: {e}"));
    let mut params = rcgen::CertificateParams::new(vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ])
    .map_err(gen_err)?;
    let year = 1970 + (now_unix() / 31_556_952) as i32;
    params.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
    params.not_after = rcgen::date_time_ymd(year + 1, 12, 31);
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        "palisade development certificate",
    );
    let kp = rcgen::KeyPair::generate().map_err(gen_err)?;
    let c = params.self_signed(&kp).map_err(gen_err)?;
    write_private(&key, kp.serialize_pem().as_bytes())?;
    std::fs::write(&cert, c.pem())
        .map_err(|e| Error::io(format!("cannot write {}", cert.display()), e))?;
    tracing::warn!(
        cert = %cert.display(),
        "https listener without certificate: generated a self-signed DEVELOPMENT certificate; configure [[listener.certificate]] for production"
    );
    Ok((cert, key))
}

fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
    f.write_all(data)
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
}

/// Current Unix time in seconds.
pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

// ------------------------------------------------------------ minimal DER

/// Reads one DER TLV: (tag, content, rest).
pub(crate) fn tlv(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = data.split_first()?;
    let (&l0, rest) = rest.split_first()?;
    let (len, rest) = if l0 < 0x80 {
        (l0 as usize, rest)
    } else {
        let n = (l0 & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |a, &b| (a << 8) | b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// Extracts notAfter (Unix seconds) and subjectAltName DNS names of a certificate.
fn parse_leaf(der: &[u8]) -> Option<(i64, Vec<String>)> {
    let (0x30, cert, _) = tlv(der)? else {
        return None;
    };
    let (0x30, tbs, _) = tlv(cert)? else {
        return None;
    };
    let mut rest = tbs;
    let (tag, _, r) = tlv(rest)?;
    if tag == 0xa0 {
        rest = r; // explicit version
    }
    let (_, _, r) = tlv(rest)?; // serial
    let (_, _, r) = tlv(r)?; // signature algorithm
    let (_, _, r) = tlv(r)?; // issuer
    let (0x30, validity, r) = tlv(r)? else {
        return None;
    };
    let (_, _, v) = tlv(validity)?; // notBefore
    let (ttag, tval, _) = tlv(v)?;
    let not_after = parse_time(ttag, tval)?;
    let (_, _, r) = tlv(r)?; // subject
    let (_, _, mut r) = tlv(r)?; // spki
    let mut names = Vec::new();
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
            let (0x06, oid, mut e) = tlv(ext)? else {
                return None;
            };
            if oid != [0x55, 0x1d, 0x11] {
                continue;
            }
            let (mut tag, mut val, mut e2) = tlv(e)?;
            if tag == 0x01 {
                (tag, val, e2) = tlv(e2)?; // critical flag
            }
            let _ = e2;
            if tag != 0x04 {
                return None;
            }
            let (0x30, mut gn, _) = tlv(val)? else {
                return None;
            };
            while !gn.is_empty() {
                let (t, v, next) = tlv(gn)?;
                gn = next;
                if t == 0x82 {
                    if let Ok(s) = std::str::from_utf8(v) {
                        names.push(s.to_ascii_lowercase());
                    }
                }
            }
            e = &[];
            let _ = e;
        }
    }
    Some((not_after, names))
}

fn parse_time(tag: u8, v: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(v).ok()?;
    let s = s.strip_suffix('Z')?;
    let (year, rest) = match tag {
        0x17 if s.len() == 12 => {
            let yy: i64 = s.get(..2)?.parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, s.get(2..)?)
        }
        0x18 if s.len() == 14 => (s.get(..4)?.parse().ok()?, s.get(4..)?),
        _ => return None,
    };
    let num = |i: usize| -> Option<i64> { rest.get(i..i + 2)?.parse().ok() };
    let (mo, d, h, mi, se) = (num(0)?, num(2)?, num(4)?, num(6)?, num(8)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    Some(days_from_civil(year, mo, d) * 86_400 + h * 3600 + mi * 60 + se)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn make(dir: &Path, name: &str, sans: &[&str]) -> (PathBuf, PathBuf) {
        let mut p =
            rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        p.not_after = rcgen::date_time_ymd(2040, 6, 1);
        let kp = rcgen::KeyPair::generate().unwrap();
        let c = p.self_signed(&kp).unwrap();
        let cert = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, c.pem()).unwrap();
        std::fs::write(&key, kp.serialize_pem()).unwrap();
        (cert, key)
    }

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("palisade-tls-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn time_parsing() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(parse_time(0x17, b"700102000000Z"), Some(86_400));
        assert_eq!(parse_time(0x18, b"20400601000000Z"), Some(2_222_121_600));
        assert_eq!(parse_time(0x17, b"garbage"), None);
    }

    #[test]
    fn loads_and_picks_by_sni() {
        let d = tmpdir("sni");
        let (c1, k1) = make(&d, "a", &["a.example.com"]);
        let (c2, k2) = make(&d, "w", &["*.example.org", "example.org"]);
        let a = load_cert(&c1, &k1).unwrap();
        let w = load_cert(&c2, &k2).unwrap();
        assert_eq!(a.names, vec!["a.example.com"]);
        assert_eq!(a.not_after, 2_222_121_600);
        let r = SniResolver::new(&[a.clone(), w.clone()]).unwrap();
        assert!(Arc::ptr_eq(&r.pick(Some("A.example.com")), &a.key));
        assert!(Arc::ptr_eq(&r.pick(Some("x.example.org")), &w.key));
        assert!(Arc::ptr_eq(&r.pick(Some("example.org")), &w.key));
        assert!(Arc::ptr_eq(&r.pick(Some("other.net")), &a.key));
        assert!(Arc::ptr_eq(&r.pick(None), &a.key));
        assert!(server_config(&[a, w]).is_ok());
    }

    #[test]
    fn clear_errors_for_bad_files() {
        let d = tmpdir("bad");
        let (c1, k1) = make(&d, "a", &["a"]);
        let (_, k2) = make(&d, "b", &["b"]);
        let e = load_cert(&d.join("missing.pem"), &k1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.pem") && e.contains("not found"), "{e}");
        let e = load_cert(&c1, &k2).unwrap_err().to_string();
        assert!(e.contains("does not fit"), "{e}");
        std::fs::write(d.join("junk.pem"), "hello").unwrap();
        let e = load_cert(&d.join("junk.pem"), &k1).unwrap_err().to_string();
        assert!(e.contains("junk.pem"), "{e}");
    }

    #[test]
    fn dev_certificate_is_generated_once() {
        let d = tmpdir("dev");
        let _ = std::fs::remove_file(d.join(DEV_CERT_FILE));
        let (c, k) = dev_certificate(&d).unwrap();
        let first = std::fs::read(&c).unwrap();
        let l = load_cert(&c, &k).unwrap();
        assert_eq!(l.names, vec!["localhost"]);
        assert!(l.not_after > now_unix());
        let (c2, _) = dev_certificate(&d).unwrap();
        assert_eq!(std::fs::read(c2).unwrap(), first);
    }
}
