#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `palisade logs analyze`: exit codes, reports written, errors explained.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn palisade(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run palisade")
}

fn shared_crs() -> PathBuf {
    std::env::var_os("PALISADE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
        .join("crs-v4")
}

const LOG: &str = "\
192.0.2.10 - - [23/Nov/2026:10:00:00 +0000] \"GET /index.html HTTP/1.1\" 200 512 \"-\" \"Mozilla/5.0\"
192.0.2.66 - - [23/Nov/2026:10:00:05 +0000] \"GET /item?id=1%27%20UNION%20SELECT%20password%20FROM%20users-- HTTP/1.1\" 200 99 \"-\" \"curl/8.5.0\"
192.0.2.66 - - [23/Nov/2026:10:00:09 +0000] \"GET /dl?f=../../../../etc/passwd HTTP/1.1\" 404 0 \"-\" \"curl/8.5.0\"
not a log line
";

#[test]
fn analyze_writes_reports_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("access.log"), LOG).unwrap();
    let out = palisade(
        &[
            "logs",
            "analyze",
            "access.log",
            "--crs",
            shared_crs().to_str().unwrap(),
            "--json",
            "r.json",
            "--html",
            "r.html",
        ],
        dir.path(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("attacks: 2 of 3 requests"), "{stdout}");
    assert!(
        stdout.contains("suspicious successes (attack answered 2xx): 1"),
        "{stdout}"
    );
    assert!(stdout.contains("malformed 1"), "{stdout}");
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("r.json")).unwrap()).unwrap();
    assert_eq!(j["attacks"], 2);
    assert_eq!(j["by_category"]["sqli"], 1);
    assert_eq!(j["by_category"]["traversal"], 1);
    assert_eq!(j["top_clients"][0]["client"], "192.0.2.66");
    assert_eq!(j["suspicious_success_samples"][0]["line"], 2);
    let html = std::fs::read_to_string(dir.path().join("r.html")).unwrap();
    assert!(html.starts_with("<!doctype html>") && html.contains("<svg"));

    // `--json -`: the report on stdout, the summary on stderr.
    let out = palisade(
        &[
            "logs",
            "analyze",
            "access.log",
            "--rules",
            "builtin",
            "--json",
            "-",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(0));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["rules"], "built-in rules");
    assert!(String::from_utf8_lossy(&out.stderr).contains("attacks:"));
}

#[test]
fn errors_exit_two() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("access.log"), LOG).unwrap();
    // Unreadable file: the others are still analysed, the exit code says it.
    let out = palisade(
        &[
            "logs",
            "analyze",
            "missing.log",
            "access.log",
            "--rules",
            "builtin",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("error: missing.log: No such file"),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("attacks: 2 of 3"));
    // No CRS where asked.
    let out = palisade(
        &[
            "logs",
            "analyze",
            "access.log",
            "--rules",
            "crs",
            "--data-dir",
            ".",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no CRS found"), "{stderr}");
    let out = palisade(&["logs", "analyze", "access.log", "--crs", "."], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no CRS there"));
    // A report that cannot be written.
    let out = palisade(
        &[
            "logs",
            "analyze",
            "access.log",
            "--rules",
            "builtin",
            "--html",
            "no/such/dir/r.html",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot write the HTML report"));
}
