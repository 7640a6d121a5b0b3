//! Brute-force regulation: failure counters per IP, per user and per
//! (user, IP), separately for passwords and TOTP codes, with exponential
//! back-off locks, all in the state store (shared by every node).
//!
//! Policy (see docs/identity.md):
//! * An **IP** that fails `ip_max_failures` times within `window_secs` is
//!   locked out for every user.
//! * A **user** that fails `user_max_failures` times (from any IPs) is
//!   locked — but only for IPs that are not *known good* for that user.
//!   An IP becomes known good for a user when a full login succeeds from it
//!   (kept `known_good_days`). So spamming alice's name from a botnet
//!   locks the botnet out, not alice at her usual desk.
//! * A **(user, IP)** pair that fails `user_max_failures` times is locked
//!   even when the IP is known good, so a known-good IP cannot guess freely.
//! * Each lock lasts `base_lock_secs × 2^(failures − threshold)`, capped at
//!   `max_lock_secs`. IPv6 clients are counted per /64.
//!
//! Password and TOTP failures use separate budgets, so TOTP guessing after
//! a stolen password is cut off on its own small budget.

use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use state::{Micros, Store};

use crate::error::{Error, Result};

/// Which factor failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Factor {
    /// The password.
    Password,
    /// A TOTP or recovery code.
    Totp,
}

impl Factor {
    fn tag(self) -> &'static str {
        match self {
            Factor::Password => "pw",
            Factor::Totp => "totp",
        }
    }
}

/// Brute-force thresholds and lock times.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BruteForceConfig {
    /// Failures per user (and per user+IP) before a lock (default 5).
    pub user_max_failures: u64,
    /// Failures per IP before a lock (default 20).
    pub ip_max_failures: u64,
    /// Counting window, seconds (default 900).
    pub window_secs: u64,
    /// First lock, seconds; doubles with each further failure (default 30).
    pub base_lock_secs: u64,
    /// Longest lock, seconds (default 900).
    pub max_lock_secs: u64,
    /// Days an IP stays known good for a user after a login (default 30).
    pub known_good_days: u64,
}

impl Default for BruteForceConfig {
    fn default() -> Self {
        BruteForceConfig {
            user_max_failures: 5,
            ip_max_failures: 20,
            window_secs: 900,
            base_lock_secs: 30,
            max_lock_secs: 900,
            known_good_days: 30,
        }
    }
}

/// The regulator.
#[derive(Clone, Debug)]
pub struct Regulator {
    store: Store,
    cfg: BruteForceConfig,
}

/// The counting key of an address: IPv4 as is, IPv6 by /64 (one host
/// usually owns a whole /64).
pub fn ip_bucket(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v) => v.to_string(),
        IpAddr::V6(v) => match v.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v.segments();
                format!("{:x}.{:x}.{:x}.{:x}/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

impl Regulator {
    /// A regulator over `store`.
    pub fn new(store: Store, cfg: BruteForceConfig) -> Regulator {
        Regulator { store, cfg }
    }

    fn keys(f: Factor, user: &str, ip: &str) -> [String; 3] {
        let t = f.tag();
        [
            format!("id:bf:{t}:ip:{ip}"),
            format!("id:bf:{t}:u:{user}"),
            format!("id:bf:{t}:ui:{user}|{ip}"),
        ]
    }

    async fn locked(&self, key: &str, now: Micros) -> Result<Option<Duration>> {
        let lk = format!("{key}:lock");
        Ok(match self.store.kv_get(&lk, now).await? {
            Some(v) => {
                let until = std::str::from_utf8(&v)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                    .unwrap_or(now + 1_000_000);
                Some(Duration::from_micros(until.saturating_sub(now).max(1)))
            }
            None => None,
        })
    }

    /// Whether `ip` is known good for `user`.
    pub async fn known_good(&self, user: &str, ip: IpAddr, now: Micros) -> Result<bool> {
        let k = format!("id:good:{user}|{}", ip_bucket(ip));
        Ok(self.store.kv_get(&k, now).await?.is_some())
    }

    /// Refuses with [`Error::Locked`] when an attempt on `f` for `user`
    /// from `ip` must not even be tried (call before hashing: a locked
    /// attempt costs no argon2 work).
    pub async fn check(&self, f: Factor, user: &str, ip: IpAddr, now: Micros) -> Result<()> {
        let b = ip_bucket(ip);
        let [kip, ku, kui] = Self::keys(f, user, &b);
        let mut worst: Option<Duration> = None;
        let mut note = |d: Option<Duration>| {
            if let Some(d) = d {
                worst = Some(worst.map_or(d, |w| w.max(d)));
            }
        };
        note(self.locked(&kip, now).await?);
        note(self.locked(&kui, now).await?);
        if let Some(d) = self.locked(&ku, now).await? {
            if !self.known_good(user, ip, now).await? {
                note(Some(d));
            }
        }
        match worst {
            Some(retry_after) => Err(Error::Locked { retry_after }),
            None => Ok(()),
        }
    }

    /// Counts a failure; returns the lock now in force for this client, if any.
    pub async fn record_failure(
        &self,
        f: Factor,
        user: &str,
        ip: IpAddr,
        now: Micros,
    ) -> Result<Option<Duration>> {
        let b = ip_bucket(ip);
        let [kip, ku, kui] = Self::keys(f, user, &b);
        let window = Duration::from_secs(self.cfg.window_secs.max(1));
        let mut mine = None;
        for (k, max, applies) in [
            (&kip, self.cfg.ip_max_failures, true),
            (&kui, self.cfg.user_max_failures, true),
            (
                &ku,
                self.cfg.user_max_failures,
                !self.known_good(user, ip, now).await?,
            ),
        ] {
            let n = self.store.incr(k, window, now).await?;
            if n >= max.max(1) {
                let exp = (n - max.max(1)).min(20) as u32;
                let secs = self
                    .cfg
                    .base_lock_secs
                    .saturating_mul(1u64 << exp)
                    .min(self.cfg.max_lock_secs)
                    .max(1);
                let until = now + secs * 1_000_000;
                self.store
                    .kv_set(
                        &format!("{k}:lock"),
                        until.to_string().as_bytes(),
                        Some(Duration::from_secs(secs)),
                        now,
                    )
                    .await?;
                if applies {
                    let d = Duration::from_secs(secs);
                    mine = Some(mine.map_or(d, |m: Duration| m.max(d)));
                }
            }
        }
        if mine.is_some() {
            tracing::warn!(target: "identity", user, ip = %ip, factor = f.tag(), "login locked after repeated failures");
        }
        Ok(mine)
    }

    /// Records a complete successful login: `ip` becomes known good for `user`.
    pub async fn record_success(&self, user: &str, ip: IpAddr, now: Micros) -> Result<()> {
        let k = format!("id:good:{user}|{}", ip_bucket(ip));
        let ttl = Duration::from_secs(self.cfg.known_good_days.saturating_mul(86400).max(1));
        self.store.kv_set(&k, b"1", Some(ttl), now).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Micros = 1_000_000;

    fn reg() -> Regulator {
        Regulator::new(
            Store::memory(&Default::default()),
            BruteForceConfig::default(),
        )
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn user_lock_with_backoff() {
        let r = reg();
        let t = 1_700_000_000 * S;
        let a = ip("203.0.113.7");
        for i in 0..4 {
            r.check(Factor::Password, "alice", a, t + i * S)
                .await
                .unwrap();
            assert!(r
                .record_failure(Factor::Password, "alice", a, t + i * S)
                .await
                .unwrap()
                .is_none());
        }
        let lock = r
            .record_failure(Factor::Password, "alice", a, t + 4 * S)
            .await
            .unwrap();
        assert_eq!(lock, Some(Duration::from_secs(30)));
        let e = r
            .check(Factor::Password, "alice", a, t + 5 * S)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Locked { .. }), "{e}");
        // Another failure doubles the lock.
        let lock = r
            .record_failure(Factor::Password, "alice", a, t + 6 * S)
            .await
            .unwrap();
        assert_eq!(lock, Some(Duration::from_secs(60)));
        // TOTP has its own budget.
        r.check(Factor::Totp, "alice", a, t + 7 * S).await.unwrap();
        // The lock lifts.
        r.check(Factor::Password, "alice", a, t + 70 * S)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn botnet_does_not_lock_out_known_good_ip() {
        let r = reg();
        let t = 1_700_000_000 * S;
        let home = ip("198.51.100.10");
        r.record_success("alice", home, t).await.unwrap();
        for i in 0..50u64 {
            let bot = IpAddr::from([192, 0, 2, (i % 250) as u8]);
            r.record_failure(Factor::Password, "alice", bot, t + S)
                .await
                .unwrap();
        }
        // Strangers are locked out of alice …
        assert!(r
            .check(Factor::Password, "alice", ip("192.0.2.200"), t + 2 * S)
            .await
            .is_err());
        // … alice at home is not.
        r.check(Factor::Password, "alice", home, t + 2 * S)
            .await
            .unwrap();
        // But home cannot guess freely either: its own (user, IP) budget.
        for _ in 0..5 {
            r.record_failure(Factor::Password, "alice", home, t + 3 * S)
                .await
                .unwrap();
        }
        assert!(r
            .check(Factor::Password, "alice", home, t + 4 * S)
            .await
            .is_err());
    }

    #[tokio::test]
    async fn ip_lock_covers_all_users_and_v6_slash64() {
        let r = reg();
        let t = 1_700_000_000 * S;
        for i in 0..20u64 {
            let v6: IpAddr = format!("2001:db8:1:2::{:x}", i + 1).parse().unwrap();
            r.record_failure(Factor::Password, &format!("user{i}"), v6, t)
                .await
                .unwrap();
        }
        let other: IpAddr = "2001:db8:1:2:ffff::1".parse().unwrap();
        assert!(r
            .check(Factor::Password, "fresh", other, t + S)
            .await
            .is_err());
        let elsewhere: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        r.check(Factor::Password, "fresh", elsewhere, t + S)
            .await
            .unwrap();
    }
}
