//! A real MQTT broker behind palisade: Debian's `mosquitto` listens on
//! 127.0.0.1 in plain TCP; a palisade `tls` listener with required client
//! certificates (from `palisade pki`) sits in front; a Python `paho-mqtt`
//! client (tests/python/mqtt_roundtrip.py) publishes and subscribes through
//! it. A client without a certificate is refused.
//!
//! Needs mosquitto and python3 with paho-mqtt (scripts/test.sh installs
//! both): under CI (`CI` set) a missing one fails the test; elsewhere the
//! test is skipped with the reason.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{free_port, pki, python_imports, tool_present, wait_for, Palisade, TempDir};

fn mosquitto_bin() -> Option<PathBuf> {
    ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// Whether the tools are there; under CI their absence is a failure.
fn have_tools() -> Option<PathBuf> {
    let broker = mosquitto_bin();
    let ok = tool_present(broker.is_some(), "mosquitto (apt-get install mosquitto)")
        && tool_present(
            python_imports("paho.mqtt.client"),
            "python3 with paho-mqtt (pip install paho-mqtt)",
        );
    broker.filter(|_| ok)
}

/// mosquitto on 127.0.0.1, killed on drop.
struct Broker {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Broker {
    fn start(bin: &Path, dir: &Path) -> Broker {
        let port = free_port();
        let conf = dir.join("mosquitto.conf");
        let log = dir.join("mosquitto.log");
        std::fs::write(
            &conf,
            format!(
                // Logs go to stderr, captured below: started as root,
                // mosquitto drops to its own user, which may not write here.
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                 log_dest stderr\nlog_type all\nconnection_messages true\n"
            ),
        )
        .unwrap();
        let child = Command::new(bin)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut b = Broker { child, addr, log };
        let up = wait_for(Duration::from_secs(15), || {
            TcpStream::connect_timeout(&addr, Duration::from_millis(200))
                .ok()
                .map(|_| ())
        });
        if up.is_none() {
            let _ = b.child.kill();
            panic!("mosquitto did not start: {}", b.log());
        }
        b
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the paho client; returns (round trip done, its JSON line).
fn paho(port: u16, cert: Option<(&Path, &Path)>, message: &str) -> (bool, String) {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/python/mqtt_roundtrip.py"
    );
    let mut c = Command::new("python3");
    c.arg(script)
        .arg("--port")
        .arg(port.to_string())
        .arg("--message")
        .arg(message);
    if let Some((crt, key)) = cert {
        c.arg("--cert").arg(crt).arg("--key").arg(key);
    }
    let o = c.output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        matches!(o.status.code(), Some(0) | Some(3)),
        "paho client crashed: {out} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.code() == Some(0), out)
}

#[test]
fn mosquitto_behind_a_tls_listener_with_device_certificates() {
    let Some(bin) = have_tools() else {
        return;
    };
    let t = TempDir::new("mqtt");
    let ca = t.path().join("ca");
    pki(&ca, &["init", "--org", "Acme"]);
    pki(
        &ca,
        &[
            "issue",
            "--device",
            "sensor-01",
            "--san",
            "uri:spiffe://acme/device/sensor-01",
        ],
    );
    let broker = Broker::start(&bin, t.path());
    let toml = format!(
        r#"
[server]
data_dir = "@DATA_DIR@"
access_log = "off"
[admin]
listen = "127.0.0.1:@ADMIN@"
[[listener]]
name = "mqtt"
listen = "127.0.0.1:@LISTEN@"
protocol = "tls"
upstream = "mosquitto"
client_auth = "required"
client_ca = "{bundle}"
crl = ["{crl}"]
allow = ["uri:spiffe://acme/device/*"]
[[upstream]]
name = "mosquitto"
servers = ["{addr}"]
"#,
        bundle = ca.join("ca-bundle.pem").display(),
        crl = ca.join("crl.pem").display(),
        addr = broker.addr,
    );
    let p = Palisade::start_toml(&toml);
    let dev = ca.join("devices").join("sensor-01");
    let (crt, key) = (dev.join("chain.pem"), dev.join("sensor-01.key"));

    let (ok, out) = paho(p.port, Some((&crt, &key)), "21.5C from sensor-01");
    assert!(
        ok,
        "MQTT round trip failed: {out}\n{}\n{}",
        p.logs(),
        broker.log()
    );
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["payload"], "21.5C from sensor-01");
    assert_eq!(v["topic"], "devices/sensor/temperature");
    // The broker really saw the client (through palisade, from loopback).
    assert!(
        broker.log().contains("palisade-test"),
        "mosquitto log: {}",
        broker.log()
    );
    let closed = wait_for(Duration::from_secs(10), || {
        p.logs()
            .lines()
            .find(|l| l.contains("tunnel closed") && l.contains("sensor-01"))
            .map(str::to_string)
    });
    let line = closed.unwrap_or_else(|| panic!("no close event: {}", p.logs()));
    assert!(!line.contains("\"bytes_in\":0,"), "{line}");

    // Without a certificate: no CONNACK, and the refusal says why.
    let (ok, out) = paho(p.port, None, "should not arrive");
    assert!(!ok, "client without certificate got through: {out}");
    let refused = wait_for(Duration::from_secs(10), || {
        p.logs().contains("no client certificate").then_some(())
    });
    assert!(refused.is_some(), "{}", p.logs());
    // Only the device's session ever reached the broker.
    assert_eq!(
        broker.log().matches("New client connected").count(),
        1,
        "{}",
        broker.log()
    );
}
