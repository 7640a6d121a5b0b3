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

use base64::Engine as _;
use common::*;
use dashboard_support::*;
use identity_support::{Users, PASSWORD};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// 120 s: longest wait for one WebDriver command (browser start included).
const WEBDRIVER_TIMEOUT: Duration = Duration::from_secs(120);
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn tools() -> Option<(&'static str, &'static str)> {
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    let driver = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    match (chromium, driver) {
        (Some(c), Some(d)) => Some((c, d)),
        _ => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("chromium and chromium-driver are required under CI");
            }
            eprintln!("SKIPPED: chromium or chromedriver missing (apt-get install chromium chromium-driver)");
            None
        }
    }
}

struct Driver {
    child: Child,
    addr: SocketAddr,
    session: String,
    shots: std::path::PathBuf,
    n: usize,
    _dir: TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let s = format!("/session/{}", self.session);
            let _ = self.try_call("DELETE", &s, None);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    fn start(chromium: &str, driver: &str) -> Driver {
        let dir = TempDir::new("chromedriver");
        let port = free_port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-browser");
        std::fs::create_dir_all(&shots).unwrap();
        let mut d = Driver {
            child,
            addr,
            session: String::new(),
            shots,
            n: 0,
            _dir: dir,
        };
        let ready = wait_for(Duration::from_secs(30), || {
            d.try_call("GET", "/status", None)
                .ok()
                .filter(|v| v["value"]["ready"] == json!(true))
        });
        assert!(ready.is_some(), "chromedriver did not become ready");
        let profile = d._dir.path().join("profile").display().to_string();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--no-first-run",
                         "--disable-background-networking", "--disable-sync",
                         "--window-size=420,900",
                         format!("--user-data-dir={profile}")]
            }
        }}});
        let v = d.call("POST", "/session", Some(caps));
        d.session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_string();
        d
    }

    fn try_call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let raw = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        let stream = std::net::TcpStream::connect_timeout(&self.addr, Duration::from_secs(5))
            .map_err(|e| e.to_string())?;
        stream.set_read_timeout(Some(WEBDRIVER_TIMEOUT)).unwrap();
        let mut c = Conn::from_stream(stream);
        c.send(raw.as_bytes()).map_err(|e| e.to_string())?;
        let r = c
            .read_response_within(WEBDRIVER_TIMEOUT, false)
            .map_err(|e| format!("{e:?}"))?;
        serde_json::from_slice(&r.body).map_err(|e| format!("{e}: {}", r.body_str()))
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let v = self
            .try_call(method, path, body)
            .unwrap_or_else(|e| panic!("webdriver {method} {path}: {e}"));
        if v["value"].get("error").is_some() {
            panic!("webdriver {method} {path}: {v}");
        }
        v
    }

    fn s(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    fn goto(&self, url: &str) {
        self.call("POST", &self.s("/url"), Some(json!({ "url": url })));
    }

    fn url(&self) -> String {
        self.call("GET", &self.s("/url"), None)["value"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn source(&self) -> String {
        self.call("GET", &self.s("/source"), None)["value"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn element(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let v = self
                .try_call(
                    "POST",
                    &self.s("/element"),
                    Some(json!({"using": "css selector", "value": css})),
                )
                .unwrap();
            if let Some(id) = v["value"][ELEMENT].as_str() {
                return id.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no element {css} ({v}) on {}:\n{}",
                self.url(),
                self.source()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn type_into(&self, css: &str, text: &str) {
        let e = self.element(css);
        self.call(
            "POST",
            &self.s(&format!("/element/{e}/value")),
            Some(json!({ "text": text })),
        );
    }

    fn click(&self, css: &str) {
        let e = self.element(css);
        self.call(
            "POST",
            &self.s(&format!("/element/{e}/click")),
            Some(json!({})),
        );
    }

    fn screenshot(&mut self, name: &str) {
        let v = self.call("GET", &self.s("/screenshot"), None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(v["value"].as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "screenshot is a PNG");
        self.n += 1;
        let path = self.shots.join(format!("{:02}-{name}.png", self.n));
        std::fs::write(&path, png).unwrap();
        eprintln!("screenshot: {}", path.display());
    }
}

impl Driver {
    fn text(&self, css: &str) -> String {
        let e = self.element(css);
        self.call("GET", &self.s(&format!("/element/{e}/text")), None)["value"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    fn wait_text(&self, css: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let t = self.text(css);
            if ok(&t) {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "{css}: {what}: got {t:?}\n{}",
                self.source()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

#[test]
fn chromium_logs_in_sees_counts_live_feed_and_unbans() {
    let Some((chromium, chromedriver)) = tools() else {
        return;
    };
    let users = Users::new();
    users.add("alice", &["admin"]);
    let up = Upstream::start("app");
    let p = Palisade::start_toml(&config(up.addr, &users));
    let base = format!("http://{}", p.admin_addr());
    let mut d = Driver::start(chromium, chromedriver);

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
