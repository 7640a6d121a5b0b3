//! Replays libinjection's HTML5 tokenizer tests (`test-html5-*.txt` in
//! `../shared/libinjection/tests`) through [`detect::html5::Tokenizer`].
//!
//! The expected output is what libinjection's C test driver prints: one
//! `TYPE,length,bytes` line per token, tokenizer started in the data state,
//! input and output both right-trimmed of spaces, tabs, CR and LF.

use std::path::PathBuf;

use detect::html5::{StartState, TokenType, Tokenizer};

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

/// Token streams for the attribute-value start states (the shared test files
/// only use the data state) and for libinjection's quirks. Expected streams
/// were produced by libinjection's C tokenizer.
#[test]
fn start_states_and_quirks() {
    use detect::html5::TokenType::*;
    type Case = (
        StartState,
        &'static [u8],
        &'static [(TokenType, &'static [u8])],
    );
    let cases: &[Case] = &[
        (
            StartState::ValueSingleQuote,
            b"x' onload=alert(1) '",
            &[
                (AttrValue, b"x"),
                (AttrName, b"onload"),
                (AttrValue, b"alert(1)"),
                (AttrName, b"'"),
            ],
        ),
        (
            StartState::ValueDoubleQuote,
            b"\"><script>alert(1)</script>",
            &[
                (AttrValue, b""),
                (TagNameClose, b">"),
                (TagNameOpen, b"script"),
                (TagNameClose, b">"),
                (DataText, b"alert(1)"),
                (TagClose, b"script"),
            ],
        ),
        (
            StartState::ValueDoubleQuote,
            b"no quote at all",
            &[(AttrValue, b"no quote at all")],
        ),
        (
            StartState::ValueBackQuote,
            b"a` onclick=b",
            &[(AttrValue, b"a"), (AttrName, b"onclick"), (AttrValue, b"b")],
        ),
        (
            StartState::ValueNoQuote,
            b"x onload=y>z",
            &[
                (AttrName, b"x"),
                (AttrName, b"onload"),
                (AttrValue, b"y"),
                (TagNameClose, b">"),
                (DataText, b"z"),
            ],
        ),
        (
            StartState::ValueNoQuote,
            b"/ / a/>",
            &[(AttrName, b"a"), (TagNameSelfClose, b"/>")],
        ),
        (
            StartState::Data,
            b"</>a<b>c",
            &[(DataText, b">a"), (TagClose, b"b"), (DataText, b"c")],
        ),
        (StartState::Data, b"<a \xffb=c>", &[(TagNameOpen, b"a")]),
        (
            StartState::Data,
            b"<a\0b c\0d=e\0f>",
            &[
                (TagNameOpen, b"a\0b"),
                (AttrName, b"c"),
                (AttrName, b"d"),
                (AttrValue, b"e"),
                (AttrName, b"f"),
                (TagNameClose, b">"),
            ],
        ),
        (
            StartState::Data,
            b"<!--x-\0->y",
            &[(TagComment, b"x"), (DataText, b"y")],
        ),
        (
            StartState::Data,
            b"<% a %% b %>c",
            &[(TagComment, b" a %% b "), (DataText, b"c")],
        ),
        (StartState::Data, b"</ x>", &[(TagComment, b" x")]),
        (
            StartState::Data,
            b"<a b='1'c=`2`/>",
            &[
                (TagNameOpen, b"a"),
                (AttrName, b"b"),
                (AttrValue, b"1"),
                (AttrName, b"c"),
                (AttrValue, b"2"),
                (TagNameSelfClose, b"/>"),
            ],
        ),
    ];
    for (start, input, expected) in cases {
        let actual: Vec<(TokenType, &[u8])> = Tokenizer::new(input, *start)
            .map(|t| (t.kind, t.bytes))
            .collect();
        assert_eq!(
            &actual[..],
            *expected,
            "{start:?} {:?}",
            String::from_utf8_lossy(input)
        );
    }
}
