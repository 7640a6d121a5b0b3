//! Request smuggling: every message whose framing two HTTP implementations
//! could read differently must be answered `400` and never forwarded.
//!
//! Each test sends the ambiguous request as raw bytes on its own connection,
//! then a well-formed canary request on a second connection. The recording
//! upstream must have received exactly the canary and not one byte of the
//! ambiguous request (its path, or the request smuggled inside its body), and
//! palisade must close the ambiguous connection after the `400` so the bytes
//! after the ambiguity are never parsed as a second request.

// Test helpers: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

/// Sends `raw`, expects `400` + close, then proves via the canary that
/// nothing containing `marker` reached the upstream.
fn assert_rejected_not_forwarded(raw: &[u8], marker: &str) {
    let up = Upstream::start("app");
    let p = Palisade::start(&ConfigSpec::proxy(&[up.addr]));

    let mut c = Conn::open(p.addr());
    c.send(raw).expect("send ambiguous request");
    let resp = match c.read_response_within(IO_TIMEOUT, false) {
        Ok(r) => r,
        Err(e) => panic!(
            "no response to ambiguous request {:?}: {e:?}\n{}",
            String::from_utf8_lossy(raw),
            p.logs()
        ),
    };
    assert_eq!(
        resp.status,
        400,
        "ambiguous request {:?} answered {} {}",
        String::from_utf8_lossy(raw),
        resp.status,
        resp.body_str()
    );
    assert!(
        c.wait_closed(IO_TIMEOUT),
        "connection left open after rejecting {:?}",
        String::from_utf8_lossy(raw)
    );
    let after = c.take_buffered();
    assert!(
        find(&after, b"HTTP/1.").is_none(),
        "a second response followed the 400: {:?}",
        String::from_utf8_lossy(&after)
    );

    // The canary proves the proxy forwards at all, and that palisade finished
    // with the ambiguous request before it.
    let canary = http_get(p.addr(), "/canary", "test.local");
    assert_eq!(canary.status, 200, "canary failed: {}", p.logs());
    assert!(up.wait_requests(1, IO_TIMEOUT));
    let reqs = up.requests();
    let targets: Vec<&str> = reqs.iter().map(|r| r.target.as_str()).collect();
    assert_eq!(targets, vec!["/canary"], "upstream received {targets:?}");
    let raw_up = up.raw_bytes();
    assert!(
        find(&raw_up, marker.as_bytes()).is_none(),
        "bytes of the rejected request reached the upstream:\n{}",
        String::from_utf8_lossy(&raw_up)
    );
}

// --- RFC 9112 §6.1 / §6.3 ¶3: Content-Length together with Transfer-Encoding

#[test]
fn cl_te_content_length_and_chunked_together_rejected() {
    // A front end honouring Content-Length and a back end honouring chunked
    // (or the reverse) disagree on where this request ends.
    let body = "0\r\n\r\nGET /smuggled-clte HTTP/1.1\r\nHost: test.local\r\n\r\n";
    let raw = format!(
        "POST /smuggle-clte HTTP/1.1\r\nHost: test.local\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n{body}",
        body.len()
    );
    assert_rejected_not_forwarded(raw.as_bytes(), "smuggle");
}

#[test]
fn te_cl_chunked_then_content_length_rejected() {
    let body = "5\r\nhello\r\n0\r\n\r\n";
    let raw = format!(
        "POST /smuggle-tecl HTTP/1.1\r\nHost: test.local\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n{body}"
    );
    assert_rejected_not_forwarded(raw.as_bytes(), "smuggle");
}

// --- RFC 9112 §6.3 ¶5: differing Content-Length values

#[test]
fn two_different_content_length_headers_rejected() {
    let raw = "POST /smuggle-2cl HTTP/1.1\r\nHost: test.local\r\nContent-Length: 5\r\nContent-Length: 45\r\n\r\nhelloGET /smuggled-2cl HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_rejected_not_forwarded(raw.as_bytes(), "smuggle");
}

#[test]
fn content_length_list_with_different_values_rejected() {
    let raw = "POST /smuggle-cllist HTTP/1.1\r\nHost: test.local\r\nContent-Length: 5, 45\r\n\r\nhelloGET /smuggled-cl HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_rejected_not_forwarded(raw.as_bytes(), "smuggle");
}

#[test]
fn content_length_not_a_decimal_number_rejected() {
    // "+5" and hex are parsed by some implementations and not by others.
    let raw =
        "POST /smuggle-clplus HTTP/1.1\r\nHost: test.local\r\nContent-Length: +5\r\n\r\nhello";
    assert_rejected_not_forwarded(raw.as_bytes(), "smuggle");
}

// --- RFC 9112 §5.2: obs-fold (line folding) in a request

#[test]
fn obs_fold_header_continuation_rejected() {
    let raw =
        "GET /smuggle-fold HTTP/1.1\r\nHost: test.local\r\nX-Folded: first\r\n second\r\n\r\n";
    assert_rejected_not_forwarded(raw.as_bytes(), "smuggle");
}

#[test]
fn obs_fold_hiding_transfer_encoding_rejected() {
    // A folded Transfer-Encoding that one parser unfolds into "chunked" and
    // another ignores, so only one of them reads the body as chunked.
    let raw = "POST /smuggle-foldte HTTP/1.1\r\nHost: test.local\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n";
    assert_rejected_not_forwarded(raw.as_bytes(), "smuggle");
}

// --- RFC 9112 §7.1: chunk-size = 1*HEXDIG

#[test]
fn chunk_size_not_hex_rejected() {
    let raw = "POST /smuggle-zz HTTP/1.1\r\nHost: test.local\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n";
    assert_rejected_not_forwarded(raw.as_bytes(), "smuggle");
}

#[test]
fn chunk_size_overflowing_64_bits_rejected() {
    // 18 hex digits: wraps to a small number in a parser that ignores overflow.
    let raw = "POST /smuggle-overflow HTTP/1.1\r\nHost: test.local\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nhello\r\n0\r\n\r\n";
    assert_rejected_not_forwarded(raw.as_bytes(), "smuggle");
}

#[test]
fn chunk_size_negative_rejected() {
    let raw = "POST /smuggle-neg HTTP/1.1\r\nHost: test.local\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n";
    assert_rejected_not_forwarded(raw.as_bytes(), "smuggle");
}

#[test]
fn chunk_extension_with_bare_lf_rejected() {
    // "Funky chunks": a parser that ends the chunk-size line at LF and one
    // that ends it at CRLF disagree on where the chunk data starts.
    let raw = "POST /smuggle-extlf HTTP/1.1\r\nHost: test.local\r\nTransfer-Encoding: chunked\r\n\r\n5;ext\nxx\r\nhello\r\n0\r\n\r\n";
    assert_rejected_not_forwarded(raw.as_bytes(), "smuggle");
}

#[test]
fn chunk_data_longer_than_chunk_size_rejected() {
    // The chunk's data must be followed by CRLF exactly at its declared size.
    let raw = "POST /smuggle-chunklen HTTP/1.1\r\nHost: test.local\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n";
    assert_rejected_not_forwarded(raw.as_bytes(), "smuggle");
}

#[test]
fn chunk_extensions_are_not_forwarded_verbatim() {
    // Extensions carry nothing palisade understands; the body is re-framed
    // for the upstream, so whatever is in them cannot confuse the upstream.
    let up = Upstream::start("app");
    let p = Palisade::start(&ConfigSpec::proxy(&[up.addr]));
    let r = roundtrip(
        p.addr(),
        b"POST /ext HTTP/1.1\r\nHost: test.local\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5;name=value\r\nhello\r\n0\r\n\r\n",
    );
    assert_eq!(r.status, 200, "{}", p.logs());
    assert_eq!(up.requests_to("/ext")[0].body, b"hello");
    assert!(find(&up.raw_bytes(), b"name=value").is_none());
}

// --- RFC 9112 §6.3 ¶4: chunked must be the final transfer coding

#[test]
fn transfer_encoding_not_ending_in_chunked_rejected() {
    let raw = "POST /smuggle-tegzip HTTP/1.1\r\nHost: test.local\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n";
    assert_rejected_not_forwarded(raw.as_bytes(), "smuggle");
}

#[test]
fn transfer_encoding_unknown_coding_rejected() {
    let raw = "POST /smuggle-xchunked HTTP/1.1\r\nHost: test.local\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n";
    assert_rejected_not_forwarded(raw.as_bytes(), "smuggle");
}

// --- RFC 9112 §2.2: bare LF line endings

#[test]
fn bare_lf_line_endings_rejected() {
    let raw = "GET /smuggle-lf HTTP/1.1\nHost: test.local\n\n";
    assert_rejected_not_forwarded(raw.as_bytes(), "smuggle");
}

#[test]
fn bare_lf_inside_crlf_header_block_rejected() {
    // Only one header line ends in a bare LF: a parser that splits on CRLF
    // sees one header "X-A: 1\nTransfer-Encoding: chunked", one that splits
    // on LF sees Transfer-Encoding.
    let raw = "POST /smuggle-mixlf HTTP/1.1\r\nHost: test.local\r\nX-A: 1\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    assert_rejected_not_forwarded(raw.as_bytes(), "smuggle");
}

// --- RFC 9112 §5.1: no whitespace between field name and colon

#[test]
fn space_before_colon_rejected() {
    let raw = "POST /smuggle-space HTTP/1.1\r\nHost: test.local\r\nContent-Length : 5\r\n\r\nhello";
    assert_rejected_not_forwarded(raw.as_bytes(), "smuggle");
}

#[test]
fn space_before_colon_on_transfer_encoding_rejected() {
    let raw = "POST /smuggle-tespace HTTP/1.1\r\nHost: test.local\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n";
    assert_rejected_not_forwarded(raw.as_bytes(), "smuggle");
}

// --- sanity: the same harness passes a well-formed chunked request through

#[test]
fn well_formed_chunked_request_is_forwarded_intact() {
    // Without this, every test above could pass against a proxy that rejects
    // all request bodies.
    let up = Upstream::start("app");
    let p = Palisade::start(&ConfigSpec::proxy(&[up.addr]));
    let r = roundtrip(
        p.addr(),
        b"POST /ok-chunked HTTP/1.1\r\nHost: test.local\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    );
    assert_eq!(r.status, 200, "{}", p.logs());
    assert!(up.wait_requests(1, IO_TIMEOUT));
    let reqs = up.requests_to("/ok-chunked");
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].body, b"hello world");
}

// --- RFC 9112 §3.2: exactly one valid Host in HTTP/1.1 ---------------------------

#[test]
fn missing_host_in_http11_rejected() {
    let raw = "GET /smuggle-nohost HTTP/1.1\r\nX-A: 1\r\n\r\n";
    assert_rejected_not_forwarded(raw.as_bytes(), "smuggle");
}

#[test]
fn two_host_headers_rejected() {
    // Routing by one Host while the upstream reads the other is a bypass.
    let raw = "GET /smuggle-2host HTTP/1.1\r\nHost: test.local\r\nHost: admin.internal\r\n\r\n";
    assert_rejected_not_forwarded(raw.as_bytes(), "smuggle");
}

#[test]
fn invalid_host_value_rejected() {
    let raw = "GET /smuggle-badhost HTTP/1.1\r\nHost: bad host/x\r\n\r\n";
    assert_rejected_not_forwarded(raw.as_bytes(), "smuggle");
}

// --- pipelining: the ambiguous request behind a valid one ---------------------------

#[test]
fn ambiguous_request_pipelined_behind_valid_one_rejected() {
    let up = Upstream::start("app");
    let p = Palisade::start(&ConfigSpec::proxy(&[up.addr]));
    let mut c = Conn::open(p.addr());
    let body = "0\r\n\r\nGET /smuggled-pipe HTTP/1.1\r\nHost: test.local\r\n\r\n";
    let raw = format!(
        "GET /first HTTP/1.1\r\nHost: test.local\r\n\r\nPOST /smuggle-pipe HTTP/1.1\r\nHost: test.local\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n{body}",
        body.len()
    );
    c.send(raw.as_bytes()).unwrap();
    let first = c.read_response();
    assert_eq!(first.status, 200, "{}", p.logs());
    let second = c.read_response();
    assert_eq!(second.status, 400);
    assert!(
        c.wait_closed(IO_TIMEOUT),
        "connection left open after the 400"
    );
    let targets: Vec<String> = up.requests().into_iter().map(|r| r.target).collect();
    assert_eq!(targets, vec!["/first"]);
    assert!(find(&up.raw_bytes(), b"smuggle").is_none());
}

// --- response side: a malformed upstream response is not passed on ------------------

fn proxy_raw_response(raw: &[u8]) -> (Upstream, Palisade) {
    let mut o = UpstreamOpts::named("raw");
    o.raw_response = Some(raw.to_vec());
    let up = Upstream::start_opts(o, 0);
    let p = Palisade::start(&ConfigSpec::proxy(&[up.addr]));
    (up, p)
}

#[test]
fn upstream_response_with_conflicting_content_length_gives_502() {
    let (_up, p) = proxy_raw_response(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 30\r\n\r\nhelloHTTP/1.1 200 OK\r\nX-Split: yes\r\n\r\n",
    );
    let r = http_get(p.addr(), "/", "test.local");
    assert_eq!(r.status, 502, "{:?}", r);
    assert_eq!(r.header("x-split"), None);
}

#[test]
fn upstream_response_with_cl_and_te_is_framed_once() {
    // RFC 9112 §6.3: Transfer-Encoding wins and Content-Length must be
    // removed before forwarding (or the response refused).
    let (_up, p) = proxy_raw_response(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    );
    let r = http_get(p.addr(), "/", "test.local");
    if r.status == 200 {
        assert!(
            !(r.header("content-length").is_some() && r.header("transfer-encoding").is_some()),
            "both framings forwarded: {r:?}"
        );
        assert_eq!(r.body, b"hello");
    } else {
        assert_eq!(r.status, 502);
    }
}

#[test]
fn upstream_garbage_response_gives_502() {
    let (_up, p) = proxy_raw_response(b"THIS IS NOT HTTP\r\n\r\n");
    let r = http_get(p.addr(), "/", "test.local");
    assert_eq!(r.status, 502);
    assert!(!r.body_str().contains("THIS IS NOT HTTP"));
}
