//! `palisade pki` end to end, checked by independent implementations:
//! Python `cryptography` loads the PKCS#12 bundles and verifies the chains,
//! Python `ssl` (OpenSSL) runs a mutual-TLS handshake with the issued
//! certificates and refuses a revoked one once the CRL is regenerated, and
//! the openssl CLI (when installed) verifies chains and the CRL. Bad
//! secrets and corrupted files end with one clear line, never a panic.
//!
//! Needs python3 with `cryptography` (tests/requirements.txt): under CI a
//! missing one fails the tests; elsewhere they are skipped with a reason.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const PASSPHRASE: &str = "correct horse battery staple";

struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let p = std::env::temp_dir().join(format!("palisade-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        Dir(p)
    }
    fn s(&self, rel: &str) -> String {
        self.0.join(rel).display().to_string()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `palisade pki --dir <d>/ca ARGS` with the passphrase in the environment.
fn pki(d: &Dir, args: &[&str]) -> Output {
    pki_env(d, args, Some(PASSPHRASE))
}

fn pki_env(d: &Dir, args: &[&str], pass: Option<&str>) -> Output {
    let ca = d.s("ca");
    let mut c = Command::new(env!("CARGO_BIN_EXE_palisade"));
    c.args(["pki", "--dir", &ca]).args(args);
    c.env_remove("PALISADE_PKI_PASSPHRASE");
    if let Some(p) = pass {
        c.env("PALISADE_PKI_PASSPHRASE", p);
    }
    let o = c.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked"), "panic: {err}");
    assert!(
        !err.contains("-----BEGIN") && !err.contains("MII") && !err.contains(PASSPHRASE),
        "secret material in an error: {err}"
    );
    o
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "palisade failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn err(o: &Output) -> String {
    assert!(
        !o.status.success(),
        "palisade succeeded unexpectedly: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn have_python() -> bool {
    common::tool_present(
        common::python_imports("cryptography.x509.verification"),
        "python3 with `cryptography` >= 42 (tests/requirements.txt)",
    )
}

fn checker() -> String {
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/python/pki_check.py"
    )
    .to_string()
}

fn py(args: &[&str]) -> String {
    let o = Command::new("python3")
        .arg(checker())
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "pki_check.py failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn py_json(args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&py(args)).unwrap()
}

/// openssl CLI output, or None (with a note) when it is not installed.
fn openssl(args: &[&str]) -> Option<String> {
    match Command::new("openssl").args(args).output() {
        Ok(o) => Some(format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )),
        Err(_) => {
            eprintln!("note: openssl CLI not installed; its cross-checks are skipped");
            None
        }
    }
}

fn serial_of(d: &Dir, name: &str) -> String {
    let inv: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.s("ca/inventory.json")).unwrap()).unwrap();
    inv["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|e| e["name"] == name)
        .unwrap()["serial"]
        .as_str()
        .unwrap()
        .to_string()
}

fn dev(d: &Dir, name: &str, file: &str) -> String {
    d.s(&format!("ca/devices/{name}/{file}"))
}

#[test]
fn issued_bundles_load_and_verify_in_python_and_openssl() {
    if !have_python() {
        return;
    }
    let d = Dir::new("pki-issue");
    let out = ok(&pki(&d, &["init", "--org", "Acme"]));
    assert!(out.contains("ca-bundle.pem"), "{out}");
    let out = ok(&pki(
        &d,
        &[
            "issue",
            "--device",
            "sensor-01",
            "--san",
            "uri:spiffe://acme/device/sensor-01",
            "--san",
            "dns:sensor-01.iot.acme",
            "--days",
            "30",
        ],
    ));
    assert!(out.contains("issued sensor-01 serial"), "{out}");
    ok(&pki(
        &d,
        &["issue", "--device", "cam-7", "--key-type", "ed25519"],
    ));

    let (root, issuing) = (d.s("ca/root-ca.crt"), d.s("ca/issuing-ca.crt"));
    for (name, key) in [("sensor-01", "EC"), ("cam-7", "Ed25519")] {
        let v = py_json(&[
            "p12",
            &dev(&d, name, &format!("{name}.p12")),
            &dev(&d, name, &format!("{name}.p12.pass")),
            &root,
            &issuing,
        ]);
        assert_eq!(v["cn"], name, "{v}");
        assert!(v["key"].as_str().unwrap().starts_with(key), "{v}");
        assert_eq!(v["key_matches"], true, "{v}");
        assert_eq!(v["verified"], true, "{v}");
        assert_eq!(
            v["serial"],
            serial_of(&d, name).trim_start_matches('0'),
            "{v}"
        );
        assert_eq!(v["extra"].as_array().unwrap().len(), 2, "{v}");
    }
    let v = py_json(&[
        "p12",
        &dev(&d, "sensor-01", "sensor-01.p12"),
        &dev(&d, "sensor-01", "sensor-01.p12.pass"),
        &root,
        &issuing,
    ]);
    assert_eq!(v["uri"][0], "spiffe://acme/device/sensor-01");
    assert_eq!(v["dns"][0], "sensor-01.iot.acme");

    // Key files: device keys 0600; CA keys encrypted (openssl needs the passphrase).
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dev(&d, "cam-7", "cam-7.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "device key readable by others: {mode:o}");
    let key_text = std::fs::read_to_string(d.s("ca/root-ca.key")).unwrap();
    assert!(key_text.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));

    let list = ok(&pki(&d, &["list"]));
    assert!(
        list.contains("sensor-01") && list.contains("cam-7"),
        "{list}"
    );
    assert_eq!(list.matches(" active").count(), 2, "{list}");

    let pass = d.s("pass");
    std::fs::write(&pass, PASSPHRASE).unwrap();
    if let Some(o) = openssl(&[
        "verify",
        "-CAfile",
        &root,
        "-untrusted",
        &issuing,
        &dev(&d, "sensor-01", "sensor-01.crt"),
        &dev(&d, "cam-7", "cam-7.crt"),
    ]) {
        assert_eq!(o.matches(": OK").count(), 2, "{o}");
        let o = openssl(&[
            "pkey",
            "-in",
            &d.s("ca/issuing-ca.key"),
            "-passin",
            &format!("file:{pass}"),
            "-noout",
            "-text",
        ])
        .unwrap();
        assert!(o.contains("Private-Key: (256 bit"), "{o}");
    }
}

#[test]
fn revoked_device_is_refused_by_tls_after_crl_regeneration() {
    if !have_python() {
        return;
    }
    let d = Dir::new("pki-crl");
    ok(&pki(&d, &["init"]));
    ok(&pki(
        &d,
        &[
            "issue",
            "--device",
            "gateway",
            "--san",
            "dns:localhost",
            "--san",
            "ip:127.0.0.1",
        ],
    ));
    ok(&pki(&d, &["issue", "--device", "sensor-02"]));
    let tls = || {
        py(&[
            "tls",
            &d.s("ca/ca-bundle.pem"),
            &dev(&d, "gateway", "chain.pem"),
            &dev(&d, "gateway", "gateway.key"),
            &dev(&d, "sensor-02", "chain.pem"),
            &dev(&d, "sensor-02", "sensor-02.key"),
            &d.s("ca/crl.pem"),
        ])
    };
    assert_eq!(tls().trim(), "ok: hello sensor-02");

    let serial = serial_of(&d, "sensor-02");
    // By serial, in the colon form other tools print.
    let colons: Vec<String> = serial
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8(c.to_vec()).unwrap().to_uppercase())
        .collect();
    let out = ok(&pki(
        &d,
        &["revoke", &colons.join(":"), "--reason", "key-compromise"],
    ));
    assert!(out.contains("revoked sensor-02"), "{out}");
    // Until the CRL is regenerated the old one (empty) still applies.
    assert!(tls().starts_with("ok"));
    let out = ok(&pki(&d, &["crl"]));
    assert!(out.contains("CRL #2") && out.contains("1 revoked"), "{out}");
    let r = tls();
    assert!(r.starts_with("refused") && r.contains("revoked"), "{r}");

    let v = py_json(&[
        "crl",
        &d.s("ca/crl.pem"),
        &d.s("ca/issuing-ca.crt"),
        &serial,
    ]);
    assert_eq!(v["signature_valid"], true, "{v}");
    assert_eq!(v["revoked"], true, "{v}");
    assert_eq!(v["reason"], "key_compromise", "{v}");
    assert_eq!(v["number"], 2, "{v}");
    let gw = serial_of(&d, "gateway");
    let v = py_json(&["crl", &d.s("ca/crl.pem"), &d.s("ca/issuing-ca.crt"), &gw]);
    assert_eq!(v["revoked"], false, "{v}");

    let list = ok(&pki(&d, &["list"]));
    assert!(list.contains("revoked (key-compromise)"), "{list}");
    let e = err(&pki(&d, &["revoke", "sensor-02"]));
    assert!(e.contains("no active certificate"), "{e}");

    if let Some(o) = openssl(&[
        "verify",
        "-crl_check",
        "-CRLfile",
        &d.s("ca/crl.pem"),
        "-CAfile",
        &d.s("ca/root-ca.crt"),
        "-untrusted",
        &d.s("ca/issuing-ca.crt"),
        &dev(&d, "sensor-02", "sensor-02.crt"),
    ]) {
        assert!(o.contains("certificate revoked"), "{o}");
    }
}

#[test]
fn renew_supersedes_the_old_certificate() {
    if !have_python() {
        return;
    }
    let d = Dir::new("pki-renew");
    ok(&pki(&d, &["init"]));
    ok(&pki(
        &d,
        &[
            "issue",
            "--device",
            "probe",
            "--days",
            "2",
            "--san",
            "dns:probe.local",
        ],
    ));
    let old = serial_of(&d, "probe");
    let e = err(&pki(&d, &["issue", "--device", "probe"]));
    assert!(e.contains("already has an active certificate"), "{e}");
    let out = ok(&pki(&d, &["renew", "probe"]));
    let new = serial_of(&d, "probe");
    assert_ne!(old, new);
    assert!(out.contains(&new) && out.contains("probe.local"), "{out}");
    let list = ok(&pki(&d, &["list"]));
    let line = |s: &str| list.lines().find(|l| l.contains(s)).unwrap().to_string();
    assert!(line(&old).ends_with("superseded"), "{list}");
    assert!(line(&new).ends_with("active"), "{list}");
    let v = py_json(&[
        "p12",
        &dev(&d, "probe", "probe.p12"),
        &dev(&d, "probe", "probe.p12.pass"),
        &d.s("ca/root-ca.crt"),
        &d.s("ca/issuing-ca.crt"),
    ]);
    assert_eq!(v["verified"], true, "{v}");
    assert_eq!(v["serial"], new.trim_start_matches('0'), "{v}");
}

#[test]
fn bad_secrets_and_corrupted_files_are_clear_errors() {
    let d = Dir::new("pki-bad");
    let e = err(&pki(&d, &["list"]));
    assert!(e.contains("no PKI in") && e.contains("pki init"), "{e}");
    let e = err(&pki_env(&d, &["init"], None));
    assert!(e.contains("no CA secret"), "{e}");
    let e = err(&pki_env(&d, &["init"], Some("short")));
    assert!(e.contains("shorter than 12"), "{e}");

    // A key file as the secret.
    let kf = d.s("ca.keyfile");
    std::fs::write(&kf, [7u8; 64]).unwrap();
    ok(&pki_env(&d, &["init", "--key-file", &kf], None));
    let e = err(&pki(&d, &["init", "--key-file", &kf]));
    assert!(e.contains("already holds a PKI"), "{e}");
    ok(&pki_env(
        &d,
        &["issue", "--device", "d1", "--key-file", &kf],
        None,
    ));

    // Wrong secrets.
    let e = err(&pki(&d, &["issue", "--device", "d2"]));
    assert!(e.contains("wrong passphrase or key file"), "{e}");
    std::fs::write(&kf, [8u8; 64]).unwrap();
    let e = err(&pki_env(&d, &["crl", "--key-file", &kf], None));
    assert!(e.contains("wrong passphrase or key file"), "{e}");
    std::fs::write(&kf, [7u8; 64]).unwrap();

    // Bad requests.
    for (args, want) in [
        (vec!["issue", "--device", "../etc"], "device name"),
        (vec!["issue", "--device", "x", "--days", "9999"], "validity"),
        (
            vec!["issue", "--device", "x", "--san", "ip:999.1.1.1"],
            "not an IP",
        ),
        (
            vec!["issue", "--device", "x", "--key-type", "rsa"],
            "unknown key type",
        ),
        (
            vec!["revoke", "d1", "--reason", "because"],
            "unknown reason",
        ),
    ] {
        let mut a = args.clone();
        a.extend(["--key-file", &kf]);
        if a[0] == "revoke" {
            a.truncate(4);
        }
        let e = err(&pki_env(&d, &a, None));
        assert!(e.contains(want), "{args:?}: {e}");
    }

    // Corrupted key files: garbage, then a PEM cut in half.
    let key = d.s("ca/issuing-ca.key");
    let good = std::fs::read_to_string(&key).unwrap();
    std::fs::write(&key, "garbage").unwrap();
    let e = err(&pki_env(&d, &["crl", "--key-file", &kf], None));
    assert!(
        e.contains("issuing-ca.key") && e.contains("not a PEM"),
        "{e}"
    );
    std::fs::write(&key, &good[..good.len() / 2]).unwrap();
    let e = err(&pki_env(&d, &["crl", "--key-file", &kf], None));
    assert!(e.contains("issuing-ca.key"), "{e}");
    // A flipped byte inside the ciphertext.
    let mut lines: Vec<String> = good.lines().map(String::from).collect();
    let mid = lines.len() - 3;
    // Always a change: the line's first base64 digit (6 data bits) is
    // replaced by another digit (swapping A and B alone left lines without
    // either letter untouched, and the test passed by luck or failed).
    let first = if lines[mid].starts_with('A') {
        "B"
    } else {
        "A"
    };
    lines[mid].replace_range(..1, first);
    std::fs::write(&key, lines.join("\n") + "\n").unwrap();
    let e = err(&pki_env(&d, &["crl", "--key-file", &kf], None));
    assert!(e.contains("issuing-ca.key"), "{e}");
    std::fs::write(&key, &good).unwrap();
    ok(&pki_env(&d, &["crl", "--key-file", &kf], None));

    // A malformed inventory.
    let inv = d.s("ca/inventory.json");
    let text = std::fs::read_to_string(&inv).unwrap();
    std::fs::write(&inv, &text[..text.len() / 2]).unwrap();
    let e = err(&pki(&d, &["list"]));
    assert!(
        e.contains("inventory.json") && e.contains("malformed inventory"),
        "{e}"
    );
    std::fs::write(&inv, text.replace("\"active\"", "\"bogus\"")).unwrap();
    let e = err(&pki(&d, &["list"]));
    assert!(e.contains("malformed inventory"), "{e}");
    assert!(Path::new(&d.s("ca/devices/d1/d1.p12")).exists());
}

/// Eight `palisade pki` processes at once (issues, revocations, CRLs) on
/// one directory: the directory lock makes them take turns, so no inventory
/// entry is lost and CRL numbers never repeat.
#[test]
fn concurrent_commands_keep_every_inventory_entry() {
    let d = Dir::new("pki-concurrent");
    ok(&pki(&d, &["init", "--org", "Acme"]));
    ok(&pki(&d, &["issue", "--device", "old-1"]));
    ok(&pki(&d, &["issue", "--device", "old-2"]));
    let ca = d.s("ca");
    let mut jobs: Vec<Vec<String>> = (0..6)
        .map(|i| vec!["issue".into(), "--device".into(), format!("dev-{i}")])
        .collect();
    jobs.push(vec!["revoke".into(), "old-1".into()]);
    jobs.push(vec!["revoke".into(), "old-2".into()]);
    let children: Vec<_> = jobs
        .iter()
        .map(|args| {
            Command::new(env!("CARGO_BIN_EXE_palisade"))
                .args(["pki", "--dir", &ca])
                .args(args)
                .env("PALISADE_PKI_PASSPHRASE", PASSPHRASE)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        ok(&c.wait_with_output().unwrap());
    }
    let crls: Vec<_> = (0..3)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_palisade"))
                .args(["pki", "--dir", &ca, "crl"])
                .env("PALISADE_PKI_PASSPHRASE", PASSPHRASE)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut numbers: Vec<String> = crls
        .into_iter()
        .map(|c| {
            let out = ok(&c.wait_with_output().unwrap());
            // "wrote CRL #N to …"
            out.split('#')
                .nth(1)
                .and_then(|s| s.split_whitespace().next())
                .unwrap()
                .to_string()
        })
        .collect();
    numbers.sort();
    assert_eq!(numbers, ["2", "3", "4"]);
    let list: serde_json::Value = serde_json::from_str(&ok(&pki(&d, &["list", "--json"]))).unwrap();
    let entries = list.as_array().unwrap();
    let mut names: Vec<&str> = entries
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["dev-0", "dev-1", "dev-2", "dev-3", "dev-4", "dev-5", "old-1", "old-2"]
    );
    let revoked = entries
        .iter()
        .filter(|e| e["status"].as_str().unwrap_or("").starts_with("revoked"))
        .count();
    assert_eq!(revoked, 2, "{list}");
}
