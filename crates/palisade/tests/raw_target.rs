//! Request-target leniency: bytes `http::Uri` refuses but nginx, Apache and
//! ModSecurity accept as sent (`<`, `>`, backtick in the path; `"`, `<`,
//! `>` in the query; non-UTF-8 bytes) are forwarded percent-encoded, so the
//! WAF can inspect such requests (the CRS suite sends 32 of them) and the
//! upstream gets an equivalent valid target. Control bytes, DEL and
//! whitespace in the target, non-token methods and header names, and
//! control bytes in header values are still answered `400` and never
//! forwarded. Each case sends raw bytes on its own connection.

// Test helpers: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

/// Sends `raw` (one request with `Connection: close`), expects 200 and the
/// upstream to have received exactly the target `forwarded`.
fn assert_forwarded_as(raw: &[u8], forwarded: &str) {
    let up = Upstream::start("app");
    let p = Palisade::start(&ConfigSpec::proxy(&[up.addr]));
    let r = roundtrip(p.addr(), raw);
    assert_eq!(
        r.status,
        200,
        "{:?} answered {} {}\n{}",
        String::from_utf8_lossy(raw),
        r.status,
        r.body_str(),
        p.logs()
    );
    assert!(up.wait_requests(1, IO_TIMEOUT));
    let targets: Vec<String> = up.requests().into_iter().map(|r| r.target).collect();
    assert_eq!(targets, vec![forwarded.to_owned()]);
}

/// Sends `raw`, expects `400` and a close, and proves with a canary that
/// nothing carrying `marker` reached the upstream.
fn assert_rejected(raw: &[u8], marker: &str) {
    let up = Upstream::start("app");
    let p = Palisade::start(&ConfigSpec::proxy(&[up.addr]));
    let mut c = Conn::open(p.addr());
    c.send(raw).unwrap();
    let resp = c.read_response_within(IO_TIMEOUT, false).unwrap();
    assert_eq!(
        resp.status,
        400,
        "{:?} answered {}",
        String::from_utf8_lossy(raw),
        resp.status
    );
    assert!(c.wait_closed(IO_TIMEOUT), "connection left open after 400");
    let canary = http_get(p.addr(), "/canary", "test.local");
    assert_eq!(canary.status, 200, "{}", p.logs());
    let targets: Vec<String> = up.requests().into_iter().map(|r| r.target).collect();
    assert_eq!(targets, vec!["/canary"]);
    assert!(find(&up.raw_bytes(), marker.as_bytes()).is_none());
}

fn get(target: &[u8]) -> Vec<u8> {
    [
        b"GET ".as_slice(),
        target,
        b" HTTP/1.1\r\nHost: test.local\r\nConnection: close\r\n\r\n",
    ]
    .concat()
}

// --- accepted, forwarded percent-encoded ---------------------------------------

#[test]
fn angle_brackets_in_path_forwarded_encoded() {
    assert_forwarded_as(&get(b"/a<script>b"), "/a%3Cscript%3Eb");
}

#[test]
fn backtick_in_path_forwarded_encoded() {
    assert_forwarded_as(&get(b"/cmd`id`"), "/cmd%60id%60");
}

#[test]
fn quotes_and_angle_brackets_in_query_forwarded_encoded() {
    assert_forwarded_as(
        &get(b"/q?x=\"><svg/onload=alert(1)>"),
        "/q?x=%22%3E%3Csvg/onload=alert(1)%3E",
    );
}

#[test]
fn bytes_http_uri_accepts_are_forwarded_unchanged() {
    // `{ } | ^ \ "` in the path and backtick, braces, pipe, caret and
    // backslash in the query are accepted by http::Uri: no rewriting.
    assert_forwarded_as(
        &get(b"/a/{b}|c^d\\e\"f?x=`{|}^\\&y=%3C"),
        "/a/{b}|c^d\\e\"f?x=`{|}^\\&y=%3C",
    );
}

#[test]
fn non_utf8_bytes_in_target_forwarded_encoded() {
    assert_forwarded_as(&get(b"/caf\xe9?q=\xff"), "/caf%E9?q=%FF");
}

#[test]
fn utf8_target_forwarded_unchanged() {
    assert_forwarded_as(&get("/café?q=ü".as_bytes()), "/café?q=ü");
}

#[test]
fn absolute_form_target_path_forwarded_encoded() {
    assert_forwarded_as(&get(b"http://test.local/a<b>"), "/a%3Cb%3E");
}

#[test]
fn pipelined_lenient_targets_answered_in_order() {
    let up = Upstream::start("app");
    let p = Palisade::start(&ConfigSpec::proxy(&[up.addr]));
    let mut c = Conn::open(p.addr());
    c.send(
        b"GET /one<1> HTTP/1.1\r\nHost: test.local\r\n\r\nGET /two?\"2\" HTTP/1.1\r\nHost: test.local\r\n\r\nGET /three HTTP/1.1\r\nHost: test.local\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    for _ in 0..3 {
        assert_eq!(c.read_response().status, 200, "{}", p.logs());
    }
    let targets: Vec<String> = up.requests().into_iter().map(|r| r.target).collect();
    assert_eq!(targets, ["/one%3C1%3E", "/two?%222%22", "/three"]);
}

// --- still refused --------------------------------------------------------------

#[test]
fn control_byte_in_target_rejected() {
    assert_rejected(&get(b"/smuggle\x01x"), "smuggle");
}

#[test]
fn del_byte_in_target_rejected() {
    assert_rejected(&get(b"/smuggle\x7fx"), "smuggle");
}

#[test]
fn tab_in_target_rejected() {
    assert_rejected(&get(b"/smuggle\tx"), "smuggle");
}

#[test]
fn space_in_target_rejected() {
    assert_rejected(&get(b"/smuggle x"), "smuggle");
}

#[test]
fn non_token_method_rejected() {
    assert_rejected(
        b"GE(T /smuggle-method HTTP/1.1\r\nHost: test.local\r\n\r\n",
        "smuggle",
    );
}

#[test]
fn non_token_header_name_rejected() {
    assert_rejected(
        b"GET /smuggle-name HTTP/1.1\r\nHost: test.local\r\nX-(A): 1\r\n\r\n",
        "smuggle",
    );
}

#[test]
fn control_byte_in_header_value_rejected() {
    assert_rejected(
        b"GET /smuggle-value HTTP/1.1\r\nHost: test.local\r\nX-A: 1\x0b2\r\n\r\n",
        "smuggle",
    );
}
