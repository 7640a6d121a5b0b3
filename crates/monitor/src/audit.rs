//! The WAF audit log in ModSecurity v3's JSON format.
//!
//! One transaction is one line holding one JSON object:
//!
//! ```text
//! {"transaction":{"client_ip":"…","time_stamp":"Mon Nov 23 15:13:23 2026","server_id":"…",
//!   "client_port":40312,"host_ip":"…","host_port":8080,"unique_id":"…",
//!   "request":{"method":"GET","http_version":1.1,"uri":"/?q=…","headers":{…}},
//!   "response":{"http_code":403,"headers":{…}},
//!   "producer":{"modsecurity":"…","connector":"…","secrules_engine":"Enabled","components":[]},
//!   "messages":[{"message":"…","details":{"match":"…","reference":"","ruleId":"942100",
//!     "file":"…","lineNumber":"46","data":"…","severity":"2","ver":"…","rev":"",
//!     "tags":[…],"maturity":"0","accuracy":"0"}}]}}
//! ```
//!
//! Types follow libmodsecurity 3 exactly, because parsers rely on them:
//! `client_port`, `host_port` and `http_code` are JSON integers,
//! `http_version` is a JSON number (`1.1`, `2.0`), and every field under
//! `details` is a string (`"ruleId":"942100"`). Headers are written in the
//! order received, a repeated header as a repeated key (as ModSecurity does).
//! The `match` text is ModSecurity's: ``Matched "Operator `Rx' with
//! parameter `…' against variable `ARGS:q' (Value: `…' )``, with the
//! parameter cut at 200 bytes, the value at 100 (then ` (N characters
//! omitted)`) and non-printable bytes written `\xHH`.
//!
//! Writing: [`AuditLog::write`] appends the whole line with one `write(2)`
//! on a file opened in append mode, under a mutex, so records never
//! interleave, and a record is in the file (the kernel's page cache, which
//! every reader sees) before the call returns: a test harness that reads
//! the log after its response arrived finds the record.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use seclang::{MatchedRule, Ruleset, Transaction};

/// Longest operator parameter written in a `match` text (ModSecurity: 200 bytes).
pub const MATCH_PARAM_LIMIT: usize = 200;

/// Longest matched value written in a `match` text (ModSecurity: 100 bytes).
pub const MATCH_VALUE_LIMIT: usize = 100;

/// Longest header value written to the log (default 8 KiB): a hostile
/// client's huge header cannot make every audit line huge. Longer values
/// are cut and marked as ModSecurity marks cut texts.
pub const MAX_LOGGED_HEADER_BYTES: usize = 8192;

/// Most headers written per message (default 256), bounding a line's size
/// whatever the HTTP layer's limits.
pub const MAX_LOGGED_HEADERS: usize = 256;

/// Errors of the monitor crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The audit log file cannot be opened or written.
    #[error("audit log {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A relevant-status pattern is not `NNN`, `Nxx` or `!…`.
    #[error("relevant status `{0}`: expected a status such as \"404\", a class such as \"5xx\", or an exclusion such as \"!404\"")]
    BadStatusPattern(String),
    /// An audit mode other than `relevant`, `all` or `off`.
    #[error("audit log mode `{0}`: expected \"relevant\", \"all\" or \"off\"")]
    BadMode(String),
    /// The event store (SQLite) failed.
    #[error("event store: {0}")]
    Store(#[from] rusqlite::Error),
    /// An event query parameter is invalid.
    #[error("{0}")]
    BadQuery(String),
    /// The event store's file or writer thread cannot be set up.
    #[error("event store {path}: {message}")]
    StoreSetup {
        /// The database file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// An alert sink is misconfigured.
    #[error("alert sink `{name}`: {message}")]
    Sink {
        /// The sink's name.
        name: String,
        /// Why.
        message: String,
    },
    /// `logs analyze`: the WAF rules cannot be found or do not load.
    #[error("rules: {0}")]
    Rules(String),
}

/// Which transactions are written (`SecAuditEngine`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuditMode {
    /// Transactions with a logged rule match or a relevant status
    /// (`RelevantOnly`, the default).
    #[default]
    Relevant,
    /// Every transaction inspected by the WAF (`On`).
    All,
    /// None (`Off`).
    Off,
}

impl std::str::FromStr for AuditMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "relevant" => Ok(AuditMode::Relevant),
            "all" => Ok(AuditMode::All),
            "off" => Ok(AuditMode::Off),
            other => Err(Error::BadMode(other.to_string())),
        }
    }
}

/// One pattern of [`RelevantStatus`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StatusPattern {
    Exact(u16),
    Class(u16),
}

impl StatusPattern {
    fn matches(self, status: u16) -> bool {
        match self {
            StatusPattern::Exact(s) => s == status,
            StatusPattern::Class(c) => status / 100 == c,
        }
    }
}

/// `SecAuditLogRelevantStatus` without a regex: statuses (`"401"`) and
/// classes (`"5xx"`) that make a transaction relevant, minus exclusions
/// (`"!404"`). The default, `["5xx", "4xx", "!404"]`, is what
/// ModSecurity's recommended `^(?:5|4(?!04))` means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelevantStatus {
    include: Vec<StatusPattern>,
    exclude: Vec<StatusPattern>,
}

impl Default for RelevantStatus {
    fn default() -> Self {
        RelevantStatus {
            include: vec![StatusPattern::Class(5), StatusPattern::Class(4)],
            exclude: vec![StatusPattern::Exact(404)],
        }
    }
}

impl RelevantStatus {
    /// Parses the patterns; an empty list makes no status relevant.
    pub fn parse<S: AsRef<str>>(patterns: &[S]) -> Result<Self, Error> {
        let mut out = RelevantStatus {
            include: Vec::new(),
            exclude: Vec::new(),
        };
        for p in patterns {
            let raw = p.as_ref().trim();
            let (neg, body) = match raw.strip_prefix('!') {
                Some(b) => (true, b),
                None => (false, raw),
            };
            let bad = || Error::BadStatusPattern(raw.to_string());
            let b = body.as_bytes();
            if b.len() != 3 || !(b'1'..=b'5').contains(&b[0]) {
                return Err(bad());
            }
            let pat = if body[1..].eq_ignore_ascii_case("xx") {
                StatusPattern::Class(u16::from(b[0] - b'0'))
            } else {
                StatusPattern::Exact(body.parse().map_err(|_| bad())?)
            };
            if neg {
                out.exclude.push(pat);
            } else {
                out.include.push(pat);
            }
        }
        Ok(out)
    }

    /// Whether `status` is relevant.
    pub fn matches(&self, status: u16) -> bool {
        self.include.iter().any(|p| p.matches(status))
            && !self.exclude.iter().any(|p| p.matches(status))
    }
}

/// One entry of `messages`: a rule (chain) that matched and logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// The rule's `msg`, macro-expanded.
    pub message: String,
    /// ModSecurity's match text (see the module docs).
    pub match_text: String,
    /// ModSecurity's offset reference; palisade writes it empty.
    pub reference: String,
    /// Rule id (the first rule's id for a chain).
    pub rule_id: u64,
    /// Rules file.
    pub file: String,
    /// Line of the rule in its file.
    pub line_number: usize,
    /// The rule's `logdata`, macro-expanded.
    pub data: String,
    /// Severity 0..=7 (ModSecurity writes 0 when the rule has none).
    pub severity: u8,
    /// `ver`.
    pub ver: String,
    /// `rev`.
    pub rev: String,
    /// Tags, expanded.
    pub tags: Vec<String>,
    /// `maturity` (0 when unset).
    pub maturity: u8,
    /// `accuracy` (0 when unset).
    pub accuracy: u8,
}

impl Message {
    /// The message for a matched rule of `tx` (which must have run against
    /// `rules`): `None` for `nolog` rules, which ModSecurity leaves out.
    pub fn from_matched(m: &MatchedRule, rules: &Ruleset, tx: &Transaction) -> Option<Message> {
        if !m.log {
            return None;
        }
        // The operator of the chain link that matched last, as ModSecurity
        // (whose chain links share one message) reports it.
        let (op_name, op_param, unconditional) = match rules.rule(m.id) {
            Some(mut r) => {
                while let Some(next) = r.chain.as_deref() {
                    r = next;
                }
                (
                    r.operator_name.as_str(),
                    r.operator_argument.as_str(),
                    r.targets.is_empty(),
                )
            }
            None => ("", "", false),
        };
        // ModSecurity shows the value before transformations.
        let (coll, key) = match m.matched_var_name.split_once(':') {
            Some((c, k)) => (c, Some(k)),
            None => (m.matched_var_name.as_str(), None),
        };
        let raw = tx
            .variable(coll, key)
            .unwrap_or_else(|| m.matched_value.clone());
        // A SecAction evaluates no operator: ModSecurity leaves `match` empty.
        let match_text = if unconditional {
            String::new()
        } else {
            match_text(
                op_name,
                &expand_param(op_param, tx),
                &m.matched_var_name,
                &raw,
            )
        };
        Some(Message {
            message: m.message.clone(),
            match_text,
            reference: String::new(),
            rule_id: m.id,
            file: m.file.display().to_string(),
            line_number: m.line,
            data: m.logdata.clone(),
            severity: m.severity.unwrap_or(0),
            ver: m.ver.as_deref().unwrap_or("").to_string(),
            rev: m.rev.clone().unwrap_or_default(),
            tags: m.tags.to_vec(),
            maturity: m.maturity.unwrap_or(0),
            accuracy: m.accuracy.unwrap_or(0),
        })
    }
}

/// Expands `%{COLLECTION.key}` / `%{VARIABLE}` macros in an operator
/// parameter from the transaction, as ModSecurity shows the parameter it
/// evaluated (`@ge %{tx.inbound_anomaly_score_threshold}` → `5`). An
/// unknown macro expands to nothing, as in ModSecurity.
fn expand_param(param: &str, tx: &Transaction) -> String {
    if !param.contains("%{") {
        return param.to_string();
    }
    let mut out = String::with_capacity(param.len());
    let mut rest = param;
    while let Some(start) = rest.find("%{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let name = &after[..end];
        let (coll, key) = match name.find(['.', ':']) {
            Some(i) => (&name[..i], Some(&name[i + 1..])),
            None => (name, None),
        };
        if let Some(v) = tx.variable(&coll.to_ascii_uppercase(), key) {
            out.push_str(&String::from_utf8_lossy(&v));
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// ModSecurity's operator names (its operator classes' names), looked up
/// case-insensitively by the SecLang name.
const OPERATOR_NAMES: [&str; 27] = [
    "BeginsWith",
    "Contains",
    "ContainsWord",
    "DetectSQLi",
    "DetectXSS",
    "EndsWith",
    "Eq",
    "Ge",
    "Gt",
    "IpMatch",
    "IpMatchFromFile",
    "Le",
    "Lt",
    "NoMatch",
    "Pm",
    "PmFromFile",
    "Rx",
    "StrEq",
    "StrMatch",
    "UnconditionalMatch",
    "ValidateByteRange",
    "ValidateUrlEncoding",
    "ValidateUtf8Encoding",
    "VerifyCC",
    "VerifyCPF",
    "VerifySSN",
    "Within",
];

/// ModSecurity's name of a SecLang operator (`rx` → `Rx`, `streq` →
/// `StrEq`, `pmf` → `PmFromFile`); an unknown name gets its first letter
/// upper-cased.
fn operator_display(name: &str) -> String {
    let name = name.trim_start_matches('@');
    let canonical = match name.to_ascii_lowercase().as_str() {
        "pmf" => "pmfromfile".to_string(),
        "ipmatchf" => "ipmatchfromfile".to_string(),
        other => other.to_string(),
    };
    if let Some(n) = OPERATOR_NAMES
        .iter()
        .find(|n| n.eq_ignore_ascii_case(&canonical))
    {
        return (*n).to_string();
    }
    let mut c = name.chars();
    match c.next() {
        Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
        None => String::new(),
    }
}

/// Bytes outside 0x20..=0x7e written as `\xHH` (ModSecurity's `toHexIfNeeded`).
pub fn hex_if_needed(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len());
    for &c in b {
        if (32..=126).contains(&c) {
            s.push(char::from(c));
        } else {
            let _ = write!(s, "\\x{c:02x}");
        }
    }
    s
}

/// At most `n` bytes of `s` (cut on a character boundary), then
/// ` (N characters omitted)` as ModSecurity's `limitTo` writes it.
pub fn limit_to(n: usize, s: &str) -> String {
    if s.len() <= n {
        return s.to_string();
    }
    let mut cut = n;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{} ({} characters omitted)", &s[..cut], s.len() - n)
}

/// ModSecurity's match text for operator `op` with `param` that matched
/// variable `var` (`ARGS:q`) holding `value`. libinjection's operators
/// have their own fixed texts, as in ModSecurity.
pub fn match_text(op: &str, param: &str, var: &str, value: &[u8]) -> String {
    let op_disp = operator_display(op);
    if op_disp == "DetectSQLi" {
        return "detected SQLi using libinjection.".into();
    }
    if op_disp == "DetectXSS" {
        return "detected XSS using libinjection.".into();
    }
    format!(
        "Matched \"Operator `{op_disp}' with parameter `{}' against variable `{var}' (Value: `{}' )",
        limit_to(MATCH_PARAM_LIMIT, param),
        limit_to(MATCH_VALUE_LIMIT, &hex_if_needed(value)),
    )
}

/// One audited transaction.
#[derive(Debug, Clone, Default)]
pub struct Record {
    /// Client address.
    pub client_ip: String,
    /// Client port.
    pub client_port: u16,
    /// Local address the request arrived on.
    pub host_ip: String,
    /// Local port.
    pub host_port: u16,
    /// This gateway's id (ModSecurity: a hash identifying the server).
    pub server_id: String,
    /// The request id.
    pub unique_id: String,
    /// Start of the transaction, microseconds since the Unix epoch.
    pub unix_time_micros: i64,
    /// Request method.
    pub method: String,
    /// `1.0`, `1.1` or `2.0` (written as a JSON number).
    pub http_version: String,
    /// Request target as received.
    pub uri: String,
    /// Request headers in order, as received.
    pub request_headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// Status sent to the client.
    pub http_code: u16,
    /// Response headers sent to the client.
    pub response_headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// `Enabled`, `DetectionOnly` or `Disabled`.
    pub secrules_engine: String,
    /// `SecComponentSignature` values.
    pub components: Vec<String>,
    /// Logged rule matches.
    pub messages: Vec<Message>,
}

/// Name written as `producer.modsecurity`.
pub const PRODUCER: &str = concat!("palisade v", env!("CARGO_PKG_VERSION"));

/// Name written as `producer.connector`.
pub const CONNECTOR: &str = concat!("palisade-gateway v", env!("CARGO_PKG_VERSION"));

/// How each byte is written in a JSON string: 0 as it is, else the
/// letter after the backslash (`u`: `\u00XX`).
const JSON_ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t[b'\n' as usize] = b'n';
    t[b'\r' as usize] = b'r';
    t[b'\t' as usize] = b't';
    t
};

/// Appends `s` as a JSON string literal (RFC 8259 escaping), without an
/// intermediate allocation; runs of plain bytes are copied at once (one
/// table lookup per byte).
fn push_str(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(s.len() + 2);
    out.push('"');
    let mut start = 0;
    for (i, &b) in s.as_bytes().iter().enumerate() {
        let e = JSON_ESCAPE[usize::from(b)];
        if e == 0 {
            continue;
        }
        // Every escaped byte is ASCII, so `start` and `i` are on character
        // boundaries.
        out.push_str(&s[start..i]);
        out.push('\\');
        if e == b'u' {
            out.push_str("u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        } else {
            out.push(char::from(e));
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

fn push_key(out: &mut String, k: &str) {
    push_str(out, k);
    out.push(':');
}

/// `"k":"v",` for a constant key (written as it is: keys here are plain
/// ASCII literals, only values need escaping).
fn push_field(out: &mut String, k: &'static str, v: &str) {
    out.push('"');
    out.push_str(k);
    out.push_str("\":");
    push_str(out, v);
    out.push(',');
}

/// `"k":"n",`: a number as a JSON string (ModSecurity writes rule ids,
/// line numbers and severities quoted), without `format!`.
fn push_num_field(out: &mut String, k: &'static str, n: u64) {
    out.push('"');
    out.push_str(k);
    out.push_str("\":\"");
    push_digits(out, n);
    out.push_str("\",");
}

fn push_digits(out: &mut String, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &buf[i..] {
        out.push(char::from(d));
    }
}

fn push_headers(out: &mut String, headers: &[(Vec<u8>, Vec<u8>)]) {
    out.push('{');
    for (i, (k, v)) in headers.iter().take(MAX_LOGGED_HEADERS).enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_key(out, &String::from_utf8_lossy(k));
        let v = String::from_utf8_lossy(v);
        push_str(out, &limit_to(MAX_LOGGED_HEADER_BYTES, &v));
    }
    out.push('}');
}

/// `Www Mmm dd hh:mm:ss yyyy` in UTC: ModSecurity's `%c` in the C locale
/// (day of month space-padded).
pub fn asc_time(unix_time_micros: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = unix_time_micros.div_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{} {} {:>2} {:02}:{:02}:{:02} {}",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(month - 1) as usize],
        day,
        sod / 3600,
        sod % 3600 / 60,
        sod % 60,
        year
    )
}

impl Record {
    /// The record as one line of JSON, newline included.
    pub fn to_json_line(&self) -> String {
        let mut o = String::with_capacity(1024 + 512 * self.messages.len());
        o.push_str("{\"transaction\":{");
        push_field(&mut o, "client_ip", &self.client_ip);
        push_field(&mut o, "time_stamp", &asc_time(self.unix_time_micros));
        push_field(&mut o, "server_id", &self.server_id);
        let _ = write!(o, "\"client_port\":{},", self.client_port);
        push_field(&mut o, "host_ip", &self.host_ip);
        let _ = write!(o, "\"host_port\":{},", self.host_port);
        push_field(&mut o, "unique_id", &self.unique_id);
        o.push_str("\"request\":{");
        push_field(
            &mut o,
            "method",
            if self.method.is_empty() {
                "-"
            } else {
                &self.method
            },
        );
        // A JSON number, as ModSecurity writes it; anything that is not
        // digits and one dot is written as 1.1 rather than break the JSON.
        let v = &self.http_version;
        let numeric = !v.is_empty()
            && v.bytes().all(|b| b.is_ascii_digit() || b == b'.')
            && v.bytes().filter(|&b| b == b'.').count() <= 1
            && !v.starts_with('.')
            && !v.ends_with('.');
        let _ = write!(
            o,
            "\"http_version\":{},",
            if numeric { v.as_str() } else { "1.1" }
        );
        push_field(&mut o, "uri", &self.uri);
        push_key(&mut o, "headers");
        push_headers(&mut o, &self.request_headers);
        o.push_str("},\"response\":{");
        let _ = write!(o, "\"http_code\":{},", self.http_code);
        push_key(&mut o, "headers");
        push_headers(&mut o, &self.response_headers);
        o.push_str("},\"producer\":{");
        push_field(&mut o, "modsecurity", PRODUCER);
        push_field(&mut o, "connector", CONNECTOR);
        push_field(&mut o, "secrules_engine", &self.secrules_engine);
        o.push_str("\"components\":[");
        for (i, c) in self.components.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            push_str(&mut o, c);
        }
        o.push_str("]},\"messages\":[");
        for (i, m) in self.messages.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            o.push('{');
            push_field(&mut o, "message", &m.message);
            o.push_str("\"details\":{");
            push_field(&mut o, "match", &m.match_text);
            push_field(&mut o, "reference", &m.reference);
            push_num_field(&mut o, "ruleId", m.rule_id);
            push_field(&mut o, "file", &m.file);
            push_num_field(
                &mut o,
                "lineNumber",
                u64::try_from(m.line_number).unwrap_or(u64::MAX),
            );
            push_field(&mut o, "data", &m.data);
            push_num_field(&mut o, "severity", u64::from(m.severity));
            push_field(&mut o, "ver", &m.ver);
            push_field(&mut o, "rev", &m.rev);
            o.push_str("\"tags\":[");
            for (j, t) in m.tags.iter().enumerate() {
                if j > 0 {
                    o.push(',');
                }
                push_str(&mut o, t);
            }
            o.push_str("],");
            push_num_field(&mut o, "maturity", u64::from(m.maturity));
            o.push_str("\"accuracy\":\"");
            push_digits(&mut o, u64::from(m.accuracy));
            o.push('"');
            o.push_str("}}");
        }
        o.push_str("]}}\n");
        o
    }
}

/// The audit log file: mode, relevance, and a serialised appender.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    mode: AuditMode,
    relevant: RelevantStatus,
    file: Option<Mutex<File>>,
    /// Records written.
    pub records: AtomicU64,
    /// Bytes written.
    pub bytes: AtomicU64,
    /// Failed writes (disk full…); the request is never failed for them.
    pub errors: AtomicU64,
}

impl AuditLog {
    /// Opens (creates, appends to) `path`; with [`AuditMode::Off`] nothing
    /// is opened.
    pub fn open(
        path: &Path,
        mode: AuditMode,
        relevant: RelevantStatus,
    ) -> Result<Arc<Self>, Error> {
        let file = if mode == AuditMode::Off {
            None
        } else {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                    path: path.to_path_buf(),
                    source,
                })?;
            }
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|source| Error::Io {
                    path: path.to_path_buf(),
                    source,
                })?;
            Some(Mutex::new(f))
        };
        Ok(Arc::new(AuditLog {
            path: path.to_path_buf(),
            mode,
            relevant,
            file,
            records: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        }))
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The mode.
    pub fn mode(&self) -> AuditMode {
        self.mode
    }

    /// The relevant statuses.
    pub fn relevant(&self) -> &RelevantStatus {
        &self.relevant
    }

    /// Whether a transaction with `messages` logged matches that ended
    /// with `status` is written. `override_mode` is a rule's
    /// `ctl:auditEngine` (`On`, `Off`, `RelevantOnly`).
    pub fn wants(&self, messages: usize, status: u16, override_mode: Option<&str>) -> bool {
        if self.file.is_none() {
            return false;
        }
        let mode = match override_mode.map(str::to_ascii_lowercase).as_deref() {
            Some("on") => AuditMode::All,
            Some("off") => AuditMode::Off,
            Some("relevantonly") => AuditMode::Relevant,
            _ => self.mode,
        };
        match mode {
            AuditMode::All => true,
            AuditMode::Off => false,
            AuditMode::Relevant => messages > 0 || self.relevant.matches(status),
        }
    }

    /// Appends one record (one `write(2)`, see the module docs).
    pub fn write(&self, record: &Record) -> Result<(), Error> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let line = record.to_json_line();
        let mut f = match file.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        match f.write_all(line.as_bytes()) {
            Ok(()) => {
                self.records.fetch_add(1, Ordering::Relaxed);
                self.bytes.fetch_add(line.len() as u64, Ordering::Relaxed);
                Ok(())
            }
            Err(source) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                Err(Error::Io {
                    path: self.path.clone(),
                    source,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use seclang::{FsLoader, TransactionInput};
    use serde_json::Value;

    fn record_for(rules: &str, uri: &str) -> Record {
        let rs = Arc::new(Ruleset::from_str(rules, "t.conf", &FsLoader).unwrap());
        let mut tx = rs.transaction(TransactionInput {
            client_ip: "203.0.113.7".into(),
            client_port: 40312,
            unique_id: "abc123".into(),
            unix_time_micros: 1_795_000_000_000_000,
            ..Default::default()
        });
        tx.request_line("GET", uri, "HTTP/1.1");
        tx.request_header("Host", "shop.example");
        tx.request_header("X-Marker", "m-1");
        tx.process_request_headers();
        tx.process_logging();
        let messages = tx
            .matched_rules()
            .iter()
            .filter_map(|m| Message::from_matched(m, &rs, &tx))
            .collect();
        Record {
            client_ip: "203.0.113.7".into(),
            client_port: 40312,
            host_ip: "127.0.0.1".into(),
            host_port: 8080,
            server_id: "node-1".into(),
            unique_id: "abc123".into(),
            unix_time_micros: 1_795_000_000_000_000,
            method: "GET".into(),
            http_version: "1.1".into(),
            uri: uri.into(),
            request_headers: vec![
                (b"Host".to_vec(), b"shop.example".to_vec()),
                (b"X-Marker".to_vec(), b"m-1".to_vec()),
            ],
            http_code: 403,
            response_headers: vec![(b"content-type".to_vec(), b"text/plain".to_vec())],
            secrules_engine: "Enabled".into(),
            components: vec![],
            messages,
        }
    }

    const RULES: &str = r#"
SecAction "id:1000,phase:1,pass,log,msg:'always',setvar:tx.limit=3"
SecRule ARGS:q "@contains attack" "id:1002,phase:1,pass,nolog"
SecRule &ARGS "@lt %{tx.limit}" "id:1004,phase:1,pass,log,msg:'few args'"
SecRule ARGS:q "@contains att" "id:1003,phase:1,pass,log,msg:'chained',chain"
    SecRule REQUEST_HEADERS:X-Marker "@streq m-1" "t:none"
SecRule ARGS:q "@rx attack\d" "id:1001,phase:1,deny,status:403,msg:'attack in %{MATCHED_VAR_NAME}',logdata:'Matched Data: %{MATCHED_VAR}',severity:CRITICAL,tag:'attack-x',tag:'paranoia-level/1',ver:'v1',rev:'2',maturity:9,accuracy:8"
"#;

    #[test]
    fn record_has_modsecurity_v3_shape_and_types() {
        let line = record_for(RULES, "/s?q=attack7%01").to_json_line();
        assert!(line.ends_with("}\n") && !line[..line.len() - 1].contains('\n'));
        let v: Value = serde_json::from_str(&line).unwrap();
        let t = &v["transaction"];
        for k in [
            "client_ip",
            "time_stamp",
            "server_id",
            "host_ip",
            "unique_id",
        ] {
            assert!(t[k].is_string(), "{k}: {}", t[k]);
        }
        for k in ["client_port", "host_port"] {
            assert!(t[k].is_u64(), "{k}");
        }
        assert_eq!(t["time_stamp"], "Wed Nov 18 11:06:40 2026");
        assert_eq!(t["request"]["method"], "GET");
        assert!(t["request"]["http_version"].is_f64());
        assert_eq!(t["request"]["http_version"].as_f64(), Some(1.1));
        assert_eq!(t["request"]["uri"], "/s?q=attack7%01");
        assert_eq!(t["request"]["headers"]["X-Marker"], "m-1");
        assert_eq!(t["response"]["http_code"], 403);
        assert_eq!(t["response"]["headers"]["content-type"], "text/plain");
        assert_eq!(t["producer"]["secrules_engine"], "Enabled");
        assert!(t["producer"]["components"].is_array());
        let msgs = t["messages"].as_array().unwrap();
        // 1002 is nolog; the chain logs under its first rule's id.
        let ids: Vec<&str> = msgs
            .iter()
            .map(|m| m["details"]["ruleId"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["1000", "1004", "1003", "1001"]);
        assert_eq!(msgs[0]["details"]["match"], "");
        assert_eq!(
            msgs[1]["details"]["match"],
            "Matched \"Operator `Lt' with parameter `3' against variable `ARGS' (Value: `1' )"
        );
        let d = &msgs[3]["details"];
        for k in [
            "match",
            "reference",
            "ruleId",
            "file",
            "lineNumber",
            "data",
            "severity",
            "ver",
            "rev",
            "maturity",
            "accuracy",
        ] {
            assert!(d[k].is_string(), "details.{k} must be a string: {}", d[k]);
        }
        assert_eq!(msgs[3]["message"], "attack in ARGS:q");
        assert_eq!(d["data"], "Matched Data: attack7\u{1}");
        assert_eq!(
            d["match"],
            "Matched \"Operator `Rx' with parameter `attack\\d' against variable `ARGS:q' (Value: `attack7\\x01' )"
        );
        assert_eq!(d["severity"], "2");
        assert_eq!(d["lineNumber"], "7");
        assert_eq!(d["file"], "t.conf");
        assert_eq!(
            (d["ver"].as_str(), d["rev"].as_str()),
            (Some("v1"), Some("2"))
        );
        assert_eq!(
            (d["maturity"].as_str(), d["accuracy"].as_str()),
            (Some("9"), Some("8"))
        );
        assert_eq!(
            d["tags"],
            serde_json::json!(["attack-x", "paranoia-level/1"])
        );
        // The chain's match is its last link's.
        assert!(msgs[2]["details"]["match"]
            .as_str()
            .unwrap()
            .contains("`StrEq' with parameter `m-1' against variable `REQUEST_HEADERS:X-Marker'"));
    }

    #[test]
    fn repeated_headers_are_repeated_keys_in_order() {
        let mut r = record_for(RULES, "/");
        r.request_headers = vec![
            (b"Cookie".to_vec(), b"a=1".to_vec()),
            (b"cookie".to_vec(), b"b=\"2\"".to_vec()),
        ];
        let line = r.to_json_line();
        assert!(
            line.contains(r#""headers":{"Cookie":"a=1","cookie":"b=\"2\""}"#),
            "{line}"
        );
    }

    #[test]
    fn strings_are_escaped_as_json() {
        let mut o = String::new();
        push_str(&mut o, "a\"b\\c\nd\u{1}é\u{7f}");
        assert_eq!(o, "\"a\\\"b\\\\c\\nd\\u0001é\u{7f}\"");
        let v: Value = serde_json::from_str(&o).unwrap();
        assert_eq!(v, "a\"b\\c\nd\u{1}é\u{7f}");
    }

    #[test]
    fn match_text_limits_and_hex() {
        let long = "a".repeat(150);
        let t = match_text("rx", "x", "ARGS:a", long.as_bytes());
        assert!(
            t.ends_with("(Value: `aaaaaaaaaa (50 characters omitted)' )")
                || t.contains("(50 characters omitted)"),
            "{t}"
        );
        assert_eq!(
            match_text("detectSQLi", "", "ARGS:a", b"1' or 1=1"),
            "detected SQLi using libinjection."
        );
        assert_eq!(hex_if_needed(b"a\x00\xffb"), "a\\x00\\xffb");
    }

    #[test]
    fn asc_time_matches_c_locale() {
        assert_eq!(asc_time(0), "Thu Jan  1 00:00:00 1970");
        // 2024-02-29 12:34:56 UTC (leap day).
        assert_eq!(asc_time(1_709_210_096_000_000), "Thu Feb 29 12:34:56 2024");
    }

    #[test]
    fn relevance_and_modes() {
        let d = RelevantStatus::default();
        assert!(d.matches(500) && d.matches(403) && !d.matches(404) && !d.matches(200));
        let r = RelevantStatus::parse(&["401", "5xx"]).unwrap();
        assert!(r.matches(401) && r.matches(503) && !r.matches(403));
        assert!(RelevantStatus::parse(&["6xx"]).is_err());
        assert!(RelevantStatus::parse(&["40"]).is_err());
        assert!("bogus".parse::<AuditMode>().is_err());

        let dir = std::env::temp_dir().join(format!("monitor-audit-{}", std::process::id()));
        let path = dir.join("audit.log");
        let log = AuditLog::open(&path, AuditMode::Relevant, d).unwrap();
        assert!(log.wants(1, 200, None));
        assert!(!log.wants(0, 200, None));
        assert!(log.wants(0, 502, None));
        assert!(log.wants(0, 200, Some("On")));
        assert!(!log.wants(3, 403, Some("Off")));
        log.write(&record_for(RULES, "/?q=attack1")).unwrap();
        log.write(&record_for(RULES, "/?q=attack2")).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(log.records.load(Ordering::Relaxed), 2);
        let off = AuditLog::open(
            &dir.join("off.log"),
            AuditMode::Off,
            RelevantStatus::default(),
        )
        .unwrap();
        assert!(!off.wants(5, 500, Some("On")));
        assert!(!dir.join("off.log").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
