#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `palisade scan tls` from the command line: a palisade https listener
//! scanned end to end, JSON output, `--fail-on` exit codes, the loopback
//! confirmation, and clear errors (exit 2) for garbage, unresolvable hosts
//! and bad client-certificate files.

mod common;
use common::*;

use std::io::Write;
use std::net::TcpListener;
use std::time::Duration;

/// A CLI run never takes longer than this (the scanner's own timeouts are
/// a few seconds).
const CLI_BUDGET: Duration = Duration::from_secs(60);

struct Pki {
    dir: TempDir,
    ca: std::path::PathBuf,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
}

fn pki() -> Pki {
    let dir = TempDir::new("scantls");
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "scan CLI test CA");
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca = p.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    let leaf = p.signed_by(&key, &ca, &ca_key).unwrap();
    Pki {
        ca: dir.write("ca.pem", ca.pem()),
        cert: dir.write("leaf.pem", leaf.pem()),
        key: dir.write("leaf.key", key.serialize_pem()),
        dir,
    }
}

fn palisade_https(k: &Pki) -> (Palisade, Upstream) {
    let up = Upstream::start("app");
    let mut spec = ConfigSpec::proxy(&[up.addr]);
    spec.protocol = "https".into();
    spec.certificates = vec![(k.cert.clone(), k.key.clone())];
    spec.listener_extra = vec!["hsts = \"max-age=63072000; includeSubDomains\"".into()];
    (Palisade::start(&spec), up)
}

#[test]
fn palisade_https_listener_grades_a_plus_in_json() {
    let k = pki();
    let (p, _up) = palisade_https(&k);
    let target = format!("localhost:{}", p.addr().port());
    let ca = k.ca.display().to_string();
    let (st, out, err) = run_cli(&["scan", "tls", &target, "--ca", &ca, "--json"], CLI_BUDGET);
    assert_eq!(st.code(), Some(0), "{err}\n{out}");
    assert!(err.contains("reminder:"), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["grade"]["grade"], "A+", "{}", v["grade"]);
    let enabled: Vec<&str> = v["protocols"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["supported"] == true)
        .map(|p| p["protocol"].as_str().unwrap())
        .collect();
    assert_eq!(enabled, ["TLSv1.2", "TLSv1.3"]);
    // Only forward-secret AEAD suites, as the gateway promises.
    for p in v["protocols"].as_array().unwrap() {
        for s in p["suites"].as_array().unwrap() {
            assert_eq!(s["info"]["strength"], "strong", "{s}");
        }
    }
    assert_eq!(v["certificate"]["trusted"], true);
    assert_eq!(v["http"]["hsts_max_age"], 63_072_000);
    assert_eq!(v["secure_renegotiation"], true);

    // The table names the grade; --fail-on info turns the informational
    // finding (no OCSP staple) into exit 1.
    let (st, out, _) = run_cli(
        &["scan", "tls", &target, "--ca", &ca, "--fail-on", "info"],
        CLI_BUDGET,
    );
    assert_eq!(st.code(), Some(1), "{out}");
    assert!(out.contains("Grade: A+"), "{out}");
    assert!(out.contains("tls.ocsp.not-stapled"), "{out}");
    drop(k.dir);
}

#[test]
fn untrusted_palisade_certificate_is_graded_t_and_fails_high() {
    let k = pki();
    let (p, _up) = palisade_https(&k);
    let target = format!("localhost:{}", p.addr().port());
    let (st, out, err) = run_cli(&["scan", "tls", &target], CLI_BUDGET);
    assert_eq!(st.code(), Some(1), "{err}\n{out}");
    assert!(out.contains("Grade: T"), "{out}");
    assert!(
        out.contains("[A+ if the certificate were trusted]"),
        "{out}"
    );
    assert!(out.contains("tls.cert.untrusted"), "{out}");
}

#[test]
fn non_loopback_needs_yes() {
    let (st, _, err) = run_cli(&["scan", "tls", "192.0.2.1:443"], CLI_BUDGET);
    assert_eq!(st.code(), Some(2));
    assert!(err.contains("pass --yes"), "{err}");
}

#[test]
fn unresolvable_host_is_exit_2() {
    let (st, _, err) = run_cli(&["scan", "tls", "no-such-host.invalid:443"], CLI_BUDGET);
    assert_eq!(st.code(), Some(2));
    assert!(err.contains("cannot resolve"), "{err}");
}

#[test]
fn garbage_server_is_exit_2_with_reason() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        // Bounded: the scan makes one connection before giving up.
        for s in l.incoming().take(4) {
            let Ok(mut s) = s else { continue };
            let _ = s.write_all(b"220 smtp.example ESMTP ready\r\n");
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let (st, _, err) = run_cli(&["scan", "tls", &format!("127.0.0.1:{port}")], CLI_BUDGET);
    assert_eq!(st.code(), Some(2));
    assert!(err.contains("not TLS") && err.contains("220 smtp"), "{err}");
}

#[test]
fn bad_client_certificate_file_is_exit_2() {
    let dir = TempDir::new("scantls-badcert");
    let junk = dir.write("junk.pem", "not a certificate");
    let j = junk.display().to_string();
    let (st, _, err) = run_cli(
        &[
            "scan",
            "tls",
            "127.0.0.1:1",
            "--client-cert",
            &j,
            "--client-key",
            &j,
        ],
        CLI_BUDGET,
    );
    assert_eq!(st.code(), Some(2));
    assert!(err.contains("--client-cert"), "{err}");
}

#[test]
fn audit_of_an_https_url_includes_the_tls_scan() {
    // The certificate is from a private CA the audit does not trust: the
    // TLS section grades T and says what the grade would be if trusted, and
    // its findings join the one report with the scanner "tls".
    let k = pki();
    let (p, _up) = palisade_https(&k);
    let port = p.addr().port().to_string();
    let url = format!("https://localhost:{port}/");
    let (_st, out, err) = run_cli(
        &["audit", &url, "--ports", &port, "--format", "json"],
        CLI_BUDGET,
    );
    let v: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}\n{err}\n{out}"));
    let sections = v["sections"].as_array().unwrap();
    let tls = sections
        .iter()
        .find(|s| s["scanner"] == "tls")
        .unwrap_or_else(|| panic!("no tls section: {v}"));
    assert_eq!(tls["target"], format!("localhost:{port}"), "{tls}");
    let summary = tls["summary"].as_str().unwrap_or_default();
    assert!(
        summary.starts_with("grade T (A+ if the certificate were trusted)"),
        "{tls}"
    );
    let findings = v["findings"].as_array().unwrap();
    assert!(
        findings
            .iter()
            .any(|f| f["scanner"] == "tls" && f["id"].as_str().unwrap().starts_with("tls.cert")),
        "{v}"
    );
    // --no-tls leaves it out.
    let (_st, out, err) = run_cli(
        &[
            "audit", &url, "--ports", &port, "--format", "json", "--no-tls",
        ],
        CLI_BUDGET,
    );
    let v: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}\n{err}\n{out}"));
    assert!(v["sections"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["scanner"] != "tls"));
}
