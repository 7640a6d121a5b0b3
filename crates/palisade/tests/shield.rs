//! The shield end to end: the real binary, loopback sockets, a recording
//! upstream. Rate limits under concurrency, a scanner banned by its 404s and
//! lifted with `palisade ban del`, deny/allow lists (also reloaded from a
//! file), trusted-proxy client addresses, the proof-of-work challenge and the
//! per-IP connection guard.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CLI: Duration = Duration::from_secs(30);

/// A proxy config in front of `up` with extra TOML appended.
fn config(up: &Upstream, extra: &str) -> String {
    format!("{}\n{extra}\n", ConfigSpec::proxy(&[up.addr]).render())
}

fn get(path: &str, extra_headers: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: test.local\r\n{extra_headers}Connection: close\r\n\r\n")
        .into_bytes()
}

/// `POST /reload` on the admin listener: (status, body).
fn reload(p: &Palisade) -> (u16, String) {
    let r = roundtrip(
        p.admin_addr(),
        b"POST /reload HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    (r.status, r.body_str())
}

fn ban_cli(p: &Palisade, args: &[&str]) -> (bool, String, String) {
    let admin = p.admin_addr().to_string();
    let mut all = vec!["ban"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--admin", &admin]);
    let (st, out, err) = run_cli(&all, CLI);
    (st.success(), out, err)
}

#[test]
fn concurrent_clients_get_exactly_the_burst() {
    // One request per hour after a burst of 20: the budget of the whole test
    // is exactly 20, whatever the timing.
    let up = Upstream::start("app");
    let p = Palisade::start_toml(&config(
        &up,
        "[state]\nbackend = \"memory\"\n\n[[shield.rate_limit]]\nname = \"per-ip\"\nrate = \"1/h\"\nburst = 20\n",
    ));
    let ok = Arc::new(AtomicUsize::new(0));
    let limited = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (ok, limited, addr) = (ok.clone(), limited.clone(), p.addr());
            std::thread::spawn(move || {
                for i in 0..10 {
                    let r = roundtrip(addr, &get(&format!("/r/{t}/{i}"), ""));
                    match r.status {
                        200 => ok.fetch_add(1, Ordering::SeqCst),
                        429 => limited.fetch_add(1, Ordering::SeqCst),
                        s => panic!("unexpected status {s}"),
                    };
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(ok.load(Ordering::SeqCst), 20, "{}", p.logs());
    assert_eq!(limited.load(Ordering::SeqCst), 60);
    assert_eq!(
        up.requests_to("/r/").len(),
        20,
        "refused requests never reach the upstream"
    );
    let m = p.metrics();
    assert_eq!(
        metric_value(
            &m,
            "palisade_shield_requests_refused_total",
            &[("reason", "rate_limited")]
        ),
        Some(60.0),
        "{m}"
    );
    let r = roundtrip(p.addr(), &get("/r/x", ""));
    assert_eq!(r.status, 429);
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((3500..=3600).contains(&retry), "Retry-After {retry}");
    assert_eq!(r.header("ratelimit-limit"), Some("20"));
    assert_eq!(r.header("ratelimit-remaining"), Some("0"));
    assert!(r.header("ratelimit-policy").unwrap().starts_with("20;w="));
}

#[test]
fn allowed_responses_announce_the_budget_left() {
    // Two limits cover /api: the response reports the tighter one, and the
    // remaining count falls by one per request until the 429.
    let up = Upstream::start("app");
    let p = Palisade::start_toml(&config(
        &up,
        "[state]\nbackend = \"memory\"\n\n[[shield.rate_limit]]\nname = \"loose\"\nrate = \"1/h\"\nburst = 50\n\n[[shield.rate_limit]]\nname = \"api\"\nrate = \"1/h\"\nburst = 3\npath_prefix = \"/api\"\n",
    ));
    for left in (0..3).rev() {
        let r = roundtrip(p.addr(), &get("/api/x", ""));
        assert_eq!(r.status, 200);
        assert_eq!(r.header("ratelimit-limit"), Some("3"));
        assert_eq!(
            r.header("ratelimit-remaining"),
            Some(left.to_string().as_str())
        );
        assert!(r.header("ratelimit-policy").unwrap().starts_with("3;w="));
        let reset: u64 = r.header("ratelimit-reset").unwrap().parse().unwrap();
        assert!(reset > 0 && reset <= 3 * 3600, "RateLimit-Reset {reset}");
    }
    assert_eq!(roundtrip(p.addr(), &get("/api/x", "")).status, 429);
    // Outside /api only the loose limit counts (4 requests spent so far).
    let r = roundtrip(p.addr(), &get("/other", ""));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("ratelimit-limit"), Some("50"));
    assert_eq!(r.header("ratelimit-remaining"), Some("45"));
}

#[test]
fn sustained_rate_never_exceeds_burst_plus_rate() {
    // 5/s with burst 5, 6 clients hammering for ~2 s: the budget over the
    // measured interval is 5 + 5 * elapsed (+1 for rounding).
    let up = Upstream::start("app");
    let p = Palisade::start_toml(&config(
        &up,
        "[[shield.rate_limit]]\nname = \"per-ip\"\nrate = \"5/s\"\nburst = 5\n",
    ));
    let ok = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let threads: Vec<_> = (0..6)
        .map(|_| {
            let (ok, addr) = (ok.clone(), p.addr());
            std::thread::spawn(move || {
                let mut c = Conn::open(addr);
                while start.elapsed() < Duration::from_secs(2) {
                    let r = c.roundtrip(b"GET /s HTTP/1.1\r\nHost: test.local\r\n\r\n");
                    if r.status == 200 {
                        ok.fetch_add(1, Ordering::SeqCst);
                    } else {
                        assert_eq!(r.status, 429);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let n = ok.load(Ordering::SeqCst);
    let max = 5 + (5.0 * elapsed).floor() as usize + 1;
    assert!(n >= 5, "at least the burst: {n}");
    assert!(n <= max, "{n} allowed in {elapsed:.2}s, budget {max}");
}

#[test]
fn scanner_is_banned_refused_and_ban_del_lifts_it() {
    let mut o = UpstreamOpts::named("app");
    o.status = 404;
    let up = Upstream::start_opts(o, 0);
    let p = Palisade::start_toml(&config(
        &up,
        "[[shield.jail]]\nname = \"scanners\"\nevent = \"scan\"\nthreshold = 5\nwindow = \"1m\"\nban = \"10m\"\n",
    ));
    // The same path twice counts once: 4 distinct so far, not banned.
    for path in [
        "/.env",
        "/.env",
        "/wp-login.php",
        "/.git/config",
        "/admin.php",
    ] {
        assert_eq!(roundtrip(p.addr(), &get(path, "")).status, 404);
    }
    let (ok, out, _) = ban_cli(&p, &["list"]);
    assert!(ok);
    assert_eq!(out.trim(), "no active bans");
    assert_eq!(roundtrip(p.addr(), &get("/phpmyadmin/", "")).status, 404);
    // The ban is written to the state store (SQLite here) right after.
    let listed = wait_for(Duration::from_secs(10), || {
        let (_, out, _) = ban_cli(&p, &["list"]);
        out.contains("127.0.0.1").then_some(out)
    })
    .unwrap_or_else(|| panic!("no ban listed\n{}", p.logs()));
    assert!(listed.contains("scanners"), "{listed}");
    assert!(listed.contains("5 scan events within 60s"), "{listed}");
    let before = up.request_count();
    // Refused at accept (or with 403 on a request already in flight).
    if let Ok(r) = try_roundtrip(p.addr(), &get("/after-ban", "")) {
        assert_eq!(r.status, 403, "{}", r.body_str());
    }
    assert_eq!(
        up.request_count(),
        before,
        "a banned client reaches nothing"
    );
    let (ok, out, err) = ban_cli(&p, &["del", "127.0.0.1"]);
    assert!(ok, "{out}{err}");
    assert_eq!(out.trim(), "lifted the ban of 127.0.0.1");
    assert_eq!(roundtrip(p.addr(), &get("/after-del", "")).status, 404);
    assert_eq!(up.requests_to("/after-del").len(), 1);
    let (ok, _, err) = ban_cli(&p, &["del", "127.0.0.1"]);
    assert!(!ok);
    assert!(err.contains("no ban covers 127.0.0.1"), "{err}");
}

#[test]
fn manual_bans_deny_list_and_allow_before_ban() {
    let up = Upstream::start("app");
    let p = Palisade::start_toml(&config(&up, "[shield]\nallow = [\"127.0.0.1\"]\n"));
    let (ok, out, err) = ban_cli(
        &p,
        &["add", "127.0.0.0/8", "--duration", "1h", "--reason", "test"],
    );
    assert!(ok, "{out}{err}");
    assert!(out.starts_with("banned 127.0.0.0/8 until "), "{out}");
    // Allow-listed: the ban does not lock the operator out.
    assert_eq!(roundtrip(p.addr(), &get("/allowed", "")).status, 200);
    let (_, list, _) = ban_cli(&p, &["list"]);
    assert!(
        list.contains("127.0.0.0/8") && list.contains("manual") && list.contains("test"),
        "{list}"
    );
    // Without the allow list the ban applies at once (reload, no restart).
    p.rewrite_config(&config(&up, ""));
    assert_eq!(reload(&p).0, 200);
    assert!(try_roundtrip(p.addr(), &get("/banned", ""))
        .map(|r| r.status == 403)
        .unwrap_or(true));
    assert!(up.requests_to("/banned").is_empty());
    let (ok, out, _) = ban_cli(&p, &["del", "127.0.0.0/8"]);
    assert!(ok, "{out}");
    assert_eq!(roundtrip(p.addr(), &get("/unbanned", "")).status, 200);
    let (ok, _, err) = ban_cli(&p, &["add", "10.0.0.1/8"]);
    assert!(!ok);
    assert!(err.contains("host bits"), "{err}");
}

#[test]
fn deny_list_file_is_reloaded_and_a_bad_entry_names_file_and_line() {
    let up = Upstream::start("app");
    let dir = TempDir::new("deny");
    let list = dir.write("deny.txt", "# nobody yet\n198.51.100.1\n");
    let toml = config(
        &up,
        &format!(
            "[shield]\ndeny_files = [{}]\n",
            toml_str(&list.display().to_string())
        ),
    );
    let p = Palisade::start_toml(&toml);
    assert_eq!(roundtrip(p.addr(), &get("/a", "")).status, 200);
    std::fs::write(&list, "198.51.100.1\n127.0.0.0/8 # loopback\n").unwrap();
    assert_eq!(reload(&p).0, 200);
    assert!(try_roundtrip(p.addr(), &get("/denied", ""))
        .map(|r| r.status == 403)
        .unwrap_or(true));
    assert!(up.requests_to("/denied").is_empty());
    std::fs::write(&list, "127.0.0.0/8\n127.0.0.300\n").unwrap();
    let (status, body) = reload(&p);
    assert_eq!(status, 422, "{body}");
    assert!(
        body.contains(&format!(
            "{}:2: `127.0.0.300` is not an IP address",
            list.display()
        )),
        "{body}"
    );
    // The previous lists keep serving.
    assert!(try_roundtrip(p.addr(), &get("/still", ""))
        .map(|r| r.status == 403)
        .unwrap_or(true));
}

#[test]
fn trusted_proxy_forwarded_client_is_checked() {
    let up = Upstream::start("app");
    let shield = "[shield]\ntrusted_proxies = [\"127.0.0.1\"]\ndeny = [\"203.0.113.7\"]\n";
    let p = Palisade::start_toml(&config(&up, shield));
    let r = roundtrip(p.addr(), &get("/x", "X-Forwarded-For: 203.0.113.7\r\n"));
    assert_eq!(r.status, 403, "{}", r.body_str());
    // Walked from the right: the client is the last untrusted hop.
    let r = roundtrip(
        p.addr(),
        &get("/y", "X-Forwarded-For: 203.0.113.7, 198.51.100.2\r\n"),
    );
    assert_eq!(r.status, 200);
    let r = roundtrip(
        p.addr(),
        &get("/z", "Forwarded: for=\"203.0.113.7:4711\"\r\n"),
    );
    assert_eq!(r.status, 403);
    // The access log names the real client.
    assert!(
        wait_for(Duration::from_secs(5), || p
            .stdout()
            .contains("\"client_ip\":\"198.51.100.2\"")
            .then_some(()))
        .is_some(),
        "{}",
        p.stdout()
    );
    // An untrusted peer's header is ignored.
    let p2 = Palisade::start_toml(&config(&up, "[shield]\ndeny = [\"203.0.113.7\"]\n"));
    let r = roundtrip(p2.addr(), &get("/w", "X-Forwarded-For: 203.0.113.7\r\n"));
    assert_eq!(r.status, 200);
}

fn token_of(page: &str) -> String {
    let i = page.find("var token = \"").expect("token in page") + 13;
    page[i..].split('"').next().unwrap().to_string()
}

fn post_answer(p: &Palisade, token: &str, nonce: u64, xff: &str) -> Response {
    let body = format!("token={token}&nonce={nonce}");
    let req = format!(
        "POST /.palisade/challenge HTTP/1.1\r\nHost: test.local\r\nX-Forwarded-For: {xff}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    roundtrip(p.addr(), req.as_bytes())
}

#[test]
fn challenge_cookie_is_ip_bound_expiring_and_single_use() {
    let up = Upstream::start("app");
    let p = Palisade::start_toml(&config(
        &up,
        "[shield]\ntrusted_proxies = [\"127.0.0.1\"]\n\n[shield.challenge]\nroutes = [\"*\"]\nskip_paths = [\"/api/\"]\ndifficulty = 10\ncookie_ttl = \"3s\"\n",
    ));
    let a = "X-Forwarded-For: 198.51.100.1\r\n";
    let page = roundtrip(p.addr(), &get("/home", a));
    assert_eq!(page.status, 403);
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    let html = page.body_str();
    assert!(html.contains("<noscript>") && html.contains("crypto.subtle.digest"));
    assert!(up.requests_to("/home").is_empty());
    assert_eq!(
        roundtrip(p.addr(), &get("/api/v1", a)).status,
        200,
        "skipped path"
    );

    let token = token_of(&html);
    let nonce = shield::pow::solve(&token, 10);
    // Another client cannot use this answer.
    assert_eq!(post_answer(&p, &token, nonce, "198.51.100.2").status, 403);
    // A wrong nonce is refused.
    let wrong = (0..)
        .find(|n| {
            shield::pow::leading_zero_bits(&shield::pow::work_hash(&token, &n.to_string())) < 10
        })
        .unwrap();
    assert_eq!(post_answer(&p, &token, wrong, "198.51.100.1").status, 403);
    let ok = post_answer(&p, &token, nonce, "198.51.100.1");
    assert_eq!(ok.status, 200, "{}", ok.body_str());
    let set = ok.header("set-cookie").unwrap().to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("Max-Age=3"),
        "{set}"
    );
    let cookie = set.split(';').next().unwrap().to_string();
    assert_eq!(
        post_answer(&p, &token, nonce, "198.51.100.1").status,
        403,
        "single use"
    );

    let with = |c: &str, xff: &str| {
        roundtrip(
            p.addr(),
            &get(
                "/home",
                &format!("X-Forwarded-For: {xff}\r\nCookie: {c}\r\n"),
            ),
        )
    };
    assert_eq!(with(&cookie, "198.51.100.1").status, 200);
    assert_eq!(up.requests_to("/home").len(), 1);
    assert_eq!(
        with(&cookie, "198.51.100.2").status,
        403,
        "cookie of another IP"
    );
    let (name, value) = cookie.split_once('=').unwrap();
    let (exp, sig) = value.split_once('.').unwrap();
    let later: u64 = exp.parse::<u64>().unwrap() + 3600;
    assert_eq!(
        with(&format!("{name}={later}.{sig}"), "198.51.100.1").status,
        403,
        "forged expiry"
    );
    let mut bad_sig = sig.to_string();
    bad_sig.replace_range(0..1, if sig.starts_with('0') { "1" } else { "0" });
    assert_eq!(
        with(&format!("{name}={exp}.{bad_sig}"), "198.51.100.1").status,
        403,
        "forged signature"
    );
    std::thread::sleep(Duration::from_millis(3200));
    assert_eq!(with(&cookie, "198.51.100.1").status, 403, "expired");
    assert_eq!(up.requests_to("/home").len(), 1);
}

#[test]
fn a_reloaded_secret_signs_new_cookies_and_keeps_issued_ones_valid() {
    let up = Upstream::start("app");
    let conf = |secret: &str| {
        config(
            &up,
            &format!("[shield]\nsecret = \"{secret}\"\n\n[shield.challenge]\nroutes = [\"*\"]\ndifficulty = 8\ncookie_ttl = \"1h\"\n"),
        )
    };
    let p = Palisade::start_toml(&conf("first-secret-0123456789abcdef"));
    let solve = || {
        let page = roundtrip(p.addr(), &get("/home", ""));
        assert_eq!(page.status, 403);
        let token = token_of(&page.body_str());
        let ok = post_answer(&p, &token, shield::pow::solve(&token, 8), "127.0.0.1");
        assert_eq!(ok.status, 200, "{}", ok.body_str());
        let set = ok.header("set-cookie").unwrap().to_string();
        set.split(';').next().unwrap().to_string()
    };
    let home =
        |cookie: &str| roundtrip(p.addr(), &get("/home", &format!("Cookie: {cookie}\r\n"))).status;
    let before = solve();
    assert_eq!(home(&before), 200);
    p.rewrite_config(&conf("second-secret-0123456789abcdef"));
    assert_eq!(reload(&p).0, 200);
    assert_eq!(home(&before), 200, "issued cookies survive the rotation");
    let after = solve();
    assert_ne!(before, after);
    assert_eq!(home(&after), 200);
    let logs = p.logs();
    assert!(logs.contains("shield.secret rotated"), "{logs}");
}

#[test]
fn connection_guard_caps_connections_per_ip() {
    let up = Upstream::start("app");
    let p = Palisade::start_toml(&config(&up, "[shield.connections]\nmax_per_ip = 2\n"));
    // The harness's start-up probe may still hold a slot for a moment.
    let (a, mut b) = wait_for(Duration::from_secs(10), || {
        let mut a = Conn::open(p.addr());
        let mut b = Conn::open(p.addr());
        let req = b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n";
        let ok = |c: &mut Conn| {
            c.send(req).is_ok()
                && c.read_response_within(IO_TIMEOUT, false)
                    .is_ok_and(|r| r.status == 200)
        };
        (ok(&mut a) && ok(&mut b)).then_some((a, b))
    })
    .expect("two connections from one IP");
    // Third concurrent connection: closed at accept, before any byte.
    let mut c = Conn::open(p.addr());
    assert!(
        c.wait_closed(Duration::from_secs(10)),
        "third connection kept open"
    );
    drop(a);
    // Once the server has seen the close, a slot is free again.
    let freed = wait_for(Duration::from_secs(10), || {
        try_roundtrip(p.addr(), &get("/d", ""))
            .ok()
            .filter(|r| r.status == 200)
    });
    assert!(freed.is_some(), "no slot after closing a connection");
    assert_eq!(
        b.roundtrip(b"GET /b2 HTTP/1.1\r\nHost: t\r\n\r\n").status,
        200
    );
}

#[test]
fn connection_guard_limits_new_connection_rate() {
    let up = Upstream::start("app");
    let p = Palisade::start_toml(&config(
        &up,
        "[shield.connections]\nrate = \"1/h\"\nburst = 4\n",
    ));
    // The harness's start-up probe was the first new connection.
    for i in 0..3 {
        assert_eq!(roundtrip(p.addr(), &get(&format!("/n{i}"), "")).status, 200);
    }
    let mut c = Conn::open(p.addr());
    assert!(
        c.wait_closed(Duration::from_secs(10)),
        "fourth new connection accepted"
    );
    assert!(up.requests_to("/n3").is_empty());
}

#[test]
fn repeated_waf_blocks_ban_the_attacker() {
    let up = Upstream::start_opts(UpstreamOpts::named("app"), 0);
    // The built-in rules in block mode, and a jail on WAF blocks.
    let p = Palisade::start_toml(&config(
        &up,
        "[route.waf]\nmode = \"block\"\n\n[[shield.jail]]\nname = \"attackers\"\nevent = \"waf_block\"\nthreshold = 3\nwindow = \"1m\"\nban = \"10m\"\n",
    ));
    let attack = get("/search?q=1%27%20or%201%3D1--", "");
    for _ in 0..3 {
        assert_eq!(roundtrip(p.addr(), &attack).status, 403);
    }
    let listed = wait_for(Duration::from_secs(10), || {
        let (_, out, _) = ban_cli(&p, &["list"]);
        out.contains("127.0.0.1").then_some(out)
    })
    .unwrap_or_else(|| panic!("no ban after 3 WAF blocks\n{}", p.logs()));
    assert!(listed.contains("attackers"), "{listed}");
    // Banned: even a benign request reaches nothing now.
    if let Ok(r) = try_roundtrip(p.addr(), &get("/benign", "")) {
        assert_eq!(r.status, 403, "{}", r.body_str());
    }
    assert_eq!(
        up.request_count(),
        0,
        "no attack and no banned request reached the app"
    );
}
