//! Monitoring end to end: the real binary with the WAF in block mode, a
//! webhook receiver on loopback, and the admin API.
//!
//! - A burst of 1,000 blocked requests gives exactly one batched alert
//!   carrying the count, and the events are in the store (`GET /events`
//!   filters) and in the metrics.
//! - Reloads (good and bad) and admin bans become events; attacker data
//!   comes back from `/events` byte for byte, as JSON that browsers may not
//!   sniff.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// SQL injection the built-in rules block.
const SQLI: &str = "/?q=1%27%20OR%20%271%27%3D%271";

/// A loopback HTTP receiver that answers 200 and records each POST body.
struct Receiver {
    addr: SocketAddr,
    bodies: Arc<Mutex<Vec<String>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let b = bodies.clone();
        thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                s.set_read_timeout(Some(Duration::from_secs(10))).ok();
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                let body = loop {
                    let n = match s.read(&mut chunk) {
                        Ok(0) | Err(_) => break None,
                        Ok(n) => n,
                    };
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let len: usize = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().to_string())
                            })
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0);
                        if body.len() >= len {
                            break Some(body.to_string());
                        }
                    }
                };
                let _ = s.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                if let Some(body) = body {
                    b.lock().unwrap().push(body);
                }
            }
        });
        Receiver { addr, bodies }
    }

    fn bodies(&self) -> Vec<String> {
        self.bodies.lock().unwrap().clone()
    }
}

fn config(up: SocketAddr, monitor: &str) -> String {
    format!(
        "[server]\ndata_dir = \"@DATA_DIR@\"\nshutdown_grace = \"5s\"\naccess_log = \"off\"\n\n\
         [admin]\nlisten = \"127.0.0.1:@ADMIN@\"\n\n\
         [[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:@LISTEN@\"\nprotocol = \"http\"\n\n\
         [[upstream]]\nname = \"app\"\nservers = [\"{up}\"]\n\n\
         [[route]]\nname = \"shop\"\npath_prefix = \"/\"\nupstream = \"app\"\n[route.waf]\nmode = \"block\"\n\n\
         {monitor}\n"
    )
}

fn events(p: &Palisade, query: &str) -> (u16, Value) {
    let r = p.admin_get(&format!("/events{query}"));
    let v = serde_json::from_str(&r.body_str())
        .unwrap_or_else(|e| panic!("/events{query}: {e}: {}", r.body_str()));
    (r.status, v)
}

fn admin(p: &Palisade, method: &str, path: &str, body: &str) -> Response {
    roundtrip(
        p.admin_addr(),
        format!(
            "{method} {path} HTTP/1.1\r\nHost: admin\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
}

#[test]
fn a_burst_of_1000_blocked_requests_gives_one_batched_alert() {
    let up = Upstream::start("app");
    let hook = Receiver::start();
    let p = Palisade::start_toml(&config(
        up.addr,
        &format!(
            "[[monitor.alert]]\nname = \"ops\"\ntype = \"webhook\"\nurl = \"http://{}/hook\"\nkinds = [\"waf_block\"]\nbatch = \"40s\"\ndedup = \"10m\"\n",
            hook.addr
        ),
    ));
    let addr = p.addr();
    let workers: Vec<_> = (0..4)
        .map(|_| {
            thread::spawn(move || {
                let mut c = Conn::open(addr);
                for _ in 0..250 {
                    let r = c.roundtrip(
                        format!("GET {SQLI} HTTP/1.1\r\nHost: shop.test\r\n\r\n").as_bytes(),
                    );
                    assert_eq!(r.status, 403);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(
        up.requests().len(),
        0,
        "blocked requests never reach the app"
    );

    // The batch window (40s, from the first block) is longer than the
    // burst takes even on a loaded debug build.
    let first = wait_for(Duration::from_secs(90), || hook.bodies().into_iter().next())
        .expect("no alert within 90s");
    // The kind is now muted for 10 minutes: a duplicate alert would come
    // from a bug, within a few 100ms ticks.
    thread::sleep(Duration::from_secs(3));
    let all = hook.bodies();
    assert_eq!(all.len(), 1, "exactly one alert for the wave: {all:#?}");
    let alert: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(alert["kind"], "waf_block");
    assert_eq!(alert["count"], 1000, "{alert:#}");
    assert_eq!(alert["clients"][0]["client"], "127.0.0.1");
    assert_eq!(alert["clients"][0]["count"], 1000);
    assert_eq!(alert["routes"][0]["route"], "shop");
    let rule = alert["rules"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(alert["rules"][0]["count"], 1000);

    // The store has them (the writer thread is asynchronous: wait).
    let (status, latest) = events(&p, "?kind=waf_block&limit=5");
    assert_eq!(status, 200);
    let latest = latest.as_array().unwrap();
    assert_eq!(latest.len(), 5);
    assert_eq!(latest[0]["client"], "127.0.0.1");
    assert_eq!(latest[0]["route"], "shop");
    assert_eq!(latest[0]["status"], 403);
    assert_eq!(latest[0]["uri"], SQLI);
    assert!(latest[0]["request_id"]
        .as_str()
        .is_some_and(|r| !r.is_empty()));
    let n = wait_for(Duration::from_secs(20), || {
        let (_, v) = events(&p, &format!("?rule={rule}&limit=1000&since=1h"));
        let n = v.as_array().unwrap().len();
        (n == 1000).then_some(n)
    });
    assert_eq!(n, Some(1000), "all 1000 blocks stored and found by rule id");
    let (_, none) = events(&p, "?client=10.9.9.9");
    assert_eq!(none.as_array().unwrap().len(), 0);
    let (_, none) = events(&p, "?route=other");
    assert_eq!(none.as_array().unwrap().len(), 0);
    for bad in [
        "?kind=bogus",
        "?since=yesterday",
        "?client=x",
        "?limit=-1",
        "?colour=red",
    ] {
        let (status, v) = events(&p, bad);
        assert_eq!(status, 400, "{bad}");
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{bad}");
    }

    let m = p.metrics();
    assert_eq!(
        metric_value(&m, "palisade_waf_rule_blocks_total", &[("rule", &rule)]),
        Some(1000.0),
        "{m}"
    );
    assert_eq!(
        metric_value(&m, "palisade_alerts_sent_total", &[]),
        Some(1.0)
    );
    assert_eq!(
        metric_value(&m, "palisade_events_dropped_total", &[]),
        Some(0.0)
    );
    assert!(metric_value(&m, "palisade_events_published_total", &[]).unwrap() >= 1000.0);
    assert!(metric_value(&m, "palisade_waf_evaluation_seconds_count", &[]).unwrap() >= 1000.0);
    assert!(metric_value(&m, "palisade_audit_log_bytes", &[]).unwrap() > 0.0);
}

#[test]
fn a_reload_that_changes_monitor_says_it_waits_for_a_restart() {
    let up = Upstream::start("app");
    let p = Palisade::start_toml(&config(up.addr, ""));
    let r = admin(&p, "POST", "/reload", "");
    assert_eq!((r.status, r.body_str().trim()), (200, "reloaded"));
    let text = std::fs::read_to_string(&p.config_path).unwrap();
    std::fs::write(
        &p.config_path,
        format!("{text}\n[monitor.anomaly]\nenabled = false\n"),
    )
    .unwrap();
    let r = admin(&p, "POST", "/reload", "");
    assert_eq!(r.status, 200);
    assert!(
        r.body_str()
            .contains("note: [monitor] changed: takes effect after a restart"),
        "{}",
        r.body_str()
    );
}

#[test]
fn reloads_bans_and_attacker_data_become_events() {
    let up = Upstream::start("app");
    let p = Palisade::start_toml(&config(up.addr, ""));
    // Attacker-chosen bytes in the target and the request id.
    let evil = "/?q=%22%3E%3Cscript%3Ealert(1)%3C/script%3E'%5Cunion+select";
    let rid = "<script>alert(\"x\")</script>\\";
    let r = roundtrip(
        p.addr(),
        format!("GET {evil} HTTP/1.1\r\nHost: shop.test\r\nX-Request-Id: {rid}\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    assert_eq!(r.status, 403);

    assert_eq!(admin(&p, "POST", "/reload", "").status, 200);
    std::fs::write(&p.config_path, "[[listener]]\nname = 1\n").unwrap();
    assert_eq!(admin(&p, "POST", "/reload", "").status, 422);
    let r = admin(
        &p,
        "POST",
        "/bans",
        r#"{"ip":"10.1.2.3","duration":"1h","reason":"test \"ban\""}"#,
    );
    assert_eq!(r.status, 201, "{}", r.body_str());
    assert_eq!(admin(&p, "DELETE", "/bans/10.1.2.3", "").status, 200);

    let deadline = Instant::now() + Duration::from_secs(20);
    let kinds = loop {
        let (_, v) = events(&p, "?limit=50");
        let kinds: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap().to_string())
            .collect();
        if kinds.len() >= 5 || Instant::now() > deadline {
            break kinds;
        }
        thread::sleep(Duration::from_millis(100));
    };
    // Newest first.
    assert_eq!(
        kinds,
        [
            "shield_unban",
            "shield_ban",
            "config_reload_failed",
            "config_reload",
            "waf_block"
        ],
    );
    let r = p.admin_get("/events?kind=waf_block");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    let v: Value = serde_json::from_str(&r.body_str()).unwrap();
    assert_eq!(v[0]["uri"], evil, "the target comes back byte for byte");
    assert_eq!(v[0]["request_id"], rid);
    assert!(
        !r.body_str().contains("\"<script>alert(\"x\")"),
        "quotes are JSON-escaped"
    );
    let (_, v) = events(&p, "?kind=config_reload_failed");
    assert!(
        v[0]["error"].as_str().unwrap().contains("palisade.toml"),
        "{v}"
    );
    let (_, v) = events(&p, "?kind=shield_ban");
    assert_eq!(v[0]["net"], "10.1.2.3");
    assert_eq!(v[0]["reason"], "test \"ban\"");
    assert_eq!(v[0]["duration_s"], 3600);

    // The CLI shows the same events.
    let admin_addr = p.admin_addr().to_string();
    let (status, out, err) = run_cli(
        &[
            "events",
            "--admin",
            &admin_addr,
            "--kind",
            "waf_block",
            "--since",
            "1h",
        ],
        Duration::from_secs(30),
    );
    assert!(status.success(), "{err}");
    assert!(
        out.contains("waf_block") && out.contains("127.0.0.1") && out.contains("shop"),
        "{out}"
    );
    assert!(out.contains("1 event(s)"), "{out}");
    let (status, _, err) = run_cli(
        &["events", "--admin", &admin_addr, "--kind", "nope"],
        Duration::from_secs(30),
    );
    assert!(!status.success());
    assert!(err.contains("unknown kind `nope`"), "{err}");
}

#[test]
fn a_bad_monitor_section_is_refused_with_its_key() {
    let up = Upstream::start("app");
    let e = Palisade::try_start_toml(&config(
        up.addr,
        "[[monitor.alert]]\nname = \"x\"\ntype = \"webhook\"\nurl = \"ftp://nope\"\n",
    ))
    .err()
    .unwrap_or_else(|| panic!("start must fail"));
    assert!(e.contains("monitor.alert[0].url"), "{e}");
    let e = Palisade::try_start_toml(&config(up.addr, "[monitor.anomaly]\nalpha = 2.0\n"))
        .err()
        .unwrap_or_else(|| panic!("start must fail"));
    assert!(e.contains("monitor.anomaly.alpha"), "{e}");
}
