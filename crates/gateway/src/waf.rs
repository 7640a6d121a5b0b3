//! The WAF on the proxy path: ModSecurity's phases mapped onto a request.
//!
//! ```text
//! route found ─► phase 1 (request line + headers) ─► buffer body up to
//!   SecRequestBodyLimit ─► phase 2 ──block──► status page (upstream never sees it)
//!                                      └─pass─► forward (buffered prefix + rest streamed)
//! upstream head ─► phase 3 ─► [response inspection, MIME listed] buffer body
//!   up to SecResponseBodyLimit ─► phase 4 ──block──► status page replaces the response
//! response finished or dropped ─► phase 5 ─► metrics, audit log record
//! ```
//!
//! Rules are compiled once per distinct route setting ([`RouteWaf`]) when a
//! config generation is built, so routes with the same sources share one
//! `Arc<Ruleset>`; a rules file that does not load fails the generation
//! (start refused, reload refused with the old rules kept).
//!
//! Bodies: with the WAF off a body is streamed untouched. With it on, the
//! request body is read into memory up to the engine's `SecRequestBodyLimit`
//! (and the gateway's `limits.max_body_bytes`); past it,
//! `SecRequestBodyLimitAction Reject` answers 413 (block mode) while
//! `ProcessPartial` (and detect mode) inspects the prefix, forwards the
//! rest streamed, and always writes the transaction to the audit log.

pub mod config;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Version};
use http_body::Body as _;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use monitor::{AuditLog, Message, Record};
use seclang::{
    EngineMode, FileLoader as _, FsLoader, Intervention, InterventionAction, LimitAction, Ruleset,
    RulesetBuilder, Transaction, TransactionInput,
};

use crate::body::RespBody;
use crate::error::{Error, Result};
use crate::limits::Limits;
use crate::metrics::RouteMetrics;
use crate::proxy::ConnCtx;
use crate::server::RouteRt;
pub use config::{AuditLogConfig, Exclusion, RouteWaf, RuleSource, WafConfig, WafMode};

/// Id of the `SecAction` that carries a route's CRS settings (outside
/// CRS's 900000-999999 and the built-in rules' 1900000-1900999).
pub const SETTINGS_RULE_ID: u64 = 9_990_001;

/// Id of the `SecAction` that carries the built-in rules' threshold.
pub const BUILTIN_SETTINGS_RULE_ID: u64 = 9_990_002;

/// Name of the audit log file in the data directory when `[waf.audit_log]
/// path` is not given.
pub const DEFAULT_AUDIT_FILE: &str = "audit.log";

/// A route's WAF for one config generation.
#[derive(Debug)]
pub struct RouteWafRt {
    /// The compiled rules (shared by routes with the same settings).
    pub rules: Arc<Ruleset>,
    /// Detect or block.
    pub mode: WafMode,
    /// The audit log (`None`: off).
    pub audit: Option<Arc<AuditLog>>,
    /// The route's counters (WAF matches and blocks).
    pub metrics: Arc<RouteMetrics>,
}

/// The rulesets and audit log of one config generation.
#[derive(Debug, Default)]
pub struct WafRt {
    rulesets: HashMap<RouteWaf, Arc<Ruleset>>,
    audit: Option<Arc<AuditLog>>,
}

impl WafRt {
    /// Compiles the rules of every route with the WAF on (each distinct
    /// setting once) and opens the audit log.
    pub fn build(cfg: &crate::Config) -> Result<WafRt> {
        let rulesets = compile_all(cfg)?;
        let audit = if rulesets.is_empty() {
            None
        } else {
            let a = &cfg.waf.audit_log;
            let path = a
                .path
                .clone()
                .unwrap_or_else(|| cfg.server.data_dir.join(DEFAULT_AUDIT_FILE));
            // Opened afresh for every generation, so a reload after log
            // rotation (logrotate's postrotate SIGHUP) writes a new file;
            // requests of the old generation finish on the old handle.
            Some(
                AuditLog::open(&path, a.mode, a.relevant_statuses.clone()).map_err(|e| {
                    Error::io(
                        "cannot open the WAF audit log",
                        std::io::Error::other(e.to_string()),
                    )
                })?,
            )
        };
        Ok(WafRt { rulesets, audit })
    }

    /// The WAF of a route (`None` when off).
    pub fn route(
        &self,
        w: Option<&RouteWaf>,
        metrics: &Arc<RouteMetrics>,
    ) -> Option<Arc<RouteWafRt>> {
        let w = w?;
        let rules = self.rulesets.get(w)?.clone();
        Some(Arc::new(RouteWafRt {
            rules,
            mode: w.mode,
            audit: self.audit.clone(),
            metrics: metrics.clone(),
        }))
    }

    /// The generation's audit log (`None`: off).
    pub fn audit(&self) -> Option<&Arc<AuditLog>> {
        self.audit.as_ref()
    }

    /// Number of distinct compiled rulesets.
    pub fn ruleset_count(&self) -> usize {
        self.rulesets.len()
    }
}

/// Compiles the rules of every route with the WAF on, each distinct
/// setting once.
fn compile_all(cfg: &crate::Config) -> Result<HashMap<RouteWaf, Arc<Ruleset>>> {
    let mut rulesets: HashMap<RouteWaf, Arc<Ruleset>> = HashMap::new();
    for r in &cfg.routes {
        let Some(w) = &r.waf else { continue };
        if rulesets.contains_key(w) {
            continue;
        }
        let rs = compile(w, &cfg.server.data_dir).map_err(|message| Error::WafRules {
            route: r.name.clone(),
            message,
        })?;
        rulesets.insert(w.clone(), Arc::new(rs));
    }
    Ok(rulesets)
}

/// `palisade check-config`: compiles every route's rules (nothing is
/// opened or written). Returns the number of distinct rulesets.
pub fn check_rules(cfg: &crate::Config) -> Result<usize> {
    compile_all(cfg).map(|m| m.len())
}

/// Escapes a value written inside a double-quoted SecLang argument.
fn quoted(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The CRS install of a route: the configured directory, or the one
/// `rules::crs::locate` finds; with its setup file.
fn crs_install(
    dir: Option<&Path>,
    data_dir: &Path,
) -> std::result::Result<(PathBuf, PathBuf), String> {
    let Some(crs) = rules::crs::locate(dir, data_dir) else {
        return Err(match dir {
            Some(d) => format!("{}: no CRS here (no rules/ directory)", d.display()),
            None => format!(
                "no CRS found: set [waf] crs, run `palisade crs install` (into {}), or install Debian's modsecurity-crs",
                data_dir.join("crs").display()
            ),
        });
    };
    let setup = crs.setup_file().ok_or_else(|| {
        format!(
            "{}: no crs-setup.conf or crs-setup.conf.example",
            crs.path.display()
        )
    })?;
    Ok((crs.path, setup))
}

/// Compiles a route's rules: sources in order, then the route's engine
/// settings (which win over any in the sources), then the exclusions.
pub fn compile(w: &RouteWaf, data_dir: &Path) -> std::result::Result<Ruleset, String> {
    let loader = FsLoader;
    let mut b = RulesetBuilder::new(&loader);
    let e = |e: seclang::Error| e.to_string();
    for src in &w.sources {
        match src {
            RuleSource::Crs(dir) => {
                let (dir, setup) = crs_install(dir.as_deref(), data_dir)?;
                b = b.add_file(setup).map_err(e)?;
                let settings = format!(
                    "SecAction \"id:{SETTINGS_RULE_ID},phase:1,pass,nolog,t:none,\
                     setvar:tx.blocking_paranoia_level={pl},\
                     setvar:tx.detection_paranoia_level={pl},\
                     setvar:tx.inbound_anomaly_score_threshold={inb},\
                     setvar:tx.outbound_anomaly_score_threshold={outb}\"\n",
                    pl = w.paranoia_level,
                    inb = w.inbound_anomaly_threshold,
                    outb = w.outbound_anomaly_threshold,
                );
                b = b.add_str(&settings, "<palisade crs settings>").map_err(e)?;
                let rules_dir = if dir.join("rules").is_dir() {
                    dir.join("rules")
                } else {
                    dir.clone()
                };
                let glob = rules_dir.join("*.conf");
                let files = loader
                    .glob(&glob)
                    .map_err(|err| format!("{}: {err}", glob.display()))?;
                if files.is_empty() {
                    return Err(format!(
                        "{}: no CRS rules file (*.conf)",
                        rules_dir.display()
                    ));
                }
                for f in files {
                    b = b.add_file(f).map_err(e)?;
                }
            }
            RuleSource::Builtin => {
                let settings = format!(
                    "SecAction \"id:{BUILTIN_SETTINGS_RULE_ID},phase:1,pass,nolog,t:none,\
                     setvar:tx.palisade_inbound_threshold={}\"\n",
                    w.inbound_anomaly_threshold
                );
                b = b
                    .add_str(&settings, "<palisade builtin settings>")
                    .map_err(e)?;
                b = rules::builtin::add_to(b).map_err(|err| err.to_string())?;
            }
            RuleSource::File(pattern) => {
                let files = loader
                    .glob(Path::new(pattern))
                    .map_err(|err| format!("{pattern}: {err}"))?;
                if files.is_empty() {
                    return Err(format!("{pattern}: no file matches"));
                }
                for f in files {
                    b = b.add_file(f).map_err(e)?;
                }
            }
            RuleSource::Inline(text) => {
                b = b.add_str(text, "<inline>").map_err(e)?;
            }
        }
    }
    let mut tail = String::new();
    tail.push_str(match w.mode {
        WafMode::Block => "SecRuleEngine On\n",
        _ => "SecRuleEngine DetectionOnly\n",
    });
    tail.push_str(if w.response_inspection {
        "SecResponseBodyAccess On\n"
    } else {
        "SecResponseBodyAccess Off\n"
    });
    for x in &w.exclusions {
        match x {
            Exclusion::Id(id) => tail.push_str(&format!("SecRuleRemoveById {id}\n")),
            Exclusion::Tag(t) => tail.push_str(&format!("SecRuleRemoveByTag \"{}\"\n", quoted(t))),
            Exclusion::TargetById(id, t) => tail.push_str(&format!(
                "SecRuleUpdateTargetById {id} \"!{}\"\n",
                quoted(t)
            )),
            Exclusion::TargetByTag(tag, t) => tail.push_str(&format!(
                "SecRuleUpdateTargetByTag \"{}\" \"!{}\"\n",
                quoted(tag),
                quoted(t)
            )),
        }
    }
    b = b.add_str(&tail, "<palisade route settings>").map_err(e)?;
    b.build().map_err(e)
}

/// One request's WAF state, from the route lookup to the end of its
/// response (then [`WafTx::finish`] runs phase 5).
#[derive(Debug)]
pub struct WafTx {
    rt: Arc<RouteWafRt>,
    tx: Transaction,
    record: Record,
    blocked: bool,
    /// The client accepts HTML (the block page's format).
    html: bool,
    /// The request body was larger than the inspection limit and only its
    /// prefix was inspected: always audited.
    partial: bool,
    /// Time spent in the rule engine so far (metrics histogram).
    eval: Duration,
}

/// What the request phases decided.
#[derive(Debug)]
pub enum Verdict {
    /// Forward; the bytes of the body already read (for inspection) go
    /// first, the rest of the body is streamed after them.
    Pass(Bytes),
    /// Answer with this instead (the upstream is never contacted).
    Respond(Response<RespBody>),
}

fn version_str(v: Version) -> (&'static str, &'static str) {
    match v {
        Version::HTTP_09 => ("HTTP/0.9", "0.9"),
        Version::HTTP_10 => ("HTTP/1.0", "1.0"),
        Version::HTTP_2 => ("HTTP/2.0", "2.0"),
        Version::HTTP_3 => ("HTTP/3.0", "3.0"),
        _ => ("HTTP/1.1", "1.1"),
    }
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// This node's name for `server_id` (the host name), read once.
fn server_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "palisade".to_string())
    })
}

/// The status page of a blocked request: short, with the request id, HTML
/// for browsers and plain text otherwise.
pub fn block_page(i: &Intervention, request_id: &HeaderValue, html: bool) -> Response<RespBody> {
    let status = StatusCode::from_u16(i.status)
        .ok()
        .filter(|s| s.as_u16() >= 200)
        .unwrap_or(StatusCode::FORBIDDEN);
    let rid = request_id.to_str().unwrap_or("-");
    let reason = status.canonical_reason().unwrap_or("");
    let (ct, body) = if html {
        // The request id may come from the client (X-Request-Id): escaped.
        let rid = rid
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
            .replace('\'', "&#39;");
        (
            "text/html; charset=utf-8",
            format!(
                "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{code} {reason}</title></head>\n\
                 <body><h1>{code} {reason}</h1>\n<p>This request was blocked by the web application firewall.</p>\n\
                 <p>Request id: <code>{rid}</code></p></body></html>\n",
                code = status.as_u16()
            ),
        )
    } else {
        (
            "text/plain; charset=utf-8",
            format!(
                "{} {reason}\nThis request was blocked by the web application firewall.\nrequest id: {rid}\n",
                status.as_u16()
            ),
        )
    };
    let mut resp = Response::new(RespBody::full(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-request-id", request_id.clone());
    if i.action == InterventionAction::Redirect {
        if let Some(v) = i
            .redirect_url
            .as_deref()
            .and_then(|u| HeaderValue::from_str(u).ok())
        {
            h.insert(header::LOCATION, v);
        }
    }
    if i.action == InterventionAction::Drop {
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

fn wants_html<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .is_some_and(|v| memchr::memmem::find(v.as_bytes(), b"text/html").is_some())
}

impl WafTx {
    /// Runs `f` on the transaction, adding its time to the evaluation time.
    fn timed<T>(&mut self, f: impl FnOnce(&mut Transaction) -> T) -> T {
        let t = std::time::Instant::now();
        let r = f(&mut self.tx);
        self.eval += t.elapsed();
        r
    }

    fn block(&mut self, i: &Intervention, request_id: &HeaderValue) -> Response<RespBody> {
        self.blocked = true;
        let resp = block_page(i, request_id, self.html);
        self.record.response_headers = headers_of(resp.headers());
        resp
    }

    /// Whether the WAF answered this request itself (phase 1-4 block).
    pub fn blocked(&self) -> bool {
        self.blocked
    }

    /// Phase 5: runs the logging phase, counts, publishes the event, writes
    /// the audit record. `status` is what the client was sent. Returns the
    /// inbound anomaly score (for the anomaly model).
    pub fn finish(mut self, status: u16, mon: &monitor::Monitor) -> u32 {
        let t = std::time::Instant::now();
        self.tx.process_logging();
        mon.observe_waf_eval(self.eval + t.elapsed());
        let rules = &self.rt.rules;
        let messages: Vec<Message> = self
            .tx
            .matched_rules()
            .iter()
            .filter_map(|m| Message::from_matched(m, rules, &self.tx))
            .collect();
        let m = &self.rt.metrics;
        m.waf_matches
            .fetch_add(messages.len() as u64, Ordering::Relaxed);
        if self.blocked {
            m.waf_blocks.fetch_add(1, Ordering::Relaxed);
        }
        let score = crate::events_glue::waf_score(&self.tx);
        crate::events_glue::waf(
            mon,
            &m.name,
            &self.record,
            &messages,
            self.blocked,
            status,
            score,
        );
        let Some(audit) = &self.rt.audit else {
            return score;
        };
        let wanted = audit.wants(messages.len(), status, self.tx.audit_engine_override())
            || (self.partial && audit.mode() != monitor::AuditMode::Off);
        if !wanted {
            return score;
        }
        let mut record = std::mem::take(&mut self.record);
        record.http_code = status;
        record.secrules_engine = match self.tx.engine_mode() {
            EngineMode::On => "Enabled",
            EngineMode::DetectionOnly => "DetectionOnly",
            _ => "Disabled",
        }
        .to_string();
        record.components = rules.config().component_signatures.clone();
        record.messages = messages;
        if let Err(e) = audit.write(&record) {
            tracing::error!(error = %e, "audit log write failed");
        }
        score
    }
}

fn headers_of(h: &http::HeaderMap) -> Vec<(Vec<u8>, Vec<u8>)> {
    h.iter()
        .map(|(k, v)| (k.as_str().as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

/// Reads one body frame within the idle timeout.
async fn next_frame<B>(body: &mut B, idle: Duration) -> Result<Option<Bytes>>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: std::error::Error + 'static,
{
    loop {
        match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => return Err(Error::BodyTimeout("idle")),
            Ok(None) => return Ok(None),
            Ok(Some(Err(e))) => {
                return Err(match Error::find_in(&e) {
                    Some(Error::BadRequest(r)) => Error::BadRequest(r),
                    _ => Error::Body(e.to_string()),
                })
            }
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    return Ok(Some(data));
                }
                // Trailers: not inspected, nothing to forward here.
            }
        }
    }
}

/// Phases 1 and 2 for a routed request. On [`Verdict::Pass`] the WAF
/// state is left in `slot` for the response phases and phase 5.
///
/// `client` is the client address the shield resolved (the TCP peer, or the
/// address a trusted proxy forwarded): rules on REMOTE_ADDR and the audit log
/// must name the real client, not the load balancer in front of palisade.
#[allow(clippy::too_many_arguments)]
pub async fn check_request(
    route: &RouteRt,
    ctx: &ConnCtx,
    client: std::net::IpAddr,
    req: &mut Request<Incoming>,
    host: &str,
    request_id: &HeaderValue,
    limits: &Limits,
    slot: &mut Option<Box<WafTx>>,
) -> Result<Verdict> {
    let Some(rt) = route.waf.clone() else {
        return Ok(Verdict::Pass(Bytes::new()));
    };
    let (proto, num) = version_str(req.version());
    let rid = request_id.to_str().unwrap_or("-").to_string();
    let time = now_micros();
    let listen = ctx.listener.cfg.listen;
    let input = TransactionInput {
        client_ip: client.to_string(),
        client_port: ctx.peer.port(),
        server_ip: listen.ip().to_string(),
        server_port: listen.port(),
        server_name: host.to_string(),
        unique_id: rid.clone(),
        unix_time_micros: time,
        env: Vec::new(),
    };
    let mut tx = rt.rules.transaction(input);
    // HTTP/1: the head exactly as received (case, order, raw target), as
    // captured by the guard. h2 (and heads the guard could not attach): the
    // parsed form; h2 and absolute-form targets are given in origin form.
    let raw = req
        .extensions()
        .get::<crate::guard::RawHead>()
        .filter(|r| r.rejected.is_none() && !r.request_line.is_empty());
    let (method, target, version, headers) = match raw {
        Some(r) => {
            let v = String::from_utf8_lossy(r.version()).into_owned();
            let num = v.strip_prefix("HTTP/").unwrap_or(num).to_string();
            tx.request_line(r.method(), r.target(), r.version());
            let headers: Vec<(Vec<u8>, Vec<u8>)> = r
                .headers
                .iter()
                .map(|(k, v)| (k.to_vec(), v.to_vec()))
                .collect();
            (
                String::from_utf8_lossy(r.method()).into_owned(),
                String::from_utf8_lossy(r.target()).into_owned(),
                num,
                headers,
            )
        }
        None => {
            let target = if req.version() == Version::HTTP_2 {
                req.uri()
                    .path_and_query()
                    .map(|p| p.as_str().to_string())
                    .unwrap_or_else(|| "/".into())
            } else {
                req.uri().to_string()
            };
            tx.request_line(req.method().as_str(), &target, proto);
            let mut headers = headers_of(req.headers());
            if req.version() == Version::HTTP_2 && !req.headers().contains_key(header::HOST) {
                if let Some(a) = req.uri().authority() {
                    headers.insert(0, (b"host".to_vec(), a.as_str().as_bytes().to_vec()));
                }
            }
            (
                req.method().as_str().to_string(),
                target,
                num.to_string(),
                headers,
            )
        }
    };
    for (k, v) in &headers {
        tx.request_header(k, v);
    }
    let record = Record {
        client_ip: client.to_string(),
        client_port: ctx.peer.port(),
        host_ip: listen.ip().to_string(),
        host_port: listen.port(),
        server_id: server_id().to_string(),
        unique_id: rid,
        unix_time_micros: time,
        method,
        http_version: version,
        uri: target,
        request_headers: headers,
        ..Record::default()
    };
    let w = slot.insert(Box::new(WafTx {
        rt,
        tx,
        record,
        blocked: false,
        html: wants_html(req),
        partial: false,
        eval: Duration::ZERO,
    }));

    if let Some(i) = w.timed(|tx| tx.process_request_headers()) {
        return Ok(Verdict::Respond(w.block(&i, request_id)));
    }

    // Phase 2: the body, up to the inspection limit.
    let cfg = w.rt.rules.config();
    let mut buf: Vec<u8> = Vec::new();
    if cfg.request_body_access && !req.body().is_end_stream() {
        let limit = cfg.request_body_limit;
        let partial_ok = cfg.request_body_limit_action == LimitAction::ProcessPartial
            || w.tx.engine_mode() != EngineMode::On;
        while let Some(chunk) = next_frame(req.body_mut(), limits.body_idle_timeout).await? {
            if (buf.len() + chunk.len()) as u64 > limits.max_body_bytes {
                return Err(Error::BodyTooLarge);
            }
            buf.extend_from_slice(&chunk);
            if let Some(i) = w.timed(|tx| tx.append_request_body(&chunk)) {
                return Ok(Verdict::Respond(w.block(&i, request_id)));
            }
            if buf.len() as u64 > limit {
                // Over the limit with ProcessPartial (or in detect mode):
                // the prefix is inspected, the rest streams uninspected.
                w.partial = true;
                if partial_ok {
                    tracing::warn!(
                        request_id = request_id.to_str().unwrap_or("-"),
                        limit,
                        "request body larger than SecRequestBodyLimit: only its first bytes are inspected"
                    );
                }
                break;
            }
        }
    }
    if let Some(i) = w.timed(|tx| tx.process_request_body()) {
        return Ok(Verdict::Respond(w.block(&i, request_id)));
    }
    Ok(Verdict::Pass(Bytes::from(buf)))
}

/// Phases 3 and 4 on the upstream response. Returns the response for the
/// client and whether the WAF replaced it (then the upstream connection
/// must not be reused: its body may be unread).
pub async fn check_response(
    head: Response<()>,
    mut body: crate::upstream_h1::UpstreamBody,
    slot: &mut Option<Box<WafTx>>,
    request_id: &HeaderValue,
    limits: &Limits,
) -> Result<(Response<RespBody>, bool)> {
    let Some(w) = slot.as_mut() else {
        return Ok((head.map(|_| RespBody::upstream(body)), false));
    };
    w.record.response_headers = headers_of(head.headers());
    let (proto, _) = version_str(Version::HTTP_11);
    w.tx.response_status(head.status().as_u16(), proto);
    for (k, v) in head.headers() {
        w.tx.response_header(k.as_str(), v.as_bytes());
    }
    if let Some(i) = w.timed(|tx| tx.process_response_headers()) {
        return Ok((w.block(&i, request_id), true));
    }
    if !w.tx.wants_response_body() || body.is_end_stream() {
        return Ok((head.map(|_| RespBody::upstream(body)), false));
    }
    let limit = w.rt.rules.config().response_body_limit;
    let mut buf: Vec<u8> = Vec::new();
    let mut ended = false;
    loop {
        let Some(chunk) = next_frame(&mut body, limits.body_idle_timeout).await? else {
            ended = true;
            break;
        };
        buf.extend_from_slice(&chunk);
        if let Some(i) = w.timed(|tx| tx.append_response_body(&chunk)) {
            return Ok((w.block(&i, request_id), true));
        }
        if buf.len() as u64 > limit {
            // ProcessPartial (or detect mode): the rest streams uninspected.
            break;
        }
    }
    if let Some(i) = w.timed(|tx| tx.process_response_body()) {
        return Ok((w.block(&i, request_id), true));
    }
    let out = if ended {
        RespBody::full(Bytes::from(buf))
    } else {
        RespBody::prefixed(Bytes::from(buf), body)
    };
    Ok((head.map(|_| out), false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile_t(w: &RouteWaf) -> std::result::Result<Ruleset, String> {
        compile(w, Path::new("/nonexistent-data-dir"))
    }

    fn route(sources: Vec<RuleSource>, exclusions: Vec<Exclusion>, mode: WafMode) -> RouteWaf {
        RouteWaf {
            mode,
            sources,
            paranoia_level: 1,
            inbound_anomaly_threshold: 5,
            outbound_anomaly_threshold: 4,
            response_inspection: false,
            exclusions,
        }
    }

    fn verdict(rs: Ruleset, uri: &str) -> Option<Intervention> {
        let rs = Arc::new(rs);
        let mut tx = rs.transaction(TransactionInput::default());
        tx.request_line("GET", uri, "HTTP/1.1");
        tx.request_header("Host", "a.example");
        tx.request_header("User-Agent", "Mozilla/5.0");
        tx.request_header("Accept", "text/html");
        tx.process_request_headers()
            .or_else(|| tx.process_request_body())
    }

    #[test]
    fn builtin_rules_block_sqli_and_exclusions_lift_it() {
        let sqli = "/?q=1%27%20OR%20%271%27%3D%271";
        let rs = compile_t(&route(vec![RuleSource::Builtin], vec![], WafMode::Block)).unwrap();
        assert_eq!(verdict(rs, sqli).map(|i| i.status), Some(403));
        let rs = compile_t(&route(vec![RuleSource::Builtin], vec![], WafMode::Block)).unwrap();
        assert_eq!(verdict(rs, "/?q=shoes"), None);
        let lifted = compile_t(&route(
            vec![RuleSource::Builtin],
            vec![Exclusion::TargetByTag(
                rules::builtin::TAG.into(),
                "ARGS:q".into(),
            )],
            WafMode::Block,
        ))
        .unwrap();
        assert_eq!(verdict(lifted, sqli), None);
        // Detect mode never intervenes.
        let rs = compile_t(&route(vec![RuleSource::Builtin], vec![], WafMode::Detect)).unwrap();
        assert_eq!(rs.config().engine, EngineMode::DetectionOnly);
        assert_eq!(verdict(rs, sqli), None);
    }

    #[test]
    fn route_mode_wins_over_the_sources_engine_setting() {
        let w = route(
            vec![RuleSource::Inline(
                "SecRuleEngine Off\nSecRule ARGS \"@contains x\" \"id:5,phase:1,deny\"".into(),
            )],
            vec![],
            WafMode::Block,
        );
        assert_eq!(
            verdict(compile_t(&w).unwrap(), "/?a=x").map(|i| i.rule_id),
            Some(5)
        );
    }

    #[test]
    fn load_errors_name_file_and_line() {
        let w = route(
            vec![RuleSource::Inline(
                "\n\nSecRule ARGS \"@rx (\" \"id:1,phase:1,deny\"".into(),
            )],
            vec![],
            WafMode::Block,
        );
        let e = compile_t(&w).unwrap_err();
        assert!(e.starts_with("<inline>:3:"), "{e}");
        let w = route(
            vec![RuleSource::File("/nonexistent/*.conf".into())],
            vec![],
            WafMode::Block,
        );
        assert!(compile_t(&w).is_err());
        let w = route(
            vec![RuleSource::Crs(Some("/nonexistent".into()))],
            vec![],
            WafMode::Block,
        );
        assert!(compile_t(&w).unwrap_err().contains("no CRS here"));
        if !std::path::Path::new(rules::crs::DEBIAN_DIR).exists() {
            let w = route(vec![RuleSource::Crs(None)], vec![], WafMode::Block);
            assert!(compile_t(&w).unwrap_err().starts_with("no CRS found"));
        }
    }

    #[tokio::test]
    async fn block_page_escapes_the_request_id() {
        let rules = "SecRule ARGS \"@contains x\" \"id:5,phase:1,deny,status:406\"";
        let w = route(
            vec![RuleSource::Inline(rules.into())],
            vec![],
            WafMode::Block,
        );
        let i = verdict(compile_t(&w).unwrap(), "/?a=x").unwrap();
        let resp = block_page(&i, &HeaderValue::from_static("<script>"), true);
        assert_eq!(resp.status(), 406);
        assert_eq!(resp.headers()["x-request-id"], "<script>");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains("&lt;script&gt;"), "{body}");
        assert!(!body.contains("<script>"), "{body}");
        let resp = block_page(&i, &HeaderValue::from_static("abc"), false);
        assert_eq!(
            resp.headers()[header::CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert!(String::from_utf8_lossy(&body).contains("request id: abc"));
    }
}
