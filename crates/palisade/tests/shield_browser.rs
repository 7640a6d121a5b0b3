//! The proof-of-work challenge solved by a real headless Chromium: the page's
//! script finds the nonce with Web Crypto, posts it, gets the cookie and
//! reloads; the request then reaches the application with the cookie.
//!
//! Needs the Debian package `chromium`: under CI (`CI=true`) its absence
//! fails the test; otherwise the test is skipped with a printed reason.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn chromium() -> Option<&'static str> {
    let found = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    if found.is_none() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("chromium is required under CI (Debian package chromium)");
        }
        eprintln!("SKIPPED: chromium is not installed (apt-get install chromium)");
    }
    found
}

/// Loads `url` in headless Chromium and returns the final DOM (bounded).
fn dump_dom(bin: &str, url: &str) -> String {
    let dir = TempDir::new("chromium");
    let out = dir.path().join("dom.html");
    let mut child = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            // Let the page's script, its fetch and the reload run before the dump.
            "--virtual-time-budget=20000",
            "--dump-dom",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.path().join("profile").display()
        ))
        .arg(url)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::read_to_string(out).unwrap_or_default()
}

#[test]
fn headless_chromium_solves_the_challenge() {
    let Some(bin) = chromium() else { return };
    let mut o = UpstreamOpts::named("app");
    o.body = Some(
        b"<!doctype html><html><body><p id=\"app\">welcome from the app</p></body></html>".to_vec(),
    );
    o.extra_headers = vec![("Content-Type".into(), "text/html".into())];
    let up = Upstream::start_opts(o, 0);
    let toml = format!(
        "{}\n[shield.challenge]\nroutes = [\"*\"]\ndifficulty = 12\n",
        ConfigSpec::proxy(&[up.addr]).render()
    );
    let p = Palisade::start_toml(&toml);
    let url = format!("http://127.0.0.1:{}/page", p.port);
    // Without the cookie the application is not reached.
    assert_eq!(
        roundtrip(
            p.addr(),
            b"GET /page HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        )
        .status,
        403
    );
    assert!(up.requests_to("/page").is_empty());

    let dom = dump_dom(bin, &url);
    let reached = wait_for(Duration::from_secs(10), || {
        up.requests_to("/page").into_iter().find(|r| {
            r.header("cookie")
                .is_some_and(|c| c.contains("palisade_pow="))
        })
    });
    assert!(
        reached.is_some(),
        "the application never got the request with the cookie\n--- dom ---\n{dom}\n--- palisade ---\n{}",
        p.logs()
    );
    assert!(dom.contains("welcome from the app"), "final page:\n{dom}");
    assert!(p.stderr().contains("challenge_solved"), "{}", p.logs());
}
