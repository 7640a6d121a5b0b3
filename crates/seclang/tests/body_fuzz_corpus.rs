//! Replays the checked-in fuzz corpus of the body processors
//! (`fuzz/corpus/<target>/`) through the same invariants the fuzz targets
//! check (`fuzz/harness.rs`): no panic, deterministic, bounded output.

#[path = "../fuzz/harness.rs"]
mod harness;

#[path = "support/corpus.rs"]
mod support;

use std::path::PathBuf;

/// The smallest corpus a target may have.
const MIN: usize = 4;

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    support::files(target, MIN)
}

fn replay(target: &str, check: fn(&[u8])) {
    support::replay(target, MIN, check)
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
