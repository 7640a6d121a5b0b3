//! Identity benchmark (run in release):
//! `cargo run --release -p identity --example identity_bench`
//!
//! Prints
//! * logins per second per core at the default argon2id parameters (CPU
//!   time of one verification, so other load on the machine does not count);
//! * CPU µs per session check on a protected route, as the gateway does it:
//!   access rules decided anonymously, the session read (SHA-256 key,
//!   store read, JSON decode, revocation mark), rules decided again with the
//!   user — on the in-memory store and on the embedded SQLite store.
//!
//! CPU time is the thread's on-CPU time from `/proc/thread-self/schedstat`
//! (a current-thread runtime runs everything on this thread).

use std::time::Instant;

use identity::{AccessRules, Policy, Request, RuleConfig, Sessions, Subject};

/// Nanoseconds this thread has run on a CPU (Linux), or wall time elsewhere.
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn rules() -> identity::Result<AccessRules> {
    let r = |name: &str, paths: &[&str], roles: &[&str], policy| RuleConfig {
        name: Some(name.into()),
        paths: paths.iter().map(|s| s.to_string()).collect(),
        roles: roles.iter().map(|s| s.to_string()).collect(),
        policy: Some(policy),
        ..Default::default()
    };
    AccessRules::new(
        &[
            r("health", &["/healthz"], &[], Policy::Bypass),
            r("static", &["/static"], &[], Policy::Bypass),
            r("admins", &["/admin"], &["admin"], Policy::TwoFactor),
            r("no-admin", &["/admin"], &[], Policy::Deny),
            r("app", &["/app"], &[], Policy::OneFactor),
        ],
        Policy::Deny,
    )
}

async fn session_check(label: &str, store: state::Store) -> identity::Result<()> {
    let s = Sessions::new(store, Default::default());
    let rules = rules()?;
    let now = state::now_micros();
    let roles = vec!["admin".to_string()];
    let id = s.create_with_roles("alice", &roles, 2, false, now).await?;
    let req = Request {
        host: "app.example.com",
        path: "/app/dashboard",
        method: "GET",
        ip: "203.0.113.7"
            .parse()
            .map_err(|_| identity::Error::Corrupt("ip".into()))?,
        cert: None,
    };
    let n = 100_000u32;
    // Warm up (caches, allocator).
    for _ in 0..1000 {
        std::hint::black_box(s.check(&id, now).await?.is_ok());
    }
    let (c0, t0) = (cpu_ns(), Instant::now());
    for _ in 0..n {
        let d = rules.decide(&req, None);
        std::hint::black_box(&d);
        let sess = s.check(&id, now).await?;
        let Ok(sess) = sess else {
            return Err(identity::Error::Corrupt("session refused".into()));
        };
        let d = rules.decide(
            &req,
            Some(&Subject {
                user: &sess.user,
                roles: &sess.roles,
            }),
        );
        std::hint::black_box(d.policy);
    }
    let cpu = (cpu_ns() - c0) as f64 / f64::from(n) / 1e3;
    let wall = t0.elapsed().as_nanos() as f64 / f64::from(n) / 1e3;
    println!(
        "session check on a protected route ({label}): {cpu:.2} µs CPU/op ({wall:.2} µs wall)"
    );
    let (c0, t0) = (cpu_ns(), Instant::now());
    for _ in 0..n {
        std::hint::black_box(s.check(&id, now).await?.is_ok());
    }
    let cpu = (cpu_ns() - c0) as f64 / f64::from(n) / 1e3;
    let wall = t0.elapsed().as_nanos() as f64 / f64::from(n) / 1e3;
    println!("  of which Sessions::check alone: {cpu:.2} µs CPU/op ({wall:.2} µs wall)");
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let h = identity::Hasher::default();
    let phc = h.hash("correct horse battery staple")?;
    let n = 20;
    let (c0, t0) = (cpu_ns(), Instant::now());
    for _ in 0..n {
        h.verify("correct horse battery staple", &phc)?;
    }
    let cpu = (cpu_ns() - c0) as f64 / 1e9 / f64::from(n);
    let wall = t0.elapsed().as_secs_f64() / f64::from(n);
    println!(
        "argon2id m=19456 t=2 p=1: {:.1} ms CPU/verify ({:.1} ms wall): {:.1} logins/s per core",
        cpu * 1e3,
        wall * 1e3,
        1.0 / cpu
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        session_check("memory store", state::Store::memory(&Default::default())).await?;
        let dir = tempfile::tempdir()?;
        let cfg = state::StateConfig {
            backend: state::BackendKind::Sqlite,
            sqlite: state::SqliteConfig {
                path: dir.path().join("state.db"),
                ..Default::default()
            },
            ..Default::default()
        };
        let store = state::Store::open(&cfg)
            .await
            .map_err(identity::Error::from)?;
        session_check("embedded SQLite store", store).await?;
        Ok::<(), identity::Error>(())
    })?;
    Ok(())
}
