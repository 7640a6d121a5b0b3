//! Routing: exact host beats `*.` wildcard beats any host; within those the
//! longest path prefix wins; no match is a 404 that reaches no upstream.

// Test helpers: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

fn who(p: &Palisade, host: &str, path: &str) -> (u16, String) {
    let r = http_get(p.addr(), path, host);
    (r.status, r.header("x-upstream").unwrap_or("-").to_string())
}

#[test]
fn most_specific_route_wins() {
    let names = ["exact", "exactv2", "wild", "any", "api"];
    let ups: Vec<Upstream> = names.iter().map(|n| Upstream::start(n)).collect();
    let mut spec = ConfigSpec::proxy(&[ups[0].addr]);
    spec.upstreams = names
        .iter()
        .zip(&ups)
        .map(|(n, u)| UpstreamSpec::new(n, &[u.addr]))
        .collect();
    let r = |h: Option<&str>, p: &str, u: &str| (h.map(String::from), p.to_string(), u.to_string());
    // Listed least specific first, so file order cannot be what decides.
    spec.routes = vec![
        r(None, "/", "any"),
        r(None, "/api", "api"),
        r(Some("*.example"), "/", "wild"),
        r(Some("shop.example"), "/", "exact"),
        r(Some("shop.example"), "/api/v2", "exactv2"),
    ];
    let p = Palisade::start(&spec);

    let cases = [
        ("shop.example", "/x", "exact"),
        ("shop.example", "/api/v2/items", "exactv2"),
        // Host specificity comes before prefix length.
        ("shop.example", "/api/x", "exact"),
        ("a.example", "/api/x", "wild"),
        ("a.example", "/", "wild"),
        // The wildcard covers subdomains, not the apex.
        ("example", "/x", "any"),
        ("other.test", "/api/x", "api"),
        ("other.test", "/x", "any"),
        // Hosts compare without port and case-insensitively (RFC 9110 §4.2.3).
        ("shop.example:8080", "/x", "exact"),
        ("SHOP.Example", "/x", "exact"),
    ];
    for (host, path, want) in cases {
        assert_eq!(
            who(&p, host, path),
            (200, want.to_string()),
            "Host: {host}, path {path}"
        );
    }
}

#[test]
fn no_matching_route_gives_404_and_reaches_no_upstream() {
    let up = Upstream::start("only");
    let mut spec = ConfigSpec::proxy(&[up.addr]);
    spec.routes = vec![(Some("shop.example".into()), "/shop".into(), "app".into())];
    let p = Palisade::start(&spec);
    assert_eq!(who(&p, "shop.example", "/shop/1").0, 200);
    assert_eq!(who(&p, "shop.example", "/other").0, 404);
    assert_eq!(who(&p, "elsewhere.example", "/shop/1").0, 404);
    assert_eq!(up.request_count(), 1);
}

#[test]
fn absolute_form_target_routes_and_forwards_one_host() {
    // RFC 9112 §3.2.2: with an absolute-form target the authority in it is
    // the host, and Host is ignored. Whatever palisade routes on must be the
    // host the upstream sees, or host-based routing can be bypassed.
    let shop = Upstream::start("shop");
    let other = Upstream::start("other");
    let mut spec = ConfigSpec::proxy(&[shop.addr]);
    spec.upstreams = vec![
        UpstreamSpec::new("shop", &[shop.addr]),
        UpstreamSpec::new("other", &[other.addr]),
    ];
    spec.routes = vec![
        (Some("shop.example".into()), "/".into(), "shop".into()),
        (None, "/".into(), "other".into()),
    ];
    let p = Palisade::start(&spec);
    let r = roundtrip(
        p.addr(),
        b"GET http://shop.example/abs HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200, "{}", p.logs());
    assert_eq!(
        r.header("x-upstream"),
        Some("shop"),
        "routed on Host instead of the target"
    );
    let got = &shop.requests_to("/abs")[0];
    assert_eq!(got.header("host"), Some("shop.example"));
}
