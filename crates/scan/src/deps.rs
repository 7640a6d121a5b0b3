//! Lockfile parsing and the dependency audit against an OSV database.

use std::path::Path;

use serde::Serialize;

use crate::osv::Database;
use crate::{Error, Severity};

/// Largest lockfile read: 64 MiB (bounds a wrong path or hostile file).
pub const MAX_LOCKFILE_BYTES: u64 = 64 << 20;

/// One pinned dependency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dependency {
    /// OSV ecosystem: `crates.io`, `PyPI`, `npm`, `Go`.
    pub ecosystem: &'static str,
    /// Package name.
    pub name: String,
    /// Exact version.
    pub version: String,
}

/// One vulnerable dependency.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// The lockfile it came from.
    pub lockfile: String,
    /// The dependency.
    pub dependency: Dependency,
    /// Advisory id.
    pub id: String,
    /// Aliases (CVE ids).
    pub aliases: Vec<String>,
    /// Advisory summary.
    pub summary: Option<String>,
    /// Severity.
    pub severity: Severity,
}

/// Result of auditing lockfiles.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Dependencies checked.
    pub checked: usize,
    /// Advisories in the database.
    pub advisories: usize,
    /// Vulnerable dependencies.
    pub findings: Vec<Finding>,
    /// Dependencies whose version could not be evaluated (never silently
    /// counted as safe).
    pub unchecked: Vec<(Dependency, String)>,
}

/// Parses a lockfile, choosing the format from its file name.
pub fn parse_lockfile(path: &Path) -> Result<Vec<Dependency>, Error> {
    let err = |msg: String| Error::Lockfile {
        path: path.display().to_string(),
        msg,
    };
    let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
    if meta.len() > MAX_LOCKFILE_BYTES {
        return Err(err(format!("larger than {MAX_LOCKFILE_BYTES} bytes")));
    }
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let deps = match name {
        "Cargo.lock" => toml_packages(&text, "crates.io", true),
        "poetry.lock" => toml_packages(&text, "PyPI", false),
        "package-lock.json" => npm(&text),
        "go.sum" => Ok(go_sum(&text)),
        n if n.ends_with(".txt") && n.contains("requirements") => Ok(requirements(&text)),
        _ => Err(format!(
            "unknown lockfile type {name:?} (Cargo.lock, poetry.lock, package-lock.json, go.sum, requirements*.txt)"
        )),
    };
    deps.map_err(err)
}

fn toml_packages(
    text: &str,
    eco: &'static str,
    need_source: bool,
) -> Result<Vec<Dependency>, String> {
    #[derive(serde::Deserialize)]
    struct Lock {
        #[serde(default)]
        package: Vec<Pkg>,
    }
    #[derive(serde::Deserialize)]
    struct Pkg {
        name: String,
        version: String,
        #[serde(default)]
        source: Option<toml::Value>,
    }
    let lock: Lock = toml::from_str(text).map_err(|e| e.message().to_string())?;
    Ok(lock
        .package
        .into_iter()
        // Cargo: packages without `source` are workspace members or path
        // dependencies, not from crates.io.
        .filter(|p| !need_source || p.source.is_some())
        .map(|p| Dependency {
            ecosystem: eco,
            name: p.name,
            version: p.version,
        })
        .collect())
}

fn npm(text: &str) -> Result<Vec<Dependency>, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let lv = v
        .get("lockfileVersion")
        .and_then(|x| x.as_u64())
        .unwrap_or(0);
    let Some(pkgs) = v.get("packages").and_then(|p| p.as_object()) else {
        return Err(format!(
            "lockfileVersion {lv} has no \"packages\" map (only v2/v3 are supported)"
        ));
    };
    let mut out = Vec::new();
    for (key, p) in pkgs {
        let Some(idx) = key.rfind("node_modules/") else {
            continue; // "" is the root project; workspace folders are local.
        };
        if p.get("link").and_then(|l| l.as_bool()) == Some(true) {
            continue;
        }
        let name = p
            .get("name")
            .and_then(|n| n.as_str())
            .unwrap_or(&key[idx + "node_modules/".len()..]);
        if let Some(ver) = p.get("version").and_then(|x| x.as_str()) {
            out.push(Dependency {
                ecosystem: "npm",
                name: name.to_string(),
                version: ver.to_string(),
            });
        }
    }
    Ok(out)
}

fn go_sum(text: &str) -> Vec<Dependency> {
    let mut out: Vec<Dependency> = Vec::new();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let (Some(m), Some(v)) = (f.next(), f.next()) else {
            continue;
        };
        let v = v.strip_suffix("/go.mod").unwrap_or(v);
        let d = Dependency {
            ecosystem: "Go",
            name: m.to_string(),
            version: v.to_string(),
        };
        if !out.contains(&d) {
            out.push(d);
        }
    }
    out
}

fn requirements(text: &str) -> Vec<Dependency> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split(" #").next().unwrap_or("").trim();
        if line.starts_with('#') || line.starts_with('-') {
            continue;
        }
        // Drop environment markers and hash options.
        let line = line.split(';').next().unwrap_or("");
        let line = line.split(" --").next().unwrap_or("").trim();
        let Some((name, ver)) = line.split_once("==") else {
            continue; // Unpinned: no single version to check.
        };
        let name = name.split('[').next().unwrap_or("").trim();
        let ver = ver.trim().trim_start_matches('=');
        if name.is_empty() || ver.is_empty() || ver.contains('*') {
            continue;
        }
        out.push(Dependency {
            ecosystem: "PyPI",
            name: name.to_string(),
            version: ver.to_string(),
        });
    }
    out
}

/// Audits `lockfiles` against `db`.
pub fn audit(lockfiles: &[&Path], db: &Database) -> Result<Report, Error> {
    let mut report = Report {
        checked: 0,
        advisories: db.len(),
        findings: Vec::new(),
        unchecked: Vec::new(),
    };
    for lf in lockfiles {
        for dep in parse_lockfile(lf)? {
            report.checked += 1;
            match db.query(dep.ecosystem, &dep.name, &dep.version) {
                Ok(advs) => {
                    for a in advs {
                        report.findings.push(Finding {
                            lockfile: lf.display().to_string(),
                            dependency: dep.clone(),
                            id: a.id.clone(),
                            aliases: a.aliases().to_vec(),
                            summary: a.summary.clone(),
                            severity: a.severity(),
                        });
                    }
                }
                Err(why) => report.unchecked.push((dep, why)),
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirements_pins_only() {
        let d = requirements(
            "# c\nDjango==3.2.1 --hash=sha256:ab\nrequests>=2\nurllib3[socks]==1.26.4 ; python_version>'3'\n-r other.txt\n",
        );
        let got: Vec<_> = d
            .iter()
            .map(|d| (d.name.as_str(), d.version.as_str()))
            .collect();
        assert_eq!(got, vec![("Django", "3.2.1"), ("urllib3", "1.26.4")]);
    }

    #[test]
    fn go_sum_dedups_go_mod_lines() {
        let d = go_sum("golang.org/x/net v0.1.0 h1:x=\ngolang.org/x/net v0.1.0/go.mod h1:y=\n");
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].version, "v0.1.0");
    }
}
