//! Multipart cases modelled on ModSecurity v3's own regression tests
//! (test/test-cases/regression/variable-MULTIPART_*.json): the same kind of
//! request bodies (lines joined with LF, as its harness does), checked
//! against the variable values ModSecurity's expected debug logs show.

use seclang::body::{multipart, BodyLimits};

const B: &str = "--------------------------756b6d74fa1a8ee2";

fn ct(boundary_param: &str) -> String {
    format!("multipart/form-data; boundary={boundary_param}")
}

/// The three-part body of the regression suite; `delim` is what starts
/// each delimiter line, `eol` the line ending inside the last part.
fn curl_body(delim: &str, last_eol: &str, second_name: &str) -> String {
    [
        delim.to_string(),
        "Content-Disposition: form-data; name=\"name\"".into(),
        String::new(),
        "test".into(),
        delim.to_string(),
        format!("Content-Disposition: form-data; {second_name}; filename=\"small_text_file.txt\""),
        "Content-Type: text/plain".into(),
        String::new(),
        "This is a very small test file..".into(),
        delim.to_string(),
        format!("Content-Disposition: form-data; name=\"filedata\"; filename=\"small_text_file2.txt\"{last_eol}"),
        format!("Content-Type: text/plain{last_eol}"),
        last_eol.to_string(),
        format!("This is another very small test file..{last_eol}"),
        format!("{delim}--{last_eol}"),
    ]
    .join("\n")
}

fn parse(ct: &str, body: &str) -> multipart::Multipart {
    multipart::parse(ct.as_bytes(), body.as_bytes(), &BodyLimits::default())
}

#[test]
fn lf_only_body_parses_with_lf_flag_and_no_crlf_mix() {
    let m = parse(
        &ct(B),
        &curl_body(&format!("--{B}"), "", "name=\"filedata\""),
    );
    assert_eq!(m.error, None);
    assert!(m.info.flags.lf_line);
    assert!(!m.info.flags.crlf_lf_lines()); // MULTIPART_CRLF_LF_LINES = 0
    assert!(m.info.strict_error(false));
    assert_eq!(m.args, vec![(b"name".to_vec(), b"test".to_vec())]);
    assert_eq!(
        m.info.filenames,
        vec![
            b"small_text_file.txt".to_vec(),
            b"small_text_file2.txt".to_vec()
        ]
    );
    assert_eq!(m.info.files.len(), 2);
    assert_eq!(m.info.files[0].content, b"This is a very small test file..");
}

#[test]
fn mixed_line_endings_set_crlf_lf_lines() {
    let m = parse(
        &ct(B),
        &curl_body(&format!("--{B}"), "\r", "name=\"filedata\""),
    );
    // The last line is `--B--\r` with no LF: not a final delimiter for
    // ModSecurity either (its buffer check wants exactly `--B--`).
    assert_eq!(
        m.error.as_deref(),
        Some("Multipart: Final boundary missing.")
    );
    assert!(m.info.flags.crlf_lf_lines()); // MULTIPART_CRLF_LF_LINES = 1
    assert_eq!(m.info.filenames[1], b"small_text_file2.txt");
}

#[test]
fn boundary_without_leading_dashes_is_unmatched_data_before() {
    // The body uses the boundary itself as delimiter (missing the `--`).
    let m = parse(&ct(B), &curl_body(B, "", "name=\"filedata\""));
    assert_eq!(m.info.unmatched_boundary_value, 1); // "Target value: \"1\""
    assert!(m.info.flags.data_before);
    assert_eq!(
        m.error.as_deref(),
        Some("Multipart: No boundaries found in payload.")
    );
}

#[test]
fn boundary_whitespace_in_content_type() {
    let m = parse(
        &ct(&format!(" {B}")),
        &curl_body(B, "", "name=\"filedata\""),
    );
    assert!(m.info.flags.boundary_whitespace);
    assert!(m.info.strict_error(m.error.is_some()));
}

#[test]
fn quoted_boundary_in_content_type() {
    let m = parse(
        &ct(&format!("\"{B}\"")),
        &curl_body(&format!("--{B}"), "", "name=\"filedata\""),
    );
    assert!(m.info.flags.boundary_quoted);
    assert_eq!(m.error, None);
    assert_eq!(m.info.files.len(), 2);
}

#[test]
fn rfc2046_boundary_characters_are_accepted() {
    let boundary = "0123456789AaBbCcDdEeFfGgHhIiJjKkLlMmNnOoPpQqRrSsTtUuVvWwXxYyZz '()+_,-./:=?";
    let body =
        format!("--{boundary}\nContent-Disposition: form-data; name=\"name\"\n\n1\n--{boundary}--");
    let m = parse(&ct(boundary), &body);
    assert_eq!(m.error, None); // REQBODY_ERROR = 0
    assert_eq!(m.args, vec![(b"name".to_vec(), b"1".to_vec())]);
}

#[test]
fn invalid_quoting_unquoted_name_with_single_quote() {
    let m = parse(&ct(B), &curl_body(&format!("--{B}"), "", "name=file'data"));
    assert!(m.info.flags.invalid_quoting);
    assert!(m.info.strict_error(m.error.is_some()));
    assert_eq!(m.info.names[1], b"file'data");
}

#[test]
fn single_quote_inside_double_quotes_is_valid_quoting() {
    let m = parse(
        &ct(B),
        &curl_body(&format!("--{B}"), "", "name=\"file'data\""),
    );
    assert!(!m.info.flags.invalid_quoting); // MULTIPART_INVALID_QUOTING = 0
}

#[test]
fn single_quoted_name_is_invalid_quoting() {
    let m = parse(&ct(B), &curl_body(&format!("--{B}"), "", "name='filedata'"));
    assert!(m.info.flags.invalid_quoting);
    assert_eq!(m.info.files[0].name, b"filedata");
}

#[test]
fn header_folding_with_spaces_is_valid_folding() {
    let b = "-----------------------------69343412719991675451336310646";
    let body = [
        format!("--{b}"),
        "Content-Disposition: form-data;".into(),
        " name=\"a\"".into(),
        String::new(),
        "1".into(),
        format!("--{b}"),
        "Content-Disposition: form-data;".into(),
        "    name=\"b\"".into(),
        String::new(),
        "2".into(),
        format!("--{b}--"),
    ]
    .join("\n");
    let m = parse(&ct(b), &body);
    assert!(m.info.flags.header_folding); // MULTIPART_HEADER_FOLDING = 1
    assert!(!m.info.flags.invalid_header_folding); // = 0
    assert!(m.info.strict_error(false)); // MULTIPART_STRICT_ERROR = 1
    assert_eq!(m.error, None); // REQBODY_PROCESSOR_ERROR = 0
    assert_eq!(
        m.args,
        vec![
            (b"a".to_vec(), b"1".to_vec()),
            (b"b".to_vec(), b"2".to_vec())
        ]
    );
}

#[test]
fn part_headers_are_keyed_by_part_name() {
    let b = "-----------------------------69343412719991675451336310646";
    let body = format!(
        "--{b}\nContent-Disposition: form-data; name=parm1\nContent-Type: image/jpeg\n\n1\n--{b}\nContent-Disposition: form-data; name=parm2\n\n2\n--{b}--"
    );
    let m = parse(&ct(b), &body);
    assert_eq!(m.error, None);
    let lines: Vec<(&[u8], &[u8])> = m.info.part_header_lines().collect();
    assert_eq!(
        lines,
        vec![
            (
                &b"parm1"[..],
                &b"Content-Disposition: form-data; name=parm1"[..]
            ),
            (&b"parm1"[..], &b"Content-Type: image/jpeg"[..]),
            (
                &b"parm2"[..],
                &b"Content-Disposition: form-data; name=parm2"[..]
            ),
        ]
    );
}
