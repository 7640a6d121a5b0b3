//! Configuration reload (SIGHUP and `palisade reload`): live traffic never
//! fails, the new config takes effect, an invalid config is refused while the
//! old one keeps serving, and in-flight requests finish where they started.

// Test helpers: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const RELOAD_WAIT: Duration = Duration::from_secs(20);

fn reloads(p: &Palisade, result: &str) -> f64 {
    metric_value(
        &p.metrics(),
        "palisade_config_reloads_total",
        &[("result", result)],
    )
    .unwrap_or(0.0)
}

fn wait_reloads(p: &Palisade, result: &str, at_least: f64) -> bool {
    wait_for(RELOAD_WAIT, || {
        (reloads(p, result) >= at_least).then_some(())
    })
    .is_some()
}

/// Polls until a request is served by `name` (the new config is active).
fn wait_served_by(p: &Palisade, name: &str) -> bool {
    wait_for(RELOAD_WAIT, || {
        let r = http_get(p.addr(), "/probe", "test.local");
        (r.header("x-upstream") == Some(name)).then_some(())
    })
    .is_some()
}

#[test]
fn reload_under_keep_alive_load_fails_no_request() {
    let a = Upstream::start("a");
    let b = Upstream::start("b");
    let spec_a = ConfigSpec::proxy(&[a.addr]);
    let spec_b = ConfigSpec::proxy(&[b.addr]);
    let p = Palisade::start(&spec_a);
    let addr = p.addr();

    const THREADS: usize = 4;
    const PER_THREAD: usize = 150;
    let stop_early = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let stop_early = stop_early.clone();
            std::thread::spawn(move || {
                let mut failures = Vec::new();
                let mut conn = Conn::open(addr);
                for i in 0..PER_THREAD {
                    if stop_early.load(Ordering::SeqCst) {
                        break;
                    }
                    let req = format!("GET /load-{t}-{i} HTTP/1.1\r\nHost: test.local\r\n\r\n");
                    if let Err(e) = conn.send(req.as_bytes()) {
                        failures.push(format!("{t}/{i}: send: {e}"));
                        conn = Conn::open(addr);
                        continue;
                    }
                    match conn.read_response_within(IO_TIMEOUT, false) {
                        Ok(r) if r.status == 200 => {
                            // A server may end a keep-alive connection, but
                            // only by saying so on a response.
                            if r.header("connection")
                                .map(|v| v.eq_ignore_ascii_case("close"))
                                == Some(true)
                            {
                                conn = Conn::open(addr);
                            }
                        }
                        Ok(r) => failures.push(format!("{t}/{i}: status {}", r.status)),
                        Err(e) => {
                            failures.push(format!("{t}/{i}: {e:?}"));
                            conn = Conn::open(addr);
                        }
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                failures
            })
        })
        .collect();

    // Five reloads, alternating between two upstreams, while the load runs.
    for n in 1..=5u32 {
        std::thread::sleep(Duration::from_millis(300));
        p.rewrite_config(&if n % 2 == 1 { &spec_b } else { &spec_a }.render());
        p.signal("HUP");
        if !wait_reloads(&p, "ok", f64::from(n)) {
            stop_early.store(true, Ordering::SeqCst);
            panic!(
                "reload {n} not counted as ok:\n{}\n{}",
                p.metrics(),
                p.logs()
            );
        }
    }
    let failures: Vec<String> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    assert!(
        failures.is_empty(),
        "{} failed requests during reloads: {failures:?}",
        failures.len()
    );
    assert_eq!(reloads(&p, "error"), 0.0);
    // The last config (5th reload → b) is the one serving now.
    assert!(wait_served_by(&p, "b"), "reloaded upstream not in use");
    assert!(a.request_count() > 0 && b.request_count() > 0);
}

#[test]
fn invalid_config_on_reload_keeps_old_config_serving() {
    let a = Upstream::start("a");
    let b = Upstream::start("b");
    let mut p = Palisade::start(&ConfigSpec::proxy(&[a.addr]));
    assert_eq!(
        http_get(p.addr(), "/before", "test.local").header("x-upstream"),
        Some("a")
    );
    let errors_before = reloads(&p, "error");

    // Points at b, but has an unknown key: the whole file must be refused.
    let bad = ConfigSpec::proxy(&[b.addr])
        .render()
        .replace("[admin]", "no_such_key_xyz = 1\n\n[admin]");
    p.rewrite_config(&bad);
    p.signal("HUP");
    assert!(
        wait_reloads(&p, "error", errors_before + 1.0),
        "invalid reload not counted as error:\n{}",
        p.metrics()
    );
    assert!(
        p.alive(),
        "palisade exited on an invalid reload:\n{}",
        p.logs()
    );
    for i in 0..5 {
        let r = http_get(p.addr(), &format!("/after-{i}"), "test.local");
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("x-upstream"),
            Some("a"),
            "part of the invalid config was applied"
        );
    }
    assert_eq!(b.request_count(), 0);
    assert!(
        wait_for(Duration::from_secs(5), || p
            .logs()
            .contains("no_such_key_xyz")
            .then_some(()))
        .is_some(),
        "the reload error does not name the offending key:\n{}",
        p.logs()
    );

    // A valid config afterwards is applied: the error did not wedge reloads.
    p.rewrite_config(&ConfigSpec::proxy(&[b.addr]).render());
    p.signal("HUP");
    assert!(wait_served_by(&p, "b"));
}

#[test]
fn in_flight_request_finishes_on_the_config_it_started_with() {
    let mut ao = UpstreamOpts::named("a");
    ao.slow_prefix = Some(("/slow".into(), Duration::from_secs(4)));
    let a = Upstream::start_opts(ao, 0);
    let b = Upstream::start("b");
    let p = Palisade::start(&ConfigSpec::proxy(&[a.addr]));
    let addr = p.addr();
    let slow = std::thread::spawn(move || http_get(addr, "/slow", "test.local"));
    assert!(
        a.wait_requests(1, IO_TIMEOUT),
        "slow request did not reach a"
    );
    p.rewrite_config(&ConfigSpec::proxy(&[b.addr]).render());
    p.signal("HUP");
    assert!(wait_served_by(&p, "b"), "reload not applied");
    let r = slow.join().unwrap();
    assert_eq!(
        r.status,
        200,
        "in-flight request broken by reload: {}",
        r.body_str()
    );
    assert_eq!(r.header("x-upstream"), Some("a"));
}

#[test]
fn palisade_reload_command_via_admin_applies_new_config() {
    let a = Upstream::start("a");
    let b = Upstream::start("b");
    let p = Palisade::start(&ConfigSpec::proxy(&[a.addr]));
    p.rewrite_config(&ConfigSpec::proxy(&[b.addr]).render());
    let admin = p.admin_addr().to_string();
    let (status, out, err) = run_cli(&["reload", "--admin", &admin], Duration::from_secs(30));
    assert!(
        status.success(),
        "palisade reload --admin failed: {status}\n{out}\n{err}"
    );
    assert!(wait_served_by(&p, "b"), "reload via admin not applied");
    assert!(reloads(&p, "ok") >= 1.0);
}

#[test]
fn palisade_reload_command_via_pid_file_applies_new_config() {
    let a = Upstream::start("a");
    let b = Upstream::start("b");
    let p = Palisade::start(&ConfigSpec::proxy(&[a.addr]));
    p.rewrite_config(&ConfigSpec::proxy(&[b.addr]).render());
    // -c: the pid file is found in the config's data_dir.
    let cfg = p.config_path.display().to_string();
    let (status, out, err) = run_cli(&["reload", "-c", &cfg], Duration::from_secs(30));
    assert!(
        status.success(),
        "palisade reload -c failed: {status}\n{out}\n{err}"
    );
    assert!(wait_served_by(&p, "b"), "reload via pid file not applied");

    p.rewrite_config(&ConfigSpec::proxy(&[a.addr]).render());
    let pid_file = p.dir.path().join("data").join("palisade.pid");
    let pid_text = std::fs::read_to_string(&pid_file).expect("pid file in data_dir");
    assert_eq!(pid_text.trim(), p.pid().to_string());
    let pf = pid_file.display().to_string();
    let (status, out, err) = run_cli(&["reload", "--pid-file", &pf], Duration::from_secs(30));
    assert!(
        status.success(),
        "palisade reload --pid-file failed: {status}\n{out}\n{err}"
    );
    assert!(wait_served_by(&p, "a"), "reload via --pid-file not applied");
}

#[test]
fn palisade_reload_command_reports_invalid_config() {
    let a = Upstream::start("a");
    let b = Upstream::start("b");
    let p = Palisade::start(&ConfigSpec::proxy(&[a.addr]));
    let bad = ConfigSpec::proxy(&[b.addr])
        .render()
        .replace("[admin]", "no_such_key_abc = 1\n\n[admin]");
    p.rewrite_config(&bad);
    let admin = p.admin_addr().to_string();
    let (status, out, err) = run_cli(&["reload", "--admin", &admin], Duration::from_secs(30));
    assert!(
        !status.success(),
        "reload of an invalid config reported success:\n{out}\n{err}"
    );
    assert!(
        format!("{out}{err}").contains("no_such_key_abc"),
        "the error does not name the key:\n{out}\n{err}"
    );
    let r = http_get(p.addr(), "/still-a", "test.local");
    assert_eq!(r.header("x-upstream"), Some("a"));
    assert_eq!(b.request_count(), 0);
}
