//! Streaming authenticated encryption for files of any size, in bounded memory.
//!
//! # Format (version 1)
//!
//! ```text
//! offset  size  field
//!      0     8  magic "PLSDSTRM"
//!      8     1  version = 1
//!      9     1  algorithm = 1 (ChaCha20-Poly1305)
//!     10     2  reserved, zero
//!     12     4  chunk size C (u32 big-endian): plaintext bytes per chunk,
//!               MIN_CHUNK_SIZE ..= MAX_CHUNK_SIZE
//!     16    32  salt (random per file)
//!     48     …  chunks: ciphertext | 16-byte Poly1305 tag
//! ```
//!
//! The file key is `HMAC-SHA256(master key, "palisade stream v1" || header)`
//! — a fresh key per file (the salt), bound to every header field. Chunk `i`
//! (from 0) is sealed with nonce `i as u64 (big-endian) || 00 00 00 || last`,
//! where `last` is 1 on the final chunk and 0 otherwise (the STREAM
//! construction of Hoang, Reyhanitabar, Rogaway and Vizár), and the 48-byte
//! header as associated data. Every chunk but the last holds exactly `C`
//! plaintext bytes; the last holds fewer (possibly none), so an encrypted
//! file always ends with a chunk sealed as final. Hence:
//!
//! - a bit flip anywhere fails a tag (header flips change the key and the AAD);
//! - reordering or dropping chunks fails (the counter is in the nonce);
//! - truncation at a chunk boundary leaves a file whose last chunk was not
//!   sealed as final, and truncation inside a chunk fails its tag; both are
//!   reported;
//! - data appended after the final chunk is reported.
//!
//! Memory: one chunk buffer (default [`DEFAULT_CHUNK_SIZE`]), whatever the
//! file size. Decryption writes plaintext chunk by chunk as each one
//! verifies: on error, the caller must discard what was written (the CLI
//! writes to a temporary file and renames it only on success).
//!
//! ```
//! use crypt::stream;
//!
//! let key = [7u8; 32];
//! let mut sealed = Vec::new();
//! stream::encrypt(&key, &b"large data"[..], &mut sealed)?;
//! let mut plain = Vec::new();
//! stream::decrypt(&[&key], &sealed[..], &mut plain)?;
//! assert_eq!(plain, b"large data");
//! sealed.truncate(sealed.len() - 1);
//! assert!(stream::decrypt(&[&key], &sealed[..], &mut Vec::new()).is_err());
//! # Ok::<(), crypt::Error>(())
//! ```

use std::io::{Read, Write};

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce, Tag};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::Error;

/// First bytes of every encrypted stream.
pub const MAGIC: &[u8; 8] = b"PLSDSTRM";
/// The format version this code writes and reads.
pub const VERSION: u8 = 1;
/// Algorithm id of ChaCha20-Poly1305.
pub const ALG_CHACHA20_POLY1305: u8 = 1;
/// Header length in bytes.
pub const HEADER_LEN: usize = 48;
/// Tag length per chunk.
pub const TAG_LEN: usize = 16;
/// Default plaintext bytes per chunk: 64 KiB (memory per stream ≈ one chunk).
pub const DEFAULT_CHUNK_SIZE: u32 = 64 << 10;
/// Smallest chunk size accepted: 1 KiB (smaller only wastes tags).
pub const MIN_CHUNK_SIZE: u32 = 1 << 10;
/// Largest chunk size accepted: 16 MiB. Bounds the buffer a hostile header
/// can make the decryptor allocate.
pub const MAX_CHUNK_SIZE: u32 = 16 << 20;

const KDF_LABEL: &[u8] = b"palisade stream v1";

/// Encrypts everything `reader` yields into `writer` with the default chunk
/// size; returns the number of plaintext bytes.
pub fn encrypt<R: Read, W: Write>(key: &[u8; 32], reader: R, writer: W) -> Result<u64, Error> {
    encrypt_with_chunk_size(key, DEFAULT_CHUNK_SIZE, reader, writer)
}

/// [`encrypt`] with an explicit chunk size (between [`MIN_CHUNK_SIZE`] and
/// [`MAX_CHUNK_SIZE`]).
pub fn encrypt_with_chunk_size<R: Read, W: Write>(
    key: &[u8; 32],
    chunk_size: u32,
    mut reader: R,
    mut writer: W,
) -> Result<u64, Error> {
    check_chunk_size(chunk_size)?;
    let mut header = [0u8; HEADER_LEN];
    header[..8].copy_from_slice(MAGIC);
    header[8] = VERSION;
    header[9] = ALG_CHACHA20_POLY1305;
    header[12..16].copy_from_slice(&chunk_size.to_be_bytes());
    crate::random(&mut header[16..48])?;
    let aead = file_cipher(key, &header);
    writer
        .write_all(&header)
        .map_err(|e| Error::io("cannot write the encrypted stream", e))?;

    let c = chunk_size as usize;
    let mut buf = Zeroizing::new(vec![0u8; c]);
    let mut total = 0u64;
    let mut index = 0u64;
    loop {
        let n =
            read_full(&mut reader, &mut buf).map_err(|e| Error::io("cannot read the input", e))?;
        let last = n < c;
        let tag = aead
            .encrypt_in_place_detached(&nonce(index, last), &header, &mut buf[..n])
            .map_err(|_| Error::Limit("chunk too large for the cipher".into()))?;
        writer
            .write_all(&buf[..n])
            .and_then(|()| writer.write_all(&tag))
            .map_err(|e| Error::io("cannot write the encrypted stream", e))?;
        total += n as u64;
        if last {
            break;
        }
        index += 1;
    }
    writer
        .flush()
        .map_err(|e| Error::io("cannot write the encrypted stream", e))?;
    Ok(total)
}

/// Decrypts a stream made by [`encrypt`] with any of `keys`; returns the
/// number of plaintext bytes. On error, discard what was written.
pub fn decrypt<R: Read, W: Write>(
    keys: &[&[u8; 32]],
    mut reader: R,
    mut writer: W,
) -> Result<u64, Error> {
    let mut header = [0u8; HEADER_LEN];
    let got =
        read_full(&mut reader, &mut header).map_err(|e| Error::io("cannot read the input", e))?;
    if got < HEADER_LEN || &header[..8] != MAGIC {
        return Err(Error::StreamFormat("missing or short header".into()));
    }
    if header[8] != VERSION {
        return Err(Error::StreamFormat(format!(
            "version {} (this build reads version {VERSION})",
            header[8]
        )));
    }
    if header[9] != ALG_CHACHA20_POLY1305 || header[10..12] != [0, 0] {
        return Err(Error::StreamFormat(format!(
            "unknown algorithm {}",
            header[9]
        )));
    }
    let mut cs = [0u8; 4];
    cs.copy_from_slice(&header[12..16]);
    let chunk_size = u32::from_be_bytes(cs);
    check_chunk_size(chunk_size).map_err(|e| Error::StreamFormat(e.to_string()))?;

    let c = chunk_size as usize;
    // One byte more than a full chunk: a read that fills it all tells a
    // non-final chunk (followed by more data) from a final one.
    let mut buf = Zeroizing::new(vec![0u8; c + TAG_LEN + 1]);
    let mut have =
        read_full(&mut reader, &mut buf[..]).map_err(|e| Error::io("cannot read the input", e))?;

    // Find the key: the first that opens chunk 0.
    let mut chosen = None;
    for key in keys {
        let aead = file_cipher(key, &header);
        let (n, last) = frame(have, c);
        check_frame(n, last, c, 0)?;
        let mut trial = Zeroizing::new(buf[..n].to_vec());
        if open(&aead, &header, 0, last, &mut trial).is_ok() {
            chosen = Some(aead);
            break;
        }
    }
    let Some(aead) = chosen else {
        return Err(Error::StreamAuth {
            chunk: 0,
            reason: "wrong key or altered data",
        });
    };

    let mut total = 0u64;
    let mut index = 0u64;
    loop {
        let (n, last) = frame(have, c);
        check_frame(n, last, c, index)?;
        let pt_len =
            open(&aead, &header, index, last, &mut buf[..n]).map_err(|_| Error::StreamAuth {
                chunk: index,
                reason: if last {
                    "altered, reordered or truncated"
                } else {
                    "altered or reordered"
                },
            })?;
        writer
            .write_all(&buf[..pt_len])
            .map_err(|e| Error::io("cannot write the output", e))?;
        total += pt_len as u64;
        if last {
            break;
        }
        // Keep the look-ahead byte, then refill behind it.
        buf[0] = buf[n];
        have = 1 + read_full(&mut reader, &mut buf[1..])
            .map_err(|e| Error::io("cannot read the input", e))?;
        index += 1;
    }
    let mut extra = [0u8; 1];
    if read_full(&mut reader, &mut extra).map_err(|e| Error::io("cannot read the input", e))? != 0 {
        return Err(Error::StreamAuth {
            chunk: index + 1,
            reason: "data after the final chunk",
        });
    }
    writer
        .flush()
        .map_err(|e| Error::io("cannot write the output", e))?;
    Ok(total)
}

/// Given `have` buffered bytes (at most `c + TAG_LEN + 1`), the length of
/// the current chunk and whether it is the final one.
fn frame(have: usize, c: usize) -> (usize, bool) {
    if have > c + TAG_LEN {
        (c + TAG_LEN, false)
    } else {
        (have, true)
    }
}

/// A stream that ends without a final chunk was truncated: the final chunk
/// is never full, and always holds at least its tag.
fn check_frame(n: usize, last: bool, c: usize, index: u64) -> Result<(), Error> {
    if n < TAG_LEN {
        return Err(Error::StreamAuth {
            chunk: index,
            reason: "truncated (no final chunk)",
        });
    }
    if last && n == c + TAG_LEN {
        return Err(Error::StreamAuth {
            chunk: index + 1,
            reason: "truncated (no final chunk)",
        });
    }
    Ok(())
}

/// Verifies and decrypts `chunk` (ciphertext | tag) in place; returns the
/// plaintext length.
fn open(
    aead: &ChaCha20Poly1305,
    header: &[u8],
    index: u64,
    last: bool,
    chunk: &mut [u8],
) -> Result<usize, ()> {
    let pt_len = chunk.len() - TAG_LEN;
    let (data, tag) = chunk.split_at_mut(pt_len);
    let tag = Tag::clone_from_slice(tag);
    aead.decrypt_in_place_detached(&nonce(index, last), header, data, &tag)
        .map_err(|_| ())?;
    Ok(pt_len)
}

fn check_chunk_size(c: u32) -> Result<(), Error> {
    if (MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&c) {
        Ok(())
    } else {
        Err(Error::Limit(format!(
            "chunk size {c} outside {MIN_CHUNK_SIZE}..={MAX_CHUNK_SIZE}"
        )))
    }
}

fn file_cipher(master: &[u8; 32], header: &[u8; HEADER_LEN]) -> ChaCha20Poly1305 {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(master)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    m.update(KDF_LABEL);
    m.update(header);
    let k = Zeroizing::new(<[u8; 32]>::from(m.finalize().into_bytes()));
    ChaCha20Poly1305::new((&*k).into())
}

fn nonce(index: u64, last: bool) -> Nonce {
    let mut n = [0u8; 12];
    n[..8].copy_from_slice(&index.to_be_bytes());
    n[11] = u8::from(last);
    n.into()
}

/// Reads until `buf` is full or the reader ends; returns the bytes read.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seal(data: &[u8], chunk: u32) -> Vec<u8> {
        let mut out = Vec::new();
        encrypt_with_chunk_size(&[1; 32], chunk, data, &mut out).unwrap();
        out
    }

    fn unseal(data: &[u8]) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        decrypt(&[&[1; 32]], data, &mut out).map(|_| out)
    }

    #[test]
    fn round_trips_at_every_boundary() {
        for len in [0usize, 1, 1023, 1024, 1025, 2048, 5000] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let sealed = seal(&data, 1024);
            // Header + full chunks + one final (short) chunk.
            assert_eq!(sealed.len(), HEADER_LEN + len + (len / 1024 + 1) * TAG_LEN);
            assert_eq!(unseal(&sealed).unwrap(), data, "len {len}");
        }
    }

    #[test]
    fn truncation_at_chunk_boundary_is_detected() {
        let data = vec![9u8; 4096];
        let sealed = seal(&data, 1024);
        for cut in [
            HEADER_LEN,
            HEADER_LEN + 1040,
            HEADER_LEN + 2 * 1040,
            sealed.len() - TAG_LEN,
        ] {
            let e = unseal(&sealed[..cut]).unwrap_err();
            assert!(matches!(e, Error::StreamAuth { .. }), "cut {cut}: {e}");
        }
    }

    #[test]
    fn reordered_chunks_and_appended_data_are_detected() {
        let data: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        let sealed = seal(&data, 1024);
        let mut swapped = sealed.clone();
        let (a, b) = (HEADER_LEN, HEADER_LEN + 1040);
        let first = sealed[a..b].to_vec();
        swapped[a..b].copy_from_slice(&sealed[b..b + 1040]);
        swapped[b..b + 1040].copy_from_slice(&first);
        assert!(unseal(&swapped).is_err());
        let mut appended = sealed.clone();
        appended.push(0);
        assert!(unseal(&appended).is_err());
        let mut dup = sealed.clone();
        dup.extend_from_slice(&sealed[sealed.len() - 100..]);
        assert!(unseal(&dup).is_err());
    }

    #[test]
    fn hostile_headers_are_refused_before_allocating() {
        let mut sealed = seal(b"x", 1024);
        sealed[12..16].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(unseal(&sealed), Err(Error::StreamFormat(_))));
        assert!(matches!(unseal(b"PLSD"), Err(Error::StreamFormat(_))));
        let mut v2 = seal(b"x", 1024);
        v2[8] = 2;
        assert!(matches!(unseal(&v2), Err(Error::StreamFormat(_))));
    }

    #[test]
    fn second_key_decrypts_and_wrong_key_fails() {
        let sealed = seal(b"rotate me", 1024);
        let mut out = Vec::new();
        decrypt(&[&[2; 32], &[1; 32]], &sealed[..], &mut out).unwrap();
        assert_eq!(out, b"rotate me");
        assert!(decrypt(&[&[2; 32]], &sealed[..], &mut Vec::new()).is_err());
    }
}
