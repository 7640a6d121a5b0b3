//! `palisade pki`: the device certificate authority (the `pki` crate) on
//! the command line. The CA secret never comes from argv: a passphrase file,
//! a key file, or the `PALISADE_PKI_PASSPHRASE` environment variable.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use pki::{InitOptions, IssueRequest, KeyType, Pki, Reason, Secret};
use zeroize::Zeroizing;

/// Environment variable holding the CA passphrase.
pub const PASSPHRASE_ENV: &str = "PALISADE_PKI_PASSPHRASE";

/// Where the PKI lives.
#[derive(Args, Debug)]
pub struct DirArg {
    /// PKI directory.
    #[arg(long, default_value = "pki", global = true)]
    dir: PathBuf,
}

/// What unlocks the CA keys.
#[derive(Args, Debug)]
pub struct SecretArgs {
    /// File holding the CA passphrase (first line).
    #[arg(long, conflicts_with = "key_file")]
    passphrase_file: Option<PathBuf>,
    /// Key file: its bytes (at least 32) are the CA secret.
    #[arg(long)]
    key_file: Option<PathBuf>,
}

/// `palisade pki` subcommands.
#[derive(Subcommand, Debug)]
pub enum PkiCmd {
    /// Create a root CA and an issuing CA (keys encrypted at rest).
    Init {
        #[command(flatten)]
        secret: SecretArgs,
        /// Organization (O) in every subject.
        #[arg(long, default_value = "palisade")]
        org: String,
        /// Root CA validity in days.
        #[arg(long, default_value_t = 3650)]
        root_days: u32,
        /// Issuing CA validity in days.
        #[arg(long, default_value_t = 1825)]
        issuing_days: u32,
    },
    /// Issue a device certificate (PEM files and a PKCS#12 bundle).
    Issue {
        #[command(flatten)]
        secret: SecretArgs,
        /// Device name (subject CN and directory name).
        #[arg(long)]
        device: String,
        /// Validity in days.
        #[arg(long, default_value_t = 90)]
        days: u32,
        /// Subject alternative name: dns:NAME, uri:URI, ip:ADDR (repeatable; default dns:DEVICE).
        #[arg(long)]
        san: Vec<String>,
        /// Device key type: p256 or ed25519.
        #[arg(long, default_value = "p256")]
        key_type: String,
    },
    /// List issued certificates: name, serial, not-after, status.
    List {
        /// Print the inventory entries as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a certificate by device name or serial (then run `pki crl`).
    Revoke {
        /// Device name (its active certificate) or serial (hex).
        target: String,
        /// unspecified, key-compromise, affiliation-changed, superseded,
        /// cessation-of-operation, certificate-hold, privilege-withdrawn.
        #[arg(long, default_value = "unspecified")]
        reason: String,
    },
    /// Sign a new CRL listing every revoked certificate.
    Crl {
        #[command(flatten)]
        secret: SecretArgs,
        /// Days until the CRL's nextUpdate.
        #[arg(long, default_value_t = 7)]
        days: u32,
    },
    /// Re-issue a device's certificate with a new key (the old one becomes superseded).
    Renew {
        #[command(flatten)]
        secret: SecretArgs,
        /// Device name.
        device: String,
        /// Validity in days (default: the old certificate's).
        #[arg(long)]
        days: Option<u32>,
    },
}

/// Runs one `palisade pki` command.
pub fn run(dir: &DirArg, cmd: PkiCmd) -> Result<()> {
    let dir = dir.dir.as_path();
    match cmd {
        PkiCmd::Init {
            secret,
            org,
            root_days,
            issuing_days,
        } => {
            let s = load_secret(&secret)?;
            let opts = InitOptions {
                organization: org,
                root_days,
                issuing_days,
            };
            let ca = Pki::init(dir, &s, &opts)?;
            let l = ca.layout();
            println!("created a PKI in {}", dir.display());
            println!("  root CA        {}", l.root_cert().display());
            println!("  issuing CA     {}", l.issuing_cert().display());
            println!(
                "  CA bundle      {}  (trust this for client certificates)",
                l.ca_bundle().display()
            );
            println!("  CRL            {}", l.crl().display());
            println!(
                "  keys (encrypted) {}, {}",
                l.root_key().display(),
                l.issuing_key().display()
            );
            Ok(())
        }
        PkiCmd::Issue {
            secret,
            device,
            days,
            san,
            key_type,
        } => {
            let mut ca = open(dir)?;
            let s = load_secret(&secret)?;
            let req = IssueRequest {
                name: device,
                days,
                sans: san,
                key_type: key_type.parse::<KeyType>()?,
                valid_from: None,
            };
            let issued = ca.issue(&s, &req)?;
            print_issued(&issued);
            Ok(())
        }
        PkiCmd::List { json } => {
            let ca = open(dir)?;
            let certs = &ca.inventory().certificates;
            if json {
                println!("{}", serde_json::to_string_pretty(certs)?);
                return Ok(());
            }
            let now = time_now();
            println!(
                "{:<24} {:<32} {:<21} {:<8} STATUS",
                "NAME", "SERIAL", "NOT AFTER", "KEY"
            );
            for e in certs {
                let key = match e.key_type {
                    KeyType::P256 => "p256",
                    KeyType::Ed25519 => "ed25519",
                };
                let mut status = e.status_at(now).to_string();
                if let Some(r) = e.reason {
                    status.push_str(&format!(
                        " ({})",
                        serde_json::to_value(r)?.as_str().unwrap_or("")
                    ));
                }
                println!(
                    "{:<24} {:<32} {:<21} {:<8} {status}",
                    e.name,
                    e.serial,
                    pki::format_time(e.not_after),
                    key
                );
            }
            Ok(())
        }
        PkiCmd::Revoke { target, reason } => {
            let mut ca = open(dir)?;
            let e = ca.revoke(&target, reason.parse::<Reason>()?)?;
            println!(
                "revoked {} (serial {}); run `palisade pki crl` to publish the CRL",
                e.name, e.serial
            );
            Ok(())
        }
        PkiCmd::Crl { secret, days } => {
            let mut ca = open(dir)?;
            let s = load_secret(&secret)?;
            let n = ca.write_crl_for(&s, days)?;
            let revoked = ca
                .inventory()
                .certificates
                .iter()
                .filter(|e| e.status == pki::Status::Revoked)
                .count();
            println!(
                "wrote CRL #{n} to {} ({revoked} revoked, next update in {days} days)",
                ca.layout().crl().display()
            );
            Ok(())
        }
        PkiCmd::Renew {
            secret,
            device,
            days,
        } => {
            let mut ca = open(dir)?;
            let s = load_secret(&secret)?;
            let issued = ca.renew(&s, &device, days)?;
            print_issued(&issued);
            Ok(())
        }
    }
}

fn open(dir: &Path) -> Result<Pki> {
    if !pki::Layout::new(dir).inventory().exists() {
        bail!(
            "no PKI in {} (run `palisade pki init --dir {}` first)",
            dir.display(),
            dir.display()
        );
    }
    Ok(Pki::open(dir)?)
}

fn time_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn print_issued(i: &pki::Issued) {
    let e = &i.entry;
    println!(
        "issued {} serial {} valid until {} ({})",
        e.name,
        e.serial,
        pki::format_time(e.not_after),
        e.sans.join(", ")
    );
    println!("  certificate   {}", i.files.cert.display());
    println!("  private key   {}", i.files.key.display());
    println!("  chain         {}", i.files.chain.display());
    println!(
        "  PKCS#12       {}  (password in {})",
        i.files.p12.display(),
        i.files.p12_password.display()
    );
}

fn load_secret(a: &SecretArgs) -> Result<Secret> {
    if let Some(p) = &a.key_file {
        return Ok(Secret::key_file(p)?);
    }
    let text = if let Some(p) = &a.passphrase_file {
        let meta = std::fs::metadata(p)
            .with_context(|| format!("cannot read passphrase file {}", p.display()))?;
        if meta.len() > 4096 {
            bail!("passphrase file {} is larger than 4096 bytes", p.display());
        }
        let bytes = Zeroizing::new(
            std::fs::read(p)
                .with_context(|| format!("cannot read passphrase file {}", p.display()))?,
        );
        let s = std::str::from_utf8(&bytes)
            .map_err(|_| anyhow::anyhow!("passphrase file {} is not UTF-8", p.display()))?;
        Zeroizing::new(s.lines().next().unwrap_or("").to_string())
    } else if let Some(v) = std::env::var_os(PASSPHRASE_ENV) {
        Zeroizing::new(
            v.into_string()
                .map_err(|_| anyhow::anyhow!("{PASSPHRASE_ENV} is not valid text"))?,
        )
    } else {
        bail!("no CA secret: give --passphrase-file FILE, --key-file FILE or set {PASSPHRASE_ENV}");
    };
    Ok(Secret::passphrase(text)?)
}
