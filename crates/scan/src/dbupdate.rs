//! `scan deps --db-update URL`: downloads an OSV bulk export (`all.zip` of
//! one ecosystem, e.g. `…/PyPI/all.zip`), checks every entry (CRC-32, size,
//! parses as an OSV advisory), unpacks it into a fresh directory and swaps
//! it in for `DB/<ecosystem>`; a failed download or a bad archive leaves
//! the old database untouched.
//!
//! The zip reader is our own (central directory, stored and deflate
//! entries, no zip64): OSV exports need nothing more, and it keeps the
//! dependency list to flate2, already used for CRS archives.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::web::client::Url;
use crate::Error;

/// Largest archive downloaded (default 2 GiB, streamed to disk; OSV's
/// largest single-ecosystem export is a few hundred MiB): bounds disk use
/// against an endless response.
pub const MAX_ARCHIVE_BYTES: u64 = 2 << 30;
/// Total unpacked size (default 8 GiB): bounds a zip bomb.
pub const MAX_UNPACKED_BYTES: u64 = 8 << 30;
/// Time allowed for the whole download (default 30 min).
pub const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(1800);
/// Time allowed to connect and receive the response head (default 30 s).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// Redirects followed (default 5).
pub const MAX_REDIRECTS: usize = 5;
/// Share of entries that may fail to parse as OSV advisories before the
/// archive is refused (default 1 %): a format change we cannot read must
/// not silently empty the database.
pub const MAX_INVALID_PERCENT: usize = 1;

/// What an update did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Updated {
    /// The directory that now holds the advisories.
    pub dir: PathBuf,
    /// Archive size in bytes.
    pub archive_bytes: u64,
    /// Advisories written.
    pub advisories: usize,
    /// Entries that were not valid advisories (skipped).
    pub invalid: Vec<String>,
}

fn db_err(dir: &Path, msg: impl Into<String>) -> Error {
    Error::Database {
        path: dir.display().to_string(),
        msg: msg.into(),
    }
}

/// The subdirectory an export goes to: the URL path segment before the
/// file name (`…/crates.io/all.zip` → `crates.io`), else the file stem.
pub fn subdir_name(url: &Url) -> String {
    let segs: Vec<&str> = url.path.split('/').filter(|s| !s.is_empty()).collect();
    let raw = match segs.as_slice() {
        [.., dir, _file] => dir.to_string(),
        [file] => file.trim_end_matches(".zip").to_string(),
        [] => "osv".to_owned(),
    };
    let clean: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    match clean.trim_matches('.') {
        "" => "osv".to_owned(),
        s => s.to_owned(),
    }
}

/// Downloads `url` (http or https, certificates verified against Mozilla's
/// roots) and installs it as `db/<subdir>`.
pub async fn update(url: &str, db: &Path) -> Result<Updated, Error> {
    let parsed = Url::parse(url).ok_or_else(|| Error::Url(url.to_owned()))?;
    std::fs::create_dir_all(db).map_err(|e| db_err(db, e.to_string()))?;
    let name = subdir_name(&parsed);
    let pid = std::process::id();
    let tmp_zip = db.join(format!(".{name}.download-{pid}.zip"));
    let result = async {
        let bytes = tokio::time::timeout(DOWNLOAD_TIMEOUT, download(parsed, &tmp_zip))
            .await
            .map_err(|_| Error::Http {
                url: url.to_owned(),
                reason: format!("download took longer than {} s", DOWNLOAD_TIMEOUT.as_secs()),
            })??;
        let db2 = db.to_owned();
        let zip = tmp_zip.clone();
        let name2 = name.clone();
        tokio::task::spawn_blocking(move || install(&zip, &db2, &name2, bytes))
            .await
            .map_err(|e| db_err(db, e.to_string()))?
    }
    .await;
    let _ = std::fs::remove_file(&tmp_zip);
    result
}

async fn download(mut url: Url, dest: &Path) -> Result<u64, Error> {
    let original = url.to_string();
    for _ in 0..=MAX_REDIRECTS {
        let text = url.to_string();
        let fail = |reason: String| Error::Http {
            url: text.clone(),
            reason,
        };
        let resp = tokio::time::timeout(HEAD_TIMEOUT, get(&url))
            .await
            .map_err(|_| fail(format!("no response within {} s", HEAD_TIMEOUT.as_secs())))?
            .map_err(fail)?;
        let status = resp.status().as_u16();
        if (300..400).contains(&status) {
            let next = resp
                .headers()
                .get(hyper::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|l| url.join(l))
                .ok_or_else(|| Error::Http {
                    url: text.clone(),
                    reason: format!("{status} without a usable Location"),
                })?;
            url = next;
            continue;
        }
        if status != 200 {
            return Err(Error::Http {
                url: text,
                reason: format!("HTTP status {status}"),
            });
        }
        let mut file = File::create(dest).map_err(|e| db_err(dest, e.to_string()))?;
        let mut body = resp.into_body();
        let mut total: u64 = 0;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| Error::Http {
                url: text.clone(),
                reason: format!("download cut: {e}"),
            })?;
            if let Ok(data) = frame.into_data() {
                total += data.len() as u64;
                if total > MAX_ARCHIVE_BYTES {
                    return Err(Error::Http {
                        url: text,
                        reason: format!("archive larger than {MAX_ARCHIVE_BYTES} bytes"),
                    });
                }
                file.write_all(&data)
                    .map_err(|e| db_err(dest, e.to_string()))?;
            }
        }
        file.sync_all().map_err(|e| db_err(dest, e.to_string()))?;
        return Ok(total);
    }
    Err(Error::Http {
        url: original,
        reason: format!("more than {MAX_REDIRECTS} redirects"),
    })
}

async fn get(url: &Url) -> Result<hyper::Response<hyper::body::Incoming>, String> {
    let tcp = TcpStream::connect((url.host.as_str(), url.port))
        .await
        .map_err(|e| format!("cannot connect to {}:{}: {e}", url.host, url.port))?;
    let target = url.target();
    let host = url.to_string();
    let host = host
        .split("://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or(&url.host)
        .to_owned();
    if url.tls {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let name = rustls_pki_types::ServerName::try_from(url.host.clone())
            .map_err(|e| format!("invalid server name: {e}"))?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake failed: {e}"))?;
        send(TokioIo::new(tls), &target, &host).await
    } else {
        send(TokioIo::new(tcp), &target, &host).await
    }
}

async fn send<S>(
    io: TokioIo<S>,
    target: &str,
    host: &str,
) -> Result<hyper::Response<hyper::body::Incoming>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        // Ends with the body or an error the request reports.
        let _ = conn.await;
    });
    let req = hyper::Request::get(target)
        .header(hyper::header::HOST, host)
        .header(
            hyper::header::USER_AGENT,
            concat!("palisade/", env!("CARGO_PKG_VERSION")),
        )
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| e.to_string())?;
    sender.send_request(req).await.map_err(|e| {
        if e.is_parse() {
            format!("not an HTTP response: {e}")
        } else {
            e.to_string()
        }
    })
}

/// Unpacks and checks `zip`, then swaps it in as `db/name`.
fn install(zip: &Path, db: &Path, name: &str, archive_bytes: u64) -> Result<Updated, Error> {
    let pid = std::process::id();
    let fresh = db.join(format!(".{name}.new-{pid}"));
    let _ = std::fs::remove_dir_all(&fresh);
    std::fs::create_dir_all(&fresh).map_err(|e| db_err(&fresh, e.to_string()))?;
    let unpacked = unpack(zip, &fresh);
    let (advisories, invalid) = match unpacked {
        Ok(x) => x,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&fresh);
            return Err(db_err(db, format!("{name}: {e}")));
        }
    };
    let total = advisories + invalid.len();
    let refuse = if total == 0 {
        Some("the archive holds no OSV advisory".to_owned())
    } else if advisories == 0 || invalid.len() * 100 > total * MAX_INVALID_PERCENT {
        Some(format!(
            "{} of {total} entries are not valid OSV advisories (first: {})",
            invalid.len(),
            invalid.first().map_or("", |s| s.as_str())
        ))
    } else {
        None
    };
    if let Some(why) = refuse {
        let _ = std::fs::remove_dir_all(&fresh);
        return Err(db_err(
            db,
            format!("{name}: {why}; database left unchanged"),
        ));
    }
    // Swap: old → .old, new → name, remove old. Each rename is atomic; a
    // reader sees the old or the new set, and for a moment none (which
    // `Database::load` reports as an error, never as "no advisories").
    let target = db.join(name);
    let old = db.join(format!(".{name}.old-{pid}"));
    let had_old = target.exists();
    if had_old {
        std::fs::rename(&target, &old).map_err(|e| db_err(&target, e.to_string()))?;
    }
    if let Err(e) = std::fs::rename(&fresh, &target) {
        if had_old {
            let _ = std::fs::rename(&old, &target);
        }
        let _ = std::fs::remove_dir_all(&fresh);
        return Err(db_err(&target, e.to_string()));
    }
    if had_old {
        let _ = std::fs::remove_dir_all(&old);
    }
    Ok(Updated {
        dir: target,
        archive_bytes,
        advisories,
        invalid,
    })
}

fn u16le(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32le(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Unpacks the `.json` entries of `zip` into `dest` (flat, file names
/// only); returns (advisories written, invalid entry names).
pub fn unpack(zip: &Path, dest: &Path) -> Result<(usize, Vec<String>), String> {
    let mut f = File::open(zip).map_err(|e| e.to_string())?;
    let len = f.seek(SeekFrom::End(0)).map_err(|e| e.to_string())?;
    // End of central directory: 22 bytes plus a comment of up to 64 KiB.
    let tail_len = len.min(22 + 65_535);
    f.seek(SeekFrom::Start(len - tail_len))
        .map_err(|e| e.to_string())?;
    let mut tail = vec![0u8; tail_len as usize];
    f.read_exact(&mut tail).map_err(|e| e.to_string())?;
    let eocd = (0..tail.len().saturating_sub(21))
        .rev()
        .find(|&i| tail[i..i + 4] == [0x50, 0x4b, 0x05, 0x06])
        .ok_or("not a zip archive (no end of central directory)")?;
    let entries = u16le(&tail, eocd + 10) as usize;
    let cd_size = u32le(&tail, eocd + 12) as u64;
    let cd_offset = u32le(&tail, eocd + 16) as u64;
    if entries == 0xffff || cd_offset == 0xffff_ffff {
        return Err("zip64 archives are not supported".into());
    }
    // A central directory entry is at most 46 bytes plus three 64 KiB
    // fields, so a real one is never larger than this for MAX_RECORDS.
    let cd_cap = 256u64 << 20;
    if entries > crate::osv::MAX_RECORDS || cd_offset + cd_size > len || cd_size > cd_cap {
        return Err("corrupt zip (central directory out of range)".into());
    }
    f.seek(SeekFrom::Start(cd_offset))
        .map_err(|e| e.to_string())?;
    let mut cd = vec![0u8; cd_size as usize];
    f.read_exact(&mut cd).map_err(|e| e.to_string())?;
    let mut at = 0usize;
    let mut written = 0usize;
    let mut invalid = Vec::new();
    let mut unpacked_total: u64 = 0;
    let mut names = std::collections::HashSet::new();
    for _ in 0..entries {
        if at + 46 > cd.len() || cd[at..at + 4] != [0x50, 0x4b, 0x01, 0x02] {
            return Err("corrupt zip (bad central directory entry)".into());
        }
        let method = u16le(&cd, at + 10);
        let crc = u32le(&cd, at + 16);
        let csize = u32le(&cd, at + 20) as u64;
        let usize_ = u32le(&cd, at + 24) as u64;
        let nlen = u16le(&cd, at + 28) as usize;
        let xlen = u16le(&cd, at + 30) as usize;
        let clen = u16le(&cd, at + 32) as usize;
        let local = u32le(&cd, at + 42) as u64;
        let name_end = at + 46 + nlen;
        if name_end > cd.len() {
            return Err("corrupt zip (entry name out of range)".into());
        }
        let name = String::from_utf8_lossy(&cd[at + 46..name_end]).into_owned();
        at = name_end + xlen + clen;
        if name.ends_with('/') || !name.to_ascii_lowercase().ends_with(".json") {
            continue;
        }
        let base = name.rsplit(['/', '\\']).next().unwrap_or("").to_owned();
        if base.starts_with('.') || base.is_empty() || !names.insert(base.clone()) {
            invalid.push(name);
            continue;
        }
        if usize_ > crate::osv::MAX_RECORD_BYTES {
            invalid.push(format!(
                "{name} (larger than {} bytes)",
                crate::osv::MAX_RECORD_BYTES
            ));
            continue;
        }
        unpacked_total += usize_;
        if unpacked_total > MAX_UNPACKED_BYTES {
            return Err(format!("unpacks to more than {MAX_UNPACKED_BYTES} bytes"));
        }
        let data = read_entry(&mut f, len, local, method, csize, usize_, crc)
            .map_err(|e| format!("{name}: {e}"))?;
        match serde_json::from_slice::<crate::osv::Advisory>(&data) {
            Ok(a) if !a.id.is_empty() => {
                std::fs::write(dest.join(&base), &data).map_err(|e| e.to_string())?;
                written += 1;
            }
            _ => invalid.push(name),
        }
    }
    Ok((written, invalid))
}

fn read_entry(
    f: &mut File,
    len: u64,
    local: u64,
    method: u16,
    csize: u64,
    usize_: u64,
    crc: u32,
) -> Result<Vec<u8>, String> {
    let mut head = [0u8; 30];
    f.seek(SeekFrom::Start(local)).map_err(|e| e.to_string())?;
    f.read_exact(&mut head).map_err(|e| e.to_string())?;
    if head[..4] != [0x50, 0x4b, 0x03, 0x04] {
        return Err("bad local header".into());
    }
    let skip = u16le(&head, 26) as u64 + u16le(&head, 28) as u64;
    let start = local + 30 + skip;
    if start + csize > len {
        return Err("data out of range".into());
    }
    f.seek(SeekFrom::Start(start)).map_err(|e| e.to_string())?;
    let raw = f.take(csize);
    let mut out = Vec::with_capacity(usize_ as usize);
    match method {
        0 => {
            raw.take(usize_ + 1)
                .read_to_end(&mut out)
                .map_err(|e| e.to_string())?;
        }
        8 => {
            flate2::read::DeflateDecoder::new(raw)
                .take(usize_ + 1)
                .read_to_end(&mut out)
                .map_err(|e| format!("deflate: {e}"))?;
        }
        m => return Err(format!("compression method {m} not supported")),
    }
    if out.len() as u64 != usize_ {
        return Err("size mismatch".into());
    }
    let mut c = flate2::Crc::new();
    c.update(&out);
    if c.sum() != crc {
        return Err("CRC-32 mismatch (corrupt archive)".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subdirs() {
        let u = |s: &str| Url::parse(s).unwrap();
        assert_eq!(subdir_name(&u("https://h/PyPI/all.zip")), "PyPI");
        assert_eq!(subdir_name(&u("https://h/crates.io/all.zip")), "crates.io");
        assert_eq!(subdir_name(&u("http://h/npm.zip")), "npm");
        assert_eq!(subdir_name(&u("http://h/..%2f/all.zip")), "_2f");
        assert_eq!(subdir_name(&u("http://h/")), "osv");
    }
}
