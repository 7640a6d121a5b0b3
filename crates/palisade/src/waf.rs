//! `palisade waf eval` and `palisade waf lint`: the WAF engine from the
//! command line, on rule files and raw HTTP messages.
//!
//! ```text
//!  --rules PATH...  ──► RulesetBuilder (files, directories of *.conf)
//!  --request FILE   ──► lenient HTTP/1 parse ──► Transaction phases 1-2
//!  --response FILE  ──► status line, headers, body ──► phases 3-4, then 5
//!                                                    ──► JSON on stdout
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use seclang::operators::{self, CompileContext};
use seclang::parser::lexer;
use seclang::{FsLoader, Intervention, Ruleset, RulesetBuilder, Transaction, TransactionInput};
use serde_json::{json, Value};

/// Largest request or response file read (default 64 MiB): `waf eval` is
/// for single messages, and a mistaken path to a huge file should fail fast.
pub const MAX_MESSAGE_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// Errors of the `waf` subcommands; the binary maps them to exit codes.
#[derive(Debug)]
pub enum WafError {
    /// The rules do not load (exit 2, like a config error).
    Rules(String),
    /// A message file is missing, unreadable or too large (exit 1).
    Input(String),
}

impl std::fmt::Display for WafError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WafError::Rules(m) | WafError::Input(m) => f.write_str(m),
        }
    }
}

/// Expands `--rules` arguments: a directory stands for its `*.conf` files in
/// name order (how CRS's `rules/` directory is meant to be loaded).
pub fn rule_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, WafError> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            let entries = std::fs::read_dir(path)
                .map_err(|e| WafError::Rules(format!("{}: {e}", path.display())))?;
            let mut confs: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "conf") && p.is_file())
                .collect();
            confs.sort();
            if confs.is_empty() {
                return Err(WafError::Rules(format!(
                    "{}: directory holds no .conf file",
                    path.display()
                )));
            }
            out.extend(confs);
        } else {
            out.push(path.clone());
        }
    }
    if out.is_empty() {
        return Err(WafError::Rules("no rules given (--rules PATH)".into()));
    }
    Ok(out)
}

/// Compiles the rules.
pub fn load(paths: &[PathBuf]) -> Result<Arc<Ruleset>, WafError> {
    let mut builder = RulesetBuilder::new(&FsLoader);
    for file in rule_files(paths)? {
        builder = builder
            .add_file(&file)
            .map_err(|e| WafError::Rules(e.to_string()))?;
    }
    builder
        .build()
        .map(Arc::new)
        .map_err(|e| WafError::Rules(e.to_string()))
}

/// `waf lint`: every directive of every file is checked on its own, so one
/// mistake does not hide the next; then the whole set is compiled (regexes,
/// data files, removals, markers). Returns the problems, one line each.
pub fn lint(paths: &[PathBuf]) -> Result<(usize, Vec<String>), WafError> {
    let files = rule_files(paths)?;
    let mut problems = Vec::new();
    let mut directives = 0;
    for file in &files {
        let text = match std::fs::read(file) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(t) => t,
                Err(_) => {
                    problems.push(format!("{}: not UTF-8 text", file.display()));
                    continue;
                }
            },
            Err(e) => {
                problems.push(format!("{}: {e}", file.display()));
                continue;
            }
        };
        match lexer::lex(&text) {
            Err((line, message)) => problems.push(format!("{}:{line}: {message}", file.display())),
            Ok(raw) => {
                let base_dir = file.parent().unwrap_or(Path::new("."));
                for d in raw {
                    directives += 1;
                    if let Err(message) = seclang::parser::directive(&d.name, &d.args) {
                        problems.push(format!("{}:{}: {message}", file.display(), d.line));
                        continue;
                    }
                    // Compile each rule's operator on its own (regex syntax,
                    // data files), so a bad pattern does not hide the next.
                    if d.name.eq_ignore_ascii_case("SecRule") {
                        if let Some(op) = d.args.get(1) {
                            let ctx = CompileContext {
                                files: &FsLoader,
                                base_dir,
                            };
                            let compiled = seclang::parser::parse_operator(op)
                                .and_then(|o| operators::compile(&o.name, &o.argument, &ctx));
                            if let Err(message) = compiled {
                                problems.push(format!("{}:{}: {message}", file.display(), d.line));
                            }
                        }
                    }
                }
            }
        }
    }
    if problems.is_empty() {
        if let Err(e) = load(paths) {
            problems.push(e.to_string());
        }
    }
    // One line per problem: regex errors span several lines with a caret.
    let problems = problems
        .into_iter()
        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    Ok((directives, problems))
}

fn read_message(path: &Path) -> Result<Vec<u8>, WafError> {
    let meta =
        std::fs::metadata(path).map_err(|e| WafError::Input(format!("{}: {e}", path.display())))?;
    if meta.len() > MAX_MESSAGE_FILE_BYTES {
        return Err(WafError::Input(format!(
            "{}: {} bytes, more than the {MAX_MESSAGE_FILE_BYTES} accepted",
            path.display(),
            meta.len()
        )));
    }
    std::fs::read(path).map_err(|e| WafError::Input(format!("{}: {e}", path.display())))
}

/// A raw HTTP/1 response split into status, headers and body.
struct RawResponse {
    status: u16,
    protocol: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn parse_response(raw: &[u8]) -> Result<RawResponse, String> {
    let head_end = find(raw, b"\r\n\r\n")
        .map(|i| (i, i + 4))
        .or_else(|| find(raw, b"\n\n").map(|i| (i, i + 2)))
        .unwrap_or((raw.len(), raw.len()));
    let head = String::from_utf8_lossy(&raw[..head_end.0]);
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let protocol = parts.next().unwrap_or_default().to_string();
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|s| (100..=999).contains(s))
        .ok_or_else(|| format!("not an HTTP status line: {status_line:?}"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok(RawResponse {
        status,
        protocol,
        headers,
        body: raw[head_end.1..].to_vec(),
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn intervention_json(i: &Intervention) -> Value {
    json!({
        "status": i.status,
        "rule_id": i.rule_id,
        "message": i.message,
        "action": format!("{:?}", i.action).to_lowercase(),
        "phase": i.phase,
        "redirect_url": i.redirect_url,
    })
}

fn feed_response(tx: &mut Transaction, resp: &RawResponse) -> Option<Intervention> {
    tx.response_status(resp.status, &resp.protocol);
    for (n, v) in &resp.headers {
        tx.response_header(n, v);
    }
    let mut decided = tx.process_response_headers();
    if decided.is_none() && tx.wants_response_body() {
        decided = tx.append_response_body(&resp.body);
        if decided.is_none() {
            decided = tx.process_response_body();
        }
    }
    decided
}

/// `waf eval`: runs one request (and optionally its response) through the
/// rules and describes what happened as JSON.
pub fn eval(rules: &[PathBuf], request: &Path, response: Option<&Path>) -> Result<Value, WafError> {
    let ruleset = load(rules)?;
    let raw = read_message(request)?;
    let response = match response {
        Some(path) => Some(
            parse_response(&read_message(path)?)
                .map_err(|e| WafError::Input(format!("{}: {e}", path.display())))?,
        ),
        None => None,
    };
    let req = ftw::http1::parse(&raw);
    let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let mut tx = ruleset.transaction(TransactionInput {
        client_ip: "127.0.0.1".into(),
        client_port: 40000,
        server_ip: "127.0.0.1".into(),
        server_port: 80,
        server_name: req
            .header("host")
            .map(lossy)
            .unwrap_or_else(|| "localhost".into()),
        unique_id: "waf-eval".into(),
        unix_time_micros: now,
        env: Vec::new(),
    });
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
    if decided.is_none() {
        if let Some(resp) = &response {
            decided = feed_response(&mut tx, resp);
        }
    }
    tx.process_logging();

    let matched: Vec<Value> = tx
        .matched_rules()
        .iter()
        .filter(|m| m.log)
        .map(|m| {
            json!({
                "id": m.id,
                "phase": m.phase,
                "message": m.message,
                "data": m.logdata,
                "severity": m.severity,
                "tags": &m.tags[..],
                "file": m.file.display().to_string(),
                "line": m.line,
                "matched_var": m.matched_var_name,
                "matched_value": String::from_utf8_lossy(&m.matched_value),
                "disruptive": m.disruptive,
            })
        })
        .collect();
    let scores: serde_json::Map<String, Value> = tx
        .tx_vars()
        .filter(|(k, _)| {
            // The scores, not CRS's per-severity weights (critical_anomaly_score…).
            k.ends_with(b"anomaly_score")
                && !matches!(
                    *k,
                    b"critical_anomaly_score"
                        | b"error_anomaly_score"
                        | b"warning_anomaly_score"
                        | b"notice_anomaly_score"
                )
        })
        .map(|(k, v)| {
            let value = std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
                .map_or_else(|| Value::String(lossy(v)), Value::from);
            (lossy(k), value)
        })
        .collect();
    Ok(json!({
        "request": {
            "method": lossy(&req.method),
            "uri": lossy(&req.uri),
            "http_layer_rejection": req.rejected.map(|(status, why)| json!({"status": status, "reason": why})),
        },
        "engine_mode": format!("{:?}", tx.engine_mode()),
        "intervention": decided.as_ref().map(intervention_json),
        "anomaly_scores": scores,
        "matched_rules": matched,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_parsing() {
        let r =
            parse_response(b"HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\n\r\n<b>x</b>")
                .unwrap();
        assert_eq!(r.status, 404);
        assert_eq!(r.headers[0], ("Content-Type".into(), "text/html".into()));
        assert_eq!(r.body, b"<b>x</b>");
        assert!(parse_response(b"garbage").is_err());
        assert!(parse_response(b"HTTP/1.1 99999 X\r\n\r\n").is_err());
    }
}
