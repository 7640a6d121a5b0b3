//! The built-in rules against the CRS regression payloads of their
//! categories: recall on the cases CRS expects to fire, and no block on the
//! cases CRS expects not to fire.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::path::Path;

use ftw::inprocess::InProcess;
use ftw::request::build_request;
use ftw::{StageRequest, Target};

/// One CRS test category and the floors measured for the built-in rules.
struct Category {
    dir: &'static str,
    /// CRS rule ids of the category (expect_ids in this range = attack).
    ids: std::ops::RangeInclusive<u64>,
    /// Least share of attack stages blocked (per mille).
    recall_floor: u32,
    /// Least share of the attack stages of CRS paranoia-level-1 rules
    /// blocked (per mille).
    pl1_floor: u32,
    /// Most benign stages blocked (CRS expects no rule of the file to fire
    /// and the whole CRS at paranoia level 4 flags nothing).
    fp_ceiling: usize,
}

const CATEGORIES: &[Category] = &[
    Category {
        dir: "REQUEST-942-APPLICATION-ATTACK-SQLI",
        ids: 942000..=942999,
        pl1_floor: 450,
        recall_floor: 280,
        fp_ceiling: 0,
    },
    Category {
        dir: "REQUEST-941-APPLICATION-ATTACK-XSS",
        ids: 941000..=941999,
        pl1_floor: 650,
        recall_floor: 620,
        fp_ceiling: 0,
    },
    Category {
        dir: "REQUEST-930-APPLICATION-ATTACK-LFI",
        ids: 930000..=930999,
        pl1_floor: 760,
        recall_floor: 650,
        fp_ceiling: 1,
    },
    Category {
        dir: "REQUEST-932-APPLICATION-ATTACK-RCE",
        ids: 932000..=932999,
        pl1_floor: 470,
        recall_floor: 300,
        fp_ceiling: 1,
    },
    Category {
        dir: "REQUEST-913-SCANNER-DETECTION",
        ids: 913000..=913999,
        pl1_floor: 1000,
        recall_floor: 1000,
        fp_ceiling: 0,
    },
    Category {
        dir: "REQUEST-920-PROTOCOL-ENFORCEMENT",
        ids: 920000..=920999,
        pl1_floor: 90,
        recall_floor: 70,
        fp_ceiling: 6,
    },
    Category {
        dir: "REQUEST-911-METHOD-ENFORCEMENT",
        ids: 911000..=911999,
        pl1_floor: 750,
        recall_floor: 750,
        fp_ceiling: 0,
    },
];

#[derive(Default, Debug)]
struct Counts {
    attacks: usize,
    blocked: usize,
    /// Attack stages whose expected CRS rule is at paranoia level 1.
    attacks_pl1: usize,
    blocked_pl1: usize,
    benign: usize,
    false_blocks: Vec<String>,
    http_layer: usize,
    /// "Benign" stages the full CRS flags anyway (left out of `benign`).
    benign_but_crs_flags: usize,
}

/// CRS rule id → paranoia level, from the `paranoia-level/N` tags of the
/// rule files.
fn paranoia_levels(rules_dir: &Path) -> HashMap<u64, u8> {
    let id = regex::Regex::new(r"id:(\d+)").unwrap();
    let pl = regex::Regex::new(r"paranoia-level/(\d)").unwrap();
    let mut out = HashMap::new();
    for entry in std::fs::read_dir(rules_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "conf") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for block in text.split("\nSecRule ") {
            if let (Some(i), Some(p)) = (id.captures(block), pl.captures(block)) {
                out.insert(i[1].parse().unwrap(), p[1].parse().unwrap());
            }
        }
    }
    out
}

/// Whether the full CRS (regression-test setup: paranoia level 4) finds
/// any attack or protocol problem (a rule 911xxx-944xxx) in this request.
fn crs_flags(crs: &InProcess, raw: &[u8], stage: &StageRequest<'_>) -> bool {
    let r = crs
        .send(&StageRequest { raw, ..*stage })
        .unwrap_or_default();
    r.fired.iter().any(|id| (911_000..=944_999).contains(id))
}

fn measure(
    target: &InProcess,
    crs: &InProcess,
    tests_dir: &Path,
    cat: &Category,
    pls: &HashMap<u64, u8>,
) -> Counts {
    let tests = ftw::load::load_tests(&tests_dir.join(cat.dir)).unwrap();
    let mut c = Counts::default();
    let verbose = std::env::var_os("RULES_VERBOSE").is_some();
    for file in &tests {
        for case in &file.tests {
            let id = case.id_string();
            for (n, stage) in case.stages.iter().enumerate() {
                let log = &stage.output.log;
                let attack = log.expect_ids.iter().any(|i| cat.ids.contains(i));
                let benign = log.expect_ids.is_empty()
                    && log.no_expect_ids.iter().any(|i| cat.ids.contains(i));
                if !attack && !benign {
                    continue;
                }
                let raw = build_request(&stage.input).unwrap();
                let req = StageRequest {
                    raw: &raw,
                    input: &stage.input,
                    test_id: &id,
                    stage: n,
                };
                let r = target.send(&req).unwrap_or_default();
                if r.answered_by_http_layer.is_some() {
                    c.http_layer += 1;
                    continue;
                }
                let blocked = r.status == 403;
                if attack {
                    c.attacks += 1;
                    c.blocked += usize::from(blocked);
                    if pls.get(&file.rule_id) == Some(&1) {
                        c.attacks_pl1 += 1;
                        c.blocked_pl1 += usize::from(blocked);
                    }
                    if verbose && !blocked {
                        println!(
                            "MISS {id}: {}",
                            String::from_utf8_lossy(&raw).replace("\r\n", " | ")
                        );
                    }
                } else {
                    // A case CRS expects one rule not to fire on is often an
                    // attack another rule catches: benign means the whole
                    // CRS at paranoia level 4 finds nothing in it.
                    if crs_flags(crs, &raw, &req) {
                        c.benign_but_crs_flags += 1;
                        continue;
                    }
                    c.benign += 1;
                    if blocked {
                        c.false_blocks.push(format!("{id} fired {:?}", r.fired));
                    }
                }
            }
        }
    }
    c
}

#[test]
fn recall_and_false_positives_on_crs_regression_payloads() {
    let tests_dir = common::shared().join("crs-v4/tests/tests");
    assert!(tests_dir.is_dir(), "{} missing", tests_dir.display());
    let pls = paranoia_levels(&common::shared().join("crs-v4/rules"));
    let target = InProcess::new(common::builtin_with(""));
    let crs = InProcess::crs(&common::shared().join("crs-v4")).unwrap();
    let mut failures = Vec::new();
    for cat in CATEGORIES {
        let c = measure(&target, &crs, &tests_dir, cat, &pls);
        assert!(c.attacks > 0, "{}: no attack case found", cat.dir);
        let permille = (c.blocked * 1000 / c.attacks) as u32;
        let pl1 = (c.blocked_pl1 * 1000 / c.attacks_pl1.max(1)) as u32;
        println!(
            "{:40} attacks {:4} blocked {:4} recall {:5.1}% (floor {:5.1}%) PL1 {:4}/{:4} {:5.1}% (floor {:5.1}%) | benign {:3} blocked {:2} (ceiling {}) (+{} CRS PL4 flags) | http-layer {}",
            cat.dir, c.attacks, c.blocked, f64::from(permille) / 10.0, f64::from(cat.recall_floor) / 10.0, c.blocked_pl1, c.attacks_pl1, f64::from(pl1) / 10.0, f64::from(cat.pl1_floor) / 10.0,
            c.benign, c.false_blocks.len(), cat.fp_ceiling, c.benign_but_crs_flags, c.http_layer
        );
        for fb in &c.false_blocks {
            println!("    false block: {fb}");
        }
        if pl1 < cat.pl1_floor {
            failures.push(format!(
                "{}: PL1 recall {pl1}‰ < floor {}‰",
                cat.dir, cat.pl1_floor
            ));
        }
        if permille < cat.recall_floor {
            failures.push(format!(
                "{}: recall {permille}‰ < floor {}‰",
                cat.dir, cat.recall_floor
            ));
        }
        if c.false_blocks.len() > cat.fp_ceiling {
            failures.push(format!(
                "{}: {} false blocks > {}",
                cat.dir,
                c.false_blocks.len(),
                cat.fp_ceiling
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
