//! Jails: automatic bans when a client crosses a threshold of events within
//! a window (like fail2ban filters or CrowdSec scenarios), with escalating
//! ban durations for repeat offenders and an optional soft threshold from
//! which the client must solve the proof-of-work challenge.
//!
//! Counting is per ban scope (an IPv4 address, an IPv6 /64 by default), so a
//! client rotating addresses inside its /64 is one offender. The tables are
//! local to the node and capped; with the Redis backend the shield counts in
//! Redis instead (see `Shield::record_at`), so the nodes add up.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use crate::bounded::BoundedMap;
use crate::ipset::IpNet;

/// Default 100 000: (jail, client) pairs tracked. Bounds memory against
/// floods of distinct addresses; the oldest pair is forgotten first.
pub const MAX_TRACKED: usize = 100_000;
/// Default 100 000: clients whose past bans are remembered for escalation.
pub const MAX_OFFENDERS: usize = 100_000;
/// Default 100 000: clients flagged for a challenge (soft threshold).
pub const MAX_SUSPECTS: usize = 100_000;
/// Fixed 1000: highest threshold a jail may have. Bounds the events kept per
/// tracked client (each is 16 bytes).
pub const MAX_THRESHOLD: u32 = 1000;

/// What a jail counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Requests the WAF blocked.
    WafBlock,
    /// 4xx answers from the application on distinct paths (scanning).
    Scan,
    /// Failed logins reported by the identity layer.
    FailedLogin,
    /// Requests refused by a rate limit.
    RateLimited,
}

impl EventKind {
    /// Config name.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::WafBlock => "waf_block",
            EventKind::Scan => "scan",
            EventKind::FailedLogin => "failed_login",
            EventKind::RateLimited => "rate_limited",
        }
    }

    /// Parses a config name.
    pub fn parse(s: &str) -> Option<EventKind> {
        Some(match s {
            "waf_block" => EventKind::WafBlock,
            "scan" => EventKind::Scan,
            "failed_login" => EventKind::FailedLogin,
            "rate_limited" => EventKind::RateLimited,
            _ => return None,
        })
    }
}

/// One jail.
#[derive(Debug, Clone, PartialEq)]
pub struct JailRule {
    /// Name (shown as a ban's source).
    pub name: String,
    /// Events counted.
    pub event: EventKind,
    /// Events within `window` that trigger a ban (for `scan`: distinct paths).
    pub threshold: u32,
    /// The sliding window.
    pub window: Duration,
    /// From this many events the client must solve the challenge.
    pub soft_threshold: Option<u32>,
    /// First ban duration.
    pub ban: Duration,
    /// Longest ban after escalation.
    pub max_ban: Duration,
    /// Each repeat ban lasts this many times the previous one.
    pub escalation: u32,
}

impl JailRule {
    /// Ban duration for the `offences`-th ban (1-based): `ban ×
    /// escalation^(offences−1)`, capped at `max_ban`.
    pub fn ban_duration(&self, offences: u32) -> Duration {
        let mut d = self.ban;
        for _ in 1..offences.min(64) {
            d = d.saturating_mul(self.escalation.max(1));
            if d >= self.max_ban {
                return self.max_ban;
            }
        }
        d.min(self.max_ban)
    }
}

/// What recording one event led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Counted; below every threshold.
    Counted(u32),
    /// The soft threshold is reached: challenge the client.
    Suspect(u32),
    /// The threshold is reached: ban for this long (the `offences`-th ban).
    Ban {
        /// Ban duration (escalated).
        duration: Duration,
        /// How many bans this client has had within the repeat window.
        offences: u32,
    },
}

#[derive(Debug, Default)]
struct Track {
    /// (time ms, path hash) of recent events, oldest first.
    hits: VecDeque<(u64, u64)>,
}

/// Event tracking for all jails.
#[derive(Debug)]
pub struct Jails {
    tracks: Mutex<BoundedMap<(String, IpNet), Track>>,
    offenders: Mutex<BoundedMap<IpNet, (u32, u64)>>,
    suspects: Mutex<BoundedMap<IpNet, u64>>,
    suspects_len: std::sync::atomic::AtomicUsize,
}

impl Default for Jails {
    fn default() -> Self {
        Jails::with_caps(MAX_TRACKED, MAX_OFFENDERS, MAX_SUSPECTS)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Jails {
    /// Tables with explicit capacities.
    pub fn with_caps(tracked: usize, offenders: usize, suspects: usize) -> Jails {
        Jails {
            tracks: Mutex::new(BoundedMap::new(tracked)),
            offenders: Mutex::new(BoundedMap::new(offenders)),
            suspects: Mutex::new(BoundedMap::new(suspects)),
            suspects_len: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Records one event of `rule` for `who` at `now_ms`. `path_hash`
    /// distinguishes paths for `scan` jails (the same path twice counts
    /// once). `repeat_window` is how long past bans count for escalation.
    pub fn record(
        &self,
        rule: &JailRule,
        who: IpNet,
        now_ms: u64,
        path_hash: u64,
        repeat_window: Duration,
    ) -> Outcome {
        let window = ms(rule.window);
        let count = {
            let mut t = lock(&self.tracks);
            let track = t.get_or_insert_with((rule.name.clone(), who), Track::default);
            while track
                .hits
                .front()
                .is_some_and(|(t0, _)| now_ms.saturating_sub(*t0) >= window)
            {
                track.hits.pop_front();
            }
            let dup =
                rule.event == EventKind::Scan && track.hits.iter().any(|(_, h)| *h == path_hash);
            if !dup {
                track.hits.push_back((now_ms, path_hash));
            }
            while track.hits.len() > rule.threshold as usize {
                track.hits.pop_front();
            }
            let n = track.hits.len() as u32;
            if n >= rule.threshold {
                track.hits.clear();
            }
            n
        };
        if count >= rule.threshold {
            let offences = {
                let mut o = lock(&self.offenders);
                let e = o.get_or_insert_with(who, || (0, now_ms));
                if now_ms.saturating_sub(e.1) >= ms(repeat_window) {
                    e.0 = 0;
                }
                e.0 = e.0.saturating_add(1);
                e.1 = now_ms;
                e.0
            };
            self.clear_suspect(who);
            return Outcome::Ban {
                duration: rule.ban_duration(offences),
                offences,
            };
        }
        if rule.soft_threshold.is_some_and(|s| count >= s) {
            let mut s = lock(&self.suspects);
            s.insert(who, now_ms.saturating_add(window));
            self.suspects_len
                .store(s.len(), std::sync::atomic::Ordering::Relaxed);
            return Outcome::Suspect(count);
        }
        Outcome::Counted(count)
    }

    /// True when `who` crossed a soft threshold recently and must solve the
    /// challenge.
    pub fn is_suspect(&self, who: IpNet, now_ms: u64) -> bool {
        if self.suspects_len.load(std::sync::atomic::Ordering::Relaxed) == 0 {
            return false;
        }
        lock(&self.suspects)
            .get(&who)
            .is_some_and(|until| now_ms < *until)
    }

    /// Flags `who` as a suspect until `until_ms` (a soft threshold crossed
    /// in a counter kept elsewhere, e.g. the shared backend).
    pub fn mark_suspect(&self, who: IpNet, until_ms: u64) {
        let mut s = lock(&self.suspects);
        s.insert(who, until_ms);
        self.suspects_len
            .store(s.len(), std::sync::atomic::Ordering::Relaxed);
    }

    /// Forgets the suspicion (after a solved challenge or a ban).
    pub fn clear_suspect(&self, who: IpNet) {
        let mut s = lock(&self.suspects);
        s.remove(&who);
        self.suspects_len
            .store(s.len(), std::sync::atomic::Ordering::Relaxed);
    }

    /// Forgets everything counted about `who` (a manual unban).
    pub fn forgive(&self, who: IpNet) {
        lock(&self.tracks).retain(|(_, n), _| *n != who);
        lock(&self.offenders).remove(&who);
        self.clear_suspect(who);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(event: EventKind, threshold: u32) -> JailRule {
        JailRule {
            name: "j".into(),
            event,
            threshold,
            window: Duration::from_secs(60),
            soft_threshold: None,
            ban: Duration::from_secs(600),
            max_ban: Duration::from_secs(3600),
            escalation: 2,
        }
    }

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn scan_counts_distinct_paths_within_the_window() {
        let j = Jails::default();
        let r = rule(EventKind::Scan, 3);
        let who: IpNet = "192.0.2.1".parse().unwrap();
        assert_eq!(j.record(&r, who, 0, 1, DAY), Outcome::Counted(1));
        assert_eq!(
            j.record(&r, who, 1, 1, DAY),
            Outcome::Counted(1),
            "same path"
        );
        assert_eq!(j.record(&r, who, 2, 2, DAY), Outcome::Counted(2));
        // The first event leaves the window.
        assert_eq!(j.record(&r, who, 60_000, 3, DAY), Outcome::Counted(2));
        assert_eq!(
            j.record(&r, who, 60_001, 4, DAY),
            Outcome::Ban {
                duration: Duration::from_secs(600),
                offences: 1
            }
        );
        // Counting restarts after a ban.
        assert_eq!(j.record(&r, who, 60_002, 5, DAY), Outcome::Counted(1));
    }

    #[test]
    fn repeat_offenders_get_longer_bans_up_to_the_cap() {
        let j = Jails::default();
        let r = rule(EventKind::WafBlock, 1);
        let who: IpNet = "192.0.2.1".parse().unwrap();
        let d: Vec<u64> = (0..5)
            .map(|i| match j.record(&r, who, i, 0, DAY) {
                Outcome::Ban { duration, .. } => duration.as_secs(),
                o => panic!("{o:?}"),
            })
            .collect();
        assert_eq!(d, [600, 1200, 2400, 3600, 3600]);
        // After the repeat window, the count starts again.
        match j.record(&r, who, 10 + 86_400_000, 0, DAY) {
            Outcome::Ban { offences, .. } => assert_eq!(offences, 1),
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn soft_threshold_flags_a_suspect() {
        let j = Jails::default();
        let mut r = rule(EventKind::FailedLogin, 5);
        r.soft_threshold = Some(2);
        let who: IpNet = "2001:db8::/64".parse().unwrap();
        assert!(!j.is_suspect(who, 0));
        j.record(&r, who, 0, 0, DAY);
        assert!(!j.is_suspect(who, 0));
        assert_eq!(j.record(&r, who, 1, 0, DAY), Outcome::Suspect(2));
        assert!(j.is_suspect(who, 2));
        assert!(!j.is_suspect(who, 60_002), "suspicion lasts one window");
        j.clear_suspect(who);
        assert!(!j.is_suspect(who, 2));
    }

    #[test]
    fn memory_is_bounded_under_a_flood_of_addresses() {
        let j = Jails::with_caps(100, 100, 100);
        let r = rule(EventKind::Scan, 50);
        for i in 0..10_000u32 {
            let who = IpNet::host(std::net::IpAddr::V4(i.into()));
            j.record(&r, who, 0, u64::from(i), DAY);
        }
        assert!(lock(&j.tracks).len() <= 100);
    }
}
