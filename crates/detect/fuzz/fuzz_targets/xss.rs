//! Fuzz target for the XSS detector and its HTML5 tokenizer.
//!
//! Checks what must hold for any input: no panic, a deterministic verdict
//! equal to the per-context verdicts combined, and token streams that are
//! in-bounds slices of the input, in order, non-overlapping and at most one
//! token longer than the input (so the tokenizer cannot loop).
#![no_main]

use detect::html5::{StartState, Tokenizer};
use detect::xss::is_xss;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let verdict = detect::detect_xss(data);
    assert_eq!(verdict, detect::detect_xss(data));
    assert_eq!(
        verdict,
        StartState::ALL.iter().any(|&start| is_xss(data, start))
    );
    for start in StartState::ALL {
        let mut end_of_previous = 0;
        let mut count = 0usize;
        for token in Tokenizer::new(data, start) {
            count += 1;
            assert!(count <= data.len() + 1, "token stream longer than input");
            assert!(token.offset >= end_of_previous, "tokens overlap");
            let end = token.offset + token.bytes.len();
            assert_eq!(data.get(token.offset..end), Some(token.bytes));
            end_of_previous = end;
        }
    }
});
