//! OWASP CRS installations: find one, download and install one.
//!
//! ```text
//!  install:  --from URL|FILE (default: GitHub tag archive of --version)
//!              │  HTTP(S) GET, ≤ MAX_REDIRECTS redirects, ≤ MAX_ARCHIVE_BYTES
//!              ▼
//!            SHA-256 check (--sha256 HEX, else <archive>.sha256 next to it)
//!              ▼
//!            unpack .tar.gz into <data_dir>/crs/.staging-<version>
//!              (no absolute paths, no `..`, no escaping links, no devices,
//!               ≤ MAX_UNPACKED_BYTES, ≤ MAX_ENTRIES)
//!              ▼
//!            crs-setup.conf from crs-setup.conf.example; rules compile?
//!              ▼
//!            rename to <data_dir>/crs/<version>; symlink `current` swapped
//!            atomically (rename of a fresh link over the old one)
//!
//!  locate:   configured path → <data_dir>/crs/current → /usr/share/modsecurity-crs
//! ```

use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use seclang::{FsLoader, RulesetBuilder};
use sha2::{Digest, Sha256};

use crate::http;
use crate::Error;

/// CRS release installed when `--version` is not given.
pub const DEFAULT_VERSION: &str = "4.28.0";

/// Where Debian's `modsecurity-crs` package puts the CRS.
pub const DEBIAN_DIR: &str = "/usr/share/modsecurity-crs";

/// Largest archive downloaded or read (default 32 MiB; a CRS release is
/// about 1 MiB): bounds memory against a hostile or mistaken server.
pub const MAX_ARCHIVE_BYTES: u64 = 32 * 1024 * 1024;

/// Largest total size of the files unpacked from an archive (default
/// 128 MiB; the CRS unpacks to about 5 MiB): bounds disk use against a
/// decompression bomb.
pub const MAX_UNPACKED_BYTES: u64 = 128 * 1024 * 1024;

/// Most entries an archive may hold (default 20,000; the CRS has about
/// 2,000): bounds inode use and time on a hostile archive.
pub const MAX_ENTRIES: usize = 20_000;

/// Largest checksum file read (default 4 KiB).
pub const MAX_CHECKSUM_BYTES: u64 = 4096;

/// Redirects followed per download (default 5; GitHub uses 1-2): bounds a
/// redirect loop.
pub const MAX_REDIRECTS: usize = 5;

/// Time allowed to connect (default 10 s).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Time allowed for one whole download (default 120 s): a server that
/// trickles bytes cannot hold the command forever.
pub const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(120);

/// Longest version string accepted (default 64): it becomes a directory name.
pub const MAX_VERSION_LEN: usize = 64;

/// Name of the symlink to the active version under `<data_dir>/crs/`.
pub const CURRENT: &str = "current";

/// The download URL of a CRS version: GitHub's archive of the release tag.
pub fn default_url(version: &str) -> String {
    format!("https://github.com/coreruleset/coreruleset/archive/refs/tags/v{version}.tar.gz")
}

/// Where a CRS was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// The path the configuration names.
    Configured,
    /// `<data_dir>/crs/current`, written by `palisade crs install`.
    DataDir,
    /// A system package (Debian's [`DEBIAN_DIR`]).
    System,
}

/// A CRS directory: it holds `rules/` (and normally `crs-setup.conf`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrsInstall {
    /// The directory (symlinks resolved).
    pub path: PathBuf,
    /// `4.28.0`, from the rules' `ver:'OWASP_CRS/…'` action, when found.
    pub version: Option<String>,
    /// Where it was found.
    pub origin: Origin,
}

impl CrsInstall {
    /// The setup file to load before the rules: `crs-setup.conf`, else
    /// `crs-setup.conf.example`; Debian keeps it in `/etc/modsecurity/crs/`.
    pub fn setup_file(&self) -> Option<PathBuf> {
        [
            self.path.join("crs-setup.conf"),
            self.path.join("crs-setup.conf.example"),
            PathBuf::from("/etc/modsecurity/crs/crs-setup.conf"),
        ]
        .into_iter()
        .find(|p| p.is_file())
    }

    /// Adds the setup file and `rules/*.conf` (name order) to `builder`.
    pub fn add_to<'a>(&self, builder: RulesetBuilder<'a>) -> Result<RulesetBuilder<'a>, Error> {
        let mut builder = builder;
        if let Some(setup) = self.setup_file() {
            builder = builder.add_file(setup)?;
        }
        Ok(builder.add_file(self.path.join("rules").join("*.conf"))?)
    }
}

/// Finds the CRS to load: `configured` (when given, and only it: a
/// configured path that holds no CRS is reported as absent, not silently
/// replaced), else `<data_dir>/crs/current`, else [`DEBIAN_DIR`].
pub fn locate(configured: Option<&Path>, data_dir: &Path) -> Option<CrsInstall> {
    locate_in(configured, data_dir, &[Path::new(DEBIAN_DIR)])
}

/// [`locate`] with the system directories to try given (for tests).
pub fn locate_in(
    configured: Option<&Path>,
    data_dir: &Path,
    system_dirs: &[&Path],
) -> Option<CrsInstall> {
    if let Some(p) = configured {
        return probe(p, Origin::Configured);
    }
    probe(&data_dir.join("crs").join(CURRENT), Origin::DataDir)
        .or_else(|| system_dirs.iter().find_map(|d| probe(d, Origin::System)))
}

fn probe(dir: &Path, origin: Origin) -> Option<CrsInstall> {
    let path = std::fs::canonicalize(dir).ok()?;
    if !path.join("rules").is_dir() {
        return None;
    }
    Some(CrsInstall {
        version: version_of(&path),
        path,
        origin,
    })
}

/// The CRS version of a directory, from the `ver:'OWASP_CRS/X'` action
/// in its initialization rules or its setup file.
pub fn version_of(dir: &Path) -> Option<String> {
    let candidates = [
        dir.join("rules").join("REQUEST-901-INITIALIZATION.conf"),
        dir.join("crs-setup.conf.example"),
        dir.join("crs-setup.conf"),
    ];
    candidates.iter().find_map(|p| {
        let text = std::fs::read_to_string(p).ok()?;
        // The rules' own `ver:` action, not a version named in a comment.
        const MARK: &str = "ver:'OWASP_CRS/";
        let start = text.find(MARK)? + MARK.len();
        let rest = &text[start..];
        let end = rest.find('\'')?;
        let v = &rest[..end];
        let ok = !v.is_empty()
            && v.len() <= MAX_VERSION_LEN
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        ok.then(|| v.to_owned())
    })
}

/// What `palisade crs install` is asked to do.
#[derive(Debug, Clone, Default)]
pub struct InstallOptions {
    /// Version to install (default [`DEFAULT_VERSION`]); names the directory.
    pub version: Option<String>,
    /// Archive URL (`http://`, `https://`) or local file; default
    /// [`default_url`] of the version.
    pub from: Option<String>,
    /// Expected SHA-256 of the archive, hex.
    pub sha256: Option<String>,
    /// Install without any checksum when none is given or published.
    pub insecure_skip_verify: bool,
}

/// The result of an installation.
#[derive(Debug, Clone)]
pub struct Installed {
    /// `<data_dir>/crs/<version>`.
    pub path: PathBuf,
    /// The version installed.
    pub version: String,
    /// Where the archive came from.
    pub source: String,
    /// Its SHA-256 (hex).
    pub sha256: String,
    /// How the checksum was checked: `"--sha256"`, the checksum file's
    /// location, or `None` when skipped (`insecure_skip_verify`).
    pub verified_with: Option<String>,
    /// Rules in the installed CRS (compiled once to check it loads).
    pub rule_count: usize,
    /// The version the rules themselves carry (`ver:'OWASP_CRS/…'`), which
    /// may differ from `version` when `--from` names another release.
    pub rules_version: Option<String>,
}

/// Downloads (or reads), verifies, unpacks and activates a CRS archive
/// under `<data_dir>/crs/`.
pub async fn install(data_dir: &Path, opts: &InstallOptions) -> Result<Installed, Error> {
    let version = opts
        .version
        .as_deref()
        .unwrap_or(DEFAULT_VERSION)
        .to_owned();
    check_version(&version)?;
    let source = opts.from.clone().unwrap_or_else(|| default_url(&version));
    let archive = fetch(&source, MAX_ARCHIVE_BYTES).await?;
    let actual = hex(&Sha256::digest(&archive));

    let verified_with = if let Some(expected) = &opts.sha256 {
        compare(expected, &actual)?;
        Some("--sha256".to_owned())
    } else {
        let sum_source = format!("{source}.sha256");
        match fetch(&sum_source, MAX_CHECKSUM_BYTES).await {
            Ok(text) => {
                let expected = parse_checksum(&text).ok_or_else(|| Error::BadChecksumFile {
                    source_name: sum_source.clone(),
                })?;
                compare(&expected, &actual)?;
                Some(sum_source)
            }
            Err(_) if opts.insecure_skip_verify => None,
            Err(e) => {
                return Err(Error::NoChecksum {
                    source_name: sum_source,
                    reason: e.to_string(),
                })
            }
        }
    };

    let crs_dir = data_dir.join("crs");
    create_dir(&crs_dir)?;
    let staging = crs_dir.join(format!(".staging-{version}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    create_dir(&staging)?;
    let result = prepare(&archive, &staging);
    let (root, rule_count) = match result {
        Ok(v) => v,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };

    let target = crs_dir.join(&version);
    if target.exists() {
        // Reinstalling a version `current` may point to. Directories cannot
        // be exchanged atomically, so `current` always points at a complete
        // copy that is not being moved: the new one while the old moves
        // aside, the old one while the new moves in, then the version.
        let rel = |p: &Path| p.strip_prefix(&crs_dir).unwrap_or(p).to_path_buf();
        let old = crs_dir.join(format!(".old-{version}-{}", std::process::id()));
        switch_current(&crs_dir, &rel(&root))?;
        std::fs::rename(&target, &old).map_err(|e| io(&target, e))?;
        switch_current(&crs_dir, &rel(&old))?;
        // A reader that resolved `current` just before a switch still
        // walks the directory it saw: give it time before that directory
        // moves or goes.
        std::thread::sleep(SWITCH_GRACE);
        std::fs::rename(&root, &target).map_err(|e| io(&target, e))?;
        switch_current(&crs_dir, Path::new(&version))?;
        std::thread::sleep(SWITCH_GRACE);
        let _ = std::fs::remove_dir_all(&old);
    } else {
        std::fs::rename(&root, &target).map_err(|e| io(&target, e))?;
        switch_current(&crs_dir, Path::new(&version))?;
    }
    let _ = std::fs::remove_dir_all(&staging);

    Ok(Installed {
        rules_version: version_of(&target),
        path: target,
        version,
        source,
        sha256: actual,
        verified_with,
        rule_count,
    })
}

/// Unpacks into `staging`, finds the CRS root, writes `crs-setup.conf`
/// and compiles the rules once.
fn prepare(archive: &[u8], staging: &Path) -> Result<(PathBuf, usize), Error> {
    unpack(archive, staging)?;
    let root = find_root(staging)?;
    let example = root.join("crs-setup.conf.example");
    let setup = root.join("crs-setup.conf");
    std::fs::copy(&example, &setup).map_err(|e| io(&example, e))?;
    let install = CrsInstall {
        path: root.clone(),
        version: None,
        origin: Origin::DataDir,
    };
    let rules = install.add_to(RulesetBuilder::new(&FsLoader))?.build()?;
    Ok((root, rules.rule_count()))
}

/// The archive's CRS directory: `staging` itself or its single top-level
/// directory (`coreruleset-4.28.0/`), holding `rules/` and
/// `crs-setup.conf.example`.
fn find_root(staging: &Path) -> Result<PathBuf, Error> {
    let is_root = |p: &Path| p.join("rules").is_dir() && p.join("crs-setup.conf.example").is_file();
    if is_root(staging) {
        return Ok(staging.to_path_buf());
    }
    let mut dirs = Vec::new();
    for e in std::fs::read_dir(staging).map_err(|e| io(staging, e))? {
        let e = e.map_err(|e| io(staging, e))?;
        if e.file_type().map_err(|err| io(&e.path(), err))?.is_dir() {
            dirs.push(e.path());
        }
    }
    match dirs.as_slice() {
        [one] if is_root(one) => Ok(one.clone()),
        _ => Err(Error::Layout(
            "the archive holds no CRS: expected rules/ and crs-setup.conf.example at its top or in its one top-level directory".into(),
        )),
    }
}

/// Fixed 500 ms: how long a directory `current` pointed to stays in place
/// after `current` moves away from it, so a lookup that resolved the old
/// link (open file, stat) completes against a complete CRS. A reinstall is
/// a rare admin action; the pause costs nothing on the request path.
const SWITCH_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

/// Points `<crs_dir>/current` at `target` (relative to `crs_dir`): a new
/// symlink renamed over the old one, so a reader sees the old or the new
/// target, never none.
fn switch_current(crs_dir: &Path, target: &Path) -> Result<(), Error> {
    let tmp = crs_dir.join(format!(".current-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).map_err(|e| io(&tmp, e))?;
    let current = crs_dir.join(CURRENT);
    std::fs::rename(&tmp, &current).map_err(|e| io(&current, e))
}

fn check_version(v: &str) -> Result<(), Error> {
    let ok = !v.is_empty()
        && v.len() <= MAX_VERSION_LEN
        && !v.starts_with('.')
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidVersion(v.to_owned()))
    }
}

fn compare(expected: &str, actual: &str) -> Result<(), Error> {
    let expected = expected.trim().to_ascii_lowercase();
    if expected.len() != 64 || !expected.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::InvalidSha256(expected));
    }
    if expected == actual {
        Ok(())
    } else {
        Err(Error::ChecksumMismatch {
            expected,
            actual: actual.to_owned(),
        })
    }
}

/// The first 64-hex-digit word of a checksum file (`sha256sum` format:
/// `HEX  name`, or just `HEX`).
fn parse_checksum(text: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(text).ok()?;
    text.split_whitespace()
        .find(|w| w.len() == 64 && w.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_ascii_lowercase)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads `source`: a URL through [`http::get`], else a local file; at most
/// `limit` bytes.
async fn fetch(source: &str, limit: u64) -> Result<Vec<u8>, Error> {
    if source.starts_with("http://") || source.starts_with("https://") {
        return http::get(source, limit).await;
    }
    let path = Path::new(source.strip_prefix("file://").unwrap_or(source));
    let file = std::fs::File::open(path).map_err(|e| io(path, e))?;
    let mut out = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| io(path, e))?;
    if out.len() as u64 > limit {
        return Err(Error::TooLarge {
            what: path.display().to_string(),
            limit,
        });
    }
    Ok(out)
}

/// Unpacks a `.tar.gz` into `dest` (an existing, empty directory),
/// refusing absolute paths, `..`, links that leave `dest`, device files,
/// more than [`MAX_ENTRIES`] entries and more than [`MAX_UNPACKED_BYTES`].
pub fn unpack(archive: &[u8], dest: &Path) -> Result<(), Error> {
    let gz = flate2::read::GzDecoder::new(archive);
    // The tar stream is at most the files plus 1 KiB of headers each;
    // reading stops there whatever the archive claims.
    let cap = MAX_UNPACKED_BYTES + (MAX_ENTRIES as u64 + 2) * 1024;
    let mut tar = tar::Archive::new(gz.take(cap));
    let corrupt = |e: std::io::Error| Error::Archive(e.to_string());
    let mut total: u64 = 0;
    for (n, entry) in tar.entries().map_err(corrupt)?.enumerate() {
        if n >= MAX_ENTRIES {
            return Err(Error::TooLarge {
                what: format!("archive (more than {MAX_ENTRIES} entries)"),
                limit: MAX_ENTRIES as u64,
            });
        }
        let mut entry = entry.map_err(corrupt)?;
        let raw_path = entry.path().map_err(corrupt)?.into_owned();
        let name = raw_path.display().to_string();
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() || kind.is_pax_local_extensions() {
            continue;
        }
        let rel = safe_relative(&raw_path).ok_or_else(|| Error::UnsafeArchive {
            entry: name.clone(),
            reason: "absolute path or `..` component",
        })?;
        if rel.as_os_str().is_empty() {
            continue;
        }
        let out = dest.join(&rel);
        no_symlink_ancestor(dest, &rel, &name)?;
        if kind.is_dir() {
            create_dir(&out)?;
        } else if kind.is_file() || kind == tar::EntryType::Continuous {
            let size = entry.header().size().map_err(corrupt)?;
            total = total.saturating_add(size);
            if total > MAX_UNPACKED_BYTES {
                return Err(Error::TooLarge {
                    what: "unpacked archive".into(),
                    limit: MAX_UNPACKED_BYTES,
                });
            }
            if let Some(parent) = out.parent() {
                create_dir(parent)?;
            }
            let mut f = std::fs::File::create(&out).map_err(|e| io(&out, e))?;
            let copied =
                std::io::copy(&mut (&mut entry).take(size), &mut f).map_err(|e| io(&out, e))?;
            if copied != size {
                return Err(Error::Archive(format!("{name}: truncated")));
            }
        } else if kind.is_symlink() || kind.is_hard_link() {
            let target = entry
                .link_name()
                .map_err(corrupt)?
                .ok_or_else(|| Error::Archive(format!("{name}: link without a target")))?
                .into_owned();
            let unsafe_link = || Error::UnsafeArchive {
                entry: name.clone(),
                reason: "link pointing outside the archive",
            };
            let target_rel = safe_relative(&target).ok_or_else(unsafe_link)?;
            if let Some(parent) = out.parent() {
                create_dir(parent)?;
            }
            if kind.is_symlink() {
                // Relative to the link's directory, with no `..` and no
                // absolute part: it can only point at or below it.
                if target_rel.components().count() == 0 {
                    return Err(unsafe_link());
                }
                std::os::unix::fs::symlink(&target_rel, &out).map_err(|e| io(&out, e))?;
            } else {
                let src = dest.join(&target_rel);
                no_symlink_ancestor(dest, &target_rel, &name)?;
                std::fs::hard_link(&src, &out).map_err(|e| io(&out, e))?;
            }
        } else {
            return Err(Error::UnsafeArchive {
                entry: name,
                reason: "device, FIFO or other special file",
            });
        }
    }
    Ok(())
}

/// `p` as a path of normal components only (`.` dropped); `None` for an
/// absolute path or one with `..`.
fn safe_relative(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Refuses to write through a symlink an earlier entry created: `a -> x`
/// then `a/b` would land wherever `x` points.
fn no_symlink_ancestor(dest: &Path, rel: &Path, name: &str) -> Result<(), Error> {
    let mut cur = dest.to_path_buf();
    for c in rel.components() {
        cur.push(c);
        match std::fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(Error::UnsafeArchive {
                    entry: name.to_owned(),
                    reason: "path goes through a link",
                })
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    Ok(())
}

fn create_dir(p: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(p).map_err(|e| io(p, e))
}

fn io(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        assert_eq!(
            safe_relative(Path::new("./a/b")),
            Some(PathBuf::from("a/b"))
        );
        assert_eq!(safe_relative(Path::new("a/../b")), None);
        assert_eq!(safe_relative(Path::new("/etc/passwd")), None);
    }

    #[test]
    fn versions_and_checksums() {
        assert!(check_version("4.28.0").is_ok());
        assert!(check_version("../x").is_err());
        assert!(check_version("").is_err());
        assert!(check_version(".hidden").is_err());
        let h = "a".repeat(64);
        assert_eq!(
            parse_checksum(format!("{h}  coreruleset.tar.gz\n").as_bytes()),
            Some(h.clone())
        );
        assert_eq!(parse_checksum(b"nothing here"), None);
        assert!(compare(&h.to_uppercase(), &h).is_ok());
        assert!(matches!(compare("abc", &h), Err(Error::InvalidSha256(_))));
        assert!(matches!(
            compare(&"b".repeat(64), &h),
            Err(Error::ChecksumMismatch { .. })
        ));
    }
}
