//! Runs libinjection's own SQLi test cases (`test-tokens-*`, `test-folding-*`,
//! `test-sqli-*` under `../shared/libinjection/tests`) against our
//! implementation, printing tokens the way libinjection's `testdriver.c`
//! does, and reports the pass count per kind.

use std::path::PathBuf;

use detect::sqli::{self, Flags, Token, TokenKind};

fn shared_dir() -> PathBuf {
    match std::env::var_os("PALISADE_SHARED") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared")),
    }
}

/// One `--TEST--` / `--INPUT--` / `--EXPECTED--` file, parsed like the C
/// driver: sections split on exact marker lines, input and expected output
/// right-trimmed of spaces, tabs and line ends.
struct Case {
    input: Vec<u8>,
    expected: Vec<u8>,
}

fn rtrim(mut v: Vec<u8>) -> Vec<u8> {
    while matches!(v.last(), Some(b' ' | b'\n' | b'\t' | b'\r')) {
        v.pop();
    }
    v
}

fn parse_case(bytes: &[u8]) -> Option<Case> {
    let mut section = 0;
    let (mut input, mut expected) = (Vec::new(), Vec::new());
    for line in bytes.split_inclusive(|b| *b == b'\n') {
        match (section, line) {
            (0, b"--TEST--\n") => section = 1,
            (1, b"--INPUT--\n") => section = 2,
            (2, b"--EXPECTED--\n") => section = 3,
            (2, _) => input.extend_from_slice(line),
            (3, _) => expected.extend_from_slice(line),
            _ => {}
        }
    }
    // The C driver builds C strings: input ends at the first NUL.
    if let Some(nul) = input.iter().position(|b| *b == 0) {
        input.truncate(nul);
    }
    (section == 3).then(|| Case {
        input: rtrim(input),
        expected: rtrim(expected),
    })
}

/// Token text as `printf("%s")` shows it: up to the first NUL.
fn cstr(v: &[u8]) -> &[u8] {
    v.iter().position(|b| *b == 0).map_or(v, |i| &v[..i])
}

fn print_token(out: &mut Vec<u8>, t: &Token) {
    out.push(t.kind.as_char() as u8);
    out.push(b' ');
    let quoted = |out: &mut Vec<u8>| {
        if t.str_open != 0 {
            out.push(t.str_open);
        }
        out.extend_from_slice(cstr(t.value()));
        if t.str_close != 0 {
            out.push(t.str_close);
        }
    };
    match t.kind {
        TokenKind::String => quoted(out),
        TokenKind::Variable => {
            for _ in 0..t.count.min(2) {
                out.push(b'@');
            }
            quoted(out);
        }
        _ => out.extend_from_slice(cstr(t.value())),
    }
    out.push(b'\n');
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Tokens,
    Folding,
    Sqli,
}

fn run(kind: Kind, input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match kind {
        Kind::Tokens => {
            for t in sqli::tokenize(input, Flags::ANSI) {
                print_token(&mut out, &t);
            }
        }
        Kind::Folding => {
            for t in sqli::fold(input, Flags::ANSI).tokens() {
                print_token(&mut out, t);
            }
        }
        Kind::Sqli => {
            if let Some(fp) = detect::detect_sqli(input) {
                out.extend_from_slice(fp.as_str().as_bytes());
            }
        }
    }
    rtrim(out)
}

#[test]
fn libinjection_sqli_test_suite() {
    let dir = shared_dir().join("libinjection/tests");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();

    let kinds = [
        ("test-tokens-", Kind::Tokens),
        ("test-folding-", Kind::Folding),
        ("test-sqli-", Kind::Sqli),
    ];
    let mut passed = [0usize; 3];
    let mut total = [0usize; 3];
    let mut failures = Vec::new();

    for path in &files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Some(idx) = kinds.iter().position(|(p, _)| name.starts_with(p)) else {
            continue;
        };
        total[idx] += 1;
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let Some(case) = parse_case(&bytes) else {
            failures.push(format!("{name}: malformed test file"));
            continue;
        };
        let got = run(kinds[idx].1, &case.input);
        if got == case.expected {
            passed[idx] += 1;
        } else {
            failures.push(format!(
                "{name}\n  input:    {:?}\n  expected: {:?}\n  got:      {:?}",
                String::from_utf8_lossy(&case.input),
                String::from_utf8_lossy(&case.expected),
                String::from_utf8_lossy(&got),
            ));
        }
    }

    for (i, (prefix, _)) in kinds.iter().enumerate() {
        eprintln!("{prefix}*: {}/{} passed", passed[i], total[i]);
    }
    assert!(
        total.iter().all(|n| *n > 0),
        "every kind must have test files in {}",
        dir.display()
    );
    assert!(
        failures.is_empty(),
        "{} failing libinjection cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

/// Inputs generated for differential testing, with the result libinjection's
/// C implementation gave for each: one input per distinct fingerprint seen
/// over ~1M generated inputs, plus benign samples.
#[test]
fn differential_golden_cases() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/sqli/testdata/libinjection_golden.tsv"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut total = 0;
    let mut failures = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((hex, expected)) = line.split_once('\t') else {
            panic!("malformed line {line:?}");
        };
        let input = unhex(hex).unwrap_or_else(|| panic!("bad hex {hex:?}"));
        total += 1;
        let got = detect::detect_sqli(&input).map_or("-".to_owned(), |f| f.as_str().to_owned());
        if got != expected {
            failures.push(format!("{hex}: expected {expected}, got {got}"));
        }
    }
    eprintln!("golden: {}/{total} passed", total - failures.len());
    assert!(total > 1000, "golden file too small: {total}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
