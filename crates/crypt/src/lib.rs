//! Data encryption and integrity tools for palisade, usable on their own.
//!
//! - [`fernet`]: Fernet tokens ([spec](https://github.com/fernet/spec)) that
//!   interoperate both ways with Python's `cryptography.fernet`, including TTL
//!   checks with the same clock-skew rule and `MultiFernet`-style rotation that
//!   keeps each token's original timestamp.
//! - [`stream`]: a chunked AEAD file format for inputs too large for one
//!   Fernet token; memory use is bounded by the chunk size and truncation,
//!   reordering and bit flips are detected.
//! - [`hash`]: SHA-256 and BLAKE3 digests of any reader.
//! - [`manifest`]: directory integrity manifests (relative sorted paths, size
//!   and digest), optionally HMAC-signed, with a verifier that reports added,
//!   removed and changed files.
//!
//! ```
//! use crypt::fernet::{Fernet, Key};
//!
//! let key = Key::generate()?;
//! let f = Fernet::new(&key);
//! let token = f.encrypt(b"secret")?;
//! assert_eq!(f.decrypt(&token, None)?, b"secret");
//! # Ok::<(), crypt::Error>(())
//! ```

pub mod fernet;
pub mod hash;
pub mod manifest;
pub mod stream;

mod error;

pub use error::Error;

/// Fills `buf` from the operating system's CSPRNG.
pub(crate) fn random(buf: &mut [u8]) -> Result<(), Error> {
    getrandom::getrandom(buf).map_err(|e| Error::Random(e.to_string()))
}
