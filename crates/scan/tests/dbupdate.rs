#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `--db-update`: OSV export zips built here, served on loopback.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use scan::dbupdate::update;
use scan::osv::Database;

/// A minimal zip writer (stored or deflate entries).
fn zip(entries: &[(&str, &[u8], bool)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data, deflate) in entries {
        let mut crc = flate2::Crc::new();
        crc.update(data);
        let packed = if *deflate {
            let mut e =
                flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        } else {
            data.to_vec()
        };
        let method: u16 = if *deflate { 8 } else { 0 };
        let offset = out.len() as u32;
        let mut common = Vec::new();
        common.extend_from_slice(&20u16.to_le_bytes()); // version needed
        common.extend_from_slice(&0u16.to_le_bytes()); // flags
        common.extend_from_slice(&method.to_le_bytes());
        common.extend_from_slice(&[0, 0, 0x21, 0]); // time, date
        common.extend_from_slice(&crc.sum().to_le_bytes());
        common.extend_from_slice(&(packed.len() as u32).to_le_bytes());
        common.extend_from_slice(&(data.len() as u32).to_le_bytes());
        common.extend_from_slice(&(name.len() as u16).to_le_bytes());
        common.extend_from_slice(&0u16.to_le_bytes()); // extra
        out.extend_from_slice(&[0x50, 0x4b, 3, 4]);
        out.extend_from_slice(&common);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&packed);
        central.extend_from_slice(&[0x50, 0x4b, 1, 2]);
        central.extend_from_slice(&20u16.to_le_bytes()); // made by
        central.extend_from_slice(&common);
        central.extend_from_slice(&[0; 8]); // comment len, disk, int attr, ext attr (part)
        central.extend_from_slice(&[0; 2]);
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&[0x50, 0x4b, 5, 6, 0, 0, 0, 0]);
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

fn advisory(id: &str, name: &str, fixed: &str) -> Vec<u8> {
    let modified = scan::report::rfc3339(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            - 3600,
    );
    format!(
        r#"{{"id":"{id}","modified":"{modified}","summary":"bug in {name}",
        "affected":[{{"package":{{"ecosystem":"crates.io","name":"{name}"}},
        "ranges":[{{"type":"SEMVER","events":[{{"introduced":"0"}},{{"fixed":"{fixed}"}}]}}]}}]}}"#
    )
    .into_bytes()
}

type Routes = Arc<std::sync::Mutex<HashMap<String, (u16, Vec<u8>, Option<String>)>>>;

async fn server(routes: Routes) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let routes = routes.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&buf);
                let path = line.split(' ').nth(1).unwrap_or("/").to_owned();
                let (status, body, location) = routes
                    .lock()
                    .unwrap()
                    .get(&path)
                    .cloned()
                    .unwrap_or((404, b"not found".to_vec(), None));
                let mut head = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                    body.len()
                );
                if let Some(l) = location {
                    head.push_str(&format!("Location: {l}\r\n"));
                }
                head.push_str("\r\n");
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(&body).await;
            });
        }
    });
    port
}

fn load(db: &Path) -> Database {
    Database::load(
        db,
        Some(Duration::from_secs(86400)),
        std::time::SystemTime::now(),
    )
    .unwrap()
}

#[tokio::test]
async fn update_installs_verifies_and_replaces_atomically() {
    let routes: Routes = Arc::default();
    let port = server(routes.clone()).await;
    let put = |path: &str, status: u16, body: Vec<u8>, loc: Option<String>| {
        routes
            .lock()
            .unwrap()
            .insert(path.to_owned(), (status, body, loc));
    };
    let good = zip(&[
        (
            "RUSTSEC-2024-1.json",
            &advisory("RUSTSEC-2024-1", "smallvec", "1.6.1"),
            true,
        ),
        (
            "sub/RUSTSEC-2024-2.json",
            &advisory("RUSTSEC-2024-2", "time", "0.2.23"),
            false,
        ),
        ("README.txt", b"not an advisory, ignored", false),
    ]);
    put("/crates.io/all.zip", 200, good, None);
    put(
        "/mirror/crates.io/all.zip",
        302,
        Vec::new(),
        Some("/crates.io/all.zip".to_owned()),
    );
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");

    let u = update(&format!("http://127.0.0.1:{port}/crates.io/all.zip"), &db)
        .await
        .unwrap();
    assert_eq!(u.advisories, 2);
    assert!(u.invalid.is_empty());
    assert_eq!(u.dir, db.join("crates.io"));
    let d = load(&db);
    assert_eq!(d.len(), 2, "{:?}", d.skipped);

    // The database works for a dependency audit.
    let lock = dir.path().join("Cargo.lock");
    std::fs::write(
        &lock,
        "version = 3\n[[package]]\nname = \"smallvec\"\nversion = \"1.6.0\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\n",
    )
    .unwrap();
    let r = scan::deps::audit(&[lock.as_path()], &d).unwrap();
    assert_eq!(r.findings.len(), 1);
    assert_eq!(r.findings[0].id, "RUSTSEC-2024-1");

    // A newer export replaces the old one (followed through a redirect).
    let newer = zip(&[(
        "RUSTSEC-2024-3.json",
        &advisory("RUSTSEC-2024-3", "regex", "1.5.5"),
        true,
    )]);
    put("/crates.io/all.zip", 200, newer, None);
    let u = update(
        &format!("http://127.0.0.1:{port}/mirror/crates.io/all.zip"),
        &db,
    )
    .await
    .unwrap();
    assert_eq!(u.advisories, 1);
    let files: Vec<String> = std::fs::read_dir(db.join("crates.io"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files, ["RUSTSEC-2024-3.json"]);

    // Bad downloads leave that database untouched.
    let mut corrupt = zip(&[(
        "RUSTSEC-9.json",
        &advisory("RUSTSEC-9", "x", "1.0.0"),
        false,
    )]);
    let p = corrupt.windows(9).position(|w| w == b"RUSTSEC-9").unwrap();
    let p2 = corrupt[p + 9..]
        .windows(9)
        .position(|w| w == b"RUSTSEC-9")
        .unwrap()
        + p
        + 9;
    corrupt[p2 + 2] ^= 0x20; // flips a byte of the stored JSON data
    let not_osv = zip(&[("a.json", br#"{"hello":"world"}"#, true)]);
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (corrupt, 200, "CRC-32 mismatch"),
        (not_osv, 200, "not valid OSV advisories"),
        (
            b"<html>maintenance</html>".to_vec(),
            200,
            "not a zip archive",
        ),
        (Vec::new(), 404, "HTTP status 404"),
        (zip(&[("README", b"x", false)]), 200, "no OSV advisory"),
    ];
    for (body, status, want) in cases {
        put("/crates.io/all.zip", status, body, None);
        let e = update(&format!("http://127.0.0.1:{port}/crates.io/all.zip"), &db)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{want}: {e}");
        let d = load(&db);
        assert_eq!(d.len(), 1, "{want}");
        // No temporary files or directories are left behind.
        let names: Vec<String> = std::fs::read_dir(&db)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 1, "{want}: {names:?}");
    }

    // Refused connection and bad URL are clear errors.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let cport = closed.local_addr().unwrap().port();
    drop(closed);
    let e = update(&format!("http://127.0.0.1:{cport}/x/all.zip"), &db)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot connect"), "{e}");
    let e = update("ftp://x/all.zip", &db)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("invalid URL"), "{e}");
}
