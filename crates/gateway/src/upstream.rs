//! Upstream pools: server selection (round robin, least connections), health
//! (active checks with thresholds, passive ejection on connect failure), and
//! keep-alive connection reuse with a lock-free idle queue per server.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use crossbeam_queue::ArrayQueue;
use http_body_util::Empty;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::body::UpBody;
use crate::config::{Balance, HealthCheckConfig, UpstreamConfig};
use crate::error::{Error, Result};
use crate::limits::MAX_IDLE_PER_SERVER;
use crate::upstream_h1::{Conn, H1Idle, H1Lease, Via};

fn epoch() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    epoch().elapsed().as_millis() as u64
}

struct Idle {
    tx: SendRequest<UpBody>,
    since: Instant,
}

/// One upstream server.
pub struct Server {
    /// As configured (metrics label).
    pub label: Arc<str>,
    /// Resolved address.
    pub addr: SocketAddr,
    /// Requests in flight (least connections).
    pub active: AtomicUsize,
    healthy: AtomicBool,
    ejected_until: AtomicU64,
    idle: ArrayQueue<Idle>,
    /// Idle connections of the gateway's own HTTP/1.1 client.
    pub(crate) h1_idle: ArrayQueue<H1Idle>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("label", &self.label)
            .field("healthy", &self.is_healthy())
            .finish()
    }
}

impl Server {
    /// Healthy according to active health checks (always true without them).
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Currently passively ejected.
    pub fn is_ejected(&self) -> bool {
        self.ejected_until.load(Ordering::Relaxed) > now_ms()
    }
}

/// A pool of servers for one `[[upstream]]`.
#[derive(Debug)]
pub struct Pool {
    /// The config it was built from (reused across reloads when unchanged).
    pub config: UpstreamConfig,
    /// The servers.
    pub servers: Box<[Server]>,
    rr: AtomicUsize,
}

/// A connection checked out of a pool.
#[derive(Debug)]
pub struct Checkout {
    /// The connection (hyper's client or the gateway's own, see [`Via`]).
    pub conn: Conn,
    /// Whether it came from the idle queue (may have been closed meanwhile).
    pub reused: bool,
}

impl Pool {
    /// Builds a pool (all servers healthy until checks say otherwise).
    pub fn new(config: UpstreamConfig) -> Arc<Pool> {
        let servers = config
            .servers
            .iter()
            .map(|s| Server {
                label: Arc::from(s.label.as_str()),
                addr: s.addr,
                active: AtomicUsize::new(0),
                healthy: AtomicBool::new(true),
                ejected_until: AtomicU64::new(0),
                idle: ArrayQueue::new(MAX_IDLE_PER_SERVER),
                h1_idle: ArrayQueue::new(MAX_IDLE_PER_SERVER),
            })
            .collect();
        Arc::new(Pool {
            config,
            servers,
            rr: AtomicUsize::new(0),
        })
    }

    /// Name of the upstream.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Picks a server not in `tried` (bit set). Healthy, non-ejected servers
    /// first; if only ejected ones remain, one of those (passive ejection
    /// avoids dead servers but never turns a pool into a 503 by itself).
    /// `None` when every untried server is down by active health checks.
    pub fn pick(&self, tried: u64) -> Option<usize> {
        let n = self.servers.len();
        let start = self.rr.fetch_add(1, Ordering::Relaxed);
        let untried = |i: usize| tried & (1u64 << i) == 0;
        for pass in 0..2 {
            let ok = |i: usize| {
                let s = &self.servers[i];
                untried(i) && s.is_healthy() && (pass == 1 || !s.is_ejected())
            };
            let found = match self.config.balance {
                Balance::RoundRobin => (0..n).map(|k| (start + k) % n).find(|&i| ok(i)),
                Balance::LeastConn => (0..n)
                    .map(|k| (start + k) % n)
                    .filter(|&i| ok(i))
                    .min_by_key(|&i| self.servers[i].active.load(Ordering::Relaxed)),
            };
            if found.is_some() {
                return found;
            }
        }
        None
    }

    /// Takes the server out for the eject cooldown (connect failure).
    pub fn eject(&self, i: usize) {
        if let Some(s) = self.servers.get(i) {
            let until = now_ms() + self.config.eject_cooldown.as_millis() as u64;
            s.ejected_until.store(until, Ordering::Relaxed);
            tracing::warn!(upstream = %self.config.name, server = %s.label, "connect failed: server ejected for {:?}", self.config.eject_cooldown);
        }
    }

    /// A connection to server `i` for the client `via` picks: an idle
    /// keep-alive one or a new one ([`Via::HyperFresh`] always a new one).
    pub async fn checkout(
        self: &Arc<Self>,
        i: usize,
        connect_timeout: Duration,
        idle_timeout: Duration,
        via: Via,
    ) -> Result<Checkout> {
        let s = &self.servers[i];
        if via == Via::H1 {
            let idle = crate::upstream_h1::take_idle(s, idle_timeout);
            let stream = match idle {
                Some(_) => None,
                None => Some(connect_tcp(s, connect_timeout).await?),
            };
            let reused = idle.is_some();
            let lease = H1Lease::new(idle, stream, self.clone(), i, connect_timeout);
            return Ok(Checkout {
                conn: Conn::H1(lease),
                reused,
            });
        }
        if via == Via::Hyper {
            while let Some(mut idle) = s.idle.pop() {
                if idle.since.elapsed() >= idle_timeout || idle.tx.is_closed() {
                    continue;
                }
                if idle.tx.ready().await.is_ok() {
                    return Ok(Checkout {
                        conn: Conn::Hyper(idle.tx),
                        reused: true,
                    });
                }
            }
        }
        let tx = connect(s, connect_timeout).await?;
        Ok(Checkout {
            conn: Conn::Hyper(tx),
            reused: false,
        })
    }

    /// Returns a connection whose response is complete.
    pub fn checkin(&self, i: usize, tx: SendRequest<UpBody>) {
        if let Some(s) = self.servers.get(i) {
            if !tx.is_closed() {
                // Full queue: the connection is dropped (closed), bounding idle sockets.
                let _ = s.idle.push(Idle {
                    tx,
                    since: Instant::now(),
                });
            }
        }
    }

    /// Starts active health checks (if configured); the task ends when the
    /// pool is dropped (after a reload that replaced it).
    pub fn spawn_health_checks(self: &Arc<Self>) {
        let Some(hc) = self.config.health_check.clone() else {
            return;
        };
        let weak = Arc::downgrade(self);
        tokio::spawn(health_loop(weak, hc));
    }
}

/// A TCP connection to `s` (Nagle off), within `connect_timeout`.
pub(crate) async fn connect_tcp(s: &Server, connect_timeout: Duration) -> Result<TcpStream> {
    let stream = match tokio::time::timeout(connect_timeout, TcpStream::connect(s.addr)).await {
        Err(_) => return Err(Error::UpstreamConnectTimeout(s.label.to_string())),
        Ok(Err(e)) => {
            return Err(Error::UpstreamConnect {
                server: s.label.to_string(),
                source: e,
            })
        }
        Ok(Ok(st)) => st,
    };
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

async fn connect(s: &Server, connect_timeout: Duration) -> Result<SendRequest<UpBody>> {
    let stream = connect_tcp(s, connect_timeout).await?;
    let (tx, conn) = http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| Error::Upstream {
            server: s.label.to_string(),
            message: e.to_string(),
        })?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    Ok(tx)
}

/// One active check: GET `path` on a new connection; 2xx/3xx is healthy.
pub async fn check_once(addr: SocketAddr, host: &str, path: &str, timeout: Duration) -> bool {
    let fut = async {
        let stream = TcpStream::connect(addr).await.ok()?;
        let (mut tx, conn) = http1::Builder::new()
            .handshake::<_, Empty<bytes::Bytes>>(TokioIo::new(stream))
            .await
            .ok()?;
        tokio::spawn(conn);
        let req = http::Request::get(path)
            .header(http::header::HOST, host)
            .header(http::header::USER_AGENT, "palisade-health-check")
            .header(http::header::CONNECTION, "close")
            .body(Empty::new())
            .ok()?;
        let resp = tx.send_request(req).await.ok()?;
        let s = resp.status();
        Some(s.is_success() || s.is_redirection())
    };
    matches!(tokio::time::timeout(timeout, fut).await, Ok(Some(true)))
}

async fn health_loop(weak: Weak<Pool>, hc: HealthCheckConfig) {
    let n = match weak.upgrade() {
        Some(p) => p.servers.len(),
        None => return,
    };
    let mut oks = vec![0u32; n];
    let mut fails = vec![0u32; n];
    loop {
        let targets: Vec<(SocketAddr, Arc<str>)> = match weak.upgrade() {
            Some(p) => p
                .servers
                .iter()
                .map(|s| (s.addr, s.label.clone()))
                .collect(),
            None => return,
        };
        let mut set = tokio::task::JoinSet::new();
        for (i, (addr, label)) in targets.into_iter().enumerate() {
            let path = hc.path.clone();
            let timeout = hc.timeout;
            set.spawn(async move { (i, check_once(addr, &label, &path, timeout).await) });
        }
        let mut results = vec![false; n];
        while let Some(r) = set.join_next().await {
            if let Ok((i, ok)) = r {
                if let Some(slot) = results.get_mut(i) {
                    *slot = ok;
                }
            }
        }
        let Some(pool) = weak.upgrade() else { return };
        for (i, ok) in results.into_iter().enumerate() {
            let s = &pool.servers[i];
            if ok {
                oks[i] = oks[i].saturating_add(1);
                fails[i] = 0;
                if !s.is_healthy() && oks[i] >= hc.healthy_threshold {
                    s.healthy.store(true, Ordering::Relaxed);
                    s.ejected_until.store(0, Ordering::Relaxed);
                    tracing::info!(upstream = %pool.config.name, server = %s.label, "health check: server is healthy again");
                }
            } else {
                fails[i] = fails[i].saturating_add(1);
                oks[i] = 0;
                if s.is_healthy() && fails[i] >= hc.unhealthy_threshold {
                    s.healthy.store(false, Ordering::Relaxed);
                    tracing::warn!(upstream = %pool.config.name, server = %s.label, "health check: server marked unhealthy");
                }
            }
        }
        drop(pool);
        tokio::time::sleep(hc.interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ServerAddr;

    fn pool(balance: Balance, n: usize) -> Arc<Pool> {
        Pool::new(UpstreamConfig {
            name: "t".into(),
            servers: (0..n)
                .map(|i| ServerAddr {
                    label: format!("s{i}"),
                    addr: SocketAddr::from(([127, 0, 0, 1], 1000 + i as u16)),
                })
                .collect(),
            balance,
            eject_cooldown: Duration::from_secs(10),
            health_check: None,
        })
    }

    #[test]
    fn round_robin_cycles_and_skips_tried() {
        let p = pool(Balance::RoundRobin, 3);
        let picks: Vec<_> = (0..6).map(|_| p.pick(0).unwrap()).collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2]);
        assert_eq!(p.pick(0b011), Some(2));
        assert_eq!(p.pick(0b111), None);
    }

    #[test]
    fn least_conn_prefers_idle_server() {
        let p = pool(Balance::LeastConn, 3);
        p.servers[0].active.store(5, Ordering::Relaxed);
        p.servers[1].active.store(1, Ordering::Relaxed);
        p.servers[2].active.store(3, Ordering::Relaxed);
        for _ in 0..5 {
            assert_eq!(p.pick(0), Some(1));
        }
        assert_eq!(p.pick(0b010), Some(2));
    }

    #[test]
    fn unhealthy_and_ejected_servers_are_avoided() {
        let p = pool(Balance::RoundRobin, 2);
        p.servers[0].healthy.store(false, Ordering::Relaxed);
        for _ in 0..4 {
            assert_eq!(p.pick(0), Some(1));
        }
        p.eject(1);
        // Only an ejected server left: it is still tried (502, not 503).
        assert_eq!(p.pick(0), Some(1));
        p.servers[1].healthy.store(false, Ordering::Relaxed);
        assert_eq!(p.pick(0), None);
    }

    #[test]
    fn ejection_prefers_other_servers_until_cooldown() {
        let p = pool(Balance::RoundRobin, 2);
        p.eject(0);
        assert!(p.servers[0].is_ejected());
        for _ in 0..4 {
            assert_eq!(p.pick(0), Some(1));
        }
    }

    #[tokio::test]
    async fn connect_failure_is_reported() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let p = Pool::new(UpstreamConfig {
            name: "t".into(),
            servers: vec![ServerAddr {
                label: "x".into(),
                addr,
            }],
            balance: Balance::RoundRobin,
            eject_cooldown: Duration::from_secs(1),
            health_check: None,
        });
        let e = p
            .checkout(0, Duration::from_secs(2), Duration::from_secs(2), Via::H1)
            .await
            .err()
            .unwrap();
        assert_eq!(e.status(), 502);
        assert!(!check_once(addr, "x", "/", Duration::from_secs(1)).await);
    }
}
