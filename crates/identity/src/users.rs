//! The user database: users, roles, password hashes, TOTP secrets and
//! recovery-code hashes, in an SQLite file (`users.db` in the data dir).
//!
//! Why SQLite and not the state store's key/value: users must be listed,
//! updated field by field and kept durably; the state store's kv has no
//! listing and may be Redis configured without persistence. Sessions and
//! counters, which many nodes share, live in the state store instead.
//! The TOTP secret is stored in clear (it is needed to verify codes):
//! the file is created mode 0600.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::totp;
use crate::username::normalize_username;

/// 32: most roles per user. Bounds the Remote-Groups header and rule checks.
pub const MAX_ROLES: usize = 32;
/// 64 bytes: longest role name.
pub const MAX_ROLE_BYTES: usize = 64;

/// One user as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Normalised name (see [`normalize_username`]).
    pub name: String,
    /// Roles (groups), sorted.
    pub roles: Vec<String>,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Base32 TOTP secret when enrolled.
    pub totp_secret: Option<String>,
    /// Last TOTP step accepted (replay prevention).
    pub totp_last_step: Option<u64>,
    /// SHA-256 hashes of unused recovery codes.
    pub recovery_hashes: Vec<String>,
    /// Creation time, UNIX seconds.
    pub created: u64,
}

/// Checks and normalises a role list.
pub fn normalize_roles(roles: &[String]) -> Result<Vec<String>> {
    if roles.len() > MAX_ROLES {
        return Err(Error::InvalidUsername(format!(
            "more than {MAX_ROLES} roles"
        )));
    }
    let mut out = Vec::new();
    for r in roles {
        let r = r.trim().to_lowercase();
        if r.is_empty()
            || r.len() > MAX_ROLE_BYTES
            || !r
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(Error::InvalidUsername(format!(
                "role {r:?}: 1-{MAX_ROLE_BYTES} letters, digits, '-', '_' or '.'"
            )));
        }
        out.push(r);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The SQLite user database.
#[derive(Debug)]
pub struct UserDb {
    conn: Mutex<Connection>,
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    roles TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    totp_secret TEXT,
    totp_last_step INTEGER,
    recovery TEXT NOT NULL,
    created INTEGER NOT NULL
)";

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl UserDb {
    /// Opens (creating with mode 0600) the database file at `path`.
    pub fn open(path: &Path) -> Result<UserDb> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)?;
            }
        }
        let existed = path.exists();
        let conn = Connection::open(path)?;
        if !existed {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        }
        Self::init(conn)
    }

    /// An in-memory database (tests).
    pub fn memory() -> Result<UserDb> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<UserDb> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(UserDb {
            conn: Mutex::new(conn),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&c)
    }

    /// Adds a user with an already computed password hash.
    pub fn add(&self, name: &str, password_hash: &str, roles: &[String]) -> Result<User> {
        let name = normalize_username(name)?;
        let roles = normalize_roles(roles)?;
        let user = User {
            name: name.clone(),
            roles,
            password_hash: password_hash.to_owned(),
            totp_secret: None,
            totp_last_step: None,
            recovery_hashes: Vec::new(),
            created: now_secs(),
        };
        self.with(|c| {
            let n = c.execute(
                "INSERT OR IGNORE INTO users (name, roles, password_hash, recovery, created) VALUES (?1, ?2, ?3, '[]', ?4)",
                params![name, json(&user.roles), password_hash, user.created as i64],
            )?;
            if n == 0 {
                return Err(Error::UserExists(name.clone()));
            }
            Ok(())
        })?;
        Ok(user)
    }

    /// The user named `name` (normalised first), if any.
    pub fn get(&self, name: &str) -> Result<Option<User>> {
        let name = normalize_username(name)?;
        self.with(|c| {
            c.query_row(
                "SELECT name, roles, password_hash, totp_secret, totp_last_step, recovery, created FROM users WHERE name = ?1",
                params![name],
                row_user,
            )
            .optional()?
            .transpose()
        })
    }

    /// Every user, by name.
    pub fn list(&self) -> Result<Vec<User>> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT name, roles, password_hash, totp_secret, totp_last_step, recovery, created FROM users ORDER BY name",
            )?;
            let rows = st.query_map([], row_user)?;
            let mut out = Vec::new();
            for r in rows {
                out.push(r??);
            }
            Ok(out)
        })
    }

    /// Deletes a user; true when it existed.
    pub fn delete(&self, name: &str) -> Result<bool> {
        let name = normalize_username(name)?;
        self.with(|c| Ok(c.execute("DELETE FROM users WHERE name = ?1", params![name])? > 0))
    }

    fn update(&self, name: &str, sql: &str, value: &dyn rusqlite::ToSql) -> Result<()> {
        let name = normalize_username(name)?;
        self.with(|c| {
            if c.execute(sql, params![value, name])? == 0 {
                return Err(Error::NoSuchUser(name.clone()));
            }
            Ok(())
        })
    }

    /// Replaces the password hash.
    pub fn set_password_hash(&self, name: &str, phc: &str) -> Result<()> {
        self.update(
            name,
            "UPDATE users SET password_hash = ?1 WHERE name = ?2",
            &phc,
        )
    }

    /// Replaces the roles.
    pub fn set_roles(&self, name: &str, roles: &[String]) -> Result<Vec<String>> {
        let roles = normalize_roles(roles)?;
        self.update(
            name,
            "UPDATE users SET roles = ?1 WHERE name = ?2",
            &json(&roles),
        )?;
        Ok(roles)
    }

    /// Enrolls TOTP: a new secret and ten recovery codes. Returns the
    /// secret and the recovery codes in clear (shown once, never stored).
    pub fn totp_enroll(&self, name: &str) -> Result<(String, Vec<String>)> {
        let secret = totp::generate_secret()?;
        let (codes, hashes) = totp::generate_recovery_codes()?;
        let name = normalize_username(name)?;
        self.with(|c| {
            let n = c.execute(
                "UPDATE users SET totp_secret = ?1, totp_last_step = NULL, recovery = ?2 WHERE name = ?3",
                params![secret, json(&hashes), name],
            )?;
            if n == 0 {
                return Err(Error::NoSuchUser(name.clone()));
            }
            Ok(())
        })?;
        Ok((secret, codes))
    }

    /// Enrolls TOTP with a secret the user has already confirmed (the
    /// portal's self-enrolment): stores `secret`, the recovery-code
    /// `hashes` and `last_step` (the confirming code's step, so that code
    /// cannot be used again) — only if the user has no TOTP yet, in one
    /// statement, so two concurrent enrolments cannot both win. `Ok(false)`:
    /// already enrolled.
    pub fn totp_enroll_confirmed(
        &self,
        name: &str,
        secret: &str,
        hashes: &[String],
        last_step: u64,
    ) -> Result<bool> {
        let name = normalize_username(name)?;
        self.with(|c| {
            let n = c.execute(
                "UPDATE users SET totp_secret = ?1, totp_last_step = ?2, recovery = ?3 WHERE name = ?4 AND totp_secret IS NULL",
                params![secret, last_step as i64, json(hashes), name],
            )?;
            if n == 1 {
                return Ok(true);
            }
            let exists: Option<i64> = c
                .query_row("SELECT 1 FROM users WHERE name = ?1", params![name], |r| {
                    r.get(0)
                })
                .optional()?;
            match exists {
                Some(_) => Ok(false),
                None => Err(Error::NoSuchUser(name.clone())),
            }
        })
    }

    /// Removes TOTP and recovery codes.
    pub fn totp_reset(&self, name: &str) -> Result<()> {
        let name = normalize_username(name)?;
        self.with(|c| {
            let n = c.execute(
                "UPDATE users SET totp_secret = NULL, totp_last_step = NULL, recovery = '[]' WHERE name = ?1",
                params![name],
            )?;
            if n == 0 {
                return Err(Error::NoSuchUser(name.clone()));
            }
            Ok(())
        })
    }

    /// Verifies a TOTP code at `unix_secs` and marks its step used
    /// atomically (a compare-and-set on `totp_last_step`), so the same
    /// code is accepted once even by two concurrent logins.
    pub fn totp_check(&self, name: &str, code: &str, unix_secs: u64) -> Result<bool> {
        let user = self
            .get(name)?
            .ok_or_else(|| Error::NoSuchUser(name.to_owned()))?;
        let secret = user
            .totp_secret
            .as_deref()
            .ok_or_else(|| Error::Totp("not enrolled".into()))?;
        let Some(step) = totp::verify(secret, code, unix_secs, user.totp_last_step)? else {
            return Ok(false);
        };
        self.with(|c| {
            let n = c.execute(
                "UPDATE users SET totp_last_step = ?1 WHERE name = ?2 AND (totp_last_step IS NULL OR totp_last_step < ?1)",
                params![step as i64, user.name],
            )?;
            Ok(n == 1)
        })
    }

    /// Uses a recovery code: true (and the code is gone) when it was valid.
    pub fn use_recovery_code(&self, name: &str, code: &str) -> Result<bool> {
        let h = totp::hash_recovery_code(code);
        let name = normalize_username(name)?;
        self.with(|c| {
            let tx = c.unchecked_transaction()?;
            let rec: Option<String> = tx
                .query_row(
                    "SELECT recovery FROM users WHERE name = ?1",
                    params![name],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(rec) = rec else {
                return Err(Error::NoSuchUser(name.clone()));
            };
            let mut hashes: Vec<String> =
                serde_json::from_str(&rec).map_err(|e| Error::Corrupt(e.to_string()))?;
            let before = hashes.len();
            hashes.retain(|x| x != &h);
            if hashes.len() == before {
                return Ok(false);
            }
            tx.execute(
                "UPDATE users SET recovery = ?1 WHERE name = ?2",
                params![json(&hashes), name],
            )?;
            tx.commit()?;
            Ok(true)
        })
    }
}

fn json(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

type RowResult = std::result::Result<Result<User>, rusqlite::Error>;

fn row_user(r: &rusqlite::Row<'_>) -> RowResult {
    let roles: String = r.get(1)?;
    let recovery: String = r.get(5)?;
    let last: Option<i64> = r.get(4)?;
    let created: i64 = r.get(6)?;
    let parse =
        |s: &str| serde_json::from_str::<Vec<String>>(s).map_err(|e| Error::Corrupt(e.to_string()));
    Ok((|| {
        Ok(User {
            name: r.get(0)?,
            roles: parse(&roles)?,
            password_hash: r.get(2)?,
            totp_secret: r.get(3)?,
            totp_last_step: last.map(|x| x as u64),
            recovery_hashes: parse(&recovery)?,
            created: created as u64,
        })
    })())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crud_and_normalisation() {
        let db = UserDb::memory().unwrap();
        db.add(
            "Alice",
            "$h",
            &["Admin".into(), "ops".into(), "admin".into()],
        )
        .unwrap();
        assert!(matches!(
            db.add("ａｌｉｃｅ", "$h", &[]),
            Err(Error::UserExists(_))
        ));
        let u = db.get("ALICE").unwrap().unwrap();
        assert_eq!(u.name, "alice");
        assert_eq!(u.roles, vec!["admin", "ops"]);
        db.set_roles("alice", &["dev".into()]).unwrap();
        db.set_password_hash("alice", "$h2").unwrap();
        let u = db.get("alice").unwrap().unwrap();
        assert_eq!(
            (u.roles, u.password_hash.as_str()),
            (vec!["dev".to_string()], "$h2")
        );
        assert!(matches!(
            db.set_roles("nobody", &[]),
            Err(Error::NoSuchUser(_))
        ));
        assert!(db.set_roles("alice", &["bad role".into()]).is_err());
        db.add("bob", "$h", &[]).unwrap();
        let names: Vec<_> = db.list().unwrap().into_iter().map(|u| u.name).collect();
        assert_eq!(names, vec!["alice", "bob"]);
        assert!(db.delete("bob").unwrap());
        assert!(!db.delete("bob").unwrap());
    }

    #[test]
    fn totp_replay_and_recovery() {
        let db = UserDb::memory().unwrap();
        db.add("carol", "$h", &[]).unwrap();
        assert!(matches!(
            db.totp_check("carol", "123456", 0),
            Err(Error::Totp(_))
        ));
        let (secret, codes) = db.totp_enroll("carol").unwrap();
        let t = 1_700_000_000;
        let code = totp::code_at(&secret, t).unwrap();
        assert!(db.totp_check("carol", &code, t).unwrap());
        assert!(
            !db.totp_check("carol", &code, t).unwrap(),
            "same code twice"
        );
        assert!(
            !db.totp_check("carol", &code, t + 30).unwrap(),
            "still within skew: replay"
        );
        let next = totp::code_at(&secret, t + 30).unwrap();
        assert!(db.totp_check("carol", &next, t + 30).unwrap());
        // Recovery codes: hashed at rest, single use.
        let u = db.get("carol").unwrap().unwrap();
        assert_eq!(u.recovery_hashes.len(), 10);
        assert!(!u.recovery_hashes.iter().any(|h| h == &codes[0]));
        assert!(db.use_recovery_code("carol", &codes[0]).unwrap());
        assert!(!db.use_recovery_code("carol", &codes[0]).unwrap());
        assert_eq!(db.get("carol").unwrap().unwrap().recovery_hashes.len(), 9);
        db.totp_reset("carol").unwrap();
        let u = db.get("carol").unwrap().unwrap();
        assert!(u.totp_secret.is_none() && u.recovery_hashes.is_empty());
    }

    #[test]
    fn confirmed_enrolment_only_without_totp() {
        let db = UserDb::memory().unwrap();
        db.add("frank", "$h", &[]).unwrap();
        let (_, hashes) = totp::generate_recovery_codes().unwrap();
        let secret = totp::generate_secret().unwrap();
        assert!(db
            .totp_enroll_confirmed("frank", &secret, &hashes, 42)
            .unwrap());
        let u = db.get("frank").unwrap().unwrap();
        assert_eq!(u.totp_secret.as_deref(), Some(secret.as_str()));
        assert_eq!(u.totp_last_step, Some(42));
        assert_eq!(u.recovery_hashes, hashes);
        // A second enrolment does not replace the first.
        let other = totp::generate_secret().unwrap();
        assert!(!db.totp_enroll_confirmed("frank", &other, &[], 50).unwrap());
        assert_eq!(
            db.get("frank").unwrap().unwrap().totp_secret.as_deref(),
            Some(secret.as_str())
        );
        assert!(matches!(
            db.totp_enroll_confirmed("nobody", &other, &[], 1),
            Err(Error::NoSuchUser(_))
        ));
    }

    #[test]
    fn file_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/users.db");
        let db = UserDb::open(&p).unwrap();
        db.add("dave", "$h", &[]).unwrap();
        drop(db);
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(UserDb::open(&p).unwrap().get("dave").unwrap().is_some());
    }
}
