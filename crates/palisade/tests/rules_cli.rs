//! `palisade waf rules`, `palisade crs install` and `palisade crs status`
//! through the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

fn shared() -> PathBuf {
    std::env::var_os("PALISADE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared")))
}

fn palisade(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The shared CRS as a GitHub-style tag archive (`coreruleset-V/…`).
fn crs_archive(path: &Path) -> Vec<u8> {
    let src = shared().join("crs-v4");
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    b.append_path_with_name(
        src.join("crs-setup.conf.example"),
        "coreruleset-x/crs-setup.conf.example",
    )
    .unwrap();
    b.append_dir_all("coreruleset-x/rules", src.join("rules"))
        .unwrap();
    let bytes = b.into_inner().unwrap().finish().unwrap();
    std::fs::write(path, &bytes).unwrap();
    bytes
}

fn sha(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn waf_rules_lists_and_filters() {
    let dir = tempfile::tempdir().unwrap();
    let out = palisade(dir.path(), &["waf", "rules", "--builtin"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    let count: usize = lines
        .last()
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(count, lines.len() - 1, "{stdout}");
    assert!(
        stdout.contains("1900500  phase:2  <builtin>/50-sqli.conf:"),
        "{stdout}"
    );
    assert!(stdout.contains(
        "[palisade-builtin,palisade-builtin/sqli,attack-sqli]  SQL injection (libinjection)"
    ));

    let out = palisade(
        dir.path(),
        &["waf", "rules", "--builtin", "--tag", "palisade-builtin/xss"],
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout
            .lines()
            .all(|l| l.starts_with("19006") || l.starts_with("2 of ")),
        "{stdout}"
    );

    let out = palisade(
        dir.path(),
        &[
            "waf",
            "rules",
            "--rules",
            shared().join("crs-v4/rules").to_str().unwrap(),
            "--id",
            "942100-942100",
        ],
    );
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("942100   phase:2  "), "{stdout}");
    assert!(stdout.contains("\n1 of "), "{stdout}");

    // No CRS anywhere: the built-in rules are what loads.
    let out = palisade(dir.path(), &["waf", "rules"]);
    assert!(text(&out.stdout).ends_with("rules from the built-in rules (no CRS found)\n"));

    let bad = dir.path().join("bad.conf");
    std::fs::write(&bad, "SecRule ARGS \"@rx (\" \"id:1,phase:1\"\n").unwrap();
    let out = palisade(
        dir.path(),
        &["waf", "rules", "--rules", bad.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let out = palisade(dir.path(), &["waf", "rules", "--builtin", "--id", "9-1"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn crs_install_from_file_then_status_and_rules() {
    let dir = tempfile::tempdir().unwrap();
    let archive_path = dir.path().join("crs.tar.gz");
    let bytes = crs_archive(&archive_path);
    let archive = archive_path.to_str().unwrap();

    // No checksum anywhere: refused.
    let out = palisade(
        dir.path(),
        &["crs", "install", "--version", "4.99.0", "--from", archive],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no checksum"),
        "{}",
        text(&out.stderr)
    );

    // Wrong checksum: refused.
    let wrong = "0".repeat(64);
    let out = palisade(
        dir.path(),
        &[
            "crs",
            "install",
            "--version",
            "4.99.0",
            "--from",
            archive,
            "--sha256",
            &wrong,
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("checksum mismatch"),
        "{}",
        text(&out.stderr)
    );

    let good = sha(&bytes);
    let out = palisade(
        dir.path(),
        &[
            "crs",
            "install",
            "--version",
            "4.99.0",
            "--from",
            archive,
            "--sha256",
            &good,
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!("sha256 {good} verified (--sha256)")),
        "{stdout}"
    );
    assert!(
        stdout.contains("installed OWASP CRS 4.99.0 in ./data/crs/4.99.0"),
        "{stdout}"
    );

    let out = palisade(dir.path(), &["crs", "status"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success());
    assert!(stdout.contains("data directory: OWASP CRS "), "{stdout}");
    assert!(stdout.contains("/data/crs/4.99.0"), "{stdout}");
    assert!(stdout.contains("loads: OWASP CRS "), "{stdout}");
    assert!(stdout.contains("(data directory)"), "{stdout}");

    let out = palisade(dir.path(), &["waf", "rules", "--tag", "attack-sqli"]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.lines().next().unwrap().starts_with("942"),
        "{stdout}"
    );
    assert!(stdout.contains("(data directory)"), "{stdout}");

    let out = palisade(
        dir.path(),
        &[
            "crs",
            "install",
            "--insecure-skip-verify",
            "--version",
            "4.99.1",
            "--from",
            archive,
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("warning: installed WITHOUT checksum verification"));
    assert_eq!(
        std::fs::read_link(dir.path().join("data/crs/current")).unwrap(),
        Path::new("4.99.1")
    );
}

#[test]
fn crs_install_server_down_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let url = format!("http://{addr}/crs.tar.gz");
    let out = palisade(dir.path(), &["crs", "install", "--from", &url]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "error: download of {url} failed: cannot connect to 127.0.0.1:"
        )),
        "{stderr}"
    );
    let out = palisade(dir.path(), &["crs", "install", "--version", "../x"]);
    assert_eq!(out.status.code(), Some(2));
}
