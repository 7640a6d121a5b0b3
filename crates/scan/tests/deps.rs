#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Dependency audit against a small OSV fixture database written here.

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use scan::deps::audit;
use scan::osv::{rfc3339_seconds, Database};
use scan::Severity;

const MODIFIED: &str = "2026-11-20T10:00:00Z";

fn now() -> std::time::SystemTime {
    UNIX_EPOCH + Duration::from_secs(rfc3339_seconds("2026-11-23T00:00:00Z").unwrap() as u64)
}

fn write_db(dir: &Path) {
    let recs = [
        (
            "RUSTSEC-1.json",
            r#"{"id":"RUSTSEC-1","modified":"M","summary":"crate bug",
          "affected":[{"package":{"ecosystem":"crates.io","name":"smallvec"},
          "ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.6.1"}]}]}]}"#,
        ),
        (
            "GHSA-py.json",
            r#"{"id":"GHSA-py","modified":"M","aliases":["CVE-2021-1"],
          "database_specific":{"severity":"MODERATE"},
          "affected":[{"package":{"ecosystem":"PyPI","name":"django"},
          "ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"3.2"},{"fixed":"3.2.10"}]}]}]}"#,
        ),
        (
            "GHSA-npm.json",
            r#"{"id":"GHSA-npm","modified":"M",
          "database_specific":{"severity":"CRITICAL"},
          "affected":[{"package":{"ecosystem":"npm","name":"lodash"},
          "ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"4.17.21"}]}]}]}"#,
        ),
        (
            "GO-1.json",
            r#"{"id":"GO-1","modified":"M",
          "affected":[{"package":{"ecosystem":"Go","name":"golang.org/x/net"},
          "ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"0.7.0"}]}]}]}"#,
        ),
        (
            "PYSEC-list.json",
            r#"{"id":"PYSEC-list","modified":"M",
          "affected":[{"package":{"ecosystem":"PyPI","name":"Py_Yaml"},"versions":["5.3"]}]}"#,
        ),
        ("broken.json", "{ not json"),
    ];
    for (name, body) in recs {
        std::fs::write(
            dir.join(name),
            body.replace("\"M\"", &format!("\"{MODIFIED}\"")),
        )
        .unwrap();
    }
}

fn lockfiles(dir: &Path) -> Vec<std::path::PathBuf> {
    let files = [
        ("Cargo.lock", "version = 3\n[[package]]\nname = \"smallvec\"\nversion = \"1.6.0\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\n\n[[package]]\nname = \"myapp\"\nversion = \"0.1.0\"\n\n[[package]]\nname = \"serde\"\nversion = \"1.0.0\"\nsource = \"registry+x\"\n"),
        ("requirements.txt", "Django==3.2.5\npy-yaml==5.3\nflask==2.0.0\n"),
        ("poetry.lock", "[[package]]\nname = \"django\"\nversion = \"3.2.10\"\n"),
        ("package-lock.json", r#"{"lockfileVersion":3,"packages":{"":{"name":"app"},
          "node_modules/lodash":{"version":"4.17.20"},
          "node_modules/a/node_modules/lodash":{"version":"4.17.21"}}}"#),
        ("go.sum", "golang.org/x/net v0.6.0 h1:a=\ngolang.org/x/net v0.6.0/go.mod h1:b=\ngolang.org/x/text v0.3.0 h1:c=\n"),
    ];
    files
        .iter()
        .map(|(n, body)| {
            let sub = dir.join(n.replace('.', "_"));
            std::fs::create_dir_all(&sub).unwrap();
            let p = sub.join(n);
            std::fs::write(&p, body).unwrap();
            p
        })
        .collect()
}

#[test]
fn vulnerable_versions_found_and_fixed_versions_clean() {
    let tmp = tempfile::tempdir().unwrap();
    let db_dir = tmp.path().join("db");
    std::fs::create_dir(&db_dir).unwrap();
    write_db(&db_dir);
    let db = Database::load(&db_dir, Some(Duration::from_secs(7 * 86400)), now()).unwrap();
    assert_eq!(db.len(), 5);
    assert_eq!(db.skipped.len(), 1, "broken.json skipped, not fatal");
    let files = lockfiles(tmp.path());
    let refs: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    let report = audit(&refs, &db).unwrap();
    let mut got: Vec<(String, String, String)> = report
        .findings
        .iter()
        .map(|f| {
            (
                f.id.clone(),
                f.dependency.name.clone(),
                f.dependency.version.clone(),
            )
        })
        .collect();
    got.sort();
    let want = [
        ("GHSA-npm", "lodash", "4.17.20"),
        ("GHSA-py", "Django", "3.2.5"),
        ("GO-1", "golang.org/x/net", "v0.6.0"),
        ("PYSEC-list", "py-yaml", "5.3"),
        ("RUSTSEC-1", "smallvec", "1.6.0"),
    ];
    let want: Vec<(String, String, String)> = want
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
    assert_eq!(got, want);
    // myapp (no source) is skipped; 2 Cargo + 3 req + 1 poetry + 2 npm + 2 go.
    assert_eq!(report.checked, 10);
    let sev = |id: &str| {
        report
            .findings
            .iter()
            .find(|f| f.id == id)
            .unwrap()
            .severity
    };
    assert_eq!(sev("GHSA-npm"), Severity::Critical);
    assert_eq!(sev("GHSA-py"), Severity::Medium);
    assert_eq!(sev("RUSTSEC-1"), Severity::High, "unrated counts as high");
}

#[test]
fn absent_empty_and_stale_databases_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let week = Some(Duration::from_secs(7 * 86400));
    assert!(Database::load(&tmp.path().join("nope"), week, now()).is_err());
    assert!(
        Database::load(tmp.path(), week, now()).is_err(),
        "empty dir"
    );
    write_db(tmp.path());
    let later = now() + Duration::from_secs(30 * 86400);
    let e = Database::load(tmp.path(), week, later)
        .unwrap_err()
        .to_string();
    assert!(e.contains("days ago"), "{e}");
    assert!(
        Database::load(tmp.path(), None, later).is_ok(),
        "max age disabled"
    );
}

#[test]
fn malformed_lockfiles_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    for (n, body) in [
        ("Cargo.lock", "[[package]\n"),
        (
            "package-lock.json",
            r#"{"lockfileVersion":1,"dependencies":{}}"#,
        ),
        ("yarn.lock", ""),
    ] {
        let p = tmp.path().join(n);
        std::fs::write(&p, body).unwrap();
        assert!(scan::deps::parse_lockfile(&p).is_err(), "{n}");
    }
}
