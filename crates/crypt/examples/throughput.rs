//! Throughput of `crypt`: streaming file encryption and decryption (file to
//! file, through the page cache), Fernet, and digests. Prints MB/s.
//!
//! ```text
//! cargo run --release -p crypt --example throughput [-- SIZE_MB]
//! ```

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::time::Instant;

use crypt::fernet::{Fernet, Key};
use crypt::hash::{digest_reader, Algorithm};
use crypt::stream;

fn mbps(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / 1e6 / secs
}

/// CPU time of this (single-threaded) process so far, in seconds, from
/// /proc/self/schedstat: on a loaded machine wall-clock MB/s measure the
/// neighbours too, MB per CPU-second measure the code.
fn cpu_secs() -> f64 {
    std::fs::read_to_string("/proc/self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |ns| ns / 1e9)
}

/// Runs `f` on `bytes` of data and prints wall-clock and CPU throughput.
fn measure(
    label: &str,
    bytes: u64,
    f: impl FnOnce() -> Result<(), Box<dyn std::error::Error>>,
) -> Result<(), Box<dyn std::error::Error>> {
    let (t, c) = (Instant::now(), cpu_secs());
    f()?;
    let (wall, cpu) = (t.elapsed().as_secs_f64(), cpu_secs() - c);
    println!(
        "  {label:<32} {:>7.0} MB/s wall   {:>7.0} MB per CPU-second",
        mbps(bytes, wall),
        mbps(bytes, cpu.max(1e-9))
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let size_mb: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(512);
    let size = size_mb << 20;
    let dir = std::env::temp_dir().join(format!("crypt-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (plain, enc, dec) = (dir.join("plain"), dir.join("enc"), dir.join("dec"));
    {
        // Pseudo-random content (xorshift): compressible data would not matter
        // to the ciphers, but keeps the comparison honest for any storage.
        let mut w = BufWriter::new(File::create(&plain)?);
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut buf = vec![0u8; 1 << 20];
        for _ in 0..size_mb {
            for b in buf.chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                b.copy_from_slice(&x.to_le_bytes()[..b.len()]);
            }
            w.write_all(&buf)?;
        }
        w.flush()?;
    }
    let key = [3u8; 32];
    println!(
        "crypt throughput, {size_mb} MiB file, chunk {} KiB",
        stream::DEFAULT_CHUNK_SIZE >> 10
    );

    measure("stream encrypt (file -> file)", size, || {
        stream::encrypt(
            &key,
            BufReader::with_capacity(256 << 10, File::open(&plain)?),
            BufWriter::with_capacity(256 << 10, File::create(&enc)?),
        )?;
        Ok(())
    })?;
    measure("stream decrypt (file -> file)", size, || {
        stream::decrypt(
            &[&key],
            BufReader::with_capacity(256 << 10, File::open(&enc)?),
            BufWriter::with_capacity(256 << 10, File::create(&dec)?),
        )?;
        Ok(())
    })?;
    for alg in [Algorithm::Sha256, Algorithm::Blake3] {
        measure(&format!("hash {} (file)", alg.name()), size, || {
            digest_reader(alg, File::open(&plain)?)?;
            Ok(())
        })?;
    }

    // Fernet on 1 MiB messages (base64 and one-shot buffers included).
    let f = Fernet::new(&Key::from_bytes(key));
    let msg = vec![7u8; 1 << 20];
    let rounds = 64u64;
    let token = f.encrypt(&msg)?;
    measure("fernet encrypt (1 MiB tokens)", rounds << 20, || {
        for _ in 0..rounds {
            f.encrypt(&msg)?;
        }
        Ok(())
    })?;
    measure("fernet decrypt (1 MiB tokens)", rounds << 20, || {
        for _ in 0..rounds {
            f.decrypt(&token, None)?;
        }
        Ok(())
    })?;

    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
