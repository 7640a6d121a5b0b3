//! Disruptive actions: `deny`, `drop`, `block`, `pass`, `allow`, `redirect`,
//! and `status` which sets the status `deny`/`redirect` answer with.
//!
//! - A rule has at most one disruptive action; the last one listed wins.
//! - `block` performs the disruptive action of the phase's `SecDefaultAction`
//!   (CRS sets it to `pass` in anomaly-scoring mode).
//! - A rule without a disruptive action of its own inherits the one of the
//!   phase's `SecDefaultAction` (ModSecurity v2 and Coraza semantics).
//! - They only take effect with `SecRuleEngine On`; in `DetectionOnly` the
//!   match is recorded and nothing is interrupted.
//! - `allow` stops rule processing: of the whole transaction except logging
//!   (`allow`), of the current phase (`allow:phase`), or of the request
//!   phases (`allow:request`). It never produces an intervention.

use super::{need, Action};
use crate::macros::MacroString;

/// What `allow` skips.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllowScope {
    /// Every later rule except phase 5.
    All,
    /// The rest of the current phase.
    Phase,
    /// The rest of phases 1 and 2.
    Request,
}

/// A disruptive action.
#[derive(Debug, Clone, PartialEq)]
pub enum Disruptive {
    /// Continue.
    Pass,
    /// Stop with a status (default 403).
    Deny,
    /// Close the connection.
    Drop,
    /// Use the phase's default disruptive action.
    Block,
    /// Stop evaluating (see [`AllowScope`]).
    Allow(AllowScope),
    /// Answer with a redirect to the (macro-expanded) URL.
    Redirect(MacroString),
}

pub(super) fn parse(name: &str, value: Option<&str>) -> Result<Option<Action>, String> {
    Ok(Some(match name {
        "pass" => Action::Disruptive(Disruptive::Pass),
        "deny" => Action::Disruptive(Disruptive::Deny),
        "drop" => Action::Disruptive(Disruptive::Drop),
        "block" => Action::Disruptive(Disruptive::Block),
        "allow" => Action::Disruptive(Disruptive::Allow(match value.map(str::trim) {
            None | Some("") => AllowScope::All,
            Some(v) if v.eq_ignore_ascii_case("phase") => AllowScope::Phase,
            Some(v) if v.eq_ignore_ascii_case("request") => AllowScope::Request,
            Some(v) => return Err(format!("action allow: invalid scope {v:?}")),
        })),
        "redirect" => {
            Action::Disruptive(Disruptive::Redirect(MacroString::parse(need(name, value)?)))
        }
        "status" => {
            let v = need(name, value)?.trim();
            let status: u16 = v
                .parse()
                .ok()
                .filter(|s| (100..=999).contains(s))
                .ok_or_else(|| format!("action status: invalid status {v:?}"))?;
            Action::Status(status)
        }
        _ => return Ok(None),
    }))
}
