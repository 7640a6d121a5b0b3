//! Access rules: first match wins, default deny.
//!
//! A rule matches when every criterion it sets matches (criteria it leaves
//! empty match anything); within one criterion any listed value matches:
//!
//! * `hosts`: exact host names or `*.example.com` (sub-domains only);
//!   case-insensitive, port ignored;
//! * `paths`: segment-aware prefixes (`/admin` matches `/admin` and
//!   `/admin/x`, not `/administrator`); `path_regex`: regexes on the path
//!   (no query string); a path matching either list matches;
//! * `methods`: HTTP methods; `networks`: CIDRs or addresses of the client;
//! * `users` / `roles`: the authenticated subject.
//!
//! A request with no session that would match a rule except for its
//! `users`/`roles` cannot be decided yet: the decision asks for a login
//! ([`Decision::needs_login`]) and is made again once the user is known.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// 1000: most rules in one list (bounds per-request work).
pub const MAX_RULES: usize = 1000;
/// 64 KiB: compiled size limit of a path regex (bounds memory and time).
pub const MAX_REGEX_SIZE: usize = 64 << 10;

/// What a matching rule demands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// No authentication.
    Bypass,
    /// A session with a password.
    OneFactor,
    /// A session with password and TOTP.
    TwoFactor,
    /// Refused whoever asks.
    Deny,
}

impl std::fmt::Display for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Policy::Bypass => "bypass",
            Policy::OneFactor => "one_factor",
            Policy::TwoFactor => "two_factor",
            Policy::Deny => "deny",
        })
    }
}

/// One rule as configured (`[[identity.access.rules]]`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuleConfig {
    /// Name shown by `access check` and in logs (default `rule <n>`).
    pub name: Option<String>,
    /// Host names or `*.domain` wildcards.
    pub hosts: Vec<String>,
    /// Path prefixes.
    pub paths: Vec<String>,
    /// Path regexes.
    pub path_regex: Vec<String>,
    /// HTTP methods.
    pub methods: Vec<String>,
    /// Client networks (CIDR or address).
    pub networks: Vec<String>,
    /// Usernames.
    pub users: Vec<String>,
    /// Roles.
    pub roles: Vec<String>,
    /// Verified client-certificate subject CNs (mTLS); `"*"` matches any
    /// verified certificate. Requests without a certificate never match.
    pub cert_cn: Vec<String>,
    /// Verified client-certificate DNS or URI SANs (mTLS); `"*"` matches
    /// any verified certificate.
    pub cert_san: Vec<String>,
    /// What a match demands.
    pub policy: Option<Policy>,
}

/// A network in CIDR notation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    len: u8,
}

impl Cidr {
    /// Parses `10.0.0.0/8`, `2001:db8::/32` or a bare address.
    pub fn parse(s: &str) -> Option<Cidr> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match l {
            Some(l) => l.trim().parse::<u8>().ok().filter(|l| *l <= max)?,
            None => max,
        };
        Some(Cidr { addr, len })
    }

    /// Whether `ip` is inside (IPv4-mapped IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v) => v.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(i)) => {
                let m = if self.len == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.len)
                };
                u32::from(n) & m == u32::from(i) & m
            }
            (IpAddr::V6(n), IpAddr::V6(i)) => {
                let m = if self.len == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.len)
                };
                u128::from(n) & m == u128::from(i) & m
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

#[derive(Debug)]
struct Rule {
    name: String,
    hosts: Vec<String>,
    paths: Vec<String>,
    regexes: Vec<regex::Regex>,
    methods: Vec<String>,
    networks: Vec<Cidr>,
    users: Vec<String>,
    roles: Vec<String>,
    cert_cn: Vec<String>,
    cert_san: Vec<String>,
    policy: Policy,
}

/// The verified client certificate of a request's connection (mTLS), as
/// access rules see it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientCert {
    /// Subject CN values.
    pub cn: Vec<String>,
    /// DNS and URI SANs.
    pub san: Vec<String>,
}

/// Whether one of `have` matches one of `want` (`*`: any, ASCII case-insensitive).
fn cert_matches<'a>(want: &'a [String], have: &[String]) -> Option<&'a str> {
    want.iter()
        .find(|w| {
            (w.as_str() == "*" && !have.is_empty())
                || have.iter().any(|h| h.eq_ignore_ascii_case(w))
        })
        .map(|w| w.as_str())
}

/// The request being decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// Host (a port is ignored).
    pub host: &'a str,
    /// Path without the query string.
    pub path: &'a str,
    /// HTTP method.
    pub method: &'a str,
    /// Client address.
    pub ip: IpAddr,
    /// The verified client certificate (mTLS listeners), if any.
    pub cert: Option<&'a ClientCert>,
}

/// Who is asking, once authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject<'a> {
    /// Normalised username.
    pub user: &'a str,
    /// Roles.
    pub roles: &'a [String],
}

/// The outcome of [`AccessRules::decide`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Index of the matching rule (`None`: the default policy).
    pub rule: Option<usize>,
    /// Its name (`default` for the default policy).
    pub name: String,
    /// What it demands.
    pub policy: Policy,
    /// Why, in words (the criteria that matched).
    pub reason: String,
    /// An anonymous request reached a rule about users/roles: log in first.
    pub needs_login: bool,
}

/// A compiled rule list.
#[derive(Debug)]
pub struct AccessRules {
    rules: Vec<Rule>,
    default: Policy,
}

fn host_only(h: &str) -> String {
    let h = h.trim();
    let h = if let Some(rest) = h.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        h.rsplit_once(':')
            .filter(|(_, p)| p.bytes().all(|c| c.is_ascii_digit()))
            .map(|(h, _)| h)
            .unwrap_or(h)
    };
    h.trim_end_matches('.').to_ascii_lowercase()
}

fn host_matches(pat: &str, host: &str) -> bool {
    match pat.strip_prefix("*.") {
        Some(dom) => {
            host.len() > dom.len() + 1
                && host.ends_with(dom)
                && host[..host.len() - dom.len()].ends_with('.')
        }
        None => pat == host,
    }
}

fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix.ends_with('/') {
        return path.starts_with(prefix);
    }
    path == prefix || (path.starts_with(prefix) && path.as_bytes().get(prefix.len()) == Some(&b'/'))
}

impl AccessRules {
    /// Compiles `rules`; requests no rule matches get `default` (normally
    /// [`Policy::Deny`]).
    pub fn new(rules: &[RuleConfig], default: Policy) -> Result<AccessRules> {
        if rules.len() > MAX_RULES {
            return Err(Error::Rule {
                rule: "rules".into(),
                msg: format!("more than {MAX_RULES} rules"),
            });
        }
        let mut out = Vec::with_capacity(rules.len());
        for (i, r) in rules.iter().enumerate() {
            let name = r.name.clone().unwrap_or_else(|| format!("rule {}", i + 1));
            let err = |msg: String| Error::Rule {
                rule: name.clone(),
                msg,
            };
            let policy = r.policy.ok_or_else(|| {
                err("policy missing (bypass, one_factor, two_factor or deny)".into())
            })?;
            let mut networks = Vec::new();
            for n in &r.networks {
                networks.push(Cidr::parse(n).ok_or_else(|| err(format!("bad network {n:?}")))?);
            }
            let mut regexes = Vec::new();
            for p in &r.path_regex {
                regexes.push(
                    regex::RegexBuilder::new(p)
                        .size_limit(MAX_REGEX_SIZE)
                        .build()
                        .map_err(|e| err(format!("path_regex {p:?}: {e}")))?,
                );
            }
            for p in &r.paths {
                if !p.starts_with('/') {
                    return Err(err(format!("path {p:?} must start with '/'")));
                }
            }
            if policy == Policy::Bypass && !(r.users.is_empty() && r.roles.is_empty()) {
                return Err(err(
                    "bypass cannot depend on users or roles (nobody is logged in to check)".into(),
                ));
            }
            let users = r
                .users
                .iter()
                .map(|u| crate::username::normalize_username(u))
                .collect::<Result<Vec<_>>>()
                .map_err(|e| err(e.to_string()))?;
            out.push(Rule {
                name,
                hosts: r
                    .hosts
                    .iter()
                    .map(|h| h.trim().trim_end_matches('.').to_ascii_lowercase())
                    .collect(),
                paths: r.paths.clone(),
                regexes,
                methods: r
                    .methods
                    .iter()
                    .map(|m| m.trim().to_ascii_uppercase())
                    .collect(),
                networks,
                users,
                roles: r.roles.iter().map(|x| x.trim().to_lowercase()).collect(),
                cert_cn: r.cert_cn.iter().map(|x| x.trim().to_owned()).collect(),
                cert_san: r.cert_san.iter().map(|x| x.trim().to_owned()).collect(),
                policy,
            });
        }
        Ok(AccessRules {
            rules: out,
            default,
        })
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Decides `req` for `subject` (`None`: not logged in).
    pub fn decide(&self, req: &Request<'_>, subject: Option<&Subject<'_>>) -> Decision {
        let host = host_only(req.host);
        let method = req.method.to_ascii_uppercase();
        for (i, r) in self.rules.iter().enumerate() {
            let mut why: Vec<String> = Vec::new();
            if !r.hosts.is_empty() {
                match r.hosts.iter().find(|p| host_matches(p, &host)) {
                    Some(p) => why.push(format!("host {host} ~ {p}")),
                    None => continue,
                }
            }
            if !r.paths.is_empty() || !r.regexes.is_empty() {
                if let Some(p) = r.paths.iter().find(|p| prefix_matches(p, req.path)) {
                    why.push(format!("path {} under {p}", req.path));
                } else if let Some(x) = r.regexes.iter().find(|x| x.is_match(req.path)) {
                    why.push(format!("path {} ~ /{}/", req.path, x.as_str()));
                } else {
                    continue;
                }
            }
            if !r.methods.is_empty() {
                if r.methods.contains(&method) {
                    why.push(format!("method {method}"));
                } else {
                    continue;
                }
            }
            if !r.networks.is_empty() {
                match r.networks.iter().find(|n| n.contains(req.ip)) {
                    Some(n) => why.push(format!("client {} in {n}", req.ip)),
                    None => continue,
                }
            }
            if !r.cert_cn.is_empty() {
                match req.cert.and_then(|c| cert_matches(&r.cert_cn, &c.cn)) {
                    Some(w) => why.push(format!("client certificate CN ~ {w}")),
                    None => continue,
                }
            }
            if !r.cert_san.is_empty() {
                match req.cert.and_then(|c| cert_matches(&r.cert_san, &c.san)) {
                    Some(w) => why.push(format!("client certificate SAN ~ {w}")),
                    None => continue,
                }
            }
            if !r.users.is_empty() || !r.roles.is_empty() {
                let Some(s) = subject else {
                    why.push("rule names users/roles and nobody is logged in".into());
                    return Decision {
                        rule: Some(i),
                        name: r.name.clone(),
                        policy: Policy::OneFactor,
                        reason: why.join(", "),
                        needs_login: true,
                    };
                };
                if r.users.iter().any(|u| u == s.user) {
                    why.push(format!("user {}", s.user));
                } else if let Some(role) = r.roles.iter().find(|x| s.roles.contains(x)) {
                    why.push(format!("user {} has role {role}", s.user));
                } else {
                    continue;
                }
            }
            if why.is_empty() {
                why.push("rule matches every request".into());
            }
            return Decision {
                rule: Some(i),
                name: r.name.clone(),
                policy: r.policy,
                reason: why.join(", "),
                needs_login: false,
            };
        }
        Decision {
            rule: None,
            name: "default".into(),
            policy: self.default,
            reason: "no rule matched".into(),
            needs_login: false,
        }
    }
}

/// Splits an absolute URL into (host, path without query): for
/// `palisade access check --url`.
pub fn split_url(url: &str) -> Result<(String, String)> {
    let bad = || Error::Rule {
        rule: "url".into(),
        msg: format!("{url:?} is not an absolute http(s) URL"),
    };
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(bad)?;
    let (auth, path) = match rest.find(['/', '?', '#']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let auth = auth.rsplit('@').next().unwrap_or(auth);
    if auth.is_empty() {
        return Err(bad());
    }
    let path = path.split(['?', '#']).next().unwrap_or("");
    let path = if path.is_empty() { "/" } else { path };
    Ok((host_only(auth), path.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> AccessRules {
        let toml_like = vec![
            RuleConfig {
                name: Some("health".into()),
                paths: vec!["/healthz".into()],
                policy: Some(Policy::Bypass),
                ..Default::default()
            },
            RuleConfig {
                name: Some("lan-admin-deny-writes".into()),
                hosts: vec!["admin.example.com".into()],
                methods: vec!["delete".into()],
                networks: vec!["0.0.0.0/0".into(), "::/0".into()],
                users: vec!["intern".into()],
                policy: Some(Policy::Deny),
                ..Default::default()
            },
            RuleConfig {
                name: Some("admins".into()),
                hosts: vec!["admin.example.com".into()],
                roles: vec!["admin".into()],
                policy: Some(Policy::TwoFactor),
                ..Default::default()
            },
            RuleConfig {
                name: Some("office".into()),
                hosts: vec!["*.example.com".into()],
                networks: vec!["10.0.0.0/8".into(), "2001:db8::/32".into()],
                policy: Some(Policy::OneFactor),
                ..Default::default()
            },
            RuleConfig {
                name: Some("api".into()),
                path_regex: vec![r"^/api/v[0-9]+/".into()],
                policy: Some(Policy::TwoFactor),
                ..Default::default()
            },
        ];
        AccessRules::new(&toml_like, Policy::Deny).unwrap()
    }

    #[test]
    fn table() {
        let r = rules();
        let admin_roles = vec!["admin".to_string()];
        let none: Vec<String> = vec![];
        let admin = Subject {
            user: "alice",
            roles: &admin_roles,
        };
        let intern = Subject {
            user: "intern",
            roles: &none,
        };
        let lan: IpAddr = "10.1.2.3".parse().unwrap();
        let wan: IpAddr = "203.0.113.5".parse().unwrap();
        let v6: IpAddr = "2001:db8::7".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.9.9.9".parse().unwrap();
        // (host, path, method, ip, subject, want rule name, want policy, needs_login)
        type Case<'a> = (
            &'a str,
            &'a str,
            &'a str,
            IpAddr,
            Option<&'a Subject<'a>>,
            &'a str,
            Policy,
            bool,
        );
        let cases: Vec<Case> = vec![
            (
                "any.host",
                "/healthz",
                "GET",
                wan,
                None,
                "health",
                Policy::Bypass,
                false,
            ),
            (
                "any.host",
                "/healthz/deep",
                "GET",
                wan,
                None,
                "health",
                Policy::Bypass,
                false,
            ),
            (
                "any.host",
                "/healthzz",
                "GET",
                wan,
                None,
                "default",
                Policy::Deny,
                false,
            ),
            (
                "ADMIN.example.com:443",
                "/",
                "DELETE",
                wan,
                Some(&intern),
                "lan-admin-deny-writes",
                Policy::Deny,
                false,
            ),
            (
                "admin.example.com",
                "/",
                "GET",
                wan,
                Some(&intern),
                "default",
                Policy::Deny,
                false,
            ),
            (
                "admin.example.com",
                "/",
                "GET",
                wan,
                None,
                "admins",
                Policy::OneFactor,
                true,
            ),
            (
                "admin.example.com",
                "/",
                "DELETE",
                wan,
                None,
                "lan-admin-deny-writes",
                Policy::OneFactor,
                true,
            ),
            (
                "admin.example.com",
                "/",
                "GET",
                wan,
                Some(&admin),
                "admins",
                Policy::TwoFactor,
                false,
            ),
            (
                "admin.example.com",
                "/",
                "DELETE",
                wan,
                Some(&admin),
                "admins",
                Policy::TwoFactor,
                false,
            ),
            (
                "wiki.example.com",
                "/",
                "GET",
                lan,
                None,
                "office",
                Policy::OneFactor,
                false,
            ),
            (
                "wiki.example.com",
                "/",
                "GET",
                v6,
                None,
                "office",
                Policy::OneFactor,
                false,
            ),
            (
                "wiki.example.com",
                "/",
                "GET",
                mapped,
                None,
                "office",
                Policy::OneFactor,
                false,
            ),
            (
                "wiki.example.com",
                "/",
                "GET",
                wan,
                None,
                "default",
                Policy::Deny,
                false,
            ),
            (
                "example.com",
                "/",
                "GET",
                lan,
                None,
                "default",
                Policy::Deny,
                false,
            ),
            (
                "evil-example.com",
                "/",
                "GET",
                lan,
                None,
                "default",
                Policy::Deny,
                false,
            ),
            (
                "x.org",
                "/api/v2/users",
                "POST",
                wan,
                None,
                "api",
                Policy::TwoFactor,
                false,
            ),
            (
                "x.org",
                "/api/vX/users",
                "POST",
                wan,
                None,
                "default",
                Policy::Deny,
                false,
            ),
        ];
        for (host, path, method, ip, subj, name, policy, login) in cases {
            let d = r.decide(
                &Request {
                    host,
                    path,
                    method,
                    ip,
                    cert: None,
                },
                subj,
            );
            assert_eq!(
                (d.name.as_str(), d.policy, d.needs_login),
                (name, policy, login),
                "{host} {path} {method} {ip}: {d:?}"
            );
            assert!(!d.reason.is_empty());
        }
    }

    #[test]
    fn reasons_name_the_criteria() {
        let r = rules();
        let d = r.decide(
            &Request {
                host: "wiki.example.com",
                path: "/",
                method: "GET",
                ip: "10.0.0.1".parse().unwrap(),
                cert: None,
            },
            None,
        );
        assert_eq!(d.rule, Some(3));
        assert_eq!(
            d.reason,
            "host wiki.example.com ~ *.example.com, client 10.0.0.1 in 10.0.0.0/8"
        );
    }

    #[test]
    fn bad_rules_refused() {
        let bad = |r: RuleConfig| {
            AccessRules::new(&[r], Policy::Deny)
                .unwrap_err()
                .to_string()
        };
        assert!(bad(RuleConfig::default()).contains("policy missing"));
        let e = bad(RuleConfig {
            networks: vec!["10.0.0.0/33".into()],
            policy: Some(Policy::Deny),
            ..Default::default()
        });
        assert!(e.contains("bad network"), "{e}");
        let e = bad(RuleConfig {
            path_regex: vec!["(".into()],
            policy: Some(Policy::Deny),
            ..Default::default()
        });
        assert!(e.contains("path_regex"), "{e}");
        let e = bad(RuleConfig {
            paths: vec!["admin".into()],
            policy: Some(Policy::Deny),
            ..Default::default()
        });
        assert!(e.contains("must start"), "{e}");
        let e = bad(RuleConfig {
            roles: vec!["x".into()],
            policy: Some(Policy::Bypass),
            ..Default::default()
        });
        assert!(e.contains("bypass"), "{e}");
        let big = RuleConfig {
            path_regex: vec!["a{1000}{1000}".into()],
            policy: Some(Policy::Deny),
            ..Default::default()
        };
        assert!(AccessRules::new(&[big], Policy::Deny).is_err());
    }

    #[test]
    fn empty_list_denies_by_default() {
        let r = AccessRules::new(&[], Policy::Deny).unwrap();
        let d = r.decide(
            &Request {
                host: "a",
                path: "/",
                method: "GET",
                ip: "127.0.0.1".parse().unwrap(),
                cert: None,
            },
            None,
        );
        assert_eq!((d.rule, d.policy), (None, Policy::Deny));
    }

    #[test]
    fn urls() {
        assert_eq!(
            split_url("https://Admin.Example.com:8443/x/y?q=1").unwrap(),
            ("admin.example.com".into(), "/x/y".into())
        );
        assert_eq!(split_url("http://h").unwrap(), ("h".into(), "/".into()));
        assert_eq!(
            split_url("http://u:p@[::1]:80?x").unwrap(),
            ("::1".into(), "/".into())
        );
        assert!(split_url("ftp://h/").is_err());
        assert!(split_url("https:///x").is_err());
    }

    #[test]
    fn client_certificate_matchers() {
        let rules = AccessRules::new(
            &[
                RuleConfig {
                    name: Some("device".into()),
                    cert_cn: vec!["sensor-7".into()],
                    policy: Some(Policy::Bypass),
                    ..Default::default()
                },
                RuleConfig {
                    name: Some("any-cert".into()),
                    cert_san: vec!["*".into()],
                    policy: Some(Policy::OneFactor),
                    ..Default::default()
                },
            ],
            Policy::Deny,
        )
        .unwrap();
        let ask = |cert: Option<&ClientCert>| {
            rules.decide(
                &Request {
                    host: "h",
                    path: "/",
                    method: "GET",
                    ip: "127.0.0.1".parse().unwrap(),
                    cert,
                },
                None,
            )
        };
        let sensor = ClientCert {
            cn: vec!["Sensor-7".into()],
            san: vec!["sensor-7.example".into()],
        };
        assert_eq!(ask(Some(&sensor)).policy, Policy::Bypass);
        let other = ClientCert {
            cn: vec!["laptop".into()],
            san: vec!["laptop.example".into()],
        };
        let d = ask(Some(&other));
        assert_eq!((d.rule, d.policy), (Some(1), Policy::OneFactor));
        // No certificate: neither rule matches, `*` included.
        assert_eq!(ask(None).policy, Policy::Deny);
        assert_eq!(ask(Some(&ClientCert::default())).policy, Policy::Deny);
    }
}
