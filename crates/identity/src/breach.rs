//! Offline breached/common-password check.
//!
//! A password's SHA-1 is truncated to its first 64 bits; the filter is a
//! sorted array of those truncated hashes, searched by bisection. Built from
//! Have I Been Pwned's text (`SHA1HEX:count` a line) or a plain list (one
//! password a line). A compiled filter ([`BreachFilter::compile`]) is a
//! binary file (`PLSBRF1\n` then big-endian `u64`s) searched on disk with
//! positioned reads, so even the full HIBP set (~0.9 G entries, 7 GB) needs
//! no memory.
//!
//! False positives: a password not in the list is reported when its 64-bit
//! prefix equals one of the `n` entries' — probability about `n / 2^64`,
//! i.e. 5e-11 for a billion entries. There are no false negatives.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use sha1::{Digest, Sha1};

use crate::error::{Error, Result};

/// Magic header of a compiled filter file.
pub const FILTER_MAGIC: &[u8; 8] = b"PLSBRF1\n";
/// Default 50 000 000: entries loaded into memory from a text list (400 MB).
/// Bounds memory; compile bigger lists with a sorted HIBP file or split them.
pub const MAX_TEXT_ENTRIES: usize = 50_000_000;
/// 4096 bytes: longest line read from a text list; a longer line is an
/// error (bounds memory on a wrong or hostile file).
pub const MAX_LINE_BYTES: usize = 4096;

/// A set of breached-password hash prefixes, in memory or on disk.
#[derive(Debug)]
pub enum BreachFilter {
    /// Sorted, deduplicated prefixes in memory.
    Memory(Vec<u64>),
    /// A compiled filter file searched with positioned reads.
    File {
        /// The open file.
        file: File,
        /// Number of entries.
        len: u64,
    },
}

fn prefix(digest: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(b)
}

fn hash_prefix(password: &str) -> u64 {
    prefix(&Sha1::digest(password.as_bytes()))
}

fn hex_prefix(hex: &str) -> Option<u64> {
    if hex.len() != 40 || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(&hex[..16], 16).ok()
}

impl BreachFilter {
    /// Opens `path`: a compiled filter (by its magic) or a text list.
    pub fn open(path: &Path) -> Result<BreachFilter> {
        let mut f =
            File::open(path).map_err(|e| Error::BreachList(format!("{}: {e}", path.display())))?;
        let mut magic = [0u8; 8];
        let n = f.read(&mut magic)?;
        if n == 8 && &magic == FILTER_MAGIC {
            let size = f.metadata()?.len();
            if (size - 8) % 8 != 0 {
                return Err(Error::BreachList(format!(
                    "{}: truncated filter file",
                    path.display()
                )));
            }
            return Ok(BreachFilter::File {
                file: f,
                len: (size - 8) / 8,
            });
        }
        let f = File::open(path)?;
        BreachFilter::from_text(BufReader::new(f))
    }

    /// Reads a text list: lines of 40 hex digits (optionally `:count`, as
    /// HIBP) are SHA-1 hashes; any other non-empty line is a password.
    pub fn from_text(reader: impl BufRead) -> Result<BreachFilter> {
        let mut v = Vec::new();
        let mut reader = reader.take(u64::MAX);
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = (&mut reader)
                .take(MAX_LINE_BYTES as u64 + 1)
                .read_until(b'\n', &mut line)?;
            if n == 0 {
                break;
            }
            if line.len() > MAX_LINE_BYTES {
                return Err(Error::BreachList(format!(
                    "line {} longer than {MAX_LINE_BYTES} bytes",
                    v.len() + 1
                )));
            }
            let s = String::from_utf8_lossy(&line);
            let s = s.trim_end_matches(['\n', '\r']);
            if s.is_empty() {
                continue;
            }
            let hex = s.split(':').next().unwrap_or("");
            let p = match hex_prefix(hex) {
                Some(p) => p,
                None => hash_prefix(s),
            };
            if v.len() >= MAX_TEXT_ENTRIES {
                return Err(Error::BreachList(format!(
                    "more than {MAX_TEXT_ENTRIES} entries; compile a smaller list"
                )));
            }
            v.push(p);
        }
        v.sort_unstable();
        v.dedup();
        Ok(BreachFilter::Memory(v))
    }

    /// Number of distinct entries.
    pub fn len(&self) -> u64 {
        match self {
            BreachFilter::Memory(v) => v.len() as u64,
            BreachFilter::File { len, .. } => *len,
        }
    }

    /// Whether the filter is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes the filter as a compiled file (8 bytes per entry).
    pub fn compile(&self, out: &Path) -> Result<()> {
        let mut w = std::io::BufWriter::new(File::create(out)?);
        w.write_all(FILTER_MAGIC)?;
        for i in 0..self.len() {
            w.write_all(&self.entry(i)?.to_be_bytes())?;
        }
        w.flush()?;
        Ok(())
    }

    fn entry(&self, i: u64) -> Result<u64> {
        match self {
            BreachFilter::Memory(v) => Ok(v[i as usize]),
            BreachFilter::File { file, .. } => {
                let mut b = [0u8; 8];
                file.read_exact_at(&mut b, 8 + i * 8)?;
                Ok(u64::from_be_bytes(b))
            }
        }
    }

    /// Whether `password` is (probably, see the module doc) in the list.
    pub fn contains(&self, password: &str) -> Result<bool> {
        let want = hash_prefix(password);
        if let BreachFilter::Memory(v) = self {
            return Ok(v.binary_search(&want).is_ok());
        }
        let (mut lo, mut hi) = (0u64, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let e = self.entry(mid)?;
            match e.cmp(&want) {
                std::cmp::Ordering::Equal => return Ok(true),
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // SHA-1("password") = 5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8 (HIBP's first example).
    const HIBP: &str = "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8:10434004\r\n\
                        7C4A8D09CA3762AF61E59520943DC26494F8941B:37359195\n";

    #[test]
    fn hibp_text_and_plain_list() {
        let f = BreachFilter::from_text(HIBP.as_bytes()).unwrap();
        assert_eq!(f.len(), 2);
        assert!(f.contains("password").unwrap());
        assert!(f.contains("123456").unwrap());
        assert!(!f.contains("Password").unwrap());
        let f = BreachFilter::from_text("letmein\n\nqwerty\nletmein\n".as_bytes()).unwrap();
        assert_eq!(f.len(), 2);
        assert!(f.contains("qwerty").unwrap());
        assert!(!f.contains("").unwrap());
    }

    #[test]
    fn compiled_file_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let words: String = (0..1000).map(|i| format!("pw{i}\n")).collect();
        let f = BreachFilter::from_text(words.as_bytes()).unwrap();
        let out = dir.path().join("breached.bin");
        f.compile(&out).unwrap();
        assert_eq!(std::fs::metadata(&out).unwrap().len(), 8 + 1000 * 8);
        let g = BreachFilter::open(&out).unwrap();
        assert!(matches!(g, BreachFilter::File { .. }));
        for i in 0..1000 {
            assert!(g.contains(&format!("pw{i}")).unwrap());
        }
        assert!(!g.contains("pw1000").unwrap());
        // A text file opens as a text list.
        let t = dir.path().join("list.txt");
        std::fs::write(&t, HIBP).unwrap();
        assert!(BreachFilter::open(&t)
            .unwrap()
            .contains("password")
            .unwrap());
    }

    #[test]
    fn long_line_refused() {
        let big = "x".repeat(MAX_LINE_BYTES + 10);
        assert!(BreachFilter::from_text(big.as_bytes()).is_err());
    }
}
