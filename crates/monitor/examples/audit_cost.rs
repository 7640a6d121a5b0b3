//! Cost of one audit record: building the JSON line, and appending it to
//! the file (one `write(2)` under the log's mutex), for a typical CRS block
//! (10 request headers, 4 messages with CRS-sized tags).
//!
//! `cargo run --release -p monitor --example audit_cost [records] [dir]`

use std::time::Instant;

use monitor::{AuditLog, AuditMode, Message, Record, RelevantStatus};

fn record(i: usize) -> Record {
    let tags: Vec<String> = [
        "application-multi",
        "language-multi",
        "platform-multi",
        "attack-sqli",
        "paranoia-level/1",
        "OWASP_CRS",
        "capec/1000/152/248/66",
        "PCI/6.5.2",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let msg = |id: u64, m: &str| Message {
        message: m.into(),
        match_text: "detected SQLi using libinjection.".into(),
        rule_id: id,
        file: "/usr/share/modsecurity-crs/rules/REQUEST-942-APPLICATION-ATTACK-SQLI.conf".into(),
        line_number: 46,
        data: "Matched Data: s&sos found within ARGS:q: 1' OR '1'='1".into(),
        severity: 2,
        ver: "OWASP_CRS/4.0.0".into(),
        tags: tags.clone(),
        ..Message::default()
    };
    let headers = [
        ("Host", "shop.example"),
        (
            "User-Agent",
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        ),
        (
            "Accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ),
        ("Accept-Language", "en-US,en;q=0.5"),
        ("Accept-Encoding", "gzip, deflate, br"),
        ("Connection", "keep-alive"),
        (
            "Cookie",
            "session=0123456789abcdef0123456789abcdef; theme=dark",
        ),
        ("Upgrade-Insecure-Requests", "1"),
        ("Sec-Fetch-Mode", "navigate"),
        ("X-Marker", "bench"),
    ];
    Record {
        client_ip: "203.0.113.7".into(),
        client_port: 40312,
        host_ip: "127.0.0.1".into(),
        host_port: 8080,
        server_id: "node-1".into(),
        unique_id: format!("6b2f0c1a{i:012x}"),
        unix_time_micros: 1_795_000_000_000_000,
        method: "GET".into(),
        http_version: "1.1".into(),
        uri: "/search?q=1%27%20OR%20%271%27%3D%271".into(),
        request_headers: headers
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect(),
        http_code: 403,
        response_headers: vec![(
            b"content-type".to_vec(),
            b"text/plain; charset=utf-8".to_vec(),
        )],
        secrules_engine: "Enabled".into(),
        components: vec![],
        messages: vec![
            msg(942100, "SQL Injection Attack Detected via libinjection"),
            msg(
                942110,
                "SQL Injection Attack: Common Injection Testing Detected",
            ),
            msg(949110, "Inbound Anomaly Score Exceeded (Total Score: 10)"),
            msg(
                980170,
                "Anomaly Scores: (Inbound Scores: blocking=10, detection=10)",
            ),
        ],
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(50_000);
    let dir = args
        .next()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let records: Vec<Record> = (0..1000).map(record).collect();

    let t = Instant::now();
    let mut bytes = 0;
    for i in 0..n {
        bytes += records[i % records.len()].to_json_line().len();
    }
    let build = t.elapsed();

    let path = dir.join(format!("audit-cost-{}.log", std::process::id()));
    let log = AuditLog::open(&path, AuditMode::All, RelevantStatus::default())?;
    let t = Instant::now();
    for i in 0..n {
        log.write(&records[i % records.len()])?;
    }
    let write = t.elapsed();
    let _ = std::fs::remove_file(&path);

    println!("{n} records, {} bytes each on average", bytes / n.max(1));
    println!(
        "build JSON line:          {:.2} us/record",
        build.as_secs_f64() * 1e6 / n as f64
    );
    println!(
        "build + write(2) append:  {:.2} us/record ({})",
        write.as_secs_f64() * 1e6 / n as f64,
        dir.display()
    );
    Ok(())
}
