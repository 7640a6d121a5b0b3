//! How the engine reaches files (`Include`, `@pmFromFile`, `@ipMatchFromFile`).

use std::io;
use std::path::{Path, PathBuf};

/// The only way the engine reads files. Tests and fuzzers use an in-memory
/// loader; the gateway uses [`FsLoader`].
pub trait FileLoader: Send + Sync {
    /// Reads a whole file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Expands a glob (`*`, `?` in the last path components) into the matching
    /// files, sorted. A pattern without wildcards returns itself.
    fn glob(&self, pattern: &Path) -> io::Result<Vec<PathBuf>>;
}

/// Reads from the real filesystem.
#[cfg(feature = "fs")]
#[derive(Debug, Default, Clone, Copy)]
pub struct FsLoader;

#[cfg(feature = "fs")]
impl FileLoader for FsLoader {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn glob(&self, pattern: &Path) -> io::Result<Vec<PathBuf>> {
        let text = pattern.to_string_lossy();
        if !text.contains(['*', '?']) {
            return Ok(vec![pattern.to_path_buf()]);
        }
        let dir = pattern.parent().unwrap_or(Path::new("."));
        let name = pattern
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let file_name = entry.file_name();
            if wildcard_match(name.as_bytes(), file_name.to_string_lossy().as_bytes()) {
                out.push(entry.path());
            }
        }
        out.sort();
        Ok(out)
    }
}

/// Shell-style match of `*` and `?` (no character classes).
#[cfg(feature = "fs")]
fn wildcard_match(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while n < name.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == name[n]) {
            p += 1;
            n += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some(p);
            mark = n;
            p += 1;
        } else if let Some(s) = star {
            p = s + 1;
            mark += 1;
            n = mark;
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(all(test, feature = "fs"))]
mod tests {
    use super::wildcard_match;

    #[test]
    fn wildcards() {
        assert!(wildcard_match(
            b"*.conf",
            b"REQUEST-901-INITIALIZATION.conf"
        ));
        assert!(!wildcard_match(b"*.conf", b"crs.conf.example"));
        assert!(wildcard_match(b"REQUEST-9??-*.conf", b"REQUEST-901-X.conf"));
        assert!(wildcard_match(b"*", b""));
    }
}
