//! What operators read: the JSON access log (one line per request, also for
//! rejected ones) and the admin listener's /healthz and /metrics.

// Test helpers: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::time::Duration;

/// The access-log records (JSON lines on stdout) so far.
fn access_records(p: &Palisade) -> Vec<serde_json::Value> {
    p.stdout()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("request_id").is_some() && v.get("status").is_some())
        .collect()
}

fn wait_record(p: &Palisade, pred: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    wait_for(Duration::from_secs(10), || {
        access_records(p).into_iter().find(|v| pred(v))
    })
    .unwrap_or_else(|| panic!("no matching access-log record:\n{}", p.logs()))
}

#[test]
fn access_log_has_one_json_line_per_request_with_all_fields() {
    let up = Upstream::start("app");
    let p = Palisade::start(&ConfigSpec::proxy(&[up.addr]));
    let r = roundtrip(
        p.addr(),
        b"POST /logged HTTP/1.1\r\nHost: log.example\r\nX-Request-Id: rid-log-1\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    );
    assert_eq!(r.status, 200);
    let rec = wait_record(&p, |v| v["request_id"] == "rid-log-1");
    for key in [
        "time",
        "request_id",
        "client_ip",
        "method",
        "host",
        "path",
        "status",
        "bytes_in",
        "bytes_out",
        "route",
        "upstream",
    ] {
        assert!(
            rec.get(key).is_some(),
            "access-log record lacks {key}: {rec}"
        );
    }
    assert!(
        rec.get("duration_ms").or(rec.get("duration")).is_some(),
        "no duration: {rec}"
    );
    assert!(
        rec.as_object()
            .unwrap()
            .keys()
            .any(|k| k.starts_with("upstream_") && k != "upstream"),
        "no upstream duration: {rec}"
    );
    assert_eq!(rec["client_ip"], "127.0.0.1");
    assert_eq!(rec["method"], "POST");
    assert_eq!(rec["host"], "log.example");
    assert_eq!(rec["path"], "/logged");
    assert_eq!(rec["status"], 200);
    assert_eq!(rec["bytes_in"], 5);
    assert!(rec["bytes_out"].as_u64().unwrap() >= 4, "{rec}");
    // Exactly one line for that request.
    let n = access_records(&p)
        .iter()
        .filter(|v| v["request_id"] == "rid-log-1")
        .count();
    assert_eq!(n, 1);
}

#[test]
fn malformed_request_gets_4xx_and_a_log_line() {
    let up = Upstream::start("app");
    let p = Palisade::start(&ConfigSpec::proxy(&[up.addr]));
    let r = roundtrip(p.addr(), b"GET /malformed HTTP/1.1\nHost: test.local\n\n");
    assert_eq!(r.status, 400);
    let id = r.header("x-request-id").map(String::from);
    let rec = wait_record(&p, |v| v["status"] == 400);
    if let Some(id) = id {
        assert_eq!(rec["request_id"], id.as_str(), "{rec}");
    }
}

#[test]
fn healthz_and_metrics_on_admin_listener() {
    let up = Upstream::start("app");
    let p = Palisade::start(&ConfigSpec::proxy(&[up.addr]));
    assert_eq!(p.admin_get("/healthz").status, 200);
    for i in 0..3 {
        assert_eq!(
            http_get(p.addr(), &format!("/m{i}"), "test.local").status,
            200
        );
    }
    let m = wait_for(Duration::from_secs(10), || {
        let m = p.metrics();
        (metric_value(&m, "palisade_requests_total", &[("code", "200")]).unwrap_or(0.0) >= 3.0)
            .then_some(m)
    })
    .unwrap_or_else(|| {
        panic!(
            "palisade_requests_total{{code=\"200\"}} never reached 3:\n{}",
            p.metrics()
        )
    });
    let count = metric_value(&m, "palisade_request_duration_seconds_count", &[]).unwrap_or(0.0);
    assert!(count >= 3.0, "histogram count {count}:\n{m}");
    assert!(
        m.contains("palisade_request_duration_seconds_bucket{"),
        "no histogram buckets:\n{m}"
    );
    assert!(
        metric_value(&m, "palisade_connections_open", &[]).is_some(),
        "{m}"
    );
    assert!(
        metric_value(&m, "palisade_config_reloads_total", &[("result", "ok")]).is_some(),
        "{m}"
    );
    assert!(
        metric_value(
            &m,
            "palisade_upstream_healthy",
            &[("upstream", "app"), ("server", &up.addr.to_string())]
        ) == Some(1.0),
        "{m}"
    );
    // Every sample line is `name{labels} value` or `name value`.
    for line in m.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let value = line.rsplit_once(' ').map(|(_, v)| v).unwrap_or("");
        assert!(value.parse::<f64>().is_ok(), "bad sample line {line:?}");
    }
}

#[test]
fn error_answers_are_counted_by_code() {
    let dead = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let p = Palisade::start(&ConfigSpec::proxy(&[dead]));
    assert_eq!(http_get(p.addr(), "/", "test.local").status, 502);
    let got = wait_for(Duration::from_secs(10), || {
        metric_value(&p.metrics(), "palisade_requests_total", &[("code", "502")])
            .filter(|v| *v >= 1.0)
    });
    assert!(got.is_some(), "{}", p.metrics());
}
