//! Tests of the whole per-request and per-connection pipeline.

use super::*;
use std::time::Duration;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn set(v: &[&str]) -> IpSet {
    IpSet::new(v.iter().map(|s| net(s)))
}

fn shield(cfg: ShieldConfig) -> Shield {
    Shield::new(
        cfg,
        Store::memory(&state::MemoryConfig::default()),
        Some(b"test secret"),
    )
}

struct Req {
    method: Method,
    path: String,
    headers: HeaderMap,
    route: Option<String>,
}

impl Req {
    fn get(path: &str) -> Req {
        Req {
            method: Method::GET,
            path: path.into(),
            headers: HeaderMap::new(),
            route: Some("app".into()),
        }
    }
    fn info(&self, peer: &str) -> RequestInfo<'_> {
        RequestInfo {
            peer: ip(peer),
            method: &self.method,
            path: &self.path,
            headers: &self.headers,
            route: self.route.as_deref(),
            user: None,
        }
    }
}

fn kind(v: &Verdict) -> Option<Kind> {
    match v {
        Verdict::Answer { answer, .. } => Some(answer.kind),
        _ => None,
    }
}

fn t0() -> u64 {
    now_us()
}

#[tokio::test]
async fn allow_list_beats_deny_and_bans() {
    let s = shield(ShieldConfig {
        allow: set(&["192.0.2.10"]),
        deny: set(&["192.0.2.0/24"]),
        ..Default::default()
    });
    let r = Req::get("/");
    assert_eq!(
        kind(&s.check_at(&r.info("192.0.2.11"), t0()).await),
        Some(Kind::Denied)
    );
    assert!(matches!(
        s.check_at(&r.info("192.0.2.10"), t0()).await,
        Verdict::Pass { .. }
    ));
    s.add_ban(net("192.0.2.10"), None, "oops").await.unwrap();
    s.add_ban(net("198.51.100.0/24"), Some(Duration::from_secs(60)), "x")
        .await
        .unwrap();
    assert!(
        matches!(s.check(&r.info("192.0.2.10")).await, Verdict::Pass { .. }),
        "allow list first"
    );
    let v = s.check(&r.info("198.51.100.77")).await;
    assert_eq!(kind(&v), Some(Kind::Banned));
    if let Verdict::Answer { answer, .. } = v {
        let ra = answer
            .headers
            .iter()
            .find(|(n, _)| n == http::header::RETRY_AFTER)
            .unwrap();
        let secs: u64 = ra.1.to_str().unwrap().parse().unwrap();
        assert!((59..=60).contains(&secs), "{secs}");
    }
    assert!(
        s.admit(ip("198.51.100.77")).is_err(),
        "bans also refuse connections"
    );
    assert_eq!(
        s.remove_ban(net("198.51.100.77")).await.unwrap(),
        Some(net("198.51.100.0/24"))
    );
    assert!(matches!(
        s.check(&r.info("198.51.100.77")).await,
        Verdict::Pass { .. }
    ));
}

#[tokio::test]
async fn trusted_proxy_client_is_checked() {
    let s = shield(ShieldConfig {
        deny: set(&["203.0.113.5"]),
        trusted_proxies: set(&["10.0.0.0/8"]),
        ..Default::default()
    });
    let mut r = Req::get("/");
    r.headers
        .insert("x-forwarded-for", "203.0.113.5".parse().unwrap());
    assert_eq!(
        kind(&s.check_at(&r.info("10.1.1.1"), t0()).await),
        Some(Kind::Denied)
    );
    // From an untrusted peer the header is ignored.
    assert!(
        matches!(s.check_at(&r.info("192.0.2.1"), t0()).await, Verdict::Pass { client, .. } if client == ip("192.0.2.1"))
    );
}

#[tokio::test]
async fn rate_limit_answers_429_with_headers_and_feeds_jails() {
    let s = shield(ShieldConfig {
        rate_limits: vec![RateRule {
            name: "api".into(),
            key: RateKey::Ip,
            quota: Quota {
                rate: 1,
                period: Duration::from_secs(10),
                burst: 2,
            },
            routes: vec!["app".into()],
            path_prefix: "/api".into(),
            policy: http::HeaderValue::from_static("2;w=20"),
        }],
        jails: vec![JailRule {
            name: "hammer".into(),
            event: EventKind::RateLimited,
            threshold: 2,
            window: Duration::from_secs(60),
            soft_threshold: None,
            ban: Duration::from_secs(300),
            max_ban: Duration::from_secs(3600),
            escalation: 2,
        }],
        ..Default::default()
    });
    let r = Req::get("/api/x");
    let other = Req::get("/static");
    assert!(matches!(
        s.check_at(&r.info("192.0.2.1"), t0()).await,
        Verdict::Pass { .. }
    ));
    assert!(matches!(
        s.check_at(&r.info("192.0.2.1"), t0()).await,
        Verdict::Pass { .. }
    ));
    let v = s.check_at(&r.info("192.0.2.1"), t0()).await;
    let Verdict::Answer { answer, .. } = v else {
        panic!("{v:?}")
    };
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    let h = |n: &str| {
        answer
            .headers
            .iter()
            .find(|(k, _)| k.as_str() == n)
            .map(|(_, v)| v.to_str().unwrap().to_string())
    };
    assert_eq!(h("retry-after").as_deref(), Some("10"));
    assert_eq!(h("ratelimit-limit").as_deref(), Some("2"));
    assert_eq!(h("ratelimit-remaining").as_deref(), Some("0"));
    assert_eq!(h("ratelimit-reset").as_deref(), Some("20"));
    // Another client and another path are not affected.
    assert!(matches!(
        s.check_at(&r.info("192.0.2.2"), t0()).await,
        Verdict::Pass { .. }
    ));
    assert!(matches!(
        s.check_at(&other.info("192.0.2.1"), t0()).await,
        Verdict::Pass { .. }
    ));
    // The second 429 within the window trips the jail: banned.
    assert_eq!(
        kind(&s.check_at(&r.info("192.0.2.1"), t0()).await),
        Some(Kind::RateLimited)
    );
    let bans = s.bans().await.unwrap();
    assert_eq!(bans.len(), 1);
    assert_eq!(bans[0].jail, "hammer");
    assert_eq!(
        kind(&s.check(&other.info("192.0.2.1")).await),
        Some(Kind::Banned)
    );
}

#[tokio::test]
async fn header_and_route_keys() {
    let s = shield(ShieldConfig {
        rate_limits: vec![
            RateRule {
                name: "key".into(),
                key: RateKey::Header(HeaderName::from_static("x-api-key")),
                quota: Quota {
                    rate: 1,
                    period: Duration::from_secs(3600),
                    burst: 1,
                },
                routes: vec![],
                path_prefix: String::new(),
                policy: http::HeaderValue::from_static("1;w=3600"),
            },
            RateRule {
                name: "route".into(),
                key: RateKey::Route,
                quota: Quota {
                    rate: 1,
                    period: Duration::from_secs(3600),
                    burst: 3,
                },
                routes: vec![],
                path_prefix: String::new(),
                policy: http::HeaderValue::from_static("3;w=3600"),
            },
        ],
        ..Default::default()
    });
    let mut a = Req::get("/");
    a.headers.insert("x-api-key", "A".parse().unwrap());
    let mut b = Req::get("/");
    b.headers.insert("x-api-key", "B".parse().unwrap());
    let none = Req::get("/");
    assert!(matches!(
        s.check_at(&a.info("192.0.2.1"), t0()).await,
        Verdict::Pass { .. }
    ));
    assert_eq!(
        kind(&s.check_at(&a.info("192.0.2.2"), t0()).await),
        Some(Kind::RateLimited),
        "same key, other IP"
    );
    assert!(matches!(
        s.check_at(&b.info("192.0.2.1"), t0()).await,
        Verdict::Pass { .. }
    ));
    // The route budget (3) is shared by all clients: a, b, then one more.
    assert!(matches!(
        s.check_at(&none.info("192.0.2.9"), t0()).await,
        Verdict::Pass { .. }
    ));
    assert_eq!(
        kind(&s.check_at(&none.info("192.0.2.8"), t0()).await),
        Some(Kind::RateLimited)
    );
}

fn challenge_cfg(routes: &[&str]) -> ShieldConfig {
    ShieldConfig {
        challenge: ChallengeConfig {
            routes: routes.iter().map(|s| s.to_string()).collect(),
            skip_paths: vec!["/api/".into()],
            difficulty: 8,
            cookie_ttl: Duration::from_secs(600),
        },
        ..Default::default()
    }
}

fn solve_body(token: &str) -> String {
    format!("token={token}&nonce={}", pow::solve(token, 8))
}

fn cookie_of(a: &Answer) -> String {
    let sc = a
        .headers
        .iter()
        .find(|(n, _)| n == http::header::SET_COOKIE)
        .unwrap()
        .1
        .to_str()
        .unwrap();
    sc.split(';').next().unwrap().to_string()
}

#[tokio::test]
async fn challenge_flow_cookie_is_ip_bound_and_answers_single_use() {
    let s = shield(challenge_cfg(&["app"]));
    let r = Req::get("/page");
    let v = s.check(&r.info("192.0.2.1")).await;
    let Verdict::Answer { answer, .. } = v else {
        panic!("{v:?}")
    };
    assert_eq!(answer.kind, Kind::Challenge);
    assert!(answer.body.contains("crypto.subtle.digest"));
    // Skipped paths and other routes are not challenged.
    assert!(matches!(
        s.check(&Req::get("/api/x").info("192.0.2.1")).await,
        Verdict::Pass { .. }
    ));
    let mut other = Req::get("/page");
    other.route = Some("other".into());
    assert!(matches!(
        s.check(&other.info("192.0.2.1")).await,
        Verdict::Pass { .. }
    ));

    let mut post = Req::get(CHALLENGE_PATH);
    post.method = Method::POST;
    assert!(matches!(
        s.check(&post.info("192.0.2.1")).await,
        Verdict::ChallengeAnswer { .. }
    ));

    let token = s.issue_challenge(ip("192.0.2.1"));
    let body = solve_body(&token);
    // Another IP cannot use this answer.
    assert_eq!(
        s.answer_challenge(ip("192.0.2.2"), body.as_bytes(), false)
            .await
            .kind,
        Kind::ChallengeFailed
    );
    let ok = s
        .answer_challenge(ip("192.0.2.1"), body.as_bytes(), true)
        .await;
    assert_eq!(ok.kind, Kind::ChallengeSolved, "{}", ok.body);
    let sc = ok
        .headers
        .iter()
        .find(|(n, _)| n == http::header::SET_COOKIE)
        .unwrap()
        .1
        .to_str()
        .unwrap();
    assert!(
        sc.contains("HttpOnly") && sc.contains("Secure") && sc.contains("Max-Age=600"),
        "{sc}"
    );
    // Single use.
    assert_eq!(
        s.answer_challenge(ip("192.0.2.1"), body.as_bytes(), false)
            .await
            .kind,
        Kind::ChallengeFailed
    );

    let cookie = cookie_of(&ok);
    let mut with = Req::get("/page");
    with.headers
        .insert(http::header::COOKIE, cookie.parse().unwrap());
    assert!(matches!(
        s.check(&with.info("192.0.2.1")).await,
        Verdict::Pass { .. }
    ));
    assert_eq!(
        kind(&s.check(&with.info("192.0.2.2")).await),
        Some(Kind::Challenge),
        "other IP"
    );
    let late = now_us() + 601 * 1_000_000;
    assert_eq!(
        kind(&s.check_at(&with.info("192.0.2.1"), late).await),
        Some(Kind::Challenge),
        "expired"
    );
    let mut forged = Req::get("/page");
    let bad = cookie.replacen('=', "=9", 1);
    forged
        .headers
        .insert(http::header::COOKIE, bad.parse().unwrap());
    assert_eq!(
        kind(&s.check(&forged.info("192.0.2.1")).await),
        Some(Kind::Challenge),
        "forged"
    );
}

#[tokio::test]
async fn challenge_answers_are_rate_limited_too() {
    let mut cfg = challenge_cfg(&["app"]);
    cfg.rate_limits = vec![RateRule {
        name: "all".into(),
        key: RateKey::Ip,
        quota: Quota {
            rate: 1,
            period: Duration::from_secs(3600),
            burst: 1,
        },
        routes: vec![],
        path_prefix: String::new(),
        policy: http::HeaderValue::from_static("1;w=3600"),
    }];
    let s = shield(cfg);
    let mut post = Req::get(CHALLENGE_PATH);
    post.method = Method::POST;
    assert!(matches!(
        s.check(&post.info("192.0.2.1")).await,
        Verdict::ChallengeAnswer { .. }
    ));
    assert_eq!(
        kind(&s.check(&post.info("192.0.2.1")).await),
        Some(Kind::RateLimited)
    );
}

#[tokio::test]
async fn soft_threshold_challenges_then_ban() {
    let mut cfg = challenge_cfg(&[]);
    cfg.jails = vec![JailRule {
        name: "waf".into(),
        event: EventKind::WafBlock,
        threshold: 4,
        window: Duration::from_secs(60),
        soft_threshold: Some(2),
        ban: Duration::from_secs(60),
        max_ban: Duration::from_secs(600),
        escalation: 2,
    }];
    let s = shield(cfg);
    let r = Req::get("/page");
    let who = ip("2001:db8:1:2::5");
    assert!(matches!(
        s.check(&r.info("2001:db8:1:2::5")).await,
        Verdict::Pass { .. }
    ));
    s.record_waf_block(who);
    s.record_waf_block(ip("2001:db8:1:2::6")); // same /64
    assert_eq!(
        kind(&s.check(&r.info("2001:db8:1:2::7")).await),
        Some(Kind::Challenge)
    );
    assert!(matches!(
        s.check(&r.info("2001:db8:1:3::7")).await,
        Verdict::Pass { .. }
    ));
    s.record_waf_block(who);
    s.record_waf_block(who);
    assert_eq!(
        kind(&s.check(&r.info("2001:db8:1:2::abcd")).await),
        Some(Kind::Banned)
    );
    let b = &s.bans().await.unwrap()[0];
    assert_eq!(from_prefix(&b.target), net("2001:db8:1:2::/64"));
    assert_eq!(b.jail, "waf");
    assert!(s
        .remove_ban(net("2001:db8:1:2::abcd"))
        .await
        .unwrap()
        .is_some());
    assert!(matches!(
        s.check(&r.info("2001:db8:1:2::5")).await,
        Verdict::Pass { .. }
    ));
}

#[tokio::test]
async fn scan_jail_counts_distinct_4xx_paths_and_ignores_2xx() {
    let s = shield(ShieldConfig {
        jails: vec![JailRule {
            name: "scanners".into(),
            event: EventKind::Scan,
            threshold: 3,
            window: Duration::from_secs(60),
            soft_threshold: None,
            ban: Duration::from_secs(60),
            max_ban: Duration::from_secs(60),
            escalation: 1,
        }],
        ..Default::default()
    });
    let c = ip("192.0.2.1");
    s.record_response(c, 200, "/a");
    s.record_response(c, 404, "/b");
    s.record_response(c, 404, "/b");
    s.record_response(c, 302, "/c");
    s.record_response(c, 403, "/d");
    assert!(s.bans().await.unwrap().is_empty());
    s.record_response(c, 404, "/e");
    assert_eq!(s.bans().await.unwrap().len(), 1);
}

#[tokio::test]
async fn connection_guard_caps_concurrency_and_rate() {
    let s = shield(ShieldConfig {
        connections: ConnLimits {
            max_per_ip: Some(2),
            rate: Some(Quota {
                rate: 1,
                period: Duration::from_secs(3600),
                burst: 4,
            }),
        },
        ..Default::default()
    });
    let a = s.admit(ip("192.0.2.1")).unwrap();
    let b = s.admit(ip("192.0.2.1")).unwrap();
    assert_eq!(s.admit(ip("192.0.2.1")).unwrap_err(), Refusal::TooMany);
    assert!(s.admit(ip("192.0.2.2")).is_ok());
    drop(a);
    let _c = s.admit(ip("192.0.2.1")).unwrap();
    drop(b);
    // Four new connections were allowed in total: the rate refuses the fifth.
    assert_eq!(s.admit(ip("192.0.2.1")).unwrap_err(), Refusal::Rate);
}

#[tokio::test]
async fn bad_ban_reasons_are_refused() {
    let s = shield(ShieldConfig::default());
    assert!(s
        .add_ban(net("192.0.2.1"), None, &"x".repeat(300))
        .await
        .is_err());
    assert!(s.add_ban(net("192.0.2.1"), None, "a\nb").await.is_err());
    let b = s.add_ban(net("192.0.2.1"), None, "").await.unwrap();
    assert_eq!(b.reason, "manual ban");
    assert_eq!(b.expires_us, None);
    assert_eq!(b.jail, "manual");
}

#[tokio::test]
async fn bans_can_be_recorded_under_a_jail() {
    let s = shield(ShieldConfig::default());
    let b = s
        .add_ban_in(
            net("192.0.2.9"),
            Some(Duration::from_secs(60)),
            "anomaly: requests",
            "anomaly",
        )
        .await
        .unwrap();
    assert_eq!(b.jail, "anomaly");
    let stored = s.bans().await.unwrap();
    assert!(stored
        .iter()
        .any(|x| x.jail == "anomaly" && x.reason == "anomaly: requests"));
}
