//! TCP and TLS tunnels end to end: a real `palisade serve` in front of an
//! echo service on 127.0.0.1. Certificates come from `palisade pki`; the
//! TLS client is Python's `ssl` (OpenSSL, tests/python/mtls_echo.py).
//!
//! Needs python3: under CI a missing one fails the tests; elsewhere the mTLS
//! test is skipped with a reason.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{
    device_files, pki, python_imports, tool_present, wait_for, Palisade, TempDir, Upstream,
    PKI_PASSPHRASE,
};

/// An echo service: echoes until the client half-closes, then sends
/// `-bye` and closes (so a half-close must travel both ways).
fn echo_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().take(64) {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                let mut buf = [0u8; 4096];
                loop {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
                let _ = s.write_all(b"-bye");
                let _ = s.shutdown(Shutdown::Write);
            });
        }
    });
    addr
}

fn have_python() -> bool {
    tool_present(python_imports("ssl"), "python3 (with ssl)")
}

/// Runs the Python client; returns (connected and echoed, JSON line).
fn client(port: u16, cert: Option<(&Path, &Path)>) -> (bool, String) {
    client_mode(port, cert, false)
}

fn client_mode(port: u16, cert: Option<(&Path, &Path)>, http: bool) -> (bool, String) {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/python/mtls_echo.py"
    );
    let mut c = Command::new("python3");
    c.arg(script).arg("--port").arg(port.to_string());
    if let Some((crt, key)) = cert {
        c.arg("--cert").arg(crt).arg("--key").arg(key);
    }
    if http {
        c.arg("--http");
    }
    let o = c.output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        matches!(o.status.code(), Some(0) | Some(3)),
        "client crashed: {out} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.code() == Some(0), out)
}

fn logs_contain(p: &Palisade, needle: &str) -> bool {
    wait_for(Duration::from_secs(5), || {
        p.logs().contains(needle).then_some(())
    })
    .is_some()
}

#[test]
fn tls_tunnel_with_client_certificates_and_policy() {
    if !have_python() {
        return;
    }
    let t = TempDir::new("tunnel-mtls");
    let ca = t.path().join("ca");
    let other = t.path().join("other");
    pki(&ca, &["init", "--org", "Acme"]);
    pki(&other, &["init", "--org", "Evil"]);
    pki(&ca, &["issue", "--device", "sensor-01"]);
    pki(&ca, &["issue", "--device", "sensor-02"]);
    pki(&ca, &["issue", "--device", "cam-7"]);
    pki(&other, &["issue", "--device", "sensor-01"]);
    pki(&ca, &["revoke", "sensor-02", "--reason", "key-compromise"]);
    pki(&ca, &["crl"]);

    let echo = echo_server();
    let toml = mtls_toml(&ca, echo, "", "allow = [\"cn:sensor-*\"]");
    let p = Palisade::start_toml(&toml);

    let (c, k) = device_files(&ca, "sensor-01");
    let (ok, out) = client(p.port, Some((&c, &k)));
    assert!(ok, "device certificate refused: {out}\n{}", p.logs());
    assert!(out.contains("hello through the tunnel"), "{out}");
    assert!(logs_contain(&p, "tunnel closed"), "{}", p.logs());
    assert!(p.logs().contains("sensor-01"), "{}", p.logs());

    let (ok, out) = client(p.port, None);
    assert!(!ok, "no certificate got through: {out}");
    assert!(logs_contain(&p, "no client certificate"), "{}", p.logs());

    let (c, k) = device_files(&other, "sensor-01");
    let (ok, out) = client(p.port, Some((&c, &k)));
    assert!(!ok, "certificate from another CA got through: {out}");
    assert!(logs_contain(&p, "unknown CA"), "{}", p.logs());

    let (c, k) = device_files(&ca, "sensor-02");
    let (ok, out) = client(p.port, Some((&c, &k)));
    assert!(!ok, "revoked certificate got through: {out}");
    assert!(logs_contain(&p, "certificate revoked"), "{}", p.logs());

    let (c, k) = device_files(&ca, "cam-7");
    let (ok, out) = client(p.port, Some((&c, &k)));
    assert!(!ok, "certificate outside the policy got through: {out}");
    assert!(
        logs_contain(&p, "not allowed by listener policy"),
        "{}",
        p.logs()
    );

    // The good device still works after all the refusals.
    let (c, k) = device_files(&ca, "sensor-01");
    assert!(client(p.port, Some((&c, &k))).0);
}

#[test]
fn https_listener_forwards_the_verified_identity_and_strips_forgeries() {
    if !have_python() {
        return;
    }
    let t = TempDir::new("tunnel-https");
    let ca = t.path().join("ca");
    pki(&ca, &["init", "--org", "Acme"]);
    pki(&ca, &["issue", "--device", "sensor-09"]);
    let up = Upstream::start("app");
    let toml = format!(
        r#"
[server]
data_dir = "@DATA_DIR@"
access_log = "off"
[admin]
listen = "127.0.0.1:@ADMIN@"
[[listener]]
name = "api"
listen = "127.0.0.1:@LISTEN@"
protocol = "https"
client_auth = "optional"
client_ca = "{bundle}"
[[upstream]]
name = "app"
servers = ["127.0.0.1:{port}"]
[[route]]
path_prefix = "/"
upstream = "app"
"#,
        bundle = ca.join("ca-bundle.pem").display(),
        port = up.port(),
    );
    let p = Palisade::start_toml(&toml);
    let (c, k) = device_files(&ca, "sensor-09");
    let (ok, out) = client_mode(p.port, Some((&c, &k)), true);
    assert!(ok, "{out}\n{}", p.logs());
    let (ok, out) = client_mode(p.port, None, true);
    assert!(
        ok,
        "optional client_auth refused a client without certificate: {out}"
    );
    assert!(up.wait_requests(2, Duration::from_secs(5)));
    let reqs = up.requests();
    assert_eq!(
        reqs[0].headers_named("x-client-identity"),
        vec!["sensor-09"]
    );
    assert!(reqs[1].headers_named("x-client-identity").is_empty());
}

#[test]
fn tcp_tunnel_passes_bytes_both_ways_with_half_close() {
    let echo = echo_server();
    let toml = format!(
        r#"
[server]
data_dir = "@DATA_DIR@"
access_log = "off"
[admin]
listen = "127.0.0.1:@ADMIN@"
[[listener]]
name = "raw"
listen = "127.0.0.1:@LISTEN@"
protocol = "tcp"
upstream = "echo"
idle_timeout = "2s"
[[upstream]]
name = "echo"
servers = ["{echo}"]
"#
    );
    let p = Palisade::start_toml(&toml);

    let mut s = TcpStream::connect(p.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let writer = {
        let mut w = s.try_clone().unwrap();
        let payload = payload.clone();
        std::thread::spawn(move || {
            w.write_all(&payload).unwrap();
            // Half-close: the echo service sees EOF, answers `-bye` and
            // closes; our read side must still receive everything.
            w.shutdown(Shutdown::Write).unwrap();
        })
    };
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    writer.join().unwrap();
    let mut want = payload.clone();
    want.extend_from_slice(b"-bye");
    assert_eq!(got.len(), want.len());
    assert!(got == want, "bytes differ");
    // The harness's readiness probe logged a first (empty) tunnel.
    assert!(logs_contain(&p, "\"bytes_in\":200000"), "{}", p.logs());
    assert!(p.logs().contains("\"bytes_out\":200004"), "{}", p.logs());

    // Idle timeout: a silent connection is closed by palisade.
    let mut idle = TcpStream::connect(p.addr()).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 16];
    let n = idle.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "idle tunnel not closed");
    assert!(logs_contain(&p, "idle timeout"), "{}", p.logs());
}

#[test]
fn tunnel_config_errors_are_located() {
    let cases = [
        (
            "[[listener]]\nname = \"t\"\nlisten = \"127.0.0.1:0\"\nprotocol = \"tcp\"\nupstream = \"nope\"\n[[upstream]]\nname = \"a\"\nservers = [\"127.0.0.1:1\"]\n",
            "unknown upstream `nope`",
            "5:",
        ),
        (
            "[[listener]]\nname = \"t\"\nlisten = \"127.0.0.1:0\"\nprotocol = \"tls\"\nupstream = \"a\"\nclient_auth = \"required\"\n[[upstream]]\nname = \"a\"\nservers = [\"127.0.0.1:1\"]\n",
            "client_ca",
            "6:",
        ),
        (
            "[[listener]]\nname = \"t\"\nlisten = \"127.0.0.1:0\"\nprotocol = \"tls\"\nupstream = \"a\"\nclient_auth = \"required\"\nclient_ca = \"x.pem\"\nallow = [\"serial:1\"]\n[[upstream]]\nname = \"a\"\nservers = [\"127.0.0.1:1\"]\n",
            "unknown field `serial`",
            "8:",
        ),
    ];
    for (text, msg, line) in cases {
        let e = gateway::config::parse(text, "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains(msg), "{e}");
        assert!(e.contains(&format!("t.toml:{line}")), "{e}");
    }
}

#[test]
fn crl_is_reloaded_without_restart() {
    if !have_python() {
        return;
    }
    let t = TempDir::new("tunnel-crl-reload");
    let ca = t.path().join("ca");
    pki(&ca, &["init", "--org", "Acme"]);
    pki(&ca, &["issue", "--device", "sensor-05"]);
    let echo = echo_server();
    let toml = mtls_toml(&ca, echo, "", "");
    let p = Palisade::start_toml(&toml);
    let (c, k) = device_files(&ca, "sensor-05");
    assert!(client(p.port, Some((&c, &k))).0, "{}", p.logs());
    pki(&ca, &["revoke", "sensor-05"]);
    pki(&ca, &["crl"]);
    p.signal("HUP");
    assert!(logs_contain(&p, "config reloaded"), "{}", p.logs());
    let (ok, out) = client(p.port, Some((&c, &k)));
    assert!(!ok, "revoked after reload but got through: {out}");
    assert!(logs_contain(&p, "certificate revoked"), "{}", p.logs());
}

/// A tunnel through the `tls` listener at `port`, presenting the device
/// certificate `(chain, key)`; the server is palisade's development
/// certificate from `data_dir` (the test checks the gateway's view of the
/// client, so the client trusts exactly that certificate).
fn device_tunnel(
    port: u16,
    data_dir: &Path,
    (chain, key): (&Path, &Path),
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let (dev_cert, _) = gateway::tls::dev_certificate(data_dir).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&dev_cert).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(chain)
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .unwrap();
    let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(cfg), name).unwrap();
    rustls::StreamOwned::new(conn, sock)
}

/// Sends `msg` and reads the echo back; false when the tunnel is closed.
fn echoes(t: &mut rustls::StreamOwned<rustls::ClientConnection, TcpStream>, msg: &[u8]) -> bool {
    if t.write_all(msg).and_then(|()| t.flush()).is_err() {
        return false;
    }
    let mut got = vec![0u8; msg.len()];
    t.read_exact(&mut got).is_ok() && got == msg
}

#[test]
fn revocation_cuts_open_tunnels_of_the_revoked_device_only() {
    let t = TempDir::new("tunnel-revoke-open");
    let ca = t.path().join("ca");
    pki(&ca, &["init", "--org", "Acme"]);
    pki(&ca, &["issue", "--device", "sensor-07"]);
    pki(&ca, &["issue", "--device", "sensor-08"]);
    let echo = echo_server();
    let p = Palisade::start_toml(&mtls_toml(&ca, echo, "", ""));
    let data_dir = p.dir.path().join("data");
    let (c7, k7) = device_files(&ca, "sensor-07");
    let (c8, k8) = device_files(&ca, "sensor-08");
    let mut lost = device_tunnel(p.port, &data_dir, (&c7, &k7));
    let mut kept = device_tunnel(p.port, &data_dir, (&c8, &k8));
    assert!(echoes(&mut lost, b"before"), "{}", p.logs());
    assert!(echoes(&mut kept, b"before"), "{}", p.logs());

    // A reload that changes nothing for these devices keeps both open.
    p.signal("HUP");
    assert!(logged_more(&p, "config reloaded", 0), "{}", p.logs());
    assert!(echoes(&mut lost, b"same config"), "{}", p.logs());
    assert!(echoes(&mut kept, b"same config"), "{}", p.logs());

    // sensor-07 is revoked and the CRL published: its open tunnel is cut
    // at the reload, sensor-08's keeps flowing.
    pki(&ca, &["revoke", "sensor-07", "--reason", "key-compromise"]);
    pki(&ca, &["crl"]);
    p.signal("HUP");
    assert!(logged_more(&p, "config reloaded", 1), "{}", p.logs());
    assert!(
        logs_contain(&p, "certificate revoked (after reload)"),
        "{}",
        p.logs()
    );
    assert!(!echoes(&mut lost, b"after"), "revoked tunnel still open");
    assert!(echoes(&mut kept, b"after"), "{}", p.logs());
}

/// The `[[listener]]` of a `tls` tunnel with required client certificates
/// from the PKI at `ca` (and its CRL) in front of `echo`; `extra` is added
/// to the listener, `top` before it (e.g. a `[limits]` table).
fn mtls_toml(ca: &Path, echo: SocketAddr, top: &str, extra: &str) -> String {
    format!(
        r#"
[server]
data_dir = "@DATA_DIR@"
access_log = "off"
[admin]
listen = "127.0.0.1:@ADMIN@"
{top}
[[listener]]
name = "devices"
listen = "127.0.0.1:@LISTEN@"
protocol = "tls"
upstream = "echo"
client_auth = "required"
client_ca = "{bundle}"
crl = ["{crl}"]
{extra}
[[upstream]]
name = "echo"
servers = ["{echo}"]
"#,
        bundle = ca.join("ca-bundle.pem").display(),
        crl = ca.join("crl.pem").display(),
    )
}

fn count(p: &Palisade, needle: &str) -> usize {
    p.logs().matches(needle).count()
}

/// Waits until the logs hold more than `before` lines with `needle`.
fn logged_more(p: &Palisade, needle: &str, before: usize) -> bool {
    wait_for(Duration::from_secs(10), || {
        (count(p, needle) > before).then_some(())
    })
    .is_some()
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn expired_device_certificate_is_refused_with_the_reason() {
    if !have_python() {
        return;
    }
    let t = TempDir::new("tunnel-expired");
    let ca = t.path().join("ca");
    pki(&ca, &["init", "--org", "Acme"]);
    pki(&ca, &["issue", "--device", "fresh"]);
    // `pki issue` only issues from now on; the library backdates: valid
    // for one day, ten days ago.
    let secret =
        pki::Secret::passphrase(zeroize::Zeroizing::new(PKI_PASSPHRASE.to_string())).unwrap();
    let mut req = pki::IssueRequest::new("stale", pki::KeyType::P256);
    req.days = 1;
    req.valid_from = Some(now_unix() - 10 * 86_400);
    let issued = pki::Pki::open(&ca).unwrap().issue(&secret, &req).unwrap();
    assert_eq!(issued.entry.status_at(now_unix()), "expired");

    let p = Palisade::start_toml(&mtls_toml(&ca, echo_server(), "", ""));
    let (c, k) = device_files(&ca, "stale");
    let (ok, out) = client(p.port, Some((&c, &k)));
    assert!(!ok, "expired certificate got through: {out}");
    assert!(logs_contain(&p, "certificate expired"), "{}", p.logs());
    let logs = p.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("certificate expired"))
        .unwrap();
    assert!(line.contains("tunnel refused"), "{line}");
    assert!(line.contains("\"listener\":\"devices\""), "{line}");

    let (c, k) = device_files(&ca, "fresh");
    let (ok, out) = client(p.port, Some((&c, &k)));
    assert!(ok, "valid certificate refused: {out}\n{}", p.logs());
}

/// Reads until EOF or error; true when the peer closed within `within`.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            // An alert record before the close is fine.
            Ok(_) => continue,
            Err(e) => {
                return matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
                )
            }
        }
    }
}

#[test]
fn garbage_truncated_and_oversized_handshakes_are_closed_and_logged() {
    if !have_python() {
        return;
    }
    let t = TempDir::new("tunnel-badinput");
    let ca = t.path().join("ca");
    pki(&ca, &["init", "--org", "Acme"]);
    pki(&ca, &["issue", "--device", "sensor-01"]);
    let p = Palisade::start_toml(&mtls_toml(
        &ca,
        echo_server(),
        "[limits]\nheader_read_timeout = \"2s\"",
        "",
    ));
    const REFUSED: &str = "tunnel refused";

    // Plain text (an HTTP request) instead of a ClientHello.
    let before = count(&p, REFUSED);
    let mut s = TcpStream::connect(p.addr()).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert!(closed_within(&mut s, Duration::from_secs(10)));
    assert!(logged_more(&p, REFUSED, before), "{}", p.logs());

    // Random bytes.
    let before = count(&p, REFUSED);
    let mut s = TcpStream::connect(p.addr()).unwrap();
    let junk: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let _ = s.write_all(&junk);
    assert!(closed_within(&mut s, Duration::from_secs(10)));
    assert!(logged_more(&p, REFUSED, before), "{}", p.logs());

    // A handshake record that announces 512 bytes and stops after 40,
    // then the client half-closes: refused at once.
    let mut partial = vec![
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ];
    partial.extend_from_slice(&[0x42; 29]);
    let before = count(&p, REFUSED);
    let mut s = TcpStream::connect(p.addr()).unwrap();
    s.write_all(&partial).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    assert!(closed_within(&mut s, Duration::from_secs(10)));
    assert!(logged_more(&p, REFUSED, before), "{}", p.logs());

    // The same truncated record with the connection left open: closed by
    // the handshake timeout (limits.header_read_timeout = 2s).
    let before = count(&p, "handshake timed out");
    let mut s = TcpStream::connect(p.addr()).unwrap();
    s.write_all(&partial).unwrap();
    let t0 = std::time::Instant::now();
    assert!(closed_within(&mut s, Duration::from_secs(15)));
    assert!(t0.elapsed() >= Duration::from_millis(1500));
    assert!(
        logged_more(&p, "handshake timed out", before),
        "{}",
        p.logs()
    );

    // A client certificate chain of ~400 certificates (over 64 KiB, the
    // largest handshake message palisade accepts).
    let (c, k) = device_files(&ca, "sensor-01");
    let mut huge = std::fs::read_to_string(&c).unwrap();
    let issuing = std::fs::read_to_string(ca.join("issuing-ca.crt")).unwrap();
    for _ in 0..400 {
        huge.push_str(&issuing);
    }
    assert!(huge.len() > 200_000);
    let huge_path = t.path().join("huge-chain.pem");
    std::fs::write(&huge_path, huge).unwrap();
    let before = count(&p, REFUSED);
    let (ok, out) = client(p.port, Some((&huge_path, &k)));
    assert!(!ok, "huge chain accepted: {out}");
    assert!(logged_more(&p, REFUSED, before), "{}", p.logs());

    // Still alive and serving.
    let (ok, out) = client(p.port, Some((&c, &k)));
    assert!(ok, "{out}\n{}", p.logs());
    let mut p = p;
    assert!(p.alive());
}

#[test]
fn malformed_crl_on_reload_keeps_the_previous_one() {
    if !have_python() {
        return;
    }
    let t = TempDir::new("tunnel-badcrl");
    let ca = t.path().join("ca");
    pki(&ca, &["init", "--org", "Acme"]);
    pki(&ca, &["issue", "--device", "good"]);
    pki(&ca, &["issue", "--device", "lost"]);
    pki(&ca, &["revoke", "lost", "--reason", "key-compromise"]);
    pki(&ca, &["crl"]);
    let p = Palisade::start_toml(&mtls_toml(&ca, echo_server(), "", ""));
    let (gc, gk) = device_files(&ca, "good");
    let (lc, lk) = device_files(&ca, "lost");
    assert!(client(p.port, Some((&gc, &gk))).0, "{}", p.logs());
    assert!(!client(p.port, Some((&lc, &lk))).0);

    let crl = ca.join("crl.pem");
    let cases: [&[u8]; 3] = [
        // Not PEM at all: must not read as "no CRL, nothing revoked".
        b"this is not a CRL\n",
        // PEM armour around bytes that are not a CRL.
        b"-----BEGIN X509 CRL-----\nAAECAwQFBgcICQ==\n-----END X509 CRL-----\n",
        // Empty (truncated while written by something else).
        b"",
    ];
    for bad in cases {
        std::fs::write(&crl, bad).unwrap();
        let before = count(&p, "config reload rejected");
        p.signal("HUP");
        assert!(
            logged_more(&p, "config reload rejected", before),
            "{}",
            p.logs()
        );
        let logs = p.logs();
        let line = logs
            .lines()
            .rfind(|l| l.contains("config reload rejected"))
            .unwrap();
        assert!(line.contains("crl.pem"), "{line}");
        // The previous CRL still applies; the good device still works.
        let (ok, out) = client(p.port, Some((&lc, &lk)));
        assert!(!ok, "revoked device got through after a bad CRL: {out}");
        assert!(client(p.port, Some((&gc, &gk))).0, "{}", p.logs());
    }
}

#[test]
fn sigterm_stops_accepting_drains_then_closes_tunnels() {
    let echo = echo_server();
    let toml = |grace: &str| {
        format!(
            r#"
[server]
data_dir = "@DATA_DIR@"
access_log = "off"
shutdown_grace = "{grace}"
[admin]
listen = "127.0.0.1:@ADMIN@"
[[listener]]
name = "raw"
listen = "127.0.0.1:@LISTEN@"
protocol = "tcp"
upstream = "echo"
[[upstream]]
name = "echo"
servers = ["{echo}"]
"#
        )
    };
    let roundtrip = |s: &mut TcpStream, msg: &[u8]| {
        s.write_all(msg).unwrap();
        let mut got = vec![0u8; msg.len()];
        s.read_exact(&mut got).unwrap();
        assert_eq!(got, msg);
    };

    // Two tunnels open; SIGTERM with an 8 s grace period (long enough for
    // the steps below on a loaded machine).
    let mut p = Palisade::start_toml(&toml("8s"));
    let mut a = TcpStream::connect(p.addr()).unwrap();
    let mut b = TcpStream::connect(p.addr()).unwrap();
    for s in [&mut a, &mut b] {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        roundtrip(s, b"before");
    }
    let t0 = std::time::Instant::now();
    p.signal("TERM");
    // New connections are refused at once.
    let refused = wait_for(Duration::from_secs(2), || {
        TcpStream::connect_timeout(&p.addr(), Duration::from_millis(200))
            .is_err()
            .then_some(())
    });
    assert!(refused.is_some(), "still accepting after SIGTERM");
    // Open tunnels keep flowing, and one closes normally.
    roundtrip(&mut a, b"after sigterm");
    a.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    a.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"-bye");
    assert!(t0.elapsed() < Duration::from_secs(7), "test too slow");
    assert!(
        p.alive(),
        "exited with a tunnel still open inside the grace period"
    );
    // The other is closed by palisade when the grace period ends.
    assert!(closed_within(&mut b, Duration::from_secs(15)));
    let closed_at = t0.elapsed();
    // Closed SHUTDOWN_CLOSE_MARGIN (200 ms) before the grace period ends.
    assert!(
        closed_at >= Duration::from_millis(7500),
        "closed before the grace period: {closed_at:?}"
    );
    assert!(p.wait_exit(Duration::from_secs(10)).is_some());
    let logs = p.logs();
    assert!(logs.contains("\"reason\":\"closed\""), "{logs}");
    assert!(logs.contains("\"reason\":\"shutdown\""), "{logs}");

    // With a long grace period, the process exits as soon as the last
    // tunnel ends.
    let mut p = Palisade::start_toml(&toml("60s"));
    let mut c = TcpStream::connect(p.addr()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    roundtrip(&mut c, b"x");
    let t0 = std::time::Instant::now();
    p.signal("TERM");
    std::thread::sleep(Duration::from_millis(300));
    roundtrip(&mut c, b"still here");
    drop(c);
    assert!(p.wait_exit(Duration::from_secs(20)).is_some());
    assert!(
        t0.elapsed() < Duration::from_secs(30),
        "waited for the grace period"
    );
}

/// A TLS echo service (rustls) with the certificate chain and key at the
/// given paths; with `client_ca` it requires a client certificate from it.
/// Returns its address and the CNs of the client certificates it saw.
fn tls_echo_server(
    chain: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> (SocketAddr, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use std::sync::{Arc, Mutex};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(chain)
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let b = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let b = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca).unwrap() {
                roots.add(c.unwrap()).unwrap();
            }
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            b.with_client_cert_verifier(v)
        }
        None => b.with_no_client_auth(),
    };
    let cfg = Arc::new(b.with_single_cert(certs, key).unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let seen2 = seen.clone();
    std::thread::spawn(move || {
        for s in l.incoming().take(64) {
            let Ok(s) = s else { continue };
            let cfg = cfg.clone();
            let seen = seen2.clone();
            std::thread::spawn(move || {
                s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                let conn = rustls::ServerConnection::new(cfg).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, s);
                let mut buf = [0u8; 4096];
                let mut first = true;
                loop {
                    match tls.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if first {
                                first = false;
                                let cn = tls
                                    .conn
                                    .peer_certificates()
                                    .and_then(|c| c.first())
                                    .and_then(|c| gateway::tunnel::Identity::from_der(c))
                                    .map(|id| id.display_name())
                                    .unwrap_or_default();
                                seen.lock().unwrap().push(cn);
                            }
                            if tls.write_all(&buf[..n]).is_err() {
                                return;
                            }
                            let _ = tls.flush();
                        }
                    }
                }
            });
        }
    });
    (addr, seen)
}

#[test]
fn tls_listener_re_encrypts_to_a_verified_upstream() {
    if !have_python() {
        return;
    }
    let t = TempDir::new("tunnel-upstream-tls");
    let ca = t.path().join("ca");
    pki(&ca, &["init", "--org", "Acme"]);
    pki(&ca, &["issue", "--device", "sensor-01"]);
    // The upstream's server certificate and palisade's client certificate
    // towards it come from the same PKI here.
    pki(
        &ca,
        &[
            "issue",
            "--device",
            "broker",
            "--san",
            "dns:broker.internal",
        ],
    );
    pki(&ca, &["issue", "--device", "gateway-1"]);
    let (bc, bk) = device_files(&ca, "broker");
    let bundle = ca.join("ca-bundle.pem");
    let (up, seen) = tls_echo_server(&bc, &bk, Some(&bundle));
    let (gc, gk) = device_files(&ca, "gateway-1");
    let upstream_tls = |sni: &str| {
        format!(
            "upstream_tls = {{ ca = \"{}\", sni = \"{sni}\", cert = \"{}\", key = \"{}\" }}",
            bundle.display(),
            gc.display(),
            gk.display()
        )
    };
    let p = Palisade::start_toml(&mtls_toml(&ca, up, "", &upstream_tls("broker.internal")));
    let (c, k) = device_files(&ca, "sensor-01");
    let (ok, out) = client(p.port, Some((&c, &k)));
    assert!(ok, "{out}\n{}", p.logs());
    assert!(out.contains("hello through the tunnel"), "{out}");
    assert_eq!(*seen.lock().unwrap(), ["gateway-1"]);
    assert!(logs_contain(&p, "tunnel closed"), "{}", p.logs());
    drop(p);

    // A name the upstream certificate does not carry: refused, with why.
    let p = Palisade::start_toml(&mtls_toml(&ca, up, "", &upstream_tls("other.internal")));
    let (ok, out) = client(p.port, Some((&c, &k)));
    assert!(!ok, "upstream with the wrong name accepted: {out}");
    assert!(logs_contain(&p, "upstream TLS failed"), "{}", p.logs());
    assert_eq!(seen.lock().unwrap().len(), 1);
    drop(p);

    // An upstream CA bundle that does not hold the upstream's CA.
    let other = t.path().join("other");
    pki(&other, &["init", "--org", "Other"]);
    let toml = mtls_toml(&ca, up, "", "").replace(
        "[[upstream]]",
        &format!(
            "upstream_tls = {{ ca = \"{}\", sni = \"broker.internal\" }}\n[[upstream]]",
            other.join("ca-bundle.pem").display()
        ),
    );
    let p = Palisade::start_toml(&toml);
    let (ok, _) = client(p.port, Some((&c, &k)));
    assert!(!ok);
    assert!(logs_contain(&p, "upstream TLS failed"), "{}", p.logs());
    let logs = p.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("upstream TLS failed"))
        .unwrap();
    assert!(
        line.contains("UnknownIssuer") || line.contains("unknown"),
        "{line}"
    );
}

#[test]
fn upstream_tls_config_errors_are_clear() {
    let base = "[[listener]]\nname = \"t\"\nlisten = \"127.0.0.1:0\"\nprotocol = \"tls\"\nupstream = \"a\"\n";
    let tail = "[[upstream]]\nname = \"a\"\nservers = [\"127.0.0.1:1\"]\n";
    let cases = [
        (
            "upstream_tls = { ca = \"x.pem\", sni = \"not a name!\" }\n",
            "not a DNS name",
        ),
        (
            "upstream_tls = { ca = \"x.pem\", sni = \"a.b\", cert = \"c.pem\" }\n",
            "`cert` and `key` go together",
        ),
        ("upstream_tls = { ca = \"x.pem\" }\n", "sni"),
        (
            "upstream_tls = { ca = \"x.pem\", sni = \"a.b\", verify = false }\n",
            "verify",
        ),
    ];
    for (line, msg) in cases {
        let text = format!("{base}{line}{tail}");
        let e = gateway::config::parse(&text, "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains(msg), "{line}: {e}");
        assert!(e.contains("t.toml:6"), "{line}: {e}");
    }
    let https = "[[listener]]\nname = \"t\"\nlisten = \"127.0.0.1:0\"\nprotocol = \"https\"\nupstream_tls = { ca = \"x.pem\", sni = \"a.b\" }\n";
    let e = gateway::config::parse(https, "t.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("only valid on tcp and tls"), "{e}");
}

/// An upstream that first reads a PROXY v2 header (sent to `tx`), then
/// echoes.
fn proxy_v2_echo(tx: std::sync::mpsc::Sender<Vec<u8>>) -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().take(4) {
            let Ok(mut s) = s else { continue };
            let tx = tx.clone();
            std::thread::spawn(move || {
                use std::io::{Read, Write};
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let mut head = [0u8; 16];
                if s.read_exact(&mut head).is_err() {
                    return;
                }
                let len = usize::from(u16::from_be_bytes([head[14], head[15]]));
                let mut body = vec![0u8; len];
                if s.read_exact(&mut body).is_err() {
                    return;
                }
                let mut all = head.to_vec();
                all.extend_from_slice(&body);
                let _ = tx.send(all);
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn proxy_protocol_v2_carries_client_address_and_tls_identity() {
    if !have_python() {
        return;
    }
    let t = TempDir::new("tunnel-ppv2");
    let ca = t.path().join("ca");
    pki(&ca, &["init", "--org", "Acme"]);
    pki(&ca, &["issue", "--device", "sensor-01"]);
    let (tx, rx) = std::sync::mpsc::channel();
    let up = proxy_v2_echo(tx);
    let p = Palisade::start_toml(&mtls_toml(&ca, up, "", "proxy_protocol = true\n"));
    let (crt, key) = device_files(&ca, "sensor-01");
    let (ok, out) = client(p.addr().port(), Some((&crt, &key)));
    assert!(ok, "{out}\n{}", p.logs());
    let h = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(&h[..12], b"\r\n\r\n\0\r\nQUIT\n", "v2 signature");
    assert_eq!(h[12], 0x21, "version 2, PROXY");
    assert_eq!(h[13], 0x11, "TCP over IPv4");
    assert_eq!(&h[16..20], &[127, 0, 0, 1], "client address");
    assert_eq!(
        u16::from_be_bytes([h[26], h[27]]),
        p.addr().port(),
        "destination: the listener"
    );
    let tlvs = String::from_utf8_lossy(&h[28..]);
    assert!(h[28..].contains(&0x20), "PP2_TYPE_SSL");
    assert!(
        tlvs.contains("TLSv1.") && tlvs.contains("sensor-01"),
        "{tlvs:?}"
    );

    // A config error names the key on a non-tunnel listener.
    let bad = "[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\nprotocol = \"http\"\nproxy_protocol = true\n";
    let f = t.path().join("bad.toml");
    std::fs::write(&f, bad).unwrap();
    let (st, out, err) = common::run_cli(
        &["check-config", "-c", f.to_str().unwrap()],
        Duration::from_secs(30),
    );
    assert!(!st.success());
    assert!(
        format!("{out}{err}").contains("proxy_protocol"),
        "{out}{err}"
    );
}
