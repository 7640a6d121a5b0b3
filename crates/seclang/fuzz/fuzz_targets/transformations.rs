//! Fuzz target: every transformation in seclang::transformations::all() on the
//! input. The invariants live in `engine_harness.rs`, shared with the corpus
//! replay test (`tests/fuzz_corpus.rs`).
#![no_main]

#[path = "../engine_harness.rs"]
mod engine_harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| engine_harness::transformations(data));
