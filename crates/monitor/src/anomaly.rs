//! Online anomaly detection: per-client and per-route baselines learned
//! from traffic, and an `anomaly` event when a window deviates.
//!
//! Every finished request becomes a [`Sample`] (sent without waiting to a
//! bounded queue, [`SAMPLE_QUEUE`]). Samples are summed per client and per
//! route over a window (`[monitor.anomaly] window`, default 10 s) into six
//! features:
//!
//! | feature | what is summed |
//! |---|---|
//! | `requests` | requests |
//! | `errors_4xx` | 4xx answers |
//! | `errors_5xx` | 5xx answers |
//! | `distinct_paths` | distinct paths (a 1024-bit sketch, linear counting; capped at [`MAX_PATHS_PER_WINDOW`]) |
//! | `waf_score` | WAF inbound anomaly scores |
//! | `bytes` | bytes in + out |
//!
//! Each feature is compared on a log scale (`ln(1 + x)`: traffic is heavy
//! tailed) against an exponentially weighted mean and variance (weight
//! `alpha` for the newest window). `z = (x − mean) / max(σ, MIN_STD)`; a
//! feature deviates when `z > z_threshold` **and** its raw value is at least
//! the feature's floor ([`FLOORS`]), so a quiet client going from 1 to 3
//! requests is not an anomaly. Only increases count.
//!
//! Whose baseline: a route is judged against its own history. A client
//! with at least `warmup_windows` windows of history is judged against its
//! own; a new client (a scanner usually is) against the population of
//! client windows. Windows judged anomalous do not update any baseline, so
//! an attack is not learned as normal.
//!
//! Memory is bounded: at most [`MAX_CLIENTS`] clients and [`MAX_ROUTES`]
//! routes are tracked (the least recently seen are forgotten first).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use crate::config::AnomalyConfig;
use crate::events::{Bus, Deviation, Event, Kind};

/// Default 50 000: clients with a baseline. Past it the least recently
/// seen eighth is forgotten. Bounds memory against address-spraying
/// (each client costs about 350 bytes, its window's path sketch included).
pub const MAX_CLIENTS: usize = 50_000;

/// Fixed 1024: routes with a baseline (routes come from the config).
pub const MAX_ROUTES: usize = 1024;

/// Fixed 1024: distinct paths counted per client or route per window (the
/// count saturates there). Bounds memory against path-spraying scanners.
pub const MAX_PATHS_PER_WINDOW: usize = 1024;

/// Default 65 536: request samples waiting for the model; when full new
/// samples are dropped and counted. Bounds memory if the model falls
/// behind (about 4 MiB).
pub const SAMPLE_QUEUE: usize = 65_536;

/// Fixed 50ms: how often the model drains the sample buffer. The request
/// path only appends under a short lock; no task is woken per request.
pub const DRAIN_EVERY: std::time::Duration = std::time::Duration::from_millis(50);

/// Samples waiting for the model (at most [`SAMPLE_QUEUE`]).
#[derive(Debug, Default)]
pub struct SampleBuf {
    buf: std::sync::Mutex<Vec<Sample>>,
}

impl SampleBuf {
    /// Appends a sample; `false` when the buffer is full (sample dropped).
    pub fn push(&self, s: Sample) -> bool {
        let mut b = match self.buf.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if b.len() >= SAMPLE_QUEUE {
            return false;
        }
        b.push(s);
        true
    }

    fn take(&self) -> Vec<Sample> {
        let mut b = match self.buf.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        std::mem::take(&mut *b)
    }
}

/// Fixed 0.5 (log scale): smallest standard deviation used in a z-score,
/// so a baseline that never varied does not make every change infinite.
pub const MIN_STD: f64 = 0.5;

/// Feature names, in the order of [`FLOORS`].
pub const FEATURES: [&str; 6] = [
    "requests",
    "errors_4xx",
    "errors_5xx",
    "distinct_paths",
    "waf_score",
    "bytes",
];

/// Smallest raw window value for a feature to be reported as deviating
/// (requests 30, 4xx 10, 5xx 10, distinct paths 20, WAF score 20, 1 MiB).
pub const FLOORS: [f64; 6] = [30.0, 10.0, 10.0, 20.0, 20.0, 1_048_576.0];

/// One finished request as the model sees it.
#[derive(Debug, Clone)]
pub struct Sample {
    /// The client.
    pub client: IpAddr,
    /// The route (`None`: no route matched).
    pub route: Option<Arc<str>>,
    /// A hash of the request path (distinct-path counting).
    pub path_hash: u64,
    /// Status sent.
    pub status: u16,
    /// Bytes in plus out.
    pub bytes: u64,
    /// WAF inbound anomaly score.
    pub waf_score: u32,
}

/// FNV-1a of a path, for [`Sample::path_hash`].
pub fn path_hash(path: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in path.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Bits of a window's distinct-path sketch (fixed 1024, 128 bytes per
/// client or route): the count is estimated by linear counting, within a
/// few percent up to [`MAX_PATHS_PER_WINDOW`], and a sample costs one bit
/// set instead of a hash-set insert.
const PATH_SKETCH_BITS: usize = 1024;

#[derive(Debug, Default)]
struct Window {
    requests: u64,
    e4: u64,
    e5: u64,
    paths: [u64; PATH_SKETCH_BITS / 64],
    score: u64,
    bytes: u64,
}

impl Window {
    /// `key`: the detector's secret, so a client cannot pick paths that
    /// land on one bit to hide a scan.
    fn add(&mut self, s: &Sample, key: u64) {
        self.requests += 1;
        match s.status {
            400..=499 => self.e4 += 1,
            500..=599 => self.e5 += 1,
            _ => {}
        }
        let h = (s.path_hash ^ key).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let bit = (h >> (64 - PATH_SKETCH_BITS.trailing_zeros())) as usize;
        self.paths[bit / 64] |= 1 << (bit % 64);
        self.score = self.score.saturating_add(u64::from(s.waf_score));
        self.bytes = self.bytes.saturating_add(s.bytes);
    }

    /// Distinct paths (linear counting over the sketch), at most
    /// [`MAX_PATHS_PER_WINDOW`].
    fn distinct_paths(&self) -> f64 {
        let m = PATH_SKETCH_BITS as f64;
        let set: u32 = self.paths.iter().map(|w| w.count_ones()).sum();
        let zero = m - f64::from(set);
        let n = if zero < 1.0 {
            MAX_PATHS_PER_WINDOW as f64
        } else {
            (m * (m / zero).ln()).round()
        };
        n.min(MAX_PATHS_PER_WINDOW as f64)
    }

    fn raw(&self) -> [f64; 6] {
        [
            self.requests as f64,
            self.e4 as f64,
            self.e5 as f64,
            self.distinct_paths(),
            self.score as f64,
            self.bytes as f64,
        ]
    }

    fn reset(&mut self) {
        *self = Window::default();
    }
}

/// Exponentially weighted mean and variance of the six log features.
#[derive(Debug, Default, Clone)]
struct Ew {
    mean: [f64; 6],
    var: [f64; 6],
    n: u32,
}

impl Ew {
    #[allow(clippy::needless_range_loop)] // four parallel arrays
    fn update(&mut self, x: &[f64; 6], alpha: f64) {
        for i in 0..6 {
            if self.n == 0 {
                self.mean[i] = x[i];
                self.var[i] = 0.0;
            } else {
                let d = x[i] - self.mean[i];
                self.mean[i] += alpha * d;
                self.var[i] = (1.0 - alpha) * (self.var[i] + alpha * d * d);
            }
        }
        self.n = self.n.saturating_add(1);
    }

    #[allow(clippy::needless_range_loop)] // four parallel arrays
    fn deviations(&self, raw: &[f64; 6], x: &[f64; 6], z_max: f64) -> Vec<Deviation> {
        let mut out = Vec::new();
        for i in 0..6 {
            let z = (x[i] - self.mean[i]) / self.var[i].sqrt().max(MIN_STD);
            if z > z_max && raw[i] >= FLOORS[i] {
                out.push(Deviation {
                    feature: FEATURES[i].to_string(),
                    value: raw[i],
                    mean: self.mean[i].exp() - 1.0,
                    z: (z * 100.0).round() / 100.0,
                });
            }
        }
        out
    }
}

fn logs(raw: &[f64; 6]) -> [f64; 6] {
    raw.map(f64::ln_1p)
}

#[derive(Debug, Default)]
struct KeyState {
    own: Ew,
    win: Window,
    last_seen: u64,
}

/// The model. Not thread-safe by itself: [`run`] owns it on one task.
#[derive(Debug)]
pub struct Detector {
    cfg: AnomalyConfig,
    clients: HashMap<IpAddr, KeyState>,
    routes: HashMap<Arc<str>, KeyState>,
    population: Ew,
    window_no: u64,
    max_clients: usize,
    /// Secret mixed into path hashes before they pick a sketch bit.
    path_key: u64,
}

impl Detector {
    /// A model with no history.
    pub fn new(cfg: AnomalyConfig) -> Detector {
        Detector::with_cap(cfg, MAX_CLIENTS)
    }

    /// A model tracking at most `max_clients` clients (tests).
    pub fn with_cap(cfg: AnomalyConfig, max_clients: usize) -> Detector {
        Detector {
            cfg,
            clients: HashMap::new(),
            routes: HashMap::new(),
            population: Ew::default(),
            window_no: 0,
            max_clients: max_clients.max(8),
            path_key: {
                use std::hash::BuildHasher;
                std::collections::hash_map::RandomState::new().hash_one(0x5041_4c49u64)
            },
        }
    }

    /// Adds one request to the current window.
    pub fn observe(&mut self, s: &Sample) {
        let now = self.window_no;
        if !self.clients.contains_key(&s.client) && self.clients.len() >= self.max_clients {
            self.evict_clients();
        }
        let c = self.clients.entry(s.client).or_default();
        c.win.add(s, self.path_key);
        c.last_seen = now;
        if let Some(r) = &s.route {
            if self.routes.contains_key(r) || self.routes.len() < MAX_ROUTES {
                let rs = self.routes.entry(r.clone()).or_default();
                rs.win.add(s, self.path_key);
                rs.last_seen = now;
            }
        }
    }

    /// Forgets the least recently seen eighth of the clients.
    fn evict_clients(&mut self) {
        let mut seen: Vec<u64> = self.clients.values().map(|c| c.last_seen).collect();
        let k = seen.len() / 8;
        if k == 0 {
            return;
        }
        let (_, cut, _) = seen.select_nth_unstable(k);
        let cut = *cut;
        let mut budget = k.max(1);
        self.clients.retain(|_, c| {
            if budget > 0 && c.last_seen <= cut {
                budget -= 1;
                false
            } else {
                true
            }
        });
    }

    /// Number of clients tracked.
    pub fn clients(&self) -> usize {
        self.clients.len()
    }

    /// Ends the current window: judges every active client and route,
    /// updates the baselines with the normal ones, and returns one
    /// `anomaly` event per deviating client or route.
    pub fn close_window(&mut self) -> Vec<Event> {
        let cfg = &self.cfg;
        let z = cfg.z_threshold;
        let warm = cfg.warmup_windows.max(1);
        let pop_alpha = cfg.alpha / 5.0;
        let pop_warm = self.population.n >= warm.saturating_mul(10);
        let mut out = Vec::new();
        let mut pop_updates = Vec::new();
        let now = self.window_no;
        for (ip, c) in self.clients.iter_mut() {
            if c.last_seen != now || c.win.requests == 0 {
                continue;
            }
            let raw = c.win.raw();
            let x = logs(&raw);
            let dev = if c.own.n >= warm {
                c.own.deviations(&raw, &x, z)
            } else if pop_warm {
                self.population.deviations(&raw, &x, z)
            } else {
                Vec::new()
            };
            if dev.is_empty() {
                c.own.update(&x, cfg.alpha);
                pop_updates.push(x);
            } else {
                out.push(
                    Event::new(Kind::Anomaly {
                        subject: "client".into(),
                        key: ip.to_string(),
                        features: dev,
                    })
                    .client(*ip),
                );
            }
            c.win.reset();
        }
        for x in &pop_updates {
            self.population.update(x, pop_alpha);
        }
        for (name, r) in self.routes.iter_mut() {
            if r.last_seen != now || r.win.requests == 0 {
                continue;
            }
            let raw = r.win.raw();
            let x = logs(&raw);
            let dev = if r.own.n >= warm {
                r.own.deviations(&raw, &x, z)
            } else {
                Vec::new()
            };
            if dev.is_empty() {
                r.own.update(&x, cfg.alpha);
            } else {
                out.push(
                    Event::new(Kind::Anomaly {
                        subject: "route".into(),
                        key: name.to_string(),
                        features: dev,
                    })
                    .route(name.to_string()),
                );
            }
            r.win.reset();
        }
        self.window_no += 1;
        out
    }
}

/// Runs the model: drains `buf` every [`DRAIN_EVERY`], closes a window
/// every `cfg.window`, publishes anomalies on `bus`. Ends when it holds
/// the last reference to `buf` (the monitor is gone).
pub async fn run(cfg: AnomalyConfig, buf: Arc<SampleBuf>, bus: Bus) {
    let mut det = Detector::new(cfg.clone());
    let mut tick = tokio::time::interval(cfg.window.0);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut drain = tokio::time::interval(DRAIN_EVERY);
    drain.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = drain.tick() => {
                if Arc::strong_count(&buf) == 1 {
                    return;
                }
                for s in buf.take() {
                    det.observe(&s);
                }
            },
            _ = tick.tick() => {
                for s in buf.take() {
                    det.observe(&s);
                }
                for e in det.close_window() {
                    tracing::warn!(event = "anomaly", detail = %e.to_json(), "anomaly detected");
                    bus.publish(e);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (xorshift), so the profile is the
    /// same on every run.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn chance(&mut self, per_mille: u64) -> bool {
            self.below(1000) < per_mille
        }
    }

    const ROUTES: [&str; 3] = ["site", "api", "login"];

    /// One window of the normal profile: 400 known clients, about half
    /// active per window, 1-20 requests each over 40 popular paths, ~3%
    /// 404s, rare 5xx, rare low WAF scores (false positives), 2-60 KB per
    /// request; a few API clients are steady and heavy (60-90 requests).
    fn normal_window(det: &mut Detector, rng: &mut Rng) {
        for c in 0..400u32 {
            if !rng.chance(500) {
                continue;
            }
            let ip = IpAddr::from([10, 1, (c / 256) as u8, (c % 256) as u8]);
            let heavy = c < 5;
            let n = if heavy {
                60 + rng.below(31)
            } else {
                1 + rng.below(20)
            };
            for _ in 0..n {
                let route = ROUTES[rng.below(3) as usize];
                let path = format!("/{route}/{}", rng.below(40));
                let status = if rng.chance(30) {
                    404
                } else if rng.chance(3) {
                    502
                } else {
                    200
                };
                det.observe(&Sample {
                    client: ip,
                    route: Some(Arc::from(route)),
                    path_hash: path_hash(&path),
                    status,
                    bytes: 2_000 + rng.below(58_000),
                    waf_score: if rng.chance(5) { 3 } else { 0 },
                });
            }
        }
    }

    fn cfg() -> AnomalyConfig {
        AnomalyConfig::default()
    }

    fn learn(det: &mut Detector, rng: &mut Rng, windows: usize) -> Vec<Event> {
        let mut all = Vec::new();
        for _ in 0..windows {
            normal_window(det, rng);
            all.extend(det.close_window());
        }
        all
    }

    #[test]
    fn replayed_normal_traffic_raises_no_anomaly() {
        let mut det = Detector::new(cfg());
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let events = learn(&mut det, &mut rng, 200);
        assert!(
            events.is_empty(),
            "false positives: {:?}",
            events.first().map(Event::to_json)
        );
    }

    fn features(e: &Event) -> Vec<String> {
        match &e.kind {
            Kind::Anomaly { features, .. } => features.iter().map(|f| f.feature.clone()).collect(),
            _ => vec![],
        }
    }

    #[test]
    fn an_injected_scanner_is_flagged_with_its_features() {
        let mut det = Detector::new(cfg());
        let mut rng = Rng(7);
        assert!(learn(&mut det, &mut rng, 60).is_empty());
        normal_window(&mut det, &mut rng);
        let scanner: IpAddr = "203.0.113.9".parse().unwrap();
        for i in 0..250 {
            det.observe(&Sample {
                client: scanner,
                route: Some(Arc::from("site")),
                path_hash: path_hash(&format!("/.git/{i}/config")),
                status: if i % 10 == 0 { 200 } else { 404 },
                bytes: 400,
                waf_score: if i % 5 == 0 { 5 } else { 0 },
            });
        }
        let events = det.close_window();
        let hit: Vec<_> = events
            .iter()
            .filter(|e| e.client == Some(scanner))
            .collect();
        assert_eq!(hit.len(), 1, "{events:?}");
        let f = features(hit[0]);
        for want in ["requests", "errors_4xx", "distinct_paths", "waf_score"] {
            assert!(f.contains(&want.to_string()), "{f:?}");
        }
        // No normal client was flagged alongside it.
        assert!(events
            .iter()
            .all(|e| e.client.is_none() || e.client == Some(scanner)));
    }

    #[test]
    fn credential_stuffing_is_flagged_on_the_client_and_the_login_route() {
        let mut det = Detector::new(cfg());
        let mut rng = Rng(99);
        assert!(learn(&mut det, &mut rng, 60).is_empty());
        normal_window(&mut det, &mut rng);
        let bot: IpAddr = "198.51.100.4".parse().unwrap();
        for _ in 0..150 {
            det.observe(&Sample {
                client: bot,
                route: Some(Arc::from("login")),
                path_hash: path_hash("/login"),
                status: 401,
                bytes: 900,
                waf_score: 0,
            });
        }
        let events = det.close_window();
        let client: Vec<_> = events.iter().filter(|e| e.client == Some(bot)).collect();
        assert_eq!(client.len(), 1, "{events:?}");
        let f = features(client[0]);
        // 150 requests in a window is within reach of the steady API
        // clients; 150 failures is not.
        assert!(f.contains(&"errors_4xx".to_string()), "{f:?}");
        let route: Vec<_> = events
            .iter()
            .filter(|e| e.route.as_deref() == Some("login"))
            .collect();
        assert_eq!(route.len(), 1, "{events:?}");
        assert!(features(route[0]).contains(&"errors_4xx".to_string()));
        // The attack was not learned: the same wave next window is flagged again.
        for _ in 0..150 {
            det.observe(&Sample {
                client: bot,
                route: Some(Arc::from("login")),
                path_hash: path_hash("/login"),
                status: 401,
                bytes: 900,
                waf_score: 0,
            });
        }
        assert!(det.close_window().iter().any(|e| e.client == Some(bot)));
    }

    #[test]
    fn the_sample_buffer_is_bounded_and_drains() {
        let b = SampleBuf::default();
        let s = Sample {
            client: IpAddr::from([10, 0, 0, 1]),
            route: None,
            path_hash: 1,
            status: 200,
            bytes: 1,
            waf_score: 0,
        };
        for _ in 0..SAMPLE_QUEUE {
            assert!(b.push(s.clone()));
        }
        assert!(!b.push(s.clone()), "full: dropped");
        assert_eq!(b.take().len(), SAMPLE_QUEUE);
        assert!(b.push(s));
    }

    #[test]
    fn client_memory_is_capped() {
        let mut det = Detector::with_cap(cfg(), 1000);
        for i in 0..100_000u32 {
            det.observe(&Sample {
                client: IpAddr::from(i.to_be_bytes()),
                route: None,
                path_hash: u64::from(i),
                status: 200,
                bytes: 1,
                waf_score: 0,
            });
            assert!(det.clients() <= 1000);
        }
        det.close_window();
    }
}
