//! The event store: events kept in an SQLite file (rusqlite, bundled),
//! with retention by age, count and size, queried by time range, client,
//! rule, route and kind (admin `GET /events`, `palisade events`).
//!
//! SQLite directly rather than through `crates/state`: state is a
//! key/value, counter and ban abstraction shared across nodes (Redis);
//! events are per node (like the audit log) and need indexed range queries,
//! which a table with indexes answers directly.
//!
//! Writes happen on a dedicated thread that drains its bus subscription in
//! batches (it lets events gather for `events::BATCH_WINDOW`, then commits
//! them in one transaction), so the request path never touches the
//! database and an attack wave costs one commit per window, not per event.
//! Events are serialised to JSON there too, never on the request path.

use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{params_from_iter, Connection};

use crate::config::StoreConfig;
use crate::events::{Event, Kind, Subscription};

/// Fixed 512: most events written in one transaction. Bounds the time the
/// database lock is held while a query waits.
pub const WRITE_BATCH: usize = 512;

/// Fixed 1000: most events one query returns (`limit` is capped to it).
/// Bounds the admin API's response size.
pub const MAX_QUERY_LIMIT: usize = 1000;

/// Default 100: events a query returns without `limit`.
pub const DEFAULT_QUERY_LIMIT: usize = 100;

/// Fixed 30s: how often retention runs (also after every
/// [`RETENTION_EVERY`] writes).
pub const RETENTION_INTERVAL: Duration = Duration::from_secs(30);

/// Fixed 4096: writes between retention passes, so a burst cannot overrun
/// `max_events` by more than this.
pub const RETENTION_EVERY: u64 = 4096;

/// The store's errors are the crate's [`crate::Error`].
pub type StoreError = crate::Error;

/// A query of stored events; every filter is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// Events at or after this time (unix microseconds).
    pub since_us: Option<u64>,
    /// Events before this time (unix microseconds).
    pub until_us: Option<u64>,
    /// Events of this client.
    pub client: Option<IpAddr>,
    /// WAF events in which this rule matched.
    pub rule: Option<u64>,
    /// Events on this route.
    pub route: Option<String>,
    /// Events of this kind (`waf_block`, …).
    pub kind: Option<String>,
    /// Most events returned (newest first); capped at [`MAX_QUERY_LIMIT`].
    pub limit: Option<usize>,
}

/// Parses a time: unix seconds (`1700000000`), RFC 3339 UTC
/// (`2026-11-23T18:00:00Z`) or an age (`15m`, `2h`, `7d`: that long ago).
pub fn parse_time(s: &str, now_us: u64) -> Result<u64, String> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(1_000_000))
            .ok_or_else(|| format!("`{s}`: time out of range"));
    }
    if let Ok(d) = crate::config::parse_duration(s) {
        return Ok(now_us.saturating_sub(u64::try_from(d.as_micros()).unwrap_or(u64::MAX)));
    }
    parse_rfc3339(s).ok_or_else(|| {
        format!("`{s}`: expected unix seconds, RFC 3339 (2026-01-02T03:04:05Z) or an age (15m, 2h)")
    })
}

/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` → unix microseconds.
fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if t.bytes().all(|c| c.is_ascii_digit()) {
            t.parse().ok()
        } else {
            None
        }
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut micros = 0i64;
    if let Some(f) = rest.strip_prefix('.') {
        let n = f.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        let digits = &f[..n.min(6)];
        micros = digits.parse::<i64>().ok()? * 10i64.pow(6 - digits.len() as u32);
        rest = &f[n..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) => {
            let oh: i64 = o.get(1..3)?.parse().ok()?;
            let om: i64 = o.get(4..6)?.parse().ok()?;
            let v = oh * 3600 + om * 60;
            if o.starts_with('-') {
                -v
            } else {
                v
            }
        }
        _ => return None,
    };
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + se - offset;
    u64::try_from(secs)
        .ok()?
        .checked_mul(1_000_000)?
        .checked_add(micros as u64)
}

/// The event store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EventStore {
    conn: Arc<Mutex<Connection>>,
    cfg: StoreConfig,
    /// A store from before events had ids (AUTOINCREMENT row ids, the
    /// event id in `eid`).
    legacy: bool,
}

fn lock(c: &Mutex<Connection>) -> std::sync::MutexGuard<'_, Connection> {
    match c.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl EventStore {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path, cfg: StoreConfig) -> Result<EventStore, StoreError> {
        let conn = Connection::open(path)?;
        Self::init(conn, cfg)
    }

    /// An in-memory store (tests).
    pub fn in_memory(cfg: StoreConfig) -> Result<EventStore, StoreError> {
        Self::init(Connection::open_in_memory()?, cfg)
    }

    fn init(conn: Connection, cfg: StoreConfig) -> Result<EventStore, StoreError> {
        conn.busy_timeout(Duration::from_secs(5))?;
        // WAL: readers (queries) do not wait for the writer thread.
        let _: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        // `id` is the event's own id (`Event::id`): the row id, so a row
        // costs no AUTOINCREMENT bookkeeping and no extra index. Stores
        // made before events had ids keep their AUTOINCREMENT `id` and
        // gain an indexed `eid` column instead (`legacy`).
        conn.execute_batch(
            "PRAGMA synchronous=NORMAL;
             CREATE TABLE IF NOT EXISTS events (
                 id INTEGER PRIMARY KEY,
                 ts_us INTEGER NOT NULL,
                 kind TEXT NOT NULL,
                 client TEXT,
                 route TEXT,
                 request_id TEXT,
                 rules TEXT NOT NULL DEFAULT '',
                 json TEXT NOT NULL
             );
             CREATE INDEX IF NOT EXISTS events_ts ON events(ts_us);
             CREATE INDEX IF NOT EXISTS events_client ON events(client, ts_us);
             CREATE INDEX IF NOT EXISTS events_kind ON events(kind, ts_us);
             CREATE INDEX IF NOT EXISTS events_route ON events(route, ts_us);",
        )?;
        let legacy: bool = conn.query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'events' AND sql LIKE '%AUTOINCREMENT%'",
            [],
            |r| r.get::<_, i64>(0).map(|n| n > 0),
        )?;
        if legacy {
            let has_eid: bool = conn.query_row(
                "SELECT COUNT(*) FROM pragma_table_info('events') WHERE name = 'eid'",
                [],
                |r| r.get::<_, i64>(0).map(|n| n > 0),
            )?;
            if !has_eid {
                conn.execute_batch("ALTER TABLE events ADD COLUMN eid INTEGER")?;
            }
            conn.execute_batch("CREATE INDEX IF NOT EXISTS events_eid ON events(eid)")?;
        }
        Ok(EventStore {
            conn: Arc::new(Mutex::new(conn)),
            cfg,
            legacy,
        })
    }

    /// The largest event id stored (0 when empty): a new bus numbers its
    /// events above it, so ids stay unique even if the clock went back.
    pub fn max_id(&self) -> Result<u64, StoreError> {
        let c = lock(&self.conn);
        let sql = if self.legacy {
            "SELECT COALESCE(MAX(eid), 0) FROM events"
        } else {
            "SELECT COALESCE(MAX(id), 0) FROM events"
        };
        let n: i64 = c.query_row(sql, [], |r| r.get(0))?;
        Ok(n.max(0) as u64)
    }

    /// Writes events in one transaction.
    pub fn insert(&self, events: &[Arc<Event>]) -> Result<(), StoreError> {
        let mut c = lock(&self.conn);
        let tx = c.transaction()?;
        {
            // A duplicate id (only a clock stepped back past a previous
            // run's ids could make one) replaces the older row rather
            // than losing the whole batch.
            let mut st = tx.prepare_cached(if self.legacy {
                "INSERT INTO events (ts_us, kind, client, route, request_id, rules, json, eid)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
            } else {
                "INSERT OR REPLACE INTO events (ts_us, kind, client, route, request_id, rules, json, id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
            })?;
            for e in events {
                // Rule ids between commas, so `,942100,` finds exactly one id.
                let rules: String = match e.kind.rules() {
                    [] => String::new(),
                    r => {
                        let mut s = String::from(",");
                        for h in r {
                            s.push_str(&h.id.to_string());
                            s.push(',');
                        }
                        s
                    }
                };
                st.execute(rusqlite::params![
                    i64::try_from(e.time_us).unwrap_or(i64::MAX),
                    e.kind.name(),
                    e.client.map(|c| c.to_string()),
                    e.route,
                    e.request_id,
                    rules,
                    e.to_json(),
                    // 0: not published through a bus; SQLite numbers it.
                    (e.id != 0).then(|| i64::try_from(e.id).unwrap_or(i64::MAX)),
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Deletes events over the age, count and size limits (oldest first).
    /// Returns how many were deleted.
    pub fn apply_retention(&self, now_us: u64) -> Result<u64, StoreError> {
        let c = lock(&self.conn);
        let cutoff = now_us
            .saturating_sub(u64::try_from(self.cfg.max_age.0.as_micros()).unwrap_or(u64::MAX));
        let mut n = c.execute(
            "DELETE FROM events WHERE ts_us < ?1",
            [i64::try_from(cutoff).unwrap_or(i64::MAX)],
        )? as u64;
        let max = i64::try_from(self.cfg.max_events).unwrap_or(i64::MAX);
        n += c.execute(
            "DELETE FROM events WHERE id <= (SELECT id FROM events ORDER BY id DESC LIMIT 1 OFFSET ?1)",
            [max],
        )? as u64;
        // Size: bytes in use (pages minus free pages). Deleting frees pages
        // for reuse, so the file stops growing; trim a tenth at a time.
        for _ in 0..20 {
            let used: i64 = c.query_row(
                "SELECT (SELECT page_count FROM pragma_page_count()) - (SELECT freelist_count FROM pragma_freelist_count())",
                [],
                |r| r.get(0),
            )?;
            let page: i64 = c.query_row("PRAGMA page_size", [], |r| r.get(0))?;
            if (used.max(0) as u64).saturating_mul(page.max(0) as u64) <= self.cfg.max_bytes.0 {
                break;
            }
            let count: i64 = c.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))?;
            if count == 0 {
                break;
            }
            n += c.execute(
                "DELETE FROM events WHERE id IN (SELECT id FROM events ORDER BY id LIMIT ?1)",
                [(count / 10).max(1)],
            )? as u64;
        }
        Ok(n)
    }

    /// Events matching `q`, newest first, as stored JSON objects.
    pub fn query(&self, q: &Query) -> Result<Vec<serde_json::Value>, StoreError> {
        let mut sql = String::from("SELECT json FROM events WHERE 1=1");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        use rusqlite::types::Value as V;
        if let Some(s) = q.since_us {
            sql.push_str(" AND ts_us >= ?");
            args.push(V::Integer(i64::try_from(s).unwrap_or(i64::MAX)));
        }
        if let Some(u) = q.until_us {
            sql.push_str(" AND ts_us < ?");
            args.push(V::Integer(i64::try_from(u).unwrap_or(i64::MAX)));
        }
        if let Some(c) = q.client {
            sql.push_str(" AND client = ?");
            args.push(V::Text(c.to_string()));
        }
        if let Some(r) = q.rule {
            sql.push_str(" AND instr(rules, ?) > 0");
            args.push(V::Text(format!(",{r},")));
        }
        if let Some(r) = &q.route {
            sql.push_str(" AND route = ?");
            args.push(V::Text(r.clone()));
        }
        if let Some(k) = &q.kind {
            if !Kind::NAMES.contains(&k.as_str()) {
                return Err(StoreError::BadQuery(format!(
                    "unknown kind `{k}` (one of {})",
                    Kind::NAMES.join(", ")
                )));
            }
            sql.push_str(" AND kind = ?");
            args.push(V::Text(k.clone()));
        }
        let limit = q.limit.unwrap_or(DEFAULT_QUERY_LIMIT).min(MAX_QUERY_LIMIT);
        sql.push_str(" ORDER BY ts_us DESC, id DESC LIMIT ?");
        args.push(V::Integer(limit as i64));
        let c = lock(&self.conn);
        let mut st = c.prepare(&sql)?;
        let rows = st.query_map(params_from_iter(args), |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for row in rows {
            if let Ok(v) = serde_json::from_str(&row?) {
                out.push(v);
            }
        }
        Ok(out)
    }

    /// Stored events per kind at or after `since_us`, every one counted
    /// (`COUNT(*)`, not capped like [`EventStore::query`]).
    pub fn count_by_kind(
        &self,
        since_us: u64,
    ) -> Result<std::collections::HashMap<String, u64>, StoreError> {
        let c = lock(&self.conn);
        let mut st =
            c.prepare_cached("SELECT kind, COUNT(*) FROM events WHERE ts_us >= ?1 GROUP BY kind")?;
        let rows = st.query_map([i64::try_from(since_us).unwrap_or(i64::MAX)], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })?;
        let mut out = std::collections::HashMap::new();
        for row in rows {
            let (k, n) = row?;
            out.insert(k, n.max(0) as u64);
        }
        Ok(out)
    }

    /// The `n` clients with the most events of `kinds` at or after
    /// `since_us`, most first (ties by address), every event counted.
    pub fn top_clients(
        &self,
        since_us: u64,
        kinds: &[&str],
        n: usize,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        use rusqlite::types::Value as V;
        let marks = vec!["?"; kinds.len()].join(",");
        let sql = format!(
            "SELECT client, COUNT(*) AS n FROM events WHERE ts_us >= ? AND client IS NOT NULL \
             AND kind IN ({marks}) GROUP BY client ORDER BY n DESC, client LIMIT ?"
        );
        let mut args = vec![V::Integer(i64::try_from(since_us).unwrap_or(i64::MAX))];
        args.extend(kinds.iter().map(|k| V::Text((*k).to_string())));
        args.push(V::Integer(i64::try_from(n).unwrap_or(i64::MAX)));
        let c = lock(&self.conn);
        let mut st = c.prepare(&sql)?;
        let rows = st.query_map(params_from_iter(args), |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (k, n) = row?;
            out.push((k, n.max(0) as u64));
        }
        Ok(out)
    }

    /// The stored event with this id ([`Event::id`]), if retention has
    /// not removed it.
    pub fn get(&self, id: u64) -> Result<Option<serde_json::Value>, StoreError> {
        let c = lock(&self.conn);
        let mut st = c.prepare_cached(if self.legacy {
            "SELECT json FROM events WHERE eid = ?1 LIMIT 1"
        } else {
            "SELECT json FROM events WHERE id = ?1"
        })?;
        let mut rows = st.query([i64::try_from(id).unwrap_or(i64::MAX)])?;
        Ok(match rows.next()? {
            Some(r) => serde_json::from_str(&r.get::<_, String>(0)?).ok(),
            None => None,
        })
    }

    /// Number of stored events.
    pub fn count(&self) -> Result<u64, StoreError> {
        let c = lock(&self.conn);
        let n: i64 = c.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))?;
        Ok(n.max(0) as u64)
    }

    /// Runs the writer on a dedicated thread: drains `sub` in batches of
    /// up to [`WRITE_BATCH`] and applies retention every
    /// [`RETENTION_INTERVAL`] or [`RETENTION_EVERY`] writes. Ends when the
    /// bus closes.
    pub fn spawn_writer(
        &self,
        mut sub: Subscription,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        let store = self.clone();
        std::thread::Builder::new()
            .name("palisade-events".into())
            .spawn(move || {
                let mut since_retention = 0u64;
                let mut last_retention = Instant::now();
                let mut batch = Vec::with_capacity(WRITE_BATCH);
                // One transaction per BATCH_WINDOW under load, not one
                // per event: a commit costs far more than a row.
                while sub.blocking_recv_batch(&mut batch, WRITE_BATCH) {
                    if let Err(e) = store.insert(&batch) {
                        tracing::error!(error = %e, lost = batch.len(), "event store write failed");
                    }
                    since_retention += batch.len() as u64;
                    batch.clear();
                    if since_retention >= RETENTION_EVERY
                        || last_retention.elapsed() >= RETENTION_INTERVAL
                    {
                        if let Err(e) = store.apply_retention(crate::events::now_us()) {
                            tracing::error!(error = %e, "event store retention failed");
                        }
                        since_retention = 0;
                        last_retention = Instant::now();
                    }
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Dur, Size};
    use crate::events::RuleHit;

    fn ev(t: u64, kind: Kind, client: &str, route: &str) -> Arc<Event> {
        let mut e = Event::new(kind)
            .client(client.parse().unwrap())
            .route(route);
        e.time_us = t;
        Arc::new(e)
    }

    fn block(rule: u64) -> Kind {
        Kind::WafBlock {
            method: "GET".into(),
            uri: "/x".into(),
            status: 403,
            score: 5,
            rules: vec![RuleHit {
                id: rule,
                msg: "m".into(),
                severity: 2,
                category: "sqli".into(),
                data: String::new(),
            }],
        }
    }

    #[test]
    fn queries_filter_by_time_client_rule_route_kind() {
        let s = EventStore::in_memory(StoreConfig::default()).unwrap();
        s.insert(&[
            ev(1_000_000, block(942100), "10.0.0.1", "app"),
            ev(2_000_000, block(9421000), "10.0.0.2", "api"),
            ev(3_000_000, Kind::ChallengeSolved, "10.0.0.1", "app"),
        ])
        .unwrap();
        let q = |q: Query| s.query(&q).unwrap();
        assert_eq!(q(Query::default()).len(), 3);
        assert_eq!(
            q(Query::default())[0]["kind"],
            "challenge_solved",
            "newest first"
        );
        let r = q(Query {
            rule: Some(942100),
            ..Default::default()
        });
        assert_eq!(r.len(), 1, "rule ids match exactly, not as a prefix");
        assert_eq!(r[0]["client"], "10.0.0.1");
        assert_eq!(
            q(Query {
                client: Some("10.0.0.1".parse().unwrap()),
                ..Default::default()
            })
            .len(),
            2
        );
        assert_eq!(
            q(Query {
                route: Some("api".into()),
                ..Default::default()
            })
            .len(),
            1
        );
        assert_eq!(
            q(Query {
                kind: Some("waf_block".into()),
                since_us: Some(1_500_000),
                ..Default::default()
            })
            .len(),
            1
        );
        assert_eq!(
            q(Query {
                until_us: Some(2_000_000),
                ..Default::default()
            })
            .len(),
            1
        );
        assert_eq!(
            q(Query {
                limit: Some(2),
                ..Default::default()
            })
            .len(),
            2
        );
        assert!(matches!(
            s.query(&Query {
                kind: Some("x' OR 1=1 --".into()),
                ..Default::default()
            }),
            Err(crate::Error::BadQuery(_))
        ));
        // SQL metacharacters in a filter are data, not SQL.
        assert!(q(Query {
            route: Some("' OR 1=1 --".into()),
            ..Default::default()
        })
        .is_empty());
    }

    #[test]
    fn retention_by_age_count_and_size() {
        let cfg = StoreConfig {
            max_age: Dur(Duration::from_secs(100)),
            max_events: 50,
            ..StoreConfig::default()
        };
        let s = EventStore::in_memory(cfg).unwrap();
        let now = 1_000_000_000_000u64;
        let old: Vec<_> = (0..10)
            .map(|i| {
                ev(
                    now - 200_000_000 + i,
                    Kind::ChallengeSolved,
                    "10.0.0.1",
                    "a",
                )
            })
            .collect();
        let fresh: Vec<_> = (0..80)
            .map(|i| ev(now - 1_000_000 + i, Kind::ChallengeSolved, "10.0.0.1", "a"))
            .collect();
        s.insert(&old).unwrap();
        s.insert(&fresh).unwrap();
        assert_eq!(s.apply_retention(now).unwrap(), 40);
        assert_eq!(s.count().unwrap(), 50);
        let left = s
            .query(&Query {
                limit: Some(1000),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(
            left.last().unwrap()["time_us"],
            now - 1_000_000 + 30,
            "oldest went first"
        );

        let small = EventStore::in_memory(StoreConfig {
            max_bytes: Size(64 * 1024),
            ..StoreConfig::default()
        })
        .unwrap();
        let big: Vec<_> = (0..2000)
            .map(|i| ev(now + i, block(1), "10.0.0.9", "a"))
            .collect();
        small.insert(&big).unwrap();
        small.apply_retention(now).unwrap();
        let n = small.count().unwrap();
        assert!(n > 0 && n < 2000, "size retention kept {n}");
    }

    #[test]
    fn times_parse() {
        let now = 1_800_000_000_000_000;
        assert_eq!(
            parse_time("1700000000", now).unwrap(),
            1_700_000_000_000_000
        );
        assert_eq!(parse_time("1h", now).unwrap(), now - 3_600_000_000);
        assert_eq!(
            parse_time("2023-11-14T22:13:20Z", now).unwrap(),
            1_700_000_000_000_000
        );
        assert_eq!(
            parse_time("2023-11-14T23:13:20.5+01:00", now).unwrap(),
            1_700_000_000_500_000
        );
        assert!(parse_time("yesterday", now).is_err());
        assert!(parse_time("2023-13-14T22:13:20Z", now).is_err());
    }

    #[test]
    fn the_writer_thread_persists_bus_events() {
        let bus = crate::events::Bus::new(64);
        let s = EventStore::in_memory(StoreConfig::default()).unwrap();
        let h = s.spawn_writer(bus.subscribe()).unwrap();
        for _ in 0..10 {
            bus.publish(Event::new(Kind::ConfigReload));
        }
        drop(bus);
        h.join().unwrap();
        assert_eq!(s.count().unwrap(), 10);
    }

    #[test]
    fn a_burst_is_stored_with_one_id_per_event() {
        let bus = crate::events::Bus::new(4096);
        let s = EventStore::in_memory(StoreConfig::default()).unwrap();
        let h = s.spawn_writer(bus.subscribe()).unwrap();
        for i in 0..3000 {
            bus.publish(Event::new(block(i)));
        }
        drop(bus);
        h.join().unwrap();
        assert_eq!(s.count().unwrap(), 3000);
        let c = lock(&s.conn);
        let (distinct, min, max): (i64, i64, i64) = c
            .query_row(
                "SELECT COUNT(DISTINCT id), MIN(id), MAX(id) FROM events",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(distinct, 3000, "every event has its own id");
        assert_eq!(max - min, 2999, "ids are consecutive on one bus");
    }

    #[test]
    fn counts_see_every_event_not_the_query_cap() {
        let s = EventStore::in_memory(StoreConfig::default()).unwrap();
        let mut evs = Vec::new();
        for i in 0..(MAX_QUERY_LIMIT as u64 + 500) {
            let client = if i % 3 == 0 { "10.0.0.1" } else { "10.0.0.2" };
            evs.push(ev(1_000_000 + i, block(942100), client, "app"));
        }
        evs.push(ev(1_000_000, Kind::ChallengeSolved, "10.0.0.3", "app"));
        evs.push(ev(10, block(1), "10.0.0.4", "app")); // before the window
        s.insert(&evs).unwrap();
        assert_eq!(
            s.query(&Query {
                kind: Some("waf_block".into()),
                limit: Some(usize::MAX),
                ..Default::default()
            })
            .unwrap()
            .len(),
            MAX_QUERY_LIMIT
        );
        let counts = s.count_by_kind(1_000_000).unwrap();
        assert_eq!(counts["waf_block"], MAX_QUERY_LIMIT as u64 + 500);
        assert_eq!(counts["challenge_solved"], 1);
        let top = s.top_clients(1_000_000, &["waf_block"], 20).unwrap();
        assert_eq!(
            top,
            vec![
                ("10.0.0.2".to_string(), 1000),
                ("10.0.0.1".to_string(), 500)
            ]
        );
    }

    #[test]
    fn events_are_found_by_id_and_old_stores_gain_the_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.db");
        {
            // A store from before events had ids.
            let c = Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, ts_us INTEGER NOT NULL,
                 kind TEXT NOT NULL, client TEXT, route TEXT, request_id TEXT,
                 rules TEXT NOT NULL DEFAULT '', json TEXT NOT NULL);
                 INSERT INTO events (ts_us, kind, json) VALUES (1, 'config_reload', '{\"kind\":\"config_reload\"}');",
            )
            .unwrap();
        }
        let s = EventStore::open(&path, StoreConfig::default()).unwrap();
        let mut e = Event::new(block(942100));
        e.id = 1_795_459_000_000_042;
        s.insert(&[Arc::new(e)]).unwrap();
        let got = s.get(1_795_459_000_000_042).unwrap().unwrap();
        assert_eq!(got["id"], 1_795_459_000_000_042u64);
        assert_eq!(got["kind"], "waf_block");
        assert!(s.get(7).unwrap().is_none());
        assert_eq!(s.count().unwrap(), 2, "old rows are kept");
        assert_eq!(s.max_id().unwrap(), 1_795_459_000_000_042);

        // A new store: the event id is the row id.
        let s = EventStore::in_memory(StoreConfig::default()).unwrap();
        assert_eq!(s.max_id().unwrap(), 0);
        let mut e = Event::new(Kind::ConfigReload);
        e.id = 99;
        s.insert(&[Arc::new(e), Arc::new(Event::new(Kind::ConfigReload))])
            .unwrap();
        assert_eq!(s.get(99).unwrap().unwrap()["id"], 99);
        assert_eq!(
            s.max_id().unwrap(),
            100,
            "an event without id is numbered after"
        );
    }
}
