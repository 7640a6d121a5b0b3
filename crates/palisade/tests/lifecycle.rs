//! Process and connection lifecycle: graceful shutdown on SIGTERM, the
//! keep-alive idle timeout, the per-client-IP connection cap, idle
//! connections that never send a byte, and hostile bytes that must never
//! crash palisade.

// Test helpers: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::net::TcpStream;
use std::time::{Duration, Instant};

// --- graceful shutdown -----------------------------------------------------

#[test]
fn sigterm_stops_accepting_and_drains_in_flight_requests() {
    let mut o = UpstreamOpts::named("app");
    o.slow_prefix = Some(("/slow".into(), Duration::from_secs(3)));
    let up = Upstream::start_opts(o, 0);
    let mut p = Palisade::start(&ConfigSpec::proxy(&[up.addr])); // shutdown_grace = 5s
    let addr = p.addr();
    let slow = std::thread::spawn(move || http_get(addr, "/slow", "test.local"));
    assert!(up.wait_requests(1, IO_TIMEOUT));
    p.signal("TERM");
    // New connections are refused while the in-flight request drains.
    let refused = wait_for(Duration::from_secs(5), || {
        TcpStream::connect_timeout(&addr, Duration::from_millis(500))
            .is_err()
            .then_some(())
    });
    assert!(refused.is_some(), "still accepting 5 s after SIGTERM");
    let r = slow.join().unwrap();
    assert_eq!(
        r.status,
        200,
        "in-flight request not drained: {}",
        r.body_str()
    );
    let status = p
        .wait_exit(Duration::from_secs(20))
        .expect("palisade did not exit after drain");
    assert!(
        status.success(),
        "exit status {status} after graceful shutdown\n{}",
        p.logs()
    );
}

#[test]
fn sigterm_exits_at_shutdown_grace_even_with_requests_in_flight() {
    let mut o = UpstreamOpts::named("app");
    o.slow_prefix = Some(("/stuck".into(), Duration::from_secs(30)));
    let up = Upstream::start_opts(o, 0);
    let toml = ConfigSpec::proxy(&[up.addr])
        .render()
        .replace("shutdown_grace = \"5s\"", "shutdown_grace = \"1s\"");
    let mut p = Palisade::start_toml(&toml);
    let addr = p.addr();
    let _stuck =
        std::thread::spawn(move || try_roundtrip(addr, b"GET /stuck HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert!(up.wait_requests(1, IO_TIMEOUT));
    let start = Instant::now();
    p.signal("TERM");
    let status = p.wait_exit(Duration::from_secs(20));
    assert!(
        status.is_some(),
        "palisade still running 20 s after SIGTERM with shutdown_grace = 1s"
    );
    assert!(
        start.elapsed() >= Duration::from_millis(500),
        "exited before the grace period"
    );
}

// --- connection timers and caps ------------------------------------------------

#[test]
fn idle_keep_alive_connection_closed_after_keepalive_idle_timeout() {
    let up = Upstream::start("app");
    let p =
        Palisade::start(&ConfigSpec::proxy(&[up.addr]).limit("keepalive_idle_timeout = \"1s\""));
    let mut c = Conn::open(p.addr());
    let r = c.roundtrip(b"GET / HTTP/1.1\r\nHost: test.local\r\n\r\n");
    assert_eq!(r.status, 200);
    let start = Instant::now();
    assert!(
        c.wait_closed(Duration::from_secs(15)),
        "idle keep-alive connection never closed"
    );
    assert!(
        start.elapsed() >= Duration::from_millis(500),
        "closed after {:?}",
        start.elapsed()
    );
}

#[test]
fn connection_that_sends_nothing_is_closed_at_header_read_timeout() {
    let up = Upstream::start("app");
    let p = Palisade::start(&ConfigSpec::proxy(&[up.addr]).limit("header_read_timeout = \"2s\""));
    let mut c = Conn::open(p.addr());
    let start = Instant::now();
    assert!(
        c.wait_closed(Duration::from_secs(20)),
        "silent connection held open"
    );
    assert!(
        start.elapsed() >= Duration::from_millis(1500),
        "closed after {:?}",
        start.elapsed()
    );
}

#[test]
fn per_ip_connection_cap_refuses_extra_connections() {
    let up = Upstream::start("app");
    let p = Palisade::start(&ConfigSpec::proxy(&[up.addr]).limit("max_connections_per_ip = 3"));
    let mut held: Vec<Conn> = (0..3)
        .map(|i| {
            let mut c = Conn::open(p.addr());
            let r = c.roundtrip(
                format!("GET /held-{i} HTTP/1.1\r\nHost: test.local\r\n\r\n").as_bytes(),
            );
            assert_eq!(r.status, 200);
            c
        })
        .collect();
    // The fourth connection from 127.0.0.1 must not be served.
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
    // Freeing a slot lets a new connection in.
    drop(held.pop());
    let ok = wait_for(Duration::from_secs(10), || {
        match try_roundtrip(
            p.addr(),
            b"GET /later HTTP/1.1\r\nHost: test.local\r\nConnection: close\r\n\r\n",
        ) {
            Ok(r) if r.status == 200 => Some(()),
            _ => None,
        }
    });
    assert!(ok.is_some(), "slot not released after a connection closed");
}

// --- hostile bytes -------------------------------------------------------------

#[test]
fn garbage_input_never_crashes_or_reaches_upstream() {
    let up = Upstream::start("app");
    let mut p =
        Palisade::start(&ConfigSpec::proxy(&[up.addr]).limit("header_read_timeout = \"3s\""));
    let mut inputs: Vec<Vec<u8>> = vec![
        b"\r\n\r\n".to_vec(),
        b"\0\0\0\0\0\0\0\0\r\n\r\n".to_vec(),
        b"GET\r\n\r\n".to_vec(),
        b"GET / HTTP/9.9\r\nHost: x\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nHost: x\r\nX: \xff\xfe\x00bad\r\n\r\n".to_vec(),
        b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"G\xc3\x89T / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\n: empty-name\r\n\r\n".to_vec(),
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n".to_vec(),
        // A TLS ClientHello start on the plain-HTTP port.
        vec![
            0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03,
        ],
        // An HTTP/2 prior-knowledge preface.
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00".to_vec(),
    ];
    // Deterministic pseudo-random garbage.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for len in [1usize, 7, 64, 500, 4096, 20000] {
        let mut v = Vec::with_capacity(len);
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.push((x >> 24) as u8);
        }
        inputs.push(v);
    }
    for (i, input) in inputs.iter().enumerate() {
        let mut c = Conn::open(p.addr());
        let _ = c.send(input);
        if input.starts_with(b"PRI * HTTP/2.0") {
            // h2 with prior knowledge may be spoken on a plain listener: then
            // the answer is the server's SETTINGS frame, not an HTTP/1 head.
            match c.read_exact_within(9, Duration::from_secs(15)) {
                Ok(h) => assert_eq!(h[3], 0x4, "input {i}: unexpected answer {h:?}"),
                Err(ReadError::Timeout(_)) => panic!("input {i}: neither answered nor closed"),
                Err(_) => {}
            }
            continue;
        }
        match c.read_response_within(Duration::from_secs(15), false) {
            Ok(r) => assert!(
                (400..600).contains(&r.status) && r.header("x-upstream").is_none(),
                "input {i} answered {} {}",
                r.status,
                r.body_str()
            ),
            Err(ReadError::Timeout(_)) => {
                panic!("input {i}: connection neither answered nor closed in 15 s")
            }
            Err(_) => {} // closed or reset: fine
        }
        assert!(p.alive(), "palisade died on input {i}:\n{}", p.logs());
    }
    assert_eq!(up.request_count(), 0, "garbage reached the upstream");
    assert_eq!(http_get(p.addr(), "/still-ok", "test.local").status, 200);
    assert!(!p.stderr().contains("panicked"), "{}", p.stderr());
}
