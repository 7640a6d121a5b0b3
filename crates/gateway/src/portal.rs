//! The login portal served under `[identity] portal_path` (default
//! `/.palisade/auth`): `login`, `second-factor`, `logout`, `totp` (TOTP
//! self-enrolment when `totp_self_enrollment` is on; server-rendered, no
//! JavaScript, CSRF-protected POSTs) and `verify`, the forward-auth
//! endpoint for nginx `auth_request` and Traefik/Caddy `forward_auth`.
//!
//! Login events are logged with `tracing` (target `identity`, fields
//! `user`, `ip`, `reason`): "login succeeded", "login failed",
//! "login locked"; failures also feed the shield's `failed_login` jails.

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use identity::web::{self, Csrf, Form, MAX_FORM_BYTES};
use identity::{Factor, Policy, Subject};

use crate::body::RespBody;
use crate::identity_glue::{
    answer, gate, identity_headers, lookup, now_us, redirect, request_host, session_cookie,
    wants_html, Gate, IdentityRt, IdentitySettings,
};
use crate::proxy::ConnCtx;

/// 30 s: longest wait for a form body (a slow client cannot hold a portal
/// request open longer).
pub const FORM_READ_TIMEOUT: Duration = Duration::from_secs(30);

const HTML: &str = "text/html; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";
/// The generic failure message: never says whether the user exists or
/// which factor was wrong.
const LOGIN_FAILED: &str = "Sign-in failed: the username or password is incorrect.";
const CODE_FAILED: &str = "Verification failed: the code is incorrect or was already used.";

struct Ctx<'a> {
    set: &'a IdentitySettings,
    id: &'a IdentityRt,
    client: IpAddr,
    rid: &'a HeaderValue,
    secure: bool,
    host: String,
    /// The event bus: logins, failures and lockouts are security events.
    mon: &'a monitor::Monitor,
}

impl Ctx<'_> {
    fn base(&self) -> &str {
        &self.set.cfg.portal_path
    }
    fn csrf_cookie_name(&self) -> String {
        format!("{}_csrf", self.set.cfg.cookie_name)
    }
    fn html(&self, status: StatusCode, body: String) -> Response<RespBody> {
        let mut r = answer(status, HTML, body, self.rid);
        let h = r.headers_mut();
        // The pages need no script, frame or foreign resource.
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
        );
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        r
    }
    fn set_cookie(r: &mut Response<RespBody>, c: String) {
        if let Ok(v) = HeaderValue::from_str(&c) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    /// The pre-session value of the request, or a new one (and its cookie).
    fn presession(&self, h: &http::HeaderMap) -> (String, Option<String>) {
        let name = self.csrf_cookie_name();
        match cookie_of(h, &name) {
            Some(v) if v.len() == web::PRESESSION_LEN => (v, None),
            _ => {
                let v = Csrf::new_presession().unwrap_or_default();
                let c = web::set_cookie(&name, &v, self.secure, None);
                (v, Some(c))
            }
        }
    }
    fn return_to(&self, rd: Option<&str>) -> String {
        rd.and_then(|r| web::safe_return_to(r, &self.host))
            .unwrap_or_else(|| "/".to_owned())
    }
}

fn cookie_of(h: &http::HeaderMap, name: &str) -> Option<String> {
    session_cookie(h, name).map(str::to_owned)
}

fn query(req: &Request<Incoming>) -> Form {
    let q = req.uri().query().unwrap_or("");
    Form::parse(q.as_bytes()).unwrap_or_default()
}

/// Serves a portal request.
pub async fn handle(
    req: &mut Request<Incoming>,
    ctx: &ConnCtx,
    set: &IdentitySettings,
    id: &IdentityRt,
    client: IpAddr,
    rid: &HeaderValue,
) -> Response<RespBody> {
    let c = Ctx {
        set,
        id,
        client,
        rid,
        secure: ctx.listener.tls.is_some(),
        host: request_host(req),
        mon: &ctx.shared.monitor,
    };
    let sub = req.uri().path()[set.cfg.portal_path.len()..].to_owned();
    let method = req.method().clone();
    match (sub.as_str(), method) {
        ("/verify", _) => verify(req, &c).await,
        ("" | "/" | "/login", Method::GET | Method::HEAD) => login_get(req, &c, None).await,
        ("/login", Method::POST) => login_post(req, ctx, &c).await,
        ("/second-factor", Method::GET | Method::HEAD) => {
            let rd = c.return_to(query(req).get("rd"));
            second_get(req, &c, &rd, None).await
        }
        ("/second-factor", Method::POST) => second_post(req, ctx, &c).await,
        ("/logout", Method::GET | Method::HEAD) => logout_get(req, &c).await,
        ("/logout", Method::POST) => logout_post(req, &c).await,
        ("/totp", Method::GET | Method::HEAD) => totp_get(req, &c, None).await,
        ("/totp", Method::POST) => totp_post(req, &c).await,
        ("/login" | "/second-factor" | "/logout" | "/totp", _) => {
            let mut r = answer(
                StatusCode::METHOD_NOT_ALLOWED,
                TEXT,
                "405 Method Not Allowed\nuse GET or POST\n".into(),
                rid,
            );
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD, POST"));
            r
        }
        _ => answer(
            StatusCode::NOT_FOUND,
            TEXT,
            "404 Not Found\nno such portal page\n".into(),
            rid,
        ),
    }
}

async fn login_get(
    req: &mut Request<Incoming>,
    c: &Ctx<'_>,
    error: Option<(StatusCode, &str)>,
) -> Response<RespBody> {
    let q = query(req);
    let rd = c.return_to(q.get("rd"));
    let (pre, new_cookie) = c.presession(req.headers());
    let (status, msg) = match error {
        Some((s, m)) => (s, Some(m)),
        None => (StatusCode::OK, None),
    };
    let action = format!("{}/login", c.base());
    let mut r = c.html(
        status,
        web::login_page(&action, &c.id.csrf.token(&pre), &rd, msg),
    );
    if let Some(ck) = new_cookie {
        Ctx::set_cookie(&mut r, ck);
    }
    r
}

/// Reads and parses a form body; `Err` is the answer (413, 400, 408).
async fn read_form(req: &mut Request<Incoming>, c: &Ctx<'_>) -> Result<Form, Response<RespBody>> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = || {
        c.html(
            StatusCode::PAYLOAD_TOO_LARGE,
            web::message_page(
                "Form too large",
                &format!("The form is larger than {MAX_FORM_BYTES} bytes."),
                Some((&format!("{}/login", c.base()), "Back to sign-in")),
            ),
        )
    };
    if declared.is_some_and(|n| n > MAX_FORM_BYTES as u64) {
        return Err(too_large());
    }
    let body = Limited::new(req.body_mut(), MAX_FORM_BYTES);
    let bytes: Bytes = match tokio::time::timeout(FORM_READ_TIMEOUT, body.collect()).await {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => return Err(too_large()),
        Ok(Err(_)) => {
            return Err(answer(
                StatusCode::BAD_REQUEST,
                TEXT,
                "400 Bad Request\nthe form body could not be read\n".into(),
                c.rid,
            ))
        }
        Err(_) => {
            return Err(answer(
                StatusCode::REQUEST_TIMEOUT,
                TEXT,
                "408 Request Timeout\nthe form body was not sent in time\n".into(),
                c.rid,
            ))
        }
    };
    Form::parse(&bytes).map_err(|why| {
        c.html(
            StatusCode::BAD_REQUEST,
            web::message_page(
                "Invalid form",
                &format!("The form could not be read: {why}."),
                Some((&format!("{}/login", c.base()), "Back to sign-in")),
            ),
        )
    })
}

/// Refuses a POST whose CSRF token does not match the pre-session cookie.
fn check_csrf(
    req: &Request<Incoming>,
    form: &Form,
    c: &Ctx<'_>,
    page: &str,
) -> Option<Response<RespBody>> {
    let pre = cookie_of(req.headers(), &c.csrf_cookie_name());
    let ok = match (pre.as_deref(), form.get("csrf")) {
        (Some(p), Some(t)) => c.id.csrf.verify(p, t),
        _ => false,
    };
    if ok {
        return None;
    }
    tracing::warn!(target: "identity", ip = %c.client, page, reason = "csrf", "portal form refused: missing or invalid CSRF token");
    Some(c.html(
        StatusCode::FORBIDDEN,
        web::message_page(
            "Form expired",
            "This form has expired or was not sent from this site. Reload the page and try again.",
            Some((&format!("{}/{page}", c.base()), "Reload the form")),
        ),
    ))
}

fn login_failed(c: &Ctx<'_>, ctx: &ConnCtx, user: &str, reason: &str) {
    tracing::warn!(target: "identity", user, ip = %c.client, reason, "login failed");
    crate::events_glue::identity::login_failure(c.mon, c.client, user, reason, c.rid);
    ctx.shared.shield.record_failed_login(c.client);
}

fn locked_page(c: &Ctx<'_>, user: &str, retry: Duration, factor: &str) -> Response<RespBody> {
    tracing::warn!(target: "identity", user, ip = %c.client, reason = "locked", factor, retry_after_s = retry.as_secs(), "login locked");
    crate::events_glue::identity::lockout(c.mon, c.client, user, retry.as_secs());
    let secs = retry.as_secs().max(1);
    let mut r = c.html(
        StatusCode::TOO_MANY_REQUESTS,
        web::message_page(
            "Too many attempts",
            &format!("Too many failed attempts. Try again in {secs} seconds."),
            None,
        ),
    );
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

fn store_failed(c: &Ctx<'_>, e: &identity::Error) -> Response<RespBody> {
    tracing::error!(target: "identity", ip = %c.client, error = %e, "identity storage failed");
    c.html(
        StatusCode::SERVICE_UNAVAILABLE,
        web::message_page(
            "Service unavailable",
            "Sign-in is temporarily unavailable. Try again shortly.",
            None,
        ),
    )
}

/// Whether reaching `rd` needs two factors for `user` (decides whether to
/// ask for the code right after the password).
fn needs_two_factors(c: &Ctx<'_>, rd: &str, user: &str, roles: &[String]) -> bool {
    let (host, path) = if rd.starts_with('/') {
        (
            c.host.clone(),
            rd.split(['?', '#']).next().unwrap_or("/").to_owned(),
        )
    } else {
        match identity::access::split_url(rd) {
            Ok(hp) => hp,
            Err(_) => return false,
        }
    };
    let d = c.set.rules.decide(
        &identity::Request {
            host: &host,
            path: &path,
            method: "GET",
            ip: c.client,
            cert: None,
        },
        Some(&Subject { user, roles }),
    );
    d.policy == Policy::TwoFactor
}

async fn login_post(req: &mut Request<Incoming>, ctx: &ConnCtx, c: &Ctx<'_>) -> Response<RespBody> {
    let form = match read_form(req, c).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    if let Some(r) = check_csrf(req, &form, c, "login") {
        return r;
    }
    let rd = c.return_to(form.get("rd"));
    let raw_user = form.get("username").unwrap_or("");
    let password = form.get("password").unwrap_or("");
    let remember = form.get("remember") == Some("on");
    let refuse = |status: StatusCode, msg: &str| {
        let pre = cookie_of(req.headers(), &c.csrf_cookie_name()).unwrap_or_default();
        c.html(
            status,
            web::login_page(
                &format!("{}/login", c.base()),
                &c.id.csrf.token(&pre),
                &rd,
                Some(msg),
            ),
        )
    };
    if raw_user.len() > identity::username::MAX_USERNAME_INPUT_BYTES {
        login_failed(c, ctx, "-", "username too long");
        return refuse(
            StatusCode::BAD_REQUEST,
            &format!(
                "The username is too long (at most {} bytes).",
                identity::username::MAX_USERNAME_BYTES
            ),
        );
    }
    if password.len() > identity::password::MAX_PASSWORD_BYTES {
        login_failed(c, ctx, "-", "password too long");
        return refuse(
            StatusCode::BAD_REQUEST,
            &format!(
                "The password is too long (at most {} bytes).",
                identity::password::MAX_PASSWORD_BYTES
            ),
        );
    }
    let now = now_us();
    // An invalid name is counted like an unknown user (and costs the same
    // hash), so the answer does not tell names apart.
    let user = identity::normalize_username(raw_user).ok();
    let key = user.clone().unwrap_or_else(|| "-invalid-".to_owned());
    match c
        .id
        .regulator
        .check(Factor::Password, &key, c.client, now)
        .await
    {
        Ok(()) => {}
        Err(identity::Error::Locked { retry_after }) => {
            return locked_page(c, &key, retry_after, "password")
        }
        Err(e) => return store_failed(c, &e),
    }
    let record = match &user {
        Some(u) => match c.id.db.get(u) {
            Ok(r) => r,
            Err(e) => return store_failed(c, &e),
        },
        None => None,
    };
    let ok = match c
        .id
        .hasher
        .verify_login(password, record.as_ref().map(|r| r.password_hash.as_str()))
        .await
    {
        Ok(ok) => ok && record.is_some(),
        Err(identity::Error::Busy) => {
            tracing::warn!(target: "identity", user = %key, ip = %c.client, reason = "busy", "login refused: hashing busy");
            let mut r = c.html(
                StatusCode::SERVICE_UNAVAILABLE,
                web::message_page(
                    "Busy",
                    "Too many sign-ins at once. Try again in a moment.",
                    None,
                ),
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
            return r;
        }
        Err(_) => false,
    };
    let Some(u) = record.filter(|_| ok) else {
        let reason = if user.is_none() {
            "invalid username"
        } else if ok {
            "unknown user"
        } else {
            "bad password"
        };
        login_failed(c, ctx, &key, reason);
        match c
            .id
            .regulator
            .record_failure(Factor::Password, &key, c.client, now)
            .await
        {
            Ok(Some(d)) => return locked_page(c, &key, d, "password"),
            Ok(None) => {}
            Err(e) => return store_failed(c, &e),
        }
        return refuse(StatusCode::UNAUTHORIZED, LOGIN_FAILED);
    };
    if c.id.hasher.needs_rehash(&u.password_hash) {
        if let Ok(h) = c.id.hasher.hash_bounded(password).await {
            if let Err(e) = c.id.db.set_password_hash(&u.name, &h) {
                tracing::warn!(target: "identity", user = %u.name, error = %e, "rehash not stored");
            }
        }
    }
    // Rotation: whatever session the browser had ends; a new ID is issued.
    if let Some(old) = cookie_of(req.headers(), &c.set.cfg.cookie_name) {
        let _ = c.id.sessions.destroy(&old, now).await;
    }
    let sid = match c
        .id
        .sessions
        .create_with_roles(&u.name, &u.roles, 1, remember, now)
        .await
    {
        Ok(s) => s,
        Err(e) => return store_failed(c, &e),
    };
    let needs_two = needs_two_factors(c, &rd, &u.name, &u.roles);
    let second = u.totp_secret.is_some() && needs_two;
    // A two-factor target and no authenticator yet: straight to enrolment
    // when self-enrolment is on (otherwise the target explains).
    let enrol = u.totp_secret.is_none() && needs_two && c.set.cfg.totp_self_enrollment;
    if !second {
        if let Err(e) = c.id.regulator.record_success(&u.name, c.client, now).await {
            tracing::warn!(target: "identity", error = %e, "known-good record failed");
        }
    }
    tracing::info!(target: "identity", user = %u.name, ip = %c.client, reason = "password", factors = 1, remember, "login succeeded");
    crate::events_glue::identity::login_success(c.mon, c.client, &u.name, c.rid);
    let loc = if second {
        format!("{}/second-factor?rd={}", c.base(), web::pct_encode(&rd))
    } else if enrol {
        format!("{}/totp?rd={}", c.base(), web::pct_encode(&rd))
    } else {
        rd
    };
    let mut r = redirect(&loc, c.rid);
    *r.status_mut() = StatusCode::SEE_OTHER;
    let max_age = remember.then(|| c.id.sessions.config().remember_absolute_secs);
    Ctx::set_cookie(
        &mut r,
        web::set_cookie(&c.set.cfg.cookie_name, &sid, c.secure, max_age),
    );
    r
}

/// The second-factor page; `rd` comes from the query (GET) or from the
/// form (a failed POST), so a wrong code does not lose the target.
async fn second_get(
    req: &mut Request<Incoming>,
    c: &Ctx<'_>,
    rd: &str,
    error: Option<(StatusCode, &str)>,
) -> Response<RespBody> {
    let Some(s) = lookup(req, c.id, &c.set.cfg.cookie_name).await else {
        return redirect(
            &format!("{}/login?rd={}", c.base(), web::pct_encode(rd)),
            c.rid,
        );
    };
    let enrolled = matches!(c.id.db.get(&s.user), Ok(Some(u)) if u.totp_secret.is_some());
    if !enrolled {
        if c.set.cfg.totp_self_enrollment {
            return redirect(
                &format!("{}/totp?rd={}", c.base(), web::pct_encode(rd)),
                c.rid,
            );
        }
        return not_enrolled_page(c);
    }
    let (pre, new_cookie) = c.presession(req.headers());
    let (status, msg) = match error {
        Some((s, m)) => (s, Some(m)),
        None => (StatusCode::OK, None),
    };
    let mut r = c.html(
        status,
        web::second_factor_page(
            &format!("{}/second-factor", c.base()),
            &c.id.csrf.token(&pre),
            rd,
            &s.user,
            msg,
        ),
    );
    if let Some(ck) = new_cookie {
        Ctx::set_cookie(&mut r, ck);
    }
    r
}

async fn second_post(
    req: &mut Request<Incoming>,
    ctx: &ConnCtx,
    c: &Ctx<'_>,
) -> Response<RespBody> {
    let form = match read_form(req, c).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    if let Some(r) = check_csrf(req, &form, c, "second-factor") {
        return r;
    }
    let rd = c.return_to(form.get("rd"));
    let Some(sid) = cookie_of(req.headers(), &c.set.cfg.cookie_name) else {
        return redirect(
            &format!("{}/login?rd={}", c.base(), web::pct_encode(&rd)),
            c.rid,
        );
    };
    let Some(s) = lookup(req, c.id, &c.set.cfg.cookie_name).await else {
        return redirect(
            &format!("{}/login?rd={}", c.base(), web::pct_encode(&rd)),
            c.rid,
        );
    };
    let now = now_us();
    match c
        .id
        .regulator
        .check(Factor::Totp, &s.user, c.client, now)
        .await
    {
        Ok(()) => {}
        Err(identity::Error::Locked { retry_after }) => {
            return locked_page(c, &s.user, retry_after, "totp")
        }
        Err(e) => return store_failed(c, &e),
    }
    let code: String = form
        .get("code")
        .unwrap_or("")
        .chars()
        .filter(|ch| !ch.is_whitespace())
        .take(64)
        .collect();
    let unix = now / 1_000_000;
    let (ok, how) = if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
        let r =
            identity::replay::totp_check_shared(&c.id.db, &c.id.store, &s.user, &code, unix, now)
                .await;
        (matches!(r, Ok(true)), "totp")
    } else {
        (
            matches!(
                c.id.db
                    .use_recovery_code(&s.user, &code.to_ascii_lowercase()),
                Ok(true)
            ),
            "recovery code",
        )
    };
    if !ok {
        login_failed(c, ctx, &s.user, &format!("bad {how}"));
        match c
            .id
            .regulator
            .record_failure(Factor::Totp, &s.user, c.client, now)
            .await
        {
            Ok(Some(d)) => return locked_page(c, &s.user, d, "totp"),
            Ok(None) => {}
            Err(e) => return store_failed(c, &e),
        }
        return second_get(req, c, &rd, Some((StatusCode::UNAUTHORIZED, CODE_FAILED))).await;
    }
    // Elevation rotates the session: the one-factor ID stops working.
    let new = match c.id.sessions.rotate(&sid, Some(2), now).await {
        Ok(Some(n)) => n,
        Ok(None) => {
            return redirect(
                &format!("{}/login?rd={}", c.base(), web::pct_encode(&rd)),
                c.rid,
            )
        }
        Err(e) => return store_failed(c, &e),
    };
    if let Err(e) = c.id.regulator.record_success(&s.user, c.client, now).await {
        tracing::warn!(target: "identity", error = %e, "known-good record failed");
    }
    tracing::info!(target: "identity", user = %s.user, ip = %c.client, reason = how, factors = 2, "login succeeded");
    crate::events_glue::identity::login_success(c.mon, c.client, &s.user, c.rid);
    let mut r = redirect(&rd, c.rid);
    *r.status_mut() = StatusCode::SEE_OTHER;
    let max_age = s
        .remember
        .then(|| c.id.sessions.config().remember_absolute_secs);
    Ctx::set_cookie(
        &mut r,
        web::set_cookie(&c.set.cfg.cookie_name, &new, c.secure, max_age),
    );
    r
}

async fn logout_get(req: &mut Request<Incoming>, c: &Ctx<'_>) -> Response<RespBody> {
    let user = lookup(req, c.id, &c.set.cfg.cookie_name)
        .await
        .map(|s| s.user);
    let (pre, new_cookie) = c.presession(req.headers());
    let mut r = c.html(
        StatusCode::OK,
        web::logout_page(
            &format!("{}/logout", c.base()),
            &c.id.csrf.token(&pre),
            user.as_deref(),
        ),
    );
    if let Some(ck) = new_cookie {
        Ctx::set_cookie(&mut r, ck);
    }
    r
}

async fn logout_post(req: &mut Request<Incoming>, c: &Ctx<'_>) -> Response<RespBody> {
    let form = match read_form(req, c).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    if let Some(r) = check_csrf(req, &form, c, "logout") {
        return r;
    }
    if let Some(sid) = cookie_of(req.headers(), &c.set.cfg.cookie_name) {
        let user = lookup(req, c.id, &c.set.cfg.cookie_name)
            .await
            .map(|s| s.user);
        if let Err(e) = c.id.sessions.destroy(&sid, now_us()).await {
            return store_failed(c, &e);
        }
        if let Some(u) = user {
            tracing::info!(target: "identity", user = %u, ip = %c.client, reason = "logout", "logged out");
        }
    }
    let mut r = c.html(
        StatusCode::OK,
        web::message_page(
            "Signed out",
            "You are signed out.",
            Some((&format!("{}/login", c.base()), "Sign in again")),
        ),
    );
    Ctx::set_cookie(
        &mut r,
        web::set_cookie(&c.set.cfg.cookie_name, "", c.secure, Some(0)),
    );
    r
}

/// A two-factor route, no authenticator, and self-enrolment off.
fn not_enrolled_page(c: &Ctx<'_>) -> Response<RespBody> {
    c.html(
        StatusCode::FORBIDDEN,
        web::message_page(
            "Second factor not set up",
            "This page requires two-factor authentication, but no authenticator is enrolled for your account. Ask an administrator to run `palisade user totp-enroll`.",
            Some((&format!("{}/logout", c.base()), "Sign out")),
        ),
    )
}

/// The enrolment page's answer for a user who has TOTP already: a clear
/// page, never a second enrolment (a reset is an administrator's
/// `palisade user totp-reset`).
fn already_enrolled_page(c: &Ctx<'_>, status: StatusCode, rd: &str) -> Response<RespBody> {
    c.html(
        status,
        web::message_page(
            "Two-factor authentication is already set up",
            "Your account already has an authenticator app. To replace it (a new phone, a lost device), ask an administrator to run `palisade user totp-reset`; then set it up again here.",
            Some((rd, "Continue")),
        ),
    )
}

/// `GET {portal}/totp`: the enrolment page for a signed-in user without
/// TOTP; the pending secret is created (or reused) in the state store,
/// bound to this session.
async fn totp_get(
    req: &mut Request<Incoming>,
    c: &Ctx<'_>,
    error: Option<(StatusCode, &str)>,
) -> Response<RespBody> {
    let rd = c.return_to(query(req).get("rd"));
    totp_page(req, c, &rd, error).await
}

async fn totp_page(
    req: &mut Request<Incoming>,
    c: &Ctx<'_>,
    rd: &str,
    error: Option<(StatusCode, &str)>,
) -> Response<RespBody> {
    let here = format!("{}/totp?rd={}", c.base(), web::pct_encode(rd));
    let (Some(sid), Some(s)) = (
        cookie_of(req.headers(), &c.set.cfg.cookie_name),
        lookup(req, c.id, &c.set.cfg.cookie_name).await,
    ) else {
        return redirect(
            &format!("{}/login?rd={}", c.base(), web::pct_encode(&here)),
            c.rid,
        );
    };
    if !c.set.cfg.totp_self_enrollment {
        return self_enrollment_off(c);
    }
    if !identity::enroll::login_is_recent(s.created_us, now_us()) {
        // An old session signs in again before binding an authenticator.
        return redirect(
            &format!("{}/login?rd={}", c.base(), web::pct_encode(&here)),
            c.rid,
        );
    }
    match c.id.db.get(&s.user) {
        Ok(Some(u)) if u.totp_secret.is_some() => {
            return already_enrolled_page(c, StatusCode::OK, rd)
        }
        Ok(Some(_)) => {}
        Ok(None) => {
            return redirect(
                &format!("{}/login?rd={}", c.base(), web::pct_encode(&here)),
                c.rid,
            )
        }
        Err(e) => return store_failed(c, &e),
    }
    let secret = match identity::enroll::pending_secret(&c.id.store, &sid, &s.user, now_us()).await
    {
        Ok(x) => x,
        Err(e) => return store_failed(c, &e),
    };
    let uri = identity::totp::otpauth_uri(&c.set.cfg.issuer, &s.user, &secret);
    let svg = match identity::totp::qr_svg_titled(
        &uri,
        &format!(
            "QR code to add {} at {} to an authenticator app",
            s.user, c.set.cfg.issuer
        ),
    ) {
        Ok(x) => x,
        Err(e) => return store_failed(c, &e),
    };
    let (pre, new_cookie) = c.presession(req.headers());
    let (status, msg) = match error {
        Some((st, m)) => (st, Some(m)),
        None => (StatusCode::OK, None),
    };
    let mut r = c.html(
        status,
        web::totp_enroll_page(
            &web::EnrollView {
                action: &format!("{}/totp", c.base()),
                csrf: &c.id.csrf.token(&pre),
                rd,
                user: &s.user,
                secret: &secret,
                uri: &uri,
                svg: &svg,
            },
            msg,
        ),
    );
    if let Some(ck) = new_cookie {
        Ctx::set_cookie(&mut r, ck);
    }
    r
}

fn self_enrollment_off(c: &Ctx<'_>) -> Response<RespBody> {
    c.html(
        StatusCode::FORBIDDEN,
        web::message_page(
            "Self-enrolment is off",
            "Two-factor authentication is set up by an administrator here (`palisade user totp-enroll`). Ask yours.",
            Some((&format!("{}/logout", c.base()), "Sign out")),
        ),
    )
}

/// `POST {portal}/totp`: confirms the pending secret with a current code;
/// on success stores TOTP, shows the recovery codes once and elevates the
/// session to two factors under a new ID.
async fn totp_post(req: &mut Request<Incoming>, c: &Ctx<'_>) -> Response<RespBody> {
    let form = match read_form(req, c).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    if let Some(r) = check_csrf(req, &form, c, "totp") {
        return r;
    }
    let rd = c.return_to(form.get("rd"));
    let here = format!("{}/totp?rd={}", c.base(), web::pct_encode(&rd));
    let back_to_login = || {
        let mut r = redirect(
            &format!("{}/login?rd={}", c.base(), web::pct_encode(&here)),
            c.rid,
        );
        *r.status_mut() = StatusCode::SEE_OTHER;
        r
    };
    let (Some(sid), Some(s)) = (
        cookie_of(req.headers(), &c.set.cfg.cookie_name),
        lookup(req, c.id, &c.set.cfg.cookie_name).await,
    ) else {
        return back_to_login();
    };
    if !c.set.cfg.totp_self_enrollment {
        return self_enrollment_off(c);
    }
    let now = now_us();
    if !identity::enroll::login_is_recent(s.created_us, now) {
        return back_to_login();
    }
    let code: String = form
        .get("code")
        .unwrap_or("")
        .chars()
        .filter(|ch| !ch.is_whitespace())
        .take(64)
        .collect();
    let outcome = identity::enroll::confirm(
        &c.id.db,
        &c.id.store,
        &sid,
        &s.user,
        &code,
        now / 1_000_000,
        now,
    )
    .await;
    let codes = match outcome {
        Ok(identity::enroll::Confirmed::Enrolled { recovery_codes }) => recovery_codes,
        Ok(identity::enroll::Confirmed::AlreadyEnrolled) => {
            return already_enrolled_page(c, StatusCode::CONFLICT, &rd)
        }
        Ok(identity::enroll::Confirmed::BadCode) => {
            tracing::info!(target: "identity", user = %s.user, ip = %c.client, reason = "bad code", "totp enrolment: code refused");
            return totp_page(
                req,
                c,
                &rd,
                Some((
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "That code does not match. Check that the app shows the new entry and that the phone's clock is right, then enter the current code.",
                )),
            )
            .await;
        }
        Ok(_) => {
            // The pending secret expired (or the session changed): a new
            // one is shown.
            tracing::info!(target: "identity", user = %s.user, ip = %c.client, reason = "expired", "totp enrolment: setup expired");
            return totp_page(
                req,
                c,
                &rd,
                Some((
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "This setup expired. Remove the old entry from your app, scan this new QR code, and enter the current code.",
                )),
            )
            .await;
        }
        Err(identity::Error::NoSuchUser(_)) => return back_to_login(),
        Err(e) => return store_failed(c, &e),
    };
    // Elevation: the session now has both factors, under a new ID.
    let new = match c.id.sessions.rotate(&sid, Some(2), now).await {
        Ok(Some(n)) => Some(n),
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(target: "identity", user = %s.user, error = %e, "session not elevated after enrolment");
            None
        }
    };
    if let Err(e) = c.id.regulator.record_success(&s.user, c.client, now).await {
        tracing::warn!(target: "identity", error = %e, "known-good record failed");
    }
    tracing::info!(target: "identity", user = %s.user, ip = %c.client, reason = "self-enrolment", "totp enrolled");
    // 200 with the codes (not a redirect: they are shown once, here).
    let mut r = c.html(
        StatusCode::OK,
        web::totp_enrolled_page(&s.user, &codes, &rd),
    );
    if let Some(n) = new {
        let max_age = s
            .remember
            .then(|| c.id.sessions.config().remember_absolute_secs);
        Ctx::set_cookie(
            &mut r,
            web::set_cookie(&c.set.cfg.cookie_name, &n, c.secure, max_age),
        );
    }
    r
}

/// The original request a forward-auth call asks about: (proto, host with
/// port, path and query, method).
fn original(req: &Request<Incoming>) -> Option<(String, String, String, String)> {
    let h = req.headers();
    let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).map(str::trim);
    let method = get("x-original-method")
        .or_else(|| get("x-forwarded-method"))
        .unwrap_or("GET")
        .to_ascii_uppercase();
    if let Some(url) = get("x-original-url") {
        let (proto, rest) = if let Some(r) = url.strip_prefix("https://") {
            ("https", r)
        } else if let Some(r) = url.strip_prefix("http://") {
            ("http", r)
        } else {
            return None;
        };
        let i = rest.find(['/', '?']).unwrap_or(rest.len());
        let pq = if i == rest.len() {
            "/".to_owned()
        } else {
            rest[i..].to_owned()
        };
        let pq = if pq.starts_with('?') {
            format!("/{pq}")
        } else {
            pq
        };
        return Some((proto.into(), rest[..i].to_owned(), pq, method));
    }
    let host = get("x-forwarded-host")?;
    let proto = get("x-forwarded-proto").unwrap_or("http");
    let proto = if proto.eq_ignore_ascii_case("https") {
        "https"
    } else {
        "http"
    };
    let uri = get("x-forwarded-uri").unwrap_or("/");
    if !uri.starts_with('/') {
        return None;
    }
    Some((proto.into(), host.to_owned(), uri.to_owned(), method))
}

async fn verify(req: &mut Request<Incoming>, c: &Ctx<'_>) -> Response<RespBody> {
    let Some((proto, host, pq, method)) = original(req) else {
        return answer(
            StatusCode::BAD_REQUEST,
            TEXT,
            "400 Bad Request\nforward-auth needs X-Original-URL, or X-Forwarded-Host (+ -Proto, -Uri, -Method)\n".into(),
            c.rid,
        );
    };
    if host.is_empty()
        || host.len() > 255
        || pq.len() > web::MAX_RETURN_TO_BYTES
        || host
            .bytes()
            .chain(pq.bytes())
            .any(|b| b <= 0x20 || b == 0x7f)
    {
        return answer(
            StatusCode::BAD_REQUEST,
            TEXT,
            "400 Bad Request\ninvalid original URL\n".into(),
            c.rid,
        );
    }
    let redirect_mode = query(req)
        .get("redirect")
        .is_some_and(|v| v == "1" || v == "true");
    let nhost = crate::route::normalize_host(&host).into_owned();
    let path = pq.split(['?', '#']).next().unwrap_or("/").to_owned();
    match gate(req, c.set, c.id, (&nhost, &path, &method), c.client, None).await {
        Gate::Pass(s) => {
            let mut r = answer(StatusCode::OK, TEXT, String::new(), c.rid);
            if let Some(s) = s {
                identity_headers(r.headers_mut(), c.set, &s);
            }
            r
        }
        Gate::Deny(why) => {
            tracing::info!(target: "identity", ip = %c.client, host = %nhost, path = %path, reason = %why, "forward-auth: access denied");
            answer(
                StatusCode::FORBIDDEN,
                TEXT,
                "403 Forbidden\naccess denied\n".into(),
                c.rid,
            )
        }
        Gate::Login { elevate } => {
            let page = if elevate { "second-factor" } else { "login" };
            if redirect_mode && wants_html(req.headers()) {
                let orig = format!("{proto}://{host}{pq}");
                let loc = format!(
                    "{proto}://{host}{}/{page}?rd={}",
                    c.base(),
                    web::pct_encode(&orig)
                );
                redirect(&loc, c.rid)
            } else {
                let mut r = answer(
                    StatusCode::UNAUTHORIZED,
                    TEXT,
                    format!("401 Unauthorized\nsign in at {}/{page}\n", c.base()),
                    c.rid,
                );
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Cookie realm=\"palisade\""),
                );
                r
            }
        }
    }
}
