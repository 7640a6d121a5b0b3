//! Rule actions (`id:1,phase:2,deny,setvar:'tx.x=+1'`), parsed once into a
//! typed [`Action`] per comma-separated item.
//!
//! One file per action family, each documenting its ModSecurity semantics:
//! [`meta`] (id, msg, tag, …), [`flow`] (chain, skip, skipAfter),
//! [`disruptive`] (deny, block, allow, …), [`data`] (setvar, capture, …),
//! [`ctl`] (per-transaction configuration changes).

pub mod ctl;
pub mod data;
pub mod disruptive;
pub mod flow;
pub mod meta;

use crate::macros::MacroString;
use crate::transformations::Transformation;

pub use ctl::Ctl;
pub use data::{SetVar, SetVarOp};
pub use disruptive::{AllowScope, Disruptive};

/// One parsed action.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Action {
    /// `id:N`.
    Id(u64),
    /// `phase:N` (1..=5; `request` = 2, `response` = 4, `logging` = 5).
    Phase(u8),
    /// `msg:'...'` (macros expanded at match time).
    Msg(MacroString),
    /// `logdata:'...'` (macros expanded at match time).
    LogData(MacroString),
    /// `severity:N` or a severity name, stored as 0 (EMERGENCY) ..= 7 (DEBUG).
    Severity(u8),
    /// `tag:'...'`.
    Tag(MacroString),
    /// `ver:'...'`.
    Ver(String),
    /// `rev:'...'`.
    Rev(String),
    /// `maturity:N`.
    Maturity(u8),
    /// `accuracy:N`.
    Accuracy(u8),
    /// `t:name`.
    Transform(Transformation),
    /// `t:none`: clears the transformations listed before it (and the defaults).
    TransformNone,
    /// `chain`.
    Chain,
    /// `skip:N`.
    Skip(u32),
    /// `skipAfter:MARKER`.
    SkipAfter(String),
    /// A disruptive action.
    Disruptive(Disruptive),
    /// `status:N`.
    Status(u16),
    /// `capture`.
    Capture,
    /// `multiMatch`.
    MultiMatch,
    /// `setvar:...`.
    SetVar(SetVar),
    /// `expirevar:collection.key=seconds`.
    ExpireVar(data::ExpireVar),
    /// `initcol:collection=key`.
    InitCol(data::InitCol),
    /// `setenv:name=value`.
    SetEnv(data::SetEnv),
    /// `ctl:...`.
    Ctl(Ctl),
    /// `log`.
    Log,
    /// `nolog`.
    NoLog,
    /// `auditlog`.
    AuditLog,
    /// `noauditlog`.
    NoAuditLog,
}

impl Action {
    /// Parses one action from its `name` and optional `value` (quotes removed).
    /// The error names the action.
    pub fn parse(name: &str, value: Option<&str>) -> Result<Action, String> {
        let lower = name.to_ascii_lowercase();
        if let Some(a) = meta::parse(&lower, value)? {
            return Ok(a);
        }
        if let Some(a) = flow::parse(&lower, value)? {
            return Ok(a);
        }
        if let Some(a) = disruptive::parse(&lower, value)? {
            return Ok(a);
        }
        if let Some(a) = data::parse(&lower, value)? {
            return Ok(a);
        }
        if lower == "ctl" {
            return Ok(Action::Ctl(Ctl::parse(need(name, value)?)?));
        }
        if lower == "t" {
            let v = need(name, value)?;
            if v.eq_ignore_ascii_case("none") {
                return Ok(Action::TransformNone);
            }
            return crate::transformations::lookup(v)
                .map(Action::Transform)
                .ok_or_else(|| format!("unknown transformation t:{v}"));
        }
        Err(format!("unknown action {name}"))
    }

    /// True for the actions that ModSecurity counts as disruptive.
    pub fn is_disruptive(&self) -> bool {
        matches!(self, Action::Disruptive(_))
    }
}

/// The value of an action that requires one.
pub(crate) fn need<'a>(name: &str, value: Option<&'a str>) -> Result<&'a str, String> {
    match value {
        Some(v) => Ok(v),
        None => Err(format!("action {name} needs a value")),
    }
}

/// Parses a number argument, naming the action on failure.
pub(crate) fn number<T: std::str::FromStr>(name: &str, value: Option<&str>) -> Result<T, String> {
    let v = need(name, value)?;
    v.trim()
        .parse()
        .map_err(|_| format!("action {name}: invalid number {v:?}"))
}

/// Splits an action list (`id:1,msg:'a, b',t:none`) into `(name, value)`
/// pairs, honouring single quotes; the quotes are removed and `\'` unescaped.
pub fn split_actions(text: &str) -> Result<Vec<(String, Option<String>)>, String> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b',') {
            i += 1;
        }
        if i >= bytes.len() {
            break;
        }
        let name_start = i;
        while i < bytes.len() && bytes[i] != b':' && bytes[i] != b',' {
            i += 1;
        }
        let name = text[name_start..i].trim().to_string();
        if name.is_empty() {
            return Err(format!("empty action name in {text:?}"));
        }
        if i >= bytes.len() || bytes[i] == b',' {
            out.push((name, None));
            continue;
        }
        i += 1; // ':'
        while i < bytes.len() && (bytes[i] == b' ' || bytes[i] == b'\t') {
            i += 1;
        }
        let mut value = Vec::new();
        if i < bytes.len() && bytes[i] == b'\'' {
            i += 1;
            let mut closed = false;
            while i < bytes.len() {
                if bytes[i] == b'\\' && bytes.get(i + 1) == Some(&b'\'') {
                    value.push(b'\'');
                    i += 2;
                } else if bytes[i] == b'\'' {
                    closed = true;
                    i += 1;
                    break;
                } else {
                    value.push(bytes[i]);
                    i += 1;
                }
            }
            if !closed {
                return Err(format!("unterminated quote in action {name}"));
            }
            // Anything until the next comma after the closing quote is ignored
            // by ModSecurity only when it is whitespace.
            while i < bytes.len() && bytes[i] != b',' {
                if !bytes[i].is_ascii_whitespace() {
                    return Err(format!(
                        "unexpected text after quoted value of action {name}"
                    ));
                }
                i += 1;
            }
        } else {
            while i < bytes.len() && bytes[i] != b',' {
                value.push(bytes[i]);
                i += 1;
            }
            while value.last().is_some_and(u8::is_ascii_whitespace) {
                value.pop();
            }
        }
        let value = String::from_utf8(value)
            .map_err(|_| format!("action {name}: value is not valid UTF-8"))?;
        out.push((name, Some(value)));
    }
    Ok(out)
}

/// Parses a whole action list.
pub fn parse_actions(text: &str) -> Result<Vec<Action>, String> {
    split_actions(text)?
        .iter()
        .map(|(n, v)| Action::parse(n, v.as_deref()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_quoted_values() {
        let v = split_actions("id:1, msg:'a, b', t:none,nolog, tag:'it\\'s'").unwrap();
        assert_eq!(v[1], ("msg".into(), Some("a, b".into())));
        assert_eq!(v[3], ("nolog".into(), None));
        assert_eq!(v[4].1.as_deref(), Some("it's"));
    }

    #[test]
    fn unknown_action_named() {
        let e = parse_actions("id:1,frobnicate").unwrap_err();
        assert!(e.contains("frobnicate"));
    }
}
