//! The gateway's own HTTP/1.1 upstream client (crates/gateway/src/upstream_h1.rs)
//! against scripted upstreams that answer with exact bytes: chunked bodies
//! with extensions and trailers, close-delimited bodies, interim responses,
//! bodiless responses, keep-alive reuse, an upstream closing a pooled
//! connection, truncated bodies, oversize heads and response-splitting
//! attempts (RFC 9112: answered 502, never passed on).

// Test helpers: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// What a scripted upstream does with one request.
enum Reply {
    /// Send these bytes and keep the connection open.
    Keep(Vec<u8>),
    /// Send these bytes, then close.
    Close(Vec<u8>),
    /// Close without answering (an upstream that timed out a keep-alive
    /// connection just as the request arrived).
    Hangup,
}

type Script = Arc<dyn Fn(&str, usize) -> Reply + Send + Sync>;

/// A loopback upstream answering each request with `script(path, n)`,
/// `n` the request's index on its connection. Counts connections accepted.
struct Scripted {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Scripted {
    fn start(script: impl Fn(&str, usize) -> Reply + Send + Sync + 'static) -> Scripted {
        let script: Script = Arc::new(script);
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s) = (accepted.clone(), stop.clone());
        let thread = thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((c, _)) => {
                        a.fetch_add(1, Ordering::SeqCst);
                        let script = script.clone();
                        thread::spawn(move || serve(c, script));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Scripted {
            addr,
            accepted,
            stop,
            thread: Some(thread),
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One upstream connection: reads request heads (and Content-Length
/// bodies), answers per script. Bounded by read timeouts and a size cap.
fn serve(mut c: TcpStream, script: Script) {
    c.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    c.set_nodelay(true).unwrap();
    let mut buf = Vec::new();
    for n in 0.. {
        let end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match c.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(k) => buf.extend_from_slice(&chunk[..k]),
            }
            if buf.len() > 1 << 20 {
                return;
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        while buf.len() < end + len {
            let mut chunk = [0u8; 4096];
            match c.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(k) => buf.extend_from_slice(&chunk[..k]),
            }
        }
        buf.drain(..end + len);
        let path = head.split(' ').nth(1).unwrap_or("").to_string();
        match script(&path, n) {
            Reply::Keep(b) => {
                if c.write_all(&b).is_err() {
                    return;
                }
            }
            Reply::Close(b) => {
                let _ = c.write_all(&b);
                return;
            }
            Reply::Hangup => return,
        }
    }
}

fn ok(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: test.local\r\n\r\n").into_bytes()
}

fn proxy(up: &Scripted) -> Palisade {
    Palisade::start(&ConfigSpec::proxy(&[up.addr]))
}

#[test]
fn chunked_body_with_extensions_and_trailers_is_decoded_and_connection_reused() {
    let up = Scripted::start(|_, _| {
        Reply::Keep(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n\
              5;name=value\r\nhello\r\n6 ; quoted=\"a b\"\r\n world\r\n0\r\nX-Sum: 11\r\n\r\n"
                .to_vec(),
        )
    });
    let p = proxy(&up);
    let mut c = Conn::open(p.addr());
    for i in 0..3 {
        let r = c.roundtrip(&get(&format!("/c{i}")));
        assert_eq!(r.status, 200, "{}", p.logs());
        assert_eq!(r.body_str(), "hello world");
        assert!(r.header("content-length").is_none() || r.header("content-length") == Some("11"));
    }
    assert_eq!(
        up.accepted(),
        1,
        "a complete chunked body leaves the connection pooled"
    );
}

#[test]
fn close_delimited_body_reaches_the_client_and_is_not_reused() {
    let up = Scripted::start(|_, _| {
        Reply::Close(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the upstream closes"
                .to_vec(),
        )
    });
    let p = proxy(&up);
    let mut c = Conn::open(p.addr());
    for _ in 0..2 {
        let r = c.roundtrip(&get("/close"));
        assert_eq!(r.status, 200, "{}", p.logs());
        assert_eq!(r.body_str(), "until the upstream closes");
    }
    assert_eq!(up.accepted(), 2);
}

#[test]
fn upstream_closing_a_pooled_connection_is_invisible_to_get_but_post_is_not_replayed() {
    // First request on every connection is answered; the next one finds the
    // connection closed by the upstream (read, then hang up, no answer).
    let up = Scripted::start(|path, n| {
        if n == 0 {
            Reply::Keep(ok(path))
        } else {
            Reply::Hangup
        }
    });
    let p = proxy(&up);
    let mut c = Conn::open(p.addr());
    let r = c.roundtrip(&get("/first"));
    assert_eq!((r.status, r.body_str()), (200, "/first".to_string()));
    let r = c.roundtrip(&get("/second"));
    assert_eq!(
        (r.status, r.body_str()),
        (200, "/second".to_string()),
        "a GET on a connection the upstream closed is sent again on a new one\n{}",
        p.logs()
    );
    assert_eq!(up.accepted(), 2);
    // A POST (not idempotent) may have been acted on: never sent twice.
    let r = c.roundtrip(b"POST /form HTTP/1.1\r\nHost: test.local\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(r.status, 502, "{}", p.logs());
    assert_eq!(
        up.accepted(),
        2,
        "the POST was not replayed on a new connection"
    );
}

#[test]
fn truncated_content_length_body_aborts_the_client_response() {
    let up = Scripted::start(|path, _| {
        if path == "/ok" {
            Reply::Keep(ok("fine"))
        } else {
            Reply::Close(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789".to_vec())
        }
    });
    let p = proxy(&up);
    let mut s = connect(p.addr());
    s.write_all(&get("/truncated")).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + IO_TIMEOUT;
    let mut closed = false;
    while Instant::now() < deadline {
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(k) => got.extend_from_slice(&chunk[..k]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                closed = true;
                break;
            }
            Err(_) => break,
        }
    }
    assert!(closed, "client connection closed after the truncated body");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let body = &got[find(&got, b"\r\n\r\n").unwrap() + 4..];
    assert!(
        body.len() < 100,
        "the client must see an incomplete body: {text}"
    );
    let r = http_get(p.addr(), "/ok", "test.local");
    assert_eq!((r.status, r.body_str()), (200, "fine".to_string()));
    assert_eq!(up.accepted(), 2, "the truncated connection was not reused");
}

#[test]
fn interim_and_bodiless_responses_keep_the_connection() {
    let up = Scripted::start(|path, _| {
        Reply::Keep(match path {
            "/continue" => {
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                    .to_vec()
            }
            "/head" => b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n".to_vec(),
            "/204" => b"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n".to_vec(),
            "/304" => b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n".to_vec(),
            "/http10" => b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 4\r\n\r\n1.0!".to_vec(),
            _ => ok("last"),
        })
    });
    let p = proxy(&up);
    let mut c = Conn::open(p.addr());
    let r = c.roundtrip(&get("/continue"));
    assert_eq!(
        (r.status, r.body_str()),
        (200, "ok".to_string()),
        "{}",
        p.logs()
    );
    c.send(b"HEAD /head HTTP/1.1\r\nHost: test.local\r\n\r\n")
        .unwrap();
    let r = c.read_response_within(IO_TIMEOUT, true).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("50"));
    let r = c.roundtrip(&get("/204"));
    assert_eq!((r.status, r.body.len()), (204, 0));
    let r = c.roundtrip(&get("/304"));
    assert_eq!((r.status, r.body.len()), (304, 0));
    let r = c.roundtrip(&get("/http10"));
    assert_eq!((r.status, r.body_str()), (200, "1.0!".to_string()));
    let r = c.roundtrip(&get("/last"));
    assert_eq!((r.status, r.body_str()), (200, "last".to_string()));
    assert_eq!(
        up.accepted(),
        1,
        "every response left the connection reusable"
    );
}

#[test]
fn oversize_response_head_is_502() {
    let up = Scripted::start(|path, _| {
        if path == "/ok" {
            return Reply::Keep(ok("fine"));
        }
        let big = "a".repeat(20 * 1024);
        Reply::Keep(
            format!("HTTP/1.1 200 OK\r\nX-Big: {big}\r\nContent-Length: 2\r\n\r\nno").into_bytes(),
        )
    });
    let p = proxy(&up);
    let r = http_get(p.addr(), "/big", "test.local");
    assert_eq!(r.status, 502, "{}", r.body_str());
    let r = http_get(p.addr(), "/ok", "test.local");
    assert_eq!(r.status, 200);
}

#[test]
fn response_splitting_and_ambiguous_framing_are_502() {
    let cases: &[(&str, &[u8])] = &[
        ("/bare-lf", b"HTTP/1.1 200 OK\r\nX-A: a\nSet-Cookie: injected=1\r\nContent-Length: 2\r\n\r\nno"),
        ("/bare-cr", b"HTTP/1.1 200 OK\r\nX-A: a\rSet-Cookie: injected=1\r\nContent-Length: 2\r\n\r\nno"),
        ("/two-cl", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nno"),
        ("/cl-list", b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nno"),
        ("/cl-te", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nno\r\n0\r\n\r\n"),
        ("/te-gzip", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nno"),
        ("/te-twice", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nno\r\n0\r\n\r\n"),
        ("/obs-fold", b"HTTP/1.1 200 OK\r\nX-A: a\r\n Set-Cookie: injected=1\r\nContent-Length: 2\r\n\r\nno"),
        ("/space-colon", b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nno"),
        ("/101", b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"),
        ("/garbage", b"HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\nno"),
    ];
    let owned: Vec<(String, Vec<u8>)> = cases
        .iter()
        .map(|(p, b)| (p.to_string(), b.to_vec()))
        .collect();
    let up = Scripted::start(move |path, _| match owned.iter().find(|(p, _)| p == path) {
        Some((_, b)) => Reply::Keep(b.clone()),
        None => Reply::Keep(ok("fine")),
    });
    let p = proxy(&up);
    for (path, _) in cases {
        let r = http_get(p.addr(), path, "test.local");
        assert_eq!(r.status, 502, "{path}: {} {}", r.status, r.body_str());
        assert!(r.header("set-cookie").is_none(), "{path}");
    }
    let r = http_get(p.addr(), "/ok", "test.local");
    assert_eq!((r.status, r.body_str()), (200, "fine".to_string()));
}

#[test]
fn bad_chunked_body_aborts_and_is_not_reused() {
    let up = Scripted::start(|path, _| {
        Reply::Keep(match path {
            "/bad-size" => {
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nno\r\n0\r\n\r\n"
                    .to_vec()
            }
            "/long-data" => {
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nnoXX\r\n0\r\n\r\n"
                    .to_vec()
            }
            _ => ok("fine"),
        })
    });
    let p = proxy(&up);
    for path in ["/bad-size", "/long-data"] {
        let mut c = Conn::open(p.addr());
        c.send(&get(path)).unwrap();
        match c.read_response_within(IO_TIMEOUT, false) {
            Ok(r) => assert_ne!(
                (r.status, r.body_str()),
                (200, "no".to_string()),
                "{path} passed as a complete body"
            ),
            Err(ReadError::Closed(_) | ReadError::Io(_)) => {}
            Err(e) => panic!("{path}: {e:?}"),
        }
    }
    let before = up.accepted();
    let r = http_get(p.addr(), "/ok", "test.local");
    assert_eq!(r.status, 200);
    assert_eq!(
        up.accepted(),
        before + 1,
        "a malformed body's connection is not reused"
    );
}

#[test]
fn response_header_names_in_any_case_and_connection_options() {
    // Standard names the client parses by a fast path, in odd case, next to
    // unknown ones; `Connection` naming only options, `Keep-Alive`, and a
    // `Connection` naming an end-to-end-looking field that must go too.
    let up = Scripted::start(|path, _| {
        Reply::Keep(match path {
            "/names" => b"HTTP/1.1 200 OK\r\nSERVER: up\r\ncontent-TYPE: text/x\r\nDate: Mon, 23 Nov 2026 22:00:00 GMT\r\n\
                ETag: \"e1\"\r\nVARY: Accept\r\nset-COOKIE: a=1\r\nSet-Cookie: b=2\r\nX-Custom: v\r\nContent-Lengthx: 9\r\n\
                Keep-Alive: timeout=5\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nhi"
                .to_vec(),
            "/named" => b"HTTP/1.1 200 OK\r\nConnection: Keep-Alive, X-Secret\r\nX-Secret: s\r\nX-Public: p\r\n\
                Content-Length: 2\r\n\r\nok"
                .to_vec(),
            _ => ok("fine"),
        })
    });
    let p = proxy(&up);
    let mut c = Conn::open(p.addr());
    let r = c.roundtrip(&get("/names"));
    assert_eq!(
        (r.status, r.body_str()),
        (200, "hi".to_string()),
        "{}",
        p.logs()
    );
    assert_eq!(r.header("server"), Some("up"));
    assert_eq!(r.header("content-type"), Some("text/x"));
    assert_eq!(r.header("date"), Some("Mon, 23 Nov 2026 22:00:00 GMT"));
    assert_eq!(r.header("etag"), Some("\"e1\""));
    assert_eq!(r.header("vary"), Some("Accept"));
    let cookies: Vec<&str> = r
        .headers
        .iter()
        .filter(|(k, _)| k == "set-cookie")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(cookies, vec!["a=1", "b=2"]);
    assert_eq!(r.header("x-custom"), Some("v"));
    assert_eq!(r.header("content-lengthx"), Some("9"));
    assert_eq!(r.header("content-length"), Some("2"));
    assert!(r.header("keep-alive").is_none(), "{:?}", r.headers);
    assert!(r.header("connection").is_none(), "{:?}", r.headers);

    let r = c.roundtrip(&get("/named"));
    assert_eq!((r.status, r.body_str()), (200, "ok".to_string()));
    assert!(r.header("x-secret").is_none(), "{:?}", r.headers);
    assert!(r.header("connection").is_none(), "{:?}", r.headers);
    assert_eq!(r.header("x-public"), Some("p"));
    assert_eq!(up.accepted(), 1, "both responses keep the connection");
}
