//! The generic cell rate algorithm (GCRA): a rate limit as one number per
//! key, the theoretical arrival time (TAT) of the next request.
//!
//! A limit of `rate` requests per `period` with `burst` is an emission
//! interval `T = period / rate` and a tolerance of `burst × T`. A request at
//! `now` is allowed when `max(TAT, now) + T − burst × T ≤ now`; then the TAT
//! moves to `max(TAT, now) + T`. Equivalent to a token bucket of `burst`
//! tokens refilled every `T`, without a timer or a second number. Times are
//! microseconds (wall clock, so several nodes agree through a shared store).

use std::time::Duration;

/// A rate limit: `burst` requests at once, refilled at one per `interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Emission interval in microseconds (period / rate), at least 1.
    pub interval_us: u64,
    /// Requests allowed at once, at least 1.
    pub burst: u32,
}

impl Quota {
    /// `rate` requests per `period`, with `burst`.
    pub fn new(rate: u32, period: Duration, burst: u32) -> Quota {
        let per = period.as_micros() / u128::from(rate.max(1));
        Quota {
            interval_us: u64::try_from(per).unwrap_or(u64::MAX).max(1),
            burst: burst.max(1),
        }
    }

    /// The tolerance: `burst × interval`.
    pub fn tolerance_us(&self) -> u64 {
        self.interval_us.saturating_mul(u64::from(self.burst))
    }

    /// Requests per second (for the `RateLimit-Policy` header and docs).
    pub fn per_second(&self) -> f64 {
        1e6 / self.interval_us as f64
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// The request fits the budget.
    pub allowed: bool,
    /// Requests still allowed right now after this one.
    pub remaining: u32,
    /// Microseconds until the next request would be allowed (0 when allowed).
    pub retry_after_us: u64,
    /// Microseconds until the budget is full again.
    pub reset_us: u64,
    /// The TAT to store (unchanged when refused).
    pub new_tat: u64,
}

/// One GCRA step: the decision for a request at `now` given the stored TAT
/// (`None`: never seen). The caller stores `new_tat` atomically with the read.
pub fn check(quota: Quota, tat: Option<u64>, now: u64) -> Decision {
    let t = quota.interval_us;
    let tau = quota.tolerance_us();
    let tat = tat.unwrap_or(now).max(now);
    let new_tat = tat.saturating_add(t);
    let allow_at = new_tat.saturating_sub(tau);
    if now < allow_at {
        return Decision {
            allowed: false,
            remaining: 0,
            retry_after_us: allow_at - now,
            reset_us: tat - now,
            new_tat: tat,
        };
    }
    let headroom = tau.saturating_sub(new_tat - now);
    Decision {
        allowed: true,
        remaining: u32::try_from(headroom / t).unwrap_or(u32::MAX),
        retry_after_us: 0,
        reset_us: new_tat - now,
        new_tat,
    }
}

/// Microseconds rounded up to whole seconds, at least 1 (header values).
pub fn ceil_secs(us: u64) -> u64 {
    us.div_ceil(1_000_000).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(q: Quota, times: &[u64]) -> Vec<bool> {
        let mut tat = None;
        times
            .iter()
            .map(|&now| {
                let d = check(q, tat, now);
                if d.allowed {
                    tat = Some(d.new_tat);
                }
                d.allowed
            })
            .collect()
    }

    #[test]
    fn burst_then_steady_rate() {
        // 2 per second, burst 3.
        let q = Quota::new(2, Duration::from_secs(1), 3);
        assert_eq!(q.interval_us, 500_000);
        let r = run(q, &[0, 0, 0, 0, 499_999, 500_000, 500_001, 1_000_000]);
        assert_eq!(r, [true, true, true, false, false, true, false, true]);
    }

    #[test]
    fn remaining_and_retry_after() {
        let q = Quota::new(1, Duration::from_secs(10), 2);
        let d = check(q, None, 1_000);
        assert!(d.allowed);
        assert_eq!(d.remaining, 1);
        assert_eq!(d.reset_us, 10_000_000);
        let d2 = check(q, Some(d.new_tat), 1_000);
        assert!(d2.allowed);
        assert_eq!(d2.remaining, 0);
        let d3 = check(q, Some(d2.new_tat), 1_000);
        assert!(!d3.allowed);
        assert_eq!(d3.retry_after_us, 10_000_000);
        assert_eq!(ceil_secs(d3.retry_after_us), 10);
        assert_eq!(ceil_secs(1), 1);
    }

    #[test]
    fn long_idle_does_not_bank_more_than_the_burst() {
        let q = Quota::new(10, Duration::from_secs(1), 5);
        let t = 3_600_000_000;
        let r = run(q, &[0, t, t, t, t, t, t]);
        assert_eq!(r, [true, true, true, true, true, true, false]);
    }

    #[test]
    fn allowed_count_over_time_is_burst_plus_rate() {
        // Hammer every millisecond for 10 s at 5/s burst 7: 7 + 5*10 (±1).
        let q = Quota::new(5, Duration::from_secs(1), 7);
        let times: Vec<u64> = (0..10_000).map(|ms| ms * 1000).collect();
        let n = run(q, &times).iter().filter(|a| **a).count();
        assert!((56..=57).contains(&n), "{n}");
    }
}
