//! Two palisade nodes sharing one real Redis (`redis-server` on loopback,
//! started here): a ban made on one node is enforced by the other, lifted on
//! the other it is lifted on the first, and a per-IP rate budget is spent
//! across both nodes together.
//!
//! Needs the Debian package `redis-server`: under CI (`CI=true`) its absence
//! fails the test; otherwise the test is skipped with a printed reason.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A redis-server child on a free loopback port, killed on drop.
struct Redis {
    child: Child,
    port: u16,
    _dir: TempDir,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_redis() -> Option<Redis> {
    let bin = [
        "/usr/bin/redis-server",
        "/usr/local/bin/redis-server",
        "/usr/sbin/redis-server",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists());
    let Some(bin) = bin else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("redis-server is required under CI (Debian package redis-server)");
        }
        eprintln!("SKIPPED: redis-server is not installed (apt-get install redis-server)");
        return None;
    };
    let dir = TempDir::new("redis");
    let port = free_port();
    let child = Command::new(bin)
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start redis-server");
    let r = Redis {
        child,
        port,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(r)
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: test.local\r\nConnection: close\r\n\r\n").into_bytes()
}

/// 200, 403, 429, or 0 when the connection was refused at accept.
fn status(p: &Palisade, path: &str) -> u16 {
    try_roundtrip(p.addr(), &get(path))
        .map(|r| r.status)
        .unwrap_or(0)
}

fn ban(p: &Palisade, args: &[&str]) -> String {
    let admin = p.admin_addr().to_string();
    let mut all = vec!["ban"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--admin", &admin]);
    let (st, out, err) = run_cli(&all, Duration::from_secs(30));
    assert!(st.success(), "palisade {all:?}: {out}{err}");
    out
}

#[test]
fn two_nodes_share_bans_and_rate_budgets_through_redis() {
    let Some(redis) = start_redis() else { return };
    let up = Upstream::start("app");
    let toml = format!(
        "{}\n[state]\nbackend = \"redis\"\n[state.redis]\nurl = \"redis://127.0.0.1:{}/0\"\ntimeout_ms = 2000\nban_sync_interval_ms = 500\n\n[[shield.rate_limit]]\nname = \"per-ip\"\nrate = \"1/h\"\nburst = 6\npath_prefix = \"/budget\"\n",
        ConfigSpec::proxy(&[up.addr]).render(),
        redis.port
    );
    let n1 = Palisade::start_toml(&toml);
    let n2 = Palisade::start_toml(&toml);

    // One budget of 6 for this client, spent on both nodes.
    let mut ok = 0;
    for i in 0..4 {
        for n in [&n1, &n2] {
            match status(n, &format!("/budget/{i}")) {
                200 => ok += 1,
                429 => {}
                s => panic!("status {s}\n{}", n.logs()),
            }
        }
    }
    assert_eq!(ok, 6, "8 requests over two nodes against one burst of 6");

    // A ban made on node 1 is enforced by node 2.
    assert_eq!(status(&n2, "/free"), 200);
    let out = ban(
        &n1,
        &[
            "add",
            "127.0.0.1",
            "--duration",
            "10m",
            "--reason",
            "shared",
        ],
    );
    assert!(out.starts_with("banned 127.0.0.1"), "{out}");
    let refused = wait_for(Duration::from_secs(10), || {
        matches!(status(&n2, "/after-ban"), 0 | 403).then_some(())
    });
    assert!(
        refused.is_some(),
        "node 2 still serves a client banned on node 1\n{}",
        n2.logs()
    );
    assert!(ban(&n2, &["list"]).contains("shared"));

    // Lifted on node 2, lifted on node 1.
    assert_eq!(
        ban(&n2, &["del", "127.0.0.1"]).trim(),
        "lifted the ban of 127.0.0.1"
    );
    let served = wait_for(Duration::from_secs(10), || {
        (status(&n1, "/after-del") == 200).then_some(())
    });
    assert!(
        served.is_some(),
        "node 1 still refuses after the ban was lifted on node 2"
    );
}

#[test]
fn redis_killed_mid_test_cached_bans_hold_and_rate_limits_fail_open() {
    let Some(mut redis) = start_redis() else {
        return;
    };
    let up = Upstream::start("app");
    let toml = format!(
        "{}\n[state]\nbackend = \"redis\"\n[state.redis]\nurl = \"redis://127.0.0.1:{}/0\"\ntimeout_ms = 300\nban_sync_interval_ms = 500\n\n[shield]\ntrusted_proxies = [\"127.0.0.1\"]\n\n[[shield.rate_limit]]\nname = \"per-ip\"\nrate = \"1/h\"\nburst = 2\npath_prefix = \"/budget\"\n",
        ConfigSpec::proxy(&[up.addr]).render(),
        redis.port
    );
    let p = Palisade::start_toml(&toml);
    assert_eq!(status(&p, "/budget/1"), 200);
    assert_eq!(status(&p, "/budget/2"), 200);
    assert_eq!(
        status(&p, "/budget/3"),
        429,
        "budget spent while Redis is up"
    );
    ban(
        &p,
        &["add", "192.0.2.0/24", "--reason", "before the outage"],
    );

    let _ = redis.child.kill();
    let _ = redis.child.wait();

    // Rate limits fail open (the default): the site keeps serving.
    let served = wait_for(Duration::from_secs(15), || {
        (status(&p, "/budget/4") == 200).then_some(())
    });
    assert!(
        served.is_some(),
        "rate limit did not fail open with Redis down\n{}",
        p.logs()
    );
    assert_eq!(status(&p, "/plain"), 200);
    // Bans known before the outage are still enforced (node-local cache).
    assert!(ban(&p, &["list"]).contains("before the outage"));
    let r = roundtrip(
        p.addr(),
        b"GET /banned HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 192.0.2.5\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 403, "a ban made before the outage is enforced");
    assert!(up.requests_to("/banned").is_empty());
    assert!(
        p.logs().to_ascii_lowercase().contains("redis"),
        "the outage is logged\n{}",
        p.logs()
    );
}

#[test]
fn scanner_spread_over_two_nodes_is_banned_on_both() {
    // A scanner behind a load balancer probes 3 distinct paths on each node:
    // only the shared counter sees 6, the threshold.
    let Some(redis) = start_redis() else { return };
    let mut o = UpstreamOpts::named("app");
    o.status = 404;
    let up = Upstream::start_opts(o, 0);
    let toml = format!(
        "{}\n[state]\nbackend = \"redis\"\n[state.redis]\nurl = \"redis://127.0.0.1:{}/0\"\ntimeout_ms = 2000\nban_sync_interval_ms = 500\n\n[[shield.jail]]\nname = \"scanners\"\nevent = \"scan\"\nthreshold = 6\nwindow = \"1m\"\nban = \"10m\"\n",
        ConfigSpec::proxy(&[up.addr]).render(),
        redis.port
    );
    let n1 = Palisade::start_toml(&toml);
    let n2 = Palisade::start_toml(&toml);
    for i in 0..5 {
        let node = if i % 2 == 0 { &n1 } else { &n2 };
        assert_eq!(status(node, &format!("/probe/{i}")), 404);
    }
    // Five distinct paths so far; repeating one adds nothing.
    assert_eq!(status(&n1, "/probe/0"), 404);
    assert_eq!(status(&n2, "/probe/1"), 404);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(ban(&n1, &["list"]).trim(), "no active bans");
    assert_eq!(status(&n2, "/probe/5"), 404);
    for (name, n) in [("node 1", &n1), ("node 2", &n2)] {
        let refused = wait_for(Duration::from_secs(10), || {
            matches!(status(n, "/after-ban"), 0 | 403).then_some(())
        });
        assert!(
            refused.is_some(),
            "{name} still serves the scanner\n{}",
            n.logs()
        );
    }
    let list = ban(&n1, &["list"]);
    assert!(list.contains("scanners"), "{list}");
    assert!(list.contains("6 scan events within 60s"), "{list}");
    assert_eq!(
        list.lines().filter(|l| l.contains("127.0.0.1")).count(),
        1,
        "one ban, not one per node: {list}"
    );
}
