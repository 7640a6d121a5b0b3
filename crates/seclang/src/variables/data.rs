//! Where a transaction keeps its variables, and how targets select values.
//!
//! Request and response data live in per-variable collections and scalars
//! that only grow between phases, so a value is identified by
//! (variable, index) without copying; values that change while rules run
//! (`TX`, `MATCHED_VAR`, computed sizes, …) are copied into reusable
//! scratch buffers for the duration of one rule evaluation.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{Selector, Target, Var};
use crate::actions::meta::SEVERITIES;
use crate::macros::MacroResolver;
use crate::ruleset::Rule;

/// An ordered multimap with ASCII-case-insensitive lookup.
#[derive(Debug, Default, Clone)]
pub(crate) struct Coll {
    pub(crate) entries: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Coll {
    pub(crate) fn push(&mut self, key: &[u8], value: &[u8]) {
        self.entries.push((key.to_vec(), value.to_vec()));
    }

    pub(crate) fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.entries
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_slice())
    }
}

/// Collections that `setvar` writes (keys stored lower-cased).
pub(crate) const MAPS: [Var; 6] = [
    Var::Tx,
    Var::Ip,
    Var::Global,
    Var::Session,
    Var::User,
    Var::Resource,
];

pub(crate) fn map_index(var: Var) -> Option<usize> {
    MAPS.iter().position(|&v| v == var)
}

/// All variables of a transaction.
#[derive(Debug)]
pub(crate) struct Data {
    /// Keyed request/response data, indexed by `Var as usize`.
    pub(crate) colls: Vec<Coll>,
    /// Scalar request/response data, indexed by `Var as usize` (`None` = unset).
    pub(crate) scalars: Vec<Option<Vec<u8>>>,
    /// TX, IP, GLOBAL, SESSION, USER, RESOURCE (see [`MAPS`]).
    pub(crate) maps: [BTreeMap<Vec<u8>, Vec<u8>>; 6],
    /// ENV.
    pub(crate) env: BTreeMap<Vec<u8>, Vec<u8>>,
    pub(crate) matched_var: Option<Vec<u8>>,
    pub(crate) matched_var_name: Option<Vec<u8>>,
    /// MATCHED_VARS: the first `matched_vars_len` entries; the buffers
    /// past it are kept for reuse, so recording a match does not allocate
    /// once a transaction is warm.
    matched_vars: Vec<(Vec<u8>, Vec<u8>)>,
    matched_vars_len: usize,
    /// Transaction start, microseconds since the Unix epoch.
    pub(crate) start_micros: i64,
    /// Latest time the caller reported (for DURATION).
    pub(crate) now_micros: i64,
    pub(crate) highest_severity: Option<u8>,
    pub(crate) files_combined_size: u64,
}

impl Data {
    /// The MATCHED_VARS entries (name, value) of the rule being evaluated.
    pub(crate) fn matched_vars(&self) -> &[(Vec<u8>, Vec<u8>)] {
        &self.matched_vars[..self.matched_vars_len]
    }

    /// Forgets MATCHED_VARS (keeps the buffers).
    pub(crate) fn clear_matched_vars(&mut self) {
        self.matched_vars_len = 0;
    }

    /// Number of MATCHED_VARS entries.
    pub(crate) fn matched_vars_count(&self) -> usize {
        self.matched_vars_len
    }

    /// Appends a MATCHED_VARS entry.
    pub(crate) fn push_matched_var(&mut self, name: &[u8], value: &[u8]) {
        if let Some((n, v)) = self.matched_vars.get_mut(self.matched_vars_len) {
            n.clear();
            n.extend_from_slice(name);
            v.clear();
            v.extend_from_slice(value);
        } else {
            self.matched_vars.push((name.to_vec(), value.to_vec()));
        }
        self.matched_vars_len += 1;
    }

    /// One empty collection per variable.
    pub(crate) fn empty_colls() -> Vec<Coll> {
        vec![Coll::default(); Var::ALL.len()]
    }

    /// Data in `colls` (from [`Data::empty_colls`], possibly reused: every
    /// collection must be empty).
    pub(crate) fn with_colls(start_micros: i64, colls: Vec<Coll>) -> Data {
        let n = Var::ALL.len();
        debug_assert_eq!(colls.len(), n);
        Data {
            colls,
            scalars: vec![None; n],
            maps: Default::default(),
            env: BTreeMap::new(),
            matched_var: None,
            matched_var_name: None,
            matched_vars: Vec::new(),
            matched_vars_len: 0,
            start_micros,
            now_micros: start_micros,
            highest_severity: None,
            files_combined_size: 0,
        }
    }

    pub(crate) fn coll(&self, var: Var) -> &Coll {
        &self.colls[var as usize]
    }

    pub(crate) fn coll_mut(&mut self, var: Var) -> &mut Coll {
        &mut self.colls[var as usize]
    }

    pub(crate) fn scalar(&self, var: Var) -> Option<&[u8]> {
        self.scalars[var as usize].as_deref()
    }

    pub(crate) fn set_scalar(&mut self, var: Var, value: impl Into<Vec<u8>>) {
        self.scalars[var as usize] = Some(value.into());
    }

    /// A `setvar` collection (TX, IP, …) by index in [`MAPS`].
    pub(crate) fn map(&self, var: Var) -> Option<&BTreeMap<Vec<u8>, Vec<u8>>> {
        map_index(var).map(|i| &self.maps[i])
    }

    /// Values computed on demand.
    pub(crate) fn computed(&self, var: Var) -> Option<String> {
        let size = |v: Var| -> usize {
            self.coll(v)
                .entries
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum()
        };
        Some(match var {
            Var::ArgsCombinedSize => (size(Var::ArgsGet) + size(Var::ArgsPost)).to_string(),
            Var::RequestBodyLength => self
                .scalar(Var::RequestBody)
                .map_or(0, <[u8]>::len)
                .to_string(),
            Var::FilesCombinedSize => self.files_combined_size.to_string(),
            Var::FullRequestLength => self.full_request().len().to_string(),
            Var::Duration => self
                .now_micros
                .saturating_sub(self.start_micros)
                .max(0)
                .to_string(),
            Var::HighestSeverity => self.highest_severity.unwrap_or(255).to_string(),
            Var::Time
            | Var::TimeDay
            | Var::TimeEpoch
            | Var::TimeHour
            | Var::TimeMin
            | Var::TimeMon
            | Var::TimeSec
            | Var::TimeWday
            | Var::TimeYear => time_var(var, self.start_micros),
            _ => return None,
        })
    }

    /// FULL_REQUEST: request line, headers, blank line, body.
    pub(crate) fn full_request(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Some(l) = self.scalar(Var::RequestLine) {
            out.extend_from_slice(l);
            out.push(b'\n');
        }
        for (k, v) in &self.coll(Var::RequestHeaders).entries {
            out.extend_from_slice(k);
            out.extend_from_slice(b": ");
            out.extend_from_slice(v);
            out.push(b'\n');
        }
        out.push(b'\n');
        if let Some(b) = self.scalar(Var::RequestBody) {
            out.extend_from_slice(b);
        }
        out
    }

    /// The first value of `var[:key]` (macro expansion), appended to `out`.
    pub(crate) fn first_value(
        &self,
        var: Var,
        key: Option<&str>,
        rule: Option<&Rule>,
        out: &mut Vec<u8>,
    ) -> bool {
        if let Some(map) = self.map(var) {
            let Some(key) = key else { return false };
            let lower;
            let k = if key.bytes().any(|b| b.is_ascii_uppercase()) {
                lower = key.to_ascii_lowercase();
                lower.as_bytes()
            } else {
                key.as_bytes()
            };
            return match map.get(k) {
                Some(v) => {
                    out.extend_from_slice(v);
                    true
                }
                None => false,
            };
        }
        let found: Option<&[u8]> = match var {
            Var::Env => key.and_then(|k| self.env.get(k.as_bytes()).map(Vec::as_slice)),
            Var::MatchedVar => self.matched_var.as_deref(),
            Var::MatchedVarName => self.matched_var_name.as_deref(),
            Var::Rule => {
                let (Some(rule), Some(key)) = (rule, key) else {
                    return false;
                };
                return match rule_value(rule, key) {
                    Some(v) => {
                        out.extend_from_slice(v.as_bytes());
                        true
                    }
                    None => false,
                };
            }
            Var::Args => key.and_then(|k| {
                self.coll(Var::ArgsGet)
                    .get(k.as_bytes())
                    .or_else(|| self.coll(Var::ArgsPost).get(k.as_bytes()))
            }),
            v if STORED_COLLS.contains(&v) => match key {
                Some(k) => self.coll(v).get(k.as_bytes()),
                None => self.coll(v).entries.first().map(|(_, v)| v.as_slice()),
            },
            v => match self.scalar(v) {
                Some(s) => Some(s),
                None => {
                    return match self.computed(v) {
                        Some(c) => {
                            out.extend_from_slice(c.as_bytes());
                            true
                        }
                        None => false,
                    }
                }
            },
        };
        match found {
            Some(v) => {
                out.extend_from_slice(v);
                true
            }
            None => false,
        }
    }
}

/// Collections stored as such in [`Data::colls`].
pub(crate) const STORED_COLLS: &[Var] = &[
    Var::ArgsGet,
    Var::ArgsPost,
    Var::RequestHeaders,
    Var::RequestCookies,
    Var::ResponseHeaders,
    Var::Files,
    Var::FilesSizes,
    Var::FilesTmpContent,
    Var::FilesTmpNames,
    Var::MultipartPartHeaders,
    Var::MultipartName,
    Var::MultipartFilename,
    Var::Xml,
];

/// `%{RULE.key}`.
pub(crate) fn rule_value(rule: &Rule, key: &str) -> Option<String> {
    let raw = |m: &Option<crate::macros::MacroString>| {
        m.as_ref().map(|m| {
            let mut s = Vec::new();
            for p in m.parts() {
                if let crate::macros::Part::Literal(l) = p {
                    s.extend_from_slice(l);
                }
            }
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    match key.to_ascii_lowercase().as_str() {
        "id" => Some(rule.id.to_string()),
        "phase" => Some(rule.phase.to_string()),
        "severity" => rule.severity.map(|s| s.to_string()),
        "ver" => rule.ver.as_deref().map(str::to_string),
        "rev" => rule.rev.clone(),
        "maturity" => rule.maturity.map(|s| s.to_string()),
        "accuracy" => rule.accuracy.map(|s| s.to_string()),
        "msg" => raw(&rule.msg),
        "logdata" => raw(&rule.logdata),
        "operator" => Some(rule.operator_name.clone()),
        _ => None,
    }
}

fn time_var(var: Var, micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (hour, min, sec) = (rem / 3600, (rem % 3600) / 60, rem % 60);
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
    let wday = (days + 4).rem_euclid(7);
    match var {
        Var::Time => format!("{hour:02}:{min:02}:{sec:02}"),
        Var::TimeDay => day.to_string(),
        Var::TimeEpoch => secs.to_string(),
        Var::TimeHour => hour.to_string(),
        Var::TimeMin => min.to_string(),
        // ModSecurity reports tm_mon: January is 0.
        Var::TimeMon => (month - 1).to_string(),
        Var::TimeSec => sec.to_string(),
        Var::TimeWday => wday.to_string(),
        _ => year.to_string(),
    }
}

/// Where a selected value lives.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Src {
    /// Entry `idx` of the stored collection `coll`; its key when `name`.
    Entry { coll: Var, idx: u32, name: bool },
    /// A stored scalar.
    Scalar(Var),
    /// A scratch buffer (value, optional key).
    Temp { value: u32, key: Option<u32> },
}

impl Src {
    /// A stable identity for the transformation cache (`None` for scratch values).
    pub(crate) fn cache_id(self) -> Option<u64> {
        match self {
            Src::Entry { coll, idx, name } => {
                Some(((coll as u64) << 40) | (u64::from(idx) << 1) | u64::from(name))
            }
            Src::Scalar(v) => Some((1 << 63) | v as u64),
            Src::Temp { .. } => None,
        }
    }
}

/// Where every value a target of variable `var` can select lives, for
/// prefiltering a rule over all of them at once: stored collections
/// (values or keys) and stored scalars. `None` for variables whose values
/// are computed or copied per rule (TX, counts, sizes, MATCHED_VAR, …).
pub(crate) fn union_sources(var: Var) -> Option<&'static [UnionSrc]> {
    use UnionSrc::{Coll, Scalar};
    Some(match var {
        Var::Args => &[Coll(Var::ArgsGet, false), Coll(Var::ArgsPost, false)],
        Var::ArgsGet => &[Coll(Var::ArgsGet, false)],
        Var::ArgsPost => &[Coll(Var::ArgsPost, false)],
        Var::ArgsNames => &[Coll(Var::ArgsGet, true), Coll(Var::ArgsPost, true)],
        Var::ArgsGetNames => &[Coll(Var::ArgsGet, true)],
        Var::ArgsPostNames => &[Coll(Var::ArgsPost, true)],
        Var::RequestHeaders => &[Coll(Var::RequestHeaders, false)],
        Var::RequestHeadersNames => &[Coll(Var::RequestHeaders, true)],
        Var::RequestCookies => &[Coll(Var::RequestCookies, false)],
        Var::RequestCookiesNames => &[Coll(Var::RequestCookies, true)],
        Var::ResponseHeaders => &[Coll(Var::ResponseHeaders, false)],
        Var::ResponseHeadersNames => &[Coll(Var::ResponseHeaders, true)],
        Var::Xml => &[Coll(Var::Xml, false)],
        Var::RequestUri => &[Scalar(Var::RequestUri)],
        Var::RequestUriRaw => &[Scalar(Var::RequestUriRaw)],
        Var::RequestFilename => &[Scalar(Var::RequestFilename)],
        Var::RequestBasename => &[Scalar(Var::RequestBasename)],
        Var::QueryString => &[Scalar(Var::QueryString)],
        Var::RequestLine => &[Scalar(Var::RequestLine)],
        Var::RequestBody => &[Scalar(Var::RequestBody)],
        Var::ResponseBody => &[Scalar(Var::ResponseBody)],
        _ => return None,
    })
}

/// A place [`union_sources`] names.
#[derive(Debug, Clone, Copy)]
pub(crate) enum UnionSrc {
    /// Every entry of a stored collection: keys when `true`, else values.
    Coll(Var, bool),
    /// A stored scalar (empty while unset).
    Scalar(Var),
}

/// One selected value.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Item {
    /// The variable the rule named (ARGS even when the value is in ARGS_GET).
    pub(crate) var: Var,
    pub(crate) src: Src,
}

/// Reusable buffers for one rule evaluation.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    pub(crate) items: Vec<Item>,
    temps: Vec<Vec<u8>>,
    ntemps: usize,
}

impl Scratch {
    /// Heap bytes held (approximately).
    pub(crate) fn retained_bytes(&self) -> usize {
        self.items.capacity() * std::mem::size_of::<Item>()
            + self.temps.iter().map(Vec::capacity).sum::<usize>()
    }

    pub(crate) fn reset(&mut self) {
        self.items.clear();
        self.ntemps = 0;
    }

    pub(crate) fn temp(&mut self, bytes: &[u8]) -> u32 {
        if self.ntemps < self.temps.len() {
            let b = &mut self.temps[self.ntemps];
            b.clear();
            b.extend_from_slice(bytes);
        } else {
            self.temps.push(bytes.to_vec());
        }
        self.ntemps += 1;
        (self.ntemps - 1) as u32
    }

    fn push_temp(&mut self, var: Var, key: Option<&[u8]>, value: &[u8]) {
        let key = key.map(|k| self.temp(k));
        let value = self.temp(value);
        self.items.push(Item {
            var,
            src: Src::Temp { value, key },
        });
    }

    /// The bytes of an item's value.
    pub(crate) fn value<'a>(&'a self, data: &'a Data, item: &Item) -> &'a [u8] {
        match item.src {
            Src::Entry { coll, idx, name } => {
                let (k, v) = &data.coll(coll).entries[idx as usize];
                if name {
                    k
                } else {
                    v
                }
            }
            Src::Scalar(v) => data.scalar(v).unwrap_or_default(),
            Src::Temp { value, .. } => &self.temps[value as usize],
        }
    }

    /// The key of an item (`None` for scalars).
    pub(crate) fn key<'a>(&'a self, data: &'a Data, item: &Item) -> Option<&'a [u8]> {
        match item.src {
            Src::Entry { coll, idx, .. } => Some(&data.coll(coll).entries[idx as usize].0),
            Src::Scalar(_) => None,
            Src::Temp { key, .. } => key.map(|k| self.temps[k as usize].as_slice()),
        }
    }

    /// `VAR` or `VAR:key`, as ModSecurity names matched variables.
    pub(crate) fn name(&self, data: &Data, item: &Item) -> Vec<u8> {
        let mut out = Vec::new();
        self.name_into(data, item, &mut out);
        out
    }

    /// [`Scratch::name`] appended to `out`.
    pub(crate) fn name_into(&self, data: &Data, item: &Item, out: &mut Vec<u8>) {
        out.extend_from_slice(item.var.name().as_bytes());
        if let Some(k) = self.key(data, item) {
            out.push(b':');
            out.extend_from_slice(k);
        }
    }

    /// Appends the values `target` selects (ignoring `exclude`).
    pub(crate) fn gather(&mut self, data: &Data, target: &Target, rule: &Rule) {
        let before = self.items.len();
        let sel = &target.selector;
        let var = target.var;
        let entries = |this: &mut Scratch, coll: Var, name: bool| {
            for (idx, (k, _)) in data.coll(coll).entries.iter().enumerate() {
                if sel.matches_key(k) {
                    this.items.push(Item {
                        var,
                        src: Src::Entry {
                            coll,
                            idx: idx as u32,
                            name,
                        },
                    });
                }
            }
        };
        match var {
            Var::Args => {
                entries(self, Var::ArgsGet, false);
                entries(self, Var::ArgsPost, false);
            }
            Var::ArgsNames => {
                entries(self, Var::ArgsGet, true);
                entries(self, Var::ArgsPost, true);
            }
            Var::ArgsGetNames => entries(self, Var::ArgsGet, true),
            Var::ArgsPostNames => entries(self, Var::ArgsPost, true),
            Var::RequestHeadersNames => entries(self, Var::RequestHeaders, true),
            Var::RequestCookiesNames => entries(self, Var::RequestCookies, true),
            Var::ResponseHeadersNames => entries(self, Var::ResponseHeaders, true),
            Var::FilesNames => entries(self, Var::Files, true),
            Var::Xml => {
                // Entries are keyed by the XPath they answer ("/*" or "//@*").
                for (idx, (k, _)) in data.coll(Var::Xml).entries.iter().enumerate() {
                    let selected = match sel {
                        Selector::Key(x) => x.as_bytes() == k.as_slice(),
                        _ => true,
                    };
                    if selected {
                        self.items.push(Item {
                            var,
                            src: Src::Entry {
                                coll: Var::Xml,
                                idx: idx as u32,
                                name: false,
                            },
                        });
                    }
                }
            }
            v if STORED_COLLS.contains(&v) => entries(self, v, false),
            v if map_index(v).is_some() || v == Var::Env => {
                let map = match data.map(v) {
                    Some(m) => m,
                    None => &data.env,
                };
                match sel {
                    Selector::Key(k) if map_index(v).is_some() => {
                        if let Some(value) = map.get(k.as_bytes()) {
                            self.push_temp(var, Some(k.as_bytes()), value);
                        }
                    }
                    _ => {
                        for (k, value) in map {
                            if sel.matches_key(k) {
                                self.push_temp(var, Some(k), value);
                            }
                        }
                    }
                }
            }
            Var::MatchedVar => {
                if let Some(v) = &data.matched_var {
                    self.push_temp(var, None, v);
                }
            }
            Var::MatchedVarName => {
                if let Some(v) = &data.matched_var_name {
                    self.push_temp(var, None, v);
                }
            }
            Var::MatchedVars | Var::MatchedVarsNames => {
                for (name, value) in data.matched_vars() {
                    if sel.matches_key(name) {
                        let v = if var == Var::MatchedVars { value } else { name };
                        self.push_temp(var, Some(name), v);
                    }
                }
            }
            Var::Rule => {
                for key in [
                    "id", "phase", "severity", "ver", "rev", "maturity", "accuracy", "msg",
                    "logdata",
                ] {
                    if sel.matches_key(key.as_bytes()) {
                        if let Some(v) = rule_value(rule, key) {
                            self.push_temp(var, Some(key.as_bytes()), v.as_bytes());
                        }
                    }
                }
            }
            Var::FullRequest => {
                let full = data.full_request();
                self.push_temp(var, None, &full);
            }
            v => {
                if let Some(c) = data.computed(v) {
                    self.push_temp(var, None, c.as_bytes());
                } else {
                    // A scalar always has one value, empty while unset, as
                    // ModSecurity v3's anchored variables and Coraza's
                    // simple variables (`REQUEST_BASENAME "!@endsWith .pdf"`
                    // matches `GET /`).
                    self.items.push(Item {
                        var,
                        src: Src::Scalar(v),
                    });
                }
            }
        }
        if target.count {
            let n = self.items.len() - before;
            self.items.truncate(before);
            let mut s = String::new();
            let _ = write!(s, "{n}");
            self.push_temp(var, None, s.as_bytes());
        }
    }
}

/// Severity name for a numeric severity.
pub fn severity_name(s: u8) -> &'static str {
    SEVERITIES.get(usize::from(s)).copied().unwrap_or("UNKNOWN")
}

/// Expands macros against a transaction's data and the current rule.
pub(crate) struct Resolver<'a> {
    pub(crate) data: &'a Data,
    pub(crate) rule: Option<&'a Rule>,
}

impl MacroResolver for Resolver<'_> {
    fn resolve(&self, collection: &str, key: Option<&str>, out: &mut Vec<u8>) -> bool {
        match Var::from_name(collection) {
            Some(var) => self.data.first_value(var, key, self.rule, out),
            None => false,
        }
    }

    fn resolve_ref(&self, _collection: &str, r: &crate::macros::VarRef, out: &mut Vec<u8>) -> bool {
        match r.var {
            Some(var) => self.data.first_value(var, r.key.as_deref(), self.rule, out),
            None => false,
        }
    }
}
