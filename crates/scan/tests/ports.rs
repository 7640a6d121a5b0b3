#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Loopback port scans against listeners started by the test.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use scan::ports::{scan, Options};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Serves `reply(request)` to every connection (after reading once).
async fn serve(reply: fn(&[u8]) -> Option<&'static [u8]>) -> u16 {
    let l = TcpListener::bind((LO, 0)).await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 512];
                let n = match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
                    Ok(Ok(n)) => n,
                    _ => return,
                };
                if let Some(r) = reply(&buf[..n]) {
                    let _ = s.write_all(r).await;
                }
            });
        }
    });
    port
}

/// A closed port: bind, note the port, drop the listener.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind((LO, 0)).unwrap();
    l.local_addr().unwrap().port()
}

fn opts() -> Options {
    Options {
        timeout: Duration::from_millis(1000),
        concurrency: 256,
        banner_timeout: Some(Duration::from_millis(300)),
        ..Options::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_set_equals_started_listeners_and_services_identified() {
    let http = serve(|r| {
        r.starts_with(b"HEAD ")
            .then_some(&b"HTTP/1.0 200 OK\r\nServer: test-http\r\n\r\n"[..])
    })
    .await;
    let redis = serve(|r| (r == b"PING\r\n").then_some(&b"+PONG\r\n"[..])).await;
    let mut started = BTreeSet::from([http, redis]);
    for _ in 0..5 {
        started.insert(serve(|_| None).await);
    }
    let closed: Vec<u16> = (0..3).map(|_| closed_port()).collect();
    let mut ports: Vec<u16> = started
        .iter()
        .copied()
        .chain(closed.iter().copied())
        .collect();
    ports.sort_unstable();
    ports.dedup();
    let report = scan(LO, &ports, &opts()).await;
    let found: BTreeSet<u16> = report.open.iter().map(|p| p.port).collect();
    assert_eq!(found, started);
    let svc = |port| {
        report
            .open
            .iter()
            .find(|p| p.port == port)
            .and_then(|p| p.service.clone())
    };
    assert_eq!(svc(http).as_deref(), Some("http"));
    assert_eq!(svc(redis).as_deref(), Some("redis"));
    let r = report.open.iter().find(|p| p.port == redis).unwrap();
    assert_eq!(r.severity, scan::Severity::High, "unauthenticated redis");
    let h = report.open.iter().find(|p| p.port == http).unwrap();
    assert!(h.banner.as_deref().unwrap().contains("test-http"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_server_is_bounded_by_timeouts() {
    // Accepts and never reads or writes.
    let l = TcpListener::bind((LO, 0)).await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
    let t = Instant::now();
    let report = scan(LO, &[port], &opts()).await;
    // 6 steps x (connect + read) x 300 ms is the designed worst case.
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    assert_eq!(report.open.len(), 1);
    assert_eq!(report.open[0].service.as_deref(), Some("unknown"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matches_nmap_connect_scan() {
    if std::process::Command::new("nmap")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(std::env::var("CI").is_err(), "nmap missing under CI");
        eprintln!("skipping: nmap not installed");
        return;
    }
    let mut started = BTreeSet::new();
    for _ in 0..4 {
        started.insert(serve(|_| None).await);
    }
    // Closed ports: bound, then released. The list compared is ours alone:
    // a whole range of loopback ports would also hold the listeners of tests
    // running in parallel, which come and go between the two scans.
    let closed: BTreeSet<u16> = (0..4)
        .map(|_| closed_port())
        .filter(|p| !started.contains(p))
        .collect();
    let ports: Vec<u16> = started.union(&closed).copied().collect();
    let mut o = opts();
    o.banner_timeout = None;
    let report = scan(LO, &ports, &o).await;
    let ours: BTreeSet<u16> = report.open.iter().map(|p| p.port).collect();
    let list = ports
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("nmap")
            .args(["-sT", "-Pn", "-n", "-oG", "-", "-p", &list, "127.0.0.1"])
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let theirs: BTreeSet<u16> = text
        .split([',', '\t', ' '])
        .filter_map(|f| f.split_once("/open/tcp").map(|x| x.0))
        .filter_map(|p| p.trim().parse().ok())
        .collect();
    assert_eq!(ours, started, "palisade's open set");
    assert_eq!(ours, theirs, "nmap output: {text}");
}

#[tokio::test]
async fn rate_limit_paces_connects_and_progress_counts_them() {
    let progress = std::sync::Arc::new(scan::progress::Progress::new());
    let ports: Vec<u16> = (1..=21).collect();
    let t = Instant::now();
    let opts = Options {
        rate: Some(50),
        progress: Some(progress.clone()),
        banner_timeout: None,
        ..opts()
    };
    let _ = scan(LO, &ports, &opts).await;
    // 21 connects at 50/s: the last starts at least 20 * 20 ms after the first.
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(progress.get(), (21, 21));
}
