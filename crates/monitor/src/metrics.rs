//! Prometheus counters fed by the event bus (WAF matches and blocks by rule
//! and category, bans by jail, challenges, logins, anomalies) plus direct
//! counters where a bus round trip would cost more than the counter (WAF
//! evaluation time histogram).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

use crate::events::{Event, Kind, Subscription};

/// Fixed 500: distinct `(rule, category)` label pairs kept; later rules are
/// counted under `rule="other"`. Bounds Prometheus series (an attacker
/// cannot mint rule ids, but a large custom ruleset could).
pub const MAX_RULE_LABELS: usize = 500;

/// Fixed 64: distinct jail names kept (others count as `other`).
pub const MAX_JAIL_LABELS: usize = 64;

/// WAF evaluation time buckets, seconds.
pub const WAF_EVAL_BUCKETS: [f64; 12] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5,
];

#[derive(Debug, Default, Clone, Copy)]
struct RuleCount {
    matches: u64,
    blocks: u64,
}

/// WAF counts per (rule id, category), looked up without allocating (a
/// rule id's category rarely varies, so each id holds a short list).
#[derive(Debug, Default)]
struct RuleCounts {
    by_id: HashMap<u64, Vec<(String, RuleCount)>>,
    /// Labels in `by_id` (at most [`MAX_RULE_LABELS`]).
    labels: usize,
    /// Counts past the label cap (`rule="other"`).
    other: Option<RuleCount>,
}

impl RuleCounts {
    fn slot(&mut self, id: u64, category: &str) -> &mut RuleCount {
        let known = self
            .by_id
            .get(&id)
            .is_some_and(|v| v.iter().any(|(c, _)| c == category));
        if !known {
            if self.labels >= MAX_RULE_LABELS {
                return self.other.get_or_insert_with(RuleCount::default);
            }
            self.labels += 1;
        }
        let v = self.by_id.entry(id).or_default();
        let i = match v.iter().position(|(c, _)| c == category) {
            Some(i) => i,
            None => {
                v.push((category.to_string(), RuleCount::default()));
                v.len() - 1
            }
        };
        &mut v[i].1
    }

    /// `((rule, category), counts)`, sorted by label.
    fn labelled(&self) -> Vec<((String, String), RuleCount)> {
        let mut v: Vec<_> = self
            .by_id
            .iter()
            .flat_map(|(id, cs)| {
                cs.iter()
                    .map(move |(c, n)| ((id.to_string(), c.clone()), *n))
            })
            .chain(
                self.other
                    .map(|n| (("other".to_string(), "other".to_string()), n)),
            )
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

/// The monitor's counters.
#[derive(Debug, Default)]
pub struct MonitorMetrics {
    rules: Mutex<RuleCounts>,
    bans: Mutex<HashMap<String, u64>>,
    /// Challenge pages served.
    pub challenges_issued: AtomicU64,
    /// Challenge answers accepted.
    pub challenges_solved: AtomicU64,
    /// Challenge answers refused.
    pub challenges_failed: AtomicU64,
    /// Successful logins.
    pub logins_ok: AtomicU64,
    /// Failed logins.
    pub logins_failed: AtomicU64,
    /// Lockouts.
    pub lockouts: AtomicU64,
    /// Anomaly events.
    pub anomalies: AtomicU64,
    /// Alerts delivered.
    pub alerts_sent: AtomicU64,
    /// Alerts given up after retries (or dropped when the queue was full).
    pub alerts_failed: AtomicU64,
    /// Request samples the anomaly model dropped (queue full).
    pub samples_dropped: AtomicU64,
    eval_buckets: [AtomicU64; WAF_EVAL_BUCKETS.len()],
    eval_count: AtomicU64,
    eval_sum_ns: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Escapes a Prometheus label value.
pub fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl MonitorMetrics {
    /// Counts one event.
    pub fn record(&self, e: &Event) {
        match &e.kind {
            Kind::WafMatch { rules, .. } | Kind::WafBlock { rules, .. } => {
                let blocked = matches!(e.kind, Kind::WafBlock { .. });
                let mut m = lock(&self.rules);
                for r in rules {
                    let c = m.slot(r.id, &r.category);
                    c.matches += 1;
                    if blocked {
                        c.blocks += 1;
                    }
                }
            }
            Kind::ShieldBan { jail, .. } => {
                let mut m = lock(&self.bans);
                let key = if m.contains_key(jail) || m.len() < MAX_JAIL_LABELS {
                    jail.clone()
                } else {
                    "other".to_string()
                };
                *m.entry(key).or_default() += 1;
            }
            Kind::ChallengeIssued { .. } => {
                self.challenges_issued.fetch_add(1, Relaxed);
            }
            Kind::ChallengeSolved => {
                self.challenges_solved.fetch_add(1, Relaxed);
            }
            Kind::ChallengeFailed { .. } => {
                self.challenges_failed.fetch_add(1, Relaxed);
            }
            Kind::LoginSuccess { .. } => {
                self.logins_ok.fetch_add(1, Relaxed);
            }
            Kind::LoginFailure { .. } => {
                self.logins_failed.fetch_add(1, Relaxed);
            }
            Kind::Lockout { .. } => {
                self.lockouts.fetch_add(1, Relaxed);
            }
            Kind::Anomaly { .. } => {
                self.anomalies.fetch_add(1, Relaxed);
            }
            _ => {}
        }
    }

    /// Records one WAF evaluation (called directly by the WAF glue).
    pub fn observe_waf_eval(&self, d: Duration) {
        let s = d.as_secs_f64();
        if let Some(i) = WAF_EVAL_BUCKETS.iter().position(|&b| s <= b) {
            self.eval_buckets[i].fetch_add(1, Relaxed);
        }
        self.eval_count.fetch_add(1, Relaxed);
        self.eval_sum_ns
            .fetch_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX), Relaxed);
    }

    /// Counts every event of `sub` until the bus closes.
    pub async fn run(&self, mut sub: Subscription) {
        let mut batch = Vec::new();
        while sub
            .recv_batch(&mut batch, crate::events::BUS_CAPACITY)
            .await
        {
            for e in batch.drain(..) {
                self.record(&e);
            }
        }
    }

    /// WAF (matches, blocks) counted for a rule id (tests, dashboard).
    pub fn rule_counts(&self, rule: &str) -> (u64, u64) {
        let m = lock(&self.rules);
        m.labelled()
            .iter()
            .filter(|((r, _), _)| r == rule)
            .fold((0, 0), |(a, b), (_, c)| (a + c.matches, b + c.blocks))
    }

    /// Appends the monitor's metrics in Prometheus text format.
    pub fn render(&self, out: &mut String, events_published: u64, events_dropped: u64) {
        let rules = lock(&self.rules).labelled();
        out.push_str("# HELP palisade_waf_rule_matches_total WAF rule matches, by rule id and attack category.\n# TYPE palisade_waf_rule_matches_total counter\n");
        for ((r, c), n) in &rules {
            let _ = writeln!(
                out,
                "palisade_waf_rule_matches_total{{rule=\"{}\",category=\"{}\"}} {}",
                escape_label(r),
                escape_label(c),
                n.matches
            );
        }
        out.push_str("# HELP palisade_waf_rule_blocks_total Blocked requests in which the rule matched, by rule id and attack category.\n# TYPE palisade_waf_rule_blocks_total counter\n");
        for ((r, c), n) in &rules {
            let _ = writeln!(
                out,
                "palisade_waf_rule_blocks_total{{rule=\"{}\",category=\"{}\"}} {}",
                escape_label(r),
                escape_label(c),
                n.blocks
            );
        }
        out.push_str("# HELP palisade_bans_issued_total Bans made, by jail (manual: admin API).\n# TYPE palisade_bans_issued_total counter\n");
        let bans: Vec<_> = {
            let m = lock(&self.bans);
            let mut v: Vec<_> = m.iter().map(|(k, n)| (k.clone(), *n)).collect();
            v.sort();
            v
        };
        for (j, n) in bans {
            let _ = writeln!(
                out,
                "palisade_bans_issued_total{{jail=\"{}\"}} {n}",
                escape_label(&j)
            );
        }
        out.push_str("# HELP palisade_challenges_total Proof-of-work challenges, by outcome.\n# TYPE palisade_challenges_total counter\n");
        for (k, v) in [
            ("issued", &self.challenges_issued),
            ("solved", &self.challenges_solved),
            ("failed", &self.challenges_failed),
        ] {
            let _ = writeln!(
                out,
                "palisade_challenges_total{{result=\"{k}\"}} {}",
                v.load(Relaxed)
            );
        }
        out.push_str("# HELP palisade_logins_total Logins, by result.\n# TYPE palisade_logins_total counter\n");
        for (k, v) in [
            ("success", &self.logins_ok),
            ("failure", &self.logins_failed),
            ("lockout", &self.lockouts),
        ] {
            let _ = writeln!(
                out,
                "palisade_logins_total{{result=\"{k}\"}} {}",
                v.load(Relaxed)
            );
        }
        for (name, help, v) in [
            (
                "palisade_events_published_total",
                "Security events published on the bus.",
                events_published,
            ),
            (
                "palisade_events_dropped_total",
                "Events a subscriber lost because it fell a full queue behind.",
                events_dropped,
            ),
            (
                "palisade_anomalies_total",
                "Anomaly events raised.",
                self.anomalies.load(Relaxed),
            ),
            (
                "palisade_alerts_sent_total",
                "Alerts delivered.",
                self.alerts_sent.load(Relaxed),
            ),
            (
                "palisade_alerts_failed_total",
                "Alerts given up after retries or dropped (queue full).",
                self.alerts_failed.load(Relaxed),
            ),
            (
                "palisade_anomaly_samples_dropped_total",
                "Request samples the anomaly model dropped (queue full).",
                self.samples_dropped.load(Relaxed),
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        }
        out.push_str("# HELP palisade_waf_evaluation_seconds Time the WAF spent evaluating a request (all phases).\n# TYPE palisade_waf_evaluation_seconds histogram\n");
        let mut cum = 0;
        for (i, b) in WAF_EVAL_BUCKETS.iter().enumerate() {
            cum += self.eval_buckets[i].load(Relaxed);
            let _ = writeln!(
                out,
                "palisade_waf_evaluation_seconds_bucket{{le=\"{b}\"}} {cum}"
            );
        }
        let count = self.eval_count.load(Relaxed);
        let _ = writeln!(
            out,
            "palisade_waf_evaluation_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "palisade_waf_evaluation_seconds_sum {}",
            self.eval_sum_ns.load(Relaxed) as f64 / 1e9
        );
        let _ = writeln!(out, "palisade_waf_evaluation_seconds_count {count}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::RuleHit;

    fn waf(block: bool, id: u64) -> Event {
        let rules = vec![RuleHit {
            id,
            msg: String::new(),
            severity: 2,
            category: "sq\"li".into(),
            data: String::new(),
        }];
        Event::new(if block {
            Kind::WafBlock {
                method: "GET".into(),
                uri: "/".into(),
                status: 403,
                score: 5,
                rules,
            }
        } else {
            Kind::WafMatch {
                method: "GET".into(),
                uri: "/".into(),
                status: 200,
                score: 3,
                rules,
            }
        })
    }

    #[test]
    fn counts_render_with_escaped_and_capped_labels() {
        let m = MonitorMetrics::default();
        m.record(&waf(true, 942100));
        m.record(&waf(false, 942100));
        for id in 0..(MAX_RULE_LABELS as u64 + 50) {
            m.record(&waf(false, 1_000_000 + id));
        }
        m.record(&Event::new(Kind::ChallengeSolved));
        m.record(&Event::new(Kind::ShieldBan {
            net: "10.0.0.1/32".into(),
            jail: "waf".into(),
            reason: String::new(),
            duration_s: Some(60),
        }));
        m.observe_waf_eval(Duration::from_micros(300));
        assert_eq!(m.rule_counts("942100"), (2, 1));
        assert_eq!(m.rule_counts("other"), (51, 0));
        let mut s = String::new();
        m.render(&mut s, 7, 3);
        assert!(
            s.contains("palisade_waf_rule_blocks_total{rule=\"942100\",category=\"sq\\\"li\"} 1"),
            "{s}"
        );
        assert!(s.contains("palisade_bans_issued_total{jail=\"waf\"} 1"));
        assert!(s.contains("palisade_challenges_total{result=\"solved\"} 1"));
        assert!(s.contains("palisade_events_dropped_total 3"));
        assert!(s.contains("palisade_waf_evaluation_seconds_bucket{le=\"0.0005\"} 1"));
        assert!(s.contains("palisade_waf_evaluation_seconds_bucket{le=\"0.00025\"} 0"));
        let series = s
            .lines()
            .filter(|l| l.starts_with("palisade_waf_rule_matches_total{"))
            .count();
        assert_eq!(series, MAX_RULE_LABELS + 1);
    }
}
