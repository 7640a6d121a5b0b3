//! Loads the whole CRS v4 regression suite and both overrides formats from
//! `../shared/crs-v4` and builds every stage's raw request.

use std::path::PathBuf;

use ftw::{load, request};

fn shared() -> PathBuf {
    std::env::var_os("PALISADE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared")))
}

#[test]
fn every_crs_test_file_loads_and_every_request_builds() {
    let dir = shared().join("crs-v4/tests/tests");
    let files = load::test_files(&dir).unwrap();
    // 322 *.yaml + 1 *.yml at the commit in SOURCE_COMMIT.
    assert_eq!(files.len(), 323);
    let tests = load::load_tests(&dir).unwrap();
    // One file (920539.yaml) holds only comments and is skipped, as go-ftw does.
    assert_eq!(tests.len(), 322);
    let cases: usize = tests.iter().map(|t| t.tests.len()).sum();
    let stages: usize = tests
        .iter()
        .flat_map(|t| &t.tests)
        .map(|c| c.stages.len())
        .sum();
    assert_eq!(cases, 5082, "issue 4 counts 5,082 cases");
    assert_eq!(stages, 5088);

    let mut encoded = 0;
    for t in &tests {
        assert_ne!(t.rule_id, 0, "{}", t.file_name);
        for c in &t.tests {
            assert_ne!(c.effective_id(), 0, "{}", c.id_string());
            for s in &c.stages {
                let raw = request::build_request(&s.input)
                    .unwrap_or_else(|e| panic!("{}: {e}", c.id_string()));
                assert!(!raw.is_empty());
                if s.input.encoded_request.is_some() {
                    encoded += 1;
                }
            }
        }
    }
    assert_eq!(encoded, 10);
}

#[test]
fn known_requests_are_built_byte_for_byte() {
    let dir = shared().join("crs-v4/tests/tests");
    let t = load::load_test_file(&dir.join("REQUEST-920-PROTOCOL-ENFORCEMENT/920400.yaml"))
        .unwrap()
        .unwrap();
    // Multipart body: template expanded, LF turned into CRLF, the file's own
    // Content-Length kept, headers sorted by name.
    let raw = request::build_request(&t.tests[1].stages[0].input).unwrap();
    let text = String::from_utf8(raw).unwrap();
    let expected_head = "POST / HTTP/1.1\r\n\
        Accept: text/xml,application/xml,application/xhtml+xml,text/html;q=0.9,text/plain;q=0.8,image/png,*/*;q=0.5\r\n\
        Content-Type: multipart/form-data; boundary=--------111111\r\n\
        Host: localhost\r\n\
        User-Agent: OWASP CRS test agent\r\n\
        Connection: close\r\n";
    assert!(text.starts_with(expected_head), "{text}");
    let body = format!(
        "----------111111\r\nContent-Disposition: form-data; name=\"smallfile\"; filename=\"file.txt\"\r\nContent-Type: text/plain\r\n{}\r\n----------111111--\r\n",
        "1".repeat(152)
    );
    assert!(
        text.ends_with(&format!("Content-Length: {}\r\n\r\n{body}", body.len())),
        "{text}"
    );

    // encoded_request with line breaks inside the base64.
    let t = load::load_test_file(&dir.join("REQUEST-920-PROTOCOL-ENFORCEMENT/920171.yaml"))
        .unwrap()
        .unwrap();
    let raw = request::build_request(&t.tests[0].stages[0].input).unwrap();
    assert!(raw.starts_with(b"POST / HTTP/1.1\r\nAccept: */*\r\n"));
    assert!(raw.ends_with(b"\r\n\r\n3\r\nHi \r\n3\r\nCRS\r\n0\r\n\r\n"));
}

#[test]
fn the_engines_overrides_files_load() {
    let dir = shared().join("crs-v4/tests");
    for (name, count) in [
        ("coraza-overrides.yaml", 9),
        ("nginx-overrides.yaml", 24),
        ("httpd-overrides.yaml", 2),
    ] {
        let o = load::load_overrides(&dir.join(name)).unwrap();
        assert_eq!(o.test_overrides.len(), count, "{name}");
        assert!(
            o.test_overrides.iter().all(|t| t.rule_id > 900_000),
            "{name}"
        );
    }
}

#[test]
fn requests_stock_hyper_would_refuse_are_listed() {
    // The CRS requests that httparse accepts but stock hyper refuses with
    // 400 because the request-target is not a valid http::Uri (raw `<`,
    // `>`, `"` in the query, a backslash target…). A gateway on stock hyper
    // fails these tests before its WAF runs; the list is printed for the
    // gateway's developers.
    use ftw::http1::{parse, parse_with, HttpModel};
    let dir = shared().join("crs-v4/tests/tests");
    let mut refused = Vec::new();
    for t in load::load_tests(&dir).unwrap() {
        for c in &t.tests {
            for s in &c.stages {
                let raw = request::build_request(&s.input).unwrap();
                if parse(&raw).rejected.is_none() {
                    if let Some((_, why)) = parse_with(&raw, HttpModel::Hyper).rejected {
                        refused.push(format!("{}: {why}", c.id_string()));
                    }
                }
            }
        }
    }
    println!(
        "{} CRS requests stock hyper refuses:\n{}",
        refused.len(),
        refused.join("\n")
    );
    assert!(refused
        .iter()
        .any(|r| r.starts_with("941110-2: invalid byte in the query")));
    assert_eq!(refused.len(), 32);
}
