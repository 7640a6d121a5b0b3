//! Size limits (431, 414, 413) and the timeouts that stop slow clients from
//! holding connections open (slowloris, stalled or trickled bodies).
//!
//! Each limit is tested on both sides: a request just inside it passes, one
//! outside it is refused with the right status and never reaches the
//! upstream.

// Test helpers: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::io::Write;
use std::time::{Duration, Instant};

fn start(limits: &[&str]) -> (Upstream, Palisade) {
    let up = Upstream::start("app");
    let mut spec = ConfigSpec::proxy(&[up.addr]);
    for l in limits {
        spec = spec.limit(l);
    }
    let p = Palisade::start(&spec);
    (up, p)
}

fn get_with_headers(path: &str, extra: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: test.local\r\n{extra}Connection: close\r\n\r\n")
        .into_bytes()
}

fn numbered_headers(n: usize) -> String {
    (0..n)
        .map(|i| format!("X-Header-{i}: value-{i}\r\n"))
        .collect()
}

// --- 431: header count ------------------------------------------------------

#[test]
fn too_many_headers_gives_431() {
    let (up, p) = start(&["max_headers = 20"]);
    // Host + Connection + 15 = 17 headers: inside the limit.
    let ok = roundtrip(p.addr(), &get_with_headers("/few", &numbered_headers(15)));
    assert_eq!(ok.status, 200, "{}", p.logs());
    let r = roundtrip(p.addr(), &get_with_headers("/many", &numbered_headers(40)));
    assert_eq!(
        r.status,
        431,
        "40 headers with max_headers = 20: {}",
        r.body_str()
    );
    assert!(up.requests_to("/many").is_empty());
}

#[test]
fn default_header_count_limit_is_100() {
    let (up, p) = start(&[]);
    let ok = roundtrip(
        p.addr(),
        &get_with_headers("/ninety", &numbered_headers(90)),
    );
    assert_eq!(ok.status, 200, "{}", p.logs());
    let r = roundtrip(p.addr(), &get_with_headers("/many", &numbered_headers(150)));
    assert_eq!(r.status, 431);
    assert!(up.requests_to("/many").is_empty());
}

// --- 431: header bytes ------------------------------------------------------

#[test]
fn too_large_header_block_gives_431() {
    let (up, p) = start(&["max_header_bytes = \"8KiB\""]);
    let small = format!("X-Big: {}\r\n", "a".repeat(4 * 1024));
    let ok = roundtrip(p.addr(), &get_with_headers("/small", &small));
    assert_eq!(ok.status, 200, "{}", p.logs());
    let big = format!("X-Big: {}\r\n", "a".repeat(12 * 1024));
    let r = roundtrip(p.addr(), &get_with_headers("/big", &big));
    assert_eq!(r.status, 431, "12 KiB header with max_header_bytes = 8KiB");
    assert!(up.requests_to("/big").is_empty());
}

#[test]
fn default_header_bytes_limit_is_16kib() {
    let (up, p) = start(&[]);
    let ok = roundtrip(
        p.addr(),
        &get_with_headers("/small", &format!("X-Big: {}\r\n", "a".repeat(12 * 1024))),
    );
    assert_eq!(ok.status, 200, "{}", p.logs());
    let r = roundtrip(
        p.addr(),
        &get_with_headers("/big", &format!("X-Big: {}\r\n", "a".repeat(20 * 1024))),
    );
    assert_eq!(r.status, 431);
    assert!(up.requests_to("/big").is_empty());
}

// --- 414: URI length --------------------------------------------------------

#[test]
fn long_uri_gives_414() {
    let (up, p) = start(&["max_uri_bytes = 1024"]);
    let ok_path = format!("/ok-{}", "a".repeat(900));
    let ok = roundtrip(p.addr(), &get_with_headers(&ok_path, ""));
    assert_eq!(ok.status, 200, "{}", p.logs());
    assert_eq!(
        up.requests_to("/ok-")[0].target,
        ok_path,
        "URI forwarded unchanged"
    );

    let long = format!("/long-{}", "a".repeat(2000));
    let r = roundtrip(p.addr(), &get_with_headers(&long, ""));
    assert_eq!(r.status, 414);
    assert!(up.requests_to("/long-").is_empty());
}

#[test]
fn default_uri_limit_is_8192() {
    let (up, p) = start(&[]);
    let ok = roundtrip(
        p.addr(),
        &get_with_headers(&format!("/ok-{}", "b".repeat(8000)), ""),
    );
    assert_eq!(ok.status, 200, "{}", p.logs());
    let long = format!("/long-{}", "a".repeat(9000));
    let r = roundtrip(p.addr(), &get_with_headers(&long, ""));
    assert_eq!(r.status, 414);
    assert!(up.requests_to("/long-").is_empty());
}

// --- 413: body size ---------------------------------------------------------

#[test]
fn declared_content_length_over_limit_gives_413_before_body_is_sent() {
    let (up, p) = start(&["max_body_bytes = 1000"]);
    let ok = roundtrip(
        p.addr(),
        format!(
            "POST /ok HTTP/1.1\r\nHost: test.local\r\nContent-Length: 900\r\nConnection: close\r\n\r\n{}",
            "x".repeat(900)
        )
        .as_bytes(),
    );
    assert_eq!(ok.status, 200, "{}", p.logs());
    assert_eq!(up.requests_to("/ok")[0].body.len(), 900);

    // Only the head and a few body bytes are sent: the answer must not wait
    // for the 5000 bytes the client announced.
    let mut c = Conn::open(p.addr());
    c.send(b"POST /too-big HTTP/1.1\r\nHost: test.local\r\nContent-Length: 5000\r\n\r\nxxxxxxxxxx")
        .unwrap();
    let r = c.read_response();
    assert_eq!(r.status, 413);
    assert!(up.requests_to("/too-big").is_empty());
    assert!(
        find(&up.raw_bytes(), b"/too-big").is_none(),
        "head of a request refused for its Content-Length reached the upstream"
    );
}

#[test]
fn chunked_body_over_limit_gives_413() {
    let (up, p) = start(&["max_body_bytes = 1000"]);
    let chunk = format!("1f4\r\n{}\r\n", "y".repeat(500)); // 500 bytes
    let ok = roundtrip(
        p.addr(),
        format!(
            "POST /ok HTTP/1.1\r\nHost: test.local\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{chunk}0\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(ok.status, 200, "{}", p.logs());

    let big = format!(
        "POST /too-big HTTP/1.1\r\nHost: test.local\r\nTransfer-Encoding: chunked\r\n\r\n{}0\r\n\r\n",
        chunk.repeat(4)
    );
    let r = try_roundtrip(p.addr(), big.as_bytes());
    match r {
        Ok(r) => assert_eq!(
            r.status, 413,
            "2000-byte chunked body with max_body_bytes = 1000"
        ),
        Err(e) => panic!("no 413 for an over-long chunked body: {e:?}\n{}", p.logs()),
    }
    // The upstream may have seen the start of a streamed body, but never a
    // complete request.
    assert!(up.requests_to("/too-big").is_empty());
}

// --- slowloris: header read timeout -----------------------------------------

#[test]
fn slowloris_headers_one_byte_per_second_cut_at_header_read_timeout() {
    let (up, p) = start(&["header_read_timeout = \"3s\""]);

    // A client that is slow but finishes within the timeout is served.
    let mut c = Conn::open(p.addr());
    for piece in [
        "GET /slow-but-ok HTTP/1.1\r\n",
        "Host: test.local\r\n",
        "Connection: close\r\n\r\n",
    ] {
        c.send(piece.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(c.read_response().status, 200, "{}", p.logs());

    // One byte per second: 60 bytes would take a minute.
    let mut s = connect(p.addr());
    let header = format!(
        "GET /loris HTTP/1.1\r\nHost: test.local\r\nX-Slow: {}\r\n",
        "z".repeat(20)
    );
    let start = Instant::now();
    let mut sent = 0;
    let mut closed = false;
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    for b in header.bytes() {
        if s.write_all(&[b]).is_err() {
            closed = true;
            break;
        }
        sent += 1;
        let mut buf = [0u8; 1024];
        match std::io::Read::read(&mut s, &mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(_) => {} // e.g. a 408; the close follows
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    let elapsed = start.elapsed();
    assert!(
        closed,
        "connection still open after {sent} bytes over {elapsed:?}"
    );
    assert!(sent < header.len(), "all header bytes were accepted");
    assert!(
        elapsed >= Duration::from_secs(2),
        "cut after {elapsed:?}, before the 3 s header timeout could expire"
    );
    assert!(
        elapsed < Duration::from_secs(20),
        "cut only after {elapsed:?} with header_read_timeout = 3s"
    );
    assert!(find(&up.raw_bytes(), b"/loris").is_none());
}

// --- stalled and trickled bodies --------------------------------------------

#[test]
fn stalled_body_cut_at_body_idle_timeout() {
    let (up, p) = start(&["body_idle_timeout = \"2s\""]);
    let mut c = Conn::open(p.addr());
    let start = Instant::now();
    c.send(b"POST /stalled HTTP/1.1\r\nHost: test.local\r\nContent-Length: 100\r\n\r\n0123456789")
        .unwrap();
    // The remaining 90 bytes never come.
    assert!(
        c.wait_closed(Duration::from_secs(20)),
        "stalled body still open after 20 s with body_idle_timeout = 2s"
    );
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1500),
        "cut after {elapsed:?}: too early"
    );
    assert!(up.requests_to("/stalled").is_empty());
    // palisade itself is fine afterwards.
    assert_eq!(http_get(p.addr(), "/after", "test.local").status, 200);
}

#[test]
fn trickled_body_below_min_rate_is_cut() {
    let (up, p) = start(&["body_idle_timeout = \"60s\"", "body_min_rate = \"1KiB\""]);
    let mut s = connect(p.addr());
    s.write_all(b"POST /trickle HTTP/1.1\r\nHost: test.local\r\nContent-Length: 1000000\r\n\r\n")
        .unwrap();
    // 20 bytes every 250 ms = 80 B/s, never idle long enough for the idle
    // timeout; only the minimum rate can cut it.
    let start = Instant::now();
    let mut cut = false;
    while start.elapsed() < Duration::from_secs(40) {
        if s.write_all(&[b'q'; 20]).is_err() {
            cut = true;
            break;
        }
        s.set_read_timeout(Some(Duration::from_millis(250)))
            .unwrap();
        let mut buf = [0u8; 1024];
        match std::io::Read::read(&mut s, &mut buf) {
            Ok(0) => {
                cut = true;
                break;
            }
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => {
                cut = true;
                break;
            }
        }
    }
    assert!(
        cut,
        "80 B/s body with body_min_rate = 1KiB still open after 40 s"
    );
    assert!(up.requests_to("/trickle").is_empty());
}

// --- Expect: 100-continue (RFC 9110 §10.1.1) ------------------------------------

#[test]
fn expect_continue_over_limit_gets_413_instead_of_100() {
    let (up, p) = start(&["max_body_bytes = 1000"]);
    let mut c = Conn::open(p.addr());
    c.send(b"POST /big HTTP/1.1\r\nHost: test.local\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n")
        .unwrap();
    // The client holds its body back; the first thing it hears must be the
    // refusal, not an invitation to send 5000 bytes.
    let first = c
        .read_exact_within(12, IO_TIMEOUT)
        .expect("an answer without the body");
    assert_eq!(
        &first,
        b"HTTP/1.1 413",
        "{:?}",
        String::from_utf8_lossy(&first)
    );
    assert!(up.requests_to("/big").is_empty());
}

#[test]
fn expect_continue_within_limit_gets_100_then_forwards_body() {
    let (up, p) = start(&["max_body_bytes = 1000"]);
    let mut c = Conn::open(p.addr());
    c.send(b"POST /small HTTP/1.1\r\nHost: test.local\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        .unwrap();
    let first = c.read_exact_within(12, IO_TIMEOUT).expect("100 Continue");
    assert_eq!(
        &first,
        b"HTTP/1.1 100",
        "{:?}",
        String::from_utf8_lossy(&first)
    );
    // Consume the rest of the interim response head.
    let mut rest = Vec::new();
    while !rest.ends_with(b"\r\n\r\n") {
        rest.extend(
            c.read_exact_within(1, IO_TIMEOUT)
                .expect("end of the 100 response"),
        );
        assert!(rest.len() < 4096, "100 response head never ends");
    }
    c.send(b"hello").unwrap();
    let r = c.read_response();
    assert_eq!(r.status, 200, "{}", p.logs());
    assert_eq!(up.requests_to("/small")[0].body, b"hello");
}

// --- total connection cap -----------------------------------------------------------

#[test]
fn total_connection_cap_refuses_extra_connections() {
    let (up, p) = start(&["max_connections = 3"]);
    let held: Vec<Conn> = (0..3)
        .map(|i| {
            let mut c = Conn::open(p.addr());
            let r = c.roundtrip(
                format!("GET /held-{i} HTTP/1.1\r\nHost: test.local\r\n\r\n").as_bytes(),
            );
            assert_eq!(r.status, 200);
            c
        })
        .collect();
    match try_roundtrip(
        p.addr(),
        b"GET /fourth HTTP/1.1\r\nHost: test.local\r\nConnection: close\r\n\r\n",
    ) {
        Ok(r) => assert!(
            r.status >= 400,
            "fourth connection served with {}",
            r.status
        ),
        Err(ReadError::Closed(_)) | Err(ReadError::Io(_)) => {}
        Err(e) => panic!("fourth connection neither answered nor closed: {e:?}"),
    }
    assert!(up.requests_to("/fourth").is_empty());
    drop(held);
}
