//! URLENCODED body processor / query string parsing (ModSecurity v3 semantics).

use seclang::body::{self, urlencoded, BodyLimits, Processor};

fn pairs(args: &[(Vec<u8>, Vec<u8>)]) -> Vec<(String, String)> {
    args.iter()
        .map(|(n, v)| {
            (
                String::from_utf8_lossy(n).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            )
        })
        .collect()
}

fn p(input: &str) -> Vec<(String, String)> {
    pairs(&urlencoded::parse(input.as_bytes(), b'&', 1000).args)
}

fn kv(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn simple_pairs_in_order() {
    assert_eq!(p("a=1&b=2"), kv(&[("a", "1"), ("b", "2")]));
}

#[test]
fn plus_and_percent_are_decoded_in_names_and_values() {
    assert_eq!(
        p("na%6De=a+b%20c&x%3D=%3D"),
        kv(&[("name", "a b c"), ("x=", "=")])
    );
}

#[test]
fn value_splits_at_first_equals_only() {
    assert_eq!(p("a=b=c"), kv(&[("a", "b=c")]));
}

#[test]
fn missing_equals_gives_empty_value() {
    assert_eq!(p("flag&b=1"), kv(&[("flag", ""), ("b", "1")]));
}

#[test]
fn empty_names_and_values_are_kept() {
    assert_eq!(p("=v&k=&="), kv(&[("", "v"), ("k", ""), ("", "")]));
}

#[test]
fn empty_pairs_become_empty_args_like_modsecurity() {
    // std::getline splitting: a leading or doubled separator yields an
    // empty pair, a trailing one does not.
    assert_eq!(
        p("&a=1&&b=2&"),
        kv(&[("", ""), ("a", "1"), ("", ""), ("b", "2")])
    );
    assert_eq!(p("&"), kv(&[("", "")]));
    assert!(p("").is_empty());
}

#[test]
fn repeated_names_are_all_kept() {
    assert_eq!(
        p("id=1&id=2&id=3"),
        kv(&[("id", "1"), ("id", "2"), ("id", "3")])
    );
}

#[test]
fn semicolon_is_not_a_separator_by_default() {
    assert_eq!(p("a=1;b=2"), kv(&[("a", "1;b=2")]));
}

#[test]
fn custom_separator() {
    let out = urlencoded::parse(b"a=1;b=2", b';', 10);
    assert_eq!(pairs(&out.args), kv(&[("a", "1"), ("b", "2")]));
}

#[test]
fn invalid_escapes_are_kept_and_flagged() {
    let out = urlencoded::parse(b"a=%zz&b=100%&c=%4", b'&', 10);
    assert_eq!(
        pairs(&out.args),
        kv(&[("a", "%zz"), ("b", "100%"), ("c", "%4")])
    );
    assert!(out.invalid_encoding);
    let ok = urlencoded::parse(b"a=%41%2b", b'&', 10);
    assert_eq!(pairs(&ok.args), kv(&[("a", "A+")]));
    assert!(!ok.invalid_encoding);
}

#[test]
fn decoded_bytes_need_not_be_utf8_or_printable() {
    let out = urlencoded::parse(b"x=%00%ff%0d%0a", b'&', 10);
    assert_eq!(out.args[0].1, vec![0u8, 0xff, b'\r', b'\n']);
}

#[test]
fn double_encoding_is_decoded_once() {
    assert_eq!(p("q=%2527"), kv(&[("q", "%27")]));
}

#[test]
fn args_limit_stops_and_reports() {
    let out = urlencoded::parse(b"a=1&b=2&c=3&d=4", b'&', 2);
    assert_eq!(pairs(&out.args), kv(&[("a", "1"), ("b", "2")]));
    assert!(out.limit_exceeded);
    let exact = urlencoded::parse(b"a=1&b=2", b'&', 2);
    assert!(!exact.limit_exceeded);
    let zero = urlencoded::parse(b"a=1", b'&', 0);
    assert!(zero.args.is_empty() && zero.limit_exceeded);
}

#[test]
fn decode_helper() {
    assert_eq!(urlencoded::decode(b"a+%41%"), (b"a A%".to_vec(), true));
}

#[test]
fn process_dispatch_fills_outcome() {
    let limits = BodyLimits {
        max_args: 1,
        ..BodyLimits::default()
    };
    let out = body::process(Processor::Urlencoded, b"", b"a=%g1&b=2", &limits);
    assert_eq!(pairs(&out.args), kv(&[("a", "%g1")]));
    assert!(out.urlencoded_error);
    assert!(out.args_limit_exceeded);
    assert!(out.error.is_none());
    assert!(out.multipart.is_none() && out.xml.is_none());
}

#[test]
fn content_type_selection() {
    assert_eq!(
        body::processor_for_content_type(b"application/x-www-form-urlencoded; charset=UTF-8"),
        Some(Processor::Urlencoded)
    );
    assert_eq!(
        body::processor_for_content_type(b"Multipart/Form-Data; boundary=x"),
        Some(Processor::Multipart)
    );
    assert_eq!(body::processor_for_content_type(b"application/json"), None);
    assert_eq!(body::processor_for_content_type(b"text/xml"), None);
    assert_eq!(Processor::from_name("json"), Some(Processor::Json));
    assert_eq!(Processor::Xml.name(), "XML");
    assert_eq!(Processor::from_name("yaml"), None);
}

#[test]
fn large_input_is_linear_and_bounded() {
    let mut big = Vec::new();
    for i in 0..200_000 {
        big.extend_from_slice(format!("k{i}=v%41&").as_bytes());
    }
    let out = urlencoded::parse(&big, b'&', usize::MAX);
    assert_eq!(out.args.len(), 200_000);
    assert_eq!(out.args[199_999].1, b"vA");
}
