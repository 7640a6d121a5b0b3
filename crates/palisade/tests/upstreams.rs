//! Upstream pools: error answers (502/504 with the request id), active
//! health checks, load balancing (round robin, least connections) and the
//! retry rule (another server only when the connection could not be made).

// Test helpers: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::collections::HashMap;
use std::io::BufRead;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// An address on which nothing listens: a port bound and released.
fn dead_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

fn healthy(p: &Palisade, server: SocketAddr) -> Option<f64> {
    metric_value(
        &p.metrics(),
        "palisade_upstream_healthy",
        &[("upstream", "app"), ("server", &server.to_string())],
    )
}

fn wait_healthy(p: &Palisade, server: SocketAddr, want: f64, within: Duration) -> bool {
    wait_for(within, || (healthy(p, server) == Some(want)).then_some(())).is_some()
}

fn count_by_upstream(p: &Palisade, path: &str, n: usize) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for i in 0..n {
        let r = http_get(p.addr(), &format!("{path}{i}"), "test.local");
        assert_eq!(r.status, 200, "request {i}: {} {}", r.status, r.body_str());
        *m.entry(r.header("x-upstream").unwrap_or("?").to_string())
            .or_insert(0) += 1;
    }
    m
}

// --- error answers ----------------------------------------------------------

#[test]
fn upstream_down_gives_502_with_generated_request_id_in_body() {
    let p = Palisade::start(&ConfigSpec::proxy(&[dead_addr()]));
    let r = http_get(p.addr(), "/", "test.local");
    assert_eq!(r.status, 502, "{}", r.body_str());
    let id = r
        .header("x-request-id")
        .expect("X-Request-Id on a 502")
        .to_string();
    assert!(!id.is_empty());
    assert!(
        r.body_str().contains(&id),
        "502 body {:?} does not carry the request id {id}",
        r.body_str()
    );
}

#[test]
fn upstream_down_502_carries_client_request_id() {
    let p = Palisade::start(&ConfigSpec::proxy(&[dead_addr()]));
    let r = roundtrip(
        p.addr(),
        b"GET / HTTP/1.1\r\nHost: test.local\r\nX-Request-Id: client-id-502\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 502);
    assert_eq!(r.header("x-request-id"), Some("client-id-502"));
    assert!(r.body_str().contains("client-id-502"), "{}", r.body_str());
}

#[test]
fn upstream_response_timeout_gives_504_with_request_id() {
    let mut o = UpstreamOpts::named("sleepy");
    o.delay = Duration::from_secs(15);
    let up = Upstream::start_opts(o, 0);
    let p =
        Palisade::start(&ConfigSpec::proxy(&[up.addr]).limit("upstream_response_timeout = \"1s\""));
    let r = http_get(p.addr(), "/slow", "test.local");
    assert_eq!(r.status, 504, "{}", r.body_str());
    let id = r.header("x-request-id").expect("X-Request-Id on a 504");
    assert!(r.body_str().contains(id));
}

// --- active health checks ---------------------------------------------------

#[test]
fn health_checks_take_a_server_out_and_put_it_back() {
    let mut a = Upstream::start("a");
    let b = Upstream::start("b");
    let a_addr = a.addr;
    let mut spec = ConfigSpec::proxy(&[a.addr, b.addr]);
    spec.upstreams[0].health_check = vec![
        "path = \"/healthz\"".into(),
        "interval = \"300ms\"".into(),
        "timeout = \"1s\"".into(),
        "healthy_threshold = 2".into(),
        "unhealthy_threshold = 2".into(),
    ];
    let p = Palisade::start(&spec);
    assert!(
        wait_healthy(&p, a.addr, 1.0, Duration::from_secs(20)),
        "server a never reported healthy:\n{}",
        p.metrics()
    );
    assert!(wait_healthy(&p, b.addr, 1.0, Duration::from_secs(20)));
    assert!(!a.requests_to("/healthz").is_empty(), "no probe reached a");
    let both = count_by_upstream(&p, "/before-", 10);
    assert!(
        both.get("a").copied().unwrap_or(0) > 0 && both.get("b").copied().unwrap_or(0) > 0,
        "{both:?}"
    );

    // Take a down. No client traffic: only the active checks can notice.
    a.stop();
    assert!(
        wait_healthy(&p, a_addr, 0.0, Duration::from_secs(20)),
        "a still healthy 20 s after it stopped:\n{}",
        p.metrics()
    );
    let during = count_by_upstream(&p, "/during-", 10);
    assert_eq!(during.get("b"), Some(&10), "{during:?}");

    // Bring a back on the same port.
    let a2 = Upstream::start_opts(UpstreamOpts::named("a"), a_addr.port());
    assert!(
        wait_healthy(&p, a_addr, 1.0, Duration::from_secs(20)),
        "a not healthy again 20 s after restart:\n{}",
        p.metrics()
    );
    assert!(
        !a2.requests_to("/healthz").is_empty(),
        "no probe reached restarted a"
    );
    let after = count_by_upstream(&p, "/after-", 10);
    assert!(
        after.get("a").copied().unwrap_or(0) >= 3,
        "restarted server gets no traffic: {after:?}"
    );
}

// --- load balancing ---------------------------------------------------------

#[test]
fn round_robin_distributes_sequential_requests() {
    let a = Upstream::start("a");
    let b = Upstream::start("b");
    let p = Palisade::start(&ConfigSpec::proxy(&[a.addr, b.addr]));
    let m = count_by_upstream(&p, "/rr-", 20);
    let (na, nb) = (
        m.get("a").copied().unwrap_or(0),
        m.get("b").copied().unwrap_or(0),
    );
    assert_eq!(na + nb, 20, "{m:?}");
    assert!(
        (7..=13).contains(&na),
        "round robin over 2 servers gave {m:?}"
    );
}

#[test]
fn least_conn_sends_new_requests_to_the_idle_server() {
    // Both servers are identical; requests to /slow take 6 s on either.
    let mk = |name: &str| {
        let mut o = UpstreamOpts::named(name);
        o.slow_prefix = Some(("/slow".to_string(), Duration::from_secs(6)));
        Upstream::start_opts(o, 0)
    };
    let a = mk("a");
    let b = mk("b");
    let mut spec = ConfigSpec::proxy(&[a.addr, b.addr]);
    spec.upstreams[0].balance = "least_conn".into();
    let p = Palisade::start(&spec);
    let addr = p.addr();

    let slow = std::thread::spawn(move || http_get(addr, "/slow", "test.local"));
    // Find which server holds the slow request.
    let busy = wait_for(IO_TIMEOUT, || {
        if !a.requests_to("/slow").is_empty() {
            Some("a")
        } else if !b.requests_to("/slow").is_empty() {
            Some("b")
        } else {
            None
        }
    })
    .expect("slow request never reached an upstream");
    let idle = if busy == "a" { "b" } else { "a" };

    // While it is held, every new request must go to the idle server; round
    // robin would send half of them to the busy one.
    let m = count_by_upstream(&p, "/fast-", 8);
    assert_eq!(m.get(idle), Some(&8), "busy={busy}: {m:?}");

    let r = slow.join().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-upstream"), Some(busy));
}

#[test]
fn least_conn_favours_the_fast_server_under_concurrent_load() {
    let mut so = UpstreamOpts::named("slow");
    so.delay = Duration::from_millis(300);
    let slow = Upstream::start_opts(so, 0);
    let fast = Upstream::start("fast");
    let mut spec = ConfigSpec::proxy(&[slow.addr, fast.addr]);
    spec.upstreams[0].balance = "least_conn".into();
    let p = Palisade::start(&spec);
    let addr = p.addr();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                let mut got = Vec::new();
                for i in 0..10 {
                    let r = http_get(addr, &format!("/load-{t}-{i}"), "test.local");
                    got.push((r.status, r.header("x-upstream").unwrap_or("?").to_string()));
                }
                got
            })
        })
        .collect();
    let mut m: HashMap<String, usize> = HashMap::new();
    for t in threads {
        for (status, who) in t.join().unwrap() {
            assert_eq!(status, 200);
            *m.entry(who).or_insert(0) += 1;
        }
    }
    let (ns, nf) = (
        m.get("slow").copied().unwrap_or(0),
        m.get("fast").copied().unwrap_or(0),
    );
    assert_eq!(ns + nf, 40);
    // Round robin would give 20/20.
    assert!(nf > 2 * ns, "least_conn distribution {m:?}");
}

// --- retries ----------------------------------------------------------------

#[test]
fn connect_failure_is_retried_on_another_server() {
    let good = Upstream::start("good");
    let p = Palisade::start(&ConfigSpec::proxy(&[dead_addr(), good.addr]));
    for i in 0..6 {
        let r = roundtrip(
            p.addr(),
            format!("POST /retry-{i} HTTP/1.1\r\nHost: test.local\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbody").as_bytes(),
        );
        assert_eq!(r.status, 200, "request {i}: {}", r.body_str());
        assert_eq!(r.header("x-upstream"), Some("good"));
    }
    // Each request reached the good server exactly once, body intact.
    for i in 0..6 {
        let got = good.requests_to(&format!("/retry-{i}"));
        assert_eq!(got.len(), 1, "/retry-{i} arrived {} times", got.len());
        assert_eq!(got[0].body, b"body");
    }
}

#[test]
fn failure_after_connect_is_not_retried() {
    // "broken" accepts and reads the request, then closes without answering:
    // the request may have had effects, so it must not be replayed elsewhere.
    let mut bo = UpstreamOpts::named("broken");
    bo.drop_without_response = true;
    let broken = Upstream::start_opts(bo, 0);
    let good = Upstream::start("good");
    let p = Palisade::start(&ConfigSpec::proxy(&[broken.addr, good.addr]));
    let mut failed = 0;
    for i in 0..6 {
        let path = format!("/once-{i}");
        let r = roundtrip(
            p.addr(),
            format!("POST {path} HTTP/1.1\r\nHost: test.local\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbody").as_bytes(),
        );
        let at_good = good.requests_to(&path).len();
        let at_broken = broken.requests_to(&path).len();
        assert_eq!(
            at_good + at_broken,
            1,
            "{path} reached good {at_good}x, broken {at_broken}x"
        );
        if at_broken == 1 {
            failed += 1;
            assert_eq!(
                r.status,
                502,
                "{path} died at the upstream: {}",
                r.body_str()
            );
        } else {
            assert_eq!(r.status, 200);
        }
    }
    assert!(failed > 0, "round robin never picked the broken server");
}

// --- connect timeout ----------------------------------------------------------

/// A port whose connects hang (tests/python/blackhole.py), stopped on drop.
struct Blackhole {
    child: Child,
    addr: SocketAddr,
}

impl Blackhole {
    fn start() -> Blackhole {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/python/blackhole.py"
        );
        let mut child = Command::new("python3")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 must be installed");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line.trim().parse().expect("blackhole port");
        Blackhole {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn upstream_connect_timeout_gives_504_with_request_id() {
    let hole = Blackhole::start();
    let p = Palisade::start(
        &ConfigSpec::proxy(&[hole.addr]).limit("upstream_connect_timeout = \"1s\""),
    );
    let start = Instant::now();
    let r = http_get(p.addr(), "/", "test.local");
    assert_eq!(r.status, 504, "{}", r.body_str());
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "answered before the timeout"
    );
    let id = r.header("x-request-id").expect("X-Request-Id on a 504");
    assert!(r.body_str().contains(id));
}

#[test]
fn connect_timeout_is_retried_on_another_server() {
    let hole = Blackhole::start();
    let good = Upstream::start("good");
    let p = Palisade::start(
        &ConfigSpec::proxy(&[hole.addr, good.addr]).limit("upstream_connect_timeout = \"1s\""),
    );
    for i in 0..4 {
        let r = http_get(p.addr(), &format!("/ct-{i}"), "test.local");
        assert_eq!(r.status, 200, "request {i}: {}", r.body_str());
        assert_eq!(r.header("x-upstream"), Some("good"));
    }
}
