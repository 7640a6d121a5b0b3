//! The dashboard in real headless Chromium (chromedriver, W3C WebDriver
//! over plain HTTP): login form → overview whose counts match the requests
//! this test sent → live feed that gains a row (with an XSS payload shown
//! as text) without a reload → one-click unban that lifts the ban.
//! Screenshots (phone-sized window) are saved under the target directory
//! (`target/tmp/dashboard-browser/*.png`) as artefacts.
//!
//! Needs the Debian packages `chromium` and `chromium-driver`: under CI
//! (`CI=true`) their absence fails the test; otherwise it is skipped with
//! a printed reason.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod dashboard_support;
mod identity_support;
mod webdriver;

use common::*;
use dashboard_support::*;
use identity_support::{Users, PASSWORD};
use webdriver::{browser_tools, Driver};

#[test]
fn chromium_logs_in_sees_counts_live_feed_and_unbans() {
    let Some((chromium, chromedriver)) = browser_tools() else {
        return;
    };
    let users = Users::new();
    users.add("alice", &["admin"]);
    let up = Upstream::start("app");
    let p = Palisade::start_toml(&config(up.addr, &users));
    let base = format!("http://{}", p.admin_addr());
    let mut d = Driver::start(chromium, chromedriver, "dashboard-browser", (420, 900));

    // 1. Not signed in: the dashboard sends the browser to its login form.
    d.goto(&format!("{base}/dashboard/"));
    assert!(d.url().ends_with("/dashboard/login"), "{}", d.url());
    d.screenshot("login");
    d.type_into("#username", "alice");
    d.type_into("#password", PASSWORD);
    d.click("#submit");
    assert_eq!(d.url(), format!("{base}/dashboard/"));
    d.screenshot("overview-empty");

    // 2. Traffic made by the test: 3 clean requests, 4 blocked attacks.
    for _ in 0..3 {
        assert_eq!(send(&p, "/shop/item?id=7"), 200);
    }
    for _ in 0..4 {
        assert_eq!(send(&p, XSS), 403);
    }
    wait_stored(&p, "waf_block", 4);
    d.goto(&format!("{base}/dashboard/"));
    assert_eq!(d.text("#blocked-count"), "4");
    assert_eq!(d.text("#requests-count"), "7");
    assert_eq!(d.text("#blocked-total"), "4");
    assert!(
        d.text("#top-ips").contains("127.0.0.1\t4") || d.text("#top-ips").contains("127.0.0.1 4"),
        "{}",
        d.text("#top-ips")
    );
    assert!(
        d.text("#top-categories").contains("xss"),
        "{}",
        d.text("#top-categories")
    );
    d.screenshot("overview-counts");

    // 3. Live feed: a new attack appears without a reload (the counter
    // would restart at 0 on a reload), its payload shown as text.
    d.goto(&format!("{base}/dashboard/live"));
    d.wait_text("#feed-status", "connected", |t| t == "live");
    assert_eq!(d.text("#feed-count"), "0");
    assert_eq!(send(&p, XSS_IMG), 403);
    d.wait_text("#feed-count", "one new event", |t| t == "1");
    let row = d.text("#feed tr.live");
    assert!(row.contains("waf_block") && row.contains("%3Cimg"), "{row}");
    assert_eq!(d.url(), format!("{base}/dashboard/live"), "no navigation");
    d.screenshot("live-feed");

    // 4. Unban from the UI.
    let r = admin_call(
        &p,
        "POST",
        "/bans",
        r#"{"ip":"203.0.113.7","duration":"1h","reason":"browser test"}"#,
    );
    assert_eq!(r.status, 201, "{}", r.body_str());
    d.goto(&format!("{base}/dashboard/bans"));
    assert_eq!(d.text("#bans-count"), "1");
    d.screenshot("bans");
    d.click("button.unban[data-net=\"203.0.113.7\"]");
    d.wait_text("#note", "unban confirmed", |t| {
        t.contains("Lifted the ban on 203.0.113.7")
    });
    assert_eq!(d.text("#bans-count"), "0");
    assert!(
        !p.admin_get("/bans").body_str().contains("203.0.113.7"),
        "the ban is lifted"
    );
    d.screenshot("unbanned");

    // 5. Event detail and tuning render for the attacks.
    d.goto(&format!("{base}/dashboard/tuning"));
    assert!(d.text("#tuning").contains("ctl:ruleRemoveById="));
    d.screenshot("tuning");
}
