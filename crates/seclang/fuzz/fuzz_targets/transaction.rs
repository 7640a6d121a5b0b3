//! Fuzz target: the input as an HTTP request (request line, headers, body)
//! through a small CRS-like rule set. The invariants live in
//! `engine_harness.rs`, shared with the corpus replay test
//! (`tests/fuzz_corpus.rs`).
#![no_main]

#[path = "../engine_harness.rs"]
mod engine_harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| engine_harness::transaction(data));
