//! The GCRA arithmetic, shared by the in-memory and SQLite backends (the
//! Redis Lua script in `redis.rs` mirrors it line by line).
//!
//! State per key is one number, the theoretical arrival time (TAT). With
//! emission interval `T = period / rate` and tolerance `tau = T * burst`, a
//! request of `cost` at `now` is allowed iff `max(TAT, now) + T*cost - tau <=
//! now`; then TAT becomes `max(TAT, now) + T*cost`. A key whose TAT is in the
//! past is indistinguishable from a fresh key, so the stored value may expire
//! at TAT.

use std::time::Duration;

use crate::types::{Micros, Quota, RateDecision};

/// Applies one GCRA step. Returns the decision and the new TAT to store
/// (`None` when denied: the state is unchanged). `quota` must be validated.
pub(crate) fn step(
    stored_tat: Option<Micros>,
    quota: &Quota,
    cost: u32,
    now: Micros,
) -> (RateDecision, Option<Micros>) {
    let t = quota.interval_us();
    let tau = t.saturating_mul(u64::from(quota.burst));
    let tat = stored_tat.unwrap_or(now).max(now);
    let new_tat = tat.saturating_add(t.saturating_mul(u64::from(cost)));
    // Compare `now + tau` with the TATs instead of subtracting tau: no
    // underflow near zero, and the same integer arithmetic as the Lua script.
    let horizon = now.saturating_add(tau);
    if horizon < new_tat {
        let remaining = horizon.saturating_sub(tat) / t;
        let d = RateDecision {
            allowed: false,
            limit: quota.burst,
            remaining: u32::try_from(remaining)
                .unwrap_or(u32::MAX)
                .min(quota.burst),
            retry_after: Duration::from_micros(new_tat - horizon),
            reset_after: Duration::from_micros(tat - now),
            degraded: false,
        };
        (d, None)
    } else {
        let remaining = (horizon - new_tat) / t;
        let d = RateDecision {
            allowed: true,
            limit: quota.burst,
            remaining: u32::try_from(remaining)
                .unwrap_or(u32::MAX)
                .min(quota.burst),
            retry_after: Duration::ZERO,
            reset_after: Duration::from_micros(new_tat - now),
            degraded: false,
        };
        (d, Some(new_tat))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_one_per_interval() {
        let q = Quota::per_second(10, 3); // T = 100 ms
        let now = 1_000_000_000;
        let mut tat = None;
        for expected_remaining in [2, 1, 0] {
            let (d, t) = step(tat, &q, 1, now);
            assert!(d.allowed);
            assert_eq!(d.remaining, expected_remaining);
            tat = t;
        }
        let (d, t) = step(tat, &q, 1, now);
        assert!(!d.allowed);
        assert_eq!(t, None);
        assert_eq!(d.retry_after, Duration::from_millis(100));
        assert_eq!(d.reset_after, Duration::from_millis(300));
        // 100 ms later exactly one more fits.
        let (d, t2) = step(tat, &q, 1, now + 100_000);
        assert!(d.allowed);
        assert_eq!(d.remaining, 0);
        let (d, _) = step(t2, &q, 1, now + 100_000);
        assert!(!d.allowed);
    }

    #[test]
    fn cost_counts_several_requests() {
        let q = Quota::per_second(10, 5);
        let (d, tat) = step(None, &q, 4, 0);
        assert!(d.allowed);
        assert_eq!(d.remaining, 1);
        let (d, _) = step(tat, &q, 2, 0);
        assert!(!d.allowed);
        assert_eq!(d.remaining, 1);
        assert_eq!(d.retry_after, Duration::from_millis(100));
    }

    #[test]
    fn idle_key_recovers_full_burst() {
        let q = Quota::per_second(2, 2);
        let (_, tat) = step(None, &q, 2, 0);
        let (d, _) = step(tat, &q, 1, 10_000_000);
        assert!(d.allowed);
        assert_eq!(d.remaining, 1);
    }
}
