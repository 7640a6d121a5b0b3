//! Glue between the gateway and [`identity`]: the `[identity]` config
//! section, the per-request access check (after the shield, before the
//! WAF), the identity headers forwarded upstream, and the process-wide
//! identity runtime (user database, sessions, brute-force regulator).
//!
//! Per request, when `[identity]` is configured:
//! 1. the configured `Remote-User`/`Remote-Groups` headers a client sent
//!    are removed (always, on every route);
//! 2. requests under `portal_path` go to the [`crate::portal`];
//! 3. the access rules decide (first match, default deny); `bypass` passes,
//!    `deny` answers 403; otherwise the session cookie must name a session
//!    with enough factors, or the answer is a redirect to the portal
//!    (browsers) or 401;
//! 4. an authenticated request carries the user and roles upstream;
//! 5. palisade's own cookies (the session and the CSRF pre-session) are
//!    removed from the `Cookie` header of every forwarded request, so an
//!    upstream (or its logs) never sees a session ID; the application's
//!    own cookies pass unchanged.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use identity::{AccessRules, ClientCert, IdentityConfig, Policy, Session, Subject};

use crate::body::RespBody;
use crate::error::{ConfigError, Error, Result};
use crate::proxy::ConnCtx;
use crate::route::normalize_host;
use crate::server::{Runtime, Shared};

/// The validated `[identity]` section: the config and its compiled rules.
#[derive(Debug)]
pub struct IdentitySettings {
    /// The section as written (paths made absolute against the config file).
    pub cfg: IdentityConfig,
    /// The compiled access rules.
    pub rules: AccessRules,
    /// `user_header` as a header name.
    pub user_header: HeaderName,
    /// `groups_header` as a header name.
    pub groups_header: HeaderName,
}

fn config_error(file: &str, message: String) -> Error {
    Error::Config(Box::new(ConfigError {
        file: file.to_string(),
        line: 0,
        column: 0,
        key: Some("identity".into()),
        message,
    }))
}

/// Validates `[identity]` once at load: keys, header names, rules. Relative
/// paths are taken against the config file's directory (as the `palisade
/// user` commands do, so both use the same user database).
pub fn validate(raw: Option<IdentityConfig>, file: &str) -> Result<Option<Arc<IdentitySettings>>> {
    let Some(mut cfg) = raw else {
        return Ok(None);
    };
    cfg.validate().map_err(|e| config_error(file, e))?;
    let rules = cfg
        .access
        .compile()
        .map_err(|e| config_error(file, e.to_string()))?;
    if let Some(base) = Path::new(file).parent() {
        if cfg.users_db.is_relative() && !base.as_os_str().is_empty() {
            cfg.users_db = base.join(&cfg.users_db);
        }
        if let Some(b) = cfg.password_policy.breached_list.as_mut() {
            if b.is_relative() && !base.as_os_str().is_empty() {
                *b = base.join(&*b);
            }
        }
    }
    let hn = |s: &str| {
        HeaderName::from_bytes(s.to_ascii_lowercase().as_bytes())
            .map_err(|_| config_error(file, format!("{s:?} is not a header name")))
    };
    Ok(Some(Arc::new(IdentitySettings {
        user_header: hn(&cfg.user_header)?,
        groups_header: hn(&cfg.groups_header)?,
        rules,
        cfg,
    })))
}

/// What lives as long as the process: the user database, sessions,
/// counters, CSRF key (a reload changes rules and headers, not these).
pub struct IdentityRt {
    /// The user database.
    pub db: Arc<identity::UserDb>,
    /// Password hashing (bounded concurrency).
    pub hasher: identity::Hasher,
    /// Sessions in the state store.
    pub sessions: identity::Sessions,
    /// Brute-force counters in the state store.
    pub regulator: identity::Regulator,
    /// The state store (TOTP replay records).
    pub store: state::Store,
    /// CSRF token key.
    pub csrf: identity::web::Csrf,
    /// The users database path it was opened from (reload warnings).
    pub users_db: std::path::PathBuf,
}

impl std::fmt::Debug for IdentityRt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityRt")
            .field("users_db", &self.users_db)
            .finish()
    }
}

/// The process-wide identity runtime (`None` without `[identity]`).
pub type Slot = ArcSwapOption<IdentityRt>;

/// Opens the identity runtime for a config (at start); sessions and
/// counters use the shield's state store.
pub async fn build(shared: &Shared) -> Result<()> {
    let rt = shared.runtime.load_full();
    let Some(set) = rt.config.identity.as_ref() else {
        return Ok(());
    };
    let cfg = &set.cfg;
    let io = |what: &str, e: identity::Error| {
        Error::io(what.to_string(), std::io::Error::other(e.to_string()))
    };
    let db = identity::UserDb::open(&cfg.users_db).map_err(|e| {
        io(
            &format!("cannot open the user database {}", cfg.users_db.display()),
            e,
        )
    })?;
    let store = shared.shield.store().clone();
    let csrf = identity::web::Csrf::new(cfg.secret.as_deref())
        .map_err(|e| io("cannot create the CSRF key", e))?;
    shared.identity.store(Some(Arc::new(IdentityRt {
        db: Arc::new(db),
        hasher: identity::Hasher::new(cfg.argon2),
        sessions: identity::Sessions::new(store.clone(), cfg.sessions.clone()),
        regulator: identity::Regulator::new(store.clone(), cfg.brute_force.clone()),
        store,
        csrf,
        users_db: cfg.users_db.clone(),
    })));
    tracing::info!(target: "identity", users_db = %cfg.users_db.display(), portal = %cfg.portal_path, rules = set.rules.len(), "identity enabled");
    Ok(())
}

/// A reload installs new rules and header names; the rest needs a restart.
pub fn on_reload(shared: &Shared, cfg: &crate::Config, old: &crate::Config) {
    match (
        &cfg.identity,
        &old.identity,
        shared.identity.load().as_ref(),
    ) {
        (Some(_), None, None) => {
            tracing::warn!(target: "identity", "[identity] added: takes effect after a restart");
        }
        (Some(new), Some(o), _)
            if new.cfg.users_db != o.cfg.users_db
                || new.cfg.sessions != o.cfg.sessions
                || new.cfg.brute_force != o.cfg.brute_force
                || new.cfg.secret != o.cfg.secret
                || new.cfg.argon2 != o.cfg.argon2 =>
        {
            tracing::warn!(target: "identity", "identity users_db/sessions/brute_force/secret/argon2 changed: takes effect after a restart");
        }
        _ => {}
    }
}

/// Records the verified client certificate of an https connection for the
/// `cert_cn`/`cert_san` rule matchers.
pub fn set_client_cert(slot: &std::sync::OnceLock<ClientCert>, conn: &rustls::ServerConnection) {
    if let Some(id) = crate::tunnel::peer_identity(conn) {
        let mut san = id.dns;
        san.extend(id.uri);
        let _ = slot.set(ClientCert { cn: id.cn, san });
    }
}

/// The session found for a request (looked up once: by the shield's `user`
/// rate-limit key, or by the access check).
#[derive(Clone, Debug)]
pub struct SessionLookup(pub Option<(String, Session)>);

pub(crate) fn now_us() -> u64 {
    shield::now_us()
}

/// The session cookie's value in a request, if any.
pub(crate) fn session_cookie<'a>(h: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    h.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| identity::web::find_cookie(v, name))
}

/// Looks the request's session up (once; the result is cached in the
/// request's extensions).
pub(crate) async fn lookup<B>(
    req: &mut Request<B>,
    id: &IdentityRt,
    cookie: &str,
) -> Option<Session> {
    if let Some(l) = req.extensions().get::<SessionLookup>() {
        return l.0.as_ref().map(|(_, s)| s.clone());
    }
    let found = match session_cookie(req.headers(), cookie) {
        Some(v) => {
            let v = v.to_owned();
            match id.sessions.check(&v, now_us()).await {
                Ok(Ok(s)) => Some((v, s)),
                Ok(Err(why)) => {
                    tracing::debug!(target: "identity", reason = ?why, "session cookie refused");
                    None
                }
                Err(e) => {
                    tracing::warn!(target: "identity", error = %e, "session store failed");
                    None
                }
            }
        }
        None => None,
    };
    let s = found.as_ref().map(|(_, s)| s.clone());
    req.extensions_mut().insert(SessionLookup(found));
    s
}

/// For the shield's `user` rate-limit key: the authenticated user of the
/// request, when identity is on and a `user`-keyed rate limit exists.
pub async fn user_for_shield(
    req: &mut Request<Incoming>,
    ctx: &ConnCtx,
    rt: &Runtime,
) -> Option<String> {
    let set = rt.config.identity.as_ref()?;
    let uses_user = rt
        .config
        .shield
        .config
        .rate_limits
        .iter()
        .any(|r| r.key == shield::RateKey::User);
    if !uses_user {
        return None;
    }
    let id = ctx.shared.identity.load_full()?;
    lookup(req, &id, &set.cfg.cookie_name).await.map(|s| s.user)
}

/// The host a request is for (authority or Host), normalised.
pub(crate) fn request_host<B>(req: &Request<B>) -> String {
    let raw = match req.uri().authority() {
        Some(a) => a.as_str(),
        None => req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or(""),
    };
    normalize_host(raw).into_owned()
}

/// Whether the client is a browser that should see the portal (not a 401).
pub(crate) fn wants_html(h: &http::HeaderMap) -> bool {
    h.get_all(header::ACCEPT).iter().any(|v| {
        v.as_bytes()
            .windows(9)
            .any(|w| w.eq_ignore_ascii_case(b"text/html"))
    })
}

/// A plain-text or HTML answer of the identity layer.
pub(crate) fn answer(
    status: StatusCode,
    content_type: &'static str,
    body: String,
    request_id: &HeaderValue,
) -> Response<RespBody> {
    let mut r = Response::new(RespBody::full(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(HeaderName::from_static("x-request-id"), request_id.clone());
    r
}

pub(crate) fn redirect(location: &str, request_id: &HeaderValue) -> Response<RespBody> {
    let mut r = answer(
        StatusCode::FOUND,
        "text/plain; charset=utf-8",
        format!("see {location}\n"),
        request_id,
    );
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// Adds the identity headers for `s`.
pub(crate) fn identity_headers(h: &mut http::HeaderMap, set: &IdentitySettings, s: &Session) {
    // Names are NFKC-normalised UTF-8 without control characters: sent as
    // raw UTF-8 bytes (obs-text), so a non-ASCII user is never dropped.
    if let Ok(v) = HeaderValue::from_bytes(s.user.as_bytes()) {
        h.insert(set.user_header.clone(), v);
    }
    if let Ok(v) = HeaderValue::from_bytes(s.roles.join(",").as_bytes()) {
        h.insert(set.groups_header.clone(), v);
    }
}

/// Removes palisade's cookies (`cookie_name` and its `<cookie_name>_csrf`
/// pre-session) from every `Cookie` header, keeping the other cookies in
/// their order; a header left empty is dropped. Works on bytes, so a
/// non-UTF-8 cookie of the application passes through untouched.
pub(crate) fn strip_portal_cookies(h: &mut http::HeaderMap, cookie_name: &str) {
    let csrf = format!("{cookie_name}_csrf");
    let ours = |pair: &[u8]| {
        let name = pair
            .split(|b| *b == b'=')
            .next()
            .unwrap_or(pair)
            .trim_ascii();
        name == cookie_name.as_bytes() || name == csrf.as_bytes()
    };
    let any_ours = h
        .get_all(header::COOKIE)
        .iter()
        .any(|v| v.as_bytes().split(|b| *b == b';').any(ours));
    if !any_ours {
        return;
    }
    let kept: Vec<HeaderValue> = h
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| {
            let rest: Vec<&[u8]> = v
                .as_bytes()
                .split(|b| *b == b';')
                .filter(|p| !ours(p) && !p.trim_ascii().is_empty())
                .map(|p| p.trim_ascii())
                .collect();
            HeaderValue::from_bytes(&rest.join(&b"; "[..])).ok()
        })
        .filter(|v| !v.is_empty())
        .collect();
    h.remove(header::COOKIE);
    for v in kept {
        h.append(header::COOKIE, v);
    }
}

/// What the access rules and the session say about one request.
pub(crate) enum Gate {
    /// Let it through (with this session's identity, if any).
    Pass(Option<Session>),
    /// Not logged in, or a session without enough factors.
    Login {
        /// A session exists but needs a second factor.
        elevate: bool,
    },
    /// Refused by a `deny` rule (or a user who may not).
    Deny(String),
}

/// Decides a request: rules anonymously first (a bypass or deny costs no
/// session lookup), then with the session's user.
pub(crate) async fn gate<B>(
    req: &mut Request<B>,
    set: &IdentitySettings,
    id: &IdentityRt,
    target: (&str, &str, &str),
    client: IpAddr,
    cert: Option<&ClientCert>,
) -> Gate {
    let (host, path, method) = target;
    let areq = identity::Request {
        host,
        path,
        method,
        ip: client,
        cert,
    };
    let d = set.rules.decide(&areq, None);
    if !d.needs_login {
        match d.policy {
            Policy::Bypass => return Gate::Pass(None),
            Policy::Deny => return Gate::Deny(format!("{}: {}", d.name, d.reason)),
            _ => {}
        }
    }
    let Some(s) = lookup(req, id, &set.cfg.cookie_name).await else {
        return Gate::Login { elevate: false };
    };
    let d = set.rules.decide(
        &areq,
        Some(&Subject {
            user: &s.user,
            roles: &s.roles,
        }),
    );
    match d.policy {
        Policy::Bypass | Policy::OneFactor => Gate::Pass(Some(s)),
        Policy::TwoFactor if s.factors >= 2 => Gate::Pass(Some(s)),
        Policy::TwoFactor => Gate::Login { elevate: true },
        Policy::Deny => Gate::Deny(format!("{}: {} (user {})", d.name, d.reason, s.user)),
    }
}

/// The per-request hook (after the shield, before routing and the WAF).
/// `Some((response, error))` answers the request here; `error` is the
/// access log's error field.
pub async fn on_request(
    req: &mut Request<Incoming>,
    ctx: &ConnCtx,
    rt: &Runtime,
    client: IpAddr,
    request_id: &HeaderValue,
) -> Option<(Response<RespBody>, Option<String>)> {
    let set = rt.config.identity.as_ref()?;
    // Whatever happens next, a client never speaks for the identity layer.
    let h = req.headers_mut();
    h.remove(&set.user_header);
    h.remove(&set.groups_header);
    let Some(id) = ctx.shared.identity.load_full() else {
        // Configured by a reload, not started: fail closed.
        return Some((
            answer(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain; charset=utf-8",
                "503 Service Unavailable\nidentity is not running (restart palisade)\n".into(),
                request_id,
            ),
            Some("identity: not started".into()),
        ));
    };
    let path = req.uri().path().to_owned();
    let portal = set.cfg.portal_path.as_str();
    if path == portal
        || (path.starts_with(portal) && path.as_bytes().get(portal.len()) == Some(&b'/'))
    {
        let resp = crate::portal::handle(req, ctx, set, &id, client, request_id).await;
        return Some((resp, None));
    }
    let host = request_host(req);
    let method = req.method().as_str().to_owned();
    let cert = ctx.client_cert.get();
    match gate(req, set, &id, (&host, &path, &method), client, cert).await {
        Gate::Pass(s) => {
            if let Some(s) = s {
                identity_headers(req.headers_mut(), set, &s);
            }
            strip_portal_cookies(req.headers_mut(), &set.cfg.cookie_name);
            None
        }
        Gate::Deny(why) => {
            tracing::info!(target: "identity", ip = %client, path = %path, reason = %why, "access denied");
            Some((
                answer(
                    StatusCode::FORBIDDEN,
                    "text/plain; charset=utf-8",
                    format!(
                        "403 Forbidden\naccess denied by the access rules\nrequest id: {}\n",
                        request_id.to_str().unwrap_or("-")
                    ),
                    request_id,
                ),
                Some(format!("identity: denied ({why})")),
            ))
        }
        Gate::Login { elevate } => {
            let browser =
                wants_html(req.headers()) && matches!(*req.method(), Method::GET | Method::HEAD);
            let why = if elevate {
                "identity: second factor required"
            } else {
                "identity: login required"
            };
            if browser {
                let pq = req
                    .uri()
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/");
                let page = if elevate { "second-factor" } else { "login" };
                let loc = format!("{portal}/{page}?rd={}", identity::web::pct_encode(pq));
                Some((redirect(&loc, request_id), Some(why.into())))
            } else {
                let mut r = answer(
                    StatusCode::UNAUTHORIZED,
                    "text/plain; charset=utf-8",
                    format!(
                        "401 Unauthorized\n{}: sign in at {portal}/login\nrequest id: {}\n",
                        if elevate {
                            "a second factor is required"
                        } else {
                            "authentication required"
                        },
                        request_id.to_str().unwrap_or("-")
                    ),
                    request_id,
                );
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Cookie realm=\"palisade\""),
                );
                Some((r, Some(why.into())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::parse;

    #[test]
    fn portal_cookies_are_stripped_and_others_kept() {
        use http::header::{HeaderMap, HeaderValue, COOKIE};
        let strip = |vals: &[&[u8]]| {
            let mut h = HeaderMap::new();
            for v in vals {
                h.append(COOKIE, HeaderValue::from_bytes(v).unwrap());
            }
            super::strip_portal_cookies(&mut h, "sid");
            h.get_all(COOKIE)
                .iter()
                .map(|v| v.as_bytes().to_vec())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            strip(&[b"a=1; sid=SECRET; sid_csrf=X;b=2"]),
            vec![b"a=1; b=2".to_vec()]
        );
        // HTTP/2 style: one cookie per header; a header left empty goes.
        assert_eq!(
            strip(&[b"sid=SECRET", b"app=\xff\xfe", b" sid_csrf = X "]),
            vec![b"app=\xff\xfe".to_vec()]
        );
        assert!(strip(&[b"sid=S"]).is_empty());
        // Names that only contain ours, and headers without ours, untouched.
        assert_eq!(
            strip(&[b"xsid=1;  sidx=2 ;sid_csrfy=3"]),
            vec![b"xsid=1;  sidx=2 ;sid_csrfy=3".to_vec()]
        );
        assert_eq!(strip(&[b"sid"]), Vec::<Vec<u8>>::new(), "a bare name too");
    }

    const BASE: &str = r#"
[[listener]]
name = "web"
listen = "127.0.0.1:8080"
protocol = "http"

[[upstream]]
name = "app"
servers = ["127.0.0.1:3000"]

[[route]]
upstream = "app"
"#;

    #[test]
    fn identity_section_is_validated_once() {
        let c = parse(BASE, "/etc/palisade/palisade.toml").unwrap();
        assert!(c.identity.is_none(), "no [identity]: identity off");
        let c = parse(
            &format!(
                "{BASE}\n[identity]\nusers_db = \"users.db\"\nuser_header = \"X-User\"\n[[identity.access.rules]]\npaths = [\"/a\"]\ncert_cn = [\"dev\"]\npolicy = \"bypass\"\n"
            ),
            "/etc/palisade/palisade.toml",
        )
        .unwrap();
        let s = c.identity.unwrap();
        assert_eq!(
            s.cfg.users_db,
            std::path::PathBuf::from("/etc/palisade/users.db"),
            "relative to the config file, like `palisade user`"
        );
        assert_eq!(s.user_header.as_str(), "x-user");
        assert_eq!(s.rules.len(), 1);
        for (bad, needle) in [
            ("[identity]\nportal_path = \"auth\"", "portal_path"),
            ("[identity]\ncookie_name = \"a;b\"", "cookie_name"),
            (
                "[[identity.access.rules]]\nnetworks = [\"10.0.0.0/33\"]\npolicy = \"deny\"",
                "bad network",
            ),
            (
                "[[identity.access.rules]]\npaths = [\"/x\"]",
                "policy missing",
            ),
            ("[identity]\nbogus = 1", "bogus"),
        ] {
            let e = parse(&format!("{BASE}\n{bad}\n"), "t.toml").unwrap_err();
            assert!(e.to_string().contains(needle), "{bad}: {e}");
        }
    }
}
