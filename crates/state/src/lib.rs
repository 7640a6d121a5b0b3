//! palisade's shared state: rate limits (GCRA), jail counters, bans and
//! sessions, behind one [`Store`] handle with three backends.
//!
//! ```text
//!                shield (IP lists, rate limits, jails, challenge)
//!                identity (sessions, TOTP replay marks, users)
//!                              │
//!                              ▼
//!   ┌──────────────────────── Store ─────────────────────────┐
//!   │ ban_check ──► BanCache (node-local, < 1 µs, no I/O)     │
//!   │ rate_limit / incr / add_distinct / kv_* / ban_add …     │
//!   │      │ failure mode per class: open | closed | local    │
//!   └──────┼──────────────────────────────────────────────────┘
//!          ├─ memory : sharded, capped tables (oldest evicted)
//!          ├─ sqlite : WAL file on one thread; bans + kv persist;
//!          │           counters in memory unless persist_counters
//!          └─ redis  : own RESP2 client, multiplexed + pipelined;
//!                      GCRA/counters in Lua (EVALSHA); bans in keys
//!                      + pub/sub so every node's BanCache updates
//! ```
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> state::Result<()> {
//! use std::time::Duration;
//! use state::{now_micros, Ban, IpPrefix, MemoryConfig, Quota, Store};
//!
//! let store = Store::memory(&MemoryConfig::default()); // or Store::open(&cfg).await?
//! let now = now_micros();
//! let quota = Quota::per_second(5, 2);
//! assert!(store.rate_limit("ip:198.51.100.7", &quota, 1, now).await?.allowed);
//! assert!(store.rate_limit("ip:198.51.100.7", &quota, 1, now).await?.allowed);
//! let d = store.rate_limit("ip:198.51.100.7", &quota, 1, now).await?;
//! assert!(!d.allowed);
//! assert_eq!(d.retry_after, Duration::from_millis(200));
//!
//! store
//!     .ban_add(Ban {
//!         target: "2001:db8:1:2::/64".parse()?,
//!         reason: "20 distinct 404s in 60 s".into(),
//!         jail: "scan".into(),
//!         created_us: now,
//!         expires_us: Some(now + 3_600_000_000),
//!         offences: 1,
//!     })
//!     .await?;
//! assert!(store.ban_check("2001:db8:1:2::99".parse().unwrap(), now).is_some());
//! assert!(store.ban_delete(&"2001:db8:1:2::/64".parse::<IpPrefix>()?).await?);
//!
//! // One-time use: only the first caller gets the nonce.
//! store.kv_set("nonce:abc", b"198.51.100.7", Some(Duration::from_secs(60)), now).await?;
//! assert!(store.kv_compare_delete("nonce:abc", b"198.51.100.7", now).await?);
//! assert!(!store.kv_compare_delete("nonce:abc", b"198.51.100.7", now).await?);
//! # Ok(())
//! # }
//! ```
//!
//! Every operation takes the caller's clock (`now`, [`Micros`]) so one
//! request reads the time once and tests control it. Errors are one type,
//! [`Error`], which says whether retrying can help. See `docs/state.md`.

mod bancache;
pub mod config;
mod error;
mod gcra;
mod memory;
pub mod redis;
mod sqlite;
mod store;
mod types;

pub use bancache::MAX_BANS;
pub use config::{
    BackendKind, FailMode, FailureConfig, MemoryConfig, RedisConfig, SqliteConfig, StateConfig,
};
pub use error::{Error, Result};
pub use memory::{DEFAULT_MAX_DISTINCT_SETS, DEFAULT_MAX_ENTRIES, MAX_DISTINCT_MEMBERS, SHARDS};
pub use sqlite::{BAN_POLL_INTERVAL, SCHEMA_VERSION, SQLITE_QUEUE};
pub use store::{StatsSnapshot, Store, FAILURE_LOG_INTERVAL, JANITOR_INTERVAL, MAX_LIST_KEYS};
pub use types::{
    now_micros, Ban, IpPrefix, Micros, Quota, RateDecision, MAX_BAN_TEXT, MAX_KEY_LEN,
    MAX_VALUE_LEN,
};
