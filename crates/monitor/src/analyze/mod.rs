//! `palisade logs analyze`: offline analysis of web server access logs
//! through the WAF rules.
//!
//! ```text
//!  FILE... ─► LogInput (plain or gzip, lines ≤ MAX_LINE_BYTES)
//!    │ reader thread: batches of raw lines (bounded channel, BATCHES_IN_FLIGHT per worker)
//!    ▼
//!  worker × N: parse_line ─► Evaluator (CRS or built-in, verdict cache)
//!    │          └─► its own Summary (per-client, per-rule, timeline: all capped)
//!    ▼
//!  Summary::merge ─► Analysis ─► terminal text / JSON / self-contained HTML
//! ```
//!
//! Memory is bounded whatever the log size: lines are streamed, batches in
//! flight are bounded, and every aggregate has a named cap (clients,
//! rules, timeline buckets, samples). Malformed, truncated, binary and
//! over-long lines are counted with a sample of their line numbers, never
//! fatal.

pub mod behaviour;
pub mod engine;
pub mod html;
pub mod input;
pub mod parse;
pub mod report;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use behaviour::ClientStats;
pub use engine::{category_names, load_rules, RuleChoice, RuleOptions, Rules, Verdict, CATEGORIES};
pub use input::MAX_LINE_BYTES;
pub use parse::{parse_line, Entry, LogFormat, Skip};

use engine::{Evaluator, VerdictCache};
use input::{Line, LogInput};

/// Clients tracked individually (default 100,000, about 25 MB): past it,
/// new clients are only counted in the totals (`untracked_requests`),
/// so a log from a botnet or with spoofed addresses cannot exhaust memory.
pub const MAX_CLIENTS: usize = 100_000;

/// Longest client address kept (default 64 bytes; an IPv6 address with a
/// zone is under 50): bounds the key of a forged `X-Forwarded-For`-style entry.
pub const MAX_CLIENT_LEN: usize = 64;

/// Distinct rule ids counted (default 10,000; CRS has about 600).
pub const MAX_RULES: usize = 10_000;

/// Timeline buckets kept (default 2,048): when a log spans more, buckets
/// are merged two by two (their width doubles), so a year of log costs
/// the same as an hour.
pub const MAX_TIMELINE_BUCKETS: usize = 2048;

/// Width of a timeline bucket before any merging (default 60 s).
pub const TIMELINE_START_WIDTH: i64 = 60;

/// Skipped-line numbers kept as a sample (default 20).
pub const MAX_SKIP_SAMPLES: usize = 20;

/// Attack and suspicious-success samples kept each (default 100).
pub const MAX_SAMPLES: usize = 100;

/// Characters of a request target kept in a sample (default 512).
pub const MAX_SAMPLE_URI: usize = 512;

/// Lines per batch sent to a worker (default 512).
const BATCH_LINES: usize = 512;

/// Bytes per batch before it is sent early (default 1 MiB).
const BATCH_BYTES: usize = 1024 * 1024;

/// Batches queued per worker (default 2): with [`BATCH_BYTES`] and
/// [`MAX_LINE_BYTES`] this bounds the memory of lines in flight.
const BATCHES_IN_FLIGHT: usize = 2;

/// Lines between progress callbacks' clock checks.
const PROGRESS_CHECK_LINES: u64 = 8192;

/// How often progress is reported.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

/// Analysis settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// Log format.
    pub format: LogFormat,
    /// Worker threads (0: one per core).
    pub threads: usize,
    /// Cache verdicts of repeated requests (exact for CRS and the built-in
    /// rules; see [`engine`]).
    pub cache: bool,
    /// Keep the position of every line called an attack, up to this many
    /// (0, the default: none). For evaluations that compare with a ground
    /// truth.
    pub flagged_lines: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            format: LogFormat::Auto,
            threads: 0,
            cache: true,
            flagged_lines: 0,
        }
    }
}

/// Where a line is: file index (in the order given) and line number (from 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LineRef {
    /// Index of the file in the list analysed.
    pub file: usize,
    /// Line number, from 1.
    pub line: u64,
}

/// A request kept as an example.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Where.
    pub at: LineRef,
    /// Client address.
    pub client: String,
    /// Time (Unix seconds).
    pub time: Option<i64>,
    /// Method.
    pub method: String,
    /// Target, at most [`MAX_SAMPLE_URI`] characters (lossy UTF-8).
    pub uri: String,
    /// Status.
    pub status: u16,
    /// What the rules found.
    pub verdict: Verdict,
}

/// One input file.
#[derive(Debug, Clone, Default)]
pub struct FileSummary {
    /// Path as given.
    pub path: PathBuf,
    /// Lines read.
    pub lines: u64,
    /// Bytes of the file read.
    pub bytes: u64,
    /// Gzip-compressed.
    pub gzip: bool,
    /// Why it could not be read (entirely or to its end).
    pub error: Option<String>,
}

/// Requests and attacks over time.
#[derive(Debug, Clone)]
pub struct Timeline {
    /// Bucket width in seconds.
    pub width: i64,
    /// Bucket start / width → (requests, attacks).
    pub buckets: BTreeMap<i64, (u64, u64)>,
}

impl Default for Timeline {
    fn default() -> Self {
        Timeline {
            width: TIMELINE_START_WIDTH,
            buckets: BTreeMap::new(),
        }
    }
}

impl Timeline {
    fn add(&mut self, t: i64, attack: bool) {
        let e = self.buckets.entry(t.div_euclid(self.width)).or_default();
        e.0 += 1;
        e.1 += u64::from(attack);
        if self.buckets.len() > MAX_TIMELINE_BUCKETS {
            self.widen(self.width * 2);
        }
    }

    /// Re-buckets to `width` (a multiple of the current width).
    fn widen(&mut self, width: i64) {
        if width <= self.width {
            return;
        }
        let old = std::mem::take(&mut self.buckets);
        for (k, (r, a)) in old {
            let e = self
                .buckets
                .entry((k * self.width).div_euclid(width))
                .or_default();
            e.0 += r;
            e.1 += a;
        }
        self.width = width;
    }

    fn merge(&mut self, mut o: Timeline) {
        let w = self.width.max(o.width);
        self.widen(w);
        o.widen(w);
        for (k, (r, a)) in o.buckets {
            let e = self.buckets.entry(k).or_default();
            e.0 += r;
            e.1 += a;
        }
        while self.buckets.len() > MAX_TIMELINE_BUCKETS {
            self.widen(self.width * 2);
        }
    }

    /// At most `n` buckets `(start, width, requests, attacks)`, merged evenly
    /// from the first to the last, for display.
    pub fn display(&self, n: usize) -> Vec<(i64, i64, u64, u64)> {
        let (Some((&first, _)), Some((&last, _))) = (
            self.buckets.first_key_value(),
            self.buckets.last_key_value(),
        ) else {
            return Vec::new();
        };
        let span = last - first + 1;
        let per = (span + n as i64 - 1) / n.max(1) as i64;
        let per = per.max(1);
        let count = ((span + per - 1) / per) as usize;
        let mut out: Vec<(i64, i64, u64, u64)> = (0..count)
            .map(|i| {
                (
                    (first + i as i64 * per) * self.width,
                    per * self.width,
                    0,
                    0,
                )
            })
            .collect();
        for (k, (r, a)) in &self.buckets {
            let i = ((k - first) / per) as usize;
            if let Some(slot) = out.get_mut(i) {
                slot.2 += r;
                slot.3 += a;
            }
        }
        out
    }
}

/// Everything counted; one per worker, merged at the end.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Lines read (all, including skipped and blank).
    pub lines: u64,
    /// Lines parsed as log entries.
    pub entries: u64,
    /// Entries without a request line (`"-"`).
    pub no_request: u64,
    /// Skipped lines by reason.
    pub skipped: BTreeMap<Skip, u64>,
    /// The first skipped lines.
    pub skipped_samples: Vec<(LineRef, Skip)>,
    /// Requests run through the rules.
    pub requests: u64,
    /// Requests called attacks.
    pub attacks: u64,
    /// Attack requests per category (index as in [`CATEGORIES`]).
    pub by_category: Vec<u64>,
    /// Attack requests per rule id (capped at [`MAX_RULES`]).
    pub by_rule: HashMap<u64, u64>,
    /// Answers by class: index 1 = 1xx … 5 = 5xx.
    pub status_classes: [u64; 6],
    /// Per client (capped at [`MAX_CLIENTS`]).
    pub clients: HashMap<String, ClientStats>,
    /// Requests of clients past [`MAX_CLIENTS`].
    pub untracked_requests: u64,
    /// Requests and attacks over time.
    pub timeline: Timeline,
    /// Attacks answered 2xx.
    pub suspicious_successes: u64,
    /// The first attacks.
    pub attack_samples: Vec<Sample>,
    /// The first suspicious successes.
    pub success_samples: Vec<Sample>,
    /// Every attack's position, up to [`Options::flagged_lines`].
    pub flagged: Vec<LineRef>,
    /// Verdicts answered from the cache.
    pub cache_hits: u64,
    /// Verdicts computed by the engine.
    pub evaluated: u64,
}

fn push_sample<T>(v: &mut Vec<T>, cap: usize, x: T) {
    if v.len() < cap {
        v.push(x);
    }
}

fn truncate_chars(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

impl Summary {
    fn skip(&mut self, at: LineRef, why: Skip) {
        *self.skipped.entry(why).or_default() += 1;
        push_sample(&mut self.skipped_samples, MAX_SKIP_SAMPLES, (at, why));
    }

    fn record(&mut self, at: LineRef, e: &Entry<'_>, v: Option<&Verdict>, flag_cap: usize) {
        self.entries += 1;
        if let Some(slot) = self.status_classes.get_mut(usize::from(e.status / 100)) {
            *slot += 1;
        }
        let client: &str = if e.client.len() > MAX_CLIENT_LEN {
            let mut end = MAX_CLIENT_LEN;
            while !e.client.is_char_boundary(end) {
                end -= 1;
            }
            &e.client[..end]
        } else {
            &e.client
        };
        if self.clients.len() < MAX_CLIENTS && !self.clients.contains_key(client) {
            self.clients
                .insert(client.to_string(), ClientStats::default());
        }
        let stats = self.clients.get_mut(client);
        let Some(v) = v else {
            self.no_request += 1;
            if let Some(s) = stats {
                s.record(e.time, b"-", e.status);
            } else {
                self.untracked_requests += 1;
            }
            return;
        };
        self.requests += 1;
        let path = e.uri.split(|&b| b == b'?').next().unwrap_or(&[]);
        let success = v.attack && (200..300).contains(&e.status);
        match stats {
            Some(s) => {
                s.record(e.time, path, e.status);
                if v.attack {
                    s.attacks += 1;
                    s.categories |= v.categories;
                    s.suspicious_successes += u64::from(success);
                }
            }
            None => self.untracked_requests += 1,
        }
        if let Some(t) = e.time {
            self.timeline.add(t, v.attack);
        }
        if !v.attack {
            return;
        }
        self.attacks += 1;
        if self.by_category.len() < CATEGORIES.len() {
            self.by_category.resize(CATEGORIES.len(), 0);
        }
        for (i, slot) in self.by_category.iter_mut().enumerate() {
            if v.categories & (1 << i) != 0 {
                *slot += 1;
            }
        }
        for id in &v.rules {
            if let Some(n) = self.by_rule.get_mut(id) {
                *n += 1;
            } else if self.by_rule.len() < MAX_RULES {
                self.by_rule.insert(*id, 1);
            }
        }
        if self.flagged.len() < flag_cap {
            self.flagged.push(at);
        }
        let want_attack = self.attack_samples.len() < MAX_SAMPLES;
        let want_success = success && self.success_samples.len() < MAX_SAMPLES;
        if want_attack || want_success {
            let sample = Sample {
                at,
                client: client.to_string(),
                time: e.time,
                method: String::from_utf8_lossy(&e.method).into_owned(),
                uri: truncate_chars(&String::from_utf8_lossy(&e.uri), MAX_SAMPLE_URI),
                status: e.status,
                verdict: v.clone(),
            };
            if want_success {
                self.success_samples.push(sample.clone());
            }
            if want_attack {
                self.attack_samples.push(sample);
            }
        }
        if success {
            self.suspicious_successes += 1;
        }
    }

    /// Adds another worker's summary.
    pub fn merge(&mut self, o: Summary) {
        self.lines += o.lines;
        self.entries += o.entries;
        self.no_request += o.no_request;
        for (k, n) in o.skipped {
            *self.skipped.entry(k).or_default() += n;
        }
        self.skipped_samples.extend(o.skipped_samples);
        self.skipped_samples.sort();
        self.skipped_samples.truncate(MAX_SKIP_SAMPLES);
        self.requests += o.requests;
        self.attacks += o.attacks;
        if self.by_category.len() < o.by_category.len() {
            self.by_category.resize(o.by_category.len(), 0);
        }
        for (a, b) in self.by_category.iter_mut().zip(o.by_category) {
            *a += b;
        }
        for (id, n) in o.by_rule {
            if let Some(m) = self.by_rule.get_mut(&id) {
                *m += n;
            } else if self.by_rule.len() < MAX_RULES {
                self.by_rule.insert(id, n);
            }
        }
        for (a, b) in self.status_classes.iter_mut().zip(o.status_classes) {
            *a += b;
        }
        self.untracked_requests += o.untracked_requests;
        for (k, s) in o.clients {
            if let Some(m) = self.clients.get_mut(&k) {
                m.merge(&s);
            } else if self.clients.len() < MAX_CLIENTS {
                self.clients.insert(k, s);
            } else {
                self.untracked_requests += s.requests;
            }
        }
        self.timeline.merge(o.timeline);
        self.suspicious_successes += o.suspicious_successes;
        for (mine, theirs) in [
            (&mut self.attack_samples, o.attack_samples),
            (&mut self.success_samples, o.success_samples),
        ] {
            mine.extend(theirs);
            mine.sort_by_key(|s| s.at);
            mine.truncate(MAX_SAMPLES);
        }
        self.flagged.extend(o.flagged);
        self.flagged.sort();
        self.cache_hits += o.cache_hits;
        self.evaluated += o.evaluated;
    }
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// The files, in the order given.
    pub files: Vec<FileSummary>,
    /// The counts.
    pub summary: Summary,
    /// Which rules judged the requests.
    pub rules: String,
    /// Wall time.
    pub elapsed: Duration,
    /// Worker threads used.
    pub threads: usize,
    /// Rule id → message (`msg`), for the rules counted.
    pub rule_messages: HashMap<u64, String>,
}

impl Analysis {
    /// Whether some file could not be read (entirely or to its end).
    pub fn had_file_errors(&self) -> bool {
        self.files.iter().any(|f| f.error.is_some())
    }
}

/// Progress of a run, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    /// The file being read.
    pub path: &'a Path,
    /// Index of that file and number of files.
    pub file: usize,
    /// Number of files.
    pub files: usize,
    /// Bytes of the file read so far.
    pub bytes: u64,
    /// Its size (0: unknown).
    pub size: u64,
    /// Lines read so far, all files.
    pub lines: u64,
    /// Time since the start.
    pub elapsed: Duration,
}

/// A batch of raw lines for a worker.
struct Batch {
    file: usize,
    first_line: u64,
    data: Vec<u8>,
    ends: Vec<usize>,
}

fn worker(
    rx: &Mutex<Receiver<Batch>>,
    rules: &Rules,
    cache: Option<&Arc<VerdictCache>>,
    opts: &Options,
) -> Summary {
    let mut sum = Summary::default();
    let mut ev = Evaluator::with_cache(rules.ruleset.clone(), cache.cloned());
    loop {
        // A poisoned lock means another worker panicked: stop quietly, the
        // reader sees the channel close.
        let batch = match rx.lock() {
            Ok(guard) => match guard.recv() {
                Ok(b) => b,
                Err(_) => break,
            },
            Err(_) => break,
        };
        let mut start = 0;
        for (i, &end) in batch.ends.iter().enumerate() {
            let line = &batch.data[start..end];
            start = end;
            let at = LineRef {
                file: batch.file,
                line: batch.first_line + i as u64,
            };
            match parse_line(line, opts.format) {
                Ok(None) => {}
                Err(why) => sum.skip(at, why),
                Ok(Some(e)) => {
                    if e.has_request() {
                        let v = ev.evaluate(&e);
                        sum.record(at, &e, Some(&*v), opts.flagged_lines);
                    } else {
                        sum.record(at, &e, None, opts.flagged_lines);
                    }
                }
            }
        }
    }
    sum.cache_hits = ev.cache_hits;
    sum.evaluated = ev.evaluated;
    sum
}

/// Analyses `paths` (`-`: standard input) with `rules`. Files that cannot
/// be opened or read to the end are reported in [`FileSummary::error`];
/// the others are analysed all the same.
pub fn analyze(
    paths: &[PathBuf],
    rules: &Rules,
    opts: &Options,
    progress: Option<&(dyn Fn(&Progress<'_>) + Sync)>,
) -> Analysis {
    let started = Instant::now();
    let threads = match opts.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let (tx, rx) = sync_channel::<Batch>(threads * BATCHES_IN_FLIGHT);
    let rx = Mutex::new(rx);
    let cache = if opts.cache {
        VerdictCache::new(&rules.ruleset)
    } else {
        None
    };
    let mut files = Vec::with_capacity(paths.len());
    let mut main = Summary::default();
    let summaries = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| s.spawn(|| worker(&rx, rules, cache.as_ref(), opts)))
            .collect();
        let mut last_progress = Instant::now();
        'files: for (index, path) in paths.iter().enumerate() {
            let mut fs = FileSummary {
                path: path.clone(),
                ..FileSummary::default()
            };
            let mut input = match LogInput::open(path) {
                Ok(i) => i,
                Err(e) => {
                    fs.error = Some(e.to_string());
                    files.push(fs);
                    continue;
                }
            };
            fs.gzip = input.gzip;
            let mut buf = Vec::new();
            let mut batch = Batch {
                file: index,
                first_line: 1,
                data: Vec::new(),
                ends: Vec::new(),
            };
            let mut line_no = 0u64;
            loop {
                match input.next_line(&mut buf) {
                    Ok(None) => break,
                    Err(e) => {
                        fs.error = Some(format!("after line {line_no}: {e}"));
                        break;
                    }
                    Ok(Some(Line::TooLong)) => {
                        line_no += 1;
                        main.skip(
                            LineRef {
                                file: index,
                                line: line_no,
                            },
                            Skip::TooLong,
                        );
                        // Keep the batch's numbering contiguous: an empty
                        // line stands in for the skipped one.
                        batch.ends.push(batch.data.len());
                    }
                    Ok(Some(Line::Complete)) => {
                        line_no += 1;
                        batch.data.extend_from_slice(&buf);
                        batch.ends.push(batch.data.len());
                    }
                }
                if batch.ends.len() >= BATCH_LINES || batch.data.len() >= BATCH_BYTES {
                    let next_first = line_no + 1;
                    let full = std::mem::replace(
                        &mut batch,
                        Batch {
                            file: index,
                            first_line: next_first,
                            data: Vec::with_capacity(64 * 1024),
                            ends: Vec::with_capacity(BATCH_LINES),
                        },
                    );
                    if tx.send(full).is_err() {
                        fs.error = Some("analysis stopped (a worker failed)".into());
                        files.push(fs);
                        break 'files;
                    }
                }
                if line_no % PROGRESS_CHECK_LINES == 0 {
                    if let Some(p) = progress {
                        if last_progress.elapsed() >= PROGRESS_INTERVAL {
                            last_progress = Instant::now();
                            p(&Progress {
                                path,
                                file: index,
                                files: paths.len(),
                                bytes: input.position.load(Ordering::Relaxed),
                                size: input.size,
                                lines: main.lines + line_no,
                                elapsed: started.elapsed(),
                            });
                        }
                    }
                }
            }
            if !batch.ends.is_empty() && tx.send(batch).is_err() {
                fs.error = Some("analysis stopped (a worker failed)".into());
            }
            fs.lines = line_no;
            fs.bytes = input.position.load(Ordering::Relaxed);
            main.lines += line_no;
            files.push(fs);
        }
        drop(tx);
        handles
            .into_iter()
            .filter_map(|h| h.join().ok())
            .collect::<Vec<_>>()
    });
    for s in summaries {
        main.merge(s);
    }
    let rule_messages = main
        .by_rule
        .keys()
        .map(|&id| (id, engine::rule_message(&rules.ruleset, id)))
        .collect();
    Analysis {
        files,
        summary: main,
        rules: rules.description.clone(),
        elapsed: started.elapsed(),
        threads,
        rule_messages,
    }
}
