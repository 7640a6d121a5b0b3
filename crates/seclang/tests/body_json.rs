//! JSON body processor: Coraza-style names, depth/args limits, yajl-style
//! errors, hostile input.

use seclang::body::{self, json, BodyLimits, Processor};

fn parse_with(body: &[u8], limits: &BodyLimits) -> json::Json {
    json::parse(body, limits)
}

fn parse(body: &str) -> json::Json {
    parse_with(body.as_bytes(), &BodyLimits::default())
}

fn args(j: &json::Json) -> Vec<(String, String)> {
    j.args
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

fn ok(body: &str) -> Vec<(String, String)> {
    let j = parse(body);
    assert_eq!(j.error, None, "{body}");
    args(&j)
}

#[test]
fn nested_objects_and_arrays_are_named_like_coraza() {
    let got = ok(
        r#"{"a": 1, "b": "two", "c": [1, 2, 3], "d": {"a": {"b": 1}},
                     "e": [{"a": 1}], "f": [[[{"z": "abc"}]]]}"#,
    );
    assert_eq!(
        got,
        kv(&[
            ("json.a", "1"),
            ("json.b", "two"),
            ("json.c.0", "1"),
            ("json.c.1", "2"),
            ("json.c.2", "3"),
            ("json.c", "3"),
            ("json.d.a.b", "1"),
            ("json.e.0.a", "1"),
            ("json.e", "1"),
            ("json.f.0.0.0.z", "abc"),
            ("json.f.0.0", "1"),
            ("json.f.0", "1"),
            ("json.f", "1"),
        ])
    );
}

#[test]
fn top_level_array() {
    assert_eq!(
        ok(r#"[1, {"a": "x"}, [true]]"#),
        kv(&[
            ("json.0", "1"),
            ("json.1.a", "x"),
            ("json.2.0", "true"),
            ("json.2", "1"),
            ("json", "3"),
        ])
    );
}

#[test]
fn top_level_scalar_is_a_one_element_array() {
    assert_eq!(ok(r#""hello""#), kv(&[("json.0", "hello"), ("json", "1")]));
    assert_eq!(ok(" 42 "), kv(&[("json.0", "42"), ("json", "1")]));
}

#[test]
fn null_bool_and_numbers() {
    assert_eq!(
        ok(
            r#"{"n": null, "t": true, "f": false, "i": -0, "x": 1.5e-3, "big": 123456789012345678901234567890}"#
        ),
        kv(&[
            ("json.n", ""),
            ("json.t", "true"),
            ("json.f", "false"),
            ("json.i", "-0"),
            ("json.x", "1.5e-3"),
            ("json.big", "123456789012345678901234567890"),
        ])
    );
}

#[test]
fn huge_numbers_are_kept_as_written() {
    let digits = "9".repeat(10_000);
    let got = ok(&format!("[{digits}, 1e999999999, -1E+400]"));
    assert_eq!(got[0].1, digits);
    assert_eq!(got[1].1, "1e999999999");
    assert_eq!(got[2].1, "-1E+400");
}

#[test]
fn empty_containers_produce_nothing() {
    assert!(ok("{}").is_empty());
    assert!(ok("[]").is_empty());
    assert_eq!(
        ok(r#"{"a": {}, "b": [], "c": [[]], "d": 1}"#),
        kv(&[("json.c", "1"), ("json.d", "1")])
    );
}

#[test]
fn empty_body_is_not_an_error() {
    let j = parse("");
    assert_eq!(j.error, None);
    assert!(j.args.is_empty());
}

#[test]
fn duplicate_keys_are_all_kept() {
    assert_eq!(
        ok(r#"{"a": "safe", "a": "' OR 1=1"}"#),
        kv(&[("json.a", "safe"), ("json.a", "' OR 1=1")])
    );
}

#[test]
fn keys_with_dots_and_escapes() {
    assert_eq!(
        ok(r#"{"a.b": 1, "q\"k": 2, "": 3}"#),
        kv(&[("json.a.b", "1"), ("json.q\"k", "2"), ("json.", "3")])
    );
}

#[test]
fn string_escapes_and_unicode() {
    let got = ok(
        r#"["\"\\\/\b\f\n\r\t", "\u0041\u00e9\u20ac", "\ud83d\ude00", "\ud800x", "\udc00", "é€😀"]"#,
    );
    assert_eq!(got[0].1, "\"\\/\u{8}\u{c}\n\r\t");
    assert_eq!(got[1].1, "Aé€");
    assert_eq!(got[2].1, "😀");
    assert_eq!(got[3].1, "\u{FFFD}x");
    assert_eq!(got[4].1, "\u{FFFD}");
    assert_eq!(got[5].1, "é€😀");
}

#[test]
fn escaped_nul_is_a_value_byte() {
    let j = parse(r#"{"a": "x\u0000y"}"#);
    assert_eq!(j.args[0].1, b"x\0y");
}

#[test]
fn whitespace_everywhere() {
    assert_eq!(
        ok(" \t\r\n{ \"a\" \n: \t[ 1 , 2 ] \r\n} \n"),
        kv(&[("json.a.0", "1"), ("json.a.1", "2"), ("json.a", "2")])
    );
}

fn err(body: &str) -> String {
    parse(body).error.unwrap_or_default()
}

#[test]
fn invalid_json_errors_like_yajl() {
    assert_eq!(err("{"), "parse error: premature EOF");
    assert_eq!(err(r#"{"a":1"#), "parse error: premature EOF");
    assert_eq!(err(r#"{"a"#), "parse error: premature EOF");
    assert_eq!(err("   "), "parse error: premature EOF");
    assert_eq!(err(r#"{"a":1}}"#), "parse error: trailing garbage");
    assert_eq!(err("[1] [2]"), "parse error: trailing garbage");
    assert_eq!(
        err(r#"{"a" 1}"#),
        "parse error: object key and value must be separated by a colon (':')"
    );
    assert_eq!(
        err(r#"{"a":1 "b":2}"#),
        "parse error: after key and value, inside map, I expect ',' or '}'"
    );
    assert_eq!(
        err("[1 2]"),
        "parse error: after array element, I expect ',' or ']'"
    );
    assert_eq!(
        err("{1:2}"),
        "parse error: invalid object key (must be a string)"
    );
    assert_eq!(
        err(r#"{"a":1,}"#),
        "parse error: invalid object key (must be a string)"
    );
    assert_eq!(err("{a:1}"), "lexical error: invalid char in json text.");
    assert_eq!(err("[1,]"), "lexical error: invalid char in json text.");
    assert_eq!(err("['x']"), "lexical error: invalid char in json text.");
    assert_eq!(err("[tru]"), "lexical error: invalid string in json text.");
    assert_eq!(
        err("[-]"),
        "lexical error: malformed number, a digit is required after the minus sign."
    );
    assert_eq!(
        err("[1.]"),
        "lexical error: malformed number, a digit is required after the decimal point."
    );
    assert_eq!(
        err("[1e]"),
        "lexical error: malformed number, a digit is required after the exponent."
    );
    assert_eq!(
        err("[01]"),
        "parse error: after array element, I expect ',' or ']'"
    );
    assert_eq!(
        err("[\"a\nb\"]"),
        "lexical error: invalid character inside string."
    );
    assert_eq!(
        err(r#"["\x"]"#),
        "lexical error: inside a string, '\\' occurs before a character which it may not."
    );
    assert_eq!(
        err(r#"["\u12G4"]"#),
        "lexical error: invalid (non-hex) character occurs after '\\u' inside string."
    );
    assert_eq!(err("[\"abc"), "parse error: premature EOF");
}

#[test]
fn invalid_utf8_in_strings_is_an_error() {
    let j = parse_with(b"[\"\xff\xfe\"]", &BodyLimits::default());
    assert_eq!(
        j.error.as_deref(),
        Some("lexical error: invalid bytes in UTF8 string.")
    );
}

#[test]
fn args_before_an_error_are_kept() {
    let j = parse(r#"{"a": "1' OR 1=1", "b": [1, 2"#);
    assert_eq!(j.error.as_deref(), Some("parse error: premature EOF"));
    assert_eq!(
        args(&j),
        kv(&[
            ("json.a", "1' OR 1=1"),
            ("json.b.0", "1"),
            ("json.b.1", "2")
        ])
    );
}

#[test]
fn depth_limit() {
    let limits = BodyLimits {
        json_depth: 3,
        ..BodyLimits::default()
    };
    let ok3 = parse_with(br#"{"a":{"b":[1]}}"#, &limits);
    assert_eq!(ok3.error, None);
    let bad = parse_with(br#"{"a":{"b":[{"c":1}]}}"#, &limits);
    assert_eq!(
        bad.error.as_deref(),
        Some("parse error: client cancelled parse via callback return value. Parsing depth limit exceeded")
    );
    assert!(bad.args.is_empty());
}

#[test]
fn default_depth_limit_is_modsecuritys() {
    assert_eq!(BodyLimits::default().json_depth, 10_000);
    let deep = |n: usize| format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n));
    let j = parse(&deep(10_000));
    assert_eq!(j.error, None);
    assert_eq!(j.args.len(), 1);
    assert_eq!(j.args[0].0.len(), "json".len() + 2 * 10_000);
    assert!(parse(&deep(10_001))
        .error
        .is_some_and(|e| e.ends_with("Parsing depth limit exceeded")));
}

#[test]
fn deep_arrays_hit_the_argument_bytes_bound_not_quadratic_memory() {
    // Every closing array emits its count named by its own path: depth d
    // costs ~d² bytes of names, so 10k levels (20 KB of input) would make
    // 100 MB. The argument-bytes bound stops it.
    let n = 10_000;
    let body = format!("{}1{}", "[".repeat(n), "]".repeat(n));
    let j = parse(&body);
    assert!(j
        .error
        .is_some_and(|e| e.ends_with("Argument bytes limit exceeded")));
}

#[test]
fn megabyte_of_open_brackets_does_not_overflow_the_stack() {
    let limits = BodyLimits {
        json_depth: usize::MAX,
        ..BodyLimits::default()
    };
    let body = vec![b'['; 1 << 20];
    let j = parse_with(&body, &limits);
    assert_eq!(j.error.as_deref(), Some("parse error: premature EOF"));
    let body = "{\"a\":".repeat(200_000);
    let j = parse_with(body.as_bytes(), &limits);
    assert_eq!(j.error.as_deref(), Some("parse error: premature EOF"));
}

#[test]
fn args_limit_stops_parsing_with_an_error() {
    let limits = BodyLimits {
        max_args: 2,
        ..BodyLimits::default()
    };
    let j = parse_with(br#"{"a":1,"b":2,"c":3}"#, &limits);
    assert!(j.args_limit_exceeded);
    assert_eq!(j.args.len(), 2);
    assert_eq!(
        j.error.as_deref(),
        Some("parse error: client cancelled parse via callback return value. Arguments limit exceeded")
    );
    // The array-length argument counts too.
    let j = parse_with(b"[1,2]", &limits);
    assert!(j.args_limit_exceeded);
}

#[test]
fn deep_paths_cannot_amplify_memory_without_bound() {
    // Each value is named by a 2×depth-byte path: 1 MB of input would make
    // gigabytes of names without the argument-bytes bound.
    let limits = BodyLimits {
        max_args: usize::MAX,
        ..BodyLimits::default()
    };
    let depth = 5_000;
    let mut body = "[".repeat(depth);
    body += &"1,".repeat(300_000);
    body += "1";
    body += &"]".repeat(depth);
    let j = parse_with(body.as_bytes(), &limits);
    assert_eq!(
        j.error.as_deref(),
        Some("parse error: client cancelled parse via callback return value. Argument bytes limit exceeded")
    );
    let produced: usize = j.args.iter().map(|(n, v)| n.len() + v.len()).sum();
    assert!(produced <= body.len() * json::ARG_BYTES_PER_BODY_BYTE + json::ARG_BYTES_BASE);
}

#[test]
fn process_dispatch_prefixes_the_error() {
    let out = body::process(
        Processor::Json,
        b"application/json",
        b"{\"a\":",
        &BodyLimits::default(),
    );
    let e = out.error.expect("error");
    assert_eq!(e.processor, Processor::Json);
    assert_eq!(e.message, "JSON parsing error: parse error: premature EOF");
    let out = body::process(
        Processor::Json,
        b"",
        br#"{"q":"x"}"#,
        &BodyLimits::default(),
    );
    assert_eq!(out.args, vec![(b"json.q".to_vec(), b"x".to_vec())]);
    assert!(out.error.is_none());
}

#[test]
fn arbitrary_bytes_never_panic() {
    let alphabet = br#"{}[]:,"\u0123456789abcdefnulltruefalse -+.eE"#;
    let mut s = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..5000 {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        let len = (s % 64) as usize;
        let mut t = s;
        let body: Vec<u8> = (0..len)
            .map(|_| {
                t = t.wrapping_mul(6364136223846793005).wrapping_add(1);
                alphabet[(t >> 33) as usize % alphabet.len()]
            })
            .collect();
        let a = parse_with(&body, &BodyLimits::default());
        assert_eq!(a, parse_with(&body, &BodyLimits::default()));
    }
}

/// ModSecurity regression "request-body-parser-json" (depth 5 vs 4) and
/// "secargumentslimit" (5 JSON args fit in a capacity of 5, not of 4).
#[test]
fn modsecurity_regression_limits() {
    let body = "{\n   \"key1\":\n{\n   \"key2\":\n{\n   \"key3\":\n{\n   \"key4\":\n{\n   \"key5\":\"thevalue\"\n}}}}}";
    let at = |depth| {
        parse_with(
            body.as_bytes(),
            &BodyLimits {
                json_depth: depth,
                ..BodyLimits::default()
            },
        )
    };
    let ok5 = at(5);
    assert_eq!(ok5.error, None);
    assert_eq!(
        args(&ok5),
        kv(&[("json.key1.key2.key3.key4.key5", "thevalue")])
    );
    assert!(at(4).error.is_some());

    let five = br#"{"k1":"v1","k2":"v2","k3":"v3","k4":"v4","k5":"v5"}"#;
    let cap = |n| {
        parse_with(
            five,
            &BodyLimits {
                max_args: n,
                ..BodyLimits::default()
            },
        )
    };
    assert_eq!(cap(5).error, None);
    assert!(cap(4).error.is_some() && cap(4).args_limit_exceeded);
    assert!(parse("a").error.is_some());
}
