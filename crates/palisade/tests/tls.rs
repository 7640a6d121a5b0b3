//! The https listener: handshakes with rustls and with Python's ssl
//! (OpenSSL), TLS 1.2/1.3 only with forward-secret AEAD suites, h2 and
//! http/1.1 via ALPN, certificates chosen by SNI, the self-signed development
//! certificate, HSTS and the HTTP→HTTPS redirect.
//!
//! Certificates are made at test time with rcgen: a test CA and leaves signed
//! by it, so clients verify the chain and the name for real.

// Test helpers: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use rustls::pki_types::{CertificateDer, ServerName};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

const TLS_CLIENT_PY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/python/tls_client.py"
);

/// A test CA plus leaf certificates written as PEM files.
struct Pki {
    dir: TempDir,
    ca_pem: PathBuf,
    ca_der: CertificateDer<'static>,
    ca: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
}

/// One leaf: PEM files and its DER.
struct Leaf {
    cert: PathBuf,
    key: PathBuf,
    der: CertificateDer<'static>,
}

impl Pki {
    fn new() -> Pki {
        let dir = TempDir::new("pki");
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "palisade test CA");
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let ca = params.self_signed(&ca_key).unwrap();
        let ca_pem = dir.write("ca.pem", ca.pem());
        let ca_der = ca.der().clone();
        Pki {
            dir,
            ca_pem,
            ca_der,
            ca,
            ca_key,
        }
    }

    fn leaf(&self, file: &str, names: &[&str]) -> Leaf {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress([127, 0, 0, 1].into()));
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, names[0]);
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        Leaf {
            cert: self.dir.write(&format!("{file}.pem"), cert.pem()),
            key: self.dir.write(&format!("{file}.key"), key.serialize_pem()),
            der: cert.der().clone(),
        }
    }
}

fn https_spec(up: &Upstream, leaves: &[&Leaf]) -> ConfigSpec {
    let mut spec = ConfigSpec::proxy(&[up.addr]);
    spec.protocol = "https".into();
    spec.certificates = leaves
        .iter()
        .map(|l| (l.cert.clone(), l.key.clone()))
        .collect();
    spec
}

fn client_config(
    ca: &CertificateDer<'static>,
    versions: &[&'static rustls::SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(cfg)
}

type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// Connects and completes the handshake (verifying chain and `sni`).
fn tls_connect(
    addr: SocketAddr,
    cfg: Arc<rustls::ClientConfig>,
    sni: &str,
) -> Result<TlsStream, String> {
    let sock = connect(addr);
    let name = ServerName::try_from(sni.to_string()).unwrap();
    let conn = rustls::ClientConnection::new(cfg, name).map_err(|e| e.to_string())?;
    let mut tls = rustls::StreamOwned::new(conn, sock);
    while tls.conn.is_handshaking() {
        tls.conn
            .complete_io(&mut tls.sock)
            .map_err(|e| format!("handshake: {e}"))?;
    }
    Ok(tls)
}

/// Runs tests/python/tls_client.py; returns (exit code, parsed JSON).
fn python_tls(args: &[&str]) -> (i32, serde_json::Value) {
    let out = Command::new("python3")
        .arg(TLS_CLIENT_PY)
        .args(args)
        .output()
        .expect("python3 must be installed (scripts/test.sh installs the test tools)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "tls_client.py printed no JSON ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), v)
}

/// The handshake failed because the server sent an alert, not because the
/// client had nothing to offer (which would make a refusal test vacuous).
fn assert_refused_by_server(v: &serde_json::Value) {
    assert_eq!(v["ok"], false, "{v}");
    let err = v["error"].as_str().unwrap_or("").to_ascii_lowercase();
    assert!(
        err.contains("alert"),
        "handshake failed without a server alert: {v}"
    );
}

// --- rustls client ------------------------------------------------------------

#[test]
fn rustls_client_tls13_handshake_and_request() {
    let pki = Pki::new();
    let leaf = pki.leaf("leaf", &["localhost"]);
    let up = Upstream::start("app");
    let p = Palisade::start(&https_spec(&up, &[&leaf]));
    let cfg = client_config(&pki.ca_der, &[&rustls::version::TLS13], &[b"http/1.1"]);
    let mut tls =
        tls_connect(p.addr(), cfg, "localhost").unwrap_or_else(|e| panic!("{e}\n{}", p.logs()));
    assert_eq!(
        tls.conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    assert_eq!(tls.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    let r = exchange(
        &mut tls,
        b"GET /tls13 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"app\n");
    let got = &up.requests_to("/tls13")[0];
    assert_eq!(got.header("x-forwarded-proto"), Some("https"));
}

#[test]
fn rustls_client_tls12_handshake_with_forward_secret_aead_suite() {
    let pki = Pki::new();
    let leaf = pki.leaf("leaf", &["localhost"]);
    let up = Upstream::start("app");
    let p = Palisade::start(&https_spec(&up, &[&leaf]));
    let cfg = client_config(&pki.ca_der, &[&rustls::version::TLS12], &[]);
    let mut tls =
        tls_connect(p.addr(), cfg, "localhost").unwrap_or_else(|e| panic!("{e}\n{}", p.logs()));
    assert_eq!(
        tls.conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    let suite = format!("{:?}", tls.conn.negotiated_cipher_suite().unwrap().suite());
    assert!(
        suite.contains("ECDHE"),
        "TLS 1.2 suite without forward secrecy: {suite}"
    );
    assert!(
        suite.contains("GCM") || suite.contains("CHACHA20"),
        "non-AEAD suite: {suite}"
    );
    let r = exchange(
        &mut tls,
        b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
}

#[test]
fn rustls_client_rejects_wrong_name_so_verification_is_real() {
    // Guards the tests above: the client really verifies the certificate.
    let pki = Pki::new();
    let leaf = pki.leaf("leaf", &["localhost"]);
    let up = Upstream::start("app");
    let p = Palisade::start(&https_spec(&up, &[&leaf]));
    let cfg = client_config(&pki.ca_der, &[&rustls::version::TLS13], &[]);
    assert!(tls_connect(p.addr(), cfg, "not-this-host.test").is_err());
}

// --- Python ssl (OpenSSL) -------------------------------------------------------

#[test]
fn python_ssl_handshake_reports_version_cipher_alpn() {
    let pki = Pki::new();
    let leaf = pki.leaf("leaf", &["localhost"]);
    let up = Upstream::start("app");
    let p = Palisade::start(&https_spec(&up, &[&leaf]));
    let port = p.port.to_string();
    let ca = pki.ca_pem.display().to_string();
    let (code, v) = python_tls(&[
        "--port", &port, "--cafile", &ca, "--alpn", "http/1.1", "--path", "/py",
    ]);
    assert_eq!(code, 0, "{v}\n{}", p.logs());
    let version = v["version"].as_str().unwrap();
    assert!(version == "TLSv1.3" || version == "TLSv1.2", "{v}");
    assert_eq!(v["alpn"], "http/1.1");
    assert_eq!(v["status"], 200);
    assert_eq!(up.requests_to("/py").len(), 1);

    let (code, v) = python_tls(&["--port", &port, "--cafile", &ca, "--alpn", "h2,http/1.1"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["alpn"], "h2", "{v}");

    // TLS 1.2 from OpenSSL's side: forward-secret AEAD suite chosen.
    let (code, v) = python_tls(&["--port", &port, "--cafile", &ca, "--max-version", "TLSv1_2"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["version"], "TLSv1.2");
    let cipher = v["cipher"].as_str().unwrap();
    assert!(
        cipher.starts_with("ECDHE-") && (cipher.contains("GCM") || cipher.contains("CHACHA20")),
        "{v}"
    );
}

#[test]
fn tls12_cbc_suites_refused() {
    // A client offering only non-AEAD (CBC) suites must not get a session.
    let pki = Pki::new();
    let leaf = pki.leaf("leaf", &["localhost"]);
    let up = Upstream::start("app");
    let p = Palisade::start(&https_spec(&up, &[&leaf]));
    let port = p.port.to_string();
    let ca = pki.ca_pem.display().to_string();
    let (code, v) = python_tls(&[
        "--port",
        &port,
        "--cafile",
        &ca,
        "--max-version",
        "TLSv1_2",
        "--ciphers",
        "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA:AES128-SHA:AES256-SHA",
    ]);
    assert_ne!(code, 0, "CBC-only client got a session: {v}");
    assert_refused_by_server(&v);
}

#[test]
fn tls10_and_tls11_refused() {
    let pki = Pki::new();
    let leaf = pki.leaf("leaf", &["localhost"]);
    let up = Upstream::start("app");
    let p = Palisade::start(&https_spec(&up, &[&leaf]));
    let port = p.port.to_string();
    let cert = leaf.cert.display().to_string();
    let key = leaf.key.display().to_string();
    for (version, name) in [("TLSv1_1", "TLSv1.1"), ("TLSv1", "TLSv1")] {
        // Control: this machine's client can speak the old version at all
        // (against a local Python server that allows it), so a failure
        // against palisade is palisade refusing.
        let (code, v) = python_tls(&[
            "--legacy-control",
            "--cert",
            &cert,
            "--key",
            &key,
            "--insecure",
            "--max-version",
            version,
            "--ciphers",
            "DEFAULT:@SECLEVEL=0",
        ]);
        assert_eq!(
            code, 0,
            "client cannot speak {name} even to a legacy server: {v}"
        );
        assert_eq!(v["version"], name);

        let (code, v) = python_tls(&[
            "--port",
            &port,
            "--insecure",
            "--max-version",
            version,
            "--ciphers",
            "DEFAULT:@SECLEVEL=0",
        ]);
        assert_eq!(code, 3, "palisade accepted {name}: {v}");
        assert_refused_by_server(&v);
    }
    assert!(up.requests().is_empty());
    // Still serving modern clients.
    let (code, v) = python_tls(&["--port", &port, "--insecure"]);
    assert_eq!(code, 0, "{v}");
}

// --- ALPN and h2 ----------------------------------------------------------------

#[test]
fn h2_negotiated_via_alpn_and_request_served() {
    let pki = Pki::new();
    let leaf = pki.leaf("leaf", &["localhost"]);
    let up = Upstream::start("app");
    let p = Palisade::start(&https_spec(&up, &[&leaf]));
    let cfg = client_config(
        &pki.ca_der,
        &[&rustls::version::TLS13, &rustls::version::TLS12],
        &[b"h2", b"http/1.1"],
    );
    let addr = p.addr();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (alpn, status, body, rid) = rt.block_on(async move {
        tokio::time::timeout(Duration::from_secs(30), async move {
            use http_body_util::BodyExt;
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let connector = tokio_rustls::TlsConnector::from(cfg);
            let name = ServerName::try_from("localhost".to_string()).unwrap();
            let tls = connector.connect(name, tcp).await.expect("TLS handshake");
            let alpn = tls.get_ref().1.alpn_protocol().map(|a| a.to_vec());
            let (mut sender, conn) = hyper::client::conn::http2::handshake(
                hyper_util::rt::TokioExecutor::new(),
                hyper_util::rt::TokioIo::new(tls),
            )
            .await
            .expect("h2 handshake");
            tokio::spawn(conn);
            let req = hyper::Request::builder()
                .uri("https://localhost/over-h2?x=1")
                .header("x-client", "h2-test")
                .body(http_body_util::Empty::<hyper::body::Bytes>::new())
                .unwrap();
            let resp = sender.send_request(req).await.expect("h2 request");
            let status = resp.status().as_u16();
            let rid = resp
                .headers()
                .get("x-request-id")
                .map(|v| v.to_str().unwrap_or("").to_string());
            let body = resp
                .into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .to_vec();
            (alpn, status, body, rid)
        })
        .await
        .expect("h2 exchange timed out")
    });
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(status, 200, "{}", p.logs());
    assert_eq!(body, b"app\n");
    assert!(
        rid.is_some_and(|r| !r.is_empty()),
        "no X-Request-Id over h2"
    );
    let got = &up.requests_to("/over-h2")[0];
    assert_eq!(got.target, "/over-h2?x=1");
    assert_eq!(got.header("x-client"), Some("h2-test"));
    assert_eq!(got.header("x-forwarded-proto"), Some("https"));
}

#[test]
fn client_without_alpn_gets_http11() {
    let pki = Pki::new();
    let leaf = pki.leaf("leaf", &["localhost"]);
    let up = Upstream::start("app");
    let p = Palisade::start(&https_spec(&up, &[&leaf]));
    let cfg = client_config(&pki.ca_der, &[&rustls::version::TLS13], &[]);
    let mut tls = tls_connect(p.addr(), cfg, "localhost").unwrap();
    assert_eq!(tls.conn.alpn_protocol(), None);
    let r = exchange(
        &mut tls,
        b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
}

// --- certificates -----------------------------------------------------------------

#[test]
fn sni_selects_the_matching_certificate() {
    let pki = Pki::new();
    let a = pki.leaf("a", &["a.test"]);
    let b = pki.leaf("b", &["b.test"]);
    let up = Upstream::start("app");
    let p = Palisade::start(&https_spec(&up, &[&a, &b]));
    for (sni, leaf) in [("a.test", &a), ("b.test", &b)] {
        let cfg = client_config(&pki.ca_der, &[&rustls::version::TLS13], &[]);
        let tls = tls_connect(p.addr(), cfg, sni)
            .unwrap_or_else(|e| panic!("SNI {sni}: {e}\n{}", p.logs()));
        let served = tls.conn.peer_certificates().unwrap()[0].clone();
        assert!(
            served == leaf.der,
            "SNI {sni} was served the other certificate"
        );
    }
}

#[test]
fn self_signed_dev_certificate_generated_when_none_configured() {
    let up = Upstream::start("app");
    let p = Palisade::start(&https_spec(&up, &[]));
    let (code, v) = python_tls(&[
        "--port",
        &p.port.to_string(),
        "--insecure",
        "--path",
        "/dev",
    ]);
    assert_eq!(code, 0, "{v}\n{}", p.logs());
    assert_eq!(v["status"], 200);
    let data = p.dir.path().join("data");
    let files: Vec<_> = std::fs::read_dir(&data).unwrap().collect();
    assert!(
        !files.is_empty(),
        "no development certificate written to {}",
        data.display()
    );
    let logs = p.logs().to_ascii_lowercase();
    assert!(
        logs.contains("self-signed") || logs.contains("self signed"),
        "no warning about the self-signed certificate:\n{logs}"
    );
}

#[test]
fn certificate_expiry_metric_exported() {
    let pki = Pki::new();
    let leaf = pki.leaf("leaf", &["localhost"]);
    let up = Upstream::start("app");
    let p = Palisade::start(&https_spec(&up, &[&leaf]));
    let m = p.metrics();
    let v = metric_value(&m, "palisade_tls_certificate_expiry_seconds", &[])
        .unwrap_or_else(|| panic!("no palisade_tls_certificate_expiry_seconds:\n{m}"));
    // rcgen's default validity ends in 4096; anything in the future will do.
    assert!(v > 0.0, "{v}");
}

// --- HSTS and redirect --------------------------------------------------------------

#[test]
fn hsts_header_sent_on_https_when_configured() {
    let pki = Pki::new();
    let leaf = pki.leaf("leaf", &["localhost"]);
    let up = Upstream::start("app");
    let mut spec = https_spec(&up, &[&leaf]);
    spec.listener_extra = vec!["hsts = \"max-age=63072000; includeSubDomains\"".into()];
    let p = Palisade::start(&spec);
    let cfg = client_config(&pki.ca_der, &[&rustls::version::TLS13], &[]);
    let mut tls = tls_connect(p.addr(), cfg, "localhost").unwrap();
    let r = exchange(
        &mut tls,
        b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(
        r.header("strict-transport-security"),
        Some("max-age=63072000; includeSubDomains")
    );
}

#[test]
fn http_listener_redirects_to_https_with_308() {
    let up = Upstream::start("app");
    let mut spec = ConfigSpec::proxy(&[up.addr]);
    spec.listener_extra = vec!["redirect_to_https = true".into()];
    let p = Palisade::start(&spec);
    let r = http_get(p.addr(), "/some/path?q=1", "shop.example");
    assert_eq!(r.status, 308);
    let loc = r.header("location").expect("Location");
    assert!(loc.starts_with("https://shop.example"), "{loc}");
    assert!(loc.ends_with("/some/path?q=1"), "{loc}");
    assert!(up.requests().is_empty(), "redirected request was proxied");
}

// --- bad input ------------------------------------------------------------------------

#[test]
fn plaintext_http_on_tls_port_is_closed_not_hung() {
    let pki = Pki::new();
    let leaf = pki.leaf("leaf", &["localhost"]);
    let up = Upstream::start("app");
    let p = Palisade::start(&https_spec(&up, &[&leaf]));
    let mut c = Conn::open(p.addr());
    c.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    assert!(
        c.wait_closed(IO_TIMEOUT),
        "plaintext on the TLS port left hanging"
    );
    assert!(up.requests().is_empty());
    let cfg = client_config(&pki.ca_der, &[&rustls::version::TLS13], &[]);
    assert!(tls_connect(p.addr(), cfg, "localhost").is_ok());
}

// --- HTTP/2 limits ----------------------------------------------------------------------

#[test]
fn h2_max_concurrent_streams_advertised_in_settings() {
    use std::io::{Read, Write};
    let pki = Pki::new();
    let leaf = pki.leaf("leaf", &["localhost"]);
    let up = Upstream::start("app");
    let p = Palisade::start(&https_spec(&up, &[&leaf]).limit("h2_max_concurrent_streams = 7"));
    let cfg = client_config(&pki.ca_der, &[&rustls::version::TLS13], &[b"h2"]);
    let mut tls = tls_connect(p.addr(), cfg, "localhost").unwrap();
    assert_eq!(tls.conn.alpn_protocol(), Some(&b"h2"[..]));
    // Client preface + empty SETTINGS (RFC 9113 §3.4); the server's first
    // frame must be its SETTINGS.
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .unwrap();
    tls.flush().unwrap();
    let mut head = [0u8; 9];
    tls.read_exact(&mut head).unwrap();
    let len = (usize::from(head[0]) << 16) | (usize::from(head[1]) << 8) | usize::from(head[2]);
    assert_eq!(head[3], 0x4, "first server frame is not SETTINGS");
    assert!(len % 6 == 0 && len <= 16 * 1024, "SETTINGS length {len}");
    let mut payload = vec![0u8; len];
    tls.read_exact(&mut payload).unwrap();
    let max_streams = payload
        .chunks(6)
        .find(|s| u16::from_be_bytes([s[0], s[1]]) == 0x3)
        .map(|s| u32::from_be_bytes([s[2], s[3], s[4], s[5]]));
    assert_eq!(max_streams, Some(7), "SETTINGS_MAX_CONCURRENT_STREAMS");
}

// --- HTTP/2 → HTTP/1.1 downgrade smuggling (raw frames) --------------------------------

/// One HPACK "literal header field without indexing, new name" with
/// 7-bit-prefix lengths (RFC 7541 §6.2.2); names and values stay short.
fn hpack_literal(out: &mut Vec<u8>, name: &str, value: &str) {
    assert!(name.len() < 127 && value.len() < 127);
    out.push(0x00);
    out.push(name.len() as u8);
    out.extend_from_slice(name.as_bytes());
    out.push(value.len() as u8);
    out.extend_from_slice(value.as_bytes());
}

fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Sends a POST on stream 1 with `headers` (after the pseudo-headers) and
/// `data` as one DATA frame, then reads frames until the stream ends, is
/// reset, or the connection goes away (bounded).
fn h2_post_raw(p: &Palisade, pki: &Pki, path: &str, headers: &[(&str, &str)], data: &[u8]) {
    use std::io::{Read, Write};
    let cfg = client_config(&pki.ca_der, &[&rustls::version::TLS13], &[b"h2"]);
    let mut tls = tls_connect(p.addr(), cfg, "localhost").unwrap();
    assert_eq!(tls.conn.alpn_protocol(), Some(&b"h2"[..]));
    let mut block = Vec::new();
    hpack_literal(&mut block, ":method", "POST");
    hpack_literal(&mut block, ":scheme", "https");
    hpack_literal(&mut block, ":path", path);
    hpack_literal(&mut block, ":authority", "localhost");
    for (n, v) in headers {
        hpack_literal(&mut block, n, v);
    }
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(h2_frame(0x4, 0, 0, &[]));
    out.extend(h2_frame(0x1, 0x4, 1, &block)); // HEADERS, END_HEADERS
    out.extend(h2_frame(0x0, 0x1, 1, data)); // DATA, END_STREAM
    tls.write_all(&out).unwrap();
    tls.flush().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    tls.sock
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    while std::time::Instant::now() < deadline {
        let mut head = [0u8; 9];
        if tls.read_exact(&mut head).is_err() {
            return; // closed
        }
        let len = (usize::from(head[0]) << 16) | (usize::from(head[1]) << 8) | usize::from(head[2]);
        let mut payload = vec![0u8; len];
        if tls.read_exact(&mut payload).is_err() {
            return;
        }
        let (kind, flags) = (head[3], head[4]);
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let ends_stream = stream == 1 && (kind == 0x0 || kind == 0x1) && flags & 0x1 != 0;
        if kind == 0x7 || (kind == 0x3 && stream == 1) || ends_stream {
            return; // GOAWAY, RST_STREAM, or the response is complete
        }
    }
    panic!("h2 stream neither answered nor reset within 15 s");
}

/// After an h2 attempt: a canary over a fresh connection proves the
/// upstream has seen everything palisade was going to send for the attempt;
/// then no request for `smuggled` may exist, and a forwarded `path` request
/// carries exactly the body length it declares.
fn assert_nothing_smuggled(p: &Palisade, pki: &Pki, up: &Upstream, path: &str, smuggled: &str) {
    let cfg = client_config(&pki.ca_der, &[&rustls::version::TLS13], &[]);
    let mut tls = tls_connect(p.addr(), cfg, "localhost").unwrap();
    let r = exchange(
        &mut tls,
        b"GET /canary HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert!(up.wait_requests(1, IO_TIMEOUT));
    let reqs = up.requests();
    let targets: Vec<&str> = reqs.iter().map(|r| r.target.as_str()).collect();
    assert!(
        !targets.iter().any(|t| t.starts_with(smuggled)),
        "smuggled request reached the upstream: {targets:?}"
    );
    for r in reqs.iter().filter(|r| r.target == path) {
        if let Some(cl) = r.header("content-length") {
            assert_eq!(
                cl.parse::<usize>().ok(),
                Some(r.body.len()),
                "framing mismatch: {r:?}"
            );
        }
        assert!(r.header("transfer-encoding").is_none() || r.header("content-length").is_none());
    }
}

#[test]
fn h2_content_length_mismatch_not_smuggled_to_http1_upstream() {
    // H2.CL: content-length 0 while DATA carries a whole HTTP/1.1 request.
    let pki = Pki::new();
    let leaf = pki.leaf("leaf", &["localhost"]);
    let up = Upstream::start("app");
    let p = Palisade::start(&https_spec(&up, &[&leaf]));
    h2_post_raw(
        &p,
        &pki,
        "/h2cl",
        &[("content-length", "0")],
        b"GET /smuggled-h2cl HTTP/1.1\r\nHost: localhost\r\n\r\n",
    );
    assert_nothing_smuggled(&p, &pki, &up, "/h2cl", "/smuggled");
}

#[test]
fn h2_transfer_encoding_header_not_smuggled_to_http1_upstream() {
    // H2.TE: connection-specific fields make an h2 request malformed (RFC
    // 9113 §8.2.2); forwarded, it would re-frame the body for the upstream.
    let pki = Pki::new();
    let leaf = pki.leaf("leaf", &["localhost"]);
    let up = Upstream::start("app");
    let p = Palisade::start(&https_spec(&up, &[&leaf]));
    h2_post_raw(
        &p,
        &pki,
        "/h2te",
        &[("transfer-encoding", "chunked")],
        b"0\r\n\r\nGET /smuggled-h2te HTTP/1.1\r\nHost: localhost\r\n\r\n",
    );
    assert_nothing_smuggled(&p, &pki, &up, "/h2te", "/smuggled");
}

#[test]
fn h2_header_value_with_crlf_not_injected_into_http1() {
    // A CRLF inside an h2 field value becomes a header line of its own when
    // written out as HTTP/1.1 unless the value is refused (RFC 9113 §8.2.1).
    let pki = Pki::new();
    let leaf = pki.leaf("leaf", &["localhost"]);
    let up = Upstream::start("app");
    let p = Palisade::start(&https_spec(&up, &[&leaf]));
    h2_post_raw(
        &p,
        &pki,
        "/h2crlf",
        &[("x-inject", "a\r\ntransfer-encoding: chunked")],
        b"0\r\n\r\nGET /smuggled-h2crlf HTTP/1.1\r\nHost: localhost\r\n\r\n",
    );
    assert_nothing_smuggled(&p, &pki, &up, "/h2crlf", "/smuggled");
    assert!(up
        .requests()
        .iter()
        .all(|r| r.header("transfer-encoding").is_none()));
}

#[test]
fn h2_raw_frame_client_control_request_is_forwarded() {
    // Guards the three tests above: the same raw frames, well-formed, reach
    // the upstream, so their passing is not an encoding mistake.
    let pki = Pki::new();
    let leaf = pki.leaf("leaf", &["localhost"]);
    let up = Upstream::start("app");
    let p = Palisade::start(&https_spec(&up, &[&leaf]));
    h2_post_raw(
        &p,
        &pki,
        "/h2ok",
        &[("content-length", "5"), ("x-raw", "yes")],
        b"hello",
    );
    assert!(up.wait_requests(1, IO_TIMEOUT), "{}", p.logs());
    let got = &up.requests_to("/h2ok")[0];
    assert_eq!(got.body, b"hello");
    assert_eq!(got.header("x-raw"), Some("yes"));
}
