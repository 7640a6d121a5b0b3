//! Value types shared by every backend: time, quotas, rate decisions, bans
//! and IP prefixes.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Microseconds since the UNIX epoch. Every operation takes the caller's
/// `now` so one request reads the clock once and tests control time.
/// Microseconds (not nanoseconds) keep values below 2^53, so Redis' Lua
/// (doubles) computes GCRA exactly.
pub type Micros = u64;

/// The current wall-clock time in [`Micros`].
pub fn now_micros() -> Micros {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Converts a duration to whole microseconds, saturating.
pub(crate) fn dur_us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Longest key accepted, in bytes. Default 512. Bounds the memory one entry
/// costs when keys embed client-controlled values (header values, user names).
pub const MAX_KEY_LEN: usize = 512;

/// Largest value accepted by the key/value operations, in bytes. Default
/// 64 KiB: sessions and user records are far smaller; bounds what one entry
/// can cost.
pub const MAX_VALUE_LEN: usize = 64 * 1024;

/// Longest ban reason or jail name, in bytes. Default 256: bounds the size of
/// the ban table and of every pub/sub message.
pub const MAX_BAN_TEXT: usize = 256;

pub(crate) fn check_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::InvalidInput("empty key".into()));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(Error::InvalidInput(format!(
            "key of {} bytes exceeds MAX_KEY_LEN ({MAX_KEY_LEN})",
            key.len()
        )));
    }
    Ok(())
}

pub(crate) fn check_value(value: &[u8]) -> Result<()> {
    if value.len() > MAX_VALUE_LEN {
        return Err(Error::InvalidInput(format!(
            "value of {} bytes exceeds MAX_VALUE_LEN ({MAX_VALUE_LEN})",
            value.len()
        )));
    }
    Ok(())
}

/// A GCRA rate limit: `rate` requests per `period`, with up to `burst`
/// requests accepted at once. Over a long window `W` a key gets at most
/// `burst + W * rate / period` requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    /// Sustained requests per `period` (at least 1).
    pub rate: u32,
    /// The period `rate` is counted over.
    pub period: Duration,
    /// Requests accepted back to back from a fresh state (at least 1).
    pub burst: u32,
}

impl Quota {
    /// `rate` requests per second with `burst`.
    pub fn per_second(rate: u32, burst: u32) -> Quota {
        Quota {
            rate,
            period: Duration::from_secs(1),
            burst,
        }
    }

    /// `rate` requests per minute with `burst`.
    pub fn per_minute(rate: u32, burst: u32) -> Quota {
        Quota {
            rate,
            period: Duration::from_secs(60),
            burst,
        }
    }

    /// The GCRA emission interval `T` in microseconds (period / rate).
    pub fn interval_us(&self) -> u64 {
        dur_us(self.period) / u64::from(self.rate.max(1))
    }

    pub(crate) fn validate(&self, cost: u32) -> Result<()> {
        if self.rate == 0 || self.burst == 0 {
            return Err(Error::InvalidInput(
                "quota rate and burst must be at least 1".into(),
            ));
        }
        if self.interval_us() == 0 {
            return Err(Error::InvalidInput(
                "quota finer than one request per microsecond".into(),
            ));
        }
        if cost == 0 || cost > self.burst {
            return Err(Error::InvalidInput(format!(
                "cost {cost} must be between 1 and the burst ({})",
                self.burst
            )));
        }
        Ok(())
    }
}

/// The answer of a rate-limit check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateDecision {
    /// Whether the request fits the budget (and was counted).
    pub allowed: bool,
    /// The quota's burst, for the `RateLimit-Limit` header.
    pub limit: u32,
    /// Requests still accepted right now (`RateLimit-Remaining`).
    pub remaining: u32,
    /// When denied: how long until this request would fit (`Retry-After`).
    /// Zero when allowed.
    pub retry_after: Duration,
    /// How long until the full burst is available again (`RateLimit-Reset`).
    pub reset_after: Duration,
    /// True when the backend failed and the configured failure mode decided
    /// (fail open, fail closed, or the node-local fallback).
    pub degraded: bool,
}

/// An IP network: an address with its host bits cleared and a prefix length.
/// A single host is `/32` (IPv4) or `/128` (IPv6). Written `addr/len`; a bare
/// address parses as a host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpPrefix {
    addr: IpAddr,
    len: u8,
}

impl IpPrefix {
    /// The network of `addr` with `len` prefix bits (host bits are cleared).
    pub fn new(addr: IpAddr, len: u8) -> Result<IpPrefix> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if len > max {
            return Err(Error::InvalidInput(format!(
                "prefix length {len} exceeds /{max}"
            )));
        }
        Ok(IpPrefix {
            addr: mask(addr, len),
            len,
        })
    }

    /// The single-host prefix of `addr`. An IPv4-mapped IPv6 address
    /// (`::ffff:a.b.c.d`) becomes the IPv4 host, so bans match either form.
    pub fn host(addr: IpAddr) -> IpPrefix {
        let addr = canonical(addr);
        IpPrefix {
            addr,
            len: if addr.is_ipv4() { 32 } else { 128 },
        }
    }

    /// The network address (host bits zero).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    /// Whether `ip` lies in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        ip.is_ipv4() == self.addr.is_ipv4() && mask(ip, self.len) == self.addr
    }
}

/// Maps `::ffff:a.b.c.d` to `a.b.c.d`: dual-stack sockets report IPv4 peers
/// that way, and a ban on the IPv4 address must still match.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

pub(crate) fn mask(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len.min(32)))
            };
            IpAddr::V4(Ipv4Addr::from(bits & m))
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len.min(128)))
            };
            IpAddr::V6(Ipv6Addr::from(bits & m))
        }
    }
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for IpPrefix {
    type Err = Error;

    fn from_str(s: &str) -> Result<IpPrefix> {
        let s = s.trim();
        let bad = || Error::InvalidInput(format!("not an IP address or CIDR prefix: {s:?}"));
        match s.split_once('/') {
            None => s.parse::<IpAddr>().map(IpPrefix::host).map_err(|_| bad()),
            Some((a, l)) => {
                let addr: IpAddr = a.parse().map_err(|_| bad())?;
                if l.is_empty() || l.len() > 3 || !l.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                let len: u8 = l.parse().map_err(|_| bad())?;
                IpPrefix::new(addr, len)
            }
        }
    }
}

impl Serialize for IpPrefix {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IpPrefix {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A ban: every address in `target` is refused until `expires_us`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ban {
    /// The banned address or network (shield bans an IPv6 client's /64).
    pub target: IpPrefix,
    /// Why, for operators (`"14 distinct 404s in 60s"`); at most
    /// [`MAX_BAN_TEXT`] bytes.
    pub reason: String,
    /// The jail that banned (`"scan"`, `"waf"`, `"manual"`); at most
    /// [`MAX_BAN_TEXT`] bytes.
    pub jail: String,
    /// When the ban was made.
    pub created_us: Micros,
    /// When it ends; `None` = until deleted.
    pub expires_us: Option<Micros>,
    /// How many times this target has been banned (1 for the first), so
    /// shield can escalate durations for repeat offenders.
    pub offences: u32,
}

impl Ban {
    /// Whether the ban still applies at `now`.
    pub fn active_at(&self, now: Micros) -> bool {
        self.expires_us.is_none_or(|e| e > now)
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.reason.len() > MAX_BAN_TEXT || self.jail.len() > MAX_BAN_TEXT {
            return Err(Error::InvalidInput(format!(
                "ban reason and jail are limited to MAX_BAN_TEXT ({MAX_BAN_TEXT}) bytes"
            )));
        }
        Ok(())
    }
}
