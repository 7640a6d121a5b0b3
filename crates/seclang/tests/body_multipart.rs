//! MULTIPART body processor: ModSecurity v3 strictness flags, errors and
//! evasion attempts. One test per MULTIPART_* flag, named after it.

use seclang::body::{self, multipart, BodyLimits, Processor};

const CT: &str = "multipart/form-data; boundary=b0und";

fn parse(ct: &str, body: &str) -> multipart::Multipart {
    multipart::parse(ct.as_bytes(), body.as_bytes(), &BodyLimits::default())
}

fn args(m: &multipart::Multipart) -> Vec<(String, String)> {
    m.args
        .iter()
        .map(|(n, v)| {
            (
                String::from_utf8_lossy(n).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            )
        })
        .collect()
}

fn kv(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// A well-formed CRLF body with one text field per (name, value).
fn fields(list: &[(&str, &str)]) -> String {
    let mut s = String::new();
    for (n, v) in list {
        s += &format!("--b0und\r\nContent-Disposition: form-data; name=\"{n}\"\r\n\r\n{v}\r\n");
    }
    s + "--b0und--\r\n"
}

fn strict(m: &multipart::Multipart) -> bool {
    m.info.strict_error(m.error.is_some())
}

fn assert_clean(m: &multipart::Multipart) {
    assert_eq!(m.error, None);
    assert!(!strict(m), "flags: {:?}", m.info.flags);
}

// ---------------------------------------------------------------- well-formed

#[test]
fn browser_like_body_with_fields_and_files() {
    let ct = "multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW";
    let body = "------WebKitFormBoundary7MA4YWxkTrZu0gW\r\n\
Content-Disposition: form-data; name=\"user\"\r\n\
\r\n\
alice\r\n\
------WebKitFormBoundary7MA4YWxkTrZu0gW\r\n\
Content-Disposition: form-data; name=\"comment\"\r\n\
\r\n\
line one\r\n\
line two\r\n\
------WebKitFormBoundary7MA4YWxkTrZu0gW\r\n\
Content-Disposition: form-data; name=\"empty\"\r\n\
\r\n\
\r\n\
------WebKitFormBoundary7MA4YWxkTrZu0gW\r\n\
Content-Disposition: form-data; name=\"avatar\"; filename=\"me.png\"\r\n\
Content-Type: image/png\r\n\
\r\n\
\u{1}PNG\r\n\
data\r\n\
------WebKitFormBoundary7MA4YWxkTrZu0gW\r\n\
Content-Disposition: form-data; name=\"nofile\"; filename=\"\"\r\n\
Content-Type: application/octet-stream\r\n\
\r\n\
\r\n\
------WebKitFormBoundary7MA4YWxkTrZu0gW--\r\n";
    let m = parse(ct, body);
    assert_clean(&m);
    assert_eq!(m.info.boundary, b"----WebKitFormBoundary7MA4YWxkTrZu0gW");
    // A multi-line value keeps its inner line break; the delimiter's CRLF
    // is never part of a value. `filename=""` is a plain field.
    assert_eq!(
        args(&m),
        kv(&[
            ("user", "alice"),
            ("comment", "line one\r\nline two"),
            ("empty", ""),
            ("nofile", ""),
        ])
    );
    assert_eq!(m.info.files.len(), 1);
    let f = &m.info.files[0];
    assert_eq!(f.name, b"avatar");
    assert_eq!(f.filename, b"me.png");
    assert_eq!(f.content, b"\x01PNG\r\ndata");
    assert_eq!(f.size, 10);
    assert!(!f.content_truncated);
    assert_eq!(m.info.files_combined_size, 10);
    assert_eq!(m.info.names.len(), 5);
    assert_eq!(m.info.filenames, vec![b"me.png".to_vec(), b"".to_vec()]);
    let headers: Vec<(String, String)> = m
        .info
        .part_header_lines()
        .map(|(n, l)| {
            (
                String::from_utf8_lossy(n).into_owned(),
                String::from_utf8_lossy(l).into_owned(),
            )
        })
        .collect();
    assert!(headers.contains(&("avatar".into(), "Content-Type: image/png".into())));
    assert!(headers.contains(&(
        "user".into(),
        "Content-Disposition: form-data; name=\"user\"".into()
    )));
    assert_eq!(headers.len(), 7);
    // ModSecurity reports 2 once a delimiter matched after the first one.
    assert_eq!(m.info.unmatched_boundary_value, 2);
    assert!(!m.info.flags.unmatched_boundary);
}

#[test]
fn final_boundary_without_trailing_newline_is_accepted() {
    let body = "--b0und\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--b0und--";
    let m = parse(CT, body);
    assert_clean(&m);
    assert_eq!(args(&m), kv(&[("a", "1")]));
}

#[test]
fn empty_body_is_not_an_error() {
    let m = parse(CT, "");
    assert_eq!(m.error, None);
    assert!(m.args.is_empty());
}

#[test]
fn content_type_with_tolerated_charset_after_boundary() {
    let m = parse(
        "multipart/form-data; boundary=b0und; charset=utf-8",
        &fields(&[("a", "1")]),
    );
    assert_clean(&m);
    assert_eq!(m.info.boundary, b"b0und");
}

#[test]
fn no_files_length_counts_headers_and_fields_not_files() {
    let body = "--b0und\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x\"\r\n\r\n0123456789\r\n--b0und--\r\n";
    let m = parse(CT, body);
    assert_clean(&m);
    let header = "Content-Disposition: form-data; name=\"f\"; filename=\"x\"\r\n".len() + 2;
    assert_eq!(m.info.no_files_length, header as u64);
    assert_eq!(m.info.files[0].size, 10);
}

#[test]
fn file_content_is_kept_only_up_to_the_bound() {
    let body = format!(
        "--b0und\r\nContent-Disposition: form-data; name=\"f\"; filename=\"big.bin\"\r\n\r\n{}\r\n--b0und--\r\n",
        "A".repeat(100)
    );
    let limits = BodyLimits {
        max_file_content: 10,
        ..BodyLimits::default()
    };
    let m = multipart::parse(CT.as_bytes(), body.as_bytes(), &limits);
    assert_eq!(m.error, None);
    let f = &m.info.files[0];
    assert_eq!(f.size, 100);
    assert_eq!(f.content, b"AAAAAAAAAA");
    assert!(f.content_truncated);
    let none = BodyLimits {
        max_file_content: 0,
        ..BodyLimits::default()
    };
    let m = multipart::parse(CT.as_bytes(), body.as_bytes(), &none);
    assert!(m.info.files[0].content.is_empty());
    assert_eq!(m.info.files[0].size, 100);
}

#[test]
fn args_limit_drops_extra_fields_with_flag() {
    let limits = BodyLimits {
        max_args: 1,
        ..BodyLimits::default()
    };
    let body = fields(&[("a", "1"), ("b", "2")]);
    let m = multipart::parse(CT.as_bytes(), body.as_bytes(), &limits);
    assert_eq!(args(&m), kv(&[("a", "1")]));
    assert!(m.args_limit_exceeded);
}

// ------------------------------------------------------ one test per flag

#[test]
fn multipart_boundary_quoted() {
    let m = parse(
        "multipart/form-data; boundary=\"b0und\"",
        &fields(&[("a", "1")]),
    );
    assert!(m.info.flags.boundary_quoted);
    assert_eq!(m.error, None);
    assert_eq!(args(&m), kv(&[("a", "1")]));
    assert!(strict(&m));
}

#[test]
fn multipart_boundary_whitespace() {
    let m = parse(
        "multipart/form-data; boundary =b0und",
        &fields(&[("a", "1")]),
    );
    assert!(m.info.flags.boundary_whitespace);
    assert_eq!(m.error, None);
    assert!(strict(&m));
    // Whitespace after `=` becomes part of the boundary (ModSecurity).
    let m = parse(
        "multipart/form-data; boundary= b0und",
        "-- b0und\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n-- b0und--\r\n",
    );
    assert!(m.info.flags.boundary_whitespace);
    assert_eq!(m.info.boundary, b" b0und");
    assert_eq!(args(&m), kv(&[("a", "1")]));
}

#[test]
fn multipart_data_before() {
    let m = parse(CT, &format!("preamble text\r\n{}", fields(&[("a", "1")])));
    assert!(m.info.flags.data_before);
    assert_eq!(m.error, None);
    assert_eq!(args(&m), kv(&[("a", "1")]));
    assert!(strict(&m));
}

#[test]
fn multipart_data_after() {
    let m = parse(CT, &format!("{}epilogue", fields(&[("a", "1")])));
    assert!(m.info.flags.data_after);
    assert_eq!(m.error, None);
    assert!(strict(&m));
    // Even a single extra line break counts.
    let m = parse(CT, &format!("{}\r\n", fields(&[("a", "1")])));
    assert!(m.info.flags.data_after);
}

#[test]
fn multipart_header_folding() {
    let body =
        "--b0und\r\nContent-Disposition: form-data;\r\n name=\"a\"\r\n\r\n1\r\n--b0und--\r\n";
    let m = parse(CT, body);
    assert!(m.info.flags.header_folding);
    assert!(!m.info.flags.invalid_header_folding);
    assert_eq!(m.error, None);
    assert_eq!(args(&m), kv(&[("a", "1")]));
    let lines: Vec<(&[u8], &[u8])> = m.info.part_header_lines().collect();
    assert_eq!(
        lines,
        vec![(
            &b"a"[..],
            &b"Content-Disposition: form-data; name=\"a\""[..]
        )]
    );
    assert!(strict(&m));
}

#[test]
fn multipart_invalid_header_folding() {
    let body =
        "--b0und\r\nContent-Disposition: form-data;\r\n\x0bname=\"a\"\r\n\r\n1\r\n--b0und--\r\n";
    let m = parse(CT, body);
    assert!(m.info.flags.header_folding);
    assert!(m.info.flags.invalid_header_folding);
    assert!(strict(&m));
}

#[test]
fn multipart_lf_line() {
    let body = "--b0und\nContent-Disposition: form-data; name=\"a\"\n\nv\n--b0und--\n";
    let m = parse(CT, body);
    assert!(m.info.flags.lf_line);
    assert!(!m.info.flags.crlf_lf_lines());
    assert_eq!(m.error, None);
    assert_eq!(args(&m), kv(&[("a", "v")]));
    assert!(strict(&m));
}

#[test]
fn multipart_crlf_lf_lines() {
    let body = "--b0und\r\nContent-Disposition: form-data; name=\"a\"\n\r\nv\r\n--b0und--\r\n";
    let m = parse(CT, body);
    assert!(m.info.flags.lf_line && m.info.flags.crlf_line);
    assert!(m.info.flags.crlf_lf_lines());
    assert!(strict(&m));
    // A bare LF just before a CRLF delimiter is also LF line ending.
    let body = "--b0und\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nv\n--b0und--\r\n";
    let m = parse(CT, body);
    assert!(m.info.flags.crlf_lf_lines());
}

#[test]
fn multipart_missing_semicolon() {
    let m = parse("multipart/form-data boundary=b0und", &fields(&[("a", "1")]));
    assert!(m.info.flags.missing_semicolon);
    assert_eq!(m.error, None);
    assert!(strict(&m));
}

#[test]
fn multipart_invalid_quoting() {
    let body = "--b0und\r\nContent-Disposition: form-data; name='a'\r\n\r\n1\r\n--b0und--\r\n";
    let m = parse(CT, body);
    assert!(m.info.flags.invalid_quoting);
    assert_eq!(m.error, None);
    assert_eq!(args(&m), kv(&[("a", "1")]));
    assert!(strict(&m));
    // A quote inside an unquoted value.
    let body = "--b0und\r\nContent-Disposition: form-data; name=a'b\r\n\r\n1\r\n--b0und--\r\n";
    assert!(parse(CT, body).info.flags.invalid_quoting);
    // A single quote inside a double-quoted value is fine.
    let body = "--b0und\r\nContent-Disposition: form-data; name=\"a'b\"\r\n\r\n1\r\n--b0und--\r\n";
    let m = parse(CT, body);
    assert!(!m.info.flags.invalid_quoting);
    assert_eq!(args(&m), kv(&[("a'b", "1")]));
}

#[test]
fn multipart_invalid_part() {
    // A delimiter right after the part headers (no data line): the
    // "delimiter" is data of the first part.
    let body = "--b0und\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n--b0und\r\nContent-Disposition: form-data; name=\"c\"\r\n\r\nv\r\n--b0und--\r\n";
    let m = parse(CT, body);
    assert!(m.info.flags.invalid_part);
    assert!(strict(&m));
    assert_eq!(m.args.len(), 1);
    assert_eq!(m.args[0].0, b"a");
    assert!(m.args[0].1.starts_with(b"--b0und\r\nContent-Disposition"));
}

#[test]
fn multipart_invalid_part_without_name() {
    let body = "--b0und\r\nContent-Disposition: form-data\r\n\r\nv\r\n--b0und--\r\n";
    let m = parse(CT, body);
    assert!(m.info.flags.invalid_part);
    assert_eq!(
        m.error.as_deref(),
        Some("Multipart: Content-Disposition header missing name field.")
    );
    assert!(m.args.is_empty());
}

#[test]
fn multipart_file_limit_exceeded() {
    let mut body = String::new();
    for i in 0..3 {
        body += &format!(
            "--b0und\r\nContent-Disposition: form-data; name=\"f{i}\"; filename=\"{i}.txt\"\r\n\r\ncontent{i}\r\n"
        );
    }
    body += "--b0und--\r\n";
    let limits = BodyLimits {
        max_files: 2,
        ..BodyLimits::default()
    };
    let m = multipart::parse(CT.as_bytes(), body.as_bytes(), &limits);
    assert!(m.info.flags.file_limit_exceeded);
    assert_eq!(
        m.error.as_deref(),
        Some(
            "Multipart: Upload file limit exceeded 2. Use SecUploadFileLimit to change the limit."
        )
    );
    // All files are listed; the one over the limit has no content kept.
    assert_eq!(m.info.files.len(), 3);
    assert_eq!(m.info.files[1].content, b"content1");
    assert!(m.info.files[2].content.is_empty());
    assert_eq!(m.info.files[2].size, 8);
    assert!(strict(&m));
    let ok = multipart::parse(CT.as_bytes(), body.as_bytes(), &BodyLimits::default());
    assert!(!ok.info.flags.file_limit_exceeded);
    assert_eq!(ok.error, None);
}

#[test]
fn multipart_unmatched_boundary() {
    let body = "--b0und\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n--b0unX\r\n--b0und--\r\n";
    let m = parse(CT, body);
    assert!(m.info.flags.unmatched_boundary);
    // Exactly ModSecurity: the later matching delimiter turns 1 into 2.
    assert_eq!(m.info.unmatched_boundary_value, 2);
    assert_eq!(args(&m), kv(&[("a", "x\r\n--b0unX")]));
    // When nothing matches afterwards the value stays 1.
    let body = "--b0und\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n--nope--\r\n";
    let m = parse(CT, body);
    assert_eq!(m.info.unmatched_boundary_value, 1);
    assert_eq!(
        m.error.as_deref(),
        Some("Multipart: Final boundary missing.")
    );
    // The boundary hidden mid-line is also suspicious.
    let body =
        "--b0und\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx--b0und\r\n--b0und--\r\n";
    assert!(parse(CT, body).info.flags.unmatched_boundary);
}

#[test]
fn multipart_strict_error_is_or_of_flags_and_error() {
    let clean = parse(CT, &fields(&[("a", "1")]));
    assert!(!clean.info.strict_error(false));
    assert!(clean.info.strict_error(true));
    // The unmatched-boundary flag alone does not make a strict error.
    let mut info = clean.info.clone();
    info.flags.unmatched_boundary = true;
    info.flags.crlf_line = true;
    assert!(!info.strict_error(false));
    info.flags.lf_line = true;
    assert!(info.strict_error(false));
}

// ------------------------------------------------------------------ errors

fn error_of(ct: &str, body: &str) -> String {
    parse(ct, body).error.unwrap_or_default()
}

#[test]
fn content_type_errors() {
    let b = fields(&[("a", "1")]);
    assert_eq!(
        error_of("", &b),
        "Multipart: Content-Type header not available."
    );
    assert_eq!(
        error_of("multipart/mixed; boundary=b0und", &b),
        "Multipart: Invalid MIME type."
    );
    assert_eq!(
        error_of("multipart/form-data", &b),
        "Multipart: Boundary not found in C-T."
    );
    assert_eq!(
        error_of("multipart/form-data; BOUNDARY=b0und", &b),
        "Multipart: Invalid boundary in C-T (case sensitivity)."
    );
    assert_eq!(
        error_of("multipart/form-data; boundary=b0und; boundary=evil", &b),
        "Multipart: Multiple boundary parameters in C-T."
    );
    assert_eq!(
        error_of("multipart/form-data; charset=utf-8; boundary=b0und", &b),
        "Multipart: Invalid boundary in C-T (malformed)."
    );
    assert_eq!(
        error_of("multipart/form-data; boundary", &b),
        "Multipart: Invalid boundary in C-T (malformed)."
    );
    assert_eq!(
        error_of("multipart/form-data; boundaryx=b0und", &b),
        "Multipart: Invalid boundary in C-T (parameter name)."
    );
    assert_eq!(
        error_of("multipart/form-data; boundary=\"b0und", &b),
        "Multipart: Invalid boundary in C-T (quote)."
    );
    assert_eq!(
        error_of("multipart/form-data; boundary=b0und\"", &b),
        "Multipart: Invalid boundary in C-T (quote)."
    );
    assert_eq!(
        error_of("multipart/form-data; boundary=b<0>und", &b),
        "Multipart: Invalid boundary in C-T (characters)."
    );
    assert_eq!(
        error_of("multipart/form-data; boundary=", &b),
        "Multipart: Invalid boundary in C-T (empty)."
    );
    assert_eq!(
        error_of("multipart/form-data; boundary=\"\"", &b),
        "Multipart: Invalid boundary in C-T (empty)."
    );
    let long = format!("multipart/form-data; boundary={}", "a".repeat(1100));
    assert_eq!(
        error_of(&long, &b),
        "Multipart: Invalid boundary in C-T (length)."
    );
}

#[test]
fn content_type_error_still_returns_no_args() {
    let m = parse("multipart/form-data", &fields(&[("a", "1")]));
    assert!(m.args.is_empty());
    assert!(strict(&m));
}

#[test]
fn missing_final_boundary() {
    let body = "--b0und\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n";
    let m = parse(CT, body);
    assert_eq!(
        m.error.as_deref(),
        Some("Multipart: Final boundary missing.")
    );
    // The unfinished part is not reported as an argument.
    assert!(m.args.is_empty());
}

#[test]
fn no_boundaries_in_payload() {
    assert_eq!(
        error_of(CT, "a=1&b=2"),
        "Multipart: No boundaries found in payload."
    );
}

#[test]
fn invalid_delimiter_line() {
    let body = "--b0und\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--b0und junk\r\n--b0und--\r\n";
    let m = parse(CT, body);
    // Parsing stops at the bad delimiter; the first error is reported.
    assert_eq!(
        m.error.as_deref(),
        Some("Multipart: Invalid boundary: --b0und junk\r\n")
    );
    // The unfinished part is dropped, as in ModSecurity (REQBODY_ERROR is
    // what rules act on).
    assert!(m.args.is_empty());
    assert_eq!(
        error_of(CT, "--b0und junk\r\n"),
        "Multipart: Invalid boundary: --b0und junk\r\n"
    );
}

#[test]
fn part_header_errors() {
    let cases = [
        (
            "--b0und\r\nX-Foo: bar\r\n\r\nv\r\n--b0und--\r\n",
            "Multipart: Part missing Content-Disposition header.",
        ),
        (
            "--b0und\r\nContent-Disposition: form-data; foo=bar\r\n\r\nv\r\n--b0und--\r\n",
            "Multipart: Invalid Content-Disposition header (-11): form-data; foo=bar",
        ),
        (
            "--b0und\r\nContent-Disposition: attachment; name=a\r\n\r\nv\r\n--b0und--\r\n",
            "Multipart: Invalid Content-Disposition header (-1): attachment; name=a",
        ),
        (
            "--b0und\r\nContent-Disposition: form-data; filename=\"x\"\r\n\r\nv\r\n--b0und--\r\n",
            "Multipart: Content-Disposition header missing name field.",
        ),
    ];
    for (body, want) in cases {
        let m = parse(CT, body);
        assert_eq!(m.error.as_deref(), Some(want), "{body:?}");
    }
}

#[test]
fn invalid_content_disposition_codes() {
    let cd = |v: &str| {
        let body = format!("--b0und\r\nContent-Disposition: {v}\r\n\r\nx\r\n--b0und\r\nContent-Disposition: form-data; name=z\r\n\r\nok\r\n--b0und--\r\n");
        parse(CT, &body)
    };
    // The message names ModSecurity's code.
    let cases = [
        ("form-data; foo=bar", "(-11)"),
        ("form-data x", "(-2)"),
        ("form-data; name", "(-4)"),
        ("form-data; name=\"a\"; name=\"b\"", "(-14)"),
        ("form-data; name=a; filename=x; filename=y", "(-15)"),
        ("form-data; name=a x", "(-12)"),
        ("form-data; name=\"a\"x", "(-12)"),
        ("form-data; name=a; filename*=UTF-8''x.txt", "(-21)"),
        ("form-data; name=a; filename*=''x", "(-16)"),
    ];
    for (value, code) in cases {
        let m = cd(value);
        let err = m.error.clone().unwrap_or_default();
        assert!(
            err.starts_with(&format!(
                "Multipart: Invalid Content-Disposition header {code}"
            )),
            "{value}: {err}"
        );
    }
}

#[test]
fn filename_star_with_plain_filename_is_a_file() {
    let body = "--b0und\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"; filename*=UTF-8''%e2%82%ac.txt\r\n\r\nx\r\n--b0und--\r\n";
    let m = parse(CT, body);
    assert_eq!(m.error, None);
    assert_eq!(m.info.files[0].filename, b"a.txt");
}

#[test]
fn filename_only_understood_via_escapes_is_refused() {
    // `filename` parsed from `filename = "x"` but the literal `filename=`
    // is absent: crude parsers would miss the file.
    let body = "--b0und\r\nContent-Disposition: form-data; name=\"f\"; filename =\"x.php\"\r\n\r\n<?php\r\n--b0und--\r\n";
    assert_eq!(
        error_of(CT, body),
        "Multipart: Invalid Content-Disposition header (filename)."
    );
}

#[test]
fn header_without_colon_and_nul_bytes() {
    let body = "--b0und\r\nContent-Disposition: form-data; name=a\r\nbroken header\r\n\r\nv\r\n--b0und--\r\n";
    assert_eq!(
        error_of(CT, body),
        "Multipart: Invalid part header (colon missing): broken header\r\n"
    );
    let body = "--b0und\r\nContent-Disposition: form-data; name=a\0\r\n\r\nv\r\n--b0und--\r\n";
    assert_eq!(error_of(CT, body), "Multipart: Nul byte in part headers.");
    let body =
        "--b0und\r\n: nameless\r\nContent-Disposition: form-data; name=a\r\n\r\nv\r\n--b0und--\r\n";
    assert_eq!(
        error_of(CT, body),
        "Multipart: Invalid part header (header name missing)."
    );
    let body = "--b0und\r\nBad Name: x\r\nContent-Disposition: form-data; name=a\r\n\r\nv\r\n--b0und--\r\n";
    assert_eq!(
        error_of(CT, body),
        "Multipart: Invalid part header (contains invalid character)."
    );
}

#[test]
fn folding_without_a_header_is_an_error() {
    let body =
        "--b0und\r\n folded\r\nContent-Disposition: form-data; name=a\r\n\r\nv\r\n--b0und--\r\n";
    assert_eq!(
        error_of(CT, body),
        "Multipart: Invalid part header (folding error)."
    );
}

#[test]
fn overlong_header_line_stops_parsing() {
    let body = format!(
        "--b0und\r\nContent-Disposition: form-data; name=a; x={}\r\n\r\nv\r\n--b0und--\r\n",
        "y".repeat(5000)
    );
    let m = parse(CT, &body);
    assert!(m.error.is_some());
    assert!(m.args.is_empty());
    // The limit is on the line including its line ending (LINE_BUF bytes).
    let prefix = "X-Pad: ";
    for (pad, refused) in [
        (multipart::LINE_BUF - prefix.len() - 3, false),
        (multipart::LINE_BUF - prefix.len() - 2, true),
    ] {
        let body = format!(
            "--b0und\r\nContent-Disposition: form-data; name=a\r\n{prefix}{}\r\n\r\nv\r\n--b0und--\r\n",
            "y".repeat(pad)
        );
        let m = parse(CT, &body);
        assert_eq!(m.error.is_some(), refused, "pad {pad}");
    }
    // A folded header growing past the line buffer is refused too.
    let mut body =
        String::from("--b0und\r\nContent-Disposition: form-data; name=a\r\nX-Long: a\r\n");
    for _ in 0..50 {
        body += &format!(" {}\r\n", "z".repeat(100));
    }
    body += "\r\nv\r\n--b0und--\r\n";
    assert_eq!(error_of(CT, &body), "Multipart: Part header too long.");
}

#[test]
fn duplicate_part_header_is_ignored_silently() {
    let body = "--b0und\r\nContent-Disposition: form-data; name=a\r\ncontent-disposition: form-data; name=evil\r\n\r\nv\r\n--b0und--\r\n";
    let m = parse(CT, body);
    assert_eq!(m.error, None);
    assert_eq!(args(&m), kv(&[("a", "v")]));
}

// ---------------------------------------------------------------- evasions

#[test]
fn quoted_boundary_used_with_quotes_in_body_is_an_error() {
    let body =
        "--\"b0und\"\r\nContent-Disposition: form-data; name=a\r\n\r\nv\r\n--\"b0und\"--\r\n";
    let m = parse("multipart/form-data; boundary=\"b0und\"", body);
    assert_eq!(
        m.error.as_deref(),
        Some("Multipart: Invalid boundary (quotes).")
    );
    assert!(m.args.is_empty());
}

#[test]
fn whitespace_before_boundary_in_body_is_an_error() {
    let body = "--b0und\r\nContent-Disposition: form-data; name=a\r\n\r\nv\r\n-- b0und--\r\n";
    let m = parse(CT, body);
    assert_eq!(
        m.error.as_deref(),
        Some("Multipart: Invalid boundary (whitespace).")
    );
    assert!(m.args.is_empty());
    assert_eq!(
        error_of(CT, "--\tb0und\r\n"),
        "Multipart: Invalid boundary (whitespace)."
    );
}

#[test]
fn duplicate_boundary_parameters_are_refused() {
    // Backends disagree on which boundary wins: refuse.
    let m = parse(
        "multipart/form-data; boundary=b0und; boundary=other",
        &fields(&[("a", "1")]),
    );
    assert_eq!(
        m.error.as_deref(),
        Some("Multipart: Multiple boundary parameters in C-T.")
    );
}

#[test]
fn nested_multipart_stays_data_of_the_outer_part() {
    let body = "--b0und\r\nContent-Disposition: form-data; name=\"outer\"\r\nContent-Type: multipart/mixed; boundary=inner\r\n\r\n--inner\r\nContent-Disposition: form-data; name=\"hidden\"\r\n\r\n' OR 1=1--\r\n--inner--\r\n--b0und--\r\n";
    let m = parse(CT, body);
    assert_eq!(m.error, None);
    assert_eq!(m.args.len(), 1);
    let v = String::from_utf8_lossy(&m.args[0].1).into_owned();
    assert!(v.contains("' OR 1=1--"));
    assert!(m.info.flags.unmatched_boundary);
}

#[test]
fn second_final_boundary_is_data_after() {
    let body = format!("{}--b0und--\r\n", fields(&[("a", "1")]));
    let m = parse(CT, &body);
    assert!(m.info.flags.data_after);
    assert_eq!(args(&m), kv(&[("a", "1")]));
}

#[test]
fn payload_in_preamble_is_not_an_argument_but_flagged() {
    let body = format!(
        "Content-Disposition: form-data; name=\"x\"\r\n\r\n<script>\r\n{}",
        fields(&[("a", "1")])
    );
    let m = parse(CT, &body);
    assert!(m.info.flags.data_before);
    assert_eq!(args(&m), kv(&[("a", "1")]));
}

#[test]
fn process_dispatch_prefixes_the_error() {
    let out = body::process(
        Processor::Multipart,
        b"multipart/form-data; boundary=b0und",
        b"--b0und\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n",
        &BodyLimits::default(),
    );
    let err = out.error.expect("missing final boundary");
    assert_eq!(err.processor, Processor::Multipart);
    assert_eq!(
        err.message,
        "Multipart parsing error: Multipart: Final boundary missing."
    );
    let mp = out.multipart.expect("multipart info");
    assert!(mp.strict_error(true));
}

// ------------------------------------------------------------------ hostile

#[test]
fn long_lines_without_newline_in_data_are_fine() {
    let blob = "Q".repeat(20_000);
    let body = format!(
        "--b0und\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a\"\r\n\r\n{blob}\r\n--b0und--\r\n"
    );
    let m = parse(CT, &body);
    assert_eq!(m.error, None);
    assert_eq!(m.info.files[0].size, 20_000);
}

#[test]
fn cr_at_buffer_edge_does_not_split_crlf() {
    // A data line of exactly LINE_BUF - 1 bytes followed by CRLF.
    let blob = "Z".repeat(multipart::LINE_BUF - 1);
    let body = format!(
        "--b0und\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n{blob}\r\n--b0und--\r\n"
    );
    let m = parse(CT, &body);
    assert_clean(&m);
    assert_eq!(m.args[0].1.len(), multipart::LINE_BUF - 1);
}

#[test]
fn many_parts_are_linear() {
    let mut body = String::new();
    for i in 0..20_000 {
        body += &format!("--b0und\r\nContent-Disposition: form-data; name=\"p{i}\"\r\n\r\nv\r\n");
    }
    body += "--b0und--\r\n";
    let limits = BodyLimits {
        max_args: usize::MAX,
        ..BodyLimits::default()
    };
    let m = multipart::parse(CT.as_bytes(), body.as_bytes(), &limits);
    assert_eq!(m.error, None);
    assert_eq!(m.args.len(), 20_000);
}

#[test]
fn arbitrary_bytes_never_panic() {
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let alphabet = b"-\r\nb0und:; =\"'\\\tContent-Disposition form-data name filename\x00\x0b";
    for _ in 0..3000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = (seed % 200) as usize;
        let mut body = b"--b0und\r\n".to_vec();
        let mut s = seed;
        for _ in 0..len {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            body.push(alphabet[(s >> 33) as usize % alphabet.len()]);
        }
        let a = multipart::parse(CT.as_bytes(), &body, &BodyLimits::default());
        let b = multipart::parse(CT.as_bytes(), &body, &BodyLimits::default());
        assert_eq!(a, b);
    }
}

#[test]
fn flag_variables_name_every_multipart_variable() {
    let body = "preamble\n--b0und\nContent-Disposition: form-data; name='a'\n\nv\n--b0und--\nafter";
    let m = parse("multipart/form-data boundary=\"b0und\"", body);
    let vars = m.info.flag_variables(m.error.is_some());
    let get = |name: &str| {
        vars.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    assert_eq!(get("MULTIPART_BOUNDARY_QUOTED"), 1);
    assert_eq!(get("MULTIPART_MISSING_SEMICOLON"), 1);
    assert_eq!(get("MULTIPART_DATA_BEFORE"), 1);
    assert_eq!(get("MULTIPART_DATA_AFTER"), 1);
    assert_eq!(get("MULTIPART_LF_LINE"), 1);
    assert_eq!(get("MULTIPART_INVALID_QUOTING"), 1);
    assert_eq!(get("MULTIPART_CRLF_LF_LINES"), 0);
    assert_eq!(get("MULTIPART_HEADER_FOLDING"), 0);
    // A delimiter matched after the first one: ModSecurity's 2.
    assert_eq!(get("MULTIPART_UNMATCHED_BOUNDARY"), 2);
    assert_eq!(get("MULTIPART_STRICT_ERROR"), 1);
    let mut names: Vec<&str> = vars.iter().map(|(n, _)| *n).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), 14);
    let clean = parse(CT, &fields(&[("a", "1")]));
    let clean_vars = clean.info.flag_variables(false);
    for (name, value) in clean_vars {
        let want = if name == "MULTIPART_UNMATCHED_BOUNDARY" {
            2
        } else {
            0
        };
        assert_eq!(value, want, "{name}");
    }
}

#[test]
fn many_headers_in_one_part_are_linear() {
    // 200k distinct header lines in one part: the duplicate check must not
    // be quadratic.
    let mut body = String::from("--b0und\r\nContent-Disposition: form-data; name=\"a\"\r\n");
    for i in 0..200_000 {
        body += &format!("h{i}:\r\n");
    }
    body += "\r\nv\r\n--b0und--\r\n";
    let start = std::time::Instant::now();
    let m = parse(CT, &body);
    assert_eq!(m.error, None);
    assert_eq!(m.info.part_header_lines().count(), 200_001);
    assert!(start.elapsed() < std::time::Duration::from_secs(20));
}

#[test]
fn long_name_with_many_header_lines_is_stored_once() {
    // A 4000-byte name and 100k header lines: per-line copies of the name
    // would be 400 MB; grouped per part it is stored once.
    let name = "n".repeat(4000);
    let mut body = format!("--b0und\r\nContent-Disposition: form-data; name=\"{name}\"\r\n");
    for i in 0..100_000 {
        body += &format!("h{i}:\r\n");
    }
    body += "\r\nv\r\n--b0und--\r\n";
    let m = parse(CT, &body);
    assert_eq!(m.error, None);
    assert_eq!(m.info.part_headers.len(), 1);
    assert_eq!(m.info.part_headers[0].name.len(), 4000);
    assert_eq!(m.info.part_headers[0].lines.len(), 100_001);
}

#[test]
fn endless_folding_after_the_limit_stays_linear_and_bounded() {
    // ModSecurity keeps appending (and copying) after "Part header too
    // long."; here the value stops growing at the limit.
    let mut body =
        String::from("--b0und\r\nContent-Disposition: form-data; name=a\r\nX-Long: a\r\n");
    body += &" yyyyyyyy\r\n".repeat(200_000);
    body += "\r\nv\r\n--b0und--\r\n";
    let start = std::time::Instant::now();
    let m = parse(CT, &body);
    assert_eq!(m.error.as_deref(), Some("Multipart: Part header too long."));
    assert!(start.elapsed() < std::time::Duration::from_secs(20));
    let longest = m
        .info
        .part_header_lines()
        .map(|(_, l)| l.len())
        .max()
        .unwrap_or(0);
    assert!(longest <= multipart::LINE_BUF + "X-Long: ".len());
    assert!(longest > multipart::LINE_BUF - 20);
}
