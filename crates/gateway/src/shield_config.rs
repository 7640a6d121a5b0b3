//! `[shield]`: IP lists, trusted proxies, rate limits, jails, the challenge
//! and connection guards (docs/shield.md). Parsed with the rest of the config
//! (this is a child module of [`crate::config`], sharing its located errors);
//! list files are read here, so a malformed entry rejects the config (or the
//! reload) with the file and line.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use shield::{
    ChallengeConfig, ConnLimits, EventKind, IpNet, IpSet, JailRule, Quota, RateKey, RateRule,
    ShieldConfig,
};
use toml::Spanned;

use super::{Dur, RouteConfig, ServerConfig, V};
use crate::error::Result;

/// Fixed 64: rate limits and jails each. Bounds per-request work.
pub const MAX_RULES: usize = 64;
/// Fixed 100 000: entries in all allow/deny/trusted lists together (each
/// list file is also capped at 1 MiB). Bounds memory and load time.
pub const MAX_LIST_ENTRIES: usize = 100_000;
/// Fixed 16 bytes: shortest challenge secret accepted.
pub const MIN_SECRET_BYTES: usize = 16;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawShield {
    #[serde(default)]
    allow: Vec<Spanned<String>>,
    #[serde(default)]
    allow_files: Vec<Spanned<PathBuf>>,
    #[serde(default)]
    deny: Vec<Spanned<String>>,
    #[serde(default)]
    deny_files: Vec<Spanned<PathBuf>>,
    #[serde(default)]
    trusted_proxies: Vec<Spanned<String>>,
    ban_ipv4_prefix: Option<Spanned<u8>>,
    ban_ipv6_prefix: Option<Spanned<u8>>,
    repeat_window: Option<Dur>,
    secret: Option<Spanned<String>>,
    #[serde(default)]
    rate_limit: Vec<RawRate>,
    #[serde(default)]
    jail: Vec<RawJail>,
    challenge: Option<RawChallenge>,
    connections: Option<RawConns>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRate {
    name: Spanned<String>,
    #[serde(default)]
    key: Option<Spanned<String>>,
    rate: Spanned<String>,
    burst: Option<Spanned<u64>>,
    #[serde(default)]
    routes: Vec<Spanned<String>>,
    path_prefix: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJail {
    name: Spanned<String>,
    event: Spanned<String>,
    threshold: Spanned<u64>,
    window: Dur,
    soft_threshold: Option<Spanned<u64>>,
    ban: Dur,
    max_ban: Option<Dur>,
    escalation: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChallenge {
    #[serde(default)]
    routes: Vec<Spanned<String>>,
    #[serde(default)]
    skip_paths: Vec<String>,
    difficulty: Option<Spanned<u8>>,
    cookie_ttl: Option<Dur>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConns {
    max_per_ip: Option<Spanned<u64>>,
    rate: Option<Spanned<String>>,
    burst: Option<Spanned<u64>>,
}

/// The validated `[shield]`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ShieldSettings {
    /// What the shield enforces (swapped into the running shield on reload).
    pub config: ShieldConfig,
    /// Key of the challenge signatures; `None`: random per process.
    pub secret: Option<Vec<u8>>,
}

/// Parses `"10/s"`, `"600/m"`, `"1000/h"`, `"5/10s"` into (count, period).
pub fn parse_rate(s: &str) -> std::result::Result<(u32, Duration), String> {
    let bad = || format!("rate `{s}` must look like \"10/s\", \"600/m\", \"1000/h\" or \"5/10s\"");
    let (n, per) = s.trim().split_once('/').ok_or_else(bad)?;
    let n: u32 = n.trim().parse().map_err(|_| bad())?;
    if n == 0 {
        return Err(format!("rate `{s}`: the count must be at least 1"));
    }
    let period = match per.trim() {
        "s" => Duration::from_secs(1),
        "m" => Duration::from_secs(60),
        "h" => Duration::from_secs(3600),
        "d" => Duration::from_secs(86_400),
        other => crate::limits::parse_duration(other).map_err(|e| format!("rate `{s}`: {e}"))?,
    };
    if period.is_zero() {
        return Err(format!("rate `{s}`: the period must be greater than zero"));
    }
    Ok((n, period))
}

/// An error about a whole section (no single position).
fn whole(v: &V, key: &str, message: String) -> crate::error::Error {
    crate::error::Error::Config(Box::new(crate::error::ConfigError {
        file: v.file.to_string(),
        line: 0,
        column: 0,
        key: Some(key.to_string()),
        message,
    }))
}

fn nets(v: &V, list: &[Spanned<String>], key: &str, out: &mut Vec<IpNet>) -> Result<()> {
    for e in list {
        match e.get_ref().parse::<IpNet>() {
            Ok(n) => out.push(n),
            Err(m) => return v.err(e.span(), key, m),
        }
    }
    Ok(())
}

fn files(v: &V, list: &[Spanned<PathBuf>], key: &str, out: &mut Vec<IpNet>) -> Result<()> {
    for f in list {
        match shield::ipset::load_list(f.get_ref()) {
            Ok(n) => out.extend(n),
            Err(e) => return v.err(f.span(), key, e.to_string()),
        }
    }
    Ok(())
}

fn route_refs(
    v: &V,
    list: &[Spanned<String>],
    key: &str,
    routes: &[RouteConfig],
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for r in list {
        let name = r.get_ref();
        if name != "*" && !routes.iter().any(|x| &x.name == name) {
            let known: Vec<&str> = routes.iter().map(|x| x.name.as_str()).collect();
            return v.err(
                r.span(),
                key,
                format!("no route named `{name}` (routes: {})", known.join(", ")),
            );
        }
        out.push(name.clone());
    }
    Ok(out)
}

fn positive(v: &V, s: &Spanned<u64>, key: &str, max: u64) -> Result<u64> {
    match *s.get_ref() {
        n if n >= 1 && n <= max => Ok(n),
        _ => v.err(s.span(), key, format!("must be between 1 and {max}")),
    }
}

pub(super) fn validate(raw: RawShield, v: &V, routes: &[RouteConfig]) -> Result<ShieldSettings> {
    let mut allow = Vec::new();
    nets(v, &raw.allow, "shield.allow", &mut allow)?;
    files(v, &raw.allow_files, "shield.allow_files", &mut allow)?;
    let mut deny = Vec::new();
    nets(v, &raw.deny, "shield.deny", &mut deny)?;
    files(v, &raw.deny_files, "shield.deny_files", &mut deny)?;
    let mut trusted = Vec::new();
    nets(
        v,
        &raw.trusted_proxies,
        "shield.trusted_proxies",
        &mut trusted,
    )?;
    if allow.len() + deny.len() + trusted.len() > MAX_LIST_ENTRIES {
        return Err(whole(
            v,
            "shield",
            format!("more than {MAX_LIST_ENTRIES} list entries in total"),
        ));
    }
    let mut cfg = ShieldConfig {
        allow: IpSet::new(allow),
        deny: IpSet::new(deny),
        trusted_proxies: IpSet::new(trusted),
        ..ShieldConfig::default()
    };
    if let Some(p) = &raw.ban_ipv4_prefix {
        if *p.get_ref() > 32 || *p.get_ref() < 8 {
            return v.err(
                p.span(),
                "shield.ban_ipv4_prefix",
                "must be between 8 and 32",
            );
        }
        cfg.ban_v4_prefix = *p.get_ref();
    }
    if let Some(p) = &raw.ban_ipv6_prefix {
        if *p.get_ref() > 128 || *p.get_ref() < 16 {
            return v.err(
                p.span(),
                "shield.ban_ipv6_prefix",
                "must be between 16 and 128",
            );
        }
        cfg.ban_v6_prefix = *p.get_ref();
    }
    if let Some(d) = raw.repeat_window {
        cfg.repeat_window = d.0;
    }
    let secret = match &raw.secret {
        Some(s) if s.get_ref().len() < MIN_SECRET_BYTES => {
            return v.err(
                s.span(),
                "shield.secret",
                format!("must be at least {MIN_SECRET_BYTES} characters (a random string shared by all nodes)"),
            )
        }
        Some(s) => Some(s.get_ref().as_bytes().to_vec()),
        None => None,
    };

    if raw.rate_limit.len() > MAX_RULES || raw.jail.len() > MAX_RULES {
        return Err(whole(
            v,
            "shield",
            format!("at most {MAX_RULES} rate limits and {MAX_RULES} jails"),
        ));
    }
    let mut names = HashSet::new();
    for r in &raw.rate_limit {
        let name = r.name.get_ref().trim().to_string();
        if name.is_empty() || !names.insert(name.clone()) {
            return v.err(
                r.name.span(),
                "shield.rate_limit.name",
                "must be unique and non-empty",
            );
        }
        let key = match r.key.as_ref().map(|k| k.get_ref().as_str()) {
            None | Some("ip") => RateKey::Ip,
            Some("route") => RateKey::Route,
            Some("user") => RateKey::User,
            Some(k) => match k.strip_prefix("header:") {
                Some(h) => match http::HeaderName::from_bytes(h.trim().as_bytes()) {
                    Ok(h) => RateKey::Header(h),
                    Err(_) => {
                        let span = r.key.as_ref().map(|k| k.span()).unwrap_or(0..0);
                        return v.err(
                            span,
                            "shield.rate_limit.key",
                            format!("`{h}` is not a header name"),
                        );
                    }
                },
                None => {
                    let span = r.key.as_ref().map(|k| k.span()).unwrap_or(0..0);
                    return v.err(
                        span,
                        "shield.rate_limit.key",
                        format!("`{k}`: use \"ip\", \"route\", \"user\" or \"header:<name>\""),
                    );
                }
            },
        };
        let (n, period) = match parse_rate(r.rate.get_ref()) {
            Ok(x) => x,
            Err(m) => return v.err(r.rate.span(), "shield.rate_limit.rate", m),
        };
        let burst = match &r.burst {
            Some(b) => positive(v, b, "shield.rate_limit.burst", 1_000_000)? as u32,
            None => n,
        };
        let quota = Quota {
            rate: n,
            period,
            burst,
        };
        if quota.interval_us() == 0 {
            return v.err(
                r.rate.span(),
                "shield.rate_limit.rate",
                "finer than one request per microsecond",
            );
        }
        let window = shield::gcra::ceil_secs(quota.interval_us().saturating_mul(u64::from(burst)));
        let path_prefix = r.path_prefix.clone().unwrap_or_default();
        cfg.rate_limits.push(RateRule {
            name,
            key,
            quota,
            routes: route_refs(v, &r.routes, "shield.rate_limit.routes", routes)?,
            path_prefix,
            // Digits, `;` and `=` only: always a valid header value.
            policy: http::HeaderValue::from_str(&format!("{burst};w={window}"))
                .unwrap_or_else(|_| http::HeaderValue::from_static("invalid")),
        });
    }
    let mut names = HashSet::new();
    for j in &raw.jail {
        let name = j.name.get_ref().trim().to_string();
        if name.is_empty() || name == "manual" || !names.insert(name.clone()) {
            return v.err(
                j.name.span(),
                "shield.jail.name",
                "must be unique, non-empty and not `manual`",
            );
        }
        let Some(event) = EventKind::parse(j.event.get_ref()) else {
            return v.err(
                j.event.span(),
                "shield.jail.event",
                "use \"scan\", \"waf_block\", \"failed_login\" or \"rate_limited\"",
            );
        };
        let threshold = positive(
            v,
            &j.threshold,
            "shield.jail.threshold",
            u64::from(shield::jail::MAX_THRESHOLD),
        )? as u32;
        let soft_threshold = match &j.soft_threshold {
            Some(s) => {
                let n = positive(v, s, "shield.jail.soft_threshold", u64::from(threshold))? as u32;
                if n >= threshold {
                    return v.err(
                        s.span(),
                        "shield.jail.soft_threshold",
                        "must be below threshold",
                    );
                }
                Some(n)
            }
            None => None,
        };
        if j.window.0.is_zero() || j.ban.0.is_zero() {
            return v.err(
                j.name.span(),
                "shield.jail",
                "window and ban must be greater than zero",
            );
        }
        let max_ban = j.max_ban.map(|d| d.0).unwrap_or(j.ban.0.saturating_mul(64));
        let escalation = match &j.escalation {
            Some(e) => positive(v, e, "shield.jail.escalation", 100)? as u32,
            None => 2,
        };
        cfg.jails.push(JailRule {
            name,
            event,
            threshold,
            window: j.window.0,
            soft_threshold,
            ban: j.ban.0,
            max_ban: max_ban.max(j.ban.0),
            escalation,
        });
    }
    if let Some(c) = raw.challenge {
        let mut ch = ChallengeConfig {
            routes: route_refs(v, &c.routes, "shield.challenge.routes", routes)?,
            skip_paths: c.skip_paths,
            ..ChallengeConfig::default()
        };
        if let Some(d) = &c.difficulty {
            if *d.get_ref() > shield::pow::MAX_DIFFICULTY {
                return v.err(
                    d.span(),
                    "shield.challenge.difficulty",
                    format!("must be at most {}", shield::pow::MAX_DIFFICULTY),
                );
            }
            ch.difficulty = *d.get_ref();
        }
        if let Some(t) = c.cookie_ttl {
            ch.cookie_ttl = t.0;
        }
        cfg.challenge = ch;
    }
    if let Some(c) = raw.connections {
        let mut cl = ConnLimits::default();
        if let Some(m) = &c.max_per_ip {
            cl.max_per_ip =
                Some(positive(v, m, "shield.connections.max_per_ip", 1_000_000)? as usize);
        }
        if let Some(r) = &c.rate {
            let (n, period) = match parse_rate(r.get_ref()) {
                Ok(x) => x,
                Err(m) => return v.err(r.span(), "shield.connections.rate", m),
            };
            let burst = match &c.burst {
                Some(b) => positive(v, b, "shield.connections.burst", 1_000_000)? as u32,
                None => n,
            };
            cl.rate = Some(Quota {
                rate: n,
                period,
                burst,
            });
        }
        cfg.connections = cl;
    }
    Ok(ShieldSettings {
        config: cfg,
        secret,
    })
}

/// `[state]`: checked by the state crate; the SQLite file defaults to
/// `<data_dir>/state.db` (instead of the working directory); an explicit
/// relative `path` is taken against the config file's directory, as the
/// `palisade user` commands read it (`identity::config::load_file`), so
/// both open the same file whatever the working directory.
pub(super) fn validate_state(
    mut raw: state::StateConfig,
    v: &V,
    server: &ServerConfig,
) -> Result<state::StateConfig> {
    if raw.sqlite.path == state::SqliteConfig::default().path {
        raw.sqlite.path = server.data_dir.join("state.db");
    } else if raw.sqlite.path.is_relative() {
        if let Some(base) = std::path::Path::new(v.file).parent() {
            raw.sqlite.path = base.join(&raw.sqlite.path);
        }
    }
    raw.validate()
        .map_err(|e| whole(v, "state", e.to_string()))?;
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;
    use crate::error::Error;

    const BASE: &str = r#"
[[listener]]
name = "web"
listen = "127.0.0.1:8080"
protocol = "http"

[[upstream]]
name = "app"
servers = ["127.0.0.1:3000"]

[[route]]
name = "app"
upstream = "app"
"#;

    fn err(extra: &str) -> crate::error::ConfigError {
        match parse(&format!("{BASE}{extra}"), "t.toml") {
            Err(Error::Config(e)) => *e,
            other => panic!("expected config error, got {other:?}"),
        }
    }

    #[test]
    fn rates_parse() {
        assert_eq!(parse_rate("10/s").unwrap(), (10, Duration::from_secs(1)));
        assert_eq!(parse_rate("5/10s").unwrap(), (5, Duration::from_secs(10)));
        assert_eq!(
            parse_rate(" 600 / m ").unwrap(),
            (600, Duration::from_secs(60))
        );
        for bad in ["10", "0/s", "x/s", "10/parsec", "10/0s"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn full_shield_section_parses() {
        let c = parse(
            &format!(
                "{BASE}{}",
                r#"
[shield]
allow = ["10.0.0.0/8"]
deny = ["203.0.113.0/24", "2001:db8::/32"]
trusted_proxies = ["127.0.0.1"]
ban_ipv6_prefix = 56
secret = "0123456789abcdef0123"

[[shield.rate_limit]]
name = "api"
key = "header:X-Api-Key"
rate = "10/s"
burst = 20
routes = ["app"]
path_prefix = "/api/"

[[shield.jail]]
name = "scanners"
event = "scan"
threshold = 20
window = "1m"
soft_threshold = 10
ban = "10m"

[shield.challenge]
routes = ["*"]
skip_paths = ["/api/"]
difficulty = 12

[shield.connections]
max_per_ip = 32
rate = "5/s"
burst = 10
"#
            ),
            "t.toml",
        )
        .unwrap();
        let s = &c.shield.config;
        assert!(s.allow.contains("10.1.2.3".parse().unwrap()));
        assert!(s.deny.contains("2001:db8::1".parse().unwrap()));
        assert_eq!(s.ban_v6_prefix, 56);
        assert_eq!(s.rate_limits[0].quota.burst, 20);
        assert_eq!(s.rate_limits[0].quota.interval_us(), 100_000);
        assert_eq!(s.rate_limits[0].policy, "20;w=2");
        assert_eq!(s.jails[0].max_ban, Duration::from_secs(600 * 64));
        assert_eq!(s.jails[0].soft_threshold, Some(10));
        assert_eq!(s.challenge.difficulty, 12);
        assert_eq!(s.connections.max_per_ip, Some(32));
        assert_eq!(
            c.shield.secret.as_deref(),
            Some(&b"0123456789abcdef0123"[..])
        );
    }

    #[test]
    fn errors_are_located() {
        let e = err("\n[shield]\ndeny = [\"10.0.0.300\"]\n");
        assert_eq!(e.key.as_deref(), Some("shield.deny"));
        assert_eq!(e.line, 16);
        assert!(e.message.contains("10.0.0.300"), "{}", e.message);
        let e = err("\n[[shield.rate_limit]]\nname = \"a\"\nrate = \"fast\"\n");
        assert_eq!(e.key.as_deref(), Some("shield.rate_limit.rate"));
        let e = err("\n[[shield.rate_limit]]\nname = \"a\"\nrate = \"1/s\"\nroutes = [\"nope\"]\n");
        assert!(e.message.contains("no route named `nope`"), "{}", e.message);
        let e = err("\n[[shield.jail]]\nname = \"j\"\nevent = \"sneeze\"\nthreshold = 3\nwindow = \"1m\"\nban = \"1m\"\n");
        assert_eq!(e.key.as_deref(), Some("shield.jail.event"));
        let e = err("\n[shield]\nsecret = \"short\"\n");
        assert_eq!(e.key.as_deref(), Some("shield.secret"));
        let e = err("\n[shield]\nbogus = 1\n");
        assert!(e.message.contains("unknown field"), "{}", e.message);
    }

    #[test]
    fn list_file_errors_name_the_file_and_line() {
        let dir = std::env::temp_dir().join(format!("gw-shield-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("deny.txt");
        std::fs::write(&p, "# bad actors\n198.51.100.0/24\n198.51.100.999\n").unwrap();
        let e = err(&format!("\n[shield]\ndeny_files = [\"{}\"]\n", p.display()));
        assert_eq!(e.key.as_deref(), Some("shield.deny_files"));
        assert!(
            e.message
                .contains(&format!("{}:3: `198.51.100.999`", p.display())),
            "{}",
            e.message
        );
        std::fs::write(&p, "198.51.100.0/24\n").unwrap();
        let c = parse(
            &format!("{BASE}\n[shield]\ndeny_files = [\"{}\"]\n", p.display()),
            "t",
        )
        .unwrap();
        assert!(c
            .shield
            .config
            .deny
            .contains("198.51.100.5".parse().unwrap()));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
