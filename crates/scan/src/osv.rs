//! An OSV advisory database on disk (the JSON files of OSV's bulk
//! exports, in one directory tree) and OSV range evaluation.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use crate::{pep440, Error, Severity};

/// Largest advisory file read: 4 MiB (real records are a few KiB; bounds
/// a hostile or corrupt file).
pub const MAX_RECORD_BYTES: u64 = 4 << 20;
/// Most advisory files loaded: 1,000,000 (the whole OSV export is about
/// 500k records; bounds a wrong `--db` such as `/`).
pub const MAX_RECORDS: usize = 1_000_000;
/// Deepest directory level walked: 4.
pub const MAX_DEPTH: usize = 4;
/// Default maximum database age: 7 days since the newest `modified`.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(7 * 86400);

/// One advisory (only the fields the scanner uses).
#[derive(Debug, Clone, Deserialize)]
pub struct Advisory {
    /// OSV id (e.g. `GHSA-...`, `RUSTSEC-...`).
    pub id: String,
    /// One-line summary.
    #[serde(default)]
    pub summary: Option<String>,
    /// RFC 3339 modification time.
    #[serde(default)]
    pub modified: Option<String>,
    /// Affected packages.
    #[serde(default)]
    pub affected: Vec<Affected>,
    #[serde(default)]
    database_specific: Option<serde_json::Value>,
    #[serde(default)]
    aliases: Vec<String>,
}

impl Advisory {
    /// Severity from `database_specific.severity` (GHSA style), else
    /// `High`: an advisory without a rating still fails a gate.
    pub fn severity(&self) -> Severity {
        self.database_specific
            .as_ref()
            .and_then(|d| d.get("severity"))
            .and_then(|s| s.as_str())
            .and_then(Severity::parse)
            .unwrap_or(Severity::High)
    }

    /// Aliases (CVE ids).
    pub fn aliases(&self) -> &[String] {
        &self.aliases
    }
}

/// `affected[]` entry.
#[derive(Debug, Clone, Deserialize)]
pub struct Affected {
    /// The package.
    pub package: Package,
    /// Version ranges.
    #[serde(default)]
    pub ranges: Vec<Range>,
    /// Explicitly listed versions.
    #[serde(default)]
    pub versions: Vec<String>,
}

/// `affected[].package`.
#[derive(Debug, Clone, Deserialize)]
pub struct Package {
    /// `crates.io`, `PyPI`, `npm`, `Go`, ...
    pub ecosystem: String,
    /// Package name.
    pub name: String,
}

/// `affected[].ranges[]`.
#[derive(Debug, Clone, Deserialize)]
pub struct Range {
    /// `SEMVER`, `ECOSYSTEM` or `GIT` (ignored).
    #[serde(rename = "type")]
    pub kind: String,
    /// Events.
    #[serde(default)]
    pub events: Vec<Event>,
}

/// One range event.
#[derive(Debug, Clone, Deserialize)]
pub struct Event {
    /// Introduced at.
    #[serde(default)]
    pub introduced: Option<String>,
    /// Fixed at.
    #[serde(default)]
    pub fixed: Option<String>,
    /// Last affected version.
    #[serde(default)]
    pub last_affected: Option<String>,
}

/// A loaded database, indexed by (ecosystem, normalised name).
#[derive(Debug, Default)]
pub struct Database {
    advisories: Vec<Advisory>,
    index: HashMap<(String, String), Vec<usize>>,
    /// Newest `modified` time (Unix seconds).
    pub newest: Option<i64>,
    /// Files that could not be parsed (path, reason); loading goes on.
    pub skipped: Vec<(PathBuf, String)>,
}

/// Normalises a package name for lookup (PyPI: PEP 503).
pub fn normalise(ecosystem: &str, name: &str) -> String {
    if ecosystem == "PyPI" {
        let mut out = String::with_capacity(name.len());
        for c in name.trim().chars() {
            let c = if matches!(c, '-' | '_' | '.') {
                '-'
            } else {
                c.to_ascii_lowercase()
            };
            if !(c == '-' && out.ends_with('-')) {
                out.push(c);
            }
        }
        out
    } else {
        name.to_string()
    }
}

/// The ecosystem without a `:release` suffix (`Debian:12` → `Debian`).
fn base_ecosystem(e: &str) -> &str {
    e.split(':').next().unwrap_or(e)
}

impl Database {
    /// Loads every `*.json` file under `dir`. Absent, empty or stale
    /// (newest `modified` older than `max_age` before `now`) is an error.
    pub fn load(dir: &Path, max_age: Option<Duration>, now: SystemTime) -> Result<Database, Error> {
        let err = |msg: String| Error::Database {
            path: dir.display().to_string(),
            msg,
        };
        if !dir.is_dir() {
            return Err(err("not found or not a directory".into()));
        }
        let mut files = Vec::new();
        walk(dir, 0, &mut files).map_err(|e| err(e.to_string()))?;
        let mut db = Database::default();
        for f in files {
            match read_record(&f) {
                Ok(a) => db.add(a),
                Err(e) => db.skipped.push((f, e)),
            }
        }
        if db.advisories.is_empty() {
            return Err(err(format!(
                "no advisories ({} files skipped as invalid): an empty database cannot say \"no vulnerabilities\"",
                db.skipped.len()
            )));
        }
        if let Some(max) = max_age {
            let now = now
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            let newest = db
                .newest
                .ok_or_else(|| err("no record has a valid `modified` time".into()))?;
            let age = now - newest;
            if age > max.as_secs() as i64 {
                return Err(err(format!(
                    "newest record modified {} days ago (max {} days); update it",
                    age / 86400,
                    max.as_secs() / 86400
                )));
            }
        }
        Ok(db)
    }

    fn add(&mut self, a: Advisory) {
        if let Some(t) = a.modified.as_deref().and_then(rfc3339_seconds) {
            self.newest = Some(self.newest.map_or(t, |n| n.max(t)));
        }
        let i = self.advisories.len();
        for aff in &a.affected {
            let eco = base_ecosystem(&aff.package.ecosystem).to_string();
            let name = normalise(&eco, &aff.package.name);
            let v = self.index.entry((eco, name)).or_default();
            if v.last() != Some(&i) {
                v.push(i);
            }
        }
        self.advisories.push(a);
    }

    /// Number of advisories loaded.
    pub fn len(&self) -> usize {
        self.advisories.len()
    }

    /// True when nothing is loaded (never after a successful `load`).
    pub fn is_empty(&self) -> bool {
        self.advisories.is_empty()
    }

    /// Advisories affecting `name@version` in `ecosystem`. `Err` when the
    /// version cannot be parsed for that ecosystem.
    pub fn query(
        &self,
        ecosystem: &str,
        name: &str,
        version: &str,
    ) -> Result<Vec<&Advisory>, String> {
        let key = (ecosystem.to_string(), normalise(ecosystem, name));
        let Some(ids) = self.index.get(&key) else {
            return Ok(Vec::new());
        };
        let v = Ver::parse(ecosystem, version)
            .ok_or_else(|| format!("unparseable version {version:?}"))?;
        let mut out = Vec::new();
        for &i in ids {
            let a = &self.advisories[i];
            let hit = a.affected.iter().any(|aff| {
                base_ecosystem(&aff.package.ecosystem) == ecosystem
                    && normalise(ecosystem, &aff.package.name) == key.1
                    && affects(aff, ecosystem, version, &v)
            });
            if hit {
                out.push(a);
            }
        }
        Ok(out)
    }
}

fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let ft = entry.file_type()?;
        if ft.is_dir() && depth < MAX_DEPTH {
            walk(&path, depth + 1, out)?;
        } else if ft.is_file() && path.extension().is_some_and(|e| e == "json") {
            if out.len() >= MAX_RECORDS {
                return Err(std::io::Error::other(format!(
                    "more than {MAX_RECORDS} files"
                )));
            }
            out.push(path);
        }
    }
    Ok(())
}

fn read_record(path: &Path) -> Result<Advisory, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if meta.len() > MAX_RECORD_BYTES {
        return Err(format!("larger than {MAX_RECORD_BYTES} bytes"));
    }
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    serde_json::from_slice(&bytes).map_err(|e| e.to_string())
}

/// A version in an ecosystem's ordering.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Ver {
    Sem(semver::Version),
    Pep(pep440::Version),
}

impl Ver {
    fn parse(ecosystem: &str, s: &str) -> Option<Ver> {
        match ecosystem {
            "PyPI" => pep440::Version::parse(s).map(Ver::Pep),
            // Go versions carry a `v`; semver needs three components.
            _ => {
                let t = s.strip_prefix('v').unwrap_or(s);
                semver::Version::parse(t)
                    .or_else(|_| semver::Version::parse(&pad(t)))
                    .ok()
                    .map(Ver::Sem)
            }
        }
    }
}

/// "1.2" → "1.2.0", "1" → "1.0.0" (some advisories shorten versions).
fn pad(s: &str) -> String {
    let core_end = s.find(['-', '+']).unwrap_or(s.len());
    let dots = s[..core_end].matches('.').count();
    let extra = ".0".repeat(2usize.saturating_sub(dots));
    format!("{}{}{}", &s[..core_end], extra, &s[core_end..])
}

/// OSV evaluation: listed versions, then SEMVER/ECOSYSTEM ranges walked in
/// version order (introduced sets, fixed/last_affected clear).
fn affects(aff: &Affected, ecosystem: &str, raw: &str, v: &Ver) -> bool {
    if aff
        .versions
        .iter()
        .any(|x| x == raw || Ver::parse(ecosystem, x).as_ref() == Some(v))
    {
        return true;
    }
    for r in &aff.ranges {
        if r.kind != "SEMVER" && r.kind != "ECOSYSTEM" {
            continue;
        }
        // (version, kind): kind 0 introduced, 1 fixed, 2 last_affected.
        let mut evs: Vec<(Option<Ver>, u8)> = Vec::new();
        for e in &r.events {
            let parsed = |s: &str, k| {
                if s == "0" {
                    Some((None, k))
                } else {
                    Ver::parse(ecosystem, s).map(|x| (Some(x), k))
                }
            };
            let ev = match (&e.introduced, &e.fixed, &e.last_affected) {
                (Some(s), _, _) => parsed(s, 0),
                (_, Some(s), _) => parsed(s, 1),
                (_, _, Some(s)) => parsed(s, 2),
                _ => None,
            };
            // An unparseable bound makes the range unusable: skip the
            // event rather than guessing.
            if let Some(ev) = ev {
                evs.push(ev);
            }
        }
        evs.sort_by(|a, b| match (&a.0, &b.0) {
            (None, None) => Ordering::Equal,
            (None, _) => Ordering::Less,
            (_, None) => Ordering::Greater,
            (Some(x), Some(y)) => x.cmp(y),
        });
        let mut affected = false;
        for (at, kind) in &evs {
            let cmp = at.as_ref().map_or(Ordering::Greater, |a| v.cmp(a));
            match kind {
                0 if cmp != Ordering::Less => affected = true,
                1 if cmp != Ordering::Less => affected = false,
                2 if cmp == Ordering::Greater => affected = false,
                _ => {}
            }
        }
        if affected {
            return true;
        }
    }
    false
}

/// `2024-05-01T12:00:00Z` (fraction and offset allowed) → Unix seconds.
pub fn rfc3339_seconds(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d, h, mi, sec) = (
        n(0..4)?,
        n(5..7)?,
        n(8..10)?,
        n(11..13)?,
        n(14..16)?,
        n(17..19)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(r) = rest.strip_prefix('.') {
        rest = r.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 => {
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (rest[1..3].parse::<i64>().ok()? * 3600 + rest[4..6].parse::<i64>().ok()? * 60)
        }
        _ => return None,
    };
    // Days from civil (proleptic Gregorian).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some(days * 86400 + h * 3600 + mi * 60 + sec - offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        assert_eq!(rfc3339_seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            rfc3339_seconds("2024-03-01T00:00:00.123Z"),
            Some(1_709_251_200)
        );
        assert_eq!(
            rfc3339_seconds("2024-03-01T01:00:00+01:00"),
            Some(1_709_251_200)
        );
        assert_eq!(rfc3339_seconds("garbage"), None);
    }

    #[test]
    fn range_events() {
        let aff: Affected = serde_json::from_str(
            r#"{"package":{"ecosystem":"npm","name":"x"},"ranges":[{"type":"SEMVER","events":[
            {"introduced":"0"},{"fixed":"1.2.3"},{"introduced":"2.0.0"},{"last_affected":"2.1.0"}]}]}"#,
        )
        .unwrap();
        let hit = |s: &str| affects(&aff, "npm", s, &Ver::parse("npm", s).unwrap());
        assert!(hit("0.1.0") && hit("1.2.2") && hit("2.0.0") && hit("2.1.0"));
        assert!(!hit("1.2.3") && !hit("1.9.9") && !hit("2.1.1"));
    }
}
