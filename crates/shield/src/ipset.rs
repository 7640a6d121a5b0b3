//! IP networks and sets of them: parsing (`1.2.3.4`, `10.0.0.0/8`, `::1`,
//! `2001:db8::/32`), list files (one entry per line, `#` comments) and fast
//! membership tests over sorted, merged ranges (binary search, no allocation).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::str::FromStr;

use crate::error::Error;

/// Fixed 1 MiB: size of one list file. Bounds memory and load time against a
/// mistaken path (a log file, a device) given as a list.
pub const MAX_LIST_FILE_BYTES: u64 = 1024 * 1024;

/// An address with a prefix length; the address is stored masked
/// (`10.1.2.3/8` is kept as `10.0.0.0/8`). IPv4-mapped IPv6 addresses
/// (`::ffff:1.2.3.4`) are treated as the IPv4 address they carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(into = "String")]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl From<IpNet> for String {
    fn from(n: IpNet) -> String {
        n.to_string()
    }
}

fn v4_mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

fn v6_mask(prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(prefix))
    }
}

impl IpNet {
    /// A network; `None` when the prefix is longer than the address.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<IpNet> {
        match addr.to_canonical() {
            IpAddr::V4(a) if prefix <= 32 => Some(IpNet {
                addr: IpAddr::V4(Ipv4Addr::from(u32::from(a) & v4_mask(prefix))),
                prefix,
            }),
            IpAddr::V6(a) if prefix <= 128 => Some(IpNet {
                addr: IpAddr::V6(Ipv6Addr::from(u128::from(a) & v6_mask(prefix))),
                prefix,
            }),
            _ => None,
        }
    }

    /// The single address (`/32` or `/128`).
    pub fn host(addr: IpAddr) -> IpNet {
        let addr = addr.to_canonical();
        let prefix = if addr.is_ipv4() { 32 } else { 128 };
        IpNet { addr, prefix }
    }

    /// The network of `addr` a ban covers: `/v4_prefix` for IPv4,
    /// `/v6_prefix` for IPv6 (default /64: one customer's allocation).
    pub fn ban_scope(addr: IpAddr, v4_prefix: u8, v6_prefix: u8) -> IpNet {
        let addr = addr.to_canonical();
        let p = if addr.is_ipv4() {
            v4_prefix.min(32)
        } else {
            v6_prefix.min(128)
        };
        IpNet::new(addr, p).unwrap_or(IpNet::host(addr))
    }

    /// The (masked) network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// True when `ip` is inside this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(a)) => u32::from(a) & v4_mask(self.prefix) == u32::from(n),
            (IpAddr::V6(n), IpAddr::V6(a)) => u128::from(a) & v6_mask(self.prefix) == u128::from(n),
            _ => false,
        }
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let full = if self.addr.is_ipv4() { 32 } else { 128 };
        if self.prefix == full {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix)
        }
    }
}

impl FromStr for IpNet {
    type Err = String;

    /// `addr` or `addr/prefix`. Host bits set under the prefix are an error
    /// (`10.0.0.1/8` is almost always a typo for a host or another prefix).
    fn from_str(s: &str) -> Result<IpNet, String> {
        let s = s.trim();
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("`{s}` is not an IP address or CIDR range"))?;
        let addr = addr.to_canonical();
        let full = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => full,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= full && !p.starts_with('+') => n,
                _ => return Err(format!("`{s}`: prefix length must be 0..={full}")),
            },
        };
        let net = IpNet::new(addr, prefix).ok_or_else(|| format!("`{s}`: bad prefix"))?;
        if net.addr != addr {
            return Err(format!(
                "`{s}` has host bits set: did you mean {net} (or a single address)?"
            ));
        }
        Ok(net)
    }
}

/// A set of networks with O(log n) membership tests: sorted, merged,
/// inclusive ranges per address family.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpSet {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
    count: usize,
}

fn merge<T: Ord + Copy>(mut v: Vec<(T, T)>, next: impl Fn(T) -> Option<T>) -> Vec<(T, T)> {
    v.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(v.len());
    for (s, e) in v {
        if let Some(last) = out.last_mut() {
            // Overlapping or adjacent ranges become one.
            if s <= last.1 || next(last.1) == Some(s) {
                if e > last.1 {
                    last.1 = e;
                }
                continue;
            }
        }
        out.push((s, e));
    }
    out
}

impl IpSet {
    /// Builds the set from networks (duplicates and overlaps are merged).
    pub fn new(nets: impl IntoIterator<Item = IpNet>) -> IpSet {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        let mut count = 0;
        for n in nets {
            count += 1;
            match n.addr {
                IpAddr::V4(a) => {
                    let s = u32::from(a);
                    v4.push((s, s | !v4_mask(n.prefix)));
                }
                IpAddr::V6(a) => {
                    let s = u128::from(a);
                    v6.push((s, s | !v6_mask(n.prefix)));
                }
            }
        }
        IpSet {
            v4: merge(v4, |x: u32| x.checked_add(1)),
            v6: merge(v6, |x: u128| x.checked_add(1)),
            count,
        }
    }

    /// True when `ip` is in one of the networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        fn find<T: Ord + Copy>(v: &[(T, T)], x: T) -> bool {
            let i = v.partition_point(|r| r.0 <= x);
            i > 0 && v.get(i - 1).is_some_and(|r| x <= r.1)
        }
        match ip.to_canonical() {
            IpAddr::V4(a) => find(&self.v4, u32::from(a)),
            IpAddr::V6(a) => find(&self.v6, u128::from(a)),
        }
    }

    /// True when the set has no network.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// Number of entries it was built from (before merging).
    pub fn entries(&self) -> usize {
        self.count
    }
}

/// Parses list text: one address or CIDR per line; `#` starts a comment;
/// blank lines are ignored. `name` names the source in errors.
pub fn parse_list(text: &str, name: &str) -> Result<Vec<IpNet>, Error> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let entry = line.split('#').next().unwrap_or("").trim();
        if entry.is_empty() {
            continue;
        }
        let net = entry.parse::<IpNet>().map_err(|message| Error::List {
            file: name.to_string(),
            line: i + 1,
            message,
        })?;
        out.push(net);
    }
    Ok(out)
}

/// Reads and parses a list file (see [`parse_list`]).
pub fn load_list(path: &Path) -> Result<Vec<IpNet>, Error> {
    let name = path.display().to_string();
    let io = |e: std::io::Error| Error::ListRead {
        file: name.clone(),
        message: e.to_string(),
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.len() > MAX_LIST_FILE_BYTES {
        return Err(Error::ListRead {
            file: name,
            message: format!("larger than {MAX_LIST_FILE_BYTES} bytes"),
        });
    }
    let text = std::fs::read_to_string(path).map_err(io)?;
    parse_list(&text, &name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_addresses_and_ranges() {
        assert_eq!("1.2.3.4".parse::<IpNet>().unwrap().to_string(), "1.2.3.4");
        assert_eq!("10.0.0.0/8".parse::<IpNet>().unwrap().prefix(), 8);
        assert_eq!(
            "2001:db8::/32".parse::<IpNet>().unwrap().to_string(),
            "2001:db8::/32"
        );
        assert_eq!(
            "::ffff:1.2.3.4".parse::<IpNet>().unwrap().to_string(),
            "1.2.3.4"
        );
        for bad in [
            "1.2.3",
            "1.2.3.4/33",
            "::/129",
            "10.0.0.1/8",
            "x",
            "1.2.3.4/-1",
            "1.2.3.4/+8",
            "",
        ] {
            assert!(bad.parse::<IpNet>().is_err(), "{bad}");
        }
    }

    #[test]
    fn set_membership_across_families_and_edges() {
        let set = IpSet::new(
            ["10.0.0.0/8", "192.168.1.7", "2001:db8::/32", "0.0.0.0/32"]
                .iter()
                .map(|s| s.parse().unwrap()),
        );
        for yes in [
            "10.0.0.0",
            "10.255.255.255",
            "192.168.1.7",
            "2001:db8:ffff::1",
            "::ffff:10.1.1.1",
            "0.0.0.0",
        ] {
            assert!(set.contains(ip(yes)), "{yes}");
        }
        for no in [
            "11.0.0.0",
            "9.255.255.255",
            "192.168.1.8",
            "2001:db9::",
            "::1",
            "0.0.0.1",
        ] {
            assert!(!set.contains(ip(no)), "{no}");
        }
        let all = IpSet::new(["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()]);
        assert!(all.contains(ip("255.255.255.255")) && all.contains(ip("ffff::1")));
        assert!(!IpSet::default().contains(ip("1.1.1.1")));
    }

    #[test]
    fn overlapping_and_adjacent_ranges_merge() {
        let set = IpSet::new(
            ["10.0.0.0/25", "10.0.0.128/25", "10.0.0.5", "10.0.1.0/24"]
                .iter()
                .map(|s| s.parse().unwrap()),
        );
        assert_eq!(set.v4, vec![(0x0a00_0000, 0x0a00_01ff)]);
        assert_eq!(set.entries(), 4);
    }

    #[test]
    fn ban_scope_covers_the_ipv6_64() {
        let n = IpNet::ban_scope(ip("2001:db8:1:2:3:4:5:6"), 32, 64);
        assert_eq!(n.to_string(), "2001:db8:1:2::/64");
        assert!(n.contains(ip("2001:db8:1:2:ffff::1")));
        assert!(!n.contains(ip("2001:db8:1:3::1")));
        assert_eq!(
            IpNet::ban_scope(ip("1.2.3.4"), 32, 64).to_string(),
            "1.2.3.4"
        );
        assert_eq!(
            IpNet::ban_scope(ip("1.2.3.4"), 24, 64).to_string(),
            "1.2.3.0/24"
        );
    }

    #[test]
    fn list_errors_name_file_and_line() {
        let text = "# allow list\n10.0.0.0/8  # office\n\n  ::1\n10.0.0.300\n";
        let e = parse_list(text, "allow.txt").unwrap_err();
        assert_eq!(
            e.to_string(),
            "allow.txt:5: `10.0.0.300` is not an IP address or CIDR range"
        );
        let ok = parse_list(&text.replace("10.0.0.300", "# none"), "a").unwrap();
        assert_eq!(ok.len(), 2);
    }

    #[test]
    fn list_file_is_read_and_missing_file_is_an_error() {
        let dir = std::env::temp_dir().join(format!("shield-list-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("deny.txt");
        std::fs::write(&p, "203.0.113.0/24\n").unwrap();
        assert_eq!(load_list(&p).unwrap().len(), 1);
        let e = load_list(&dir.join("nope.txt")).unwrap_err();
        assert!(e.to_string().contains("nope.txt"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
