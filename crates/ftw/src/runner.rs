//! Running tests against a [`Target`] and checking go-ftw's expectations.
//!
//! A test case passes when every stage passes. A stage is checked the way
//! go-ftw's `checkResult` does: `expect_error` first; then `status`, then
//! `response_contains`, then the log (`match_regex`, `expect_ids`,
//! `isolated`, `no_match_regex`, `no_expect_ids`). Platform overrides
//! replace the expected output of the tests they name before the run, as
//! go-ftw's `ApplyPlatformOverrides` does; overridden tests still run and
//! count as passed or failed, and are counted separately as well.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use regex::Regex;

use crate::model::{FtwTest, Input, Output, OverridesFile, TestCase, TestOverride};
use crate::request::build_request;
use crate::Error;

/// Most bytes of a failing request kept in a [`TestResult`] for the
/// report (default 600).
pub const MAX_REPORTED_REQUEST: usize = 600;

/// Most worker threads [`run`] starts (default 8).
pub const MAX_THREADS: usize = 8;

/// A test running longer than this (default 60 s) is named on stderr.
pub const HANG_WARNING: Duration = Duration::from_secs(60);

/// How often the watchdog looks (default 100 ms; also the most it delays
/// the end of a run).
const WATCHDOG_TICK: Duration = Duration::from_millis(100);

/// One stage handed to a target.
#[derive(Debug)]
pub struct StageRequest<'a> {
    /// The bytes go-ftw would write to the socket.
    pub raw: &'a [u8],
    /// The stage input (destination, protocol…).
    pub input: &'a Input,
    /// `"<rule>-<test>"`, for markers and messages.
    pub test_id: &'a str,
    /// 0-based stage index.
    pub stage: usize,
}

/// What a target observed for one stage.
#[derive(Debug, Clone, Default)]
pub struct StageResponse {
    /// Response status.
    pub status: u16,
    /// The full response (status line, headers, body) for
    /// `response_contains`.
    pub response: Vec<u8>,
    /// WAF log lines of this request (ModSecurity error-log style, one per
    /// logged rule), for `match_regex`.
    pub log: Vec<String>,
    /// Rule ids that fired and were logged.
    pub fired: Vec<u64>,
    /// When the HTTP layer answered the request itself (the WAF never saw
    /// it), why.
    pub answered_by_http_layer: Option<String>,
}

/// The "send a stage, see what the WAF did" step. The in-process engine is
/// one implementation; a socket runner against a live gateway is another.
pub trait Target: Sync {
    /// Sends one stage. `Err` means a connection-level failure (no
    /// response), which `expect_error` tests expect.
    fn send(&self, request: &StageRequest<'_>) -> Result<StageResponse, String>;
}

/// Which tests to run, by go-ftw's `"<rule>-<test>"` id string.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Run only ids this matches (go-ftw `--include`); inclusion wins over
    /// exclusion.
    pub include: Option<Regex>,
    /// Skip ids this matches (go-ftw `--exclude`).
    pub exclude: Option<Regex>,
}

impl Filter {
    /// Every test.
    pub fn all() -> Self {
        Self::default()
    }

    /// Builds a filter from optional include/exclude patterns.
    pub fn new(include: Option<&str>, exclude: Option<&str>) -> Result<Self, Error> {
        let compile = |p: &str| {
            Regex::new(p).map_err(|e| Error::Regex {
                pattern: p.to_owned(),
                message: e.to_string(),
            })
        };
        Ok(Filter {
            include: include.map(compile).transpose()?,
            exclude: exclude.map(compile).transpose()?,
        })
    }

    /// True when the test with this id string should run.
    pub fn wants(&self, id: &str) -> bool {
        if let Some(inc) = &self.include {
            return inc.is_match(id);
        }
        !self.exclude.as_ref().is_some_and(|e| e.is_match(id))
    }
}

/// The outcome of one test case.
#[derive(Debug, Clone, Default)]
pub struct TestResult {
    /// `"<rule>-<test>"`.
    pub id: String,
    /// Rule id of the test file.
    pub rule_id: u64,
    /// Test id.
    pub test_id: u64,
    /// File name.
    pub file: String,
    /// All stages passed.
    pub passed: bool,
    /// The override reason, when an override replaced the expectations.
    pub overridden: Option<String>,
    /// Human-readable reasons for failure (empty when passed).
    pub problems: Vec<String>,
    /// Expected ids that did not fire (failing stage).
    pub missing: Vec<u64>,
    /// Forbidden ids that fired (failing stage).
    pub unexpected: Vec<u64>,
    /// Every id that fired in the failing stage.
    pub fired: Vec<u64>,
    /// The failing stage's request, truncated to [`MAX_REPORTED_REQUEST`].
    pub request: Vec<u8>,
    /// Wall time spent on the test (all stages, target included).
    pub duration: Duration,
}

/// Counts for one test file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileCounts {
    /// Passed tests.
    pub passed: usize,
    /// Failed tests.
    pub failed: usize,
    /// Tests the filter skipped.
    pub skipped: usize,
    /// Tests whose expectations an override replaced.
    pub overridden: usize,
}

/// The result of a run.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Per file name, sorted.
    pub files: BTreeMap<String, FileCounts>,
    /// Passed tests (overridden ones included).
    pub passed: usize,
    /// Failed tests.
    pub failed: usize,
    /// Tests the filter skipped.
    pub skipped: usize,
    /// Tests whose expectations an override replaced.
    pub overridden: usize,
    /// Every failed test, in file order.
    pub failures: Vec<TestResult>,
    /// The slowest tests, slowest first (at most [`SLOWEST_KEPT`]), as
    /// `(id, duration)`: where the engine spends its time.
    pub slowest: Vec<(String, Duration)>,
}

/// How many of the slowest tests a [`Summary`] keeps (default 10).
pub const SLOWEST_KEPT: usize = 10;

impl Summary {
    /// Failures grouped by the rule id of their test file, most failures
    /// first (ties by rule id).
    pub fn failures_by_rule(&self) -> Vec<(u64, Vec<&TestResult>)> {
        let mut map: BTreeMap<u64, Vec<&TestResult>> = BTreeMap::new();
        for f in &self.failures {
            map.entry(f.rule_id).or_default().push(f);
        }
        let mut v: Vec<_> = map.into_iter().collect();
        v.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(&b.0)));
        v
    }

    /// The go-ftw style closing line: `N passed, M failed, K skipped` (with
    /// the override count in parentheses when there were any).
    pub fn final_line(&self) -> String {
        let mut s = format!(
            "{} passed, {} failed, {} skipped",
            self.passed, self.failed, self.skipped
        );
        if self.overridden > 0 {
            let _ = write!(s, " ({} overridden)", self.overridden);
        }
        s
    }

    /// Plain-text report: per-file counts, failures per rule, every failure
    /// with its missing/unexpected ids, the slowest tests, then
    /// [`Summary::final_line`].
    pub fn report(&self) -> String {
        let mut out = String::new();
        for (file, c) in &self.files {
            if c.passed + c.failed == 0 {
                continue;
            }
            let _ = writeln!(
                out,
                "{file}: {} passed, {} failed{}{}",
                c.passed,
                c.failed,
                if c.skipped > 0 {
                    format!(", {} skipped", c.skipped)
                } else {
                    String::new()
                },
                if c.overridden > 0 {
                    format!(" ({} overridden)", c.overridden)
                } else {
                    String::new()
                }
            );
        }
        if !self.failures.is_empty() {
            let _ = writeln!(out, "\nfailures per rule:");
            for (rule, fails) in self.failures_by_rule() {
                let _ = writeln!(out, "  {rule}: {}", fails.len());
            }
            let _ = writeln!(out, "\nfailures:");
            for f in &self.failures {
                let _ = writeln!(out, "  {}", f.one_line());
            }
        }
        if !self.slowest.is_empty() {
            let _ = writeln!(out, "\nslowest tests:");
            for (id, d) in &self.slowest {
                let _ = writeln!(out, "  {id}: {:.1} ms", d.as_secs_f64() * 1000.0);
            }
        }
        let _ = writeln!(out, "\n{}", self.final_line());
        out
    }

    /// Markdown digest for the engine's developers: the `top` rules with
    /// most failures, each with its count and one full example.
    pub fn markdown_digest(&self, top: usize) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "**{}**\n", self.final_line());
        let groups = self.failures_by_rule();
        let _ = writeln!(
            out,
            "{} failing tests in {} rule files. Top {}:\n",
            self.failed,
            groups.len(),
            top.min(groups.len())
        );
        let _ = writeln!(out, "| rule | failed | example | what went wrong |");
        let _ = writeln!(out, "|---|---|---|---|");
        for (rule, fails) in groups.iter().take(top) {
            let ex = fails[0];
            let _ = writeln!(
                out,
                "| {rule} | {} | {} | {} |",
                fails.len(),
                ex.id,
                ex.problems.join("; ").replace('|', "\\|")
            );
        }
        if !self.slowest.is_empty() {
            let slow: Vec<String> = self
                .slowest
                .iter()
                .map(|(id, d)| format!("{id} {:.0} ms", d.as_secs_f64() * 1000.0))
                .collect();
            let _ = writeln!(out, "\nSlowest tests (debug build): {}", slow.join(", "));
        }
        let _ = writeln!(out, "\n### Examples (first failing test of each rule)\n");
        for (rule, fails) in groups.iter().take(top) {
            let ex = fails[0];
            let _ = writeln!(out, "#### {rule} ({} failing): {}\n", fails.len(), ex.id);
            let _ = writeln!(out, "- {}", ex.problems.join("\n- "));
            let _ = writeln!(out, "- fired: {:?}", ex.fired);
            let others: Vec<&str> = fails
                .iter()
                .skip(1)
                .take(12)
                .map(|f| f.id.as_str())
                .collect();
            if !others.is_empty() {
                let _ = writeln!(out, "- also failing: {}", others.join(", "));
            }
            let _ = writeln!(
                out,
                "\n```\n{}\n```\n",
                String::from_utf8_lossy(&ex.request).escape_debug()
            );
        }
        out
    }
}

impl TestResult {
    /// `id (file): problem; problem [fired [ids]]`.
    pub fn one_line(&self) -> String {
        format!(
            "{} ({}): {} [fired {:?}]",
            self.id,
            self.file,
            self.problems.join("; "),
            self.fired
        )
    }
}

/// Runs every test of `tests` that `filter` wants against `target`, with
/// `overrides` applied, on up to `threads` threads (at least 1, at most
/// [`MAX_THREADS`]).
pub fn run(
    target: &dyn Target,
    tests: &[FtwTest],
    overrides: Option<&OverridesFile>,
    filter: &Filter,
    threads: usize,
) -> Summary {
    let index = OverrideIndex::new(overrides);
    let mut summary = Summary::default();
    let mut jobs: Vec<(usize, &TestCase)> = Vec::new();
    for (fi, file) in tests.iter().enumerate() {
        let counts = summary.files.entry(file.file_name.clone()).or_default();
        for case in &file.tests {
            if filter.wants(&case.id_string()) {
                jobs.push((fi, case));
            } else {
                counts.skipped += 1;
                summary.skipped += 1;
            }
        }
    }

    let results: Mutex<Vec<Option<TestResult>>> = Mutex::new(vec![None; jobs.len()]);
    let next = AtomicUsize::new(0);
    let threads = threads.clamp(1, MAX_THREADS);
    // Which test each worker is on, so a hanging test can be named.
    let in_flight: Mutex<Vec<Option<(String, Instant)>>> = Mutex::new(vec![None; threads]);
    let workers_left = AtomicUsize::new(threads);
    std::thread::scope(|s| {
        for w in 0..threads {
            let (next, jobs, results, in_flight, index) =
                (&next, &jobs, &results, &in_flight, &index);
            let workers_left = &workers_left;
            s.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(fi, case)) = jobs.get(i) else {
                        break;
                    };
                    let started = Instant::now();
                    if let Ok(mut f) = in_flight.lock() {
                        f[w] = Some((case.id_string(), started));
                    }
                    let mut r = run_case(target, &tests[fi].file_name, case, index);
                    r.duration = started.elapsed();
                    if let Ok(mut guard) = results.lock() {
                        guard[i] = Some(r);
                    }
                }
                workers_left.fetch_sub(1, Ordering::Relaxed);
            });
        }
        s.spawn(|| watchdog(&in_flight, &workers_left));
    });
    let results = results.into_inner().unwrap_or_else(|p| p.into_inner());

    let mut timings: Vec<(String, Duration)> = results
        .iter()
        .flatten()
        .map(|r| (r.id.clone(), r.duration))
        .collect();
    timings.sort_by_key(|t| std::cmp::Reverse(t.1));
    timings.truncate(SLOWEST_KEPT);
    summary.slowest = timings;
    for r in results.into_iter().flatten() {
        let counts = summary.files.entry(r.file.clone()).or_default();
        if r.overridden.is_some() {
            counts.overridden += 1;
            summary.overridden += 1;
        }
        if r.passed {
            counts.passed += 1;
            summary.passed += 1;
        } else {
            counts.failed += 1;
            summary.failed += 1;
            summary.failures.push(r);
        }
    }
    summary
}

/// Names, on stderr, every test that has run longer than
/// [`HANG_WARNING`], once, until the workers are done: an engine that hangs
/// on one input cannot be interrupted in-process, but it can be found.
fn watchdog(in_flight: &Mutex<Vec<Option<(String, Instant)>>>, workers_left: &AtomicUsize) {
    let mut warned: Vec<String> = Vec::new();
    while workers_left.load(Ordering::Relaxed) > 0 {
        std::thread::sleep(WATCHDOG_TICK);
        let Ok(f) = in_flight.lock() else { return };
        for (id, since) in f.iter().flatten() {
            if since.elapsed() > HANG_WARNING && !warned.contains(id) {
                eprintln!("ftw: test {id} has been running for {:?}", since.elapsed());
                warned.push(id.clone());
            }
        }
    }
}

struct OverrideIndex<'a> {
    by_rule: HashMap<u64, Vec<&'a TestOverride>>,
}

impl<'a> OverrideIndex<'a> {
    fn new(file: Option<&'a OverridesFile>) -> Self {
        let mut by_rule: HashMap<u64, Vec<&TestOverride>> = HashMap::new();
        for o in file
            .map(|f| f.test_overrides.as_slice())
            .unwrap_or_default()
        {
            by_rule.entry(o.rule_id).or_default().push(o);
        }
        OverrideIndex { by_rule }
    }

    /// The expected output for each stage, and the override reason if one
    /// applied. Like go-ftw, a later matching override wins.
    fn outputs(&self, case: &TestCase) -> (Vec<Output>, Option<String>) {
        let mut outs: Vec<Output> = case.stages.iter().map(|s| s.output.clone()).collect();
        let mut reason = None;
        for o in self.by_rule.get(&case.rule_id).into_iter().flatten() {
            if !o.test_ids.contains(&case.effective_id()) {
                continue;
            }
            for (i, out) in outs.iter_mut().enumerate() {
                if o.stage_ids.is_empty() || o.stage_ids.contains(&i) {
                    *out = o.output.clone();
                }
            }
            reason = Some(o.reason.clone());
        }
        (outs, reason)
    }
}

fn run_case(
    target: &dyn Target,
    file: &str,
    case: &TestCase,
    overrides: &OverrideIndex,
) -> TestResult {
    let id = case.id_string();
    let (outputs, overridden) = overrides.outputs(case);
    let mut result = TestResult {
        id: id.clone(),
        rule_id: case.rule_id,
        test_id: case.effective_id(),
        file: file.to_owned(),
        passed: true,
        overridden,
        ..TestResult::default()
    };
    for (i, (stage, expected)) in case.stages.iter().zip(&outputs).enumerate() {
        let raw = match build_request(&stage.input) {
            Ok(raw) => raw,
            Err(e) => {
                result.passed = false;
                result
                    .problems
                    .push(format!("stage {i}: cannot build request: {e}"));
                return result;
            }
        };
        let req = StageRequest {
            raw: &raw,
            input: &stage.input,
            test_id: &id,
            stage: i,
        };
        let mut response = target.send(&req);
        let mut check = check_stage(expected, &response);
        if !check.problems.is_empty() && expected.retry_once == Some(true) {
            // go-ftw retries such a stage once (phase-5 log races).
            response = target.send(&req);
            check = check_stage(expected, &response);
        }
        if !check.problems.is_empty() {
            result.passed = false;
            let prefix = if case.stages.len() > 1 {
                format!("stage {i}: ")
            } else {
                String::new()
            };
            result
                .problems
                .extend(check.problems.into_iter().map(|p| format!("{prefix}{p}")));
            result.missing = check.missing;
            result.unexpected = check.unexpected;
            result.fired = response.map(|r| r.fired).unwrap_or_default();
            result.request = raw[..raw.len().min(MAX_REPORTED_REQUEST)].to_vec();
            return result;
        }
    }
    result
}

/// Problems found in one stage; empty when it passed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct StageCheck {
    /// Human-readable problems.
    pub problems: Vec<String>,
    /// `expect_ids` that did not fire.
    pub missing: Vec<u64>,
    /// `no_expect_ids` that fired.
    pub unexpected: Vec<u64>,
}

/// Checks one stage's response against its expected output, as go-ftw's
/// `checkResult` does (it stops at the first failing check; this reports
/// every failing check, which is more useful and passes exactly the same
/// stages).
pub fn check_stage(expected: &Output, response: &Result<StageResponse, String>) -> StageCheck {
    let mut c = StageCheck::default();
    let expect_error = expected.expect_error == Some(true);
    let resp = match response {
        Err(e) => {
            if !expect_error {
                c.problems.push(format!("unexpected error: {e}"));
            }
            return c;
        }
        Ok(r) => r,
    };
    if expect_error {
        let why = resp
            .answered_by_http_layer
            .as_deref()
            .map(|w| format!(" (HTTP layer answered {}: {w})", resp.status))
            .unwrap_or_default();
        c.problems.push(format!(
            "expected an error, got status {}{why}",
            resp.status
        ));
        return c;
    }
    if let Some(status) = &expected.status {
        if !status.accepts(resp.status) {
            let why = resp
                .answered_by_http_layer
                .as_deref()
                .map(|w| format!(" (answered by the HTTP layer: {w})"))
                .unwrap_or_default();
            c.problems.push(format!(
                "status {} expected {:?}{why}",
                resp.status, status.0
            ));
        }
    }
    if !expected.response_contains.is_empty() {
        match Regex::new(&expected.response_contains) {
            Ok(re) => {
                if !re.is_match(&String::from_utf8_lossy(&resp.response)) {
                    c.problems.push(format!(
                        "response does not match {:?}",
                        expected.response_contains
                    ));
                }
            }
            Err(e) => c.problems.push(format!("bad response_contains regex: {e}")),
        }
    }
    let log_matches = |pattern: &str| -> Result<bool, String> {
        let re = Regex::new(pattern).map_err(|e| format!("bad log regex {pattern:?}: {e}"))?;
        Ok(resp.log.iter().any(|l| re.is_match(l)))
    };
    let positive = expected.match_regex();
    if !positive.is_empty() {
        match log_matches(positive) {
            Ok(true) => {}
            Ok(false) => c.problems.push(format!("no log line matches {positive:?}")),
            Err(e) => c.problems.push(e),
        }
    }
    c.missing = expected
        .log
        .expect_ids
        .iter()
        .copied()
        .filter(|id| !resp.fired.contains(id))
        .collect();
    if !c.missing.is_empty() {
        c.problems.push(format!("missing ids {:?}", c.missing));
    }
    if expected.isolated {
        let mut distinct = resp.fired.clone();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() != 1 {
            c.problems
                .push(format!("isolated test fired {} rules", distinct.len()));
        }
    }
    let negative = expected.no_match_regex();
    if !negative.is_empty() {
        match log_matches(negative) {
            Ok(false) => {}
            Ok(true) => c.problems.push(format!("a log line matches {negative:?}")),
            Err(e) => c.problems.push(e),
        }
    }
    c.unexpected = expected
        .log
        .no_expect_ids
        .iter()
        .copied()
        .filter(|id| resp.fired.contains(id))
        .collect();
    if !c.unexpected.is_empty() {
        c.problems
            .push(format!("unexpected ids {:?}", c.unexpected));
    }
    if !c.problems.is_empty() {
        if let Some(why) = &resp.answered_by_http_layer {
            c.problems.push(format!(
                "answered by the HTTP layer with {}: {why}",
                resp.status
            ));
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::{parse_overrides, parse_test};

    /// Fires rule 1 when the raw request contains "attack", logs it as
    /// ModSecurity would, and answers 200; "garbage" is refused.
    struct Fake;
    impl Target for Fake {
        fn send(&self, r: &StageRequest<'_>) -> Result<StageResponse, String> {
            let text = String::from_utf8_lossy(r.raw);
            if text.contains("garbage") {
                return Err("connection reset".into());
            }
            let mut resp = StageResponse {
                status: 200,
                ..StageResponse::default()
            };
            if text.contains("attack") {
                resp.fired.push(1);
                resp.log.push("[id \"1\"] [msg \"attack seen\"]".into());
            }
            Ok(resp)
        }
    }

    const TESTS: &str = r#"
rule_id: 1
tests:
  - test_id: 1
    stages:
      - input: {uri: "/attack"}
        output: {log: {expect_ids: [1]}}
  - test_id: 2
    stages:
      - input: {uri: "/fine"}
        output: {log: {expect_ids: [1]}}
  - test_id: 3
    stages:
      - input: {uri: "/attack"}
        output: {log: {no_expect_ids: [1]}, status: [403, 200]}
  - test_id: 4
    stages:
      - input: {uri: "/garbage"}
        output: {expect_error: true}
  - test_id: 5
    stages:
      - input: {uri: "/attack"}
        output: {log_contains: 'msg "attack', status: 200}
      - input: {uri: "/fine"}
        output: {status: 404}
"#;

    #[test]
    fn expectations_are_checked_like_go_ftw() {
        let t = parse_test(TESTS, "1.yaml").unwrap().unwrap();
        let s = run(&Fake, &[t], None, &Filter::all(), 2);
        assert_eq!((s.passed, s.failed), (2, 3), "{}", s.report());
        let ids: Vec<&str> = s.failures.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(ids, ["1-2", "1-3", "1-5"]);
        assert_eq!(s.failures[0].missing, [1]);
        assert_eq!(s.failures[1].unexpected, [1]);
        assert_eq!(
            s.failures[2].problems,
            ["stage 1: status 200 expected [404]"]
        );
        assert!(s.report().ends_with("2 passed, 3 failed, 0 skipped\n"));
    }

    #[test]
    fn isolated_response_contains_and_bad_regexes() {
        let resp = |fired: Vec<u64>| {
            Ok(StageResponse {
                status: 200,
                response: b"HTTP/1.1 200 OK\r\n\r\nhello".to_vec(),
                log: vec!["[id \"1\"]".into()],
                fired,
                answered_by_http_layer: None,
            })
        };
        let out = |yaml: &str| -> Output { serde_yaml_ng::from_str(yaml).unwrap() };
        let isolated = out("{log: {expect_ids: [1]}, isolated: true}");
        assert!(check_stage(&isolated, &resp(vec![1, 1]))
            .problems
            .is_empty());
        assert_eq!(
            check_stage(&isolated, &resp(vec![1, 2])).problems,
            ["isolated test fired 2 rules"]
        );
        assert!(
            check_stage(&out("{response_contains: 'hel+o'}"), &resp(vec![]))
                .problems
                .is_empty()
        );
        assert_eq!(
            check_stage(&out("{response_contains: 'bye'}"), &resp(vec![])).problems,
            ["response does not match \"bye\""]
        );
        let bad = check_stage(&out("{log: {match_regex: '('}}"), &resp(vec![]));
        assert!(
            bad.problems[0].starts_with("bad log regex"),
            "{:?}",
            bad.problems
        );
        let err: Result<StageResponse, String> = Err("reset".into());
        assert_eq!(
            check_stage(&out("{status: 200}"), &err).problems,
            ["unexpected error: reset"]
        );
    }

    #[test]
    fn overrides_replace_outputs_and_filter_skips() {
        let t = parse_test(TESTS, "1.yaml").unwrap().unwrap();
        let o = parse_overrides(
            "version: v0\nmeta: {engine: x, platform: y, annotations: [{a: b}]}\ntest_overrides:\n  - rule_id: 1\n    test_ids: [2, 3]\n    reason: why\n    output: {status: 200}\n  - rule_id: 1\n    test_ids: []\n    reason: applies to nothing\n",
            "o.yaml",
        )
        .unwrap();
        let f = Filter::new(None, Some("^1-5$")).unwrap();
        let s = run(&Fake, &[t], Some(&o), &f, 1);
        assert_eq!(
            (s.passed, s.failed, s.skipped, s.overridden),
            (4, 0, 1, 2),
            "{}",
            s.report()
        );
        let f = Filter::new(Some("^1-[12]$"), Some("1-")).unwrap();
        assert!(f.wants("1-1") && !f.wants("1-3"));
    }
}
