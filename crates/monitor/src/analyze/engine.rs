//! The WAF side of log analysis: which rules, and one request line through
//! them.
//!
//! ```text
//! Entry ─► Transaction::reset ─► request line + Host/User-Agent/Referer
//!        ─► phase 1 ─► phase 2 (no body: logs hold none) ─► Verdict
//! ```
//!
//! Only the request phases run: a log has no response headers or bodies,
//! and the CRS response rules inspect those. The engine runs in
//! DetectionOnly, so every rule is evaluated and a request counts as an
//! attack when a rule *would* have blocked it (CRS 949110 or the built-in
//! 1900900/1900901: the inbound anomaly score reached the threshold).
//!
//! Benign logs repeat themselves (the same pages, assets and browsers), so
//! verdicts are cached by the exact inputs the rules see. The cache is
//! exact for CRS and the built-in rules, which do not look at the client
//! address (CRS only exempts loopback clients in 905100/905110: loopback is
//! part of the key) nor at the time; `--no-cache` turns it off for rule
//! files that do.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use seclang::{FsLoader, Ruleset, RulesetBuilder, Transaction, TransactionInput};

use super::parse::Entry;
use crate::Error;

/// Id of the `SecAction` carrying the CRS paranoia level and threshold
/// chosen on the command line (outside CRS's and the built-in ranges).
pub const CRS_SETTINGS_RULE_ID: u64 = 9_990_011;

/// Id of the `SecAction` carrying the built-in rules' threshold.
pub const BUILTIN_SETTINGS_RULE_ID: u64 = 9_990_012;

/// Verdicts cached per worker thread (default 65,536, about 20 MB with
/// [`MAX_CACHED_KEY_BYTES`] keys): bounds memory on a log of all-distinct
/// requests, where the cache is simply cleared when full.
pub const VERDICT_CACHE_ENTRIES: usize = 65_536;

/// Longest request (method, target, headers) whose verdict is cached
/// (default 2 KiB): long, unique targets (attacks, tracking parameters)
/// rarely repeat and would crowd the cache.
pub const MAX_CACHED_KEY_BYTES: usize = 2048;

/// Rule ids kept per verdict (default 8): bounds a verdict's size when a
/// payload trips dozens of rules.
pub const MAX_RULES_PER_VERDICT: usize = 8;

/// Host header given to the rules when the log has none (combined logs do
/// not record it; CRS would otherwise flag every line as missing a Host).
pub const DEFAULT_HOST: &str = "localhost";

/// Attack categories, as reported. A verdict holds a bit mask over this
/// list (index = bit).
pub const CATEGORIES: &[&str] = &[
    "sqli",
    "xss",
    "rce",
    "traversal",
    "rfi",
    "php",
    "java",
    "ssrf",
    "ssti",
    "injection",
    "scanner",
    "protocol",
    "disclosure",
    "fixation",
    "generic",
];

/// The category of a rule tag (CRS `attack-*` or `palisade-builtin/*`).
fn category_of(tag: &str) -> Option<usize> {
    let name = match tag {
        "attack-sqli" | "palisade-builtin/sqli" => "sqli",
        "attack-xss" | "palisade-builtin/xss" => "xss",
        "attack-rce" | "palisade-builtin/rce" => "rce",
        "attack-lfi" | "palisade-builtin/traversal" => "traversal",
        "attack-rfi" => "rfi",
        "attack-injection-php" => "php",
        "attack-injection-java" => "java",
        "attack-ssrf" => "ssrf",
        "attack-ssti" => "ssti",
        "attack-injection-generic" => "injection",
        "attack-reputation-scanner" | "palisade-builtin/scanner" => "scanner",
        "attack-protocol"
        | "attack-multipart-header"
        | "attack-deprecated-header"
        | "palisade-builtin/protocol" => "protocol",
        "attack-disclosure" => "disclosure",
        "attack-fixation" => "fixation",
        "attack-generic" => "generic",
        _ => return None,
    };
    CATEGORIES.iter().position(|c| *c == name)
}

/// Names of the categories set in `mask`.
pub fn category_names(mask: u32) -> impl Iterator<Item = &'static str> {
    CATEGORIES
        .iter()
        .enumerate()
        .filter(move |(i, _)| mask & (1 << i) != 0)
        .map(|(_, c)| *c)
}

/// Which rules to load.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RuleChoice {
    /// The CRS `rules::crs::locate` finds (`crs` dir, `<data_dir>/crs/current`,
    /// Debian's package), else the built-in rules.
    #[default]
    Auto,
    /// The CRS only (an error when none is found).
    Crs,
    /// The built-in rules.
    Builtin,
}

/// Rule settings.
#[derive(Debug, Clone)]
pub struct RuleOptions {
    /// Which rules.
    pub choice: RuleChoice,
    /// A CRS directory (holding `rules/`); implies the CRS.
    pub crs_dir: Option<PathBuf>,
    /// Data directory searched for `crs/current`.
    pub data_dir: PathBuf,
    /// CRS paranoia level 1-4 (default 1).
    pub paranoia_level: u8,
    /// Inbound anomaly score at which a request counts as an attack
    /// (default 5: one critical finding, CRS's and the built-in default).
    pub threshold: u32,
}

impl Default for RuleOptions {
    fn default() -> Self {
        RuleOptions {
            choice: RuleChoice::Auto,
            crs_dir: None,
            data_dir: PathBuf::from("data"),
            paranoia_level: 1,
            threshold: 5,
        }
    }
}

/// Loaded rules and a description of them.
#[derive(Debug, Clone)]
pub struct Rules {
    /// The compiled rules.
    pub ruleset: Arc<Ruleset>,
    /// `OWASP CRS 4.28.0 (/path)` or `built-in rules`.
    pub description: String,
}

/// Loads the rules `opts` names.
pub fn load_rules(opts: &RuleOptions) -> Result<Rules, Error> {
    if !(1..=4).contains(&opts.paranoia_level) {
        return Err(Error::Rules(format!(
            "paranoia level {}: expected 1 to 4",
            opts.paranoia_level
        )));
    }
    let loader = FsLoader;
    let b = RulesetBuilder::new(&loader);
    let e = |e: rules::Error| Error::Rules(e.to_string());
    let se = |e: seclang::Error| Error::Rules(e.to_string());
    let want_crs = opts.crs_dir.is_some() || opts.choice == RuleChoice::Crs;
    let crs = if opts.choice == RuleChoice::Builtin && opts.crs_dir.is_none() {
        None
    } else {
        rules::crs::locate(opts.crs_dir.as_deref(), &opts.data_dir)
    };
    let (mut b, description) = match crs {
        Some(install) => {
            let mut b = b;
            if let Some(setup) = install.setup_file() {
                b = b.add_file(setup).map_err(se)?;
            }
            let settings = format!(
                "SecAction \"id:{CRS_SETTINGS_RULE_ID},phase:1,pass,nolog,t:none,\
                 setvar:tx.blocking_paranoia_level={pl},\
                 setvar:tx.detection_paranoia_level={pl},\
                 setvar:tx.inbound_anomaly_score_threshold={th}\"\n",
                pl = opts.paranoia_level,
                th = opts.threshold,
            );
            b = b
                .add_str(&settings, "<logs analyze settings>")
                .map_err(se)?;
            let b = b
                .add_file(install.path.join("rules").join("*.conf"))
                .map_err(se)?;
            let version = install.version.as_deref().unwrap_or("unknown version");
            (
                b,
                format!(
                    "OWASP CRS {version} ({}), paranoia level {}",
                    install.path.display(),
                    opts.paranoia_level
                ),
            )
        }
        None if want_crs => {
            return Err(Error::Rules(match &opts.crs_dir {
                Some(d) => format!("{}: no CRS there (expected a rules/ directory)", d.display()),
                None => format!(
                    "no CRS found (looked in {} and {}): install one with `palisade crs install` or use --rules builtin",
                    opts.data_dir.join("crs").join(rules::crs::CURRENT).display(),
                    rules::crs::DEBIAN_DIR
                ),
            }))
        }
        None => {
            let settings = format!(
                "SecAction \"id:{BUILTIN_SETTINGS_RULE_ID},phase:1,pass,nolog,t:none,\
                 setvar:tx.palisade_inbound_threshold={}\"\n",
                opts.threshold
            );
            let b = b
                .add_str(&settings, "<logs analyze settings>")
                .map_err(se)?;
            (
                rules::builtin::add_to(b).map_err(e)?,
                "built-in rules".to_string(),
            )
        }
    };
    // Every rule evaluated, nothing interrupted; no bodies in a log.
    b = b
        .add_str(
            "SecRuleEngine DetectionOnly\nSecRequestBodyAccess Off\nSecResponseBodyAccess Off\n",
            "<logs analyze engine>",
        )
        .map_err(se)?;
    let ruleset = b.build().map_err(se)?;
    if ruleset.rule_count() == 0 {
        return Err(Error::Rules("the rules hold no rule".into()));
    }
    Ok(Rules {
        ruleset: Arc::new(ruleset),
        description,
    })
}

/// What the rules made of one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// A rule would have blocked it (the anomaly score reached the threshold).
    pub attack: bool,
    /// Categories of the rules that matched (bits over [`CATEGORIES`]).
    pub categories: u32,
    /// Ids of the logged rules that matched (at most
    /// [`MAX_RULES_PER_VERDICT`]), scoring rules first.
    pub rules: Vec<u64>,
    /// Inbound anomaly score.
    pub score: u32,
}

/// The `msg` of a rule, macros left as written (`%{TX.X}`): reports group
/// by rule, not by the values a match expanded.
pub fn rule_message(rs: &Ruleset, id: u64) -> String {
    let Some(msg) = rs.rule(id).and_then(|r| r.msg.as_ref()) else {
        return String::new();
    };
    let mut out = String::new();
    for part in msg.parts() {
        match part {
            seclang::macros::Part::Literal(l) => out.push_str(&String::from_utf8_lossy(l)),
            seclang::macros::Part::Var { collection, key } => {
                out.push_str("%{");
                out.push_str(collection);
                if let Some(k) = key {
                    out.push('.');
                    out.push_str(k);
                }
                out.push('}');
            }
        }
    }
    out
}

/// One worker's evaluator: a reused transaction and a verdict cache.
#[derive(Debug)]
pub struct Evaluator {
    ruleset: Arc<Ruleset>,
    tx: Option<Transaction>,
    cache: HashMap<Vec<u8>, Verdict>,
    use_cache: bool,
    key: Vec<u8>,
    /// Lines answered from the cache.
    pub cache_hits: u64,
    /// Lines evaluated by the engine.
    pub evaluated: u64,
}

/// Whether an address as logged is loopback (CRS exempts some loopback
/// requests, so the cache must tell them apart).
fn is_loopback(client: &str) -> bool {
    client
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

impl Evaluator {
    /// An evaluator over `ruleset`; `use_cache` false evaluates every line.
    pub fn new(ruleset: Arc<Ruleset>, use_cache: bool) -> Evaluator {
        Evaluator {
            ruleset,
            tx: None,
            cache: HashMap::new(),
            use_cache,
            key: Vec::new(),
            cache_hits: 0,
            evaluated: 0,
        }
    }

    /// The verdict on `e` (which must have a request line).
    pub fn evaluate(&mut self, e: &Entry<'_>) -> Verdict {
        let host: &[u8] = e.host.as_deref().unwrap_or(DEFAULT_HOST.as_bytes());
        let cacheable = self.use_cache && {
            self.key.clear();
            self.key.push(u8::from(is_loopback(&e.client)));
            for part in [
                &e.method[..],
                &e.uri[..],
                &e.protocol[..],
                host,
                e.referer.as_deref().unwrap_or(b"\0-"),
                e.user_agent.as_deref().unwrap_or(b"\0-"),
            ] {
                self.key
                    .extend_from_slice(&(part.len() as u32).to_le_bytes());
                self.key.extend_from_slice(part);
            }
            self.key.len() <= MAX_CACHED_KEY_BYTES
        };
        if cacheable {
            if let Some(v) = self.cache.get(&self.key) {
                self.cache_hits += 1;
                return v.clone();
            }
        }
        let v = self.run(e, host);
        self.evaluated += 1;
        if cacheable {
            if self.cache.len() >= VERDICT_CACHE_ENTRIES {
                self.cache.clear();
            }
            self.cache.insert(self.key.clone(), v.clone());
        }
        v
    }

    fn run(&mut self, e: &Entry<'_>, host: &[u8]) -> Verdict {
        let input = TransactionInput {
            client_ip: e.client.to_string(),
            client_port: 0,
            server_ip: "0.0.0.0".into(),
            server_port: 80,
            server_name: String::from_utf8_lossy(host).into_owned(),
            unique_id: String::new(),
            unix_time_micros: e.time.unwrap_or(0).saturating_mul(1_000_000),
            env: Vec::new(),
        };
        let tx = match &mut self.tx {
            Some(tx) => {
                tx.reset(input);
                tx
            }
            None => self.tx.insert(self.ruleset.transaction(input)),
        };
        tx.request_line(&e.method, &e.uri, &e.protocol);
        tx.request_header("Host", host);
        if let Some(ua) = &e.user_agent {
            tx.request_header("User-Agent", ua);
        }
        if let Some(r) = &e.referer {
            tx.request_header("Referer", r);
        }
        // Browsers and most clients send Accept; the log does not record it.
        tx.request_header("Accept", "*/*");
        let _ = tx.process_request_headers();
        let _ = tx.process_request_body();
        let mut v = Verdict::default();
        let mut others = Vec::new();
        for m in tx.matched_rules() {
            if m.would_disrupt {
                v.attack = true;
            }
            // The score-evaluation rules (CRS 949110, built-in 1900900)
            // say only "the score was reached": the findings are the rest.
            if !m.log
                || m.tags
                    .iter()
                    .any(|t| t == "anomaly-evaluation" || t == "palisade-builtin/evaluation")
            {
                continue;
            }
            let mut categorised = false;
            for t in m.tags.iter() {
                if let Some(c) = category_of(t) {
                    v.categories |= 1 << c;
                    categorised = true;
                }
            }
            if categorised {
                if v.rules.len() < MAX_RULES_PER_VERDICT && !v.rules.contains(&m.id) {
                    v.rules.push(m.id);
                }
            } else if others.len() < MAX_RULES_PER_VERDICT {
                others.push(m.id);
            }
        }
        for id in others {
            if v.rules.len() < MAX_RULES_PER_VERDICT && !v.rules.contains(&id) {
                v.rules.push(id);
            }
        }
        v.score = ["blocking_inbound_anomaly_score", "palisade_anomaly_score"]
            .iter()
            .find_map(|k| tx.tx(k))
            .and_then(|s| std::str::from_utf8(s).ok()?.parse::<i64>().ok())
            .map_or(0, |s| u32::try_from(s.max(0)).unwrap_or(u32::MAX));
        v
    }
}
