//! Prints the cost of an argon2id hash at the default parameters (logins
//! per second per core) and of a session check on the in-memory store.
//! `cargo run --release -p identity --example identity_bench`

use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let h = identity::Hasher::default();
    let phc = h.hash("correct horse battery staple")?;
    let n = 20;
    let t = Instant::now();
    for _ in 0..n {
        h.verify("correct horse battery staple", &phc)?;
    }
    let per = t.elapsed().as_secs_f64() / f64::from(n);
    println!(
        "argon2id m=19456 t=2 p=1: {:.1} ms/verify, {:.1} logins/s/core",
        per * 1e3,
        1.0 / per
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let store = state::Store::memory(&Default::default());
        let s = identity::Sessions::new(store.clone(), Default::default());
        let now = state::now_micros();
        let id = s.create("alice", 2, false, now).await?;
        let n = 200_000u32;
        let t = Instant::now();
        for _ in 0..n {
            let r = s.check(&id, now).await?;
            std::hint::black_box(r.is_ok());
        }
        let ns = t.elapsed().as_nanos() as f64 / f64::from(n);
        println!("session check (memory store): {ns:.0} ns/op");
        // The store's share: two kv_get per check (session, revocation mark).
        let t = Instant::now();
        for _ in 0..n {
            let r = store.kv_get("id:s:0123456789abcdef", now).await?;
            std::hint::black_box(r);
        }
        let ns = t.elapsed().as_nanos() as f64 / f64::from(n);
        println!("  of which state kv_get (memory store): {ns:.0} ns/op");
        Ok::<(), identity::Error>(())
    })?;
    Ok(())
}
