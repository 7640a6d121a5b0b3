//! The Redis backend: shared rate limits, counters, bans and sessions for
//! several gateway nodes.
//!
//! - GCRA, counters, distinct sets and compare-and-delete run as Lua scripts
//!   (`EVALSHA`, falling back to `EVAL` after a `NOSCRIPT`), so each is atomic
//!   on the server whatever the number of nodes.
//! - Bans are one key per target (`{prefix}ban:{target}`, JSON, expiring with
//!   the ban) plus an index set (`{prefix}bans`). Every change is published
//!   on `{prefix}bans:events`; each node's subscriber applies it to its
//!   node-local ban cache at once, and a full resync runs on every (re)subscription
//!   and every `ban_sync_interval_ms` to cover messages missed while
//!   disconnected.
//! - Ban writes made while Redis is down (failure mode `local`) apply to the
//!   node's cache and wait in a bounded queue; the next resync pushes them.

mod client;
pub(crate) mod resp;

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::BytesMut;
use serde::{Deserialize, Serialize};
use sha1::Digest;

pub(crate) use client::RedisUrl;
pub use client::{
    BREAKER_COOLDOWN, BREAKER_THRESHOLD, CONN_QUEUE, MAX_RECONNECT_BACKOFF, MAX_WRITE_BATCH,
};
pub use resp::{MAX_ARRAY_LEN, MAX_BULK_LEN, MAX_DEPTH};

use self::client::{connect_raw, read_one, Client};
use self::resp::Value;
use crate::bancache::BanCache;
use crate::config::RedisConfig;
use crate::error::{Error, Result};
use crate::memory::{member_digest, MAX_DISTINCT_MEMBERS};
use crate::types::{dur_us, now_micros, Ban, IpPrefix, Micros, Quota, RateDecision};

/// Ban writes kept for later while Redis is down (failure mode `local`).
/// Default 10,000: bounds memory during a long outage; past it the oldest
/// queued write is dropped (and logged).
pub const MAX_PENDING_BAN_WRITES: usize = 10_000;

/// Latest key expiry sent to Redis, in ms since the epoch (year 9999). A
/// ban "expiring" later is kept that long; Redis refuses expiries near
/// `i64::MAX`.
const MAX_EXPIRY_MS: u64 = 253_402_300_799_000;

/// Targets fetched per `MGET` during a ban resync. Default 500: keeps each
/// reply small so other requests on the connection are not held up.
pub const BAN_SYNC_BATCH: usize = 500;

/// Arguments: KEYS[1] key; ARGV now_us, interval_us, burst, cost.
/// Returns {allowed, remaining, retry_after_us, reset_after_us}. Mirrors
/// `gcra::step` (integers below 2^53 are exact in Lua's doubles).
const GCRA_LUA: &str = r"
local now = tonumber(ARGV[1])
local t = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local tat = tonumber(redis.call('GET', KEYS[1]) or '')
if tat == nil or tat < now then tat = now end
local new_tat = tat + t * cost
local horizon = now + t * burst
if horizon < new_tat then
  local rem = 0
  if horizon > tat then rem = math.floor((horizon - tat) / t) end
  return {0, rem, new_tat - horizon, tat - now}
end
local ttl_ms = math.ceil((new_tat - now) / 1000)
if ttl_ms < 1 then ttl_ms = 1 end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', ttl_ms)
return {1, math.floor((horizon - new_tat) / t), 0, new_tat - now}
";

/// KEYS[1] counter; ARGV[1] window ms. Returns the new count.
const INCR_LUA: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return n
";

/// KEYS[1] set; ARGV member, window ms, cap. Returns the member count.
const DISTINCT_LUA: &str = r"
local n = redis.call('SCARD', KEYS[1])
if n < tonumber(ARGV[3]) then
  redis.call('SADD', KEYS[1], ARGV[1])
  if n == 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
  n = redis.call('SCARD', KEYS[1])
end
return n
";

/// KEYS[1] key; ARGV[1] expected value. Returns 1 when deleted.
const CAD_LUA: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// KEYS ban key, index set; ARGV json, expiry ms since epoch (0 = none),
/// channel, message, target.
const BAN_ADD_LUA: &str = r"
if ARGV[2] == '0' then
  redis.call('SET', KEYS[1], ARGV[1])
else
  redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
end
redis.call('SADD', KEYS[2], ARGV[5])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
";

/// KEYS ban key, index set; ARGV channel, message, target. Returns 1 when a
/// ban existed.
const BAN_DEL_LUA: &str = r"
local n = redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[3])
redis.call('PUBLISH', ARGV[1], ARGV[2])
return n
";

struct Script {
    body: &'static str,
    sha: String,
}

impl Script {
    fn new(body: &'static str) -> Script {
        let d = sha1::Sha1::digest(body.as_bytes());
        let sha = d.iter().map(|b| format!("{b:02x}")).collect();
        Script { body, sha }
    }
}

/// A ban event on the pub/sub channel.
#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum Event {
    Add { ban: Ban },
    Del { target: IpPrefix },
}

#[derive(Clone)]
enum PendingOp {
    Add(Ban),
    Del(IpPrefix),
}

/// The Redis backend.
pub(crate) struct RedisBackend {
    client: Client,
    prefix: String,
    channel: String,
    gcra: Script,
    incr: Script,
    distinct: Script,
    cad: Script,
    ban_add: Script,
    ban_del: Script,
    pending: Mutex<Vec<PendingOp>>,
}

fn ms_ceil(d: Duration) -> String {
    dur_us(d).div_ceil(1000).max(1).to_string()
}

impl RedisBackend {
    pub(crate) async fn new(cfg: &RedisConfig) -> Result<RedisBackend> {
        let client = Client::new(cfg).await?;
        Ok(RedisBackend {
            client,
            prefix: cfg.key_prefix.clone(),
            channel: format!("{}bans:events", cfg.key_prefix),
            gcra: Script::new(GCRA_LUA),
            incr: Script::new(INCR_LUA),
            distinct: Script::new(DISTINCT_LUA),
            cad: Script::new(CAD_LUA),
            ban_add: Script::new(BAN_ADD_LUA),
            ban_del: Script::new(BAN_DEL_LUA),
            pending: Mutex::new(Vec::new()),
        })
    }

    pub(crate) fn connects(&self) -> u64 {
        self.client.connects()
    }

    pub(crate) fn is_connected(&self) -> bool {
        self.client.is_connected()
    }

    fn key(&self, kind: &str, key: &str) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.prefix.len() + kind.len() + key.len());
        k.extend_from_slice(self.prefix.as_bytes());
        k.extend_from_slice(kind.as_bytes());
        k.extend_from_slice(key.as_bytes());
        k
    }

    async fn eval(&self, s: &Script, keys: &[&[u8]], args: &[&[u8]]) -> Result<Value> {
        let nkeys = keys.len().to_string();
        let mut argv: Vec<&[u8]> = Vec::with_capacity(3 + keys.len() + args.len());
        argv.extend_from_slice(&[b"EVALSHA", s.sha.as_bytes(), nkeys.as_bytes()]);
        argv.extend_from_slice(keys);
        argv.extend_from_slice(args);
        match self.client.call(&argv).await {
            Err(Error::Redis(msg)) if msg.starts_with("NOSCRIPT") => {
                // First use on this server (or after a restart): EVAL loads
                // the script into the cache for the next EVALSHA.
                argv[0] = b"EVAL";
                argv[1] = s.body.as_bytes();
                self.client.call(&argv).await
            }
            r => r,
        }
    }

    pub(crate) async fn rate_limit(
        &self,
        key: &str,
        quota: &Quota,
        cost: u32,
        now: Micros,
    ) -> Result<RateDecision> {
        let k = self.key("rl:", key);
        let (n, t, b, c) = (
            now.to_string(),
            quota.interval_us().to_string(),
            quota.burst.to_string(),
            cost.to_string(),
        );
        let v = self
            .eval(
                &self.gcra,
                &[&k],
                &[n.as_bytes(), t.as_bytes(), b.as_bytes(), c.as_bytes()],
            )
            .await?
            .into_array()?;
        if v.len() != 4 {
            return Err(Error::Protocol(format!(
                "GCRA script returned {} values",
                v.len()
            )));
        }
        let num = |i: usize| v[i].as_int().map(|x| u64::try_from(x).unwrap_or(0));
        Ok(RateDecision {
            allowed: num(0)? == 1,
            limit: quota.burst,
            remaining: u32::try_from(num(1)?).unwrap_or(u32::MAX).min(quota.burst),
            retry_after: Duration::from_micros(num(2)?),
            reset_after: Duration::from_micros(num(3)?),
            degraded: false,
        })
    }

    pub(crate) async fn incr(&self, key: &str, window: Duration) -> Result<u64> {
        let k = self.key("c:", key);
        let w = ms_ceil(window);
        let n = self
            .eval(&self.incr, &[&k], &[w.as_bytes()])
            .await?
            .as_int()?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    pub(crate) async fn add_distinct(
        &self,
        key: &str,
        member: &[u8],
        window: Duration,
    ) -> Result<u64> {
        let k = self.key("d:", key);
        let m = member_digest(member);
        let (w, cap) = (ms_ceil(window), MAX_DISTINCT_MEMBERS.to_string());
        let n = self
            .eval(&self.distinct, &[&k], &[&m, w.as_bytes(), cap.as_bytes()])
            .await?
            .as_int()?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    pub(crate) async fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let k = self.key("kv:", key);
        Ok(self
            .client
            .call(&[b"GET", &k])
            .await?
            .into_bulk()?
            .map(|b| b.to_vec()))
    }

    pub(crate) async fn kv_set(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
        only_if_absent: bool,
    ) -> Result<bool> {
        let k = self.key("kv:", key);
        let ms = ttl.map(ms_ceil);
        let mut args: Vec<&[u8]> = vec![b"SET", &k, value];
        if let Some(ms) = &ms {
            args.extend_from_slice(&[b"PX", ms.as_bytes()]);
        }
        if only_if_absent {
            args.push(b"NX");
        }
        // SET answers +OK, or nil when NX found the key.
        Ok(self.client.call(&args).await?.into_bulk()?.is_some())
    }

    pub(crate) async fn kv_delete(&self, key: &str) -> Result<bool> {
        let k = self.key("kv:", key);
        Ok(self.client.call(&[b"DEL", &k]).await?.as_int()? > 0)
    }

    pub(crate) async fn kv_take(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let k = self.key("kv:", key);
        Ok(self
            .client
            .call(&[b"GETDEL", &k])
            .await?
            .into_bulk()?
            .map(|b| b.to_vec()))
    }

    pub(crate) async fn kv_keys(&self, prefix: &str, limit: usize) -> Result<Vec<String>> {
        let full = self.key("kv:", "");
        let mut pattern = full.clone();
        for b in prefix.bytes() {
            // SCAN MATCH is a glob: escape its metacharacters.
            if matches!(b, b'*' | b'?' | b'[' | b']' | b'\\') {
                pattern.push(b'\\');
            }
            pattern.push(b);
        }
        pattern.push(b'*');
        let mut cursor = b"0".to_vec();
        let mut out = Vec::new();
        // Bounded: SCAN visits every key once; stop early at `limit`.
        loop {
            let mut reply = self
                .client
                .call(&[b"SCAN", &cursor, b"MATCH", &pattern, b"COUNT", b"1000"])
                .await?
                .into_array()?;
            if reply.len() != 2 {
                return Err(Error::Protocol("SCAN reply is not [cursor, keys]".into()));
            }
            let keys = reply
                .pop()
                .map(Value::into_array)
                .transpose()?
                .unwrap_or_default();
            let next = reply
                .pop()
                .map(Value::into_bulk)
                .transpose()?
                .flatten()
                .unwrap_or_default();
            for k in keys {
                if let Some(k) = k.into_bulk()? {
                    if let Some(rest) = k.strip_prefix(full.as_slice()) {
                        out.push(String::from_utf8_lossy(rest).into_owned());
                    }
                }
            }
            if out.len() >= limit || next.as_ref() == b"0" || next.is_empty() {
                break;
            }
            cursor = next.to_vec();
        }
        out.sort();
        out.dedup();
        out.truncate(limit);
        Ok(out)
    }

    pub(crate) async fn reset(&self, key: &str) -> Result<()> {
        let (a, b, c) = (
            self.key("rl:", key),
            self.key("c:", key),
            self.key("d:", key),
        );
        self.client.call(&[b"DEL", &a, &b, &c]).await?;
        Ok(())
    }

    pub(crate) async fn kv_compare_delete(&self, key: &str, expected: &[u8]) -> Result<bool> {
        let k = self.key("kv:", key);
        Ok(self.eval(&self.cad, &[&k], &[expected]).await?.as_int()? == 1)
    }

    // ------------------------------------------------------------------ bans

    fn event(&self, e: &Event) -> Result<String> {
        serde_json::to_string(e).map_err(|e| Error::InvalidInput(format!("ban event: {e}")))
    }

    pub(crate) async fn ban_put(&self, ban: &Ban) -> Result<()> {
        let t = ban.target.to_string();
        let k = self.key("ban:", &t);
        let idx = self.key("bans", "");
        let json = serde_json::to_string(ban).map_err(|e| Error::InvalidInput(e.to_string()))?;
        let at = ban
            .expires_us
            .map_or(0, |e| e.div_ceil(1000).clamp(1, MAX_EXPIRY_MS))
            .to_string();
        let msg = self.event(&Event::Add { ban: ban.clone() })?;
        self.eval(
            &self.ban_add,
            &[&k, &idx],
            &[
                json.as_bytes(),
                at.as_bytes(),
                self.channel.as_bytes(),
                msg.as_bytes(),
                t.as_bytes(),
            ],
        )
        .await?;
        Ok(())
    }

    pub(crate) async fn ban_delete(&self, target: &IpPrefix) -> Result<bool> {
        let t = target.to_string();
        let k = self.key("ban:", &t);
        let idx = self.key("bans", "");
        let msg = self.event(&Event::Del { target: *target })?;
        let n = self
            .eval(
                &self.ban_del,
                &[&k, &idx],
                &[self.channel.as_bytes(), msg.as_bytes(), t.as_bytes()],
            )
            .await?
            .as_int()?;
        Ok(n > 0)
    }

    /// Remembers a ban write that could not reach Redis.
    pub(crate) fn queue(&self, op_add: Option<Ban>, op_del: Option<IpPrefix>) {
        let mut q = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() >= MAX_PENDING_BAN_WRITES {
            q.remove(0);
            tracing::warn!(target: "state", "pending ban writes over MAX_PENDING_BAN_WRITES; dropped the oldest");
        }
        if let Some(b) = op_add {
            q.push(PendingOp::Add(b));
        }
        if let Some(t) = op_del {
            q.push(PendingOp::Del(t));
        }
    }

    /// Pushes queued ban writes, then reloads every ban from Redis into
    /// `cache` (plus any writes still queued).
    pub(crate) async fn resync(&self, cache: &BanCache) -> Result<usize> {
        let since = cache.seq();
        let queued: Vec<PendingOp> =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        for (i, op) in queued.iter().enumerate() {
            let r = match op {
                PendingOp::Add(b) => self.ban_put(b).await,
                PendingOp::Del(t) => self.ban_delete(t).await.map(|_| ()),
            };
            if let Err(e) = r {
                let mut q = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                let rest: Vec<PendingOp> = queued[i..].to_vec();
                let newer = std::mem::take(&mut *q);
                *q = rest.into_iter().chain(newer).collect();
                return Err(e);
            }
        }
        let idx = self.key("bans", "");
        let targets: Vec<Vec<u8>> = self
            .client
            .call(&[b"SMEMBERS", &idx])
            .await?
            .into_array()?
            .into_iter()
            .filter_map(|v| v.into_bulk().ok().flatten().map(|b| b.to_vec()))
            .collect();
        let mut bans = Vec::with_capacity(targets.len());
        let mut stale: Vec<Vec<u8>> = Vec::new();
        for chunk in targets.chunks(BAN_SYNC_BATCH) {
            let keys: Vec<Vec<u8>> = chunk
                .iter()
                .map(|t| {
                    let mut k = self.key("ban:", "");
                    k.extend_from_slice(t);
                    k
                })
                .collect();
            let mut args: Vec<&[u8]> = vec![b"MGET"];
            args.extend(keys.iter().map(|k| k.as_slice()));
            let vals = self.client.call(&args).await?.into_array()?;
            for (t, v) in chunk.iter().zip(vals) {
                match v.into_bulk()? {
                    Some(json) => match serde_json::from_slice::<Ban>(&json) {
                        Ok(b) => bans.push(b),
                        Err(e) => {
                            tracing::warn!(target: "state", error = %e, "undecodable ban in redis; skipped")
                        }
                    },
                    None => stale.push(t.clone()),
                }
            }
        }
        if !stale.is_empty() {
            let mut args: Vec<&[u8]> = vec![b"SREM", &idx];
            args.extend(stale.iter().map(|s| s.as_slice()));
            self.client.call(&args).await?;
        }
        // Writes queued meanwhile (Redis failed again) stay visible locally.
        let still: Vec<PendingOp> = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let now = now_micros();
        let mut merged: std::collections::HashMap<IpPrefix, Ban> = bans
            .into_iter()
            .filter(|b| b.active_at(now))
            .map(|b| (b.target, b))
            .collect();
        for op in still {
            match op {
                PendingOp::Add(b) => {
                    merged.insert(b.target, b);
                }
                PendingOp::Del(t) => {
                    merged.remove(&t);
                }
            }
        }
        let n = merged.len();
        cache.replace_all_since(since, merged.into_values());
        Ok(n)
    }
}

/// Subscribes to ban events and keeps `cache` in sync: applies each event,
/// resyncs after every (re)subscription and every `interval`.
pub(crate) async fn subscriber(weak: Weak<RedisBackend>, cache: Arc<BanCache>, interval: Duration) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let (url, ct, channel) = {
            let Some(b) = weak.upgrade() else { return };
            (
                b.client.url().clone(),
                b.client.connect_timeout(),
                b.channel.clone(),
            )
        };
        let started = std::time::Instant::now();
        match subscribe_once(&weak, &cache, &url, ct, &channel, interval).await {
            Ok(()) => return, // the backend was dropped
            Err(e) => {
                tracing::debug!(target: "state", error = %e, "redis ban subscription lost");
            }
        }
        if started.elapsed() > MAX_RECONNECT_BACKOFF {
            // It was up for a while: retry quickly, as after a first failure.
            backoff = Duration::from_millis(50);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_RECONNECT_BACKOFF);
    }
}

async fn subscribe_once(
    weak: &Weak<RedisBackend>,
    cache: &Arc<BanCache>,
    url: &RedisUrl,
    connect_timeout: Duration,
    channel: &str,
    interval: Duration,
) -> Result<()> {
    let mut s = connect_raw(url, connect_timeout).await?;
    let mut out = BytesMut::new();
    resp::encode(&mut out, &[b"SUBSCRIBE", channel.as_bytes()]);
    tokio::io::AsyncWriteExt::write_all(&mut s, &out).await?;
    let mut buf = BytesMut::new();
    tokio::time::timeout(connect_timeout, read_one(&mut s, &mut buf))
        .await
        .map_err(|_| Error::Timeout(connect_timeout))??;
    // Subscribed: anything published from now on arrives here, so a resync
    // now cannot miss a change.
    let resync = |weak: &Weak<RedisBackend>| {
        let (weak, cache) = (weak.clone(), cache.clone());
        async move {
            let Some(b) = weak.upgrade() else { return };
            if let Err(e) = b.resync(&cache).await {
                tracing::warn!(target: "state", error = %e, "redis ban resync failed");
            }
        }
    };
    resync(weak).await;
    let mut tick = tokio::time::interval(interval);
    tick.tick().await;
    loop {
        tokio::select! {
            v = read_one(&mut s, &mut buf) => {
                let v = v?;
                if weak.strong_count() == 0 {
                    return Ok(());
                }
                apply_message(cache, v);
            }
            _ = tick.tick() => {
                if weak.strong_count() == 0 {
                    return Ok(());
                }
                // Resync off the read loop so events keep flowing.
                tokio::spawn(resync(weak));
            }
        }
    }
}

fn apply_message(cache: &BanCache, v: Value) {
    let Ok(parts) = v.into_array() else { return };
    let mut it = parts.into_iter();
    let kind = it.next().and_then(|k| k.into_bulk().ok().flatten());
    if kind.as_deref() != Some(b"message") {
        return;
    }
    let Some(payload) = it.nth(1).and_then(|p| p.into_bulk().ok().flatten()) else {
        return;
    };
    match serde_json::from_slice::<Event>(&payload) {
        Ok(Event::Add { ban }) => {
            if let Err(e) = cache.insert(ban, now_micros()) {
                tracing::warn!(target: "state", error = %e, "ban from redis not cached");
            }
        }
        Ok(Event::Del { target }) => {
            cache.remove(&target);
        }
        Err(e) => tracing::warn!(target: "state", error = %e, "undecodable ban event ignored"),
    }
}
