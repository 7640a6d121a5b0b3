//! The same behaviour tests run against every backend: each backend module
//! at the bottom builds a store and instantiates the whole suite for it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use state::{now_micros, Ban, Error, IpPrefix, Quota, Store, MAX_DISTINCT_MEMBERS, MAX_KEY_LEN};

fn uniq(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{tag}:{}:{}",
        now_micros(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn ban(target: &str, expires_in: Option<Duration>, jail: &str) -> Ban {
    let now = now_micros();
    Ban {
        target: target.parse().unwrap(),
        reason: format!("test ban of {target}"),
        jail: jail.into(),
        created_us: now,
        expires_us: expires_in.map(|d| now + d.as_micros() as u64),
        offences: 2,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub async fn gcra_burst_then_interval(s: &Store) {
    let key = uniq("rl");
    let q = Quota::per_second(10, 5);
    let now = now_micros();
    for i in 0..5 {
        let d = s.rate_limit(&key, &q, 1, now).await.unwrap();
        assert!(d.allowed, "request {i} within the burst");
        assert_eq!(d.remaining, 4 - i);
        assert_eq!(d.limit, 5);
        assert!(!d.degraded);
    }
    let d = s.rate_limit(&key, &q, 1, now).await.unwrap();
    assert!(!d.allowed);
    assert_eq!(d.retry_after, Duration::from_millis(100));
    assert_eq!(d.reset_after, Duration::from_millis(500));
    // One emission interval later exactly one more request fits.
    let later = now + 100_000;
    assert!(s.rate_limit(&key, &q, 1, later).await.unwrap().allowed);
    assert!(!s.rate_limit(&key, &q, 1, later).await.unwrap().allowed);
    // Another key has its own budget.
    assert!(
        s.rate_limit(&uniq("rl"), &q, 1, later)
            .await
            .unwrap()
            .allowed
    );
}

pub async fn gcra_concurrent_exact(s: &Store) {
    let key = Arc::new(uniq("rl-conc"));
    let q = Quota::per_second(1, 100);
    let now = now_micros();
    let allowed = Arc::new(AtomicU32::new(0));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (s, key, allowed) = (s.clone(), key.clone(), allowed.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..20 {
                if s.rate_limit(&key, &q, 1, now).await.unwrap().allowed {
                    allowed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // 320 attempts at one instant against a burst of 100: exactly 100 pass.
    assert_eq!(allowed.load(Ordering::Relaxed), 100);
}

pub async fn gcra_real_clock_budget(s: &Store) {
    // 8 clients hammer one key for ~0.6 s against 20/s with burst 5: they
    // get the burst plus one request per 50 ms between the first and the
    // last request, within one.
    let key = Arc::new(uniq("rl-clock"));
    let q = Quota::per_second(20, 5);
    let allowed = Arc::new(AtomicU32::new(0));
    let end = now_micros() + 600_000;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (s, key, allowed) = (s.clone(), key.clone(), allowed.clone());
        tasks.push(tokio::spawn(async move {
            let (mut first, mut last) = (u64::MAX, 0);
            loop {
                let now = now_micros();
                if now >= end {
                    return (first, last);
                }
                if s.rate_limit(&key, &q, 1, now).await.unwrap().allowed {
                    allowed.fetch_add(1, Ordering::Relaxed);
                }
                first = first.min(now);
                last = now;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }));
    }
    let (mut first, mut last) = (u64::MAX, 0);
    for t in tasks {
        let (f, l) = t.await.unwrap();
        (first, last) = (first.min(f), last.max(l));
    }
    let expected = 5 + (last - first) / q.interval_us();
    let got = u64::from(allowed.load(Ordering::Relaxed));
    assert!(
        got.abs_diff(expected) <= 1,
        "allowed {got}, expected {expected} +-1"
    );
}

pub async fn gcra_rejects_bad_quota(s: &Store) {
    let e = s
        .rate_limit("k", &Quota::per_second(0, 1), 1, 0)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidInput(_)) && !e.is_retryable());
    let e = s
        .rate_limit("k", &Quota::per_second(1, 2), 3, 0)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidInput(_)));
    let long = "k".repeat(MAX_KEY_LEN + 1);
    let e = s
        .rate_limit(&long, &Quota::per_second(1, 1), 1, 0)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidInput(_)));
    assert!(matches!(
        s.kv_get("", 0).await.unwrap_err(),
        Error::InvalidInput(_)
    ));
}

pub async fn counter_counts_within_window(s: &Store) {
    let key = uniq("ctr");
    let w = Duration::from_millis(400);
    for expected in 1..=3 {
        assert_eq!(s.incr(&key, w, now_micros()).await.unwrap(), expected);
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        s.incr(&key, w, now_micros()).await.unwrap(),
        1,
        "window expired"
    );
}

pub async fn distinct_counts_distinct_members(s: &Store) {
    let key = uniq("dist");
    let w = Duration::from_secs(30);
    let now = now_micros();
    assert_eq!(s.add_distinct(&key, b"/a", w, now).await.unwrap(), 1);
    assert_eq!(s.add_distinct(&key, b"/a", w, now).await.unwrap(), 1);
    assert_eq!(s.add_distinct(&key, b"/b", w, now).await.unwrap(), 2);
    let mut last = 0;
    for i in 0..200 {
        last = s
            .add_distinct(&key, format!("/p{i}").as_bytes(), w, now)
            .await
            .unwrap();
    }
    assert_eq!(last, MAX_DISTINCT_MEMBERS as u64, "saturates at the cap");
    let short = uniq("dist");
    assert_eq!(
        s.add_distinct(&short, b"/x", Duration::from_millis(300), now_micros())
            .await
            .unwrap(),
        1
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        s.add_distinct(&short, b"/y", Duration::from_millis(300), now_micros())
            .await
            .unwrap(),
        1,
        "expired set starts over"
    );
}

pub async fn bans_add_check_list_delete(s: &Store) {
    let now = now_micros();
    let host = ban("192.0.2.77", Some(Duration::from_secs(60)), "scan");
    let net = ban("2001:db8:77:1::/64", None, "waf");
    s.ban_add(host.clone()).await.unwrap();
    s.ban_add(net.clone()).await.unwrap();
    let hit = s.ban_check(ip("192.0.2.77"), now).expect("host banned");
    assert_eq!(hit.jail, "scan");
    assert_eq!(hit.offences, 2);
    assert!(
        s.ban_check(ip("::ffff:192.0.2.77"), now).is_some(),
        "mapped form too"
    );
    assert!(s.ban_check(ip("192.0.2.78"), now).is_none());
    assert!(
        s.ban_check(ip("2001:db8:77:1:abcd::1"), now).is_some(),
        "the whole /64"
    );
    assert!(s.ban_check(ip("2001:db8:77:2::1"), now).is_none());
    let list = s.ban_list(now).await.unwrap();
    assert!(list.contains(&host) && list.contains(&net), "{list:?}");
    assert_eq!(s.ban_get(&host.target).as_deref(), Some(&host));
    // Replacing a ban keeps one entry with the new data.
    let mut again = host.clone();
    again.offences = 3;
    s.ban_add(again.clone()).await.unwrap();
    assert_eq!(s.ban_check(ip("192.0.2.77"), now).unwrap().offences, 3);
    assert!(s.ban_delete(&host.target).await.unwrap());
    assert!(!s.ban_delete(&host.target).await.unwrap(), "already gone");
    assert!(s.ban_check(ip("192.0.2.77"), now_micros()).is_none());
    assert!(s.ban_delete(&net.target).await.unwrap());
    assert!(s.ban_check(ip("2001:db8:77:1::5"), now_micros()).is_none());
}

pub async fn bans_expire(s: &Store) {
    let b = ban("198.51.100.9", Some(Duration::from_millis(300)), "rate");
    s.ban_add(b.clone()).await.unwrap();
    assert!(s.ban_check(ip("198.51.100.9"), now_micros()).is_some());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let now = now_micros();
    assert!(s.ban_check(ip("198.51.100.9"), now).is_none());
    assert!(!s
        .ban_list(now)
        .await
        .unwrap()
        .iter()
        .any(|x| x.target == b.target));
    let e = s
        .ban_add(Ban {
            reason: "x".repeat(300),
            ..b
        })
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidInput(_)));
}

pub async fn kv_get_set_delete_ttl(s: &Store) {
    let k = uniq("kv");
    let now = now_micros();
    assert_eq!(s.kv_get(&k, now).await.unwrap(), None);
    s.kv_set(&k, b"v1", None, now).await.unwrap();
    assert_eq!(
        s.kv_get(&k, now).await.unwrap().as_deref(),
        Some(&b"v1"[..])
    );
    s.kv_set(&k, b"v2", Some(Duration::from_millis(300)), now)
        .await
        .unwrap();
    assert_eq!(
        s.kv_get(&k, now_micros()).await.unwrap().as_deref(),
        Some(&b"v2"[..])
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(s.kv_get(&k, now_micros()).await.unwrap(), None, "expired");
    s.kv_set(&k, &[0, 255, 10, 13], None, now_micros())
        .await
        .unwrap();
    assert_eq!(
        s.kv_get(&k, now_micros()).await.unwrap(),
        Some(vec![0, 255, 10, 13])
    );
    assert!(s.kv_delete(&k, now_micros()).await.unwrap());
    assert!(!s.kv_delete(&k, now_micros()).await.unwrap());
    assert_eq!(s.kv_get(&k, now_micros()).await.unwrap(), None);
    let big = vec![7u8; state::MAX_VALUE_LEN + 1];
    assert!(matches!(
        s.kv_set(&k, &big, None, now_micros()).await.unwrap_err(),
        Error::InvalidInput(_)
    ));
}

pub async fn kv_one_time_use(s: &Store) {
    let k = uniq("nonce");
    let now = now_micros();
    let ttl = Some(Duration::from_secs(30));
    assert!(s.kv_set_nx(&k, b"a", ttl, now).await.unwrap());
    assert!(
        !s.kv_set_nx(&k, b"b", ttl, now).await.unwrap(),
        "second mark refused"
    );
    assert_eq!(s.kv_get(&k, now).await.unwrap().as_deref(), Some(&b"a"[..]));
    assert!(
        !s.kv_compare_delete(&k, b"b", now).await.unwrap(),
        "wrong value"
    );
    assert!(s.kv_compare_delete(&k, b"a", now).await.unwrap());
    assert!(
        !s.kv_compare_delete(&k, b"a", now).await.unwrap(),
        "only once"
    );
    s.kv_set(&k, b"token", ttl, now).await.unwrap();
    assert_eq!(
        s.kv_take(&k, now).await.unwrap().as_deref(),
        Some(&b"token"[..])
    );
    assert_eq!(s.kv_take(&k, now).await.unwrap(), None);
    // An expired mark can be set again.
    let m = uniq("totp");
    assert!(s
        .kv_set_nx(&m, b"1", Some(Duration::from_millis(200)), now)
        .await
        .unwrap());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(s
        .kv_set_nx(&m, b"1", Some(Duration::from_millis(200)), now_micros())
        .await
        .unwrap());
}

pub async fn kv_take_is_exclusive(s: &Store) {
    let k = Arc::new(uniq("take"));
    let c = Arc::new(uniq("cad"));
    let now = now_micros();
    s.kv_set(&k, b"x", None, now).await.unwrap();
    s.kv_set(&c, b"n", None, now).await.unwrap();
    let winners = Arc::new(AtomicU32::new(0));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (s, k, c, w) = (s.clone(), k.clone(), c.clone(), winners.clone());
        tasks.push(tokio::spawn(async move {
            if s.kv_take(&k, now).await.unwrap().is_some() {
                w.fetch_add(1, Ordering::Relaxed);
            }
            if s.kv_compare_delete(&c, b"n", now).await.unwrap() {
                w.fetch_add(100, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        winners.load(Ordering::Relaxed),
        101,
        "one take and one compare-delete won"
    );
}

pub async fn kv_keys_lists_by_prefix(s: &Store) {
    let base = uniq("user");
    let now = now_micros();
    for name in ["carol", "alice", "bob*[x]"] {
        s.kv_set(&format!("{base}:{name}"), b"{}", None, now)
            .await
            .unwrap();
    }
    s.kv_set(
        &format!("{base}:gone"),
        b"{}",
        Some(Duration::from_millis(1)),
        now,
    )
    .await
    .unwrap();
    s.kv_set(&format!("{base}x:other"), b"{}", None, now)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let keys = s
        .kv_keys(&format!("{base}:"), 100, now_micros())
        .await
        .unwrap();
    let want: Vec<String> = ["alice", "bob*[x]", "carol"]
        .iter()
        .map(|n| format!("{base}:{n}"))
        .collect();
    assert_eq!(keys, want);
    // Glob metacharacters in the prefix are literal.
    let keys = s
        .kv_keys(&format!("{base}:bob*["), 100, now_micros())
        .await
        .unwrap();
    assert_eq!(keys, vec![format!("{base}:bob*[x]")]);
    assert_eq!(
        s.kv_keys(&format!("{base}:"), 2, now_micros())
            .await
            .unwrap()
            .len(),
        2
    );
}

pub async fn reset_forgets_budgets_and_counters(s: &Store) {
    let key = uniq("login-fail");
    let now = now_micros();
    let q = Quota::per_minute(1, 1);
    let w = Duration::from_secs(60);
    assert!(s.rate_limit(&key, &q, 1, now).await.unwrap().allowed);
    assert!(!s.rate_limit(&key, &q, 1, now).await.unwrap().allowed);
    assert_eq!(s.incr(&key, w, now).await.unwrap(), 1);
    assert_eq!(s.incr(&key, w, now).await.unwrap(), 2);
    assert_eq!(s.add_distinct(&key, b"/a", w, now).await.unwrap(), 1);
    s.reset(&key).await.unwrap();
    assert!(s.rate_limit(&key, &q, 1, now).await.unwrap().allowed);
    assert_eq!(s.incr(&key, w, now).await.unwrap(), 1);
    assert_eq!(s.add_distinct(&key, b"/b", w, now).await.unwrap(), 1);
}

pub async fn ip_prefix_parse(_s: &Store) {
    let p: IpPrefix = "2001:db8::1/64".parse().unwrap();
    assert_eq!(p.to_string(), "2001:db8::/64");
    assert!("10.0.0.1/33".parse::<IpPrefix>().is_err());
    assert!("10.0.0.1/".parse::<IpPrefix>().is_err());
    assert!("nonsense".parse::<IpPrefix>().is_err());
    assert_eq!(
        "10.1.2.3".parse::<IpPrefix>().unwrap().to_string(),
        "10.1.2.3/32"
    );
}

/// Instantiates every suite test for one backend; `$make` is an async block
/// returning `Some((Store, guard))` where the guard keeps resources alive
/// (`None`: the backend's server is not installed; the test says so).
#[macro_export]
macro_rules! conformance {
    ($name:ident, $make:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $crate::conformance!(@tests $make;
                gcra_burst_then_interval, gcra_concurrent_exact, gcra_real_clock_budget,
                gcra_rejects_bad_quota,
                counter_counts_within_window, distinct_counts_distinct_members,
                bans_add_check_list_delete, bans_expire, kv_get_set_delete_ttl,
                kv_one_time_use, kv_take_is_exclusive, kv_keys_lists_by_prefix,
                reset_forgets_budgets_and_counters, ip_prefix_parse);
        }
    };
    (@tests $make:expr; $($t:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $t() {
                let Some((store, _guard)) = $make.await else { return };
                super::$t(&store).await;
            }
        )*
    };
}

conformance!(memory, async {
    Some((Store::memory(&state::MemoryConfig::default()), ()))
});

async fn sqlite_store(persist_counters: bool) -> Option<(Store, common::TempDir)> {
    let dir = common::TempDir::new("conf");
    let mut cfg = state::StateConfig::default();
    cfg.sqlite.path = dir.path().join("state.db");
    cfg.sqlite.persist_counters = persist_counters;
    Some((Store::open(&cfg).await.unwrap(), dir))
}

conformance!(sqlite, sqlite_store(false));
conformance!(sqlite_persist_counters, sqlite_store(true));

async fn redis_store() -> Option<(Store, common::RedisServer)> {
    let server = common::RedisServer::start()?;
    let store = Store::open(&server.config()).await.unwrap();
    Some((store, server))
}

conformance!(redis, redis_store());
