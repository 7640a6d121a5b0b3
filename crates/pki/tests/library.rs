//! The library API the listeners build on: paths of the trust bundle and
//! CRL, issuing (including an already-expired certificate for expiry
//! tests), revocation, CRL numbers and renewal, without the CLI.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use pki::{IssueRequest, KeyType, Pki, Reason, Secret, Status};
use zeroize::Zeroizing;

fn secret() -> Secret {
    Secret::passphrase(Zeroizing::new("library test passphrase".to_string())).unwrap()
}

fn tmp(tag: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("pki-lib-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    p
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn lifecycle_through_the_library() {
    let dir = tmp("life");
    let s = secret();
    let mut ca = Pki::init(&dir, &s, &Default::default()).unwrap();
    let bundle = std::fs::read_to_string(ca.layout().ca_bundle()).unwrap();
    assert_eq!(bundle.matches("BEGIN CERTIFICATE").count(), 2);
    assert!(std::fs::read_to_string(ca.layout().crl())
        .unwrap()
        .starts_with("-----BEGIN X509 CRL-----"));
    assert_eq!(ca.inventory().next_crl_number, 2);

    let a = ca
        .issue(&s, &IssueRequest::new("a", KeyType::P256))
        .unwrap();
    assert!(a.files.p12.exists() && a.files.chain.exists());
    assert_eq!(a.entry.sans, ["dns:a"]);
    assert_eq!(a.entry.status_at(now()), "active");

    // Valid for one day, ten days ago: expired now.
    let mut old = IssueRequest::new("old", KeyType::Ed25519);
    old.days = 1;
    old.valid_from = Some(now() - 10 * 86_400);
    let o = ca.issue(&s, &old).unwrap();
    assert_eq!(o.entry.status_at(now()), "expired");

    let r = ca
        .revoke(&a.entry.serial.to_uppercase(), Reason::KeyCompromise)
        .unwrap();
    assert_eq!(r.status, Status::Revoked);
    assert!(ca.revoke("a", Reason::Unspecified).is_err());
    assert_eq!(ca.write_crl(&s).unwrap(), 2);

    // Reopened from disk: the same inventory.
    let mut again = Pki::open(&dir).unwrap();
    assert_eq!(again.inventory().certificates.len(), 2);
    assert_eq!(again.inventory().next_crl_number, 3);
    let renewed = again.renew(&s, "old", Some(3)).unwrap();
    assert_ne!(renewed.entry.serial, o.entry.serial);
    assert_eq!(renewed.entry.status_at(now()), "active");
    let statuses: Vec<Status> = again
        .inventory()
        .certificates
        .iter()
        .map(|e| e.status)
        .collect();
    assert_eq!(
        statuses,
        [Status::Revoked, Status::Superseded, Status::Active]
    );

    // The wrong secret is refused before anything is written.
    let wrong = Secret::passphrase(Zeroizing::new("not the passphrase".to_string())).unwrap();
    let e = again.write_crl(&wrong).unwrap_err();
    assert!(e.to_string().contains("wrong passphrase"), "{e}");
    assert_eq!(Pki::open(&dir).unwrap().inventory().next_crl_number, 3);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Eight threads, each with its own `Pki` opened before any of them issues
/// (as eight `palisade pki issue` processes would be): every certificate
/// ends up in the inventory, because each change locks the directory and
/// re-reads the inventory first.
#[test]
fn concurrent_issues_keep_every_inventory_entry() {
    let dir = tmp("concurrent");
    let s = secret();
    Pki::init(&dir, &s, &Default::default()).unwrap();
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let mut ca = Pki::open(&dir).unwrap();
            std::thread::spawn(move || {
                let s = secret();
                let name = format!("dev-{i}");
                ca.issue(&s, &IssueRequest::new(&name, KeyType::P256))
                    .unwrap();
                if i % 2 == 0 {
                    ca.revoke(&name, Reason::Superseded).unwrap();
                    ca.write_crl(&s).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let inv = Pki::open(&dir).unwrap().inventory().clone();
    let mut names: Vec<&str> = inv.certificates.iter().map(|e| e.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["dev-0", "dev-1", "dev-2", "dev-3", "dev-4", "dev-5", "dev-6", "dev-7"]
    );
    let revoked = inv
        .certificates
        .iter()
        .filter(|e| e.status == Status::Revoked)
        .count();
    assert_eq!(revoked, 4);
    // init's CRL is number 1, then one per revoking thread.
    assert_eq!(inv.next_crl_number, 6);
    std::fs::remove_dir_all(&dir).unwrap();
}
