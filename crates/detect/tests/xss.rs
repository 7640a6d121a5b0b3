//! Behaviour of `detect_xss` on known attacks, benign text, libinjection's
//! documented quirks and hostile edge cases.
//!
//! Every expectation here was cross-checked against libinjection's C
//! `libinjection_xss` (the engine behind ModSecurity's `@detectXSS`).

use std::time::{Duration, Instant};

use detect::detect_xss;
use detect::html5::StartState;
use detect::xss::is_xss;

/// Payloads from the OWASP XSS filter-evasion cheat sheet, html5sec.org,
/// PortSwigger's cheat sheet and libinjection's own samples, rewritten.
const ATTACKS: &[&[u8]] = &[
    b"<script>alert(1)</script>",
    b"<SCRIPT SRC=http://xss.rs/xss.js></SCRIPT>",
    b"<ScRiPt>alert(1)</sCrIpT>",
    b"<scr\0ipt>alert(1)</script>",
    b"<img src=x onerror=alert(1)>",
    b"<img src=\"x\" onerror=\"alert(1)\">",
    b"<IMG SRC=\"javascript:alert('XSS');\">",
    b"<IMG SRC=javascript:alert('XSS')>",
    b"<IMG SRC=JaVaScRiPt:alert('XSS')>",
    b"<IMG SRC=`javascript:alert(\"RSnake says, 'XSS'\")`>",
    b"<IMG SRC=&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;&#97;&#108;&#101;&#114;&#116;&#40;&#39;&#88;&#83;&#83;&#39;&#41;>",
    b"<IMG SRC=&#0000106&#0000097&#0000118&#0000097>",
    b"<IMG SRC=&#x6A&#x61&#x76&#x61&#x73&#x63&#x72&#x69&#x70&#x74&#x3A>",
    b"<IMG SRC=\"jav&#x0A;ascript:alert('XSS');\">",
    b"<IMG SRC=\" &#14;  javascript:alert('XSS');\">",
    b"<a href=\"java\0script:alert(1)\">x</a>",
    b"<a href=\"  javascript:alert(1)\">x</a>",
    b"<a href=\"vbscript:msgbox(1)\">x</a>",
    b"<a href=\"data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==\">x</a>",
    b"<a href=\"view-source:http://example.com\">x</a>",
    b"<iframe src=\"http://evil.example/\"></iframe>",
    b"<object data=\"x.swf\"></object>",
    b"<embed src=\"x.swf\">",
    b"<svg onload=alert(1)>",
    b"<svg/onload=alert(1)>",
    b"<SVG><script>alert(1)</script></SVG>",
    b"<body onload=alert(1)>",
    b"<body onpageshow=alert(1)>",
    b"<details open ontoggle=alert(1)>",
    b"<div onmouseover=\"alert(1)\">hover</div>",
    b"<input autofocus onfocus=alert(1)>",
    b"<marquee onstart=alert(1)>",
    b"<video><source onerror=\"alert(1)\">",
    b"<form><button formaction=javascript:alert(1)>X</button></form>",
    b"<form action=\"javascript:alert(1)\"><input type=submit></form>",
    b"<math><a xlink:href=\"javascript:alert(1)\">x</a></math>",
    b"<html xmlns:x=\"urn:x\"><x:script>alert(1)</x:script></html>",
    b"<div style=\"background:url(javascript:alert(1))\">",
    b"<p style=\"x:expression(alert(1))\">",
    b"<link rel=stylesheet href=\"http://evil.example/x.css\">",
    b"<meta http-equiv=\"refresh\" content=\"0;url=javascript:alert(1)\">",
    b"<base href=\"javascript:alert(1)//\">",
    b"<style>@import 'http://evil.example/x.css';</style>",
    b"<!DOCTYPE html><p>x</p>",
    b"<!--[if gte IE 4]><script>alert(1)</script><![endif]-->",
    b"<!-- `><img src=x onerror=alert(1)> -->",
    b"<?xml version=\"1.0\"?>",
    b"<?import namespace=\"t\" implementation=\"#default#time2\">",
    b"<!ENTITY xxe SYSTEM \"file:///etc/passwd\">",
    b"<% `x %>",
    b"\"><script>alert(1)</script>",
    b"'><script>alert(1)</script>",
    b"\" onmouseover=\"alert(1)",
    b"' onfocus='alert(1)' autofocus='",
    b" onerror=alert(1)",
    b"x onload=alert(1)",
    b"` onclick=alert(1) `",
    b"\"><img src=x onerror=alert(1)>",
    b"<animate attributeName=href values=javascript:alert(1) />",
    b"<svg><animate attributename=\"onload\" to=\"alert(1)\"/></svg>",
    b"<xss onafterscriptexecute=alert(1)>",
    b"<a href=\"&#x14a;avascript:alert(1)\">x</a>",
    b"<applet code=\"x.class\">",
    b"<isindex action=javascript:alert(1) type=image>",
    b"<frameset onload=alert(1)>",
    b"<xsl:stylesheet>",
    b"<table background=\"javascript:alert(1)\">",
    b"<img dynsrc=\"javascript:alert(1)\">",
    b"<img lowsrc=\"javascript:alert(1)\">",
    b"<video poster=javascript:alert(1)//></video>",
    b"<div datasrc=\"#x\" datafld=\"y\">",
    b"<a folder=\"javascript:alert(1)\">x</a>",
    b"<noscript><p title=\"</noscript><img src=x onerror=alert(1)>\">",
    b"onerror=alert(1)",
];

/// Ordinary text and markup that must pass.
const BENIGN: &[&[u8]] = &[
    b"",
    b"hello world",
    b"The quick brown fox jumps over the lazy dog.",
    b"<b>bold</b>",
    b"<i>italic</i> and <em>emphasis</em>",
    b"<p class=\"intro\">Hello</p>",
    b"<a href=\"https://example.com/page?x=1&y=2\">link</a>",
    b"<a href=\"/relative/path\">link</a>",
    b"<img src=\"cat.png\" alt=\"a cat\">",
    b"<div id=\"main\" title=\"javascript is fun\">x</div>",
    b"user@example.com",
    b"John Smith <john@example.com>",
    b"a < b",
    b"a < b && c > d",
    b"1 <2",
    b"if (x < 10) { y = x > 3; }",
    b"http://example.com/search?q=javascript",
    b"https://example.com/?redirect=/home",
    b"O'Reilly",
    b"\"quoted text\"",
    b"SELECT * FROM users WHERE id = 1",
    b"{\"key\": \"value\", \"n\": 1}",
    b"100% sure",
    b"<3 you",
    b"<<<>>>",
    b"</>",
    b"<!-- just a comment -->",
    b"<br/>",
    b"<hr />",
    b"<table><tr><td>1</td></tr></table>",
    b"<ul><li>one</li><li>two</li></ul>",
    b"<a href=\"mailto:someone@example.com\">mail</a>",
    b"<input type=\"text\" name=\"q\" value=\"search\">",
    b"<span one=\"1\">x</span>",
    b"<div online=\"yes\">x</div>",
    b"javascript:alert(1)",
    b"alert(document.cookie)",
];

#[test]
fn known_attacks_are_detected() {
    let missed: Vec<_> = ATTACKS
        .iter()
        .filter(|a| !detect_xss(a))
        .map(|a| String::from_utf8_lossy(a))
        .collect();
    assert!(
        missed.is_empty(),
        "missed {} attacks: {missed:#?}",
        missed.len()
    );
}

#[test]
fn benign_inputs_pass() {
    let flagged: Vec<_> = BENIGN
        .iter()
        .filter(|b| detect_xss(b))
        .map(|b| String::from_utf8_lossy(b))
        .collect();
    assert!(flagged.is_empty(), "false positives: {flagged:#?}");
}

/// libinjection flags any URL attribute whose value starts with `data`,
/// `java`, `vbscript` or `view-source`, scheme or not. ModSecurity users see
/// these verdicts, so we keep them.
#[test]
fn url_prefix_false_positives_match_libinjection() {
    assert!(detect_xss(b"<img src=\"data.png\">"));
    assert!(detect_xss(b"<a href=javascriptish.html>x</a>"));
    assert!(detect_xss(b"<a href='Java.html'>x</a>"));
    assert!(!detect_xss(b"<a href='/java.html'>x</a>"));
}

/// libinjection only skips whitespace *before* a scheme; a tab or
/// `&#x09;` inside `javascript` defeats it (CRS's regex rules catch these).
/// We match, so that rule tuning done against ModSecurity carries over.
#[test]
fn embedded_tab_in_scheme_is_missed_like_libinjection() {
    assert!(!detect_xss(b"<IMG SRC=\"jav\tascript:alert('XSS');\">"));
    assert!(!detect_xss(b"<IMG SRC=\"jav&#x09;ascript:alert('XSS');\">"));
    // A newline (raw or encoded) and NUL bytes are ignored, though.
    assert!(detect_xss(b"<IMG SRC=\"jav\nascript:alert('XSS');\">"));
    assert!(detect_xss(b"<IMG SRC=\"jav&#10;ascript:alert('XSS');\">"));
    assert!(detect_xss(b"<IMG SRC=\"jav\0ascript:alert('XSS');\">"));
}

#[test]
fn event_handlers_are_matched_by_prefix() {
    assert!(detect_xss(b"<a onclick=x>"));
    assert!(detect_xss(b"<a ONCLICKED=x>"), "prefix of a known event");
    assert!(detect_xss(b"<a onloadstart=x>"));
    assert!(!detect_xss(b"<a onfoo=x>"), "not an event name");
    assert!(!detect_xss(b"<a one=x>"), "too short to be checked");
    // An event attribute without a value is harmless to libinjection.
    assert!(!detect_xss(b"<a onclick>"));
}

#[test]
fn numeric_references_decode_like_libinjection() {
    // Decimal, hex, with and without `;`, leading zeros.
    assert!(detect_xss(b"<a href=&#106;avascript:x>"));
    assert!(detect_xss(b"<a href=&#x6A;avascript:x>"));
    assert!(detect_xss(b"<a href=&#X6a&#x41;va:x>"));
    assert!(detect_xss(b"<a href=&#0000106avascript:x>"));
    // Only the low byte of a large reference counts: U+014A -> 'J'.
    assert!(detect_xss(b"<a href=&#x14a;avascript:x>"));
    // Out-of-range references stay a literal '&'.
    assert!(!detect_xss(b"<a href=&#x6A0000000;avascript:x>"));
    // Named references are not decoded.
    assert!(!detect_xss(b"<a href=&jopf;avascript:x>"));
}

#[test]
fn attribute_value_contexts() {
    let breakout = b"\" onmouseover=\"alert(1)";
    assert!(is_xss(breakout, StartState::ValueDoubleQuote));
    assert!(!is_xss(breakout, StartState::Data));
    assert!(!is_xss(breakout, StartState::ValueSingleQuote));

    let single = b"' onfocus='alert(1)";
    assert!(is_xss(single, StartState::ValueSingleQuote));
    assert!(!is_xss(single, StartState::ValueDoubleQuote));

    let back = b"` onclick=alert(1)";
    assert!(is_xss(back, StartState::ValueBackQuote));
    assert!(!is_xss(back, StartState::ValueDoubleQuote));

    let unquoted = b"x onload=alert(1)";
    assert!(is_xss(unquoted, StartState::ValueNoQuote));
    assert!(!is_xss(unquoted, StartState::Data));

    for input in [&breakout[..], single, back, unquoted] {
        assert!(detect_xss(input), "{}", String::from_utf8_lossy(input));
    }
}

#[test]
fn closing_tags_and_short_names_are_not_attacks() {
    assert!(!detect_xss(b"</script>"));
    assert!(!detect_xss(b"</iframe>"));
    // ...but with a space the tokenizer reports the name as an opening
    // tag, so libinjection flags it.
    assert!(detect_xss(b"</iframe >"));
    // svg / xsl match as prefixes of the tag name.
    assert!(detect_xss(b"<svgfoo>"));
    assert!(detect_xss(b"<xslt>"));
    assert!(!detect_xss(b"<sv>"));
}

#[test]
fn comments() {
    assert!(!detect_xss(b"<!-- harmless -->"));
    assert!(detect_xss(b"<!--[if IE]>x<![endif]-->"));
    assert!(detect_xss(b"<!-- ` -->"));
    assert!(detect_xss(b"<?xml-stylesheet href=x?>"));
    assert!(detect_xss(b"<!ENTITY x 'y'>"));
    assert!(detect_xss(b"<?import x>"));
    assert!(!detect_xss(b"<?php echo 1 ?>"));
}

#[test]
fn empty_and_degenerate_inputs() {
    assert!(!detect_xss(b""));
    assert!(!detect_xss(b"<"));
    assert!(!detect_xss(b">"));
    assert!(!detect_xss(b"<<<<"));
    assert!(!detect_xss(b"\0"));
    assert!(!detect_xss(&[0u8; 4096]));
    assert!(!detect_xss(b"\xff\xfe\xfd invalid utf-8 \xc3\x28"));
    // Invalid UTF-8 does not hide a tag.
    assert!(detect_xss(b"\xff\xfe<script>"));
    // NULs inside a tag name are ignored (old IE).
    assert!(detect_xss(b"<s\0c\0r\0i\0p\0t>"));
}

#[test]
fn every_byte_value_is_handled() {
    for b in 0..=255u8 {
        for input in [vec![b], vec![b'<', b], vec![b'<', b'a', b' ', b, b'=', b]] {
            // Must not panic, and must be deterministic.
            assert_eq!(detect_xss(&input), detect_xss(&input));
        }
    }
}

/// 1 MiB inputs built to make a naive scanner quadratic must finish fast:
/// the detector is linear, so even a debug build stays far below the bound.
#[test]
fn megabyte_inputs_run_in_linear_time() {
    const SIZE: usize = 1 << 20;
    let fill = |prefix: &[u8], unit: &[u8]| {
        let mut v = prefix.to_vec();
        while v.len() < SIZE {
            v.extend_from_slice(unit);
        }
        v
    };
    let inputs = [
        fill(b"", b"a"),
        fill(b"", b"<a "),
        fill(b"", b"<"),
        fill(b"<a", b"\0"),
        fill(b"<a ", b"\0"),
        fill(b"<!--", b"-\0"),
        fill(b"<!--", b"-"),
        fill(b"<%", b"%"),
        fill(b"<![CDATA[", b"]"),
        fill(b"<a href=", b"&#"),
        fill(b"<a href=", b"&#x0"),
        fill(b"<a href=", b"\0"),
        fill(b"<a ", b"a="),
        fill(b"<a ", b"on"),
        fill(b"<a ", b"/"),
        fill(b"<a b=\"", b"x"),
        fill(b"", b"\" a=\""),
    ];
    let start = Instant::now();
    for input in &inputs {
        let one = Instant::now();
        let _ = detect_xss(input);
        assert!(
            one.elapsed() < Duration::from_secs(10),
            "{:?}... took {:?}",
            String::from_utf8_lossy(&input[..16]),
            one.elapsed()
        );
    }
    eprintln!("{} x 1 MiB in {:?}", inputs.len(), start.elapsed());
}

#[test]
fn megabyte_attack_is_found_at_the_end() {
    let mut input = vec![b'a'; 1 << 20];
    input.extend_from_slice(b"<script>");
    assert!(detect_xss(&input));
}
