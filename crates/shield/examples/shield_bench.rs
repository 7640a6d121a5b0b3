//! Micro-benchmark: CPU per request of the shield's per-request check
//! (client address, allow list, deny list, ban lookup, one per-IP GCRA rate
//! limit) with the embedded backends, on one thread.
//!
//! Run: `scripts/bench-shield.sh` (or `cargo run --release -p shield
//! --example shield_bench`). Prints ns of CPU per check for each backend.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use http::{HeaderMap, Method};
use shield::{IpNet, IpSet, Quota, RateKey, RateRule, RequestInfo, Shield, ShieldConfig, Verdict};

/// CPU seconds used by this process (utime + stime from /proc/self/stat).
fn cpu_seconds() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 overall are 12 and 13 after the comm field.
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn config() -> ShieldConfig {
    // 10 000 allow and deny entries each, none matching the test clients.
    let allow = IpSet::new(
        (0..10_000u32).map(|i| IpNet::host(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i * 7)))),
    );
    let deny = IpSet::new(
        (0..10_000u32)
            .map(|i| IpNet::new(IpAddr::V4(Ipv4Addr::from(0xac10_0000 + (i << 8))), 24).unwrap()),
    );
    ShieldConfig {
        allow,
        deny,
        rate_limits: vec![RateRule {
            name: "per-ip".into(),
            key: RateKey::Ip,
            quota: Quota {
                rate: 1_000_000,
                period: Duration::from_secs(1),
                burst: 1_000_000,
            },
            routes: vec![],
            path_prefix: String::new(),
            policy: http::HeaderValue::from_static("1000;w=1"),
        }],
        ..ShieldConfig::default()
    }
}

async fn run(name: &str, store: shield::Store) {
    let s = Shield::new(config(), store, Some(b"bench secret key"));
    // 1000 banned addresses elsewhere in the table.
    for i in 0..1000u32 {
        let net = IpNet::host(IpAddr::V4(Ipv4Addr::from(0xc633_6400 + i)));
        s.add_ban(net, Some(Duration::from_secs(3600)), "bench")
            .await
            .unwrap();
    }
    let headers = HeaderMap::new();
    let clients: Vec<IpAddr> = (0..10_000u32)
        .map(|i| IpAddr::V4(Ipv4Addr::from(0xcb00_7100 + i)))
        .collect();
    let n = 1_000_000usize;
    // Warm-up.
    for c in clients.iter().take(10_000) {
        let req = RequestInfo {
            peer: *c,
            method: &Method::GET,
            path: "/",
            headers: &headers,
            route: None,
            user: None,
        };
        let _ = s.check(&req).await;
    }
    let (c0, t0) = (cpu_seconds(), Instant::now());
    let mut passed = 0usize;
    for i in 0..n {
        let req = RequestInfo {
            peer: clients[i % clients.len()],
            method: &Method::GET,
            path: "/index.html",
            headers: &headers,
            route: Some("app"),
            user: None,
        };
        if matches!(s.check(&req).await, Verdict::Pass { .. }) {
            passed += 1;
        }
    }
    let cpu = cpu_seconds() - c0;
    let wall = t0.elapsed().as_secs_f64();
    assert_eq!(passed, n, "every bench request passes");
    println!(
        "{name:<8} allow/deny + ban + rate-limit check: {:>6.0} ns CPU/request ({:>6.0} ns wall), {n} requests, 10k clients",
        cpu * 1e9 / n as f64,
        wall * 1e9 / n as f64
    );
}

/// Requests per second through `store` from `tasks` concurrent tasks on a
/// multi-thread runtime (does the backend serialise requests?).
async fn concurrent(name: &str, store: shield::Store, tasks: usize, per_task: usize) {
    let s = std::sync::Arc::new(Shield::new(config(), store, Some(b"bench secret key")));
    let t0 = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let s = s.clone();
            tokio::spawn(async move {
                let headers = HeaderMap::new();
                for i in 0..per_task {
                    let peer = IpAddr::V4(Ipv4Addr::from(
                        0xcb00_7100 + ((t * per_task + i) % 10_000) as u32,
                    ));
                    let req = RequestInfo {
                        peer,
                        method: &Method::GET,
                        path: "/",
                        headers: &headers,
                        route: None,
                        user: None,
                    };
                    let v = s.check(&req).await;
                    assert!(matches!(v, Verdict::Pass { .. }));
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    let n = tasks * per_task;
    println!(
        "{name:<8} {tasks} concurrent tasks: {:>8.0} checks/s ({n} checks)",
        n as f64 / t0.elapsed().as_secs_f64()
    );
}

/// A redis-server on a free loopback port, when installed.
fn redis() -> Option<(std::process::Child, u16)> {
    let bin = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = std::process::Command::new(bin)
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .ok()?;
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some((child, port));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        run(
            "memory",
            shield::Store::memory(&state::MemoryConfig::default()),
        )
        .await;
        let dir = std::env::temp_dir().join(format!("shield-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = state::StateConfig {
            backend: state::BackendKind::Sqlite,
            sqlite: state::SqliteConfig {
                path: dir.join("state.db"),
                ..Default::default()
            },
            ..Default::default()
        };
        run("sqlite", shield::Store::open(&cfg).await.unwrap()).await;
        let _ = std::fs::remove_dir_all(&dir);
    });
    let mt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    mt.block_on(async {
        concurrent(
            "memory",
            shield::Store::memory(&state::MemoryConfig::default()),
            64,
            20_000,
        )
        .await;
        match redis() {
            Some((mut child, port)) => {
                let mut cfg = state::StateConfig {
                    backend: state::BackendKind::Redis,
                    ..Default::default()
                };
                cfg.redis.url = format!("redis://127.0.0.1:{port}/0");
                cfg.redis.timeout_ms = 2000;
                let store = shield::Store::open(&cfg).await.unwrap();
                concurrent("redis", store.clone(), 1, 5_000).await;
                concurrent("redis", store, 64, 2_000).await;
                let _ = child.kill();
                let _ = child.wait();
            }
            None => println!("redis    skipped: redis-server not installed"),
        }
    });
}
