//! SQLite-specific behaviour: persistence across restarts, schema
//! versioning, and ban changes made by another process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use state::{now_micros, BackendKind, Ban, Error, Quota, StateConfig, Store, SCHEMA_VERSION};

fn cfg(dir: &common::TempDir) -> StateConfig {
    let mut cfg = StateConfig::default();
    assert_eq!(
        cfg.backend,
        BackendKind::Sqlite,
        "SQLite is the default backend"
    );
    cfg.sqlite.path = dir.path().join("state.db");
    cfg
}

fn ban(target: &str) -> Ban {
    Ban {
        target: target.parse().unwrap(),
        reason: "restart test".into(),
        jail: "manual".into(),
        created_us: now_micros(),
        expires_us: Some(now_micros() + 3_600_000_000),
        offences: 4,
    }
}

#[tokio::test]
async fn bans_and_sessions_survive_a_restart() {
    let dir = common::TempDir::new("restart");
    let cfg = cfg(&dir);
    {
        let s = Store::open(&cfg).await.unwrap();
        s.ban_add(ban("203.0.113.5")).await.unwrap();
        s.ban_add(ban("2001:db8:5::/64")).await.unwrap();
        s.kv_set(
            "session:abc",
            b"user=alice",
            Some(Duration::from_secs(600)),
            now_micros(),
        )
        .await
        .unwrap();
        s.kv_set("gone", b"x", Some(Duration::from_millis(1)), now_micros())
            .await
            .unwrap();
    }
    // Give the SQLite thread of the dropped store a moment to close.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let s = Store::open(&cfg).await.unwrap();
    let now = now_micros();
    let b = s
        .ban_check("203.0.113.5".parse().unwrap(), now)
        .expect("ban restored");
    assert_eq!(b.offences, 4);
    assert_eq!(b.reason, "restart test");
    assert!(s
        .ban_check("2001:db8:5:0:1::1".parse().unwrap(), now)
        .is_some());
    assert_eq!(s.ban_list(now).await.unwrap().len(), 2);
    assert_eq!(
        s.kv_get("session:abc", now).await.unwrap().as_deref(),
        Some(&b"user=alice"[..])
    );
    assert_eq!(s.kv_get("gone", now).await.unwrap(), None);
    assert!(
        s.purge_expired(now).await.unwrap() >= 1,
        "the expired row is purged"
    );
    assert!(s.ban_delete(&"203.0.113.5".parse().unwrap()).await.unwrap());
    drop(s);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let s = Store::open(&cfg).await.unwrap();
    assert!(
        s.ban_check("203.0.113.5".parse().unwrap(), now_micros())
            .is_none(),
        "delete persisted"
    );
}

#[tokio::test]
async fn rate_limit_state_persists_when_configured() {
    let dir = common::TempDir::new("persist");
    let mut cfg = cfg(&dir);
    cfg.sqlite.persist_counters = true;
    let q = Quota::per_minute(1, 2);
    let now = now_micros();
    {
        let s = Store::open(&cfg).await.unwrap();
        assert!(s.rate_limit("ip:1", &q, 2, now).await.unwrap().allowed);
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let s = Store::open(&cfg).await.unwrap();
    assert!(
        !s.rate_limit("ip:1", &q, 1, now).await.unwrap().allowed,
        "budget spent before"
    );
}

#[tokio::test]
async fn newer_schema_is_refused() {
    let dir = common::TempDir::new("schema");
    let cfg = cfg(&dir);
    drop(Store::open(&cfg).await.unwrap());
    tokio::time::sleep(Duration::from_millis(50)).await;
    {
        let c = rusqlite::Connection::open(&cfg.sqlite.path).unwrap();
        c.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
    }
    let e = Store::open(&cfg).await.unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e}");
    assert!(!e.is_retryable());
    assert!(e.to_string().contains("schema version"), "{e}");
}

#[tokio::test]
async fn corrupt_ban_rows_are_reported() {
    let dir = common::TempDir::new("corrupt");
    let cfg = cfg(&dir);
    drop(Store::open(&cfg).await.unwrap());
    tokio::time::sleep(Duration::from_millis(50)).await;
    {
        let c = rusqlite::Connection::open(&cfg.sqlite.path).unwrap();
        c.execute(
            "INSERT INTO bans VALUES ('not-an-ip', 'r', 'j', 0, NULL, 1)",
            [],
        )
        .unwrap();
    }
    let e = Store::open(&cfg).await.unwrap_err();
    assert!(matches!(e, Error::Corrupt(_)), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ban_changes_by_another_process_apply_within_the_poll_interval() {
    let dir = common::TempDir::new("poll");
    let cfg = cfg(&dir);
    let gateway = Store::open(&cfg).await.unwrap();
    // The `palisade ban add` command: a second store on the same file.
    let cli = Store::open(&cfg).await.unwrap();
    let ip = "192.0.2.200".parse().unwrap();
    cli.ban_add(ban("192.0.2.200")).await.unwrap();
    let start = Instant::now();
    while gateway.ban_check(ip, now_micros()).is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "ban not picked up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cli.ban_delete(&"192.0.2.200".parse().unwrap())
        .await
        .unwrap();
    let start = Instant::now();
    while gateway.ban_check(ip, now_micros()).is_some() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "unban not picked up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_ban_is_in_force_at_the_first_poll() {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};
    let dir = common::TempDir::new("poll1");
    let s = Store::open(&cfg(&dir)).await.unwrap();
    let mut fut = Box::pin(s.ban_add(ban("192.0.2.33")));
    let first = fut.as_mut().poll(&mut Context::from_waker(Waker::noop()));
    assert!(s
        .ban_check("192.0.2.33".parse().unwrap(), now_micros())
        .is_some());
    if first.is_pending() {
        fut.await.unwrap();
    } else {
        assert!(matches!(first, Poll::Ready(Ok(()))));
        drop(fut);
    }
    drop(s);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let s = Store::open(&cfg(&dir)).await.unwrap();
    assert!(
        s.ban_check("192.0.2.33".parse().unwrap(), now_micros())
            .is_some(),
        "on disk"
    );
}
