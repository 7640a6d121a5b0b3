//! The `[identity]` section of palisade's config file.
//!
//! ```toml
//! [identity]
//! users_db = "./data/users.db"
//! issuer = "palisade"            # shown in authenticator apps
//! portal_path = "/.palisade/auth" # login pages and forward-auth (gateway)
//! cookie_name = "palisade_session"
//! user_header = "Remote-User"    # identity forwarded upstream
//! groups_header = "Remote-Groups"
//! # secret = "…"                # CSRF key; set it when several nodes serve the portal
//! totp_self_enrollment = false   # signed-in users may set up TOTP in the portal
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

/// Default portal path prefix.
pub const DEFAULT_PORTAL_PATH: &str = "/.palisade/auth";
/// Default session cookie name.
pub const DEFAULT_COOKIE_NAME: &str = "palisade_session";
/// Default header carrying the user name upstream.
pub const DEFAULT_USER_HEADER: &str = "Remote-User";
/// Default header carrying the user's roles upstream (comma-separated).
pub const DEFAULT_GROUPS_HEADER: &str = "Remote-Groups";
/// 16 bytes: shortest `secret` accepted (the CSRF HMAC key).
pub const MIN_SECRET_BYTES: usize = 16;

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
    /// Path prefix of the portal pages and the forward-auth endpoint
    /// (gateway; default `/.palisade/auth`).
    pub portal_path: String,
    /// Session cookie name (default `palisade_session`).
    pub cookie_name: String,
    /// Header naming the authenticated user upstream (default `Remote-User`).
    pub user_header: String,
    /// Header listing the user's roles upstream (default `Remote-Groups`).
    pub groups_header: String,
    /// Key of the portal's CSRF tokens; random per process when unset
    /// (then a form loaded before a restart, or on another node, is refused
    /// once and reloaded).
    pub secret: Option<String>,
    /// Whether a signed-in user without TOTP may enrol an authenticator
    /// in the portal (`{portal_path}/totp`), and is sent there when a
    /// `two_factor` route asks (default `false`: only an administrator
    /// enrols, with `palisade user totp-enroll`). Off by default because
    /// self-enrolment lets whoever knows a password alone bind their own
    /// authenticator to an account that has none.
    pub totp_self_enrollment: bool,
}

impl IdentityConfig {
    /// Checks the gateway-facing keys (paths, cookie and header names, secret).
    pub fn validate(&self) -> std::result::Result<(), String> {
        self.argon2.validate().map_err(|e| format!("argon2: {e}"))?;
        let p = &self.portal_path;
        if !p.starts_with('/')
            || p.len() < 2
            || p.ends_with('/')
            || !p
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/-._~".contains(&b))
            || p.contains("//")
            || p.split('/').any(|seg| seg == "." || seg == "..")
        {
            return Err(format!(
                "portal_path {p:?} must be an absolute path like \"/.palisade/auth\" (letters, digits, -._~, no trailing /)"
            ));
        }
        let c = &self.cookie_name;
        if c.is_empty()
            || c.len() > 64
            || !c
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(format!(
                "cookie_name {c:?} must be 1-64 letters, digits, '-', '_' or '.'"
            ));
        }
        for (k, v) in [
            ("user_header", &self.user_header),
            ("groups_header", &self.groups_header),
        ] {
            if v.is_empty()
                || v.len() > 64
                || !v
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(format!("{k} {v:?} is not a valid header name"));
            }
        }
        if self.user_header.eq_ignore_ascii_case(&self.groups_header) {
            return Err("user_header and groups_header must differ".into());
        }
        if let Some(s) = &self.secret {
            if s.len() < MIN_SECRET_BYTES {
                return Err(format!("secret must be at least {MIN_SECRET_BYTES} bytes"));
            }
        }
        Ok(())
    }
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
            portal_path: DEFAULT_PORTAL_PATH.into(),
            cookie_name: DEFAULT_COOKIE_NAME.into(),
            user_header: DEFAULT_USER_HEADER.into(),
            groups_header: DEFAULT_GROUPS_HEADER.into(),
            secret: None,
            totp_self_enrollment: false,
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
    let (mut id, mut st, derived_state) =
        parse_inner(&text).map_err(|e| Error::Corrupt(format!("{}: {e}", path.display())))?;
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
    // An explicit relative state path is taken against the config file's
    // directory; the default (`data_dir/state.db`, derived in `parse`) is
    // left as the gateway reads it, relative to the working directory, so
    // `palisade user logout-all` revokes in the store `palisade serve` uses.
    if !derived_state {
        rel(&mut st.sqlite.path);
    }
    Ok((id, st))
}

/// Parses the two sections from TOML text.
pub fn parse(text: &str) -> std::result::Result<(IdentityConfig, state::StateConfig), String> {
    parse_inner(text).map(|(i, s, _)| (i, s))
}

/// Like [`parse`]; also says whether the SQLite path is the derived default.
fn parse_inner(
    text: &str,
) -> std::result::Result<(IdentityConfig, state::StateConfig, bool), String> {
    let v: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
    let id = match v.get("identity") {
        Some(t) => t
            .clone()
            .try_into::<IdentityConfig>()
            .map_err(|e| format!("[identity]: {e}"))?,
        None => IdentityConfig::default(),
    };
    id.validate().map_err(|e| format!("[identity]: {e}"))?;
    let st = match v.get("state") {
        Some(t) => t
            .clone()
            .try_into::<state::StateConfig>()
            .map_err(|e| format!("[state]: {e}"))?,
        None => state::StateConfig::default(),
    };
    let mut st = st;
    let derived = st.sqlite.path == state::SqliteConfig::default().path;
    if derived {
        // As the gateway does: the default SQLite file is data_dir/state.db.
        let data_dir = v
            .get("server")
            .and_then(|s| s.get("data_dir"))
            .and_then(|d| d.as_str())
            .unwrap_or("./data");
        st.sqlite.path = Path::new(data_dir).join("state.db");
    }
    Ok((id, st, derived))
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
        assert!(!id.totp_self_enrollment, "the documented default");
        id.access.compile().unwrap();
        let (id, _) = parse("[identity]\ntotp_self_enrollment = true\n").unwrap();
        assert!(id.totp_self_enrollment);
        assert!(parse("[identity]\nbogus = 1\n")
            .unwrap_err()
            .contains("bogus"));
        assert!(parse("[identity.argon2]\nm_cost_kib = 1024\n").is_err());
        for bad in [
            "portal_path = \"auth\"",
            "portal_path = \"/a/\"",
            "portal_path = \"/a/../b\"",
            "cookie_name = \"a b\"",
            "user_header = \"Remote User\"",
            "groups_header = \"remote-user\"",
            "secret = \"short\"",
        ] {
            let e = parse(&format!("[identity]\n{bad}\n")).unwrap_err();
            assert!(e.starts_with("[identity]: "), "{bad}: {e}");
        }
        let (id, st) = parse("[other]\nx = 1\n").unwrap();
        assert_eq!(id, IdentityConfig::default());
        // The gateway's default state file: data_dir/state.db.
        assert_eq!(st.sqlite.path, PathBuf::from("./data/state.db"));
        let (_, st) = parse("[server]\ndata_dir = \"/var/lib/p\"\n").unwrap();
        assert_eq!(st.sqlite.path, PathBuf::from("/var/lib/p/state.db"));
    }
}
