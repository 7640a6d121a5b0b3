//! `palisade crypt`: Fernet keys and tokens (compatible with Python's
//! `cryptography.fernet`), streaming file encryption, digests and
//! directory manifests. The work is done by the `crypt` crate; this module
//! reads keys, files and standard streams.
//!
//! Keys never come from argv (visible in `ps`): from `--key-file` (one key
//! per line, first = primary) or the `PALISADE_CRYPT_KEY` environment
//! variable (keys separated by commas).

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use crypt::fernet::{Fernet, Key, MultiFernet};
use crypt::hash::Algorithm;
use crypt::manifest::{Manifest, MAX_MANIFEST_BYTES};
use zeroize::Zeroizing;

/// Environment variable holding keys (comma-separated, first = primary).
pub const KEY_ENV: &str = "PALISADE_CRYPT_KEY";
/// Largest input `crypt encrypt` puts in one Fernet token: 64 MiB (a token
/// is built in memory; larger files belong in `encrypt-file`).
pub const MAX_FERNET_INPUT: u64 = 64 << 20;
/// Largest key file read: 64 KiB (a key is 44 bytes; bounds a wrong path
/// such as a device file or a huge log).
pub const MAX_KEY_FILE: u64 = 64 << 10;

/// Where keys come from.
#[derive(clap::Args, Debug)]
pub struct KeyArgs {
    /// Key file (one url-safe base64 key per line; the first is the primary).
    /// Repeatable. Without it: the PALISADE_CRYPT_KEY environment variable.
    #[arg(short = 'k', long = "key-file")]
    key_files: Vec<PathBuf>,
}

/// `palisade crypt` subcommands.
#[derive(Subcommand, Debug)]
pub enum CryptCmd {
    /// Generate a Fernet key (url-safe base64, like Fernet.generate_key()).
    Keygen {
        /// Write the key to this file (mode 0600; refuses to overwrite) instead of stdout.
        #[arg(short, long)]
        out: Option<PathBuf>,
    },
    /// Encrypt a string or a small file into one Fernet token.
    Encrypt {
        #[command(flatten)]
        keys: KeyArgs,
        /// Plaintext file ("-" or absent: standard input).
        #[arg(short, long)]
        input: Option<PathBuf>,
        /// The plaintext as an argument (visible to other local users in `ps`).
        #[arg(long, conflicts_with = "input")]
        text: Option<String>,
        /// Write the token here instead of stdout.
        #[arg(short, long)]
        out: Option<PathBuf>,
    },
    /// Decrypt a Fernet token (tries every key).
    Decrypt {
        #[command(flatten)]
        keys: KeyArgs,
        /// The token (absent: read from --input or standard input).
        token: Option<String>,
        /// File holding the token.
        #[arg(short, long, conflicts_with = "token")]
        input: Option<PathBuf>,
        /// Refuse tokens older than this many seconds.
        #[arg(long)]
        ttl: Option<u64>,
        /// Write the plaintext here instead of stdout.
        #[arg(short, long)]
        out: Option<PathBuf>,
    },
    /// Re-encrypt tokens (one per line) under the primary key, keeping their timestamps.
    Rotate {
        #[command(flatten)]
        keys: KeyArgs,
        /// File of tokens, one per line (absent: standard input).
        #[arg(short, long)]
        input: Option<PathBuf>,
        /// Write the rotated tokens here instead of stdout.
        #[arg(short, long)]
        out: Option<PathBuf>,
    },
    /// Encrypt a file of any size in the streaming format (bounded memory).
    EncryptFile {
        #[command(flatten)]
        keys: KeyArgs,
        /// Input file ("-": standard input).
        input: PathBuf,
        /// Output file ("-": standard output).
        #[arg(short, long)]
        out: PathBuf,
        /// Plaintext bytes per chunk.
        #[arg(long, default_value_t = crypt::stream::DEFAULT_CHUNK_SIZE)]
        chunk_size: u32,
    },
    /// Decrypt a streaming-format file; the output appears only if all of it verifies.
    DecryptFile {
        #[command(flatten)]
        keys: KeyArgs,
        /// Input file ("-": standard input).
        input: PathBuf,
        /// Output file ("-": standard output, written as chunks verify).
        #[arg(short, long)]
        out: PathBuf,
    },
    /// Print digests of files (or standard input), like sha256sum / b3sum.
    Hash {
        /// sha256 or blake3.
        #[arg(short, long, default_value = "sha256")]
        algo: String,
        /// Files ("-" or none: standard input).
        files: Vec<PathBuf>,
    },
    /// Directory integrity manifests.
    Manifest {
        #[command(subcommand)]
        cmd: ManifestCmd,
    },
}

/// `palisade crypt manifest` subcommands.
#[derive(Subcommand, Debug)]
pub enum ManifestCmd {
    /// Hash every file under DIR into a manifest.
    Create {
        /// The directory.
        dir: PathBuf,
        /// The manifest file to write.
        #[arg(short, long)]
        out: PathBuf,
        /// sha256 or blake3.
        #[arg(short, long, default_value = "sha256")]
        algo: String,
        /// Sign the manifest (HMAC-SHA256) with this key file's primary key.
        #[arg(short = 'k', long = "key-file")]
        key_file: Option<PathBuf>,
    },
    /// Compare a directory with a manifest; exit 1 on any difference.
    Verify {
        /// The manifest file.
        manifest: PathBuf,
        /// The directory (default: the manifest's directory).
        #[arg(short, long)]
        dir: Option<PathBuf>,
        /// Require a signature made with this key file's primary key.
        #[arg(short = 'k', long = "key-file")]
        key_file: Option<PathBuf>,
    },
}

/// Runs one `palisade crypt` command.
pub fn run(cmd: CryptCmd) -> Result<()> {
    match cmd {
        CryptCmd::Keygen { out } => keygen(out.as_deref()),
        CryptCmd::Encrypt {
            keys,
            input,
            text,
            out,
        } => {
            let keys = load_keys(&keys)?;
            let plain = match text {
                Some(t) => Zeroizing::new(t.into_bytes()),
                None => read_input(input.as_deref(), MAX_FERNET_INPUT, "encrypt-file")?,
            };
            let token = keys.encrypt(&plain)?;
            write_output(out.as_deref(), format!("{token}\n").as_bytes(), false)
        }
        CryptCmd::Decrypt {
            keys,
            token,
            input,
            ttl,
            out,
        } => {
            let keys = load_keys(&keys)?;
            let token = match token {
                Some(t) => t,
                None => token_text(&read_input(input.as_deref(), token_limit(), "")?)?,
            };
            let plain = Zeroizing::new(keys.decrypt(token.trim(), ttl)?);
            write_output(out.as_deref(), &plain, true)
        }
        CryptCmd::Rotate { keys, input, out } => {
            let keys = load_keys(&keys)?;
            let text = token_text(&read_input(input.as_deref(), token_limit(), "")?)?;
            let mut rotated = String::new();
            for (i, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() {
                    continue;
                }
                let t = keys
                    .rotate(line)
                    .with_context(|| format!("token on line {}", i + 1))?;
                rotated.push_str(&t);
                rotated.push('\n');
            }
            write_output(out.as_deref(), rotated.as_bytes(), false)
        }
        CryptCmd::EncryptFile {
            keys,
            input,
            out,
            chunk_size,
        } => {
            let keys = raw_keys(&keys)?;
            let primary = keys.first().context("no key")?;
            let reader = open_in(&input)?;
            let n = with_output(&out, false, |w| {
                Ok(crypt::stream::encrypt_with_chunk_size(
                    primary, chunk_size, reader, w,
                )?)
            })?;
            eprintln!("encrypted {n} bytes");
            Ok(())
        }
        CryptCmd::DecryptFile { keys, input, out } => {
            let keys = raw_keys(&keys)?;
            let refs: Vec<&[u8; 32]> = keys.iter().collect();
            let reader = open_in(&input)?;
            let n = with_output(&out, true, |w| {
                Ok(crypt::stream::decrypt(&refs, reader, w)?)
            })?;
            eprintln!("decrypted {n} bytes");
            Ok(())
        }
        CryptCmd::Hash { algo, files } => {
            let alg: Algorithm = algo.parse()?;
            let files = if files.is_empty() {
                vec![PathBuf::from("-")]
            } else {
                files
            };
            for f in &files {
                let hex = if f == Path::new("-") {
                    crypt::hash::digest_reader(alg, std::io::stdin().lock())?.0
                } else {
                    crypt::hash::digest_file(alg, f)?.0
                };
                println!("{hex}  {}", f.display());
            }
            Ok(())
        }
        CryptCmd::Manifest { cmd } => manifest(cmd),
    }
}

fn manifest(cmd: ManifestCmd) -> Result<()> {
    match cmd {
        ManifestCmd::Create {
            dir,
            out,
            algo,
            key_file,
        } => {
            let alg: Algorithm = algo.parse()?;
            let key = key_file.map(|p| primary_from_file(&p)).transpose()?;
            let (m, skipped) = Manifest::create(&dir, alg, std::slice::from_ref(&out))?;
            for s in &skipped {
                eprintln!("skipped (not a regular file): {s}");
            }
            let text = m.to_text(key.as_ref().map(|k| k.as_bytes()));
            write_output(Some(&out), text.as_bytes(), false)?;
            let total: u64 = m.entries.iter().map(|e| e.size).sum();
            println!(
                "{}: {} files, {total} bytes, {}{}",
                out.display(),
                m.entries.len(),
                m.algorithm,
                if key.is_some() { ", signed" } else { "" }
            );
            Ok(())
        }
        ManifestCmd::Verify {
            manifest,
            dir,
            key_file,
        } => {
            let key = key_file.map(|p| primary_from_file(&p)).transpose()?;
            let bytes = read_input(Some(&manifest), MAX_MANIFEST_BYTES, "")?;
            let text = std::str::from_utf8(&bytes)
                .with_context(|| format!("{}: not UTF-8 text", manifest.display()))?;
            let m = Manifest::parse(text, key.as_ref().map(|k| k.as_bytes()))
                .with_context(|| manifest.display().to_string())?;
            let dir = match dir {
                Some(d) => d,
                None => match manifest.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                    _ => PathBuf::from("."),
                },
            };
            let r = m.verify_dir(&dir, std::slice::from_ref(&manifest))?;
            for p in &r.added {
                println!("added    {p}");
            }
            for p in &r.removed {
                println!("removed  {p}");
            }
            for p in &r.changed {
                println!("changed  {p}");
            }
            let sig = if m.signature_verified {
                "signature ok"
            } else {
                "signature not checked"
            };
            if r.is_clean() {
                println!("ok: {} files match ({sig})", r.unchanged);
                Ok(())
            } else {
                bail!(
                    "{} differs from {}: {} added, {} removed, {} changed ({sig})",
                    dir.display(),
                    manifest.display(),
                    r.added.len(),
                    r.removed.len(),
                    r.changed.len()
                )
            }
        }
    }
}

fn keygen(out: Option<&Path>) -> Result<()> {
    let key = Key::generate()?;
    let mut line = Zeroizing::new(String::from(key.to_base64().as_str()));
    line.push('\n');
    match out {
        None => {
            std::io::stdout().write_all(line.as_bytes())?;
            Ok(())
        }
        Some(p) => {
            let mut f = create_file(p, true)
                .with_context(|| format!("cannot create key file {}", p.display()))?;
            f.write_all(line.as_bytes())
                .and_then(|()| f.sync_all())
                .with_context(|| format!("cannot write key file {}", p.display()))?;
            eprintln!("wrote a new key to {} (mode 0600)", p.display());
            Ok(())
        }
    }
}

/// Keys from the key files or the environment, in order.
fn key_list(args: &KeyArgs) -> Result<Vec<Key>> {
    let mut keys = Vec::new();
    if args.key_files.is_empty() {
        let Some(v) = std::env::var_os(KEY_ENV) else {
            bail!("no key: give --key-file FILE or set {KEY_ENV}");
        };
        let v = Zeroizing::new(
            v.into_string()
                .map_err(|_| anyhow::anyhow!("{KEY_ENV} is not valid text"))?,
        );
        for (i, part) in v.split(',').enumerate() {
            keys.push(Key::from_base64(part).with_context(|| format!("{KEY_ENV}: key {}", i + 1))?);
        }
    }
    for p in &args.key_files {
        keys.extend(keys_from_file(p)?);
    }
    if keys.is_empty() {
        bail!("no key found");
    }
    Ok(keys)
}

fn keys_from_file(p: &Path) -> Result<Vec<Key>> {
    let bytes = read_input(Some(p), MAX_KEY_FILE, "")
        .with_context(|| format!("cannot read key file {}", p.display()))?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| anyhow::anyhow!("key file {}: not text", p.display()))?;
    let mut keys = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        keys.push(
            Key::from_base64(line)
                .with_context(|| format!("key file {} line {}", p.display(), i + 1))?,
        );
    }
    if keys.is_empty() {
        bail!("key file {} holds no key", p.display());
    }
    Ok(keys)
}

fn primary_from_file(p: &Path) -> Result<Key> {
    let mut keys = keys_from_file(p)?;
    Ok(keys.swap_remove(0))
}

fn load_keys(args: &KeyArgs) -> Result<MultiFernet> {
    let keys = key_list(args)?;
    Ok(MultiFernet::new(keys.iter().map(Fernet::new).collect())?)
}

fn raw_keys(args: &KeyArgs) -> Result<Vec<[u8; 32]>> {
    Ok(key_list(args)?.iter().map(|k| *k.as_bytes()).collect())
}

/// Token input limit: the library's own bound.
fn token_limit() -> u64 {
    crypt::fernet::MAX_TOKEN_LEN as u64
}

fn token_text(bytes: &[u8]) -> Result<String> {
    Ok(std::str::from_utf8(bytes)
        .map_err(|_| crypt::Error::InvalidToken)?
        .to_string())
}

/// Reads a file (or stdin for None / "-"), refusing more than `limit` bytes.
fn read_input(path: Option<&Path>, limit: u64, hint: &str) -> Result<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(Vec::new());
    let name = path.map_or("standard input".into(), |p| p.display().to_string());
    let reader: Box<dyn Read> = match path {
        None => Box::new(std::io::stdin().lock()),
        Some(p) if p == Path::new("-") => Box::new(std::io::stdin().lock()),
        Some(p) => Box::new(File::open(p).with_context(|| format!("cannot open {name}"))?),
    };
    reader
        .take(limit + 1)
        .read_to_end(&mut buf)
        .with_context(|| format!("cannot read {name}"))?;
    if buf.len() as u64 > limit {
        let hint = if hint.is_empty() {
            String::new()
        } else {
            format!("; use `palisade crypt {hint}` for large files")
        };
        bail!("{name} is larger than {limit} bytes{hint}");
    }
    Ok(buf)
}

fn open_in(p: &Path) -> Result<Box<dyn Read>> {
    if p == Path::new("-") {
        return Ok(Box::new(std::io::stdin().lock()));
    }
    let f = File::open(p).with_context(|| format!("cannot open {}", p.display()))?;
    Ok(Box::new(f))
}

/// Writes `data` to a file (atomically, via a temporary file) or stdout.
fn write_output(out: Option<&Path>, data: &[u8], private: bool) -> Result<()> {
    match out {
        None => {
            let mut o = std::io::stdout().lock();
            o.write_all(data).and_then(|()| o.flush())?;
            Ok(())
        }
        Some(p) => {
            with_output(p, private, |w| {
                w.write_all(data)?;
                Ok(())
            })?;
            Ok(())
        }
    }
}

/// Runs `f` on a writer to `out`: stdout for "-", else a temporary file
/// beside `out` renamed over it only when `f` succeeds (so a failed
/// decryption never leaves partial plaintext under the output name).
fn with_output<T>(
    out: &Path,
    private: bool,
    f: impl FnOnce(&mut dyn Write) -> Result<T>,
) -> Result<T> {
    if out == Path::new("-") {
        let mut o = std::io::stdout().lock();
        let v = f(&mut o)?;
        o.flush()?;
        return Ok(v);
    }
    let name = out
        .file_name()
        .with_context(|| format!("{}: not a file name", out.display()))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = out.with_file_name(tmp_name);
    let file =
        create_file(&tmp, private).with_context(|| format!("cannot create {}", tmp.display()))?;
    let mut w = BufWriter::with_capacity(256 << 10, file);
    let result = f(&mut w).and_then(|v| {
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(v)
    });
    match result {
        Ok(v) => {
            std::fs::rename(&tmp, out)
                .with_context(|| format!("cannot write {}", out.display()))?;
            Ok(v)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Creates a new file (never overwrites: `create_new`), mode 0600 when
/// `private` (keys, plaintext) else 0644, both less the umask.
fn create_file(p: &Path, private: bool) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if private { 0o600 } else { 0o644 })
        .open(p)
}
