//! Connects the request body processors in [`crate::body`] to a transaction.
//!
//! Until the processors for MULTIPART, JSON and XML are integrated, such
//! bodies are recorded as an unsupported-processor error (REQBODY_ERROR=1)
//! rather than silently treated as parsed.

use crate::transaction::Transaction;

/// Runs the processor named `processor` (upper case) over `body`.
pub(crate) fn process(tx: &mut Transaction, processor: &str, body: &[u8]) {
    let _ = body;
    tx.set_reqbody_error(&format!("body processor {processor} is not available"));
}
