#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `scan tls` against real Debian nginx on loopback, in a weak and a strong
//! configuration, compared with `sslscan --xml`; plus servers that hang,
//! talk garbage or reset, and an unresolvable host.
//!
//! nginx and sslscan are Debian packages (scripts/test.sh installs them):
//! under CI (`CI=true`) a missing tool fails the test, elsewhere the test is
//! skipped with a printed reason.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use scan::tls::{self, wire::Protocol, Options, TlsReport};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Locates a Debian tool; `None` (skip) only outside CI.
fn tool(name: &str) -> Option<PathBuf> {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return Some(p);
        }
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{name} is required under CI (apt-get install -y {name})");
    }
    eprintln!("skipping: {name} not installed (apt-get install -y {name})");
    None
}

fn free_port() -> u16 {
    StdListener::bind((LO, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An nginx process serving one TLS server block; killed on drop.
struct Nginx {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Nginx {
    fn start(bin: &Path, dir: tempfile::TempDir, server_block: &str) -> Nginx {
        let port = free_port();
        let d = dir.path().display().to_string();
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log;\nevents {{ worker_connections 256; }}\n\
             http {{\n access_log off;\n client_body_temp_path {d};\n proxy_temp_path {d};\n\
             fastcgi_temp_path {d};\n uwsgi_temp_path {d};\n scgi_temp_path {d};\n\
             server {{\n  listen 127.0.0.1:{port} ssl;\n{server_block}\n  location / {{ return 200 \"ok\\n\"; }}\n }}\n}}\n"
        );
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, conf).unwrap();
        let child = Command::new(bin)
            .arg("-c")
            .arg(&path)
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect((LO, port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not listen: {}",
                std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Nginx {
            child,
            port,
            _dir: dir,
        }
    }
}

/// PEM files of a test CA, a leaf, a client certificate, and an expired
/// self-signed RSA certificate.
struct Pki {
    ca: PathBuf,
    leaf_cert: PathBuf,
    leaf_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    expired_cert: PathBuf,
    expired_key: PathBuf,
}

fn pki(dir: &Path, openssl: &Path) -> Pki {
    let w = |name: &str, s: String| {
        let p = dir.join(name);
        std::fs::write(&p, s).unwrap();
        p
    };
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "scan test CA");
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca = p.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    p.subject_alt_names.push(rcgen::SanType::IpAddress(LO));
    // 300 days in all: within Mozilla's 366-day lifespan.
    p.not_before = time_after_days(-100);
    p.not_after = time_after_days(200);
    let leaf = p.signed_by(&leaf_key, &ca, &ca_key).unwrap();
    let client_key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "scan client");
    let client = p.signed_by(&client_key, &ca, &ca_key).unwrap();
    // RSA for the weak server: static-RSA key exchange needs an RSA key,
    // which rcgen (ring) cannot generate, so openssl makes it.
    let rsa = Command::new(openssl)
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ])
        .output()
        .unwrap();
    assert!(rsa.status.success());
    let rsa_pem = String::from_utf8(rsa.stdout).unwrap();
    let rsa_key =
        rcgen::KeyPair::from_pem_and_sign_algo(&rsa_pem, &rcgen::PKCS_RSA_SHA256).unwrap();
    let mut p = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    p.not_before = rcgen::date_time_ymd(2020, 1, 1);
    p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let expired = p.self_signed(&rsa_key).unwrap();
    Pki {
        ca: w("ca.pem", ca.pem()),
        leaf_cert: w("leaf.pem", leaf.pem()),
        leaf_key: w("leaf.key", leaf_key.serialize_pem()),
        client_cert: w("client.pem", client.pem()),
        client_key: w("client.key", client_key.serialize_pem()),
        expired_cert: w("expired.pem", expired.pem()),
        expired_key: w("expired.key", rsa_pem),
    }
}

fn time_after_days(days: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc() + time::Duration::days(days)
}

/// What sslscan found: enabled protocols, (protocol, suite id) accepted,
/// preferred suite per protocol, groups.
#[derive(Debug, Default)]
struct SslScan {
    protocols: BTreeSet<String>,
    suites: BTreeSet<(String, u16)>,
    preferred: BTreeSet<(String, u16)>,
    groups: BTreeSet<u16>,
}

fn attr<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=\"");
    let start = line.find(&key)? + key.len();
    let end = line[start..].find('"')? + start;
    Some(&line[start..end])
}

fn hex(s: &str) -> u16 {
    u16::from_str_radix(s.trim_start_matches("0x").trim_start_matches("0X"), 16).unwrap()
}

fn sslscan(bin: &Path, port: u16) -> SslScan {
    let out = Command::new(bin)
        .args(["--no-colour", "--xml=-", &format!("127.0.0.1:{port}")])
        .output()
        .unwrap();
    let xml = String::from_utf8_lossy(&out.stdout);
    let mut s = SslScan::default();
    for line in xml.lines().map(str::trim) {
        if line.starts_with("<protocol ") && attr(line, "enabled") == Some("1") {
            let v = match (attr(line, "type"), attr(line, "version")) {
                (Some("ssl"), Some("3")) => "SSLv3".to_string(),
                (Some("tls"), Some(v)) => format!("TLSv{v}"),
                (t, v) => format!("{t:?}{v:?}"),
            };
            s.protocols.insert(v);
        } else if line.starts_with("<cipher ") {
            let v = attr(line, "sslversion").unwrap().to_string();
            let id = hex(attr(line, "id").unwrap());
            if attr(line, "status") == Some("preferred") {
                s.preferred.insert((v.clone(), id));
            }
            s.suites.insert((v, id));
        } else if line.starts_with("<group ") {
            s.groups.insert(hex(attr(line, "id").unwrap()));
        }
    }
    assert!(!s.protocols.is_empty(), "sslscan output: {xml}");
    s
}

fn ours(r: &TlsReport) -> SslScan {
    let mut s = SslScan::default();
    for p in &r.protocols {
        if p.supported {
            s.protocols.insert(p.protocol.name().to_string());
        }
        for (i, suite) in p.suites.iter().enumerate() {
            s.suites.insert((p.protocol.name().to_string(), suite.id));
            if i == 0 {
                s.preferred
                    .insert((p.protocol.name().to_string(), suite.id));
            }
        }
    }
    s.groups = r
        .groups
        .iter()
        .filter(|g| g.supported)
        .map(|g| g.id)
        .collect();
    s
}

async fn run(host: &str, port: u16, f: impl FnOnce(&mut Options)) -> TlsReport {
    let mut o = Options::new(host, port);
    f(&mut o);
    let addr = tls::resolve(host, port).await.unwrap();
    tls::scan(addr, &o).await.unwrap()
}

fn caps(r: &TlsReport) -> Vec<(String, String)> {
    r.grade
        .caps
        .iter()
        .map(|c| (c.max.clone(), c.reason.clone()))
        .collect()
}

fn has_finding(r: &TlsReport, id: &str) -> bool {
    r.findings.iter().any(|f| f.id == id)
}

const WEAK: &str = "  ssl_protocols TLSv1 TLSv1.1 TLSv1.2;\n\
  ssl_ciphers \"ECDHE-RSA-AES128-SHA:AES128-SHA:AES256-SHA256:NULL-SHA:ECDHE-RSA-AES256-GCM-SHA384:@SECLEVEL=0\";\n\
  ssl_prefer_server_ciphers on;";

const STRONG: &str = "  ssl_protocols TLSv1.2 TLSv1.3;\n\
  ssl_ciphers \"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305\";\n\
  ssl_prefer_server_ciphers off;\n\
  ssl_ecdh_curve X25519:prime256v1:secp384r1;\n\
  add_header Strict-Transport-Security \"max-age=63072000\" always;";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weak_nginx_matches_sslscan_and_is_capped() {
    let (Some(nginx), Some(ssl), Some(openssl)) = (tool("nginx"), tool("sslscan"), tool("openssl"))
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let k = pki(dir.path(), &openssl);
    let block = format!(
        "  ssl_certificate {};\n  ssl_certificate_key {};\n{WEAK}",
        k.expired_cert.display(),
        k.expired_key.display()
    );
    let n = Nginx::start(&nginx, tempfile::tempdir().unwrap(), &block);
    let r = run("localhost", n.port, |_| {}).await;
    let theirs = sslscan(&ssl, n.port);
    let mine = ours(&r);
    assert_eq!(mine.protocols, theirs.protocols);
    assert_eq!(mine.suites, theirs.suites);
    assert_eq!(mine.preferred, theirs.preferred);
    assert_eq!(mine.groups, theirs.groups);
    assert_eq!(
        r.supported(),
        vec![Protocol::Tls10, Protocol::Tls11, Protocol::Tls12]
    );
    // Server preference order as configured.
    let order: Vec<u16> = r.suites(Protocol::Tls12).iter().map(|s| s.id).collect();
    assert_eq!(order, vec![0xC013, 0x002F, 0x003D, 0x0002, 0xC030]);
    assert_eq!(r.protocols[3].server_order, Some(true));

    let c = r.certificate.as_ref().unwrap();
    assert!(c.days_left < 0 && c.self_signed && !c.trusted && c.hostname_match);
    assert_eq!(c.chain[0].key_type, "RSA");
    assert_eq!(c.chain[0].key_bits, 2048);
    assert_eq!(r.secure_renegotiation, Some(true));
    assert_eq!(r.compression, Some(false));
    assert_eq!(r.ocsp_stapled, Some(false));
    assert!(r
        .http
        .as_ref()
        .is_some_and(|h| h.status == 200 && h.hsts.is_none()));

    let caps = caps(&r);
    let has =
        |max: &str, needle: &str| caps.iter().any(|(m, why)| m == max && why.contains(needle));
    assert!(has("F", "NULL cipher"), "{caps:?}");
    assert!(has("B", "TLSv1.0 and TLSv1.1"), "{caps:?}");
    assert!(has("A-", "TLS 1.3 not supported"), "{caps:?}");
    assert!(has("T", "certificate expired"), "{caps:?}");
    assert_eq!(r.grade.grade, "T");
    assert_eq!(r.grade.grade_if_trusted, "F");
    for id in [
        "tls.protocol.tls10",
        "tls.protocol.tls11",
        "tls.cipher.insecure",
        "tls.cipher.weak",
        "tls.cert.expired",
        "tls.cert.self-signed",
        "tls.hsts.missing",
    ] {
        assert!(has_finding(&r, id), "missing {id}: {:?}", r.findings);
    }
    let inter = &r.mozilla[0];
    assert!(!inter.compliant);
    assert!(inter.differences.iter().any(|d| d == "disable TLSv1.0"));
    assert!(inter
        .differences
        .iter()
        .any(|d| d == "remove TLSv1.2 TLS_RSA_WITH_NULL_SHA"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strong_nginx_matches_sslscan_and_grades_a_plus() {
    let (Some(nginx), Some(ssl), Some(openssl)) = (tool("nginx"), tool("sslscan"), tool("openssl"))
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let k = pki(dir.path(), &openssl);
    let block = format!(
        "  ssl_certificate {};\n  ssl_certificate_key {};\n{STRONG}",
        k.leaf_cert.display(),
        k.leaf_key.display()
    );
    let n = Nginx::start(&nginx, tempfile::tempdir().unwrap(), &block);
    let ca = k.ca.clone();
    let r = run("localhost", n.port, |o| o.ca_file = Some(ca)).await;
    let theirs = sslscan(&ssl, n.port);
    let mine = ours(&r);
    assert_eq!(mine.protocols, theirs.protocols);
    assert_eq!(mine.suites, theirs.suites);
    assert_eq!(mine.groups, theirs.groups);
    assert_eq!(r.supported(), vec![Protocol::Tls12, Protocol::Tls13]);
    assert!(r.groups.iter().any(|g| g.name == "x25519" && g.supported));

    let c = r.certificate.as_ref().unwrap();
    assert!(c.trusted, "{:?}", c.trust_error);
    assert!(c.hostname_match && !c.self_signed && c.days_left > 100);
    assert_eq!(c.chain[0].key_type, "EC");
    assert_eq!(
        r.http.as_ref().and_then(|h| h.hsts_max_age),
        Some(63_072_000)
    );
    assert_eq!(r.grade.grade, "A+", "{:?}", r.grade);
    assert!(r.grade.caps.is_empty(), "{:?}", r.grade.caps);
    assert!(
        !r.findings
            .iter()
            .any(|f| f.severity >= scan::Severity::Medium),
        "{:?}",
        r.findings
    );
    assert!(r.mozilla[0].compliant, "{:?}", r.mozilla[0]);
    // TLS 1.2 is enabled, so the modern profile lists it.
    assert!(r.mozilla[1]
        .differences
        .iter()
        .any(|d| d == "disable TLSv1.2"));

    // Without the test CA the same server is graded T with the reason.
    let r2 = run("localhost", n.port, |_| {}).await;
    assert_eq!(r2.grade.grade, "T");
    assert_eq!(r2.grade.grade_if_trusted, "A+");
    assert!(has_finding(&r2, "tls.cert.untrusted"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificate_required_server() {
    let (Some(nginx), Some(openssl)) = (tool("nginx"), tool("openssl")) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let k = pki(dir.path(), &openssl);
    let block = format!(
        "  ssl_certificate {};\n  ssl_certificate_key {};\n{STRONG}\n  ssl_client_certificate {};\n  ssl_verify_client on;",
        k.leaf_cert.display(),
        k.leaf_key.display(),
        k.ca.display()
    );
    let n = Nginx::start(&nginx, tempfile::tempdir().unwrap(), &block);
    let ca = k.ca.clone();
    let without = run("localhost", n.port, |o| o.ca_file = Some(ca.clone())).await;
    assert!(without.client_cert_requested);
    assert!(has_finding(&without, "tls.client-cert.requested"));
    // The handshake enumeration does not need the certificate...
    assert_eq!(without.supported(), vec![Protocol::Tls12, Protocol::Tls13]);
    // ...but the application answers 400 without it and 200 with it.
    assert_eq!(without.http.as_ref().map(|h| h.status), Some(400));
    let with = run("localhost", n.port, |o| {
        o.ca_file = Some(ca.clone());
        o.client_cert = Some((k.client_cert.clone(), k.client_key.clone()));
    })
    .await;
    assert_eq!(with.http.as_ref().map(|h| h.status), Some(200));
    assert_eq!(with.grade.grade, "A+");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls13_only_nginx_chain_comes_from_rustls() {
    let (Some(nginx), Some(openssl)) = (tool("nginx"), tool("openssl")) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let k = pki(dir.path(), &openssl);
    let block = format!(
        "  ssl_certificate {};\n  ssl_certificate_key {};\n  ssl_protocols TLSv1.3;",
        k.leaf_cert.display(),
        k.leaf_key.display()
    );
    let n = Nginx::start(&nginx, tempfile::tempdir().unwrap(), &block);
    let ca = k.ca.clone();
    // The TLS 1.3 Certificate message is encrypted: the chain comes from
    // the rustls handshake, with and without the HTTP request.
    for http in [true, false] {
        let r = run("localhost", n.port, |o| {
            o.ca_file = Some(ca.clone());
            o.http = http;
        })
        .await;
        assert_eq!(r.supported(), vec![Protocol::Tls13]);
        let c = r.certificate.as_ref().expect("chain via rustls");
        assert!(c.trusted && c.hostname_match, "{c:?}");
        assert_eq!(r.secure_renegotiation, None);
        assert_eq!(r.ocsp_stapled, Some(false));
        if http {
            assert_eq!(r.http.as_ref().map(|h| h.status), Some(200));
        } else {
            assert!(r.http.is_none());
            assert_eq!(r.http_error.as_deref(), Some("not checked (--no-http)"));
        }
    }
}

// --- post-quantum group -------------------------------------------------------

/// The groups a ClientHello offers and whether it offers TLS 1.3 (a small
/// parser of the test's own: the scanner's encoder is what is under test).
fn hello_groups(rec: &[u8]) -> Option<(Vec<u16>, bool)> {
    let u16at = |b: &[u8], i: usize| Some(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]));
    let body = rec.get(9..)?;
    let mut i = 2 + 32;
    i += 1 + usize::from(*body.get(i)?);
    i += 2 + usize::from(u16at(body, i)?);
    i += 1 + usize::from(*body.get(i)?);
    let end = i + 2 + usize::from(u16at(body, i)?);
    i += 2;
    let (mut groups, mut tls13) = (Vec::new(), false);
    while i + 4 <= end {
        let (typ, len) = (u16at(body, i)?, usize::from(u16at(body, i + 2)?));
        let data = body.get(i + 4..i + 4 + len)?;
        match typ {
            0x000A => {
                groups = data[2..]
                    .chunks(2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]))
                    .collect()
            }
            0x002B => tls13 = data[1..].chunks(2).any(|c| c == [3, 4]),
            _ => {}
        }
        i += 4 + len;
    }
    Some((groups, tls13))
}

/// A TLS 1.3 server that supports only X25519MLKEM768: it answers a hello
/// offering that group with a HelloRetryRequest naming it, anything else
/// with a handshake_failure (TLS 1.2 and older: protocol_version).
async fn mlkem_only_server(mut s: tokio::net::TcpStream) {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 4096];
    let mut n = 0;
    while n < 5 || n < 5 + usize::from(u16::from_be_bytes([buf[3], buf[4]])) {
        match s.read(&mut buf[n..]).await {
            Ok(0) | Err(_) => return,
            Ok(k) => n += k,
        }
    }
    let reply: Vec<u8> = match hello_groups(&buf[..n]) {
        Some((groups, true)) if groups.contains(&0x11EC) => {
            const HRR: [u8; 32] = [
                0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11, 0xBE, 0x1D, 0x8C, 0x02, 0x1E, 0x65,
                0xB8, 0x91, 0xC2, 0xA2, 0x11, 0x16, 0x7A, 0xBB, 0x8C, 0x5E, 0x07, 0x9E, 0x09, 0xE2,
                0xC8, 0xA8, 0x33, 0x9C,
            ];
            let mut sh = vec![3, 3];
            sh.extend_from_slice(&HRR);
            sh.push(0);
            sh.extend_from_slice(&[0x13, 0x01, 0]);
            let exts = [0x00, 0x2B, 0, 2, 3, 4, 0x00, 0x33, 0, 2, 0x11, 0xEC];
            sh.extend_from_slice(&(exts.len() as u16).to_be_bytes());
            sh.extend_from_slice(&exts);
            let mut hs = vec![2, 0, (sh.len() >> 8) as u8, sh.len() as u8];
            hs.extend_from_slice(&sh);
            let mut rec = vec![22, 3, 3];
            rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
            rec.extend_from_slice(&hs);
            rec
        }
        Some((_, true)) => vec![21, 3, 3, 0, 2, 2, 40],
        _ => vec![21, 3, 3, 0, 2, 2, 70],
    };
    let _ = s.write_all(&reply).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x25519mlkem768_only_server_is_detected() {
    let port = serve(mlkem_only_server).await;
    let mut o = Options::new("127.0.0.1", port);
    o.http = false;
    let r = tls::scan(SocketAddr::new(LO, port), &o).await.unwrap();
    assert_eq!(r.supported(), vec![Protocol::Tls13]);
    let groups: Vec<&str> = r
        .groups
        .iter()
        .filter(|g| g.supported)
        .map(|g| g.name.as_str())
        .collect();
    assert_eq!(groups, ["X25519MLKEM768"]);
}

// --- bad input -----------------------------------------------------------------

/// A listener whose connections get `behave(stream)`.
async fn serve<F, Fut>(behave: F) -> u16
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let l = TcpListener::bind((LO, 0)).await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(behave(s));
        }
    });
    port
}

async fn scan_err(port: u16, handshake: Duration) -> (String, Duration) {
    let mut o = Options::new("127.0.0.1", port);
    o.handshake_timeout = handshake;
    let t = Instant::now();
    let e = tls::scan(SocketAddr::new(LO, port), &o).await.unwrap_err();
    (e.to_string(), t.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_that_hangs_is_a_timeout_error_within_budget() {
    let port = serve(|s| async move {
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(s);
    })
    .await;
    let (e, took) = scan_err(port, Duration::from_millis(800)).await;
    assert!(e.contains("hung"), "{e}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_instead_of_tls_is_a_clear_error() {
    let port = serve(|mut s| async move {
        let _ = s
            .write_all(b"SSH-2.0-OpenSSH_9.2\r\nGARBAGE GARBAGE\r\n")
            .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    })
    .await;
    let (e, took) = scan_err(port, Duration::from_secs(2)).await;
    assert!(e.contains("not TLS") && e.contains("SSH-2.0"), "{e}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn immediate_reset_and_refused_are_errors() {
    let port = serve(|s| async move {
        // SO_LINGER 0: close sends RST instead of FIN.
        let _ = s.set_zero_linger();
        drop(s);
    })
    .await;
    let (e, took) = scan_err(port, Duration::from_secs(2)).await;
    assert!(
        e.contains("accepted no SSL/TLS") || e.contains("reset"),
        "{e}"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");

    let closed = free_port();
    let (e, _) = scan_err(closed, Duration::from_secs(2)).await;
    assert!(e.to_lowercase().contains("refused"), "{e}");
}

#[tokio::test]
async fn unresolvable_host_is_an_error() {
    let e = tls::resolve("no-such-host.invalid", 443).await.unwrap_err();
    assert!(e.to_string().contains("cannot resolve"), "{e}");
}
