//! `[identity]` through the real gateway process, raw HTTP on loopback:
//! access rules, the portal (CSRF, rotation, two factors, logout), identity
//! headers, hostile cookies and form input, brute-force locks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod identity_support;

use common::*;
use identity_support::*;
use std::time::Duration;

fn start(users: &Users, extra: &str) -> (Upstream, Palisade) {
    let up = Upstream::start("app");
    let p = Palisade::start_toml(&config(up.addr, users, extra, ""));
    (up, p)
}

#[test]
fn access_rule_table_through_the_gateway() {
    let users = Users::new();
    users.add("alice", &["admin"]);
    users.add("bob", &[]);
    let (secret, _) = users.enroll("alice");
    let (up, p) = start(&users, "");
    let a = p.addr();

    // Anonymous: (path, Accept, expected status, reaches upstream).
    let portal_login = format!("{PORTAL}/login?rd=");
    for (path, accept, status, reaches) in [
        ("/public/x", "text/html", 200, true),
        ("/blocked", "text/html", 403, false),
        ("/app/page", "text/html", 302, false),
        ("/app/page", "application/json", 401, false),
        ("/admin/", "text/html", 302, false),
        // Not from 10.0.0.0/8: the bypass rule does not match; default deny.
        ("/lan", "*/*", 403, false),
        ("/elsewhere", "*/*", 403, false),
    ] {
        let before = up.requests_to(path).len();
        let r = anon(a, path, accept);
        assert_eq!(r.status, status, "{path} {accept}: {}", r.body_str());
        assert_eq!(up.requests_to(path).len() > before, reaches, "{path}");
        if r.status == 302 {
            let loc = r.header("location").unwrap();
            assert!(loc.starts_with(&portal_login), "{loc}");
            assert!(loc.contains(&enc_path(path)), "{loc}");
        }
    }

    // bob: one factor, no admin role.
    let mut bob = Browser::default();
    let r = bob.login(a, "bob", PASSWORD, "/app/page");
    assert_eq!(r.status, 303, "{}", r.body_str());
    assert_eq!(r.header("location"), Some("/app/page"));
    let set = r.header("set-cookie").unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax"),
        "{set}"
    );
    assert!(!set.contains("Secure"), "plain http: no Secure flag: {set}");
    assert!(
        !set.contains("Max-Age"),
        "no remember-me: a session cookie: {set}"
    );
    assert_eq!(bob.get(a, "/app/page", "").status, 200);
    let seen = up.requests_to("/app/page");
    let last = seen.last().unwrap();
    assert_eq!(last.header("remote-user"), Some("bob"));
    assert_eq!(last.header("remote-groups"), Some(""));
    assert_eq!(bob.get(a, "/admin/x", "").status, 403, "bob is not admin");
    assert_eq!(bob.get(a, "/elsewhere", "").status, 403, "default deny");

    // alice: admin, needs the second factor for /admin.
    fresh_totp_window(5);
    let mut alice = Browser::default();
    let r = alice.login(a, "alice", PASSWORD, "/admin/panel");
    assert_eq!(r.status, 303);
    let loc = r.header("location").unwrap().to_string();
    assert!(
        loc.starts_with(&format!("{PORTAL}/second-factor?rd=")),
        "{loc}"
    );
    let one_factor = alice.cookie("palisade_session").unwrap();
    // With one factor: /app works, /admin sends back to the second factor.
    assert_eq!(alice.get(a, "/app/x", "").status, 200);
    let r = alice.get(a, "/admin/panel", "");
    assert_eq!(r.status, 302);
    assert!(r.header("location").unwrap().contains("/second-factor?rd="));
    let r = alice.second_factor(a, &totp_now(&secret), "/admin/panel");
    assert_eq!(r.status, 303, "{}", r.body_str());
    assert_eq!(r.header("location"), Some("/admin/panel"));
    let two_factor = alice.cookie("palisade_session").unwrap();
    assert_ne!(one_factor, two_factor, "elevation rotates the session id");
    let r = alice.get(a, "/admin/panel", "");
    assert_eq!(r.status, 200, "{}", r.body_str());
    let last = up.requests_to("/admin/panel").pop().unwrap();
    assert_eq!(last.header("remote-user"), Some("alice"));
    assert_eq!(last.header("remote-groups"), Some("admin"));
    // The one-factor id died with the rotation.
    let mut old = Browser {
        cookies: vec![("palisade_session".into(), one_factor)],
    };
    assert_eq!(old.get(a, "/app/x", "").status, 302);

    // Logout ends the session; the cookie no longer works.
    let t = alice.csrf(a, "logout");
    let saved = alice.clone();
    let r = alice.post(a, &format!("{PORTAL}/logout"), &format!("csrf={t}"));
    assert_eq!(r.status, 200);
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));
    let mut replay = saved;
    assert_eq!(
        replay.get(a, "/app/x", "").status,
        302,
        "session replayed after logout"
    );
    assert!(p.stderr().contains("login succeeded"), "{}", p.logs());
}

fn enc_path(p: &str) -> String {
    p.replace('?', "%3F")
}

#[test]
fn identity_headers_from_clients_never_reach_the_upstream() {
    let users = Users::new();
    users.add("bob", &["ops"]);
    let (up, p) = start(
        &users,
        "user_header = \"X-Auth-User\"\ngroups_header = \"X-Auth-Roles\"",
    );
    let a = p.addr();
    let forged = "X-Auth-User: root\r\nX-Auth-Roles: admin\r\nx-auth-user: root2\r\n";
    // A bypass route: stripped, nothing added.
    let mut anon_b = Browser::default();
    assert_eq!(anon_b.get(a, "/public/h", forged).status, 200);
    let r = up.requests_to("/public/h").pop().unwrap();
    assert!(r.headers_named("x-auth-user").is_empty(), "{:?}", r.headers);
    assert!(r.headers_named("x-auth-roles").is_empty());
    // Logged in: exactly the real identity.
    let mut bob = Browser::default();
    assert_eq!(bob.login(a, "bob", PASSWORD, "/app").status, 303);
    assert_eq!(bob.get(a, "/app/h", forged).status, 200);
    let r = up.requests_to("/app/h").pop().unwrap();
    assert_eq!(r.headers_named("x-auth-user"), vec!["bob"]);
    assert_eq!(r.headers_named("x-auth-roles"), vec!["ops"]);
    // A non-ASCII user name is forwarded as its UTF-8 bytes, not dropped.
    users.add("zoë", &[]);
    let mut z = Browser::default();
    assert_eq!(z.login(a, "zoë", PASSWORD, "/app").status, 303);
    assert_eq!(z.get(a, "/app/z", "").status, 200);
    let r = up.requests_to("/app/z").pop().unwrap();
    assert_eq!(r.headers_named("x-auth-user"), vec!["zoë"]);
    // The default names are not special any more, but still pass untouched.
    assert_eq!(anon_b.get(a, "/public/d", "Remote-User: x\r\n").status, 200);
    assert_eq!(
        up.requests_to("/public/d")
            .pop()
            .unwrap()
            .header("remote-user"),
        Some("x")
    );
}

#[test]
fn posts_without_a_valid_csrf_token_are_refused() {
    let users = Users::new();
    users.add("bob", &[]);
    let (_up, p) = start(&users, "");
    let a = p.addr();
    let form = format!("username=bob&password={}", enc(PASSWORD));
    // No token, no pre-session cookie.
    let mut b = Browser::default();
    let r = b.post(a, &format!("{PORTAL}/login"), &form);
    assert_eq!(r.status, 403, "{}", r.body_str());
    assert!(r
        .body_str()
        .contains("expired or was not sent from this site"));
    assert!(b.cookie("palisade_session").is_none());
    // A token minted for another browser's pre-session.
    let mut other = Browser::default();
    let t = other.csrf(a, "login");
    let mut b = Browser::default();
    let _ = b.csrf(a, "login");
    let r = b.post(a, &format!("{PORTAL}/login"), &format!("csrf={t}&{form}"));
    assert_eq!(r.status, 403);
    // Logout without a token does not log out.
    let mut bob = Browser::default();
    assert_eq!(bob.login(a, "bob", PASSWORD, "/app").status, 303);
    let r = bob.post(a, &format!("{PORTAL}/logout"), "csrf=forged");
    assert_eq!(r.status, 403);
    assert_eq!(bob.get(a, "/app/still", "").status, 200);
    // A GET never changes state: the login form posts only.
    let r = bob.get(a, &format!("{PORTAL}/logout"), "");
    assert_eq!(r.status, 200);
    assert_eq!(bob.get(a, "/app/still", "").status, 200);
    assert!(p.stderr().contains("csrf"), "{}", p.logs());
}

#[test]
fn forged_malformed_and_replayed_cookies_are_refused() {
    let users = Users::new();
    users.add("bob", &[]);
    let (up, p) = start(&users, "");
    let a = p.addr();
    let long = "x".repeat(3000);
    for bad in [
        "A".repeat(43),
        "not-a-session".into(),
        "../../etc/passwd".into(),
        "%00%ff".into(),
        long,
        "\"\"".into(),
    ] {
        let raw = format!(
            "GET /app/c HTTP/1.1\r\nHost: app.test\r\nCookie: palisade_session={bad}\r\nConnection: close\r\n\r\n"
        );
        let r = roundtrip(a, raw.as_bytes());
        assert_eq!(r.status, 401, "cookie {bad:.40}: {}", r.body_str());
    }
    assert!(up.requests_to("/app/c").is_empty());
    // A real session id with one character changed.
    let mut bob = Browser::default();
    assert_eq!(bob.login(a, "bob", PASSWORD, "/app").status, 303);
    let id = bob.cookie("palisade_session").unwrap();
    let mut forged = id.clone().into_bytes();
    forged[10] = if forged[10] == b'A' { b'B' } else { b'A' };
    let mut f = Browser {
        cookies: vec![(
            "palisade_session".into(),
            String::from_utf8(forged).unwrap(),
        )],
    };
    assert_eq!(f.get(a, "/app/c", "").status, 302);
    // The real one works; after `palisade user logout-all` (another
    // process, the same config file) it does not.
    assert_eq!(bob.get(a, "/app/c", "").status, 200);
    let cfg = p.config_path.display().to_string();
    let (st, out, err) = run_cli(
        &["user", "logout-all", "bob", "-c", &cfg],
        Duration::from_secs(60),
    );
    assert!(st.success(), "{out}{err}");
    assert!(out.contains("all sessions of bob revoked"), "{out}");
    // Another process's revocation applies within the session cache's
    // 1 s (identity::session::CACHE_TTL).
    let revoked = wait_for(Duration::from_secs(5), || {
        (bob.get(a, "/app/c", "").status == 302).then_some(())
    });
    assert!(revoked.is_some(), "revoked by the CLI");
    assert!(p.alive_check());
}

trait Alive {
    fn alive_check(&self) -> bool;
}
impl Alive for Palisade {
    fn alive_check(&self) -> bool {
        roundtrip(
            self.addr(),
            b"GET /public/alive HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        )
        .status
            == 200
    }
}

#[test]
fn oversized_and_confusable_input_gets_clear_4xx() {
    let users = Users::new();
    users.add("alice", &[]);
    let (_up, p) = start(&users, "[identity.brute_force]\nuser_max_failures = 50");
    let a = p.addr();
    // Fullwidth letters fold to the same account (NFKC).
    let mut b = Browser::default();
    let r = b.login(a, "ＡＬＩＣＥ", PASSWORD, "/app");
    assert_eq!(r.status, 303, "{}", r.body_str());
    // Oversized username and password: 400 with a message.
    let mut b = Browser::default();
    let r = b.login(a, &"a".repeat(300), PASSWORD, "/app");
    assert_eq!(r.status, 400);
    assert!(
        r.body_str().contains("username is too long"),
        "{}",
        r.body_str()
    );
    let r = b.login(a, "alice", &"p".repeat(2000), "/app");
    assert_eq!(r.status, 400);
    assert!(r.body_str().contains("password is too long"));
    // Invalid characters: the generic failure, not a 500.
    for name in ["al ice", "a\u{0}b", "a/b", "\u{202e}alice", ""] {
        let r = b.login(a, name, PASSWORD, "/app");
        assert_eq!(r.status, 401, "{name:?}: {}", r.body_str());
        assert!(r.body_str().contains("username or password is incorrect"));
    }
    // A body over the form limit: 413 before parsing.
    let t = b.csrf(a, "login");
    let big = format!("csrf={t}&username=alice&password={}", "x".repeat(10_000));
    let r = b.post(a, &format!("{PORTAL}/login"), &big);
    assert_eq!(r.status, 413);
    // Not UTF-8.
    let r = b.post(a, &format!("{PORTAL}/login"), "username=%ff%fe");
    assert_eq!(r.status, 400);
    // An open redirect is not followed: rd to another host falls back to /.
    let mut c = Browser::default();
    let r = c.login(a, "alice", PASSWORD, "https://evil.example/");
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/"));
    let r = c.login(a, "alice", PASSWORD, "//evil.example/");
    assert_eq!(r.header("location"), Some("/"));
    assert!(!p.stderr().contains("panicked"), "{}", p.logs());
}

#[test]
fn brute_force_locks_after_the_threshold() {
    let users = Users::new();
    users.add("carol", &[]);
    let (_up, p) = start(
        &users,
        "[identity.brute_force]\nuser_max_failures = 3\nip_max_failures = 50\nbase_lock_secs = 60",
    );
    let a = p.addr();
    let mut b = Browser::default();
    for i in 0..2 {
        let r = b.login(a, "carol", "wrong password", "/app");
        assert_eq!(r.status, 401, "attempt {i}");
    }
    // The third failure reaches the threshold: locked.
    let r = b.login(a, "carol", "wrong password", "/app");
    assert_eq!(r.status, 429, "{}", r.body_str());
    // While locked, even the right password is refused, with Retry-After.
    let r = b.login(a, "carol", PASSWORD, "/app");
    assert_eq!(r.status, 429);
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert!(r.body_str().contains("Too many failed attempts"));
    assert!(b.cookie("palisade_session").is_none());
    let logs = wait_for(Duration::from_secs(5), || {
        let l = p.stderr();
        l.contains("login locked").then_some(l)
    });
    assert!(logs.is_some(), "{}", p.logs());
    // Another user from the same address is not locked (per-user budget).
    users.add("dave", &[]);
    assert_eq!(b.login(a, "dave", PASSWORD, "/app").status, 303);
    // Each outcome is a security event in the store (GET /events).
    for (kind, user) in [
        ("login_failure", "carol"),
        ("lockout", "carol"),
        ("login_success", "dave"),
    ] {
        let found = wait_for(Duration::from_secs(10), || {
            let body = p.admin_get(&format!("/events?kind={kind}")).body_str();
            body.contains(&format!("\"user\":\"{user}\"")).then_some(())
        });
        assert!(
            found.is_some(),
            "no {kind} event for {user}: {}",
            p.admin_get("/events").body_str()
        );
    }
}

#[test]
fn totp_codes_work_once_and_recovery_codes_are_single_use() {
    let users = Users::new();
    users.add("erin", &["admin"]);
    let (secret, recovery) = users.enroll("erin");
    let (_up, p) = start(&users, "");
    let a = p.addr();
    fresh_totp_window(8);
    let code = totp_now(&secret);
    let mut b = Browser::default();
    assert_eq!(b.login(a, "erin", PASSWORD, "/admin/x").status, 303);
    assert_eq!(b.second_factor(a, &code, "/admin/x").status, 303);
    // The same code in another browser: refused (replay).
    let mut c = Browser::default();
    assert_eq!(c.login(a, "erin", PASSWORD, "/admin/x").status, 303);
    let r = c.second_factor(a, &code, "/admin/x");
    assert_eq!(r.status, 401, "{}", r.body_str());
    assert!(r.body_str().contains("already used"));
    // A recovery code works once.
    let r = c.second_factor(a, &recovery[0], "/admin/x");
    assert_eq!(r.status, 303, "{}", r.body_str());
    let mut d = Browser::default();
    assert_eq!(d.login(a, "erin", PASSWORD, "/admin/x").status, 303);
    assert_eq!(d.second_factor(a, &recovery[0], "/admin/x").status, 401);
}

#[test]
fn shield_user_rate_limit_counts_the_authenticated_user() {
    let users = Users::new();
    users.add("bob", &[]);
    users.add("carol", &[]);
    let up = Upstream::start("app");
    let p = Palisade::start_toml(&config(
        up.addr,
        &users,
        "",
        "[[shield.rate_limit]]\nname = \"per-user\"\nkey = \"user\"\nrate = \"3/h\"\nburst = 3\npath_prefix = \"/app\"\n",
    ));
    let a = p.addr();
    let mut bob = Browser::default();
    assert_eq!(bob.login(a, "bob", PASSWORD, "/app").status, 303);
    let codes: Vec<u16> = (0..5).map(|_| bob.get(a, "/app/r", "").status).collect();
    assert_eq!(&codes[..3], &[200, 200, 200], "{codes:?}");
    assert_eq!(codes[4], 429, "bob's budget is spent: {codes:?}");
    // carol, from the same address, has her own budget.
    let mut carol = Browser::default();
    assert_eq!(carol.login(a, "carol", PASSWORD, "/app").status, 303);
    assert_eq!(carol.get(a, "/app/r", "").status, 200);
}
