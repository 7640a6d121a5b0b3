//! The WAF in the gateway, end to end: the real binary on loopback sockets
//! in front of a recording upstream that counts what reached it.
//!
//! Block mode answers with the intervention's status and a page carrying
//! the request id and never contacts the upstream; detect mode forwards and
//! logs; exclusions lift matches; body limits follow
//! SecRequestBodyLimitAction; response inspection replaces a leaking
//! response; bad rules stop start-up and are refused on reload; the audit
//! log holds ModSecurity v3 JSON records (CRS rule ids, marker header).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Test rules: an argument rule (tagged, for exclusions), a body rule and a
/// CRS-like response leak rule.
const RULES: &str = r#"
SecRule ARGS "@contains attack" "id:1001,phase:1,deny,status:403,log,msg:'attack in %{MATCHED_VAR_NAME}',logdata:'Matched Data: %{MATCHED_VAR}',tag:'test-attack'"
SecRule REQUEST_BODY "@contains evil" "id:1002,phase:2,deny,status:403,log,msg:'evil body'"
SecRule RESPONSE_BODY "@rx You have an error in your SQL syntax" "id:951100,phase:4,deny,status:403,log,msg:'SQL Information Leakage'"
"#;

/// Config text with `[waf]` lines and one route per `(prefix, route.waf lines)`.
fn config(up: SocketAddr, global: &str, routes: &[(&str, &str)]) -> String {
    let mut s = format!(
        "[server]\ndata_dir = \"@DATA_DIR@\"\nshutdown_grace = \"5s\"\naccess_log = \"stdout\"\n\n\
         [admin]\nlisten = \"127.0.0.1:@ADMIN@\"\n\n\
         [waf]\n{global}\n\n[waf.audit_log]\npath = \"@DATA_DIR@/audit.log\"\n\n\
         [[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:@LISTEN@\"\nprotocol = \"http\"\n\n\
         [[upstream]]\nname = \"app\"\nservers = [\"{up}\"]\n\n"
    );
    for (prefix, waf) in routes {
        s.push_str(&format!(
            "[[route]]\nname = \"r{}\"\npath_prefix = \"{prefix}\"\nupstream = \"app\"\n[route.waf]\n{waf}\n\n",
            prefix.trim_matches('/').replace('/', "_")
        ));
    }
    s
}

fn inline(rules: &str) -> String {
    format!("inline = '''\n{rules}\n'''")
}

fn get(addr: SocketAddr, path: &str, marker: &str, extra: &str) -> Response {
    roundtrip(
        addr,
        format!(
            "GET {path} HTTP/1.1\r\nHost: test.local\r\nX-Marker: {marker}\r\n{extra}Connection: close\r\n\r\n"
        )
        .as_bytes(),
    )
}

fn post(addr: SocketAddr, path: &str, marker: &str, body: &[u8]) -> Response {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: test.local\r\nX-Marker: {marker}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    roundtrip(addr, &req)
}

fn audit_path(p: &Palisade) -> PathBuf {
    p.dir.path().join("data").join("audit.log")
}

/// Every audit record (each line must parse as JSON).
fn audit_records(p: &Palisade) -> Vec<Value> {
    let text = std::fs::read_to_string(audit_path(p)).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad audit line {l}: {e}")))
        .collect()
}

/// The record of the request carrying `marker`.
fn record_for(p: &Palisade, marker: &str) -> Option<Value> {
    audit_records(p)
        .into_iter()
        .find(|r| r["transaction"]["request"]["headers"]["X-Marker"] == marker)
}

fn rule_ids(record: &Value) -> Vec<String> {
    record["transaction"]["messages"]
        .as_array()
        .map(|m| {
            m.iter()
                .map(|x| x["details"]["ruleId"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn shared_dir() -> PathBuf {
    match std::env::var("PALISADE_SHARED") {
        Ok(p) => PathBuf::from(p),
        Err(_) => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared")),
    }
}

#[test]
fn block_mode_answers_403_with_request_id_and_never_reaches_upstream() {
    let up = Upstream::start("app");
    let p = Palisade::start_toml(&config(
        up.addr,
        "",
        &[("/", &format!("mode = \"block\"\n{}", inline(RULES)))],
    ));
    let r = get(p.addr(), "/search?q=attack1", "block-1", "");
    assert_eq!(r.status, 403, "{}", r.body_str());
    let rid = r
        .header("x-request-id")
        .expect("request id header")
        .to_string();
    assert!(
        r.body_str().contains(&rid),
        "page lacks the request id: {}",
        r.body_str()
    );
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    // A browser gets HTML.
    let r = get(p.addr(), "/?q=attack2", "block-2", "Accept: text/html\r\n");
    assert_eq!(r.status, 403);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    assert!(r.body_str().contains("<code>"), "{}", r.body_str());
    assert_eq!(
        up.request_count(),
        0,
        "a blocked request reached the upstream"
    );
    assert!(up.raw_bytes().is_empty());

    let ok = get(p.addr(), "/search?q=fine", "pass-1", "");
    assert_eq!(ok.status, 200);
    assert_eq!(up.request_count(), 1);

    // The audit record is in the file when the response has arrived.
    let rec = record_for(&p, "block-1").expect("record for block-1");
    assert_eq!(rec["transaction"]["unique_id"], rid.as_str());
    assert_eq!(rec["transaction"]["response"]["http_code"], 403);
    assert_eq!(rule_ids(&rec), ["1001"]);
    let m = &rec["transaction"]["messages"][0];
    assert_eq!(m["message"], "attack in ARGS:q");
    assert_eq!(m["details"]["data"], "Matched Data: attack1");
    // Request headers as received: case and order kept.
    let text = std::fs::read_to_string(audit_path(&p)).unwrap();
    assert!(
        text.contains(
            r#""headers":{"Host":"test.local","X-Marker":"block-1","Connection":"close"}"#
        ),
        "{text}"
    );
    // Relevant mode: a clean 200 is not written.
    assert!(record_for(&p, "pass-1").is_none());

    let metrics = p.metrics();
    assert_eq!(
        metric_value(&metrics, "palisade_waf_blocks_total", &[("route", "r")]),
        Some(2.0),
        "{metrics}"
    );
    assert_eq!(
        metric_value(&metrics, "palisade_waf_matches_total", &[("route", "r")]),
        Some(2.0)
    );
}

#[test]
fn detect_mode_forwards_and_logs_and_off_mode_does_nothing() {
    let up = Upstream::start("app");
    let p = Palisade::start_toml(&config(
        up.addr,
        "",
        &[
            ("/detect", &format!("mode = \"detect\"\n{}", inline(RULES))),
            ("/off", &format!("mode = \"off\"\n{}", inline(RULES))),
        ],
    ));
    let r = get(p.addr(), "/detect?q=attack", "detect-1", "");
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(up.request_count(), 1);
    let rec = record_for(&p, "detect-1").expect("detect mode logs");
    assert_eq!(rule_ids(&rec), ["1001"]);
    assert_eq!(rec["transaction"]["response"]["http_code"], 200);
    assert_eq!(
        rec["transaction"]["producer"]["secrules_engine"],
        "DetectionOnly"
    );

    let r = get(p.addr(), "/off?q=attack", "off-1", "");
    assert_eq!(r.status, 200);
    assert_eq!(up.request_count(), 2);
    assert!(
        record_for(&p, "off-1").is_none(),
        "mode off writes no record"
    );
}

#[test]
fn exclusions_by_id_tag_and_target_lift_the_match() {
    let up = Upstream::start("app");
    let rules = inline(RULES);
    let p = Palisade::start_toml(&config(
        up.addr,
        "mode = \"block\"",
        &[
            ("/none", &rules),
            ("/id", &format!("{rules}\nexclusions = [{{ id = 1001 }}]")),
            (
                "/tag",
                &format!("{rules}\nexclusions = [{{ tag = \"test-attack\" }}]"),
            ),
            (
                "/target",
                &format!("{rules}\nexclusions = [{{ id = 1001, target = \"ARGS:q\" }}]"),
            ),
        ],
    ));
    assert_eq!(get(p.addr(), "/none?q=attack", "x0", "").status, 403);
    assert_eq!(get(p.addr(), "/id?q=attack", "x1", "").status, 200);
    assert_eq!(get(p.addr(), "/tag?q=attack", "x2", "").status, 200);
    assert_eq!(get(p.addr(), "/target?q=attack", "x3", "").status, 200);
    // The target exclusion lifts only ARGS:q.
    assert_eq!(get(p.addr(), "/target?other=attack", "x4", "").status, 403);
    assert_eq!(up.request_count(), 3);
}

#[test]
fn request_body_limit_reject_vs_process_partial() {
    let up = Upstream::start("app");
    let p = Palisade::start_toml(&config(
        up.addr,
        "mode = \"block\"",
        &[
            (
                "/reject",
                &inline(&format!(
                    "SecRequestBodyLimit 100\nSecRequestBodyLimitAction Reject\n{RULES}"
                )),
            ),
            (
                "/partial",
                &inline(&format!(
                    "SecRequestBodyLimit 100\nSecRequestBodyLimitAction ProcessPartial\n{RULES}"
                )),
            ),
        ],
    ));
    let mut body = vec![b'a'; 150];
    body.extend_from_slice(b"evil");
    let r = post(p.addr(), "/reject", "limit-1", &body);
    assert_eq!(r.status, 413, "{}", r.body_str());
    assert_eq!(up.request_count(), 0);

    // ProcessPartial: the first 100 bytes are inspected, the whole body is
    // forwarded, and the transaction is logged.
    let r = post(p.addr(), "/partial", "partial-1", &body);
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(up.request_count(), 1);
    assert_eq!(
        up.requests()[0].body,
        body,
        "the upstream got the whole body"
    );
    let rec = record_for(&p, "partial-1").expect("a partially inspected body is logged");
    assert_eq!(rec["transaction"]["response"]["http_code"], 200);
    // ...and the prefix is really inspected.
    let mut bad = b"evil".to_vec();
    bad.extend_from_slice(&[b'a'; 150]);
    assert_eq!(post(p.addr(), "/partial", "partial-2", &bad).status, 403);
    // A body within the limit is inspected whole.
    assert_eq!(post(p.addr(), "/reject", "small", b"so evil").status, 403);
    assert_eq!(post(p.addr(), "/reject", "small-ok", b"fine").status, 200);
    assert_eq!(up.request_count(), 2);
    // A chunked body is inspected and forwarded whole (with its length).
    let chunked = |marker: &str, body: &str| {
        roundtrip(
            p.addr(),
            format!(
                "POST /reject HTTP/1.1\r\nHost: test.local\r\nX-Marker: {marker}\r\nContent-Type: text/plain\r\n\
                 Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
    };
    assert_eq!(chunked("chunked-bad", "so evil").status, 403);
    assert_eq!(chunked("chunked-ok", "all fine").status, 200);
    assert_eq!(up.request_count(), 3);
    assert_eq!(up.requests()[2].body, b"all fine");
    // The access log counts the bytes the WAF read for inspection.
    let counted = wait_for(Duration::from_secs(10), || {
        p.stdout()
            .lines()
            .any(|l| l.contains("\"status\":200,\"bytes_in\":8,"))
            .then_some(())
    });
    assert!(counted.is_some(), "{}", p.stdout());
}

#[test]
fn response_inspection_blocks_a_leaking_response() {
    let mut opts = UpstreamOpts::named("app");
    opts.body = Some(
        b"<p>You have an error in your SQL syntax; check the manual that corresponds to your MySQL server version</p>"
            .to_vec(),
    );
    let up = Upstream::start_opts(opts, 0);
    let rules = inline(RULES);
    let p = Palisade::start_toml(&config(
        up.addr,
        "mode = \"block\"",
        &[
            (
                "/inspected",
                &format!("response_inspection = true\n{rules}"),
            ),
            ("/plain", &format!("response_inspection = false\n{rules}")),
            (
                "/partial",
                &format!(
                    "response_inspection = true\n{}",
                    inline(&format!("SecResponseBodyLimit 20\nSecResponseBodyLimitAction ProcessPartial\n{RULES}"))
                ),
            ),
            (
                "/reject",
                &format!(
                    "response_inspection = true\n{}",
                    inline(&format!("SecResponseBodyLimit 20\nSecResponseBodyLimitAction Reject\n{RULES}"))
                ),
            ),
        ],
    ));
    let r = get(p.addr(), "/inspected/item", "resp-1", "");
    assert_eq!(r.status, 403, "{}", r.body_str());
    assert!(
        !r.body_str().contains("SQL syntax"),
        "the leak reached the client"
    );
    assert_eq!(up.request_count(), 1, "the request itself was forwarded");
    let rec = record_for(&p, "resp-1").unwrap();
    assert_eq!(rule_ids(&rec), ["951100"]);

    let r = get(p.addr(), "/plain/item", "resp-2", "");
    assert_eq!(r.status, 200);
    assert!(r.body_str().contains("SQL syntax"));

    // Past SecResponseBodyLimit: ProcessPartial inspects the first 20 bytes
    // (too few to match) and streams the whole body; Reject answers 500.
    let r = get(p.addr(), "/partial/item", "resp-3", "");
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert!(
        r.body_str().ends_with("MySQL server version</p>"),
        "{}",
        r.body_str()
    );
    let r = get(p.addr(), "/reject/item", "resp-4", "");
    assert_eq!(r.status, 500, "{}", r.body_str());
    assert!(!r.body_str().contains("SQL syntax"));
}

#[test]
fn bad_rules_stop_start_with_file_and_line() {
    let up = Upstream::start("app");
    let dir = TempDir::new("badrules");
    let bad = dir.write(
        "bad.conf",
        "SecRule ARGS \"@contains x\" \"id:1,phase:1,deny\"\nSecRule ARGS \"@rx (\" \"id:2,phase:1,deny\"\n",
    );
    let toml = config(
        up.addr,
        "",
        &[(
            "/",
            &format!(
                "mode = \"block\"\nrules = [{}]",
                toml_str(&bad.display().to_string())
            ),
        )],
    );
    let err = match Palisade::try_start_toml(&toml) {
        Ok(_) => panic!("palisade started with a broken rules file"),
        Err(e) => e,
    };
    assert!(err.contains("exit status: 2"), "{err}");
    assert!(err.contains("bad.conf:2"), "no file:line in: {err}");

    // `check-config` compiles the rules too.
    let cfg = dir.write(
        "palisade.toml",
        toml.replace("@DATA_DIR@", &dir.path().display().to_string())
            .replace("@LISTEN@", "18080")
            .replace("@ADMIN@", "19901"),
    );
    let (status, out, err) = run_cli(
        &["check-config", "-c", &cfg.display().to_string()],
        Duration::from_secs(60),
    );
    assert_eq!(status.code(), Some(2), "{out}{err}");
    assert!(err.contains("bad.conf:2"), "{err}");
    std::fs::write(&bad, "SecRule ARGS \"@contains x\" \"id:1,phase:1,deny\"\n").unwrap();
    let (status, out, err) = run_cli(
        &["check-config", "-c", &cfg.display().to_string()],
        Duration::from_secs(60),
    );
    assert_eq!(status.code(), Some(0), "{out}{err}");
}

#[test]
fn reload_with_bad_rules_is_refused_and_old_rules_keep_blocking() {
    let up = Upstream::start("app");
    let dir = TempDir::new("reloadrules");
    let file = dir.write("rules.conf", RULES);
    let toml = config(
        up.addr,
        "",
        &[(
            "/",
            &format!(
                "mode = \"block\"\nrules = [{}]",
                toml_str(&file.display().to_string())
            ),
        )],
    );
    let p = Palisade::start_toml(&toml);
    assert_eq!(get(p.addr(), "/?q=attack", "r1", "").status, 403);
    std::fs::write(&file, "SecRule ARGS \"@bogus\" \"id:3,phase:1,deny\"\n").unwrap();
    p.signal("HUP");
    let refused = wait_for(Duration::from_secs(30), || {
        metric_value(
            &p.metrics(),
            "palisade_config_reloads_total",
            &[("result", "error")],
        )
        .filter(|&n| n >= 1.0)
    });
    assert!(refused.is_some(), "reload was not refused\n{}", p.logs());
    assert!(p.logs().contains("rules.conf:1"), "{}", p.logs());
    assert_eq!(get(p.addr(), "/?q=attack", "r2", "").status, 403);
    assert_eq!(get(p.addr(), "/?q=fine", "r3", "").status, 200);
    assert_eq!(up.request_count(), 1);

    // Log rotation: the file is moved away, a good reload opens a new one.
    std::fs::write(&file, RULES).unwrap();
    let rotated = audit_path(&p).with_extension("log.1");
    std::fs::rename(audit_path(&p), &rotated).unwrap();
    p.signal("HUP");
    let reloaded = wait_for(Duration::from_secs(30), || {
        metric_value(
            &p.metrics(),
            "palisade_config_reloads_total",
            &[("result", "ok")],
        )
        .filter(|&n| n >= 1.0)
    });
    assert!(reloaded.is_some(), "{}", p.logs());
    assert_eq!(get(p.addr(), "/?q=attack", "r4", "").status, 403);
    assert!(record_for(&p, "r4").is_some(), "no record in the new file");
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(old.contains("\"r1\"") && !old.contains("\"r4\""));
}

#[test]
fn crs_block_is_audited_with_crs_rule_ids_and_marker() {
    let crs = shared_dir().join("crs-v4");
    assert!(
        crs.join("rules").is_dir(),
        "CRS not found at {} (set PALISADE_SHARED)",
        crs.display()
    );
    let up = Upstream::start("app");
    let p = Palisade::start_toml(&config(
        up.addr,
        &format!("crs = {}", toml_str(&crs.display().to_string())),
        &[("/", "mode = \"block\"\ncrs = true\nparanoia_level = 1")],
    ));
    let r = get(
        p.addr(),
        "/search?q=1%27%20OR%20%271%27%3D%271",
        "crs-sqli-1",
        "User-Agent: Mozilla/5.0\r\nAccept: text/html\r\n",
    );
    assert_eq!(r.status, 403, "{}", r.body_str());
    assert_eq!(up.request_count(), 0);
    let benign = get(
        p.addr(),
        "/search?q=shoes",
        "crs-ok",
        "User-Agent: Mozilla/5.0\r\nAccept: text/html\r\n",
    );
    assert_eq!(benign.status, 200, "{}", benign.body_str());

    let rec = record_for(&p, "crs-sqli-1").expect("CRS block record with the marker header");
    let ids = rule_ids(&rec);
    assert!(ids.iter().any(|i| i == "942100"), "{ids:?}");
    assert!(ids.iter().any(|i| i == "949110"), "{ids:?}");
    let t = &rec["transaction"];
    assert!(t["client_port"].is_u64() && t["host_port"].is_u64());
    assert_eq!(t["request"]["http_version"].as_f64(), Some(1.1));
    let sqli = t["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["details"]["ruleId"] == "942100")
        .unwrap();
    assert_eq!(
        sqli["message"],
        "SQL Injection Attack Detected via libinjection"
    );
    assert!(sqli["details"]["file"]
        .as_str()
        .unwrap()
        .ends_with("REQUEST-942-APPLICATION-ATTACK-SQLI.conf"));
    assert!(sqli["details"]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t == "attack-sqli"));
}

#[test]
fn h2c_requests_are_inspected_and_audited() {
    let up = Upstream::start("app");
    let p = Palisade::start_toml(&config(
        up.addr,
        "",
        &[("/", &format!("mode = \"block\"\n{}", inline(RULES)))],
    ));
    let addr = p.addr();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let statuses = rt.block_on(async move {
        tokio::time::timeout(Duration::from_secs(30), async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            // h2c with prior knowledge on the plain listener.
            let (mut sender, conn) = hyper::client::conn::http2::handshake(
                hyper_util::rt::TokioExecutor::new(),
                hyper_util::rt::TokioIo::new(tcp),
            )
            .await
            .expect("h2 handshake");
            tokio::spawn(conn);
            let mut out = Vec::new();
            for (uri, marker) in [
                ("http://test.local/?q=attack", "h2-bad"),
                ("http://test.local/?q=fine", "h2-ok"),
            ] {
                let req = hyper::Request::builder()
                    .uri(uri)
                    .header("x-marker", marker)
                    .body(http_body_util::Empty::<hyper::body::Bytes>::new())
                    .unwrap();
                let resp = sender.send_request(req).await.expect("h2 request");
                out.push(resp.status().as_u16());
            }
            out
        })
        .await
        .expect("h2 exchange timed out")
    });
    assert_eq!(statuses, [403, 200], "{}", p.logs());
    assert_eq!(up.request_count(), 1);
    let rec = audit_records(&p)
        .into_iter()
        .find(|r| r["transaction"]["request"]["headers"]["x-marker"] == "h2-bad")
        .expect("h2 record");
    let t = &rec["transaction"];
    assert_eq!(t["request"]["http_version"].as_f64(), Some(2.0));
    // The origin-form target, and the authority as Host.
    assert_eq!(t["request"]["uri"], "/?q=attack");
    assert_eq!(t["request"]["headers"]["host"], "test.local");
    assert_eq!(rule_ids(&rec), ["1001"]);
}

/// Behind a trusted load balancer the WAF judges and logs the client the
/// balancer forwarded (X-Forwarded-For), not the balancer's own address.
#[test]
fn remote_addr_is_the_forwarded_client_behind_a_trusted_proxy() {
    let up = Upstream::start("app");
    let rules = inline(
        r#"SecRule REMOTE_ADDR "@ipMatch 203.0.113.0/24" "id:1101,phase:1,deny,status:403,log,msg:'blocked network'""#,
    );
    let mut toml = config(up.addr, "", &[("/", &format!("mode = \"block\"\n{rules}"))]);
    toml.push_str("[shield]\ntrusted_proxies = [\"127.0.0.1\"]\n");
    let p = Palisade::start_toml(&toml);
    let r = get(
        p.addr(),
        "/",
        "xff-blocked",
        "X-Forwarded-For: 203.0.113.7\r\n",
    );
    assert_eq!(r.status, 403, "{}", r.body_str());
    let r = get(
        p.addr(),
        "/",
        "xff-other",
        "X-Forwarded-For: 198.51.100.9\r\n",
    );
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(up.request_count(), 1);
    let rec = record_for(&p, "xff-blocked").expect("audit record of the blocked request");
    assert_eq!(rec["transaction"]["client_ip"], "203.0.113.7");
    assert_eq!(rule_ids(&rec), vec!["1101".to_string()]);
}
