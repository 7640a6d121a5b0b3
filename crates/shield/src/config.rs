//! The shield's validated settings for one config generation (the gateway
//! parses `[shield]` from TOML into these; see docs/shield.md).

use std::time::Duration;

use http::HeaderName;

use crate::ipset::IpSet;
use crate::jail::JailRule;
use state::Quota;

/// Default 16: leading zero bits of the proof of work (~65 000 hashes, well
/// under a second in a browser).
pub const DEFAULT_DIFFICULTY: u8 = 16;
/// Default 1 hour: lifetime of the challenge cookie.
pub const DEFAULT_COOKIE_TTL: Duration = Duration::from_secs(3600);
/// Default 24 hours: how long past bans count towards escalation.
pub const DEFAULT_REPEAT_WINDOW: Duration = Duration::from_secs(86_400);
/// Default 64: prefix length an IPv6 ban covers (one site's allocation; an
/// attacker holds the whole /64 and rotates addresses inside it).
pub const DEFAULT_BAN_V6_PREFIX: u8 = 64;

/// Everything `[shield]` configures.
#[derive(Debug, Clone, PartialEq)]
pub struct ShieldConfig {
    /// Clients never refused by the shield (checked first: no lock-out).
    pub allow: IpSet,
    /// Clients always refused (403).
    pub deny: IpSet,
    /// Peers whose `X-Forwarded-For` / `Forwarded` are believed.
    pub trusted_proxies: IpSet,
    /// Prefix an IPv4 ban covers (default 32).
    pub ban_v4_prefix: u8,
    /// Prefix an IPv6 ban covers (default 64).
    pub ban_v6_prefix: u8,
    /// How long past bans count for escalation.
    pub repeat_window: Duration,
    /// Rate limits, all checked; the first refusal answers.
    pub rate_limits: Vec<RateRule>,
    /// Jails.
    pub jails: Vec<JailRule>,
    /// Proof-of-work challenge.
    pub challenge: ChallengeConfig,
    /// Accept-time limits.
    pub connections: ConnLimits,
}

impl Default for ShieldConfig {
    fn default() -> Self {
        ShieldConfig {
            allow: IpSet::default(),
            deny: IpSet::default(),
            trusted_proxies: IpSet::default(),
            ban_v4_prefix: 32,
            ban_v6_prefix: DEFAULT_BAN_V6_PREFIX,
            repeat_window: DEFAULT_REPEAT_WINDOW,
            rate_limits: Vec::new(),
            jails: Vec::new(),
            challenge: ChallengeConfig::default(),
            connections: ConnLimits::default(),
        }
    }
}

/// What a rate limit counts per.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateKey {
    /// Per client IP.
    Ip,
    /// Per route (all clients together).
    Route,
    /// Per authenticated user (requests without a user are not counted).
    User,
    /// Per value of a request header (requests without it are not counted).
    Header(HeaderName),
}

/// One `[[shield.rate_limit]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RateRule {
    /// Name (log, key prefix).
    pub name: String,
    /// What it counts per.
    pub key: RateKey,
    /// Rate and burst.
    pub quota: Quota,
    /// Route names it applies to (empty: all).
    pub routes: Vec<String>,
    /// Path prefix it applies to (empty: all).
    pub path_prefix: String,
    /// Value of the `RateLimit-Policy` header (`10;w=1`).
    pub policy: http::HeaderValue,
}

impl RateRule {
    /// True when the rule covers a request on `route` for `path`.
    pub fn applies(&self, route: Option<&str>, path: &str) -> bool {
        (self.routes.is_empty() || route.is_some_and(|r| self.routes.iter().any(|x| x == r)))
            && path.starts_with(self.path_prefix.as_str())
    }
}

/// `[shield.challenge]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ChallengeConfig {
    /// Route names whose every client must solve it (`*`: every route).
    pub routes: Vec<String>,
    /// Path prefixes never challenged (APIs, health checks).
    pub skip_paths: Vec<String>,
    /// Leading zero bits required.
    pub difficulty: u8,
    /// Cookie lifetime.
    pub cookie_ttl: Duration,
}

impl Default for ChallengeConfig {
    fn default() -> Self {
        ChallengeConfig {
            routes: Vec::new(),
            skip_paths: Vec::new(),
            difficulty: DEFAULT_DIFFICULTY,
            cookie_ttl: DEFAULT_COOKIE_TTL,
        }
    }
}

impl ChallengeConfig {
    /// True when `route` always challenges.
    pub fn route_requires(&self, route: Option<&str>) -> bool {
        self.routes
            .iter()
            .any(|r| r == "*" || Some(r.as_str()) == route)
    }

    /// True when `path` is exempt.
    pub fn skipped(&self, path: &str) -> bool {
        self.skip_paths.iter().any(|p| path.starts_with(p.as_str()))
    }
}

/// `[shield.connections]`: accept-time limits, before TLS.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConnLimits {
    /// Concurrent connections per client IP.
    pub max_per_ip: Option<usize>,
    /// New connections per client IP (rate and burst).
    pub rate: Option<Quota>,
}
