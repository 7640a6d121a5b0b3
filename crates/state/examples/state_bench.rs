//! Micro-benchmark of the state backends. Run in release:
//!
//! ```text
//! cargo run --release -p state --example state_bench
//! ```
//!
//! Prints ns per ban check and per rate-limit check for memory and SQLite,
//! and requests/s for Redis one-at-a-time vs pipelined (many in flight on
//! multiplexed connections). Redis: uses `REDIS_URL` if set, else starts
//! `redis-server` on a free loopback port when installed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use state::{now_micros, BackendKind, Ban, MemoryConfig, Quota, StateConfig, Store};

const N: u32 = 1_000_000;

/// CPU time of the current thread in ns (Linux schedstat): the machine is
/// shared, so wall time alone would mostly measure other processes.
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

async fn fill_bans(s: &Store, n: u32) {
    let now = now_micros();
    for i in 0..n {
        let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
        s.ban_add(Ban {
            target: state::IpPrefix::host(ip),
            reason: "bench".into(),
            jail: "bench".into(),
            created_us: now,
            expires_us: None,
            offences: 1,
        })
        .await
        .unwrap();
    }
}

fn bench_ban_check(name: &str, s: &Store) {
    let now = now_micros();
    let t = Instant::now();
    let c = cpu_ns();
    let mut hits = 0u32;
    for i in 0..N {
        // Half the lookups hit a banned address, half miss.
        let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + (i % 20_000)));
        hits += u32::from(s.ban_check(ip, now).is_some());
    }
    let cpu = (cpu_ns() - c) as f64 / f64::from(N);
    let ns = t.elapsed().as_nanos() as f64 / f64::from(N);
    println!("{name:<28} ban_check       {cpu:8.1} ns/op CPU {ns:8.1} ns/op wall  ({hits} hits)");
}

async fn bench_rate_limit(name: &str, s: &Store, n: u32) {
    let q = Quota::per_second(100, 50);
    let keys: Vec<String> = (0..10_000)
        .map(|i| format!("ip:10.0.{}.{}", i / 256, i % 256))
        .collect();
    let now = now_micros();
    let t = Instant::now();
    let c = cpu_ns();
    for i in 0..n {
        s.rate_limit(&keys[(i % 10_000) as usize], &q, 1, now)
            .await
            .unwrap();
    }
    // In-memory checks never yield, so the loop stays on this thread and its
    // CPU time is the cost; SQLite with persisted counters runs on its own
    // thread, so only its wall time means something.
    let cpu = (cpu_ns() - c) as f64 / f64::from(n);
    let ns = t.elapsed().as_nanos() as f64 / f64::from(n);
    println!("{name:<28} rate_limit      {cpu:8.1} ns/op CPU {ns:8.1} ns/op wall");
}

async fn bench_redis(url: String) {
    let mut cfg = StateConfig {
        backend: BackendKind::Redis,
        ..Default::default()
    };
    cfg.redis.url = url;
    cfg.redis.timeout_ms = 5000;
    let s = Store::open(&cfg).await.unwrap();
    let q = Quota::per_second(1000, 1000);
    let n = 20_000u32;
    let now = now_micros();
    let t = Instant::now();
    for i in 0..n {
        s.rate_limit(&format!("seq:{}", i % 1000), &q, 1, now)
            .await
            .unwrap();
    }
    let seq = f64::from(n) / t.elapsed().as_secs_f64();
    println!(
        "{:<28} rate_limit           {seq:8.0} ops/s (one request in flight)",
        "redis"
    );
    for inflight in [16u32, 256] {
        let t = Instant::now();
        let mut tasks = Vec::new();
        for w in 0..inflight {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..n / inflight {
                    let k = format!("pipe:{}", (w * 7919 + i) % 1000);
                    s.rate_limit(&k, &q, 1, now).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let ops = f64::from(n / inflight * inflight) / t.elapsed().as_secs_f64();
        println!(
            "{:<28} rate_limit           {ops:8.0} ops/s ({inflight} in flight, pipelined over {} connections)",
            "redis", cfg.redis.connections
        );
    }
    let t = Instant::now();
    for _ in 0..N {
        std::hint::black_box(s.ban_check(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), now));
    }
    let ns = t.elapsed().as_nanos() as f64 / f64::from(N);
    println!(
        "{:<28} ban_check            {ns:8.1} ns/op (local cache, no bans)",
        "redis"
    );
}

fn start_redis() -> Option<(std::process::Child, String, std::path::PathBuf)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let dir = std::env::temp_dir().join(format!("palisade-state-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let child = std::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .arg("--dir")
        .arg(&dir)
        .stdout(std::process::Stdio::null())
        .spawn()
        .ok()?;
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some((child, format!("redis://127.0.0.1:{port}"), dir));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    println!("state backends, {N} ban checks / 1,000,000 rate-limit checks per memory row");
    let mem = Store::memory(&MemoryConfig::default());
    bench_ban_check("memory (no bans)", &mem);
    fill_bans(&mem, 10_000).await;
    bench_ban_check("memory (10k bans)", &mem);
    bench_rate_limit("memory", &mem, 1_000_000).await;

    let dir = std::env::temp_dir().join(format!("palisade-state-bench-db-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cfg = StateConfig::default();
    cfg.sqlite.path = dir.join("bench.db");
    let db = Store::open(&cfg).await.unwrap();
    fill_bans(&db, 10_000).await;
    bench_ban_check("sqlite (10k bans)", &db);
    bench_rate_limit("sqlite (default)", &db, 1_000_000).await;
    drop(db);
    cfg.sqlite.path = dir.join("bench-persist.db");
    cfg.sqlite.persist_counters = true;
    let db = Store::open(&cfg).await.unwrap();
    bench_rate_limit("sqlite (persist_counters)", &db, 20_000).await;
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);

    match std::env::var("REDIS_URL") {
        Ok(url) => bench_redis(url).await,
        Err(_) => match start_redis() {
            Some((mut child, url, dir)) => {
                bench_redis(url).await;
                let _ = child.kill();
                let _ = child.wait();
                let _ = std::fs::remove_dir_all(dir);
            }
            None => println!("redis: skipped (no REDIS_URL and redis-server not installed)"),
        },
    }
}
