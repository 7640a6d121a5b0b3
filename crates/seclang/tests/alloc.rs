//! Evaluating rules allocates nothing per rule when nothing matches: the
//! transformation cache, scratch buffers and prefilter reuse their memory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::alloc::System;
use std::sync::Arc;

use seclang::{FsLoader, Ruleset, TransactionInput};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn ruleset(rules: usize) -> Arc<Ruleset> {
    let mut text = String::from("SecAction \"id:1,phase:1,pass,nolog,setvar:tx.threshold=5\"\n");
    for i in 0..rules {
        let id = 1000 + i;
        text.push_str(&format!(
            "SecRule ARGS|REQUEST_HEADERS|!REQUEST_HEADERS:Host \"@rx (?i)attack{i}\\d\" \"id:{id},phase:2,block,t:none,t:lowercase,capture\"\n\
             SecRule TX:score \"@ge %{{tx.threshold}}\" \"id:{},phase:2,pass,t:none\"\n",
            id + 5000
        ));
    }
    Arc::new(Ruleset::from_str(&text, "alloc.conf", &FsLoader).unwrap())
}

fn phase2_allocs(rs: &Arc<Ruleset>) -> u64 {
    let mut tx = rs.transaction(TransactionInput::default());
    tx.request_line("GET", "/?a=Hello&b=World&c=3", "HTTP/1.1");
    tx.request_header("Host", "example.org");
    tx.request_header("User-Agent", "Mozilla/5.0");
    assert!(tx.process_request_headers().is_none());
    let region = Region::new(GLOBAL);
    assert!(tx.process_request_body().is_none());
    let stats = region.change();
    let used = (stats.allocations + stats.reallocations) as u64;
    assert!(tx.matched_rules().len() == 1);
    used
}

#[test]
fn no_allocation_per_rule_evaluation() {
    let small = ruleset(10);
    let large = ruleset(200);
    // Warm up per-thread regex caches.
    phase2_allocs(&small);
    phase2_allocs(&large);
    let a = phase2_allocs(&small);
    let b = phase2_allocs(&large);
    // 380 more rule evaluations over 4 values each may only cost the
    // per-transaction setup (cache tables growing), not one allocation per
    // evaluation.
    eprintln!("allocations in phase 2: 10 rules {a}, 200 rules {b}");
    assert!(b < a + 40, "10 rules: {a} allocations, 200 rules: {b}");
}
