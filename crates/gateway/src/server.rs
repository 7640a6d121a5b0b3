//! The running gateway: runtime config generations (swapped atomically on
//! reload), listeners and their accept loops, connection caps, per-connection
//! serving, graceful shutdown.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use http::HeaderValue;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::accesslog::AccessLogger;
use crate::config::{Config, ListenerConfig, Protocol};
use crate::error::{Error, Result};
use crate::guard::{ConnShared, GuardLimits, Guarded};
use crate::limits::{Limits, REQUEST_LINE_SLACK};
use crate::metrics::{Metrics, RouteMetrics, NO_ROUTE};
use crate::proxy::{handle, random_secret, ConnCtx, RequestIds};
use crate::route::RouteTable;
use crate::tls::{self, LoadedCert};
use crate::upstream::Pool;

/// A route with everything needed per request.
#[derive(Debug)]
pub struct RouteRt {
    /// Route name (metrics, logs).
    pub name: Arc<str>,
    /// Its upstream pool.
    pub pool: Arc<Pool>,
    /// Its counters.
    pub metrics: Arc<RouteMetrics>,
    /// Its WAF (`None`: off).
    pub waf: Option<Arc<crate::waf::RouteWafRt>>,
}

/// A listener's settings for one config generation.
pub struct ListenerRt {
    /// The config.
    pub cfg: ListenerConfig,
    /// TLS acceptor (https).
    pub tls: Option<TlsAcceptor>,
    /// Loaded certificates (https).
    pub certs: Vec<LoadedCert>,
    /// Strict-Transport-Security value.
    pub hsts: Option<HeaderValue>,
    /// Port of the first https listener, for redirects.
    pub redirect_port: Option<u16>,
    /// HTTP server settings.
    pub builder: auto::Builder<TokioExecutor>,
    /// Guard limits.
    pub guard: GuardLimits,
    /// tcp/tls: TLS client config towards the upstream (`upstream_tls`).
    pub upstream_tls: Option<Arc<rustls::ClientConfig>>,
    /// tls: the client-certificate verifier (CA bundle + CRLs of this
    /// generation), kept so open tunnels can be re-checked after a reload.
    pub client_verifier: Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>,
}

impl std::fmt::Debug for ListenerRt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerRt")
            .field("cfg", &self.cfg)
            .field("certs", &self.certs)
            .finish()
    }
}

/// One config generation: routes, pools, listeners, limits.
#[derive(Debug)]
pub struct Runtime {
    /// The validated config.
    pub config: Config,
    /// Precomputed routes.
    pub routes: RouteTable<RouteRt>,
    /// Pools by upstream name.
    pub pools: HashMap<String, Arc<Pool>>,
    /// Listener settings by configured address.
    pub listeners: HashMap<SocketAddr, Arc<ListenerRt>>,
    /// Compiled WAF rules and the audit log.
    pub waf: crate::waf::WafRt,
}

/// Process-wide state shared by all connections.
#[derive(Debug)]
pub struct Shared {
    /// The current config generation.
    pub runtime: ArcSwap<Runtime>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Access log.
    pub access_log: AccessLogger,
    /// Secret of the guard's rejection marker.
    pub secret: Arc<str>,
    /// Request ids.
    pub request_ids: RequestIds,
    /// Counters for requests that matched no route.
    pub unrouted: Arc<RouteMetrics>,
    /// IP lists, rate limits, bans, challenge (state survives reloads).
    pub shield: Arc<shield::Shield>,
    /// Users, sessions and counters of `[identity]` (survive reloads).
    pub identity: crate::identity_glue::Slot,
    /// The event bus and its subscribers (process-wide).
    pub monitor: Arc<monitor::Monitor>,
    /// Whether the guard captures raw request heads: only while some route
    /// has the WAF on (the WAF is their only reader); follows reloads.
    pub raw_heads: Arc<AtomicBool>,
    conns: ConnTracker,
    shutdown: watch::Sender<bool>,
    /// Bumped after every applied reload (open tunnels re-check their
    /// client certificate against the new CRLs and policy).
    generation: watch::Sender<u64>,
}

impl Shared {
    /// Turns true when graceful shutdown starts (tunnels drain on it).
    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Changes after every applied reload.
    pub(crate) fn generation_signal(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }
}

/// Number of shards of the per-IP connection map (contention only at accept).
const IP_SHARDS: usize = 16;

#[derive(Debug)]
struct ConnTracker {
    total: AtomicUsize,
    per_ip: [Mutex<HashMap<IpAddr, usize>>; IP_SHARDS],
}

impl ConnTracker {
    fn new() -> Self {
        ConnTracker {
            total: AtomicUsize::new(0),
            per_ip: std::array::from_fn(|_| Mutex::new(HashMap::new())),
        }
    }

    fn shard(&self, ip: &IpAddr) -> &Mutex<HashMap<IpAddr, usize>> {
        let h = match ip {
            IpAddr::V4(v) => u32::from(*v) as usize,
            IpAddr::V6(v) => (u128::from(*v) as usize) ^ ((u128::from(*v) >> 64) as usize),
        };
        &self.per_ip[h % IP_SHARDS]
    }
}

/// Holds a connection slot; released on drop.
pub(crate) struct ConnPermit {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl ConnPermit {
    pub(crate) fn acquire(shared: &Arc<Shared>, ip: IpAddr, limits: &Limits) -> Option<ConnPermit> {
        let t = &shared.conns;
        if t.total.fetch_add(1, Ordering::AcqRel) >= limits.max_connections {
            t.total.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        let mut m = match t.shard(&ip).lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let n = m.entry(ip).or_insert(0);
        if *n >= limits.max_connections_per_ip {
            drop(m);
            t.total.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        *n += 1;
        shared
            .metrics
            .connections_open
            .fetch_add(1, Ordering::Relaxed);
        Some(ConnPermit {
            shared: shared.clone(),
            ip,
        })
    }
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        let t = &self.shared.conns;
        let mut m = match t.shard(&self.ip).lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some(n) = m.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
        drop(m);
        t.total.fetch_sub(1, Ordering::AcqRel);
        self.shared
            .metrics
            .connections_open
            .fetch_sub(1, Ordering::Relaxed);
    }
}

fn http_builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    // The guard enforces the real limits (and answers 414/431 itself); hyper's
    // own limits sit just above them as a second line.
    let head = limits.max_header_bytes + limits.max_uri_bytes + REQUEST_LINE_SLACK;
    // No header-read timer in hyper: the guard owns that timeout (from the
    // first byte of a head, and from accept) and the keep-alive idle one.
    // hyper's would arm a timer for every request while the connection
    // waits for the next head (one allocation, a clock read, a timer-wheel
    // insert and removal per request), and would cut idle keep-alive
    // connections after the header timeout instead of the idle timeout.
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(true)
        .max_buf_size(usize::try_from(head).unwrap_or(usize::MAX).max(8192) + 1024)
        .max_headers(limits.max_headers + 8);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(limits.keepalive_idle_timeout))
        .keep_alive_timeout(Duration::from_secs(20))
        .max_pending_accept_reset_streams(Some(limits.h2_max_concurrent_streams as usize));
    b
}

/// Builds a config generation: loads certificates, precomputes routes, and
/// reuses the pools of `old` whose upstream definition is unchanged (they keep
/// health state and idle connections).
pub fn build_runtime(config: Config, old: Option<&Runtime>, metrics: &Metrics) -> Result<Runtime> {
    let mut pools = HashMap::new();
    let mut new_pools = Vec::new();
    for u in &config.upstreams {
        let reused = old
            .and_then(|o| o.pools.get(&u.name))
            .filter(|p| p.config == *u)
            .cloned();
        let pool = match reused {
            Some(p) => p,
            None => {
                let p = Pool::new(u.clone());
                new_pools.push(p.clone());
                p
            }
        };
        pools.insert(u.name.clone(), pool);
    }
    // Rules first: a rules file that does not load refuses the generation.
    let waf = crate::waf::WafRt::build(&config)?;
    let mut entries = Vec::new();
    for r in &config.routes {
        let Some(pool) = pools.get(&r.upstream).cloned() else {
            // Validation guarantees the upstream exists.
            continue;
        };
        entries.push((
            r.host.clone(),
            r.path_prefix.clone(),
            Arc::new(RouteRt {
                name: Arc::from(r.name.as_str()),
                pool,
                waf: waf.route(r.waf.as_ref(), &metrics.route(&r.name)),
                metrics: metrics.route(&r.name),
            }),
        ));
    }
    let routes = RouteTable::new(entries);
    let redirect_port = config
        .listeners
        .iter()
        .find(|l| l.protocol == Protocol::Https)
        .map(|l| l.listen.port());
    let mut listeners = HashMap::new();
    let limits = &config.limits;
    for l in &config.listeners {
        let (tls, certs, client_verifier) = match l.protocol {
            Protocol::Http | Protocol::Tcp => (None, Vec::new(), None),
            Protocol::Https | Protocol::Tls => {
                let certs = tls::listener_certs(l, &config.server.data_dir)?;
                let verifier = crate::tunnel::client_verifier(&l.tunnel)?;
                let sc = tls::listener_server_config(l, &certs, verifier.clone())?;
                (Some(TlsAcceptor::from(sc)), certs, verifier)
            }
        };
        let hsts = l
            .hsts
            .as_deref()
            .and_then(|h| HeaderValue::from_str(h).ok());
        listeners.insert(
            l.listen,
            Arc::new(ListenerRt {
                cfg: l.clone(),
                tls,
                certs,
                hsts,
                redirect_port,
                upstream_tls: crate::tunnel::upstream_client_config(&l.tunnel)?,
                client_verifier,
                builder: http_builder(limits),
                guard: GuardLimits {
                    max_uri_bytes: limits.max_uri_bytes,
                    max_header_bytes: limits.max_header_bytes,
                    max_headers: limits.max_headers,
                    header_timeout: limits.header_read_timeout,
                    idle_timeout: limits.keepalive_idle_timeout,
                    write_timeout: limits.body_idle_timeout,
                },
            }),
        );
    }
    // Health checks start only for pools that are new in this generation.
    for p in new_pools {
        p.spawn_health_checks();
    }
    Ok(Runtime {
        config,
        routes,
        pools,
        listeners,
        waf,
    })
}

struct ListenerHandle {
    stop: watch::Sender<bool>,
    local: SocketAddr,
}

/// Loads the config again on reload (file re-read, or the embedded default).
pub type ConfigLoader = Box<dyn Fn() -> Result<Config> + Send + Sync>;

struct Inner {
    shared: Arc<Shared>,
    listeners: Mutex<HashMap<SocketAddr, ListenerHandle>>,
    loader: ConfigLoader,
    reload_lock: tokio::sync::Mutex<()>,
    admin: Option<SocketAddr>,
}

/// A running gateway. Cheap to clone.
#[derive(Clone)]
pub struct Gateway(Arc<Inner>);

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("admin", &self.0.admin)
            .finish()
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })
}

impl Gateway {
    /// Starts listeners, admin and health checks. Fails with a clear error on
    /// bad certificates or ports in use; nothing keeps running on failure.
    pub async fn start(config: Config, loader: ConfigLoader) -> Result<Gateway> {
        let metrics = Arc::new(Metrics::default());
        let access_log = AccessLogger::open(&config.server.access_log, metrics.clone())?;
        let admin_addr = config.admin.listen;
        // Before binding: opening the event store must not widen the time
        // between the ports accepting and start-up completing.
        let monitor = crate::events_glue::build(&config).await?;
        let rt = build_runtime(config, None, &metrics)?;
        let mut bound = Vec::new();
        for addr in rt.listeners.keys() {
            bound.push((*addr, bind(*addr).await?));
        }
        let admin_listener = match admin_addr {
            Some(a) => Some(bind(a).await?),
            None => None,
        };
        let (shutdown, _) = watch::channel(false);
        let (generation, _) = watch::channel(0u64);
        let shield = crate::shield_glue::build(&rt.config).await?;
        let raw_heads = Arc::new(AtomicBool::new(rt.waf.ruleset_count() > 0));
        let shared = Arc::new(Shared {
            raw_heads,
            shield,
            identity: Default::default(),
            monitor,
            runtime: ArcSwap::from_pointee(rt),
            unrouted: metrics.route(NO_ROUTE),
            metrics,
            access_log,
            secret: Arc::from(random_secret()),
            request_ids: RequestIds::default(),
            conns: ConnTracker::new(),
            shutdown,
            generation,
        });
        crate::identity_glue::build(&shared).await?;
        let admin_local = admin_listener.as_ref().and_then(|l| l.local_addr().ok());
        let gw = Gateway(Arc::new(Inner {
            shared: shared.clone(),
            listeners: Mutex::new(HashMap::new()),
            loader,
            reload_lock: tokio::sync::Mutex::new(()),
            admin: admin_local,
        }));
        crate::events_glue::attach(&shared);
        for (addr, l) in bound {
            gw.spawn_listener(addr, l);
        }
        if let Some(l) = admin_listener {
            crate::admin::spawn(l, gw.clone());
        }
        Ok(gw)
    }

    fn spawn_listener(&self, key: SocketAddr, listener: TcpListener) {
        let local = listener.local_addr().unwrap_or(key);
        let (stop, stop_rx) = watch::channel(false);
        tracing::info!(listen = %local, "listening");
        if crate::tunnel::owns(&self.0.shared, key) {
            tokio::spawn(crate::tunnel::accept_loop(
                listener,
                key,
                self.0.shared.clone(),
                stop_rx,
            ));
        } else {
            tokio::spawn(accept_loop(listener, key, self.0.shared.clone(), stop_rx));
        }
        let mut m = match self.0.listeners.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        m.insert(key, ListenerHandle { stop, local });
    }

    /// Addresses actually bound, by configured address (port 0 resolves here).
    pub fn local_addrs(&self) -> Vec<(SocketAddr, SocketAddr)> {
        let m = match self.0.listeners.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let mut v: Vec<_> = m.iter().map(|(k, h)| (*k, h.local)).collect();
        v.sort();
        v
    }

    /// The admin listener's bound address.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.0.admin
    }

    /// The current runtime (config generation).
    pub fn runtime(&self) -> Arc<Runtime> {
        self.0.shared.runtime.load_full()
    }

    /// The shield (bans, lists, rate limits).
    pub fn shield(&self) -> &Arc<shield::Shield> {
        &self.0.shared.shield
    }

    /// The monitor: event bus, store, metrics, anomaly model, alerts.
    pub fn monitor(&self) -> &Arc<monitor::Monitor> {
        &self.0.shared.monitor
    }

    /// The identity runtime (`None` without `[identity]`).
    pub fn identity(&self) -> Option<Arc<crate::identity_glue::IdentityRt>> {
        self.0.shared.identity.load_full()
    }

    /// Process-wide metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.0.shared.metrics
    }

    /// Re-reads and applies the config. On error the old config keeps
    /// serving; the result is counted in `palisade_config_reloads_total`.
    pub async fn reload(&self) -> Result<()> {
        let _g = self.0.reload_lock.lock().await;
        let res = self.apply((self.0.loader)()).await;
        let m = &self.0.shared.metrics;
        crate::events_glue::reload(&self.0.shared.monitor, &res);
        match &res {
            Ok(()) => {
                m.reloads_ok.fetch_add(1, Ordering::Relaxed);
                tracing::info!("config reloaded");
            }
            Err(e) => {
                m.reloads_error.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "config reload rejected; the previous config keeps serving");
            }
        }
        res
    }

    async fn apply(&self, config: Result<Config>) -> Result<()> {
        let config = config?;
        let shared = &self.0.shared;
        let old = shared.runtime.load_full();
        if config.admin.listen != old.config.admin.listen {
            tracing::warn!("admin.listen changed: takes effect after a restart");
        }
        if config.server.access_log != old.config.server.access_log {
            tracing::warn!("server.access_log changed: takes effect after a restart");
        }
        let rt = build_runtime(config, Some(&old), &shared.metrics)?;
        // Bind new addresses before switching, so a port in use rejects the
        // whole reload and nothing changes.
        let existing: Vec<SocketAddr> = {
            let m = match self.0.listeners.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            m.keys().copied().collect()
        };
        let mut fresh = Vec::new();
        for addr in rt.listeners.keys() {
            if !existing.contains(addr) {
                fresh.push((*addr, bind(*addr).await?));
            }
        }
        let removed: Vec<SocketAddr> = existing
            .into_iter()
            .filter(|a| !rt.listeners.contains_key(a))
            .collect();
        crate::shield_glue::on_reload(shared, &rt.config, &old.config);
        crate::identity_glue::on_reload(shared, &rt.config, &old.config);
        crate::events_glue::on_reload(&shared.monitor, &rt.config);
        // Raw heads on before a generation with the WAF serves, off only
        // after the last one without: a WAF request never misses its head
        // because of the order of these two stores.
        let want_raw = rt.waf.ruleset_count() > 0;
        if want_raw {
            shared.raw_heads.store(true, Ordering::Release);
        }
        shared.runtime.store(Arc::new(rt));
        if !want_raw {
            shared.raw_heads.store(false, Ordering::Release);
        }
        shared.generation.send_modify(|g| *g += 1);
        for (addr, l) in fresh {
            self.spawn_listener(addr, l);
        }
        let mut m = match self.0.listeners.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        for a in removed {
            if let Some(h) = m.remove(&a) {
                let _ = h.stop.send(true);
                tracing::info!(listen = %h.local, "listener removed by reload");
            }
        }
        Ok(())
    }

    /// Stops accepting, asks every connection to finish its in-flight
    /// requests, and waits for them up to `grace`.
    pub async fn shutdown(&self, grace: Duration) {
        {
            let mut m = match self.0.listeners.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            for (_, h) in m.drain() {
                let _ = h.stop.send(true);
            }
        }
        let _ = self.0.shared.shutdown.send(true);
        let deadline = tokio::time::Instant::now() + grace;
        while self.0.shared.conns.total.load(Ordering::Acquire) > 0 {
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(
                    open = self.0.shared.conns.total.load(Ordering::Acquire),
                    "shutdown grace elapsed; closing remaining connections"
                );
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tracing::info!("shutdown complete: all connections drained");
    }

    /// Serves until SIGTERM/SIGINT (graceful shutdown), reloading on SIGHUP.
    pub async fn run_until_signal(&self) -> Result<()> {
        self.run_with_signals(Signals::install()?).await
    }

    /// [`Gateway::run_until_signal`] with handlers installed earlier (before
    /// the listeners answer), so a SIGHUP or SIGTERM sent as soon as the
    /// ports are up is acted on instead of killing the process.
    pub async fn run_with_signals(&self, signals: Signals) -> Result<()> {
        let Signals {
            mut hup,
            mut term,
            mut int,
        } = signals;
        loop {
            tokio::select! {
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reloading config");
                    let _ = self.reload().await;
                }
                _ = term.recv() => break,
                _ = int.recv() => break,
            }
        }
        let grace = self.runtime().config.server.shutdown_grace;
        tracing::info!(?grace, "shutting down: draining in-flight requests");
        self.shutdown(grace).await;
        Ok(())
    }
}

/// SIGHUP, SIGTERM and SIGINT handlers; signals that arrive after
/// [`Signals::install`] wait in them until the gateway runs.
#[derive(Debug)]
pub struct Signals {
    hup: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    /// Replaces the default actions (terminate) of the three signals.
    pub fn install() -> Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        let sig = |k| signal(k).map_err(|e| Error::io("cannot install signal handler", e));
        Ok(Signals {
            hup: sig(SignalKind::hangup())?,
            term: sig(SignalKind::terminate())?,
            int: sig(SignalKind::interrupt())?,
        })
    }
}

async fn accept_loop(
    listener: TcpListener,
    key: SocketAddr,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.changed() => break,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, peer)) => {
                let Some(shield) = crate::shield_glue::on_accept(&shared, peer.ip()) else {
                    continue;
                };
                let rt = shared.runtime.load();
                let Some(l) = rt.listeners.get(&key).cloned() else {
                    continue;
                };
                let Some(permit) = ConnPermit::acquire(&shared, peer.ip(), &rt.config.limits)
                else {
                    tracing::debug!(%peer, "connection refused: connection cap reached");
                    continue;
                };
                drop(rt);
                let conn = serve_conn(stream, peer, l, shared.clone(), permit);
                tokio::spawn(async move {
                    let _shield = shield;
                    conn.await
                });
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve_conn(
    stream: TcpStream,
    peer: SocketAddr,
    l: Arc<ListenerRt>,
    shared: Arc<Shared>,
    permit: ConnPermit,
) {
    let _permit = permit;
    let _ = stream.set_nodelay(true);
    let conn = Arc::new(ConnShared::capturing_when(shared.raw_heads.clone()));
    let peer_hv = HeaderValue::from_str(&peer.ip().to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
    let ctx = Arc::new(ConnCtx {
        shared: shared.clone(),
        listener: l.clone(),
        peer,
        peer_hv,
        conn: conn.clone(),
        identity: Default::default(),
        client_cert: Default::default(),
    });
    let shutdown = shared.shutdown.subscribe();
    match &l.tls {
        None => {
            let io = Guarded::new(stream, l.guard, conn, shared.secret.clone(), false);
            serve_http(io, ctx, &l, shutdown).await;
        }
        Some(acceptor) => {
            let tls =
                match tokio::time::timeout(l.guard.header_timeout, acceptor.accept(stream)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
            crate::tunnel::set_identity(&ctx.identity, tls.get_ref().1);
            crate::identity_glue::set_client_cert(&ctx.client_cert, tls.get_ref().1);
            let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
            let io = Guarded::new(tls, l.guard, conn, shared.secret.clone(), h2);
            serve_http(io, ctx, &l, shutdown).await;
        }
    }
}

/// How many times per keep-alive idle timeout a connection's activity is
/// sampled; a connection without requests closes between 1 and
/// 1 + 1/`IDLE_CHECKS_PER_TIMEOUT` idle timeouts after its last one.
const IDLE_CHECKS_PER_TIMEOUT: u32 = 4;

async fn serve_http<T>(
    io: Guarded<T>,
    ctx: Arc<ConnCtx>,
    l: &ListenerRt,
    mut shutdown: watch::Receiver<bool>,
) where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    // The guard closes idle HTTP/1 connections; HTTP/2 ones (ALPN or prior
    // knowledge) pass through it, and hyper's keep-alive PINGs are answered
    // by any live client, so an h2 connection without streams is closed
    // here: no request started and none in flight for the idle timeout.
    let started = Arc::new(AtomicU64::new(0));
    let conn_state = ctx.conn.clone();
    let counter = started.clone();
    let svc = service_fn(move |req| {
        counter.fetch_add(1, Ordering::Relaxed);
        handle(req, ctx.clone())
    });
    let conn = l
        .builder
        .serve_connection_with_upgrades(TokioIo::new(io), svc);
    tokio::pin!(conn);
    if *shutdown.borrow() {
        conn.as_mut().graceful_shutdown();
    }
    let idle = l.guard.idle_timeout;
    let every = (idle / IDLE_CHECKS_PER_TIMEOUT).max(Duration::from_millis(10));
    let tick = tokio::time::sleep(every);
    tokio::pin!(tick);
    let mut seen = 0;
    let mut active = tokio::time::Instant::now();
    loop {
        tokio::select! {
            biased;
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended with error");
                }
                return;
            }
            _ = shutdown.changed() => break,
            _ = tick.as_mut() => {
                let now = tokio::time::Instant::now();
                let n = started.load(Ordering::Relaxed);
                if n != seen || conn_state.inflight.load(Ordering::Acquire) > 0 {
                    seen = n;
                    active = now;
                } else if now.duration_since(active) >= idle {
                    tracing::debug!(listen = %l.cfg.listen, "idle connection closed (keep-alive idle timeout)");
                    break;
                }
                tick.as_mut().reset(now + every);
            }
        }
    }
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}
