//! Data actions: `setvar`, `expirevar`, `initcol`, `setenv`.
//!
//! `setvar` follows ModSecurity v3 exactly, because CRS anomaly scoring
//! depends on it:
//! - `setvar:tx.name=value` stores the macro-expanded value;
//! - `setvar:tx.name` stores `1`; `setvar:!tx.name` deletes;
//! - `setvar:tx.name=+N` / `=-N` parse the current value and the expanded
//!   `N` like C++ `std::stoi` (leading blanks, optional sign, digits, rest
//!   ignored; anything unparsable or out of `i32` range is 0), so `+=` on a
//!   missing variable starts from 0;
//! - the name itself may contain macros (`tx.%{rule.id}-x`) and is stored
//!   lower-cased (collection keys are case-insensitive);
//! - in a rule it runs once per matched value, even when a later link of the
//!   chain fails (ModSecurity v3 runs setvar "independent of the chained
//!   rule result").
//!
//! Persistent collections (`IP`, `GLOBAL`, …): `initcol` loads the record
//! from the transaction's [`CollectionStore`](crate::CollectionStore) (before
//! the rule's setvars run), `expirevar` gives a variable a deadline, and the
//! logging phase saves the record. Without a store they live for the
//! transaction only.

use super::{need, Action};
use crate::macros::MacroString;
use crate::variables::Var;

/// The operation of a `setvar`.
#[derive(Debug, Clone, PartialEq)]
pub enum SetVarOp {
    /// `=value`.
    Set(MacroString),
    /// No `=`: store `1`.
    SetOne,
    /// `!name`: delete.
    Unset,
    /// `=+value`.
    Add(MacroString),
    /// `=-value`.
    Sub(MacroString),
}

/// A parsed `setvar`.
#[derive(Debug, Clone, PartialEq)]
pub struct SetVar {
    /// `TX`, `IP`, `GLOBAL`, `SESSION`, `USER` or `RESOURCE`.
    pub collection: Var,
    /// The key (may hold macros).
    pub key: MacroString,
    /// What to do.
    pub op: SetVarOp,
}

/// A parsed `expirevar`.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpireVar {
    /// The collection.
    pub collection: Var,
    /// The key.
    pub key: MacroString,
    /// Seconds (macro).
    pub seconds: MacroString,
}

/// A parsed `initcol`.
#[derive(Debug, Clone, PartialEq)]
pub struct InitCol {
    /// The collection.
    pub collection: Var,
    /// The record key (macro).
    pub key: MacroString,
}

/// A parsed `setenv`.
#[derive(Debug, Clone, PartialEq)]
pub struct SetEnv {
    /// Variable name (macro).
    pub name: MacroString,
    /// Value (macro); `1` when omitted.
    pub value: MacroString,
    /// `setenv:!name` deletes.
    pub unset: bool,
}

fn collection(name: &str, action: &str) -> Result<Var, String> {
    match Var::from_name(name) {
        Some(v @ (Var::Tx | Var::Ip | Var::Global | Var::Session | Var::User | Var::Resource)) => {
            Ok(v)
        }
        _ => Err(format!("action {action}: unsupported collection {name:?}")),
    }
}

pub(super) fn parse(name: &str, value: Option<&str>) -> Result<Option<Action>, String> {
    Ok(Some(match name {
        "setvar" => Action::SetVar(parse_setvar(need(name, value)?)?),
        "expirevar" => {
            let v = need(name, value)?;
            let (target, seconds) = v.split_once('=').unwrap_or((v, "0"));
            let (coll, key) = target
                .trim()
                .split_once('.')
                .ok_or_else(|| format!("action expirevar: expected collection.key in {v:?}"))?;
            Action::ExpireVar(ExpireVar {
                collection: collection(coll, name)?,
                key: MacroString::parse(key),
                seconds: MacroString::parse(seconds.trim()),
            })
        }
        "initcol" => {
            let v = need(name, value)?;
            let (coll, key) = v
                .split_once('=')
                .ok_or_else(|| format!("action initcol: expected collection=key in {v:?}"))?;
            Action::InitCol(InitCol {
                collection: collection(coll.trim(), name)?,
                key: MacroString::parse(key.trim()),
            })
        }
        "setenv" => {
            let v = need(name, value)?.trim();
            let (unset, v) = match v.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, v),
            };
            let (n, val) = v.split_once('=').unwrap_or((v, "1"));
            Action::SetEnv(SetEnv {
                name: MacroString::parse(n.trim()),
                value: MacroString::parse(val),
                unset,
            })
        }
        _ => return Ok(None),
    }))
}

/// Parses the value of a `setvar`.
pub fn parse_setvar(v: &str) -> Result<SetVar, String> {
    let v = v.trim();
    let (unset, rest) = match v.strip_prefix('!') {
        Some(r) => (true, r.trim_start()),
        None => (false, v),
    };
    let (target, value) = match rest.split_once('=') {
        Some((t, val)) => (t.trim(), Some(val)),
        None => (rest.trim(), None),
    };
    let (coll, key) = target
        .split_once('.')
        .or_else(|| target.split_once(':'))
        .ok_or_else(|| format!("action setvar: expected collection.key in {v:?}"))?;
    if key.is_empty() {
        return Err(format!("action setvar: empty variable name in {v:?}"));
    }
    let collection = collection(coll, "setvar")?;
    let op = if unset {
        SetVarOp::Unset
    } else {
        match value {
            None => SetVarOp::SetOne,
            Some(val) => {
                if let Some(n) = val.strip_prefix('+') {
                    SetVarOp::Add(MacroString::parse(n))
                } else if let Some(n) = val.strip_prefix('-') {
                    SetVarOp::Sub(MacroString::parse(n))
                } else {
                    SetVarOp::Set(MacroString::parse(val))
                }
            }
        }
    };
    Ok(SetVar {
        collection,
        key: MacroString::parse(key),
        op,
    })
}

/// C++ `std::stoi` as ModSecurity uses it: optional leading whitespace and
/// sign, then digits, the rest ignored; no digits or overflow gives 0.
pub fn stoi(bytes: &[u8]) -> i64 {
    let mut i = 0;
    while i < bytes.len() && matches!(bytes[i], b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
        i += 1;
    }
    let mut negative = false;
    if i < bytes.len() && (bytes[i] == b'+' || bytes[i] == b'-') {
        negative = bytes[i] == b'-';
        i += 1;
    }
    let start = i;
    let mut n: i64 = 0;
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        n = n * 10 + i64::from(bytes[i] - b'0');
        if n > i64::from(i32::MAX) + 1 {
            return 0;
        }
        i += 1;
    }
    if i == start {
        return 0;
    }
    let n = if negative { -n } else { n };
    if n > i64::from(i32::MAX) || n < i64::from(i32::MIN) {
        return 0;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stoi_like_cpp() {
        assert_eq!(stoi(b" 42abc"), 42);
        assert_eq!(stoi(b"-7"), -7);
        assert_eq!(stoi(b"abc"), 0);
        assert_eq!(stoi(b""), 0);
        assert_eq!(stoi(b"99999999999"), 0);
        assert_eq!(stoi(b"-2147483648"), i64::from(i32::MIN));
    }

    #[test]
    fn setvar_forms() {
        let s = parse_setvar("tx.score=+%{tx.critical_anomaly_score}").unwrap();
        assert!(matches!(s.op, SetVarOp::Add(_)));
        assert_eq!(parse_setvar("!tx.x").unwrap().op, SetVarOp::Unset);
        assert_eq!(parse_setvar("tx.x").unwrap().op, SetVarOp::SetOne);
        assert!(matches!(
            parse_setvar("tx.x=-5").unwrap().op,
            SetVarOp::Sub(_)
        ));
        assert!(parse_setvar("foo.x=1").is_err());
    }
}
