//! The `[identity]` section of palisade's config file.
//!
//! ```toml
//! [identity]
//! users_db = "./data/users.db"
//! issuer = "palisade"            # shown in authenticator apps
//!
//! [identity.argon2]              # defaults: OWASP (19 MiB, t=2, p=1)
//! m_cost_kib = 19456
//! t_cost = 2
//! p_cost = 1
//!
//! [identity.password_policy]
//! min_length = 12
//! min_score = 3                  # zxcvbn 0..=4
//! breached_list = "/etc/palisade/pwned-passwords.bin"
//!
//! [identity.sessions]
//! inactivity_secs = 3600
//! absolute_secs = 43200
//!
//! [identity.brute_force]
//! user_max_failures = 5
//! ip_max_failures = 20
//!
//! [identity.access]
//! default_policy = "deny"
//! [[identity.access.rules]]
//! name = "admins"
//! hosts = ["admin.example.com"]
//! roles = ["admin"]
//! policy = "two_factor"
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::access::{AccessRules, Policy, RuleConfig};
use crate::bruteforce::BruteForceConfig;
use crate::error::{Error, Result};
use crate::password::{HashParams, PolicyConfig};
use crate::session::SessionConfig;

/// 16 MiB: largest config file read (bounds memory on a wrong path).
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// `[identity.access]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessConfig {
    /// Policy when no rule matches (default `deny`).
    pub default_policy: Policy,
    /// Rules, first match wins.
    pub rules: Vec<RuleConfig>,
}

impl Default for AccessConfig {
    fn default() -> Self {
        AccessConfig {
            default_policy: Policy::Deny,
            rules: Vec::new(),
        }
    }
}

impl AccessConfig {
    /// Compiles the rules.
    pub fn compile(&self) -> Result<AccessRules> {
        AccessRules::new(&self.rules, self.default_policy)
    }
}

/// `[identity]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityConfig {
    /// The user database file (default `./data/users.db`).
    pub users_db: PathBuf,
    /// Issuer name in TOTP enrollment (default `palisade`).
    pub issuer: String,
    /// argon2id parameters for new hashes.
    pub argon2: HashParams,
    /// Password policy.
    pub password_policy: PolicyConfig,
    /// Session timeouts.
    pub sessions: SessionConfig,
    /// Brute-force thresholds.
    pub brute_force: BruteForceConfig,
    /// Access rules.
    pub access: AccessConfig,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            users_db: PathBuf::from("./data/users.db"),
            issuer: "palisade".into(),
            argon2: HashParams::default(),
            password_policy: PolicyConfig::default(),
            sessions: SessionConfig::default(),
            brute_force: BruteForceConfig::default(),
            access: AccessConfig::default(),
        }
    }
}

/// The `[identity]` and `[state]` sections of a config file; other
/// sections are left to their owners. Relative paths are taken relative
/// to the config file's directory.
pub fn load_file(path: &Path) -> Result<(IdentityConfig, state::StateConfig)> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .map_err(|e| Error::Corrupt(format!("{}: {e}", path.display())))?
        .take(MAX_CONFIG_BYTES)
        .read_to_string(&mut text)?;
    let (mut id, mut st) =
        parse(&text).map_err(|e| Error::Corrupt(format!("{}: {e}", path.display())))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let rel = |p: &mut PathBuf| {
        if p.is_relative() {
            *p = base.join(&*p);
        }
    };
    rel(&mut id.users_db);
    if let Some(b) = id.password_policy.breached_list.as_mut() {
        rel(b);
    }
    rel(&mut st.sqlite.path);
    Ok((id, st))
}

/// Parses the two sections from TOML text.
pub fn parse(text: &str) -> std::result::Result<(IdentityConfig, state::StateConfig), String> {
    let v: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
    let id = match v.get("identity") {
        Some(t) => t
            .clone()
            .try_into::<IdentityConfig>()
            .map_err(|e| format!("[identity]: {e}"))?,
        None => IdentityConfig::default(),
    };
    id.argon2
        .validate()
        .map_err(|e| format!("[identity.argon2]: {e}"))?;
    let st = match v.get("state") {
        Some(t) => t
            .clone()
            .try_into::<state::StateConfig>()
            .map_err(|e| format!("[state]: {e}"))?,
        None => state::StateConfig::default(),
    };
    Ok((id, st))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_parses() {
        let doc = include_str!("config.rs");
        let example: String = doc
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| format!("{}\n", l.trim_start_matches("//!").trim_start()))
            .collect();
        let (id, _) = parse(&example).unwrap();
        assert_eq!(id.issuer, "palisade");
        assert_eq!(id.access.rules.len(), 1);
        id.access.compile().unwrap();
        assert!(parse("[identity]\nbogus = 1\n")
            .unwrap_err()
            .contains("bogus"));
        assert!(parse("[identity.argon2]\nm_cost_kib = 1024\n").is_err());
        let (id, st) = parse("[other]\nx = 1\n").unwrap();
        assert_eq!(id, IdentityConfig::default());
        assert_eq!(st, state::StateConfig::default());
    }
}
