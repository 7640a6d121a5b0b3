//! Hostile or broken rule files never panic the parser or the compiler:
//! every CRS v4 file is parsed truncated at many points and with bytes
//! flipped by a deterministic generator; each attempt must return Ok or a
//! positioned error.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use seclang::parser::parse_str;
use seclang::{FsLoader, Ruleset};

fn crs_rules() -> Vec<PathBuf> {
    let shared = match std::env::var_os("PALISADE_SHARED") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared")),
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(shared.join("crs-v4/rules"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect();
    files.sort();
    assert!(files.len() > 20);
    files
}

#[test]
fn truncated_and_mutated_rule_files_do_not_panic() {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut errors = 0usize;
    let mut attempts = 0usize;
    for path in crs_rules() {
        let text = std::fs::read_to_string(&path).unwrap();
        let bytes = text.as_bytes();
        // Truncations at char boundaries.
        for cut in (0..bytes.len()).step_by(bytes.len() / 16 + 1) {
            if !text.is_char_boundary(cut) {
                continue;
            }
            attempts += 1;
            if parse_str(&text[..cut], Path::new("cut.conf"), &FsLoader).is_err() {
                errors += 1;
            }
        }
        // Byte flips among characters that matter to the grammar.
        const SPECIAL: &[u8] = b"\"'\\,:|!&@%{}/ \n#";
        for _ in 0..8 {
            let mut m = bytes.to_vec();
            for _ in 0..4 {
                let at = (next() as usize) % m.len();
                m[at] = SPECIAL[(next() as usize) % SPECIAL.len()];
            }
            let Ok(m) = String::from_utf8(m) else {
                continue;
            };
            attempts += 1;
            match Ruleset::from_str(&m, path.file_name().unwrap(), &FsLoader) {
                Ok(_) => {}
                Err(e) => {
                    errors += 1;
                    // Errors carry a position.
                    assert!(e.to_string().contains(':'), "{e}");
                }
            }
        }
    }
    assert!(attempts > 500, "{attempts}");
    assert!(errors > 0, "mutations must produce some errors");
}
