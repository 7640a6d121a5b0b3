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
//! verdicts are cached, in one cache all worker threads share, by the
//! exact inputs the rules read: the request (method, target, protocol,
//! Host, Referer, User-Agent) plus whatever client address or time
//! dependence [`KeyPlan`] finds in the rules (CRS reads the address only in
//! its loopback exemption, 905100/905110, so the key holds one bit for it;
//! rules that read the address otherwise, or the time, put it in the key).
//! `--no-cache` evaluates every line.

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

/// Memory of the shared verdict cache (default 64 MiB: keys plus a
/// [`CACHE_ENTRY_OVERHEAD`] per entry): bounds memory on a log of
/// all-distinct requests, where a full shard is simply cleared. A real
/// site's log repeats most of its requests well within this (about 150,000
/// typical 300-byte keys).
pub const VERDICT_CACHE_BYTES: usize = 64 << 20;

/// Bytes counted per cached verdict besides its key (map slot, `Arc`,
/// allocation headers), for [`VERDICT_CACHE_BYTES`].
pub const CACHE_ENTRY_OVERHEAD: usize = 128;

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

/// Shards of the shared verdict cache (fixed 64): worker threads rarely
/// wait for each other's lookups.
pub const CACHE_SHARDS: usize = 64;

/// Variables holding the time of the request: a rule reading one makes the
/// log line's time part of the cache key.
const TIME_VARS: &[&str] = &[
    "TIME",
    "TIME_DAY",
    "TIME_EPOCH",
    "TIME_HOUR",
    "TIME_MIN",
    "TIME_MON",
    "TIME_SEC",
    "TIME_WDAY",
    "TIME_YEAR",
];

/// Variables derived from the client address.
const CLIENT_VARS: &[&str] = &["REMOTE_ADDR", "REMOTE_HOST"];

/// An address or network of an `@ipMatch` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cidr {
    addr: std::net::IpAddr,
    bits: u8,
}

impl Cidr {
    fn parse(s: &str) -> Option<Cidr> {
        let s = s.trim();
        let (a, bits) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b.parse::<u8>().ok()?)),
            None => (s, None),
        };
        let addr: std::net::IpAddr = a.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bits = bits.unwrap_or(max);
        (bits <= max).then_some(Cidr { addr, bits })
    }

    fn contains(&self, ip: std::net::IpAddr) -> bool {
        fn masked(x: u128, bits: u8, width: u8) -> u128 {
            if bits == 0 {
                0
            } else {
                x >> (width - bits)
            }
        }
        match (self.addr, ip) {
            (std::net::IpAddr::V4(n), std::net::IpAddr::V4(a)) => {
                masked(u32::from(n).into(), self.bits, 32)
                    == masked(u32::from(a).into(), self.bits, 32)
            }
            (std::net::IpAddr::V6(n), std::net::IpAddr::V6(a)) => {
                masked(u128::from(n), self.bits, 128) == masked(u128::from(a), self.bits, 128)
            }
            _ => false,
        }
    }
}

/// Which of a log line's inputs besides the request (method, target,
/// protocol, Host, Referer, User-Agent, always in the key) the rules read,
/// found by walking every phase 1 and 2 rule (the phases analysis runs):
/// their targets, operator arguments and macros (`setvar`, tags, `initcol`,
/// `setenv`, `msg`/`logdata` are not verdict inputs and are skipped).
///
/// - `REMOTE_ADDR` tested only with `@ipMatch` (CRS 905100/905110's
///   loopback exemption): the key holds one bit per list, whether the
///   client is in it; read any other way (or the `IP` collection, keyed by
///   the address): the key holds the whole address.
/// - `TIME*`: the key holds the line's time (seconds).
/// - `DURATION` (the engine's own clock): no cache at all.
///
/// Every other transaction input is the same for every line (no body, no
/// response, port 0, an empty `UNIQUE_ID`, no persistent collections), so a
/// cached verdict is exactly the one the engine would compute.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPlan {
    ip_lists: Vec<Vec<Cidr>>,
    /// The whole client address is part of the key.
    pub client: bool,
    /// The line's time is part of the key.
    pub time: bool,
    /// Verdicts can be cached at all.
    pub cacheable: bool,
}

impl KeyPlan {
    /// The plan for `rs`.
    pub fn of(rs: &Ruleset) -> KeyPlan {
        let mut plan = KeyPlan {
            cacheable: true,
            ..KeyPlan::default()
        };
        let note = |name: &str, plan: &mut KeyPlan| {
            let name = name.to_ascii_uppercase();
            if name == "DURATION" {
                plan.cacheable = false;
            } else if TIME_VARS.contains(&name.as_str()) {
                plan.time = true;
            } else if CLIENT_VARS.contains(&name.as_str()) || name == "IP" {
                plan.client = true;
            }
        };
        for phase in 1..=2 {
            for rule in rs.rules(phase) {
                let mut link = Some(rule);
                while let Some(l) = link {
                    for t in &l.targets {
                        let name = t.var.name();
                        if CLIENT_VARS.contains(&name) && !t.count {
                            let list: Option<Vec<Cidr>> = l
                                .operator_name
                                .eq_ignore_ascii_case("ipMatch")
                                .then(|| l.operator_argument.split(',').map(Cidr::parse).collect())
                                .flatten();
                            match list {
                                Some(list) if !list.is_empty() => {
                                    if !plan.ip_lists.contains(&list) {
                                        plan.ip_lists.push(list);
                                    }
                                }
                                _ => plan.client = true,
                            }
                        } else {
                            note(name, &mut plan);
                        }
                    }
                    // Macros in an operator argument (`@lt %{tx.x}`).
                    let arg = l.operator_argument.to_ascii_uppercase();
                    let mut rest = arg.as_str();
                    while let Some(i) = rest.find("%{") {
                        rest = &rest[i + 2..];
                        let name: String = rest
                            .chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                            .collect();
                        note(&name, &mut plan);
                    }
                    let mut macros: Vec<&seclang::macros::MacroString> = l.tags.iter().collect();
                    for sv in &l.setvars {
                        macros.push(&sv.key);
                        macros.extend(setvar_value(&sv.op));
                    }
                    for a in &l.after_match {
                        match a {
                            seclang::actions::Action::SetVar(sv) => {
                                macros.push(&sv.key);
                                macros.extend(setvar_value(&sv.op));
                            }
                            // The IP collection's key: read only through
                            // `IP` targets and `%{ip.…}` macros, noted there.
                            seclang::actions::Action::InitCol(_) => {}
                            seclang::actions::Action::SetEnv(e) => macros.push(&e.value),
                            _ => {}
                        }
                    }
                    for m in macros {
                        for part in m.parts() {
                            if let seclang::macros::Part::Var { collection, .. } = part {
                                note(collection, &mut plan);
                            }
                        }
                    }
                    link = l.chain.as_deref();
                }
            }
        }
        plan
    }

    /// Appends the client- and time-dependent part of `e`'s key.
    fn push_key(&self, e: &Entry<'_>, key: &mut Vec<u8>) {
        if !self.ip_lists.is_empty() {
            let ip = e.client.parse::<std::net::IpAddr>().ok();
            for list in &self.ip_lists {
                key.push(u8::from(
                    ip.is_some_and(|ip| list.iter().any(|c| c.contains(ip))),
                ));
            }
        }
        if self.client {
            key.extend_from_slice(&(e.client.len() as u32).to_le_bytes());
            key.extend_from_slice(e.client.as_bytes());
        }
        if self.time {
            key.extend_from_slice(&e.time.unwrap_or(0).to_le_bytes());
        }
    }
}

fn setvar_value(op: &seclang::actions::data::SetVarOp) -> Option<&seclang::macros::MacroString> {
    use seclang::actions::data::SetVarOp;
    match op {
        SetVarOp::Set(m) | SetVarOp::Add(m) | SetVarOp::Sub(m) => Some(m),
        SetVarOp::SetOne | SetVarOp::Unset => None,
    }
}

/// One shard: the map and the bytes it accounts for.
#[derive(Debug, Default)]
struct ShardMap {
    map: HashMap<Box<[u8]>, Arc<Verdict>>,
    bytes: usize,
}

type Shard = std::sync::Mutex<ShardMap>;

/// The verdict cache every worker thread shares: [`CACHE_SHARDS`] locked
/// maps from the exact key ([`KeyPlan`]) to the verdict. Bounded at
/// [`VERDICT_CACHE_BYTES`] in all; a full shard is cleared.
#[derive(Debug)]
pub struct VerdictCache {
    shards: Box<[Shard]>,
    hasher: std::collections::hash_map::RandomState,
    plan: KeyPlan,
}

impl VerdictCache {
    /// An empty cache for the rules `rs` (`None` when their verdicts
    /// cannot be cached, see [`KeyPlan`]).
    pub fn new(rs: &Ruleset) -> Option<Arc<VerdictCache>> {
        let plan = KeyPlan::of(rs);
        plan.cacheable.then(|| {
            Arc::new(VerdictCache {
                shards: (0..CACHE_SHARDS).map(|_| Shard::default()).collect(),
                hasher: Default::default(),
                plan,
            })
        })
    }

    /// What the key holds.
    pub fn plan(&self) -> &KeyPlan {
        &self.plan
    }

    fn shard(&self, key: &[u8]) -> &Shard {
        use std::hash::BuildHasher;
        let i = (self.hasher.hash_one(key) as usize) % self.shards.len();
        &self.shards[i]
    }

    fn get(&self, key: &[u8]) -> Option<Arc<Verdict>> {
        let s = self.shard(key);
        let g = match s.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        g.map.get(key).cloned()
    }

    fn insert(&self, key: &[u8], v: Arc<Verdict>) {
        let s = self.shard(key);
        let mut g = match s.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let cost = key.len() + CACHE_ENTRY_OVERHEAD;
        if g.bytes + cost > VERDICT_CACHE_BYTES / CACHE_SHARDS {
            g.map.clear();
            g.bytes = 0;
        }
        if g.map.insert(key.into(), v).is_none() {
            g.bytes += cost;
        }
    }
}

/// One worker's evaluator: a reused transaction and a handle on the
/// shared verdict cache.
#[derive(Debug)]
pub struct Evaluator {
    ruleset: Arc<Ruleset>,
    tx: Option<Transaction>,
    cache: Option<Arc<VerdictCache>>,
    key: Vec<u8>,
    /// Lines answered from the cache.
    pub cache_hits: u64,
    /// Lines evaluated by the engine.
    pub evaluated: u64,
}

impl Evaluator {
    /// An evaluator over `ruleset` with a cache of its own; `use_cache`
    /// false evaluates every line.
    pub fn new(ruleset: Arc<Ruleset>, use_cache: bool) -> Evaluator {
        let cache = if use_cache {
            VerdictCache::new(&ruleset)
        } else {
            None
        };
        Evaluator::with_cache(ruleset, cache)
    }

    /// An evaluator sharing `cache` (`None`: every line evaluated).
    pub fn with_cache(ruleset: Arc<Ruleset>, cache: Option<Arc<VerdictCache>>) -> Evaluator {
        Evaluator {
            ruleset,
            tx: None,
            cache,
            key: Vec::new(),
            cache_hits: 0,
            evaluated: 0,
        }
    }

    /// The verdict on `e` (which must have a request line).
    pub fn evaluate(&mut self, e: &Entry<'_>) -> Arc<Verdict> {
        let host: &[u8] = e.host.as_deref().unwrap_or(DEFAULT_HOST.as_bytes());
        let cache = self.cache.clone();
        let cacheable = match &cache {
            Some(c) => {
                self.key.clear();
                c.plan.push_key(e, &mut self.key);
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
            }
            None => false,
        };
        if let (true, Some(c)) = (cacheable, &cache) {
            if let Some(v) = c.get(&self.key) {
                self.cache_hits += 1;
                return v;
            }
        }
        let v = Arc::new(self.run(e, host));
        self.evaluated += 1;
        if let (true, Some(c)) = (cacheable, &cache) {
            c.insert(&self.key, v.clone());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::parse::{parse_line, LogFormat};

    fn rules(text: &str) -> Arc<Ruleset> {
        let text = format!("SecRuleEngine DetectionOnly\n{text}");
        Arc::new(
            RulesetBuilder::new(&FsLoader)
                .add_str(&text, "t.conf")
                .unwrap()
                .build()
                .unwrap(),
        )
    }

    fn line(client: &str, hour: u8, target: &str) -> String {
        format!("{client} - - [23/Nov/2026:{hour:02}:00:00 +0000] \"GET {target} HTTP/1.1\" 200 5 \"-\" \"curl/8\"")
    }

    /// Every line through a cached and an uncached evaluator: the same
    /// verdicts; returns the cached evaluator's hits.
    fn same_verdicts(rs: &Arc<Ruleset>, lines: &[String]) -> u64 {
        let mut cached = Evaluator::new(rs.clone(), true);
        let mut plain = Evaluator::new(rs.clone(), false);
        for l in lines {
            let e = parse_line(l.as_bytes(), LogFormat::Combined)
                .unwrap()
                .unwrap();
            assert_eq!(cached.evaluate(&e), plain.evaluate(&e), "{l}");
        }
        assert_eq!(plain.cache_hits, 0);
        cached.cache_hits
    }

    #[test]
    fn ip_match_on_the_client_keys_one_bit_per_list() {
        let rs = rules(
            "SecRule REMOTE_ADDR \"@ipMatch 192.0.2.0/24,2001:db8::1\" \"id:1,phase:1,deny,log,tag:'attack-sqli',setvar:tx.palisade_anomaly_score=+5\"\n",
        );
        let plan = KeyPlan::of(&rs);
        assert!(plan.cacheable && !plan.client && !plan.time);
        assert_eq!(plan.ip_lists.len(), 1);
        let lines = [
            line("192.0.2.5", 1, "/a"),
            line("192.0.2.6", 1, "/a"),    // same list bit: a hit
            line("198.51.100.1", 1, "/a"), // other bit: evaluated
            line("198.51.100.2", 1, "/a"), // a hit
            line("2001:db8::1", 1, "/a"),  // in the list: the first line's key
            line("2001:db8::2", 1, "/a"),
        ];
        assert_eq!(same_verdicts(&rs, &lines), 4);
        let mut ev = Evaluator::new(rs.clone(), true);
        fn e(l: &str) -> Entry<'_> {
            parse_line(l.as_bytes(), LogFormat::Combined)
                .unwrap()
                .unwrap()
        }
        assert!(ev.evaluate(&e(&lines[0])).attack);
        assert!(!ev.evaluate(&e(&lines[2])).attack);
    }

    #[test]
    fn other_reads_of_the_client_or_the_time_put_them_in_the_key() {
        let by_client = rules(
            "SecRule REMOTE_ADDR \"@rx ^10\\.0\\.0\\.1$\" \"id:1,phase:1,deny,log,setvar:tx.palisade_anomaly_score=+5\"\n",
        );
        let plan = KeyPlan::of(&by_client);
        assert!(plan.client && !plan.time);
        let lines = [
            line("10.0.0.1", 1, "/a"),
            line("10.0.0.2", 1, "/a"),
            line("10.0.0.1", 2, "/a"), // same client and request: a hit
        ];
        assert_eq!(same_verdicts(&by_client, &lines), 1);

        let by_time = rules(
            "SecRule TIME_HOUR \"@eq 3\" \"id:1,phase:1,deny,log,setvar:tx.palisade_anomaly_score=+5\"\n",
        );
        let plan = KeyPlan::of(&by_time);
        assert!(plan.time && !plan.client);
        let lines = [line("10.0.0.1", 3, "/a"), line("10.0.0.1", 4, "/a")];
        assert_eq!(same_verdicts(&by_time, &lines), 0);

        // A macro reading the address counts as a read.
        let by_macro = rules(
            "SecAction \"id:1,phase:1,pass,nolog,setvar:'tx.who=%{REMOTE_ADDR}'\"\nSecRule TX:who \"@streq 10.0.0.1\" \"id:2,phase:1,deny,log\"\n",
        );
        assert!(KeyPlan::of(&by_macro).client);
        let lines = [line("10.0.0.1", 1, "/a"), line("10.0.0.2", 1, "/a")];
        assert_eq!(same_verdicts(&by_macro, &lines), 0);

        // The engine's own clock cannot be keyed: no cache.
        let by_clock = rules("SecRule DURATION \"@gt 1000000\" \"id:1,phase:1,deny,log\"\n");
        assert!(VerdictCache::new(&by_clock).is_none());
    }

    #[test]
    fn request_fields_are_all_in_the_key() {
        let rs = rules(
            "SecRule REQUEST_HEADERS:User-Agent|REQUEST_HEADERS:Referer|REQUEST_URI|REQUEST_PROTOCOL \"@contains evil\" \"id:1,phase:1,deny,log,setvar:tx.palisade_anomaly_score=+5\"\n",
        );
        assert_eq!(
            KeyPlan::of(&rs),
            KeyPlan {
                cacheable: true,
                ..KeyPlan::default()
            }
        );
        let l = |t: &str, r: &str, ua: &str| {
            format!("10.0.0.1 - - [23/Nov/2026:01:00:00 +0000] \"GET {t} HTTP/1.1\" 200 5 \"{r}\" \"{ua}\"")
        };
        let lines = [
            l("/a", "-", "curl"),
            l("/a", "evil", "curl"),
            l("/a", "-", "evil"),
            l("/evil", "-", "curl"),
            l("/a", "-", "curl"),
        ];
        assert_eq!(same_verdicts(&rs, &lines), 1);
    }
}
