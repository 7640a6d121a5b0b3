//! The admin dashboard over HTTP, against the real binary: login required
//! (redirect), non-admins refused (403), CSRF on every form, security
//! headers, and XSS payloads sent through the WAF shown escaped on the
//! overview, event detail and live pages and framed safely in the feed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod dashboard_support;
mod identity_support;

use std::time::Duration;

use common::*;
use dashboard_support::*;
use identity_support::{Browser, Users, PASSWORD};

fn start() -> (Palisade, Upstream, Users) {
    let users = Users::new();
    users.add("alice", &["admin"]);
    users.add("bob", &["staff"]);
    let up = Upstream::start("app");
    let p = Palisade::start_toml(&config(up.addr, &users));
    (p, up, users)
}

#[test]
fn login_is_required_and_only_admins_get_in() {
    let (p, _up, _users) = start();
    let admin = p.admin_addr();

    // No session: every page redirects to the login form.
    for path in [
        "/dashboard/",
        "/dashboard/live",
        "/dashboard/bans",
        "/dashboard/feed",
        "/dashboard/tuning",
        "/dashboard/event?t=1",
    ] {
        let r = Browser::default().get(admin, path, "");
        assert_eq!(r.status, 303, "{path}: {}", r.body_str());
        assert_eq!(r.header("location"), Some("/dashboard/login"), "{path}");
    }
    // A forged session cookie is no better.
    let r = Browser::default().get(
        admin,
        "/dashboard/",
        "Cookie: palisade_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\r\n",
    );
    assert_eq!(r.status, 303);

    // The login form carries the security headers.
    let r = Browser::default().get(admin, "/dashboard/login", "");
    let csp = r.header("content-security-policy").unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(r.header("x-frame-options"), Some("DENY"));

    // Wrong password: refused, no session cookie.
    let mut b = Browser::default();
    let r = login(&mut b, admin, "alice", "wrong password here");
    assert_eq!(r.status, 401, "{}", r.body_str());
    assert!(b.cookie("palisade_session").is_none());

    // A login POST without the CSRF token is refused before any check.
    let mut b = Browser::default();
    b.get(admin, "/dashboard/login", "");
    let r = b.post(
        admin,
        "/dashboard/login",
        &format!(
            "username=alice&password={}",
            identity_support::enc(PASSWORD)
        ),
    );
    assert_eq!(r.status, 403, "{}", r.body_str());
    assert!(b.cookie("palisade_session").is_none());

    // A user without the admin role: 403.
    let mut bob = Browser::default();
    let r = login(&mut bob, admin, "bob", PASSWORD);
    assert_eq!(r.status, 303, "{}", r.body_str());
    let r = bob.get(admin, "/dashboard/", "");
    assert_eq!(r.status, 403, "{}", r.body_str());
    assert!(r.body_str().contains("admin role"));
    let r = bob.get(admin, "/dashboard/bans", "");
    assert_eq!(r.status, 403);

    // The admin gets every page, with the strict CSP and no inline script.
    let mut a = Browser::default();
    let r = login(&mut a, admin, "alice", PASSWORD);
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/dashboard/"));
    let sc = r.header("set-cookie").unwrap();
    assert!(
        sc.contains("HttpOnly") && sc.contains("SameSite=Lax"),
        "{sc}"
    );
    for path in [
        "/dashboard/",
        "/dashboard/live",
        "/dashboard/bans",
        "/dashboard/tuning",
    ] {
        let r = a.get(admin, path, "");
        assert_eq!(r.status, 200, "{path}: {}", r.body_str());
        assert_eq!(r.header("x-frame-options"), Some("DENY"));
        assert!(r
            .header("content-security-policy")
            .unwrap()
            .contains("script-src 'self'"));
        let html = r.body_str();
        assert_eq!(
            html.matches("<script").count(),
            1,
            "{path}: only app.js: {html}"
        );
        assert!(html.contains("<script src=\"/dashboard/app.js\"></script>"));
        assert!(!html.contains(" style=\""), "{path}: no inline style");
    }
    let js = a.get(admin, "/dashboard/app.js", "");
    assert_eq!(js.status, 200);
    assert!(js
        .header("content-type")
        .unwrap()
        .starts_with("text/javascript"));
    assert!(js.body_str().contains("textContent") && !js.body_str().contains("innerHTML ="));

    // Logout needs the CSRF token; afterwards the session is gone.
    let page = a.get(admin, "/dashboard/", "").body_str();
    let r = a.post(admin, "/dashboard/logout", "");
    assert_eq!(r.status, 403);
    let r = a.post(
        admin,
        "/dashboard/logout",
        &format!("csrf={}", csrf_of(&page)),
    );
    assert_eq!(r.status, 303);
    let r = a.get(admin, "/dashboard/", "");
    assert_eq!(r.status, 303);
}

#[test]
fn unban_and_bulk_ban_need_the_csrf_token() {
    let (p, _up, _users) = start();
    let admin = p.admin_addr();
    let r = admin_call(
        &p,
        "POST",
        "/bans",
        r#"{"ip":"203.0.113.9","duration":"1h","reason":"test"}"#,
    );
    assert_eq!(r.status, 201, "{}", r.body_str());
    let banned = || p.admin_get("/bans").body_str().contains("203.0.113.9");
    assert!(banned());

    let mut a = Browser::default();
    assert_eq!(login(&mut a, admin, "alice", PASSWORD).status, 303);
    let page = a.get(admin, "/dashboard/bans", "").body_str();
    assert!(page.contains("203.0.113.9"), "{page}");
    let token = csrf_of(&page);

    // Without a token, with a forged one, or with another session's: refused.
    let mut other = Browser::default();
    login(&mut other, admin, "alice", PASSWORD);
    let other_token = csrf_of(&other.get(admin, "/dashboard/bans", "").body_str());
    assert_ne!(token, other_token, "tokens are bound to the session");
    for body in [
        "net=203.0.113.9".to_string(),
        "csrf=forged&net=203.0.113.9".to_string(),
        format!("csrf={other_token}&net=203.0.113.9"),
    ] {
        let r = a.post(admin, "/dashboard/bans/unban", &body);
        assert_eq!(r.status, 403, "{body}: {}", r.body_str());
        assert!(banned(), "{body}: the ban stays");
    }
    let r = a.post(admin, "/dashboard/bans/ban", "nets=198.51.100.1");
    assert_eq!(r.status, 403);
    assert!(!p.admin_get("/bans").body_str().contains("198.51.100.1"));

    // A non-admin session cannot use the forms even with its own token.
    let mut bob = Browser::default();
    login(&mut bob, admin, "bob", PASSWORD);
    let r = bob.post(
        admin,
        "/dashboard/bans/unban",
        &format!("csrf={token}&net=203.0.113.9"),
    );
    assert_eq!(r.status, 403);
    assert!(banned());

    // With the token: lifted.
    let r = a.post(
        admin,
        "/dashboard/bans/unban",
        &format!("csrf={token}&net=203.0.113.9"),
    );
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert!(
        r.body_str().contains("Lifted the ban on 203.0.113.9"),
        "{}",
        r.body_str()
    );
    assert!(!banned());

    // Bulk ban: good lines banned, bad ones reported, all escaped.
    let r = a.post(
        admin,
        "/dashboard/bans/ban",
        &format!(
            "csrf={token}&duration=1h&reason=bulk&nets={}",
            identity_support::enc("198.51.100.1\n198.51.100.0/28\n<script>x</script>")
        ),
    );
    assert_eq!(r.status, 200);
    let html = r.body_str();
    assert!(html.contains("Banned 2 network(s)"), "{html}");
    assert!(
        html.contains("&lt;script&gt;x&lt;/script&gt;") && !html.contains("<script>x"),
        "{html}"
    );
    let list = p.admin_get("/bans").body_str();
    assert!(
        list.contains("198.51.100.1") && list.contains("198.51.100.0/28"),
        "{list}"
    );
    // The bans and the unban are events too.
    wait_stored(&p, "shield_unban", 1);
    wait_stored(&p, "shield_ban", 3);
}

#[test]
fn xss_payloads_are_escaped_on_every_page_and_framed_in_the_feed() {
    let (p, up, _users) = start();
    let admin = p.admin_addr();
    let mut a = Browser::default();
    assert_eq!(login(&mut a, admin, "alice", PASSWORD).status, 303);

    // The feed is open before the attack.
    let mut feed = Sse::open(admin, &a.cookie_header());
    let head = feed.wait_for("retry:", Duration::from_secs(10));
    assert!(head.contains("text/event-stream"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("x-content-type-options: nosniff"),
        "{head}"
    );

    assert_eq!(send(&p, XSS), 403);
    assert_eq!(send(&p, XSS_IMG), 403);
    assert!(up.requests().is_empty(), "blocked before the app");
    wait_stored(&p, "waf_block", 2);

    // Feed: one JSON object per data line, the payload intact as data
    // (the page inserts it with textContent).
    let text = feed.wait_for("onerror", Duration::from_secs(10));
    let events: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect();
    let xss = events
        .iter()
        .find(|e| e["uri"].as_str().is_some_and(|u| u.contains("%3Cscript")))
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(xss["kind"], "waf_block");
    let data: String = xss["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["data"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(
        data.contains("<script>alert(1)</script>"),
        "match data decoded: {data}"
    );

    // Pages: escaped, never raw.
    let check = |html: &str, what: &str| {
        assert!(
            !html.contains("<script>alert"),
            "{what}: raw script: {html}"
        );
        assert!(!html.contains("<img src=x"), "{what}: raw img: {html}");
        assert_eq!(html.matches("<script").count(), 1, "{what}: only app.js");
    };
    let live = a.get(admin, "/dashboard/live", "").body_str();
    check(&live, "live");
    assert!(
        live.contains("%3Cscript%3Ealert(1)%3C%2Fscript%3E"),
        "{live}"
    );
    let overview = a.get(admin, "/dashboard/", "").body_str();
    check(&overview, "overview");
    assert!(overview.contains("id=\"blocked-count\">2<"), "{overview}");
    assert!(overview.contains("127.0.0.1"), "top IPs: {overview}");
    assert!(
        overview.contains("<td>xss</td>") || overview.contains(">xss<"),
        "categories: {overview}"
    );

    // The top-IP link filters the stored events by client.
    let mine = a
        .get(admin, "/dashboard/live?client=127.0.0.1", "")
        .body_str();
    assert!(mine.contains("%3Cscript"), "{mine}");
    let other = a
        .get(admin, "/dashboard/live?client=192.0.2.1", "")
        .body_str();
    assert!(!other.contains("%3Cscript"), "{other}");

    // Detail of the XSS event, by the live page's own link.
    let link = live
        .split("href=\"")
        .filter_map(|s| s.split('"').next())
        .find(|h| h.starts_with("/dashboard/event?"))
        .unwrap()
        .replace("&amp;", "&");
    let detail = a.get(admin, &link, "");
    assert_eq!(detail.status, 200, "{link}: {}", detail.body_str());
    let detail = detail.body_str();
    check(&detail, "detail");
    assert!(detail.contains("Blocked by the WAF"), "{detail}");
    assert!(detail.contains("id=\"rules\""), "{detail}");
    assert!(
        detail.contains("&lt;script&gt;alert(1)&lt;/script&gt;")
            || detail.contains("&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"),
        "match data escaped: {detail}"
    );

    // Tuning: the rules with a suggested exclusion for the route's path.
    let tuning = a.get(admin, "/dashboard/tuning", "").body_str();
    check(&tuning, "tuning");
    assert!(tuning.contains("@beginsWith /search"), "{tuning}");
    assert!(tuning.contains("ctl:ruleRemoveById="), "{tuning}");
}
