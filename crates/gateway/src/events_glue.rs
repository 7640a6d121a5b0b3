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

/// Connects the shield's jail bans to the bus (called once at start).
pub fn attach(shared: &Arc<Shared>) {
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
    if messages.is_empty() && !blocked {
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

/// The process-wide monitor for a config (lives as long as the process).
pub async fn build(_cfg: &crate::Config) -> crate::Result<Arc<Monitor>> {
    Ok(Arc::new(Monitor::default()))
}
