//! Proxy correctness: what palisade changes on the way through (hop-by-hop
//! headers, X-Forwarded-*, X-Request-Id) and what it must pass unchanged
//! (WebSocket upgrades, streamed bodies, keep-alive).

// Test helpers: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::time::{Duration, Instant};

fn proxy_to(opts: UpstreamOpts) -> (Upstream, Palisade) {
    let up = Upstream::start_opts(opts, 0);
    let p = Palisade::start(&ConfigSpec::proxy(&[up.addr]));
    (up, p)
}

// --- RFC 9110 §7.6.1: hop-by-hop fields --------------------------------------

#[test]
fn hop_by_hop_request_headers_removed_including_connection_named_ones() {
    let (up, p) = proxy_to(UpstreamOpts::named("app"));
    let r = roundtrip(
        p.addr(),
        b"GET /hop HTTP/1.1\r\nHost: test.local\r\nConnection: close, X-Secret-Hop\r\nX-Secret-Hop: must-not-pass\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\nX-End-To-End: keep-me\r\n\r\n",
    );
    assert_eq!(r.status, 200, "{}", p.logs());
    let got = &up.requests_to("/hop")[0];
    assert_eq!(
        got.header("x-secret-hop"),
        None,
        "Connection-named header forwarded"
    );
    assert_eq!(got.header("keep-alive"), None);
    assert_eq!(got.header("proxy-connection"), None);
    assert_eq!(got.header("te"), None);
    for v in got.headers_named("connection") {
        assert!(
            !v.to_ascii_lowercase().contains("x-secret-hop"),
            "client Connection header forwarded: {v}"
        );
    }
    assert_eq!(got.header("x-end-to-end"), Some("keep-me"));
}

#[test]
fn hop_by_hop_response_headers_removed() {
    let mut o = UpstreamOpts::named("app");
    o.extra_headers = vec![
        ("Connection".into(), "X-Upstream-Hop".into()),
        ("X-Upstream-Hop".into(), "must-not-pass".into()),
        ("Keep-Alive".into(), "timeout=99".into()),
        ("X-Upstream-E2E".into(), "keep-me".into()),
    ];
    let (_up, p) = proxy_to(o);
    let r = http_get(p.addr(), "/", "test.local");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("x-upstream-hop"),
        None,
        "Connection-named header passed back"
    );
    assert_ne!(r.header("keep-alive"), Some("timeout=99"));
    assert_eq!(r.header("x-upstream-e2e"), Some("keep-me"));
}

// --- X-Forwarded-* ------------------------------------------------------------

#[test]
fn x_forwarded_for_proto_host_set() {
    let (up, p) = proxy_to(UpstreamOpts::named("app"));
    http_get(p.addr(), "/xff-none", "site.example");
    let got = &up.requests_to("/xff-none")[0];
    assert_eq!(got.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(got.header("x-forwarded-proto"), Some("http"));
    assert_eq!(got.header("x-forwarded-host"), Some("site.example"));

    // An existing chain is extended with the peer address, not replaced.
    roundtrip(
        p.addr(),
        b"GET /xff-chain HTTP/1.1\r\nHost: site.example\r\nX-Forwarded-For: 203.0.113.9\r\nConnection: close\r\n\r\n",
    );
    let got = &up.requests_to("/xff-chain")[0];
    let xff: Vec<String> = got
        .headers_named("x-forwarded-for")
        .iter()
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_string())
        .collect();
    assert_eq!(xff, vec!["203.0.113.9", "127.0.0.1"]);
}

#[test]
fn x_forwarded_proto_cannot_be_spoofed_by_client() {
    let (up, p) = proxy_to(UpstreamOpts::named("app"));
    roundtrip(
        p.addr(),
        b"GET /spoof HTTP/1.1\r\nHost: site.example\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.example\r\nConnection: close\r\n\r\n",
    );
    let got = &up.requests_to("/spoof")[0];
    assert_eq!(got.headers_named("x-forwarded-proto"), vec!["http"]);
    assert_eq!(got.headers_named("x-forwarded-host"), vec!["site.example"]);
}

// --- X-Request-Id -------------------------------------------------------------

#[test]
fn x_request_id_generated_forwarded_and_echoed() {
    let (up, p) = proxy_to(UpstreamOpts::named("app"));
    let r1 = http_get(p.addr(), "/rid-1", "test.local");
    let r2 = http_get(p.addr(), "/rid-2", "test.local");
    let id1 = r1
        .header("x-request-id")
        .expect("generated X-Request-Id echoed");
    let id2 = r2
        .header("x-request-id")
        .expect("generated X-Request-Id echoed");
    assert!(id1.len() >= 8, "request id {id1:?} too short to be unique");
    assert_ne!(id1, id2, "two requests share an id");
    assert_eq!(
        up.requests_to("/rid-1")[0].header("x-request-id"),
        Some(id1)
    );
    assert_eq!(
        up.requests_to("/rid-2")[0].header("x-request-id"),
        Some(id2)
    );
}

#[test]
fn x_request_id_from_client_kept() {
    let (up, p) = proxy_to(UpstreamOpts::named("app"));
    let r = roundtrip(
        p.addr(),
        b"GET /rid-client HTTP/1.1\r\nHost: test.local\r\nX-Request-Id: abc-123\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.header("x-request-id"), Some("abc-123"));
    assert_eq!(
        up.requests_to("/rid-client")[0].header("x-request-id"),
        Some("abc-123")
    );
}

// --- RFC 6455: WebSocket upgrade ---------------------------------------------

#[test]
fn websocket_upgrade_passes_through_and_frames_are_echoed() {
    let mut o = UpstreamOpts::named("ws");
    o.websocket_echo = true;
    let (up, p) = proxy_to(o);
    let key = "dGhlIHNhbXBsZSBub25jZQ==";
    let mut c = Conn::open(p.addr());
    c.send(
        format!(
            "GET /chat HTTP/1.1\r\nHost: test.local\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap();
    let r = c.read_response();
    assert_eq!(r.status, 101, "{}", p.logs());
    assert_eq!(
        r.header("sec-websocket-accept"),
        Some(ws_accept(key).as_str())
    );
    assert!(r
        .header("upgrade")
        .map(|v| v.eq_ignore_ascii_case("websocket"))
        .unwrap_or(false));
    let got = &up.requests_to("/chat")[0];
    assert!(
        got.header("upgrade").is_some(),
        "Upgrade header not forwarded"
    );

    for (i, msg) in [&b"hello"[..], &[b'x'; 300][..], &[b'y'; 70_000][..]]
        .iter()
        .enumerate()
    {
        c.send(&ws_frame(0x1, msg, Some([7, 1, 3, i as u8])))
            .unwrap();
        let hdr = if msg.len() < 126 {
            2
        } else if msg.len() <= 0xffff {
            4
        } else {
            10
        };
        let frame = c
            .read_exact_within(hdr + msg.len(), IO_TIMEOUT)
            .unwrap_or_else(|e| panic!("echo of frame {i}: {e:?}"));
        let (_, op, payload) = ws_parse_frame(&frame).unwrap();
        assert_eq!(op, 0x1);
        assert_eq!(&payload[..], *msg, "frame {i} changed on the way");
    }
    c.send(&ws_frame(0x8, &[0x03, 0xe8], Some([1, 2, 3, 4])))
        .unwrap();
    let close = c.read_exact_within(4, IO_TIMEOUT).unwrap();
    assert_eq!(close[0] & 0x0f, 0x8);
}

// --- streamed bodies ----------------------------------------------------------

#[test]
fn large_chunked_request_body_arrives_intact() {
    let mut o = UpstreamOpts::named("echo");
    o.echo_body = true;
    let (up, p) = proxy_to(o);
    // 4 MiB of non-repeating bytes in 64 KiB chunks.
    let body: Vec<u8> = (0..4 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    let mut c = Conn::open(p.addr());
    c.send(b"POST /big HTTP/1.1\r\nHost: test.local\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        .unwrap();
    let writer = {
        let mut s = c.stream.try_clone().unwrap();
        let body = body.clone();
        std::thread::spawn(move || {
            use std::io::Write;
            for part in body.chunks(64 * 1024) {
                s.write_all(format!("{:x}\r\n", part.len()).as_bytes())?;
                s.write_all(part)?;
                s.write_all(b"\r\n")?;
            }
            s.write_all(b"0\r\n\r\n")
        })
    };
    let r = c
        .read_response_within(Duration::from_secs(60), false)
        .expect("response");
    writer.join().unwrap().expect("send body");
    assert_eq!(r.status, 200);
    let got = &up.requests_to("/big")[0];
    assert_eq!(got.body.len(), body.len());
    assert!(
        got.body == body,
        "request body corrupted on the way to the upstream"
    );
    assert!(r.body == body, "echoed body corrupted on the way back");
}

#[test]
fn response_body_is_streamed_not_buffered() {
    let mut o = UpstreamOpts::named("stream");
    o.body = Some([b"FIRST-HALF-".repeat(100), b"SECOND-HALF".repeat(100)].concat());
    o.stream_pause = Some(Duration::from_secs(6));
    let (up, p) = proxy_to(o);
    let mut c = Conn::open(p.addr());
    c.send(b"GET /stream HTTP/1.1\r\nHost: test.local\r\nConnection: close\r\n\r\n")
        .unwrap();
    // Read until the first half is visible; the upstream is then still
    // sleeping before the second half.
    let deadline = Instant::now() + IO_TIMEOUT;
    let mut seen = Vec::new();
    while find(&seen, b"FIRST-HALF-").is_none() && Instant::now() < deadline {
        match c.read_exact_within(1, Duration::from_millis(200)) {
            Ok(b) => seen.extend(b),
            Err(ReadError::Timeout(_)) => {}
            Err(e) => panic!("{e:?}"),
        }
    }
    assert!(
        find(&seen, b"FIRST-HALF-").is_some(),
        "first half never arrived"
    );
    assert!(
        !up.stream_finished(),
        "first half only arrived after the upstream finished: the response was buffered"
    );
}

#[test]
fn request_body_is_streamed_not_buffered() {
    let (up, p) = proxy_to(UpstreamOpts::named("app"));
    let mut c = Conn::open(p.addr());
    c.send(b"POST /upload HTTP/1.1\r\nHost: test.local\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n10\r\nFIRST-PART-OF-BO\r\n")
        .unwrap();
    // The rest of the body is held back until the first part reached the
    // upstream: a buffering proxy never forwards it.
    let arrived = wait_for(IO_TIMEOUT, || {
        find(&up.raw_bytes(), b"FIRST-PART-OF-BO").map(|_| ())
    });
    c.send(b"2\r\nDY\r\n0\r\n\r\n").unwrap();
    let r = c.read_response();
    assert!(
        arrived.is_some(),
        "first body part not forwarded before the body ended"
    );
    assert_eq!(r.status, 200);
    assert_eq!(up.requests_to("/upload")[0].body, b"FIRST-PART-OF-BODY");
}

#[test]
fn chunked_response_passes_through_intact() {
    let mut o = UpstreamOpts::named("chunky");
    o.chunked_response = true;
    o.body = Some((0..100_000u32).map(|i| (i % 251) as u8).collect());
    let (_up, p) = proxy_to(o.clone());
    let r = http_get(p.addr(), "/chunky", "test.local");
    assert_eq!(r.status, 200);
    assert_eq!(Some(r.body), o.body);
}

// --- keep-alive ---------------------------------------------------------------

#[test]
fn client_keep_alive_and_upstream_connection_reuse() {
    let (up, p) = proxy_to(UpstreamOpts::named("app"));
    let mut c = Conn::open(p.addr());
    for i in 0..10 {
        let r = c.roundtrip(format!("GET /ka-{i} HTTP/1.1\r\nHost: test.local\r\n\r\n").as_bytes());
        assert_eq!(r.status, 200, "request {i} on a kept-alive connection");
        assert_ne!(r.header("connection"), Some("close"));
    }
    assert_eq!(up.request_count(), 10);
    // Pooled upstream connections: 10 sequential requests must not need 10
    // upstream connections (allow one spare for the pool's hand-back race).
    assert!(
        up.accepted() <= 2,
        "{} upstream connections for 10 sequential requests",
        up.accepted()
    );
}

#[test]
fn http_1_0_client_gets_a_complete_response() {
    let (_up, p) = proxy_to(UpstreamOpts::named("app"));
    let mut c = Conn::open(p.addr());
    c.send(b"GET /old HTTP/1.0\r\nHost: test.local\r\n\r\n")
        .unwrap();
    let r = c.read_response();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"app\n");
    assert!(
        c.wait_closed(IO_TIMEOUT),
        "HTTP/1.0 connection without keep-alive left open"
    );
}

#[test]
fn head_response_has_no_body_and_connection_stays_usable() {
    let (_up, p) = proxy_to(UpstreamOpts::named("app"));
    let mut c = Conn::open(p.addr());
    c.send(b"HEAD /h HTTP/1.1\r\nHost: test.local\r\n\r\n")
        .unwrap();
    let r = c.read_response_within(IO_TIMEOUT, true).unwrap();
    assert_eq!(r.status, 200);
    // If palisade sent a body after the HEAD response, it would be read as
    // the start of the next response.
    let r = c.roundtrip(b"GET /g HTTP/1.1\r\nHost: test.local\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"app\n");
}

#[test]
fn client_connection_close_is_honoured() {
    let (_up, p) = proxy_to(UpstreamOpts::named("app"));
    let mut c = Conn::open(p.addr());
    let r = c.roundtrip(b"GET / HTTP/1.1\r\nHost: test.local\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 200);
    assert!(
        c.wait_closed(IO_TIMEOUT),
        "connection not closed after Connection: close"
    );
}

#[test]
fn no_content_response_passes_through() {
    let mut o = UpstreamOpts::named("app");
    o.status = 204;
    o.body = Some(Vec::new());
    let (_up, p) = proxy_to(o);
    let mut c = Conn::open(p.addr());
    let r = c.roundtrip(b"DELETE /thing HTTP/1.1\r\nHost: test.local\r\n\r\n");
    assert_eq!(r.status, 204);
    let r = c.roundtrip(b"GET /after HTTP/1.1\r\nHost: test.local\r\n\r\n");
    assert_eq!(r.status, 204);
}

#[test]
fn upstream_connection_reused_after_bodiless_responses() {
    // HEAD and 204 answers have no body to stream: their upstream
    // connection must still go back to the pool.
    let mut o = UpstreamOpts::named("app");
    o.status = 204;
    o.body = Some(Vec::new());
    let (up, p) = proxy_to(o);
    let mut c = Conn::open(p.addr());
    for i in 0..5 {
        let r =
            c.roundtrip(format!("DELETE /d-{i} HTTP/1.1\r\nHost: test.local\r\n\r\n").as_bytes());
        assert_eq!(r.status, 204, "request {i}");
        c.send(format!("HEAD /h-{i} HTTP/1.1\r\nHost: test.local\r\n\r\n").as_bytes())
            .unwrap();
        let r = c.read_response_within(IO_TIMEOUT, true).unwrap();
        assert_eq!(r.status, 204, "HEAD {i}");
    }
    assert_eq!(up.request_count(), 10);
    assert!(
        up.accepted() <= 2,
        "{} upstream connections for 10 sequential bodiless answers",
        up.accepted()
    );
}
