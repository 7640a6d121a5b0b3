#![allow(clippy::unwrap_used, clippy::expect_used)]
//! TOTP interoperability with Python's pyotp (what many servers and test
//! suites use; it follows Google Authenticator): codes pyotp computes for an
//! enrolled secret are accepted, and pyotp accepts ours.

use std::process::Command;

/// Runs a Python snippet; `None` (test skipped) only when python3/pyotp are
/// missing and CI is unset. Under CI a missing tool fails the test.
fn python(script: &str) -> Option<String> {
    let out = Command::new("python3").arg("-c").arg(script).output();
    let missing = match &out {
        Err(e) => Some(format!("python3 not runnable: {e}")),
        Ok(o)
            if !o.status.success()
                && String::from_utf8_lossy(&o.stderr).contains("No module named 'pyotp'") =>
        {
            Some("pyotp not installed (pip install -r tests/requirements.txt)".into())
        }
        Ok(_) => None,
    };
    if let Some(why) = missing {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{why}");
        }
        eprintln!("skipping pyotp interop: {why}");
        return None;
    }
    let o = out.unwrap();
    assert!(
        o.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    Some(String::from_utf8(o.stdout).unwrap().trim().to_owned())
}

#[test]
fn pyotp_codes_accepted_and_ours_accepted_by_pyotp() {
    let db = identity::UserDb::memory().unwrap();
    db.add("erin", "$unused", &[]).unwrap();
    let (secret, _codes) = db.totp_enroll("erin").unwrap();
    let uri = identity::totp::otpauth_uri("palisade", "erin", &secret);
    let t0 = 1_750_000_000u64;
    for (i, t) in [t0, t0 + 30, t0 + 95, t0 + 3600].into_iter().enumerate() {
        // pyotp parses our enrollment URI, as an authenticator app would.
        let Some(code) = python(&format!(
            "import pyotp; print(pyotp.parse_uri({uri:?}).at({t}))"
        )) else {
            return;
        };
        assert_eq!(code.len(), 6, "{code}");
        assert!(
            db.totp_check("erin", &code, t).unwrap(),
            "pyotp code {code} at {t} (#{i}) refused"
        );
        // Replay of the same pyotp code is refused.
        assert!(!db.totp_check("erin", &code, t).unwrap());
    }
    // The reverse: pyotp verifies our codes, including at skewed times.
    for t in [t0 + 7200, t0 + 7201, t0 + 9999] {
        let ours = identity::totp::code_at(&secret, t).unwrap();
        let ok = python(&format!(
            "import pyotp; print(pyotp.TOTP({secret:?}).verify({ours:?}, for_time={t}))"
        ))
        .unwrap();
        assert_eq!(ok, "True", "pyotp refused our code {ours} at {t}");
    }
    // A code from pyotp one step behind is accepted (±1 skew), two steps not.
    let t = t0 + 20000;
    let behind = python(&format!(
        "import pyotp; print(pyotp.TOTP({secret:?}).at({}))",
        t - 30
    ))
    .unwrap();
    let far = python(&format!(
        "import pyotp; print(pyotp.TOTP({secret:?}).at({}))",
        t - 60
    ))
    .unwrap();
    if far != behind {
        assert!(identity::totp::verify(&secret, &far, t, None)
            .unwrap()
            .is_none());
    }
    assert!(identity::totp::verify(&secret, &behind, t, None)
        .unwrap()
        .is_some());
}
