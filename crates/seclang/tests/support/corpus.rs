//! Reading a checked-in fuzz corpus (`fuzz/corpus/<target>/`) and replaying
//! it through a fuzz target's invariants, shared by the corpus-replay tests.

use std::path::PathBuf;

/// The corpus files of `target`, sorted by path; at least `min` of them, so
/// a corpus emptied by mistake fails instead of passing vacuously.
pub fn files(target: &str, min: usize) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus")).join(target);
    let mut files: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .path();
            let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path, data)
        })
        .collect();
    files.sort();
    assert!(files.len() >= min, "{target}: corpus too small");
    files
}

/// Runs `check` on every corpus file of `target`; a panic names the file.
pub fn replay(target: &str, min: usize, check: fn(&[u8])) {
    for (path, data) in files(target, min) {
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(outcome.is_ok(), "{}: invariant failed", path.display());
    }
}
