//! The event bus: one typed [`Event`] per security decision, fanned out to
//! subscribers (event store, metrics, alerts, the dashboard's live feed)
//! without ever blocking or growing memory on the request path.
//!
//! ```text
//! request path ── Bus::publish(event) ──► bounded ring (BUS_CAPACITY slots)
//!                  (never waits)              │ each subscriber reads at its
//!                                             │ own pace on its own task;
//!                                             ▼ one that falls a full ring
//!   Subscription::recv() ◄── store / metrics / alerts / SSE      behind loses
//!                                                                the oldest
//!                                         events, counted in `dropped`.
//! ```
//!
//! The ring is a `tokio::sync::broadcast` channel of `Arc<Event>`: a publish
//! is one allocation of a size-bounded event (every string is clipped to
//! [`MAX_FIELD_BYTES`], rule lists to [`MAX_RULES_PER_EVENT`]) plus a short
//! lock on the ring's tail; it never waits for a subscriber. Memory is
//! bounded by `capacity` events.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::broadcast;

/// Default 8192: events held by the bus for subscribers that are behind.
/// A subscriber slower than the publishers loses the oldest events once it
/// is this many behind (counted in [`BusStats::dropped`]) instead of the
/// queue growing without bound under an attack wave.
pub const BUS_CAPACITY: usize = 8192;

/// Fixed 100 ms: how long a batching subscriber (event store, metrics,
/// alerts) lets events gather after the first one before it takes them
/// all. Under an attack wave each subscriber then wakes ten times a second
/// instead of once per event (a wake-up is a cross-thread notification, and
/// the store commits one transaction per batch); it bounds how late the
/// store, the counters and the alert batches see an event. A full bus
/// ([`BUS_CAPACITY`]) in one window is counted as dropped, as always.
pub const BATCH_WINDOW: std::time::Duration = std::time::Duration::from_millis(100);

/// Fixed 1024 bytes: longest string field of an event (URIs, messages,
/// reasons); longer ones are cut on a character boundary and end with `…`.
/// Bounds event size (attackers choose URIs and headers).
pub const MAX_FIELD_BYTES: usize = 1024;

/// Fixed 32: most rule hits kept in one WAF event (the highest-severity
/// first as the WAF reported them). Bounds event size under rule storms.
pub const MAX_RULES_PER_EVENT: usize = 32;

/// Current time in unix microseconds.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// `s` cut to at most `max` bytes on a character boundary (`…` appended
/// when cut).
pub fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = String::with_capacity(end + 3);
    out.push_str(&s[..end]);
    out.push('…');
    out
}

fn clip_in_place(s: &mut String) {
    if s.len() > MAX_FIELD_BYTES {
        *s = clip(s, MAX_FIELD_BYTES);
    }
}

/// One security decision, with the fields every event has.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// The event's id, set by [`Bus::publish`] (0 before): unique and
    /// increasing across restarts (a bus numbers its events from the unix
    /// microsecond it was created), the key of the dashboard's event
    /// detail page.
    pub id: u64,
    /// When, in unix microseconds.
    pub time_us: u64,
    /// The client (behind trusted proxies: the real client), when known.
    pub client: Option<IpAddr>,
    /// The request id (`X-Request-Id`), for request-scoped events.
    pub request_id: Option<String>,
    /// The route name, for request-scoped events.
    pub route: Option<String>,
    /// What happened.
    #[serde(flatten)]
    pub kind: Kind,
}

/// A WAF rule that matched, as events and alerts show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleHit {
    /// Rule id.
    pub id: u64,
    /// The rule's `msg`.
    pub msg: String,
    /// Severity 0 (emergency) ..= 7 (debug); 0 also when the rule has none.
    pub severity: u8,
    /// Attack category from the rule's tags (`attack-sqli` → `sqli`), or
    /// `other`.
    pub category: String,
    /// The rule's `logdata` (attacker-controlled: escaped where shown).
    pub data: String,
}

/// A feature of a client or route that deviated from its baseline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Deviation {
    /// Feature name (`requests`, `errors_4xx`, `errors_5xx`,
    /// `distinct_paths`, `waf_score`, `bytes`).
    pub feature: String,
    /// Value seen in the last window.
    pub value: f64,
    /// Baseline mean.
    pub mean: f64,
    /// z-score of the value against the baseline.
    pub z: f64,
}

/// The kinds of events. Serialized with a `kind` tag in snake case
/// (`waf_block`, `shield_ban`, …); [`Kind::name`] gives the same name.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Kind {
    /// The WAF logged rule matches and let the request through (detect
    /// mode, or scores under the threshold).
    WafMatch {
        /// Request method.
        method: String,
        /// Request target as received.
        uri: String,
        /// Status sent to the client.
        status: u16,
        /// Inbound anomaly score (0 when the rules keep none).
        score: u32,
        /// Rules that matched and log.
        rules: Vec<RuleHit>,
    },
    /// The WAF blocked the request (or the response).
    WafBlock {
        /// Request method.
        method: String,
        /// Request target as received.
        uri: String,
        /// Status sent to the client.
        status: u16,
        /// Inbound anomaly score (0 when the rules keep none).
        score: u32,
        /// Rules that matched and log.
        rules: Vec<RuleHit>,
    },
    /// A jail (or an operator, `jail = "manual"`) banned a network.
    ShieldBan {
        /// The banned address or network.
        net: String,
        /// The jail (`manual` for the admin API, `anomaly` for the anomaly
        /// detector).
        jail: String,
        /// Why.
        reason: String,
        /// Ban length; `None` until deleted.
        duration_s: Option<u64>,
    },
    /// A ban was lifted through the admin API.
    ShieldUnban {
        /// The network.
        net: String,
    },
    /// A request was refused by the deny list or a ban.
    ShieldRefused {
        /// `denied` or `banned`.
        reason: String,
        /// The shield's detail (list entry, ban reason).
        detail: String,
    },
    /// A request went over a rate limit.
    RateLimited {
        /// The shield's detail (the rate-limit rule).
        detail: String,
    },
    /// The proof-of-work challenge page was served.
    ChallengeIssued {
        /// The shield's detail.
        detail: String,
    },
    /// A challenge answer was accepted.
    ChallengeSolved,
    /// A challenge answer was refused.
    ChallengeFailed {
        /// The shield's detail.
        detail: String,
    },
    /// A login succeeded (identity layer).
    LoginSuccess {
        /// The user name.
        user: String,
    },
    /// A login failed (identity layer).
    LoginFailure {
        /// The user name tried (attacker-controlled).
        user: String,
        /// Why (`bad password`, `bad code`, `unknown user`, …).
        reason: String,
    },
    /// An account or client was locked out after repeated failures.
    Lockout {
        /// The user name.
        user: String,
        /// Lock length in seconds.
        duration_s: u64,
    },
    /// A tcp/tls tunnel connection was accepted (policy passed).
    TunnelAccept {
        /// Listener name.
        listener: String,
        /// Client-certificate identity (empty without one).
        identity: String,
    },
    /// A tunnel connection was refused.
    TunnelDeny {
        /// Listener name.
        listener: String,
        /// Client-certificate identity (empty without one).
        identity: String,
        /// Why.
        reason: String,
    },
    /// A tunnel connection closed.
    TunnelClose {
        /// Listener name.
        listener: String,
        /// Client-certificate identity.
        identity: String,
        /// Why it ended (`closed`, `idle timeout`, an I/O error).
        reason: String,
        /// Bytes client → upstream.
        bytes_in: u64,
        /// Bytes upstream → client.
        bytes_out: u64,
        /// How long it was open.
        duration_ms: u64,
    },
    /// The config was reloaded.
    ConfigReload,
    /// A config reload was rejected (the old config keeps serving).
    ConfigReloadFailed {
        /// The error.
        error: String,
    },
    /// A client or route deviated from its learned baseline.
    Anomaly {
        /// `client` or `route`.
        subject: String,
        /// The client address or route name.
        key: String,
        /// The features that deviated.
        features: Vec<Deviation>,
    },
}

impl Kind {
    /// Every kind's name, as [`Kind::name`] gives them (for validating
    /// queries and config).
    pub const NAMES: &'static [&'static str] = &[
        "waf_match",
        "waf_block",
        "shield_ban",
        "shield_unban",
        "shield_refused",
        "rate_limited",
        "challenge_issued",
        "challenge_solved",
        "challenge_failed",
        "login_success",
        "login_failure",
        "lockout",
        "tunnel_accept",
        "tunnel_deny",
        "tunnel_close",
        "config_reload",
        "config_reload_failed",
        "anomaly",
    ];

    /// The kind's name (`waf_block`, …), the `kind` field of its JSON.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::WafMatch { .. } => "waf_match",
            Kind::WafBlock { .. } => "waf_block",
            Kind::ShieldBan { .. } => "shield_ban",
            Kind::ShieldUnban { .. } => "shield_unban",
            Kind::ShieldRefused { .. } => "shield_refused",
            Kind::RateLimited { .. } => "rate_limited",
            Kind::ChallengeIssued { .. } => "challenge_issued",
            Kind::ChallengeSolved => "challenge_solved",
            Kind::ChallengeFailed { .. } => "challenge_failed",
            Kind::LoginSuccess { .. } => "login_success",
            Kind::LoginFailure { .. } => "login_failure",
            Kind::Lockout { .. } => "lockout",
            Kind::TunnelAccept { .. } => "tunnel_accept",
            Kind::TunnelDeny { .. } => "tunnel_deny",
            Kind::TunnelClose { .. } => "tunnel_close",
            Kind::ConfigReload => "config_reload",
            Kind::ConfigReloadFailed { .. } => "config_reload_failed",
            Kind::Anomaly { .. } => "anomaly",
        }
    }

    /// The WAF rules of a `waf_match`/`waf_block` (empty for other kinds).
    pub fn rules(&self) -> &[RuleHit] {
        match self {
            Kind::WafMatch { rules, .. } | Kind::WafBlock { rules, .. } => rules,
            _ => &[],
        }
    }

    /// Default severity of the kind for alert thresholds, on syslog's
    /// scale (0 emergency ..= 7 debug); WAF events take their most severe
    /// rule's.
    pub fn severity(&self) -> u8 {
        match self {
            Kind::WafMatch { rules, .. } => rules.iter().map(|r| r.severity).min().unwrap_or(5),
            Kind::WafBlock { rules, .. } => rules.iter().map(|r| r.severity).min().unwrap_or(4),
            Kind::ShieldBan { .. } | Kind::Lockout { .. } | Kind::Anomaly { .. } => 4,
            Kind::ConfigReloadFailed { .. } => 3,
            Kind::ShieldRefused { .. }
            | Kind::RateLimited { .. }
            | Kind::LoginFailure { .. }
            | Kind::TunnelDeny { .. }
            | Kind::ChallengeFailed { .. } => 5,
            _ => 6,
        }
    }
}

impl Event {
    /// An event now, with no common field set.
    pub fn new(kind: Kind) -> Event {
        Event {
            id: 0,
            time_us: now_us(),
            client: None,
            request_id: None,
            route: None,
            kind,
        }
    }

    /// Sets the client.
    pub fn client(mut self, ip: IpAddr) -> Event {
        self.client = Some(ip);
        self
    }

    /// Sets the request id.
    pub fn request(mut self, id: impl Into<String>) -> Event {
        self.request_id = Some(id.into());
        self
    }

    /// Sets the route.
    pub fn route(mut self, route: impl Into<String>) -> Event {
        self.route = Some(route.into());
        self
    }

    /// The event as one JSON object (strings JSON-escaped by serde_json).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }

    /// Cuts every string field to [`MAX_FIELD_BYTES`] and rule lists to
    /// [`MAX_RULES_PER_EVENT`] (done by [`Bus::publish`]).
    pub fn clip(&mut self) {
        if let Some(r) = &mut self.request_id {
            clip_in_place(r);
        }
        if let Some(r) = &mut self.route {
            clip_in_place(r);
        }
        match &mut self.kind {
            Kind::WafMatch {
                method, uri, rules, ..
            }
            | Kind::WafBlock {
                method, uri, rules, ..
            } => {
                clip_in_place(method);
                clip_in_place(uri);
                rules.truncate(MAX_RULES_PER_EVENT);
                for r in rules {
                    clip_in_place(&mut r.msg);
                    clip_in_place(&mut r.category);
                    clip_in_place(&mut r.data);
                }
            }
            Kind::ShieldBan {
                net, jail, reason, ..
            } => {
                clip_in_place(net);
                clip_in_place(jail);
                clip_in_place(reason);
            }
            Kind::ShieldUnban { net } => clip_in_place(net),
            Kind::ShieldRefused { reason, detail } => {
                clip_in_place(reason);
                clip_in_place(detail);
            }
            Kind::RateLimited { detail }
            | Kind::ChallengeIssued { detail }
            | Kind::ChallengeFailed { detail } => clip_in_place(detail),
            Kind::LoginSuccess { user } | Kind::Lockout { user, .. } => clip_in_place(user),
            Kind::LoginFailure { user, reason } => {
                clip_in_place(user);
                clip_in_place(reason);
            }
            Kind::TunnelAccept { listener, identity } => {
                clip_in_place(listener);
                clip_in_place(identity);
            }
            Kind::TunnelDeny {
                listener,
                identity,
                reason,
            }
            | Kind::TunnelClose {
                listener,
                identity,
                reason,
                ..
            } => {
                clip_in_place(listener);
                clip_in_place(identity);
                clip_in_place(reason);
            }
            Kind::ConfigReloadFailed { error } => clip_in_place(error),
            Kind::Anomaly { key, features, .. } => {
                clip_in_place(key);
                features.truncate(MAX_RULES_PER_EVENT);
            }
            Kind::ChallengeSolved | Kind::ConfigReload => {}
        }
    }
}

/// Category of a rule from its tags: CRS's `attack-<x>` (`attack-sqli` →
/// `sqli`), else `paranoia`/`anomaly-evaluation`-style tags give `other`.
pub fn category_of(tags: &[String]) -> String {
    tags.iter()
        .find_map(|t| t.strip_prefix("attack-"))
        .map(|c| clip(c, 32))
        .unwrap_or_else(|| "other".to_string())
}

/// Counters of the bus.
#[derive(Debug, Default)]
pub struct BusStats {
    /// Events published.
    pub published: AtomicU64,
    /// Events a subscriber lost because it fell [`BUS_CAPACITY`] behind
    /// (summed over subscribers).
    pub dropped: AtomicU64,
}

/// The event bus. Cheap to clone; every clone publishes to the same ring.
#[derive(Debug, Clone)]
pub struct Bus {
    tx: broadcast::Sender<Arc<Event>>,
    stats: Arc<BusStats>,
    next_id: Arc<AtomicU64>,
}

impl Default for Bus {
    fn default() -> Self {
        Bus::new(BUS_CAPACITY)
    }
}

impl Bus {
    /// A bus holding at most `capacity` events for slow subscribers
    /// (at least 1).
    pub fn new(capacity: usize) -> Bus {
        Bus::numbered_after(capacity, 0)
    }

    /// A bus whose event ids start above both `last_id` (the largest id
    /// stored by an earlier run) and the current unix microsecond, so ids
    /// never repeat across restarts, even when the clock stepped back.
    pub fn numbered_after(capacity: usize, last_id: u64) -> Bus {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Bus {
            tx,
            stats: Arc::new(BusStats::default()),
            next_id: Arc::new(AtomicU64::new(
                now_us().max(last_id.saturating_add(1)).max(1),
            )),
        }
    }

    /// Publishes an event (clipped first, then given its id). Never waits;
    /// with no subscriber the event is discarded.
    pub fn publish(&self, mut ev: Event) {
        ev.clip();
        ev.id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.stats.published.fetch_add(1, Ordering::Relaxed);
        let _ = self.tx.send(Arc::new(ev));
    }

    /// A new subscriber: it sees events published from now on.
    pub fn subscribe(&self) -> Subscription {
        Subscription {
            rx: self.tx.subscribe(),
            stats: self.stats.clone(),
        }
    }

    /// The bus counters.
    pub fn stats(&self) -> &BusStats {
        &self.stats
    }

    /// Number of live subscribers.
    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }
}

/// One subscriber's view of the bus; dropping it unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    rx: broadcast::Receiver<Arc<Event>>,
    stats: Arc<BusStats>,
}

impl Subscription {
    /// The next event; `None` once every [`Bus`] clone is dropped. Events
    /// lost by falling behind are counted and skipped.
    pub async fn recv(&mut self) -> Option<Arc<Event>> {
        loop {
            match self.rx.recv().await {
                Ok(e) => return Some(e),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    self.stats.dropped.fetch_add(n, Ordering::Relaxed);
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// Like [`Subscription::recv`], for a dedicated (non-async) thread.
    pub fn blocking_recv(&mut self) -> Option<Arc<Event>> {
        loop {
            match self.rx.blocking_recv() {
                Ok(e) => return Some(e),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    self.stats.dropped.fetch_add(n, Ordering::Relaxed);
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// Waits for an event, lets more gather for [`BATCH_WINDOW`], then
    /// appends up to `max` waiting events to `out` (at least one).
    /// `false` once the bus is closed and drained. Not cancel-safe: call
    /// it outside `select!`.
    pub async fn recv_batch(&mut self, out: &mut Vec<Arc<Event>>, max: usize) -> bool {
        let Some(first) = self.recv().await else {
            return false;
        };
        out.push(first);
        tokio::time::sleep(BATCH_WINDOW).await;
        self.drain_into(out, max);
        true
    }

    /// [`Subscription::recv_batch`] for a dedicated (non-async) thread.
    pub fn blocking_recv_batch(&mut self, out: &mut Vec<Arc<Event>>, max: usize) -> bool {
        let Some(first) = self.blocking_recv() else {
            return false;
        };
        out.push(first);
        std::thread::sleep(BATCH_WINDOW);
        self.drain_into(out, max);
        true
    }

    /// Appends waiting events to `out` until it holds `max` (never waits).
    pub fn drain_into(&mut self, out: &mut Vec<Arc<Event>>, max: usize) {
        while out.len() < max {
            match self.try_recv() {
                Some(e) => out.push(e),
                None => break,
            }
        }
    }

    /// Whether every [`Bus`] clone is gone (events still waiting can be
    /// read).
    pub fn is_closed(&self) -> bool {
        self.rx.is_closed()
    }

    /// The next event if one is waiting (`None`: none now or closed).
    pub fn try_recv(&mut self) -> Option<Arc<Event>> {
        loop {
            match self.rx.try_recv() {
                Ok(e) => return Some(e),
                Err(broadcast::error::TryRecvError::Lagged(n)) => {
                    self.stats.dropped.fetch_add(n, Ordering::Relaxed);
                }
                Err(_) => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(uri: &str) -> Event {
        Event::new(Kind::WafBlock {
            method: "GET".into(),
            uri: uri.into(),
            status: 403,
            score: 5,
            rules: vec![RuleHit {
                id: 942100,
                msg: "SQL Injection Attack Detected via libinjection".into(),
                severity: 2,
                category: "sqli".into(),
                data: "Matched Data: s&sos".into(),
            }],
        })
        .client("192.0.2.7".parse().unwrap())
        .request("r-1")
        .route("app")
    }

    #[tokio::test]
    async fn subscribers_each_get_every_event_in_order() {
        let bus = Bus::new(16);
        let mut a = bus.subscribe();
        let mut b = bus.subscribe();
        for i in 0..5 {
            bus.publish(block(&format!("/{i}")));
        }
        for s in [&mut a, &mut b] {
            for i in 0..5 {
                let e = s.recv().await.unwrap();
                assert!(matches!(&e.kind, Kind::WafBlock { uri, .. } if *uri == format!("/{i}")));
            }
            assert!(s.try_recv().is_none());
        }
        assert_eq!(bus.stats().published.load(Ordering::Relaxed), 5);
        assert_eq!(bus.stats().dropped.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_slow_subscriber_loses_the_oldest_and_it_is_counted() {
        let bus = Bus::new(8);
        let mut slow = bus.subscribe();
        for i in 0..100 {
            bus.publish(block(&format!("/{i}")));
        }
        let mut got = Vec::new();
        while let Some(e) = slow.try_recv() {
            got.push(e);
        }
        assert_eq!(got.len(), 8, "only the ring's capacity is kept");
        assert_eq!(bus.stats().dropped.load(Ordering::Relaxed), 92);
        assert!(matches!(&got[0].kind, Kind::WafBlock { uri, .. } if uri == "/92"));
    }

    #[test]
    fn publishing_without_subscribers_neither_fails_nor_keeps_events() {
        let bus = Bus::new(4);
        for _ in 0..10 {
            bus.publish(block("/"));
        }
        assert_eq!(bus.subscribers(), 0);
        let mut late = bus.subscribe();
        assert!(late.try_recv().is_none());
    }

    #[test]
    fn huge_attacker_fields_are_clipped() {
        let bus = Bus::new(4);
        let mut s = bus.subscribe();
        let mut e = block(&"é".repeat(10_000));
        if let Kind::WafBlock { rules, .. } = &mut e.kind {
            let r = rules[0].clone();
            rules.resize(1000, r);
        }
        bus.publish(e);
        let got = s.try_recv().unwrap();
        let Kind::WafBlock { uri, rules, .. } = &got.kind else {
            panic!("kind")
        };
        assert!(uri.len() <= MAX_FIELD_BYTES && uri.ends_with('…'));
        assert_eq!(rules.len(), MAX_RULES_PER_EVENT);
    }

    #[test]
    fn json_has_the_common_fields_and_escapes_attacker_data() {
        let e = block("/?q=\"</script><script>alert(1)</script>\n");
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(v["kind"], "waf_block");
        assert_eq!(v["client"], "192.0.2.7");
        assert_eq!(v["request_id"], "r-1");
        assert_eq!(v["route"], "app");
        assert_eq!(v["rules"][0]["id"], 942100);
        assert_eq!(v["uri"], "/?q=\"</script><script>alert(1)</script>\n");
        assert!(!e.to_json().contains('\n'));
        for n in Kind::NAMES {
            assert!(!n.is_empty());
        }
        assert_eq!(Kind::ChallengeSolved.name(), "challenge_solved");
        assert_eq!(
            serde_json::to_value(Event::new(Kind::ConfigReload)).unwrap()["kind"],
            "config_reload"
        );
    }

    #[tokio::test]
    async fn a_batching_subscriber_takes_a_burst_in_one_wake_up() {
        let bus = Bus::new(64);
        let mut s = bus.subscribe();
        let publisher = bus.clone();
        // Current-thread runtime: the task publishes all ten as soon as
        // the subscriber first waits.
        tokio::spawn(async move {
            for i in 0..10 {
                publisher.publish(block(&format!("/{i}")));
            }
        });
        let mut out = Vec::new();
        assert!(s.recv_batch(&mut out, 100).await);
        assert_eq!(out.len(), 10);
        for w in out.windows(2) {
            assert_eq!(w[1].id, w[0].id + 1, "ids increase by one");
        }
        assert!(
            out[0].id >= now_us() - 60_000_000,
            "ids start at the bus's creation time"
        );
        drop(bus);
        out.clear();
        assert!(!s.recv_batch(&mut out, 100).await, "closed");
        assert!(out.is_empty());
    }

    #[test]
    fn category_comes_from_attack_tags() {
        let tags = vec!["paranoia-level/1".to_string(), "attack-xss".to_string()];
        assert_eq!(category_of(&tags), "xss");
        assert_eq!(category_of(&[]), "other");
    }
}
