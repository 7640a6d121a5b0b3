//! Directory integrity manifests.
//!
//! # Format (text, UTF-8, one record per line)
//!
//! ```text
//! palisade-manifest v1
//! algorithm sha256
//! <hex digest> <size in bytes> <relative/path>
//! …
//! hmac-sha256 <hex>          (optional last line)
//! ```
//!
//! Paths are relative to the manifest's directory, `/`-separated, sorted by
//! bytes, unique, and never absolute, empty, `.` or `..` components, nor
//! containing control characters: a manifest naming such a path is refused
//! as a whole, so verification can never read outside the directory.
//! Symbolic links and special files are not followed nor listed (they are
//! returned as `skipped`). The optional signature is HMAC-SHA256, keyed with
//! a 32-byte key (the raw bytes of a `crypt` key), over every byte of the
//! file before the `hmac-sha256` line.
//!
//! ```no_run
//! use crypt::hash::Algorithm;
//! use crypt::manifest::Manifest;
//! use std::path::Path;
//!
//! let (m, _skipped) = Manifest::create(Path::new("site"), Algorithm::Sha256, &[])?;
//! let text = m.to_text(Some(&[0u8; 32]));
//! let parsed = Manifest::parse(&text, Some(&[0u8; 32]))?;
//! let report = parsed.verify_dir(Path::new("site"), &[])?;
//! assert!(report.is_clean());
//! # Ok::<(), crypt::Error>(())
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::hash::{digest_file, to_hex, Algorithm};
use crate::Error;

/// First line of every manifest.
pub const HEADER: &str = "palisade-manifest v1";
/// Largest manifest accepted by [`Manifest::parse`] callers that read files:
/// 256 MiB (bounds memory on a hostile manifest).
pub const MAX_MANIFEST_BYTES: u64 = 256 << 20;
/// Most files in one manifest or directory walk: 1,000,000 (bounds memory
/// and time on a hostile tree or manifest).
pub const MAX_ENTRIES: usize = 1_000_000;
/// Deepest directory nesting walked: 64 (bounds recursion).
pub const MAX_DEPTH: usize = 64;
/// Longest relative path accepted: 4096 bytes (PATH_MAX on Linux).
pub const MAX_PATH_LEN: usize = 4096;

const SIG_PREFIX: &str = "hmac-sha256 ";

/// One file in a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative, `/`-separated path.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Lowercase hex digest.
    pub digest: String,
}

/// A directory's files with sizes and digests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The digest algorithm of every entry.
    pub algorithm: Algorithm,
    /// Entries sorted by path.
    pub entries: Vec<Entry>,
    /// Whether the parsed text carried a signature that was verified.
    pub signature_verified: bool,
}

/// What [`Manifest::verify_dir`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Files on disk that the manifest does not list.
    pub added: Vec<String>,
    /// Files the manifest lists that are missing on disk.
    pub removed: Vec<String>,
    /// Files whose size or digest differ.
    pub changed: Vec<String>,
    /// Files that match.
    pub unchanged: usize,
    /// Symbolic links and special files that were not examined.
    pub skipped: Vec<String>,
}

impl Report {
    /// True when nothing was added, removed or changed.
    pub fn is_clean(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

impl Manifest {
    /// Walks `dir` and hashes every regular file, except the `exclude`d
    /// paths (e.g. the manifest itself when written inside `dir`). Returns
    /// the manifest and the skipped symlinks/special files.
    pub fn create(
        dir: &Path,
        algorithm: Algorithm,
        exclude: &[PathBuf],
    ) -> Result<(Manifest, Vec<String>), Error> {
        let walk = walk(dir, exclude)?;
        let mut entries = Vec::with_capacity(walk.files.len());
        for (rel, _) in walk.files {
            let (digest, size) = digest_file(algorithm, &dir.join(&rel))?;
            entries.push(Entry {
                path: rel,
                size,
                digest,
            });
        }
        Ok((
            Manifest {
                algorithm,
                entries,
                signature_verified: false,
            },
            walk.skipped,
        ))
    }

    /// The text form; with a key, a signature line is appended.
    pub fn to_text(&self, key: Option<&[u8; 32]>) -> String {
        let mut s = format!("{HEADER}\nalgorithm {}\n", self.algorithm);
        for e in &self.entries {
            s.push_str(&format!("{} {} {}\n", e.digest, e.size, e.path));
        }
        if let Some(k) = key {
            let sig = to_hex(&sign(k, s.as_bytes()));
            s.push_str(SIG_PREFIX);
            s.push_str(&sig);
            s.push('\n');
        }
        s
    }

    /// Parses a manifest. With a key, the manifest must be signed with it;
    /// without one, a signature line is accepted but not checked.
    pub fn parse(text: &str, key: Option<&[u8; 32]>) -> Result<Manifest, Error> {
        let bad = |line: usize, what: &str| Error::Manifest(format!("line {line}: {what}"));
        let (body, sig) = match text.rfind(SIG_PREFIX) {
            Some(i) if i == 0 || text.as_bytes()[i - 1] == b'\n' => {
                (&text[..i], Some(text[i + SIG_PREFIX.len()..].trim_end()))
            }
            _ => (text, None),
        };
        let mut verified = false;
        match (key, sig) {
            (Some(k), Some(sig)) => {
                let want = to_hex(&sign(k, body.as_bytes()));
                use subtle::ConstantTimeEq;
                if !bool::from(want.as_bytes().ct_eq(sig.as_bytes())) {
                    return Err(Error::Manifest(
                        "signature does not verify (altered, or another key)".into(),
                    ));
                }
                verified = true;
            }
            (Some(_), None) => {
                return Err(Error::Manifest(
                    "a key was given but the manifest is not signed".into(),
                ))
            }
            _ => {}
        }
        let mut lines = body.lines().enumerate().map(|(i, l)| (i + 1, l));
        match lines.next() {
            Some((_, HEADER)) => {}
            _ => return Err(bad(1, &format!("expected {HEADER:?}"))),
        }
        let algorithm = match lines.next() {
            Some((_, l)) if l.starts_with("algorithm ") => l["algorithm ".len()..]
                .parse::<Algorithm>()
                .map_err(|e| bad(2, &e.to_string()))?,
            _ => return Err(bad(2, "expected \"algorithm <name>\"")),
        };
        let mut entries: Vec<Entry> = Vec::new();
        for (n, line) in lines {
            if entries.len() >= MAX_ENTRIES {
                return Err(Error::Limit(format!(
                    "manifest lists more than {MAX_ENTRIES} files"
                )));
            }
            let mut it = line.splitn(3, ' ');
            let (Some(digest), Some(size), Some(path)) = (it.next(), it.next(), it.next()) else {
                return Err(bad(n, "expected \"<digest> <size> <path>\""));
            };
            if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad(n, "digest is not 64 hex digits"));
            }
            let size: u64 = size.parse().map_err(|_| bad(n, "size is not a number"))?;
            check_path(path).map_err(|why| bad(n, &format!("path {path:?} {why}")))?;
            if let Some(prev) = entries.last() {
                if prev.path.as_bytes() >= path.as_bytes() {
                    return Err(bad(n, "paths are not sorted and unique"));
                }
            }
            entries.push(Entry {
                path: path.to_string(),
                size,
                digest: digest.to_ascii_lowercase(),
            });
        }
        Ok(Manifest {
            algorithm,
            entries,
            signature_verified: verified,
        })
    }

    /// Compares the manifest with the files under `dir` now.
    pub fn verify_dir(&self, dir: &Path, exclude: &[PathBuf]) -> Result<Report, Error> {
        let walk = walk(dir, exclude)?;
        let mut report = Report {
            skipped: walk.skipped,
            ..Report::default()
        };
        let mut on_disk = walk.files;
        for e in &self.entries {
            match on_disk.remove(&e.path) {
                None => report.removed.push(e.path.clone()),
                Some(size) if size != e.size => report.changed.push(e.path.clone()),
                Some(_) => {
                    let (digest, size) = digest_file(self.algorithm, &dir.join(&e.path))?;
                    if size == e.size && digest == e.digest {
                        report.unchanged += 1;
                    } else {
                        report.changed.push(e.path.clone());
                    }
                }
            }
        }
        report.added = on_disk.into_keys().collect();
        Ok(report)
    }
}

fn sign(key: &[u8; 32], data: &[u8]) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    m.update(data);
    m.finalize().into_bytes().into()
}

/// Why a manifest path is refused, if it is.
fn check_path(p: &str) -> Result<(), &'static str> {
    if p.is_empty() || p.len() > MAX_PATH_LEN {
        return Err("is empty or too long");
    }
    if p.starts_with('/') {
        return Err("is absolute");
    }
    if p.chars().any(char::is_control) {
        return Err("contains a control character");
    }
    if p.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        return Err("escapes the directory or has an empty component");
    }
    Ok(())
}

struct Walk {
    /// Relative path → size, sorted by path bytes.
    files: BTreeMap<String, u64>,
    skipped: Vec<String>,
}

fn walk(dir: &Path, exclude: &[PathBuf]) -> Result<Walk, Error> {
    let meta = std::fs::metadata(dir)
        .map_err(|e| Error::io(format!("cannot read {}", dir.display()), e))?;
    if !meta.is_dir() {
        return Err(Error::Manifest(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    let exclude: Vec<PathBuf> = exclude
        .iter()
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .collect();
    let mut w = Walk {
        files: BTreeMap::new(),
        skipped: Vec::new(),
    };
    walk_into(dir, "", 0, &exclude, &mut w)?;
    Ok(w)
}

fn walk_into(
    dir: &Path,
    prefix: &str,
    depth: usize,
    exclude: &[PathBuf],
    w: &mut Walk,
) -> Result<(), Error> {
    if depth > MAX_DEPTH {
        return Err(Error::Limit(format!(
            "directory nesting deeper than {MAX_DEPTH} at {}",
            dir.display()
        )));
    }
    let ctx = |e| Error::io(format!("cannot read {}", dir.display()), e);
    for ent in std::fs::read_dir(dir).map_err(ctx)? {
        let ent = ent.map_err(ctx)?;
        let name = ent.file_name();
        let Some(name) = name.to_str() else {
            return Err(Error::Manifest(format!(
                "{}: file name is not UTF-8",
                ent.path().display()
            )));
        };
        let rel = if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}/{name}")
        };
        if check_path(&rel).is_err() {
            return Err(Error::Manifest(format!(
                "{}: name cannot be recorded (control character or too long)",
                ent.path().display()
            )));
        }
        let ft = ent.file_type().map_err(ctx)?;
        if ft.is_dir() {
            walk_into(&ent.path(), &rel, depth + 1, exclude, w)?;
        } else if ft.is_file() {
            if !exclude.is_empty() {
                if let Ok(c) = std::fs::canonicalize(ent.path()) {
                    if exclude.contains(&c) {
                        continue;
                    }
                }
            }
            if w.files.len() >= MAX_ENTRIES {
                return Err(Error::Limit(format!(
                    "more than {MAX_ENTRIES} files under the directory"
                )));
            }
            let size = ent.metadata().map_err(ctx)?.len();
            w.files.insert(rel, size);
        } else {
            w.skipped.push(rel);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_paths_are_refused() {
        let d = "0".repeat(64);
        for p in [
            "../x",
            "/etc/passwd",
            "a/../../b",
            "a//b",
            "./a",
            "a\nb",
            "a/.",
        ] {
            let text = format!("{HEADER}\nalgorithm sha256\n{d} 1 {p}\n");
            assert!(Manifest::parse(&text, None).is_err(), "{p:?}");
        }
        let ok = format!("{HEADER}\nalgorithm sha256\n{d} 1 a b/c..d\n");
        assert_eq!(
            Manifest::parse(&ok, None).unwrap().entries[0].path,
            "a b/c..d"
        );
    }

    #[test]
    fn unsorted_or_duplicate_entries_are_refused() {
        let d = "0".repeat(64);
        let dup = format!("{HEADER}\nalgorithm sha256\n{d} 1 a\n{d} 1 a\n");
        assert!(Manifest::parse(&dup, None).is_err());
        let uns = format!("{HEADER}\nalgorithm sha256\n{d} 1 b\n{d} 1 a\n");
        assert!(Manifest::parse(&uns, None).is_err());
    }

    #[test]
    fn signature_binds_every_byte() {
        let m = Manifest {
            algorithm: Algorithm::Sha256,
            entries: vec![Entry {
                path: "a".into(),
                size: 1,
                digest: "a".repeat(64),
            }],
            signature_verified: false,
        };
        let k = [5u8; 32];
        let text = m.to_text(Some(&k));
        assert!(Manifest::parse(&text, Some(&k)).unwrap().signature_verified);
        assert!(Manifest::parse(&text, Some(&[6u8; 32])).is_err());
        let altered = text.replacen(" 1 a", " 2 a", 1);
        assert!(Manifest::parse(&altered, Some(&k)).is_err());
        assert!(Manifest::parse(&m.to_text(None), Some(&k)).is_err());
    }
}
