//! `@ipMatch`: true when the input is an IP address inside one of the listed
//! addresses or networks.
//!
//! Argument: comma-separated IPv4/IPv6 addresses and CIDR networks:
//! `127.0.0.1,10.0.0.0/8,::1,2001:db8::/32`. An entry holding `:` is IPv6,
//! otherwise IPv4. The input is parsed strictly (`inet_pton` rules: no
//! leading zeros in IPv4 octets, no white space, no zone id); an input that
//! is not an address never matches. IPv4 inputs are compared with IPv4
//! entries only and IPv6 inputs with IPv6 entries only, so
//! `::ffff:10.0.0.1` does not match `10.0.0.0/8`.
//!
//! ```text
//! SecRule REMOTE_ADDR "@ipMatch 127.0.0.1,::1" "id:10,pass,nolog,ctl:ruleEngine=Off"
//! ```
//!
//! Differences from ModSecurity v3: white space around entries is trimmed
//! (ModSecurity fails to parse `1.2.3.4, 5.6.7.8`), and host bits set in a
//! network (`10.1.2.3/8`) are ignored as ModSecurity does. Like ModSecurity,
//! a `/0` prefix is refused.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{Operator, OperatorContext};

/// A set of IPv4 and IPv6 networks, stored as sorted, merged, inclusive
/// ranges searched by bisection: lookups are O(log n) for the thousands of
/// entries an `@ipMatchFromFile` list may hold.
#[derive(Debug, Default)]
pub(crate) struct IpSet {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

/// Sorts and merges overlapping or adjacent ranges.
fn normalise<T: Copy + Ord + num_like::Step>(ranges: &mut Vec<(T, T)>) {
    ranges.sort_unstable();
    let mut merged: Vec<(T, T)> = Vec::with_capacity(ranges.len());
    for &(start, end) in ranges.iter() {
        if let Some(last) = merged.last_mut() {
            if start <= last.1 || T::next(last.1) == Some(start) {
                if end > last.1 {
                    last.1 = end;
                }
                continue;
            }
        }
        merged.push((start, end));
    }
    *ranges = merged;
}

mod num_like {
    /// Successor without overflow, for merging adjacent ranges.
    pub(crate) trait Step: Sized {
        fn next(self) -> Option<Self>;
    }
    impl Step for u32 {
        fn next(self) -> Option<u32> {
            self.checked_add(1)
        }
    }
    impl Step for u128 {
        fn next(self) -> Option<u128> {
            self.checked_add(1)
        }
    }
}

fn contains<T: Copy + Ord>(ranges: &[(T, T)], value: T) -> bool {
    let idx = ranges.partition_point(|&(start, _)| start <= value);
    idx > 0 && value <= ranges[idx - 1].1
}

/// Parses the prefix length after `/` (`max` is 32 or 128).
fn parse_prefix(text: &str, entry: &str, max: u32) -> Result<u32, String> {
    let bits: u32 = text
        .parse()
        .map_err(|_| format!("invalid network {entry:?}: bad prefix length"))?;
    if bits == 0 || bits > max {
        return Err(format!(
            "invalid network {entry:?}: prefix length must be 1..={max}"
        ));
    }
    Ok(bits)
}

impl IpSet {
    /// Adds one address or network (`1.2.3.4`, `10.0.0.0/8`, `::1`, `fe80::/10`).
    pub(crate) fn add(&mut self, entry: &str) -> Result<(), String> {
        let (addr, prefix) = match entry.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (entry, None),
        };
        if entry.contains(':') {
            let ip: Ipv6Addr = addr
                .parse()
                .map_err(|_| format!("invalid IPv6 address or network {entry:?}"))?;
            let bits = match prefix {
                Some(p) => parse_prefix(p, entry, 128)?,
                None => 128,
            };
            let host_mask = u128::MAX.checked_shr(bits).unwrap_or(0);
            let start = u128::from(ip) & !host_mask;
            self.v6.push((start, start | host_mask));
        } else {
            let ip: Ipv4Addr = addr
                .parse()
                .map_err(|_| format!("invalid IPv4 address or network {entry:?}"))?;
            let bits = match prefix {
                Some(p) => parse_prefix(p, entry, 32)?,
                None => 32,
            };
            let host_mask = u32::MAX.checked_shr(bits).unwrap_or(0);
            let start = u32::from(ip) & !host_mask;
            self.v4.push((start, start | host_mask));
        }
        Ok(())
    }

    /// Adds the comma-separated entries of `list`; empty entries are skipped.
    pub(crate) fn add_list(&mut self, list: &str) -> Result<(), String> {
        for entry in list.split(',') {
            let entry = entry.trim();
            if !entry.is_empty() {
                self.add(entry)?;
            }
        }
        Ok(())
    }

    /// Finishes building: sorts and merges the ranges.
    pub(crate) fn finish(&mut self) {
        normalise(&mut self.v4);
        normalise(&mut self.v6);
    }

    /// Whether the set holds no entry.
    pub(crate) fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// Whether `input` is an address inside the set.
    pub(crate) fn matches(&self, input: &[u8]) -> bool {
        let Ok(text) = std::str::from_utf8(input) else {
            return false;
        };
        if text.contains(':') {
            text.parse::<Ipv6Addr>()
                .is_ok_and(|ip| contains(&self.v6, u128::from(ip)))
        } else {
            text.parse::<Ipv4Addr>()
                .is_ok_and(|ip| contains(&self.v4, u32::from(ip)))
        }
    }
}

/// Compiled `@ipMatch`.
#[derive(Debug)]
pub(crate) struct IpMatch {
    set: IpSet,
}

impl IpMatch {
    pub(crate) fn new(argument: &str) -> Result<IpMatch, String> {
        let mut set = IpSet::default();
        set.add_list(argument)
            .map_err(|e| format!("@ipMatch: {e}"))?;
        if set.is_empty() {
            return Err("@ipMatch needs at least one address or network".into());
        }
        set.finish();
        Ok(IpMatch { set })
    }
}

impl Operator for IpMatch {
    fn evaluate(&self, input: &[u8], _ctx: &mut dyn OperatorContext) -> bool {
        self.set.matches(input)
    }
}
