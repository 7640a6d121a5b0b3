//! The grade, after the SSL Labs SSL Server Rating Guide (2009 scores,
//! with the caps added since: TLS 1.0/1.1 → B (2020), 3DES/64-bit blocks →
//! C (2017), RC4 → C (2015), no forward secrecy → B (2018), untrusted
//! certificate → T, name mismatch → M), and the Mozilla server-side TLS
//! intermediate/modern compliance check (guidelines v5.7).

use serde::Serialize;

use super::wire::Protocol;
use super::TlsReport;

/// HSTS max-age needed for A+: default 180 days (SSL Labs).
pub const HSTS_MIN_AGE: u64 = 15_552_000;
/// HSTS max-age Mozilla recommends: two years.
pub const MOZILLA_HSTS_AGE: u64 = 63_072_000;

/// A grade cap and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cap {
    /// Highest grade allowed (`A-`, `B`, `C`, `F`, `T`, `M`).
    pub max: String,
    /// Why.
    pub reason: String,
}

/// The overall grade.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Grade {
    /// Final grade: `A+`..`F`, or `T` (certificate not trusted) / `M`
    /// (name mismatch).
    pub grade: String,
    /// The grade the configuration earns if the certificate issue were fixed.
    pub grade_if_trusted: String,
    /// Weighted score 0-100 (30% protocol, 30% key exchange, 40% cipher).
    pub score: u32,
    /// Protocol support score.
    pub protocol_score: u32,
    /// Key exchange score.
    pub key_exchange_score: u32,
    /// Cipher strength score.
    pub cipher_score: u32,
    /// Every cap that applied.
    pub caps: Vec<Cap>,
}

const ORDER: [&str; 8] = ["A+", "A", "A-", "B", "C", "D", "E", "F"];

fn rank(g: &str) -> usize {
    ORDER
        .iter()
        .position(|x| *x == g)
        .unwrap_or(ORDER.len() - 1)
}

fn proto_score(p: Protocol) -> u32 {
    match p {
        Protocol::Ssl3 => 80,
        Protocol::Tls10 => 90,
        Protocol::Tls11 => 95,
        Protocol::Tls12 | Protocol::Tls13 => 100,
    }
}

fn kx_score(bits: u32) -> u32 {
    match bits {
        0 => 0,
        1..=511 => 20,
        512..=1023 => 40,
        1024..=2047 => 80,
        2048..=4095 => 90,
        _ => 100,
    }
}

fn cipher_score(bits: u16) -> u32 {
    match bits {
        0 => 0,
        1..=127 => 20,
        128..=255 => 80,
        _ => 100,
    }
}

/// RSA-equivalent strength of the server key (ECDSA P-256 ≈ RSA 3072).
fn key_strength(r: &TlsReport) -> Option<u32> {
    let leaf = r.certificate.as_ref()?.chain.first()?;
    Some(match leaf.key_type.as_str() {
        "EC" => match leaf.key_bits {
            0..=223 => 1024,
            224..=255 => 2048,
            256..=383 => 3072,
            _ => 7680,
        },
        "Ed25519" => 3072,
        "Ed448" => 7680,
        _ => leaf.key_bits,
    })
}

/// Grades a report (protocols, suites, key sizes, certificate, HSTS).
pub fn grade(r: &TlsReport) -> Grade {
    let sup = r.supported();
    let all: Vec<(Protocol, &super::suites::SuiteInfo)> = r
        .protocols
        .iter()
        .flat_map(|p| {
            p.suites
                .iter()
                .filter_map(move |s| s.info.as_ref().map(|i| (p.protocol, i)))
        })
        .collect();
    let (best, worst) = (
        sup.iter().map(|p| proto_score(*p)).max().unwrap_or(0),
        sup.iter().map(|p| proto_score(*p)).min().unwrap_or(0),
    );
    let protocol_score = (best + worst) / 2;
    let anon = all.iter().any(|(_, s)| s.auth == "anon");
    let export = all.iter().any(|(_, s)| s.export);
    let kx_bits = [key_strength(r), r.dh_bits].into_iter().flatten().min();
    let key_exchange_score = if anon {
        0
    } else if export {
        40
    } else {
        kx_bits.map_or(90, kx_score)
    };
    let cipher_score = {
        let hi = all
            .iter()
            .map(|(_, s)| cipher_score(s.bits))
            .max()
            .unwrap_or(0);
        let lo = all
            .iter()
            .map(|(_, s)| cipher_score(s.bits))
            .min()
            .unwrap_or(0);
        (hi + lo) / 2
    };
    let score = (protocol_score * 3 + key_exchange_score * 3 + cipher_score * 4) / 10;
    let mut letter = match score {
        80.. => "A",
        65..=79 => "B",
        50..=64 => "C",
        35..=49 => "D",
        20..=34 => "E",
        _ => "F",
    }
    .to_string();

    let mut caps = Vec::new();
    let mut cap = |max: &str, reason: String| {
        caps.push(Cap {
            max: max.into(),
            reason,
        })
    };
    if sup.contains(&Protocol::Ssl3) {
        cap(
            "F",
            "SSL 3.0 is supported (POODLE; insecure protocol)".into(),
        );
    }
    if let Some((p, s)) = all.iter().find(|(_, s)| s.cipher == "NULL") {
        cap("F", format!("NULL cipher accepted ({p} {})", s.name));
    }
    if let Some((p, s)) = all.iter().find(|(_, s)| s.auth == "anon") {
        cap(
            "F",
            format!("anonymous key exchange accepted ({p} {})", s.name),
        );
    }
    if let Some((p, s)) = all.iter().find(|(_, s)| s.export) {
        cap("F", format!("EXPORT suite accepted ({p} {})", s.name));
    }
    if let Some((p, s)) = all
        .iter()
        .find(|(_, s)| s.cipher.contains("DES") && !s.cipher.contains("3DES"))
    {
        cap("F", format!("single DES accepted ({p} {})", s.name));
    }
    if let Some(b) = key_strength(r).filter(|b| *b < 1024) {
        cap("F", format!("certificate key of {b} bits (below 1024)"));
    }
    if let Some(b) = r.dh_bits.filter(|b| *b < 1024) {
        cap("F", format!("DH parameters of {b} bits (below 1024)"));
    }
    if r.compression == Some(true) {
        cap("C", "TLS compression enabled (CRIME)".into());
    }
    if let Some((p, s)) = all.iter().find(|(_, s)| s.cipher.contains("RC4")) {
        cap("C", format!("RC4 accepted ({p} {})", s.name));
    }
    if let Some((p, s)) = all.iter().find(|(p, s)| s.block64 && *p >= Protocol::Tls11) {
        cap(
            "C",
            format!(
                "64-bit block cipher with TLS 1.1+ (SWEET32: {p} {})",
                s.name
            ),
        );
    }
    if !sup.contains(&Protocol::Tls12) && !sup.contains(&Protocol::Tls13) {
        cap("C", "TLS 1.2 is not supported".into());
    }
    if sup.contains(&Protocol::Tls10) || sup.contains(&Protocol::Tls11) {
        let old: Vec<&str> = sup
            .iter()
            .filter(|p| matches!(p, Protocol::Tls10 | Protocol::Tls11))
            .map(|p| p.name())
            .collect();
        cap(
            "B",
            format!("{} supported (deprecated since 2020)", old.join(" and ")),
        );
    }
    if !all.iter().any(|(_, s)| s.forward_secret) {
        cap("B", "no forward secrecy (no ECDHE/DHE suite)".into());
    }
    if let Some(b) = r.dh_bits.filter(|b| (1024..2048).contains(b)) {
        cap("B", format!("DH parameters of {b} bits (below 2048)"));
    }
    if let Some(b) = key_strength(r).filter(|b| (1024..2048).contains(b)) {
        cap("B", format!("certificate key of {b} bits (below 2048)"));
    }
    if !all.iter().any(|(_, s)| s.aead) {
        cap("B", "no AEAD cipher suite (CBC only)".into());
    }
    if r.secure_renegotiation == Some(false) {
        cap("A-", "secure renegotiation (RFC 5746) not supported".into());
    }
    if !sup.contains(&Protocol::Tls13) {
        cap("A-", "TLS 1.3 not supported".into());
    }
    for c in &caps {
        if rank(&c.max) > rank(&letter) {
            letter = c.max.clone();
        }
    }
    // A+: an A with no cap and HSTS of at least 180 days.
    if letter == "A" {
        match &r.http {
            Some(h) if h.hsts_max_age.unwrap_or(0) >= HSTS_MIN_AGE => letter = "A+".into(),
            Some(h) if h.hsts.is_some() => caps.push(Cap {
                max: "A".into(),
                reason: "HSTS max-age below 180 days (A+ needs it)".into(),
            }),
            Some(_) => caps.push(Cap {
                max: "A".into(),
                reason: "no HSTS header (A+ needs Strict-Transport-Security)".into(),
            }),
            None => caps.push(Cap {
                max: "A".into(),
                reason: "HSTS not checked: no HTTP answer (A+ needs Strict-Transport-Security)"
                    .into(),
            }),
        }
    }
    let grade_if_trusted = letter.clone();
    let mut grade = letter;
    if let Some(c) = &r.certificate {
        let mut trust = Vec::new();
        if c.days_left < 0 {
            trust.push("certificate expired".to_string());
        }
        if c.self_signed {
            trust.push("self-signed certificate".to_string());
        }
        if !c.trusted {
            trust.push(format!(
                "chain not trusted ({})",
                c.trust_error.as_deref().unwrap_or("unknown")
            ));
        }
        if !trust.is_empty() {
            grade = "T".into();
            caps.push(Cap {
                max: "T".into(),
                reason: trust.join("; "),
            });
        } else if !c.hostname_match {
            grade = "M".into();
            caps.push(Cap {
                max: "M".into(),
                reason: "certificate name mismatch".into(),
            });
        }
    }
    Grade {
        grade,
        grade_if_trusted,
        score,
        protocol_score,
        key_exchange_score,
        cipher_score,
        caps,
    }
}

/// Compliance with one Mozilla profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Compliance {
    /// `intermediate` or `modern`.
    pub profile: String,
    /// No required change.
    pub compliant: bool,
    /// What must change (protocols, suites, groups, certificate, HSTS).
    pub differences: Vec<String>,
    /// Recommended but not required (OCSP stapling).
    pub recommendations: Vec<String>,
}

/// TLS 1.2 suites of Mozilla's intermediate profile.
pub const MOZILLA_INTERMEDIATE_TLS12: &[u16] = &[
    0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8, 0x009E, 0x009F, 0xCCAA,
];
/// TLS 1.3 suites of both profiles.
pub const MOZILLA_TLS13: &[u16] = &[0x1301, 0x1302, 0x1303];
/// Groups of both profiles (v5.7: X25519MLKEM768 added).
pub const MOZILLA_GROUPS: &[u16] = &[0x11EC, 0x001D, 0x0017, 0x0018];

/// Checks the report against Mozilla's intermediate and modern profiles.
pub fn mozilla(r: &TlsReport) -> Vec<Compliance> {
    let mut out = Vec::new();
    for (profile, versions) in [
        ("intermediate", &[Protocol::Tls12, Protocol::Tls13][..]),
        ("modern", &[Protocol::Tls13][..]),
    ] {
        let mut diff = Vec::new();
        let mut rec = Vec::new();
        let sup = r.supported();
        for p in &sup {
            if !versions.contains(p) {
                diff.push(format!("disable {p}"));
            }
        }
        if !sup.contains(&Protocol::Tls13) {
            diff.push("enable TLSv1.3".into());
        }
        for pr in r
            .protocols
            .iter()
            .filter(|p| versions.contains(&p.protocol))
        {
            let allowed: &[u16] = if pr.protocol == Protocol::Tls13 {
                MOZILLA_TLS13
            } else {
                MOZILLA_INTERMEDIATE_TLS12
            };
            for s in &pr.suites {
                if !allowed.contains(&s.id) {
                    diff.push(format!("remove {} {}", pr.protocol, s.name));
                }
            }
        }
        for g in r.groups.iter().filter(|g| g.supported) {
            let ffdhe_ok = profile == "intermediate" && (0x0100..=0x0104).contains(&g.id);
            if !(MOZILLA_GROUPS.contains(&g.id) || ffdhe_ok) {
                diff.push(format!("remove group {}", g.name));
            }
        }
        if let Some(leaf) = r.certificate.as_ref().and_then(|c| c.chain.first()) {
            let ok = match (profile, leaf.key_type.as_str()) {
                ("modern", "EC") => leaf.key_bits >= 256,
                ("modern", "RSA") => leaf.key_bits >= 2048,
                (_, "RSA") => leaf.key_bits >= 2048,
                (_, "EC") => leaf.key_bits >= 256,
                (_, "Ed25519") => true,
                _ => false,
            };
            if !ok {
                diff.push(format!(
                    "certificate key {} {} bits: use ECDSA P-256 or RSA 2048",
                    leaf.key_type, leaf.key_bits
                ));
            }
            let lifespan = (leaf.not_after - leaf.not_before) / 86400;
            if lifespan > 366 {
                diff.push(format!("certificate lifespan {lifespan} days (max 366)"));
            }
        }
        if let Some(b) = r.dh_bits.filter(|b| *b < 2048) {
            diff.push(format!("DH parameters {b} bits (use ffdhe2048)"));
        }
        match &r.http {
            Some(h) if h.hsts_max_age.unwrap_or(0) >= MOZILLA_HSTS_AGE => {}
            Some(h) => diff.push(match h.hsts_max_age {
                Some(a) => format!("HSTS max-age={a} (use max-age={MOZILLA_HSTS_AGE})"),
                None => format!("HSTS missing (send max-age={MOZILLA_HSTS_AGE})"),
            }),
            None => rec.push("HSTS not checked (no HTTP answer)".into()),
        }
        if r.ocsp_stapled != Some(true) {
            rec.push("enable OCSP stapling".into());
        }
        out.push(Compliance {
            profile: profile.into(),
            compliant: diff.is_empty(),
            differences: diff,
            recommendations: rec,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::{suites, AcceptedSuite, HttpInfo, ProtocolResult};

    /// A report with `offered` accepted per protocol, a trusted-looking
    /// absent certificate and HSTS of two years.
    fn report(offered: &[(Protocol, &[u16])]) -> TlsReport {
        TlsReport {
            target: "t:443".into(),
            addr: "127.0.0.1:443".parse().unwrap(),
            sni: None,
            protocols: offered
                .iter()
                .map(|(p, ids)| ProtocolResult {
                    protocol: *p,
                    supported: true,
                    suites: ids
                        .iter()
                        .map(|id| AcceptedSuite {
                            id: *id,
                            name: suites::lookup(*id).unwrap().name.into(),
                            info: suites::lookup(*id),
                            kx_detail: None,
                        })
                        .collect(),
                    refused: None,
                    server_order: None,
                })
                .collect(),
            groups: Vec::new(),
            dh_bits: None,
            certificate: None,
            ocsp_stapled: Some(true),
            secure_renegotiation: Some(true),
            compression: Some(false),
            client_cert_requested: false,
            http: Some(HttpInfo {
                status: 200,
                hsts: Some("max-age=63072000".into()),
                hsts_max_age: Some(63_072_000),
            }),
            http_error: None,
            grade: Grade::default(),
            mozilla: Vec::new(),
            findings: Vec::new(),
            handshakes: 0,
            elapsed_ms: 0,
        }
    }

    fn caps(g: &Grade) -> Vec<&str> {
        g.caps.iter().map(|c| c.max.as_str()).collect()
    }

    #[test]
    fn modern_config_is_a_plus_and_hsts_decides_the_plus() {
        let mut r = report(&[
            (Protocol::Tls12, &[0xC02F, 0xC030]),
            (Protocol::Tls13, &[0x1301, 0x1302]),
        ]);
        let g = grade(&r);
        assert_eq!((g.grade.as_str(), g.caps.len()), ("A+", 0));
        r.http = Some(HttpInfo {
            status: 200,
            hsts: None,
            hsts_max_age: None,
        });
        let g = grade(&r);
        assert_eq!(g.grade, "A");
        assert!(g.caps[0].reason.contains("no HSTS"));
    }

    #[test]
    fn caps_by_rule() {
        type Offered<'a> = &'a [(Protocol, &'a [u16])];
        let cases: &[(Offered, &str, &str)] = &[
            (
                &[(Protocol::Ssl3, &[0x002F]), (Protocol::Tls12, &[0xC02F])],
                "F",
                "SSL 3.0",
            ),
            (&[(Protocol::Tls12, &[0xC02F, 0x0005])], "C", "RC4"),
            (&[(Protocol::Tls12, &[0xC02F, 0x000A])], "C", "SWEET32"),
            (&[(Protocol::Tls12, &[0xC02F, 0x0018])], "F", "anonymous"),
            (&[(Protocol::Tls12, &[0xC02F, 0x0003])], "F", "EXPORT"),
            (
                &[(Protocol::Tls12, &[0x009C, 0x002F])],
                "B",
                "no forward secrecy",
            ),
            (&[(Protocol::Tls12, &[0xC013])], "B", "no AEAD"),
            (
                &[(Protocol::Tls11, &[0xC013])],
                "C",
                "TLS 1.2 is not supported",
            ),
            (
                &[(Protocol::Tls12, &[0xC02F])],
                "A-",
                "TLS 1.3 not supported",
            ),
        ];
        for (offered, max, why) in cases {
            let g = grade(&report(offered));
            assert!(
                g.caps
                    .iter()
                    .any(|c| c.max == *max && c.reason.contains(why)),
                "{offered:?}: {:?}",
                g.caps
            );
            assert!(rank(&g.grade) >= rank(max), "{offered:?}: {}", g.grade);
        }
        let mut r = report(&[(Protocol::Tls12, &[0xC02F]), (Protocol::Tls13, &[0x1301])]);
        r.compression = Some(true);
        assert_eq!(grade(&r).grade, "C");
        r.compression = Some(false);
        r.dh_bits = Some(1024);
        assert!(caps(&grade(&r)).contains(&"B"));
        r.dh_bits = Some(512);
        assert_eq!(grade(&r).grade, "F");
    }

    #[test]
    fn mozilla_differences_are_listed() {
        let r = report(&[
            (Protocol::Tls10, &[0xC013]),
            (Protocol::Tls12, &[0xC02F, 0x002F]),
        ]);
        let m = mozilla(&r);
        assert!(!m[0].compliant);
        for d in [
            "disable TLSv1.0",
            "enable TLSv1.3",
            "remove TLSv1.2 TLS_RSA_WITH_AES_128_CBC_SHA",
        ] {
            assert!(m[0].differences.iter().any(|x| x == d), "{d}: {:?}", m[0]);
        }
        assert!(!m[0]
            .differences
            .iter()
            .any(|x| x.contains("ECDHE_RSA_WITH_AES_128_GCM")));
        let ok = report(&[(Protocol::Tls12, &[0xC02F]), (Protocol::Tls13, &[0x1301])]);
        assert!(mozilla(&ok)[0].compliant, "{:?}", mozilla(&ok)[0]);
        assert_eq!(
            mozilla(&ok)[1].differences,
            vec!["disable TLSv1.2".to_string()]
        );
    }
}
