//! The typed syntax tree of a rules file: one [`Directive`] per directive,
//! each with its file and line.

use std::path::PathBuf;
use std::sync::Arc;

use crate::actions::ctl::EngineMode;
use crate::actions::Action;
use crate::variables::Target;

/// Where a directive came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The file (or the name given to [`crate::Ruleset::from_str`]).
    pub file: Arc<PathBuf>,
    /// 1-based line of the directive's first line.
    pub line: usize,
}

/// A directive with its position.
#[derive(Debug, Clone)]
pub struct Spanned {
    /// Where it came from.
    pub pos: Position,
    /// What it says.
    pub directive: Directive,
}

/// `@name argument`, possibly negated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorAst {
    /// Name without `@` (`rx` when the `@` form was omitted).
    pub name: String,
    /// `!@name`.
    pub negated: bool,
    /// The raw argument.
    pub argument: String,
}

/// A `SecRule` (or `SecAction`, which has no targets and the
/// `unconditionalMatch` operator).
#[derive(Debug, Clone)]
pub struct RuleAst {
    /// Targets (empty for `SecAction`).
    pub targets: Vec<Target>,
    /// The operator.
    pub operator: OperatorAst,
    /// The actions, in order.
    pub actions: Vec<Action>,
}

impl RuleAst {
    /// The `id` action, if present.
    pub fn id(&self) -> Option<u64> {
        self.actions.iter().rev().find_map(|a| match a {
            Action::Id(id) => Some(*id),
            _ => None,
        })
    }

    /// Whether the rule has the `chain` action.
    pub fn is_chain(&self) -> bool {
        self.actions.iter().any(|a| matches!(a, Action::Chain))
    }
}

/// What to do when a body exceeds its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LimitAction {
    /// Refuse with status 413 (request) or 500 (response).
    #[default]
    Reject,
    /// Inspect the part within the limit and let the rest through.
    ProcessPartial,
}

/// One directive.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Directive {
    /// `SecRule` or `SecAction`.
    Rule(RuleAst),
    /// `SecMarker NAME`.
    Marker(String),
    /// `SecDefaultAction "phase:N,..."`.
    DefaultAction(Vec<Action>),
    /// `SecRuleEngine`.
    RuleEngine(EngineMode),
    /// `SecRequestBodyAccess`.
    RequestBodyAccess(bool),
    /// `SecResponseBodyAccess`.
    ResponseBodyAccess(bool),
    /// `SecRequestBodyLimit`.
    RequestBodyLimit(u64),
    /// `SecRequestBodyNoFilesLimit`.
    RequestBodyNoFilesLimit(u64),
    /// `SecRequestBodyLimitAction`.
    RequestBodyLimitAction(LimitAction),
    /// `SecResponseBodyLimit`.
    ResponseBodyLimit(u64),
    /// `SecResponseBodyLimitAction`.
    ResponseBodyLimitAction(LimitAction),
    /// `SecResponseBodyMimeType` (lower-cased types).
    ResponseBodyMimeType(Vec<String>),
    /// `SecArgumentsLimit`.
    ArgumentsLimit(u64),
    /// `SecRequestBodyJsonDepthLimit`.
    RequestBodyJsonDepthLimit(u64),
    /// `SecRuleRemoveById` (inclusive ranges).
    RuleRemoveById(Vec<(u64, u64)>),
    /// `SecRuleRemoveByTag` (exact tag, as ModSecurity v3).
    RuleRemoveByTag(String),
    /// `SecRuleRemoveByMsg` (exact message, as ModSecurity v3).
    RuleRemoveByMsg(String),
    /// `SecRuleUpdateTargetById ID TARGETS [REPLACED]`.
    RuleUpdateTargetById {
        /// Inclusive id range.
        ids: (u64, u64),
        /// Targets to add (or exclusions).
        targets: Vec<Target>,
        /// Target to replace, when the third argument is given.
        replace: Option<Vec<Target>>,
    },
    /// `SecRuleUpdateTargetByTag TAG TARGETS`.
    RuleUpdateTargetByTag {
        /// The tag (exact).
        tag: String,
        /// Targets to add (or exclusions).
        targets: Vec<Target>,
    },
    /// `SecRuleUpdateActionById ID ACTIONS`.
    RuleUpdateActionById {
        /// The rule id.
        id: u64,
        /// Actions that replace those of the same kind.
        actions: Vec<Action>,
    },
    /// `SecComponentSignature`.
    ComponentSignature(String),
    /// `SecCollectionTimeout`.
    CollectionTimeout(u64),
    /// A setting accepted and recorded but with no effect on evaluation
    /// (`SecAuditEngine`, `SecAuditLog*`, `SecDebugLog*`, `SecTmpDir`, …):
    /// the directive name as written and its arguments.
    Setting(String, Vec<String>),
}
