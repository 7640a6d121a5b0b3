//! OWASP CRS v4 throughput bench: `cargo bench -p seclang --bench crs`.
//!
//! Loads CRS v4 from `../shared/crs-v4` (or `$PALISADE_SHARED/crs-v4`) at
//! paranoia level 1 in blocking (anomaly scoring) mode, then runs four
//! scenarios through phases 1-5 with a 200 response on one thread and
//! prints transactions per second, µs per transaction and heap allocations
//! per transaction. Before timing, each scenario is checked to do the work it
//! claims: the attack must be blocked with an inbound anomaly score of at
//! least 5 and the benign requests must pass (a loud warning otherwise, so an
//! engine gap shows up without hiding the numbers).
//!
//! Options (after `--`): `--scenario NAME` (repeatable: get, form, json,
//! attack), `--iters N` (fixed iteration count instead of timed batches,
//! used by `scripts/bench-waf-engine.sh` under callgrind), `--secs S`
//! (time per scenario, default 3), `--quiet` (no table, for profilers),
//! `--literals` (list the PL1 request `@rx` rules the literal prefilter
//! cannot skip, because no required literal could be extracted), `--reuse`
//! (with `--iters`: run in one reused transaction, `Transaction::reset`).
//! The table shows each scenario twice: in a new transaction each time, and
//! (`+reset`) in one transaction reused with `Transaction::reset`.
//!
//! Allocations are counted by `stats_alloc`'s instrumented system
//! allocator: the workspace forbids `unsafe`, so the bench cannot implement
//! `GlobalAlloc` itself. Its counters are atomics, which cost a few ns per
//! allocation; the µs numbers include that.

use std::alloc::System;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use seclang::{FsLoader, Ruleset, RulesetBuilder, Transaction, TransactionInput};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// The engine settings a deployment puts before CRS (the essentials of
/// ModSecurity's `modsecurity.conf-recommended`): engine on, request and
/// response bodies inspected, JSON/XML body processors selected by
/// Content-Type, body parse errors denied.
const PRELUDE: &str = r#"
SecRuleEngine On
SecRequestBodyAccess On
SecRequestBodyLimit 13107200
SecRequestBodyNoFilesLimit 131072
SecRequestBodyLimitAction Reject
SecResponseBodyAccess On
SecResponseBodyMimeType text/plain text/html text/xml
SecResponseBodyLimit 524288
SecResponseBodyLimitAction ProcessPartial
SecRule REQUEST_HEADERS:Content-Type "@rx (?:application(?:/soap\+|/)|text/)xml" \
    "id:200000,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=XML"
SecRule REQUEST_HEADERS:Content-Type "@rx ^application/json" \
    "id:200001,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=JSON"
SecRule REQBODY_ERROR "!@eq 0" \
    "id:200002,phase:2,t:none,log,deny,status:400,msg:'Failed to parse request body.'"
"#;

/// Headers a current desktop browser sends on a navigation.
const BROWSER_HEADERS: &[(&str, &str)] = &[
    ("Host", "www.example.com"),
    (
        "User-Agent",
        "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    ),
    (
        "Accept",
        "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
    ),
    ("Accept-Language", "en-US,en;q=0.5"),
    ("Accept-Encoding", "gzip, deflate, br, zstd"),
    ("Referer", "https://www.example.com/"),
    ("Connection", "keep-alive"),
    (
        "Cookie",
        "session=9f86d081884c7d659a2feaa0c55ad015; theme=dark; consent=analytics%3A0",
    ),
    ("Upgrade-Insecure-Requests", "1"),
    ("Sec-Fetch-Dest", "document"),
    ("Sec-Fetch-Mode", "navigate"),
    ("Sec-Fetch-Site", "same-origin"),
    ("Sec-Fetch-User", "?1"),
    ("Priority", "u=0, i"),
];

/// A small HTML page: the response body phase 4 inspects.
const RESPONSE_BODY: &str = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>Search results</title><link rel=\"stylesheet\" href=\"/static/site.css\"></head>\n\
<body><header><nav><a href=\"/\">Home</a> <a href=\"/products\">Products</a> \
<a href=\"/about\">About</a></nav></header>\n<main><h1>Results for hello world</h1>\n<ol>\
<li><a href=\"/p/101\">Hello World mug</a> - a ceramic mug, 350 ml, dishwasher safe.</li>\
<li><a href=\"/p/102\">World map poster</a> - printed on recycled paper, 60x90 cm.</li>\
<li><a href=\"/p/103\">Hello sticker set</a> - twelve vinyl stickers in assorted colours.</li>\
</ol><p>Page 2 of 7</p></main>\n<footer><p>Example Shop - contact support@example.com</p>\
</footer></body></html>\n";

/// One request to evaluate.
struct Scenario {
    name: &'static str,
    what: &'static str,
    method: &'static str,
    uri: &'static str,
    content_type: Option<&'static str>,
    body: String,
    attack: bool,
}

fn form_body() -> String {
    // Realistic contact/checkout form fields, urlencoded, about 1 KB.
    let fields: &[(&str, &str)] = &[
        ("first_name", "Margaret"),
        ("last_name", "Hamilton-Jones"),
        ("email", "margaret.hamilton@example.org"),
        ("phone", "+44 20 7946 0958"),
        ("company", "Example Widgets Ltd"),
        ("address_line1", "221 Baker Street"),
        ("address_line2", "Flat 3"),
        ("city", "London"),
        ("postcode", "NW1 6XE"),
        ("country", "GB"),
        ("subject", "Question about my recent delivery"),
        (
            "message",
            "Hello, my parcel arrived yesterday but the box was damaged and one of the two \
             mugs inside was cracked. Could you send a replacement, or refund the cracked \
             one? The order number is on the packing slip and I have kept the packaging \
             in case you need photos. Thanks very much for your help, and have a nice day.",
        ),
        ("order_ref", "EW-2024-118734"),
        ("preferred_contact", "email"),
        ("newsletter", "no"),
        (
            "csrf_token",
            "b1946ac92492d2347c6235b4d2611184e3f0c3f1a2b5d6e7",
        ),
        ("submit", "Send message"),
    ];
    let mut out = String::new();
    for (k, v) in fields {
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        for b in v.bytes() {
            match b {
                b' ' => out.push('+'),
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    out.push(char::from(b))
                }
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
    }
    // Pad with a realistic field up to about 1 KB.
    let mut n = 0;
    while out.len() < 1000 {
        out.push_str(&format!("&gift_note_{n}=Happy+birthday"));
        n += 1;
    }
    out
}

fn json_body() -> String {
    // A shopping-cart checkout, about 2 KB.
    let mut items = Vec::new();
    let products = [
        ("SKU-10021", "Ceramic mug, blue", 2, "12.50"),
        ("SKU-10457", "World map poster", 1, "24.00"),
        ("SKU-20931", "Sticker set (12 pieces)", 3, "6.99"),
        ("SKU-31408", "Notebook, dotted, A5", 2, "9.75"),
        ("SKU-44120", "Fountain pen, medium nib", 1, "39.90"),
        ("SKU-50877", "Ink cartridges, black, pack of 6", 2, "5.40"),
    ];
    for (sku, name, qty, price) in products {
        items.push(format!(
            r#"{{"sku":"{sku}","name":"{name}","quantity":{qty},"unit_price":"{price}","currency":"EUR","gift_wrap":false,"options":{{"colour":"default","engraving":null}}}}"#
        ));
    }
    let body = format!(
        r#"{{"cart_id":"c0a80123-7d4e-4f3a-9b1e-2f6c8d9e0a1b","customer":{{"id":48213,"first_name":"Margaret","last_name":"Hamilton-Jones","email":"margaret.hamilton@example.org","phone":"+44 20 7946 0958","loyalty_member":true}},"shipping_address":{{"line1":"221 Baker Street","line2":"Flat 3","city":"London","postcode":"NW1 6XE","country":"GB"}},"billing_address":{{"same_as_shipping":true}},"items":[{}],"delivery":{{"method":"standard","instructions":"Please leave the parcel with the concierge if nobody answers the door."}},"payment":{{"method":"card","token":"tok_1Nv2aB3cD4eF5gH6iJ7kL8mN","save_card":false}},"coupon":"WINTER10","newsletter_opt_in":false,"client":{{"app_version":"5.12.3","platform":"web","locale":"en-GB","timezone":"Europe/London"}},"notes":"Birthday present for my sister, please do not include the invoice in the parcel.","recently_viewed":["SKU-77102","SKU-77215","SKU-80431","SKU-81007"],"marketing":{{"utm_source":"newsletter","utm_medium":"email","utm_campaign":"winter-sale"}}}}"#,
        items.join(",")
    );
    body
}

fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "get",
            what: "benign GET, 3 query args, 14 browser headers",
            method: "GET",
            uri: "/search?q=hello+world&page=2&sort=asc",
            content_type: None,
            body: String::new(),
            attack: false,
        },
        Scenario {
            name: "form",
            what: "benign urlencoded form POST",
            method: "POST",
            uri: "/contact",
            content_type: Some("application/x-www-form-urlencoded"),
            body: form_body(),
            attack: false,
        },
        Scenario {
            name: "json",
            what: "benign JSON POST",
            method: "POST",
            uri: "/api/v1/checkout",
            content_type: Some("application/json"),
            body: json_body(),
            attack: false,
        },
        Scenario {
            name: "attack",
            what: "SQLi GET ?id=1' OR '1'='1",
            method: "GET",
            uri: "/item?id=1%27%20OR%20%271%27%3D%271",
            content_type: None,
            body: String::new(),
            attack: true,
        },
    ]
}

fn shared_dir() -> PathBuf {
    match std::env::var_os("PALISADE_SHARED") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared")),
    }
}

fn load_crs() -> Result<Ruleset, String> {
    let crs = shared_dir().join("crs-v4");
    let builder = RulesetBuilder::new(&FsLoader)
        .add_str(PRELUDE, crs.join("palisade-bench-prelude.conf"))
        .and_then(|b| b.add_file(crs.join("crs-setup.conf.example")))
        .and_then(|b| b.add_file(crs.join("rules/*.conf")))
        .map_err(|e| format!("loading CRS from {}: {e}", crs.display()))?;
    builder.build().map_err(|e| format!("compiling CRS: {e}"))
}

fn tx_input() -> TransactionInput {
    TransactionInput {
        client_ip: "203.0.113.45".into(),
        client_port: 52814,
        server_ip: "198.51.100.10".into(),
        server_port: 443,
        server_name: "www.example.com".into(),
        unique_id: "ZXhhbXBsZS11bmlxdWUtaWQ".into(),
        unix_time_micros: 1_732_366_800_000_000,
        env: Vec::new(),
    }
}

/// One measured exchange. Never inlined: `scripts/bench-waf-engine.sh`
/// counts instructions inside this function only.
#[inline(never)]
fn run(rs: &Arc<Ruleset>, s: &Scenario, input: &TransactionInput) -> Transaction {
    exchange(rs, s, input)
}

/// One full exchange, phases 1 to 5, in a new transaction; returns it for
/// checks.
fn exchange(rs: &Arc<Ruleset>, s: &Scenario, input: &TransactionInput) -> Transaction {
    let mut tx = rs.transaction(input.clone());
    feed(&mut tx, s);
    tx
}

/// One measured exchange in a reused transaction ([`Transaction::reset`]:
/// what a server keeping one transaction per worker does).
#[inline(never)]
fn run_reused(tx: &mut Transaction, s: &Scenario, input: &TransactionInput) {
    tx.reset(input.clone());
    feed(tx, s);
}

/// Feeds the scenario's request and a 200 response through phases 1 to 5.
fn feed(tx: &mut Transaction, s: &Scenario) {
    tx.request_line(s.method, s.uri, "HTTP/1.1");
    for (k, v) in BROWSER_HEADERS {
        tx.request_header(k, v);
    }
    let len;
    if let Some(ct) = s.content_type {
        len = s.body.len().to_string();
        tx.request_header("Content-Type", ct);
        tx.request_header("Content-Length", &len);
        tx.request_header("Origin", "https://www.example.com");
    }
    if tx.process_request_headers().is_some() {
        tx.process_logging();
        return;
    }
    if !s.body.is_empty() && tx.append_request_body(s.body.as_bytes()).is_some() {
        tx.process_logging();
        return;
    }
    if tx.process_request_body().is_some() {
        tx.process_logging();
        return;
    }
    tx.response_status(200, "HTTP/1.1");
    tx.response_header("Date", "Sat, 23 Nov 2024 13:00:00 GMT");
    tx.response_header("Server", "palisade");
    tx.response_header("Content-Type", "text/html; charset=utf-8");
    tx.response_header("Content-Length", "1024");
    tx.response_header("Cache-Control", "private, max-age=0");
    tx.response_header("X-Content-Type-Options", "nosniff");
    if tx.process_response_headers().is_some() {
        tx.process_logging();
        return;
    }
    if tx.wants_response_body() {
        tx.append_response_body(RESPONSE_BODY.as_bytes());
    }
    tx.process_response_body();
    tx.process_logging();
}

fn anomaly_score(tx: &Transaction) -> i64 {
    tx.tx("blocking_inbound_anomaly_score")
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Runs the scenario once and says whether the engine did the expected
/// work; returns a short verdict for the table.
fn verify(rs: &Arc<Ruleset>, s: &Scenario, input: &TransactionInput) -> (bool, String) {
    let tx = run(rs, s, input);
    let score = anomaly_score(&tx);
    let ids: Vec<u64> = tx.matched_rules().iter().map(|m| m.id).collect();
    let verdict = match tx.intervention() {
        Some(i) => format!("{} by {} (score {score})", i.status, i.rule_id),
        None => format!("pass (score {score})"),
    };
    let ok = if s.attack {
        tx.intervention().is_some_and(|i| i.status == 403) && score >= 5
    } else {
        tx.intervention().is_none() && score == 0
    };
    if !ok {
        eprintln!();
        eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
        eprintln!(
            "!!! WARNING: scenario '{}' expected {}, got {verdict}",
            s.name,
            if s.attack {
                "a 403 with anomaly score >= 5"
            } else {
                "no intervention and score 0"
            }
        );
        eprintln!("!!! matched rules: {ids:?}");
        eprintln!("!!! the numbers for this scenario do not measure the real CRS work");
        eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
        eprintln!();
    }
    (ok, verdict)
}

/// CPU time this thread has run, in ns, from `/proc/thread-self/schedstat`
/// (nanosecond resolution, no `unsafe`). `None` off Linux.
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

struct Measured {
    per_sec: f64,
    micros: f64,
    cpu_micros: Option<f64>,
    allocs: f64,
    bytes: f64,
}

/// Times `one` (one whole exchange) and counts its allocations.
fn measure(one: &mut dyn FnMut(), secs: f64) -> Measured {
    // Allocations: deterministic, so a few transactions suffice.
    const ALLOC_SAMPLE: usize = 20;
    let region = Region::new(GLOBAL);
    for _ in 0..ALLOC_SAMPLE {
        one();
    }
    let st = region.change();
    let n = ALLOC_SAMPLE as f64;
    let allocs = (st.allocations + st.reallocations) as f64 / n;
    let bytes = (st.bytes_allocated as f64 + st.bytes_reallocated.max(0) as f64) / n;

    // Time: batches of about 1/10 of the budget; the median batch rate is
    // reported so one descheduling does not skew the result.
    let batch_time = Duration::from_secs_f64((secs / 10.0).max(0.01));
    let mut batch = 1usize;
    loop {
        let t = Instant::now();
        for _ in 0..batch {
            one();
        }
        if t.elapsed() >= batch_time / 4 || batch >= 1 << 24 {
            let per = t.elapsed().as_secs_f64() / batch as f64;
            batch = ((batch_time.as_secs_f64() / per.max(1e-9)) as usize).max(1);
            break;
        }
        batch *= 2;
    }
    // The machine may be shared: CPU time of this thread is the number that
    // compares across runs; wall time is printed too.
    let mut rates = Vec::new();
    let mut cpu_rates = Vec::new();
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    while rates.len() < 3 || (Instant::now() < deadline && rates.len() < 50) {
        let cpu = thread_cpu_ns();
        let t = Instant::now();
        for _ in 0..batch {
            one();
        }
        rates.push(t.elapsed().as_secs_f64() / batch as f64);
        if let (Some(a), Some(b)) = (cpu, thread_cpu_ns()) {
            cpu_rates.push(b.saturating_sub(a) as f64 / 1e9 / batch as f64);
        }
    }
    rates.sort_by(f64::total_cmp);
    cpu_rates.sort_by(f64::total_cmp);
    let per = rates[rates.len() / 2];
    let cpu_per = cpu_rates.get(cpu_rates.len() / 2).copied();
    Measured {
        per_sec: 1.0 / cpu_per.unwrap_or(per),
        micros: per * 1e6,
        cpu_micros: cpu_per.map(|c| c * 1e6),
        allocs,
        bytes,
    }
}

/// Lists the paranoia-level-1 request rules (phases 1-2, every chain link)
/// whose `@rx` yields no required literal: they run their regex on every
/// value, whatever the prefilter finds.
fn report_literals(rs: &Ruleset) {
    let loader = FsLoader;
    let base = shared_dir().join("crs-v4/rules");
    let ctx = seclang::operators::CompileContext {
        files: &loader,
        base_dir: &base,
    };
    let (mut with, mut without) = (0, Vec::new());
    for phase in 1..=2u8 {
        for rule in rs.rules(phase) {
            let pl1 = rule.has_tag("paranoia-level/1")
                || !rule
                    .tags
                    .iter()
                    .filter_map(|t| t.as_constant())
                    .any(|t| t.starts_with(b"paranoia-level/"));
            if !pl1 {
                continue;
            }
            let mut link = Some(rule);
            while let Some(l) = link {
                if l.operator_name.eq_ignore_ascii_case("rx") {
                    let lits = seclang::operators::compile("rx", &l.operator_argument, &ctx)
                        .ok()
                        .and_then(|op| op.required_literals());
                    match lits {
                        Some(_) => with += 1,
                        None => without.push((rule.id, l.targets.len(), l.operator_argument.len())),
                    }
                }
                link = l.chain.as_deref();
            }
        }
    }
    println!(
        "PL1 request @rx links: {with} with required literals (prefiltered), {} without:",
        without.len()
    );
    for (id, targets, len) in without {
        println!("  rule {id}: {targets} target(s), pattern {len} bytes");
    }
}

struct Options {
    scenarios: Vec<String>,
    iters: Option<usize>,
    secs: f64,
    quiet: bool,
    literals: bool,
    reuse: bool,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        scenarios: Vec::new(),
        iters: None,
        secs: 3.0,
        quiet: false,
        literals: false,
        reuse: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--scenario" => o
                .scenarios
                .push(args.next().ok_or("--scenario needs a name")?),
            "--iters" => {
                let v = args.next().ok_or("--iters needs a number")?;
                o.iters = Some(v.parse().map_err(|_| format!("--iters {v}"))?);
            }
            "--secs" => {
                let v = args.next().ok_or("--secs needs a number")?;
                o.secs = v.parse().map_err(|_| format!("--secs {v}"))?;
            }
            "--quiet" => o.quiet = true,
            "--literals" => o.literals = true,
            "--reuse" => o.reuse = true,
            // `cargo bench` passes `--bench`; libtest-style filters are ignored.
            _ => {}
        }
    }
    Ok(o)
}

fn main() {
    let opts = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("crs bench: {e}");
            std::process::exit(2);
        }
    };
    let region = Region::new(GLOBAL);
    let t = Instant::now();
    let rs = match load_crs() {
        Ok(rs) => Arc::new(rs),
        Err(e) => {
            eprintln!("crs bench: {e}");
            std::process::exit(1);
        }
    };
    let load = t.elapsed();
    let load_allocs = region.change();
    let input = tx_input();
    let mut list = scenarios();
    if !opts.scenarios.is_empty() {
        list.retain(|s| opts.scenarios.iter().any(|n| n == s.name));
        if list.is_empty() {
            eprintln!("crs bench: no such scenario (get, form, json, attack)");
            std::process::exit(2);
        }
    }
    if !opts.quiet {
        println!(
            "CRS v4 ({}), PL1, blocking: {} rules (phase 1-5: {}), loaded in {:.1} ms, \
             {:.1} MB allocated while loading",
            std::fs::read_to_string(shared_dir().join("crs-v4/SOURCE_COMMIT"))
                .map(|c| c.trim().chars().take(10).collect::<String>())
                .unwrap_or_else(|_| "?".into()),
            rs.rule_count(),
            (1..=5u8)
                .map(|p| rs.rules(p).count().to_string())
                .collect::<Vec<_>>()
                .join("/"),
            load.as_secs_f64() * 1e3,
            load_allocs.bytes_allocated as f64 / 1e6,
        );
    }

    if opts.literals {
        report_literals(&rs);
        return;
    }

    if let Some(n) = opts.iters {
        // Fixed work for instruction-count profiling, after one unmeasured
        // exchange per scenario (the first use of each regex builds its
        // lazy-DFA cache: a one-off cost per process, not per transaction).
        for s in &list {
            drop(std::hint::black_box(exchange(&rs, s, &input)));
        }
        for s in &list {
            if opts.reuse {
                let mut tx = exchange(&rs, s, &input);
                for _ in 0..n {
                    run_reused(&mut tx, s, &input);
                }
            } else {
                for _ in 0..n {
                    drop(std::hint::black_box(run(&rs, s, &input)));
                }
            }
        }
        if !opts.quiet {
            println!("ran {n} transactions per scenario");
        }
        return;
    }

    let mut warnings = 0;
    let mut rows = Vec::new();
    for s in &list {
        let (ok, verdict) = verify(&rs, s, &input);
        if !ok {
            warnings += 1;
        }
        let fresh = measure(
            &mut || drop(std::hint::black_box(run(&rs, s, &input))),
            opts.secs,
        );
        rows.push((s.name.to_string(), s, verdict.clone(), fresh));
        let mut tx = exchange(&rs, s, &input);
        let reused = measure(
            &mut || {
                run_reused(&mut tx, s, &input);
                std::hint::black_box(&tx);
            },
            opts.secs,
        );
        rows.push((format!("{}+reset", s.name), s, verdict, reused));
    }
    if opts.quiet {
        return;
    }
    println!();
    println!(
        "| {:<12} | {:>6} | {:>9} | {:>10} | {:>11} | {:>9} | {:>11} | {:<26} |",
        "scenario",
        "body B",
        "tx/s",
        "CPU µs/tx",
        "wall µs/tx",
        "allocs/tx",
        "KB alloc/tx",
        "result"
    );
    println!(
        "|{:-<14}|{:->8}|{:->11}|{:->12}|{:->13}|{:->11}|{:->13}|{:-<28}|",
        "", "", "", "", "", "", "", ""
    );
    for (name, s, verdict, m) in &rows {
        println!(
            "| {:<12} | {:>6} | {:>9.0} | {:>10} | {:>11.1} | {:>9.0} | {:>11.1} | {:<26} |",
            name,
            s.body.len(),
            m.per_sec,
            m.cpu_micros
                .map(|c| format!("{c:.1}"))
                .unwrap_or_else(|| "-".into()),
            m.micros,
            m.allocs,
            m.bytes / 1024.0,
            verdict
        );
    }
    println!();
    for s in &list {
        println!("  {:<8} {} {}{}", s.name, s.what, s.method, {
            let mut u = format!(" {}", s.uri);
            if !s.body.is_empty() {
                u.push_str(&format!(" ({} B body)", s.body.len()));
            }
            u
        });
    }
    println!(
        "  +reset: the same exchange in one reused Transaction (Transaction::reset), \
         as a server keeping one per worker does"
    );
    println!(
        "  tx/s = 1 / CPU time per transaction on one thread (wall time where CPU time is \
         unavailable); medians of timed batches"
    );
    if warnings > 0 {
        println!();
        println!(
            "WARNING: {warnings} scenario(s) did not behave as expected (see above): \
             those numbers do not measure the real CRS work."
        );
    }
}
