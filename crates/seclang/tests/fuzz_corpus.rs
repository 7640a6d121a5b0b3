//! Replays the checked-in corpus of the engine fuzz targets
//! (`fuzz/corpus/{seclang_parser,transformations,transaction}/`) through the
//! invariants the targets check (`fuzz/engine_harness.rs`): hostile rules
//! text and requests never panic and give deterministic results. Inputs a
//! fuzzer found crashing are added to the corpus, so they stay fixed.

#[path = "../fuzz/engine_harness.rs"]
mod engine_harness;

#[path = "support/corpus.rs"]
mod support;

use std::path::PathBuf;
use std::sync::Arc;

/// The smallest corpus a target may have.
const MIN: usize = 6;

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    support::files(target, MIN)
}

fn replay(target: &str, check: fn(&[u8])) {
    support::replay(target, MIN, check)
}

#[test]
fn seclang_parser_corpus() {
    replay("seclang_parser", engine_harness::seclang_parser);
}

#[test]
fn transformations_corpus() {
    replay("transformations", engine_harness::transformations);
}

#[test]
fn transaction_corpus() {
    replay("transaction", engine_harness::transaction);
}

/// The parser corpus reaches both accepted and refused rule files, or the
/// fuzzer would start from a narrow base.
#[test]
fn parser_corpus_covers_valid_and_invalid_rules() {
    let results: Vec<bool> = corpus("seclang_parser")
        .iter()
        .map(|(_, data)| {
            seclang::RulesetBuilder::new(&engine_harness::MemLoader)
                .add_str(&String::from_utf8_lossy(data), "/fuzz/rules.conf")
                .and_then(|b| b.build())
                .is_ok()
        })
        .collect();
    assert!(results.contains(&true) && results.contains(&false));
}

fn outcome(name: &str) -> (Option<u16>, Vec<u64>) {
    let data = std::fs::read(
        PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fuzz/corpus/transaction"
        ))
        .join(name),
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"));
    let rs = seclang::RulesetBuilder::new(&engine_harness::MemLoader)
        .add_str(engine_harness::TRANSACTION_RULES, "/fuzz/rules.conf")
        .and_then(|b| b.build())
        .unwrap_or_else(|e| panic!("{e}"));
    let tx = engine_harness::exchange(&Arc::new(rs), &engine_harness::split_request(&data));
    (
        tx.intervention().map(|i| i.status),
        tx.matched_rules().iter().map(|m| m.id).collect(),
    )
}

/// The transaction target's rule set really inspects: the corpus' attack
/// is blocked by the anomaly threshold, the benign request passes, and a
/// broken JSON body is refused as ModSecurity's 200002 does.
#[test]
fn transaction_rules_detect_and_pass() {
    let (status, ids) = outcome("sqli.txt");
    assert_eq!(status, Some(403), "matched {ids:?}");
    assert!(ids.contains(&942100) && ids.contains(&913100), "{ids:?}");
    let (status, ids) = outcome("get.txt");
    assert_eq!(status, None, "matched {ids:?}");
    let (status, ids) = outcome("json_broken.txt");
    assert_eq!(status, Some(400), "matched {ids:?}");
}

#[test]
fn prefilter_differential_corpus() {
    replay(
        "prefilter_differential",
        engine_harness::prefilter_differential,
    );
}

/// The differential corpus makes the CRS really work (else the comparison
/// proves nothing): its attacks match dozens of rules.
#[test]
fn prefilter_differential_corpus_exercises_the_crs() {
    let data = std::fs::read(
        PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fuzz/corpus/prefilter_differential"
        ))
        .join("rce.txt"),
    )
    .unwrap_or_else(|e| panic!("rce.txt: {e}"));
    let rs = seclang::RulesetBuilder::new(&seclang::FsLoader)
        .add_file(engine_harness::shared_dir().join("crs-v4/crs-setup.conf.example"))
        .and_then(|b| b.add_file(engine_harness::shared_dir().join("crs-v4/rules/*.conf")))
        .and_then(|b| b.build())
        .unwrap_or_else(|e| panic!("{e}"));
    let a = engine_harness::answer(&Arc::new(rs), &engine_harness::split_request(&data));
    assert!(a.matched.len() >= 10, "{:?}", a.matched);
}
