//! Replays the checked-in fuzz corpus of the body processors
//! (`fuzz/corpus/<target>/`) through the same invariants the fuzz targets
//! check (`fuzz/harness.rs`): no panic, deterministic, bounded output.

#[path = "../fuzz/harness.rs"]
mod harness;

use std::path::PathBuf;

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus")).join(target);
    let mut files: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .path();
            let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path, data)
        })
        .collect();
    files.sort();
    assert!(files.len() >= 4, "{target}: corpus too small");
    files
}

fn replay(target: &str, check: fn(&[u8])) {
    for (path, data) in corpus(target) {
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(outcome.is_ok(), "{}: invariant failed", path.display());
    }
}

#[test]
fn urlencoded_corpus() {
    replay("urlencoded", harness::urlencoded);
}

#[test]
fn multipart_corpus() {
    replay("multipart", harness::multipart);
}

#[test]
fn json_corpus() {
    replay("json", harness::json);
}

#[test]
fn xml_corpus() {
    replay("xml", harness::xml);
}

/// The corpus must reach both the success and the failure paths, or the
/// fuzzers would start from a narrow base.
#[test]
fn corpus_covers_valid_and_invalid_inputs() {
    use seclang::body::{json, multipart, xml, BodyLimits};
    let d = BodyLimits::default();
    let json_errors: Vec<bool> = corpus("json")
        .iter()
        .map(|(_, b)| json::parse(b, &d).error.is_some())
        .collect();
    assert!(json_errors.contains(&true) && json_errors.contains(&false));
    let xml_errors: Vec<bool> = corpus("xml")
        .iter()
        .map(|(_, b)| xml::parse(b, &d).is_err())
        .collect();
    assert!(xml_errors.contains(&true) && xml_errors.contains(&false));
    let mp: Vec<multipart::Multipart> = corpus("multipart")
        .iter()
        .map(|(_, b)| {
            let i = b.iter().position(|&c| c == b'\n').unwrap_or(b.len());
            multipart::parse(&b[..i], b.get(i + 1..).unwrap_or(&[]), &d)
        })
        .collect();
    assert!(mp
        .iter()
        .any(|m| m.error.is_none() && !m.info.files.is_empty()));
    assert!(mp.iter().any(|m| m.error.is_some()));
    assert!(mp.iter().any(|m| m.info.strict_error(false)));
}
