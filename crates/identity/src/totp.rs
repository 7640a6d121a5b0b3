//! TOTP (RFC 6238 over RFC 4226 HOTP, HMAC-SHA1, 6 digits, 30 s), as
//! Google Authenticator and pyotp implement it; enrollment URIs and QR
//! codes; single-use recovery codes hashed at rest.

use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{Error, Result};

/// 30 s: the TOTP time step (RFC 6238 default; what authenticator apps use).
pub const STEP_SECS: u64 = 30;
/// 6 digits per code (authenticator apps' default).
pub const DIGITS: u32 = 6;
/// 1 step: codes from the previous and next step are accepted too, for
/// clock skew between phone and server (RFC 6238 §5.2).
pub const SKEW_STEPS: u64 = 1;
/// 20 bytes (160 bits): secret length, as RFC 4226 recommends for SHA-1.
pub const SECRET_LEN: usize = 20;
/// 10: recovery codes issued at enrollment.
pub const RECOVERY_CODES: usize = 10;
/// 64 bytes: longest base32 secret accepted (bounds decoding of input).
pub const MAX_SECRET_B32: usize = 64;

const B32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// Base32 (RFC 4648) without padding.
pub fn base32_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
    let (mut buf, mut bits) = (0u32, 0u32);
    for &b in data {
        buf = (buf << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(B32[((buf >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(B32[((buf << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Base32 decoding, tolerant of case, spaces, dashes and `=` padding.
pub fn base32_decode(s: &str) -> Result<Vec<u8>> {
    if s.len() > MAX_SECRET_B32 * 2 {
        return Err(Error::Totp("secret too long".into()));
    }
    let mut out = Vec::new();
    let (mut buf, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c.to_ascii_uppercase() {
            c @ b'A'..=b'Z' => c - b'A',
            c @ b'2'..=b'7' => c - b'2' + 26,
            b' ' | b'-' | b'=' => continue,
            _ => {
                return Err(Error::Totp(format!(
                    "invalid base32 character {:?}",
                    c as char
                )))
            }
        };
        buf = (buf << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
        }
        buf &= (1 << bits) - 1;
    }
    Ok(out)
}

/// A fresh random secret, base32 (32 characters).
pub fn generate_secret() -> Result<String> {
    let mut s = [0u8; SECRET_LEN];
    getrandom::getrandom(&mut s).map_err(|e| Error::Totp(e.to_string()))?;
    Ok(base32_encode(&s))
}

/// HOTP (RFC 4226) value for `counter` with `digits` digits.
pub fn hotp(key: &[u8], counter: u64, digits: u32) -> u32 {
    #[allow(clippy::expect_used)]
    // HMAC accepts keys of any length, so new_from_slice cannot fail.
    let mut mac = Hmac::<Sha1>::new_from_slice(key).expect("hmac takes any key length");
    mac.update(&counter.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let off = (h[19] & 0x0f) as usize;
    let bin = (u32::from(h[off]) & 0x7f) << 24
        | u32::from(h[off + 1]) << 16
        | u32::from(h[off + 2]) << 8
        | u32::from(h[off + 3]);
    bin % 10u32.pow(digits)
}

/// The time step for UNIX time `unix_secs`.
pub fn step_at(unix_secs: u64) -> u64 {
    unix_secs / STEP_SECS
}

/// The 6-digit code for base32 `secret` at `unix_secs`, zero-padded.
pub fn code_at(secret: &str, unix_secs: u64) -> Result<String> {
    let key = base32_decode(secret)?;
    Ok(format!(
        "{:0width$}",
        hotp(&key, step_at(unix_secs), DIGITS),
        width = DIGITS as usize
    ))
}

/// Checks `code` against `secret` at `unix_secs` with ±[`SKEW_STEPS`].
/// Returns the matched step, which must be greater than `last_step` (the
/// last step this user used): a code is accepted once. `None` = refused.
pub fn verify(
    secret: &str,
    code: &str,
    unix_secs: u64,
    last_step: Option<u64>,
) -> Result<Option<u64>> {
    let code = code.trim();
    if code.len() != DIGITS as usize || !code.bytes().all(|c| c.is_ascii_digit()) {
        return Ok(None);
    }
    let key = base32_decode(secret)?;
    let now = step_at(unix_secs);
    let mut found = None;
    // Check every candidate (no early exit) so timing does not reveal which.
    for step in now.saturating_sub(SKEW_STEPS)..=now + SKEW_STEPS {
        let want = format!("{:06}", hotp(&key, step, DIGITS));
        if bool::from(want.as_bytes().ct_eq(code.as_bytes())) && found.is_none() {
            found = Some(step);
        }
    }
    Ok(found.filter(|s| last_step.is_none_or(|l| *s > l)))
}

fn pct(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

/// The `otpauth://totp/…` enrollment URI (Google Authenticator key URI format).
pub fn otpauth_uri(issuer: &str, user: &str, secret: &str) -> String {
    format!(
        "otpauth://totp/{}:{}?secret={secret}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        pct(issuer),
        pct(user),
        pct(issuer)
    )
}

/// 4 modules: the quiet zone around a QR code (ISO/IEC 18004 §6.3.8);
/// scanners need it to find the finder patterns.
pub const QR_QUIET_ZONE: usize = 4;
/// 240 px: the SVG's default rendered size (readable on a phone screen; the
/// portal lets it shrink to the page width).
pub const QR_SVG_PIXELS: usize = 240;

/// The QR code of `uri` as a module grid: (width in modules, dark modules
/// row by row). Error correction level M (what authenticator apps scan).
pub fn qr_modules(uri: &str) -> Result<(usize, Vec<bool>)> {
    let q = qrcode::QrCode::new(uri.as_bytes()).map_err(|e| Error::Totp(e.to_string()))?;
    let dark = q
        .to_colors()
        .into_iter()
        .map(|c| c == qrcode::Color::Dark)
        .collect();
    Ok((q.width(), dark))
}

/// The URI as a QR code in SVG, titled "QR code" (a standalone file, as
/// `palisade user totp-enroll --svg` writes).
pub fn qr_svg(uri: &str) -> Result<String> {
    qr_svg_titled(uri, "QR code")
}

/// The URI as an SVG QR code that is also valid inline in HTML: no XML
/// declaration, `role="img"` with a `<title>` (the accessible name, and a
/// tooltip), a white quiet zone of [`QR_QUIET_ZONE`] modules, and one path
/// of unit squares in a `viewBox` of `width + 2 × quiet zone` modules, so a
/// scanner (or a test) maps each square back to its module.
pub fn qr_svg_titled(uri: &str, title: &str) -> Result<String> {
    let (w, dark) = qr_modules(uri)?;
    let n = w + 2 * QR_QUIET_ZONE;
    let mut d = String::with_capacity(dark.len() * 4);
    for y in 0..w {
        // Runs of dark modules in a row become one rectangle each.
        let mut x = 0;
        while x < w {
            if !dark[y * w + x] {
                x += 1;
                continue;
            }
            let start = x;
            while x < w && dark[y * w + x] {
                x += 1;
            }
            d.push_str(&format!(
                "M{} {}h{}v1h-{}z",
                start + QR_QUIET_ZONE,
                y + QR_QUIET_ZONE,
                x - start,
                x - start
            ));
        }
    }
    let t = crate::web::html_escape(title);
    Ok(format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"qr\" viewBox=\"0 0 {n} {n}\" width=\"{px}\" height=\"{px}\" role=\"img\" aria-labelledby=\"qr-title\" shape-rendering=\"crispEdges\">\
<title id=\"qr-title\">{t}</title>\
<rect width=\"{n}\" height=\"{n}\" fill=\"#fff\"/>\
<path fill=\"#000\" d=\"{d}\"/></svg>",
        px = QR_SVG_PIXELS
    ))
}

/// A base32 secret in groups of four (`ABCD EFGH …`), as typed into an
/// authenticator app by hand (apps ignore the spaces).
pub fn group_secret(secret: &str) -> String {
    let mut o = String::with_capacity(secret.len() + secret.len() / 4);
    for (i, c) in secret.chars().enumerate() {
        if i > 0 && i % 4 == 0 {
            o.push(' ');
        }
        o.push(c);
    }
    o
}

/// The URI as a QR code in Unicode half blocks (for a terminal).
pub fn qr_unicode(uri: &str) -> Result<String> {
    let q = qrcode::QrCode::new(uri.as_bytes()).map_err(|e| Error::Totp(e.to_string()))?;
    Ok(q.render::<qrcode::render::unicode::Dense1x2>()
        .dark_color(qrcode::render::unicode::Dense1x2::Light)
        .light_color(qrcode::render::unicode::Dense1x2::Dark)
        .build())
}

/// Ten fresh recovery codes (80 random bits each, `xxxx-xxxx-xxxx-xxxx`
/// base32) and their hashes to store. 80 bits make an unsalted SHA-256
/// at rest safe: guessing one offline needs ~2^79 hashes.
pub fn generate_recovery_codes() -> Result<(Vec<String>, Vec<String>)> {
    let mut codes = Vec::with_capacity(RECOVERY_CODES);
    let mut hashes = Vec::with_capacity(RECOVERY_CODES);
    for _ in 0..RECOVERY_CODES {
        let mut b = [0u8; 10];
        getrandom::getrandom(&mut b).map_err(|e| Error::Totp(e.to_string()))?;
        let s = base32_encode(&b).to_ascii_lowercase();
        let code = format!("{}-{}-{}-{}", &s[0..4], &s[4..8], &s[8..12], &s[12..16]);
        hashes.push(hash_recovery_code(&code));
        codes.push(code);
    }
    Ok((codes, hashes))
}

/// The stored form of a recovery code (case, spaces and dashes ignored).
pub fn hash_recovery_code(code: &str) -> String {
    let norm: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .take(64)
        .collect();
    let d = Sha256::digest(norm.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 6238 Appendix B, SHA-1 secret "12345678901234567890", 8 digits.
    #[test]
    fn rfc6238_vectors() {
        let key = b"12345678901234567890";
        for (t, want) in [
            (59u64, 94287082u32),
            (1111111109, 7081804),
            (1111111111, 14050471),
            (1234567890, 89005924),
            (2000000000, 69279037),
            (20000000000, 65353130),
        ] {
            assert_eq!(hotp(key, t / 30, 8), want, "t={t}");
        }
    }

    // RFC 4226 Appendix D.
    #[test]
    fn rfc4226_vectors() {
        let want = [
            755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489,
        ];
        for (i, w) in want.iter().enumerate() {
            assert_eq!(hotp(b"12345678901234567890", i as u64, 6), *w);
        }
    }

    #[test]
    fn base32_roundtrip() {
        assert_eq!(
            base32_encode(b"12345678901234567890"),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
        assert_eq!(base32_encode(b"f"), "MY");
        assert_eq!(base32_encode(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32_decode("mzxw 6ytb-oi==").unwrap(), b"foobar");
        assert!(base32_decode("MZ1W").is_err());
        let s = generate_secret().unwrap();
        assert_eq!(s.len(), 32);
        assert_eq!(base32_decode(&s).unwrap().len(), SECRET_LEN);
    }

    #[test]
    fn skew_and_replay() {
        let s = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
        let t = 1_700_000_000u64;
        let now = step_at(t);
        let prev = code_at(s, t - 30).unwrap();
        let next = code_at(s, t + 30).unwrap();
        let far = code_at(s, t + 90).unwrap();
        assert_eq!(verify(s, &prev, t, None).unwrap(), Some(now - 1));
        assert_eq!(verify(s, &next, t, None).unwrap(), Some(now + 1));
        assert_eq!(verify(s, &far, t, None).unwrap(), None);
        let cur = code_at(s, t).unwrap();
        assert_eq!(verify(s, &cur, t, Some(now)).unwrap(), None, "replay");
        assert_eq!(
            verify(s, &prev, t, Some(now - 1)).unwrap(),
            None,
            "older than last"
        );
        assert_eq!(verify(s, "12345", t, None).unwrap(), None);
        assert_eq!(verify(s, "abcdef", t, None).unwrap(), None);
    }

    #[test]
    fn uri_and_qr() {
        let u = otpauth_uri("palisade", "alice@example.com", "JBSWY3DPEHPK3PXP");
        assert_eq!(
            u,
            "otpauth://totp/palisade:alice%40example.com?secret=JBSWY3DPEHPK3PXP&issuer=palisade&algorithm=SHA1&digits=6&period=30"
        );
        let svg = qr_svg_titled(&u, "QR <code> & more").unwrap();
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>"));
        assert!(svg.contains("<title id=\"qr-title\">QR &lt;code&gt; &amp; more</title>"));
        let (w, dark) = qr_modules(&u).unwrap();
        assert_eq!(dark.len(), w * w);
        let n = w + 2 * QR_QUIET_ZONE;
        assert!(svg.contains(&format!("viewBox=\"0 0 {n} {n}\"")), "{svg}");
        // The top-left finder pattern: a 7-module dark run on the first row.
        assert!(dark[..7].iter().all(|d| *d) && !dark[7]);
        assert!(svg.contains("M4 4h7v1h-7z"), "{svg}");
        assert_eq!(group_secret("ABCDEFGHIJ"), "ABCD EFGH IJ");
        assert_eq!(group_secret(""), "");
        let t = qr_unicode(&u).unwrap();
        assert!(t.lines().count() > 10);
        assert!(t.contains('█') || t.contains('▀') || t.contains('▄'));
    }

    /// The module grid an SVG from [`qr_svg_titled`] draws: reads the
    /// viewBox and each `M x y h w v1 h-w z` rectangle.
    fn grid_of(svg: &str) -> (usize, Vec<bool>) {
        let vb = svg.split("viewBox=\"0 0 ").nth(1).unwrap();
        let n: usize = vb.split(' ').next().unwrap().parse().unwrap();
        let d = svg
            .split(" d=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let mut g = vec![false; n * n];
        for rect in d.split('M').filter(|r| !r.is_empty()) {
            let (xy, rest) = rect.split_once('h').unwrap();
            let (x, y) = xy.split_once(' ').unwrap();
            let (x, y): (usize, usize) = (x.parse().unwrap(), y.parse().unwrap());
            let w: usize = rest.split('v').next().unwrap().parse().unwrap();
            assert_eq!(rest, format!("{w}v1h-{w}z"));
            for i in x..x + w {
                assert!(!g[y * n + i], "overlapping rectangles");
                g[y * n + i] = true;
            }
        }
        (n, g)
    }

    #[test]
    fn svg_decodes_back_to_the_uri() {
        let secret = generate_secret().unwrap();
        let uri = otpauth_uri("palisade", "zoë@example.com", &secret);
        let svg = qr_svg(&uri).unwrap();
        let (n, g) = grid_of(&svg);
        let w = n - 2 * QR_QUIET_ZONE;
        // A QR code of version v is 17 + 4v modules wide.
        assert_eq!((w - 17) % 4, 0, "{w}");
        // The quiet zone is white.
        for i in 0..n {
            for j in 0..QR_QUIET_ZONE {
                assert!(!g[j * n + i] && !g[(n - 1 - j) * n + i]);
                assert!(!g[i * n + j] && !g[i * n + n - 1 - j]);
            }
        }
        let grid =
            rqrr::SimpleGrid::from_func(w, |x, y| g[(y + QR_QUIET_ZONE) * n + x + QR_QUIET_ZONE]);
        let (_, text) = rqrr::Grid::new(grid).decode().unwrap();
        assert_eq!(text, uri);
    }

    #[test]
    fn recovery_codes() {
        let (codes, hashes) = generate_recovery_codes().unwrap();
        assert_eq!(codes.len(), 10);
        let mut uniq = codes.clone();
        uniq.sort();
        uniq.dedup();
        assert_eq!(uniq.len(), 10);
        for (c, h) in codes.iter().zip(&hashes) {
            assert_eq!(c.len(), 19);
            assert_eq!(&hash_recovery_code(&c.to_uppercase().replace('-', " ")), h);
            assert!(!h.contains(c.as_str()));
        }
    }
}
