//! Speed never costs detection: every request of the CRS v4 regression
//! suite goes through the CRS twice, once with the engine's evaluation
//! prefilters on and once with them off (`RulesetBuilder::prefilters`),
//! and the two answers must be identical: the intervention, every matched
//! rule (nolog ones included) with its matched variable and value, and
//! every TX variable (the anomaly scores among them).
//!
//! Two setups: the CRS test mode (DetectionOnly, blocking paranoia level 4:
//! every rule of every phase runs) on every request, and the same rules
//! enforcing (engine On: interventions and the early stops they cause are
//! compared too) on every third request, to keep the debug-build run short.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ftw::http1::{self, HttpModel, ParsedRequest};
use ftw::inprocess::{albedo, CRS_TEST_MODE, ENGINE_SETUP};
use ftw::{load, request};
use seclang::{FsLoader, Ruleset, RulesetBuilder, TransactionInput};

fn shared() -> PathBuf {
    std::env::var_os("PALISADE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared")))
}

fn load_crs(crs: &Path, enforcing: bool, prefilters: bool) -> Arc<Ruleset> {
    let (engine, test_mode) = if enforcing {
        (
            ENGINE_SETUP.replace("SecRuleEngine DetectionOnly", "SecRuleEngine On"),
            CRS_TEST_MODE.replace("ctl:ruleEngine=DetectionOnly,", ""),
        )
    } else {
        (ENGINE_SETUP.to_owned(), CRS_TEST_MODE.to_owned())
    };
    assert_ne!(engine.contains("SecRuleEngine DetectionOnly"), enforcing);
    assert_ne!(
        test_mode.contains("ctl:ruleEngine=DetectionOnly"),
        enforcing
    );
    let rs = RulesetBuilder::new(&FsLoader)
        .prefilters(prefilters)
        .add_str(&engine, "engine.conf")
        .unwrap()
        .add_file(crs.join("crs-setup.conf.example"))
        .unwrap()
        .add_str(&test_mode, "test-mode.conf")
        .unwrap()
        .add_file(crs.join("rules/*.conf"))
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(rs.prefilters(), prefilters);
    Arc::new(rs)
}

/// Everything detection decides for one request.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    intervention: Option<(u16, u64, String)>,
    /// (rule id, matched variable, matched value, message, logdata).
    matched: Vec<(u64, String, Vec<u8>, String, String)>,
    tx: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// One exchange as the in-process ftw target runs it: phases 1-2, the
/// albedo backend's response through phases 3-4 unless blocked, phase 5.
fn answer(rs: &Arc<Ruleset>, req: &ParsedRequest) -> Answer {
    let mut tx = rs.transaction(TransactionInput {
        client_ip: "127.0.0.1".into(),
        client_port: 40000,
        server_ip: "127.0.0.1".into(),
        server_port: 80,
        server_name: "localhost".into(),
        unique_id: "differential".into(),
        unix_time_micros: 1_700_000_000_000_000,
        env: Vec::new(),
    });
    tx.request_line(&req.method, &req.uri, &req.version);
    for (n, v) in &req.headers {
        tx.request_header(n, v);
    }
    let mut decided = tx.process_request_headers();
    if decided.is_none() && !req.body.is_empty() {
        decided = tx.append_request_body(&req.body);
    }
    if decided.is_none() {
        decided = tx.process_request_body();
    }
    if decided.is_none() {
        let backend = albedo(req);
        tx.response_status(backend.status, "HTTP/1.1");
        for (n, v) in &backend.headers {
            tx.response_header(n, v);
        }
        if tx.process_response_headers().is_none() && tx.wants_response_body() {
            let _ = tx.append_response_body(&backend.body);
            let _ = tx.process_response_body();
        }
    }
    tx.process_logging();
    Answer {
        intervention: tx
            .intervention()
            .map(|i| (i.status, i.rule_id, format!("{:?}", i.action))),
        matched: tx
            .matched_rules()
            .iter()
            .map(|m| {
                (
                    m.id,
                    m.matched_var_name.clone(),
                    m.matched_value.clone(),
                    m.message.clone(),
                    m.logdata.clone(),
                )
            })
            .collect(),
        tx: tx
            .tx_vars()
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect(),
    }
}

/// Every stage of every CRS test as the WAF sees it (requests the HTTP
/// layer would refuse included: the engine must agree on them too).
fn requests(crs: &Path) -> Vec<(String, ParsedRequest)> {
    let tests = load::load_tests(&crs.join("tests/tests")).unwrap();
    let mut out = Vec::new();
    for file in &tests {
        for case in &file.tests {
            for (i, stage) in case.stages.iter().enumerate() {
                if let Ok(raw) = request::build_request(&stage.input) {
                    let parsed = http1::parse_with(&raw, HttpModel::default());
                    out.push((format!("{}/{i}", case.id_string()), parsed));
                }
            }
        }
    }
    out
}

/// Compares the answers on every `stride`-th request of the suite.
fn differential(enforcing: bool, stride: usize) {
    let crs = shared().join("crs-v4");
    let on = load_crs(&crs, enforcing, true);
    let off = load_crs(&crs, enforcing, false);
    let all = requests(&crs);
    assert!(all.len() >= 5082, "only {} requests", all.len());
    let reqs: Vec<_> = all.into_iter().step_by(stride).collect();
    let next = AtomicUsize::new(0);
    let diffs: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let blocked = AtomicUsize::new(0);
    let matched = AtomicUsize::new(0);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((id, req)) = reqs.get(i) else { break };
                let a = answer(&on, req);
                let b = answer(&off, req);
                if a.intervention.is_some() {
                    blocked.fetch_add(1, Ordering::Relaxed);
                }
                matched.fetch_add(a.matched.len(), Ordering::Relaxed);
                if a != b {
                    diffs.lock().unwrap().push(format!(
                        "{id}: prefilters on {a:?}\n    prefilters off {b:?}"
                    ));
                }
            });
        }
    });
    let diffs = diffs.into_inner().unwrap();
    let (blocked, matched) = (blocked.into_inner(), matched.into_inner());
    println!(
        "{} requests, {matched} matched rules, {blocked} interventions, {} differences",
        reqs.len(),
        diffs.len()
    );
    // The comparison is only meaningful if the suite makes the CRS work.
    assert!(matched > 10 * reqs.len(), "{matched} matched rules");
    assert_eq!(
        blocked > reqs.len() / 5,
        enforcing,
        "{blocked} interventions"
    );
    assert!(
        diffs.is_empty(),
        "{} requests answered differently:\n{}",
        diffs.len(),
        diffs[..diffs.len().min(5)].join("\n")
    );
}

#[test]
fn crs_suite_same_answers_with_and_without_prefilters_detection_only() {
    differential(false, 1);
}

#[test]
fn crs_suite_same_answers_with_and_without_prefilters_enforcing() {
    differential(true, 3);
}
