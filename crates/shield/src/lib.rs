//! palisade's shield: stops abusive clients before the WAF and the
//! application spend a cycle on them.
//!
//! - [`ipset`]: allow/deny lists and trusted proxies (addresses and CIDRs,
//!   from config and files); [`client_ip`]: the real client behind trusted
//!   proxies (`X-Forwarded-For`, RFC 7239 `Forwarded`).
//! - [`gcra`]: rate limits (GCRA) per IP, route, user or header value.
//! - [`jail`]: automatic bans on thresholds of events within windows, with
//!   escalation and a soft threshold that demands the challenge.
//! - [`pow`]: the proof-of-work challenge and its IP-bound signed cookie.
//! - Exact, shareable state (rate-limit TATs, bans, single-use challenge
//!   keys) lives in `state::Store` (memory, SQLite or Redis); [`store`] holds
//!   the node-local accept-time rates.
//! - [`Shield`]: all of it behind one object the gateway calls per
//!   connection ([`Shield::admit`]) and per request ([`Shield::check`]), and
//!   that reports events ([`Shield::record_waf_block`],
//!   [`Shield::record_failed_login`], [`Shield::record_response`]).
//!
//! Order of the per-request check: allow list (pass) → deny list (403) →
//! ban (403) → rate limits (429) → challenge (interstitial page).

pub mod bounded;
pub mod client_ip;
pub mod config;
pub mod error;
pub mod gcra;
pub mod ipset;
pub mod jail;
pub mod page;
pub mod pow;
pub mod store;

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};

pub use config::{ChallengeConfig, ConnLimits, RateKey, RateRule, ShieldConfig};
pub use error::Error;
pub use ipset::{IpNet, IpSet};
pub use jail::{EventKind, JailRule};
pub use state::{Ban, IpPrefix, Quota, Store};
pub use store::LocalRates;

/// Path the challenge page posts its answer to.
pub const CHALLENGE_PATH: &str = "/.palisade/challenge";
/// Default 10 000: jail counter updates waiting on the shared (Redis)
/// backend at once. Bounds the tasks a flood of 4xx answers can queue while
/// Redis is slow; past it the node counts the event locally.
pub const MAX_PENDING_SHARED_COUNTS: usize = 10_000;
/// Fixed 5 s: after one node bans a client for a jail, other nodes crossing
/// the same shared threshold within this time do not ban it again (which
/// would count a second offence and double the escalation).
pub const SHARED_BAN_DEDUP: Duration = Duration::from_secs(5);
/// Fixed 4 KiB: body of a challenge answer. Bounds what an answer post can
/// make us buffer (a real one is about 150 bytes).
pub const MAX_ANSWER_BYTES: usize = 4096;
/// Fixed 256 bytes: a ban reason. Bounds what the admin API stores per ban.
pub const MAX_REASON_BYTES: usize = 256;
/// Fixed 256 bytes: the part of a header value used as a rate-limit key.
/// Bounds key memory against huge header values.
pub const MAX_KEY_VALUE_BYTES: usize = 256;
/// Fixed 16: shards of the per-IP connection counters (lock contention).
const CONN_SHARDS: usize = 16;

/// Current time in unix microseconds.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Why the shield answered a request itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// On the deny list.
    Denied,
    /// Banned.
    Banned,
    /// Over a rate limit.
    RateLimited,
    /// Shown the challenge page.
    Challenge,
    /// A challenge answer was accepted (cookie set).
    ChallengeSolved,
    /// A challenge answer was refused.
    ChallengeFailed,
}

impl Kind {
    /// Name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Denied => "denied",
            Kind::Banned => "banned",
            Kind::RateLimited => "rate_limited",
            Kind::Challenge => "challenge",
            Kind::ChallengeSolved => "challenge_solved",
            Kind::ChallengeFailed => "challenge_failed",
        }
    }
}

/// A response the shield gives instead of forwarding the request.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Why.
    pub kind: Kind,
    /// Status code.
    pub status: StatusCode,
    /// Extra headers (`Retry-After`, `RateLimit-*`, `Set-Cookie`, ...).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Content type of `body`.
    pub content_type: &'static str,
    /// Body.
    pub body: String,
    /// A short detail for the log (rule name, ban reason).
    pub detail: String,
}

/// The result of [`Shield::check`].
#[derive(Debug)]
pub enum Verdict {
    /// Forward the request.
    Pass {
        /// The client address (behind trusted proxies: the real client).
        client: IpAddr,
        /// The tightest rate limit that counted this request, for the
        /// `RateLimit-*` headers of the response (`None`: no limit applied).
        rate: Option<RateInfo>,
    },
    /// Answer with this instead.
    Answer {
        /// The client address.
        client: IpAddr,
        /// The answer.
        answer: Box<Answer>,
    },
    /// A challenge answer: read the body (at most [`MAX_ANSWER_BYTES`]) and
    /// call [`Shield::answer_challenge`].
    ChallengeAnswer {
        /// The client address.
        client: IpAddr,
    },
}

/// The budget left under one rate limit, announced to well-behaved clients
/// on every response (draft-ietf-httpapi-ratelimit-headers) so they can slow
/// down before they are refused.
#[derive(Debug, Clone)]
pub struct RateInfo {
    /// The burst (`RateLimit-Limit`).
    pub limit: u32,
    /// Requests still accepted right now (`RateLimit-Remaining`).
    pub remaining: u32,
    /// Seconds until the full burst is available again (`RateLimit-Reset`).
    pub reset_secs: u64,
    /// `RateLimit-Policy`, e.g. `10;w=1`.
    pub policy: HeaderValue,
}

impl RateInfo {
    /// The four `RateLimit-*` headers.
    pub fn headers(&self) -> [(HeaderName, HeaderValue); 4] {
        [
            (
                HeaderName::from_static("ratelimit-limit"),
                HeaderValue::from(self.limit),
            ),
            (
                HeaderName::from_static("ratelimit-remaining"),
                HeaderValue::from(self.remaining),
            ),
            (
                HeaderName::from_static("ratelimit-reset"),
                HeaderValue::from(self.reset_secs),
            ),
            (
                HeaderName::from_static("ratelimit-policy"),
                self.policy.clone(),
            ),
        ]
    }
}

/// What a request looks like to the shield.
#[derive(Debug, Clone, Copy)]
pub struct RequestInfo<'a> {
    /// TCP peer.
    pub peer: IpAddr,
    /// Method.
    pub method: &'a Method,
    /// Path (no query).
    pub path: &'a str,
    /// Request headers.
    pub headers: &'a HeaderMap,
    /// Name of the route it matched, if any.
    pub route: Option<&'a str>,
    /// Authenticated user, when known (identity hook).
    pub user: Option<&'a str>,
}

/// Why a connection was refused at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// On the deny list.
    Denied,
    /// Banned.
    Banned,
    /// Too many new connections from this address.
    Rate,
    /// Too many open connections from this address.
    TooMany,
}

impl Refusal {
    /// Name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Denied => "denied",
            Refusal::Banned => "banned",
            Refusal::Rate => "new-connection rate",
            Refusal::TooMany => "too many connections",
        }
    }
}

#[derive(Debug)]
struct ConnCounts {
    shards: [Mutex<HashMap<IpAddr, usize>>; CONN_SHARDS],
}

impl ConnCounts {
    fn shard(&self, ip: &IpAddr) -> &Mutex<HashMap<IpAddr, usize>> {
        let h = match ip {
            IpAddr::V4(v) => u32::from(*v) as usize,
            IpAddr::V6(v) => (u128::from(*v) as usize) ^ ((u128::from(*v) >> 64) as usize),
        };
        &self.shards[h % CONN_SHARDS]
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// An admitted connection; releases its per-IP slot when dropped.
#[derive(Debug)]
pub struct ConnToken {
    counted: Option<(Arc<ConnCounts>, IpAddr)>,
}

impl Drop for ConnToken {
    fn drop(&mut self) {
        if let Some((c, ip)) = self.counted.take() {
            let mut m = lock(c.shard(&ip));
            if let Some(n) = m.get_mut(&ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    m.remove(&ip);
                }
            }
        }
    }
}

/// Counters of what the shield did (for metrics).
#[derive(Debug, Default)]
pub struct Stats {
    /// Requests refused by the deny list.
    pub denied: AtomicU64,
    /// Requests refused because of a ban.
    pub banned: AtomicU64,
    /// Requests refused by a rate limit.
    pub rate_limited: AtomicU64,
    /// Challenge pages served.
    pub challenged: AtomicU64,
    /// Challenges solved.
    pub solved: AtomicU64,
    /// Connections refused at accept.
    pub connections_refused: AtomicU64,
    /// Bans created by jails.
    pub auto_bans: AtomicU64,
}

/// The process-wide shield: state that outlives config reloads (bans,
/// counters, the challenge key) and the current [`ShieldConfig`].
#[derive(Debug)]
pub struct Shield {
    cfg: ArcSwap<ShieldConfig>,
    store: Store,
    /// Per-node accept-time rate state (never shared: it protects this node).
    local: LocalRates,
    jails: Arc<jail::Jails>,
    /// Jail counter updates in flight on a shared backend.
    pending_shared: Arc<std::sync::atomic::AtomicUsize>,
    pow: pow::Pow,
    conns: Arc<ConnCounts>,
    /// What the shield did.
    pub stats: Arc<Stats>,
    /// Told about every ban a jail makes (the monitor's event bus).
    ban_observer: Arc<BanObserver>,
}

/// A callback told about each jail ban: the client that tripped the jail
/// and the ban stored. Must not block (it runs on the request path).
pub type BanObserverFn = Box<dyn Fn(IpAddr, &Ban) + Send + Sync>;

/// Holder of the optional [`BanObserverFn`] (set once).
#[derive(Default)]
struct BanObserver(std::sync::OnceLock<BanObserverFn>);

impl std::fmt::Debug for BanObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "BanObserver(set)"
        } else {
            "BanObserver(unset)"
        })
    }
}

fn hv(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

fn text_answer(kind: Kind, status: StatusCode, msg: &str, detail: String) -> Answer {
    Answer {
        kind,
        status,
        headers: Vec::new(),
        content_type: "text/plain; charset=utf-8",
        body: format!(
            "{} {}\n{msg}\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        ),
        detail,
    }
}

/// The state crate's prefix for one of our networks.
pub fn to_prefix(n: IpNet) -> IpPrefix {
    IpPrefix::new(n.addr(), n.prefix()).unwrap_or_else(|_| IpPrefix::host(n.addr()))
}

/// Our network for one of the state crate's prefixes.
pub fn from_prefix(p: &IpPrefix) -> IpNet {
    IpNet::new(p.addr(), p.prefix_len()).unwrap_or_else(|| IpNet::host(p.addr()))
}

fn local_quota(q: &Quota) -> gcra::Quota {
    let per = q.period.as_micros() / u128::from(q.rate.max(1));
    gcra::Quota {
        interval_us: u64::try_from(per).unwrap_or(u64::MAX).max(1),
        burst: q.burst.max(1),
    }
}

fn store_err(e: state::Error) -> Error {
    Error::Store(e.to_string())
}

fn path_hash(path: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in path.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl Shield {
    /// A shield over `store`, signing challenges with `secret` (random per
    /// process when `None`: set one when several nodes serve the same users).
    pub fn new(cfg: ShieldConfig, store: Store, secret: Option<&[u8]>) -> Shield {
        Shield {
            cfg: ArcSwap::from_pointee(cfg),
            store,
            local: LocalRates::default(),
            jails: Arc::new(jail::Jails::default()),
            pending_shared: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            pow: pow::Pow::new(secret),
            conns: Arc::new(ConnCounts {
                shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
            }),
            stats: Arc::new(Stats::default()),
            ban_observer: Arc::new(BanObserver::default()),
        }
    }

    /// Rotates the secret that signs challenges and cookies (`None`: a new
    /// random one). Cookies signed with the previous secret stay valid until
    /// they expire.
    pub fn set_secret(&self, secret: Option<&[u8]>) {
        self.pow.rotate(secret);
    }

    /// Sets the callback told about each jail ban (once; later calls are
    /// ignored and return false).
    pub fn set_ban_observer(&self, f: BanObserverFn) -> bool {
        self.ban_observer.0.set(f).is_ok()
    }

    /// Installs a new config generation (lists, limits, jails); state is kept.
    pub fn set_config(&self, cfg: ShieldConfig) {
        self.cfg.store(Arc::new(cfg));
    }

    /// The config in force.
    pub fn config(&self) -> Arc<ShieldConfig> {
        self.cfg.load_full()
    }

    /// The ban scope of `ip` under the current config.
    pub fn scope(&self, ip: IpAddr) -> IpNet {
        let c = self.cfg.load();
        IpNet::ban_scope(ip, c.ban_v4_prefix, c.ban_v6_prefix)
    }

    // ------------------------------------------------------------ connections

    /// The accept-time check, before TLS: deny list, bans, new-connection
    /// rate and concurrent connections per IP. Trusted proxies and
    /// allow-listed clients are always admitted (uncounted).
    pub fn admit(&self, peer: IpAddr) -> Result<ConnToken, Refusal> {
        let peer = peer.to_canonical();
        let c = self.cfg.load();
        let free = ConnToken { counted: None };
        if c.allow.contains(peer) || c.trusted_proxies.contains(peer) {
            return Ok(free);
        }
        let refuse = |r: Refusal| {
            self.stats
                .connections_refused
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(client = %peer, reason = r.as_str(), "shield: connection refused");
            Err(r)
        };
        if c.deny.contains(peer) {
            return refuse(Refusal::Denied);
        }
        let now = now_us();
        if self.store.ban_check(peer, now).is_some() {
            return refuse(Refusal::Banned);
        }
        if let Some(q) = &c.connections.rate {
            if !self.local.check(peer, local_quota(q), now).allowed {
                return refuse(Refusal::Rate);
            }
        }
        let Some(max) = c.connections.max_per_ip else {
            return Ok(free);
        };
        let mut m = lock(self.conns.shard(&peer));
        let n = m.entry(peer).or_insert(0);
        if *n >= max {
            drop(m);
            return refuse(Refusal::TooMany);
        }
        *n += 1;
        Ok(ConnToken {
            counted: Some((self.conns.clone(), peer)),
        })
    }

    // --------------------------------------------------------------- requests

    /// The per-request check. See the crate doc for the order.
    pub async fn check(&self, req: &RequestInfo<'_>) -> Verdict {
        self.check_at(req, now_us()).await
    }

    /// [`Shield::check`] at a given time (unix µs).
    pub async fn check_at(&self, req: &RequestInfo<'_>, now: u64) -> Verdict {
        let c = self.cfg.load_full();
        let client = client_ip::client_ip(req.peer, req.headers, &c.trusted_proxies);
        if c.allow.contains(client) {
            return Verdict::Pass { client, rate: None };
        }
        let answer = |a: Answer| Verdict::Answer {
            client,
            answer: Box::new(a),
        };
        if c.deny.contains(client) {
            self.stats.denied.fetch_add(1, Ordering::Relaxed);
            return answer(text_answer(
                Kind::Denied,
                StatusCode::FORBIDDEN,
                "access denied",
                "deny list".into(),
            ));
        }
        if let Some(b) = self.store.ban_check(client, now) {
            self.stats.banned.fetch_add(1, Ordering::Relaxed);
            let mut a = text_answer(
                Kind::Banned,
                StatusCode::FORBIDDEN,
                "access denied: this address is temporarily banned",
                format!(
                    "ban of {} by {}: {}",
                    from_prefix(&b.target),
                    b.jail,
                    b.reason
                ),
            );
            if let Some(e) = b.expires_us {
                let secs = gcra::ceil_secs(e.saturating_sub(now));
                a.headers
                    .push((http::header::RETRY_AFTER, hv(&secs.to_string())));
            }
            return answer(a);
        }
        // Rate limits come before the challenge answer endpoint too, so
        // answer posts cannot bypass them.
        let rate = match self.rate_limits(&c, req, client, now).await {
            Ok(rate) => rate,
            Err(a) => return answer(*a),
        };
        let challenge_on =
            !c.challenge.routes.is_empty() || c.jails.iter().any(|j| j.soft_threshold.is_some());
        if challenge_on && req.path == CHALLENGE_PATH && req.method == Method::POST {
            return Verdict::ChallengeAnswer { client };
        }
        if challenge_on && !c.challenge.skipped(req.path) {
            let required = c.challenge.route_requires(req.route)
                || self.jails.is_suspect(
                    IpNet::ban_scope(client, c.ban_v4_prefix, c.ban_v6_prefix),
                    now / 1000,
                );
            if required {
                let ok = pow::find_cookie(req.headers, pow::COOKIE_NAME)
                    .is_some_and(|v| self.pow.check_cookie(client, v, now / 1_000_000).is_ok());
                if !ok {
                    self.stats.challenged.fetch_add(1, Ordering::Relaxed);
                    let token = self
                        .pow
                        .issue(client, c.challenge.difficulty, now / 1_000_000);
                    return answer(Answer {
                        kind: Kind::Challenge,
                        status: StatusCode::FORBIDDEN,
                        headers: vec![(
                            http::header::CACHE_CONTROL,
                            HeaderValue::from_static("no-store"),
                        )],
                        content_type: "text/html; charset=utf-8",
                        body: page::challenge_page(&token, c.challenge.difficulty),
                        detail: "proof-of-work challenge".into(),
                    });
                }
            }
        }
        Verdict::Pass { client, rate }
    }

    async fn rate_limits(
        &self,
        c: &ShieldConfig,
        req: &RequestInfo<'_>,
        client: IpAddr,
        now: u64,
    ) -> Result<Option<RateInfo>, Box<Answer>> {
        let mut tightest: Option<RateInfo> = None;
        for rule in &c.rate_limits {
            if !rule.applies(req.route, req.path) {
                continue;
            }
            let key = match &rule.key {
                RateKey::Ip => format!("rl:{}:ip:{client}", rule.name),
                RateKey::Route => format!("rl:{}:route:{}", rule.name, req.route.unwrap_or("-")),
                RateKey::User => match req.user {
                    Some(u) => format!("rl:{}:user:{u}", rule.name),
                    None => continue,
                },
                RateKey::Header(h) => match req.headers.get(h) {
                    Some(v) => {
                        let b = v.as_bytes();
                        let b = &b[..b.len().min(MAX_KEY_VALUE_BYTES)];
                        format!("rl:{}:h:{}", rule.name, String::from_utf8_lossy(b))
                    }
                    None => continue,
                },
            };
            let d = match self.store.rate_limit(&key, &rule.quota, 1, now).await {
                Ok(d) => d,
                Err(e) => {
                    // Fail open: a storage outage must not take the site down.
                    tracing::warn!(error = %e, rule = %rule.name, "shield: rate-limit storage failed; request allowed");
                    continue;
                }
            };
            let us = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
            if d.allowed {
                if tightest.as_ref().is_none_or(|t| d.remaining < t.remaining) {
                    tightest = Some(RateInfo {
                        limit: d.limit,
                        remaining: d.remaining,
                        reset_secs: gcra::ceil_secs(us(d.reset_after)),
                        policy: rule.policy.clone(),
                    });
                }
                continue;
            }
            self.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
            self.record_at(EventKind::RateLimited, client, req.path, now / 1000);
            let mut a = text_answer(
                Kind::RateLimited,
                StatusCode::TOO_MANY_REQUESTS,
                "too many requests: slow down",
                format!("rate limit {}", rule.name),
            );
            let retry = gcra::ceil_secs(us(d.retry_after)).to_string();
            a.headers.push((http::header::RETRY_AFTER, hv(&retry)));
            a.headers.push((
                HeaderName::from_static("ratelimit-limit"),
                hv(&d.limit.to_string()),
            ));
            a.headers.push((
                HeaderName::from_static("ratelimit-remaining"),
                HeaderValue::from_static("0"),
            ));
            a.headers.push((
                HeaderName::from_static("ratelimit-reset"),
                hv(&gcra::ceil_secs(us(d.reset_after)).to_string()),
            ));
            a.headers.push((
                HeaderName::from_static("ratelimit-policy"),
                rule.policy.clone(),
            ));
            return Err(Box::new(a));
        }
        Ok(tightest)
    }

    /// Verifies a challenge answer (the urlencoded body `token=…&nonce=…`
    /// posted to [`CHALLENGE_PATH`]); on success the answer carries the
    /// cookie. `secure` adds the cookie's `Secure` attribute (https).
    pub async fn answer_challenge(&self, client: IpAddr, body: &[u8], secure: bool) -> Answer {
        self.answer_challenge_at(client, body, secure, now_us())
            .await
    }

    /// [`Shield::answer_challenge`] at a given time (unix µs).
    pub async fn answer_challenge_at(
        &self,
        client: IpAddr,
        body: &[u8],
        secure: bool,
        now: u64,
    ) -> Answer {
        let c = self.cfg.load_full();
        let mut token = "";
        let mut nonce = "";
        let text = std::str::from_utf8(body).unwrap_or("");
        for pair in text.split('&') {
            match pair.split_once('=') {
                Some(("token", v)) => token = v,
                Some(("nonce", v)) => nonce = v,
                _ => {}
            }
        }
        let now_s = now / 1_000_000;
        let res = match self.pow.verify(client, token, nonce, now_s) {
            Err(e) => Err(e),
            Ok(s) => {
                // Single use: the first answer claims the id until the
                // challenge expires (shared by every node with Redis).
                let ttl = Duration::from_secs(s.expires.saturating_sub(now_s).max(1));
                match self
                    .store
                    .kv_set_nx(&format!("shield:pow:{}", s.id), b"1", Some(ttl), now)
                    .await
                {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(pow::PowError::Replayed),
                    Err(e) => {
                        tracing::warn!(error = %e, "shield: cannot record challenge use; answer refused");
                        Err(pow::PowError::Replayed)
                    }
                }
            }
        };
        match res {
            Ok(()) => {
                self.stats.solved.fetch_add(1, Ordering::Relaxed);
                self.jails.clear_suspect(IpNet::ban_scope(
                    client,
                    c.ban_v4_prefix,
                    c.ban_v6_prefix,
                ));
                let ttl = c.challenge.cookie_ttl.as_secs().max(1);
                let value = self.pow.cookie(client, now_s + ttl);
                let cookie = format!(
                    "{}={value}; Path=/; Max-Age={ttl}; HttpOnly; SameSite=Lax{}",
                    pow::COOKIE_NAME,
                    if secure { "; Secure" } else { "" }
                );
                let mut a = text_answer(
                    Kind::ChallengeSolved,
                    StatusCode::OK,
                    "challenge solved",
                    String::new(),
                );
                a.headers.push((http::header::SET_COOKIE, hv(&cookie)));
                a.headers.push((
                    http::header::CACHE_CONTROL,
                    HeaderValue::from_static("no-store"),
                ));
                a
            }
            Err(e) => text_answer(
                Kind::ChallengeFailed,
                StatusCode::FORBIDDEN,
                &format!("challenge answer refused: {}", e.as_str()),
                e.as_str().to_string(),
            ),
        }
    }

    /// A challenge token for `client` (tests and tools; the page embeds one).
    pub fn issue_challenge(&self, client: IpAddr) -> String {
        let c = self.cfg.load();
        self.pow
            .issue(client, c.challenge.difficulty, now_us() / 1_000_000)
    }

    // ----------------------------------------------------------------- events

    /// The WAF blocked a request from `client`.
    pub fn record_waf_block(&self, client: IpAddr) {
        self.record_at(EventKind::WafBlock, client, "", now_us() / 1000);
    }

    /// A login from `client` failed (identity layer).
    pub fn record_failed_login(&self, client: IpAddr) {
        self.record_at(EventKind::FailedLogin, client, "", now_us() / 1000);
    }

    /// The application answered `status` for `path` to `client`: 4xx on
    /// distinct paths feed `scan` jails. Never call this for answers the
    /// gateway or the shield made itself.
    pub fn record_response(&self, client: IpAddr, status: u16, path: &str) {
        if (400..500).contains(&status) {
            self.record_at(EventKind::Scan, client, path, now_us() / 1000);
        }
    }

    /// Records one event at `now_ms`; bans when a jail trips.
    pub fn record_at(&self, kind: EventKind, client: IpAddr, path: &str, now_ms: u64) {
        let c = self.cfg.load();
        let client = client.to_canonical();
        if c.allow.contains(client) || c.jails.is_empty() {
            return;
        }
        let who = IpNet::ban_scope(client, c.ban_v4_prefix, c.ban_v6_prefix);
        let h = path_hash(path);
        let shared = self.store.backend() == state::BackendKind::Redis;
        for rule in c.jails.iter().filter(|j| j.event == kind) {
            if shared && self.record_shared(rule, client, who, h, now_ms, c.repeat_window) {
                continue;
            }
            match self.jails.record(rule, who, now_ms, h, c.repeat_window) {
                jail::Outcome::Ban { duration, offences } => {
                    self.stats.auto_bans.fetch_add(1, Ordering::Relaxed);
                    let ban = jail_ban(rule, client, who, now_ms, duration, offences);
                    if let Some(f) = self.ban_observer.0.get() {
                        f(client, &ban);
                    }
                    write_ban(&self.store, ban);
                }
                jail::Outcome::Suspect(n) => log_suspect(client, rule, u64::from(n)),
                jail::Outcome::Counted(_) => {}
            }
        }
    }

    /// Counts one event in the shared backend so that every node's events
    /// add up (a scanner spreading its probes over the nodes behind a load
    /// balancer is still one scanner). Off the request path, on a task; the
    /// ban lands a Redis round trip later. Redis counters are fixed windows
    /// (fail2ban's `findtime`), the local ones slide. False when the event
    /// must be counted locally instead (no runtime, too many in flight).
    fn record_shared(
        &self,
        rule: &JailRule,
        client: IpAddr,
        who: IpNet,
        path_hash: u64,
        now_ms: u64,
        repeat_window: Duration,
    ) -> bool {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        if self.pending_shared.fetch_add(1, Ordering::Relaxed) >= MAX_PENDING_SHARED_COUNTS {
            self.pending_shared.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        let pending = PendingGuard(self.pending_shared.clone());
        let (store, jails, stats, observer, rule) = (
            self.store.clone(),
            self.jails.clone(),
            self.stats.clone(),
            self.ban_observer.clone(),
            rule.clone(),
        );
        rt.spawn(async move {
            let _pending = pending;
            let now_us = now_ms.saturating_mul(1000);
            let key = format!("jail:{}:{who}", rule.name);
            let n = if rule.event == EventKind::Scan {
                store
                    .add_distinct(&key, &path_hash.to_be_bytes(), rule.window, now_us)
                    .await
            } else {
                store.incr(&key, rule.window, now_us).await
            };
            let n = match n {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, jail = %rule.name, "shield: shared jail counter failed; event not counted");
                    return;
                }
            };
            if n < u64::from(rule.threshold) {
                if rule.soft_threshold.is_some_and(|s| n >= u64::from(s)) {
                    jails.mark_suspect(who, now_ms.saturating_add(ms(rule.window)));
                    log_suspect(client, &rule, n);
                }
                return;
            }
            let lock = format!("jailban:{}:{who}", rule.name);
            if !matches!(
                store
                    .kv_set_nx(&lock, b"1", Some(SHARED_BAN_DEDUP), now_us)
                    .await,
                Ok(true)
            ) {
                return;
            }
            if let Err(e) = store.reset(&key).await {
                tracing::warn!(error = %e, jail = %rule.name, "shield: cannot reset the shared jail counter");
            }
            let offences = store
                .incr(&format!("jailrep:{}:{who}", rule.name), repeat_window, now_us)
                .await
                .map_or(1, |n| u32::try_from(n).unwrap_or(u32::MAX));
            jails.clear_suspect(who);
            stats.auto_bans.fetch_add(1, Ordering::Relaxed);
            let ban = jail_ban(
                &rule,
                client,
                who,
                now_ms,
                rule.ban_duration(offences),
                offences,
            );
            if let Some(f) = observer.0.get() {
                f(client, &ban);
            }
            if let Err(e) = store.ban_add(ban).await {
                tracing::error!(error = %e, net = %who, "shield: cannot store ban");
            }
        });
        true
    }

    // ------------------------------------------------------------- ban admin

    /// Bans `net` for `duration` (`None`: until deleted). Takes effect at once.
    pub async fn add_ban(
        &self,
        net: IpNet,
        duration: Option<Duration>,
        reason: &str,
    ) -> Result<Ban, Error> {
        self.add_ban_in(net, duration, reason, "manual").await
    }

    /// [`Shield::add_ban`] recorded under `jail` (`anomaly` for the anomaly
    /// detector) instead of `manual`.
    pub async fn add_ban_in(
        &self,
        net: IpNet,
        duration: Option<Duration>,
        reason: &str,
        jail: &str,
    ) -> Result<Ban, Error> {
        if reason.len() > MAX_REASON_BYTES {
            return Err(Error::InvalidBan(format!(
                "reason longer than {MAX_REASON_BYTES} bytes"
            )));
        }
        if reason.chars().any(char::is_control) {
            return Err(Error::InvalidBan(
                "reason contains control characters".into(),
            ));
        }
        let now = now_us();
        let ban = Ban {
            target: to_prefix(net),
            reason: if reason.is_empty() {
                "manual ban".into()
            } else {
                reason.into()
            },
            jail: jail.into(),
            created_us: now,
            expires_us: duration
                .map(|d| now.saturating_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))),
            offences: 1,
        };
        self.store.ban_add(ban.clone()).await.map_err(store_err)?;
        tracing::warn!(event = "shield.ban", net = %net, jail = %ban.jail, reason = %ban.reason, "shield: ban added");
        Ok(ban)
    }

    /// Lifts the ban of `net`, or, for a single address, the ban covering it
    /// (an IPv6 address lifts its /64 ban). Also forgets the jail counts, so
    /// the client starts clean. Returns the lifted ban's network.
    pub async fn remove_ban(&self, net: IpNet) -> Result<Option<IpNet>, Error> {
        let full = if net.addr().is_ipv4() { 32 } else { 128 };
        let target = if self
            .store
            .ban_delete(&to_prefix(net))
            .await
            .map_err(store_err)?
        {
            Some(net)
        } else if net.prefix() == full {
            match self.store.ban_check(net.addr(), now_us()) {
                Some(b) => self
                    .store
                    .ban_delete(&b.target)
                    .await
                    .map_err(store_err)?
                    .then(|| from_prefix(&b.target)),
                None => None,
            }
        } else {
            None
        };
        if let Some(t) = target {
            self.jails.forgive(t);
            self.jails.forgive(self.scope(net.addr()));
            tracing::warn!(event = "shield.unban", net = %t, "shield: ban lifted");
        }
        Ok(target)
    }

    /// Every active ban.
    pub async fn bans(&self) -> Result<Vec<Ban>, Error> {
        self.store.ban_list(now_us()).await.map_err(store_err)
    }

    /// The state store (for health and metrics).
    pub fn store(&self) -> &Store {
        &self.store
    }
}

#[cfg(test)]
mod tests;

/// Decrements the in-flight count of shared jail updates when dropped.
struct PendingGuard(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn log_suspect(client: IpAddr, rule: &JailRule, count: u64) {
    tracing::info!(event = "shield.suspect", client = %client, jail = %rule.name, count, "shield: client must solve the challenge");
}

/// The ban a tripped jail issues (and logs).
fn jail_ban(
    rule: &JailRule,
    client: IpAddr,
    who: IpNet,
    now_ms: u64,
    duration: Duration,
    offences: u32,
) -> Ban {
    let reason = format!(
        "{} {} events within {}s",
        rule.threshold,
        rule.event.name(),
        rule.window.as_secs()
    );
    tracing::warn!(
        event = "shield.ban",
        client = %client,
        net = %who,
        jail = %rule.name,
        reason = %reason,
        duration_s = duration.as_secs(),
        offences,
        "shield: client banned"
    );
    let now_us = now_ms.saturating_mul(1000);
    Ban {
        target: to_prefix(who),
        reason,
        jail: rule.name.clone(),
        created_us: now_us,
        expires_us: Some(
            now_us.saturating_add(u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)),
        ),
        offences,
    }
}

/// Stores a jail's ban without making the caller wait: the in-memory
/// store answers at the first poll (the ban is in force before the
/// response that tripped the jail is finished); SQLite and Redis writes
/// finish on a task (the store updates its local ban cache).
fn write_ban(store: &Store, ban: Ban) {
    let store = store.clone();
    let target = ban.target;
    let mut fut = Box::pin(async move { store.ban_add(ban).await });
    let mut cx = Context::from_waker(std::task::Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(Ok(())) => {}
        Poll::Ready(Err(e)) => {
            tracing::error!(error = %e, net = %target, "shield: cannot store ban")
        }
        Poll::Pending => match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn(async move {
                    if let Err(e) = fut.await {
                        tracing::error!(error = %e, net = %target, "shield: cannot store ban");
                    }
                });
            }
            Err(_) => tracing::error!(net = %target, "shield: no runtime to store the ban"),
        },
    }
}
