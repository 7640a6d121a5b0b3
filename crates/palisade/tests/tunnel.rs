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

use common::{wait_for, Palisade, TempDir, Upstream};

const PASSPHRASE: &str = "correct horse battery staple";

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

fn pki(dir: &Path, args: &[&str]) {
    let o = Command::new(common::palisade_bin())
        .arg("pki")
        .arg("--dir")
        .arg(dir)
        .args(args)
        .env("PALISADE_PKI_PASSPHRASE", PASSPHRASE)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "pki {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn have_python() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import ssl"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "python3 is required under CI"
        );
        eprintln!("skipped: python3 not installed");
    }
    ok
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

fn device(ca: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let d = ca.join("devices").join(name);
    (d.join("chain.pem"), d.join(format!("{name}.key")))
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
    let toml = format!(
        r#"
[server]
data_dir = "@DATA_DIR@"
access_log = "off"
[admin]
listen = "127.0.0.1:@ADMIN@"
[[listener]]
name = "devices"
listen = "127.0.0.1:@LISTEN@"
protocol = "tls"
upstream = "echo"
client_auth = "required"
client_ca = "{bundle}"
crl = ["{crl}"]
allow = ["cn:sensor-*"]
[[upstream]]
name = "echo"
servers = ["{echo}"]
"#,
        bundle = ca.join("ca-bundle.pem").display(),
        crl = ca.join("crl.pem").display(),
    );
    let p = Palisade::start_toml(&toml);

    let (c, k) = device(&ca, "sensor-01");
    let (ok, out) = client(p.port, Some((&c, &k)));
    assert!(ok, "device certificate refused: {out}\n{}", p.logs());
    assert!(out.contains("hello through the tunnel"), "{out}");
    assert!(logs_contain(&p, "tunnel closed"), "{}", p.logs());
    assert!(p.logs().contains("sensor-01"), "{}", p.logs());

    let (ok, out) = client(p.port, None);
    assert!(!ok, "no certificate got through: {out}");
    assert!(logs_contain(&p, "no client certificate"), "{}", p.logs());

    let (c, k) = device(&other, "sensor-01");
    let (ok, out) = client(p.port, Some((&c, &k)));
    assert!(!ok, "certificate from another CA got through: {out}");
    assert!(logs_contain(&p, "unknown CA"), "{}", p.logs());

    let (c, k) = device(&ca, "sensor-02");
    let (ok, out) = client(p.port, Some((&c, &k)));
    assert!(!ok, "revoked certificate got through: {out}");
    assert!(logs_contain(&p, "certificate revoked"), "{}", p.logs());

    let (c, k) = device(&ca, "cam-7");
    let (ok, out) = client(p.port, Some((&c, &k)));
    assert!(!ok, "certificate outside the policy got through: {out}");
    assert!(
        logs_contain(&p, "not allowed by listener policy"),
        "{}",
        p.logs()
    );

    // The good device still works after all the refusals.
    let (c, k) = device(&ca, "sensor-01");
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
    let (c, k) = device(&ca, "sensor-09");
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
    assert!(logs_contain(&p, "tunnel closed"), "{}", p.logs());
    let logs = p.logs();
    assert!(logs.contains("\"bytes_in\":200000"), "{logs}");
    assert!(logs.contains("\"bytes_out\":200004"), "{logs}");

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
    let toml = format!(
        r#"
[server]
data_dir = "@DATA_DIR@"
access_log = "off"
[admin]
listen = "127.0.0.1:@ADMIN@"
[[listener]]
name = "devices"
listen = "127.0.0.1:@LISTEN@"
protocol = "tls"
upstream = "echo"
client_auth = "required"
client_ca = "{bundle}"
crl = ["{crl}"]
[[upstream]]
name = "echo"
servers = ["{echo}"]
"#,
        bundle = ca.join("ca-bundle.pem").display(),
        crl = ca.join("crl.pem").display(),
    );
    let p = Palisade::start_toml(&toml);
    let (c, k) = device(&ca, "sensor-05");
    assert!(client(p.port, Some((&c, &k))).0, "{}", p.logs());
    pki(&ca, &["revoke", "sensor-05"]);
    pki(&ca, &["crl"]);
    p.signal("HUP");
    assert!(logs_contain(&p, "config reloaded"), "{}", p.logs());
    let (ok, out) = client(p.port, Some((&c, &k)));
    assert!(!ok, "revoked after reload but got through: {out}");
    assert!(logs_contain(&p, "certificate revoked"), "{}", p.logs());
}
