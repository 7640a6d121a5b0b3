//! Unit tests for edge cases the libinjection suite does not cover.

use super::*;

#[test]
fn tables_are_sorted_for_binary_search() {
    assert!(tables::KEYWORDS.windows(2).all(|w| w[0].0 < w[1].0));
    assert!(tables::FINGERPRINTS.windows(2).all(|w| w[0] < w[1]));
}
