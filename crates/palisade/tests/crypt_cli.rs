//! `palisade crypt` against Python's `cryptography.fernet` both ways
//! (tokens, TTLs, rotation with timestamps kept), streaming file encryption
//! through the CLI (tampering leaves no output), hashes and manifests.
//!
//! Needs python3 with `cryptography` (tests/requirements.txt): under CI a
//! missing one fails the tests; elsewhere they are skipped with a reason.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let p = std::env::temp_dir().join(format!("palisade-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        Dir(p)
    }
    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    fn s(&self, name: &str) -> String {
        self.join(name).display().to_string()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs palisade with `args`, feeding `stdin`.
fn palisade(args: &[&str], stdin: &[u8]) -> Output {
    palisade_env(args, stdin, &[])
}

fn palisade_env(args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_palisade"));
    c.args(args)
        .env_remove("PALISADE_CRYPT_KEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c.spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "panic: {err}");
    out
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "palisade failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn err(o: &Output) -> String {
    assert!(!o.status.success(), "palisade succeeded unexpectedly");
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// True if python3 with `cryptography` is usable.
fn have_python() -> bool {
    common::tool_present(
        common::python_imports("cryptography.fernet"),
        "python3 with the `cryptography` package (tests/requirements.txt)",
    )
}

/// Runs a Python snippet; `args` are in sys.argv[1:]. Returns stdout.
fn python(code: &str, args: &[&str]) -> String {
    let o = Command::new("python3")
        .arg("-c")
        .arg(code)
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn keygen(d: &Dir, name: &str) -> String {
    let path = d.s(name);
    ok(&palisade(&["crypt", "keygen", "-o", &path], b""));
    std::fs::read_to_string(&path).unwrap().trim().to_string()
}

#[test]
fn python_tokens_decrypt_in_palisade_and_back() {
    if !have_python() {
        return;
    }
    let d = Dir::new("fernet");
    let key = keygen(&d, "k");
    let kf = d.s("k");
    // Python → palisade: several plaintexts, including empty and binary.
    let tokens = python(
        "import sys\nfrom cryptography.fernet import Fernet\nf=Fernet(sys.argv[1].encode())\n\
         for p in [b'', b'hello', bytes(range(256)), b'x'*100000]: print(f.encrypt(p).decode())",
        &[&key],
    );
    let want: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"hello".to_vec(),
        (0..=255u8).collect(),
        vec![b'x'; 100_000],
    ];
    for (tok, want) in tokens.lines().zip(&want) {
        // On stdin: the 100 kB token is longer than one argv string may be.
        let o = palisade(&["crypt", "decrypt", "-k", &kf], tok.as_bytes());
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(&o.stdout, want);
    }
    // palisade → Python, plaintext from stdin and from --text.
    let t1 = ok(&palisade(
        &["crypt", "encrypt", "-k", &kf],
        &[0, 1, 2, 255, b'\n'],
    ));
    let t2 = ok(&palisade(
        &["crypt", "encrypt", "-k", &kf, "--text", "héllo"],
        b"",
    ));
    let got = python(
        "import sys\nfrom cryptography.fernet import Fernet\nf=Fernet(sys.argv[1].encode())\n\
         print(f.decrypt(sys.argv[2].strip(), ttl=60).hex()); print(f.decrypt(sys.argv[3].strip()).decode())",
        &[&key, &t1, &t2],
    );
    assert_eq!(got, "000102ff0a\nhéllo\n");
}

#[test]
fn tampered_truncated_wrong_key_and_expired_tokens_fail() {
    if !have_python() {
        return;
    }
    let d = Dir::new("fernet-bad");
    let key = keygen(&d, "k");
    let _ = keygen(&d, "other");
    let kf = d.s("k");
    // Made 1000 s ago, and 120 s in the future, by Python.
    let out = python(
        "import sys,time,base64\nfrom cryptography.fernet import Fernet\nf=Fernet(sys.argv[1].encode())\n\
         now=int(time.time())\nprint(f.encrypt_at_time(b'old', now-1000).decode())\n\
         print(f.encrypt_at_time(b'future', now+120).decode())\nprint(f.encrypt(b'fresh').decode())",
        &[&key],
    );
    let lines: Vec<&str> = out.lines().collect();
    let (old, future, fresh) = (lines[0], lines[1], lines[2]);

    // TTL: expired with --ttl 100, fine with --ttl 5000 or without a TTL.
    let e = err(&palisade(
        &["crypt", "decrypt", "-k", &kf, "--ttl", "100", old],
        b"",
    ));
    assert!(e.contains("expired"), "{e}");
    assert_eq!(
        ok(&palisade(
            &["crypt", "decrypt", "-k", &kf, "--ttl", "5000", old],
            b""
        )),
        "old"
    );
    assert_eq!(
        ok(&palisade(&["crypt", "decrypt", "-k", &kf, old], b"")),
        "old"
    );
    // More than 60 s in the future: refused with a TTL (Python's rule), accepted without.
    let e = err(&palisade(
        &["crypt", "decrypt", "-k", &kf, "--ttl", "100", future],
        b"",
    ));
    assert!(e.contains("future"), "{e}");
    assert_eq!(
        ok(&palisade(&["crypt", "decrypt", "-k", &kf, future], b"")),
        "future"
    );

    // Tampered (one character of the ciphertext), truncated, wrong key.
    let mut t: Vec<u8> = fresh.as_bytes().to_vec();
    let i = t.len() / 2;
    t[i] = if t[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(t).unwrap();
    let truncated = &fresh[..fresh.len() - 4];
    for bad in [tampered.as_str(), truncated, "", "not a token"] {
        let e = err(&palisade(&["crypt", "decrypt", "-k", &kf, bad], b""));
        assert!(e.contains("invalid token"), "{bad:?}: {e}");
    }
    let e = err(&palisade(
        &["crypt", "decrypt", "-k", &d.s("other"), fresh],
        b"",
    ));
    assert!(e.contains("invalid token"), "{e}");
    // Python agrees on the tampered one.
    let py = python(
        r#"
import sys
from cryptography.fernet import Fernet, InvalidToken
try:
    Fernet(sys.argv[1].encode()).decrypt(sys.argv[2])
    print("accepted")
except InvalidToken:
    print("rejected")
"#,
        &[&key, &tampered],
    );
    assert_eq!(py.trim(), "rejected");
}

#[test]
fn rotate_keeps_timestamps_and_env_keys_work() {
    if !have_python() {
        return;
    }
    let d = Dir::new("rotate");
    let old = keygen(&d, "old");
    let new = keygen(&d, "new");
    let tokens = python(
        "import sys\nfrom cryptography.fernet import Fernet\nf=Fernet(sys.argv[1].encode())\n\
         print(f.encrypt_at_time(b'one', 1_500_000_000).decode())\n\
         print(f.encrypt_at_time(b'two', 1_600_000_000).decode())",
        &[&old],
    );
    // Primary (new) first, old second: one key file with two lines.
    std::fs::write(d.join("ring"), format!("{new}\n{old}\n")).unwrap();
    let rotated = ok(&palisade(
        &["crypt", "rotate", "-k", &d.s("ring")],
        tokens.as_bytes(),
    ));
    assert_eq!(rotated.lines().count(), 2);
    let check = python(
        r#"
import sys
from cryptography.fernet import Fernet, InvalidToken
n = Fernet(sys.argv[1].encode())
o = Fernet(sys.argv[2].encode())
for t in sys.argv[3].split():
    print(n.extract_timestamp(t), n.decrypt(t).decode())
    try:
        o.decrypt(t)
        print("old key still works")
    except InvalidToken:
        pass
"#,
        &[&new, &old, &rotated],
    );
    assert_eq!(check, "1500000000 one\n1600000000 two\n");

    // Keys from the environment (comma-separated), never from argv.
    let env_keys = format!("{new},{old}");
    let first = tokens.lines().next().unwrap();
    let o = palisade_env(
        &["crypt", "decrypt", first],
        b"",
        &[("PALISADE_CRYPT_KEY", &env_keys)],
    );
    assert_eq!(ok(&o), "one");
    let e = err(&palisade(&["crypt", "decrypt", first], b""));
    assert!(e.contains("PALISADE_CRYPT_KEY"), "{e}");
    // A broken key file is a clear error that does not echo its content.
    std::fs::write(d.join("broken"), "c2VjcmV0LWJ1dC1zaG9ydA==\n").unwrap();
    let e = err(&palisade(
        &["crypt", "decrypt", "-k", &d.s("broken"), first],
        b"",
    ));
    assert!(e.contains("32 bytes") && !e.contains("c2VjcmV0"), "{e}");
}

#[test]
fn encrypt_file_round_trips_and_tampering_leaves_no_output() {
    let d = Dir::new("stream");
    keygen(&d, "k");
    let kf = d.s("k");
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(d.join("plain"), &data).unwrap();
    ok(&palisade(
        &[
            "crypt",
            "encrypt-file",
            "-k",
            &kf,
            &d.s("plain"),
            "-o",
            &d.s("enc"),
        ],
        b"",
    ));
    ok(&palisade(
        &[
            "crypt",
            "decrypt-file",
            "-k",
            &kf,
            &d.s("enc"),
            "-o",
            &d.s("dec"),
        ],
        b"",
    ));
    assert_eq!(std::fs::read(d.join("dec")).unwrap(), data);

    let enc = std::fs::read(d.join("enc")).unwrap();
    let mut flipped = enc.clone();
    flipped[500_000] ^= 0x10;
    std::fs::write(d.join("flipped"), &flipped).unwrap();
    std::fs::write(d.join("cut"), &enc[..enc.len() - 16 - 16_960]).unwrap();
    for (bad, what) in [("flipped", "altered"), ("cut", "truncated")] {
        let out = d.s(&format!("{bad}.dec"));
        let e = err(&palisade(
            &["crypt", "decrypt-file", "-k", &kf, &d.s(bad), "-o", &out],
            b"",
        ));
        assert!(
            e.contains("authentication") && e.contains(what),
            "{bad}: {e}"
        );
        assert!(!Path::new(&out).exists(), "partial plaintext left at {out}");
    }
    // No temporary files left behind either.
    let names: Vec<String> = std::fs::read_dir(&d.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.contains(".tmp-")), "{names:?}");
}

#[test]
fn hash_matches_known_digests_from_files_and_stdin() {
    let d = Dir::new("hash");
    std::fs::write(d.join("abc"), "abc").unwrap();
    let out = ok(&palisade(&["crypt", "hash", &d.s("abc")], b""));
    assert_eq!(
        out,
        format!(
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  {}\n",
            d.s("abc")
        )
    );
    // BLAKE3("abc") from the reference implementation's test vectors.
    let out = ok(&palisade(&["crypt", "hash", "-a", "blake3"], b"abc"));
    assert_eq!(
        out,
        "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85  -\n"
    );
    let e = err(&palisade(&["crypt", "hash", "-a", "md5"], b""));
    assert!(e.contains("unknown digest"), "{e}");
}

#[test]
fn manifest_reports_added_removed_changed_and_checks_signature() {
    let d = Dir::new("manifest");
    keygen(&d, "k");
    let site = d.join("site");
    std::fs::create_dir_all(site.join("css/deep")).unwrap();
    std::fs::write(site.join("index.html"), "<h1>hi</h1>").unwrap();
    std::fs::write(site.join("css/a.css"), "a{}").unwrap();
    std::fs::write(site.join("css/deep/b.css"), "b{}").unwrap();
    let m = site.join("MANIFEST").display().to_string();
    let site_s = site.display().to_string();
    let kf = d.s("k");
    let out = ok(&palisade(
        &["crypt", "manifest", "create", &site_s, "-o", &m, "-k", &kf],
        b"",
    ));
    assert!(out.contains("3 files") && out.contains("signed"), "{out}");
    let text = std::fs::read_to_string(&m).unwrap();
    let paths: Vec<&str> = text
        .lines()
        .skip(2)
        .filter(|l| !l.starts_with("hmac"))
        .map(|l| l.splitn(3, ' ').nth(2).unwrap())
        .collect();
    assert_eq!(paths, ["css/a.css", "css/deep/b.css", "index.html"]);
    let out = ok(&palisade(
        &["crypt", "manifest", "verify", &m, "-k", &kf],
        b"",
    ));
    assert!(out.contains("ok: 3 files match (signature ok)"), "{out}");

    std::fs::write(site.join("index.html"), "<h1>defaced</h1>").unwrap();
    std::fs::remove_file(site.join("css/a.css")).unwrap();
    std::fs::write(site.join("shell.php"), "<?php").unwrap();
    let o = palisade(&["crypt", "manifest", "verify", &m, "-k", &kf], b"");
    let e = err(&o);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("added    shell.php"), "{out}");
    assert!(out.contains("removed  css/a.css"), "{out}");
    assert!(out.contains("changed  index.html"), "{out}");
    assert!(e.contains("1 added, 1 removed, 1 changed"), "{e}");

    // An edited manifest fails its signature; an escaping path is refused.
    let edited = text.replace("index.html", "index.htm");
    std::fs::write(&m, &edited).unwrap();
    let e = err(&palisade(
        &["crypt", "manifest", "verify", &m, "-k", &kf],
        b"",
    ));
    assert!(e.contains("signature does not verify"), "{e}");
    let evil = format!(
        "palisade-manifest v1\nalgorithm sha256\n{} 4 ../../etc/passwd\n",
        "0".repeat(64)
    );
    std::fs::write(&m, evil).unwrap();
    let e = err(&palisade(&["crypt", "manifest", "verify", &m], b""));
    assert!(e.contains("escapes the directory"), "{e}");
}
