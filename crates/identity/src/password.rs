//! Password hashing (argon2id, PHC strings) with bounded concurrency, and the
//! password policy: length, zxcvbn strength, breached/common-password list.
//!
//! Default argon2id parameters are OWASP's recommendation (m = 19 MiB,
//! t = 2, p = 1): see [`DEFAULT_M_COST_KIB`]. A stored hash made with other
//! parameters still verifies; [`Hasher::needs_rehash`] tells the caller to
//! store a fresh hash after a successful login.

use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::breach::BreachFilter;
use crate::error::{Error, Result};

/// Default argon2id memory cost: 19 456 KiB (19 MiB), OWASP's minimum
/// recommendation for argon2id with t = 2, p = 1.
pub const DEFAULT_M_COST_KIB: u32 = 19_456;
/// Default argon2id passes: 2 (OWASP).
pub const DEFAULT_T_COST: u32 = 2;
/// Default argon2id lanes: 1 (OWASP).
pub const DEFAULT_P_COST: u32 = 1;
/// Minimum accepted memory cost (KiB) in configuration: 19 456, so a
/// config typo cannot silently weaken hashes below OWASP's advice.
pub const MIN_M_COST_KIB: u32 = 19_456;
/// Maximum accepted memory cost (KiB): 1 GiB; bounds memory per hash
/// times [`MAX_CONCURRENT_HASHES`].
pub const MAX_M_COST_KIB: u32 = 1 << 20;
/// Default 4: argon2 computations running at once. Each takes ~19 MiB and
/// tens of milliseconds of one core; a login flood queues behind this
/// semaphore instead of pinning every core and exhausting memory.
pub const MAX_CONCURRENT_HASHES: usize = 4;
/// Default 2 s: how long a login waits for a hashing slot before it is
/// refused with [`Error::Busy`]; bounds the queue a flood can build.
pub const HASH_QUEUE_TIMEOUT: Duration = Duration::from_secs(2);
/// 1024 bytes: longest password accepted. Bounds hashing input and the
/// strength estimator's work on hostile input.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// 100 characters: only this prefix is given to zxcvbn, whose matching is
/// super-linear in the length; a longer password is strong by length anyway.
pub const ZXCVBN_MAX_CHARS: usize = 100;
/// 16 bytes of random salt per hash (argon2's recommendation).
pub const SALT_LEN: usize = 16;

/// argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HashParams {
    /// Memory in KiB (default [`DEFAULT_M_COST_KIB`]).
    pub m_cost_kib: u32,
    /// Passes (default [`DEFAULT_T_COST`]).
    pub t_cost: u32,
    /// Lanes (default [`DEFAULT_P_COST`]).
    pub p_cost: u32,
}

impl Default for HashParams {
    fn default() -> Self {
        HashParams {
            m_cost_kib: DEFAULT_M_COST_KIB,
            t_cost: DEFAULT_T_COST,
            p_cost: DEFAULT_P_COST,
        }
    }
}

impl HashParams {
    /// Checks the parameters are within [`MIN_M_COST_KIB`]..=[`MAX_M_COST_KIB`],
    /// t in 1..=16, p in 1..=16.
    pub fn validate(&self) -> Result<()> {
        if !(MIN_M_COST_KIB..=MAX_M_COST_KIB).contains(&self.m_cost_kib) {
            return Err(Error::BadHash(format!(
                "m_cost_kib {} outside {MIN_M_COST_KIB}..={MAX_M_COST_KIB}",
                self.m_cost_kib
            )));
        }
        if !(1..=16).contains(&self.t_cost) || !(1..=16).contains(&self.p_cost) {
            return Err(Error::BadHash("t_cost and p_cost must be in 1..=16".into()));
        }
        Ok(())
    }

    fn argon2(&self) -> Result<Argon2<'static>> {
        let p = Params::new(self.m_cost_kib, self.t_cost, self.p_cost, None)
            .map_err(|e| Error::BadHash(e.to_string()))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, p))
    }
}

/// Hashes and verifies passwords. Cheap to clone; clones share the
/// concurrency limit.
#[derive(Clone, Debug)]
pub struct Hasher {
    params: HashParams,
    slots: Arc<Semaphore>,
    dummy: Arc<std::sync::OnceLock<String>>,
}

impl Default for Hasher {
    fn default() -> Self {
        Hasher::new(HashParams::default())
    }
}

impl Hasher {
    /// A hasher producing hashes with `params` (validate them first).
    pub fn new(params: HashParams) -> Hasher {
        Hasher {
            params,
            slots: Arc::new(Semaphore::new(MAX_CONCURRENT_HASHES)),
            dummy: Arc::new(std::sync::OnceLock::new()),
        }
    }

    /// A hasher with weak parameters for tests only (m = 64 KiB, t = 1).
    #[doc(hidden)]
    pub fn insecure_for_tests() -> Hasher {
        Hasher::new(HashParams {
            m_cost_kib: 64,
            t_cost: 1,
            p_cost: 1,
        })
    }

    /// The parameters new hashes use.
    pub fn params(&self) -> HashParams {
        self.params
    }

    /// Hashes `password` into a PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`).
    /// Synchronous and unbounded: for the CLI; servers use [`Hasher::hash_bounded`].
    pub fn hash(&self, password: &str) -> Result<String> {
        check_len(password)?;
        let mut salt = [0u8; SALT_LEN];
        getrandom::getrandom(&mut salt).map_err(|e| Error::BadHash(e.to_string()))?;
        let salt = SaltString::encode_b64(&salt).map_err(|e| Error::BadHash(e.to_string()))?;
        let h = self
            .params
            .argon2()?
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| Error::BadHash(e.to_string()))?;
        Ok(h.to_string())
    }

    /// Whether `password` matches the PHC string `phc` (constant-time
    /// comparison inside argon2). A malformed hash is an error, not `false`.
    pub fn verify(&self, password: &str, phc: &str) -> Result<bool> {
        check_len(password)?;
        let parsed = PasswordHash::new(phc).map_err(|e| Error::BadHash(e.to_string()))?;
        if parsed.algorithm.as_str() != "argon2id" {
            return Err(Error::BadHash(format!(
                "algorithm {} (only argon2id)",
                parsed.algorithm
            )));
        }
        let stored = Params::try_from(&parsed).map_err(|e| Error::BadHash(e.to_string()))?;
        if stored.m_cost() > MAX_M_COST_KIB || stored.t_cost() > 16 || stored.p_cost() > 16 {
            // A tampered hash must not make us allocate gigabytes.
            return Err(Error::BadHash("cost parameters above limits".into()));
        }
        Ok(Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    }

    /// Whether `phc` was made with parameters other than ours (or is
    /// unparsable): after a successful login, store a new hash.
    pub fn needs_rehash(&self, phc: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(phc) else {
            return true;
        };
        if parsed.algorithm.as_str() != "argon2id" || parsed.version != Some(0x13) {
            return true;
        }
        match Params::try_from(&parsed) {
            Ok(p) => {
                p.m_cost() != self.params.m_cost_kib
                    || p.t_cost() != self.params.t_cost
                    || p.p_cost() != self.params.p_cost
            }
            Err(_) => true,
        }
    }

    /// [`Hasher::hash`] on a blocking thread, at most
    /// [`MAX_CONCURRENT_HASHES`] at once; [`Error::Busy`] after waiting
    /// [`HASH_QUEUE_TIMEOUT`] for a slot.
    pub async fn hash_bounded(&self, password: &str) -> Result<String> {
        check_len(password)?;
        let _permit = self.acquire().await?;
        let me = self.clone();
        let pw = password.to_owned();
        tokio::task::spawn_blocking(move || me.hash(&pw))
            .await
            .map_err(|e| Error::BadHash(e.to_string()))?
    }

    /// [`Hasher::verify`] with the same bound as [`Hasher::hash_bounded`].
    pub async fn verify_bounded(&self, password: &str, phc: &str) -> Result<bool> {
        check_len(password)?;
        let _permit = self.acquire().await?;
        let me = self.clone();
        let pw = password.to_owned();
        let phc = phc.to_owned();
        tokio::task::spawn_blocking(move || me.verify(&pw, &phc))
            .await
            .map_err(|e| Error::BadHash(e.to_string()))?
    }

    /// Verifies a login: against the user's hash, or, when the user does
    /// not exist (`phc` is `None`), against a dummy hash with the same
    /// parameters and returns `false` — so the response time does not
    /// reveal whether a username exists.
    pub async fn verify_login(&self, password: &str, phc: Option<&str>) -> Result<bool> {
        match phc {
            Some(p) => self.verify_bounded(password, p).await,
            None => {
                let dummy = match self.dummy.get() {
                    Some(d) => d.clone(),
                    None => {
                        let d = self.hash_bounded("palisade-dummy-password").await?;
                        self.dummy.get_or_init(|| d).clone()
                    }
                };
                self.verify_bounded(password, &dummy).await.map(|_| false)
            }
        }
    }

    async fn acquire(&self) -> Result<tokio::sync::SemaphorePermit<'_>> {
        match tokio::time::timeout(HASH_QUEUE_TIMEOUT, self.slots.acquire()).await {
            Ok(Ok(p)) => Ok(p),
            _ => Err(Error::Busy),
        }
    }

    /// Hashing slots free right now (for metrics and tests).
    pub fn free_slots(&self) -> usize {
        self.slots.available_permits()
    }
}

fn check_len(password: &str) -> Result<()> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(Error::TooLong {
            what: "password",
            len: password.len(),
            limit: MAX_PASSWORD_BYTES,
        });
    }
    Ok(())
}

/// Default 12 characters: shortest password accepted (NIST SP 800-63B asks
/// at least 8; 12 gives margin against offline guessing).
pub const DEFAULT_MIN_LENGTH: usize = 12;
/// Default 3 (of 0..=4): minimum zxcvbn score ("safely unguessable:
/// moderate protection from offline slow-hash scenario").
pub const DEFAULT_MIN_SCORE: u8 = 3;

/// Password policy configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Minimum length in characters (default [`DEFAULT_MIN_LENGTH`]).
    pub min_length: usize,
    /// Minimum zxcvbn score 0..=4 (default [`DEFAULT_MIN_SCORE`]; 0 disables).
    pub min_score: u8,
    /// Breached/common-password list: HIBP `HASH:count` text, a plain list
    /// (one password a line), or a filter compiled by [`BreachFilter::compile`].
    pub breached_list: Option<std::path::PathBuf>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            min_length: DEFAULT_MIN_LENGTH,
            min_score: DEFAULT_MIN_SCORE,
            breached_list: None,
        }
    }
}

/// The password policy: checks a new password and says why it is refused.
#[derive(Debug, Default)]
pub struct Policy {
    cfg: PolicyConfig,
    breached: Option<BreachFilter>,
}

impl Policy {
    /// Builds the policy, loading the breached list if configured.
    pub fn new(cfg: PolicyConfig) -> Result<Policy> {
        let breached = match &cfg.breached_list {
            Some(p) => Some(BreachFilter::open(p)?),
            None => None,
        };
        Ok(Policy { cfg, breached })
    }

    /// A policy with an already-loaded filter.
    pub fn with_filter(cfg: PolicyConfig, filter: Option<BreachFilter>) -> Policy {
        Policy {
            cfg,
            breached: filter,
        }
    }

    /// Accepts `password` for `username` or returns [`Error::WeakPassword`]
    /// saying why (length, breached list, strength with zxcvbn's hint).
    pub fn check(&self, username: &str, password: &str) -> Result<()> {
        check_len(password)?;
        let chars = password.chars().count();
        if chars < self.cfg.min_length {
            return Err(Error::WeakPassword(format!(
                "too short: {chars} characters, at least {} required",
                self.cfg.min_length
            )));
        }
        if let Some(f) = &self.breached {
            if f.contains(password)? {
                return Err(Error::WeakPassword(
                    "appears in a list of breached or common passwords; choose another".into(),
                ));
            }
        }
        if self.cfg.min_score > 0 {
            let prefix: String = password.chars().take(ZXCVBN_MAX_CHARS).collect();
            let e = zxcvbn::zxcvbn(&prefix, &[username]);
            let score = u8::from(e.score());
            if score < self.cfg.min_score {
                let hint = e
                    .feedback()
                    .and_then(|f| f.warning())
                    .map(|w| format!(" ({w})"))
                    .unwrap_or_default();
                return Err(Error::WeakPassword(format!(
                    "too easy to guess: strength {score}/4, at least {} required{hint}",
                    self.cfg.min_score
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_verify_and_rehash() {
        let h = Hasher::insecure_for_tests();
        let phc = h.hash("correct horse battery staple").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{phc}");
        assert!(h.verify("correct horse battery staple", &phc).unwrap());
        assert!(!h.verify("correct horse battery stapler", &phc).unwrap());
        assert!(!h.needs_rehash(&phc));
        let stronger = Hasher::new(HashParams {
            m_cost_kib: 128,
            t_cost: 1,
            p_cost: 1,
        });
        assert!(stronger.needs_rehash(&phc));
        // Old hashes still verify under new parameters.
        assert!(stronger
            .verify("correct horse battery staple", &phc)
            .unwrap());
        assert!(h.verify("x", "not a hash").is_err());
        assert!(h.needs_rehash("garbage"));
    }

    #[test]
    fn default_params_are_owasp() {
        let p = HashParams::default();
        assert!(p.m_cost_kib >= 19_456 && p.t_cost >= 2 && p.p_cost >= 1);
        p.validate().unwrap();
        assert!(HashParams {
            m_cost_kib: 1024,
            ..p
        }
        .validate()
        .is_err());
        let phc = Hasher::default().hash("pw").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
    }

    #[test]
    fn tampered_cost_refused() {
        let h = Hasher::insecure_for_tests();
        let phc = h.hash("pw").unwrap();
        let evil = phc.replace("m=64", "m=4000000");
        assert!(matches!(h.verify("pw", &evil), Err(Error::BadHash(_))));
    }

    #[test]
    fn oversized_password_refused() {
        let h = Hasher::insecure_for_tests();
        let big = "a".repeat(MAX_PASSWORD_BYTES + 1);
        assert!(matches!(h.hash(&big), Err(Error::TooLong { .. })));
        let p = Policy::default();
        assert!(matches!(p.check("u", &big), Err(Error::TooLong { .. })));
    }

    #[test]
    fn policy_says_why() {
        let p = Policy::default();
        let e = p.check("alice", "short").unwrap_err().to_string();
        assert!(e.contains("too short"), "{e}");
        let e = p.check("alice", "alice1234567").unwrap_err().to_string();
        assert!(e.contains("too easy to guess"), "{e}");
        p.check("alice", "vQ7#tramway-Pelican-91").unwrap();
    }

    #[test]
    fn policy_breached_list() {
        let f = BreachFilter::from_text("Tr0ub4dor&3xyz!\n".as_bytes()).unwrap();
        let p = Policy::with_filter(PolicyConfig::default(), Some(f));
        let e = p.check("bob", "Tr0ub4dor&3xyz!").unwrap_err().to_string();
        assert!(e.contains("breached"), "{e}");
        p.check("bob", "vQ7#tramway-Pelican-91").unwrap();
    }

    #[tokio::test]
    async fn bounded_hashing_limits_concurrency() {
        let h = Hasher::insecure_for_tests();
        let phc = h.hash_bounded("pw").await.unwrap();
        assert!(h.verify_bounded("pw", &phc).await.unwrap());
        // Hold every slot: the next login is refused with Busy, not queued forever.
        let mut held = Vec::new();
        for _ in 0..MAX_CONCURRENT_HASHES {
            held.push(h.slots.clone().acquire_owned().await.unwrap());
        }
        assert_eq!(h.free_slots(), 0);
        tokio::time::pause();
        let r = h.verify_bounded("pw", &phc).await;
        assert!(matches!(r, Err(Error::Busy)), "{r:?}");
        drop(held);
        tokio::time::resume();
        assert!(h.verify_bounded("pw", &phc).await.unwrap());
    }

    #[tokio::test]
    async fn unknown_user_costs_a_hash_and_fails() {
        let h = Hasher::insecure_for_tests();
        let phc = h.hash("pw").unwrap();
        assert!(h.verify_login("pw", Some(&phc)).await.unwrap());
        assert!(!h.verify_login("pw", None).await.unwrap());
        assert!(!h
            .verify_login("palisade-dummy-password", None)
            .await
            .unwrap());
        assert!(
            h.dummy.get().is_some(),
            "the dummy hash is computed once and kept"
        );
    }
}
