#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `palisade scan web`, `palisade audit` and `scan deps --db-update`
//! through the real binary: exit codes, JSON/JSONL/SARIF/HTML output, rule
//! files, bad input.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

fn palisade(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(args)
        .output()
        .unwrap()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A tiny HTTP/1.1 server on loopback (one request per connection):
/// path → (status, headers, body); unknown paths are 404.
fn serve(routes: HashMap<&'static str, (u16, &'static str, Vec<u8>)>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let routes = Arc::new(routes);
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let routes = routes.clone();
            std::thread::spawn(move || {
                let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(5)));
                let mut buf = Vec::new();
                let mut chunk = [0u8; 2048];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let req = text(&buf);
                let path = req.split(' ').nth(1).unwrap_or("/");
                let path = path.split('?').next().unwrap_or("/");
                let (status, headers, body) = routes.get(path).cloned().unwrap_or((
                    404,
                    "Content-Type: text/html\r\n",
                    b"<html>nope</html>".to_vec(),
                ));
                let head = format!(
                    "HTTP/1.1 {status} X\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes());
                let _ = s.write_all(&body);
            });
        }
    });
    port
}

fn planted() -> u16 {
    let mut r = HashMap::new();
    r.insert(
        "/",
        (
            200,
            "Content-Type: text/html\r\nServer: <script>alert(1)</script>/1.0\r\nSet-Cookie: sid=s3cr3t; Path=/\r\n",
            b"<html><body><a href=\"/files/\">files</a></body></html>".to_vec(),
        ),
    );
    r.insert(
        "/files/",
        (
            200,
            "Content-Type: text/html\r\n",
            b"<html><title>Index of /files/</title><h1>Index of /files/</h1></html>".to_vec(),
        ),
    );
    r.insert(
        "/.git/HEAD",
        (
            200,
            "Content-Type: text/plain\r\n",
            b"ref: refs/heads/main\n".to_vec(),
        ),
    );
    serve(r)
}

#[test]
fn scan_web_exit_codes_formats_and_rules() {
    let port = planted();
    let url = format!("http://127.0.0.1:{port}/");
    let o = palisade(&["scan", "web", &url, "--json", "--timeout", "3000"]);
    assert_eq!(code(&o), 1, "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let ids: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    for id in [
        "WEB-EXPOSED-GIT",
        "WEB-DIR-LISTING",
        "WEB-HDR-CSP",
        "WEB-COOKIE-HTTPONLY",
    ] {
        assert!(ids.contains(&id), "{id} missing: {ids:?}");
    }
    assert!(!text(&o.stdout).contains("s3cr3t"), "cookie value leaked");
    let stderr = text(&o.stderr);
    assert!(stderr.contains("target: "), "{stderr}");
    // Not a terminal: no progress bar drawn.
    assert!(
        !stderr.contains('\x1b') && !stderr.contains("[="),
        "{stderr}"
    );

    let o = palisade(&["scan", "web", &url, "--jsonl", "--passive"]);
    assert_eq!(code(&o), 1);
    let lines: Vec<serde_json::Value> = text(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines
        .iter()
        .all(|f| f["id"].as_str().unwrap().starts_with("WEB-")));
    // --passive: no probe findings.
    assert!(!lines.iter().any(|f| f["id"] == "WEB-EXPOSED-GIT"));

    let o = palisade(&["scan", "web", &url, "--fail-on", "never"]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("WEB-EXPOSED-GIT"));

    // Rule file: ignore everything except one low finding set to fail.
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nid = \"WEB-HDR-XCTO\"\naction = \"fail\"\nreason = \"policy\"\n\
         [[rule]]\nid = \"WEB-*\"\naction = \"ignore\"\nreason = \"accepted risk\"\n",
    )
    .unwrap();
    let r = rules.to_str().unwrap();
    let o = palisade(&[
        "scan",
        "web",
        &url,
        "--rules",
        r,
        "--fail-on",
        "never",
        "--json",
    ]);
    assert_eq!(code(&o), 1, "a fail rule fails whatever --fail-on says");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["findings"].as_array().unwrap().len(), 1);
    assert_eq!(v["findings"][0]["id"], "WEB-HDR-XCTO");
    assert!(v["ignored"].as_array().unwrap().len() >= 3);
    std::fs::write(&rules, "[[rule]]\nid = \"WEB-*\"\naction = \"ignore\"\n").unwrap();
    let o = palisade(&["scan", "web", &url, "--rules", r]);
    assert_eq!(code(&o), 0);
    std::fs::write(&rules, "[[rule]]\nid = \"X\"\naction = \"sometimes\"\n").unwrap();
    let o = palisade(&["scan", "web", &url, "--rules", r]);
    assert_eq!(code(&o), 2);
    assert!(text(&o.stderr).contains("expected fail, warn or ignore"));
}

#[test]
fn scan_web_bad_input_is_exit_2_with_a_clear_error() {
    let refused = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let refused = format!("http://127.0.0.1:{refused}/");
    let cases: [(&[&str], &str); 8] = [
        (&["audit", "127.0.0.1", "--no-ports"], "nothing to audit"),
        (
            &["audit", "http://127.0.0.1/", "--lockfile", "Cargo.lock"],
            "--lockfile needs --db",
        ),
        (&["scan", "web", "ftp://127.0.0.1/"], "invalid URL"),
        (&["scan", "web", &refused], "connection refused"),
        (
            &["scan", "web", "http://192.0.2.1/"],
            "not a loopback address",
        ),
        (
            &["scan", "web", "http://127.0.0.1/", "--fail-on", "bad"],
            "--fail-on",
        ),
        (
            &["scan", "web", "http://127.0.0.1/", "--rate", "0"],
            "--rate",
        ),
        (&["audit", "http://192.0.2.1/"], "not a loopback address"),
    ];
    for (args, want) in cases {
        let o = palisade(args);
        assert_eq!(code(&o), 2, "{args:?}: {}", text(&o.stderr));
        assert!(
            text(&o.stderr).contains(want),
            "{args:?}: {}",
            text(&o.stderr)
        );
    }
}

/// The SARIF 2.1.0 properties the schema requires for what we emit.
fn validate_sarif(s: &serde_json::Value) {
    assert_eq!(s["version"], "2.1.0");
    assert!(s["$schema"].as_str().unwrap().contains("sarif-2.1.0"));
    let run = &s["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "palisade");
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    let results = run["results"].as_array().unwrap();
    assert!(!results.is_empty());
    for r in results {
        let idx = r["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[idx]["id"], r["ruleId"]);
        assert!(["note", "warning", "error"].contains(&r["level"].as_str().unwrap()));
        assert!(r["message"]["text"].as_str().is_some_and(|t| !t.is_empty()));
        assert!(r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].is_string());
    }
}

#[test]
fn audit_writes_one_report_in_every_format() {
    let port = planted();
    let url = format!("http://127.0.0.1:{port}/");
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("report.html");
    let sarif = dir.path().join("report.sarif");
    let p = format!("{port}");
    let o = palisade(&[
        "audit",
        &url,
        "--ports",
        &p,
        "--format",
        "json",
        "--html",
        html.to_str().unwrap(),
        "--sarif",
        sarif.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 1, "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let scanners: Vec<&str> = v["sections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["scanner"].as_str().unwrap())
        .collect();
    assert_eq!(scanners, ["ports", "web"]);
    // The documented grading: 100 minus 40/20/8/3 per critical/high/medium/low.
    let lost: u64 = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| match f["severity"].as_str().unwrap() {
            "critical" => 40,
            "high" => 20,
            "medium" => 8,
            "low" => 3,
            _ => 0,
        })
        .sum();
    let score = 100u64.saturating_sub(lost);
    assert_eq!(v["grade"]["score"].as_u64().unwrap(), score);
    assert!(score < 60, "{score}");
    assert_eq!(v["grade"]["letter"], "F");
    assert_eq!(v["fixes"][0]["ids"][0], "WEB-EXPOSED-GIT");

    validate_sarif(&serde_json::from_str(&std::fs::read_to_string(&sarif).unwrap()).unwrap());

    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!doctype html>"));
    assert!(
        !page.contains("<script>alert(1)</script>"),
        "evidence not escaped"
    );
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!page.contains("<script") && !page.contains("<link"));

    // A host target finds the HTTP service itself and scans it.
    let o = palisade(&["audit", "127.0.0.1", "--ports", &p, "--format", "sarif"]);
    assert_eq!(code(&o), 1, "{}", text(&o.stderr));
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    validate_sarif(&s);
    assert!(text(&o.stdout).contains("WEB-EXPOSED-GIT"));

    // A scan that cannot run: the report still comes out, exit 2.
    let lock = dir.path().join("Cargo.lock");
    std::fs::write(&lock, "version = 3\n").unwrap();
    let o = palisade(&[
        "audit",
        &url,
        "--no-ports",
        "--no-web",
        "--lockfile",
        lock.to_str().unwrap(),
        "--db",
        dir.path().join("no-db").to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 2);
    let out = text(&o.stdout);
    assert!(out.contains("deps") && out.contains("FAILED"), "{out}");
    // Nothing found, but the failed scan caps the grade at C.
    assert!(out.contains("grade: C (score 100/100)"), "{out}");
    assert!(out.contains("the audit is incomplete"), "{out}");
}

/// A zip of stored entries.
fn zip(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in entries {
        let mut crc = flate2::Crc::new();
        crc.update(data);
        let offset = out.len() as u32;
        let mut common = Vec::new();
        common.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0x21, 0]);
        common.extend_from_slice(&crc.sum().to_le_bytes());
        common.extend_from_slice(&(data.len() as u32).to_le_bytes());
        common.extend_from_slice(&(data.len() as u32).to_le_bytes());
        common.extend_from_slice(&(name.len() as u16).to_le_bytes());
        common.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&[0x50, 0x4b, 3, 4]);
        out.extend_from_slice(&common);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        central.extend_from_slice(&[0x50, 0x4b, 1, 2, 20, 0]);
        central.extend_from_slice(&common);
        central.extend_from_slice(&[0; 10]);
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let cd = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&[0x50, 0x4b, 5, 6, 0, 0, 0, 0]);
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    out
}

fn write_lock(dir: &Path) -> String {
    let lock = dir.join("Cargo.lock");
    std::fs::write(
        &lock,
        "version = 3\n[[package]]\nname = \"smallvec\"\nversion = \"1.6.0\"\n\
         source = \"registry+https://github.com/rust-lang/crates.io-index\"\n",
    )
    .unwrap();
    lock.to_str().unwrap().to_owned()
}

#[test]
fn deps_db_update_downloads_then_scans() {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let modified = scan::report::rfc3339(secs - 60);
    let adv = format!(
        r#"{{"id":"RUSTSEC-2021-3","modified":"{modified}","summary":"smallvec overflow",
        "affected":[{{"package":{{"ecosystem":"crates.io","name":"smallvec"}},
        "ranges":[{{"type":"SEMVER","events":[{{"introduced":"0"}},{{"fixed":"1.6.1"}}]}}]}}]}}"#
    );
    let mut r = HashMap::new();
    r.insert(
        "/crates.io/all.zip",
        (
            200,
            "Content-Type: application/zip\r\n",
            zip(&[("RUSTSEC-2021-3.json", adv.into_bytes())]),
        ),
    );
    r.insert("/bad/all.zip", (200, "", b"<html>oops</html>".to_vec()));
    let port = serve(r);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("osv");
    let lock = write_lock(dir.path());
    let o = palisade(&[
        "scan",
        "deps",
        "--db",
        db.to_str().unwrap(),
        "--db-update",
        &format!("http://127.0.0.1:{port}/crates.io/all.zip"),
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("installed 1 advisories"),
        "{}",
        text(&o.stderr)
    );
    let o = palisade(&[
        "scan",
        "deps",
        &lock,
        "--db",
        db.to_str().unwrap(),
        "--jsonl",
    ]);
    assert_eq!(code(&o), 1, "{}", text(&o.stderr));
    let f: serde_json::Value =
        serde_json::from_str(text(&o.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(f["id"], "RUSTSEC-2021-3");

    // A bad archive is an error and the database stays usable.
    let o = palisade(&[
        "scan",
        "deps",
        &lock,
        "--db",
        db.to_str().unwrap(),
        "--db-update",
        &format!("http://127.0.0.1:{port}/bad/all.zip"),
    ]);
    assert_eq!(code(&o), 2);
    assert!(
        text(&o.stderr).contains("not a zip archive"),
        "{}",
        text(&o.stderr)
    );
    let o = palisade(&["scan", "deps", &lock, "--db", db.to_str().unwrap()]);
    assert_eq!(code(&o), 1);
}

#[test]
fn scan_ports_of_a_cidr_range_reports_each_host() {
    // Two listeners on one port number at two loopback addresses, and a
    // third port open only on 127.0.0.2: 127.0.0.0/30 covers .1 and .2.
    let a = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = a.local_addr().unwrap().port();
    let Ok(b) = TcpListener::bind(("127.0.0.2", port)) else {
        panic!("cannot bind 127.0.0.2:{port}: loopback /8 is expected on Linux");
    };
    let c = TcpListener::bind("127.0.0.2:0").unwrap();
    let only2 = c.local_addr().unwrap().port();
    let spec = format!("{port},{only2}");
    let o = palisade(&[
        "scan",
        "ports",
        "127.0.0.0/30",
        "--ports",
        &spec,
        "--json",
        "--banner-timeout",
        "0",
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("127.0.0.0/30 (2 hosts)"),
        "{}",
        text(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let open: Vec<(String, Vec<u64>)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let mut ports: Vec<u64> = r["open"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["port"].as_u64().unwrap())
                .collect();
            ports.sort_unstable();
            (r["target"].as_str().unwrap().to_string(), ports)
        })
        .collect();
    let mut both = vec![u64::from(port), u64::from(only2)];
    both.sort_unstable();
    assert_eq!(
        open,
        [
            ("127.0.0.1".to_string(), vec![u64::from(port)]),
            ("127.0.0.2".to_string(), both)
        ]
    );
    // Too large a range, or one outside loopback without --yes: exit 2.
    let o = palisade(&["scan", "ports", "127.0.0.0/8"]);
    assert_eq!(code(&o), 2);
    assert!(
        text(&o.stderr).contains("split the range"),
        "{}",
        text(&o.stderr)
    );
    let o = palisade(&["scan", "ports", "192.0.2.0/30", "--ports", "80"]);
    assert_eq!(code(&o), 2);
    assert!(
        text(&o.stderr).contains("pass --yes"),
        "{}",
        text(&o.stderr)
    );
    drop((a, b, c));
}
