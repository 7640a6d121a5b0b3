//! `palisade events`: query the running gateway's event store through its
//! admin API (`GET /events`).

use clap::Args;

use crate::ban::{admin_addr, call, Target};

/// `palisade events` filters.
#[derive(Args, Debug)]
pub struct EventsArgs {
    /// Events at or after: unix seconds, RFC 3339 or an age (15m, 2h, 7d).
    #[arg(long)]
    since: Option<String>,
    /// Events before (same forms as --since).
    #[arg(long)]
    until: Option<String>,
    /// Only this client address.
    #[arg(long)]
    client: Option<String>,
    /// Only WAF events in which this rule id matched.
    #[arg(long)]
    rule: Option<u64>,
    /// Only this route.
    #[arg(long)]
    route: Option<String>,
    /// Only this kind (waf_block, shield_ban, anomaly, …).
    #[arg(long)]
    kind: Option<String>,
    /// Most events shown, newest first (default 100, at most 1000).
    #[arg(long)]
    limit: Option<usize>,
    /// Print the JSON array instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    target: Target,
}

fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A cell for the terminal: control characters (escape sequences an
/// attacker could put in a URI or user name) shown as `\xNN`.
fn cell(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_control() {
            out.push_str(&format!("\\x{:02x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

fn detail(e: &serde_json::Value) -> String {
    let s = |k: &str| e[k].as_str().unwrap_or("").to_string();
    match e["kind"].as_str().unwrap_or("") {
        "waf_block" | "waf_match" => {
            let ids: Vec<String> = e["rules"]
                .as_array()
                .map(|r| r.iter().map(|r| r["id"].to_string()).collect())
                .unwrap_or_default();
            format!(
                "{} {} → {} score {} rules {}",
                s("method"),
                s("uri"),
                e["status"],
                e["score"],
                ids.join(",")
            )
        }
        "shield_ban" => format!("{} jail {} ({})", s("net"), s("jail"), s("reason")),
        "shield_unban" => s("net"),
        "shield_refused" => format!("{}: {}", s("reason"), s("detail")),
        "rate_limited" | "challenge_issued" | "challenge_failed" => s("detail"),
        "login_success" => s("user"),
        "login_failure" => format!("{} ({})", s("user"), s("reason")),
        "lockout" => format!("{} for {}s", s("user"), e["duration_s"]),
        "tunnel_accept" => format!("{} {}", s("listener"), s("identity")),
        "tunnel_deny" => format!("{} {} ({})", s("listener"), s("identity"), s("reason")),
        "tunnel_close" => format!(
            "{} {} ({}; {} B in, {} B out)",
            s("listener"),
            s("identity"),
            s("reason"),
            e["bytes_in"],
            e["bytes_out"]
        ),
        "config_reload_failed" => s("error"),
        "anomaly" => {
            let f: Vec<String> = e["features"]
                .as_array()
                .map(|f| {
                    f.iter()
                        .map(|d| {
                            format!(
                                "{} {} (z {})",
                                d["feature"].as_str().unwrap_or(""),
                                d["value"],
                                d["z"]
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            format!("{} {}: {}", s("subject"), s("key"), f.join(", "))
        }
        _ => String::new(),
    }
}

/// Runs the query; prints a table (or JSON) on stdout.
pub fn run(a: EventsArgs) -> anyhow::Result<()> {
    let addr = admin_addr(&a.target)?;
    let mut q = Vec::new();
    let mut add = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            q.push(format!("{k}={}", enc(&v)));
        }
    };
    add("since", a.since);
    add("until", a.until);
    add("client", a.client);
    add("rule", a.rule.map(|r| r.to_string()));
    add("route", a.route);
    add("kind", a.kind);
    add("limit", a.limit.map(|l| l.to_string()));
    let path = if q.is_empty() {
        "/events".to_string()
    } else {
        format!("/events?{}", q.join("&"))
    };
    let (_, v) = call(addr, "GET", &path, "")?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let events = v.as_array().cloned().unwrap_or_default();
    if events.is_empty() {
        println!("no events");
        return Ok(());
    }
    println!(
        "{:<24}  {:<20}  {:<15}  {:<10}  DETAIL",
        "TIME (UTC)", "KIND", "CLIENT", "ROUTE"
    );
    for e in &events {
        let t = e["time_us"].as_u64().unwrap_or(0);
        println!(
            "{:<24}  {:<20}  {:<15}  {:<10}  {}",
            monitor::alerts::rfc3339_us(t).get(..23).unwrap_or(""),
            cell(e["kind"].as_str().unwrap_or("?")),
            cell(e["client"].as_str().unwrap_or("-")),
            cell(e["route"].as_str().unwrap_or("-")),
            cell(&detail(e))
        );
    }
    println!("{} event(s), newest first", events.len());
    Ok(())
}
