//! Loads the whole OWASP CRS v4 (setup + every rules file) and runs a
//! benign and an attack request through it.

use std::path::PathBuf;
use std::sync::Arc;

use seclang::{FsLoader, Ruleset, RulesetBuilder, TransactionInput};

fn shared() -> PathBuf {
    match std::env::var_os("PALISADE_SHARED") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared")),
    }
}

fn load_crs(extra: &str) -> Result<Ruleset, seclang::Error> {
    let crs = shared().join("crs-v4");
    RulesetBuilder::new(&FsLoader)
        .add_str("SecRuleEngine On\nSecRequestBodyAccess On\n", "engine.conf")?
        .add_file(crs.join("crs-setup.conf.example"))?
        .add_str(extra, "extra.conf")?
        .add_file(crs.join("rules/*.conf"))?
        .build()
}

#[test]
fn crs_v4_loads() {
    let rs = load_crs("").unwrap_or_else(|e| panic!("CRS failed to load: {e}"));
    assert!(rs.rule_count() > 500, "only {} rules", rs.rule_count());
    assert!(rs.rule(949110).is_some());
    assert!(rs.rule(920100).is_some());
}

fn run(rs: &Arc<Ruleset>, uri: &str) -> seclang::Transaction {
    let mut tx = rs.transaction(TransactionInput {
        client_ip: "192.0.2.1".into(),
        unix_time_micros: 1_700_000_000_000_000,
        unique_id: "crs-test".into(),
        ..TransactionInput::default()
    });
    tx.request_line("GET", uri, "HTTP/1.1");
    for (k, v) in [
        ("Host", "localhost"),
        (
            "User-Agent",
            "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0",
        ),
        (
            "Accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ),
        ("Accept-Language", "en-US,en;q=0.5"),
        ("Connection", "close"),
    ] {
        tx.request_header(k, v);
    }
    if tx.process_request_headers().is_none() {
        tx.process_request_body();
    }
    tx.process_logging();
    tx
}

#[test]
fn crs_v4_benign_and_attack_requests() {
    let rs = Arc::new(load_crs("").unwrap_or_else(|e| panic!("{e}")));
    let tx = run(&rs, "/index.html?page=2&sort=name");
    let logged: Vec<u64> = tx
        .matched_rules()
        .iter()
        .filter(|m| m.log)
        .map(|m| m.id)
        .collect();
    assert!(tx.intervention().is_none(), "{logged:?}");
    assert!(logged.is_empty(), "benign request matched {logged:?}");
    assert_eq!(tx.tx("blocking_inbound_anomaly_score"), Some(&b"0"[..]));

    let tx = run(&rs, "/download?file=../../../../etc/passwd");
    let i = tx.intervention().expect("path traversal is blocked");
    assert_eq!((i.status, i.rule_id), (403, 949110));
    let ids: Vec<u64> = tx
        .matched_rules()
        .iter()
        .filter(|m| m.log)
        .map(|m| m.id)
        .collect();
    assert!(ids.contains(&930120), "{ids:?}");
    let score: i64 = String::from_utf8_lossy(tx.tx("blocking_inbound_anomaly_score").unwrap())
        .parse()
        .unwrap();
    assert!(score >= 5, "score {score}");
    assert!(
        i.message
            .starts_with("Inbound Anomaly Score Exceeded (Total Score: "),
        "{}",
        i.message
    );
}
