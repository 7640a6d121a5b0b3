//! `palisade waf eval` and `palisade waf lint`: what a rule author sees.
//! Uses OWASP CRS v4 from `../shared/crs-v4` beside the repository.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use common::*;
use std::path::PathBuf;
use std::time::Duration;

const CLI_WAIT: Duration = Duration::from_secs(120);

fn crs() -> PathBuf {
    let shared = std::env::var_os("PALISADE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared")));
    shared.join("crs-v4")
}

fn eval(request: &[u8], extra: &[&str]) -> serde_json::Value {
    let dir = TempDir::new("waf-eval");
    let req = dir.write("request.http", request);
    // The engine settings a ModSecurity deployment puts before CRS
    // (modsecurity.conf-recommended): inspect bodies of text responses.
    let engine = dir.write(
        "engine.conf",
        "SecRuleEngine On\nSecRequestBodyAccess On\nSecResponseBodyAccess On\n\
         SecResponseBodyMimeType text/plain text/html text/xml\n",
    );
    let engine = engine.display().to_string();
    let crs = crs();
    let setup = crs.join("crs-setup.conf.example").display().to_string();
    let rules = crs.join("rules").display().to_string();
    let req = req.display().to_string();
    let mut args = vec![
        "waf",
        "eval",
        "--rules",
        &engine,
        &setup,
        &rules,
        "--request",
        &req,
    ];
    args.extend_from_slice(extra);
    let (status, out, err) = run_cli(&args, CLI_WAIT);
    assert!(status.success(), "waf eval failed: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

fn ids(v: &serde_json::Value) -> Vec<u64> {
    v["matched_rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect()
}

#[test]
fn eval_blocks_sqli_in_query_with_libinjection_fingerprint() {
    let v = eval(
        b"GET /search?q=1%27%20OR%20%271%27%3D%271 HTTP/1.1\r\nHost: shop.example\r\n\
          User-Agent: Mozilla/5.0\r\nAccept: text/html\r\n\r\n",
        &[],
    );
    assert_eq!(v["intervention"]["status"], 403, "{v:#}");
    assert_eq!(v["intervention"]["rule_id"], 949110);
    let fired = ids(&v);
    assert!(
        fired.contains(&942100),
        "libinjection rule must fire: {fired:?}"
    );
    let sqli = v["matched_rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == 942100)
        .unwrap();
    assert_eq!(sqli["matched_var"], "ARGS:q");
    assert!(sqli["data"].as_str().unwrap().contains("s&sos"), "{sqli:#}");
    assert!(
        v["anomaly_scores"]["blocking_inbound_anomaly_score"]
            .as_i64()
            .unwrap()
            >= 5
    );
}

#[test]
fn eval_passes_benign_form_post() {
    let body = b"name=Alice+Smith&email=alice%40example.com&comment=Lovely+weather+today";
    let mut req = format!(
        "POST /contact HTTP/1.1\r\nHost: shop.example\r\nUser-Agent: Mozilla/5.0\r\n\
         Accept: text/html\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    let v = eval(&req, &[]);
    assert!(v["intervention"].is_null(), "{v:#}");
    assert_eq!(ids(&v), Vec::<u64>::new());
}

#[test]
fn eval_inspects_the_response_when_given() {
    let dir = TempDir::new("waf-eval-resp");
    let resp = dir.write(
        "response.http",
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n\
          <html>Warning: mysql_fetch_array() expects parameter 1 to be resource</html>",
    );
    let resp = resp.display().to_string();
    let v = eval(
        b"GET /item?id=3 HTTP/1.1\r\nHost: shop.example\r\nUser-Agent: Mozilla/5.0\r\nAccept: */*\r\n\r\n",
        &["--response", &resp],
    );
    let fired = ids(&v);
    assert!(
        fired.iter().any(|id| (951000..952000).contains(id)),
        "an SQL error leakage rule (951xxx) must fire: {fired:?}"
    );
    // The outbound anomaly score blocks the response in phase 4.
    assert_eq!(v["intervention"]["rule_id"], 959100, "{v:#}");
    assert_eq!(v["intervention"]["phase"], 4);
}

#[test]
fn lint_accepts_crs_and_reports_every_problem_with_its_line() {
    let crs = crs();
    let setup = crs.join("crs-setup.conf.example").display().to_string();
    let rules = crs.join("rules").display().to_string();
    let (status, out, err) = run_cli(&["waf", "lint", "--rules", &setup, &rules], CLI_WAIT);
    assert!(status.success(), "{out}{err}");
    assert!(out.contains("no problem found"), "{out}");

    let dir = TempDir::new("waf-lint");
    let bad = dir.write(
        "bad.conf",
        "SecRule ARGS \"@rx (\" \"id:1,phase:2,deny\"\n\
         SecRule ARGS \"@bogus x\" \"id:2,phase:2\"\n\
         SecRule REQUEST_URI \"@rx x\" \"id:3,phase:9\"\n\
         SecFoo bar\n",
    );
    let bad_s = bad.display().to_string();
    let (status, out, err) = run_cli(&["waf", "lint", "--rules", &bad_s], CLI_WAIT);
    assert_eq!(status.code(), Some(2), "{out}{err}");
    for (line, what) in [(1, "regex"), (2, "@bogus"), (3, "phase"), (4, "SecFoo")] {
        let prefix = format!("{bad_s}:{line}:");
        assert!(
            out.lines()
                .any(|l| l.starts_with(&prefix) && l.contains(what)),
            "line {line} ({what}) not reported:\n{out}"
        );
    }
}
