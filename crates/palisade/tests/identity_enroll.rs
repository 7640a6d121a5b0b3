//! TOTP self-enrolment in the portal (`{portal}/totp`), through the real
//! gateway on loopback: the page's QR code decodes to the URI it shows,
//! codes computed from the page's secret (by palisade's own TOTP code and
//! by Python's pyotp) confirm it, recovery codes are shown once and work
//! once, the session is elevated; CSRF, re-enrolment, the config switch,
//! and the redirect of a `two_factor` route. Also: palisade's cookies never
//! reach the upstream, and a relative `[state.sqlite] path` means the same
//! file to `palisade serve` and `palisade user`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod identity_support;

use common::*;
use identity_support::*;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SELF_ENROL: &str = "totp_self_enrollment = true";

fn start(users: &Users, extra: &str) -> (Upstream, Palisade) {
    let up = Upstream::start("app");
    let p = Palisade::start_toml(&config(up.addr, users, extra, ""));
    (up, p)
}

/// Runs a Python snippet with pyotp; `None` (skipped) only when python3 or
/// pyotp is missing and CI is unset. Under CI a missing tool fails.
fn python(script: &str) -> Option<String> {
    let out = Command::new("python3").arg("-c").arg(script).output();
    let missing = match &out {
        Err(e) => Some(format!("python3 not runnable: {e}")),
        Ok(o)
            if !o.status.success()
                && String::from_utf8_lossy(&o.stderr).contains("No module named 'pyotp'") =>
        {
            Some("pyotp not installed (pip install -r tests/requirements.txt)".to_string())
        }
        Ok(_) => None,
    };
    if let Some(why) = missing {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{why}");
        }
        eprintln!("SKIPPED the pyotp step: {why}");
        return None;
    }
    let o = out.unwrap();
    assert!(
        o.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    Some(String::from_utf8(o.stdout).unwrap().trim().to_string())
}

#[test]
fn enrol_in_the_portal_then_sign_in_with_totp_and_recovery_codes() {
    let users = Users::new();
    users.add("alice", &["admin"]);
    let (up, p) = start(&users, SELF_ENROL);
    let a = p.addr();
    let mut b = Browser::default();
    assert_eq!(b.login(a, "alice", PASSWORD, "/app/x").status, 303);
    let one_factor = b.cookie("palisade_session").unwrap();

    // The page: QR code, secret, URI, form; the same secret on a reload.
    let page = b.enrol_page(a, "/admin/home");
    assert_eq!(page.secret.len(), 32, "{}", page.secret);
    assert!(page.body.contains("<label for=\"code\">"), "{}", page.body);
    assert!(!page.body.contains("name=\"secret\""), "never a form field");
    assert!(!page.body.contains("<script"));
    let uri = &page.uri;
    assert_eq!(
        *uri,
        identity::totp::otpauth_uri("palisade", "alice", &page.secret)
    );
    // The SVG: an <svg> element with a title, whose module grid is a QR
    // code (17 + 4v modules plus the quiet zone) that decodes to the URI.
    let svg = &page.svg;
    assert!(
        svg.contains("role=\"img\"") && svg.contains("<title id=\"qr-title\">"),
        "{svg}"
    );
    let (n, _) = svg_grid(svg);
    let w = n - 2 * identity::totp::QR_QUIET_ZONE;
    assert!(w >= 21 && (w - 17) % 4 == 0, "{w} modules");
    assert_eq!(decode_qr_svg(svg), *uri);
    // The QR code of a URI this long is version 5-10 (37-57 modules) at
    // error correction M: big enough for the data, small enough to scan.
    assert!((37..=57).contains(&w), "{} bytes -> {w} modules", uri.len());
    assert_eq!(b.enrol_page(a, "/admin/home").secret, page.secret);

    // CSRF: missing, or a token of another browser: 403, nothing stored.
    fresh_totp_window(8);
    let code = totp_now(&page.secret);
    let r = b.post(a, &format!("{PORTAL}/totp"), &format!("code={code}&rd=%2F"));
    assert_eq!(r.status, 403, "{}", r.body_str());
    let mut other = Browser::default();
    let foreign = other.csrf(a, "login");
    assert_eq!(b.enrol_confirm(a, &foreign, &code, "/").status, 403);
    assert!(users
        .db
        .get("alice")
        .unwrap()
        .unwrap()
        .totp_secret
        .is_none());
    // A wrong code: 422, the same page again, nothing stored.
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let r = b.enrol_confirm(a, &page.csrf, wrong, "/admin/home");
    assert_eq!(r.status, 422, "{}", r.body_str());
    assert!(r.body_str().contains("does not match"));
    assert!(r.body_str().contains("role=\"alert\""));
    assert!(users
        .db
        .get("alice")
        .unwrap()
        .unwrap()
        .totp_secret
        .is_none());
    // A secret posted by the client is ignored: only the pending one counts.
    let mine = identity::totp::generate_secret().unwrap();
    let r = b.post(
        a,
        &format!("{PORTAL}/totp"),
        &format!("csrf={}&secret={mine}&code={}", page.csrf, totp_now(&mine)),
    );
    assert_eq!(r.status, 422, "{}", r.body_str());

    // The right code: TOTP on, ten recovery codes shown once, session
    // elevated under a new ID.
    let r = b.enrol_confirm(a, &page.csrf, &code, "/admin/home");
    let done = r.body_str();
    assert_eq!(r.status, 200, "{done}");
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let codes = recovery_codes_of(&done);
    assert_eq!(codes.len(), 10, "{done}");
    assert!(done.contains("href=\"/admin/home\""), "{done}");
    let elevated = b.cookie("palisade_session").unwrap();
    assert_ne!(elevated, one_factor, "enrolment rotates the session");
    let u = users.db.get("alice").unwrap().unwrap();
    assert_eq!(u.totp_secret.as_deref(), Some(page.secret.as_str()));
    let mut stored = u.recovery_hashes.clone();
    stored.sort();
    let mut want: Vec<String> = codes
        .iter()
        .map(|c| identity::totp::hash_recovery_code(c))
        .collect();
    want.sort();
    assert_eq!(stored, want, "hashed at rest");
    // Two factors now: the admin area is reached at once.
    let r = b.get(a, "/admin/home", "");
    assert_eq!(r.status, 200, "{}", r.body_str());
    let seen = up.requests_to("/admin/home").pop().unwrap();
    assert_eq!(seen.header("remote-user"), Some("alice"));
    // The old one-factor ID died with the rotation.
    let mut old = Browser {
        cookies: vec![("palisade_session".into(), one_factor)],
    };
    assert_eq!(old.get(a, "/app/x", "").status, 302);

    // No second enrolment: the page says so, a POST is refused.
    let r = b.get(a, &format!("{PORTAL}/totp"), "");
    assert_eq!(r.status, 200);
    assert!(r.body_str().contains("already set up"), "{}", r.body_str());
    assert!(!r.body_str().contains("<svg"), "no new QR code");
    let t = b.csrf(a, "login");
    let r = b.enrol_confirm(a, &t, &totp_now(&page.secret), "/");
    assert_eq!(r.status, 409, "{}", r.body_str());
    assert_eq!(
        users.db.get("alice").unwrap().unwrap().totp_secret,
        Some(page.secret.clone())
    );

    // Log out; log in with password + TOTP. The confirming code is used
    // up; the next step's code (within the ±1 window) is fresh.
    let t = b.csrf(a, "logout");
    assert_eq!(
        b.post(a, &format!("{PORTAL}/logout"), &format!("csrf={t}"))
            .status,
        200
    );
    let mut c = Browser::default();
    let r = c.login(a, "alice", PASSWORD, "/admin/home");
    assert_eq!(r.status, 303);
    assert!(r.header("location").unwrap().contains("/second-factor"));
    let r = c.second_factor(a, &code, "/admin/home");
    assert_eq!(r.status, 401, "the enrolment code is not reusable");
    // The page asking again still leads to the target.
    assert_eq!(
        hidden(&r.body_str(), "rd").as_deref(),
        Some("/admin/home"),
        "{}",
        r.body_str()
    );
    let next = identity::totp::code_at(&page.secret, unix_now() + 30).unwrap();
    let r = c.second_factor(a, &next, "/admin/home");
    assert_eq!(r.status, 303, "{}", r.body_str());
    assert_eq!(c.get(a, "/admin/home", "").status, 200);

    // A recovery code signs in once; the second use is refused.
    let mut d = Browser::default();
    assert_eq!(d.login(a, "alice", PASSWORD, "/admin/home").status, 303);
    assert_eq!(d.second_factor(a, &codes[4], "/admin/home").status, 303);
    assert_eq!(d.get(a, "/admin/home", "").status, 200);
    let mut e = Browser::default();
    assert_eq!(e.login(a, "alice", PASSWORD, "/admin/home").status, 303);
    let r = e.second_factor(a, &codes[4], "/admin/home");
    assert_eq!(r.status, 401, "{}", r.body_str());
    assert!(p.stderr().contains("totp enrolled"), "{}", p.logs());
}

#[test]
fn a_two_factor_route_sends_a_user_without_totp_to_enrolment() {
    let users = Users::new();
    users.add("bob", &["admin"]);
    let (up, p) = start(&users, SELF_ENROL);
    let a = p.addr();
    // Straight from the password to the enrolment page.
    let mut b = Browser::default();
    let r = b.login(a, "bob", PASSWORD, "/admin/x?y=1");
    assert_eq!(r.status, 303);
    assert_eq!(
        r.header("location"),
        Some(format!("{PORTAL}/totp?rd=/admin/x%3Fy%3D1").as_str())
    );
    // A one-factor session visiting the route later: second-factor, then
    // (no authenticator) the enrolment page.
    let r = b.get(a, "/admin/x?y=1", "");
    assert_eq!(r.status, 302);
    let sf = r.header("location").unwrap().to_string();
    assert!(sf.contains("/second-factor?rd="), "{sf}");
    let r = b.get(a, &sf, "");
    assert_eq!(r.status, 302, "{}", r.body_str());
    assert_eq!(
        r.header("location"),
        Some(format!("{PORTAL}/totp?rd=/admin/x%3Fy%3D1").as_str())
    );
    assert!(up.requests_to("/admin").is_empty());
    // Not signed in at all: the enrolment page asks for the login first,
    // and comes back to itself.
    let r = Browser::default().get(a, &format!("{PORTAL}/totp?rd=/admin/x"), "");
    assert_eq!(r.status, 302);
    let loc = r.header("location").unwrap();
    assert!(
        loc.starts_with(&format!("{PORTAL}/login?rd=")) && loc.contains("totp"),
        "{loc}"
    );

    // Enrol with a code pyotp computes from the URI the QR code carries
    // (what an authenticator app does after scanning).
    let page = b.enrol_page(a, "/admin/x?y=1");
    let uri = decode_qr_svg(&page.svg);
    fresh_totp_window(8);
    let t = unix_now();
    let code = match python(&format!(
        "import pyotp; print(pyotp.parse_uri({uri:?}).at({t}))"
    )) {
        Some(c) => c,
        None => totp_now(&page.secret),
    };
    assert_eq!(code, identity::totp::code_at(&page.secret, t).unwrap());
    let r = b.enrol_confirm(a, &page.csrf, &code, "/admin/x?y=1");
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert!(r.body_str().contains("href=\"/admin/x?y=1\""));
    let r = b.get(a, "/admin/x?y=1", "");
    assert_eq!(r.status, 200, "{}", r.body_str());
    // pyotp's next code signs in on a new browser.
    let next = python(&format!(
        "import pyotp; print(pyotp.parse_uri({uri:?}).at({}))",
        t + 30
    ))
    .unwrap_or_else(|| identity::totp::code_at(&page.secret, t + 30).unwrap());
    let mut c = Browser::default();
    assert_eq!(c.login(a, "bob", PASSWORD, "/admin/x").status, 303);
    assert_eq!(c.second_factor(a, &next, "/admin/x").status, 303);
}

#[test]
fn self_enrolment_is_off_by_default() {
    let users = Users::new();
    users.add("carol", &["admin"]);
    let (_up, p) = start(&users, "");
    let a = p.addr();
    let mut b = Browser::default();
    let r = b.login(a, "carol", PASSWORD, "/admin/x");
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/admin/x"));
    let r = b.get(a, "/admin/x", "");
    let sf = r.header("location").unwrap().to_string();
    let r = b.get(a, &sf, "");
    assert_eq!(r.status, 403);
    assert!(r.body_str().contains("totp-enroll"), "{}", r.body_str());
    let r = b.get(a, &format!("{PORTAL}/totp"), "");
    assert_eq!(r.status, 403);
    assert!(r.body_str().contains("Self-enrolment is off"));
    let t = b.csrf(a, "login");
    let r = b.enrol_confirm(a, &t, "123456", "/");
    assert_eq!(r.status, 403);
    assert!(users
        .db
        .get("carol")
        .unwrap()
        .unwrap()
        .totp_secret
        .is_none());
}

#[test]
fn portal_cookies_never_reach_the_upstream() {
    let users = Users::new();
    users.add("dave", &[]);
    let (up, p) = start(&users, "");
    let a = p.addr();
    let mut b = Browser::default();
    assert_eq!(b.login(a, "dave", PASSWORD, "/app").status, 303);
    let sid = b.cookie("palisade_session").unwrap();
    let pre = b.cookie("palisade_session_csrf").unwrap();
    // The application's cookies around palisade's, in one header …
    b.cookies.insert(0, ("theme".into(), "dark".into()));
    b.cookies.push(("app_sid".into(), "abc123".into()));
    assert_eq!(b.get(a, "/app/c", "").status, 200);
    let r = up.requests_to("/app/c").pop().unwrap();
    let sent = r.headers_named("cookie").join("; ");
    assert!(
        sent.contains("theme=dark") && sent.contains("app_sid=abc123"),
        "{sent}"
    );
    assert!(!sent.contains(&sid) && !sent.contains(&pre), "{sent}");
    assert!(!sent.contains("palisade_session"), "{sent}");
    assert_eq!(r.header("remote-user"), Some("dave"));
    // … in a header of their own, and on a bypass route.
    let raw = format!(
        "GET /public/c HTTP/1.1\r\nHost: app.test\r\nCookie: palisade_session={sid}\r\nCookie: lang=en\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(roundtrip(a, raw.as_bytes()).status, 200);
    let r = up.requests_to("/public/c").pop().unwrap();
    assert_eq!(r.headers_named("cookie"), vec!["lang=en"]);
    // Only palisade's cookies: no Cookie header at all.
    let raw = format!(
        "GET /app/d HTTP/1.1\r\nHost: app.test\r\nCookie: palisade_session={sid}; palisade_session_csrf={pre}\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(roundtrip(a, raw.as_bytes()).status, 200);
    let r = up.requests_to("/app/d").pop().unwrap();
    assert!(r.headers_named("cookie").is_empty(), "{:?}", r.headers);
}

/// A `palisade serve` started in a working directory other than its config
/// file's (the shared harness starts it in the config's directory).
struct Elsewhere {
    child: Child,
    port: u16,
    dir: TempDir,
    cwd: TempDir,
}

impl Drop for Elsewhere {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Elsewhere {
    fn start(toml: &str) -> Elsewhere {
        let dir = TempDir::new("cfgdir");
        let cwd = TempDir::new("cwd");
        let (port, admin) = (free_port(), free_port());
        let text = toml
            .replace("@LISTEN@", &port.to_string())
            .replace("@ADMIN@", &admin.to_string())
            .replace("@DATA_DIR@", &dir.path().join("data").display().to_string());
        let cfg = dir.write("palisade.toml", text);
        let child = Command::new(palisade_bin())
            .args(["serve", "-c"])
            .arg(&cfg)
            .current_dir(cwd.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap())
            .spawn()
            .unwrap();
        let mut e = Elsewhere {
            child,
            port,
            dir,
            cwd,
        };
        let deadline = Instant::now() + START_DEADLINE;
        while std::net::TcpStream::connect(e.addr()).is_err() {
            if let Some(st) = e.child.try_wait().unwrap() {
                panic!("palisade exited: {st}: {}", e.stderr());
            }
            assert!(Instant::now() < deadline, "not listening: {}", e.stderr());
            std::thread::sleep(Duration::from_millis(50));
        }
        e
    }
    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }
}

#[test]
fn a_relative_state_path_is_the_same_file_for_serve_and_the_cli() {
    let users = Users::new();
    users.add("erin", &[]);
    let up = Upstream::start("app");
    let toml = config(
        up.addr,
        &users,
        "",
        "[state]\nbackend = \"sqlite\"\n[state.sqlite]\npath = \"st/state.db\"\n",
    );
    let p = Elsewhere::start(&toml);
    let a = p.addr();
    let mut b = Browser::default();
    assert_eq!(b.login(a, "erin", PASSWORD, "/app").status, 303);
    assert_eq!(b.get(a, "/app/s", "").status, 200);
    // Relative to the config file's directory, not the working directory.
    assert!(p.dir.path().join("st/state.db").exists(), "{}", p.stderr());
    assert!(!p.cwd.path().join("st").exists());
    // The CLI (another working directory again) revokes in that store.
    let cfg = p.dir.path().join("palisade.toml").display().to_string();
    let (st, out, err) = run_cli(
        &["user", "logout-all", "erin", "-c", &cfg],
        Duration::from_secs(60),
    );
    assert!(st.success(), "{out}{err}");
    let revoked = wait_for(Duration::from_secs(5), || {
        (b.get(a, "/app/s", "").status == 302).then_some(())
    });
    assert!(revoked.is_some(), "logout-all reached serve's store");
}
