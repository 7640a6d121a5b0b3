//! The admin dashboard, served on the admin listener under `/dashboard/`:
//! overview, live event feed (Server-Sent Events), event detail, bans
//! (one-click unban, bulk ban) and rule tuning.
//!
//! Access needs `[identity]`: a session of a user with the `admin` role.
//! The dashboard has its own login form (`/dashboard/login`) that checks
//! the identity user database (password, and the TOTP code when the user
//! has one enrolled) with the same brute-force regulator, session store,
//! cookie name and cookie rules as the login portal. Without a session the
//! browser is redirected to the login form; a signed-in user without the
//! `admin` role gets 403. Every POST carries a CSRF token bound to the
//! session (`HMAC(key, session id)`), the login form one bound to the
//! pre-session cookie.
//!
//! Every page is sent with a strict Content-Security-Policy (only
//! `/dashboard/app.js` and `/dashboard/app.css`, both embedded in the
//! binary), `X-Frame-Options: DENY`, `nosniff` and `no-store`. Attacker
//! data is escaped in the HTML ([`render::esc`]) and inserted with
//! `textContent` by the feed's script.

pub mod render;
mod sse;

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use identity::web::{self, Csrf, Form, MAX_FORM_BYTES};
use identity::Factor;
use serde_json::Value;

use crate::server::Gateway;
use render::{esc, Bucket, Nav};

/// The body type of admin responses once the dashboard is mounted.
pub type Body = BoxBody<Bytes, Infallible>;

/// The path prefix of the dashboard.
pub const PREFIX: &str = "/dashboard";

/// The role a user needs.
pub const ADMIN_ROLE: &str = "admin";

/// Content-Security-Policy of every dashboard answer: scripts and styles
/// only from the dashboard itself, no frames, no foreign connections.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Fixed 30 s: longest wait for a form body (a slow client cannot hold an
/// admin connection open longer).
pub const FORM_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Fixed 256: most networks one bulk-ban form may ban. Bounds the work and
/// the state-store writes of one POST.
pub const MAX_BULK_BANS: usize = 256;

/// Fixed 10 s: the requests-vs-blocked chart's sampling interval.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(10);

/// Fixed 360 (one hour at [`SAMPLE_INTERVAL`]): samples kept for the chart.
/// Bounds the sampler's memory.
pub const MAX_SAMPLES: usize = 360;

/// Fixed 24 h: the window of stored events the overview and tuning pages
/// aggregate (counts and top clients count every event; rule and category
/// tables read the newest `monitor::store::MAX_QUERY_LIMIT` of each kind).
pub const OVERVIEW_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// Fixed 20: rows of the "top" tables.
pub const TOP_N: usize = 20;

/// Fixed 100: events listed on the live page before the feed adds more.
pub const RECENT_EVENTS: usize = 100;

const HTML: &str = "text/html; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

static APP_JS: &str = include_str!("app.js");
static APP_CSS: &str = include_str!("app.css");

/// Whether the admin listener should route `path` to the dashboard.
pub fn is_dashboard_path(path: &str) -> bool {
    path == PREFIX || path.starts_with("/dashboard/")
}

/// The admin listener's service: dashboard paths here, everything else to
/// `admin` (the admin API), its body boxed.
pub async fn or_admin<F, Fut>(
    req: Request<Incoming>,
    gw: Gateway,
    peer: IpAddr,
    admin: F,
) -> Result<Response<Body>, Infallible>
where
    F: FnOnce(Request<Incoming>, Gateway) -> Fut,
    Fut: Future<Output = Result<Response<Full<Bytes>>, Infallible>>,
{
    if is_dashboard_path(req.uri().path()) {
        return Ok(handle(req, &gw, peer).await);
    }
    let r = admin(req, gw).await?;
    Ok(r.map(|b| b.boxed()))
}

fn full(s: impl Into<Bytes>) -> Body {
    Full::new(s.into()).boxed()
}

fn respond(status: StatusCode, ctype: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn redirect(to: &str) -> Response<Body> {
    let mut r = respond(StatusCode::SEE_OTHER, TEXT, format!("see {to}\n"));
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn set_cookie(r: &mut Response<Body>, c: &str) {
    if let Ok(v) = HeaderValue::from_str(c) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
}

fn cookie(req: &Request<Incoming>, name: &str) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| web::find_cookie(v, name))
        .map(str::to_owned)
}

fn now_us() -> u64 {
    shield::now_us()
}

/// A signed-in admin.
struct Admin {
    user: String,
    /// CSRF token of this session's forms.
    csrf: String,
    sid: String,
}

struct Ident {
    rt: Arc<crate::identity_glue::IdentityRt>,
    cookie: String,
}

fn ident(gw: &Gateway) -> Option<Ident> {
    let rt = gw.identity()?;
    let cookie = gw
        .runtime()
        .config
        .identity
        .as_ref()?
        .cfg
        .cookie_name
        .clone();
    Some(Ident { rt, cookie })
}

/// The session's admin, or the answer (redirect to login, 403).
async fn require_admin(req: &Request<Incoming>, id: &Ident) -> Result<Admin, Response<Body>> {
    let Some(sid) = cookie(req, &id.cookie) else {
        return Err(redirect("/dashboard/login"));
    };
    match id.rt.sessions.check(&sid, now_us()).await {
        Ok(Ok(s)) if s.roles.iter().any(|r| r == ADMIN_ROLE) => Ok(Admin {
            csrf: id.rt.csrf.token(&sid),
            user: s.user,
            sid,
        }),
        Ok(Ok(s)) => {
            tracing::warn!(target: "dashboard", user = %s.user, "dashboard refused: not an admin");
            Err(respond(
                StatusCode::FORBIDDEN,
                HTML,
                render::message(
                    "403 Forbidden",
                    &format!(
                        "User {} does not have the {ADMIN_ROLE} role the dashboard requires.",
                        s.user
                    ),
                ),
            ))
        }
        Ok(Err(_)) => Err(redirect("/dashboard/login")),
        Err(e) => {
            tracing::error!(target: "dashboard", error = %e, "session store failed");
            Err(respond(
                StatusCode::SERVICE_UNAVAILABLE,
                TEXT,
                "503 Service Unavailable\nthe session store failed\n",
            ))
        }
    }
}

/// Reads a form body (bounded in size and time).
async fn read_form(req: Request<Incoming>) -> Result<Form, Response<Body>> {
    let body = Limited::new(req.into_body(), MAX_FORM_BYTES);
    let bytes = match tokio::time::timeout(FORM_READ_TIMEOUT, body.collect()).await {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(_)) => {
            return Err(respond(
                StatusCode::BAD_REQUEST,
                TEXT,
                format!(
                "400 Bad Request\nthe form could not be read (at most {MAX_FORM_BYTES} bytes)\n"
            ),
            ))
        }
        Err(_) => {
            return Err(respond(
                StatusCode::REQUEST_TIMEOUT,
                TEXT,
                "408 Request Timeout\n",
            ))
        }
    };
    Form::parse(&bytes).map_err(|why| {
        respond(
            StatusCode::BAD_REQUEST,
            TEXT,
            format!("400 Bad Request\ninvalid form: {why}\n"),
        )
    })
}

fn csrf_refused() -> Response<Body> {
    respond(
        StatusCode::FORBIDDEN,
        HTML,
        render::message(
            "Form expired",
            "This form has expired or was not sent from the dashboard (missing or invalid CSRF token). Reload the page and try again.",
        ),
    )
}

/// Serves one dashboard request.
pub async fn handle(req: Request<Incoming>, gw: &Gateway, peer: IpAddr) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    match (method.clone(), path.as_str()) {
        (Method::GET | Method::HEAD, "/dashboard/app.js") => {
            return respond(StatusCode::OK, "text/javascript; charset=utf-8", APP_JS)
        }
        (Method::GET | Method::HEAD, "/dashboard/app.css") => {
            return respond(StatusCode::OK, "text/css; charset=utf-8", APP_CSS)
        }
        (_, "/dashboard") => return redirect("/dashboard/"),
        _ => {}
    }
    let Some(id) = ident(gw) else {
        return respond(
            StatusCode::SERVICE_UNAVAILABLE,
            HTML,
            render::message(
                "Dashboard unavailable",
                "The dashboard needs [identity] (users with the admin role) in the config.",
            ),
        );
    };
    series::ensure(gw);
    match (method, path.as_str()) {
        (Method::GET | Method::HEAD, "/dashboard/login") => login_get(&req, &id, None),
        (Method::POST, "/dashboard/login") => login_post(req, &id, peer).await,
        (Method::POST, "/dashboard/logout") => {
            let admin = match require_admin(&req, &id).await {
                Ok(a) => a,
                Err(r) => return r,
            };
            let form = match read_form(req).await {
                Ok(f) => f,
                Err(r) => return r,
            };
            if !form
                .get("csrf")
                .is_some_and(|t| id.rt.csrf.verify(&admin.sid, t))
            {
                return csrf_refused();
            }
            let _ = id.rt.sessions.destroy(&admin.sid, now_us()).await;
            let mut r = redirect("/dashboard/login");
            set_cookie(&mut r, &web::set_cookie(&id.cookie, "", false, Some(0)));
            r
        }
        (m, p) => {
            let admin = match require_admin(&req, &id).await {
                Ok(a) => a,
                Err(r) => return r,
            };
            match (m, p) {
                (Method::GET | Method::HEAD, "/dashboard/") => overview(gw, &admin).await,
                (Method::GET | Method::HEAD, "/dashboard/live") => {
                    live(gw, &admin, req.uri().query().unwrap_or("")).await
                }
                (Method::GET, "/dashboard/feed") => sse::feed(gw),
                (Method::GET | Method::HEAD, "/dashboard/event") => {
                    event(gw, &admin, req.uri().query().unwrap_or("")).await
                }
                (Method::GET | Method::HEAD, "/dashboard/bans") => bans(gw, &admin, None).await,
                (Method::POST, "/dashboard/bans/unban" | "/dashboard/bans/ban") => {
                    ban_post(req, gw, &id, &admin, p).await
                }
                (Method::GET | Method::HEAD, "/dashboard/tuning") => {
                    tuning(gw, &admin, req.uri().query().unwrap_or("")).await
                }
                _ => respond(
                    StatusCode::NOT_FOUND,
                    TEXT,
                    "404 Not Found\nno such dashboard page\n",
                ),
            }
        }
    }
}

fn csrf_cookie(id: &Ident) -> String {
    format!("{}_csrf", id.cookie)
}

fn login_get(
    req: &Request<Incoming>,
    id: &Ident,
    error: Option<(StatusCode, &str)>,
) -> Response<Body> {
    let name = csrf_cookie(id);
    let (pre, new) = match cookie(req, &name) {
        Some(v) if v.len() == web::PRESESSION_LEN => (v, false),
        _ => (Csrf::new_presession().unwrap_or_default(), true),
    };
    let (status, msg) = match error {
        Some((s, m)) => (s, Some(m)),
        None => (StatusCode::OK, None),
    };
    let mut r = respond(status, HTML, render::login(&id.rt.csrf.token(&pre), msg));
    if new {
        set_cookie(&mut r, &web::set_cookie(&name, &pre, false, None));
    }
    r
}

const LOGIN_FAILED: &str = "Sign-in failed: the username, password or code is incorrect.";

async fn login_post(req: Request<Incoming>, id: &Ident, client: IpAddr) -> Response<Body> {
    let pre = cookie(&req, &csrf_cookie(id));
    let form = match read_form(req).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let ok_csrf = match (pre.as_deref(), form.get("csrf")) {
        (Some(p), Some(t)) => id.rt.csrf.verify(p, t),
        _ => false,
    };
    if !ok_csrf {
        tracing::warn!(target: "dashboard", ip = %client, reason = "csrf", "dashboard login refused");
        return csrf_refused();
    }
    let refuse = |status: StatusCode, msg: &str| {
        let pre = pre.clone().unwrap_or_default();
        let mut r = respond(
            status,
            HTML,
            render::login(&id.rt.csrf.token(&pre), Some(msg)),
        );
        *r.status_mut() = status;
        r
    };
    let raw_user = form.get("username").unwrap_or("");
    let password = form.get("password").unwrap_or("");
    if raw_user.len() > identity::username::MAX_USERNAME_INPUT_BYTES
        || password.len() > identity::password::MAX_PASSWORD_BYTES
    {
        return refuse(StatusCode::BAD_REQUEST, LOGIN_FAILED);
    }
    let now = now_us();
    let user = identity::normalize_username(raw_user).ok();
    let key = user.clone().unwrap_or_else(|| "-invalid-".to_owned());
    match id
        .rt
        .regulator
        .check(Factor::Password, &key, client, now)
        .await
    {
        Ok(()) => {}
        Err(identity::Error::Locked { retry_after }) => {
            tracing::warn!(target: "dashboard", user = %key, ip = %client, "dashboard login locked");
            return refuse(
                StatusCode::TOO_MANY_REQUESTS,
                &format!(
                    "Too many failed attempts. Try again in {} seconds.",
                    retry_after.as_secs().max(1)
                ),
            );
        }
        Err(e) => {
            tracing::error!(target: "dashboard", error = %e, "identity storage failed");
            return refuse(StatusCode::SERVICE_UNAVAILABLE, "Sign-in is unavailable.");
        }
    }
    let record = match &user {
        Some(u) => id.rt.db.get(u).ok().flatten(),
        None => None,
    };
    let pw_ok = matches!(
        id.rt
            .hasher
            .verify_login(password, record.as_ref().map(|r| r.password_hash.as_str()))
            .await,
        Ok(true)
    ) && record.is_some();
    let mut factors = 1;
    let mut ok = pw_ok;
    if let (true, Some(u)) = (pw_ok, &record) {
        if u.totp_secret.is_some() {
            let code: String = form
                .get("code")
                .unwrap_or("")
                .chars()
                .filter(|c| !c.is_whitespace())
                .take(64)
                .collect();
            ok = code.len() == 6
                && matches!(
                    identity::replay::totp_check_shared(
                        &id.rt.db,
                        &id.rt.store,
                        &u.name,
                        &code,
                        now / 1_000_000,
                        now
                    )
                    .await,
                    Ok(true)
                );
            factors = 2;
        }
    }
    let Some(u) = record.filter(|_| ok) else {
        tracing::warn!(target: "dashboard", user = %key, ip = %client, "dashboard login failed");
        if let Ok(Some(d)) = id
            .rt
            .regulator
            .record_failure(Factor::Password, &key, client, now)
            .await
        {
            return refuse(
                StatusCode::TOO_MANY_REQUESTS,
                &format!(
                    "Too many failed attempts. Try again in {} seconds.",
                    d.as_secs().max(1)
                ),
            );
        }
        return refuse(StatusCode::UNAUTHORIZED, LOGIN_FAILED);
    };
    let sid = match id
        .rt
        .sessions
        .create_with_roles(&u.name, &u.roles, factors, false, now)
        .await
    {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(target: "dashboard", error = %e, "session store failed");
            return refuse(StatusCode::SERVICE_UNAVAILABLE, "Sign-in is unavailable.");
        }
    };
    let _ = id.rt.regulator.record_success(&u.name, client, now).await;
    tracing::info!(target: "dashboard", user = %u.name, ip = %client, factors, "dashboard login succeeded");
    let mut r = redirect("/dashboard/");
    set_cookie(&mut r, &web::set_cookie(&id.cookie, &sid, false, None));
    r
}

// ------------------------------------------------------------ data helpers

async fn query(gw: &Gateway, q: monitor::store::Query) -> Vec<Value> {
    let mon = gw.monitor().clone();
    match tokio::task::spawn_blocking(move || mon.query(&q)).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            tracing::debug!(target: "dashboard", error = %e, "event query failed");
            Vec::new()
        }
        Err(_) => Vec::new(),
    }
}

async fn recent(gw: &Gateway, kind: Option<&str>, since_us: u64) -> Vec<Value> {
    query(
        gw,
        monitor::store::Query {
            since_us: Some(since_us),
            kind: kind.map(str::to_owned),
            limit: Some(monitor::store::MAX_QUERY_LIMIT),
            ..Default::default()
        },
    )
    .await
}

fn top(counts: HashMap<String, u64>) -> Vec<(String, u64)> {
    let mut v: Vec<_> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(TOP_N);
    v
}

/// Events that count against a client (attacks and refusals).
const HOSTILE: &[&str] = &[
    "waf_block",
    "waf_match",
    "shield_refused",
    "rate_limited",
    "challenge_failed",
    "login_failure",
];

fn page(title: &str, nav: Nav, a: &Admin, body: &str) -> Response<Body> {
    respond(
        StatusCode::OK,
        HTML,
        render::page(title, nav, &a.user, &a.csrf, body),
    )
}

fn blocked_total(gw: &Gateway, t: &crate::metrics::Totals) -> u64 {
    let s = &gw.shield().stats;
    t.waf_blocks
        + s.denied.load(Ordering::Relaxed)
        + s.banned.load(Ordering::Relaxed)
        + s.rate_limited.load(Ordering::Relaxed)
}

fn latency_ms(t: &crate::metrics::Totals, q: f64) -> Option<f64> {
    let n: u64 = t.buckets.iter().sum();
    if n == 0 {
        return None;
    }
    let want = (n as f64 * q).ceil() as u64;
    let mut cum = 0;
    for (i, b) in t.buckets.iter().enumerate() {
        cum += b;
        if cum >= want {
            return Some(crate::metrics::DURATION_BUCKETS[i] * 1000.0);
        }
    }
    None
}

async fn overview(gw: &Gateway, a: &Admin) -> Response<Body> {
    let since = now_us().saturating_sub(OVERVIEW_WINDOW.as_micros() as u64);
    let t = gw.metrics().totals();
    // Counts and top clients come from COUNT queries over every stored
    // event of the window; rules and categories from the newest
    // MAX_QUERY_LIMIT events of each kind (their ids sit inside the JSON).
    let mon = gw.monitor().clone();
    let (counts, top_ips) = tokio::task::spawn_blocking(move || {
        (
            mon.count_by_kind(since).unwrap_or_default(),
            mon.top_clients(since, HOSTILE, TOP_N).unwrap_or_default(),
        )
    })
    .await
    .unwrap_or_default();
    let mut rules: HashMap<String, u64> = HashMap::new();
    let mut cats: HashMap<String, u64> = HashMap::new();
    for kind in HOSTILE {
        let evs = recent(gw, Some(kind), since).await;
        for e in &evs {
            for r in e["rules"].as_array().into_iter().flatten() {
                let id = r["id"].as_u64().unwrap_or(0);
                let msg = r["msg"].as_str().unwrap_or("");
                *rules.entry(format!("{id} {msg}")).or_default() += 1;
                *cats
                    .entry(r["category"].as_str().unwrap_or("other").to_owned())
                    .or_default() += 1;
            }
        }
    }
    let now = shield::now_us();
    let active_bans = match gw.shield().bans().await {
        Ok(b) => b.iter().filter(|b| b.active_at(now)).count().to_string(),
        Err(_) => "?".into(),
    };
    let avg = if t.requests > 0 {
        format!(
            "{:.1} ms",
            t.duration_sum_micros as f64 / t.requests as f64 / 1000.0
        )
    } else {
        "-".into()
    };
    let p95 = latency_ms(&t, 0.95)
        .map(|v| format!("≤ {v} ms"))
        .unwrap_or_else(|| "-".into());
    let card = |id: &str, n: &str, label: &str| {
        format!("<div class=\"card\"><span class=\"n\" id=\"{id}\">{}</span><span class=\"l\">{}</span></div>", esc(n), esc(label))
    };
    let c = |k: &str| counts.get(k).copied().unwrap_or(0).to_string();
    let mut body = String::from("<div class=\"cards\">\n");
    for (id, n, l) in [
        (
            "requests-count",
            t.requests.to_string(),
            "requests (since start)",
        ),
        (
            "blocked-total",
            blocked_total(gw, &t).to_string(),
            "blocked (since start)",
        ),
        ("blocked-count", c("waf_block"), "WAF blocks (24 h)"),
        (
            "matched-count",
            c("waf_match"),
            "WAF matches, passed (24 h)",
        ),
        (
            "refused-count",
            c("shield_refused"),
            "shield refusals (24 h)",
        ),
        (
            "ratelimited-count",
            c("rate_limited"),
            "rate limited (24 h)",
        ),
        ("bans-count", active_bans, "active bans"),
        ("latency-avg", avg, "average latency"),
        ("latency-p95", p95, "p95 latency"),
    ] {
        body.push_str(&card(id, &n, l));
    }
    body.push_str("</div>\n<h2>Requests vs blocked</h2>\n<div class=\"chart\">\n");
    body.push_str(&render::chart(&series::buckets(gw)));
    body.push_str("<p class=\"legend\"><span><i class=\"sw req\"></i>requests</span><span><i class=\"sw blk\"></i>blocked</span><span class=\"muted\">per 10 s sample, last hour</span></p></div>\n<div class=\"grid2\">\n<section><h2>Top attacking IPs</h2>\n");
    let ip_link = |ip: &str| format!("/dashboard/live?client={}", render::qs(ip));
    body.push_str(&render::count_table(
        "top-ips",
        ("Client", "Events"),
        &top_ips,
        Some(&ip_link),
    ));
    body.push_str("</section>\n<section><h2>Top rules</h2>\n");
    body.push_str(&render::count_table(
        "top-rules",
        ("Rule", "Hits"),
        &top(rules),
        None,
    ));
    body.push_str("</section>\n<section><h2>Top categories</h2>\n");
    body.push_str(&render::count_table(
        "top-categories",
        ("Category", "Hits"),
        &top(cats),
        None,
    ));
    body.push_str("</section>\n</div>\n");
    page("Overview", Nav::Overview, a, &body)
}

async fn live(gw: &Gateway, a: &Admin, qs: &str) -> Response<Body> {
    // `?client=IP` (the overview's top-IP links) lists that client's
    // stored events; the feed below still shows every new event.
    let client: Option<IpAddr> = param(qs, "client").and_then(|v| v.parse().ok());
    let evs = query(
        gw,
        monitor::store::Query {
            client,
            limit: Some(RECENT_EVENTS),
            ..Default::default()
        },
    )
    .await;
    let mut body = String::from(
        "<p>Feed: <span id=\"feed-status\">connecting…</span> · new events: <span id=\"feed-count\">0</span></p>\n",
    );
    body.push_str(&render::events_table("feed", &evs));
    page("Live events", Nav::Live, a, &body)
}

fn param(qs: &str, name: &str) -> Option<String> {
    Form::parse(qs.as_bytes())
        .ok()
        .and_then(|f| f.get(name).map(str::to_owned))
}

async fn event(gw: &Gateway, a: &Admin, qs: &str) -> Response<Body> {
    // `?id=` (the event's stable id); `t`, `c`, `k` (time, client, kind)
    // still find events stored before events had ids.
    if let Some(id) = param(qs, "id") {
        let Ok(id) = id.parse::<u64>() else {
            return respond(
                StatusCode::BAD_REQUEST,
                TEXT,
                "400 Bad Request\nid must be a number\n",
            );
        };
        let mon = gw.monitor().clone();
        let found = tokio::task::spawn_blocking(move || mon.event(id))
            .await
            .ok()
            .and_then(Result::ok)
            .flatten();
        return match found {
            Some(e) => page("Event", Nav::None, a, &render::event_detail(&e)),
            None => respond(
                StatusCode::NOT_FOUND,
                HTML,
                render::message(
                    "Not found",
                    "No stored event has this id (it may have been removed by retention).",
                ),
            ),
        };
    }
    let t: Option<u64> = param(qs, "t").and_then(|v| v.parse().ok());
    let client: Option<IpAddr> = param(qs, "c").and_then(|v| v.parse().ok());
    let kind = param(qs, "k").filter(|k| monitor::Kind::NAMES.contains(&k.as_str()));
    let Some(t) = t else {
        return respond(
            StatusCode::BAD_REQUEST,
            TEXT,
            "400 Bad Request\nid (event id) or t (event time) required\n",
        );
    };
    let evs = query(
        gw,
        monitor::store::Query {
            since_us: Some(t),
            until_us: Some(t.saturating_add(1)),
            client,
            kind,
            limit: Some(10),
            ..Default::default()
        },
    )
    .await;
    let Some(e) = evs.first() else {
        return respond(
            StatusCode::NOT_FOUND,
            HTML,
            render::message(
                "Not found",
                "No stored event matches (it may have been removed by retention).",
            ),
        );
    };
    page("Event", Nav::None, a, &render::event_detail(e))
}

async fn bans(gw: &Gateway, a: &Admin, note: Option<(bool, String)>) -> Response<Body> {
    let mut body = String::new();
    if let Some((ok, m)) = note {
        body.push_str(&format!(
            "<p class=\"msg {}\" role=\"status\" id=\"note\">{}</p>\n",
            if ok { "ok" } else { "err" },
            esc(&m)
        ));
    }
    let now = shield::now_us();
    match gw.shield().bans().await {
        Ok(list) => {
            let list: Vec<_> = list.into_iter().filter(|b| b.active_at(now)).collect();
            body.push_str(&format!(
                "<p><span id=\"bans-count\">{}</span> active bans.</p>\n<div class=\"scroll\"><table id=\"bans\"><thead><tr><th>Network</th><th>Jail</th><th>Reason</th><th>Expires in</th><th>Offences</th><th></th></tr></thead><tbody>\n",
                list.len()
            ));
            for b in &list {
                let net = shield::from_prefix(&b.target).to_string();
                let expires = b
                    .expires_us
                    .map(|e| format!("{} s", e.saturating_sub(now) / 1_000_000))
                    .unwrap_or_else(|| "never".into());
                body.push_str(&format!(
                    "<tr><td><code>{n}</code></td><td>{}</td><td class=\"wrap\">{}</td><td>{}</td><td>{}</td><td><form class=\"inline\" method=\"post\" action=\"/dashboard/bans/unban\"><input type=\"hidden\" name=\"csrf\" value=\"{c}\"><input type=\"hidden\" name=\"net\" value=\"{n}\"><button type=\"submit\" class=\"danger unban\" data-net=\"{n}\">Unban</button></form></td></tr>\n",
                    esc(&b.jail),
                    esc(&b.reason),
                    esc(&expires),
                    b.offences,
                    n = esc(&net),
                    c = esc(&a.csrf),
                ));
            }
            if list.is_empty() {
                body.push_str("<tr><td colspan=\"6\" class=\"muted\">no active bans</td></tr>\n");
            }
            body.push_str("</tbody></table></div>\n");
        }
        Err(e) => body.push_str(&format!(
            "<p class=\"msg err\">The ban list is unavailable: {}</p>\n",
            esc(&e.to_string())
        )),
    }
    body.push_str(&format!(
        "<h2>Ban addresses</h2>\n<form method=\"post\" action=\"/dashboard/bans/ban\" id=\"bulk\">\n<input type=\"hidden\" name=\"csrf\" value=\"{}\">\n\
<label for=\"nets\">Addresses or networks (one per line, at most {MAX_BULK_BANS})</label><textarea id=\"nets\" name=\"nets\" required></textarea>\n\
<label for=\"duration\">Duration (e.g. 1h, 7d; empty: until lifted)</label><input type=\"text\" id=\"duration\" name=\"duration\">\n\
<label for=\"reason\">Reason</label><input type=\"text\" id=\"reason\" name=\"reason\">\n\
<p><button type=\"submit\" id=\"ban-submit\">Ban</button></p>\n</form>\n",
        esc(&a.csrf)
    ));
    page("Bans", Nav::Bans, a, &body)
}

async fn ban_post(
    req: Request<Incoming>,
    gw: &Gateway,
    id: &Ident,
    a: &Admin,
    path: &str,
) -> Response<Body> {
    let form = match read_form(req).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    if !form
        .get("csrf")
        .is_some_and(|t| id.rt.csrf.verify(&a.sid, t))
    {
        tracing::warn!(target: "dashboard", user = %a.user, "ban form refused: missing or invalid CSRF token");
        return csrf_refused();
    }
    let shield = gw.shield();
    let note = if path == "/dashboard/bans/unban" {
        let raw = form.get("net").unwrap_or("");
        match raw.parse::<shield::IpNet>() {
            Err(e) => (false, format!("{raw}: {e}")),
            Ok(net) => match shield.remove_ban(net).await {
                Ok(Some(n)) => {
                    crate::events_glue::unban(gw.monitor(), &n);
                    tracing::info!(target: "dashboard", user = %a.user, net = %n, "ban lifted from the dashboard");
                    (true, format!("Lifted the ban on {n}."))
                }
                Ok(None) => (false, format!("No ban covers {net}.")),
                Err(e) => (false, format!("Unban failed: {e}")),
            },
        }
    } else {
        let duration = match form.get("duration").map(str::trim).unwrap_or("") {
            "" | "forever" => None,
            d => match crate::limits::parse_duration(d) {
                Ok(d) if !d.is_zero() => Some(d),
                Ok(_) => {
                    return bans(gw, a, Some((false, "The duration must be > 0.".into()))).await
                }
                Err(e) => return bans(gw, a, Some((false, format!("Duration: {e}")))).await,
            },
        };
        let reason = form.get("reason").unwrap_or("").trim();
        let reason = if reason.is_empty() {
            format!("dashboard ({})", a.user)
        } else {
            reason.to_owned()
        };
        let lines: Vec<&str> = form
            .get("nets")
            .unwrap_or("")
            .split(['\n', ',', ' ', '\r'])
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        if lines.len() > MAX_BULK_BANS {
            return bans(
                gw,
                a,
                Some((false, format!("At most {MAX_BULK_BANS} networks per form."))),
            )
            .await;
        }
        let mut done = Vec::new();
        let mut failed = Vec::new();
        for l in lines {
            match l.parse::<shield::IpNet>() {
                Err(e) => failed.push(format!("{l}: {e}")),
                Ok(net) => match shield.add_ban(net, duration, &reason).await {
                    Ok(b) => {
                        crate::events_glue::manual_ban(gw.monitor(), &b);
                        done.push(shield::from_prefix(&b.target).to_string());
                    }
                    Err(e) => failed.push(format!("{l}: {e}")),
                },
            }
        }
        tracing::info!(target: "dashboard", user = %a.user, banned = done.len(), failed = failed.len(), "bulk ban from the dashboard");
        let mut m = format!("Banned {} network(s): {}.", done.len(), done.join(", "));
        if !failed.is_empty() {
            m.push_str(&format!(" Refused: {}.", failed.join("; ")));
        }
        (failed.is_empty(), m)
    };
    bans(gw, a, Some(note)).await
}

/// Path part of a request target (no query).
fn path_of(uri: &str) -> &str {
    uri.split(['?', '#']).next().unwrap_or(uri)
}

async fn tuning(gw: &Gateway, a: &Admin, qs: &str) -> Response<Body> {
    let since = now_us().saturating_sub(OVERVIEW_WINDOW.as_micros() as u64);
    let only: Option<u64> = param(qs, "rule").and_then(|r| r.parse().ok());
    // (rule, route, path) → (count, msg, blocked)
    let mut agg: HashMap<(u64, String, String), (u64, String)> = HashMap::new();
    for kind in ["waf_block", "waf_match"] {
        for e in recent(gw, Some(kind), since).await {
            let route = e["route"].as_str().unwrap_or("-").to_owned();
            let p = path_of(e["uri"].as_str().unwrap_or("")).to_owned();
            for r in e["rules"].as_array().into_iter().flatten() {
                let id = r["id"].as_u64().unwrap_or(0);
                if only.is_some_and(|o| o != id) {
                    continue;
                }
                let ent = agg
                    .entry((id, route.clone(), p.clone()))
                    .or_insert_with(|| (0, r["msg"].as_str().unwrap_or("").to_owned()));
                ent.0 += 1;
            }
        }
    }
    let mut rows: Vec<_> = agg.into_iter().collect();
    rows.sort_by(|x, y| y.1 .0.cmp(&x.1 .0).then_with(|| x.0.cmp(&y.0)));
    rows.truncate(50);
    let mut body = String::from("<p>Rules that fired most in the last 24 hours, by route and path, with a SecLang exclusion to add to the route's rules if the matches are false positives (review before use; the exclusion id is a placeholder in the 1,000–99,999 local range).</p>\n<div class=\"scroll\"><table id=\"tuning\"><thead><tr><th>Rule</th><th>Route</th><th>Path</th><th>Hits</th><th>Suggested exclusion</th></tr></thead><tbody>\n");
    if rows.is_empty() {
        body.push_str("<tr><td colspan=\"5\" class=\"muted\">no WAF events</td></tr>\n");
    }
    for (i, ((rule, route, p), (n, msg))) in rows.iter().enumerate() {
        let sugg = match render::exclusion(10_000 + i as u64, *rule, p) {
            Some(s) => format!("<pre>{}</pre>", esc(&s)),
            None => "<span class=\"muted\">path has characters that need review; write the exclusion by hand</span>".into(),
        };
        body.push_str(&format!(
            "<tr><td><a href=\"/dashboard/tuning?rule={rule}\">{rule}</a><br><span class=\"muted\">{}</span></td><td>{}</td><td class=\"wrap\"><code>{}</code></td><td>{n}</td><td>{sugg}</td></tr>\n",
            esc(msg),
            esc(route),
            esc(p),
        ));
    }
    body.push_str("</tbody></table></div>\n<p class=\"muted\">Alternative for a single argument: <code>SecRuleUpdateTargetById RULE \"!ARGS:name\"</code>.</p>\n");
    page("Rule tuning", Nav::Tuning, a, &body)
}

// ------------------------------------------------------------ chart samples

mod series {
    use super::*;

    #[derive(Default)]
    struct Ring {
        /// (unix seconds, requests total, blocked total)
        samples: VecDeque<(u64, u64, u64)>,
    }

    static RING: OnceLock<Mutex<Ring>> = OnceLock::new();

    fn lock() -> std::sync::MutexGuard<'static, Ring> {
        let m = RING.get_or_init(Default::default);
        match m.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn snapshot(gw: &Gateway) -> (u64, u64, u64) {
        let t = gw.metrics().totals();
        (now_us() / 1_000_000, t.requests, blocked_total(gw, &t))
    }

    /// Starts the sampler on first use (process-wide: one gateway per
    /// process). The first sample is zero, so requests before the first
    /// dashboard visit show in the first bar.
    pub(super) fn ensure(gw: &Gateway) {
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        if STARTED.swap(1, Ordering::SeqCst) == 1 {
            return;
        }
        lock().samples.push_back((now_us() / 1_000_000, 0, 0));
        let gw = gw.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SAMPLE_INTERVAL);
            tick.tick().await;
            loop {
                tick.tick().await;
                let s = snapshot(&gw);
                let mut r = lock();
                r.samples.push_back(s);
                while r.samples.len() > MAX_SAMPLES {
                    r.samples.pop_front();
                }
            }
        });
    }

    /// Deltas between consecutive samples, the last one up to now.
    pub(super) fn buckets(gw: &Gateway) -> Vec<Bucket> {
        let now = snapshot(gw);
        let r = lock();
        let mut out = Vec::with_capacity(r.samples.len());
        let mut it = r
            .samples
            .iter()
            .copied()
            .chain(std::iter::once(now))
            .peekable();
        while let Some(a) = it.next() {
            if let Some(b) = it.peek() {
                out.push(Bucket {
                    start_s: a.0,
                    requests: b.1.saturating_sub(a.1),
                    blocked: b.2.saturating_sub(a.2),
                });
            }
        }
        out
    }
}
