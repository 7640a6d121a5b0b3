//! Glue between the gateway and [`shield`]: the accept-time guard, the
//! per-request check at the start of the proxy pipeline (ban → allow/deny →
//! rate limit → challenge, before identity and the WAF), the response hook
//! that feeds scan jails, config reloads, and the admin API for bans
//! (`GET /bans`, `POST /bans`, `DELETE /bans/<ip or cidr>`).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use shield::{ConnToken, IpNet, RequestInfo, Shield, Verdict};

use crate::body::RespBody;
use crate::config::Config;
use crate::proxy::ConnCtx;
use crate::route::normalize_host;
use crate::server::{Gateway, Runtime, Shared};

/// Fixed 64 KiB: body of an admin ban request. Bounds admin API buffering.
const MAX_ADMIN_BODY: usize = 64 * 1024;

/// The process-wide shield for a config: opens the `[state]` backend (an
/// SQLite file in data_dir by default; Redis to share bans and budgets
/// between nodes). Lives as long as the process.
pub async fn build(cfg: &Config) -> crate::Result<Arc<Shield>> {
    if let Some(dir) = cfg.state.sqlite.path.parent() {
        if cfg.state.backend == state::BackendKind::Sqlite && !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir).map_err(|e| {
                crate::Error::io(format!("cannot create directory {}", dir.display()), e)
            })?;
        }
    }
    let store = state::Store::open(&cfg.state).await.map_err(|e| {
        crate::Error::io(
            format!("cannot open the state store ({:?})", cfg.state.backend),
            std::io::Error::other(e.to_string()),
        )
    })?;
    Ok(Arc::new(Shield::new(
        cfg.shield.config.clone(),
        store,
        cfg.shield.secret.as_deref(),
    )))
}

/// A reload installs the new lists, limits, jails and secret; bans and
/// counters stay.
pub fn on_reload(shared: &Shared, cfg: &Config, old: &Config) {
    shared.shield.set_config(cfg.shield.config.clone());
    if cfg.shield.secret != old.shield.secret {
        shared.shield.set_secret(cfg.shield.secret.as_deref());
        tracing::info!(
            "shield.secret rotated: cookies signed with the previous secret stay valid until they expire"
        );
    }
    // Swapping the store under live traffic would drop every counter, ban
    // cache and session of the old one (or split them between two stores):
    // the switch is an explicit restart.
    if cfg.state != old.state {
        tracing::warn!("[state] changed: takes effect after a restart");
    }
}

/// The accept-time guard, before TLS: `None` refuses the connection.
pub fn on_accept(shared: &Shared, peer: IpAddr) -> Option<ConnToken> {
    shared.shield.admit(peer).ok()
}

/// The per-request check. On `Some`, the gateway answers with the response
/// (the string is the access log's `error`). Sets `client` to the real client
/// address (behind trusted proxies).
pub async fn on_request(
    req: &mut Request<Incoming>,
    ctx: &ConnCtx,
    rt: &Runtime,
    client: &mut IpAddr,
    rate: &mut Option<shield::RateInfo>,
    request_id: &HeaderValue,
) -> Option<(Response<RespBody>, String)> {
    let shield = &ctx.shared.shield;
    let cfg = &rt.config.shield.config;
    let uri = req.uri().clone();
    let path = uri.path();
    let needs_route = !cfg.rate_limits.is_empty() || !cfg.challenge.routes.is_empty();
    let route = if needs_route {
        let raw_host = match req.uri().authority() {
            Some(a) => a.as_str(),
            None => req
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or(""),
        };
        rt.routes
            .lookup(&normalize_host(raw_host), path)
            .map(|r| r.name.clone())
    } else {
        None
    };
    let user = crate::identity_glue::user_for_shield(req, ctx, rt).await;
    let verdict = shield
        .check(&RequestInfo {
            peer: ctx.peer.ip(),
            method: req.method(),
            path,
            headers: req.headers(),
            route: route.as_deref(),
            user: user.as_deref(),
        })
        .await;
    let answer = match verdict {
        Verdict::Pass { client: c, rate: r } => {
            *client = c;
            *rate = r;
            return None;
        }
        Verdict::Answer { client: c, answer } => {
            *client = c;
            answer
        }
        Verdict::ChallengeAnswer { client: c } => {
            *client = c;
            let limits = &rt.config.limits;
            let body = Limited::new(req.body_mut(), shield::MAX_ANSWER_BYTES);
            let bytes = match tokio::time::timeout(limits.body_idle_timeout, body.collect()).await {
                Ok(Ok(b)) => b.to_bytes(),
                _ => Bytes::new(),
            };
            Box::new(
                shield
                    .answer_challenge(c, &bytes, ctx.listener.tls.is_some())
                    .await,
            )
        }
    };
    tracing::info!(
        event = "shield",
        action = answer.kind.as_str(),
        client = %client,
        request_id = request_id.to_str().unwrap_or("-"),
        path = path,
        detail = %answer.detail,
        "shield answered"
    );
    crate::events_glue::shield_answer(
        &ctx.shared.monitor,
        &answer,
        *client,
        request_id,
        route.as_deref(),
    );
    let mut resp = Response::new(RespBody::full(answer.body));
    *resp.status_mut() = answer.status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(answer.content_type),
    );
    for (k, v) in answer.headers {
        h.append(k, v);
    }
    h.insert(
        header::HeaderName::from_static("x-request-id"),
        request_id.clone(),
    );
    let why = format!("shield: {} ({})", answer.kind.as_str(), answer.detail);
    Some((resp, why))
}

/// Announces the budget left under the tightest rate limit on a forwarded
/// response, so well-behaved clients slow down before they get a 429.
pub fn decorate<B>(resp: &mut Response<B>, rate: Option<shield::RateInfo>) {
    if let Some(r) = rate {
        let h = resp.headers_mut();
        for (k, v) in r.headers() {
            h.insert(k, v);
        }
    }
}

/// Called once per finished request: 4xx answers of the application (not
/// the gateway's own, `upstream_answered == false`) feed scan jails.
pub fn on_response(
    shared: &Shared,
    client: IpAddr,
    status: u16,
    path: &str,
    upstream_answered: bool,
) {
    if upstream_answered && (400..500).contains(&status) {
        shared.shield.record_response(client, status, path);
    }
}

// ------------------------------------------------------------------ admin API

fn json(status: StatusCode, v: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(format!("{v}\n"))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response<Full<Bytes>> {
    json(status, &serde_json::json!({ "error": msg.into() }))
}

fn rfc3339_ms(ms: u64) -> String {
    let mut s = String::new();
    crate::accesslog::rfc3339(&mut s, UNIX_EPOCH + Duration::from_millis(ms));
    s
}

/// A ban as the admin API shows it.
pub fn ban_json(b: &shield::Ban) -> serde_json::Value {
    serde_json::json!({
        "net": shield::from_prefix(&b.target).to_string(),
        "jail": b.jail,
        "reason": b.reason,
        "created": rfc3339_ms(b.created_us / 1000),
        "expires": b.expires_us.map(|e| rfc3339_ms(e / 1000)),
        "expires_in_s": b.expires_us.map(|e| e.saturating_sub(shield::now_us()) / 1_000_000),
        "offences": b.offences,
    })
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AddBan {
    ip: String,
    #[serde(default)]
    duration: Option<String>,
    #[serde(default)]
    reason: String,
}

/// True when the admin listener should route `path` here.
pub fn is_admin_path(path: &str) -> bool {
    path == "/bans" || path.starts_with("/bans/")
}

/// `GET /bans`, `POST /bans` (`{"ip":"1.2.3.4","duration":"1h","reason":"…"}`;
/// no duration: until deleted), `DELETE /bans/<ip or cidr>`.
pub async fn admin(req: Request<Incoming>, gw: &Gateway) -> Response<Full<Bytes>> {
    let shield = gw.shield();
    let path = req.uri().path().to_string();
    match (req.method().clone(), path.as_str()) {
        (Method::GET, "/bans") => match shield.bans().await {
            Ok(v) => json(
                StatusCode::OK,
                &serde_json::Value::Array(v.iter().map(ban_json).collect()),
            ),
            Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        },
        (Method::POST, "/bans") => {
            let body = match Limited::new(req.into_body(), MAX_ADMIN_BODY)
                .collect()
                .await
            {
                Ok(b) => b.to_bytes(),
                Err(e) => return error(StatusCode::BAD_REQUEST, format!("cannot read body: {e}")),
            };
            let add: AddBan = match serde_json::from_slice(&body) {
                Ok(a) => a,
                Err(e) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        format!("body must be JSON {{\"ip\", \"duration\", \"reason\"}}: {e}"),
                    )
                }
            };
            let net: IpNet = match add.ip.parse() {
                Ok(n) => n,
                Err(e) => return error(StatusCode::BAD_REQUEST, e),
            };
            let duration = match add.duration.as_deref() {
                None | Some("") | Some("forever") => None,
                Some(d) => match crate::limits::parse_duration(d) {
                    Ok(d) if !d.is_zero() => Some(d),
                    Ok(_) => return error(StatusCode::BAD_REQUEST, "duration must be > 0"),
                    Err(e) => return error(StatusCode::BAD_REQUEST, e),
                },
            };
            match shield.add_ban(net, duration, &add.reason).await {
                Ok(b) => {
                    crate::events_glue::manual_ban(gw.monitor(), &b);
                    json(StatusCode::CREATED, &ban_json(&b))
                }
                Err(shield::Error::InvalidBan(m)) => error(StatusCode::BAD_REQUEST, m),
                Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            }
        }
        (Method::DELETE, p) if p.starts_with("/bans/") => {
            let target = &p["/bans/".len()..];
            let net: IpNet = match target.parse() {
                Ok(n) => n,
                Err(e) => return error(StatusCode::BAD_REQUEST, e),
            };
            match shield.remove_ban(net).await {
                Ok(Some(n)) => {
                    crate::events_glue::unban(gw.monitor(), &n);
                    json(
                        StatusCode::OK,
                        &serde_json::json!({ "lifted": n.to_string() }),
                    )
                }
                Ok(None) => error(StatusCode::NOT_FOUND, format!("no ban covers {net}")),
                Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            }
        }
        _ => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "use GET /bans, POST /bans or DELETE /bans/<ip or cidr>",
        ),
    }
}

/// Appends the shield's counters to the admin `/metrics` text.
pub fn render_metrics(gw: &Gateway, out: &mut String) {
    use std::fmt::Write as _;
    use std::sync::atomic::Ordering::Relaxed;
    let s = &gw.shield().stats;
    out.push_str("# HELP palisade_shield_requests_refused_total Requests the shield answered itself, by reason.\n");
    out.push_str("# TYPE palisade_shield_requests_refused_total counter\n");
    for (reason, v) in [
        ("denied", &s.denied),
        ("banned", &s.banned),
        ("rate_limited", &s.rate_limited),
        ("challenge", &s.challenged),
    ] {
        let _ = writeln!(
            out,
            "palisade_shield_requests_refused_total{{reason=\"{reason}\"}} {}",
            v.load(Relaxed)
        );
    }
    for (name, help, v) in [
        (
            "palisade_shield_challenges_solved_total",
            "Proof-of-work challenges solved (cookie issued).",
            &s.solved,
        ),
        (
            "palisade_shield_connections_refused_total",
            "Connections closed at accept (deny list, ban, per-IP caps).",
            &s.connections_refused,
        ),
        (
            "palisade_shield_auto_bans_total",
            "Bans made by jails.",
            &s.auto_bans,
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
            v.load(Relaxed)
        );
    }
}
