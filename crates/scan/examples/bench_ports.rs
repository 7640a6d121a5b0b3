//! Full 65,535-port TCP connect scan of 127.0.0.1: palisade's scanner vs
//! `nmap -sT -T4 -p- 127.0.0.1` in the same run. Prints both wall times and
//! whether the open sets agree.
//!
//! `cargo run --release -p scan --example bench_ports`

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
    // A few listeners so both scanners have something to find.
    let listeners: Vec<std::net::TcpListener> = (0..8)
        .map(|_| std::net::TcpListener::bind((lo, 0)))
        .collect::<Result<_, _>>()?;
    let started: Vec<u16> = listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<_, _>>()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let ports = scan::portspec::parse("-")?;
    let opts = scan::ports::Options {
        banner_timeout: None,
        ..Default::default()
    };
    let t = Instant::now();
    let report = rt.block_on(scan::ports::scan(lo, &ports, &opts));
    let ours_time = t.elapsed();
    let ours: BTreeSet<u16> = report.open.iter().map(|p| p.port).collect();
    println!(
        "palisade: {} ports in {:.2} s, {} open (concurrency {}), started {:?}",
        report.scanned,
        ours_time.as_secs_f64(),
        ours.len(),
        report.concurrency,
        started
    );
    let t = Instant::now();
    let out = std::process::Command::new("nmap")
        .args(["-sT", "-T4", "-p-", "-Pn", "-n", "-oG", "-", "127.0.0.1"])
        .output();
    let nmap_time = t.elapsed();
    match out {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout);
            let theirs: BTreeSet<u16> = text
                .split([',', '\t', ' '])
                .filter_map(|f| f.split_once("/open/tcp").map(|x| x.0))
                .filter_map(|p| p.trim().parse().ok())
                .collect();
            println!(
                "nmap -sT -T4 -p-: {:.2} s, {} open",
                nmap_time.as_secs_f64(),
                theirs.len()
            );
            println!("open sets equal: {}", ours == theirs);
            if ours != theirs {
                println!(
                    "only palisade: {:?}",
                    ours.difference(&theirs).collect::<Vec<_>>()
                );
                println!(
                    "only nmap: {:?}",
                    theirs.difference(&ours).collect::<Vec<_>>()
                );
            }
        }
        Err(e) => println!("nmap not run: {e}"),
    }
    drop(listeners);
    Ok(())
}
