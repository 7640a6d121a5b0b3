//! Fuzz target: the SQLi detector must never panic, must be deterministic,
//! and its intermediate results must respect their documented bounds.
#![no_main]

use detect::sqli::{self, Dialect, Flags, QuoteContext, MAX_FINGERPRINT_TOKENS, TOKEN_VALUE_MAX};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let first = detect::detect_sqli(data);
    assert_eq!(first, detect::detect_sqli(data), "non-deterministic result");
    if let Some(fp) = first {
        assert!(!fp.as_str().is_empty() && fp.as_str().len() <= MAX_FINGERPRINT_TOKENS);
        assert!(sqli::fingerprint_listed(fp.as_bytes()));
    }
    for quote in [
        QuoteContext::None,
        QuoteContext::Single,
        QuoteContext::Double,
    ] {
        for dialect in [Dialect::Ansi, Dialect::Mysql] {
            let flags = Flags::new(quote, dialect);
            let mut last_pos = 0;
            for tok in sqli::tokenize(data, flags) {
                assert!(tok.value().len() <= TOKEN_VALUE_MAX);
                assert!(tok.pos <= data.len());
                assert!(tok.pos >= last_pos || tok.pos == 0, "tokens go backwards");
                last_pos = tok.pos;
            }
            let folded = sqli::fold(data, flags);
            // One more than the maximum only when folding gave up (then X).
            assert!(folded.tokens().len() <= MAX_FINGERPRINT_TOKENS + 1);
            let fp = sqli::fingerprint(data, flags);
            assert!(fp.as_str().len() <= MAX_FINGERPRINT_TOKENS);
        }
    }
});
