//! A multi-GB sparse file round-trips through the streaming format in
//! bounded memory, and a flipped bit or a cut deep inside the stream is
//! detected. The ciphertext flows through a bounded in-memory pipe (no 4 GB
//! written to disk); peak RSS comes from /proc/self/status (this file holds
//! one test, so the test binary's peak is this test's).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use crypt::hash::{digest_reader, Algorithm};
use crypt::stream;

/// 2 GiB and a bit: past i32 offsets, not a multiple of the chunk size.
/// (Large enough that holding it would blow the RSS limit 20 times over;
/// small enough for a shared 2-core CI machine.)
const SIZE: u64 = (2 << 30) + 12_345;
/// Peak RSS allowed for the whole test process.
const MAX_RSS_KB: u64 = 96 * 1024;

struct PipeWriter(SyncSender<Vec<u8>>);
impl Write for PipeWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .send(buf.to_vec())
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Reads the pipe, optionally flipping one bit at `flip` or stopping at `cut`.
struct PipeReader {
    rx: Receiver<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
    offset: u64,
    flip: Option<u64>,
    cut: Option<u64>,
}

impl Read for PipeReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.rx.recv() {
                Ok(v) => {
                    self.cur = v;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let mut n = out.len().min(self.cur.len() - self.pos);
        if let Some(cut) = self.cut {
            if self.offset >= cut {
                return Ok(0);
            }
            n = n.min((cut - self.offset) as usize);
        }
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        if let Some(f) = self.flip {
            if (self.offset..self.offset + n as u64).contains(&f) {
                out[(f - self.offset) as usize] ^= 0x04;
            }
        }
        self.pos += n;
        self.offset += n as u64;
        Ok(n)
    }
}

/// Encrypts `path` on a thread into a pipe; returns the reading end.
fn encrypting(
    path: &std::path::Path,
    key: [u8; 32],
    flip: Option<u64>,
    cut: Option<u64>,
) -> PipeReader {
    let (tx, rx) = sync_channel(8);
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        let f = std::fs::File::open(path).unwrap();
        // The reader may stop early (cut/failure): a closed pipe is expected then.
        let _ = stream::encrypt(&key, std::io::BufReader::new(f), PipeWriter(tx));
    });
    PipeReader {
        rx,
        cur: Vec::new(),
        pos: 0,
        offset: 0,
        flip,
        cut,
    }
}

/// Hashes what is written (the decrypted output) without keeping it.
struct HashSink(blake3::Hasher, u64);
impl Write for HashSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        self.1 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn vm_hwm_kb() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = s.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn multi_gb_sparse_file_round_trips_in_bounded_memory_and_tampering_is_caught() {
    let dir = std::env::temp_dir().join(format!("crypt-large-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sparse");
    {
        let mut f = std::fs::File::create(&path).unwrap();
        f.set_len(SIZE).unwrap();
        // A few non-zero marks so a chunk mix-up would change the digest.
        use std::io::{Seek, SeekFrom};
        for off in [0, 1 << 20, 3 << 29, SIZE - 7] {
            f.seek(SeekFrom::Start(off)).unwrap();
            f.write_all(&off.to_le_bytes()[..7]).unwrap();
        }
    }
    let (want, size) =
        digest_reader(Algorithm::Blake3, std::fs::File::open(&path).unwrap()).unwrap();
    assert_eq!(size, SIZE);

    let key = [42u8; 32];
    let mut sink = HashSink(blake3::Hasher::new(), 0);
    let n = stream::decrypt(&[&key], encrypting(&path, key, None, None), &mut sink).unwrap();
    assert_eq!(n, SIZE);
    assert_eq!(sink.1, SIZE);
    assert_eq!(sink.0.finalize().to_hex().to_string(), want);

    // A bit flipped at 96 MiB, and a cut at a chunk boundary (chunk 1000):
    // detection is per chunk, so deeper offsets add only time.
    let chunk = u64::from(stream::DEFAULT_CHUNK_SIZE) + stream::TAG_LEN as u64;
    let flip = (96 << 20) + 5;
    let e = stream::decrypt(
        &[&key],
        encrypting(&path, key, Some(flip), None),
        std::io::sink(),
    )
    .unwrap_err();
    assert!(matches!(e, crypt::Error::StreamAuth { .. }), "{e}");
    let cut = stream::HEADER_LEN as u64 + 1_000 * chunk;
    let e = stream::decrypt(
        &[&key],
        encrypting(&path, key, None, Some(cut)),
        std::io::sink(),
    )
    .unwrap_err();
    assert!(
        matches!(e, crypt::Error::StreamAuth { chunk: 1_000, .. }),
        "{e}"
    );

    let peak = vm_hwm_kb();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        peak < MAX_RSS_KB,
        "peak RSS {peak} KiB for a {SIZE}-byte stream (limit {MAX_RSS_KB} KiB)"
    );
    eprintln!("peak RSS {peak} KiB for {SIZE} bytes");
}
