//! Rules whose outcome is known at load time.
//!
//! OWASP CRS starts every transaction with dozens of rules that only read
//! and write `TX` variables holding constants: the 901 initialization
//! (`SecRule &TX:x "@eq 0" "setvar:tx.x=5"`, `SecAction` with twenty
//! `setvar`s) and, in every rules file, the paranoia-level skips
//! (`SecRule TX:DETECTION_PARANOIA_LEVEL "@lt 2" "skipAfter:…"`). Their
//! outcome depends on nothing but the `TX` values they read, so it is
//! computed once when the rule set loads (a probe transaction evaluates
//! them in order) and recorded as a [`Memo`].
//!
//! When such a rule is reached, the engine checks that every `TX` variable
//! the rule reads holds what it held in the probe; if so it applies the
//! recorded outcome (the same `TX` writes, `MATCHED_VAR*`, matched-rule
//! record and flow), else it evaluates the rule as usual. The check makes
//! the shortcut exact whatever ran before (other rules, `ctl`, skips): a
//! rule only reading `TX` values equal to the probe's computes the probe's
//! result.

use crate::actions::{Action, Disruptive, SetVarOp};
use crate::macros::MacroString;
use crate::ruleset::Rule;
use crate::transaction::MatchedRule;
use crate::variables::{Selector, Var};

/// Operators whose result depends only on their input and argument.
const PURE_OPERATORS: &[&str] = &[
    "eq",
    "ge",
    "gt",
    "le",
    "lt",
    "streq",
    "within",
    "contains",
    "containsword",
    "beginswith",
    "endswith",
    "rx",
    "unconditionalmatch",
    "nomatch",
];

/// A value of a variable: `None` when it does not exist.
pub(crate) type TxValue = Option<Vec<u8>>;

/// The load-time outcome of a rule (see the module documentation).
#[derive(Debug)]
pub(crate) struct Memo {
    /// Every `TX` key the rule reads, with its value in the probe.
    pub(crate) reads: Vec<(Vec<u8>, TxValue)>,
    /// The `TX` variables the rule changed, with their new value (`None`:
    /// removed).
    pub(crate) writes: Vec<(Vec<u8>, TxValue)>,
    /// Whether the rule matched some value (it then set MATCHED_VAR and
    /// MATCHED_VAR_NAME to these).
    pub(crate) matched_var: Option<(Vec<u8>, Vec<u8>)>,
    /// MATCHED_VARS after the rule (name, value).
    pub(crate) matched_vars: Vec<(Vec<u8>, Vec<u8>)>,
    /// The record when the whole rule matched (`None`: it did not).
    pub(crate) record: Option<MatchedRule>,
}

/// The `TX` keys a rule (every link) reads, when its outcome depends on
/// nothing else; `None` when it may depend on request data, time,
/// persistent collections or earlier matches, or when it does more than
/// setting `TX` variables.
pub(crate) fn tx_reads(rule: &Rule) -> Option<Vec<Vec<u8>>> {
    let mut reads = Vec::new();
    let mut link = Some(rule);
    while let Some(l) = link {
        if !l.exclusions.is_empty() {
            return None;
        }
        for t in &l.targets {
            match (&t.var, &t.selector, t.exclude) {
                (Var::Tx, Selector::Key(k), false) => reads.push(k.as_bytes().to_vec()),
                _ => return None,
            }
        }
        let op = l.operator_name.to_ascii_lowercase();
        if !PURE_OPERATORS.contains(&op.as_str()) {
            return None;
        }
        // The operator argument is expanded before this rule matches
        // anything: MATCHED_VAR there would be an earlier rule's.
        macro_reads(&MacroString::parse(&l.operator_argument), false, &mut reads)?;
        if !matches!(l.disruptive, None | Some(Disruptive::Pass)) {
            return None;
        }
        for m in l.msg.iter().chain(&l.logdata).chain(&l.tags) {
            macro_reads(m, true, &mut reads)?;
        }
        for sv in &l.setvars {
            setvar_reads(sv, &mut reads)?;
        }
        for a in &l.after_match {
            match a {
                Action::SetVar(sv) => setvar_reads(sv, &mut reads)?,
                _ => return None,
            }
        }
        link = l.chain.as_deref();
    }
    reads.sort();
    reads.dedup();
    Some(reads)
}

fn setvar_reads(sv: &crate::actions::SetVar, reads: &mut Vec<Vec<u8>>) -> Option<()> {
    if sv.collection != Var::Tx {
        return None;
    }
    macro_reads(&sv.key, true, reads)?;
    match &sv.op {
        SetVarOp::Set(v) | SetVarOp::Add(v) | SetVarOp::Sub(v) => macro_reads(v, true, reads),
        SetVarOp::SetOne | SetVarOp::Unset => Some(()),
    }
}

/// Adds the `TX` keys `m` references; `None` when it references anything
/// but `TX:key`, `RULE` and (when `own_match`) the rule's own MATCHED_VAR.
fn macro_reads(m: &MacroString, own_match: bool, reads: &mut Vec<Vec<u8>>) -> Option<()> {
    for r in m.refs() {
        match (r.var, &r.key) {
            (Some(Var::Tx), Some(k)) => reads.push(k.as_bytes().to_vec()),
            (Some(Var::Rule), _) => {}
            (Some(Var::MatchedVar | Var::MatchedVarName), _) if own_match => {}
            _ => return None,
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use crate::ruleset::Ruleset;

    fn memoized(text: &str) -> Vec<(u64, bool)> {
        let rs =
            Ruleset::from_str(text, "t.conf", &crate::FsLoader).unwrap_or_else(|e| panic!("{e}"));
        rs.rules(1).map(|r| (r.id, r.memo.is_some())).collect()
    }

    #[test]
    fn only_tx_only_pass_rules_are_memoized() {
        let got = memoized(
            r#"
SecRule &TX:a "@eq 0" "id:1,phase:1,pass,nolog,setvar:tx.a=1"
SecAction "id:2,phase:1,pass,nolog,setvar:tx.b=%{tx.a}"
SecRule ARGS "@rx x" "id:3,phase:1,pass,nolog,setvar:tx.c=1"
SecRule TX:a "@eq 1" "id:4,phase:1,pass,nolog,setvar:tx.d=%{REMOTE_ADDR}"
SecRule TX:a "@eq 1" "id:5,phase:1,deny"
SecRule TX:a "@eq 1" "id:6,phase:1,pass,nolog,setvar:ip.x=1"
SecRule TX:a "@eq 1" "id:7,phase:1,pass,nolog,ctl:ruleEngine=Off"
SecRule TX:/^a/ "@eq 1" "id:8,phase:1,pass,nolog"
SecRule TX:a "@streq %{MATCHED_VAR}" "id:9,phase:1,pass,nolog"
SecRule TX:a "@eq 1" "id:10,phase:1,pass,msg:'%{MATCHED_VAR} %{tx.b}',chain"
    SecRule TX:b "@rx ^1$" "setvar:tx.e=%{MATCHED_VAR}"
"#,
        );
        assert_eq!(
            got,
            [
                (1, true),
                (2, true),
                (3, false),
                (4, false),
                (5, false),
                (6, false),
                (7, false),
                (8, false),
                (9, false),
                (10, true),
            ]
        );
    }

    #[test]
    fn no_memos_without_prefilters() {
        let rs = crate::RulesetBuilder::new(&crate::FsLoader)
            .prefilters(false)
            .add_str(
                r#"SecAction "id:1,phase:1,pass,nolog,setvar:tx.a=1""#,
                "t.conf",
            )
            .and_then(crate::RulesetBuilder::build)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(rs.rules(1).all(|r| r.memo.is_none()));
    }
}
