//! The compiled, immutable rule set.
//!
//! Loading runs in three steps: parse every source into directives (with
//! positions), collect rules (chains joined, `SecDefaultAction` snapshots,
//! markers) and configuration, apply `SecRuleRemove*` / `SecRuleUpdate*`
//! to the collected rules (ModSecurity v3 applies them to every rule of the
//! configuration, whatever their order), then compile: operators are built
//! once per distinct `(name, argument)` and shared through `Arc`, and each
//! transformation chain gets an id in a prefix tree so that transactions can
//! cache transformation results per chain prefix.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::actions::ctl::EngineMode;
use crate::actions::{Action, Disruptive, SetVar};
use crate::error::Error;
use crate::loader::FileLoader;
use crate::macros::MacroString;
use crate::operators::{self, CompileContext, Operator};
use crate::parser::ast::{Directive, LimitAction, Position, RuleAst, Spanned};
use crate::parser::{parse_file, parse_str};
use crate::tcache::{Prefilter, CASE_SENSITIVE, MAX_RULE_LITERALS};
use crate::transformations::Transformation;
use crate::variables::{Selector, Target, Var};

/// Engine settings from the `Sec*` directives, with ModSecurity's
/// recommended defaults.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// `SecRuleEngine` (default `On`).
    pub engine: EngineMode,
    /// `SecRequestBodyAccess` (default `On`).
    pub request_body_access: bool,
    /// `SecResponseBodyAccess` (default `Off`).
    pub response_body_access: bool,
    /// `SecRequestBodyLimit` in bytes (default 13 107 200).
    pub request_body_limit: u64,
    /// `SecRequestBodyNoFilesLimit` in bytes (default 131 072).
    pub request_body_no_files_limit: u64,
    /// `SecRequestBodyLimitAction` (default `Reject`).
    pub request_body_limit_action: LimitAction,
    /// `SecResponseBodyLimit` in bytes (default 524 288).
    pub response_body_limit: u64,
    /// `SecResponseBodyLimitAction` (default `Reject`).
    pub response_body_limit_action: LimitAction,
    /// `SecResponseBodyMimeType` (default `text/plain text/html`).
    pub response_body_mime_types: Vec<String>,
    /// `SecArgumentsLimit` (default 1000).
    pub arguments_limit: u64,
    /// `SecRequestBodyJsonDepthLimit` (default 10 000, as ModSecurity).
    pub json_depth_limit: u64,
    /// `SecComponentSignature` values.
    pub component_signatures: Vec<String>,
    /// `SecCollectionTimeout` seconds (default 3600).
    pub collection_timeout: u64,
    /// Recorded settings (`SecAuditEngine`, `SecAuditLogParts`, `SecDebugLog`,
    /// `SecTmpDir`, …): directive name as written and arguments, in order.
    pub settings: Vec<(String, Vec<String>)>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            engine: EngineMode::On,
            request_body_access: true,
            response_body_access: false,
            request_body_limit: 13_107_200,
            request_body_no_files_limit: 131_072,
            request_body_limit_action: LimitAction::Reject,
            response_body_limit: 524_288,
            response_body_limit_action: LimitAction::Reject,
            response_body_mime_types: vec!["text/plain".into(), "text/html".into()],
            arguments_limit: 1000,
            json_depth_limit: crate::body::DEFAULT_JSON_DEPTH as u64,
            component_signatures: Vec::new(),
            collection_timeout: 3600,
            settings: Vec::new(),
        }
    }
}

impl Config {
    /// The last value of a recorded setting (case-insensitive directive name).
    pub fn setting(&self, name: &str) -> Option<&[String]> {
        self.settings
            .iter()
            .rev()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
}

/// A compiled rule (one link of a chain; the first link carries the metadata).
#[derive(Debug)]
#[non_exhaustive]
pub struct Rule {
    /// `id` (0 for chained links, which have none).
    pub id: u64,
    /// Phase 1..=5.
    pub phase: u8,
    /// Where it was defined.
    pub file: Arc<PathBuf>,
    /// 1-based line.
    pub line: usize,
    /// Targets (without exclusions).
    pub targets: Vec<Target>,
    /// `!` exclusions.
    pub exclusions: Vec<Target>,
    /// Operator name as written (without `@`).
    pub operator_name: String,
    /// Operator argument as written.
    pub operator_argument: String,
    /// `!@`.
    pub negated: bool,
    pub(crate) operator: Arc<dyn Operator>,
    /// Prefilter literal ids of the operator, sorted (`None`: no literal
    /// is required).
    pub(crate) literals: Option<Box<[u32]>>,
    /// Bytes of which a value must hold one for the operator to match
    /// (`None`: none known).
    pub(crate) required_bytes: Option<crate::tcache::ByteSet>,
    /// Whether the prefilter may decide the whole link at once over every
    /// value its targets can select (positive, single-value operator with a
    /// prefilter, every target a stored collection or scalar).
    pub(crate) whole_filter: bool,
    /// Transformations (defaults included unless `t:none`).
    pub transformations: Vec<Transformation>,
    /// Prefix-tree node after each transformation (same length).
    pub(crate) tchain: Vec<u32>,
    /// `msg`.
    pub msg: Option<MacroString>,
    /// `logdata`.
    pub logdata: Option<MacroString>,
    /// `severity` (0..=7).
    pub severity: Option<u8>,
    /// `tag`s.
    pub tags: Vec<MacroString>,
    /// Interned ids of the tags (as written), for ctl removals by tag.
    pub(crate) tag_ids: Box<[u32]>,
    /// The tags as strings when none holds a macro (shared by every match).
    pub(crate) const_tags: Option<Arc<[String]>>,
    /// `ver`.
    pub ver: Option<Arc<str>>,
    /// `rev`.
    pub rev: Option<String>,
    /// `maturity`.
    pub maturity: Option<u8>,
    /// `accuracy`.
    pub accuracy: Option<u8>,
    /// The effective disruptive action (`block` resolved against the
    /// phase's default; inherited from the default when absent).
    pub disruptive: Option<Disruptive>,
    /// Whether the rule itself said `block`.
    pub block: bool,
    /// `status`.
    pub status: Option<u16>,
    /// `capture`.
    pub capture: bool,
    /// `multiMatch`.
    pub multi_match: bool,
    /// `log` (true unless `nolog`).
    pub log: bool,
    /// `auditlog` (true unless `noauditlog`).
    pub auditlog: bool,
    /// `setvar`s, run once per matched value.
    pub setvars: Vec<SetVar>,
    /// Actions run once when the whole chain matched (`ctl`, `initcol`,
    /// `setenv`, `expirevar`, default-action setvars), in order.
    pub after_match: Vec<Action>,
    /// `skip:N`.
    pub skip: u32,
    /// `skipAfter:M`.
    pub skip_after: Option<String>,
    /// The next link of the chain.
    pub chain: Option<Box<Rule>>,
    /// The outcome computed at load time, for rules that only read `TX`
    /// (see the `memo` module).
    pub(crate) memo: Option<Box<crate::memo::Memo>>,
}

impl Rule {
    /// Whether the rule has exactly this tag (as written; CRS tags hold no
    /// macros). ModSecurity v3 compares tags as plain strings.
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| match t.as_constant() {
            Some(c) => c == tag.as_bytes(),
            None => macro_text(t) == tag,
        })
    }
}

fn macro_text(m: &MacroString) -> String {
    use crate::macros::Part;
    let mut s = String::new();
    for p in m.parts() {
        match p {
            Part::Literal(l) => s.push_str(&String::from_utf8_lossy(l)),
            Part::Var { collection, key } => {
                s.push_str("%{");
                s.push_str(collection);
                if let Some(k) = key {
                    s.push('.');
                    s.push_str(k);
                }
                s.push('}');
            }
        }
    }
    s
}

/// One entry of a phase's rule list.
#[derive(Debug)]
pub(crate) enum Entry {
    Rule(Arc<Rule>),
    Marker(String),
}

/// Node of the transformation-chain prefix tree.
#[derive(Debug)]
pub(crate) struct TNode {
    pub(crate) transformation: Option<Transformation>,
    /// What the chain from the root to this node does to plain values
    /// (`None`: not known, the chain is run). Only set with prefilters on,
    /// so that the differential tests compare it with running the chain.
    pub(crate) plain: Option<crate::plain::Profile>,
}

/// The compiled rule set: immutable, shared by all transactions.
#[derive(Debug)]
pub struct Ruleset {
    pub(crate) config: Config,
    pub(crate) phases: [Vec<Entry>; 5],
    pub(crate) tnodes: Vec<TNode>,
    pub(crate) prefilter: Option<Prefilter>,
    /// Whether prefilters may skip operators ([`RulesetBuilder::prefilters`]).
    pub(crate) prefilters_on: bool,
    /// Whether any rule reads MATCHED_VARS(_NAMES) (else they are not kept).
    pub(crate) uses_matched_vars: bool,
    /// Every tag (as written) → its id.
    tag_index: HashMap<String, u32>,
    rule_count: usize,
    /// Buffers of finished transactions, for the next ones.
    pub(crate) pool: std::sync::Mutex<Vec<crate::transaction::Spare>>,
}

/// Builds a [`Ruleset`] from several sources, in order (like several
/// `Include`s).
pub struct RulesetBuilder<'a> {
    loader: &'a dyn FileLoader,
    directives: Vec<Spanned>,
    prefilters: bool,
}

impl std::fmt::Debug for RulesetBuilder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RulesetBuilder")
            .field("directives", &self.directives.len())
            .finish_non_exhaustive()
    }
}

impl<'a> RulesetBuilder<'a> {
    /// A builder reading files through `loader`.
    pub fn new(loader: &'a dyn FileLoader) -> Self {
        RulesetBuilder {
            loader,
            directives: Vec::new(),
            prefilters: true,
        }
    }

    /// Turns the evaluation prefilters on (the default) or off. They skip
    /// operators that provably cannot match a value (none of their
    /// required literals occurs in it); the rule set's answers are the same
    /// either way, only slower without them. Off is for differential
    /// testing and for ruling the prefilters out when chasing a detection
    /// difference.
    pub fn prefilters(mut self, on: bool) -> Self {
        self.prefilters = on;
        self
    }

    /// Adds rules text named `name` (includes resolve against its directory).
    pub fn add_str(mut self, text: &str, name: impl AsRef<Path>) -> Result<Self, Error> {
        self.directives
            .extend(parse_str(text, name.as_ref(), self.loader)?);
        Ok(self)
    }

    /// Adds a file (or a glob of files).
    pub fn add_file(mut self, path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let paths = self.loader.glob(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        for p in paths {
            self.directives.extend(parse_file(&p, self.loader)?);
        }
        Ok(self)
    }

    /// Compiles everything added.
    pub fn build(self) -> Result<Ruleset, Error> {
        compile(self.directives, self.loader, self.prefilters)
    }
}

impl Ruleset {
    /// Compiles rules text named `name`.
    pub fn from_str(
        text: &str,
        name: impl AsRef<Path>,
        loader: &dyn FileLoader,
    ) -> Result<Ruleset, Error> {
        RulesetBuilder::new(loader).add_str(text, name)?.build()
    }

    /// Compiles a rules file (following its `Include`s).
    pub fn from_file(path: impl AsRef<Path>, loader: &dyn FileLoader) -> Result<Ruleset, Error> {
        RulesetBuilder::new(loader).add_file(path)?.build()
    }

    /// The interned id of a tag some rule carries.
    pub(crate) fn tag_id(&self, tag: &str) -> Option<u32> {
        self.tag_index.get(tag).copied()
    }

    /// Whether evaluation prefilters are on ([`RulesetBuilder::prefilters`]).
    pub fn prefilters(&self) -> bool {
        self.prefilters_on
    }

    /// The engine settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Number of rules (chains count once).
    pub fn rule_count(&self) -> usize {
        self.rule_count
    }

    /// The rules of `phase` (1..=5), in evaluation order.
    pub fn rules(&self, phase: u8) -> impl Iterator<Item = &Rule> {
        let list: &[Entry] = match phase {
            1..=5 => &self.phases[usize::from(phase - 1)],
            _ => &[],
        };
        list.iter().filter_map(|e| match e {
            Entry::Rule(r) => Some(r.as_ref()),
            Entry::Marker(_) => None,
        })
    }

    /// The rule with `id`, if any.
    pub fn rule(&self, id: u64) -> Option<&Rule> {
        (1..=5).flat_map(|p| self.rules(p)).find(|r| r.id == id)
    }
}

/// A rule collected from the directives, before compilation.
struct Pending {
    pos: Position,
    links: Vec<(Position, RuleAst)>,
    defaults: Arc<[Option<Arc<Vec<Action>>>; 5]>,
}

impl Pending {
    fn starter(&self) -> &RuleAst {
        &self.links[0].1
    }
    fn starter_mut(&mut self) -> &mut RuleAst {
        &mut self.links[0].1
    }
    fn phase(&self) -> u8 {
        self.starter()
            .actions
            .iter()
            .rev()
            .find_map(|a| match a {
                Action::Phase(p) => Some(*p),
                _ => None,
            })
            .unwrap_or(2)
    }
    fn tags_raw(&self) -> Vec<String> {
        self.starter()
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::Tag(t) => Some(macro_text(t)),
                _ => None,
            })
            .collect()
    }
    fn msg_raw(&self) -> Option<String> {
        self.starter().actions.iter().rev().find_map(|a| match a {
            Action::Msg(m) => Some(macro_text(m)),
            _ => None,
        })
    }
}

enum Item {
    Rule(Pending),
    Marker(String),
}

fn rule_error(pos: &Position, rule_id: u64, message: impl Into<String>) -> Error {
    Error::Rule {
        file: pos.file.as_ref().clone(),
        line: pos.line,
        rule_id,
        message: message.into(),
    }
}

fn parse_err(pos: &Position, message: impl Into<String>) -> Error {
    Error::Parse {
        file: pos.file.as_ref().clone(),
        line: pos.line,
        message: message.into(),
    }
}

fn compile(
    directives: Vec<Spanned>,
    loader: &dyn FileLoader,
    prefilters: bool,
) -> Result<Ruleset, Error> {
    let mut config = Config::default();
    let mut items: Vec<Item> = Vec::new();
    let mut defaults: Arc<[Option<Arc<Vec<Action>>>; 5]> = Arc::new(Default::default());
    let mut open_chain: Option<Pending> = None;
    let mut updates: Vec<(Position, Directive)> = Vec::new();
    let mut ids: HashSet<u64> = HashSet::new();

    for Spanned { pos, directive } in directives {
        if let Some(chain) = open_chain.as_mut() {
            match directive {
                Directive::Rule(rule) => {
                    if let Some(bad) = rule.actions.iter().find(|a| {
                        matches!(
                            a,
                            Action::Id(_)
                                | Action::Phase(_)
                                | Action::Disruptive(_)
                                | Action::Skip(_)
                                | Action::SkipAfter(_)
                        )
                    }) {
                        return Err(rule_error(
                            &pos,
                            chain.starter().id().unwrap_or(0),
                            format!("{bad:?} is only allowed in the first rule of a chain"),
                        ));
                    }
                    let more = rule.is_chain();
                    chain.links.push((pos, rule));
                    if !more {
                        if let Some(done) = open_chain.take() {
                            items.push(Item::Rule(done));
                        }
                    }
                    continue;
                }
                _ => {
                    return Err(rule_error(
                        &chain.pos,
                        chain.starter().id().unwrap_or(0),
                        "chain is not followed by a rule",
                    ))
                }
            }
        }
        match directive {
            Directive::Rule(rule) => {
                let Some(id) = rule.id() else {
                    return Err(parse_err(&pos, "rule has no id action"));
                };
                if !ids.insert(id) {
                    return Err(rule_error(&pos, id, format!("duplicate rule id {id}")));
                }
                let chained = rule.is_chain();
                let pending = Pending {
                    pos: pos.clone(),
                    links: vec![(pos, rule)],
                    defaults: defaults.clone(),
                };
                if chained {
                    open_chain = Some(pending);
                } else {
                    items.push(Item::Rule(pending));
                }
            }
            Directive::Marker(name) => items.push(Item::Marker(name)),
            Directive::DefaultAction(actions) => {
                let phase = actions
                    .iter()
                    .rev()
                    .find_map(|a| match a {
                        Action::Phase(p) => Some(*p),
                        _ => None,
                    })
                    .unwrap_or(2);
                let mut next: [Option<Arc<Vec<Action>>>; 5] = (*defaults).clone();
                next[usize::from(phase - 1)] = Some(Arc::new(actions));
                defaults = Arc::new(next);
            }
            Directive::RuleEngine(m) => config.engine = m,
            Directive::RequestBodyAccess(b) => config.request_body_access = b,
            Directive::ResponseBodyAccess(b) => config.response_body_access = b,
            Directive::RequestBodyLimit(n) => config.request_body_limit = n,
            Directive::RequestBodyNoFilesLimit(n) => config.request_body_no_files_limit = n,
            Directive::RequestBodyLimitAction(a) => config.request_body_limit_action = a,
            Directive::ResponseBodyLimit(n) => config.response_body_limit = n,
            Directive::ResponseBodyLimitAction(a) => config.response_body_limit_action = a,
            Directive::ResponseBodyMimeType(t) => config.response_body_mime_types = t,
            Directive::ArgumentsLimit(n) => config.arguments_limit = n,
            Directive::RequestBodyJsonDepthLimit(n) => config.json_depth_limit = n,
            Directive::ComponentSignature(s) => config.component_signatures.push(s),
            Directive::CollectionTimeout(n) => config.collection_timeout = n,
            Directive::Setting(name, args) => config.settings.push((name, args)),
            d @ (Directive::RuleRemoveById(_)
            | Directive::RuleRemoveByTag(_)
            | Directive::RuleRemoveByMsg(_)
            | Directive::RuleUpdateTargetById { .. }
            | Directive::RuleUpdateTargetByTag { .. }
            | Directive::RuleUpdateActionById { .. }) => updates.push((pos, d)),
        }
    }
    if let Some(chain) = open_chain {
        return Err(rule_error(
            &chain.pos,
            chain.starter().id().unwrap_or(0),
            "chain is not followed by a rule",
        ));
    }

    apply_updates(&mut items, updates)?;

    let mut compiler = Compiler {
        loader,
        ci_literals: Vec::new(),
        cs_literals: Vec::new(),
        uses_matched_vars: false,
        tag_index: HashMap::new(),
        literal_index: HashMap::new(),
        operators: HashMap::new(),
        tnodes: vec![TNode {
            transformation: None,
            plain: Some(crate::plain::Profile::IDENTITY),
        }],
        tindex: HashMap::new(),
    };
    let mut phases: [Vec<Entry>; 5] = Default::default();
    let mut rule_count = 0;
    for item in items {
        match item {
            Item::Marker(name) => {
                for list in &mut phases {
                    list.push(Entry::Marker(name.clone()));
                }
            }
            Item::Rule(p) => {
                let phase = p.phase();
                let rule = compiler.compile_rule(&p, phase)?;
                phases[usize::from(phase - 1)].push(Entry::Rule(Arc::new(rule)));
                rule_count += 1;
            }
        }
    }
    if !prefilters {
        for n in &mut compiler.tnodes {
            n.plain = None;
        }
    }
    let rs = Ruleset {
        config,
        phases,
        prefilter: if prefilters {
            Prefilter::new(&compiler.ci_literals, &compiler.cs_literals)
        } else {
            None
        },
        prefilters_on: prefilters,
        uses_matched_vars: compiler.uses_matched_vars,
        tag_index: compiler.tag_index,
        tnodes: compiler.tnodes,
        rule_count,
        pool: std::sync::Mutex::new(Vec::new()),
    };
    // Outcomes known at load time: computed with the prefilters, as the
    // other evaluation shortcut, so that turning them off (differential
    // tests) evaluates every rule.
    if !prefilters {
        return Ok(rs);
    }
    let rs = Arc::new(rs);
    let memos = crate::transaction::Transaction::probe_memos(&rs);
    // The probe's transaction, the only other owner, was dropped when
    // `probe_memos` returned, so this Arc is the last one.
    #[allow(clippy::expect_used)]
    let mut rs = Arc::into_inner(rs).expect("the load-time probe keeps no reference");
    for (phase, index, memo) in memos {
        if let Some(Entry::Rule(rule)) = rs.phases[phase].get_mut(index) {
            if let Some(rule) = Arc::get_mut(rule) {
                rule.memo = Some(Box::new(memo));
            }
        }
    }
    Ok(rs)
}

fn apply_updates(items: &mut Vec<Item>, updates: Vec<(Position, Directive)>) -> Result<(), Error> {
    for (pos, update) in updates {
        match update {
            Directive::RuleRemoveById(ranges) => items.retain(|i| match i {
                Item::Rule(p) => {
                    let id = p.starter().id().unwrap_or(0);
                    !ranges.iter().any(|&(a, b)| (a..=b).contains(&id))
                }
                Item::Marker(_) => true,
            }),
            Directive::RuleRemoveByTag(tag) => items.retain(|i| match i {
                Item::Rule(p) => !p.tags_raw().contains(&tag),
                Item::Marker(_) => true,
            }),
            Directive::RuleRemoveByMsg(msg) => items.retain(|i| match i {
                Item::Rule(p) => p.msg_raw().as_deref() != Some(msg.as_str()),
                Item::Marker(_) => true,
            }),
            Directive::RuleUpdateTargetById {
                ids: (a, b),
                targets,
                replace,
            } => {
                for item in items.iter_mut() {
                    if let Item::Rule(p) = item {
                        let id = p.starter().id().unwrap_or(0);
                        if (a..=b).contains(&id) {
                            update_targets(p.starter_mut(), &targets, replace.as_deref());
                        }
                    }
                }
            }
            Directive::RuleUpdateTargetByTag { tag, targets } => {
                for item in items.iter_mut() {
                    if let Item::Rule(p) = item {
                        if p.tags_raw().contains(&tag) {
                            update_targets(p.starter_mut(), &targets, None);
                        }
                    }
                }
            }
            Directive::RuleUpdateActionById { id, actions } => {
                let mut found = false;
                for item in items.iter_mut() {
                    if let Item::Rule(p) = item {
                        if p.starter().id() == Some(id) {
                            found = true;
                            update_actions(&mut p.starter_mut().actions, &actions);
                        }
                    }
                }
                if !found {
                    return Err(parse_err(
                        &pos,
                        format!("SecRuleUpdateActionById: no rule with id {id}"),
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn update_targets(rule: &mut RuleAst, targets: &[Target], replace: Option<&[Target]>) {
    if let Some(old) = replace {
        rule.targets.retain(|t| !old.contains(t));
    }
    for t in targets {
        if !rule.targets.contains(t) {
            rule.targets.push(t.clone());
        }
    }
}

/// `SecRuleUpdateActionById`: single-valued actions replace those of the
/// same kind; `t:none` clears transformations; the rest is appended.
fn update_actions(actions: &mut Vec<Action>, new: &[Action]) {
    fn kind(a: &Action) -> Option<u8> {
        Some(match a {
            Action::Msg(_) => 1,
            Action::LogData(_) => 2,
            Action::Severity(_) => 3,
            Action::Ver(_) => 4,
            Action::Rev(_) => 5,
            Action::Maturity(_) => 6,
            Action::Accuracy(_) => 7,
            Action::Disruptive(_) => 8,
            Action::Status(_) => 9,
            Action::Log | Action::NoLog => 10,
            Action::AuditLog | Action::NoAuditLog => 11,
            _ => return None,
        })
    }
    for a in new {
        if matches!(a, Action::TransformNone) {
            actions.retain(|x| !matches!(x, Action::Transform(_) | Action::TransformNone));
        }
        if let Some(k) = kind(a) {
            actions.retain(|x| kind(x) != Some(k));
        }
        actions.push(a.clone());
    }
}

struct Compiler<'a> {
    loader: &'a dyn FileLoader,
    ci_literals: Vec<Vec<u8>>,
    cs_literals: Vec<Vec<u8>>,
    uses_matched_vars: bool,
    tag_index: HashMap<String, u32>,
    literal_index: HashMap<(Vec<u8>, bool), u32>,
    operators: HashMap<(String, String, PathBuf), Arc<dyn Operator>>,
    tnodes: Vec<TNode>,
    tindex: HashMap<(u32, &'static str), u32>,
}

impl Compiler<'_> {
    /// Interns the operator's required literals for the prefilter.
    fn literal_ids(&mut self, op: &dyn Operator) -> Option<Box<[u32]>> {
        let literals = op.required_literals()?;
        if literals.is_empty()
            || literals.len() > MAX_RULE_LITERALS
            || literals.iter().any(Vec::is_empty)
        {
            return None;
        }
        // Case-sensitive literals are folded into the case-insensitive
        // automaton too: a value holding `Foo` holds `foo` ignoring case, so
        // the prefilter stays sound (it may only let a few more operators
        // run), and each value is scanned by one automaton instead of two.
        let ci = true;
        let mut ids = Vec::with_capacity(literals.len());
        for lit in literals {
            let lit = if ci { lit.to_ascii_lowercase() } else { lit };
            let key = (lit, ci);
            let id = match self.literal_index.get(&key) {
                Some(&id) => id,
                None => {
                    let id = if ci {
                        self.ci_literals.push(key.0.clone());
                        (self.ci_literals.len() - 1) as u32
                    } else {
                        self.cs_literals.push(key.0.clone());
                        (self.cs_literals.len() - 1) as u32 | CASE_SENSITIVE
                    };
                    self.literal_index.insert(key, id);
                    id
                }
            };
            ids.push(id);
        }
        // Sorted: scans report sorted ids, and `Prefilter::possible`
        // binary-searches this list.
        ids.sort_unstable();
        ids.dedup();
        Some(ids.into_boxed_slice())
    }

    fn tchain(&mut self, transformations: &[Transformation]) -> Vec<u32> {
        let mut node = 0u32;
        let mut out = Vec::with_capacity(transformations.len());
        for t in transformations {
            let next = match self.tindex.get(&(node, t.name)) {
                Some(&n) => n,
                None => {
                    let n = self.tnodes.len() as u32;
                    let plain = self.tnodes[node as usize].plain.and_then(|p| p.then(t));
                    self.tnodes.push(TNode {
                        transformation: Some(*t),
                        plain,
                    });
                    self.tindex.insert((node, t.name), n);
                    n
                }
            };
            out.push(next);
            node = next;
        }
        out
    }

    fn operator(
        &mut self,
        pos: &Position,
        id: u64,
        rule: &RuleAst,
    ) -> Result<Arc<dyn Operator>, Error> {
        let base_dir = pos.file.parent().map(Path::to_path_buf).unwrap_or_default();
        let name = rule.operator.name.to_ascii_lowercase();
        // File-reading operators resolve relative names against the rule's
        // directory, so the cache key includes it.
        let key_dir = if name.ends_with("fromfile") || name == "pmf" {
            base_dir.clone()
        } else {
            PathBuf::new()
        };
        let key = (name, rule.operator.argument.clone(), key_dir);
        if let Some(op) = self.operators.get(&key) {
            return Ok(op.clone());
        }
        let ctx = CompileContext {
            files: self.loader,
            base_dir: &base_dir,
        };
        let op: Arc<dyn Operator> =
            operators::compile(&rule.operator.name, &rule.operator.argument, &ctx)
                .map_err(|m| rule_error(pos, id, m))?
                .into();
        self.operators.insert(key, op.clone());
        Ok(op)
    }

    fn compile_rule(&mut self, p: &Pending, phase: u8) -> Result<Rule, Error> {
        let id = p.starter().id().unwrap_or(0);
        let defaults = p.defaults[usize::from(phase - 1)].clone();
        let default_actions: &[Action] = defaults.as_deref().map_or(&[], Vec::as_slice);
        let default_disruptive = default_actions
            .iter()
            .rev()
            .find_map(|a| match a {
                Action::Disruptive(d) => Some(d.clone()),
                _ => None,
            })
            .unwrap_or(Disruptive::Pass);
        let mut next: Option<Box<Rule>> = None;
        for (index, (pos, ast)) in p.links.iter().enumerate().rev() {
            let mut rule = self.compile_link(pos, id, phase, ast, default_actions)?;
            if index == 0 {
                rule.id = id;
                rule.block = ast
                    .actions
                    .iter()
                    .any(|a| matches!(a, Action::Disruptive(Disruptive::Block)));
                let own = ast.actions.iter().rev().find_map(|a| match a {
                    Action::Disruptive(d) => Some(d.clone()),
                    _ => None,
                });
                rule.disruptive = Some(match own {
                    Some(Disruptive::Block) | None => default_disruptive.clone(),
                    Some(d) => d,
                });
                if rule.disruptive == Some(Disruptive::Block) {
                    rule.disruptive = Some(Disruptive::Pass);
                }
                if rule.status.is_none() {
                    rule.status = default_actions.iter().rev().find_map(|a| match a {
                        Action::Status(s) => Some(*s),
                        _ => None,
                    });
                }
                if rule.severity.is_none() {
                    rule.severity = default_actions.iter().rev().find_map(|a| match a {
                        Action::Severity(s) => Some(*s),
                        _ => None,
                    });
                }
                for a in default_actions {
                    match a {
                        Action::Tag(t) => rule.tags.push(t.clone()),
                        Action::SetVar(_)
                        | Action::Ctl(_)
                        | Action::InitCol(_)
                        | Action::SetEnv(_)
                        | Action::ExpireVar(_) => rule.after_match.push(a.clone()),
                        _ => {}
                    }
                }
            }
            if rule.tags.iter().all(MacroString::is_constant) {
                rule.const_tags = Some(
                    rule.tags
                        .iter()
                        .map(|t| {
                            String::from_utf8_lossy(t.as_constant().unwrap_or_default())
                                .into_owned()
                        })
                        .collect(),
                );
            }
            rule.tag_ids = rule
                .tags
                .iter()
                .map(|t| {
                    let text = macro_text(t);
                    let n = self.tag_index.len() as u32;
                    *self.tag_index.entry(text).or_insert(n)
                })
                .collect();
            rule.chain = next.take();
            next = Some(Box::new(rule));
        }
        match next {
            Some(rule) => Ok(*rule),
            None => Err(rule_error(&p.pos, id, "empty rule")),
        }
    }

    fn compile_link(
        &mut self,
        pos: &Position,
        id: u64,
        phase: u8,
        ast: &RuleAst,
        default_actions: &[Action],
    ) -> Result<Rule, Error> {
        let operator = self.operator(pos, id, ast)?;
        self.uses_matched_vars |= ast
            .targets
            .iter()
            .any(|t| matches!(t.var, Var::MatchedVars | Var::MatchedVarsNames));
        let mut targets = Vec::new();
        let mut exclusions = Vec::new();
        for t in &ast.targets {
            if t.exclude {
                exclusions.push(t.clone());
            } else {
                targets.push(t.clone());
            }
        }
        for t in targets.iter().chain(&exclusions) {
            if t.var != Var::Xml {
                continue;
            }
            let supported = match &t.selector {
                Selector::All => true,
                Selector::Key(x) => {
                    x == crate::body_glue::XML_TEXT || x == crate::body_glue::XML_ATTRIBUTES
                }
                Selector::Regex(_) => false,
            };
            if !supported {
                return Err(rule_error(
                    pos,
                    id,
                    format!(
                        "unsupported XML selector {:?} (supported: XML:/* and XML://@*)",
                        t.selector
                    ),
                ));
            }
        }
        let has_none = ast
            .actions
            .iter()
            .any(|a| matches!(a, Action::TransformNone));
        let mut transformations: Vec<Transformation> = Vec::new();
        if !has_none {
            for a in default_actions {
                if let Action::Transform(t) = a {
                    transformations.push(*t);
                }
            }
        }
        let mut rule = Rule {
            id: 0,
            phase,
            file: pos.file.clone(),
            line: pos.line,
            targets,
            exclusions,
            operator_name: ast.operator.name.clone(),
            operator_argument: ast.operator.argument.clone(),
            negated: ast.operator.negated,
            literals: self.literal_ids(operator.as_ref()),
            required_bytes: operator.required_bytes(),
            whole_filter: false,
            memo: None,
            operator,
            transformations: Vec::new(),
            tchain: Vec::new(),
            msg: None,
            logdata: None,
            severity: None,
            tags: Vec::new(),
            tag_ids: Box::default(),
            const_tags: None,
            ver: None,
            rev: None,
            maturity: None,
            accuracy: None,
            disruptive: None,
            block: false,
            status: None,
            capture: false,
            multi_match: false,
            log: default_log(default_actions, true),
            auditlog: default_log(default_actions, false),
            setvars: Vec::new(),
            after_match: Vec::new(),
            skip: 0,
            skip_after: None,
            chain: None,
        };
        for a in &ast.actions {
            match a {
                Action::Id(_) | Action::Phase(_) | Action::Chain | Action::Disruptive(_) => {}
                Action::Msg(m) => rule.msg = Some(m.clone()),
                Action::LogData(m) => rule.logdata = Some(m.clone()),
                Action::Severity(s) => rule.severity = Some(*s),
                Action::Tag(t) => rule.tags.push(t.clone()),
                Action::Ver(v) => rule.ver = Some(Arc::from(v.as_str())),
                Action::Rev(v) => rule.rev = Some(v.clone()),
                Action::Maturity(v) => rule.maturity = Some(*v),
                Action::Accuracy(v) => rule.accuracy = Some(*v),
                Action::Transform(t) => transformations.push(*t),
                Action::TransformNone => transformations.clear(),
                Action::Skip(n) => rule.skip = *n,
                Action::SkipAfter(m) => rule.skip_after = Some(m.clone()),
                Action::Status(s) => rule.status = Some(*s),
                Action::Capture => rule.capture = true,
                Action::MultiMatch => rule.multi_match = true,
                Action::SetVar(s) => rule.setvars.push(s.clone()),
                Action::ExpireVar(_) | Action::InitCol(_) | Action::SetEnv(_) | Action::Ctl(_) => {
                    rule.after_match.push(a.clone())
                }
                Action::Log => rule.log = true,
                Action::NoLog => {
                    // ModSecurity: nolog implies noauditlog unless auditlog follows.
                    rule.log = false;
                    rule.auditlog = false;
                }
                Action::AuditLog => rule.auditlog = true,
                Action::NoAuditLog => rule.auditlog = false,
            }
        }
        rule.tchain = self.tchain(&transformations);
        rule.transformations = transformations;
        rule.whole_filter = !rule.negated
            && !rule.multi_match
            && (rule.literals.is_some() || rule.required_bytes.is_some())
            && !rule.targets.is_empty()
            && rule
                .targets
                .iter()
                .all(|t| !t.count && crate::variables::data::union_sources(t.var).is_some());
        Ok(rule)
    }
}

fn default_log(defaults: &[Action], log: bool) -> bool {
    let mut value = true;
    for a in defaults {
        match (a, log) {
            (Action::Log, true) | (Action::AuditLog, false) => value = true,
            (Action::NoLog, _) => value = false,
            (Action::NoAuditLog, false) => value = false,
            _ => {}
        }
    }
    value
}
