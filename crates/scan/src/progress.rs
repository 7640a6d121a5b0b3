//! A lock-free progress counter a scanner updates and a CLI polls to draw a
//! progress bar (the scan crate draws nothing itself).

use std::sync::atomic::{AtomicU64, Ordering};

/// Work done / work known so far; both only grow.
#[derive(Debug, Default)]
pub struct Progress {
    done: AtomicU64,
    total: AtomicU64,
}

impl Progress {
    /// A counter at 0 / 0.
    pub fn new() -> Progress {
        Progress::default()
    }

    /// Adds `n` units of known work.
    pub fn add_total(&self, n: u64) {
        self.total.fetch_add(n, Ordering::Relaxed);
    }

    /// Marks `n` units done.
    pub fn inc(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }

    /// `(done, total)`.
    pub fn get(&self) -> (u64, u64) {
        (
            self.done.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
        )
    }
}
