//! Invariants checked on every input by the engine fuzz targets
//! (`seclang_parser`, `transformations`, `transaction`) and by the corpus
//! replay test (`tests/fuzz_corpus.rs`): hostile rules text and hostile
//! requests never panic, and results are deterministic.
#![allow(dead_code)]

use std::borrow::Cow;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use seclang::{FileLoader, Ruleset, RulesetBuilder, Transaction, TransactionInput};

/// Serves a few in-memory files (for `Include` and `@pmFromFile`) and
/// nothing from the real filesystem, so a fuzzed `Include /etc/...` cannot
/// read the machine's files or depend on them.
#[derive(Debug, Default)]
pub struct MemLoader;

/// Files the [`MemLoader`] knows, relative names as rules use them.
const MEM_FILES: &[(&str, &[u8])] = &[
    (
        "scanners.data",
        b"# scanner user agents\nnikto\nsqlmap\nnessus\nmasscan\n",
    ),
    ("inc.conf", b"SecAction \"id:77,phase:1,pass,nolog\"\n"),
];

impl FileLoader for MemLoader {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        MEM_FILES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, data)| data.to_vec())
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "not in MemLoader"))
    }

    fn glob(&self, pattern: &Path) -> io::Result<Vec<PathBuf>> {
        Ok(vec![pattern.to_path_buf()])
    }
}

/// Arbitrary bytes as a rules file: parsing and compiling return `Ok` or
/// `Err`, never panic, and give the same answer twice.
pub fn seclang_parser(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let first = compile(&text);
    let second = compile(&text);
    assert_eq!(first, second, "parser is not deterministic");
}

/// `Ok(rule count)` or `Err(message)`.
fn compile(text: &str) -> Result<usize, String> {
    RulesetBuilder::new(&MemLoader)
        .add_str(text, "/fuzz/rules.conf")
        .and_then(|b| b.build())
        .map(|rs| rs.rule_count())
        .map_err(|e| e.to_string())
}

/// Every transformation on the input, alone and chained: no panic,
/// deterministic, and a `Borrowed` result is the input itself.
pub fn transformations(data: &[u8]) {
    let all = seclang::transformations::all();
    for t in all {
        let out = (t.apply)(data);
        assert_eq!(out, (t.apply)(data), "t:{} is not deterministic", t.name);
        if let Cow::Borrowed(b) = &out {
            assert_eq!(*b, data, "t:{} borrowed something else", t.name);
        }
        // Applying again to the output exercises inputs the transformation
        // itself produces (decoders on decoded data).
        let _ = (t.apply)(&out);
    }
    // A CRS-style chain, and everything at once.
    let chain: Vec<_> = [
        "utf8toUnicode",
        "urlDecodeUni",
        "htmlEntityDecode",
        "jsDecode",
        "cssDecode",
        "removeNulls",
        "lowercase",
        "compressWhitespace",
    ]
    .iter()
    .filter_map(|n| seclang::transformations::lookup(n))
    .collect();
    assert_eq!(
        seclang::transformations::apply_chain(&chain, data),
        seclang::transformations::apply_chain(&chain, data)
    );
    let _ = seclang::transformations::apply_chain(all, data);
}

/// A small CRS-like rule set: body processors selected by Content-Type,
/// anomaly scoring, libinjection, `@rx` with transformation chains,
/// `@pmFromFile`, chains, skipAfter, `ctl`, macros, response rules.
pub const TRANSACTION_RULES: &str = r#"
SecRuleEngine On
SecRequestBodyAccess On
SecRequestBodyLimit 65536
SecRequestBodyNoFilesLimit 32768
SecRequestBodyLimitAction ProcessPartial
SecResponseBodyAccess On
SecResponseBodyMimeType text/plain text/html
SecResponseBodyLimit 65536
SecArgumentsLimit 200
SecDefaultAction "phase:1,log,auditlog,pass"
SecDefaultAction "phase:2,log,auditlog,pass"
SecRule REQUEST_HEADERS:Content-Type "@rx ^application/json" \
    "id:200001,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=JSON"
SecRule REQUEST_HEADERS:Content-Type "@rx (?:application(?:/soap\+|/)|text/)xml" \
    "id:200000,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=XML"
SecAction "id:900990,phase:1,pass,nolog,setvar:tx.critical_anomaly_score=5,\
    setvar:tx.inbound_anomaly_score_threshold=5,setvar:tx.anomaly_score=0"
SecRule REQUEST_HEADERS:X-Skip "@streq 1" "id:901001,phase:1,pass,nolog,skipAfter:END-HEADERS"
SecRule REQUEST_METHOD "!@within GET HEAD POST OPTIONS PUT" \
    "id:911100,phase:1,block,t:none,msg:'Method is not allowed by policy',\
    logdata:'%{MATCHED_VAR}',setvar:'tx.anomaly_score=+%{tx.critical_anomaly_score}'"
SecRule REQUEST_HEADERS:User-Agent "@pmFromFile scanners.data" \
    "id:913100,phase:1,block,t:none,t:lowercase,capture,msg:'Scanner %{TX.0}',\
    setvar:'tx.anomaly_score=+%{tx.critical_anomaly_score}'"
SecRule &REQUEST_HEADERS:Host "@eq 0" "id:920280,phase:1,block,t:none,\
    setvar:'tx.anomaly_score=+%{tx.critical_anomaly_score}'"
SecMarker END-HEADERS
SecRule REQBODY_ERROR "!@eq 0" "id:200002,phase:2,t:none,log,deny,status:400,\
    msg:'Failed to parse request body: %{REQBODY_ERROR_MSG}'"
SecRule MULTIPART_STRICT_ERROR "!@eq 0" "id:200003,phase:2,t:none,log,deny,status:400"
SecRule REQUEST_COOKIES|!REQUEST_COOKIES:/__utm/|ARGS_NAMES|ARGS|XML:/* "@detectSQLi" \
    "id:942100,phase:2,block,t:none,t:utf8toUnicode,t:urlDecodeUni,t:removeNulls,\
    multiMatch,capture,msg:'SQLi %{TX.0}',logdata:'%{MATCHED_VAR_NAME}=%{MATCHED_VAR}',\
    setvar:'tx.anomaly_score=+%{tx.critical_anomaly_score}'"
SecRule REQUEST_COOKIES|ARGS_NAMES|ARGS|REQUEST_FILENAME "@detectXSS" \
    "id:941100,phase:2,block,t:none,t:utf8toUnicode,t:urlDecodeUni,t:htmlEntityDecode,\
    t:jsDecode,t:cssDecode,t:removeNulls,setvar:'tx.anomaly_score=+%{tx.critical_anomaly_score}'"
SecRule REQUEST_URI_RAW|ARGS|REQUEST_HEADERS|!REQUEST_HEADERS:Referer|FILES|XML:/* \
    "@rx (?:^|[\\/])\.\.(?:[\\/]|$)" "id:930100,phase:2,block,t:none,t:utf8toUnicode,\
    t:urlDecodeUni,t:normalizePathWin,t:cmdLine,setvar:'tx.anomaly_score=+%{tx.critical_anomaly_score}'"
SecRule ARGS "@rx (?i)<script[^>]*>[\s\S]*?" "id:941110,phase:2,block,capture,\
    t:none,t:base64DecodeExt,t:hexDecode,t:sqlHexDecode,t:replaceComments,t:escapeSeqDecode,\
    setvar:'tx.anomaly_score=+%{tx.critical_anomaly_score}',setvar:'tx.%{rule.id}-%{MATCHED_VAR_NAME}=%{TX.0}'"
SecRule &ARGS "@gt 20" "id:920380,phase:2,block,chain"
    SecRule ARGS_COMBINED_SIZE "@gt 1000" "setvar:'tx.anomaly_score=+%{tx.critical_anomaly_score}'"
SecRule FILES_NAMES|FILES "@rx \.(?:php\d*|phtml|jsp)\.*$" "id:933110,phase:2,block,\
    t:none,t:lowercase,setvar:'tx.anomaly_score=+%{tx.critical_anomaly_score}'"
SecRule ARGS:/^json\./ "@pm eval exec system" "id:934100,phase:2,pass,t:none,t:length,\
    ctl:ruleRemoveById=941110,setvar:tx.json_seen=+1"
SecRule REQUEST_BODY|ARGS_GET "@contains ;" "id:921110,phase:2,pass,t:none,t:base64Decode,\
    t:md5,t:hexEncode,t:sha1,t:trim,setvar:tx.misc=%{MATCHED_VAR}"
SecRule TX:anomaly_score "@ge %{tx.inbound_anomaly_score_threshold}" \
    "id:949110,phase:2,deny,status:403,t:none,\
    msg:'Inbound Anomaly Score Exceeded (Total Score: %{TX.ANOMALY_SCORE})'"
SecRule RESPONSE_BODY "@pm sql syntax ora-01756 <?php" "id:951100,phase:4,block,t:none,\
    t:lowercase,setvar:'tx.outbound=+5'"
SecRule TX:outbound "@ge 5" "id:959100,phase:4,deny,status:403"
SecAction "id:980170,phase:5,pass,nolog,setvar:tx.done=1"
"#;

fn transaction_rules() -> &'static Arc<Ruleset> {
    static RULES: OnceLock<Arc<Ruleset>> = OnceLock::new();
    RULES.get_or_init(|| {
        match RulesetBuilder::new(&MemLoader)
            .add_str(TRANSACTION_RULES, "/fuzz/rules.conf")
            .and_then(|b| b.build())
        {
            Ok(rs) => Arc::new(rs),
            // The fixed rule set is part of the harness, not fuzzed input.
            Err(e) => panic!("fuzz rule set does not compile: {e}"),
        }
    })
}

/// The request parts of a fuzz input.
#[derive(Debug)]
pub struct Request<'a> {
    pub method: Cow<'a, str>,
    pub uri: Cow<'a, str>,
    pub protocol: Cow<'a, str>,
    /// Raw bytes: header values need not be UTF-8.
    pub headers: Vec<(&'a [u8], &'a [u8])>,
    pub body: &'a [u8],
}

/// Splits an input like an HTTP/1 request: the first line is the request
/// line (method, URI, protocol separated by spaces), header lines
/// `name: value` follow until an empty line, and the rest is the body.
/// Anything malformed is still fed (missing parts are empty).
pub fn split_request(data: &[u8]) -> Request<'_> {
    let mut lines = Vec::new();
    let mut rest = data;
    let body = loop {
        match rest.iter().position(|&b| b == b'\n') {
            Some(i) => {
                let line = rest[..i].strip_suffix(b"\r").unwrap_or(&rest[..i]);
                rest = &rest[i + 1..];
                if line.is_empty() && !lines.is_empty() {
                    break rest;
                }
                lines.push(line);
            }
            None => {
                if !rest.is_empty() {
                    lines.push(rest);
                }
                break &[][..];
            }
        }
    };
    let mut lines = lines.into_iter();
    let request_line = lines.next().unwrap_or(b"");
    let mut parts = request_line.splitn(3, |&b| b == b' ');
    let mut next = || String::from_utf8_lossy(parts.next().unwrap_or(b""));
    let (method, uri, protocol) = (next(), next(), next());
    let headers = lines
        .map(|l| {
            let (n, v) = match l.iter().position(|&b| b == b':') {
                Some(i) => (&l[..i], &l[i + 1..]),
                None => (l, &[][..]),
            };
            let v = v.strip_prefix(b" ").unwrap_or(v);
            (n, v)
        })
        .collect();
    Request {
        method,
        uri,
        protocol,
        headers,
        body,
    }
}

/// Outcome of one exchange, for the determinism check.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    pub status: Option<u16>,
    pub rule_id: Option<u64>,
    pub matched: Vec<u64>,
    pub anomaly_score: Option<Vec<u8>>,
}

/// Runs a request (and a fixed response) through phases 1-5.
pub fn exchange(rs: &Arc<Ruleset>, req: &Request<'_>) -> Transaction {
    let mut tx = rs.transaction(TransactionInput {
        client_ip: "192.0.2.1".into(),
        client_port: 40000,
        server_ip: "192.0.2.2".into(),
        server_port: 80,
        server_name: "fuzz.example".into(),
        unique_id: "fuzz".into(),
        unix_time_micros: 1_700_000_000_000_000,
        env: Vec::new(),
    });
    tx.request_line(
        req.method.as_bytes(),
        req.uri.as_bytes(),
        req.protocol.as_bytes(),
    );
    for &(n, v) in &req.headers {
        tx.request_header(n, v);
    }
    let stopped = tx.process_request_headers().is_some()
        || (!req.body.is_empty() && tx.append_request_body(req.body).is_some())
        || tx.process_request_body().is_some();
    if !stopped {
        tx.response_status(200, "HTTP/1.1");
        tx.response_header("Content-Type", "text/html");
        if tx.process_response_headers().is_none() {
            if tx.wants_response_body() {
                tx.append_response_body(b"<html><body>ok</body></html>");
            }
            tx.process_response_body();
        }
    }
    tx.process_logging();
    tx
}

/// The input as a request through [`TRANSACTION_RULES`]: no panic, the
/// same outcome twice, interventions only with the statuses the rules use,
/// and bounded records.
pub fn transaction(data: &[u8]) {
    let rs = transaction_rules();
    let req = split_request(data);
    let outcome = |tx: &Transaction| Outcome {
        status: tx.intervention().map(|i| i.status),
        rule_id: tx.intervention().map(|i| i.rule_id),
        matched: tx.matched_rules().iter().map(|m| m.id).collect(),
        anomaly_score: tx.tx("anomaly_score").map(<[u8]>::to_vec),
    };
    let first = outcome(&exchange(rs, &req));
    let second = outcome(&exchange(rs, &req));
    assert_eq!(first, second, "transaction is not deterministic");
    if let Some(status) = first.status {
        assert!(
            [400, 403, 413].contains(&status),
            "unexpected status {status}"
        );
    }
    assert!(first.matched.len() <= seclang::transaction::MAX_MATCHED_RULES);
}

/// Where the shared third-party data (`crs-v4/`) lives: `$PALISADE_SHARED`,
/// else the `shared/` directory next to the repository (found from this
/// crate's directory upwards, as the fuzz crate sits deeper than seclang).
pub fn shared_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("PALISADE_SHARED") {
        return PathBuf::from(p);
    }
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .map(|a| a.join("shared"))
        .find(|s| s.join("crs-v4").is_dir())
        .unwrap_or_else(|| here.join("../../../shared"))
}

/// The CRS at paranoia level 4 in DetectionOnly (every rule of every phase
/// runs, nothing stops early), with or without prefilters.
fn crs_rules(prefilters: bool) -> Arc<Ruleset> {
    const SETUP: &str = r#"
SecRuleEngine DetectionOnly
SecRequestBodyAccess On
SecRequestBodyLimit 65536
SecRequestBodyNoFilesLimit 65536
SecRequestBodyLimitAction ProcessPartial
SecResponseBodyAccess On
SecResponseBodyMimeType text/plain text/html
SecRule REQUEST_HEADERS:Content-Type "@rx ^application/json" \
    "id:200001,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=JSON"
SecRule REQUEST_HEADERS:Content-Type "@rx (?:application(?:/soap\+|/)|text/)xml" \
    "id:200000,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=XML"
"#;
    const LEVEL: &str = r#"
SecAction "id:900001,phase:1,pass,nolog,setvar:tx.blocking_paranoia_level=4,\
    setvar:tx.detection_paranoia_level=4"
"#;
    let crs = shared_dir().join("crs-v4");
    let built = RulesetBuilder::new(&seclang::FsLoader)
        .prefilters(prefilters)
        .add_str(SETUP, "/fuzz/setup.conf")
        .and_then(|b| b.add_file(crs.join("crs-setup.conf.example")))
        .and_then(|b| b.add_str(LEVEL, "/fuzz/level.conf"))
        .and_then(|b| b.add_file(crs.join("rules/*.conf")))
        .and_then(|b| b.build());
    match built {
        Ok(rs) => Arc::new(rs),
        // Fixed third-party rules, not fuzzed input.
        Err(e) => panic!("CRS does not load from {}: {e}", crs.display()),
    }
}

/// [`TRANSACTION_RULES`] with or without prefilters.
fn small_rules(prefilters: bool) -> Arc<Ruleset> {
    match RulesetBuilder::new(&MemLoader)
        .prefilters(prefilters)
        .add_str(TRANSACTION_RULES, "/fuzz/rules.conf")
        .and_then(|b| b.build())
    {
        Ok(rs) => Arc::new(rs),
        Err(e) => panic!("fuzz rule set does not compile: {e}"),
    }
}

/// Everything detection decides for one exchange: the intervention, each
/// matched rule with its matched variable and value, every TX variable.
#[derive(Debug, PartialEq, Eq)]
pub struct Answer {
    pub intervention: Option<(u16, u64)>,
    pub matched: Vec<(u64, String, Vec<u8>, String)>,
    pub tx: Vec<(Vec<u8>, Vec<u8>)>,
}

pub fn answer(rs: &Arc<Ruleset>, req: &Request<'_>) -> Answer {
    let tx = exchange(rs, req);
    Answer {
        intervention: tx.intervention().map(|i| (i.status, i.rule_id)),
        matched: tx
            .matched_rules()
            .iter()
            .map(|m| {
                (
                    m.id,
                    m.matched_var_name.clone(),
                    m.matched_value.clone(),
                    m.logdata.clone(),
                )
            })
            .collect(),
        tx: tx
            .tx_vars()
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect(),
    }
}

/// The input as a request through the OWASP CRS (paranoia level 4) and
/// through [`TRANSACTION_RULES`], each with prefilters on and off: the
/// answers must be identical (prefilters only skip work that cannot
/// match).
pub fn prefilter_differential(data: &[u8]) {
    static SETS: OnceLock<[Arc<Ruleset>; 4]> = OnceLock::new();
    let [crs_on, crs_off, small_on, small_off] = SETS.get_or_init(|| {
        [
            crs_rules(true),
            crs_rules(false),
            small_rules(true),
            small_rules(false),
        ]
    });
    let req = split_request(data);
    assert_eq!(
        answer(crs_on, &req),
        answer(crs_off, &req),
        "CRS: prefilters changed the answer"
    );
    assert_eq!(
        answer(small_on, &req),
        answer(small_off, &req),
        "small rule set: prefilters changed the answer"
    );
}
