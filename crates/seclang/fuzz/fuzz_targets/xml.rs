//! Fuzz target for the xml body processor; the invariants live in
//! `harness.rs`, shared with the corpus replay test
//! (`tests/body_fuzz_corpus.rs`).
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::xml(data));
