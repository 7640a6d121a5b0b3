//! One HTTP exchange evaluated against a [`Ruleset`].
//!
//! The caller feeds the request line, headers and body, then the response,
//! calling `process_*` at each phase boundary:
//!
//! | call | phase |
//! |---|---|
//! | [`Transaction::process_request_headers`] | 1 |
//! | [`Transaction::process_request_body`] | 2 (runs the body processor first) |
//! | [`Transaction::process_response_headers`] | 3 |
//! | [`Transaction::process_response_body`] | 4 |
//! | [`Transaction::process_logging`] | 5 |
//!
//! Each returns the [`Intervention`] the rules decided, if any; once there
//! is one, later phases except logging do not run. A phase runs at most
//! once; calling a later phase first runs the skipped earlier ones.

use std::borrow::Cow;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use crate::actions::ctl::EngineMode;
use crate::actions::data::{stoi, ExpireVar, InitCol};
use crate::actions::{Action, AllowScope, Ctl, Disruptive, SetVar, SetVarOp};
use crate::body::{self, BodyLimits, Processor};
use crate::body_glue;
use crate::macros::MacroString;
use crate::memo::{self, Memo};
use crate::operators::OperatorContext;
use crate::parser::ast::LimitAction;
use crate::ruleset::{Entry, Rule, Ruleset};
use crate::store::CollectionStore;
use crate::tcache::{apply_uncached, Prefilter, TCache};
use crate::variables::data::{map_index, union_sources, Data, Item, Resolver, Scratch, MAPS};
use crate::variables::{Target, Var};

/// Most `MATCHED_VARS` entries kept per transaction (bounds memory when a
/// rule matches every one of thousands of arguments). Default 1024.
pub const MAX_MATCHED_VARS: usize = 1024;

/// Most matched-rule records kept per transaction. Default 1024.
pub const MAX_MATCHED_RULES: usize = 1024;

/// Longest value copied into a matched-rule record (`matched_value`); the
/// variable itself is not truncated. Default 4096 bytes.
pub const MAX_RECORDED_VALUE: usize = 4096;

/// Most query-string/urlencoded arguments parsed before `SecArgumentsLimit`
/// applies, as a hard ceiling. Default 65 536.
pub const MAX_ARGUMENTS: usize = 65_536;

/// Most `TX`/`IP`/… entries a transaction may hold (bounds memory when
/// rules build names from request data). Default 8192.
pub const MAX_COLLECTION_ENTRIES: usize = 8192;

/// Who is talking to whom, and when: everything a transaction needs that
/// is not in the HTTP messages.
#[derive(Debug, Clone, Default)]
pub struct TransactionInput {
    /// Client address (REMOTE_ADDR).
    pub client_ip: String,
    /// Client port (REMOTE_PORT).
    pub client_port: u16,
    /// Local address (SERVER_ADDR).
    pub server_ip: String,
    /// Local port (SERVER_PORT).
    pub server_port: u16,
    /// Virtual host name (SERVER_NAME).
    pub server_name: String,
    /// Request id (UNIQUE_ID).
    pub unique_id: String,
    /// Start of the transaction, microseconds since the Unix epoch (TIME*).
    pub unix_time_micros: i64,
    /// Environment variables visible as ENV.
    pub env: Vec<(String, String)>,
}

/// What the gateway must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InterventionAction {
    /// Answer with `status` instead of forwarding.
    Deny,
    /// Close the connection without answering.
    Drop,
    /// Answer `status` with `Location: redirect_url`.
    Redirect,
}

/// A decision to interrupt the transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Intervention {
    /// HTTP status to answer with.
    pub status: u16,
    /// The rule that decided (0 for engine limits such as the body limit).
    pub rule_id: u64,
    /// The rule's expanded `msg` (or a description of the limit).
    pub message: String,
    /// For redirects: the expanded URL.
    pub redirect_url: Option<String>,
    /// What to do.
    pub action: InterventionAction,
    /// The phase that decided.
    pub phase: u8,
}

/// One rule (chain) that matched, with the data an audit log needs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MatchedRule {
    /// Rule id.
    pub id: u64,
    /// Phase.
    pub phase: u8,
    /// `msg`, expanded when the rule matched.
    pub message: String,
    /// `logdata`, expanded when the rule matched.
    pub logdata: String,
    /// Severity 0..=7.
    pub severity: Option<u8>,
    /// Tags (expanded; shared with the rule when they hold no macro).
    pub tags: Arc<[String]>,
    /// `ver`.
    pub ver: Option<Arc<str>>,
    /// `rev`.
    pub rev: Option<String>,
    /// `maturity`.
    pub maturity: Option<u8>,
    /// `accuracy`.
    pub accuracy: Option<u8>,
    /// Rules file.
    pub file: Arc<PathBuf>,
    /// Line in the rules file.
    pub line: usize,
    /// Name of the last variable that matched (`ARGS:id`).
    pub matched_var_name: String,
    /// Its value after transformations (at most [`MAX_RECORDED_VALUE`] bytes).
    pub matched_value: Vec<u8>,
    /// Whether the rule's disruptive action interrupted the transaction.
    pub disruptive: bool,
    /// Whether the rule's effective disruptive action is deny/drop/redirect
    /// (true even in DetectionOnly, where nothing is interrupted).
    pub would_disrupt: bool,
    /// `log` (false with `nolog`).
    pub log: bool,
    /// `auditlog` (false with `noauditlog`).
    pub auditlog: bool,
}

/// Captures of the operator being evaluated.
#[derive(Debug, Default)]
struct Captures {
    values: [Vec<u8>; 10],
    set: u16,
}

struct OpCtx<'a> {
    data: &'a Data,
    rule: &'a Rule,
    caps: &'a mut Captures,
    capturing: bool,
}

impl OperatorContext for OpCtx<'_> {
    fn expand<'a>(&self, arg: &'a MacroString) -> Cow<'a, [u8]> {
        arg.expand(&Resolver {
            data: self.data,
            rule: Some(self.rule),
        })
    }

    fn capturing(&self) -> bool {
        self.capturing
    }

    fn set_capture(&mut self, index: usize, value: &[u8]) {
        if index < 10 {
            let slot = &mut self.caps.values[index];
            slot.clear();
            slot.extend_from_slice(value);
            self.caps.set |= 1 << index;
        }
    }
}

/// What a matched rule asks of the phase loop.
struct Flow {
    skip: u32,
    skip_after: Option<String>,
    stop_phase: bool,
}

/// Per-request state and evaluation. Create with [`Ruleset::transaction`].
#[derive(Debug)]
pub struct Transaction {
    rs: Arc<Ruleset>,
    data: Data,
    tcache: TCache,
    caps: Captures,
    scratch: Scratch,
    engine: EngineMode,
    request_body_access: bool,
    response_body_access: bool,
    body_processor: Option<String>,
    force_body_variable: bool,
    audit_engine: Option<String>,
    audit_log_parts: Option<String>,
    removed_ids: Vec<(u64, u64)>,
    /// Interned tag ids (see `Ruleset::tag_id`).
    removed_tags: Vec<u32>,
    removed_targets_by_id: Vec<(u64, u64, Vec<Target>)>,
    removed_targets_by_tag: Vec<(u32, Vec<Target>)>,
    matched: Vec<MatchedRule>,
    intervention: Option<Intervention>,
    allow: Option<AllowScope>,
    phases_done: u8,
    request_body: Vec<u8>,
    request_body_truncated: bool,
    response_body: Vec<u8>,
    response_body_truncated: bool,
    data_dirty: bool,
    /// Spare buffers (previous MATCHED_VAR, MATCHED_VAR_NAME, setvar value)
    /// so matching does not allocate in steady state.
    value_buf: Vec<u8>,
    name_buf: Vec<u8>,
    setvar_buf: Vec<u8>,
    /// Where `initcol` loads and the logging phase saves persistent
    /// collections; `None`: they live for this transaction only.
    store: Option<Arc<dyn CollectionStore>>,
    /// Records opened by `initcol`: (collection index in MAPS, record key).
    persisted: Vec<(usize, Vec<u8>)>,
    /// `expirevar` deadlines: (collection index, variable, unix seconds).
    expiries: Vec<(usize, Vec<u8>, i64)>,
    /// Whether the reusable buffers are still here (not yet handed to the
    /// pool or to a reset).
    has_buffers: bool,
    /// While the load-time probe evaluates a rule: every `TX` key written.
    write_log: Option<Vec<Vec<u8>>>,
}

impl Ruleset {
    /// Starts a transaction against this rule set. Its buffers come from a
    /// transaction of this rule set that has finished (dropped), when there
    /// is one: a server creating one transaction per request gets the
    /// allocation savings of [`Transaction::reset`] without keeping
    /// transactions itself.
    pub fn transaction(self: &Arc<Self>, input: TransactionInput) -> Transaction {
        Transaction::new(self.clone(), input)
    }
}

/// Appends `chunk` to a body buffer kept within `limit` bytes; returns true
/// (and marks the body truncated) when part of the chunk did not fit.
fn buffer_within_limit(buf: &mut Vec<u8>, truncated: &mut bool, chunk: &[u8], limit: u64) -> bool {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let room = limit.saturating_sub(buf.len());
    if chunk.len() > room {
        buf.extend_from_slice(&chunk[..room]);
        *truncated = true;
        return true;
    }
    buf.extend_from_slice(chunk);
    false
}

fn uri_decode(input: &[u8], plus_as_space: bool) -> Cow<'_, [u8]> {
    if !input
        .iter()
        .any(|&b| b == b'%' || (plus_as_space && b == b'+'))
    {
        return Cow::Borrowed(input);
    }
    let hex = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    };
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        if b == b'%' && i + 2 < input.len() {
            if let (Some(h), Some(l)) = (hex(input[i + 1]), hex(input[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        if plus_as_space && b == b'+' {
            out.push(b' ');
        } else {
            out.push(b);
        }
        i += 1;
    }
    Cow::Owned(out)
}

/// Most sets of transaction buffers a rule set keeps for reuse (see
/// [`Ruleset::transaction`]). Default 64: more than the worker threads of a
/// gateway, so every worker finds warm buffers; bounds the memory kept idle.
pub const MAX_POOLED_TRANSACTIONS: usize = 64;

/// Largest amount of buffer memory (bytes) a finished transaction may hand
/// back for reuse; a transaction that grew beyond it (a huge body, thousands
/// of arguments) frees its buffers instead, so one big request cannot pin
/// memory in the pool. Default 4 MiB.
pub const MAX_POOLED_BYTES: usize = 4 << 20;

/// The buffers a transaction reuses from an earlier one: collections,
/// transformation cache, scratch, records. Emptied when handed back.
#[derive(Debug)]
pub(crate) struct Spare {
    tcache: TCache,
    scratch: Scratch,
    matched: Vec<MatchedRule>,
    request_body: Vec<u8>,
    response_body: Vec<u8>,
    colls: Vec<crate::variables::data::Coll>,
    value_buf: Vec<u8>,
    name_buf: Vec<u8>,
    setvar_buf: Vec<u8>,
}

/// Matched-rule records a new transaction has room for before it grows
/// (a CRS benign request records ~30 `nolog` initialization rules).
/// Default 64.
const INITIAL_MATCHED: usize = 64;

impl Spare {
    fn fresh() -> Spare {
        Spare {
            tcache: TCache::default(),
            scratch: Scratch::default(),
            matched: Vec::with_capacity(INITIAL_MATCHED),
            request_body: Vec::new(),
            response_body: Vec::new(),
            colls: Data::empty_colls(),
            value_buf: Vec::new(),
            name_buf: Vec::new(),
            setvar_buf: Vec::new(),
        }
    }

    /// Heap bytes the buffers hold (approximately).
    fn retained_bytes(&self) -> usize {
        self.tcache.retained_bytes()
            + self.scratch.retained_bytes()
            + self.matched.capacity() * std::mem::size_of::<MatchedRule>()
            + self.request_body.capacity()
            + self.response_body.capacity()
            + self
                .colls
                .iter()
                .map(|c| c.entries.capacity() * std::mem::size_of::<(Vec<u8>, Vec<u8>)>())
                .sum::<usize>()
            + self.value_buf.capacity()
            + self.name_buf.capacity()
            + self.setvar_buf.capacity()
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if let Some(spare) = self.take_spare() {
            // A poisoned pool only means another thread panicked while
            // pushing or popping; the buffers are then simply freed.
            if let Ok(mut pool) = self.rs.pool.lock() {
                if pool.len() < MAX_POOLED_TRANSACTIONS {
                    pool.push(spare);
                }
            }
        }
    }
}

impl Transaction {
    fn new(rs: Arc<Ruleset>, input: TransactionInput) -> Transaction {
        let spare = rs.pool.lock().ok().and_then(|mut p| p.pop());
        Transaction::build(rs, input, spare)
    }

    /// Empties this transaction's buffers and takes them (`None` when they
    /// were taken already or grew beyond [`MAX_POOLED_BYTES`]).
    fn take_spare(&mut self) -> Option<Spare> {
        if !self.has_buffers {
            return None;
        }
        self.has_buffers = false;
        let mut spare = Spare {
            tcache: std::mem::replace(&mut self.tcache, TCache::empty()),
            scratch: std::mem::take(&mut self.scratch),
            matched: std::mem::take(&mut self.matched),
            request_body: std::mem::take(&mut self.request_body),
            response_body: std::mem::take(&mut self.response_body),
            colls: std::mem::take(&mut self.data.colls),
            value_buf: std::mem::take(&mut self.value_buf),
            name_buf: std::mem::take(&mut self.name_buf),
            setvar_buf: std::mem::take(&mut self.setvar_buf),
        };
        if spare.retained_bytes() > MAX_POOLED_BYTES {
            return None;
        }
        spare.tcache.clear();
        spare.matched.clear();
        spare.request_body.clear();
        spare.response_body.clear();
        for c in &mut spare.colls {
            c.entries.clear();
        }
        Some(spare)
    }

    fn build(rs: Arc<Ruleset>, input: TransactionInput, spare: Option<Spare>) -> Transaction {
        let spare = spare.unwrap_or_else(Spare::fresh);
        let mut data = Data::with_colls(input.unix_time_micros, spare.colls);
        data.set_scalar(Var::RemoteAddr, input.client_ip.clone());
        data.set_scalar(Var::RemoteHost, input.client_ip);
        data.set_scalar(Var::RemotePort, input.client_port.to_string());
        data.set_scalar(Var::ServerAddr, input.server_ip);
        data.set_scalar(Var::ServerPort, input.server_port.to_string());
        data.set_scalar(Var::ServerName, input.server_name);
        data.set_scalar(Var::UniqueId, input.unique_id);
        for (k, v) in input.env {
            data.env.insert(k.into_bytes(), v.into_bytes());
        }
        let config = &rs.config;
        Transaction {
            engine: config.engine,
            request_body_access: config.request_body_access,
            response_body_access: config.response_body_access,
            rs,
            data,
            tcache: spare.tcache,
            caps: Captures::default(),
            scratch: spare.scratch,
            body_processor: None,
            force_body_variable: false,
            audit_engine: None,
            audit_log_parts: None,
            removed_ids: Vec::new(),
            removed_tags: Vec::new(),
            removed_targets_by_id: Vec::new(),
            removed_targets_by_tag: Vec::new(),
            matched: spare.matched,
            intervention: None,
            allow: None,
            phases_done: 0,
            request_body: spare.request_body,
            request_body_truncated: false,
            response_body: spare.response_body,
            response_body_truncated: false,
            data_dirty: true,
            value_buf: spare.value_buf,
            name_buf: spare.name_buf,
            setvar_buf: spare.setvar_buf,
            store: None,
            persisted: Vec::new(),
            expiries: Vec::new(),
            has_buffers: true,
            write_log: None,
        }
    }

    /// Starts a new transaction in this one's memory (against the same rule
    /// set): all state is reset as by [`Ruleset::transaction`], while the
    /// buffers (collections, transformation cache, scratch) keep their
    /// capacity. A server can keep one per connection or worker to avoid
    /// the per-transaction setup allocations.
    pub fn reset(&mut self, input: TransactionInput) {
        let spare = self.take_spare();
        let store = self.store.take();
        let mut fresh = Transaction::build(self.rs.clone(), input, spare);
        fresh.store = store;
        // The old state is dropped here; its buffers were taken, so
        // nothing goes to the pool.
        *self = fresh;
    }

    // ----- feeding the request -------------------------------------------------

    /// The request line: method, URI as sent (origin or absolute form), and
    /// protocol (`HTTP/1.1`). Bytes, like headers: a raw byte >= 0x80 or
    /// invalid UTF-8 in the target is inspected as sent (a lossy conversion
    /// would hide it from `@validateUtf8Encoding` and `@validateByteRange`).
    pub fn request_line(
        &mut self,
        method: impl AsRef<[u8]>,
        uri: impl AsRef<[u8]>,
        protocol: impl AsRef<[u8]>,
    ) {
        let (method, uri, protocol) = (method.as_ref(), uri.as_ref(), protocol.as_ref());
        self.data_dirty = true;
        let limit = self.arguments_limit();
        let d = &mut self.data;
        d.set_scalar(Var::RequestMethod, method);
        d.set_scalar(Var::RequestProtocol, protocol);
        let mut line = Vec::with_capacity(method.len() + uri.len() + protocol.len() + 2);
        line.extend_from_slice(method);
        line.push(b' ');
        line.extend_from_slice(uri);
        line.push(b' ');
        line.extend_from_slice(protocol);
        d.set_scalar(Var::RequestLine, line);
        d.set_scalar(Var::RequestUriRaw, uri);
        let no_fragment = &uri[..memchr::memchr(b'#', uri).unwrap_or(uri.len())];
        let (path_raw, query) = match memchr::memchr(b'?', no_fragment) {
            Some(i) => (&no_fragment[..i], Some(&no_fragment[i + 1..])),
            None => (no_fragment, None),
        };
        let path = uri_decode(path_raw, false).into_owned();
        if let Some(pos) = path.iter().rposition(|&b| b == b'/' || b == b'\\') {
            if pos + 1 < path.len() {
                d.set_scalar(Var::RequestBasename, &path[pos + 1..]);
            }
        } else if !path.is_empty() {
            d.set_scalar(Var::RequestBasename, path.clone());
        }
        d.set_scalar(Var::RequestFilename, path.clone());
        d.set_scalar(Var::PathInfo, path);
        let decoded = uri_decode(no_fragment, false).into_owned();
        // REQUEST_URI never holds scheme and host, even for absolute-form requests.
        let request_uri = match decoded.first() {
            Some(b'/') | None => decoded,
            Some(_) => match find(&decoded, b"://") {
                Some(p) => match decoded[p + 3..].iter().position(|&b| b == b'/') {
                    Some(s) => decoded[p + 3 + s..].to_vec(),
                    None => decoded,
                },
                None => decoded,
            },
        };
        d.set_scalar(Var::RequestUri, request_uri);
        if let Some(q) = query {
            d.set_scalar(Var::QueryString, q);
            let parsed = body::urlencoded::parse(q, b'&', limit);
            d.coll_mut(Var::ArgsGet).entries.extend(parsed.args);
            if parsed.invalid_encoding {
                d.set_scalar(Var::UrlencodedError, "1");
            }
        }
    }

    fn arguments_limit(&self) -> usize {
        usize::try_from(self.rs.config.arguments_limit)
            .unwrap_or(MAX_ARGUMENTS)
            .min(MAX_ARGUMENTS)
    }

    /// One request header (call once per header line, in order).
    /// Header names and values are bytes: obs-text and invalid UTF-8 are
    /// inspected as sent.
    pub fn request_header(&mut self, name: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        let (name, value) = (name.as_ref(), value.as_ref());
        self.data_dirty = true;
        self.data.coll_mut(Var::RequestHeaders).push(name, value);
        if name.eq_ignore_ascii_case(b"cookie") {
            let cookies = self.data.coll_mut(Var::RequestCookies);
            for part in value.split(|&b| b == b';') {
                let start = part
                    .iter()
                    .position(|b| !b.is_ascii_whitespace())
                    .unwrap_or(part.len());
                let part = &part[start..];
                if part.is_empty() {
                    continue;
                }
                let (k, v) = match part.iter().position(|&b| b == b'=') {
                    Some(p) => (&part[..p], &part[p + 1..]),
                    None => (part, &b""[..]),
                };
                cookies.push(k, v);
            }
        }
    }

    /// Runs phase 1.
    pub fn process_request_headers(&mut self) -> Option<Intervention> {
        // ModSecurity knows the body processor from Content-Type before
        // phase 1 (CRS 920400 reads REQBODY_PROCESSOR there).
        if self.phases_done == 0 && self.request_body_access {
            let processor = self
                .data
                .coll(Var::RequestHeaders)
                .get(b"content-type")
                .and_then(body::processor_for_content_type);
            if let Some(p) = processor {
                self.data_dirty = true;
                self.data.set_scalar(Var::ReqbodyProcessor, p.name());
            }
        }
        self.run_phase(1)
    }

    /// Appends a chunk of the request body. Beyond `SecRequestBodyLimit`,
    /// with `SecRequestBodyLimitAction Reject` (and the engine On) this
    /// returns a 413 intervention; with `ProcessPartial` the rest is not
    /// inspected.
    pub fn append_request_body(&mut self, chunk: &[u8]) -> Option<Intervention> {
        if self.intervention.is_some() {
            return None;
        }
        if !self.request_body_access {
            return None;
        }
        let overflow = buffer_within_limit(
            &mut self.request_body,
            &mut self.request_body_truncated,
            chunk,
            self.rs.config.request_body_limit,
        );
        let reject = self.rs.config.request_body_limit_action == LimitAction::Reject;
        self.limit_intervention(
            overflow && reject,
            413,
            "Request body is larger than SecRequestBodyLimit",
            2,
        )
    }

    /// Runs the body processor, then phase 2.
    pub fn process_request_body(&mut self) -> Option<Intervention> {
        if self.phases_done < 1 {
            if let Some(i) = self.run_phase(1) {
                return Some(i);
            }
        }
        if self.phases_done < 2 && self.intervention.is_none() {
            if let Some(i) = self.process_body() {
                self.phases_done = 2;
                return Some(i);
            }
        }
        self.run_phase(2)
    }

    /// Runs the body processor; returns the intervention for a body over
    /// `SecRequestBodyNoFilesLimit` (with `Reject` and the engine On).
    fn process_body(&mut self) -> Option<Intervention> {
        if !self.request_body_access {
            return None;
        }
        self.data_dirty = true;
        let content_type = self
            .data
            .coll(Var::RequestHeaders)
            .get(b"content-type")
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        let processor = match &self.body_processor {
            Some(p) => Processor::from_name(p),
            None => body::processor_for_content_type(&content_type),
        };
        let body = std::mem::take(&mut self.request_body);
        self.data.set_scalar(Var::ReqbodyError, "0");
        self.data.set_scalar(Var::ReqbodyProcessorError, "0");
        if self.request_body_truncated {
            self.data.set_scalar(Var::InboundDataError, "1");
        }
        let mut no_files_length = body.len() as u64;
        if let Some(p) = processor {
            let used = self.data.coll(Var::ArgsGet).entries.len();
            let limits = BodyLimits {
                max_args: self.arguments_limit().saturating_sub(used),
                json_depth: usize::try_from(self.rs.config.json_depth_limit).unwrap_or(usize::MAX),
                ..BodyLimits::default()
            };
            let out = body_glue::process(&mut self.data, p, &content_type, &body, &limits);
            if let Some(m) = &out.multipart {
                no_files_length = m.no_files_length;
            }
        }
        // As ModSecurity v2 and Coraza (and the CRS tests): REQUEST_BODY
        // holds the raw body only without a processor or with URLENCODED,
        // unless ctl:forceRequestBodyVariable asks for it.
        if self.force_body_variable || matches!(processor, None | Some(Processor::Urlencoded)) {
            self.data.set_scalar(Var::RequestBody, body.clone());
        }
        self.request_body = body;
        if no_files_length > self.rs.config.request_body_no_files_limit
            && self.rs.config.request_body_limit_action == LimitAction::Reject
            && self.engine == EngineMode::On
        {
            let i = Intervention {
                status: 413,
                rule_id: 0,
                message: "Request body (without files) is larger than SecRequestBodyNoFilesLimit"
                    .into(),
                redirect_url: None,
                action: InterventionAction::Deny,
                phase: 2,
            };
            self.intervention = Some(i.clone());
            return Some(i);
        }
        None
    }

    // ----- feeding the response ------------------------------------------------

    /// The response status line.
    pub fn response_status(&mut self, status: u16, protocol: &str) {
        self.data_dirty = true;
        self.data
            .set_scalar(Var::ResponseStatus, status.to_string());
        self.data.set_scalar(Var::ResponseProtocol, protocol);
    }

    /// One response header.
    pub fn response_header(&mut self, name: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        let (name, value) = (name.as_ref(), value.as_ref());
        self.data_dirty = true;
        self.data.coll_mut(Var::ResponseHeaders).push(name, value);
        if name.eq_ignore_ascii_case(b"content-type") {
            self.data.set_scalar(Var::ResponseContentType, value);
        } else if name.eq_ignore_ascii_case(b"content-length") {
            self.data.set_scalar(Var::ResponseContentLength, value);
        }
    }

    /// Runs phase 3 (and earlier phases not yet run).
    pub fn process_response_headers(&mut self) -> Option<Intervention> {
        for p in 1..=3 {
            if self.phases_done < p {
                if p == 2 && self.intervention.is_none() {
                    if let Some(i) = self.process_body() {
                        self.phases_done = 2;
                        return Some(i);
                    }
                }
                if let Some(i) = self.run_phase(p) {
                    return Some(i);
                }
            }
        }
        None
    }

    /// Whether the response body should be given to
    /// [`Transaction::append_response_body`] (`SecResponseBodyAccess` and
    /// `SecResponseBodyMimeType`).
    pub fn wants_response_body(&self) -> bool {
        if !self.response_body_access {
            return false;
        }
        let ct = self.data.scalar(Var::ResponseContentType).unwrap_or(b"");
        let ct = String::from_utf8_lossy(ct);
        let mime = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        self.rs.config.response_body_mime_types.contains(&mime)
    }

    /// Appends a chunk of the response body (ignored unless
    /// [`Transaction::wants_response_body`]). Beyond `SecResponseBodyLimit`
    /// with `Reject` this returns a 500 intervention.
    pub fn append_response_body(&mut self, chunk: &[u8]) -> Option<Intervention> {
        if self.intervention.is_some() || !self.wants_response_body() {
            return None;
        }
        let overflow = buffer_within_limit(
            &mut self.response_body,
            &mut self.response_body_truncated,
            chunk,
            self.rs.config.response_body_limit,
        );
        let reject = self.rs.config.response_body_limit_action == LimitAction::Reject;
        self.limit_intervention(
            overflow && reject,
            500,
            "Response body is larger than SecResponseBodyLimit",
            4,
        )
    }

    /// The intervention for a body over its limit with `Reject` (only when
    /// the engine is On: DetectionOnly never interrupts).
    fn limit_intervention(
        &mut self,
        rejected: bool,
        status: u16,
        message: &str,
        phase: u8,
    ) -> Option<Intervention> {
        if !rejected || self.engine != EngineMode::On {
            return None;
        }
        let i = Intervention {
            status,
            rule_id: 0,
            message: message.into(),
            redirect_url: None,
            action: InterventionAction::Deny,
            phase,
        };
        self.intervention = Some(i.clone());
        Some(i)
    }

    /// Runs phase 4 (and earlier phases not yet run).
    pub fn process_response_body(&mut self) -> Option<Intervention> {
        if let Some(i) = self.process_response_headers() {
            return Some(i);
        }
        if self.phases_done < 4 && self.wants_response_body() {
            self.data_dirty = true;
            let body = std::mem::take(&mut self.response_body);
            if self.response_body_truncated {
                self.data.set_scalar(Var::OutboundDataError, "1");
            }
            self.data.set_scalar(Var::ResponseBody, body);
        }
        self.run_phase(4)
    }

    /// Runs phase 5 (always, even after an intervention; phase 4 first when
    /// the response headers were processed but the response body was not).
    pub fn process_logging(&mut self) -> Option<Intervention> {
        // The response headers were inspected but the body phase was not
        // requested (no body to inspect): phase 4 rules still run, as in
        // ModSecurity, whose connectors always process the response body.
        if self.phases_done == 3 {
            let _ = self.process_response_body();
        }
        self.run_phase(5);
        self.persist_collections();
        None
    }

    /// Gives the transaction a store for persistent collections (`initcol`,
    /// `expirevar`); kept across [`Transaction::reset`].
    pub fn set_store(&mut self, store: Arc<dyn CollectionStore>) {
        self.store = Some(store);
    }

    /// Tells the transaction the current time (for DURATION).
    pub fn set_now_micros(&mut self, unix_time_micros: i64) {
        self.data.now_micros = unix_time_micros;
    }

    // ----- results -------------------------------------------------------------

    /// The intervention decided so far.
    pub fn intervention(&self) -> Option<&Intervention> {
        self.intervention.as_ref()
    }

    /// Every rule that matched, in evaluation order.
    pub fn matched_rules(&self) -> &[MatchedRule] {
        &self.matched
    }

    /// `TX:name` (any case).
    pub fn tx(&self, name: &str) -> Option<&[u8]> {
        self.data.maps[0]
            .get(name.to_ascii_lowercase().as_bytes())
            .map(Vec::as_slice)
    }

    /// Every TX variable (lower-cased names).
    pub fn tx_vars(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.data.maps[0]
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
    }

    /// The first value of any variable, as a macro would expand it
    /// (`("REQUEST_HEADERS", Some("host"))`, `("ARGS_COMBINED_SIZE", None)`).
    pub fn variable(&self, name: &str, key: Option<&str>) -> Option<Vec<u8>> {
        let var = Var::from_name(name)?;
        let mut out = Vec::new();
        self.data
            .first_value(var, key, None, &mut out)
            .then_some(out)
    }

    /// The rule engine mode in effect (after `ctl:ruleEngine`).
    pub fn engine_mode(&self) -> EngineMode {
        self.engine
    }

    /// `ctl:auditEngine` value set by a rule, if any.
    pub fn audit_engine_override(&self) -> Option<&str> {
        self.audit_engine.as_deref()
    }

    /// `ctl:auditLogParts` value set by a rule, if any.
    pub fn audit_log_parts_override(&self) -> Option<&str> {
        self.audit_log_parts.as_deref()
    }

    /// The highest severity among matched rules (0 = EMERGENCY).
    pub fn highest_severity(&self) -> Option<u8> {
        self.data.highest_severity
    }

    /// The request body as buffered (up to the limit).
    pub fn request_body(&self) -> &[u8] {
        match self.data.scalar(Var::RequestBody) {
            Some(b) => b,
            None => &self.request_body,
        }
    }

    // ----- phases --------------------------------------------------------------

    fn run_phase(&mut self, phase: u8) -> Option<Intervention> {
        // Each phase runs once, in order (the process_* methods run skipped
        // earlier phases first).
        if self.phases_done >= phase {
            return None;
        }
        self.phases_done = phase;
        if self.engine == EngineMode::Off {
            return None;
        }
        if phase != 5 {
            if self.intervention.is_some() {
                return None;
            }
            match self.allow {
                Some(AllowScope::All) => return None,
                Some(AllowScope::Request) if phase <= 2 => return None,
                _ => {}
            }
        }
        if self.data_dirty {
            self.tcache.clear();
            self.data_dirty = false;
        }
        let rs = self.rs.clone();
        let list = &rs.phases[usize::from(phase - 1)];
        let mut skip = 0u32;
        let mut skip_after: Option<String> = None;
        // skipAfter may name a rule id instead of a marker.
        let mut skip_after_id: Option<u64> = None;
        for entry in list {
            let rule = match entry {
                Entry::Marker(name) => {
                    if skip_after.as_deref() == Some(name.as_str()) {
                        skip_after = None;
                    }
                    continue;
                }
                Entry::Rule(r) => r,
            };
            if skip_after.is_some() {
                if skip_after_id == Some(rule.id) {
                    skip_after = None;
                }
                continue;
            }
            if skip > 0 {
                skip -= 1;
                continue;
            }
            if self.is_removed(rule) {
                continue;
            }
            let outcome = match rule.memo.as_deref() {
                Some(m) if self.memo_applies(m) => self.replay(rule, m),
                _ => self.eval_rule(rule),
            };
            let Some(flow) = outcome else {
                continue;
            };
            if self.intervention.is_some() && phase != 5 {
                return self.intervention.clone();
            }
            if flow.stop_phase {
                break;
            }
            skip = flow.skip;
            skip_after_id = flow.skip_after.as_deref().and_then(|s| s.parse().ok());
            skip_after = flow.skip_after;
            if self.engine == EngineMode::Off {
                break;
            }
        }
        None
    }

    fn is_removed(&self, rule: &Rule) -> bool {
        self.removed_ids
            .iter()
            .any(|&(a, b)| (a..=b).contains(&rule.id))
            || self.removed_tags.iter().any(|t| rule.tag_ids.contains(t))
    }

    /// Evaluates, in a transaction without request data, every rule whose
    /// outcome depends only on `TX` (see the `memo` module), in order, and
    /// records each one's outcome: (phase index, entry index, memo).
    pub(crate) fn probe_memos(rs: &Arc<Ruleset>) -> Vec<(usize, usize, Memo)> {
        let mut tx = rs.transaction(TransactionInput::default());
        let mut out = Vec::new();
        for (phase, list) in rs.phases.iter().enumerate() {
            for (index, entry) in list.iter().enumerate() {
                let Entry::Rule(rule) = entry else { continue };
                let Some(keys) = memo::tx_reads(rule) else {
                    continue;
                };
                let reads = keys
                    .into_iter()
                    .map(|k| {
                        let v = tx.data.maps[0].get(&k).cloned();
                        (k, v)
                    })
                    .collect();
                tx.data.matched_var = None;
                tx.data.matched_var_name = None;
                let recorded = tx.matched.len();
                tx.write_log = Some(Vec::new());
                let flow = tx.eval_rule(rule);
                let mut written = tx.write_log.take().unwrap_or_default();
                written.sort();
                written.dedup();
                // Every key written, with its final value: also those
                // written with the value they already had here, which may
                // differ when the rule runs for real.
                let after = &tx.data.maps[0];
                let writes: Vec<(Vec<u8>, memo::TxValue)> = written
                    .into_iter()
                    .map(|k| {
                        let v = after.get(&k).cloned();
                        (k, v)
                    })
                    .collect();
                let record = match flow {
                    Some(_) => match tx.matched.get(recorded) {
                        Some(r) => Some(r.clone()),
                        // Not recorded (cannot happen this early): no memo.
                        None => continue,
                    },
                    None => None,
                };
                let matched_var = match (&tx.data.matched_var, &tx.data.matched_var_name) {
                    (Some(v), Some(n)) => Some((n.clone(), v.clone())),
                    _ => None,
                };
                out.push((
                    phase,
                    index,
                    Memo {
                        reads,
                        writes,
                        matched_var,
                        matched_vars: tx.data.matched_vars().to_vec(),
                        record,
                    },
                ));
            }
        }
        out
    }

    /// Whether `m` is this transaction's outcome of its rule: every `TX`
    /// variable the rule reads holds the probe's value, no `ctl` removed
    /// targets (which would change what the rule reads) and `TX` has room
    /// for every write (else a setvar would be dropped).
    fn memo_applies(&self, m: &Memo) -> bool {
        let tx = &self.data.maps[0];
        self.removed_targets_by_id.is_empty()
            && self.removed_targets_by_tag.is_empty()
            && tx.len() + m.writes.len() < MAX_COLLECTION_ENTRIES
            && m.reads
                .iter()
                .all(|(k, v)| tx.get(k).map(Vec::as_slice) == v.as_deref())
    }

    /// Applies a rule's load-time outcome, as [`Transaction::eval_rule`]
    /// would have produced it.
    fn replay(&mut self, rule: &Rule, m: &Memo) -> Option<Flow> {
        self.data.clear_matched_vars();
        for (n, v) in &m.matched_vars {
            self.data.push_matched_var(n, v);
        }
        let tx = &mut self.data.maps[0];
        for (k, v) in &m.writes {
            match v {
                Some(v) => match tx.get_mut(k) {
                    Some(slot) => {
                        slot.clear();
                        slot.extend_from_slice(v);
                    }
                    None => {
                        tx.insert(k.clone(), v.clone());
                    }
                },
                None => {
                    tx.remove(k);
                }
            }
        }
        if let Some((name, value)) = &m.matched_var {
            let set = |slot: &mut Option<Vec<u8>>, spare: &mut Vec<u8>, bytes: &[u8]| {
                let mut buf = slot.take().unwrap_or_else(|| std::mem::take(spare));
                buf.clear();
                buf.extend_from_slice(bytes);
                *slot = Some(buf);
            };
            set(&mut self.data.matched_var_name, &mut self.name_buf, name);
            set(&mut self.data.matched_var, &mut self.value_buf, value);
        }
        let record = m.record.as_ref()?;
        if let Some(s) = rule.severity {
            self.data.highest_severity = Some(self.data.highest_severity.map_or(s, |h| h.min(s)));
        }
        if self.matched.len() < MAX_MATCHED_RULES {
            self.matched.push(record.clone());
        }
        Some(Flow {
            skip: rule.skip,
            skip_after: rule.skip_after.clone(),
            stop_phase: false,
        })
    }

    /// Evaluates a rule (chain); `Some` when it fully matched.
    fn eval_rule(&mut self, rule: &Rule) -> Option<Flow> {
        self.data.clear_matched_vars();
        if !self.eval_link(rule, rule) {
            return None;
        }
        let resolver = Resolver {
            data: &self.data,
            rule: Some(rule),
        };
        let expand = |m: &Option<MacroString>| {
            m.as_ref()
                .map(|m| String::from_utf8_lossy(&m.expand(&resolver)).into_owned())
                .unwrap_or_default()
        };
        let message = expand(&rule.msg);
        let logdata = expand(&rule.logdata);
        let tags = match &rule.const_tags {
            Some(t) => t.clone(),
            None => rule
                .tags
                .iter()
                .map(|t| String::from_utf8_lossy(&t.expand(&resolver)).into_owned())
                .collect(),
        };
        let disruptive_action = rule.disruptive.clone().unwrap_or(Disruptive::Pass);
        let would_disrupt = matches!(
            disruptive_action,
            Disruptive::Deny | Disruptive::Drop | Disruptive::Redirect(_)
        );
        let enforcing = self.engine == EngineMode::On;
        let mut flow = Flow {
            skip: rule.skip,
            skip_after: rule.skip_after.clone(),
            stop_phase: false,
        };
        let mut disrupted = false;
        if enforcing {
            let status = rule.status;
            let base = |action, status| Intervention {
                status,
                rule_id: rule.id,
                message: message.clone(),
                redirect_url: None,
                action,
                phase: rule.phase,
            };
            match &disruptive_action {
                Disruptive::Deny => {
                    self.intervention = Some(base(InterventionAction::Deny, status.unwrap_or(403)));
                    disrupted = true;
                }
                Disruptive::Drop => {
                    self.intervention = Some(base(InterventionAction::Drop, status.unwrap_or(403)));
                    disrupted = true;
                }
                Disruptive::Redirect(url) => {
                    let mut i = base(
                        InterventionAction::Redirect,
                        status
                            .filter(|s| matches!(s, 301 | 302 | 303 | 307 | 308))
                            .unwrap_or(302),
                    );
                    i.redirect_url =
                        Some(String::from_utf8_lossy(&url.expand(&resolver)).into_owned());
                    self.intervention = Some(i);
                    disrupted = true;
                }
                Disruptive::Allow(scope) => {
                    self.allow = Some(*scope);
                    flow.stop_phase = true;
                }
                Disruptive::Pass | Disruptive::Block => {}
            }
        }
        if let Some(s) = rule.severity {
            self.data.highest_severity = Some(self.data.highest_severity.map_or(s, |h| h.min(s)));
        }
        if self.matched.len() < MAX_MATCHED_RULES {
            let name = self.data.matched_var_name.as_deref().unwrap_or_default();
            let value = self.data.matched_var.as_deref().unwrap_or_default();
            let value = value[..value.len().min(MAX_RECORDED_VALUE)].to_vec();
            self.matched.push(MatchedRule {
                id: rule.id,
                phase: rule.phase,
                message,
                logdata,
                severity: rule.severity,
                tags,
                ver: rule.ver.clone(),
                rev: rule.rev.clone(),
                maturity: rule.maturity,
                accuracy: rule.accuracy,
                file: rule.file.clone(),
                line: rule.line,
                matched_var_name: String::from_utf8_lossy(name).into_owned(),
                matched_value: value,
                disruptive: disrupted,
                would_disrupt,
                log: rule.log,
                auditlog: rule.auditlog,
            });
        }
        Some(flow)
    }

    /// Whether some value the link's targets can select might match its
    /// operator, judged by the prefilter over whole collections (each
    /// scanned once per transformation chain and shared by every rule with
    /// that chain).
    fn link_possible(&mut self, link: &Rule, pf: &Prefilter) -> bool {
        for t in &link.targets {
            let Some(sources) = union_sources(t.var) else {
                return true;
            };
            for &src in sources {
                match self
                    .tcache
                    .union_found(&self.rs.tnodes, pf, &self.data, src, &link.tchain)
                {
                    Some(f)
                        if !Prefilter::possible(
                            &f,
                            link.literals.as_deref(),
                            link.required_bytes.as_ref(),
                        ) => {}
                    _ => return true,
                }
            }
        }
        false
    }

    /// Evaluates one link and, when it matches, the rest of the chain.
    fn eval_link(&mut self, starter: &Rule, link: &Rule) -> bool {
        if link.whole_filter {
            let rs = self.rs.clone();
            if let Some(pf) = &rs.prefilter {
                if !self.link_possible(link, pf) {
                    // No value can match (and the link is not negated):
                    // as if every value had been tested and failed.
                    return false;
                }
            }
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.reset();
        if link.targets.is_empty() {
            // SecAction: one empty value.
            let value = scratch.temp(b"");
            scratch.items.push(Item {
                var: Var::RequestLine,
                src: crate::variables::data::Src::Temp { value, key: None },
            });
        }
        for t in &link.targets {
            scratch.gather(&self.data, t, starter);
        }
        let mut any = false;
        // Whether any ctl target removal concerns this rule: decided once,
        // not per value.
        let removals =
            !self.removed_targets_by_id.is_empty() || !self.removed_targets_by_tag.is_empty();
        let removals = removals
            && (self
                .removed_targets_by_id
                .iter()
                .any(|(a, b, _)| (*a..=*b).contains(&starter.id))
                || self
                    .removed_targets_by_tag
                    .iter()
                    .any(|(t, _)| starter.tag_ids.contains(t)));
        let check_exclusions =
            !link.targets.is_empty() && (removals || !link.exclusions.is_empty());
        for n in 0..scratch.items.len() {
            let item = scratch.items[n];
            if check_exclusions && self.excluded(starter, link, &scratch, &item, removals) {
                continue;
            }
            let value = scratch.value(&self.data, &item);
            if link.multi_match {
                // The original value and every value a transformation
                // changed are each tested (ModSecurity multiMatch).
                let mut candidates: Vec<Vec<u8>> = vec![value.to_vec()];
                for k in 1..=link.transformations.len() {
                    let cached = match item.src.cache_id() {
                        Some(id) => {
                            self.tcache
                                .apply(&self.rs.tnodes, id, value, &link.tchain[..k])
                        }
                        None => None,
                    };
                    let v = match cached {
                        Some(c) => Cow::Borrowed(c),
                        None => apply_uncached(&link.transformations[..k], value),
                    };
                    if candidates.last().is_none_or(|l| l.as_slice() != &*v) {
                        candidates.push(v.into_owned());
                    }
                }
                for candidate in candidates {
                    if self.test(starter, link, &candidate) {
                        let name = if link.targets.is_empty() {
                            Vec::new()
                        } else {
                            scratch.name(&self.data, &item)
                        };
                        self.on_value_match(starter, link, name, candidate);
                        any = true;
                    }
                }
                continue;
            }
            let mut impossible = false;
            let filtered = link.literals.is_some() || link.required_bytes.is_some();
            let cached = match (item.src.cache_id(), &self.rs.prefilter) {
                (Some(id), Some(pf)) if filtered => self
                    .tcache
                    .apply_filtered(&self.rs.tnodes, pf, id, value, &link.tchain)
                    .map(|(v, found)| {
                        // The value holds none of the operator's required
                        // literals or bytes: it cannot match, so it is not run.
                        impossible = found.is_some_and(|f| {
                            !Prefilter::possible(
                                &f,
                                link.literals.as_deref(),
                                link.required_bytes.as_ref(),
                            )
                        });
                        v
                    }),
                (Some(id), _) => self.tcache.apply(&self.rs.tnodes, id, value, &link.tchain),
                (None, _) => None,
            };
            if impossible {
                if link.negated {
                    // As if the operator ran and failed: no captures.
                    self.caps.set = 0;
                    let matched = cached.unwrap_or_default().to_vec();
                    let name = scratch.name(&self.data, &item);
                    self.on_value_match(starter, link, name, matched);
                    any = true;
                }
                continue;
            }
            let tested: Cow<'_, [u8]> = match cached {
                Some(c) => Cow::Borrowed(c),
                None => apply_uncached(&link.transformations, value),
            };
            self.caps.set = 0;
            let mut ctx = OpCtx {
                data: &self.data,
                rule: starter,
                caps: &mut self.caps,
                capturing: link.capture,
            };
            if link.operator.evaluate(&tested, &mut ctx) != link.negated {
                // Reuse the buffers of the previous MATCHED_VAR(_NAME).
                let mut value_buf = std::mem::take(&mut self.value_buf);
                value_buf.clear();
                value_buf.extend_from_slice(&tested);
                drop(tested);
                let mut name_buf = std::mem::take(&mut self.name_buf);
                name_buf.clear();
                if !link.targets.is_empty() {
                    scratch.name_into(&self.data, &item, &mut name_buf);
                }
                self.on_value_match(starter, link, name_buf, value_buf);
                any = true;
            }
        }
        self.scratch = scratch;
        if !any {
            return false;
        }
        if let Some(next) = &link.chain {
            if !self.eval_link(starter, next) {
                return false;
            }
        }
        for action in &link.after_match {
            self.run_action(starter, action);
        }
        true
    }

    fn test(&mut self, starter: &Rule, link: &Rule, value: &[u8]) -> bool {
        self.caps.set = 0;
        let mut ctx = OpCtx {
            data: &self.data,
            rule: starter,
            caps: &mut self.caps,
            capturing: link.capture,
        };
        link.operator.evaluate(value, &mut ctx) != link.negated
    }

    fn excluded(
        &self,
        starter: &Rule,
        link: &Rule,
        scratch: &Scratch,
        item: &Item,
        removals: bool,
    ) -> bool {
        let key = scratch.key(&self.data, item);
        let hit = |t: &Target| {
            t.var == item.var
                && match key {
                    Some(k) => t.selector.matches_key(k),
                    None => matches!(t.selector, crate::variables::Selector::All),
                }
        };
        if link.exclusions.iter().any(hit) {
            return true;
        }
        if !removals {
            return false;
        }
        let id = starter.id;
        self.removed_targets_by_id
            .iter()
            .any(|(a, b, ts)| (*a..=*b).contains(&id) && ts.iter().any(hit))
            || self
                .removed_targets_by_tag
                .iter()
                .any(|(tag, ts)| starter.tag_ids.contains(tag) && ts.iter().any(hit))
    }

    /// A value matched: MATCHED_VAR(S), captures, setvars.
    fn on_value_match(&mut self, starter: &Rule, link: &Rule, name: Vec<u8>, value: Vec<u8>) {
        if link.capture && self.caps.set != 0 {
            const KEYS: [&[u8]; 10] = [b"0", b"1", b"2", b"3", b"4", b"5", b"6", b"7", b"8", b"9"];
            for (i, key) in KEYS.iter().enumerate() {
                if self.caps.set & (1 << i) != 0 {
                    if let Some(log) = &mut self.write_log {
                        log.push(key.to_vec());
                    }
                    let v = &self.caps.values[i];
                    match self.data.maps[0].get_mut(*key) {
                        Some(slot) => {
                            slot.clear();
                            slot.extend_from_slice(v);
                        }
                        None => {
                            self.data.maps[0].insert(key.to_vec(), v.clone());
                        }
                    }
                }
            }
        }
        if self.rs.uses_matched_vars && self.data.matched_vars_count() < MAX_MATCHED_VARS {
            self.data.push_matched_var(&name, &value);
        }
        if let Some(old) = self.data.matched_var_name.replace(name) {
            self.name_buf = old;
        }
        if let Some(old) = self.data.matched_var.replace(value) {
            self.value_buf = old;
        }
        // `initcol` must load the record before this rule's setvars change
        // it (`initcol:ip=…,setvar:ip.hits=+1`); it is idempotent, so its
        // later run with the other after-match actions is a no-op.
        if self.store.is_some() && !link.setvars.is_empty() {
            for action in &link.after_match {
                if let Action::InitCol(ic) = action {
                    self.initcol(starter, ic);
                }
            }
        }
        for sv in &link.setvars {
            self.setvar(starter, sv);
        }
    }

    fn setvar(&mut self, rule: &Rule, sv: &SetVar) {
        let Some(mi) = map_index(sv.collection) else {
            return;
        };
        let resolver = Resolver {
            data: &self.data,
            rule: Some(rule),
        };
        let key = sv.key.expand(&resolver);
        let key: Cow<'_, [u8]> = if key.iter().any(u8::is_ascii_uppercase) {
            Cow::Owned(key.to_ascii_lowercase())
        } else {
            key
        };
        if mi == 0 {
            if let Some(log) = &mut self.write_log {
                log.push(key.to_vec());
            }
        }
        let mut buf = std::mem::take(&mut self.setvar_buf);
        buf.clear();
        match &sv.op {
            SetVarOp::Unset => {
                self.data.maps[mi].remove(&*key);
                self.setvar_buf = buf;
                return;
            }
            SetVarOp::SetOne => buf.push(b'1'),
            SetVarOp::Set(v) => buf.extend_from_slice(&v.expand(&resolver)),
            SetVarOp::Add(v) | SetVarOp::Sub(v) => {
                let operand = stoi(&v.expand(&resolver));
                let current = self.data.maps[mi].get(&*key).map_or(0, |c| stoi(c));
                let result = if matches!(sv.op, SetVarOp::Add(_)) {
                    current + operand
                } else {
                    current - operand
                };
                // std::to_string of a C++ int: the sum wraps like an i32.
                let _ = write!(buf, "{}", result as i32);
            }
        }
        let map = &mut self.data.maps[mi];
        if let Some(slot) = map.get_mut(&*key) {
            slot.clear();
            slot.extend_from_slice(&buf);
        } else if map.len() < MAX_COLLECTION_ENTRIES {
            map.insert(key.into_owned(), buf.clone());
        }
        self.setvar_buf = buf;
    }

    /// `initcol:ip=%{REMOTE_ADDR}`: loads the record from the store (once
    /// per collection and transaction, as ModSecurity does).
    fn initcol(&mut self, rule: &Rule, ic: &InitCol) {
        let Some(mi) = map_index(ic.collection) else {
            return;
        };
        if mi == 0 || self.persisted.iter().any(|(m, _)| *m == mi) {
            return;
        }
        let key = ic
            .key
            .expand(&Resolver {
                data: &self.data,
                rule: Some(rule),
            })
            .into_owned();
        if let Some(store) = &self.store {
            let now = self.data.now_micros.div_euclid(1_000_000);
            for (name, value, expires) in store.load(ic.collection.name(), &key, now) {
                let map = &mut self.data.maps[mi];
                if map.len() < MAX_COLLECTION_ENTRIES {
                    if let Some(at) = expires {
                        self.expiries.push((mi, name.clone(), at));
                    }
                    map.insert(name, value);
                }
            }
        }
        self.persisted.push((mi, key));
    }

    /// `expirevar:ip.hits=60`: the variable disappears 60 s from now.
    fn expirevar(&mut self, rule: &Rule, ev: &ExpireVar) {
        let Some(mi) = map_index(ev.collection) else {
            return;
        };
        let resolver = Resolver {
            data: &self.data,
            rule: Some(rule),
        };
        let name = ev.key.expand(&resolver).to_ascii_lowercase();
        let secs = stoi(&ev.seconds.expand(&resolver));
        let at = self
            .data
            .now_micros
            .div_euclid(1_000_000)
            .saturating_add(secs);
        self.expiries.retain(|(m, n, _)| !(*m == mi && *n == name));
        if self.expiries.len() < MAX_COLLECTION_ENTRIES {
            self.expiries.push((mi, name, at));
        }
    }

    /// Saves every record `initcol` opened (end of the logging phase).
    fn persist_collections(&mut self) {
        let Some(store) = self.store.clone() else {
            return;
        };
        let now = self.data.now_micros.div_euclid(1_000_000);
        let timeout = i64::try_from(self.rs.config.collection_timeout).unwrap_or(i64::MAX);
        for (mi, key) in std::mem::take(&mut self.persisted) {
            let vars = self.data.maps[mi]
                .iter()
                .map(|(name, value)| {
                    let expires = self
                        .expiries
                        .iter()
                        .find(|(m, n, _)| *m == mi && n == name)
                        .map(|(_, _, at)| *at);
                    (name.clone(), value.clone(), expires)
                })
                .filter(|(_, _, expires)| expires.is_none_or(|at| at > now))
                .collect();
            store.save(MAPS[mi].name(), &key, vars, now, timeout);
        }
    }

    fn run_action(&mut self, rule: &Rule, action: &Action) {
        match action {
            Action::SetVar(sv) => self.setvar(rule, sv),
            Action::SetEnv(e) => {
                let resolver = Resolver {
                    data: &self.data,
                    rule: Some(rule),
                };
                let name = e.name.expand(&resolver).into_owned();
                let value = e.value.expand(&resolver).into_owned();
                if e.unset {
                    self.data.env.remove(&name);
                } else if self.data.env.len() < MAX_COLLECTION_ENTRIES {
                    self.data.env.insert(name, value);
                }
            }
            Action::InitCol(ic) => self.initcol(rule, ic),
            Action::ExpireVar(ev) => self.expirevar(rule, ev),
            Action::Ctl(ctl) => self.ctl(ctl),
            _ => {}
        }
    }

    fn ctl(&mut self, ctl: &Ctl) {
        match ctl {
            Ctl::RuleEngine(m) => self.engine = *m,
            Ctl::RuleRemoveById(a, b) => self.removed_ids.push((*a, *b)),
            // A tag no rule carries removes nothing.
            Ctl::RuleRemoveByTag(tag) => {
                if let Some(id) = self.rs.tag_id(tag) {
                    self.removed_tags.push(id);
                }
            }
            Ctl::RuleRemoveTargetById(a, b, t) => {
                self.removed_targets_by_id.push((*a, *b, t.clone()))
            }
            Ctl::RuleRemoveTargetByTag(re, t) => {
                if let Some(id) = self.rs.tag_id(re) {
                    self.removed_targets_by_tag.push((id, t.clone()));
                }
            }
            Ctl::RequestBodyProcessor(p) => {
                // Visible at once (CRS 901340 tests REQBODY_PROCESSOR in
                // phase 1 after rule 200000 chose XML), as ModSecurity v3.
                self.data.set_scalar(Var::ReqbodyProcessor, p.as_str());
                // Cached transformations of the old value must go now, not
                // at the next phase.
                self.tcache.clear();
                self.body_processor = Some(p.clone());
            }
            Ctl::RequestBodyAccess(b) => self.request_body_access = *b,
            Ctl::ForceRequestBodyVariable(b) => self.force_body_variable = *b,
            Ctl::ResponseBodyAccess(b) => self.response_body_access = *b,
            Ctl::AuditEngine(v) => self.audit_engine = Some(v.clone()),
            Ctl::AuditLogParts(v) => self.audit_log_parts = Some(v.clone()),
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
