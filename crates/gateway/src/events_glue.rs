//! Glue between the gateway and [`monitor`]: every security decision the
//! gateway makes becomes one [`monitor::Event`] on the bus. Each hook in
//! the WAF, shield, tunnel and reload code is a one-line call into this
//! file, so the request path only builds a small event and publishes it
//! (the bus never waits).

use std::net::IpAddr;
use std::sync::Arc;

use http::HeaderValue;
use monitor::events::{category_of, Event, Kind, RuleHit};
use monitor::{Message, Monitor};

use crate::server::Shared;

fn rid(h: &HeaderValue) -> String {
    h.to_str().unwrap_or("-").to_string()
}

/// Connects the shield's jail bans to the bus, and anomalies to the
/// shield when `[monitor.anomaly] ban` is set (called once at start).
pub fn attach(shared: &Arc<Shared>) {
    if let Some(d) = shared
        .monitor
        .config
        .anomaly
        .ban
        .filter(|_| shared.monitor.enabled())
    {
        let mut sub = shared.monitor.bus.subscribe();
        let shield = shared.shield.clone();
        let mon = shared.monitor.clone();
        tokio::spawn(async move {
            // Batched like the other subscribers: the task wakes once per
            // window, not for every WAF event on the bus.
            let mut batch = Vec::new();
            while sub
                .recv_batch(&mut batch, monitor::events::BUS_CAPACITY)
                .await
            {
                for e in std::mem::take(&mut batch) {
                    let (
                        Kind::Anomaly {
                            subject, features, ..
                        },
                        Some(ip),
                    ) = (&e.kind, e.client)
                    else {
                        continue;
                    };
                    if subject != "client" {
                        continue;
                    }
                    let names: Vec<&str> = features.iter().map(|f| f.feature.as_str()).collect();
                    let reason = format!("anomaly: {}", names.join(", "));
                    match shield
                        .add_ban_in(shield.scope(ip), Some(d.0), &reason, "anomaly")
                        .await
                    {
                        Ok(b) => mon.publish(
                            Event::new(Kind::ShieldBan {
                                net: shield::from_prefix(&b.target).to_string(),
                                jail: "anomaly".into(),
                                reason,
                                duration_s: Some(d.0.as_secs()),
                            })
                            .client(ip),
                        ),
                        Err(err) => {
                            tracing::warn!(client = %ip, error = %err, "anomaly ban failed")
                        }
                    }
                }
            }
        });
    }
    let mon = shared.monitor.clone();
    shared.shield.set_ban_observer(Box::new(move |client, ban| {
        let now = ban.created_us;
        mon.publish(
            Event::new(Kind::ShieldBan {
                net: shield::from_prefix(&ban.target).to_string(),
                jail: ban.jail.clone(),
                reason: ban.reason.clone(),
                duration_s: ban.expires_us.map(|e| e.saturating_sub(now) / 1_000_000),
            })
            .client(client),
        );
    }));
}

/// Phase 5 of a request the WAF saw: one `waf_block` (blocked) or
/// `waf_match` (rules logged, request passed) event; nothing for a clean
/// request.
#[allow(clippy::too_many_arguments)]
pub fn waf(
    mon: &Monitor,
    route: &str,
    record: &monitor::Record,
    messages: &[Message],
    blocked: bool,
    status: u16,
    score: u32,
) {
    if (messages.is_empty() && !blocked) || !mon.enabled() {
        return;
    }
    let rules: Vec<RuleHit> = messages
        .iter()
        .take(monitor::events::MAX_RULES_PER_EVENT)
        .map(|m| RuleHit {
            id: m.rule_id,
            msg: monitor::events::clip(&m.message, monitor::events::MAX_FIELD_BYTES),
            severity: m.severity,
            category: category_of(&m.tags),
            data: monitor::events::clip(&m.data, monitor::events::MAX_FIELD_BYTES),
        })
        .collect();
    let method = record.method.clone();
    let uri = monitor::events::clip(&record.uri, monitor::events::MAX_FIELD_BYTES);
    let kind = if blocked {
        Kind::WafBlock {
            method,
            uri,
            status,
            score,
            rules,
        }
    } else {
        Kind::WafMatch {
            method,
            uri,
            status,
            score,
            rules,
        }
    };
    let mut ev = Event::new(kind)
        .request(record.unique_id.clone())
        .route(route);
    ev.client = record.client_ip.parse().ok();
    mon.publish(ev);
}

/// The shield answered a request itself (deny list, ban, rate limit,
/// challenge page or answer).
pub fn shield_answer(
    mon: &Monitor,
    answer: &shield::Answer,
    client: IpAddr,
    request_id: &HeaderValue,
    route: Option<&str>,
) {
    let detail = answer.detail.clone();
    let kind = match answer.kind {
        shield::Kind::Denied => Kind::ShieldRefused {
            reason: "denied".into(),
            detail,
        },
        shield::Kind::Banned => Kind::ShieldRefused {
            reason: "banned".into(),
            detail,
        },
        shield::Kind::RateLimited => Kind::RateLimited { detail },
        shield::Kind::Challenge => Kind::ChallengeIssued { detail },
        shield::Kind::ChallengeSolved => Kind::ChallengeSolved,
        shield::Kind::ChallengeFailed => Kind::ChallengeFailed { detail },
    };
    let mut ev = Event::new(kind).client(client).request(rid(request_id));
    ev.route = route.map(str::to_string);
    mon.publish(ev);
}

/// An operator banned a network through the admin API.
pub fn manual_ban(mon: &Monitor, ban: &shield::Ban) {
    mon.publish(Event::new(Kind::ShieldBan {
        net: shield::from_prefix(&ban.target).to_string(),
        jail: ban.jail.clone(),
        reason: ban.reason.clone(),
        duration_s: ban
            .expires_us
            .map(|e| e.saturating_sub(ban.created_us) / 1_000_000),
    }));
}

/// An operator lifted a ban through the admin API.
pub fn unban(mon: &Monitor, net: &shield::IpNet) {
    mon.publish(Event::new(Kind::ShieldUnban {
        net: net.to_string(),
    }));
}

/// A tunnel connection passed policy and reached its upstream.
pub fn tunnel_accept(mon: &Monitor, peer: IpAddr, listener: &str, identity: &str) {
    mon.publish(
        Event::new(Kind::TunnelAccept {
            listener: listener.into(),
            identity: identity.into(),
        })
        .client(peer),
    );
}

/// A tunnel connection was refused.
pub fn tunnel_deny(mon: &Monitor, peer: IpAddr, listener: &str, identity: &str, reason: &str) {
    mon.publish(
        Event::new(Kind::TunnelDeny {
            listener: listener.into(),
            identity: identity.into(),
            reason: reason.into(),
        })
        .client(peer),
    );
}

/// A tunnel connection closed.
#[allow(clippy::too_many_arguments)]
pub fn tunnel_close(
    mon: &Monitor,
    peer: IpAddr,
    listener: &str,
    identity: &str,
    reason: &str,
    bytes_in: u64,
    bytes_out: u64,
    duration_ms: u64,
) {
    mon.publish(
        Event::new(Kind::TunnelClose {
            listener: listener.into(),
            identity: identity.into(),
            reason: reason.into(),
            bytes_in,
            bytes_out,
            duration_ms,
        })
        .client(peer),
    );
}

/// A config reload finished (`Err`: rejected, the old config serves on).
pub fn reload(mon: &Monitor, res: &crate::Result<()>) {
    mon.publish(Event::new(match res {
        Ok(()) => Kind::ConfigReload,
        Err(e) => Kind::ConfigReloadFailed {
            error: e.to_string(),
        },
    }));
}

/// The identity layer's decisions, for the coordinator to call once
/// identity is wired into the gateway (branch `ident`).
pub mod identity {
    use super::*;

    /// A login succeeded.
    pub fn login_success(mon: &Monitor, client: IpAddr, user: &str, request_id: &HeaderValue) {
        mon.publish(
            Event::new(Kind::LoginSuccess { user: user.into() })
                .client(client)
                .request(rid(request_id)),
        );
    }

    /// A login failed.
    pub fn login_failure(
        mon: &Monitor,
        client: IpAddr,
        user: &str,
        reason: &str,
        request_id: &HeaderValue,
    ) {
        mon.publish(
            Event::new(Kind::LoginFailure {
                user: user.into(),
                reason: reason.into(),
            })
            .client(client)
            .request(rid(request_id)),
        );
    }

    /// An account (or client) was locked out.
    pub fn lockout(mon: &Monitor, client: IpAddr, user: &str, duration_s: u64) {
        mon.publish(
            Event::new(Kind::Lockout {
                user: user.into(),
                duration_s,
            })
            .client(client),
        );
    }
}

/// The inbound anomaly score a transaction's rules kept (CRS v4's
/// `blocking_inbound_anomaly_score`, CRS v3's `anomaly_score`, the built-in
/// rules' `palisade_anomaly_score`), 0 when none.
pub fn waf_score(tx: &seclang::Transaction) -> u32 {
    for name in [
        "blocking_inbound_anomaly_score",
        "anomaly_score",
        "palisade_anomaly_score",
    ] {
        if let Some(v) = tx.tx(name) {
            if let Some(n) = std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok())
            {
                return n;
            }
        }
    }
    0
}

/// The process-wide monitor for a config (lives as long as the process;
/// `[monitor]` changes take effect after a restart).
pub async fn build(cfg: &crate::Config) -> crate::Result<Arc<Monitor>> {
    Monitor::start(&cfg.monitor, &cfg.server.data_dir)
        .map(Arc::new)
        .map_err(|e| {
            crate::Error::io(
                "cannot start monitoring",
                std::io::Error::other(e.to_string()),
            )
        })
}

/// Validates `[monitor]`; errors point at the first `[monitor…]` table
/// (`at`, a byte offset in the file) and name the key.
pub(crate) fn validate_config(
    raw: Option<monitor::Config>,
    v: &crate::config::V,
    at: Option<usize>,
) -> crate::Result<monitor::Config> {
    let Some(cfg) = raw else {
        return Ok(monitor::Config::default());
    };
    match cfg.validate() {
        Ok(()) => Ok(cfg),
        Err((key, msg)) => {
            let at = at.unwrap_or(0);
            v.err(at..at, &key, msg)
        }
    }
}

/// What a reload says when `[monitor]` changed: the monitor is built once
/// per process (the event store's writer thread and its open database,
/// the bus every subscriber holds, the alert sinks' batches and retry
/// queues, the anomaly model's learned baselines) and is not rebuilt by a
/// reload, so that a reload never loses queued alerts, baselines or
/// events in flight.
pub const MONITOR_RESTART_NOTE: &str = "[monitor] changed: takes effect after a restart (the event store, event bus, alert sinks and anomaly baselines live for the whole process)";

/// [`MONITOR_RESTART_NOTE`] when `cfg.monitor` differs from the config the
/// running monitor was started with.
pub fn restart_note(mon: &Monitor, cfg: &crate::Config) -> Option<&'static str> {
    ((mon.enabled() || cfg.monitor.enabled) && cfg.monitor != mon.config)
        .then_some(MONITOR_RESTART_NOTE)
}

/// A reload keeps the monitor running; changed `[monitor]` settings wait
/// for a restart (logged here; `POST /reload` and `palisade reload
/// --admin` print it too).
pub fn on_reload(mon: &Monitor, cfg: &crate::Config) {
    if let Some(note) = restart_note(mon, cfg) {
        tracing::warn!("{note}");
    }
}

/// One finished request, for the anomaly model.
pub fn request_done(
    shared: &Shared,
    client: IpAddr,
    route: Option<&Arc<str>>,
    path: &str,
    status: u16,
    bytes: u64,
    waf_score: u32,
) {
    shared.monitor.observe_request(monitor::anomaly::Sample {
        client,
        route: route.cloned(),
        path_hash: monitor::anomaly::path_hash(path),
        status,
        bytes,
        waf_score,
    });
}

/// Appends the monitor's metrics (and the audit log's byte count) to the
/// admin `/metrics` text.
pub fn render_metrics(gw: &crate::Gateway, out: &mut String) {
    use std::fmt::Write as _;
    gw.monitor().render_metrics(out);
    let rt = gw.runtime();
    if let Some(a) = rt.waf.audit() {
        let _ = writeln!(
            out,
            "# HELP palisade_audit_log_bytes Bytes written to the current audit log file since it was opened.\n# TYPE palisade_audit_log_bytes gauge\npalisade_audit_log_bytes {}",
            a.bytes.load(std::sync::atomic::Ordering::Relaxed)
        );
    }
}

/// `/metrics` plus the active bans per jail (read from the state store).
pub async fn with_ban_gauges(gw: &crate::Gateway, mut out: String) -> String {
    use std::fmt::Write as _;
    let Ok(bans) = gw.shield().bans().await else {
        return out;
    };
    let now = shield::now_us();
    let mut by_jail: std::collections::BTreeMap<String, u64> = Default::default();
    for b in bans.iter().filter(|b| b.active_at(now)) {
        *by_jail.entry(b.jail.clone()).or_default() += 1;
    }
    out.push_str(
        "# HELP palisade_bans_active Bans in force, by jail.\n# TYPE palisade_bans_active gauge\n",
    );
    for (j, n) in by_jail {
        let _ = writeln!(
            out,
            "palisade_bans_active{{jail=\"{}\"}} {n}",
            monitor::metrics::escape_label(&j)
        );
    }
    out
}

/// Fixed 64 KiB: longest `/events` query string accepted.
const MAX_QUERY_STRING: usize = 64 * 1024;

fn json_response(
    status: http::StatusCode,
    v: &serde_json::Value,
) -> http::Response<http_body_util::Full<bytes::Bytes>> {
    let mut r = http::Response::new(http_body_util::Full::new(bytes::Bytes::from(format!(
        "{v}\n"
    ))));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    // Events carry attacker-chosen strings: never let a browser sniff the
    // JSON as HTML.
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// Decodes `%XX` and `+` in a query-string component.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz");
                match u8::from_str_radix(hex, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses `/events` query parameters into a store query.
pub fn parse_events_query(qs: &str, now_us: u64) -> Result<monitor::store::Query, String> {
    let mut q = monitor::store::Query::default();
    if qs.len() > MAX_QUERY_STRING {
        return Err("query string too long".into());
    }
    for pair in qs.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = unescape(v);
        match k {
            "since" => q.since_us = Some(monitor::store::parse_time(&v, now_us)?),
            "until" => q.until_us = Some(monitor::store::parse_time(&v, now_us)?),
            "client" => {
                q.client = Some(
                    v.parse()
                        .map_err(|_| format!("client `{v}`: expected an IP address"))?,
                )
            }
            "rule" => {
                q.rule = Some(
                    v.parse()
                        .map_err(|_| format!("rule `{v}`: expected a rule id"))?,
                )
            }
            "route" => q.route = Some(v),
            "kind" => q.kind = Some(v),
            "limit" => {
                q.limit = Some(v.parse().map_err(|_| {
                    format!(
                        "limit `{v}`: expected a number (at most {})",
                        monitor::store::MAX_QUERY_LIMIT
                    )
                })?)
            }
            other => {
                return Err(format!(
                    "unknown parameter `{other}` (since, until, client, rule, route, kind, limit)"
                ))
            }
        }
    }
    Ok(q)
}

/// `GET /events?since=&until=&client=&rule=&route=&kind=&limit=`: stored
/// events, newest first, as a JSON array.
pub async fn admin(
    req: http::Request<hyper::body::Incoming>,
    gw: &crate::Gateway,
) -> http::Response<http_body_util::Full<bytes::Bytes>> {
    use http::StatusCode;
    if req.method() != http::Method::GET {
        return json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            &serde_json::json!({ "error": "use GET /events" }),
        );
    }
    let q = match parse_events_query(req.uri().query().unwrap_or(""), monitor::events::now_us()) {
        Ok(q) => q,
        Err(e) => {
            return json_response(StatusCode::BAD_REQUEST, &serde_json::json!({ "error": e }))
        }
    };
    let mon = gw.monitor().clone();
    let res = tokio::task::spawn_blocking(move || mon.query(&q)).await;
    match res {
        Ok(Ok(v)) => json_response(StatusCode::OK, &serde_json::Value::Array(v)),
        Ok(Err(monitor::Error::BadQuery(e))) => {
            json_response(StatusCode::BAD_REQUEST, &serde_json::json!({ "error": e }))
        }
        Ok(Err(e)) => json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({ "error": e.to_string() }),
        ),
        Err(e) => json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &serde_json::json!({ "error": e.to_string() }),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_query_strings_parse_and_bad_ones_say_why() {
        let now = 2_000_000_000_000_000;
        let q = parse_events_query(
            "since=1h&client=2001%3Adb8%3A%3A1&rule=942100&route=my+shop&kind=waf_block&limit=5",
            now,
        )
        .unwrap();
        assert_eq!(q.since_us, Some(now - 3_600_000_000));
        assert_eq!(q.client, Some("2001:db8::1".parse().unwrap()));
        assert_eq!(q.rule, Some(942100));
        assert_eq!(q.route.as_deref(), Some("my shop"));
        assert_eq!(q.kind.as_deref(), Some("waf_block"));
        assert_eq!(q.limit, Some(5));
        assert_eq!(parse_events_query("", now).unwrap(), Default::default());
        for (bad, why) in [
            ("client=nope", "expected an IP address"),
            ("rule=x", "expected a rule id"),
            ("limit=-1", "expected a number"),
            ("since=soon", "expected unix seconds"),
            ("colour=red", "unknown parameter `colour`"),
        ] {
            let e = parse_events_query(bad, now).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        // Broken escapes are kept literally, never a panic.
        assert_eq!(unescape("%"), "%");
        assert_eq!(unescape("a%2"), "a%2");
        assert_eq!(unescape("%zz%41"), "%zzA");
        assert_eq!(unescape("%ff"), "\u{fffd}");
    }
}
