//! `palisade ban list|add|del`: manage the running gateway's bans through
//! its admin API (`GET/POST /bans`, `DELETE /bans/<ip or cidr>`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, Context};
use clap::{Args, Subcommand};

/// Fixed 16 MiB: admin answer size read. Bounds memory if the address is
/// not a palisade admin listener.
const MAX_ANSWER: u64 = 16 << 20;

/// Where the admin listener is.
#[derive(Args, Debug)]
pub struct Target {
    /// Admin address of the running palisade (default: the config's
    /// admin.listen, else 127.0.0.1:9901).
    #[arg(long, global = true)]
    admin: Option<SocketAddr>,
    /// Config file whose admin.listen to use.
    #[arg(short, long, global = true)]
    config: Option<PathBuf>,
}

/// `palisade ban ...`.
#[derive(Subcommand, Debug)]
pub enum BanCmd {
    /// List active bans (network, jail, expiry, offences, reason).
    List,
    /// Ban an address or CIDR range now.
    Add {
        /// IPv4/IPv6 address or CIDR range.
        ip: String,
        /// How long, e.g. 30m, 12h (default: until deleted).
        #[arg(long)]
        duration: Option<String>,
        /// Why (shown in the list and the log).
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Lift a ban: an address lifts the ban covering it (an IPv6 /64 too).
    Del {
        /// Address or CIDR range.
        ip: String,
    },
}

pub(crate) fn admin_addr(t: &Target) -> anyhow::Result<SocketAddr> {
    if let Some(a) = t.admin {
        return Ok(a);
    }
    if let Some(c) = &t.config {
        let cfg = gateway::config::load_file(c)?;
        return cfg.admin.listen.ok_or_else(|| {
            anyhow!(
                "{}: admin.listen is \"off\"; the ban commands need the admin listener",
                c.display()
            )
        });
    }
    Ok(SocketAddr::from(([127, 0, 0, 1], 9901)))
}

pub(crate) fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> anyhow::Result<(u16, serde_json::Value)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).with_context(|| {
        format!("cannot connect to admin listener {addr} (is palisade running?)")
    })?;
    let timeout = Some(Duration::from_secs(30));
    s.set_read_timeout(timeout).context("socket")?;
    s.set_write_timeout(timeout).context("socket")?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .context("cannot send admin request")?;
    let mut resp = Vec::new();
    s.take(MAX_ANSWER)
        .read_to_end(&mut resp)
        .context("cannot read admin answer")?;
    let text = String::from_utf8_lossy(&resp);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("{addr} did not answer HTTP"))?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("{addr} did not answer HTTP"))?;
    let v: serde_json::Value = serde_json::from_str(body.trim()).map_err(|_| {
        anyhow!(
            "{addr} answered {status} without JSON (an older palisade without the ban API?): {}",
            body.trim()
        )
    })?;
    if status >= 400 {
        let msg = v["error"].as_str().unwrap_or("unknown error");
        return Err(anyhow!("{msg}"));
    }
    Ok((status, v))
}

fn human(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m{s:02}s"),
        (0, _, _) => format!("{h}h{m:02}m"),
        _ => format!("{d}d{h:02}h"),
    }
}

fn expiry(v: &serde_json::Value) -> String {
    match (v["expires"].as_str(), v["expires_in_s"].as_u64()) {
        (Some(e), Some(s)) => format!("{} (in {})", e.get(..19).unwrap_or(e), human(s)),
        _ => "never (until deleted)".to_string(),
    }
}

/// Runs one ban command; prints its result on stdout.
pub fn run(cmd: BanCmd, target: &Target) -> anyhow::Result<()> {
    let addr = admin_addr(target)?;
    match cmd {
        BanCmd::List => {
            let (_, v) = call(addr, "GET", "/bans", "")?;
            let bans = v.as_array().cloned().unwrap_or_default();
            if bans.is_empty() {
                println!("no active bans");
                return Ok(());
            }
            let rows: Vec<[String; 5]> = bans
                .iter()
                .map(|b| {
                    [
                        b["net"].as_str().unwrap_or("?").to_string(),
                        b["jail"].as_str().unwrap_or("?").to_string(),
                        expiry(b),
                        b["offences"].as_u64().unwrap_or(0).to_string(),
                        b["reason"].as_str().unwrap_or("").to_string(),
                    ]
                })
                .collect();
            let head = ["NETWORK", "JAIL", "EXPIRES (UTC)", "OFFENCES", "REASON"];
            let mut w = head.map(str::len);
            for r in &rows {
                for (i, c) in r.iter().enumerate() {
                    w[i] = w[i].max(c.len());
                }
            }
            let line = |r: [&str; 5]| {
                format!(
                    "{:<w0$}  {:<w1$}  {:<w2$}  {:<w3$}  {}",
                    r[0],
                    r[1],
                    r[2],
                    r[3],
                    r[4],
                    w0 = w[0],
                    w1 = w[1],
                    w2 = w[2],
                    w3 = w[3]
                )
            };
            println!("{}", line(head).trim_end());
            for r in &rows {
                println!("{}", line([&r[0], &r[1], &r[2], &r[3], &r[4]]).trim_end());
            }
            println!("{} active ban(s)", rows.len());
        }
        BanCmd::Add {
            ip,
            duration,
            reason,
        } => {
            let body = serde_json::json!({ "ip": ip, "duration": duration, "reason": reason });
            let (_, b) = call(addr, "POST", "/bans", &body.to_string())?;
            println!(
                "banned {} until {} ({})",
                b["net"].as_str().unwrap_or("?"),
                expiry(&b),
                b["reason"].as_str().unwrap_or("")
            );
        }
        BanCmd::Del { ip } => {
            let (_, v) = call(addr, "DELETE", &format!("/bans/{ip}"), "")?;
            println!("lifted the ban of {}", v["lifted"].as_str().unwrap_or("?"));
        }
    }
    Ok(())
}
