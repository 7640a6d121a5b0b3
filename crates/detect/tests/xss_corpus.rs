//! Replays the `xss` fuzz corpus (`fuzz/corpus/xss`) through the detector
//! with the fuzz target's invariants, so every input the fuzzer ever kept
//! stays a regression test on stable Rust without cargo-fuzz.

use std::path::{Path, PathBuf};

use detect::detect_xss;
use detect::html5::{StartState, Tokenizer};
use detect::xss::is_xss;

fn corpus_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/xss");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn check(name: &str, data: &[u8]) {
    let verdict = detect_xss(data);
    assert_eq!(
        verdict,
        detect_xss(data),
        "{name}: verdict not deterministic"
    );
    assert_eq!(
        verdict,
        StartState::ALL.iter().any(|&start| is_xss(data, start)),
        "{name}: detect_xss disagrees with the per-context verdicts"
    );
    for start in StartState::ALL {
        let mut end_of_previous = 0;
        let mut count = 0usize;
        for token in Tokenizer::new(data, start) {
            count += 1;
            assert!(count <= data.len() + 1, "{name} {start:?}: too many tokens");
            assert!(
                token.offset >= end_of_previous,
                "{name} {start:?}: tokens overlap"
            );
            let end = token.offset + token.bytes.len();
            assert_eq!(
                data.get(token.offset..end),
                Some(token.bytes),
                "{name} {start:?}: token is not the input slice it claims"
            );
            end_of_previous = end;
        }
        // Same stream on a second run: the tokenizer has no hidden state.
        assert!(
            Tokenizer::new(data, start).eq(Tokenizer::new(data, start)),
            "{name} {start:?}: token stream not deterministic"
        );
    }
}

#[test]
fn xss_fuzz_corpus_replays_cleanly() {
    let files = corpus_files();
    assert!(
        files.len() >= 100,
        "corpus unexpectedly small: {}",
        files.len()
    );
    let mut flagged = 0;
    for path in &files {
        let name = path.display().to_string();
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("{name}: {e}"));
        check(&name, &data);
        flagged += usize::from(detect_xss(&data));
    }
    // The seeds mix attacks and benign text; both verdicts must occur.
    assert!(
        flagged > 0 && flagged < files.len(),
        "{flagged} of {}",
        files.len()
    );
    eprintln!("{} corpus files, {flagged} flagged", files.len());
}
