//! Prometheus metrics: lock-free counters updated per request, rendered as
//! Prometheus text on `/metrics`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Histogram bucket upper bounds in seconds.
pub const DURATION_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Per-route counters: requests by status code and the duration histogram.
#[derive(Debug)]
pub struct RouteMetrics {
    /// Route label.
    pub name: String,
    codes: Box<[AtomicU64]>,
    buckets: [AtomicU64; DURATION_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
    /// Logged WAF rule matches (every mode).
    pub waf_matches: AtomicU64,
    /// Requests and responses the WAF blocked.
    pub waf_blocks: AtomicU64,
}

impl RouteMetrics {
    fn new(name: &str) -> Self {
        RouteMetrics {
            name: name.to_string(),
            codes: (0..500).map(|_| AtomicU64::new(0)).collect(),
            buckets: Default::default(),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
            waf_matches: AtomicU64::new(0),
            waf_blocks: AtomicU64::new(0),
        }
    }

    /// Records one finished request.
    pub fn observe(&self, status: u16, d: Duration) {
        if let Some(c) = self.codes.get(usize::from(status).wrapping_sub(100)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let secs = d.as_secs_f64();
        if let Some(i) = DURATION_BUCKETS.iter().position(|&b| secs <= b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    /// Requests counted with this status.
    pub fn requests(&self, status: u16) -> u64 {
        self.codes
            .get(usize::from(status).wrapping_sub(100))
            .map(|c| c.load(Ordering::Relaxed))
            .unwrap_or(0)
    }
}

/// Process-wide metrics (they survive reloads).
#[derive(Debug, Default)]
pub struct Metrics {
    routes: Mutex<HashMap<String, Arc<RouteMetrics>>>,
    /// Open client connections.
    pub connections_open: AtomicI64,
    /// Successful reloads.
    pub reloads_ok: AtomicU64,
    /// Rejected reloads.
    pub reloads_error: AtomicU64,
    /// Access-log lines dropped because the writer fell behind.
    pub access_log_dropped: AtomicU64,
}

/// Totals over every route, from [`Metrics::totals`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    /// Requests answered.
    pub requests: u64,
    /// Sum of request durations, microseconds.
    pub duration_sum_micros: u64,
    /// Requests and responses the WAF blocked.
    pub waf_blocks: u64,
    /// Duration histogram (not cumulative), by [`DURATION_BUCKETS`].
    pub buckets: [u64; DURATION_BUCKETS.len()],
}

/// Label used for requests that matched no route.
pub const NO_ROUTE: &str = "-";

impl Metrics {
    /// The counters of a route (created on first use; called at config load,
    /// not per request).
    pub fn route(&self, name: &str) -> Arc<RouteMetrics> {
        let mut m = match self.routes.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        m.entry(name.to_string())
            .or_insert_with(|| Arc::new(RouteMetrics::new(name)))
            .clone()
    }

    /// Sums over every route (the admin dashboard's overview).
    pub fn totals(&self) -> Totals {
        let m = match self.routes.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut t = Totals::default();
        for r in m.values() {
            t.requests += r.count.load(Ordering::Relaxed);
            t.duration_sum_micros += r.sum_micros.load(Ordering::Relaxed);
            t.waf_blocks += r.waf_blocks.load(Ordering::Relaxed);
            for (i, b) in r.buckets.iter().enumerate() {
                t.buckets[i] += b.load(Ordering::Relaxed);
            }
        }
        t
    }

    /// Renders the process-wide metrics; callers append config-dependent gauges.
    pub fn render(&self, out: &mut String) {
        let routes: Vec<Arc<RouteMetrics>> = {
            let m = match self.routes.lock() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            let mut v: Vec<_> = m.values().cloned().collect();
            v.sort_by(|a, b| a.name.cmp(&b.name));
            v
        };
        out.push_str(
            "# HELP palisade_requests_total Requests answered, by route and status code.\n",
        );
        out.push_str("# TYPE palisade_requests_total counter\n");
        for r in &routes {
            for (i, c) in r.codes.iter().enumerate() {
                let n = c.load(Ordering::Relaxed);
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "palisade_requests_total{{route=\"{}\",code=\"{}\"}} {n}",
                        escape(&r.name),
                        i + 100
                    );
                }
            }
        }
        out.push_str("# HELP palisade_request_duration_seconds Time from request head to end of response, by route.\n");
        out.push_str("# TYPE palisade_request_duration_seconds histogram\n");
        for r in &routes {
            let name = escape(&r.name);
            let mut cum = 0;
            for (i, b) in DURATION_BUCKETS.iter().enumerate() {
                cum += r.buckets[i].load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "palisade_request_duration_seconds_bucket{{route=\"{name}\",le=\"{b}\"}} {cum}"
                );
            }
            let count = r.count.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "palisade_request_duration_seconds_bucket{{route=\"{name}\",le=\"+Inf\"}} {count}"
            );
            let sum = r.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(
                out,
                "palisade_request_duration_seconds_sum{{route=\"{name}\"}} {sum}"
            );
            let _ = writeln!(
                out,
                "palisade_request_duration_seconds_count{{route=\"{name}\"}} {count}"
            );
        }
        out.push_str("# HELP palisade_waf_matches_total Logged WAF rule matches, by route.\n");
        out.push_str("# TYPE palisade_waf_matches_total counter\n");
        for r in &routes {
            let _ = writeln!(
                out,
                "palisade_waf_matches_total{{route=\"{}\"}} {}",
                escape(&r.name),
                r.waf_matches.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP palisade_waf_blocks_total Requests and responses blocked by the WAF, by route.\n");
        out.push_str("# TYPE palisade_waf_blocks_total counter\n");
        for r in &routes {
            let _ = writeln!(
                out,
                "palisade_waf_blocks_total{{route=\"{}\"}} {}",
                escape(&r.name),
                r.waf_blocks.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP palisade_connections_open Open client connections.\n");
        out.push_str("# TYPE palisade_connections_open gauge\n");
        let _ = writeln!(
            out,
            "palisade_connections_open {}",
            self.connections_open.load(Ordering::Relaxed)
        );
        out.push_str("# HELP palisade_config_reloads_total Config reloads, by result.\n");
        out.push_str("# TYPE palisade_config_reloads_total counter\n");
        let _ = writeln!(
            out,
            "palisade_config_reloads_total{{result=\"ok\"}} {}",
            self.reloads_ok.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "palisade_config_reloads_total{{result=\"error\"}} {}",
            self.reloads_error.load(Ordering::Relaxed)
        );
        out.push_str("# HELP palisade_access_log_dropped_total Access-log lines dropped because the writer fell behind.\n");
        out.push_str("# TYPE palisade_access_log_dropped_total counter\n");
        let _ = writeln!(
            out,
            "palisade_access_log_dropped_total {}",
            self.access_log_dropped.load(Ordering::Relaxed)
        );
    }
}

/// Escapes a Prometheus label value.
pub fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_histogram_render() {
        let m = Metrics::default();
        let r = m.route("api \"v1\"");
        r.observe(200, Duration::from_millis(3));
        r.observe(200, Duration::from_millis(30));
        r.observe(502, Duration::from_secs(20));
        assert!(Arc::ptr_eq(&r, &m.route("api \"v1\"")));
        assert_eq!(r.requests(200), 2);
        let mut s = String::new();
        m.render(&mut s);
        assert!(
            s.contains("palisade_requests_total{route=\"api \\\"v1\\\"\",code=\"200\"} 2"),
            "{s}"
        );
        assert!(s.contains("palisade_requests_total{route=\"api \\\"v1\\\"\",code=\"502\"} 1"));
        assert!(s.contains("le=\"0.005\"} 1\n"));
        assert!(s.contains("le=\"0.05\"} 2\n"));
        assert!(s.contains("le=\"10\"} 2\n"));
        assert!(s.contains("le=\"+Inf\"} 3\n"));
        assert!(s.contains("palisade_config_reloads_total{result=\"error\"} 0"));
    }
}
