//! A small Redis client: a few multiplexed connections, each carrying any
//! number of requests in flight (automatic pipelining: whatever callers
//! queued while the previous write was in progress goes out in one write),
//! per-request timeouts, fail-fast while disconnected, and a supervisor that
//! reconnects with back-off.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, Notify};

use super::resp::{self, Value};
use crate::config::RedisConfig;
use crate::error::{Error, Result};
use crate::types::{dur_us, now_micros};

/// Requests queued per connection before callers wait (still bounded by
/// their timeout). Default 4096: bounds memory when Redis stalls.
pub const CONN_QUEUE: usize = 4096;

/// Most bytes written to the socket in one go. Default 64 KiB: batches many
/// small commands per syscall without building huge buffers.
pub const MAX_WRITE_BATCH: usize = 64 * 1024;

/// Longest wait between reconnection attempts. Default 2 s; attempts start
/// 50 ms apart and double.
pub const MAX_RECONNECT_BACKOFF: Duration = Duration::from_secs(2);

/// Consecutive request timeouts after which requests fail fast for
/// [`BREAKER_COOLDOWN`]. Default 5: a hung (not dead) Redis would otherwise
/// add the full timeout to every request.
pub const BREAKER_THRESHOLD: u32 = 5;

/// How long requests fail fast once [`BREAKER_THRESHOLD`] timeouts in a row
/// happened. Default 1 s; then requests are tried again (one more timeout
/// reopens the breaker at once).
pub const BREAKER_COOLDOWN: Duration = Duration::from_secs(1);

/// At most one WARN line per this interval about failing (re)connections.
/// Default 30 s: the first failure is always logged.
pub const CONNECT_WARN_INTERVAL: Duration = Duration::from_secs(30);

/// A parsed `redis://` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RedisUrl {
    pub(crate) addr: String,
    pub(crate) user: Option<String>,
    pub(crate) password: Option<String>,
    pub(crate) db: u32,
}

impl RedisUrl {
    /// `redis://[[user]:password@]host[:port][/db]`.
    pub(crate) fn parse(url: &str) -> Result<RedisUrl> {
        let bad = |why: &str| Error::Config(format!("state.redis.url {url:?}: {why}"));
        let rest = url
            .strip_prefix("redis://")
            .ok_or_else(|| bad("must start with redis://"))?;
        let (auth, hostpart) = match rest.rsplit_once('@') {
            Some((a, h)) => (Some(a), h),
            None => (None, rest),
        };
        let (hostport, db) = match hostpart.split_once('/') {
            Some((h, "")) => (h, 0),
            Some((h, d)) => (h, d.parse().map_err(|_| bad("database must be a number"))?),
            None => (hostpart, 0),
        };
        if hostport.is_empty() {
            return Err(bad("no host"));
        }
        let has_port = if let Some(end) = hostport.strip_prefix('[') {
            end.contains("]:")
        } else {
            hostport.contains(':')
        };
        let addr = if has_port {
            hostport.to_string()
        } else {
            format!("{hostport}:6379")
        };
        let (user, password) = match auth {
            None => (None, None),
            Some(a) => match a.split_once(':') {
                Some((u, p)) => ((!u.is_empty()).then(|| u.to_string()), Some(p.to_string())),
                None => (None, Some(a.to_string())),
            },
        };
        Ok(RedisUrl {
            addr,
            user,
            password,
            db,
        })
    }
}

type Reply = oneshot::Sender<Result<Value>>;

struct Request {
    bytes: Bytes,
    reply: Reply,
}

/// One live multiplexed connection.
struct Conn {
    tx: mpsc::Sender<Request>,
    alive: Arc<AtomicBool>,
}

/// Connects, authenticates and selects the database; the raw stream is
/// returned for the caller to drive (used by the pub/sub subscriber too).
pub(crate) async fn connect_raw(url: &RedisUrl, timeout: Duration) -> Result<TcpStream> {
    let fut = async {
        let mut s = TcpStream::connect(&url.addr).await?;
        s.set_nodelay(true)?;
        let mut buf = BytesMut::new();
        if let Some(p) = &url.password {
            let mut out = BytesMut::new();
            match &url.user {
                Some(u) => resp::encode(&mut out, &[b"AUTH", u.as_bytes(), p.as_bytes()]),
                None => resp::encode(&mut out, &[b"AUTH", p.as_bytes()]),
            }
            s.write_all(&out).await?;
            read_one(&mut s, &mut buf).await?.into_result()?;
        }
        if url.db != 0 {
            let mut out = BytesMut::new();
            resp::encode(&mut out, &[b"SELECT", url.db.to_string().as_bytes()]);
            s.write_all(&out).await?;
            read_one(&mut s, &mut buf).await?.into_result()?;
        }
        Ok::<_, Error>(s)
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(Error::Timeout(timeout)),
    }
}

/// Reads exactly one reply (handshakes and the subscriber).
pub(crate) async fn read_one(s: &mut TcpStream, buf: &mut BytesMut) -> Result<Value> {
    loop {
        if let Some(v) = resp::decode(buf)? {
            return Ok(v);
        }
        if s.read_buf(buf).await? == 0 {
            return Err(Error::Unavailable("redis closed the connection".into()));
        }
    }
}

fn start_conn(stream: TcpStream) -> Conn {
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Request>(CONN_QUEUE);
    let alive = Arc::new(AtomicBool::new(true));
    let pending: Arc<Mutex<VecDeque<Reply>>> = Arc::default();

    let (w_alive, w_pending) = (alive.clone(), pending.clone());
    tokio::spawn(async move {
        let mut buf = BytesMut::with_capacity(MAX_WRITE_BATCH);
        while let Some(first) = rx.recv().await {
            if !w_alive.load(Ordering::Acquire) {
                let _ = first
                    .reply
                    .send(Err(Error::Unavailable("redis connection lost".into())));
                continue;
            }
            // Replies come back in order, so each reply slot is queued before
            // its bytes leave.
            let first_len = first.bytes.len();
            let mut batch = vec![first];
            let mut size = first_len;
            while size < MAX_WRITE_BATCH {
                match rx.try_recv() {
                    Ok(r) => {
                        size += r.bytes.len();
                        batch.push(r);
                    }
                    Err(_) => break,
                }
            }
            {
                let mut q = w_pending.lock().unwrap_or_else(|e| e.into_inner());
                for r in batch {
                    buf.extend_from_slice(&r.bytes);
                    q.push_back(r.reply);
                }
            }
            if let Err(e) = wr.write_all(&buf).await {
                w_alive.store(false, Ordering::Release);
                fail_all(&w_pending, &format!("redis write failed: {e}"));
                return;
            }
            buf.clear();
        }
    });

    let (r_alive, r_pending) = (alive.clone(), pending);
    tokio::spawn(async move {
        let mut buf = BytesMut::with_capacity(16 * 1024);
        let why = loop {
            loop {
                match resp::decode(&mut buf) {
                    Ok(Some(v)) => {
                        let slot = r_pending
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .pop_front();
                        match slot {
                            Some(tx) => {
                                let _ = tx.send(Ok(v));
                            }
                            None => {
                                r_alive.store(false, Ordering::Release);
                                fail_all(&r_pending, "redis sent an unsolicited reply");
                                return;
                            }
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        r_alive.store(false, Ordering::Release);
                        fail_all(&r_pending, &e.to_string());
                        return;
                    }
                }
            }
            match rd.read_buf(&mut buf).await {
                Ok(0) => break "redis closed the connection".to_string(),
                Ok(_) => {}
                Err(e) => break format!("redis read failed: {e}"),
            }
        };
        r_alive.store(false, Ordering::Release);
        fail_all(&r_pending, &why);
    });

    Conn { tx, alive }
}

fn fail_all(pending: &Mutex<VecDeque<Reply>>, why: &str) {
    let drained: Vec<Reply> = pending
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .drain(..)
        .collect();
    for tx in drained {
        let _ = tx.send(Err(Error::Unavailable(why.to_string())));
    }
}

struct Inner {
    url: RedisUrl,
    timeout: Duration,
    connect_timeout: Duration,
    slots: Vec<Mutex<Option<Conn>>>,
    next: AtomicUsize,
    wake: Notify,
    connects: AtomicU64,
    /// Timeouts in a row (reset by any reply).
    timeouts: AtomicU32,
    /// While now (µs) is before this, requests fail fast.
    open_until_us: AtomicU64,
    last_connect_warn_us: AtomicU64,
}

/// The Redis client: cheap to clone.
#[derive(Clone)]
pub(crate) struct Client {
    inner: Arc<Inner>,
}

impl Client {
    /// Creates the client and tries to connect every slot once (bounded by
    /// the connect timeout); slots that fail are retried by the supervisor.
    pub(crate) async fn new(cfg: &RedisConfig) -> Result<Client> {
        let url = RedisUrl::parse(&cfg.url)?;
        let inner = Arc::new(Inner {
            url,
            timeout: Duration::from_millis(cfg.timeout_ms),
            connect_timeout: Duration::from_millis(cfg.connect_timeout_ms),
            slots: (0..cfg.connections.max(1))
                .map(|_| Mutex::new(None))
                .collect(),
            next: AtomicUsize::new(0),
            wake: Notify::new(),
            connects: AtomicU64::new(0),
            timeouts: AtomicU32::new(0),
            open_until_us: AtomicU64::new(0),
            last_connect_warn_us: AtomicU64::new(0),
        });
        connect_dead_slots(&inner).await;
        tokio::spawn(supervise(Arc::downgrade(&inner)));
        Ok(Client { inner })
    }

    pub(crate) fn url(&self) -> &RedisUrl {
        &self.inner.url
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        self.inner.connect_timeout
    }

    pub(crate) fn connects(&self) -> u64 {
        self.inner.connects.load(Ordering::Relaxed)
    }

    /// Whether at least one connection is up.
    pub(crate) fn is_connected(&self) -> bool {
        self.inner.slots.iter().any(|s| {
            s.lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
                .is_some_and(|c| c.alive.load(Ordering::Acquire))
        })
    }

    fn sender(&self) -> Option<mpsc::Sender<Request>> {
        let n = self.inner.slots.len();
        let start = self.inner.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            let slot = self.inner.slots[(start + i) % n]
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some(c) = slot.as_ref() {
                if c.alive.load(Ordering::Acquire) {
                    return Some(c.tx.clone());
                }
            }
        }
        None
    }

    /// Sends one command and waits for its reply (an error reply becomes
    /// [`Error::Redis`]). Fails at once while no connection is up, and after
    /// the configured timeout otherwise.
    pub(crate) async fn call(&self, args: &[&[u8]]) -> Result<Value> {
        if now_micros() < self.inner.open_until_us.load(Ordering::Relaxed) {
            return Err(Error::Unavailable(format!(
                "redis timed out {BREAKER_THRESHOLD} times in a row; failing fast for {BREAKER_COOLDOWN:?}"
            )));
        }
        let Some(tx) = self.sender() else {
            self.inner.wake.notify_one();
            return Err(Error::Unavailable(
                "redis is not connected (reconnecting)".into(),
            ));
        };
        let mut buf = BytesMut::new();
        resp::encode(&mut buf, args);
        let (rtx, rrx) = oneshot::channel();
        let req = Request {
            bytes: buf.freeze(),
            reply: rtx,
        };
        let timeout = self.inner.timeout;
        let res = tokio::time::timeout(timeout, async move {
            tx.send(req)
                .await
                .map_err(|_| Error::Unavailable("redis connection closed".into()))?;
            rrx.await
                .map_err(|_| Error::Unavailable("redis connection closed".into()))?
        })
        .await;
        match res {
            Ok(Ok(v)) => {
                self.inner.timeouts.store(0, Ordering::Relaxed);
                v.into_result()
            }
            Ok(Err(e)) => {
                self.inner.wake.notify_one();
                Err(e)
            }
            Err(_) => {
                let n = self.inner.timeouts.fetch_add(1, Ordering::Relaxed) + 1;
                if n >= BREAKER_THRESHOLD {
                    let until = now_micros().saturating_add(dur_us(BREAKER_COOLDOWN));
                    self.inner.open_until_us.store(until, Ordering::Relaxed);
                    if n == BREAKER_THRESHOLD {
                        tracing::warn!(target: "state", addr = %self.inner.url.addr, timeouts = n,
                            "redis keeps timing out; failing fast for {BREAKER_COOLDOWN:?}");
                    }
                }
                Err(Error::Timeout(timeout))
            }
        }
    }
}

async fn connect_dead_slots(inner: &Inner) -> bool {
    let mut all_ok = true;
    for slot in &inner.slots {
        let dead = slot
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_none_or(|c| !c.alive.load(Ordering::Acquire));
        if !dead {
            continue;
        }
        match connect_raw(&inner.url, inner.connect_timeout).await {
            Ok(stream) => {
                let conn = start_conn(stream);
                *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(conn);
                let n = inner.connects.fetch_add(1, Ordering::Relaxed) + 1;
                if n > inner.slots.len() as u64 {
                    tracing::info!(target: "state", addr = %inner.url.addr, "redis reconnected");
                }
            }
            Err(e) => {
                all_ok = false;
                // Visible (WARN) at most every CONNECT_WARN_INTERVAL: a wrong
                // password or address must show up in the log, a long outage
                // must not flood it.
                let now = now_micros();
                let last = inner.last_connect_warn_us.load(Ordering::Relaxed);
                if now.saturating_sub(last) >= dur_us(CONNECT_WARN_INTERVAL)
                    && inner
                        .last_connect_warn_us
                        .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok()
                {
                    tracing::warn!(target: "state", addr = %inner.url.addr, error = %e, "cannot connect to redis; retrying");
                } else {
                    tracing::debug!(target: "state", addr = %inner.url.addr, error = %e, "redis connect failed");
                }
                *slot.lock().unwrap_or_else(|e| e.into_inner()) = None;
            }
        }
    }
    all_ok
}

/// Keeps every slot connected: wakes when a caller found a dead connection
/// (or every 500 ms) and reconnects with doubling back-off.
async fn supervise(weak: Weak<Inner>) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let ok = {
            let Some(inner) = weak.upgrade() else { return };
            connect_dead_slots(&inner).await
        };
        let wait = if ok {
            backoff = Duration::from_millis(50);
            Duration::from_millis(500)
        } else {
            let w = backoff;
            backoff = (backoff * 2).min(MAX_RECONNECT_BACKOFF);
            w
        };
        let Some(inner) = weak.upgrade() else { return };
        if ok {
            // Healthy: sleep until a caller reports a dead connection.
            let _ = tokio::time::timeout(wait, inner.wake.notified()).await;
        } else {
            drop(inner);
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let u = RedisUrl::parse("redis://127.0.0.1:6380/2").unwrap();
        assert_eq!(
            (u.addr.as_str(), u.db, u.password),
            ("127.0.0.1:6380", 2, None)
        );
        let u = RedisUrl::parse("redis://:s3cret@cache").unwrap();
        assert_eq!(
            (u.addr.as_str(), u.user, u.password.as_deref()),
            ("cache:6379", None, Some("s3cret"))
        );
        let u = RedisUrl::parse("redis://app:pw@[::1]:7000/").unwrap();
        assert_eq!(
            (u.addr.as_str(), u.user.as_deref()),
            ("[::1]:7000", Some("app"))
        );
        assert_eq!(RedisUrl::parse("redis://[::1]").unwrap().addr, "[::1]:6379");
        assert!(RedisUrl::parse("http://x").is_err());
        assert!(RedisUrl::parse("redis://x/abc").is_err());
        assert!(RedisUrl::parse("redis:///0").is_err());
    }
}
