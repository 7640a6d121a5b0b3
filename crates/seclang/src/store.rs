//! Persistent collections (`IP`, `GLOBAL`, `SESSION`, `USER`, `RESOURCE`)
//! across transactions: `initcol` loads a record, `setvar` changes it,
//! `expirevar` gives a variable a lifetime, and the logging phase saves it.
//!
//! ```text
//!  initcol:ip=%{REMOTE_ADDR} ──► store.load("IP", "203.0.113.7", now)
//!  setvar:ip.hits=+1, expirevar:ip.hits=60
//!  phase 5 ──────────────────► store.save("IP", "203.0.113.7", vars, expiries, now)
//! ```
//!
//! The engine stays pure: the store is a trait the caller provides
//! ([`Transaction::set_store`](crate::Transaction::set_store)). Without one,
//! collections live only for the transaction, as before. [`MemoryStore`] is
//! the in-process implementation (one node); the gateway may provide a
//! shared one (Redis) for several nodes.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

/// Most records a [`MemoryStore`] keeps (default 100,000): bounds memory when
/// clients make up record keys (`initcol:ip=` per address, `user=` per name).
/// When full, expired records are dropped first, then the least recently
/// written one.
pub const MAX_RECORDS: usize = 100_000;

/// How long a record lives after its last write when the rules do not say
/// (`SecCollectionTimeout`; ModSecurity's default is 3600 seconds).
pub const DEFAULT_RECORD_TIMEOUT_SECS: i64 = 3600;

/// One stored variable: name (lower case), value, absolute expiry.
pub type StoredVar = (Vec<u8>, Vec<u8>, Option<i64>);

/// Where persistent collections live between transactions.
pub trait CollectionStore: Send + Sync + fmt::Debug {
    /// The live variables of record `key` in `collection` (upper-case
    /// name) at `now_secs`; expired variables and records are left out.
    fn load(&self, collection: &str, key: &[u8], now_secs: i64) -> Vec<StoredVar>;
    /// Replaces the record with `vars`, written at `now_secs`; the record
    /// lives `timeout_secs` after this write.
    fn save(
        &self,
        collection: &str,
        key: &[u8],
        vars: Vec<StoredVar>,
        now_secs: i64,
        timeout_secs: i64,
    );
}

#[derive(Debug)]
struct Record {
    vars: Vec<StoredVar>,
    expires: i64,
    written: i64,
}

/// An in-memory [`CollectionStore`] shared by all transactions of a process.
#[derive(Debug, Default)]
pub struct MemoryStore {
    records: Mutex<HashMap<(String, Vec<u8>), Record>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// Number of records held (expired ones included until evicted).
    pub fn len(&self) -> usize {
        self.records.lock().map(|r| r.len()).unwrap_or(0)
    }

    /// True when no record is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl CollectionStore for MemoryStore {
    fn load(&self, collection: &str, key: &[u8], now_secs: i64) -> Vec<StoredVar> {
        let Ok(records) = self.records.lock() else {
            return Vec::new();
        };
        match records.get(&(collection.to_owned(), key.to_vec())) {
            Some(r) if r.expires > now_secs => r
                .vars
                .iter()
                .filter(|(_, _, exp)| exp.is_none_or(|e| e > now_secs))
                .cloned()
                .collect(),
            _ => Vec::new(),
        }
    }

    fn save(
        &self,
        collection: &str,
        key: &[u8],
        vars: Vec<StoredVar>,
        now_secs: i64,
        timeout_secs: i64,
    ) {
        let Ok(mut records) = self.records.lock() else {
            return;
        };
        let id = (collection.to_owned(), key.to_vec());
        if !records.contains_key(&id) && records.len() >= MAX_RECORDS {
            records.retain(|_, r| r.expires > now_secs);
            if records.len() >= MAX_RECORDS {
                if let Some(oldest) = records
                    .iter()
                    .min_by_key(|(_, r)| r.written)
                    .map(|(k, _)| k.clone())
                {
                    records.remove(&oldest);
                }
            }
        }
        records.insert(
            id,
            Record {
                vars,
                expires: now_secs.saturating_add(timeout_secs.max(1)),
                written: now_secs,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_and_records_expire() {
        let s = MemoryStore::new();
        s.save(
            "IP",
            b"1.2.3.4",
            vec![
                (b"a".to_vec(), b"1".to_vec(), None),
                (b"b".to_vec(), b"2".to_vec(), Some(110)),
            ],
            100,
            50,
        );
        assert_eq!(s.load("IP", b"1.2.3.4", 105).len(), 2);
        assert_eq!(s.load("IP", b"1.2.3.4", 110).len(), 1, "b expired at 110");
        assert!(s.load("IP", b"1.2.3.4", 150).is_empty(), "record timed out");
        assert!(s.load("GLOBAL", b"1.2.3.4", 105).is_empty());
    }
}
