//! TOTP self-enrolment through the portal (`[identity]
//! totp_self_enrollment = true`): a signed-in user without TOTP is shown a
//! fresh secret and confirms it with a current code.
//!
//! The pending secret lives server-side only, in the state store, under a
//! key derived from the session ID (`id:totp:enrol:<sha256(session id)>`):
//! one per session, expiring after [`PENDING_TTL`]. The confirming POST
//! carries only the code; a secret a client might post back is never read,
//! so nobody can make the server adopt a secret of their choosing. Binding
//! the secret to the session (not the user) means a second session of the
//! same user — say, someone else who knows the password — never sees the
//! secret another session is scanning.
//!
//! Confirmation applies the login rules: ±[`totp::SKEW_STEPS`] steps, and
//! the confirming code's step is recorded as used (in the user database
//! and in the shared replay records), so it cannot log in afterwards. The
//! user database write happens only if the user still has no TOTP, so two
//! concurrent confirmations (or an admin's `totp-enroll` meanwhile) cannot
//! both win. Ten recovery codes are generated and only their hashes stored.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use state::{Micros, Store};

use crate::error::{Error, Result};
use crate::replay;
use crate::totp;
use crate::users::UserDb;

/// 10 min: how long a pending enrolment secret waits for its confirming
/// code (time to install an app and scan). Bounds how long an unconfirmed
/// secret is kept; a later visit starts over with a new secret.
pub const PENDING_TTL: Duration = Duration::from_secs(600);

/// 15 min: how recently the password must have been entered (the
/// session's creation; rotation keeps it) for an enrolment to be shown or
/// confirmed. A long-lived session — a stolen "remember me" cookie, a
/// browser left open — cannot bind a new authenticator without the
/// password: the user signs in again and comes back to the page.
pub const MAX_LOGIN_AGE: Duration = Duration::from_secs(15 * 60);

/// Whether a session created at `session_created_us` may enrol at `now`
/// (see [`MAX_LOGIN_AGE`]).
pub fn login_is_recent(session_created_us: Micros, now: Micros) -> bool {
    now.saturating_sub(session_created_us) <= MAX_LOGIN_AGE.as_micros() as u64
}

/// A pending enrolment as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Pending {
    user: String,
    secret: String,
}

fn pending_key(session_id: &str) -> String {
    let d = Sha256::digest(session_id.as_bytes());
    let mut k = String::with_capacity(14 + 64);
    k.push_str("id:totp:enrol:");
    for b in d {
        k.push_str(&format!("{b:02x}"));
    }
    k
}

async fn load(store: &Store, session_id: &str, user: &str, now: Micros) -> Result<Option<String>> {
    let Some(v) = store.kv_get(&pending_key(session_id), now).await? else {
        return Ok(None);
    };
    Ok(serde_json::from_slice::<Pending>(&v)
        .ok()
        .filter(|p| p.user == user)
        .map(|p| p.secret))
}

/// The pending secret of this session, created (and stored for
/// [`PENDING_TTL`]) on first use. Reloading the page shows the same secret,
/// so a code from an app that already scanned it still confirms.
pub async fn pending_secret(
    store: &Store,
    session_id: &str,
    user: &str,
    now: Micros,
) -> Result<String> {
    if let Some(s) = load(store, session_id, user, now).await? {
        return Ok(s);
    }
    let secret = totp::generate_secret()?;
    let v = serde_json::to_vec(&Pending {
        user: user.to_owned(),
        secret: secret.clone(),
    })
    .map_err(|e| Error::Corrupt(e.to_string()))?;
    store
        .kv_set(&pending_key(session_id), &v, Some(PENDING_TTL), now)
        .await?;
    Ok(secret)
}

/// The outcome of a confirmation.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Confirmed {
    /// TOTP is on; the recovery codes in clear, to show once.
    Enrolled {
        /// Ten single-use recovery codes (only their hashes are stored).
        recovery_codes: Vec<String>,
    },
    /// The code does not match the pending secret (or was malformed).
    BadCode,
    /// No pending secret for this session (expired, or never shown).
    NoPending,
    /// The user has TOTP already (enrolled meanwhile).
    AlreadyEnrolled,
}

/// Confirms the pending enrolment of this session with `code` at
/// `unix_secs`.
pub async fn confirm(
    db: &UserDb,
    store: &Store,
    session_id: &str,
    user: &str,
    code: &str,
    unix_secs: u64,
    now: Micros,
) -> Result<Confirmed> {
    let u = db
        .get(user)?
        .ok_or_else(|| Error::NoSuchUser(user.to_owned()))?;
    if u.totp_secret.is_some() {
        return Ok(Confirmed::AlreadyEnrolled);
    }
    let Some(secret) = load(store, session_id, &u.name, now).await? else {
        return Ok(Confirmed::NoPending);
    };
    let Some(step) = totp::verify(&secret, code, unix_secs, None)? else {
        return Ok(Confirmed::BadCode);
    };
    let (codes, hashes) = totp::generate_recovery_codes()?;
    if !db.totp_enroll_confirmed(&u.name, &secret, &hashes, step)? {
        return Ok(Confirmed::AlreadyEnrolled);
    }
    // The confirming code is used up across nodes too; a failure here
    // still leaves the database's own last step in force.
    if let Err(e) = replay::claim_step(store, &u.name, step, now).await {
        tracing::warn!(target: "identity", user = %u.name, error = %e, "enrolment code not recorded in the state store");
    }
    store.kv_delete(&pending_key(session_id), now).await?;
    Ok(Confirmed::Enrolled {
        recovery_codes: codes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Micros = 1_000_000;

    #[tokio::test]
    async fn enrol_confirm_and_reuse_rules() {
        let db = UserDb::memory().unwrap();
        db.add("alice", "$h", &[]).unwrap();
        let store = Store::memory(&Default::default());
        let t = 1_700_000_000u64;
        let now = t * S;
        let sid = "A".repeat(43);
        let secret = pending_secret(&store, &sid, "alice", now).await.unwrap();
        // Stable across reloads, per session, per user.
        assert_eq!(
            pending_secret(&store, &sid, "alice", now + S)
                .await
                .unwrap(),
            secret
        );
        let other_sid = "B".repeat(43);
        assert_ne!(
            pending_secret(&store, &other_sid, "alice", now)
                .await
                .unwrap(),
            secret
        );
        // A wrong code, a code two steps off: refused, nothing stored.
        let far = totp::code_at(&secret, t + 60).unwrap();
        for bad in ["000000", "12345", "abcdef", far.as_str()] {
            // A random code may equal a valid one (p ≈ 3e-6): skip it then.
            let valid = [t - 30, t, t + 30].map(|x| totp::code_at(&secret, x).unwrap());
            if valid.iter().any(|v| v == bad) {
                continue;
            }
            assert_eq!(
                confirm(&db, &store, &sid, "alice", bad, t, now)
                    .await
                    .unwrap(),
                Confirmed::BadCode,
                "{bad}"
            );
        }
        assert!(db.get("alice").unwrap().unwrap().totp_secret.is_none());
        // The previous step's code confirms (±1 skew).
        let code = totp::code_at(&secret, t - 30).unwrap();
        let Confirmed::Enrolled { recovery_codes } =
            confirm(&db, &store, &sid, "alice", &code, t, now)
                .await
                .unwrap()
        else {
            panic!("not enrolled");
        };
        assert_eq!(recovery_codes.len(), totp::RECOVERY_CODES);
        let u = db.get("alice").unwrap().unwrap();
        assert_eq!(u.totp_secret.as_deref(), Some(secret.as_str()));
        assert!(u
            .recovery_hashes
            .iter()
            .all(|h| !recovery_codes.contains(h)));
        // The confirming code cannot log in; the next step's can.
        assert!(
            !replay::totp_check_shared(&db, &store, "alice", &code, t, now + S)
                .await
                .unwrap()
        );
        let next = totp::code_at(&secret, t + 30).unwrap();
        assert!(
            replay::totp_check_shared(&db, &store, "alice", &next, t + 30, now + 30 * S)
                .await
                .unwrap()
        );
        // No second enrolment, whichever session asks.
        assert_eq!(
            confirm(&db, &store, &other_sid, "alice", "123456", t, now)
                .await
                .unwrap(),
            Confirmed::AlreadyEnrolled
        );
        assert!(db.use_recovery_code("alice", &recovery_codes[3]).unwrap());
    }

    #[test]
    fn only_a_recent_login_may_enrol() {
        let t = 1_700_000_000 * S;
        assert!(login_is_recent(t, t));
        assert!(login_is_recent(t, t + 15 * 60 * S));
        assert!(!login_is_recent(t, t + 15 * 60 * S + 1));
        assert!(!login_is_recent(t, t + 30 * 86400 * S), "remember me");
        assert!(login_is_recent(t + S, t), "clock skew between nodes");
    }

    #[tokio::test]
    async fn pending_secrets_expire_and_are_bound_to_the_user() {
        let db = UserDb::memory().unwrap();
        db.add("bob", "$h", &[]).unwrap();
        db.add("carol", "$h", &[]).unwrap();
        let store = Store::memory(&Default::default());
        let t = 1_700_000_000u64;
        let now = t * S;
        let sid = "C".repeat(43);
        let secret = pending_secret(&store, &sid, "bob", now).await.unwrap();
        let code = totp::code_at(&secret, t).unwrap();
        // Another user presenting the same session key gets nothing.
        assert_eq!(
            confirm(&db, &store, &sid, "carol", &code, t, now)
                .await
                .unwrap(),
            Confirmed::NoPending
        );
        // After PENDING_TTL the secret is gone.
        let later = now + PENDING_TTL.as_micros() as u64 + S;
        let lt = later / S;
        let code = totp::code_at(&secret, lt).unwrap();
        assert_eq!(
            confirm(&db, &store, &sid, "bob", &code, lt, later)
                .await
                .unwrap(),
            Confirmed::NoPending
        );
        assert_ne!(
            pending_secret(&store, &sid, "bob", later).await.unwrap(),
            secret,
            "a new visit starts over"
        );
        assert!(matches!(
            confirm(&db, &store, &sid, "nobody", &code, lt, later).await,
            Err(Error::NoSuchUser(_))
        ));
    }
}
