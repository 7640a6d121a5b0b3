//! The SQLite backend: one database file in WAL mode, driven by one
//! dedicated thread so async tasks never block on disk.
//!
//! Bans and key/value entries (sessions, users, one-time marks) persist.
//! Rate-limit states and jail counters live in process memory unless
//! `persist_counters` is set: they matter for seconds, and a transaction per
//! request would cost tens of microseconds. With `persist_counters`, GCRA
//! runs inside `BEGIN IMMEDIATE` so several processes sharing the file stay
//! exact.
//!
//! Bans are mirrored in the node-local [`BanCache`]; another process writing
//! the same file (the `palisade ban` command) is noticed within
//! [`BAN_POLL_INTERVAL`] through `PRAGMA data_version`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use crate::bancache::BanCache;
use crate::config::SqliteConfig;
use crate::error::{Error, Result};
use crate::gcra;
use crate::memory::{expiry, member_digest, MAX_DISTINCT_MEMBERS};
use crate::types::{Ban, IpPrefix, Micros, Quota, RateDecision};

/// Schema version written to `PRAGMA user_version`. A database with a newer
/// version is refused rather than misread.
pub const SCHEMA_VERSION: i64 = 1;

/// Requests queued for the SQLite thread before callers wait. Default 4096:
/// bounds memory when the disk stalls; callers then back off (async wait).
pub const SQLITE_QUEUE: usize = 4096;

/// How often the ban table is checked for changes made by another process.
/// Default 1 s: `palisade ban del` run against the file applies this fast.
pub const BAN_POLL_INTERVAL: Duration = Duration::from_secs(1);

const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS bans (
    target TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    jail TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    expires_us INTEGER,
    offences INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    expires_us INTEGER
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS gcra (
    key TEXT PRIMARY KEY,
    tat INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counters (
    key TEXT PRIMARY KEY,
    count INTEGER NOT NULL,
    expires_us INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS distinct_sets (
    key TEXT PRIMARY KEY,
    members BLOB NOT NULL,
    expires_us INTEGER NOT NULL
) WITHOUT ROWID;
";

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// Handle on the SQLite thread.
pub(crate) struct SqliteBackend {
    tx: mpsc::Sender<Job>,
    persist_counters: bool,
}

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Stored expiry: NULL means never.
fn exp_col(e: Micros) -> Option<i64> {
    (e != u64::MAX).then(|| i(e))
}

impl SqliteBackend {
    /// Opens (creating or migrating) the database and starts its thread.
    pub(crate) async fn open(cfg: &SqliteConfig) -> Result<SqliteBackend> {
        let path = cfg.path.clone();
        let busy = Duration::from_millis(cfg.busy_timeout_ms);
        let conn = tokio::task::spawn_blocking(move || open_conn(&path, busy))
            .await
            .map_err(|e| Error::Unavailable(format!("sqlite open task: {e}")))??;
        let (tx, mut rx) = mpsc::channel::<Job>(SQLITE_QUEUE);
        std::thread::Builder::new()
            .name("palisade-sqlite".into())
            .spawn(move || {
                let mut conn = conn;
                while let Some(job) = rx.blocking_recv() {
                    job(&mut conn);
                }
            })?;
        Ok(SqliteBackend {
            tx,
            persist_counters: cfg.persist_counters,
        })
    }

    pub(crate) fn persist_counters(&self) -> bool {
        self.persist_counters
    }

    /// Runs `f` on the SQLite thread.
    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (rtx, rrx) = oneshot::channel();
        let job: Job = Box::new(move |c| {
            let _ = rtx.send(f(c));
        });
        self.tx
            .send(job)
            .await
            .map_err(|_| Error::Unavailable("sqlite thread stopped".into()))?;
        rrx.await
            .map_err(|_| Error::Unavailable("sqlite thread stopped".into()))?
    }

    /// Every ban, with the data version they were read at (the starting
    /// point for [`SqliteBackend::poll_bans`]).
    pub(crate) async fn load_bans(&self) -> Result<(Vec<Ban>, i64)> {
        self.call(|c| {
            let v: i64 = c.query_row("PRAGMA data_version", [], |r| r.get(0))?;
            Ok((read_bans(c)?, v))
        })
        .await
    }

    /// Reloads the bans into `cache` when another connection changed the
    /// database since the last look (`last` carries the data version).
    pub(crate) async fn poll_bans(&self, cache: Arc<BanCache>, last: Option<i64>) -> Result<i64> {
        self.call(move |c| {
            let v: i64 = c.query_row("PRAGMA data_version", [], |r| r.get(0))?;
            if last.is_some_and(|l| l != v) {
                cache.replace_all(read_bans(c)?);
            }
            Ok(v)
        })
        .await
    }

    pub(crate) async fn ban_put(&self, ban: Ban) -> Result<()> {
        self.call(move |c| {
            c.execute(
                "INSERT OR REPLACE INTO bans (target, reason, jail, created_us, expires_us, offences)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    ban.target.to_string(),
                    ban.reason,
                    ban.jail,
                    i(ban.created_us),
                    ban.expires_us.map(i),
                    ban.offences
                ],
            )?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn ban_delete(&self, target: IpPrefix) -> Result<bool> {
        self.call(move |c| {
            Ok(c.execute("DELETE FROM bans WHERE target = ?1", [target.to_string()])? > 0)
        })
        .await
    }

    pub(crate) async fn rate_limit(
        &self,
        key: &str,
        quota: &Quota,
        cost: u32,
        now: Micros,
    ) -> Result<RateDecision> {
        let (key, quota) = (key.to_owned(), *quota);
        self.call(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let tat: Option<i64> = tx
                .query_row("SELECT tat FROM gcra WHERE key = ?1", [&key], |r| r.get(0))
                .optional()?;
            let (d, new) = gcra::step(tat.map(u), &quota, cost, now);
            if let Some(n) = new {
                tx.execute(
                    "INSERT INTO gcra (key, tat) VALUES (?1, ?2)
                     ON CONFLICT(key) DO UPDATE SET tat = excluded.tat",
                    params![key, i(n)],
                )?;
            }
            tx.commit()?;
            Ok(d)
        })
        .await
    }

    pub(crate) async fn incr(&self, key: &str, window: Duration, now: Micros) -> Result<u64> {
        let key = key.to_owned();
        self.call(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let cur: Option<(i64, i64)> = tx
                .query_row(
                    "SELECT count, expires_us FROM counters WHERE key = ?1",
                    [&key],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let (count, exp) = match cur {
                Some((n, e)) if u(e) > now => (u(n).saturating_add(1), e),
                _ => (1, i(expiry(now, Some(window)))),
            };
            tx.execute(
                "INSERT OR REPLACE INTO counters (key, count, expires_us) VALUES (?1, ?2, ?3)",
                params![key, i(count), exp],
            )?;
            tx.commit()?;
            Ok(count)
        })
        .await
    }

    pub(crate) async fn add_distinct(
        &self,
        key: &str,
        member: &[u8],
        window: Duration,
        now: Micros,
    ) -> Result<u64> {
        let key = key.to_owned();
        let m = member_digest(member);
        self.call(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let cur: Option<(Vec<u8>, i64)> = tx
                .query_row(
                    "SELECT members, expires_us FROM distinct_sets WHERE key = ?1",
                    [&key],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let (mut members, exp) = match cur {
                Some((m, e)) if u(e) > now => (m, e),
                _ => (Vec::new(), i(expiry(now, Some(window)))),
            };
            let n = members.len() / 8;
            if n < MAX_DISTINCT_MEMBERS && !members.chunks_exact(8).any(|c| c == m) {
                members.extend_from_slice(&m);
                tx.execute(
                    "INSERT OR REPLACE INTO distinct_sets (key, members, expires_us)
                     VALUES (?1, ?2, ?3)",
                    params![key, members, exp],
                )?;
            }
            tx.commit()?;
            Ok((members.len() / 8) as u64)
        })
        .await
    }

    pub(crate) async fn kv_get(&self, key: &str, now: Micros) -> Result<Option<Vec<u8>>> {
        let key = key.to_owned();
        self.call(move |c| {
            Ok(c.query_row(
                "SELECT value FROM kv WHERE key = ?1 AND (expires_us IS NULL OR expires_us > ?2)",
                params![key, i(now)],
                |r| r.get(0),
            )
            .optional()?)
        })
        .await
    }

    pub(crate) async fn kv_set(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
        only_if_absent: bool,
        now: Micros,
    ) -> Result<bool> {
        let (key, value) = (key.to_owned(), value.to_vec());
        let exp = exp_col(expiry(now, ttl));
        self.call(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if only_if_absent {
                let live: bool = tx
                    .query_row(
                        "SELECT 1 FROM kv WHERE key = ?1
                         AND (expires_us IS NULL OR expires_us > ?2)",
                        params![key, i(now)],
                        |_| Ok(true),
                    )
                    .optional()?
                    .unwrap_or(false);
                if live {
                    return Ok(false);
                }
            }
            tx.execute(
                "INSERT OR REPLACE INTO kv (key, value, expires_us) VALUES (?1, ?2, ?3)",
                params![key, value, exp],
            )?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    pub(crate) async fn kv_delete(&self, key: &str, now: Micros) -> Result<bool> {
        let key = key.to_owned();
        self.call(move |c| {
            let live = c.execute(
                "DELETE FROM kv WHERE key = ?1 AND (expires_us IS NULL OR expires_us > ?2)",
                params![key, i(now)],
            )? > 0;
            // An expired row is deleted too, but reported as absent.
            c.execute("DELETE FROM kv WHERE key = ?1", [&key])?;
            Ok(live)
        })
        .await
    }

    pub(crate) async fn kv_take(&self, key: &str, now: Micros) -> Result<Option<Vec<u8>>> {
        let key = key.to_owned();
        self.call(move |c| {
            Ok(c.query_row(
                "DELETE FROM kv WHERE key = ?1 AND (expires_us IS NULL OR expires_us > ?2)
                 RETURNING value",
                params![key, i(now)],
                |r| r.get(0),
            )
            .optional()?)
        })
        .await
    }

    pub(crate) async fn kv_compare_delete(
        &self,
        key: &str,
        expected: &[u8],
        now: Micros,
    ) -> Result<bool> {
        let (key, expected) = (key.to_owned(), expected.to_vec());
        self.call(move |c| {
            Ok(c.execute(
                "DELETE FROM kv WHERE key = ?1 AND value = ?2
                 AND (expires_us IS NULL OR expires_us > ?3)",
                params![key, expected, i(now)],
            )? > 0)
        })
        .await
    }

    pub(crate) async fn kv_keys(
        &self,
        prefix: &str,
        limit: usize,
        now: Micros,
    ) -> Result<Vec<String>> {
        let prefix = prefix.to_owned();
        self.call(move |c| {
            let mut stmt = c.prepare(
                "SELECT key FROM kv WHERE instr(key, ?1) = 1
                 AND (expires_us IS NULL OR expires_us > ?2) ORDER BY key LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![prefix, i(now), i(limit as u64)], |r| r.get(0))?;
            Ok(rows.collect::<std::result::Result<Vec<String>, _>>()?)
        })
        .await
    }

    pub(crate) async fn reset(&self, key: &str) -> Result<()> {
        let key = key.to_owned();
        self.call(move |c| {
            c.execute("DELETE FROM gcra WHERE key = ?1", [&key])?;
            c.execute("DELETE FROM counters WHERE key = ?1", [&key])?;
            c.execute("DELETE FROM distinct_sets WHERE key = ?1", [&key])?;
            Ok(())
        })
        .await
    }

    /// Deletes expired rows; returns how many.
    pub(crate) async fn purge(&self, now: Micros) -> Result<usize> {
        self.call(move |c| {
            let n = i(now);
            let mut total = 0;
            total += c.execute("DELETE FROM kv WHERE expires_us <= ?1", [n])?;
            total += c.execute("DELETE FROM gcra WHERE tat <= ?1", [n])?;
            total += c.execute("DELETE FROM counters WHERE expires_us <= ?1", [n])?;
            total += c.execute("DELETE FROM distinct_sets WHERE expires_us <= ?1", [n])?;
            total += c.execute("DELETE FROM bans WHERE expires_us <= ?1", [n])?;
            Ok(total)
        })
        .await
    }
}

fn open_conn(path: &Path, busy: Duration) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(busy)?;
    // WAL: readers never block the writer; NORMAL sync is durable across
    // process crashes (only an OS crash may lose the last commits).
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(Error::Config(format!(
            "state database {} has schema version {version}, newer than this palisade \
             understands ({SCHEMA_VERSION})",
            path.display()
        )));
    }
    if version < 1 {
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {SCHEMA_V1} PRAGMA user_version = 1; COMMIT;"
        ))?;
    }
    Ok(conn)
}

fn read_bans(c: &mut Connection) -> Result<Vec<Ban>> {
    let mut stmt =
        c.prepare("SELECT target, reason, jail, created_us, expires_us, offences FROM bans")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, Option<i64>>(4)?,
            r.get::<_, u32>(5)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (target, reason, jail, created, expires, offences) = row?;
        let target = target
            .parse()
            .map_err(|_| Error::Corrupt(format!("bans.target {target:?} is not an IP prefix")))?;
        out.push(Ban {
            target,
            reason,
            jail,
            created_us: u(created),
            expires_us: expires.map(u),
            offences,
        });
    }
    Ok(out)
}
