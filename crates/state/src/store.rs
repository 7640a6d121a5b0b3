//! [`Store`]: the one handle shield and identity use, whatever the backend.
//!
//! The backend is an enum, not a trait object: `async fn` in traits is not
//! object safe without boxing every call's future, the hot paths (ban check,
//! in-memory rate limit) must not allocate, and the set of backends is closed
//! (adding one = one variant + one match arm per operation). Tests run the
//! same conformance suite against every variant.

use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::bancache::BanCache;
use crate::config::{BackendKind, FailMode, FailureConfig, MemoryConfig, StateConfig};
use crate::error::{Error, Result};
use crate::memory::MemoryBackend;
use crate::redis::RedisBackend;
use crate::sqlite::{SqliteBackend, BAN_POLL_INTERVAL};
use crate::types::{
    check_key, check_value, now_micros, Ban, IpPrefix, Micros, Quota, RateDecision,
};

/// How often expired entries are purged from memory (and SQLite). Default
/// 30 s: expired entries are invisible anyway; this only returns memory.
pub const JANITOR_INTERVAL: Duration = Duration::from_secs(30);

/// At most one failure log line per class per this interval. Default 10 s:
/// a dead Redis under full traffic must not flood the log; the counters in
/// [`StatsSnapshot`] still count every failure.
pub const FAILURE_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Most keys [`Store::kv_keys`] returns. Default 100,000: bounds the memory
/// of one admin listing.
pub const MAX_LIST_KEYS: usize = 100_000;

/// Classes of operations, each with its own [`FailMode`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(dead_code)] // the SQLite/Redis backends (next commits) use every class
pub(crate) enum OpClass {
    RateLimit = 0,
    Counters = 1,
    Sessions = 2,
    BanWrites = 3,
}

impl OpClass {
    fn name(self) -> &'static str {
        match self {
            OpClass::RateLimit => "rate_limit",
            OpClass::Counters => "counters",
            OpClass::Sessions => "sessions",
            OpClass::BanWrites => "ban_writes",
        }
    }
}

#[derive(Debug, Default)]
struct Stats {
    failures: [AtomicU64; 4],
    last_log_us: [AtomicU64; 4],
    open: AtomicU64,
    closed: AtomicU64,
    local: AtomicU64,
}

/// Counters for metrics: how often the backend failed and what the failure
/// modes decided.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StatsSnapshot {
    /// Backend failures (timeouts, disconnections, I/O) of rate-limit checks.
    pub failures_rate_limit: u64,
    /// … of jail counters.
    pub failures_counters: u64,
    /// … of key/value (session) operations.
    pub failures_sessions: u64,
    /// … of ban writes.
    pub failures_ban_writes: u64,
    /// Operations decided by `open` after a failure.
    pub decided_open: u64,
    /// Operations decided by `closed` after a failure.
    pub decided_closed: u64,
    /// Operations served by node-local memory after a failure.
    pub decided_local: u64,
    /// Entries evicted from full in-memory tables (a flood of distinct keys).
    pub evictions: u64,
    /// Entries in the in-memory tables.
    pub memory_entries: usize,
    /// Bans in the node-local ban cache.
    pub bans: usize,
    /// Redis (re)connections made.
    pub redis_connects: u64,
}

pub(crate) enum Backend {
    Memory,
    Sqlite(SqliteBackend),
    Redis(Arc<RedisBackend>),
}

pub(crate) struct Inner {
    kind: BackendKind,
    backend: Backend,
    local: MemoryBackend,
    pub(crate) bans: Arc<BanCache>,
    failure: FailureConfig,
    stats: Stats,
}

/// A handle on the state store; cheap to clone, shared by all tasks.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.inner.kind)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// An in-memory store (nothing persisted or shared). Needs no runtime;
    /// starts the janitor when called inside one.
    pub fn memory(cfg: &MemoryConfig) -> Store {
        Store::start(Store::memory_inner(cfg, FailureConfig::default()))
    }

    fn memory_inner(cfg: &MemoryConfig, failure: FailureConfig) -> Inner {
        Inner {
            kind: BackendKind::Memory,
            backend: Backend::Memory,
            local: MemoryBackend::new(cfg),
            bans: Arc::new(BanCache::default()),
            failure,
            stats: Stats::default(),
        }
    }

    /// Opens the configured backend: validates `cfg`, creates or migrates the
    /// SQLite schema and loads its bans, or connects to Redis and syncs bans.
    /// An unreachable Redis is not an error here: the store starts degraded
    /// and reconnects in the background.
    pub async fn open(cfg: &StateConfig) -> Result<Store> {
        cfg.validate()?;
        match cfg.backend {
            BackendKind::Memory => Ok(Store::start(Store::memory_inner(
                &cfg.memory,
                cfg.failure.clone(),
            ))),
            BackendKind::Sqlite => {
                let db = SqliteBackend::open(&cfg.sqlite).await?;
                let bans = Arc::new(BanCache::default());
                let (loaded, version) = db.load_bans().await?;
                bans.replace_all(loaded);
                let inner = Inner {
                    kind: BackendKind::Sqlite,
                    backend: Backend::Sqlite(db),
                    local: MemoryBackend::new(&cfg.memory),
                    bans,
                    failure: cfg.failure.clone(),
                    stats: Stats::default(),
                };
                let store = Store::start(inner);
                tokio::spawn(poll_sqlite_bans(Arc::downgrade(&store.inner), version));
                Ok(store)
            }
            BackendKind::Redis => {
                let r = Arc::new(RedisBackend::new(&cfg.redis).await?);
                let bans = Arc::new(BanCache::default());
                // A first full sync so even a short-lived process (`palisade
                // ban list`) sees every ban; if Redis is down the subscriber
                // retries.
                if let Err(e) = r.resync(&bans).await {
                    tracing::warn!(target: "state", error = %e, "initial redis ban sync failed; starting degraded");
                }
                let interval = Duration::from_millis(cfg.redis.ban_sync_interval_ms.max(100));
                tokio::spawn(crate::redis::subscriber(
                    Arc::downgrade(&r),
                    bans.clone(),
                    interval,
                ));
                let inner = Inner {
                    kind: BackendKind::Redis,
                    backend: Backend::Redis(r),
                    local: MemoryBackend::new(&cfg.memory),
                    bans,
                    failure: cfg.failure.clone(),
                    stats: Stats::default(),
                };
                Ok(Store::start(inner))
            }
        }
    }

    fn start(inner: Inner) -> Store {
        let inner = Arc::new(inner);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let weak = Arc::downgrade(&inner);
            rt.spawn(janitor(weak));
        }
        Store { inner }
    }

    /// Whether the backend is reachable right now (always true for memory
    /// and SQLite; for Redis, at least one connection is up). For health
    /// checks and metrics.
    pub fn backend_connected(&self) -> bool {
        match &self.inner.backend {
            Backend::Redis(r) => r.is_connected(),
            _ => true,
        }
    }

    /// Which backend this store uses.
    pub fn backend(&self) -> BackendKind {
        self.inner.kind
    }

    // ---------------------------------------------------------------- rate limits

    /// GCRA check-and-update for `key`: counts `cost` requests against
    /// `quota` if they fit. Atomic per key on every backend (exact under
    /// concurrency, also across Redis nodes).
    pub async fn rate_limit(
        &self,
        key: &str,
        quota: &Quota,
        cost: u32,
        now: Micros,
    ) -> Result<RateDecision> {
        check_key(key)?;
        quota.validate(cost)?;
        match &self.inner.backend {
            Backend::Memory => self.inner.local.rate_limit(key, quota, cost, now),
            Backend::Redis(r) => {
                self.guarded(
                    OpClass::RateLimit,
                    r.rate_limit(key, quota, cost, now),
                    |m| self.rate_limit_fallback(m, key, quota, cost, now),
                )
                .await
            }
            Backend::Sqlite(db) if !db.persist_counters() => {
                self.inner.local.rate_limit(key, quota, cost, now)
            }
            Backend::Sqlite(db) => {
                self.guarded(
                    OpClass::RateLimit,
                    db.rate_limit(key, quota, cost, now),
                    |m| self.rate_limit_fallback(m, key, quota, cost, now),
                )
                .await
            }
        }
    }

    fn rate_limit_fallback(
        &self,
        mode: FailMode,
        key: &str,
        quota: &Quota,
        cost: u32,
        now: Micros,
    ) -> Result<RateDecision> {
        let d = match mode {
            FailMode::Open => RateDecision {
                allowed: true,
                limit: quota.burst,
                remaining: quota.burst.saturating_sub(cost),
                retry_after: Duration::ZERO,
                reset_after: Duration::ZERO,
                degraded: true,
            },
            FailMode::Closed => RateDecision {
                allowed: false,
                limit: quota.burst,
                remaining: 0,
                retry_after: Duration::from_secs(1),
                reset_after: Duration::from_secs(1),
                degraded: true,
            },
            FailMode::Local => RateDecision {
                degraded: true,
                ..self.inner.local.rate_limit(key, quota, cost, now)?
            },
        };
        Ok(d)
    }

    // ---------------------------------------------------------------- counters

    /// Increments the counter `key` and returns the new count. The counter
    /// starts at the first increment and vanishes `window` later (a fixed
    /// window, as fail2ban's `findtime`).
    pub async fn incr(&self, key: &str, window: Duration, now: Micros) -> Result<u64> {
        check_key(key)?;
        let local = || self.inner.local.incr(key, window, now);
        match &self.inner.backend {
            Backend::Memory => local(),
            Backend::Redis(r) => {
                self.guarded(OpClass::Counters, r.incr(key, window), |m| {
                    counter_fallback(m, local)
                })
                .await
            }
            Backend::Sqlite(db) if !db.persist_counters() => local(),
            Backend::Sqlite(db) => {
                self.guarded(OpClass::Counters, db.incr(key, window, now), |m| {
                    counter_fallback(m, local)
                })
                .await
            }
        }
    }

    /// Adds `member` (e.g. a request path) to the distinct-value set `key`
    /// and returns how many distinct members it holds, saturating at
    /// [`MAX_DISTINCT_MEMBERS`](crate::MAX_DISTINCT_MEMBERS). The set starts
    /// with its first member and vanishes `window` later.
    pub async fn add_distinct(
        &self,
        key: &str,
        member: &[u8],
        window: Duration,
        now: Micros,
    ) -> Result<u64> {
        check_key(key)?;
        let local = || self.inner.local.add_distinct(key, member, window, now);
        match &self.inner.backend {
            Backend::Memory => local(),
            Backend::Redis(r) => {
                self.guarded(
                    OpClass::Counters,
                    r.add_distinct(key, member, window),
                    |m| counter_fallback(m, local),
                )
                .await
            }
            Backend::Sqlite(db) if !db.persist_counters() => local(),
            Backend::Sqlite(db) => {
                self.guarded(
                    OpClass::Counters,
                    db.add_distinct(key, member, window, now),
                    |m| counter_fallback(m, local),
                )
                .await
            }
        }
    }

    // ---------------------------------------------------------------- bans

    /// The active ban covering `ip`, if any: answered from the node-local
    /// cache, never from the network (well under a microsecond).
    pub fn ban_check(&self, ip: IpAddr, now: Micros) -> Option<Arc<Ban>> {
        self.inner.bans.check(ip, now)
    }

    /// The ban on exactly `target` in the local cache, active or expired
    /// (not yet purged): shield reads `offences` from it to escalate.
    pub fn ban_get(&self, target: &IpPrefix) -> Option<Arc<Ban>> {
        self.inner.bans.get(target)
    }

    /// Adds (or replaces) the ban on `ban.target`, effective on every node.
    /// Unless `ban_writes = "closed"`, it is in force on this node as soon as
    /// the returned future is first polled (before any I/O).
    pub async fn ban_add(&self, ban: Ban) -> Result<()> {
        ban.validate()?;
        let now = now_micros();
        match &self.inner.backend {
            Backend::Memory => self.inner.bans.insert(ban, now),
            Backend::Redis(r) => {
                let mode = self.mode(OpClass::BanWrites);
                let previous = self.inner.bans.get(&ban.target);
                if mode != FailMode::Closed {
                    // Enforced on this node at once; other nodes follow
                    // through pub/sub.
                    self.inner.bans.insert(ban.clone(), now)?;
                }
                let target = ban.target;
                let restore = |bans: &BanCache| match &previous {
                    Some(p) => {
                        let _ = bans.insert((**p).clone(), now);
                    }
                    None => {
                        bans.remove(&target);
                    }
                };
                match r.ban_put(&ban).await {
                    // Inserted (again) after the write: a resync whose
                    // snapshot was read before the write reached Redis must
                    // not drop it (see BanCache::replace_all_since).
                    Ok(()) => self.inner.bans.insert(ban, now),
                    Err(e) if e.is_backend_failure() => {
                        self.record_failure(OpClass::BanWrites, mode, &e);
                        if mode == FailMode::Closed {
                            return Err(e);
                        }
                        r.queue(Some(ban), None);
                        Ok(())
                    }
                    Err(e) => {
                        // Refused by Redis itself (e.g. NOAUTH): not a ban.
                        if mode != FailMode::Closed {
                            restore(&self.inner.bans);
                        }
                        Err(e)
                    }
                }
            }
            Backend::Sqlite(db) => {
                // In force on this node before the first await (a caller
                // may poll once and finish the write on a task); on disk
                // before this returns, so an acknowledged ban survives a
                // restart. A disk failure keeps the local ban unless
                // ban_writes = closed.
                let previous = self.inner.bans.get(&ban.target);
                self.inner.bans.insert(ban.clone(), now)?;
                let target = ban.target;
                let r = self
                    .guarded(OpClass::BanWrites, db.ban_put(ban.clone()), |_| Ok(()))
                    .await;
                if r.is_ok() {
                    // Again after the write: a reload triggered by another
                    // process (poll_sqlite_bans) may have run in between
                    // and replaced the table without this ban.
                    self.inner.bans.insert(ban, now)?;
                } else {
                    match previous {
                        Some(p) => self.inner.bans.insert((*p).clone(), now)?,
                        None => {
                            self.inner.bans.remove(&target);
                        }
                    }
                }
                r
            }
        }
    }

    /// Deletes the ban on exactly `target` on every node; true when one
    /// existed.
    pub async fn ban_delete(&self, target: &IpPrefix) -> Result<bool> {
        match &self.inner.backend {
            Backend::Memory => Ok(self.inner.bans.remove(target)),
            Backend::Redis(r) => {
                let mode = self.mode(OpClass::BanWrites);
                match r.ban_delete(target).await {
                    Ok(existed) => Ok(self.inner.bans.remove(target) || existed),
                    Err(e) if e.is_backend_failure() => {
                        self.record_failure(OpClass::BanWrites, mode, &e);
                        if mode == FailMode::Closed {
                            return Err(e);
                        }
                        r.queue(None, Some(*target));
                        Ok(self.inner.bans.remove(target))
                    }
                    Err(e) => Err(e),
                }
            }
            Backend::Sqlite(db) => {
                let on_disk = self
                    .guarded(OpClass::BanWrites, db.ban_delete(*target), |_| Ok(false))
                    .await?;
                Ok(self.inner.bans.remove(target) || on_disk)
            }
        }
    }

    /// Active bans at `now`, sorted by target.
    pub async fn ban_list(&self, now: Micros) -> Result<Vec<Ban>> {
        match &self.inner.backend {
            // Redis: the cache mirrors Redis through pub/sub and resyncs.
            Backend::Memory | Backend::Sqlite(_) | Backend::Redis(_) => {
                Ok(self.inner.bans.list(now))
            }
        }
    }

    // ---------------------------------------------------------------- key/value

    /// The value of `key`, if set and not expired.
    pub async fn kv_get(&self, key: &str, now: Micros) -> Result<Option<Vec<u8>>> {
        check_key(key)?;
        let local = || self.inner.local.kv_get(key, now);
        match &self.inner.backend {
            Backend::Memory => local(),
            Backend::Redis(r) => {
                self.guarded(OpClass::Sessions, r.kv_get(key), |_| local())
                    .await
            }
            Backend::Sqlite(db) => {
                self.guarded(OpClass::Sessions, db.kv_get(key, now), |_| local())
                    .await
            }
        }
    }

    /// Sets `key` to `value`, expiring after `ttl` (`None` = never).
    pub async fn kv_set(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
        now: Micros,
    ) -> Result<()> {
        check_key(key)?;
        check_value(value)?;
        let local = || self.inner.local.kv_set(key, value, ttl, false, now);
        match &self.inner.backend {
            Backend::Memory => local().map(|_| ()),
            Backend::Redis(r) => self
                .guarded(OpClass::Sessions, r.kv_set(key, value, ttl, false), |_| {
                    local()
                })
                .await
                .map(|_| ()),
            Backend::Sqlite(db) => self
                .guarded(
                    OpClass::Sessions,
                    db.kv_set(key, value, ttl, false, now),
                    |_| local(),
                )
                .await
                .map(|_| ()),
        }
    }

    /// Sets `key` only when it is absent; true when set. Marks one-time
    /// things as used (a TOTP code within its window, a challenge nonce).
    pub async fn kv_set_nx(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
        now: Micros,
    ) -> Result<bool> {
        check_key(key)?;
        check_value(value)?;
        let local = || self.inner.local.kv_set(key, value, ttl, true, now);
        match &self.inner.backend {
            Backend::Memory => local(),
            Backend::Redis(r) => {
                self.guarded(OpClass::Sessions, r.kv_set(key, value, ttl, true), |_| {
                    local()
                })
                .await
            }
            Backend::Sqlite(db) => {
                self.guarded(
                    OpClass::Sessions,
                    db.kv_set(key, value, ttl, true, now),
                    |_| local(),
                )
                .await
            }
        }
    }

    /// Deletes `key`; true when it existed.
    pub async fn kv_delete(&self, key: &str, now: Micros) -> Result<bool> {
        check_key(key)?;
        let local = || self.inner.local.kv_delete(key, now);
        match &self.inner.backend {
            Backend::Memory => local(),
            Backend::Redis(r) => {
                self.guarded(OpClass::Sessions, r.kv_delete(key), |_| local())
                    .await
            }
            Backend::Sqlite(db) => {
                self.guarded(OpClass::Sessions, db.kv_delete(key, now), |_| local())
                    .await
            }
        }
    }

    /// Gets and deletes `key` atomically: exactly one caller gets the value.
    pub async fn kv_take(&self, key: &str, now: Micros) -> Result<Option<Vec<u8>>> {
        check_key(key)?;
        let local = || self.inner.local.kv_take(key, now);
        match &self.inner.backend {
            Backend::Memory => local(),
            Backend::Redis(r) => {
                self.guarded(OpClass::Sessions, r.kv_take(key), |_| local())
                    .await
            }
            Backend::Sqlite(db) => {
                self.guarded(OpClass::Sessions, db.kv_take(key, now), |_| local())
                    .await
            }
        }
    }

    /// Deletes `key` only if it holds `expected`, atomically; true when
    /// deleted. One-time use of a challenge nonce bound to a value.
    pub async fn kv_compare_delete(&self, key: &str, expected: &[u8], now: Micros) -> Result<bool> {
        check_key(key)?;
        let local = || self.inner.local.kv_compare_delete(key, expected, now);
        match &self.inner.backend {
            Backend::Memory => local(),
            Backend::Redis(r) => {
                self.guarded(
                    OpClass::Sessions,
                    r.kv_compare_delete(key, expected),
                    |_| local(),
                )
                .await
            }
            Backend::Sqlite(db) => {
                self.guarded(
                    OpClass::Sessions,
                    db.kv_compare_delete(key, expected, now),
                    |_| local(),
                )
                .await
            }
        }
    }

    /// Live keys starting with `prefix`, sorted, at most `limit` (capped at
    /// [`MAX_LIST_KEYS`]; when more match, which ones are returned is
    /// unspecified): for admin listings (`palisade user list`, a user's
    /// sessions for logout-all). Scans; not for request paths.
    pub async fn kv_keys(&self, prefix: &str, limit: usize, now: Micros) -> Result<Vec<String>> {
        if prefix.len() > crate::types::MAX_KEY_LEN {
            return Err(Error::InvalidInput("prefix longer than MAX_KEY_LEN".into()));
        }
        let limit = limit.min(MAX_LIST_KEYS);
        let local = || {
            let mut v = self.inner.local.kv_keys(prefix, limit, now);
            v.sort();
            Ok(v)
        };
        match &self.inner.backend {
            Backend::Memory => local(),
            Backend::Sqlite(db) => {
                self.guarded(OpClass::Sessions, db.kv_keys(prefix, limit, now), |_| {
                    local()
                })
                .await
            }
            Backend::Redis(r) => {
                self.guarded(OpClass::Sessions, r.kv_keys(prefix, limit), |_| local())
                    .await
            }
        }
    }

    /// Forgets the rate-limit state, counter and distinct set under `key`
    /// (e.g. a user's failed-login counters after a successful login, or a
    /// client's jail counts when an operator lifts its ban).
    pub async fn reset(&self, key: &str) -> Result<()> {
        check_key(key)?;
        self.inner.local.reset(key);
        match &self.inner.backend {
            Backend::Memory => Ok(()),
            Backend::Sqlite(db) if !db.persist_counters() => Ok(()),
            Backend::Sqlite(db) => {
                self.guarded(OpClass::Counters, db.reset(key), |_| Ok(()))
                    .await
            }
            Backend::Redis(r) => {
                self.guarded(OpClass::Counters, r.reset(key), |_| Ok(()))
                    .await
            }
        }
    }

    // ---------------------------------------------------------------- upkeep

    /// Drops expired entries now (the janitor does this every
    /// [`JANITOR_INTERVAL`]); returns how many.
    pub async fn purge_expired(&self, now: Micros) -> Result<usize> {
        purge(&self.inner, now).await
    }

    /// Failure and eviction counters.
    pub fn stats(&self) -> StatsSnapshot {
        let s = &self.inner.stats;
        StatsSnapshot {
            failures_rate_limit: s.failures[0].load(Ordering::Relaxed),
            failures_counters: s.failures[1].load(Ordering::Relaxed),
            failures_sessions: s.failures[2].load(Ordering::Relaxed),
            failures_ban_writes: s.failures[3].load(Ordering::Relaxed),
            decided_open: s.open.load(Ordering::Relaxed),
            decided_closed: s.closed.load(Ordering::Relaxed),
            decided_local: s.local.load(Ordering::Relaxed),
            evictions: self.inner.local.evictions(),
            memory_entries: self.inner.local.entries(),
            bans: self.inner.bans.len(),
            redis_connects: match &self.inner.backend {
                Backend::Redis(r) => r.connects(),
                _ => 0,
            },
        }
    }

    /// Runs `op` against the backend; on a backend failure, records it and
    /// lets `fallback` decide per the class's failure mode (`closed` returns
    /// the error, except for rate limits, which then deny).
    async fn guarded<T>(
        &self,
        class: OpClass,
        op: impl Future<Output = Result<T>>,
        fallback: impl FnOnce(FailMode) -> Result<T>,
    ) -> Result<T> {
        match op.await {
            Ok(v) => Ok(v),
            Err(e) if e.is_backend_failure() => {
                let mode = self.mode(class);
                self.record_failure(class, mode, &e);
                match mode {
                    FailMode::Closed if class != OpClass::RateLimit => Err(e),
                    m => fallback(m),
                }
            }
            Err(e) => Err(e),
        }
    }

    fn mode(&self, class: OpClass) -> FailMode {
        let f = &self.inner.failure;
        match class {
            OpClass::RateLimit => f.rate_limit,
            OpClass::Counters => f.counters,
            OpClass::Sessions => f.sessions,
            OpClass::BanWrites => f.ban_writes,
        }
    }

    fn record_failure(&self, class: OpClass, mode: FailMode, e: &Error) {
        let s = &self.inner.stats;
        let i = class as usize;
        let n = s.failures[i].fetch_add(1, Ordering::Relaxed) + 1;
        match mode {
            FailMode::Open => s.open.fetch_add(1, Ordering::Relaxed),
            FailMode::Closed => s.closed.fetch_add(1, Ordering::Relaxed),
            FailMode::Local => s.local.fetch_add(1, Ordering::Relaxed),
        };
        let now = now_micros();
        let last = s.last_log_us[i].load(Ordering::Relaxed);
        let interval = u64::try_from(FAILURE_LOG_INTERVAL.as_micros()).unwrap_or(u64::MAX);
        if now.saturating_sub(last) >= interval
            && s.last_log_us[i]
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                target: "state",
                class = class.name(),
                mode = ?mode,
                failures_total = n,
                error = %e,
                "state backend failed; applying the configured failure mode"
            );
        }
    }
}

/// `open` and `local` for counters: count nothing, or count on this node.
fn counter_fallback(mode: FailMode, local: impl FnOnce() -> Result<u64>) -> Result<u64> {
    match mode {
        FailMode::Local => local(),
        _ => Ok(0),
    }
}

async fn purge(inner: &Inner, now: Micros) -> Result<usize> {
    let mut n = inner.local.purge(now) + inner.bans.purge(now);
    if let Backend::Sqlite(db) = &inner.backend {
        n += db.purge(now).await?;
    }
    Ok(n)
}

async fn janitor(weak: Weak<Inner>) {
    let mut tick = tokio::time::interval(JANITOR_INTERVAL);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(inner) = weak.upgrade() else { return };
        if let Err(e) = purge(&inner, now_micros()).await {
            tracing::warn!(target: "state", error = %e, "purging expired state failed");
        }
    }
}

/// Picks up ban changes other processes made to the SQLite file.
async fn poll_sqlite_bans(weak: Weak<Inner>, version: i64) {
    let mut tick = tokio::time::interval(BAN_POLL_INTERVAL);
    let mut last = Some(version);
    loop {
        tick.tick().await;
        let Some(inner) = weak.upgrade() else { return };
        if let Backend::Sqlite(db) = &inner.backend {
            match db.poll_bans(Arc::clone(&inner.bans), last).await {
                Ok(v) => last = Some(v),
                Err(e) => tracing::warn!(target: "state", error = %e, "polling sqlite bans failed"),
            }
        }
    }
}
