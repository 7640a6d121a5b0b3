//! PROXY protocol version 2 headers (HAProxy's spec, section 2.2), sent
//! by `tcp`/`tls` listeners with `proxy_protocol = true` as the first bytes
//! to the upstream, so the service behind the tunnel learns the real client
//! address and, for `tls` listeners, what the TLS layer verified:
//!
//! ```text
//! signature(12) ver/cmd(1) family(1) len(2) src dst sport dport
//!   TLV PP2_TYPE_AUTHORITY (SNI)
//!   TLV PP2_TYPE_SSL: client flags, verify result,
//!       sub-TLVs VERSION, CN (client certificate subject), CIPHER
//! ```

use std::net::{IpAddr, SocketAddr};

/// The 12-byte signature that starts every v2 header.
const SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// Version 2, command PROXY.
const VERSION_PROXY: u8 = 0x21;
const FAMILY_TCP4: u8 = 0x11;
const FAMILY_TCP6: u8 = 0x21;
const PP2_TYPE_AUTHORITY: u8 = 0x02;
const PP2_TYPE_SSL: u8 = 0x20;
const PP2_SUBTYPE_SSL_VERSION: u8 = 0x21;
const PP2_SUBTYPE_SSL_CN: u8 = 0x22;
const PP2_SUBTYPE_SSL_CIPHER: u8 = 0x23;
const PP2_CLIENT_SSL: u8 = 0x01;
const PP2_CLIENT_CERT_CONN: u8 = 0x02;
/// Fixed 255 bytes: longest string put in one TLV. Keeps the header far
/// below its 64 KiB length field whatever a client certificate holds.
pub const MAX_TLV_STRING: usize = 255;

/// What the TLS layer of a `tls` listener established.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsInfo {
    /// `TLSv1.2` or `TLSv1.3`.
    pub version: String,
    /// Negotiated cipher suite (IANA name).
    pub cipher: String,
    /// SNI the client sent.
    pub sni: Option<String>,
    /// Common name of the verified client certificate, if one was given.
    pub client_cn: Option<String>,
    /// A client certificate was presented (and verified: an unverified one
    /// fails the handshake before any header is sent).
    pub client_cert: bool,
}

fn tlv(out: &mut Vec<u8>, kind: u8, value: &[u8]) {
    out.push(kind);
    out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    out.extend_from_slice(value);
}

fn clip(s: &str) -> &[u8] {
    let b = s.as_bytes();
    &b[..b.len().min(MAX_TLV_STRING)]
}

/// The v2 header for a connection from `src` to `dst` (the listener's
/// address). Mixed families are sent as IPv6 with IPv4-mapped addresses.
pub fn v2_header(src: SocketAddr, dst: SocketAddr, tls: Option<&TlsInfo>) -> Vec<u8> {
    let mut body = Vec::with_capacity(64);
    let family = match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            body.extend_from_slice(&s.octets());
            body.extend_from_slice(&d.octets());
            FAMILY_TCP4
        }
        (s, d) => {
            let v6 = |ip: IpAddr| match ip {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            body.extend_from_slice(&v6(s).octets());
            body.extend_from_slice(&v6(d).octets());
            FAMILY_TCP6
        }
    };
    body.extend_from_slice(&src.port().to_be_bytes());
    body.extend_from_slice(&dst.port().to_be_bytes());
    if let Some(t) = tls {
        if let Some(sni) = &t.sni {
            tlv(&mut body, PP2_TYPE_AUTHORITY, clip(sni));
        }
        let mut ssl = Vec::with_capacity(64);
        let mut client = PP2_CLIENT_SSL;
        if t.client_cert {
            client |= PP2_CLIENT_CERT_CONN;
        }
        ssl.push(client);
        // 0: the client presented a certificate and it was verified.
        let verify: u32 = if t.client_cert { 0 } else { 1 };
        ssl.extend_from_slice(&verify.to_be_bytes());
        tlv(&mut ssl, PP2_SUBTYPE_SSL_VERSION, clip(&t.version));
        if let Some(cn) = &t.client_cn {
            tlv(&mut ssl, PP2_SUBTYPE_SSL_CN, clip(cn));
        }
        tlv(&mut ssl, PP2_SUBTYPE_SSL_CIPHER, clip(&t.cipher));
        tlv(&mut body, PP2_TYPE_SSL, &ssl);
    }
    let mut out = Vec::with_capacity(16 + body.len());
    out.extend_from_slice(SIGNATURE);
    out.push(VERSION_PROXY);
    out.push(family);
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_ipv4_header_is_28_bytes_in_spec_layout() {
        let h = v2_header(
            "192.0.2.7:51000".parse().unwrap(),
            "198.51.100.1:8883".parse().unwrap(),
            None,
        );
        assert_eq!(&h[..12], SIGNATURE);
        assert_eq!(h[12], 0x21);
        assert_eq!(h[13], 0x11);
        assert_eq!(u16::from_be_bytes([h[14], h[15]]), 12);
        assert_eq!(&h[16..20], &[192, 0, 2, 7]);
        assert_eq!(&h[20..24], &[198, 51, 100, 1]);
        assert_eq!(u16::from_be_bytes([h[24], h[25]]), 51000);
        assert_eq!(u16::from_be_bytes([h[26], h[27]]), 8883);
        assert_eq!(h.len(), 28);
    }

    #[test]
    fn tls_tlvs_carry_version_cn_cipher_and_sni() {
        let t = TlsInfo {
            version: "TLSv1.3".into(),
            cipher: "TLS13_AES_128_GCM_SHA256".into(),
            sni: Some("mqtt.example".into()),
            client_cn: Some("sensor-01".into()),
            client_cert: true,
        };
        let h = v2_header(
            "[2001:db8::1]:40000".parse().unwrap(),
            "127.0.0.1:8883".parse().unwrap(),
            Some(&t),
        );
        assert_eq!(h[13], 0x21, "mixed families go as IPv6");
        let len = usize::from(u16::from_be_bytes([h[14], h[15]]));
        assert_eq!(h.len(), 16 + len);
        // ::ffff:127.0.0.1 as the destination.
        assert_eq!(
            &h[32..48],
            &"::ffff:127.0.0.1"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets()
        );
        let tlvs = &h[16 + 36..];
        assert_eq!(tlvs[0], PP2_TYPE_AUTHORITY);
        assert_eq!(&tlvs[3..3 + 12], b"mqtt.example");
        let ssl = &tlvs[15..];
        assert_eq!(ssl[0], PP2_TYPE_SSL);
        assert_eq!(ssl[3], PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN);
        assert_eq!(&ssl[4..8], &[0, 0, 0, 0], "verified");
        let text = String::from_utf8_lossy(ssl);
        assert!(
            text.contains("TLSv1.3")
                && text.contains("sensor-01")
                && text.contains("TLS13_AES_128_GCM_SHA256")
        );
    }

    #[test]
    fn huge_strings_are_clipped() {
        let t = TlsInfo {
            version: "TLSv1.2".into(),
            cipher: "x".repeat(10_000),
            client_cn: Some("y".repeat(70_000)),
            ..TlsInfo::default()
        };
        let h = v2_header(
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
            Some(&t),
        );
        assert!(h.len() < 16 + 12 + 3 + 5 + 3 * (3 + MAX_TLV_STRING) + 1);
    }
}
