//! Fuzz target: the input as an HTTP request (request line, headers, body)
//! through the OWASP CRS and a small CRS-like rule set, each compiled with
//! the evaluation prefilters on and off; the answers (intervention, matched
//! rules with their variables and values, TX variables) must be identical.
//! The invariant lives in `engine_harness.rs`, shared with the corpus
//! replay test (`tests/fuzz_corpus.rs`).
#![no_main]

#[path = "../engine_harness.rs"]
mod engine_harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| engine_harness::prefilter_differential(data));
