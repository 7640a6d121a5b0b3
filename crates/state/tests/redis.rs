//! Redis-specific behaviour against a real `redis-server` on loopback: two
//! nodes sharing state, failure modes when Redis dies or hangs, reconnection,
//! pipelining and the script cache.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::RedisServer;
use state::{now_micros, Ban, Error, FailMode, Quota, Store};

fn ban(target: &str, jail: &str) -> Ban {
    Ban {
        target: target.parse().unwrap(),
        reason: format!("{jail} threshold crossed"),
        jail: jail.into(),
        created_us: now_micros(),
        expires_us: Some(now_micros() + 600_000_000),
        offences: 1,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Polls `cond` every 20 ms for at most `limit`.
async fn eventually(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends one raw command to the server (outside the client under test).
fn raw(port: u16, cmd: &str) -> String {
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    c.write_all(format!("{cmd}\r\n").as_bytes()).unwrap();
    let mut b = [0u8; 256];
    let n = c.read(&mut b).unwrap();
    String::from_utf8_lossy(&b[..n]).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_share_bans_budgets_counters_and_sessions() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let node1 = Store::open(&server.config()).await.unwrap();
    let node2 = Store::open(&server.config()).await.unwrap();
    let now = now_micros();

    // A ban made on node 1 is enforced on node 2 (pub/sub), and lifted there
    // at once when node 1 deletes it.
    node1.ban_add(ban("198.51.100.20", "scan")).await.unwrap();
    node1
        .ban_add(ban("2001:db8:aa:bb::/64", "waf"))
        .await
        .unwrap();
    eventually(Duration::from_secs(2), "ban reaches node 2", || {
        node2.ban_check(ip("198.51.100.20"), now_micros()).is_some()
            && node2
                .ban_check(ip("2001:db8:aa:bb::7"), now_micros())
                .is_some()
    })
    .await;
    assert_eq!(
        node2.ban_check(ip("198.51.100.20"), now).unwrap().jail,
        "scan"
    );
    assert_eq!(node2.ban_list(now_micros()).await.unwrap().len(), 2);
    assert!(node1
        .ban_delete(&"198.51.100.20".parse().unwrap())
        .await
        .unwrap());
    eventually(Duration::from_secs(2), "unban reaches node 2", || {
        node2.ban_check(ip("198.51.100.20"), now_micros()).is_none()
    })
    .await;

    // A rate budget spent on node 1 is spent for node 2.
    let q = Quota::per_minute(1, 10);
    for _ in 0..10 {
        assert!(
            node1
                .rate_limit("ip:198.51.100.30", &q, 1, now)
                .await
                .unwrap()
                .allowed
        );
    }
    let d = node2
        .rate_limit("ip:198.51.100.30", &q, 1, now)
        .await
        .unwrap();
    assert!(!d.allowed && !d.degraded);
    assert_eq!(
        d.retry_after,
        Duration::from_secs(60),
        "one emission interval"
    );

    // Jail counters and distinct sets add up across nodes.
    let w = Duration::from_secs(60);
    assert_eq!(node1.incr("jail:waf:1.2.3.4", w, now).await.unwrap(), 1);
    assert_eq!(node2.incr("jail:waf:1.2.3.4", w, now).await.unwrap(), 2);
    assert_eq!(
        node1
            .add_distinct("scan:1.2.3.4", b"/admin", w, now)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        node2
            .add_distinct("scan:1.2.3.4", b"/admin", w, now)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        node2
            .add_distinct("scan:1.2.3.4", b"/.env", w, now)
            .await
            .unwrap(),
        2
    );

    // A session made on node 1 is valid on node 2; a challenge nonce is
    // usable once across both.
    node1
        .kv_set("sess:abc", b"alice", Some(Duration::from_secs(60)), now)
        .await
        .unwrap();
    assert_eq!(
        node2.kv_get("sess:abc", now).await.unwrap().as_deref(),
        Some(&b"alice"[..])
    );
    node1
        .kv_set("nonce:1", b"198.51.100.30", None, now)
        .await
        .unwrap();
    assert!(node2
        .kv_compare_delete("nonce:1", b"198.51.100.30", now)
        .await
        .unwrap());
    assert!(!node1
        .kv_compare_delete("nonce:1", b"198.51.100.30", now)
        .await
        .unwrap());
    assert!(node1.stats().redis_connects >= 2);
    assert!(node1.backend_connected());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gcra_is_exact_across_nodes_under_concurrency() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let nodes = [
        Store::open(&server.config()).await.unwrap(),
        Store::open(&server.config()).await.unwrap(),
    ];
    let q = Quota::per_second(1, 50);
    let now = now_micros();
    let allowed = Arc::new(AtomicU32::new(0));
    let mut tasks = Vec::new();
    for t in 0..16 {
        let (s, allowed) = (nodes[t % 2].clone(), allowed.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                if s.rate_limit("route:/login", &q, 1, now)
                    .await
                    .unwrap()
                    .allowed
                {
                    allowed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        allowed.load(Ordering::Relaxed),
        50,
        "160 attempts, burst 50"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_killed_applies_default_failure_modes_then_recovers() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let cfg = server.config();
    assert_eq!(cfg.failure.rate_limit, FailMode::Open);
    assert_eq!(cfg.failure.sessions, FailMode::Closed);
    let node = Store::open(&cfg).await.unwrap();
    let now = now_micros();
    node.ban_add(ban("203.0.113.66", "waf")).await.unwrap();
    node.kv_set("sess:x", b"bob", None, now).await.unwrap();
    let q = Quota::per_minute(1, 1);
    assert!(node.rate_limit("ip:a", &q, 1, now).await.unwrap().allowed);

    server.kill();
    let start = Instant::now();
    // Rate limits fail open (flagged degraded), even for a spent budget.
    let mut d = node.rate_limit("ip:a", &q, 1, now).await.unwrap();
    for _ in 0..50 {
        if d.degraded {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        d = node.rate_limit("ip:a", &q, 1, now).await.unwrap();
    }
    assert!(d.allowed && d.degraded, "{d:?}");
    // Cached bans are still enforced.
    assert!(node.ban_check(ip("203.0.113.66"), now_micros()).is_some());
    // Sessions fail closed with a retryable error.
    let e = node.kv_get("sess:x", now).await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    // Counters fail open: nothing counted, nobody jailed.
    assert_eq!(
        node.incr("jail:x", Duration::from_secs(60), now)
            .await
            .unwrap(),
        0
    );
    // A ban made during the outage is enforced here and queued.
    node.ban_add(ban("203.0.113.67", "scan")).await.unwrap();
    assert!(node.ban_check(ip("203.0.113.67"), now_micros()).is_some());
    assert!(!node.backend_connected());
    // Failing fast: no call waited for the 2 s request timeout.
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    let st = node.stats();
    assert!(
        st.failures_rate_limit >= 1 && st.failures_sessions >= 1,
        "{st:?}"
    );
    assert!(
        st.failures_counters >= 1 && st.failures_ban_writes >= 1,
        "{st:?}"
    );
    assert!(
        st.decided_open >= 2 && st.decided_closed >= 1 && st.decided_local >= 1,
        "{st:?}"
    );

    // Back up (AOF kept the data): the node reconnects by itself, the
    // session is back, the queued ban reaches Redis and another node.
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match node.kv_get("sess:x", now_micros()).await {
            Ok(v) => {
                assert_eq!(v.as_deref(), Some(&b"bob"[..]));
                break;
            }
            Err(_) => {
                assert!(Instant::now() < deadline, "no reconnect after restart");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    let d = node.rate_limit("ip:a", &q, 1, now).await.unwrap();
    assert!(
        !d.degraded && !d.allowed,
        "budget spent before the outage is still spent"
    );
    let other = Store::open(&cfg).await.unwrap();
    eventually(
        Duration::from_secs(5),
        "queued ban pushed after reconnect",
        || other.ban_check(ip("203.0.113.67"), now_micros()).is_some(),
    )
    .await;
    assert!(other.ban_check(ip("203.0.113.66"), now_micros()).is_some());
    assert!(node.stats().redis_connects >= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn closed_and_local_failure_modes() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let mut cfg = server.config();
    cfg.failure.rate_limit = FailMode::Closed;
    cfg.failure.counters = FailMode::Local;
    cfg.failure.sessions = FailMode::Local;
    cfg.failure.ban_writes = FailMode::Closed;
    let node = Store::open(&cfg).await.unwrap();
    let now = now_micros();
    node.rate_limit("warm", &Quota::per_second(1, 1), 1, now)
        .await
        .unwrap();
    server.kill();
    let q = Quota::per_second(1, 5);
    let mut d = node.rate_limit("ip:b", &q, 1, now).await.unwrap();
    for _ in 0..50 {
        if d.degraded {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        d = node.rate_limit("ip:b", &q, 1, now).await.unwrap();
    }
    assert!(!d.allowed && d.degraded, "closed denies: {d:?}");
    assert_eq!(d.retry_after, Duration::from_secs(1));
    // Local: counted on this node meanwhile.
    assert_eq!(
        node.incr("c", Duration::from_secs(60), now).await.unwrap(),
        1
    );
    assert_eq!(
        node.incr("c", Duration::from_secs(60), now).await.unwrap(),
        2
    );
    node.kv_set("s", b"v", None, now).await.unwrap();
    assert_eq!(
        node.kv_get("s", now).await.unwrap().as_deref(),
        Some(&b"v"[..])
    );
    // Closed ban writes: refused, and not applied locally either.
    let e = node.ban_add(ban("192.0.2.99", "manual")).await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert!(node.ban_check(ip("192.0.2.99"), now_micros()).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_server_costs_one_timeout_not_a_hang() {
    // Accepts connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = Arc::new(std::sync::Mutex::new(Vec::new()));
    let h2 = held.clone();
    std::thread::spawn(move || {
        for c in listener.incoming().take(16).flatten() {
            h2.lock().unwrap().push(c);
        }
    });
    let mut cfg = state::StateConfig {
        backend: state::BackendKind::Redis,
        ..Default::default()
    };
    cfg.redis.url = format!("redis://127.0.0.1:{port}");
    cfg.redis.timeout_ms = 200;
    let node = tokio::time::timeout(Duration::from_secs(5), Store::open(&cfg))
        .await
        .expect("open is bounded")
        .unwrap();
    let start = Instant::now();
    let d = node
        .rate_limit("k", &Quota::per_second(1, 1), 1, now_micros())
        .await
        .unwrap();
    let took = start.elapsed();
    assert!(d.allowed && d.degraded, "{d:?}");
    assert!(
        took >= Duration::from_millis(150) && took < Duration::from_secs(3),
        "{took:?}"
    );
    let e = node.kv_get("k", now_micros()).await.unwrap_err();
    assert!(matches!(e, Error::Timeout(_)) && e.is_retryable(), "{e}");
    // After BREAKER_THRESHOLD timeouts in a row, requests fail fast.
    for _ in 0..state::redis::BREAKER_THRESHOLD {
        let _ = node.kv_get("k", now_micros()).await;
    }
    let start = Instant::now();
    let e = node.kv_get("k", now_micros()).await.unwrap_err();
    assert!(matches!(e, Error::Unavailable(_)), "{e}");
    let d = node
        .rate_limit("k", &Quota::per_second(1, 1), 1, now_micros())
        .await
        .unwrap();
    assert!(d.allowed && d.degraded);
    assert!(
        start.elapsed() < Duration::from_millis(150),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_degraded_when_redis_is_down_and_connects_later() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    server.kill();
    let node = Store::open(&server.config()).await.unwrap();
    let d = node
        .rate_limit("k", &Quota::per_second(1, 1), 1, now_micros())
        .await
        .unwrap();
    assert!(d.degraded);
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let d = node
            .rate_limit("k2", &Quota::per_second(1, 1), 1, now_micros())
            .await
            .unwrap();
        if !d.degraded {
            break;
        }
        assert!(Instant::now() < deadline, "never connected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_connection_carries_thousands_of_concurrent_requests() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mut cfg = server.config();
    cfg.redis.connections = 1;
    let node = Store::open(&cfg).await.unwrap();
    let now = now_micros();
    let mut tasks = Vec::new();
    for i in 0..2000u32 {
        let node = node.clone();
        tasks.push(tokio::spawn(async move {
            node.incr("hits", Duration::from_secs(60), now)
                .await
                .unwrap();
            node.kv_set(&format!("k{i}"), &i.to_be_bytes(), None, now)
                .await
                .unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        node.incr("hits", Duration::from_secs(60), now)
            .await
            .unwrap(),
        2001
    );
    assert_eq!(
        node.kv_get("k1234", now).await.unwrap(),
        Some(1234u32.to_be_bytes().to_vec())
    );
    assert_eq!(
        node.stats().redis_connects,
        1,
        "all over one multiplexed connection"
    );
}

#[tokio::test]
async fn scripts_reload_after_the_server_cache_is_flushed() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let node = Store::open(&server.config()).await.unwrap();
    let q = Quota::per_second(1, 2);
    let now = now_micros();
    assert!(node.rate_limit("k", &q, 1, now).await.unwrap().allowed);
    assert!(raw(server.port, "SCRIPT FLUSH").starts_with("+OK"));
    let d = node.rate_limit("k", &q, 1, now).await.unwrap();
    assert!(d.allowed && !d.degraded && d.remaining == 0, "{d:?}");
    assert!(
        raw(server.port, "KEYS *").contains("palisade:rl:k"),
        "keys carry the prefix"
    );
}

#[tokio::test]
async fn a_ban_is_in_force_locally_at_the_first_poll() {
    use std::future::Future;
    use std::task::{Context, Waker};
    let Some(server) = RedisServer::start() else {
        return;
    };
    let node = Store::open(&server.config()).await.unwrap();
    let mut fut = Box::pin(node.ban_add(ban("192.0.2.34", "scan")));
    let _ = fut.as_mut().poll(&mut Context::from_waker(Waker::noop()));
    assert!(node.ban_check(ip("192.0.2.34"), now_micros()).is_some());
    fut.await.unwrap();
    assert!(node.ban_check(ip("192.0.2.34"), now_micros()).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_and_database_from_the_url() {
    let Some(server) = RedisServer::start_with(&["--requirepass", "s3cret"]) else {
        return;
    };
    let mut cfg = server.config();
    cfg.redis.url = format!("redis://:s3cret@127.0.0.1:{}/3", server.port);
    let node = Store::open(&cfg).await.unwrap();
    let now = now_micros();
    node.kv_set("k", b"v", None, now).await.unwrap();
    assert!(node.backend_connected());
    // The key went to database 3.
    let mut c = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    c.write_all(b"AUTH s3cret\r\nSELECT 3\r\nEXISTS palisade:kv:k\r\n")
        .unwrap();
    let mut got = Vec::new();
    let mut b = [0u8; 64];
    while !got.ends_with(b":1\r\n") && !got.ends_with(b":0\r\n") {
        let n = c.read(&mut b).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&b[..n]);
    }
    assert_eq!(got, b"+OK\r\n+OK\r\n:1\r\n");

    // A wrong password: the store starts, degraded, and says why.
    cfg.redis.url = format!("redis://:wrong@127.0.0.1:{}/3", server.port);
    let bad = Store::open(&cfg).await.unwrap();
    assert!(!bad.backend_connected());
    let d = bad
        .rate_limit("k", &Quota::per_second(1, 1), 1, now)
        .await
        .unwrap();
    assert!(d.degraded);
    assert!(bad.kv_get("k", now).await.unwrap_err().is_retryable());
}

#[tokio::test]
async fn a_ban_far_in_the_future_is_stored() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let node = Store::open(&server.config()).await.unwrap();
    let mut b = ban("192.0.2.35", "manual");
    b.expires_us = Some(u64::MAX - 1);
    node.ban_add(b).await.unwrap();
    let other = Store::open(&server.config()).await.unwrap();
    assert!(other.ban_check(ip("192.0.2.35"), now_micros()).is_some());
}
