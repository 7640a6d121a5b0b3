//! The proof-of-work challenge and its cookie.
//!
//! A challenge is a token `id.expires.difficulty.sig` where `sig` is
//! HMAC-SHA256 over the client IP and the other fields: the server keeps no
//! state until an answer arrives. The client must find a `nonce` (decimal)
//! such that SHA-256(token ‖ nonce) starts with `difficulty` zero bits. A
//! valid answer is accepted once (the id is claimed in the store) and earns a
//! cookie `expires.sig`, HMAC over the client IP and expiry: forged, expired
//! or other-IP cookies fail verification.

use std::net::IpAddr;

use ring::{digest, hmac, rand::SecureRandom};

/// Name of the cookie that proves a solved challenge.
pub const COOKIE_NAME: &str = "palisade_pow";
/// Fixed 5 minutes: lifetime of an issued challenge. Bounds how long a
/// precomputed answer stays usable.
pub const CHALLENGE_TTL_SECS: u64 = 300;
/// Fixed 32: highest difficulty (leading zero bits). 2^32 hashes is minutes
/// of browser time already; more would lock real users out.
pub const MAX_DIFFICULTY: u8 = 32;
/// Fixed 20 digits: longest nonce accepted (a u64 in decimal). Bounds the
/// hashing work an answer can make us do.
pub const MAX_NONCE_DIGITS: usize = 20;

/// Why an answer or a cookie was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowError {
    /// The token or cookie is not in the expected format.
    Malformed,
    /// The signature does not match (forged, or issued for another IP).
    BadSignature,
    /// Past its expiry.
    Expired,
    /// The hash does not have enough leading zero bits.
    NotSolved,
    /// The challenge was already used.
    Replayed,
}

impl PowError {
    /// A short explanation for the client and the log.
    pub fn as_str(self) -> &'static str {
        match self {
            PowError::Malformed => "malformed",
            PowError::BadSignature => "bad signature or other client address",
            PowError::Expired => "expired",
            PowError::NotSolved => "nonce does not solve the challenge",
            PowError::Replayed => "challenge already used",
        }
    }
}

/// A verified challenge answer: its id must now be claimed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Solved {
    /// Unique challenge id (claim it to make the answer single-use).
    pub id: String,
    /// Challenge expiry (unix seconds): the claim may be forgotten after it.
    pub expires: u64,
}

/// Signs and verifies challenges and cookies with one secret; after a
/// rotation the previous secret still verifies, so cookies already issued
/// stay valid until they expire.
pub struct Pow {
    keys: arc_swap::ArcSwap<Keys>,
    rng: ring::rand::SystemRandom,
}

struct Keys {
    current: hmac::Key,
    previous: Option<hmac::Key>,
}

impl std::fmt::Debug for Pow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pow { .. }")
    }
}

fn hex(bytes: &[u8]) -> String {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(H[usize::from(b >> 4)] as char);
        s.push(H[usize::from(b & 15)] as char);
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// An HMAC key from `secret`, or from 32 random bytes.
fn make_key(rng: &ring::rand::SystemRandom, secret: Option<&[u8]>) -> hmac::Key {
    match secret {
        Some(s) => hmac::Key::new(hmac::HMAC_SHA256, s),
        None => {
            let mut k = [0u8; 32];
            // The OS RNG failing is not recoverable in a meaningful way;
            // fall back to a key derived from the hasher seed rather than
            // a fixed one.
            if rng.fill(&mut k).is_err() {
                let s = std::collections::hash_map::RandomState::new();
                let v = std::hash::BuildHasher::hash_one(&s, std::process::id());
                k[..8].copy_from_slice(&v.to_le_bytes());
            }
            hmac::Key::new(hmac::HMAC_SHA256, &k)
        }
    }
}

/// Leading zero bits of a byte string.
pub fn leading_zero_bits(h: &[u8]) -> u32 {
    let mut n = 0;
    for b in h {
        if *b == 0 {
            n += 8;
        } else {
            return n + b.leading_zeros();
        }
    }
    n
}

/// SHA-256(token ‖ nonce).
pub fn work_hash(token: &str, nonce: &str) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(token.as_bytes());
    ctx.update(nonce.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// Finds a nonce for `token` (what the browser does; used by tests and tools).
pub fn solve(token: &str, difficulty: u8) -> u64 {
    (0u64..)
        .find(|n| leading_zero_bits(&work_hash(token, &n.to_string())) >= u32::from(difficulty))
        .unwrap_or(0)
}

impl Pow {
    /// Uses `secret` (share it between nodes so their cookies agree), or a
    /// random per-process secret when `None`.
    pub fn new(secret: Option<&[u8]>) -> Pow {
        let rng = ring::rand::SystemRandom::new();
        let current = make_key(&rng, secret);
        Pow {
            keys: arc_swap::ArcSwap::from_pointee(Keys {
                current,
                previous: None,
            }),
            rng,
        }
    }

    /// Signs with `secret` from now on (a random one when `None`) and keeps
    /// the current secret for verification only.
    pub fn rotate(&self, secret: Option<&[u8]>) {
        let current = make_key(&self.rng, secret);
        let old = self.keys.load();
        self.keys.store(std::sync::Arc::new(Keys {
            current,
            previous: Some(old.current.clone()),
        }));
    }

    fn sign(&self, parts: &[&[u8]]) -> String {
        let keys = self.keys.load();
        let mut ctx = hmac::Context::with_key(&keys.current);
        for p in parts {
            // Length-prefixed so field boundaries cannot shift.
            ctx.update(&(p.len() as u32).to_be_bytes());
            ctx.update(p);
        }
        hex(ctx.sign().as_ref())
    }

    fn verify_sig(&self, parts: &[&[u8]], sig_hex: &str) -> bool {
        let Some(sig) = unhex(sig_hex) else {
            return false;
        };
        let mut msg = Vec::new();
        for p in parts {
            msg.extend_from_slice(&(p.len() as u32).to_be_bytes());
            msg.extend_from_slice(p);
        }
        // Constant-time comparison.
        let keys = self.keys.load();
        hmac::verify(&keys.current, &msg, &sig).is_ok()
            || keys
                .previous
                .as_ref()
                .is_some_and(|k| hmac::verify(k, &msg, &sig).is_ok())
    }

    /// A new challenge token for `ip`.
    pub fn issue(&self, ip: IpAddr, difficulty: u8, now_s: u64) -> String {
        let mut id = [0u8; 12];
        if self.rng.fill(&mut id).is_err() {
            id[..8].copy_from_slice(&now_s.to_le_bytes());
        }
        let id = hex(&id);
        let exp = (now_s + CHALLENGE_TTL_SECS).to_string();
        let d = difficulty.min(MAX_DIFFICULTY).to_string();
        let ip = ip.to_canonical().to_string();
        let sig = self.sign(&[
            b"c",
            ip.as_bytes(),
            id.as_bytes(),
            exp.as_bytes(),
            d.as_bytes(),
        ]);
        format!("{id}.{exp}.{d}.{sig}")
    }

    /// Checks an answer: signature for this IP, expiry, work. The caller
    /// then claims [`Solved::id`] to make it single-use.
    pub fn verify(
        &self,
        ip: IpAddr,
        token: &str,
        nonce: &str,
        now_s: u64,
    ) -> Result<Solved, PowError> {
        let mut it = token.split('.');
        let (Some(id), Some(exp), Some(d), Some(sig), None) =
            (it.next(), it.next(), it.next(), it.next(), it.next())
        else {
            return Err(PowError::Malformed);
        };
        if nonce.is_empty()
            || nonce.len() > MAX_NONCE_DIGITS
            || !nonce.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(PowError::Malformed);
        }
        let ip = ip.to_canonical().to_string();
        if !self.verify_sig(
            &[
                b"c",
                ip.as_bytes(),
                id.as_bytes(),
                exp.as_bytes(),
                d.as_bytes(),
            ],
            sig,
        ) {
            return Err(PowError::BadSignature);
        }
        let expires: u64 = exp.parse().map_err(|_| PowError::Malformed)?;
        let difficulty: u32 = d.parse().map_err(|_| PowError::Malformed)?;
        if now_s >= expires {
            return Err(PowError::Expired);
        }
        if leading_zero_bits(&work_hash(token, nonce)) < difficulty {
            return Err(PowError::NotSolved);
        }
        Ok(Solved {
            id: id.to_string(),
            expires,
        })
    }

    /// A cookie value proving a solved challenge for `ip` until `expires_s`.
    pub fn cookie(&self, ip: IpAddr, expires_s: u64) -> String {
        let ip = ip.to_canonical().to_string();
        let exp = expires_s.to_string();
        let sig = self.sign(&[b"k", ip.as_bytes(), exp.as_bytes()]);
        format!("{exp}.{sig}")
    }

    /// Checks a cookie value for `ip` at `now_s`.
    pub fn check_cookie(&self, ip: IpAddr, value: &str, now_s: u64) -> Result<(), PowError> {
        let (exp, sig) = value.split_once('.').ok_or(PowError::Malformed)?;
        let ip = ip.to_canonical().to_string();
        if !self.verify_sig(&[b"k", ip.as_bytes(), exp.as_bytes()], sig) {
            return Err(PowError::BadSignature);
        }
        let expires: u64 = exp.parse().map_err(|_| PowError::Malformed)?;
        if now_s >= expires {
            return Err(PowError::Expired);
        }
        Ok(())
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn find_cookie<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    for v in headers.get_all(http::header::COOKIE) {
        let Ok(s) = v.to_str() else { continue };
        for pair in s.split(';') {
            if let Some((k, val)) = pair.split_once('=') {
                if k.trim() == name {
                    return Some(val.trim());
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn solved_challenge_verifies_once_for_its_ip() {
        let p = Pow::new(Some(b"secret"));
        let t = p.issue(ip("192.0.2.1"), 8, 1000);
        let n = solve(&t, 8).to_string();
        let s = p.verify(ip("192.0.2.1"), &t, &n, 1001).unwrap();
        assert_eq!(s.expires, 1000 + CHALLENGE_TTL_SECS);
        assert_eq!(
            p.verify(ip("192.0.2.2"), &t, &n, 1001),
            Err(PowError::BadSignature)
        );
        assert_eq!(
            p.verify(ip("192.0.2.1"), &t, &n, 1000 + CHALLENGE_TTL_SECS),
            Err(PowError::Expired)
        );
        // A nonce that does not solve it (difficulty 8: 1 in 256 would).
        let bad = (0..)
            .map(|i: u64| i.to_string())
            .find(|c| leading_zero_bits(&work_hash(&t, c)) < 8)
            .unwrap();
        assert_eq!(
            p.verify(ip("192.0.2.1"), &t, &bad, 1001),
            Err(PowError::NotSolved)
        );
        // Tampering with the difficulty breaks the signature.
        let easier = t.replacen(".8.", ".0.", 1);
        assert_eq!(
            p.verify(ip("192.0.2.1"), &easier, "0", 1001),
            Err(PowError::BadSignature)
        );
        for junk in ["", "a.b", "a.b.c.d.e"] {
            assert_eq!(
                p.verify(ip("192.0.2.1"), junk, "1", 0),
                Err(PowError::Malformed)
            );
        }
        assert_eq!(
            p.verify(ip("192.0.2.1"), &t, "-1", 0),
            Err(PowError::Malformed)
        );
    }

    #[test]
    fn a_rotated_secret_still_verifies_cookies_signed_before() {
        let p = Pow::new(Some(b"first"));
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let old = p.cookie(ip, 2_000);
        p.rotate(Some(b"second"));
        let new = p.cookie(ip, 2_000);
        assert_ne!(old, new, "signed with the new secret");
        assert!(p.check_cookie(ip, &old, 1_000).is_ok());
        assert!(p.check_cookie(ip, &new, 1_000).is_ok());
        // Two rotations later the first secret is gone.
        p.rotate(Some(b"third"));
        assert!(p.check_cookie(ip, &old, 1_000).is_err());
        assert!(p.check_cookie(ip, &new, 1_000).is_ok());
    }

    #[test]
    fn cookies_are_bound_to_ip_expiry_and_key() {
        let p = Pow::new(Some(b"secret"));
        let c = p.cookie(ip("2001:db8::1"), 5000);
        assert_eq!(p.check_cookie(ip("2001:db8::1"), &c, 4999), Ok(()));
        assert_eq!(
            p.check_cookie(ip("2001:db8::1"), &c, 5000),
            Err(PowError::Expired)
        );
        assert_eq!(
            p.check_cookie(ip("2001:db8::2"), &c, 1),
            Err(PowError::BadSignature)
        );
        let forged = c.replacen("5000", "9999", 1);
        assert_eq!(
            p.check_cookie(ip("2001:db8::1"), &forged, 1),
            Err(PowError::BadSignature)
        );
        let other = Pow::new(Some(b"other"));
        assert_eq!(
            other.check_cookie(ip("2001:db8::1"), &c, 1),
            Err(PowError::BadSignature)
        );
        assert_eq!(
            p.check_cookie(ip("2001:db8::1"), "garbage", 1),
            Err(PowError::Malformed)
        );
    }

    #[test]
    fn leading_zero_bit_count() {
        assert_eq!(leading_zero_bits(&[0, 0, 0x10]), 19);
        assert_eq!(leading_zero_bits(&[0x80]), 0);
        assert_eq!(leading_zero_bits(&[0, 0]), 16);
    }

    #[test]
    fn cookie_header_parsing() {
        let mut h = http::HeaderMap::new();
        h.append(
            http::header::COOKIE,
            "a=1; palisade_pow=xyz".parse().unwrap(),
        );
        assert_eq!(find_cookie(&h, COOKIE_NAME), Some("xyz"));
        assert_eq!(find_cookie(&h, "b"), None);
    }
}
