//! Replays the checked-in fuzz corpora under `fuzz/corpus/<target>/` so
//! `cargo test` catches regressions on inputs the fuzzers found
//! interesting: every input must be handled without panicking and with
//! the same result twice. Each corpus directory is named after its fuzz
//! target, which decides the detector it is replayed through.

use std::path::{Path, PathBuf};

/// Upper bound on one corpus file; corpora hold short inputs and a huge
/// file is a mistake rather than a test.
const MAX_CORPUS_FILE: u64 = 1 << 20;

fn corpus_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus")
}

/// The detector for one corpus directory, as a printable result.
fn detector_for(target: &str) -> Option<fn(&[u8]) -> String> {
    match target {
        "sqli" => Some(|input| format!("{:?}", detect::detect_sqli(input))),
        "xss" => Some(|input| format!("{:?}", detect::detect_xss(input))),
        _ => None,
    }
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn replay_fuzz_corpora() {
    let root = corpus_root();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(
        !dirs.is_empty(),
        "no corpus directories in {}",
        root.display()
    );

    for dir in dirs {
        let target = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let detect = detector_for(&target).unwrap_or_else(|| {
            panic!("corpus directory {target:?} has no detector mapping in this test")
        });
        let files = files_in(&dir);
        assert!(!files.is_empty(), "empty corpus {}", dir.display());
        for file in &files {
            let len = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
            assert!(len <= MAX_CORPUS_FILE, "{} is too large", file.display());
            let input = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let first = detect(&input);
            assert_eq!(
                first,
                detect(&input),
                "non-deterministic on {}",
                file.display()
            );
        }
        eprintln!("{target}: replayed {} inputs", files.len());
    }
}

/// A few corpus inputs are real attacks or real text; pin their results so
/// the corpus also guards behaviour, not only the absence of panics.
#[test]
fn sqli_corpus_known_results() {
    let dir = corpus_root().join("sqli");
    let fp = |name: &str| {
        let input = std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        detect::detect_sqli(&input).map(|f| f.as_str().to_owned())
    };
    // Fingerprints as libinjection's C implementation reports them.
    assert_eq!(fp("tautology_single_quote").as_deref(), Some("s&sos"));
    assert_eq!(fp("union_select").as_deref(), Some("1UEv,"));
    assert_eq!(fp("mysql_versioned_comment").as_deref(), Some("X"));
    assert_eq!(fp("nested_comment").as_deref(), Some("X"));
    assert_eq!(fp("sp_password").as_deref(), Some("sTnsc"));
    assert_eq!(fp("into_outfile").as_deref(), Some("sks"));
    assert_eq!(fp("hash_comment_mysql"), None);
    assert_eq!(fp("empty"), None);
    assert_eq!(fp("only_whitespace"), None);
    assert_eq!(fp("benign_email"), None);
}
