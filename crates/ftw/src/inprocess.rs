//! The in-process [`Target`]: palisade's seclang engine with the CRS in its
//! regression-test setup, an httparse-strict HTTP layer in front of it and
//! an albedo-compatible backend behind it, all without sockets.
//!
//! Per stage: the raw request is parsed ([`crate::http1`]); a request the
//! HTTP layer would refuse is answered with that status and never reaches
//! the WAF. Otherwise the transaction gets the request line, headers and
//! body (phases 1–2), then the backend's response (phases 3–4: albedo
//! answers `POST /reflect` with the status, headers and body the JSON
//! request asks for, and every other request with an empty 200), then
//! phase 5. Every logged rule becomes one ModSecurity-style error-log line.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::Arc;

use seclang::{
    FsLoader, InterventionAction, MatchedRule, Ruleset, RulesetBuilder, TransactionInput,
};

use crate::http1::{self, HttpModel, ParsedRequest};
use crate::model::OverridesFile;
use crate::runner::{run, Filter, StageRequest, StageResponse, Summary, Target};
use crate::{load, Error};

/// Engine settings of the CRS test environment that ModSecurity takes from
/// `modsecurity.conf` (the recommended values; response MIME types as the
/// CRS project's own test containers set them), plus its body-processor
/// selection rules 200000/200001 and the body-error rule 200002 whose log
/// line some CRS tests match. Loaded before `crs-setup.conf.example`.
/// The text is `tests/crs/engine.conf`, which the gateway's CRS test
/// config loads too.
pub const ENGINE_SETUP: &str = include_str!("../../../tests/crs/engine.conf");

/// The test-mode rule the CRS tests README prescribes (added after
/// `crs-setup.conf`): DetectionOnly, rule 910000 removed, blocking paranoia
/// level 4 and the listed `tx.*` limits (`tests/crs/test-mode.conf`).
pub const CRS_TEST_MODE: &str = include_str!("../../../tests/crs/test-mode.conf");

/// Loads the CRS at `crs_dir` (its `crs-setup.conf.example` and
/// `rules/*.conf`) in the regression-test setup: [`ENGINE_SETUP`], the
/// setup file, [`CRS_TEST_MODE`], the rules.
pub fn load_crs(crs_dir: &Path) -> Result<Ruleset, Error> {
    let target = |e: seclang::Error| Error::Target(format!("loading the CRS: {e}"));
    RulesetBuilder::new(&FsLoader)
        .add_str(ENGINE_SETUP, "palisade-ftw-engine.conf")
        .map_err(target)?
        .add_file(crs_dir.join("crs-setup.conf.example"))
        .map_err(target)?
        .add_str(CRS_TEST_MODE, "palisade-ftw-test-mode.conf")
        .map_err(target)?
        .add_file(crs_dir.join("rules").join("*.conf"))
        .map_err(target)?
        .build()
        .map_err(target)
}

/// The engine behind an httparse-strict HTTP layer, with an albedo backend.
#[derive(Debug, Clone)]
pub struct InProcess {
    rules: Arc<Ruleset>,
    http: HttpModel,
}

impl InProcess {
    /// Wraps a compiled ruleset.
    pub fn new(rules: Arc<Ruleset>) -> Self {
        InProcess {
            rules,
            http: HttpModel::default(),
        }
    }

    /// Chooses the HTTP layer model (default [`HttpModel::Httparse`]).
    pub fn with_http_model(mut self, model: HttpModel) -> Self {
        self.http = model;
        self
    }

    /// [`load_crs`] wrapped.
    pub fn crs(crs_dir: &Path) -> Result<Self, Error> {
        Ok(Self::new(Arc::new(load_crs(crs_dir)?)))
    }

    fn evaluate(&self, req: &ParsedRequest, test_id: &str) -> Result<StageResponse, String> {
        let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let mut tx = self.rules.transaction(TransactionInput {
            client_ip: "127.0.0.1".into(),
            client_port: 40000,
            server_ip: "127.0.0.1".into(),
            server_port: 80,
            server_name: "localhost".into(),
            unique_id: format!("ftw-{test_id}"),
            unix_time_micros: 1_700_000_000_000_000,
            env: Vec::new(),
        });
        let uri = lossy(&req.uri);
        tx.request_line(&req.method, &req.uri, &req.version);
        for (n, v) in &req.headers {
            tx.request_header(n, v);
        }
        let mut decided = tx.process_request_headers();
        if decided.is_none() && !req.body.is_empty() {
            decided = tx.append_request_body(&req.body);
        }
        if decided.is_none() {
            decided = tx.process_request_body();
        }

        let mut status = 200;
        let mut response = Vec::new();
        let mut dropped = false;
        match decided {
            Some(i) if i.action == InterventionAction::Drop => dropped = true,
            Some(i) => {
                status = i.status;
                response =
                    format!("HTTP/1.1 {status} Blocked\r\nContent-Length: 0\r\n\r\n").into_bytes();
            }
            None => {
                let backend = albedo(req);
                status = backend.status;
                tx.response_status(backend.status, "HTTP/1.1");
                for (n, v) in &backend.headers {
                    tx.response_header(n, v);
                }
                let mut late = tx.process_response_headers();
                if late.is_none() && tx.wants_response_body() {
                    late = tx.append_response_body(&backend.body);
                    if late.is_none() {
                        late = tx.process_response_body();
                    }
                }
                match late {
                    Some(i) if i.action == InterventionAction::Drop => dropped = true,
                    Some(i) => status = i.status,
                    None => response = backend.raw(),
                }
            }
        }
        tx.process_logging();

        let mut out = StageResponse {
            status,
            response,
            ..StageResponse::default()
        };
        for m in tx.matched_rules().iter().filter(|m| m.log) {
            out.fired.push(m.id);
            out.log.push(log_line(&self.rules, m, &uri, test_id));
        }
        if dropped {
            return Err(format!("connection dropped (fired {:?})", out.fired));
        }
        Ok(out)
    }
}

impl Target for InProcess {
    fn send(&self, request: &StageRequest<'_>) -> Result<StageResponse, String> {
        let parsed = http1::parse_with(request.raw, self.http);
        if let Some((status, why)) = parsed.rejected {
            return Ok(StageResponse {
                status,
                response: format!("HTTP/1.1 {status} Bad Request\r\nConnection: close\r\n\r\n")
                    .into_bytes(),
                answered_by_http_layer: Some(why.to_owned()),
                ..StageResponse::default()
            });
        }
        // A panic in the engine is a bug to report, not a reason to stop the
        // suite: it becomes this test's failure.
        catch_unwind(AssertUnwindSafe(|| self.evaluate(&parsed, request.test_id))).unwrap_or_else(
            |p| {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                Err(format!("engine panicked: {msg}"))
            },
        )
    }
}

/// A ModSecurity (v2/Apache style) error-log line for one matched rule,
/// the text go-ftw's `match_regex` and id extraction read.
pub fn log_line(rules: &Ruleset, m: &MatchedRule, uri: &str, test_id: &str) -> String {
    let esc = |s: &str| log_escape(s.as_bytes());
    let (op, param) = rules
        .rule(m.id)
        .map(|r| (r.operator_name.clone(), r.operator_argument.clone()))
        .unwrap_or_default();
    let mut line = format!(
        "ModSecurity: Warning. Matched \"Operator `{op}' with parameter `{}' against variable `{}' (Value: `{}' )\" [file \"{}\"] [line \"{}\"] [id \"{}\"]",
        esc(&param),
        m.matched_var_name,
        log_escape(&m.matched_value),
        m.file.display(),
        m.line,
        m.id
    );
    if let Some(rev) = &m.rev {
        line.push_str(&format!(" [rev \"{}\"]", esc(rev)));
    }
    line.push_str(&format!(" [msg \"{}\"]", esc(&m.message)));
    line.push_str(&format!(" [data \"{}\"]", esc(&m.logdata)));
    if let Some(s) = m.severity {
        line.push_str(&format!(" [severity \"{s}\"]"));
    }
    if let Some(v) = &m.ver {
        line.push_str(&format!(" [ver \"{}\"]", esc(v)));
    }
    if let Some(x) = m.maturity {
        line.push_str(&format!(" [maturity \"{x}\"]"));
    }
    if let Some(x) = m.accuracy {
        line.push_str(&format!(" [accuracy \"{x}\"]"));
    }
    for t in m.tags.iter() {
        line.push_str(&format!(" [tag \"{}\"]", esc(t)));
    }
    line.push_str(&format!(
        " [hostname \"localhost\"] [uri \"{}\"] [unique_id \"ftw-{test_id}\"]",
        esc(uri)
    ));
    line
}

/// ModSecurity's log escaping: `"` and `\\` get a backslash, bytes
/// outside printable ASCII become `\xhh`, so one rule is one line.
pub fn log_escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

/// What the albedo backend answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendResponse {
    /// Status.
    pub status: u16,
    /// Headers in order.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl BackendResponse {
    fn raw(&self) -> Vec<u8> {
        let mut out = format!("HTTP/1.1 {} OK\r\n", self.status).into_bytes();
        for (n, v) in &self.headers {
            out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

/// albedo's behaviour: `POST /reflect` (or `/reflect/`) with a JSON body
/// `{status, headers, body, encodedBody}` answers that; anything else is an
/// empty 200. Go's `net/http` adds `Content-Type` by sniffing a non-empty
/// body without one, and `Content-Length`.
pub fn albedo(req: &ParsedRequest) -> BackendResponse {
    let path = req.uri.split(|&b| b == b'?').next().unwrap_or_default();
    let mut resp = BackendResponse {
        status: 200,
        headers: Vec::new(),
        body: Vec::new(),
    };
    if req.method == b"POST" && (path == b"/reflect" || path == b"/reflect/") {
        match parse_reflect(&req.body) {
            Some(spec) => resp = spec,
            None => {
                resp.status = 400;
                resp.body = b"Invalid JSON in request body".to_vec();
            }
        }
    }
    if !resp.body.is_empty()
        && !resp
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
    {
        resp.headers
            .push(("Content-Type".into(), sniff(&resp.body).into()));
    }
    resp.headers
        .push(("Content-Length".into(), resp.body.len().to_string()));
    resp
}

fn parse_reflect(body: &[u8]) -> Option<BackendResponse> {
    use base64::Engine as _;
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let obj = v.as_object()?;
    let status = match obj.get("status").and_then(serde_json::Value::as_u64) {
        None | Some(0) => 200,
        Some(s) if (100..600).contains(&s) => u16::try_from(s).ok()?,
        Some(_) => return None,
    };
    let mut headers: Vec<(String, String)> = obj
        .get("headers")
        .and_then(serde_json::Value::as_object)
        .map(|h| {
            h.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    headers.sort();
    let body = match obj.get("body").and_then(serde_json::Value::as_str) {
        Some(b) if !b.is_empty() => b.as_bytes().to_vec(),
        _ => match obj.get("encodedBody").and_then(serde_json::Value::as_str) {
            Some(e) if !e.is_empty() => base64::engine::general_purpose::STANDARD.decode(e).ok()?,
            _ => Vec::new(),
        },
    };
    Some(BackendResponse {
        status,
        headers,
        body,
    })
}

/// A reduced `http.DetectContentType`: HTML, XML, plain text or binary.
fn sniff(body: &[u8]) -> &'static str {
    let start = body
        .iter()
        .position(|b| !b" \t\r\n\x0c".contains(b))
        .unwrap_or(body.len());
    let head = &body[start..];
    const HTML: [&[u8]; 17] = [
        b"<!DOCTYPE HTML",
        b"<HTML",
        b"<HEAD",
        b"<SCRIPT",
        b"<IFRAME",
        b"<H1",
        b"<DIV",
        b"<FONT",
        b"<TABLE",
        b"<A",
        b"<STYLE",
        b"<TITLE",
        b"<B",
        b"<BODY",
        b"<BR",
        b"<P",
        b"<!--",
    ];
    for sig in HTML {
        if head.len() > sig.len()
            && head[..sig.len()].eq_ignore_ascii_case(sig)
            && matches!(head[sig.len()], b' ' | b'>')
        {
            return "text/html; charset=utf-8";
        }
    }
    if head.starts_with(b"<?xml") {
        return "text/xml; charset=utf-8";
    }
    if head.starts_with(b"%PDF-") {
        return "application/pdf";
    }
    let binary = body
        .iter()
        .any(|&b| b < 0x20 && !b"\t\n\r\x0c\x1b".contains(&b));
    if binary {
        "application/octet-stream"
    } else {
        "text/plain; charset=utf-8"
    }
}

/// Loads the CRS at `crs_dir` in test mode, every test under `tests_dir`,
/// and runs the tests `filter` wants in-process with `overrides` applied.
pub fn run_in_process(
    crs_dir: &Path,
    tests_dir: &Path,
    overrides: Option<&OverridesFile>,
    filter: &Filter,
) -> Result<Summary, Error> {
    let target = InProcess::crs(crs_dir)?;
    let tests = load::load_tests(tests_dir)?;
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    Ok(run(&target, &tests, overrides, filter, threads))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(uri: &str, body: &str) -> ParsedRequest {
        http1::parse(
            format!(
                "POST {uri} HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
    }

    #[test]
    fn albedo_reflects_and_sniffs() {
        let r = albedo(&post(
            "/reflect",
            r#"{"status":201,"headers":{"X-A":"1"},"body":"<html>hi"}"#,
        ));
        assert_eq!(r.status, 201);
        assert_eq!(
            r.headers,
            [
                ("X-A".to_owned(), "1".to_owned()),
                ("Content-Type".into(), "text/html; charset=utf-8".into()),
                ("Content-Length".into(), "8".into())
            ]
        );
        let r = albedo(&post("/reflect", r#"{"encodedBody":"aGk="}"#));
        assert_eq!((r.status, &r.body[..]), (200, &b"hi"[..]));
        assert_eq!(albedo(&post("/reflect", "nope")).status, 400);
        let r = albedo(&post("/other", r#"{"status":500}"#));
        assert_eq!((r.status, r.body.len()), (200, 0));
    }

    #[test]
    fn engine_rules_fire_and_are_logged_like_modsecurity() {
        let rules = r#"
SecRuleEngine DetectionOnly
SecDefaultAction "phase:1,log,auditlog,pass"
SecRule ARGS:q "@contains evil" "id:10,phase:1,deny,msg:'evil in %{MATCHED_VAR_NAME}',logdata:'%{MATCHED_VAR}'"
SecRule ARGS:q "@contains evil" "id:11,phase:1,pass,nolog"
"#;
        let rs = Arc::new(Ruleset::from_str(rules, "t.conf", &FsLoader).unwrap());
        let t = InProcess::new(rs);
        let input = crate::model::Input::default();
        let send = |raw: &[u8]| {
            t.send(&StageRequest {
                raw,
                input: &input,
                test_id: "1-1",
                stage: 0,
            })
            .unwrap()
        };
        let r = send(b"GET /?q=evil HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(r.status, 200, "DetectionOnly: the backend answers");
        assert_eq!(r.fired, [10]);
        assert!(
            r.log[0].contains("[id \"10\"] [msg \"evil in ARGS:q\"] [data \"evil\"]"),
            "{}",
            r.log[0]
        );
        let r = send(b"GET /?q=%22evil%0a HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(
            r.log[0].contains("[data \"\\\"evil\\x0a\"]"),
            "{}",
            r.log[0]
        );
        let r = send(b"GET /?q=evil HTTP/3.0\r\n\r\n");
        assert_eq!((r.status, r.fired.len()), (400, 0));
        assert!(r.answered_by_http_layer.is_some());
    }
}
