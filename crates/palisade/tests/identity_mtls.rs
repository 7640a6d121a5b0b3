//! Access rules that match the verified mTLS client certificate
//! (`cert_cn`) on an https listener: a device with its certificate passes
//! a `bypass` rule, the same request without a certificate falls to the
//! default deny. Certificates come from `palisade pki`; the TLS client is
//! tests/python/mtls_echo.py (python3 with ssl: required under CI).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod identity_support;

use common::*;
use identity_support::*;
use std::path::Path;
use std::process::Command;

fn have_python() -> bool {
    tool_present(python_imports("ssl"), "python3 (with ssl)")
}

/// `GET /who` over TLS (with the device certificate when given); the status line.
fn get_who(port: u16, cert: Option<(&Path, &Path)>) -> String {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/python/mtls_echo.py"
    );
    let mut c = Command::new("python3");
    c.arg(script)
        .arg("--port")
        .arg(port.to_string())
        .arg("--http");
    if let Some((crt, key)) = cert {
        c.arg("--cert").arg(crt).arg("--key").arg(key);
    }
    let o = c.output().unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn cert_cn_rules_see_the_verified_client_certificate() {
    if !have_python() {
        return;
    }
    let t = TempDir::new("identity-mtls");
    let ca = t.path().join("ca");
    pki(&ca, &["init", "--org", "Acme"]);
    pki(&ca, &["issue", "--device", "sensor-09"]);
    pki(&ca, &["issue", "--device", "laptop-1"]);
    let users = Users::new();
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

[identity]
users_db = {db}
[[identity.access.rules]]
name = "sensors"
cert_cn = ["sensor-09"]
policy = "bypass"
"#,
        bundle = ca.join("ca-bundle.pem").display(),
        port = up.port(),
        db = toml_str(&users.path()),
    );
    let p = Palisade::start_toml(&toml);
    let dev = |n: &str| device_files(&ca, n);
    let (c, k) = dev("sensor-09");
    let out = get_who(p.port, Some((&c, &k)));
    assert!(out.contains("HTTP/1.1 200"), "{out}\n{}", p.logs());
    assert_eq!(up.requests_to("/who").len(), 1);
    // Another verified device: its CN is not listed; default deny.
    let (c, k) = dev("laptop-1");
    let out = get_who(p.port, Some((&c, &k)));
    assert!(out.contains("HTTP/1.1 403"), "{out}");
    // No certificate at all: default deny.
    let out = get_who(p.port, None);
    assert!(out.contains("HTTP/1.1 403"), "{out}");
    assert_eq!(up.requests_to("/who").len(), 1);
}
