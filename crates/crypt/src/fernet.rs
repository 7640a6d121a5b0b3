//! Fernet tokens, byte-for-byte compatible with Python's `cryptography.fernet`.
//!
//! A key is 32 random bytes written as url-safe base64 with padding (44
//! characters): the first 16 bytes sign (HMAC-SHA256), the last 16 encrypt
//! (AES-128-CBC, PKCS#7). A token is url-safe base64 (with padding) of
//!
//! ```text
//! 0x80 | timestamp (u64 BE, Unix seconds) | IV (16) | ciphertext (16·n) | HMAC-SHA256 (32)
//! ```
//!
//! where the HMAC covers everything before it. Decryption checks, in the
//! order Python does: the format, the TTL (if any), the clock skew, then the
//! MAC (in constant time), then the padding.
//!
//! Time rules (as in `cryptography`): with a TTL, a token made at `t` is
//! rejected when `t + ttl < now`; a token whose timestamp is more than
//! [`MAX_CLOCK_SKEW`] seconds in the future is rejected only when a TTL is
//! given (Python applies the skew check inside its TTL branch).
//!
//! ```
//! use crypt::fernet::{Fernet, Key, MultiFernet};
//!
//! let old = Key::generate()?;
//! let new = Key::generate()?;
//! let token = Fernet::new(&old).encrypt_at_time(b"hello", 1_000)?;
//! // The new key first: it encrypts; every key decrypts.
//! let multi = MultiFernet::new(vec![Fernet::new(&new), Fernet::new(&old)])?;
//! let rotated = multi.rotate(&token)?;
//! assert_eq!(Fernet::new(&new).extract_timestamp(&rotated)?, 1_000);
//! assert_eq!(multi.decrypt(&rotated, None)?, b"hello");
//! # Ok::<(), crypt::Error>(())
//! ```

use std::time::{SystemTime, UNIX_EPOCH};

use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::engine::general_purpose::URL_SAFE;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use crate::Error;

type Aes128CbcEnc = cbc::Encryptor<aes::Aes128>;
type Aes128CbcDec = cbc::Decryptor<aes::Aes128>;
type HmacSha256 = Hmac<Sha256>;

/// The only token version the spec defines.
pub const VERSION: u8 = 0x80;
/// Seconds a token's timestamp may lie in the future (Python's `_MAX_CLOCK_SKEW`).
pub const MAX_CLOCK_SKEW: u64 = 60;
/// Largest encoded token accepted by [`Fernet::decrypt`]: 256 MiB. Bounds the
/// memory a hostile token can make the decoder allocate; larger data belongs
/// in the [`crate::stream`] format.
pub const MAX_TOKEN_LEN: usize = 256 << 20;

const HEADER_LEN: usize = 1 + 8 + 16;
const MAC_LEN: usize = 32;

/// A Fernet key (32 bytes). Zeroized on drop; `Debug` does not show it.
#[derive(Clone)]
pub struct Key([u8; 32]);

impl Key {
    /// A fresh random key.
    pub fn generate() -> Result<Self, Error> {
        let mut k = [0u8; 32];
        crate::random(&mut k)?;
        Ok(Key(k))
    }

    /// Parses the url-safe base64 form (44 characters with padding; a
    /// surrounding whitespace/newline, as in a key file, is ignored).
    pub fn from_base64(s: &str) -> Result<Self, Error> {
        let mut raw = Zeroizing::new(
            URL_SAFE
                .decode(s.trim().as_bytes())
                .map_err(|_| Error::InvalidKey("not url-safe base64".into()))?,
        );
        if raw.len() != 32 {
            let n = raw.len();
            raw.zeroize();
            return Err(Error::InvalidKey(format!(
                "a Fernet key is 32 bytes, this one has {n}"
            )));
        }
        let mut k = [0u8; 32];
        k.copy_from_slice(&raw);
        Ok(Key(k))
    }

    /// Builds a key from 32 raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Key(bytes)
    }

    /// The url-safe base64 form (what `Fernet.generate_key()` prints).
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(URL_SAFE.encode(self.0))
    }

    /// The 32 raw bytes (also the master key of [`crate::stream`] and of
    /// signed manifests).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn signing(&self) -> &[u8] {
        &self.0[..16]
    }

    fn encryption(&self) -> &[u8] {
        &self.0[16..]
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

/// Seconds since the Unix epoch now (0 if the clock is before 1970).
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Encrypts and decrypts with one key.
#[derive(Debug, Clone)]
pub struct Fernet {
    key: Key,
}

/// A token's verified parts.
struct Parts {
    timestamp: u64,
    /// The decoded token (so the ciphertext slice can be borrowed).
    data: Vec<u8>,
}

impl Fernet {
    /// A Fernet for `key`.
    pub fn new(key: &Key) -> Self {
        Fernet { key: key.clone() }
    }

    /// Encrypts `plaintext` with the current time and a random IV.
    pub fn encrypt(&self, plaintext: &[u8]) -> Result<String, Error> {
        self.encrypt_at_time(plaintext, now())
    }

    /// Encrypts `plaintext` with an explicit timestamp (Python's `encrypt_at_time`).
    pub fn encrypt_at_time(&self, plaintext: &[u8], timestamp: u64) -> Result<String, Error> {
        let mut iv = [0u8; 16];
        crate::random(&mut iv)?;
        Ok(self.encrypt_from_parts(plaintext, timestamp, &iv))
    }

    fn encrypt_from_parts(&self, plaintext: &[u8], timestamp: u64, iv: &[u8; 16]) -> String {
        let enc = Aes128CbcEnc::new(self.key.encryption().into(), iv.into());
        let ct = enc.encrypt_padded_vec_mut::<Pkcs7>(plaintext);
        let mut out = Vec::with_capacity(HEADER_LEN + ct.len() + MAC_LEN);
        out.push(VERSION);
        out.extend_from_slice(&timestamp.to_be_bytes());
        out.extend_from_slice(iv);
        out.extend_from_slice(&ct);
        let mac = self.mac(&out);
        out.extend_from_slice(&mac);
        URL_SAFE.encode(out)
    }

    fn mac(&self, data: &[u8]) -> [u8; 32] {
        let mut m = <HmacSha256 as Mac>::new_from_slice(self.key.signing())
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        m.update(data);
        m.finalize().into_bytes().into()
    }

    /// Decrypts `token`; with `ttl` (seconds), tokens older than that are refused.
    pub fn decrypt(&self, token: &str, ttl: Option<u64>) -> Result<Vec<u8>, Error> {
        self.decrypt_at_time(token, ttl, now())
    }

    /// [`Fernet::decrypt`] with an explicit current time (Python's `decrypt_at_time`).
    pub fn decrypt_at_time(
        &self,
        token: &str,
        ttl: Option<u64>,
        now: u64,
    ) -> Result<Vec<u8>, Error> {
        let (timestamp, data) = decode(token)?;
        // The MAC first: nothing about an unauthenticated token (not even
        // "expired") is reported. Python checks time first; both reject
        // the same tokens.
        let parts = self.verify(timestamp, data)?;
        check_time(timestamp, ttl, now)?;
        self.decrypt_parts(&parts)
    }

    /// The timestamp of an authentic token (Python's `extract_timestamp`).
    pub fn extract_timestamp(&self, token: &str) -> Result<u64, Error> {
        let (timestamp, data) = decode(token)?;
        Ok(self.verify(timestamp, data)?.timestamp)
    }

    fn verify(&self, timestamp: u64, data: Vec<u8>) -> Result<Parts, Error> {
        use subtle::ConstantTimeEq;
        let split = data.len() - MAC_LEN;
        let mac = self.mac(&data[..split]);
        if bool::from(mac.ct_eq(&data[split..])) {
            Ok(Parts { timestamp, data })
        } else {
            Err(Error::InvalidToken)
        }
    }

    fn decrypt_parts(&self, parts: &Parts) -> Result<Vec<u8>, Error> {
        let d = &parts.data;
        let iv = &d[9..HEADER_LEN];
        let ct = &d[HEADER_LEN..d.len() - MAC_LEN];
        let dec = Aes128CbcDec::new(self.key.encryption().into(), iv.into());
        dec.decrypt_padded_vec_mut::<Pkcs7>(ct)
            .map_err(|_| Error::InvalidToken)
    }
}

/// Decodes a token and checks its framing; returns the timestamp and bytes.
fn decode(token: &str) -> Result<(u64, Vec<u8>), Error> {
    let token = token.trim_end_matches(['\n', '\r']);
    if token.len() > MAX_TOKEN_LEN {
        return Err(Error::Limit(format!(
            "token longer than {MAX_TOKEN_LEN} bytes: use the stream format for large data"
        )));
    }
    let data = URL_SAFE
        .decode(token.as_bytes())
        .map_err(|_| Error::InvalidToken)?;
    // Version byte and timestamp first (Python reports a bad version before
    // anything else), then the minimal length: one AES block and the MAC.
    if data.first() != Some(&VERSION) || data.len() < 9 {
        return Err(Error::InvalidToken);
    }
    let ct_len = data.len().saturating_sub(HEADER_LEN + MAC_LEN);
    if data.len() < HEADER_LEN + 16 + MAC_LEN || ct_len % 16 != 0 {
        return Err(Error::InvalidToken);
    }
    let mut ts = [0u8; 8];
    ts.copy_from_slice(&data[1..9]);
    Ok((u64::from_be_bytes(ts), data))
}

fn check_time(timestamp: u64, ttl: Option<u64>, now: u64) -> Result<(), Error> {
    if let Some(ttl) = ttl {
        if timestamp.saturating_add(ttl) < now {
            return Err(Error::Expired {
                timestamp,
                ttl,
                now,
            });
        }
        if now.saturating_add(MAX_CLOCK_SKEW) < timestamp {
            return Err(Error::FromFuture { timestamp, now });
        }
    }
    Ok(())
}

/// Several keys: the first encrypts, all decrypt (Python's `MultiFernet`).
#[derive(Debug, Clone)]
pub struct MultiFernet {
    fernets: Vec<Fernet>,
}

impl MultiFernet {
    /// Builds from at least one Fernet; the first is the primary.
    pub fn new(fernets: Vec<Fernet>) -> Result<Self, Error> {
        if fernets.is_empty() {
            return Err(Error::InvalidKey(
                "MultiFernet needs at least one key".into(),
            ));
        }
        Ok(MultiFernet { fernets })
    }

    /// Encrypts with the primary key.
    pub fn encrypt(&self, plaintext: &[u8]) -> Result<String, Error> {
        self.primary().encrypt(plaintext)
    }

    /// Encrypts with the primary key and an explicit timestamp.
    pub fn encrypt_at_time(&self, plaintext: &[u8], timestamp: u64) -> Result<String, Error> {
        self.primary().encrypt_at_time(plaintext, timestamp)
    }

    /// Decrypts with the first key that authenticates the token.
    pub fn decrypt(&self, token: &str, ttl: Option<u64>) -> Result<Vec<u8>, Error> {
        self.decrypt_at_time(token, ttl, now())
    }

    /// [`MultiFernet::decrypt`] with an explicit current time.
    pub fn decrypt_at_time(
        &self,
        token: &str,
        ttl: Option<u64>,
        now: u64,
    ) -> Result<Vec<u8>, Error> {
        let (pt, _) = self.open(token, ttl, now)?;
        Ok(pt)
    }

    /// The timestamp of a token authentic under any of the keys.
    pub fn extract_timestamp(&self, token: &str) -> Result<u64, Error> {
        for f in &self.fernets {
            if let Ok(t) = f.extract_timestamp(token) {
                return Ok(t);
            }
        }
        Err(Error::InvalidToken)
    }

    /// Re-encrypts `token` under the primary key, keeping its timestamp
    /// (Python's `MultiFernet.rotate`). No TTL applies.
    pub fn rotate(&self, token: &str) -> Result<String, Error> {
        let (pt, timestamp) = self.open(token, None, now())?;
        let pt = Zeroizing::new(pt);
        let mut iv = [0u8; 16];
        crate::random(&mut iv)?;
        Ok(self.primary().encrypt_from_parts(&pt, timestamp, &iv))
    }

    fn primary(&self) -> &Fernet {
        // `new` refuses an empty list, so index 0 exists.
        &self.fernets[0]
    }

    fn open(&self, token: &str, ttl: Option<u64>, now: u64) -> Result<(Vec<u8>, u64), Error> {
        let (timestamp, data) = decode(token)?;
        for f in &self.fernets {
            if let Ok(parts) = f.verify(timestamp, data.clone()) {
                check_time(timestamp, ttl, now)?;
                return Ok((f.decrypt_parts(&parts)?, timestamp));
            }
        }
        Err(Error::InvalidToken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The spec's test vector (github.com/fernet/spec, generate.json).
    const SPEC_KEY: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";
    const SPEC_TOKEN: &str = "gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA==";
    const SPEC_NOW: u64 = 499_162_800; // 1985-10-26T01:20:00-07:00

    #[test]
    fn spec_vector_generates_and_verifies() {
        let f = Fernet::new(&Key::from_base64(SPEC_KEY).unwrap());
        let iv: [u8; 16] = core::array::from_fn(|i| i as u8);
        assert_eq!(f.encrypt_from_parts(b"hello", SPEC_NOW, &iv), SPEC_TOKEN);
        assert_eq!(
            f.decrypt_at_time(SPEC_TOKEN, Some(60), SPEC_NOW + 60)
                .unwrap(),
            b"hello"
        );
    }

    #[test]
    fn ttl_and_skew_rules() {
        let f = Fernet::new(&Key::from_base64(SPEC_KEY).unwrap());
        assert!(matches!(
            f.decrypt_at_time(SPEC_TOKEN, Some(60), SPEC_NOW + 61),
            Err(Error::Expired { .. })
        ));
        // 60 s of skew is tolerated, 61 is not.
        assert!(f
            .decrypt_at_time(SPEC_TOKEN, Some(60), SPEC_NOW - 60)
            .is_ok());
        assert!(matches!(
            f.decrypt_at_time(SPEC_TOKEN, Some(60), SPEC_NOW - 61),
            Err(Error::FromFuture { .. })
        ));
        // Without a TTL neither check applies.
        assert!(f.decrypt_at_time(SPEC_TOKEN, None, 0).is_ok());
    }

    #[test]
    fn every_single_bit_flip_is_rejected() {
        let f = Fernet::new(&Key::from_base64(SPEC_KEY).unwrap());
        let raw = URL_SAFE.decode(SPEC_TOKEN).unwrap();
        for i in 0..raw.len() {
            for bit in 0..8 {
                let mut t = raw.clone();
                t[i] ^= 1 << bit;
                let tok = URL_SAFE.encode(&t);
                assert!(f.decrypt(&tok, None).is_err(), "byte {i} bit {bit}");
            }
        }
    }

    #[test]
    fn malformed_tokens_are_invalid_not_panics() {
        let f = Fernet::new(&Key::from_base64(SPEC_KEY).unwrap());
        for t in [
            "",
            "gA==",
            "!!!!",
            "gAAAAAAdwJ6w",
            &SPEC_TOKEN[..SPEC_TOKEN.len() - 8],
        ] {
            assert!(
                matches!(f.decrypt(t, None), Err(Error::InvalidToken)),
                "{t:?}"
            );
        }
        assert!(Key::from_base64("c2hvcnQ=").is_err());
        assert!(MultiFernet::new(vec![]).is_err());
    }

    #[test]
    fn key_debug_hides_material() {
        let k = Key::from_base64(SPEC_KEY).unwrap();
        assert_eq!(format!("{k:?}"), "Key(..)");
        assert_eq!(&*k.to_base64(), SPEC_KEY);
    }
}
