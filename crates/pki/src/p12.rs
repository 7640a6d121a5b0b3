//! A minimal PKCS#12 (RFC 7292) writer: one private key and its chain.
//!
//! Layout (what OpenSSL 3 writes with `-certpbe NONE`, readable by OpenSSL,
//! Python `cryptography`, Java, browsers):
//!
//! - an unencrypted `data` ContentInfo with one CertBag per certificate
//!   (leaf first, with friendlyName and localKeyId attributes);
//! - a `data` ContentInfo with one pkcs8ShroudedKeyBag: the key as a PKCS#8
//!   `EncryptedPrivateKeyInfo` under PBES2 (PBKDF2-HMAC-SHA256,
//!   [`KEY_PBKDF2_ITERATIONS`] iterations, AES-256-CBC);
//! - a MAC: HMAC-SHA256 keyed by the PKCS#12 KDF (appendix B.2, ID 3) over
//!   the AuthenticatedSafe, [`MAC_ITERATIONS`] iterations.
//!
//! Passwords are limited to printable ASCII so the PBES2 (raw bytes) and MAC
//! (BMPString) encodings cannot disagree between implementations.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use yasna::models::ObjectIdentifier;
use yasna::{DERWriter, Tag};
use zeroize::Zeroizing;

use crate::Error;

/// PBKDF2 iterations protecting the key bag (OpenSSL 3 uses 2048; more
/// slows offline guessing of the bundle password).
pub const KEY_PBKDF2_ITERATIONS: u32 = 100_000;
/// Iterations of the PKCS#12 MAC key derivation (OpenSSL's default).
pub const MAC_ITERATIONS: u64 = 2048;

const OID_DATA: &[u64] = &[1, 2, 840, 113549, 1, 7, 1];
const OID_CERT_BAG: &[u64] = &[1, 2, 840, 113549, 1, 12, 10, 1, 3];
const OID_SHROUDED_KEY_BAG: &[u64] = &[1, 2, 840, 113549, 1, 12, 10, 1, 2];
const OID_X509_CERT: &[u64] = &[1, 2, 840, 113549, 1, 9, 22, 1];
const OID_FRIENDLY_NAME: &[u64] = &[1, 2, 840, 113549, 1, 9, 20];
const OID_LOCAL_KEY_ID: &[u64] = &[1, 2, 840, 113549, 1, 9, 21];
const OID_SHA256: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 2, 1];

fn oid(c: &[u64]) -> ObjectIdentifier {
    ObjectIdentifier::from_slice(c)
}

/// Builds a PKCS#12 file from a PKCS#8 private key (DER), the certificate
/// chain (DER, leaf first) and a friendly name.
pub fn build(
    key_pkcs8: &[u8],
    chain: &[&[u8]],
    friendly_name: &str,
    password: &str,
) -> Result<Vec<u8>, Error> {
    if password.is_empty() || !password.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(Error::Invalid(
            "a PKCS#12 password must be non-empty printable ASCII".into(),
        ));
    }
    let leaf = chain
        .first()
        .ok_or_else(|| Error::Invalid("empty certificate chain".into()))?;
    let local_key_id: [u8; 20] = {
        let d = Sha256::digest(leaf);
        let mut id = [0u8; 20];
        id.copy_from_slice(&d[..20]);
        id
    };

    let mut salt = [0u8; 16];
    let mut iv = [0u8; 16];
    crate::random(&mut salt)?;
    crate::random(&mut iv)?;
    let params =
        pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(KEY_PBKDF2_ITERATIONS, &salt, &iv)
            .map_err(|e| Error::Crypto(format!("PBES2 parameters: {e}")))?;
    let info = pkcs8::PrivateKeyInfo::try_from(key_pkcs8)
        .map_err(|e| Error::Crypto(format!("private key is not PKCS#8: {e}")))?;
    let shrouded = info
        .encrypt_with_params(params, password.as_bytes())
        .map_err(|e| Error::Crypto(format!("cannot encrypt the key bag: {e}")))?;

    let attrs = |w: DERWriter| {
        w.write_set_of(|w| {
            w.next().write_sequence(|w| {
                w.next().write_oid(&oid(OID_FRIENDLY_NAME));
                w.next()
                    .write_set_of(|w| w.next().write_bmp_string(friendly_name));
            });
            w.next().write_sequence(|w| {
                w.next().write_oid(&oid(OID_LOCAL_KEY_ID));
                w.next()
                    .write_set_of(|w| w.next().write_bytes(&local_key_id));
            });
        })
    };
    let certs = yasna::construct_der(|w| {
        w.write_sequence_of(|w| {
            for (i, cert) in chain.iter().enumerate() {
                w.next().write_sequence(|w| {
                    w.next().write_oid(&oid(OID_CERT_BAG));
                    w.next().write_tagged(Tag::context(0), |w| {
                        w.write_sequence(|w| {
                            w.next().write_oid(&oid(OID_X509_CERT));
                            w.next()
                                .write_tagged(Tag::context(0), |w| w.write_bytes(cert));
                        })
                    });
                    if i == 0 {
                        attrs(w.next());
                    }
                });
            }
        })
    });
    let keys = Zeroizing::new(yasna::construct_der(|w| {
        w.write_sequence_of(|w| {
            w.next().write_sequence(|w| {
                w.next().write_oid(&oid(OID_SHROUDED_KEY_BAG));
                w.next()
                    .write_tagged(Tag::context(0), |w| w.write_der(shrouded.as_bytes()));
                attrs(w.next());
            })
        })
    }));
    let data_info = |w: DERWriter, content: &[u8]| {
        w.write_sequence(|w| {
            w.next().write_oid(&oid(OID_DATA));
            w.next()
                .write_tagged(Tag::context(0), |w| w.write_bytes(content));
        })
    };
    let auth_safe = yasna::construct_der(|w| {
        w.write_sequence_of(|w| {
            data_info(w.next(), &certs);
            data_info(w.next(), &keys);
        })
    });

    let mut mac_salt = [0u8; 16];
    crate::random(&mut mac_salt)?;
    let mac_key = pkcs12_kdf(password, &mac_salt, 3, MAC_ITERATIONS);
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&*mac_key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(&auth_safe);
    let mac = mac.finalize().into_bytes();

    Ok(yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_u8(3);
            data_info(w.next(), &auth_safe);
            w.next().write_sequence(|w| {
                w.next().write_sequence(|w| {
                    w.next().write_sequence(|w| {
                        w.next().write_oid(&oid(OID_SHA256));
                        w.next().write_null();
                    });
                    w.next().write_bytes(&mac);
                });
                w.next().write_bytes(&mac_salt);
                w.next().write_u64(MAC_ITERATIONS);
            });
        })
    }))
}

/// The PKCS#12 key derivation (RFC 7292 appendix B.2) with SHA-256, for
/// one 32-byte output (u = 32, v = 64): one round of the outer loop.
fn pkcs12_kdf(password: &str, salt: &[u8], id: u8, iterations: u64) -> Zeroizing<[u8; 32]> {
    const V: usize = 64;
    // BMPString, big-endian, with a two-byte NUL terminator.
    let mut pw = Zeroizing::new(Vec::with_capacity(password.len() * 2 + 2));
    for u in password.encode_utf16() {
        pw.extend_from_slice(&u.to_be_bytes());
    }
    pw.extend_from_slice(&[0, 0]);
    let fill = |src: &[u8]| -> Vec<u8> {
        if src.is_empty() {
            return Vec::new();
        }
        let n = V * src.len().div_ceil(V);
        src.iter().copied().cycle().take(n).collect()
    };
    let mut i = Zeroizing::new(fill(salt));
    i.extend_from_slice(&fill(&pw));
    let mut h = Sha256::new();
    h.update([id; V]);
    h.update(&*i);
    let mut a: [u8; 32] = h.finalize().into();
    for _ in 1..iterations {
        a = Sha256::digest(a).into();
    }
    Zeroizing::new(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_ascii_or_empty_passwords_are_refused() {
        assert!(build(b"", &[b"x"], "n", "").is_err());
        assert!(build(b"", &[b"x"], "n", "pässword").is_err());
        assert!(build(b"", &[], "n", "password").is_err());
    }

    #[test]
    fn kdf_depends_on_every_input() {
        let a = pkcs12_kdf("pw", b"salt", 3, 10);
        assert_ne!(*a, *pkcs12_kdf("pw", b"salt", 3, 11));
        assert_ne!(*a, *pkcs12_kdf("pw", b"salu", 3, 10));
        assert_ne!(*a, *pkcs12_kdf("px", b"salt", 3, 10));
        assert_ne!(*a, *pkcs12_kdf("pw", b"salt", 1, 10));
    }
}
