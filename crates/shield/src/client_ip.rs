//! The client's real IP behind trusted reverse proxies.
//!
//! `X-Forwarded-For` and `Forwarded` (RFC 7239) are believed only when the
//! TCP peer is a trusted proxy; then the addresses are walked from the right
//! (the hop nearest to us first), skipping trusted proxies, and the first
//! untrusted address is the client. Anything unparsable on the way stops the
//! walk at the last trusted hop: a client cannot hide behind garbage.

use std::net::{IpAddr, SocketAddr};

use http::header::{HeaderMap, HeaderName};

use crate::ipset::IpSet;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// Fixed 64: forwarding hops examined per request. Bounds the CPU an attacker
/// spends us with a huge forged `X-Forwarded-For` chain.
pub const MAX_FORWARDED_HOPS: usize = 64;

/// Parses one `for=` value of RFC 7239: `1.2.3.4`, `"1.2.3.4:80"`,
/// `"[2001:db8::1]:443"`, `"[::1]"`. Obfuscated identifiers and `unknown`
/// give `None`.
fn parse_forwarded_node(v: &str) -> Option<IpAddr> {
    let v = v.trim().trim_matches('"');
    if let Some(rest) = v.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    if let Ok(ip) = v.parse::<IpAddr>() {
        return Some(ip);
    }
    v.parse::<SocketAddr>().ok().map(|s| s.ip())
}

/// The client address: `peer` unless it is a trusted proxy, in which case
/// the forwarding headers are walked right to left. `Forwarded` is used when
/// present, else `X-Forwarded-For`.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &IpSet) -> IpAddr {
    let peer = peer.to_canonical();
    if trusted.is_empty() || !trusted.contains(peer) {
        return peer;
    }
    let mut hops: Vec<Option<IpAddr>> = Vec::new();
    if headers.contains_key(&FORWARDED) {
        for v in headers.get_all(&FORWARDED) {
            let Ok(s) = v.to_str() else {
                hops.push(None);
                continue;
            };
            for element in s.split(',') {
                let mut found = None;
                for pair in element.split(';') {
                    if let Some((k, val)) = pair.split_once('=') {
                        if k.trim().eq_ignore_ascii_case("for") {
                            found = Some(parse_forwarded_node(val));
                        }
                    }
                }
                // An element without for= says nothing about that hop.
                hops.push(found.flatten());
            }
        }
    } else {
        for v in headers.get_all(&X_FORWARDED_FOR) {
            let Ok(s) = v.to_str() else {
                hops.push(None);
                continue;
            };
            for part in s.split(',') {
                hops.push(parse_forwarded_node(part));
            }
        }
    }
    let mut client = peer;
    for hop in hops.iter().rev().take(MAX_FORWARDED_HOPS) {
        match hop {
            Some(ip) => {
                client = ip.to_canonical();
                if !trusted.contains(client) {
                    return client;
                }
            }
            None => return client,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn set(v: &[&str]) -> IpSet {
        IpSet::new(v.iter().map(|s| s.parse().unwrap()))
    }

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, HeaderValue::from_static(v));
        }
        m
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peer_headers_are_ignored() {
        let t = set(&["10.0.0.0/8"]);
        let m = h(&[("x-forwarded-for", "1.1.1.1")]);
        assert_eq!(client_ip(ip("203.0.113.9"), &m, &t), ip("203.0.113.9"));
        assert_eq!(
            client_ip(ip("203.0.113.9"), &m, &IpSet::default()),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn xff_walks_from_the_right_skipping_trusted_hops() {
        let t = set(&["10.0.0.0/8"]);
        // spoofed, real client, inner proxy
        let m = h(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.0.0.2")]);
        assert_eq!(client_ip(ip("10.0.0.1"), &m, &t), ip("198.51.100.7"));
        // several header lines are one list
        let m = h(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "198.51.100.7"),
        ]);
        assert_eq!(client_ip(ip("10.0.0.1"), &m, &t), ip("198.51.100.7"));
        // garbage stops the walk at the last trusted hop
        let m = h(&[("x-forwarded-for", "1.2.3.4, garbage, 10.0.0.3")]);
        assert_eq!(client_ip(ip("10.0.0.1"), &m, &t), ip("10.0.0.3"));
        // no header: the proxy itself
        assert_eq!(
            client_ip(ip("10.0.0.1"), &HeaderMap::new(), &t),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn forwarded_rfc7239() {
        let t = set(&["10.0.0.0/8", "2001:db8::/32"]);
        let m = h(&[(
            "forwarded",
            "for=6.6.6.6, for=\"[2001:db8:cafe::17]:4711\";proto=https, for=10.1.1.1;by=10.0.0.1",
        )]);
        // 2001:db8:cafe::17 is trusted too, so the walk goes on to 6.6.6.6.
        assert_eq!(client_ip(ip("10.0.0.1"), &m, &t), ip("6.6.6.6"));
        let m = h(&[("forwarded", "for=\"198.51.100.1:80\";proto=http")]);
        assert_eq!(client_ip(ip("10.0.0.1"), &m, &t), ip("198.51.100.1"));
        let m = h(&[("forwarded", "for=unknown"), ("x-forwarded-for", "5.5.5.5")]);
        assert_eq!(client_ip(ip("10.0.0.1"), &m, &t), ip("10.0.0.1"));
    }
}
