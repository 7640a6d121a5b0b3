//! HTTP/2 connections without streams are closed at the keep-alive idle
//! timeout, even when the client answers every keep-alive PING (which
//! HTTP/1's idle timer never sees: the framing guard steps aside for h2).

// Test helpers: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const ACK: u8 = 0x1;

fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
    let n = payload.len();
    let mut f = vec![
        (n >> 16) as u8,
        (n >> 8) as u8,
        n as u8,
        kind,
        flags,
        0,
        0,
        0,
        0,
    ];
    f.extend_from_slice(payload);
    f
}

/// Speaks h2 with prior knowledge and answers the server's SETTINGS and
/// PINGs, opening no stream, until the server closes or `within` passes.
/// Returns when the connection closed, and whether a GOAWAY came first.
fn idle_h2_client(s: &mut TcpStream, within: Duration) -> Option<(Duration, bool)> {
    let start = Instant::now();
    let mut out = PREFACE.to_vec();
    out.extend(frame(SETTINGS, 0, &[]));
    s.write_all(&out).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = Vec::new();
    let mut goaway = false;
    let mut chunk = [0u8; 4096];
    while start.elapsed() < within {
        match s.read(&mut chunk) {
            Ok(0) => return Some((start.elapsed(), goaway)),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => return Some((start.elapsed(), goaway)),
        }
        while buf.len() >= 9 {
            let len =
                (usize::from(buf[0]) << 16) | (usize::from(buf[1]) << 8) | usize::from(buf[2]);
            if buf.len() < 9 + len {
                break;
            }
            let (kind, flags) = (buf[3], buf[4]);
            let payload = buf[9..9 + len].to_vec();
            buf.drain(..9 + len);
            let reply = match kind {
                SETTINGS if flags & ACK == 0 => Some(frame(SETTINGS, ACK, &[])),
                PING if flags & ACK == 0 => Some(frame(PING, ACK, &payload)),
                GOAWAY => {
                    goaway = true;
                    None
                }
                _ => None,
            };
            if let Some(r) = reply {
                // The server may already be closing: a failed write is fine.
                let _ = s.write_all(&r);
            }
        }
    }
    None
}

#[test]
fn h2_connection_without_streams_closed_at_idle_timeout_despite_pings() {
    let up = Upstream::start("app");
    let p =
        Palisade::start(&ConfigSpec::proxy(&[up.addr]).limit("keepalive_idle_timeout = \"1s\""));
    let mut s = TcpStream::connect(p.addr()).unwrap();
    // hyper PINGs every idle timeout (1 s): the client answers them all.
    let closed = idle_h2_client(&mut s, Duration::from_secs(10));
    let Some((after, goaway)) = closed else {
        panic!(
            "an h2 connection without streams stayed open for 10 s (keep-alive idle timeout 1 s)"
        );
    };
    assert!(
        after >= Duration::from_millis(900),
        "closed after {after:?}"
    );
    assert!(goaway, "closed after {after:?} without a GOAWAY");
}

#[test]
fn h2_connection_with_requests_stays_open_while_used() {
    let up = Upstream::start("app");
    let p =
        Palisade::start(&ConfigSpec::proxy(&[up.addr]).limit("keepalive_idle_timeout = \"1s\""));
    let mut s = TcpStream::connect(p.addr()).unwrap();
    let mut out = PREFACE.to_vec();
    out.extend(frame(SETTINGS, 0, &[]));
    s.write_all(&out).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    // A GET on a new stream every 400 ms for 3 s: never idle for 1 s.
    let host = format!("127.0.0.1:{}", p.addr().port());
    let start = Instant::now();
    let mut stream_id: u32 = 1;
    let mut chunk = [0u8; 16384];
    while start.elapsed() < Duration::from_secs(3) {
        // HEADERS (END_STREAM | END_HEADERS) with literal, never-indexed fields.
        let mut block = Vec::new();
        for (k, v) in [
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
            (":authority", host.as_str()),
        ] {
            block.push(0x10);
            block.push(k.len() as u8);
            block.extend_from_slice(k.as_bytes());
            block.push(v.len() as u8);
            block.extend_from_slice(v.as_bytes());
        }
        let mut f = frame(0x1, 0x5, &block);
        f[5..9].copy_from_slice(&stream_id.to_be_bytes());
        s.write_all(&f)
            .unwrap_or_else(|e| panic!("closed while in use after {:?}: {e}", start.elapsed()));
        stream_id += 2;
        let until = Instant::now() + Duration::from_millis(400);
        while Instant::now() < until {
            match s.read(&mut chunk) {
                Ok(0) => panic!("closed while in use after {:?}", start.elapsed()),
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => panic!("closed while in use after {:?}: {e}", start.elapsed()),
            }
        }
    }
}
