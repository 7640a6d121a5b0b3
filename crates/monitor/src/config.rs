//! `[monitor]` config: the event store, the anomaly model and alert sinks
//! (docs/monitoring.md). Parsed with serde by the gateway's config loader;
//! [`Config::validate`] reports errors with the key they concern.

use std::path::PathBuf;
use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::Deserialize;

use crate::events::Kind;

/// Fixed 16: alert sinks. Bounds per-event fan-out work.
pub const MAX_ALERT_SINKS: usize = 16;

/// A duration in config syntax: `"250ms"`, `"30s"`, `"5m"`, `"2h"`, `"7d"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

/// Parses `"250ms"`, `"30s"`, `"5m"`, `"2h"`, `"7d"`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{s}`: a duration needs a unit (ms, s, m, h, d)"))?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("`{s}`: expected a number then a unit, such as \"30s\""))?;
    let ms = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (ms, s, m, h, d)")),
    };
    n.checked_mul(ms)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("`{s}`: too long"))
}

/// Parses a size: `"64MiB"`, `"512KiB"`, `"1GiB"`, `"1000"` (bytes).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("`{s}`: expected a size such as \"64MiB\""))?;
    let mul: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "KB" | "k" => 1 << 10,
        "MiB" | "MB" | "M" => 1 << 20,
        "GiB" | "GB" | "G" => 1 << 30,
        u => return Err(format!("`{s}`: unknown unit `{u}` (B, KiB, MiB, GiB)")),
    };
    n.checked_mul(mul)
        .ok_or_else(|| format!("`{s}`: too large"))
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s).map(Dur).map_err(de::Error::custom)
    }
}

/// A size: an integer (bytes) or `"64MiB"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(Size(n)),
            Raw::S(s) => parse_size(&s).map(Size).map_err(de::Error::custom),
        }
    }
}

/// `[monitor]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `false`: no events are made at all (the bus, store, metrics from
    /// events, anomaly model and alerts are off). Default true.
    pub enabled: bool,
    /// `[monitor.store]`.
    pub store: StoreConfig,
    /// `[monitor.anomaly]`.
    pub anomaly: AnomalyConfig,
    /// `[[monitor.alert]]`.
    pub alert: Vec<AlertConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            enabled: true,
            store: StoreConfig::default(),
            anomaly: AnomalyConfig::default(),
            alert: Vec::new(),
        }
    }
}

/// `[monitor.store]`: events kept in SQLite.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Default true.
    pub enabled: bool,
    /// Database file; relative paths are under `server.data_dir`. Default
    /// `events.db`.
    pub path: PathBuf,
    /// Events older than this are deleted. Default 7 days.
    pub max_age: Dur,
    /// At most this many events are kept (oldest deleted). Default 1 000 000.
    pub max_events: u64,
    /// The database is kept under about this size (oldest deleted).
    /// Default 256 MiB.
    pub max_bytes: Size,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            enabled: true,
            path: PathBuf::from("events.db"),
            max_age: Dur(Duration::from_secs(7 * 86_400)),
            max_events: 1_000_000,
            max_bytes: Size(256 << 20),
        }
    }
}

/// `[monitor.anomaly]`: the online baseline model (see [`crate::anomaly`]).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnomalyConfig {
    /// Default true.
    pub enabled: bool,
    /// Length of one observation window. Default 10s.
    pub window: Dur,
    /// Weight of the newest window in the exponentially weighted baselines
    /// (0 < alpha ≤ 1). Default 0.05 (about the last 20 windows).
    pub alpha: f64,
    /// A feature deviates when its z-score exceeds this. Default 4.0.
    pub z_threshold: f64,
    /// Windows a baseline must have seen before it judges. Default 6.
    pub warmup_windows: u32,
    /// When set, a client flagged as anomalous is banned this long by the
    /// shield (jail `anomaly`). Default: not banned (event only).
    pub ban: Option<Dur>,
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        AnomalyConfig {
            enabled: true,
            window: Dur(Duration::from_secs(10)),
            alpha: 0.05,
            z_threshold: 4.0,
            warmup_windows: 6,
            ban: None,
        }
    }
}

/// What an alert sink sends to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkType {
    /// HTTP POST of a JSON document (`url`).
    Webhook,
    /// HTTP POST of Slack's incoming-webhook JSON (`{"text": …}`).
    Slack,
    /// RFC 5424 syslog over UDP (`address`).
    SyslogUdp,
    /// RFC 5424 syslog over TCP, octet-counted framing (RFC 6587).
    SyslogTcp,
}

/// One `[[monitor.alert]]` sink.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertConfig {
    /// Name (logs, metrics).
    pub name: String,
    /// Sink type.
    #[serde(rename = "type")]
    pub kind: SinkType,
    /// `http://` or `https://` URL (webhook, slack).
    #[serde(default)]
    pub url: Option<String>,
    /// `host:port` (syslog).
    #[serde(default)]
    pub address: Option<String>,
    /// Event kinds sent. Default: waf_block, shield_ban, anomaly, lockout,
    /// config_reload_failed, tunnel_deny.
    #[serde(default = "default_kinds")]
    pub kinds: Vec<String>,
    /// Only events at least this severe (syslog scale: 0 emergency ..= 7
    /// debug; an event passes when its severity ≤ this). Default 5.
    #[serde(default = "default_severity")]
    pub min_severity: u8,
    /// Only WAF events with one of these rule ids (empty: any).
    #[serde(default)]
    pub rules: Vec<u64>,
    /// Events of a kind needed within one batch window to alert. Default 1.
    #[serde(default = "default_threshold")]
    pub threshold: u64,
    /// Batch window: events are collected this long after the first one,
    /// then sent as one alert with counts. Default 10s.
    #[serde(default = "default_batch")]
    pub batch: Dur,
    /// After an alert for a kind, more of that kind are only counted for
    /// this long (then one follow-up alert carries the count). Default 5m.
    #[serde(default = "default_dedup")]
    pub dedup: Dur,
    /// Delivery attempts after the first failure (exponential back-off
    /// from 1s, capped at [`crate::alerts::MAX_RETRIES`]). Default 5.
    #[serde(default = "default_retries")]
    pub retries: u32,
}

fn default_kinds() -> Vec<String> {
    [
        "waf_block",
        "shield_ban",
        "anomaly",
        "lockout",
        "config_reload_failed",
        "tunnel_deny",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}
fn default_severity() -> u8 {
    5
}
fn default_threshold() -> u64 {
    1
}
fn default_batch() -> Dur {
    Dur(Duration::from_secs(10))
}
fn default_dedup() -> Dur {
    Dur(Duration::from_secs(300))
}
fn default_retries() -> u32 {
    5
}

impl Config {
    /// Checks values serde cannot: `Err((key, message))`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let e = |k: &str, m: String| Err((k.to_string(), m));
        let a = &self.anomaly;
        if !(a.alpha > 0.0 && a.alpha <= 1.0) {
            return e("monitor.anomaly.alpha", "must be in (0, 1]".into());
        }
        if !(a.z_threshold > 0.0 && a.z_threshold.is_finite()) {
            return e("monitor.anomaly.z_threshold", "must be > 0".into());
        }
        if a.window.0 < Duration::from_millis(100) {
            return e("monitor.anomaly.window", "must be at least 100ms".into());
        }
        if self.store.max_events == 0 {
            return e("monitor.store.max_events", "must be > 0".into());
        }
        if self.alert.len() > MAX_ALERT_SINKS {
            return e(
                "monitor.alert",
                format!("at most {MAX_ALERT_SINKS} alert sinks"),
            );
        }
        let mut names = std::collections::HashSet::new();
        for (i, s) in self.alert.iter().enumerate() {
            let k = |f: &str| format!("monitor.alert[{i}].{f}");
            if s.name.is_empty() || !names.insert(s.name.clone()) {
                return e(&k("name"), format!("empty or duplicate name `{}`", s.name));
            }
            match s.kind {
                SinkType::Webhook | SinkType::Slack => match s.url.as_deref() {
                    Some(u) if u.starts_with("http://") || u.starts_with("https://") => {
                        crate::alerts::parse_url(u).map_err(|m| (k("url"), m))?;
                    }
                    _ => return e(&k("url"), "needs an http:// or https:// url".into()),
                },
                SinkType::SyslogUdp | SinkType::SyslogTcp => {
                    if s.address.as_deref().is_none_or(|a| !a.contains(':')) {
                        return e(&k("address"), "needs a host:port address".into());
                    }
                }
            }
            for kind in &s.kinds {
                if !Kind::NAMES.contains(&kind.as_str()) {
                    return e(
                        &k("kinds"),
                        format!(
                            "unknown event kind `{kind}` (one of {})",
                            Kind::NAMES.join(", ")
                        ),
                    );
                }
            }
            if s.min_severity > 7 {
                return e(&k("min_severity"), "must be 0..=7".into());
            }
            if s.threshold == 0 {
                return e(&k("threshold"), "must be ≥ 1".into());
            }
            if s.batch.0.is_zero() {
                return e(&k("batch"), "must be > 0".into());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes_parse() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(604_800));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("5y").is_err());
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert!(parse_size("1TiB").is_err());
    }

    #[test]
    fn validate_names_the_bad_key() {
        let mut c = Config::default();
        assert!(c.validate().is_ok());
        c.alert.push(AlertConfig {
            name: "a".into(),
            kind: SinkType::Webhook,
            url: Some("ftp://x".into()),
            address: None,
            kinds: default_kinds(),
            min_severity: 5,
            rules: vec![],
            threshold: 1,
            batch: default_batch(),
            dedup: default_dedup(),
            retries: 1,
        });
        assert_eq!(c.validate().unwrap_err().0, "monitor.alert[0].url");
        c.alert[0].url = Some("http://127.0.0.1:9/hook".into());
        assert!(c.validate().is_ok());
        c.alert[0].kinds = vec!["nope".into()];
        assert_eq!(c.validate().unwrap_err().0, "monitor.alert[0].kinds");
        c.alert.clear();
        c.anomaly.alpha = 0.0;
        assert_eq!(c.validate().unwrap_err().0, "monitor.anomaly.alpha");
    }
}
