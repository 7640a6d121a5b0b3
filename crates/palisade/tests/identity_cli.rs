#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `palisade user …` and `palisade access check` against the real binary.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const STRONG: &str = "vQ7#tramway-Pelican-91";

fn write_config(dir: &Path) -> std::path::PathBuf {
    let cfg = dir.join("palisade.toml");
    std::fs::write(
        &cfg,
        r#"
[state]
backend = "sqlite"
[state.sqlite]
path = "state.db"

[identity]
users_db = "users.db"
issuer = "Example Co"

[identity.access]
default_policy = "deny"
[[identity.access.rules]]
name = "health"
paths = ["/healthz"]
policy = "bypass"
[[identity.access.rules]]
name = "admins"
hosts = ["admin.example.com"]
roles = ["admin"]
policy = "two_factor"
[[identity.access.rules]]
name = "office"
hosts = ["*.example.com"]
networks = ["10.0.0.0/8"]
policy = "one_factor"
"#,
    )
    .unwrap();
    cfg
}

fn run(cfg: &Path, args: &[&str], stdin: &str) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .arg("--log-format")
        .arg("text")
        .args(args)
        .arg("-c")
        .arg(cfg)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    c.wait_with_output().unwrap()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn fails(o: &Output) -> String {
    assert!(
        !o.status.success(),
        "unexpected success: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn user_lifecycle() {
    let d = tempfile::tempdir().unwrap();
    let cfg = write_config(d.path());
    let out = ok(&run(
        &cfg,
        &["user", "add", "Alice", "--role", "admin"],
        &format!("{STRONG}\n"),
    ));
    assert_eq!(out, "added user alice (roles: admin)\n");
    // NFKC: fullwidth ａｌｉｃｅ is alice.
    let e = fails(&run(
        &cfg,
        &["user", "add", "ａｌｉｃｅ"],
        &format!("{STRONG}\n"),
    ));
    assert!(e.contains("user already exists: alice"), "{e}");
    // The policy says why.
    let e = fails(&run(&cfg, &["user", "add", "bob"], "short\n"));
    assert!(e.contains("too short"), "{e}");
    let e = fails(&run(&cfg, &["user", "add", "bob"], "bobbobbobbob1\n"));
    assert!(e.contains("too easy to guess"), "{e}");
    let e = fails(&run(&cfg, &["user", "add", "bob"], ""));
    assert!(e.contains("no password on stdin"), "{e}");
    ok(&run(&cfg, &["user", "add", "bob"], &format!("{STRONG}x\n")));

    // The stored hash is argon2id with the default (OWASP) parameters and verifies.
    let db = identity::UserDb::open(&d.path().join("users.db")).unwrap();
    let u = db.get("alice").unwrap().unwrap();
    assert!(u
        .password_hash
        .starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
    assert!(identity::Hasher::default()
        .verify(STRONG, &u.password_hash)
        .unwrap());

    let out = ok(&run(&cfg, &["user", "roles", "bob", "dev", "ops"], ""));
    assert_eq!(out, "bob: dev,ops\n");
    let out = ok(&run(&cfg, &["user", "roles", "bob"], ""));
    assert_eq!(out, "bob: dev,ops\n");

    let svg = d.path().join("qr.svg");
    let out = ok(&run(
        &cfg,
        &[
            "user",
            "totp-enroll",
            "alice",
            "--svg",
            svg.to_str().unwrap(),
        ],
        "",
    ));
    assert!(out.contains("TOTP enrolled for alice."), "{out}");
    let svg_text = std::fs::read_to_string(&svg).unwrap();
    assert!(svg_text.contains("<svg") && svg_text.contains("</svg>"));
    let secret = out
        .lines()
        .find_map(|l| l.strip_prefix("secret: "))
        .unwrap()
        .to_owned();
    assert!(out.contains(&format!(
        "uri: otpauth://totp/Example%20Co:alice?secret={secret}&issuer=Example%20Co"
    )));
    let codes: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("  ") && l.len() == 21)
        .collect();
    assert_eq!(codes.len(), 10, "{out}");
    assert!(out.contains('▀') || out.contains('▄') || out.contains('█'));
    // The enrolled secret works with the library, and a recovery code once.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let code = identity::totp::code_at(&secret, now).unwrap();
    assert!(db.totp_check("alice", &code, now).unwrap());
    assert!(db.use_recovery_code("alice", codes[0].trim()).unwrap());

    let out = ok(&run(&cfg, &["user", "list"], ""));
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("USER"));
    assert!(
        lines[1].starts_with("alice") && lines[1].contains("yes") && lines[1].contains(" 9 "),
        "{out}"
    );
    assert!(
        lines[2].starts_with("bob") && lines[2].contains("no"),
        "{out}"
    );
    assert_eq!(lines[3], "2 user(s)");

    ok(&run(&cfg, &["user", "totp-reset", "alice"], ""));
    assert!(db.get("alice").unwrap().unwrap().totp_secret.is_none());

    let e = fails(&run(
        &cfg,
        &["user", "passwd", "nobody"],
        &format!("{STRONG}\n"),
    ));
    assert!(e.contains("no such user: nobody"), "{e}");
    let out = ok(&run(&cfg, &["user", "del", "bob"], ""));
    assert_eq!(out, "deleted user bob; sessions revoked\n");
    assert!(db.get("bob").unwrap().is_none());
}

#[test]
fn logout_all_and_passwd_revoke_sessions() {
    let d = tempfile::tempdir().unwrap();
    let cfg = write_config(d.path());
    ok(&run(
        &cfg,
        &["user", "add", "carol"],
        &format!("{STRONG}\n"),
    ));
    let st = state::StateConfig {
        backend: state::BackendKind::Sqlite,
        sqlite: state::SqliteConfig {
            path: d.path().join("state.db"),
            ..Default::default()
        },
        ..Default::default()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let id = rt.block_on(async {
        let store = state::Store::open(&st).await.unwrap();
        let s = identity::Sessions::new(store, Default::default());
        let id = s
            .create("carol", 2, false, state::now_micros() - 5_000_000)
            .await
            .unwrap();
        assert!(s.check(&id, state::now_micros()).await.unwrap().is_ok());
        id
    });
    let out = ok(&run(&cfg, &["user", "logout-all", "carol"], ""));
    assert_eq!(out, "all sessions of carol revoked\n");
    rt.block_on(async {
        let store = state::Store::open(&st).await.unwrap();
        let s = identity::Sessions::new(store, Default::default());
        assert_eq!(
            s.check(&id, state::now_micros()).await.unwrap(),
            Err(identity::Refusal::Revoked)
        );
    });
    let out = ok(&run(
        &cfg,
        &["user", "passwd", "carol"],
        &format!("{STRONG}!\n"),
    ));
    assert_eq!(out, "password changed for carol; sessions revoked\n");
    let e = fails(&run(&cfg, &["user", "logout-all", "dave"], ""));
    assert!(e.contains("no such user: dave"), "{e}");
}

#[test]
fn access_check_prints_rule_and_reason() {
    let d = tempfile::tempdir().unwrap();
    let cfg = write_config(d.path());
    ok(&run(
        &cfg,
        &["user", "add", "root", "--role", "admin"],
        &format!("{STRONG}\n"),
    ));
    let check = |args: &[&str]| {
        let mut a = vec!["access", "check"];
        a.extend_from_slice(args);
        ok(&run(&cfg, &a, ""))
    };
    assert_eq!(
        check(&["--url", "https://admin.example.com/x", "--user", "root", "--ip", "203.0.113.9"]),
        "rule 2 \"admins\": two_factor\nwhy: host admin.example.com ~ admin.example.com, user root has role admin\n"
    );
    assert_eq!(
        check(&["--url", "https://wiki.example.com:8443/page?q=1", "--ip", "10.2.3.4"]),
        "rule 3 \"office\": one_factor\nwhy: host wiki.example.com ~ *.example.com, client 10.2.3.4 in 10.0.0.0/8\n"
    );
    assert_eq!(
        check(&["--url", "http://anything/healthz"]),
        "rule 1 \"health\": bypass\nwhy: path /healthz under /healthz\n"
    );
    assert_eq!(
        check(&["--url", "https://wiki.example.com/", "--ip", "203.0.113.9"]),
        "default: deny\nwhy: no rule matched\n"
    );
    let out = check(&["--url", "https://admin.example.com/"]);
    assert!(
        out.contains("needs") || out.contains("note: anonymous"),
        "{out}"
    );
    let e = fails(&run(&cfg, &["access", "check", "--url", "ftp://x/"], ""));
    assert!(e.contains("not an absolute http(s) URL"), "{e}");
    let e = fails(&run(
        &cfg,
        &["access", "check", "--url", "https://x/", "--user", "ghost"],
        "",
    ));
    assert!(e.contains("no such user: ghost"), "{e}");
}
