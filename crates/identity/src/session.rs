//! Sessions in the state store (memory, SQLite or Redis, shared by nodes).
//!
//! * IDs: 256 random bits, base64url (43 characters). The store key is the
//!   SHA-256 of the ID, so a leaked store does not hand out live cookies.
//! * Timeouts: inactivity (sliding; the store TTL) and absolute (from
//!   creation); "remember me" uses the longer pair.
//! * Rotation: [`Sessions::rotate`] moves a session to a new ID (on login
//!   and on elevation to two factors), so a fixated ID is useless.
//! * Revocation: [`Sessions::revoke_all`] records "sessions of this user
//!   created before now are invalid"; every check compares against it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use state::{Micros, Store};

use crate::error::{Error, Result};

/// 43: length of a session ID (32 bytes, base64url without padding).
pub const SESSION_ID_LEN: usize = 43;
/// Default 1 h: inactivity timeout of a normal session.
pub const DEFAULT_INACTIVITY: Duration = Duration::from_secs(3600);
/// Default 12 h: absolute lifetime of a normal session.
pub const DEFAULT_ABSOLUTE: Duration = Duration::from_secs(12 * 3600);
/// Default 7 days: inactivity timeout with "remember me".
pub const DEFAULT_REMEMBER_INACTIVITY: Duration = Duration::from_secs(7 * 86400);
/// Default 30 days: absolute lifetime with "remember me"; also how long a
/// `logout-all` mark is kept (no older session can outlive it).
pub const DEFAULT_REMEMBER_ABSOLUTE: Duration = Duration::from_secs(30 * 86400);
/// 60 s: a session's last-seen time is written back at most this often, so
/// a busy session costs one store read per request, not a write.
pub const TOUCH_INTERVAL: Duration = Duration::from_secs(60);

/// Session timeouts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    /// Inactivity timeout, seconds.
    pub inactivity_secs: u64,
    /// Absolute lifetime, seconds.
    pub absolute_secs: u64,
    /// Inactivity timeout with remember-me, seconds.
    pub remember_inactivity_secs: u64,
    /// Absolute lifetime with remember-me, seconds.
    pub remember_absolute_secs: u64,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            inactivity_secs: DEFAULT_INACTIVITY.as_secs(),
            absolute_secs: DEFAULT_ABSOLUTE.as_secs(),
            remember_inactivity_secs: DEFAULT_REMEMBER_INACTIVITY.as_secs(),
            remember_absolute_secs: DEFAULT_REMEMBER_ABSOLUTE.as_secs(),
        }
    }
}

/// A live session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Normalised username.
    pub user: String,
    /// Factors completed: 1 (password) or 2 (password + TOTP).
    pub factors: u8,
    /// Remember-me session (longer timeouts).
    pub remember: bool,
    /// Created, [`Micros`].
    pub created_us: Micros,
    /// Last seen, [`Micros`].
    pub last_seen_us: Micros,
    /// The user's roles when the session was created (a role change takes
    /// effect at the next login; `palisade user roles` does not revoke).
    /// Kept in the session so a check costs no user-database read.
    #[serde(default)]
    pub roles: Vec<String>,
}

/// Why a session was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The cookie is not a well-formed session ID.
    Malformed,
    /// No such session (forged, logged out, or inactive too long).
    Unknown,
    /// Past its absolute lifetime.
    Expired,
    /// Revoked by logout-all.
    Revoked,
}

/// 1 s: how long a session record or revocation mark read from a shared
/// store (SQLite, Redis) is reused from process memory. Bounds how late a
/// logout or `logout-all` made by *another* process or node takes effect;
/// logouts and rotations through this process apply at once.
pub const CACHE_TTL: Duration = Duration::from_secs(1);
/// 100 000: most session records and revocation marks cached per process
/// (the cache is emptied when full). Bounds memory under a cookie flood.
pub const MAX_CACHED: usize = 100_000;

#[derive(Debug, Default)]
struct Cache {
    /// Store key -> (record or None for "not found", fetched at).
    sessions: HashMap<String, (Option<Session>, Micros)>,
    /// User -> (revoked-before mark, fetched at).
    revoked: HashMap<String, (Option<u64>, Micros)>,
}

/// The session manager.
#[derive(Clone, Debug)]
pub struct Sessions {
    store: Store,
    cfg: SessionConfig,
    /// Read cache in front of a shared store (`None` on the memory store,
    /// which is as fast as the cache).
    cache: Option<Arc<Mutex<Cache>>>,
}

fn key(id: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let d = Sha256::digest(id.as_bytes());
    // Hot path (every request): no per-byte formatting.
    let mut k = String::with_capacity(5 + 64);
    k.push_str("id:s:");
    for b in d {
        k.push(HEX[usize::from(b >> 4)] as char);
        k.push(HEX[usize::from(b & 15)] as char);
    }
    k
}

fn revoke_key(user: &str) -> String {
    format!("id:rev:{user}")
}

/// Whether `id` has the shape of a session ID (checked before any lookup).
pub fn well_formed(id: &str) -> bool {
    id.len() == SESSION_ID_LEN
        && id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}

fn new_id() -> Result<String> {
    let mut b = [0u8; 32];
    getrandom::getrandom(&mut b).map_err(|e| Error::Corrupt(e.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(b))
}

impl Sessions {
    /// Sessions in `store` with timeouts `cfg`.
    pub fn new(store: Store, cfg: SessionConfig) -> Sessions {
        let cache = (store.backend() != state::BackendKind::Memory)
            .then(|| Arc::new(Mutex::new(Cache::default())));
        Sessions { store, cfg, cache }
    }

    fn with_cache<T>(&self, f: impl FnOnce(&mut Cache) -> T) -> Option<T> {
        let c = self.cache.as_ref()?;
        let mut g = c.lock().unwrap_or_else(|p| p.into_inner());
        Some(f(&mut g))
    }

    fn cache_put_session(&self, k: &str, s: Option<Session>, now: Micros) {
        self.with_cache(|c| {
            if c.sessions.len() >= MAX_CACHED {
                c.sessions.clear();
            }
            c.sessions.insert(k.to_owned(), (s, now));
        });
    }

    /// The stored record of store key `k` (through the cache).
    async fn load(&self, k: &str, now: Micros) -> Result<Option<Session>> {
        let ttl = CACHE_TTL.as_micros() as u64;
        let hit = self.with_cache(|c| {
            c.sessions
                .get(k)
                .filter(|(_, at)| now.saturating_sub(*at) < ttl && *at <= now)
                .map(|(s, _)| s.clone())
        });
        if let Some(Some(s)) = hit {
            return Ok(s);
        }
        let s = match self.store.kv_get(k, now).await? {
            Some(v) => serde_json::from_slice::<Session>(&v).ok(),
            None => None,
        };
        // Misses are not cached: a forged-cookie flood must not fill memory.
        if s.is_some() {
            self.cache_put_session(k, s.clone(), now);
        }
        Ok(s)
    }

    /// The revoked-before mark of `user` (through the cache).
    async fn revoked_before(&self, user: &str, now: Micros) -> Result<Option<u64>> {
        let ttl = CACHE_TTL.as_micros() as u64;
        let hit = self.with_cache(|c| {
            c.revoked
                .get(user)
                .filter(|(_, at)| now.saturating_sub(*at) < ttl && *at <= now)
                .map(|(r, _)| *r)
        });
        if let Some(Some(r)) = hit {
            return Ok(r);
        }
        let r = self.store.kv_get(&revoke_key(user), now).await?.map(|r| {
            std::str::from_utf8(&r)
                .ok()
                .and_then(|t| t.parse::<u64>().ok())
                .unwrap_or(u64::MAX)
        });
        self.with_cache(|c| {
            if c.revoked.len() >= MAX_CACHED {
                c.revoked.clear();
            }
            c.revoked.insert(user.to_owned(), (r, now));
        });
        Ok(r)
    }

    /// The timeouts in force.
    pub fn config(&self) -> &SessionConfig {
        &self.cfg
    }

    fn limits(&self, remember: bool) -> (Micros, Micros) {
        let (i, a) = if remember {
            (
                self.cfg.remember_inactivity_secs,
                self.cfg.remember_absolute_secs,
            )
        } else {
            (self.cfg.inactivity_secs, self.cfg.absolute_secs)
        };
        (i.saturating_mul(1_000_000), a.saturating_mul(1_000_000))
    }

    async fn put(&self, id: &str, s: &Session, now: Micros) -> Result<()> {
        let (inact, abs) = self.limits(s.remember);
        let left = (s.created_us + abs).saturating_sub(now).min(inact);
        let v = serde_json::to_vec(s).map_err(|e| Error::Corrupt(e.to_string()))?;
        let k = key(id);
        self.store
            .kv_set(&k, &v, Some(Duration::from_micros(left.max(1))), now)
            .await?;
        if self.cache.is_some() {
            self.cache_put_session(&k, Some(s.clone()), now);
        }
        Ok(())
    }

    /// Creates a session for `user` after `factors` factors; returns its ID.
    pub async fn create(
        &self,
        user: &str,
        factors: u8,
        remember: bool,
        now: Micros,
    ) -> Result<String> {
        self.create_with_roles(user, &[], factors, remember, now)
            .await
    }

    /// Like [`Sessions::create`], recording the user's `roles` in the session.
    pub async fn create_with_roles(
        &self,
        user: &str,
        roles: &[String],
        factors: u8,
        remember: bool,
        now: Micros,
    ) -> Result<String> {
        let id = new_id()?;
        let s = Session {
            user: user.to_owned(),
            factors,
            remember,
            created_us: now,
            last_seen_us: now,
            roles: roles.to_vec(),
        };
        self.put(&id, &s, now).await?;
        Ok(id)
    }

    /// Checks a cookie value: the session, or why it is refused. Refreshes
    /// the inactivity timer at most every [`TOUCH_INTERVAL`].
    pub async fn check(
        &self,
        id: &str,
        now: Micros,
    ) -> Result<std::result::Result<Session, Refusal>> {
        if !well_formed(id) {
            return Ok(Err(Refusal::Malformed));
        }
        let Some(mut s) = self.load(&key(id), now).await? else {
            return Ok(Err(Refusal::Unknown));
        };
        let (inact, abs) = self.limits(s.remember);
        if now >= s.created_us.saturating_add(abs) {
            return Ok(Err(Refusal::Expired));
        }
        if now >= s.last_seen_us.saturating_add(inact) {
            return Ok(Err(Refusal::Unknown));
        }
        if let Some(before) = self.revoked_before(&s.user, now).await? {
            if s.created_us <= before {
                return Ok(Err(Refusal::Revoked));
            }
        }
        if now.saturating_sub(s.last_seen_us) >= TOUCH_INTERVAL.as_micros() as u64 {
            s.last_seen_us = now;
            self.put(id, &s, now).await?;
        }
        Ok(Ok(s))
    }

    /// Moves session `id` to a fresh ID (login, elevation), optionally
    /// raising its factors; the old ID stops working at once. `None` when
    /// the old session is not valid.
    pub async fn rotate(
        &self,
        id: &str,
        factors: Option<u8>,
        now: Micros,
    ) -> Result<Option<String>> {
        let Ok(mut s) = self.check(id, now).await? else {
            return Ok(None);
        };
        // Take (not get) so two concurrent rotations cannot both succeed.
        let k = key(id);
        self.with_cache(|c| c.sessions.remove(&k));
        if self.store.kv_take(&k, now).await?.is_none() {
            return Ok(None);
        }
        if let Some(f) = factors {
            s.factors = s.factors.max(f);
        }
        s.last_seen_us = now;
        let new = new_id()?;
        self.put(&new, &s, now).await?;
        Ok(Some(new))
    }

    /// Logs out one session; true when it existed.
    pub async fn destroy(&self, id: &str, now: Micros) -> Result<bool> {
        if !well_formed(id) {
            return Ok(false);
        }
        let k = key(id);
        self.with_cache(|c| c.sessions.remove(&k));
        Ok(self.store.kv_delete(&k, now).await?)
    }

    /// Revokes every session of `user` created up to `now`.
    pub async fn revoke_all(&self, user: &str, now: Micros) -> Result<()> {
        let ttl = Duration::from_secs(
            self.cfg
                .remember_absolute_secs
                .max(self.cfg.absolute_secs)
                .saturating_add(60),
        );
        self.store
            .kv_set(
                &revoke_key(user),
                now.to_string().as_bytes(),
                Some(ttl),
                now,
            )
            .await?;
        self.with_cache(|c| c.revoked.insert(user.to_owned(), (Some(now), now)));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Micros = 1_000_000;

    fn mgr() -> Sessions {
        Sessions::new(Store::memory(&Default::default()), SessionConfig::default())
    }

    #[tokio::test]
    async fn lifecycle() {
        let m = mgr();
        let t0 = 1_700_000_000 * S;
        let id = m.create("alice", 1, false, t0).await.unwrap();
        assert!(well_formed(&id));
        let s = m.check(&id, t0 + S).await.unwrap().unwrap();
        assert_eq!((s.user.as_str(), s.factors), ("alice", 1));
        // Elevation rotates: the old ID is dead.
        let id2 = m.rotate(&id, Some(2), t0 + 2 * S).await.unwrap().unwrap();
        assert_ne!(id, id2);
        assert_eq!(
            m.check(&id, t0 + 3 * S).await.unwrap(),
            Err(Refusal::Unknown)
        );
        assert_eq!(m.check(&id2, t0 + 3 * S).await.unwrap().unwrap().factors, 2);
        assert!(m.rotate(&id, None, t0 + 3 * S).await.unwrap().is_none());
        assert!(m.destroy(&id2, t0 + 4 * S).await.unwrap());
        assert_eq!(
            m.check(&id2, t0 + 5 * S).await.unwrap(),
            Err(Refusal::Unknown)
        );
    }

    #[tokio::test]
    async fn malformed_and_forged() {
        let m = mgr();
        let t = 1_700_000_000 * S;
        for bad in ["", "x", "../../etc", &"a".repeat(44), &"é".repeat(22)] {
            assert_eq!(
                m.check(bad, t).await.unwrap(),
                Err(Refusal::Malformed),
                "{bad}"
            );
        }
        let forged = "A".repeat(SESSION_ID_LEN);
        assert_eq!(m.check(&forged, t).await.unwrap(), Err(Refusal::Unknown));
    }

    #[tokio::test]
    async fn timeouts() {
        let m = mgr();
        let t0 = 1_700_000_000 * S;
        let id = m.create("bob", 2, false, t0).await.unwrap();
        // Activity every 50 min keeps it alive past 1 h of age …
        let mut t = t0;
        for _ in 0..10 {
            t += 50 * 60 * S;
            if t >= t0 + 12 * 3600 * S {
                break;
            }
            assert!(
                m.check(&id, t).await.unwrap().is_ok(),
                "alive at +{}s",
                (t - t0) / S
            );
        }
        // … but not past the absolute 12 h.
        let r = m.check(&id, t0 + 12 * 3600 * S + S).await.unwrap();
        assert!(
            matches!(r, Err(Refusal::Expired | Refusal::Unknown)),
            "{r:?}"
        );
        // Inactivity: 61 min idle kills a normal session, not a remembered one.
        let a = m.create("bob", 1, false, t0).await.unwrap();
        let b = m.create("bob", 1, true, t0).await.unwrap();
        let later = t0 + 61 * 60 * S;
        assert!(m.check(&a, later).await.unwrap().is_err());
        assert!(m.check(&b, later).await.unwrap().is_ok());
        assert!(m.check(&b, t0 + 31 * 86400 * S).await.unwrap().is_err());
    }

    #[tokio::test]
    async fn revoke_all() {
        let m = mgr();
        let t0 = 1_700_000_000 * S;
        let a = m.create("carol", 1, false, t0).await.unwrap();
        let b = m.create("carol", 2, true, t0 + S).await.unwrap();
        let other = m.create("dave", 1, false, t0).await.unwrap();
        m.revoke_all("carol", t0 + 2 * S).await.unwrap();
        assert_eq!(
            m.check(&a, t0 + 3 * S).await.unwrap(),
            Err(Refusal::Revoked)
        );
        assert_eq!(
            m.check(&b, t0 + 3 * S).await.unwrap(),
            Err(Refusal::Revoked)
        );
        assert!(m.check(&other, t0 + 3 * S).await.unwrap().is_ok());
        let fresh = m.create("carol", 1, false, t0 + 4 * S).await.unwrap();
        assert!(m.check(&fresh, t0 + 5 * S).await.unwrap().is_ok());
    }

    #[tokio::test]
    async fn shared_store_cache_bounds_staleness() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = state::StateConfig {
            backend: state::BackendKind::Sqlite,
            sqlite: state::SqliteConfig {
                path: dir.path().join("s.db"),
                ..Default::default()
            },
            ..Default::default()
        };
        // Two "processes" on one SQLite file.
        let a = Sessions::new(Store::open(&cfg).await.unwrap(), SessionConfig::default());
        let b = Sessions::new(Store::open(&cfg).await.unwrap(), SessionConfig::default());
        let t0 = 1_700_000_000 * S;
        let id = a.create("erin", 1, false, t0).await.unwrap();
        assert!(b.check(&id, t0 + 1).await.unwrap().is_ok());
        // A logout through `a` applies in `a` at once...
        assert!(a.destroy(&id, t0 + 2).await.unwrap());
        assert_eq!(a.check(&id, t0 + 3).await.unwrap(), Err(Refusal::Unknown));
        // ...and in `b` once its cached copy is older than CACHE_TTL.
        let later = t0 + 1 + CACHE_TTL.as_micros() as u64;
        assert_eq!(b.check(&id, later).await.unwrap(), Err(Refusal::Unknown));
        // revoke_all through `b`: immediate in `b`, within CACHE_TTL in `a`.
        let id = a.create("erin", 1, false, later).await.unwrap();
        assert!(a.check(&id, later + 1).await.unwrap().is_ok());
        b.revoke_all("erin", later + 2).await.unwrap();
        let after = later + 2 + CACHE_TTL.as_micros() as u64;
        assert_eq!(a.check(&id, after).await.unwrap(), Err(Refusal::Revoked));
        // Forged IDs are not cached (a flood cannot fill memory).
        for i in 0..100 {
            let forged = format!("{i:0>43}");
            assert_eq!(
                a.check(&forged, after).await.unwrap(),
                Err(Refusal::Unknown)
            );
        }
        let n = a.with_cache(|c| c.sessions.len()).unwrap();
        assert!(n <= 2, "{n}");
    }
}
