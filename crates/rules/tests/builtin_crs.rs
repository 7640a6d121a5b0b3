//! The built-in rules against the CRS regression payloads of their
//! categories: recall on the cases CRS expects to fire, and no block on the
//! cases CRS expects not to fire.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

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
    /// Most benign stages (CRS expects no rule of the file) blocked.
    fp_ceiling: usize,
}

const CATEGORIES: &[Category] = &[
    Category {
        dir: "REQUEST-942-APPLICATION-ATTACK-SQLI",
        ids: 942000..=942999,
        recall_floor: 240,
        fp_ceiling: 10,
    },
    Category {
        dir: "REQUEST-941-APPLICATION-ATTACK-XSS",
        ids: 941000..=941999,
        recall_floor: 470,
        fp_ceiling: 9,
    },
    Category {
        dir: "REQUEST-930-APPLICATION-ATTACK-LFI",
        ids: 930000..=930999,
        recall_floor: 220,
        fp_ceiling: 1,
    },
    Category {
        dir: "REQUEST-932-APPLICATION-ATTACK-RCE",
        ids: 932000..=932999,
        recall_floor: 100,
        fp_ceiling: 13,
    },
    Category {
        dir: "REQUEST-913-SCANNER-DETECTION",
        ids: 913000..=913999,
        recall_floor: 1000,
        fp_ceiling: 0,
    },
    Category {
        dir: "REQUEST-920-PROTOCOL-ENFORCEMENT",
        ids: 920000..=920999,
        recall_floor: 70,
        fp_ceiling: 12,
    },
    Category {
        dir: "REQUEST-911-METHOD-ENFORCEMENT",
        ids: 911000..=911999,
        recall_floor: 750,
        fp_ceiling: 0,
    },
];

#[derive(Default, Debug)]
struct Counts {
    attacks: usize,
    blocked: usize,
    benign: usize,
    false_blocks: Vec<String>,
    http_layer: usize,
}

fn measure(target: &InProcess, tests_dir: &Path, cat: &Category) -> Counts {
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
                let r = target
                    .send(&StageRequest {
                        raw: &raw,
                        input: &stage.input,
                        test_id: &id,
                        stage: n,
                    })
                    .unwrap_or_default();
                if r.answered_by_http_layer.is_some() {
                    c.http_layer += 1;
                    continue;
                }
                let blocked = r.status == 403;
                if attack {
                    c.attacks += 1;
                    c.blocked += usize::from(blocked);
                    if verbose && !blocked {
                        println!(
                            "MISS {id}: {}",
                            String::from_utf8_lossy(&raw)
                                .chars()
                                .take(300)
                                .collect::<String>()
                        );
                    }
                } else {
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
    let target = InProcess::new(common::builtin_with(""));
    let mut failures = Vec::new();
    for cat in CATEGORIES {
        let c = measure(&target, &tests_dir, cat);
        assert!(c.attacks > 0, "{}: no attack case found", cat.dir);
        let permille = (c.blocked * 1000 / c.attacks) as u32;
        println!(
            "{:40} attacks {:4} blocked {:4} recall {:5.1}% (floor {:5.1}%) | benign {:3} blocked {:2} (ceiling {}) | http-layer {}",
            cat.dir, c.attacks, c.blocked, f64::from(permille) / 10.0, f64::from(cat.recall_floor) / 10.0,
            c.benign, c.false_blocks.len(), cat.fp_ceiling, c.http_layer
        );
        for fb in &c.false_blocks {
            println!("    false block: {fb}");
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
