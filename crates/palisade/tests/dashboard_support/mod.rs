//! Shared helpers of the dashboard tests: a palisade with the WAF in block
//! mode, monitoring, `[identity]` and an admin listener; a raw-HTTP client
//! for the dashboard's login form; XSS payloads.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::identity_support::{enc, hidden, Browser, Users};

/// XSS in a query argument (URL-encoded `<script>alert(1)</script>`); the
/// built-in rules block it and log the decoded match data.
pub const XSS: &str = "/search?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E";
/// XSS through an event handler attribute.
pub const XSS_IMG: &str = "/p?x=%22%3E%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E";

/// Config: one route `shop` with the WAF blocking, monitoring on (store,
/// no anomaly ban), `[identity]` with `users`.
pub fn config(up: SocketAddr, users: &Users) -> String {
    format!(
        "[server]\ndata_dir = \"@DATA_DIR@\"\nshutdown_grace = \"5s\"\naccess_log = \"off\"\n\n\
         [admin]\nlisten = \"127.0.0.1:@ADMIN@\"\n\n\
         [[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:@LISTEN@\"\nprotocol = \"http\"\n\n\
         [[upstream]]\nname = \"app\"\nservers = [\"{up}\"]\n\n\
         [[route]]\nname = \"shop\"\npath_prefix = \"/\"\nupstream = \"app\"\n[route.waf]\nmode = \"block\"\n\n\
         [identity]\nusers_db = {}\n\n\
         [[identity.access.rules]]\nname = \"public\"\npaths = [\"/\"]\npolicy = \"bypass\"\n",
        toml_str(&users.path())
    )
}

/// Logs a raw-HTTP browser into the dashboard; returns the POST's response.
pub fn login(b: &mut Browser, admin: SocketAddr, user: &str, password: &str) -> Response {
    let r = b.get(admin, "/dashboard/login", "");
    assert_eq!(r.status, 200, "{}", r.body_str());
    let t = hidden(&r.body_str(), "csrf").expect("csrf field");
    b.post(
        admin,
        "/dashboard/login",
        &format!("csrf={t}&username={}&password={}", enc(user), enc(password)),
    )
}

/// The page's CSRF token (hidden field).
pub fn csrf_of(page: &str) -> String {
    hidden(page, "csrf").unwrap_or_else(|| panic!("no csrf in {page}"))
}

/// An admin API call (JSON body).
pub fn admin_call(p: &Palisade, method: &str, path: &str, body: &str) -> Response {
    roundtrip(
        p.admin_addr(),
        format!(
            "{method} {path} HTTP/1.1\r\nHost: admin\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
}

/// Stored events of `kind` (admin `GET /events`).
pub fn stored(p: &Palisade, kind: &str) -> Vec<serde_json::Value> {
    let r = p.admin_get(&format!("/events?kind={kind}&limit=1000"));
    serde_json::from_str::<serde_json::Value>(&r.body_str())
        .unwrap()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Waits until `n` events of `kind` are stored.
pub fn wait_stored(p: &Palisade, kind: &str, n: usize) {
    let ok = wait_for(Duration::from_secs(20), || {
        (stored(p, kind).len() >= n).then_some(())
    });
    assert!(
        ok.is_some(),
        "{n} {kind} events were not stored: {:?}",
        stored(p, kind)
    );
}

/// Sends a request through the proxy; returns the status.
pub fn send(p: &Palisade, target: &str) -> u16 {
    roundtrip(
        p.addr(),
        format!("GET {target} HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .status
}

/// An open `/dashboard/feed` stream read as raw bytes.
pub struct Sse {
    s: TcpStream,
    pub buf: Vec<u8>,
}

impl Sse {
    pub fn open(admin: SocketAddr, cookie: &str) -> Sse {
        let mut s = TcpStream::connect_timeout(&admin, Duration::from_secs(5)).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        write!(
            s,
            "GET /dashboard/feed HTTP/1.1\r\nHost: admin\r\nAccept: text/event-stream\r\nCookie: {cookie}\r\n\r\n"
        )
        .unwrap();
        Sse { s, buf: Vec::new() }
    }

    /// Reads until `needle` has been received (or panics after `within`).
    pub fn wait_for(&mut self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        let mut chunk = [0u8; 8192];
        loop {
            let text = String::from_utf8_lossy(&self.buf).to_string();
            if text.contains(needle) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "feed never sent {needle:?}: {text}"
            );
            match self.s.read(&mut chunk) {
                Ok(0) => panic!("feed closed: {text}"),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(_) => {}
            }
        }
    }
}
