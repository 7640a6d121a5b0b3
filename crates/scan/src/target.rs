//! Scan targets given as CIDR ranges (`192.0.2.0/28`, `2001:db8::/124`):
//! expanded into the host addresses to scan, bounded so a typo such as
//! `10.0.0.0/8` cannot start a sixteen-million-host scan.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::Error;

/// Fixed 4096: most hosts one CIDR target may expand to (a /20 of IPv4, a
/// /116 of IPv6). Bounds the work and memory of a single command; split
/// larger ranges into several runs on purpose.
pub const MAX_CIDR_HOSTS: u128 = 4096;

/// `Some(hosts)` when `spec` is a CIDR range, `None` for a single host or
/// name. IPv4 ranges up to /30 leave out the network and broadcast
/// addresses; /31 and /32 (RFC 3021) and IPv6 ranges keep every address.
pub fn expand_cidr(spec: &str) -> Result<Option<Vec<IpAddr>>, Error> {
    let Some((addr, len)) = spec.split_once('/') else {
        return Ok(None);
    };
    let bad = |why: &str| Error::Resolve(format!("{spec}: {why}"));
    let addr: IpAddr = addr
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| bad("not an IP address before the '/'"))?;
    let len: u32 = len
        .parse()
        .map_err(|_| bad("the prefix length is not a number"))?;
    let bits = if addr.is_ipv4() { 32 } else { 128 };
    if len > bits {
        return Err(bad(&format!("prefix length above /{bits}")));
    }
    let size: u128 = if bits - len >= 128 {
        u128::MAX
    } else {
        1u128 << (bits - len)
    };
    let usable = if addr.is_ipv4() && size >= 4 {
        size - 2
    } else {
        size
    };
    if usable > MAX_CIDR_HOSTS {
        return Err(bad(&format!(
            "{usable} hosts, more than the {MAX_CIDR_HOSTS} one scan covers; split the range"
        )));
    }
    let hosts = match addr {
        IpAddr::V4(v4) => {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            let base = u32::from(v4) & mask;
            let (first, last) = if size >= 4 {
                (1, size - 2)
            } else {
                (0, size - 1)
            };
            (first..=last)
                .map(|i| IpAddr::V4(Ipv4Addr::from(base.wrapping_add(i as u32))))
                .collect()
        }
        IpAddr::V6(v6) => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            let base = u128::from(v6) & mask;
            (0..size)
                .map(|i| IpAddr::V6(Ipv6Addr::from(base.wrapping_add(i))))
                .collect()
        }
    };
    Ok(Some(hosts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(s: &str) -> Vec<String> {
        expand_cidr(s)
            .unwrap()
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn ipv4_ranges_skip_network_and_broadcast() {
        assert_eq!(hosts("127.0.0.0/30"), ["127.0.0.1", "127.0.0.2"]);
        assert_eq!(hosts("192.0.2.9/29").len(), 6);
        assert_eq!(hosts("192.0.2.9/29")[0], "192.0.2.9");
        assert_eq!(hosts("192.0.2.0/31"), ["192.0.2.0", "192.0.2.1"]);
        assert_eq!(hosts("192.0.2.7/32"), ["192.0.2.7"]);
        assert_eq!(hosts("10.1.0.0/20").len(), 4094);
    }

    #[test]
    fn ipv6_ranges_keep_every_address() {
        assert_eq!(hosts("[::1]/128"), ["::1"]);
        assert_eq!(
            hosts("2001:db8::5/126"),
            ["2001:db8::4", "2001:db8::5", "2001:db8::6", "2001:db8::7"]
        );
    }

    #[test]
    fn single_hosts_are_not_ranges_and_bad_ranges_say_why() {
        assert!(expand_cidr("example.com").unwrap().is_none());
        assert!(expand_cidr("::1").unwrap().is_none());
        for (spec, why) in [
            ("10.0.0.0/8", "split the range"),
            ("::/0", "split the range"),
            ("10.0.0.0/33", "above /32"),
            ("10.0.0.0/x", "not a number"),
            ("host/24", "not an IP address"),
        ] {
            let e = expand_cidr(spec).unwrap_err().to_string();
            assert!(e.contains(why), "{spec}: {e}");
        }
    }
}
