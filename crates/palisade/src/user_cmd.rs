//! `palisade user …` (the user database) and `palisade access check`.
//!
//! Passwords are read from standard input (one line), never from argv:
//! on a terminal without echo, piped otherwise. Settings come from the
//! `[identity]` and `[state]` sections of `-c CONFIG` (defaults without it).

use std::io::{BufRead, IsTerminal, Read, Write};
use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand};
use identity::{Hasher, IdentityConfig, PasswordPolicy, Sessions, UserDb};

/// The config file holding `[identity]` (and `[state]`).
#[derive(Args, Debug)]
pub struct ConfigArg {
    /// Config file (TOML) with [identity] and [state] sections.
    #[arg(short, long, global = true)]
    config: Option<PathBuf>,
}

/// `palisade user …`.
#[derive(Subcommand, Debug)]
pub enum UserCmd {
    /// Add a user (password from stdin).
    Add {
        /// Username (normalised: NFKC, lower case).
        name: String,
        /// Role (repeatable).
        #[arg(long = "role")]
        roles: Vec<String>,
    },
    /// Delete a user and revoke their sessions.
    Del {
        /// Username.
        name: String,
    },
    /// List users, roles and whether TOTP is enrolled.
    List,
    /// Set a new password (from stdin) and revoke the user's sessions.
    Passwd {
        /// Username.
        name: String,
    },
    /// Show the roles, or replace them with the given ones.
    Roles {
        /// Username.
        name: String,
        /// New roles (replace all).
        roles: Vec<String>,
        /// Remove every role.
        #[arg(long, conflicts_with = "roles")]
        clear: bool,
    },
    /// Enroll TOTP: print the secret, a QR code and ten recovery codes.
    TotpEnroll {
        /// Username.
        name: String,
        /// Also write the QR code as SVG to this file.
        #[arg(long)]
        svg: Option<PathBuf>,
        /// Do not print the terminal QR code.
        #[arg(long)]
        no_qr: bool,
    },
    /// Remove TOTP and recovery codes.
    TotpReset {
        /// Username.
        name: String,
    },
    /// Revoke every session of a user.
    LogoutAll {
        /// Username.
        name: String,
    },
}

/// `palisade access …`.
#[derive(Subcommand, Debug)]
pub enum AccessCmd {
    /// Print which access rule matches a request, and why.
    Check {
        /// Absolute URL (http or https).
        #[arg(long)]
        url: String,
        /// Logged-in user (roles are read from the user database); none: anonymous.
        #[arg(long)]
        user: Option<String>,
        /// Client address.
        #[arg(long, default_value = "127.0.0.1")]
        ip: IpAddr,
        /// HTTP method.
        #[arg(long, default_value = "GET")]
        method: String,
    },
}

fn load(c: &ConfigArg) -> anyhow::Result<(IdentityConfig, state::StateConfig)> {
    match &c.config {
        Some(p) => Ok(identity::config::load_file(p)?),
        None => Ok((IdentityConfig::default(), state::StateConfig::default())),
    }
}

fn read_password(prompt: &str) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    let read_line = || -> anyhow::Result<String> {
        let mut line = String::new();
        stdin
            .lock()
            .take(identity::password::MAX_PASSWORD_BYTES as u64 + 2)
            .read_line(&mut line)
            .context("reading password from stdin")?;
        let pw = line.strip_suffix('\n').unwrap_or(&line);
        let pw = pw.strip_suffix('\r').unwrap_or(pw);
        Ok(pw.to_owned())
    };
    if !tty {
        let pw = read_line()?;
        if pw.is_empty() {
            bail!("no password on stdin (pipe it in: echo \"$PW\" | palisade user …)");
        }
        return Ok(pw);
    }
    let ask = |p: &str| -> anyhow::Result<String> {
        eprint!("{p}");
        std::io::stderr().flush().ok();
        // `stty` turns echo off for the prompt; no terminal crate needed.
        let _ = std::process::Command::new("stty").arg("-echo").status();
        let r = read_line();
        let _ = std::process::Command::new("stty").arg("echo").status();
        eprintln!();
        r
    };
    let a = ask(prompt)?;
    let b = ask("Repeat: ")?;
    if a != b {
        bail!("passwords differ");
    }
    Ok(a)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")
}

fn revoke(st: &state::StateConfig, id: &IdentityConfig, user: &str) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let store = state::Store::open(st)
            .await
            .context("opening the state store")?;
        Sessions::new(store, id.sessions.clone())
            .revoke_all(user, state::now_micros())
            .await?;
        anyhow::Ok(())
    })
}

/// Runs `palisade user …`.
pub fn run_user(c: &ConfigArg, cmd: UserCmd) -> anyhow::Result<()> {
    let (id, st) = load(c)?;
    let db =
        UserDb::open(&id.users_db).with_context(|| format!("opening {}", id.users_db.display()))?;
    let name_of = |n: &str| identity::normalize_username(n).map_err(anyhow::Error::from);
    match cmd {
        UserCmd::Add { name, roles } => {
            let name = name_of(&name)?;
            if db.get(&name)?.is_some() {
                bail!("user already exists: {name}");
            }
            let pw = read_password(&format!("Password for {name}: "))?;
            PasswordPolicy::new(id.password_policy.clone())?.check(&name, &pw)?;
            let phc = Hasher::new(id.argon2).hash(&pw)?;
            let u = db.add(&name, &phc, &roles)?;
            println!("added user {} (roles: {})", u.name, roles_text(&u.roles));
        }
        UserCmd::Del { name } => {
            let name = name_of(&name)?;
            if !db.delete(&name)? {
                bail!("no such user: {name}");
            }
            revoke(&st, &id, &name)?;
            println!("deleted user {name}; sessions revoked");
        }
        UserCmd::List => {
            let users = db.list()?;
            println!("{:<24} {:<6} {:<9} ROLES", "USER", "TOTP", "RECOVERY");
            for u in &users {
                println!(
                    "{:<24} {:<6} {:<9} {}",
                    u.name,
                    if u.totp_secret.is_some() { "yes" } else { "no" },
                    u.recovery_hashes.len(),
                    roles_text(&u.roles)
                );
            }
            println!("{} user(s)", users.len());
        }
        UserCmd::Passwd { name } => {
            let name = name_of(&name)?;
            if db.get(&name)?.is_none() {
                bail!("no such user: {name}");
            }
            let pw = read_password(&format!("New password for {name}: "))?;
            PasswordPolicy::new(id.password_policy.clone())?.check(&name, &pw)?;
            let phc = Hasher::new(id.argon2).hash(&pw)?;
            db.set_password_hash(&name, &phc)?;
            revoke(&st, &id, &name)?;
            println!("password changed for {name}; sessions revoked");
        }
        UserCmd::Roles { name, roles, clear } => {
            let name = name_of(&name)?;
            let u = db
                .get(&name)?
                .ok_or_else(|| anyhow!("no such user: {name}"))?;
            if roles.is_empty() && !clear {
                println!("{}: {}", u.name, roles_text(&u.roles));
            } else {
                let r = db.set_roles(&name, &roles)?;
                println!("{name}: {}", roles_text(&r));
            }
        }
        UserCmd::TotpEnroll { name, svg, no_qr } => {
            let name = name_of(&name)?;
            let (secret, codes) = db.totp_enroll(&name)?;
            let uri = identity::totp::otpauth_uri(&id.issuer, &name, &secret);
            println!("TOTP enrolled for {name}.");
            println!("secret: {secret}");
            println!("uri: {uri}");
            if !no_qr {
                println!("{}", identity::totp::qr_unicode(&uri)?);
            }
            if let Some(p) = svg {
                std::fs::write(&p, identity::totp::qr_svg(&uri)?)
                    .with_context(|| format!("writing {}", p.display()))?;
                println!("QR code written to {}", p.display());
            }
            println!("recovery codes (each works once; store them offline):");
            for c in codes {
                println!("  {c}");
            }
        }
        UserCmd::TotpReset { name } => {
            let name = name_of(&name)?;
            db.totp_reset(&name)?;
            println!("TOTP removed for {name}");
        }
        UserCmd::LogoutAll { name } => {
            let name = name_of(&name)?;
            if db.get(&name)?.is_none() {
                bail!("no such user: {name}");
            }
            revoke(&st, &id, &name)?;
            println!("all sessions of {name} revoked");
        }
    }
    Ok(())
}

fn roles_text(r: &[String]) -> String {
    if r.is_empty() {
        "-".into()
    } else {
        r.join(",")
    }
}

/// Runs `palisade access …`.
pub fn run_access(c: &ConfigArg, cmd: AccessCmd) -> anyhow::Result<()> {
    let (id, _) = load(c)?;
    let AccessCmd::Check {
        url,
        user,
        ip,
        method,
    } = cmd;
    let rules = id.access.compile()?;
    let (host, path) = identity::access::split_url(&url)?;
    let subject_user = match &user {
        Some(u) => {
            let db = UserDb::open(&id.users_db)
                .with_context(|| format!("opening {}", id.users_db.display()))?;
            let name = identity::normalize_username(u)?;
            Some(
                db.get(&name)?
                    .ok_or_else(|| anyhow!("no such user: {name}"))?,
            )
        }
        None => None,
    };
    let subject = subject_user.as_ref().map(|u| identity::Subject {
        user: &u.name,
        roles: &u.roles,
    });
    let d = rules.decide(
        &identity::Request {
            host: &host,
            path: &path,
            method: &method,
            ip,
            cert: None,
        },
        subject.as_ref(),
    );
    match d.rule {
        Some(i) => println!("rule {} \"{}\": {}", i + 1, d.name, d.policy),
        None => println!("default: {}", d.policy),
    }
    println!("why: {}", d.reason);
    if d.needs_login {
        println!("note: anonymous request; the decision depends on who logs in (try --user)");
    }
    Ok(())
}
