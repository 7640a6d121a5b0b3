//! Bounded memory under a flood of distinct clients, and the `[state]`
//! configuration as a user writes it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use state::{
    now_micros, BackendKind, Error, FailMode, MemoryConfig, Quota, StateConfig, Store, SHARDS,
};

#[tokio::test]
async fn a_flood_of_distinct_clients_is_capped() {
    let cap = SHARDS * 16;
    let s = Store::memory(&MemoryConfig {
        max_entries: cap,
        max_distinct_sets: cap,
    });
    let q = Quota::per_second(10, 10);
    let now = now_micros();
    for i in 0..20_000u32 {
        let ip = format!("ip:10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255);
        s.rate_limit(&ip, &q, 1, now).await.unwrap();
        s.incr(&ip, Duration::from_secs(60), now).await.unwrap();
        s.add_distinct(&ip, b"/x", Duration::from_secs(60), now)
            .await
            .unwrap();
    }
    let st = s.stats();
    assert!(st.memory_entries <= 3 * cap, "{st:?}");
    assert!(st.evictions >= 3 * (20_000 - cap as u64), "{st:?}");
    // The newest client's state is intact.
    let d = s.rate_limit("ip:10.0.78.31", &q, 1, now).await.unwrap();
    assert_eq!(d.remaining, 8, "second request of the last client");
}

#[tokio::test]
async fn expired_entries_are_purged() {
    let s = Store::memory(&MemoryConfig::default());
    let now = now_micros();
    for i in 0..100 {
        s.kv_set(&format!("k{i}"), b"v", Some(Duration::from_millis(1)), now)
            .await
            .unwrap();
    }
    s.kv_set("keep", b"v", None, now).await.unwrap();
    assert_eq!(s.purge_expired(now + 10_000).await.unwrap(), 100);
    assert_eq!(s.stats().memory_entries, 1);
}

#[test]
fn config_parses_from_toml_with_defaults() {
    let cfg: StateConfig = toml::from_str(
        r#"
        backend = "redis"
        [redis]
        url = "redis://:pw@10.0.0.5:6380/1"
        timeout_ms = 25
        [failure]
        rate_limit = "local"
        sessions = "local"
        "#,
    )
    .unwrap();
    cfg.validate().unwrap();
    assert_eq!(cfg.backend, BackendKind::Redis);
    assert_eq!(cfg.redis.timeout_ms, 25);
    assert_eq!(cfg.redis.connections, 2, "default kept");
    assert_eq!(cfg.failure.rate_limit, FailMode::Local);
    assert_eq!(cfg.failure.counters, FailMode::Open, "default kept");
    assert_eq!(cfg.failure.ban_writes, FailMode::Local, "default kept");

    let empty: StateConfig = toml::from_str("").unwrap();
    assert_eq!(empty.backend, BackendKind::Sqlite, "embedded default");
    empty.validate().unwrap();
}

#[test]
fn bad_config_is_refused_with_the_key() {
    assert!(toml::from_str::<StateConfig>("backend = \"mongo\"").is_err());
    assert!(toml::from_str::<StateConfig>("[redis]\nurl_typo = \"x\"").is_err());
    let check = |src: &str, needle: &str| {
        let cfg: StateConfig = toml::from_str(src).unwrap();
        let e = cfg.validate().unwrap_err();
        assert!(matches!(e, Error::Config(_)) && !e.is_retryable());
        assert!(
            e.to_string().contains(needle),
            "{e} should mention {needle}"
        );
    };
    check("[failure]\nsessions = \"open\"", "state.failure.sessions");
    check(
        "[failure]\nban_writes = \"open\"",
        "state.failure.ban_writes",
    );
    check(
        "backend = \"redis\"\n[redis]\nurl = \"http://x\"",
        "state.redis.url",
    );
    check(
        "backend = \"redis\"\n[redis]\nconnections = 0",
        "state.redis.connections",
    );
    check("[memory]\nmax_entries = 0", "state.memory");
}
