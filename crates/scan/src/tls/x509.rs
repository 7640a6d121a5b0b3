//! Just enough X.509 (DER) to judge a server certificate: names, validity,
//! public key type and size, signature algorithm, subjectAltName and
//! basicConstraints. The walk descends a fixed number of levels (no
//! recursion on input), and every read is bounds-checked; a malformed certificate
//! is reported as such, never a panic.

use serde::Serialize;

/// What the scanner learned from one certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CertInfo {
    /// Subject as `CN=...,O=...`.
    pub subject: String,
    /// Issuer as `CN=...,O=...`.
    pub issuer: String,
    /// Subject common name.
    pub common_name: Option<String>,
    /// DNS names and IP addresses of subjectAltName.
    pub san: Vec<String>,
    /// notBefore, seconds since the Unix epoch.
    pub not_before: i64,
    /// notAfter, seconds since the Unix epoch.
    pub not_after: i64,
    /// `RSA`, `EC`, `Ed25519`, `Ed448`, `DSA` or the OID.
    pub key_type: String,
    /// Key size in bits (RSA modulus, EC curve size).
    pub key_bits: u32,
    /// EC curve name.
    pub curve: Option<String>,
    /// Signature algorithm (`sha256WithRSAEncryption`, `ecdsa-with-SHA256`...).
    pub signature_algorithm: String,
    /// basicConstraints CA flag.
    pub is_ca: bool,
    /// Subject and issuer are the same name.
    pub self_issued: bool,
    #[serde(skip)]
    pub(crate) subject_der: Vec<u8>,
    #[serde(skip)]
    pub(crate) issuer_der: Vec<u8>,
}

#[derive(Clone, Copy)]
struct Tlv<'a> {
    tag: u8,
    body: &'a [u8],
    /// The whole element (header + body).
    raw: &'a [u8],
}

fn read_tlv(b: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
    let tag = *b.first()?;
    let l0 = *b.get(1)?;
    let (len, hdr) = if l0 < 0x80 {
        (usize::from(l0), 2)
    } else {
        let n = usize::from(l0 & 0x7F);
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | usize::from(*b.get(2 + i)?);
        }
        (len, 2 + n)
    };
    let end = hdr.checked_add(len)?;
    if b.len() < end {
        return None;
    }
    Some((
        Tlv {
            tag,
            body: &b[hdr..end],
            raw: &b[..end],
        },
        &b[end..],
    ))
}

fn children(b: &[u8]) -> Option<Vec<Tlv<'_>>> {
    let mut out = Vec::new();
    let mut rest = b;
    while !rest.is_empty() {
        let (t, r) = read_tlv(rest)?;
        out.push(t);
        rest = r;
    }
    Some(out)
}

fn oid_name(oid: &[u8]) -> String {
    const TABLE: &[(&[u8], &str)] = &[
        (
            &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01],
            "RSA",
        ),
        (
            &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x04],
            "md5WithRSAEncryption",
        ),
        (
            &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x05],
            "sha1WithRSAEncryption",
        ),
        (
            &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0A],
            "rsassaPss",
        ),
        (
            &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0B],
            "sha256WithRSAEncryption",
        ),
        (
            &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0C],
            "sha384WithRSAEncryption",
        ),
        (
            &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0D],
            "sha512WithRSAEncryption",
        ),
        (&[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01], "EC"),
        (
            &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x01],
            "ecdsa-with-SHA1",
        ),
        (
            &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02],
            "ecdsa-with-SHA256",
        ),
        (
            &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x03],
            "ecdsa-with-SHA384",
        ),
        (
            &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x04],
            "ecdsa-with-SHA512",
        ),
        (&[0x2A, 0x86, 0x48, 0xCE, 0x38, 0x04, 0x01], "DSA"),
        (&[0x2A, 0x86, 0x48, 0xCE, 0x38, 0x04, 0x03], "dsa-with-SHA1"),
        (&[0x2B, 0x65, 0x70], "Ed25519"),
        (&[0x2B, 0x65, 0x71], "Ed448"),
        (&[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07], "P-256"),
        (&[0x2B, 0x81, 0x04, 0x00, 0x22], "P-384"),
        (&[0x2B, 0x81, 0x04, 0x00, 0x23], "P-521"),
    ];
    TABLE
        .iter()
        .find(|(o, _)| *o == oid)
        .map(|(_, n)| (*n).to_string())
        .unwrap_or_else(|| {
            let hex: Vec<String> = oid.iter().map(|b| format!("{b:02x}")).collect();
            format!("oid:{}", hex.join(""))
        })
}

fn attr_short(oid: &[u8]) -> Option<&'static str> {
    match oid {
        [0x55, 0x04, 0x03] => Some("CN"),
        [0x55, 0x04, 0x06] => Some("C"),
        [0x55, 0x04, 0x07] => Some("L"),
        [0x55, 0x04, 0x08] => Some("ST"),
        [0x55, 0x04, 0x0A] => Some("O"),
        [0x55, 0x04, 0x0B] => Some("OU"),
        _ => None,
    }
}

/// Renders a Name; returns (`CN=..,O=..`, common name).
fn name(n: &Tlv<'_>) -> (String, Option<String>) {
    let mut parts = Vec::new();
    let mut cn = None;
    for set in children(n.body).unwrap_or_default() {
        for atv in children(set.body).unwrap_or_default() {
            let kids = children(atv.body).unwrap_or_default();
            if let [oid, val, ..] = kids.as_slice() {
                let v = String::from_utf8_lossy(val.body).into_owned();
                let k = attr_short(oid.body).unwrap_or("?");
                if k == "CN" && cn.is_none() {
                    cn = Some(v.clone());
                }
                parts.push(format!("{k}={v}"));
            }
        }
    }
    (parts.join(","), cn)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn time(t: &Tlv<'_>) -> Option<i64> {
    let s = std::str::from_utf8(t.body).ok()?;
    let digits = |a: usize, b: usize| -> Option<i64> { s.get(a..b)?.parse().ok() };
    let (y, off) = match t.tag {
        0x17 => {
            let yy = digits(0, 2)?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, 2)
        }
        0x18 => (digits(0, 4)?, 4),
        _ => return None,
    };
    let mo = digits(off, off + 2)?;
    let d = digits(off + 2, off + 4)?;
    let h = digits(off + 4, off + 6)?;
    let mi = digits(off + 6, off + 8)?;
    let sec = digits(off + 8, off + 10).unwrap_or(0);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec)
}

fn int_bits(b: &[u8]) -> u32 {
    let b = match b.iter().position(|x| *x != 0) {
        Some(i) => &b[i..],
        None => return 0,
    };
    b.len() as u32 * 8 - b[0].leading_zeros()
}

/// Parses a DER certificate.
pub fn parse(der: &[u8]) -> Option<CertInfo> {
    let (cert, _) = read_tlv(der)?;
    let top = children(cert.body)?;
    let [tbs, sig_alg, ..] = top.as_slice() else {
        return None;
    };
    let mut f = children(tbs.body)?;
    if f.first()?.tag == 0xA0 {
        f.remove(0);
    }
    // serial, signature, issuer, validity, subject, spki, [extensions]
    if f.len() < 6 {
        return None;
    }
    let (issuer, _) = name(&f[2]);
    let validity = children(f[3].body)?;
    let (subject, cn) = name(&f[4]);
    let spki = children(f[5].body)?;
    let alg = children(spki.first()?.body)?;
    let key_type = oid_name(alg.first()?.body);
    let key_bits_raw = spki.get(1)?.body.get(1..).unwrap_or_default();
    let (key_bits, curve) = match key_type.as_str() {
        "RSA" => {
            let seq = read_tlv(key_bits_raw)?.0;
            let parts = children(seq.body)?;
            (int_bits(parts.first()?.body), None)
        }
        "EC" => {
            let c = alg.get(1).map(|p| oid_name(p.body));
            let bits = match c.as_deref() {
                Some("P-256") => 256,
                Some("P-384") => 384,
                Some("P-521") => 521,
                _ => 0,
            };
            (bits, c)
        }
        "Ed25519" => (256, None),
        "Ed448" => (456, None),
        _ => (0, None),
    };
    let sig_oid = children(sig_alg.body)?;
    let mut info = CertInfo {
        subject,
        issuer,
        common_name: cn,
        not_before: time(validity.first()?)?,
        not_after: time(validity.get(1)?)?,
        key_type,
        key_bits,
        curve,
        signature_algorithm: oid_name(sig_oid.first()?.body),
        self_issued: f[2].raw == f[4].raw,
        subject_der: f[4].raw.to_vec(),
        issuer_der: f[2].raw.to_vec(),
        ..CertInfo::default()
    };
    if let Some(ext) = f.iter().find(|t| t.tag == 0xA3) {
        let list = read_tlv(ext.body)?.0;
        for e in children(list.body)? {
            let parts = children(e.body)?;
            let Some(oid) = parts.first() else { continue };
            let Some(val) = parts.last() else { continue };
            match oid.body {
                [0x55, 0x1D, 0x11] => {
                    let seq = read_tlv(val.body)?.0;
                    for g in children(seq.body)? {
                        match g.tag {
                            0x82 => info.san.push(String::from_utf8_lossy(g.body).into_owned()),
                            0x87 => {
                                if let Ok(a) = <[u8; 4]>::try_from(g.body) {
                                    info.san.push(std::net::Ipv4Addr::from(a).to_string());
                                } else if let Ok(a) = <[u8; 16]>::try_from(g.body) {
                                    info.san.push(std::net::Ipv6Addr::from(a).to_string());
                                }
                            }
                            _ => {}
                        }
                    }
                }
                [0x55, 0x1D, 0x13] => {
                    let seq = read_tlv(val.body)?.0;
                    info.is_ca = children(seq.body)?
                        .first()
                        .is_some_and(|b| b.tag == 0x01 && b.body.first().is_some_and(|v| *v != 0));
                }
                _ => {}
            }
        }
    }
    Some(info)
}

/// Does `host` match a DNS name or IP of the certificate (RFC 6125:
/// a wildcard only as the whole left-most label)? Without a SAN the
/// common name is used, as old clients did.
pub fn matches_host(c: &CertInfo, host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let names: Vec<String> = if c.san.is_empty() {
        c.common_name.iter().cloned().collect()
    } else {
        c.san.clone()
    };
    names.iter().any(|n| {
        let n = n.to_ascii_lowercase();
        if let Some(suffix) = n.strip_prefix("*.") {
            match host.split_once('.') {
                Some((label, rest)) => !label.is_empty() && rest == suffix,
                None => false,
            }
        } else {
            n == host
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11017);
        let t = Tlv {
            tag: 0x17,
            body: b"491231235959Z",
            raw: &[],
        };
        assert_eq!(
            time(&t),
            Some(days_from_civil(2049, 12, 31) * 86400 + 86399)
        );
    }

    #[test]
    fn wildcard_matching() {
        let c = CertInfo {
            san: vec!["*.example.com".into(), "example.org".into()],
            ..CertInfo::default()
        };
        assert!(matches_host(&c, "www.example.com"));
        assert!(!matches_host(&c, "a.b.example.com"));
        assert!(!matches_host(&c, "example.com"));
        assert!(matches_host(&c, "EXAMPLE.org."));
    }

    #[test]
    fn garbage_is_none() {
        assert!(parse(&[0x30, 0x82, 0xFF]).is_none());
        assert!(parse(&[]).is_none());
        assert!(parse(&[0x30, 0x03, 0x02, 0x01, 0x00]).is_none());
    }

    /// A real certificate parses; every truncation and single-byte
    /// corruption of it is handled without a panic.
    #[test]
    fn real_certificate_and_its_corruptions() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(vec!["a.example".to_string()]).unwrap();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "a.example");
        p.not_before = rcgen::date_time_ymd(2024, 1, 2);
        p.not_after = rcgen::date_time_ymd(2030, 6, 7);
        let der = p.self_signed(&key).unwrap().der().to_vec();
        let c = parse(&der).unwrap();
        assert_eq!(c.common_name.as_deref(), Some("a.example"));
        assert_eq!(c.san, vec!["a.example".to_string()]);
        assert_eq!((c.key_type.as_str(), c.key_bits), ("EC", 256));
        assert_eq!(c.signature_algorithm, "ecdsa-with-SHA256");
        assert_eq!(c.not_before, days_from_civil(2024, 1, 2) * 86400);
        assert_eq!(c.not_after, days_from_civil(2030, 6, 7) * 86400);
        assert!(c.self_issued);
        assert!(matches_host(&c, "a.example"));
        for cut in 0..der.len() {
            let _ = parse(&der[..cut]);
        }
        for i in 0..der.len() {
            let mut d = der.clone();
            d[i] ^= 0xFF;
            let _ = parse(&d);
        }
    }
}
