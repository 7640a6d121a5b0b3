//! The command line: `version`, `check-config` on good and bad files (the
//! error names file, line, column and key; exit code 2), and start-up
//! failures that must end with one clear line naming the culprit.

// Test helpers: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::net::TcpListener;
use std::time::Duration;

const CLI_WAIT: Duration = Duration::from_secs(60);

/// Exit code for configuration errors (notes/CONFIG.md).
const EXIT_CONFIG: i32 = 2;

fn valid_config(dir: &TempDir) -> String {
    let up = "127.0.0.1:9"; // never contacted by check-config
    ConfigSpec::proxy(&[up.parse().unwrap()])
        .render()
        .replace("@LISTEN@", &free_port().to_string())
        .replace("@ADMIN@", &free_port().to_string())
        .replace("@DATA_DIR@", &dir.path().join("data").display().to_string())
}

/// Writes `text`, runs `check-config`, returns (code, stdout+stderr, path).
fn check(text: &str) -> (Option<i32>, String, String) {
    let dir = TempDir::new("cli");
    let path = dir.write("bad.toml", text);
    let path_s = path.display().to_string();
    let (status, out, err) = run_cli(&["check-config", "-c", &path_s], CLI_WAIT);
    (status.code(), format!("{out}{err}"), path_s)
}

/// Asserts that `out` points at `line` and `column` in one of the usual
/// forms (`file:12:5`, `line 12, column 5`).
fn assert_position(out: &str, path: &str, line: usize, column: usize) {
    let compact = format!("{path}:{line}:{column}");
    let words = out.contains(&format!("line {line}")) && out.contains(&format!("column {column}"));
    assert!(
        out.contains(&compact) || (out.contains(path) && words),
        "error does not name {path} line {line} column {column}:\n{out}"
    );
}

fn assert_no_panic(out: &str) {
    assert!(
        !out.contains("panicked"),
        "panic instead of an error message:\n{out}"
    );
}

#[test]
fn version_prints_name_and_version() {
    let (status, out, _) = run_cli(&["version"], CLI_WAIT);
    assert!(status.success());
    assert!(out.contains("palisade"), "{out}");
    assert!(out.contains(env!("CARGO_PKG_VERSION")), "{out}");
}

#[test]
fn check_config_accepts_valid_file() {
    let dir = TempDir::new("cli");
    let path = dir.write("ok.toml", valid_config(&dir));
    let (status, out, err) = run_cli(
        &["check-config", "-c", &path.display().to_string()],
        CLI_WAIT,
    );
    assert!(status.success(), "valid config refused: {out}{err}");
}

#[test]
fn check_config_unknown_key_names_file_line_column_and_key() {
    let dir = TempDir::new("cli");
    let good = valid_config(&dir);
    // Put the unknown key on a known line, at column 1.
    let text = good.replacen("[admin]\n", "[admin]\nlisten_typo = \"127.0.0.1:1\"\n", 1);
    let line = text
        .lines()
        .position(|l| l.starts_with("listen_typo"))
        .unwrap()
        + 1;
    let (code, out, path) = check(&text);
    assert_eq!(code, Some(EXIT_CONFIG), "{out}");
    assert!(out.contains("listen_typo"), "key not named:\n{out}");
    assert_position(&out, &path, line, 1);
    assert_no_panic(&out);
}

#[test]
fn check_config_wrong_type_names_key() {
    let dir = TempDir::new("cli");
    let text =
        valid_config(&dir).replacen("[admin]", "[limits]\nmax_headers = \"lots\"\n\n[admin]", 1);
    let line = text
        .lines()
        .position(|l| l.starts_with("max_headers"))
        .unwrap()
        + 1;
    let (code, out, path) = check(&text);
    assert_eq!(code, Some(EXIT_CONFIG), "{out}");
    assert!(out.contains("max_headers"), "{out}");
    assert!(
        out.contains(&path) && out.contains(&line.to_string()),
        "{out}"
    );
    assert_no_panic(&out);
}

#[test]
fn check_config_bad_duration_names_key() {
    let dir = TempDir::new("cli");
    let text = valid_config(&dir).replacen(
        "[admin]",
        "[limits]\nheader_read_timeout = \"10 parsecs\"\n\n[admin]",
        1,
    );
    let (code, out, path) = check(&text);
    assert_eq!(code, Some(EXIT_CONFIG), "{out}");
    assert!(out.contains("header_read_timeout"), "{out}");
    assert!(out.contains(&path), "{out}");
    assert_no_panic(&out);
}

#[test]
fn check_config_bad_address_names_key() {
    let dir = TempDir::new("cli");
    let text = valid_config(&dir);
    let listen_line = text
        .lines()
        .find(|l| {
            l.starts_with("listen = \"127.0.0.1:") && !text.contains(&format!("[admin]\n{l}"))
        })
        .unwrap()
        .to_string();
    let text = text.replacen(&listen_line, "listen = \"not-an-address\"", 1);
    let (code, out, path) = check(&text);
    assert_eq!(code, Some(EXIT_CONFIG), "{out}");
    assert!(out.contains("listen"), "{out}");
    assert!(out.contains(&path), "{out}");
    assert_no_panic(&out);
}

#[test]
fn check_config_invalid_toml_syntax_fails() {
    let (code, out, path) = check("[server\ndata_dir = \"x\"\n");
    assert_eq!(code, Some(EXIT_CONFIG), "{out}");
    assert!(out.contains(&path), "{out}");
    assert_no_panic(&out);
}

#[test]
fn check_config_route_to_unknown_upstream_fails() {
    let dir = TempDir::new("cli");
    let text = valid_config(&dir).replace("upstream = \"app\"", "upstream = \"nope\"");
    let (code, out, _) = check(&text);
    assert_eq!(code, Some(EXIT_CONFIG), "{out}");
    assert!(out.contains("nope"), "{out}");
    assert_no_panic(&out);
}

#[test]
fn unreadable_config_names_the_path() {
    let missing = std::env::temp_dir().join("palisade-test-no-such-dir/none.toml");
    let m = missing.display().to_string();
    let (status, out, err) = run_cli(&["check-config", "-c", &m], CLI_WAIT);
    assert!(!status.success());
    assert!(format!("{out}{err}").contains(&m), "{out}{err}");
    let (status, out, err) = run_cli(&["serve", "-c", &m], CLI_WAIT);
    assert!(!status.success());
    assert!(format!("{out}{err}").contains(&m), "{out}{err}");
    assert_no_panic(&err);
}

/// Runs `serve` with `toml` (placeholders filled), which must exit by
/// itself: returns (exit code, stdout+stderr).
fn serve_must_fail(toml: &str, port: u16) -> (Option<i32>, String) {
    let dir = TempDir::new("cli");
    let text = toml
        .replace("@LISTEN@", &port.to_string())
        .replace("@ADMIN@", &free_port().to_string())
        .replace("@DATA_DIR@", &dir.path().join("data").display().to_string());
    let path = dir.write("serve.toml", text);
    // run_cli panics if palisade is still running after CLI_WAIT: a start-up
    // error must end the process, not leave it half up.
    let (status, out, err) = run_cli(&["serve", "-c", &path.display().to_string()], CLI_WAIT);
    (status.code(), format!("{out}{err}"))
}

#[test]
fn serve_fails_at_start_when_port_in_use() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let spec = ConfigSpec::proxy(&["127.0.0.1:9".parse().unwrap()]);
    let (code, out) = serve_must_fail(&spec.render(), port);
    assert!(
        code.is_some() && code != Some(0),
        "exit code {code:?}:\n{out}"
    );
    assert!(
        out.contains(&format!("127.0.0.1:{port}")),
        "error does not name the address:\n{out}"
    );
    assert_no_panic(&out);
    drop(taken);
}

#[test]
fn serve_fails_at_start_when_certificate_missing() {
    let dir = TempDir::new("cli");
    let cert = dir.path().join("missing-cert.pem");
    let key = dir.path().join("missing-key.pem");
    let mut spec = ConfigSpec::proxy(&["127.0.0.1:9".parse().unwrap()]);
    spec.protocol = "https".into();
    spec.certificates = vec![(cert.clone(), key)];
    let (code, out) = serve_must_fail(&spec.render(), free_port());
    assert!(
        code.is_some() && code != Some(0),
        "exit code {code:?}:\n{out}"
    );
    assert!(
        out.contains(&cert.display().to_string()),
        "error does not name the file:\n{out}"
    );
    assert_no_panic(&out);
}
