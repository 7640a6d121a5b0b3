//! Replays libinjection's HTML5 tokenizer tests (`test-html5-*.txt` in
//! `../shared/libinjection/tests`) through [`detect::html5::Tokenizer`].
//!
//! The expected output is what libinjection's C test driver prints: one
//! `TYPE,length,bytes` line per token, tokenizer started in the data state,
//! input and output both right-trimmed of spaces, tabs, CR and LF.

use std::path::PathBuf;

use detect::html5::{StartState, Tokenizer};

fn shared_dir() -> PathBuf {
    match std::env::var_os("PALISADE_SHARED") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared")),
    }
}

/// The C driver's `modp_rtrim`.
fn rtrim(s: &[u8]) -> &[u8] {
    let end = s
        .iter()
        .rposition(|c| !matches!(c, b' ' | b'\n' | b'\t' | b'\r'))
        .map_or(0, |i| i + 1);
    &s[..end]
}

/// Splits a test file into (input, expected) the way the C driver does:
/// section markers are whole lines, everything else is appended verbatim.
fn parse(file: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut section = 0;
    let mut input = Vec::new();
    let mut expected = Vec::new();
    for line in file.split_inclusive(|&b| b == b'\n') {
        match (section, line) {
            (0, b"--TEST--\n") => section = 1,
            (1, b"--INPUT--\n") => section = 2,
            (2, b"--EXPECTED--\n") => section = 3,
            (2, _) => input.extend_from_slice(line),
            (3, _) => expected.extend_from_slice(line),
            _ => {}
        }
    }
    (section == 3).then(|| (rtrim(&input).to_vec(), rtrim(&expected).to_vec()))
}

fn render(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for token in Tokenizer::new(input, StartState::Data) {
        out.extend_from_slice(token.kind.as_str().as_bytes());
        out.extend_from_slice(format!(",{},", token.bytes.len()).as_bytes());
        // The driver prints the bytes with `%s`, which stops at a NUL.
        let shown = token.bytes.split(|&b| b == 0).next().unwrap_or_default();
        out.extend_from_slice(shown);
        out.push(b'\n');
    }
    rtrim(&out).to_vec()
}

#[test]
fn libinjection_html5_token_files() {
    let dir = shared_dir().join("libinjection/tests");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("test-html5-") && n.ends_with(".txt"))
        })
        .collect();
    files.sort();
    assert!(
        files.len() >= 60,
        "expected libinjection's ~63 html5 test files in {}, found {}",
        dir.display(),
        files.len()
    );

    let mut failures = Vec::new();
    for path in &files {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let name = name.unwrap_or_default();
        let file = std::fs::read(path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let Some((input, expected)) = parse(&file) else {
            failures.push(format!("{name}: malformed test file"));
            continue;
        };
        let actual = render(&input);
        if actual != expected {
            failures.push(format!(
                "{name}:\n  input:    {:?}\n  expected: {:?}\n  actual:   {:?}",
                String::from_utf8_lossy(&input),
                String::from_utf8_lossy(&expected),
                String::from_utf8_lossy(&actual),
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} html5 files failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
    eprintln!("{} libinjection html5 files passed", files.len());
}
