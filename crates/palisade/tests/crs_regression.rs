//! The OWASP CRS v4 regression suite through the real gateway (issue 4,
//! deliverables 5 and 6).
//!
//! Starts `palisade testing echo` (the albedo-compatible backend) and
//! `palisade serve` with `tests/crs/palisade-crs.toml` (CRS v4 from
//! `../shared/crs-v4` in the test mode the CRS README prescribes, audit log
//! on), then runs every test of `../shared/crs-v4/tests/tests` through
//! `palisade waf test` with `crates/ftw/overrides/palisade.yaml`, and
//! asserts at least [`PASS_FLOOR`] passes with at most 12 overrides, each
//! with its reason. With `--nocapture` it prints the runner's report
//! (per-file counts, every failure) and the wall time.
//!
//! The CRS data is third-party and lives outside the repository: without
//! it the test fails under CI (`CI` set) and is skipped with a message
//! otherwise. `PALISADE_SHARED` points at another copy.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Fewest passing tests accepted out of the suite's 5,082 (issue 4's goal).
const PASS_FLOOR: usize = 5075;

/// Most entries the overrides file may have (issue 4).
const MAX_OVERRIDES: usize = 12;

/// Longest the whole suite may run before the test gives up (a hung
/// gateway must not hang CI).
const SUITE_DEADLINE: Duration = Duration::from_secs(1200);

fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn shared() -> PathBuf {
    std::env::var_os("PALISADE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared"))
}

/// `palisade testing echo` on an ephemeral port, killed on drop.
struct Echo {
    child: Child,
    addr: SocketAddr,
    _dir: TempDir,
}

impl Echo {
    fn start() -> Echo {
        let dir = TempDir::new("echo");
        let out = dir.path().join("stdout");
        let child = Command::new(palisade_bin())
            .args(["testing", "echo", "--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn palisade testing echo");
        let addr = wait_for(START_DEADLINE, || {
            let text = std::fs::read_to_string(&out).ok()?;
            text.lines()
                .find_map(|l| l.strip_prefix("echo listening on "))
                .and_then(|a| a.trim().parse().ok())
        })
        .expect("echo did not print its address");
        Echo {
            child,
            addr,
            _dir: dir,
        }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The overrides file: entries, each with a non-empty reason.
fn check_overrides(path: &Path) -> usize {
    let o = ftw::load::load_overrides(path).unwrap();
    for t in &o.test_overrides {
        assert!(
            !t.reason.trim().is_empty(),
            "override of {} {:?} has no reason",
            t.rule_id,
            t.test_ids
        );
    }
    let n = o.test_overrides.iter().map(|t| t.test_ids.len()).sum();
    assert!(
        n <= MAX_OVERRIDES,
        "{n} overridden tests; issue 4 allows {MAX_OVERRIDES}"
    );
    n
}

/// Runs `palisade waf test` to completion (bounded); returns its stdout.
fn waf_test(args: &[String]) -> (bool, String) {
    let dir = TempDir::new("waftest");
    let out = dir.path().join("out");
    let err = dir.path().join("err");
    let mut child = Command::new(palisade_bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .expect("spawn palisade waf test");
    let deadline = Instant::now() + SUITE_DEADLINE;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("palisade waf test did not finish within {SUITE_DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut text = String::new();
    std::fs::File::open(&out)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    let stderr = std::fs::read_to_string(&err).unwrap_or_default();
    assert!(
        status.code().is_some_and(|c| c <= 1),
        "waf test could not run ({status}): {stderr}\n{text}"
    );
    (status.success(), text)
}

/// `(passed, failed)` from the runner's final line.
fn final_counts(report: &str) -> (usize, usize) {
    let last = report.trim_end().lines().last().unwrap_or("");
    let num = |word: &str| -> usize {
        let i = last
            .find(word)
            .unwrap_or_else(|| panic!("no {word:?} in {last:?}"));
        last[..i]
            .trim_end()
            .rsplit([' ', ','])
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    (num(" passed"), num(" failed"))
}

#[test]
fn crs_regression_suite_through_the_gateway() {
    let crs = shared().join("crs-v4");
    if !crs.join("rules").is_dir() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CRS v4 not found at {} (set PALISADE_SHARED)",
            crs.display()
        );
        eprintln!("skipped: CRS v4 not found at {}", crs.display());
        return;
    }
    let overrides = repo().join("crates/ftw/overrides/palisade.yaml");
    let n_overrides = check_overrides(&overrides);

    let started = Instant::now();
    let echo = Echo::start();
    let template = std::fs::read_to_string(repo().join("tests/crs/palisade-crs.toml")).unwrap();
    let toml = template
        .replace("@ECHO@", &echo.addr.to_string())
        .replace("@CRS@", &crs.display().to_string())
        .replace(
            "@CRS_TESTS_DIR@",
            &repo().join("tests/crs").display().to_string(),
        );
    let p = Palisade::start_toml(&toml);
    let audit_log = p.dir.path().join("data/audit.log");
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 4));
    let args: Vec<String> = [
        "waf",
        "test",
        "--target",
        &p.addr().to_string(),
        "--audit-log",
        &audit_log.display().to_string(),
        "--tests",
        &crs.join("tests/tests").display().to_string(),
        "--overrides",
        &overrides.display().to_string(),
        "--threads",
        &threads.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (all_passed, report) = waf_test(&args);
    let elapsed = started.elapsed();
    println!("{report}");
    println!(
        "suite wall time: {:.1}s ({threads} connections, {n_overrides} overrides)",
        elapsed.as_secs_f64()
    );
    let (passed, failed) = final_counts(&report);
    assert_eq!(all_passed, failed == 0, "exit code and counts disagree");
    assert!(
        passed >= PASS_FLOOR,
        "{passed} passed, {failed} failed: below the floor of {PASS_FLOOR}\n{}",
        p.logs()
    );
}

/// A small suite against palisade with two inline rules: the runner's
/// per-file counts, failure lines, include/exclude, overrides and exit
/// codes, without the CRS data.
#[test]
fn waf_test_reports_counts_failures_and_exit_code() {
    let echo = Echo::start();
    let toml = format!(
        r#"[server]
data_dir = "@DATA_DIR@"
access_log = "off"

[admin]
listen = "127.0.0.1:@ADMIN@"

[waf.audit_log]
path = "@DATA_DIR@/audit.log"

[[listener]]
name = "web"
listen = "127.0.0.1:@LISTEN@"
protocol = "http"

[[upstream]]
name = "albedo"
servers = ["{}"]

[[route]]
path_prefix = "/"
upstream = "albedo"
  [route.waf]
  mode = "detect"
  builtin = false
  inline = '''
SecRule ARGS:q "@contains evil" "id:10,phase:1,pass,log,msg:'evil in %{{MATCHED_VAR_NAME}}'"
SecRule REQUEST_HEADERS:X-Marker "@rx ." "id:11,phase:1,pass,log,msg:'marker'"
'''
"#,
        echo.addr
    );
    let p = Palisade::start_toml(&toml);
    let dir = TempDir::new("ftw-mini");
    std::fs::create_dir_all(dir.path().join("tests")).unwrap();
    dir.write(
        "tests/10.yaml",
        r#"
rule_id: 10
tests:
  - test_id: 1
    stages:
      - input: {uri: "/?q=evil", headers: {Host: localhost}}
        output: {status: 200, log: {expect_ids: [10], no_expect_ids: [11], match_regex: 'evil in ARGS:q'}}
  - test_id: 2
    stages:
      - input: {uri: "/?q=fine", headers: {Host: localhost}}
        output: {log: {expect_ids: [10]}}
  - test_id: 3
    stages:
      - input: {uri: "/?q=evil", headers: {Host: localhost, X-Marker: "1"}}
        output: {log: {no_expect_ids: [11]}}
  - test_id: 4
    stages:
      - input: {method: POST, uri: "/reflect", headers: {Host: localhost, Content-Type: application/json}, data: '{"status": 418, "body": "teapot"}'}
        output: {status: 418, response_contains: "teapot"}
      - input: {uri: "/?q=evil", headers: {Host: localhost}}
        output: {log: {expect_ids: [10]}}
"#,
    );
    let overrides = dir.write(
        "overrides.yaml",
        "version: v0
meta: {engine: palisade, platform: test}
test_overrides:
  - rule_id: 10
    test_ids: [3]
    reason: the marker rule fires by design
    output: {log: {expect_ids: [11]}}
",
    );
    let base: Vec<String> = [
        "waf",
        "test",
        "--target",
        &p.addr().to_string(),
        "--audit-log",
        &p.dir.path().join("data/audit.log").display().to_string(),
        "--tests",
        &dir.path().join("tests").display().to_string(),
        "--threads",
        "2",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();

    // 10-2 expects a rule that cannot fire; 10-3 fails without its override.
    let (ok, report) = waf_test(&base);
    assert!(!ok, "{report}");
    assert!(report.contains("10.yaml: 2 passed, 2 failed"), "{report}");
    assert!(
        report.contains("10-2 (10.yaml): missing ids [10]"),
        "{report}"
    );
    assert!(
        report.contains("10-3 (10.yaml): unexpected ids [11]"),
        "{report}"
    );
    assert_eq!(final_counts(&report), (2, 2));

    let mut args = base.clone();
    args.extend([
        "--overrides".to_string(),
        overrides.display().to_string(),
        "--exclude".to_string(),
        "^10-2$".to_string(),
    ]);
    let (ok, report) = waf_test(&args);
    assert!(ok, "{report}");
    assert!(
        report
            .trim_end()
            .ends_with("3 passed, 0 failed, 1 skipped (1 overridden)"),
        "{report}"
    );

    let mut args = base;
    args.extend(["--include".to_string(), "^10-4$".to_string()]);
    let (ok, report) = waf_test(&args);
    assert!(ok, "{report}");
    assert_eq!(final_counts(&report), (1, 0));
}

#[test]
fn final_line_is_parsed() {
    assert_eq!(
        final_counts("a\nb\n5075 passed, 7 failed, 0 skipped (10 overridden)\n"),
        (5075, 7)
    );
}
