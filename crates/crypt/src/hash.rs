//! SHA-256 and BLAKE3 digests of readers, in bounded memory.
//!
//! ```
//! use crypt::hash::{digest_reader, Algorithm};
//!
//! let (hex, size) = digest_reader(Algorithm::Sha256, &b"abc"[..])?;
//! assert_eq!(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
//! assert_eq!(size, 3);
//! # Ok::<(), crypt::Error>(())
//! ```

use std::io::Read;
use std::str::FromStr;

use sha2::{Digest, Sha256};

use crate::Error;

/// Bytes read per `read` call while hashing.
const READ_BUF: usize = 64 << 10;

/// A digest algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Algorithm {
    /// SHA-256 (FIPS 180-4); what `sha256sum` prints.
    Sha256,
    /// BLAKE3 (256-bit output); what `b3sum` prints.
    Blake3,
}

impl Algorithm {
    /// The name used on the command line and in manifests.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Blake3 => "blake3",
        }
    }
}

impl FromStr for Algorithm {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.to_ascii_lowercase().as_str() {
            "sha256" | "sha-256" => Ok(Algorithm::Sha256),
            "blake3" => Ok(Algorithm::Blake3),
            _ => Err(Error::Limit(format!(
                "unknown digest algorithm {s:?} (sha256 or blake3)"
            ))),
        }
    }
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Hashes everything `reader` yields; returns the lowercase hex digest and
/// the number of bytes read.
pub fn digest_reader<R: Read>(alg: Algorithm, mut reader: R) -> Result<(String, u64), Error> {
    enum H {
        Sha(Sha256),
        B3(Box<blake3::Hasher>),
    }
    let mut h = match alg {
        Algorithm::Sha256 => H::Sha(Sha256::new()),
        Algorithm::Blake3 => H::B3(Box::new(blake3::Hasher::new())),
    };
    let mut buf = vec![0u8; READ_BUF];
    let mut size = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("cannot read the input", e)),
        };
        size += n as u64;
        match &mut h {
            H::Sha(s) => s.update(&buf[..n]),
            H::B3(b) => {
                b.update(&buf[..n]);
            }
        }
    }
    let hex = match h {
        H::Sha(s) => to_hex(&s.finalize()),
        H::B3(b) => b.finalize().to_hex().to_string(),
    };
    Ok((hex, size))
}

/// Hashes a file.
pub fn digest_file(alg: Algorithm, path: &std::path::Path) -> Result<(String, u64), Error> {
    let f = std::fs::File::open(path)
        .map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?;
    digest_reader(alg, f).map_err(|e| match e {
        Error::Io { source, .. } => Error::io(format!("cannot read {}", path.display()), source),
        other => other,
    })
}

pub(crate) fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 15)] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        assert_eq!(
            digest_reader(Algorithm::Sha256, &b""[..]).unwrap().0,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        // BLAKE3 of the empty input (from the BLAKE3 paper's test vectors).
        assert_eq!(
            digest_reader(Algorithm::Blake3, &b""[..]).unwrap().0,
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
        assert!("md5".parse::<Algorithm>().is_err());
        assert_eq!("BLAKE3".parse::<Algorithm>().unwrap(), Algorithm::Blake3);
    }
}
