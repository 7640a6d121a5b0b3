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
pub use store::{StatsSnapshot, Store, FAILURE_LOG_INTERVAL, JANITOR_INTERVAL};
pub use types::{
    now_micros, Ban, IpPrefix, Micros, Quota, RateDecision, MAX_BAN_TEXT, MAX_KEY_LEN,
    MAX_VALUE_LEN,
};
