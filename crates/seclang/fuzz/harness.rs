//! Invariants checked on every input by the body-processor fuzz targets and
//! by the corpus replay test (`tests/body_fuzz_corpus.rs`): no panic, the
//! same output twice (determinism), and outputs bounded by the input and
//! the limits. Each processor runs with default and with tight limits so
//! the limit paths are exercised too.
#![allow(dead_code)]

use seclang::body::{self, json, multipart, urlencoded, xml, BodyLimits, Processor};

/// Limits small enough that short inputs hit every one of them.
pub const TIGHT: BodyLimits = BodyLimits {
    max_args: 3,
    json_depth: 4,
    xml_depth: 4,
    max_files: 1,
    max_file_content: 8,
};

fn all_limits() -> [BodyLimits; 2] {
    [BodyLimits::default(), TIGHT]
}

fn arg_bytes(args: &[(Vec<u8>, Vec<u8>)]) -> usize {
    args.iter().map(|(n, v)| n.len() + v.len()).sum()
}

/// The whole input is a query string / urlencoded body.
pub fn urlencoded(data: &[u8]) {
    for limits in all_limits() {
        for sep in [b'&', b';'] {
            let a = urlencoded::parse(data, sep, limits.max_args);
            assert_eq!(a, urlencoded::parse(data, sep, limits.max_args));
            assert!(a.args.len() <= limits.max_args);
            // Decoding never grows: names and values fit in the input.
            assert!(arg_bytes(&a.args) <= data.len());
            let (d, _) = urlencoded::decode(data);
            assert!(d.len() <= data.len());
        }
        let out = body::process(Processor::Urlencoded, b"", data, &limits);
        assert!(out.error.is_none());
    }
}

/// First line: the Content-Type value; the rest: the body.
pub fn multipart(data: &[u8]) {
    let (ct, body) = match data.iter().position(|&c| c == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    for limits in all_limits() {
        let m = multipart::parse(ct, body, &limits);
        assert_eq!(m, multipart::parse(ct, body, &limits));
        assert!(m.args.len() <= limits.max_args);
        assert!(arg_bytes(&m.args) <= body.len());
        let sizes: u64 = m.info.files.iter().map(|f| f.size).sum();
        assert_eq!(sizes, m.info.files_combined_size);
        assert!(sizes <= body.len() as u64);
        for f in &m.info.files {
            assert!(f.content.len() <= limits.max_file_content);
            assert!(f.content.len() as u64 <= f.size);
            assert_eq!(f.content_truncated, (f.content.len() as u64) < f.size);
        }
        assert!(m.info.no_files_length <= body.len() as u64);
        assert!(m.info.unmatched_boundary_value <= 2);
        if m.error.is_some() {
            assert!(m.info.strict_error(true));
        }
        let out = body::process(Processor::Multipart, ct, body, &limits);
        assert_eq!(out.error.is_some(), m.error.is_some());
    }
}

/// The whole input is a JSON body.
pub fn json(data: &[u8]) {
    for limits in all_limits() {
        let j = json::parse(data, &limits);
        assert_eq!(j, json::parse(data, &limits));
        assert!(j.args.len() <= limits.max_args);
        assert!(
            arg_bytes(&j.args) <= data.len() * json::ARG_BYTES_PER_BODY_BYTE + json::ARG_BYTES_BASE
        );
        for (name, _) in &j.args {
            assert!(name.starts_with(b"json"));
        }
        if j.args_limit_exceeded {
            assert!(j.error.is_some());
        }
    }
}

/// The whole input is an XML body.
pub fn xml(data: &[u8]) {
    for limits in all_limits() {
        let r = xml::parse(data, &limits);
        assert_eq!(r, xml::parse(data, &limits));
        match r {
            Ok(doc) => {
                // Decoding only shrinks: every output fits in the input.
                assert!(doc.root_text.len() <= data.len());
                assert!(doc.texts.iter().map(Vec::len).sum::<usize>() <= data.len());
                assert!(arg_bytes(&doc.attributes) <= data.len());
            }
            Err(e) => {
                assert!(e.offset <= data.len());
                assert_eq!(e.to_string(), "XML: Failed parsing document.");
            }
        }
    }
}
