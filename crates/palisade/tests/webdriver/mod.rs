//! A W3C WebDriver client over plain HTTP for the headless Chromium tests
//! (chromedriver from Debian `chromium-driver`): just the commands the
//! tests use, each bounded by [`WEBDRIVER_TIMEOUT`], element lookups
//! retried for 20 s because a click can return before the next page loads.

#![allow(dead_code)] // each browser test uses a different subset

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

use crate::common::{free_port, tool_present, wait_for, Conn, TempDir};

/// 120 s: longest wait for one WebDriver command (browser start included).
pub const WEBDRIVER_TIMEOUT: Duration = Duration::from_secs(120);
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The Chromium and chromedriver binaries; `None` (test skipped) when one
/// is missing outside CI, a failure under CI.
pub fn browser_tools() -> Option<(&'static str, &'static str)> {
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    let driver = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    let ok = tool_present(
        chromium.is_some() && driver.is_some(),
        "chromium and chromedriver (apt-get install chromium chromium-driver)",
    );
    chromium.zip(driver).filter(|_| ok)
}

/// A chromedriver process with one browser session; both end on drop.
pub struct Driver {
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
    /// Starts chromedriver on a free loopback port and a headless Chromium
    /// session with a `width`×`height` window; screenshots go to
    /// `target/tmp/{shots}/`.
    pub fn start(chromium: &str, driver: &str, shots: &str, (width, height): (u32, u32)) -> Driver {
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
        let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(shots);
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
                         format!("--window-size={width},{height}"),
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

    pub fn try_call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
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

    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let v = self
            .try_call(method, path, body)
            .unwrap_or_else(|e| panic!("webdriver {method} {path}: {e}"));
        if v["value"].get("error").is_some() {
            panic!("webdriver {method} {path}: {v}");
        }
        v
    }

    pub fn s(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    pub fn goto(&self, url: &str) {
        self.call("POST", &self.s("/url"), Some(json!({ "url": url })));
    }

    pub fn url(&self) -> String {
        self.call("GET", &self.s("/url"), None)["value"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub fn source(&self) -> String {
        self.call("GET", &self.s("/source"), None)["value"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub fn element(&self, css: &str) -> String {
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

    pub fn type_into(&self, css: &str, text: &str) {
        let e = self.element(css);
        self.call(
            "POST",
            &self.s(&format!("/element/{e}/value")),
            Some(json!({ "text": text })),
        );
    }

    /// Waits (bounded) until the page shows `needle`: a click that submits
    /// a form can return before the next page has loaded, so whatever is
    /// asserted after it waits for that page first.
    pub fn wait_page(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(v) = self.try_call("GET", &self.s("/source"), None) {
                if v["value"].as_str().is_some_and(|src| src.contains(needle)) {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the page never showed {needle:?}; at {}:\n{}",
                self.url(),
                self.source()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn click(&self, css: &str) {
        let e = self.element(css);
        self.call(
            "POST",
            &self.s(&format!("/element/{e}/click")),
            Some(json!({})),
        );
    }

    pub fn screenshot(&mut self, name: &str) -> std::path::PathBuf {
        let v = self.call("GET", &self.s("/screenshot"), None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(v["value"].as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "screenshot is a PNG");
        self.n += 1;
        let path = self.shots.join(format!("{:02}-{name}.png", self.n));
        std::fs::write(&path, png).unwrap();
        eprintln!("screenshot: {}", path.display());
        path
    }

    pub fn rect(&self, css: &str) -> Value {
        let e = self.element(css);
        self.call("GET", &self.s(&format!("/element/{e}/rect")), None)["value"].clone()
    }

    pub fn text(&self, css: &str) -> String {
        let e = self.element(css);
        self.call("GET", &self.s(&format!("/element/{e}/text")), None)["value"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Waits (bounded) until the text of `css` satisfies `ok`; `what`
    /// says what was expected in the failure message.
    pub fn wait_text(&self, css: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
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

    pub fn count(&self, css: &str) -> usize {
        let v = self.call(
            "POST",
            &self.s("/elements"),
            Some(json!({"using": "css selector", "value": css})),
        );
        v["value"].as_array().map(Vec::len).unwrap_or(0)
    }

    pub fn cookies(&self) -> Vec<Value> {
        self.call("GET", &self.s("/cookie"), None)["value"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}
