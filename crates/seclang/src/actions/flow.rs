//! Flow actions: `chain`, `skip`, `skipAfter`.
//!
//! - `chain` joins the next rule to this one: the chain matches only when
//!   every link matches, and the first rule carries the id, phase, metadata
//!   and disruptive action.
//! - `skip:N` (after a full match) skips the next N rules or chains of the
//!   same phase.
//! - `skipAfter:M` (after a full match) skips every rule of the phase up to
//!   and including the `SecMarker M` (or the rule with id M); when the marker
//!   does not follow in that phase, the rest of the phase is skipped.

use super::{need, number, Action};

pub(super) fn parse(name: &str, value: Option<&str>) -> Result<Option<Action>, String> {
    Ok(Some(match name {
        "chain" => Action::Chain,
        "skip" => {
            let n: u32 = number(name, value)?;
            if n == 0 {
                return Err("action skip: count must be at least 1".into());
            }
            Action::Skip(n)
        }
        "skipafter" => Action::SkipAfter(need(name, value)?.trim().to_string()),
        _ => return Ok(None),
    }))
}
