//! The per-request pipeline: request validation, routing, upstream selection
//! with retry on connect failure, header rewriting, WebSocket pass-through,
//! and the gateway's own answers (errors, redirects).

use std::convert::Infallible;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::Body as _;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::time::Instant;

use crate::accesslog::Record;
use crate::body::{Finish, RespBody, UpBody};
use crate::error::Error;
use crate::guard::{ConnShared, Reject, REJECT_HEADER};
use crate::limits::MAX_REQUEST_ID_BYTES;
use crate::metrics::RouteMetrics;
use crate::route::normalize_host;
use crate::server::{ListenerRt, RouteRt, Runtime, Shared};
use crate::upstream::Pool;

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Per-process request-id generator: a random prefix and a counter.
#[derive(Debug)]
pub struct RequestIds {
    prefix: u32,
    counter: AtomicU64,
}

impl Default for RequestIds {
    fn default() -> Self {
        RequestIds {
            prefix: random_u64() as u32,
            counter: AtomicU64::new(random_u64() >> 40),
        }
    }
}

impl RequestIds {
    /// A new unique id.
    pub fn next(&self) -> HeaderValue {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        // 8 hex digits of prefix + 12 of counter, formatted without a heap String.
        let v = (u128::from(self.prefix) << 48) | u128::from(n & 0xffff_ffff_ffff);
        let mut buf = [0u8; 20];
        for (i, b) in buf.iter_mut().enumerate() {
            *b = HEX[((v >> (4 * (19 - i))) & 0xf) as usize];
        }
        // Hex digits are always a valid header value.
        HeaderValue::from_bytes(&buf).unwrap_or_else(|_| HeaderValue::from_static("0"))
    }
}

/// 64 random bits from the standard library's per-process hash keys.
pub fn random_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id() as u64);
    if let Ok(d) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(d.as_nanos());
    }
    h.finish()
}

/// A per-process secret (marks the guard's synthetic rejection requests).
pub fn random_secret() -> String {
    format!("{:016x}{:016x}", random_u64(), random_u64())
}

/// Per-connection context given to every request on it.
#[derive(Debug)]
pub struct ConnCtx {
    /// Process state.
    pub shared: Arc<Shared>,
    /// The listener's runtime settings at accept time.
    pub listener: Arc<ListenerRt>,
    /// Client address.
    pub peer: SocketAddr,
    /// Client IP, preformatted for X-Forwarded-For.
    pub peer_hv: HeaderValue,
    /// State shared with the connection's guard.
    pub conn: Arc<ConnShared>,
    /// Verified client-certificate identity (https with `client_auth`).
    pub identity: std::sync::OnceLock<HeaderValue>,
    /// Verified client certificate, for the identity access rules.
    pub client_cert: std::sync::OnceLock<identity::ClientCert>,
}

/// Bookkeeping of one request, completed when its response ends or is dropped.
struct Done {
    shared: Arc<Shared>,
    conn: Arc<ConnShared>,
    metrics: Arc<RouteMetrics>,
    route: Option<Arc<str>>,
    start: Instant,
    method: Method,
    uri: Uri,
    host: Option<HeaderValue>,
    client: IpAddr,
    request_id: HeaderValue,
    status: u16,
    bytes_in: Option<Arc<AtomicU64>>,
    upstream: Option<Arc<str>>,
    upstream_duration: Option<Duration>,
    error: Option<String>,
    lease: Option<(Arc<Pool>, usize)>,
    reuse: Option<SendRequest<UpBody>>,
    finished: bool,
    /// The request's WAF transaction (phase 5 runs in `finish`).
    waf: Option<Box<crate::waf::WafTx>>,
}

impl Finish for Done {
    fn finish(&mut self, bytes_out: u64, complete: bool) {
        if self.finished {
            return;
        }
        self.finished = true;
        let mut waf_score = 0;
        if let Some(w) = self.waf.take() {
            // WAF blocks feed the shield's `waf_block` jails (repeat attackers
            // get banned); detect-mode matches do not.
            if w.blocked() {
                self.shared.shield.record_waf_block(self.client);
            }
            waf_score = w.finish(self.status, &self.shared.monitor);
        }
        if let Some((pool, i)) = self.lease.take() {
            if let Some(s) = pool.servers.get(i) {
                s.active.fetch_sub(1, Ordering::Relaxed);
            }
            if let (true, Some(tx)) = (complete, self.reuse.take()) {
                pool.checkin(i, tx);
            }
        }
        let duration = self.start.elapsed();
        crate::shield_glue::on_response(
            &self.shared,
            self.client,
            self.status,
            self.uri.path(),
            self.error.is_none() && self.upstream.is_some(),
        );
        self.metrics.observe(self.status, duration);
        crate::events_glue::request_done(
            &self.shared,
            self.client,
            self.route.as_ref(),
            self.uri.path(),
            self.status,
            self.bytes_in
                .as_ref()
                .map(|c| c.load(Ordering::Relaxed))
                .unwrap_or(0)
                + bytes_out,
            waf_score,
        );
        if self.shared.access_log.enabled() {
            let host = self
                .host
                .as_ref()
                .and_then(|h| h.to_str().ok())
                .unwrap_or("");
            let path = self.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
            self.shared.access_log.log(&Record {
                request_id: self.request_id.to_str().unwrap_or("-"),
                client_ip: self.client,
                method: self.method.as_str(),
                host,
                path,
                status: self.status,
                bytes_in: self
                    .bytes_in
                    .as_ref()
                    .map(|c| c.load(Ordering::Relaxed))
                    .unwrap_or(0),
                bytes_out,
                duration,
                route: self.route.as_deref().unwrap_or("-"),
                upstream: self.upstream.as_deref().unwrap_or("-"),
                upstream_duration: self.upstream_duration,
                error: self.error.as_deref(),
                complete,
            });
        }
        self.conn.inflight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for Done {
    fn drop(&mut self) {
        // The handler was cancelled (client gone) before a body took over.
        self.finish(0, false);
    }
}

/// Handles one request; never fails (errors become responses).
pub async fn handle(
    mut req: Request<Incoming>,
    ctx: Arc<ConnCtx>,
) -> Result<Response<RespBody>, Infallible> {
    let start = Instant::now();
    crate::guard::take_raw_head(&mut req, &ctx.conn);
    ctx.conn.inflight.fetch_add(1, Ordering::AcqRel);
    let rt = ctx.shared.runtime.load_full();
    let h1 = req.version() != Version::HTTP_2;

    let request_id = match req.headers().get(&X_REQUEST_ID) {
        Some(v) if valid_request_id(v) => v.clone(),
        _ => ctx.shared.request_ids.next(),
    };
    let mut done = Box::new(Done {
        shared: ctx.shared.clone(),
        conn: ctx.conn.clone(),
        metrics: ctx.shared.unrouted.clone(),
        route: None,
        start,
        method: req.method().clone(),
        uri: req.uri().clone(),
        host: req.headers().get(header::HOST).cloned(),
        client: ctx.peer.ip(),
        request_id: request_id.clone(),
        status: 0,
        bytes_in: None,
        upstream: None,
        upstream_duration: None,
        error: None,
        lease: None,
        reuse: None,
        finished: false,
        waf: None,
    });

    if let Some(v) = req.headers().get(REJECT_HEADER) {
        if let Some(r) = Reject::from_marker(v.as_bytes(), &ctx.shared.secret) {
            done.uri = Uri::from_static("/");
            done.host = None;
            done.method = Method::GET;
            return Ok(error_response(r.to_error(), done, h1, true));
        }
        req.headers_mut().remove(REJECT_HEADER);
    }

    let mut rate = None;
    if let Some((resp, why)) = crate::shield_glue::on_request(
        &mut req,
        &ctx,
        &rt,
        &mut done.client,
        &mut rate,
        &request_id,
    )
    .await
    {
        done.status = resp.status().as_u16();
        done.error = Some(why);
        return Ok(resp.map(|b| b.with_finish(done)));
    }

    if let Some((resp, why)) =
        crate::identity_glue::on_request(&mut req, &ctx, &rt, done.client, &request_id).await
    {
        done.status = resp.status().as_u16();
        done.error = why;
        return Ok(resp.map(|b| b.with_finish(done)));
    }

    let upgrade_header = h1 && req.headers().contains_key(header::UPGRADE);
    match forward(req, &ctx, &rt, &mut done).await {
        Ok(mut resp) => {
            crate::shield_glue::decorate(&mut resp, rate);
            Ok(resp.map(|b| b.with_finish(done)))
        }
        Err(e) => {
            let close =
                upgrade_header || matches!(e.status().as_u16(), 400 | 405 | 408 | 413 | 414 | 431);
            Ok(error_response(e, done, h1, close))
        }
    }
}

/// `uri-host [ ":" port ]` (RFC 9112 3.2): a reg-name, IPv4 or bracketed IP
/// literal, and an optional numeric port. Empty is allowed (no authority).
fn valid_host(s: &str) -> bool {
    if s.is_empty() {
        return true;
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let Some((lit, after)) = rest.split_once(']') else {
            return false;
        };
        if lit.is_empty()
            || !lit
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return false;
        }
        match after.strip_prefix(':') {
            Some(p) => ("x", Some(p)),
            None if after.is_empty() => ("x", None),
            None => return false,
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let port_ok = port.is_none_or(|p| p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%".contains(&b));
    port_ok && host_ok
}

fn valid_request_id(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty() && b.len() <= MAX_REQUEST_ID_BYTES && b.iter().all(|&c| (0x21..0x7f).contains(&c))
}

/// Builds the gateway's own error answer: status, short text body with the
/// request id. The status comes from [`Error::status`] only.
fn error_response(e: Error, mut done: Box<Done>, h1: bool, close: bool) -> Response<RespBody> {
    let status = e.status();
    if status.is_server_error() {
        tracing::warn!(request_id = done.request_id.to_str().unwrap_or("-"), error = %e, "request failed");
    } else {
        tracing::debug!(request_id = done.request_id.to_str().unwrap_or("-"), error = %e, "request rejected");
    }
    // Client errors say what was wrong; server errors do not reveal upstream
    // addresses or failures (they are in the log under the same request id).
    let detail = if status.is_client_error() {
        format!("{e}\n")
    } else {
        String::new()
    };
    let body = format!(
        "{} {}\n{detail}request id: {}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        done.request_id.to_str().unwrap_or("-")
    );
    done.status = status.as_u16();
    done.error = Some(e.to_string());
    let rid = done.request_id.clone();
    let mut resp = Response::new(RespBody::full(body).with_finish(done));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(X_REQUEST_ID.clone(), rid);
    if close && h1 {
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// Hop-by-hop header names other than `Connection` (RFC 9110 7.6.1, plus
/// the legacy `Keep-Alive` and `Proxy-Connection`).
fn hop_by_hop_index(n: &HeaderName) -> Option<usize> {
    let i = if n == header::TE {
        0
    } else if n == header::TRAILER {
        1
    } else if n == header::TRANSFER_ENCODING {
        2
    } else if n == header::UPGRADE {
        3
    } else if n == header::PROXY_AUTHENTICATE {
        4
    } else if n == header::PROXY_AUTHORIZATION {
        5
    } else if n == KEEP_ALIVE {
        6
    } else if n == PROXY_CONNECTION {
        7
    } else {
        return None;
    };
    Some(i)
}

/// Removes hop-by-hop headers, including those named in `Connection`.
pub fn strip_hop_by_hop(h: &mut HeaderMap) {
    // One pass over the names (standard names compare as small integers)
    // finds which hop-by-hop headers are present, so a message carrying
    // none, or only `Connection: keep-alive`, costs no hashed lookups.
    let mut present = 0u8;
    let mut connection = false;
    for n in h.keys() {
        if n == header::CONNECTION {
            connection = true;
        } else if let Some(i) = hop_by_hop_index(n) {
            present |= 1 << i;
        }
    }
    if !connection && present == 0 {
        return;
    }
    if connection {
        let mut named: Vec<HeaderName> = Vec::new();
        for v in h.get_all(header::CONNECTION) {
            for tok in v.as_bytes().split(|&b| b == b',') {
                let t = tok.trim_ascii();
                if t.is_empty()
                    || t.eq_ignore_ascii_case(b"close")
                    || t.eq_ignore_ascii_case(b"keep-alive")
                    || t.eq_ignore_ascii_case(b"upgrade")
                {
                    continue;
                }
                if let Ok(n) = HeaderName::from_bytes(t) {
                    // End-to-end headers the proxy itself relies on are never
                    // removable by a client's Connection header.
                    if n != header::HOST && n != X_REQUEST_ID {
                        named.push(n);
                    }
                }
            }
        }
        for n in named {
            h.remove(n);
        }
        h.remove(header::CONNECTION);
    }
    if present == 0 {
        return;
    }
    for (i, n) in [
        &header::TE,
        &header::TRAILER,
        &header::TRANSFER_ENCODING,
        &header::UPGRADE,
        &header::PROXY_AUTHENTICATE,
        &header::PROXY_AUTHORIZATION,
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
    ]
    .into_iter()
    .enumerate()
    {
        if present & (1 << i) != 0 {
            h.remove(n);
        }
    }
}

fn wants_upgrade(h: &HeaderMap) -> bool {
    h.contains_key(header::UPGRADE)
        && h.get_all(header::CONNECTION).iter().any(|v| {
            v.as_bytes()
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"upgrade"))
        })
}

async fn forward(
    mut req: Request<Incoming>,
    ctx: &ConnCtx,
    rt: &Runtime,
    done: &mut Done,
) -> Result<Response<RespBody>, Error> {
    let limits = &rt.config.limits;
    let listener = &ctx.listener;
    if req.method() == Method::CONNECT {
        return Err(Error::MethodNotAllowed);
    }
    if let Some(pq) = req.uri().path_and_query() {
        if pq.as_str().len() as u64 > limits.max_uri_bytes {
            return Err(Error::UriTooLong);
        }
    }
    let h1 = req.version() != Version::HTTP_2;

    // Host: the URI authority (h2, absolute-form) wins over the header.
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let host_header = hosts.next().cloned();
    if hosts.next().is_some() {
        return Err(Error::BadRequest("several Host headers"));
    }
    let from_authority = req.uri().authority().is_some();
    let host_value: Option<HeaderValue> = match req.uri().authority() {
        Some(a) if a.as_str().contains('@') => {
            return Err(Error::BadRequest("userinfo in the request target"))
        }
        Some(a) => Some(
            HeaderValue::from_str(a.as_str())
                .map_err(|_| Error::BadRequest("invalid authority"))?,
        ),
        None => host_header,
    };
    if host_value.is_none() && req.version() == Version::HTTP_11 {
        return Err(Error::BadRequest("missing Host header"));
    }
    done.host = host_value.clone();
    let host_str = match &host_value {
        Some(h) => h
            .to_str()
            .ok()
            .filter(|s| valid_host(s))
            .ok_or(Error::BadRequest("invalid Host header"))?,
        None => "",
    };
    let host = normalize_host(host_str);

    if listener.cfg.redirect_to_https {
        done.status = StatusCode::PERMANENT_REDIRECT.as_u16();
        return Ok(redirect(
            &host,
            listener.redirect_port,
            req.uri(),
            &done.request_id,
        ));
    }

    let path = req.uri().path();
    let route: Arc<RouteRt> = rt.routes.lookup(&host, path).ok_or(Error::NoRoute)?;
    done.metrics = route.metrics.clone();
    done.route = Some(route.name.clone());

    // Bodies declared too large are refused before anything is forwarded.
    if let Some(cl) = req.headers().get(header::CONTENT_LENGTH) {
        let n: u64 = cl
            .to_str()
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(Error::BadRequest("invalid Content-Length"))?;
        if n > limits.max_body_bytes {
            return Err(Error::BodyTooLarge);
        }
    }

    // WAF phases 1-2: a blocked request never reaches the upstream.
    let waf_prefix = match crate::waf::check_request(
        &route,
        ctx,
        done.client,
        &mut req,
        &host,
        &done.request_id,
        limits,
        &mut done.waf,
    )
    .await?
    {
        crate::waf::Verdict::Pass(prefix) => prefix,
        crate::waf::Verdict::Respond(resp) => {
            done.status = resp.status().as_u16();
            return Ok(resp);
        }
    };

    let upgrade = h1 && wants_upgrade(req.headers());
    // The framing guard stops checking a connection after any request with
    // an Upgrade header; unless the upgrade happens, the connection ends
    // after this response rather than carry more requests unchecked.
    let guard_stopped = h1 && req.headers().contains_key(header::UPGRADE);
    let client_upgrade = if upgrade {
        Some(hyper::upgrade::on(&mut req))
    } else {
        None
    };
    let (mut parts, incoming) = req.into_parts();
    let upgrade_value = if upgrade {
        parts.headers.get(header::UPGRADE).cloned()
    } else {
        None
    };

    // Request headers for the upstream.
    let h = &mut parts.headers;
    strip_hop_by_hop(h);
    // Room for the forwarding headers: at most one table growth.
    h.reserve(4);
    if let Some(u) = upgrade_value {
        h.insert(header::UPGRADE, u);
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    // The upstream sees the host the request was routed by: an absolute-form
    // or h2 authority replaces any Host header (RFC 9112 3.2.2).
    if from_authority || !h.contains_key(header::HOST) {
        if let Some(hv) = &host_value {
            h.insert(header::HOST, hv.clone());
        }
    }
    let xff = match h.get(&X_FORWARDED_FOR) {
        Some(prev) => {
            let mut v = Vec::with_capacity(prev.len() + 2 + ctx.peer_hv.len());
            v.extend_from_slice(prev.as_bytes());
            v.extend_from_slice(b", ");
            v.extend_from_slice(ctx.peer_hv.as_bytes());
            HeaderValue::from_bytes(&v).unwrap_or_else(|_| ctx.peer_hv.clone())
        }
        None => ctx.peer_hv.clone(),
    };
    h.insert(X_FORWARDED_FOR.clone(), xff);
    h.insert(
        X_FORWARDED_PROTO.clone(),
        HeaderValue::from_static(if listener.tls.is_some() {
            "https"
        } else {
            "http"
        }),
    );
    if let Some(hv) = &host_value {
        h.insert(X_FORWARDED_HOST.clone(), hv.clone());
    }
    h.insert(X_REQUEST_ID.clone(), done.request_id.clone());
    crate::tunnel::forward_identity(h, listener, ctx.identity.get());
    parts.version = Version::HTTP_11;
    parts.uri = match parts.uri.path_and_query() {
        Some(pq) => Uri::from(pq.clone()),
        None => Uri::from_static("/"),
    };

    let body = if incoming.is_end_stream() {
        UpBody::empty()
    } else {
        let counter = Arc::new(AtomicU64::new(0));
        done.bytes_in = Some(counter.clone());
        UpBody::new(
            incoming,
            limits.max_body_bytes,
            limits.body_idle_timeout,
            limits.body_min_rate,
            Some(counter),
        )
    };
    let body = body.with_prefix(waf_prefix, &mut done.bytes_in);
    let mut pending = Some(Request::from_parts(parts, body));
    let via = crate::upstream_h1::Via::choose(upgrade, &pending);

    // Pick a server; retry on another only when the connection could not be made.
    let pool = &route.pool;
    let mut tried: u64 = 0;
    let mut last_err: Option<Error> = None;
    let max_attempts = pool.servers.len() * 2 + 1;
    for _ in 0..max_attempts {
        let Some(i) = pool.pick(tried) else { break };
        let server = &pool.servers[i];
        let mut co = match pool
            .checkout(
                i,
                limits.upstream_connect_timeout,
                limits.keepalive_idle_timeout,
                via,
            )
            .await
        {
            Ok(c) => c,
            Err(e) => {
                done.upstream = Some(server.label.clone());
                pool.eject(i);
                tried |= 1 << i;
                last_err = Some(e);
                continue;
            }
        };
        let Some(req) = pending.take() else { break };
        server.active.fetch_add(1, Ordering::Relaxed);
        done.lease = Some((pool.clone(), i));
        done.upstream = Some(server.label.clone());
        let sent = Instant::now();
        let res = tokio::time::timeout(limits.upstream_response_timeout, co.send(req)).await;
        done.upstream_duration = Some(sent.elapsed());
        match res {
            Err(_) => return Err(Error::UpstreamTimeout(server.label.to_string())),
            Ok(Ok(mut resp)) => {
                if !upgrade {
                    done.reuse = co.into_hyper();
                }
                let head = respond(&mut resp, done, listener, client_upgrade, guard_stopped);
                // WAF phases 3-4 (response inspection).
                let checked = crate::waf::check_response(
                    head,
                    resp.into_body(),
                    &mut done.waf,
                    &done.request_id,
                    limits,
                )
                .await;
                if !matches!(checked, Ok((_, false))) {
                    done.reuse = None;
                }
                let (out, replaced) = checked?;
                if replaced {
                    done.status = out.status().as_u16();
                }
                return Ok(out);
            }
            Ok(Err(mut e)) => {
                // Not sent (a pooled connection closed meanwhile): try again
                // with the request we got back.
                if let Some(r) = e.take_message() {
                    server.active.fetch_sub(1, Ordering::Relaxed);
                    done.lease = None;
                    pending = Some(r);
                    if !co.reused {
                        tried |= 1 << i;
                    }
                    continue;
                }
                let err = e.into_error();
                if let Some(g) = Error::find_in(&err) {
                    return Err(match g {
                        Error::BodyTooLarge => Error::BodyTooLarge,
                        Error::BodyTimeout(r) => Error::BodyTimeout(r),
                        Error::BadRequest(r) => Error::BadRequest(r),
                        other => Error::Upstream {
                            server: server.label.to_string(),
                            message: other.to_string(),
                        },
                    });
                }
                return Err(Error::Upstream {
                    server: server.label.to_string(),
                    message: err.to_string(),
                });
            }
        }
    }
    Err(last_err.unwrap_or_else(|| Error::NoHealthyUpstream(pool.name().to_string())))
}

/// Turns the upstream response head into the client's: hop-by-hop headers
/// out, request id and HSTS in, upgrade tunnel set up for 101.
fn respond(
    resp: &mut Response<crate::upstream_h1::UpstreamBody>,
    done: &mut Done,
    listener: &ListenerRt,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    guard_stopped: bool,
) -> Response<()> {
    let status = resp.status();
    done.status = status.as_u16();
    let upgrade_requested = client_upgrade.is_some();
    let switching = status == StatusCode::SWITCHING_PROTOCOLS && upgrade_requested;
    let upgrade_value = if switching {
        resp.headers().get(header::UPGRADE).cloned()
    } else {
        None
    };
    let mut out = Response::new(());
    *out.status_mut() = status;
    *out.headers_mut() = std::mem::take(resp.headers_mut());
    let h = out.headers_mut();
    // A response framed by both: the chunked framing hyper used wins, the
    // Content-Length must not reach the client (RFC 9112 6.3).
    if h.contains_key(header::TRANSFER_ENCODING) {
        h.remove(header::CONTENT_LENGTH);
    }
    strip_hop_by_hop(h);
    h.insert(X_REQUEST_ID.clone(), done.request_id.clone());
    if let Some(hsts) = &listener.hsts {
        h.insert(header::STRICT_TRANSPORT_SECURITY, hsts.clone());
    }
    if guard_stopped && !switching {
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    if switching {
        if let Some(u) = upgrade_value {
            h.insert(header::UPGRADE, u);
        }
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        let upstream_upgrade = hyper::upgrade::on(&mut *resp);
        if let Some(client) = client_upgrade {
            tokio::spawn(async move {
                let (Ok(c), Ok(u)) = (client.await, upstream_upgrade.await) else {
                    return;
                };
                let mut c = TokioIo::new(c);
                let mut u = TokioIo::new(u);
                let _ = tokio::io::copy_bidirectional(&mut c, &mut u).await;
            });
        }
    }
    out
}

fn redirect(host: &str, port: Option<u16>, uri: &Uri, rid: &HeaderValue) -> Response<RespBody> {
    let pq = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let loc = match port {
        Some(p) if p != 443 => format!("https://{host}:{p}{pq}"),
        _ => format!("https://{host}{pq}"),
    };
    let mut resp = Response::new(RespBody::full(format!("redirecting to {loc}\n")));
    *resp.status_mut() = StatusCode::PERMANENT_REDIRECT;
    if let Ok(v) = HeaderValue::from_str(&loc) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp.headers_mut().insert(X_REQUEST_ID.clone(), rid.clone());
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, X-Secret, close"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::PROXY_AUTHORIZATION, HeaderValue::from_static("x"));
        h.insert("x-keep", HeaderValue::from_static("yes"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(h["x-keep"], "yes");
    }

    #[test]
    fn connection_cannot_remove_host_or_request_id() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("host, x-request-id"),
        );
        h.insert(header::HOST, HeaderValue::from_static("a"));
        h.insert(&X_REQUEST_ID, HeaderValue::from_static("b"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 2);
    }

    #[test]
    fn upgrade_detection() {
        let mut h = HeaderMap::new();
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(!wants_upgrade(&h));
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert!(wants_upgrade(&h));
    }

    #[test]
    fn host_validation() {
        for ok in [
            "example.com",
            "example.com:8080",
            "127.0.0.1:1",
            "[::1]:8080",
            "[::1]",
            "a_b.c",
            "",
        ] {
            assert!(valid_host(ok), "{ok}");
        }
        for bad in [
            "bad host", "a/b", "a:b", "x:123456", "[::1", "[zz]", ":80", "a@b", "a\\b",
        ] {
            assert!(!valid_host(bad), "{bad}");
        }
    }

    #[test]
    fn request_ids_are_unique_and_validated() {
        let ids = RequestIds::default();
        let a = ids.next();
        let b = ids.next();
        assert_ne!(a, b);
        assert_eq!(a.len(), 20);
        assert!(a.as_bytes().iter().all(u8::is_ascii_hexdigit));
        let parse = |v: &HeaderValue| u128::from_str_radix(v.to_str().unwrap(), 16).unwrap();
        // Same process prefix, consecutive counter.
        assert_eq!(parse(&b) - parse(&a), 1);
        assert!(valid_request_id(&a));
        assert!(!valid_request_id(&HeaderValue::from_static("has space")));
        assert!(!valid_request_id(
            &HeaderValue::from_str(&"x".repeat(200)).unwrap()
        ));
    }
}
