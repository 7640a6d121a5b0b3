//! `[state]` configuration: serde structs the gateway config embeds.
//!
//! ```toml
//! [state]
//! backend = "redis"            # "memory" | "sqlite" (default) | "redis"
//!
//! [state.sqlite]
//! path = "/var/lib/palisade/state.db"
//!
//! [state.redis]
//! url = "redis://:secret@10.0.0.5:6379/0"
//! timeout_ms = 50
//!
//! [state.failure]              # what to do when the backend is slow or down
//! rate_limit = "open"          # open | closed | local
//! counters = "open"            # open | closed | local
//! sessions = "closed"          # closed | local
//! ban_writes = "local"         # local | closed
//! ```

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::memory::{DEFAULT_MAX_DISTINCT_SETS, DEFAULT_MAX_ENTRIES};

/// Which backend stores the state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Process memory only: nothing survives a restart, nothing is shared.
    Memory,
    /// An SQLite file (the embedded default): bans and sessions survive
    /// restarts; one node.
    #[default]
    Sqlite,
    /// A Redis server shared by every gateway node.
    Redis,
}

/// The `[state]` section.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StateConfig {
    /// The backend (`"memory"`, `"sqlite"`, `"redis"`); default `"sqlite"`.
    pub backend: BackendKind,
    /// Limits of the in-memory tables (also used by the other backends for
    /// node-local data and fallbacks).
    pub memory: MemoryConfig,
    /// The SQLite backend.
    pub sqlite: SqliteConfig,
    /// The Redis backend.
    pub redis: RedisConfig,
    /// What each class of operation does when the backend fails.
    pub failure: FailureConfig,
}

impl StateConfig {
    /// Checks values that serde cannot (ranges, combinations).
    pub fn validate(&self) -> Result<()> {
        if self.memory.max_entries == 0 || self.memory.max_distinct_sets == 0 {
            return Err(Error::Config(
                "state.memory limits must be at least 1".into(),
            ));
        }
        if self.failure.sessions == FailMode::Open {
            return Err(Error::Config(
                "state.failure.sessions = \"open\" is not allowed: a session store cannot \
                 pretend a session exists; use \"closed\" or \"local\""
                    .into(),
            ));
        }
        if self.failure.ban_writes == FailMode::Open {
            return Err(Error::Config(
                "state.failure.ban_writes = \"open\" is not allowed: use \"local\" (enforce on \
                 this node and push when the backend is back) or \"closed\""
                    .into(),
            ));
        }
        if self.backend == BackendKind::Redis {
            crate::redis::RedisUrl::parse(&self.redis.url)?;
            if self.redis.connections == 0 || self.redis.connections > MAX_REDIS_CONNECTIONS {
                return Err(Error::Config(format!(
                    "state.redis.connections must be 1..={MAX_REDIS_CONNECTIONS}"
                )));
            }
            if self.redis.timeout_ms == 0 || self.redis.connect_timeout_ms == 0 {
                return Err(Error::Config(
                    "state.redis timeouts must be at least 1 ms".into(),
                ));
            }
        }
        if self.backend == BackendKind::Sqlite && self.sqlite.path.as_os_str().is_empty() {
            return Err(Error::Config("state.sqlite.path is empty".into()));
        }
        Ok(())
    }
}

/// Most multiplexed Redis connections per node. Default 16: each carries any
/// number of pipelined requests, so more only costs server file descriptors.
pub const MAX_REDIS_CONNECTIONS: usize = 16;

/// `[state.memory]`: caps of the in-memory tables.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemoryConfig {
    /// Entries per table (rate-limit states, counters, key/value); the
    /// oldest are evicted past it. Default
    /// [`DEFAULT_MAX_ENTRIES`].
    pub max_entries: usize,
    /// Distinct-value sets; default
    /// [`DEFAULT_MAX_DISTINCT_SETS`].
    pub max_distinct_sets: usize,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            max_entries: DEFAULT_MAX_ENTRIES,
            max_distinct_sets: DEFAULT_MAX_DISTINCT_SETS,
        }
    }
}

/// `[state.sqlite]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SqliteConfig {
    /// Database file (created with its WAL files beside it). Default
    /// `palisade-state.db`, relative to the working directory.
    pub path: PathBuf,
    /// Also keep rate-limit states and jail counters in SQLite (one
    /// transaction per check) instead of process memory. Default `false`:
    /// they live for seconds, and memory keeps a check well under a
    /// microsecond; turn on only when several processes share the file.
    pub persist_counters: bool,
    /// How long to wait for a lock held by another process, in ms. Default
    /// 1000.
    pub busy_timeout_ms: u64,
}

impl Default for SqliteConfig {
    fn default() -> Self {
        SqliteConfig {
            path: PathBuf::from("palisade-state.db"),
            persist_counters: false,
            busy_timeout_ms: 1000,
        }
    }
}

/// `[state.redis]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[[user]:password@]host[:port][/db]`. Default
    /// `redis://127.0.0.1:6379/0`.
    pub url: String,
    /// Prefix of every key and of the pub/sub channel, so several
    /// deployments can share one Redis. Default `palisade:`.
    pub key_prefix: String,
    /// Per-request timeout in ms (from send to reply). Default 50: a request
    /// path waits at most this long before the failure mode decides.
    pub timeout_ms: u64,
    /// TCP connect + handshake timeout in ms. Default 1000.
    pub connect_timeout_ms: u64,
    /// Multiplexed connections per node. Default 2.
    pub connections: usize,
    /// Full ban resync period in ms, on top of pub/sub (covers messages lost
    /// while disconnected). Default 10000.
    pub ban_sync_interval_ms: u64,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: "redis://127.0.0.1:6379/0".into(),
            key_prefix: "palisade:".into(),
            timeout_ms: 50,
            connect_timeout_ms: 1000,
            connections: 2,
            ban_sync_interval_ms: 10_000,
        }
    }
}

/// What an operation does when the backend fails (down, timed out).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailMode {
    /// Let the request through: rate limits allow, counters count nothing.
    Open,
    /// Refuse: rate limits deny (retry after 1 s), other operations return
    /// the error to the caller.
    Closed,
    /// Use this node's in-memory tables meanwhile: limits and sessions are
    /// per node until the backend is back.
    Local,
}

/// `[state.failure]`: the failure mode per class of operation. Every failure
/// is logged (rate-limited, `tracing` target `state`) and counted in
/// [`StatsSnapshot`](crate::StatsSnapshot). Ban checks never touch the
/// backend: cached bans keep being enforced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FailureConfig {
    /// Rate-limit checks. Default `open`.
    pub rate_limit: FailMode,
    /// Jail counters (`incr`, `add_distinct`). Default `open` (count 0:
    /// nobody is jailed while the backend is down).
    pub counters: FailMode,
    /// Key/value operations (sessions, challenge nonces, TOTP replay
    /// marks). Default `closed`; `open` is refused.
    pub sessions: FailMode,
    /// Ban add/delete. Default `local`: applied on this node at once and
    /// pushed to the backend when it is back; `open` is refused.
    pub ban_writes: FailMode,
}

impl Default for FailureConfig {
    fn default() -> Self {
        FailureConfig {
            rate_limit: FailMode::Open,
            counters: FailMode::Open,
            sessions: FailMode::Closed,
            ban_writes: FailMode::Local,
        }
    }
}
