//! Route table: host (exact > `*.` wildcard > any) then longest path prefix.
//! Built once per config so a lookup is a hash probe plus a short scan.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::HostMatch;

/// Routes of one host class, sorted by path prefix length, longest first.
type ByPrefix<T> = Vec<(Box<str>, Arc<T>)>;

/// A route table mapping (host, path) to values of type `T`.
#[derive(Debug)]
pub struct RouteTable<T> {
    exact: HashMap<Box<str>, ByPrefix<T>>,
    /// Sorted by suffix length, longest (most specific) first.
    wildcard: Vec<(Box<str>, ByPrefix<T>)>,
    any: ByPrefix<T>,
}

impl<T> Default for RouteTable<T> {
    fn default() -> Self {
        RouteTable {
            exact: HashMap::new(),
            wildcard: Vec::new(),
            any: Vec::new(),
        }
    }
}

fn by_prefix<T>(v: &[(Box<str>, Arc<T>)], path: &str) -> Option<Arc<T>> {
    // Sorted longest prefix first, so the first hit is the most specific.
    v.iter()
        .find(|(p, _)| path.starts_with(&**p))
        .map(|(_, t)| Arc::clone(t))
}

impl<T> RouteTable<T> {
    /// Builds the table from (host match, path prefix, value) entries.
    pub fn new(entries: impl IntoIterator<Item = (HostMatch, String, Arc<T>)>) -> Self {
        let mut t = RouteTable::default();
        for (host, prefix, val) in entries {
            let e = (prefix.into_boxed_str(), val);
            match host {
                HostMatch::Any => t.any.push(e),
                HostMatch::Exact(h) => t.exact.entry(h.into_boxed_str()).or_default().push(e),
                HostMatch::Wildcard(s) => match t.wildcard.iter_mut().find(|(w, _)| **w == *s) {
                    Some((_, v)) => v.push(e),
                    None => t.wildcard.push((s.into_boxed_str(), vec![e])),
                },
            }
        }
        let sort = |v: &mut ByPrefix<T>| v.sort_by_key(|e| std::cmp::Reverse(e.0.len()));
        sort(&mut t.any);
        t.exact.values_mut().for_each(sort);
        t.wildcard.iter_mut().for_each(|(_, v)| sort(v));
        t.wildcard.sort_by_key(|e| std::cmp::Reverse(e.0.len()));
        t
    }

    /// Finds the most specific route. `host` must be lowercase without port.
    pub fn lookup(&self, host: &str, path: &str) -> Option<Arc<T>> {
        if let Some(v) = self.exact.get(host) {
            if let Some(t) = by_prefix(v, path) {
                return Some(t);
            }
        }
        for (suffix, v) in &self.wildcard {
            if host.len() > suffix.len() && host.ends_with(&**suffix) {
                if let Some(t) = by_prefix(v, path) {
                    return Some(t);
                }
            }
        }
        by_prefix(&self.any, path)
    }
}

/// Normalizes a Host header / authority for routing: strips the port and a
/// trailing dot, lowercases. Borrows when no change is needed.
pub fn normalize_host(raw: &str) -> std::borrow::Cow<'_, str> {
    let no_port = if raw.starts_with('[') {
        // IPv6 literal: keep the brackets, drop the port after `]`.
        match raw.find(']') {
            Some(i) => &raw[..=i],
            None => raw,
        }
    } else {
        match raw.rfind(':') {
            Some(i) => &raw[..i],
            None => raw,
        }
    };
    let h = no_port.strip_suffix('.').unwrap_or(no_port);
    if h.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(h.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RouteTable<&'static str> {
        RouteTable::new([
            (HostMatch::Any, "/".into(), Arc::new("any-root")),
            (HostMatch::Any, "/api".into(), Arc::new("any-api")),
            (
                HostMatch::Wildcard(".example.com".into()),
                "/".into(),
                Arc::new("wild-root"),
            ),
            (
                HostMatch::Wildcard(".b.example.com".into()),
                "/".into(),
                Arc::new("wild-b"),
            ),
            (
                HostMatch::Exact("www.example.com".into()),
                "/static".into(),
                Arc::new("www-static"),
            ),
            (
                HostMatch::Exact("www.example.com".into()),
                "/static/img".into(),
                Arc::new("www-img"),
            ),
        ])
    }

    #[test]
    fn exact_beats_wildcard_beats_any() {
        let t = table();
        assert_eq!(
            *t.lookup("www.example.com", "/static/x").unwrap(),
            "www-static"
        );
        assert_eq!(
            *t.lookup("www.example.com", "/static/img/a.png").unwrap(),
            "www-img"
        );
        // Exact host without a matching prefix falls through to the wildcard.
        assert_eq!(*t.lookup("www.example.com", "/other").unwrap(), "wild-root");
        assert_eq!(*t.lookup("a.example.com", "/api").unwrap(), "wild-root");
        assert_eq!(*t.lookup("x.b.example.com", "/").unwrap(), "wild-b");
        // The wildcard does not match the bare domain.
        assert_eq!(*t.lookup("example.com", "/api/v1").unwrap(), "any-api");
        assert_eq!(*t.lookup("other.org", "/x").unwrap(), "any-root");
    }

    #[test]
    fn longest_prefix_wins_regardless_of_order() {
        let t = RouteTable::new([
            (HostMatch::Any, "/a".into(), Arc::new(1)),
            (HostMatch::Any, "/a/b/c".into(), Arc::new(3)),
            (HostMatch::Any, "/a/b".into(), Arc::new(2)),
        ]);
        assert_eq!(*t.lookup("h", "/a/b/c/d").unwrap(), 3);
        assert_eq!(*t.lookup("h", "/a/b/x").unwrap(), 2);
        assert_eq!(*t.lookup("h", "/a").unwrap(), 1);
        assert!(t.lookup("h", "/b").is_none());
    }

    #[test]
    fn host_normalization() {
        assert_eq!(normalize_host("Example.COM:8080"), "example.com");
        assert_eq!(normalize_host("example.com."), "example.com");
        assert_eq!(normalize_host("[::1]:8080"), "[::1]");
        assert!(matches!(
            normalize_host("plain.host"),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}
