//! Terminal rendering of a `palisade scan tls` report.

use scan::tls::{wire::Protocol, TlsReport};

fn yes_no(b: Option<bool>, yes: &str, no: &str, none: &str) -> String {
    match b {
        Some(true) => yes.to_string(),
        Some(false) => no.to_string(),
        None => none.to_string(),
    }
}

fn date(unix: i64) -> String {
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = unix.div_euclid(86400) + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Prints the human-readable report on stdout.
pub fn print(r: &TlsReport) {
    println!("TLS scan of {} ({})", r.target, r.addr);
    println!();
    println!("Protocols:");
    for p in &r.protocols {
        println!(
            "  {:<8} {}",
            p.protocol,
            if p.supported {
                match p.server_order {
                    Some(true) => "enabled (server order)",
                    Some(false) => "enabled (client order: suites listed in scanner order)",
                    None => "enabled",
                }
                .to_string()
            } else {
                format!(
                    "not offered{}",
                    p.refused
                        .as_deref()
                        .map(|w| format!(" ({w})"))
                        .unwrap_or_default()
                )
            }
        );
    }
    println!();
    println!("Cipher suites (server preference order):");
    println!(
        "  {:<8} {:<7} {:<46} {:<6} {:<6} {:<20} {:<7} {:<5} {:<9} KX",
        "PROTO", "ID", "NAME", "KX", "AUTH", "CIPHER", "MAC", "BITS", "STRENGTH"
    );
    for p in Protocol::ALL {
        for s in r.suites(p) {
            let (kx, auth, cipher, mac, bits, strength) = match &s.info {
                Some(i) => (
                    i.kx,
                    i.auth,
                    i.cipher,
                    i.mac,
                    i.bits.to_string(),
                    format!("{:?}", i.strength).to_lowercase(),
                ),
                None => ("?", "?", "?", "?", "?".into(), "?".into()),
            };
            println!(
                "  {:<8} 0x{:04X}  {:<46} {:<6} {:<6} {:<20} {:<7} {:<5} {:<9} {}",
                p.name(),
                s.id,
                s.name,
                kx,
                auth,
                cipher,
                mac,
                bits,
                strength,
                s.kx_detail.as_deref().unwrap_or("")
            );
        }
    }
    println!();
    let groups: Vec<&str> = r
        .groups
        .iter()
        .filter(|g| g.supported)
        .map(|g| g.name.as_str())
        .collect();
    println!(
        "Key exchange groups: {}",
        if groups.is_empty() {
            "none detected".to_string()
        } else {
            groups.join(", ")
        }
    );
    if let Some(b) = r.dh_bits {
        println!("DH parameters: {b} bits");
    }
    println!();
    match &r.certificate {
        Some(c) => {
            println!("Certificate chain ({} sent):", c.chain.len());
            for (i, cert) in c.chain.iter().enumerate() {
                println!("  [{i}] subject {}  issuer {}", cert.subject, cert.issuer);
                println!(
                    "      {} {} bits{}, {}, valid {} to {}{}",
                    cert.key_type,
                    cert.key_bits,
                    cert.curve
                        .as_deref()
                        .map(|c| format!(" ({c})"))
                        .unwrap_or_default(),
                    cert.signature_algorithm,
                    date(cert.not_before),
                    date(cert.not_after),
                    if cert.san.is_empty() {
                        String::new()
                    } else {
                        format!(", SAN {}", cert.san.join(" "))
                    }
                );
            }
            println!(
                "  days left {}, host name {}, {}, chain {}, trusted: {}",
                c.days_left,
                if c.hostname_match {
                    "matches"
                } else {
                    "MISMATCH"
                },
                if c.self_signed {
                    "self-signed"
                } else {
                    "CA-issued"
                },
                if c.chain_in_order {
                    "in order"
                } else {
                    "OUT OF ORDER"
                },
                if c.trusted {
                    "yes".to_string()
                } else {
                    format!("NO ({})", c.trust_error.as_deref().unwrap_or("?"))
                }
            );
        }
        None => println!("Certificate chain: not obtained"),
    }
    println!();
    println!(
        "OCSP stapling: {}   secure renegotiation: {}   compression: {}   client certificate: {}",
        yes_no(r.ocsp_stapled, "yes", "no", "n/a"),
        yes_no(r.secure_renegotiation, "yes", "NO", "n/a (TLS 1.3)"),
        yes_no(r.compression, "ENABLED", "off", "n/a"),
        if r.client_cert_requested {
            "requested"
        } else {
            "not requested"
        }
    );
    match (&r.http, &r.http_error) {
        (Some(h), _) => println!(
            "HTTP: status {}, HSTS {}",
            h.status,
            h.hsts.as_deref().unwrap_or("missing")
        ),
        (None, Some(e)) => println!("HTTP: not checked ({e})"),
        (None, None) => println!("HTTP: not HTTP"),
    }
    println!();
    let g = &r.grade;
    print!(
        "Grade: {}  (score {}: protocol {}, key exchange {}, cipher {})",
        g.grade, g.score, g.protocol_score, g.key_exchange_score, g.cipher_score
    );
    if g.grade != g.grade_if_trusted {
        print!("  [{} if the certificate were trusted]", g.grade_if_trusted);
    }
    println!();
    for c in &g.caps {
        println!("  cap {:<2}  {}", c.max, c.reason);
    }
    println!();
    for m in &r.mozilla {
        println!(
            "Mozilla {}: {}",
            m.profile,
            if m.compliant {
                "compliant"
            } else {
                "NOT compliant"
            }
        );
        for d in &m.differences {
            println!("  - {d}");
        }
        for d in &m.recommendations {
            println!("  ~ {d} (recommended)");
        }
    }
    println!();
    println!("Findings:");
    println!("  {:<9} {:<28} TITLE / EVIDENCE", "SEVERITY", "ID");
    for f in &r.findings {
        println!("  {:<9} {:<28} {}", f.severity, f.id, f.title);
        println!("  {:<9} {:<28} {}", "", "", f.evidence);
    }
    println!();
    println!(
        "{} findings, {} handshakes, {} ms",
        r.findings.len(),
        r.handshakes,
        r.elapsed_ms
    );
}
