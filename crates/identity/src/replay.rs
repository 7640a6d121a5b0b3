//! TOTP replay protection shared between nodes: the last step each user
//! used lives in the state store (SQLite on one node, Redis across nodes),
//! not in the user database, so a code accepted by one node is refused by
//! every other.
//!
//! Two records per user: `id:totp:last:<user>` (the highest step used, a
//! hint that refuses older codes without a write) and
//! `id:totp:step:<user>:<step>`, claimed with a set-if-absent so exactly one
//! of several concurrent logins with the same code wins, whatever node they
//! reach. Both expire once the code could no longer be valid.

use std::time::Duration;

use state::{Micros, Store};

use crate::error::{Error, Result};
use crate::totp;
use crate::users::UserDb;

/// How long a used step is remembered: the ±[`totp::SKEW_STEPS`] window
/// plus one step of margin (after that the code is refused as too old).
pub const STEP_MEMORY: Duration = Duration::from_secs(totp::STEP_SECS * (2 * totp::SKEW_STEPS + 2));

fn last_key(user: &str) -> String {
    format!("id:totp:last:{user}")
}

/// Verifies `code` for `user` at `unix_secs` and claims its step in
/// `store`: `Ok(true)` once per code across all nodes sharing the store.
/// Errors: unknown user, TOTP not enrolled, store failure.
pub async fn totp_check_shared(
    db: &UserDb,
    store: &Store,
    user: &str,
    code: &str,
    unix_secs: u64,
    now: Micros,
) -> Result<bool> {
    let u = db
        .get(user)?
        .ok_or_else(|| Error::NoSuchUser(user.to_owned()))?;
    let secret = u
        .totp_secret
        .as_deref()
        .ok_or_else(|| Error::Totp("not enrolled".into()))?;
    let last = store
        .kv_get(&last_key(&u.name), now)
        .await?
        .and_then(|v| std::str::from_utf8(&v).ok()?.parse::<u64>().ok());
    // The user database's own record still counts (codes used before an
    // upgrade, or through a node that does not share the store).
    let last = match (last, u.totp_last_step) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    let Some(step) = totp::verify(secret, code, unix_secs, last)? else {
        return Ok(false);
    };
    claim_step(store, &u.name, step, now).await
}

/// Claims TOTP `step` for `user` in `store`: `Ok(false)` when it (or a
/// later step) was already used. Also called when the portal enrols a
/// user, so the code that confirmed the enrolment cannot then log in.
pub async fn claim_step(store: &Store, user: &str, step: u64, now: Micros) -> Result<bool> {
    let last = store
        .kv_get(&last_key(user), now)
        .await?
        .and_then(|v| std::str::from_utf8(&v).ok()?.parse::<u64>().ok());
    if last.is_some_and(|l| step <= l) {
        return Ok(false);
    }
    let claim = format!("id:totp:step:{user}:{step}");
    if !store
        .kv_set_nx(&claim, b"1", Some(STEP_MEMORY), now)
        .await?
    {
        return Ok(false);
    }
    store
        .kv_set(
            &last_key(user),
            step.to_string().as_bytes(),
            Some(STEP_MEMORY),
            now,
        )
        .await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_code_works_once_across_nodes() {
        let db = UserDb::memory().unwrap();
        db.add("alice", "$argon2id$x", &[]).unwrap();
        let (secret, _) = db.totp_enroll("alice").unwrap();
        // Two "nodes": the same store, separate callers.
        let store = Store::memory(&Default::default());
        let t = 1_700_000_000u64;
        let now = t * 1_000_000;
        let code = totp::code_at(&secret, t).unwrap();
        assert!(totp_check_shared(&db, &store, "alice", &code, t, now)
            .await
            .unwrap());
        assert!(
            !totp_check_shared(&db, &store, "alice", &code, t + 1, now + 1)
                .await
                .unwrap()
        );
        // The previous step's code is older than the one used: refused.
        let prev = totp::code_at(&secret, t - 30).unwrap();
        assert!(
            !totp_check_shared(&db, &store, "alice", &prev, t + 2, now + 2)
                .await
                .unwrap()
        );
        // The next step's code is fresh: accepted.
        let next = totp::code_at(&secret, t + 30).unwrap();
        assert!(
            totp_check_shared(&db, &store, "alice", &next, t + 31, now + 31_000_000)
                .await
                .unwrap()
        );
        assert!(
            !totp_check_shared(&db, &store, "alice", "12345x", t + 31, now)
                .await
                .unwrap()
        );
        assert!(matches!(
            totp_check_shared(&db, &store, "nobody", &code, t, now).await,
            Err(Error::NoSuchUser(_))
        ));
    }

    #[tokio::test]
    async fn concurrent_claims_of_one_code_accept_one() {
        let db = std::sync::Arc::new(UserDb::memory().unwrap());
        db.add("bob", "$argon2id$x", &[]).unwrap();
        let (secret, _) = db.totp_enroll("bob").unwrap();
        let store = Store::memory(&Default::default());
        let t = 1_700_000_000u64;
        let code = totp::code_at(&secret, t).unwrap();
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (db, store, code) = (db.clone(), store.clone(), code.clone());
            tasks.push(tokio::spawn(async move {
                totp_check_shared(&db, &store, "bob", &code, t, t * 1_000_000)
                    .await
                    .unwrap()
            }));
        }
        let mut ok = 0;
        for t in tasks {
            ok += usize::from(t.await.unwrap());
        }
        assert_eq!(ok, 1);
    }
}
