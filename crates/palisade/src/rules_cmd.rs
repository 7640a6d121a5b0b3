//! `palisade waf rules`, `palisade crs install` and `palisade crs status`:
//! which rules are loaded, and managing the OWASP CRS in the data directory.
//!
//! ```text
//!  waf rules  --rules F... | --builtin | --config C ──► Ruleset ──► one line per rule + count
//!  crs install [--version V] [--from URL|FILE] [--sha256 HEX] ──► rules::crs::install
//!  crs status  [--config C] [--crs DIR] ──► rules::crs::locate ──► version, path, origin
//! ```
//!
//! Until routes name their rule sources, "what the config loads" is the CRS
//! `crs status` finds (configured `--crs`, `<data_dir>/crs/current`,
//! Debian's package), else the built-in rules.

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Subcommand};
use rules::crs::{self, CrsInstall, InstallOptions, Origin};
use seclang::macros::Part;
use seclang::{FsLoader, MacroString, Rule, Ruleset, RulesetBuilder};

use crate::{print_stdout, Failure};

/// Default data directory when no config is given (the gateway's default).
const DEFAULT_DATA_DIR: &str = "./data";

/// `palisade waf rules`.
#[derive(Args, Debug)]
pub struct RulesArgs {
    /// Gateway config (TOML): list the rules it would load (the CRS found
    /// for its data_dir, else the built-in rules).
    #[arg(short, long, conflicts_with_all = ["rules", "builtin"])]
    config: Option<PathBuf>,
    /// Rule files or directories of *.conf files, loaded in order.
    #[arg(long, num_args = 1..)]
    rules: Vec<PathBuf>,
    /// Load the built-in rules (before any --rules).
    #[arg(long)]
    builtin: bool,
    /// CRS directory to use instead of the one found (with --config or alone).
    #[arg(long, conflicts_with_all = ["rules", "builtin"])]
    crs: Option<PathBuf>,
    /// Only rules with this id or in this range (`942100`, `942000-942999`).
    #[arg(long, value_parser = parse_range)]
    id: Option<RangeInclusive<u64>>,
    /// Only rules with this tag (exact, e.g. `attack-sqli`).
    #[arg(long)]
    tag: Option<String>,
}

/// `palisade crs …`.
#[derive(Subcommand, Debug)]
pub enum CrsCmd {
    /// Download, verify and unpack an OWASP CRS release into the data directory.
    Install {
        /// Gateway config (TOML) whose data_dir receives the CRS (default ./data).
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// CRS version.
        #[arg(long, default_value = crs::DEFAULT_VERSION)]
        version: String,
        /// Archive URL (http/https) or local .tar.gz file (default: the
        /// GitHub archive of the version's tag).
        #[arg(long)]
        from: Option<String>,
        /// Expected SHA-256 of the archive (hex).
        #[arg(long)]
        sha256: Option<String>,
        /// Install even when no checksum is given or published (warns).
        #[arg(long)]
        insecure_skip_verify: bool,
    },
    /// Show the CRS found and the one the config would load.
    Status {
        /// Gateway config (TOML) whose data_dir is searched (default ./data).
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// A configured CRS directory (takes precedence when it holds a CRS).
        #[arg(long)]
        crs: Option<PathBuf>,
    },
}

fn parse_range(s: &str) -> Result<RangeInclusive<u64>, String> {
    let num = |t: &str| {
        t.trim()
            .parse::<u64>()
            .map_err(|_| format!("{s:?}: expected ID or FROM-TO"))
    };
    let range = match s.split_once('-') {
        Some((a, b)) => num(a)?..=num(b)?,
        None => num(s)?..=num(s)?,
    };
    if range.is_empty() {
        return Err(format!("{s:?}: empty range"));
    }
    Ok(range)
}

/// The data directory of `config` (the gateway's `server.data_dir`), or
/// the default.
fn data_dir(config: Option<&Path>) -> Result<PathBuf, Failure> {
    match config {
        Some(path) => Ok(gateway::config::load_file(path)?.server.data_dir),
        None => Ok(PathBuf::from(DEFAULT_DATA_DIR)),
    }
}

fn rules_error(e: impl std::fmt::Display) -> Failure {
    Failure::Config(anyhow::anyhow!("{e}"))
}

/// `palisade waf rules`.
pub fn list(args: RulesArgs) -> Result<(), Failure> {
    let (ruleset, source) = if args.rules.is_empty() && !args.builtin {
        let dir = data_dir(args.config.as_deref())?;
        match find(args.crs.as_deref(), &dir)? {
            Some(install) => {
                let rs = install
                    .add_to(RulesetBuilder::new(&FsLoader))
                    .and_then(|b| Ok(b.build()?))
                    .map_err(rules_error)?;
                (Arc::new(rs), describe(&install))
            }
            None => (
                Arc::new(build_builtin(&[])?),
                "the built-in rules (no CRS found)".to_owned(),
            ),
        }
    } else if args.builtin {
        let what = if args.rules.is_empty() {
            "the built-in rules".to_owned()
        } else {
            format!("the built-in rules + {}", files_text(&args.rules))
        };
        (Arc::new(build_builtin(&args.rules)?), what)
    } else {
        let rs = crate::waf::load(&args.rules).map_err(rules_error)?;
        (rs, files_text(&args.rules))
    };
    let mut shown = 0;
    for phase in 1..=5 {
        for rule in ruleset.rules(phase) {
            if args.id.as_ref().is_some_and(|r| !r.contains(&rule.id)) {
                continue;
            }
            if args.tag.as_deref().is_some_and(|t| !rule.has_tag(t)) {
                continue;
            }
            shown += 1;
            print_stdout(&line(rule))?;
        }
    }
    let total = ruleset.rule_count();
    if shown == total {
        print_stdout(&format!("{shown} rules from {source}"))
    } else {
        print_stdout(&format!("{shown} of {total} rules from {source}"))
    }
}

fn files_text(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

fn build_builtin(extra: &[PathBuf]) -> Result<Ruleset, Failure> {
    let mut b = rules::builtin::add_to(RulesetBuilder::new(&FsLoader)).map_err(rules_error)?;
    if !extra.is_empty() {
        for f in crate::waf::rule_files(extra).map_err(rules_error)? {
            b = b.add_file(f).map_err(rules_error)?;
        }
    }
    b.build().map_err(rules_error)
}

/// `ID  phase:N  FILE:LINE  [tags]  msg`.
fn line(rule: &Rule) -> String {
    let tags: Vec<String> = rule.tags.iter().map(macro_text).collect();
    let msg = rule.msg.as_ref().map(macro_text).unwrap_or_default();
    format!(
        "{:<8} phase:{}  {}:{}  [{}]  {}",
        rule.id,
        rule.phase,
        rule.file.display(),
        rule.line,
        tags.join(","),
        msg
    )
}

/// A macro string as written (`%{tx.score}` kept).
fn macro_text(m: &MacroString) -> String {
    let mut s = String::new();
    for p in m.parts() {
        match p {
            Part::Literal(l) => s.push_str(&String::from_utf8_lossy(l)),
            Part::Var { collection, key } => {
                s.push_str("%{");
                s.push_str(collection);
                if let Some(k) = key {
                    s.push('.');
                    s.push_str(k);
                }
                s.push('}');
            }
        }
    }
    s
}

/// [`crs::locate`], but a configured directory without a CRS is an error
/// (the user named it), not a silent fallback.
fn find(configured: Option<&Path>, data_dir: &Path) -> Result<Option<CrsInstall>, Failure> {
    let found = crs::locate(configured, data_dir);
    match (configured, &found) {
        (Some(p), None) => Err(Failure::Config(anyhow::anyhow!(
            "{}: no CRS there (expected a rules/ directory)",
            p.display()
        ))),
        _ => Ok(found),
    }
}

fn describe(install: &CrsInstall) -> String {
    let origin = match install.origin {
        Origin::Configured => "configured",
        Origin::DataDir => "data directory",
        Origin::System => "system package",
        _ => "other",
    };
    format!(
        "OWASP CRS {} at {} ({origin})",
        install.version.as_deref().unwrap_or("(unknown version)"),
        install.path.display()
    )
}

/// `palisade crs …`.
pub fn crs_cmd(cmd: CrsCmd) -> Result<(), Failure> {
    match cmd {
        CrsCmd::Install {
            config,
            version,
            from,
            sha256,
            insecure_skip_verify,
        } => {
            let dir = data_dir(config.as_deref())?;
            let opts = InstallOptions {
                version: Some(version),
                from,
                sha256,
                insecure_skip_verify,
            };
            let rt = crate::runtime()?;
            let done = rt
                .block_on(crs::install(&dir, &opts))
                .map_err(install_failure)?;
            if done.verified_with.is_none() {
                eprintln!(
                    "warning: installed WITHOUT checksum verification (--insecure-skip-verify): \
                     sha256 {} was not checked against a trusted value",
                    done.sha256
                );
            }
            let verb = if done.source.starts_with("http://") || done.source.starts_with("https://")
            {
                "downloaded"
            } else {
                "read"
            };
            print_stdout(&format!("{verb} {}", done.source))?;
            match &done.verified_with {
                Some(how) => print_stdout(&format!("sha256 {} verified ({how})", done.sha256))?,
                None => print_stdout(&format!("sha256 {} NOT verified", done.sha256))?,
            }
            if let Some(v) = done.rules_version.as_ref().filter(|v| **v != done.version) {
                eprintln!(
                    "note: the archive's rules say OWASP_CRS/{v}, installed as version {}",
                    done.version
                );
            }
            print_stdout(&format!(
                "installed OWASP CRS {} in {} ({} rules); {} now points to it",
                done.version,
                done.path.display(),
                done.rule_count,
                dir.join("crs").join(crs::CURRENT).display()
            ))
        }
        CrsCmd::Status { config, crs } => {
            let dir = data_dir(config.as_deref())?;
            let installed = crs::locate_in(None, &dir, &[]);
            match &installed {
                Some(i) => print_stdout(&format!(
                    "data directory: OWASP CRS {} at {}",
                    i.version.as_deref().unwrap_or("(unknown version)"),
                    i.path.display()
                ))?,
                None => print_stdout(&format!(
                    "data directory: no CRS in {} (run `palisade crs install`)",
                    dir.join("crs").display()
                ))?,
            }
            let system = Path::new(crs::DEBIAN_DIR);
            match crs::locate_in(None, Path::new("/nonexistent"), &[system]) {
                Some(i) => print_stdout(&format!(
                    "system package: OWASP CRS {} at {}",
                    i.version.as_deref().unwrap_or("(unknown version)"),
                    i.path.display()
                ))?,
                None => print_stdout(&format!("system package: none ({})", system.display()))?,
            }
            match find(crs.as_deref(), &dir)? {
                Some(i) => print_stdout(&format!("loads: {}", describe(&i))),
                None => print_stdout("loads: built-in rules (no CRS found)"),
            }
        }
    }
}

/// Errors of `crs install`: bad arguments and refused archives are
/// configuration problems (exit 2: retrying does not help), the network
/// and the filesystem runtime ones (exit 1).
fn install_failure(e: rules::Error) -> Failure {
    use rules::Error as E;
    match e {
        E::InvalidVersion(_) | E::InvalidUrl(_) | E::InvalidSha256(_) => {
            Failure::Config(anyhow::anyhow!("{e}"))
        }
        other => Failure::Runtime(anyhow::anyhow!("{other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("942100"), Ok(942100..=942100));
        assert_eq!(parse_range("1-5"), Ok(1..=5));
        assert!(parse_range("5-1").is_err());
        assert!(parse_range("x").is_err());
    }
}
