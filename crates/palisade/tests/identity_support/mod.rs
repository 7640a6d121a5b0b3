//! Shared helpers of the identity tests: a user database, a palisade with
//! `[identity]` in front of a recording upstream, and a raw-HTTP portal
//! client (GET the form, POST it with its CSRF token, keep the cookies).

#![allow(dead_code)]

use std::net::SocketAddr;

use crate::common::*;

/// The portal prefix (the default).
pub const PORTAL: &str = "/.palisade/auth";
/// A password the tests use (the policy is not applied to stored hashes).
pub const PASSWORD: &str = "correct horse battery staple";

/// A user database in its own directory.
pub struct Users {
    pub dir: TempDir,
    pub db: identity::UserDb,
}

impl Users {
    pub fn new() -> Users {
        let dir = TempDir::new("identity-users");
        let db = identity::UserDb::open(&dir.path().join("users.db")).unwrap();
        Users { dir, db }
    }
    pub fn path(&self) -> String {
        self.dir.path().join("users.db").display().to_string()
    }
    /// Adds `name` with [`PASSWORD`] and `roles`.
    pub fn add(&self, name: &str, roles: &[&str]) {
        let h = identity::Hasher::insecure_for_tests()
            .hash(PASSWORD)
            .unwrap();
        let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
        self.db.add(name, &h, &roles).unwrap();
    }
    /// Enrolls TOTP for `name`; returns (secret, recovery codes).
    pub fn enroll(&self, name: &str) -> (String, Vec<String>) {
        self.db.totp_enroll(name).unwrap()
    }
}

/// The rules most tests use.
pub const RULES: &str = r#"
[[identity.access.rules]]
name = "public"
paths = ["/public"]
policy = "bypass"

[[identity.access.rules]]
name = "blocked"
paths = ["/blocked"]
policy = "deny"

[[identity.access.rules]]
name = "admins"
paths = ["/admin"]
roles = ["admin"]
policy = "two_factor"

[[identity.access.rules]]
name = "no-admin-for-others"
paths = ["/admin"]
policy = "deny"

[[identity.access.rules]]
name = "internal-net"
paths = ["/lan"]
networks = ["10.0.0.0/8"]
policy = "bypass"

[[identity.access.rules]]
name = "app"
paths = ["/app"]
policy = "one_factor"
"#;

/// Config text: a proxy to `upstream` with `[identity]` (`extra` lines go
/// into `[identity]`), [`RULES`] and `more` appended.
pub fn config(upstream: SocketAddr, users: &Users, extra: &str, more: &str) -> String {
    format!(
        "{}\n[identity]\nusers_db = {}\n{extra}\n{RULES}\n{more}\n",
        ConfigSpec::proxy(&[upstream]).render(),
        toml_str(&users.path())
    )
}

/// A raw-HTTP browser: keeps cookies by name.
#[derive(Default, Clone)]
pub struct Browser {
    pub cookies: Vec<(String, String)>,
}

impl Browser {
    pub fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
    pub fn absorb(&mut self, r: &Response) {
        for (k, v) in &r.headers {
            if k != "set-cookie" {
                continue;
            }
            let first = v.split(';').next().unwrap_or("");
            let Some((name, val)) = first.split_once('=') else {
                continue;
            };
            self.cookies.retain(|(n, _)| n != name);
            if !v.contains("Max-Age=0") {
                self.cookies.push((name.to_string(), val.to_string()));
            }
        }
    }
    /// A request with this browser's cookies (and `Accept: text/html`).
    pub fn get(&mut self, addr: SocketAddr, target: &str, extra: &str) -> Response {
        let raw = format!(
            "GET {target} HTTP/1.1\r\nHost: app.test\r\nAccept: text/html\r\nCookie: {}\r\n{extra}Connection: close\r\n\r\n",
            self.cookie_header()
        );
        let r = roundtrip(addr, raw.as_bytes());
        self.absorb(&r);
        r
    }
    pub fn post(&mut self, addr: SocketAddr, target: &str, body: &str) -> Response {
        let raw = format!(
            "POST {target} HTTP/1.1\r\nHost: app.test\r\nAccept: text/html\r\nCookie: {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.cookie_header(),
            body.len()
        );
        let r = roundtrip(addr, raw.as_bytes());
        self.absorb(&r);
        r
    }
    /// GETs a portal form and returns its CSRF token.
    pub fn csrf(&mut self, addr: SocketAddr, page: &str) -> String {
        let r = self.get(addr, &format!("{PORTAL}/{page}"), "");
        assert_eq!(r.status, 200, "{page}: {}", r.body_str());
        hidden(&r.body_str(), "csrf").unwrap_or_else(|| panic!("no csrf in {}", r.body_str()))
    }
    /// Logs in with the password form; returns the POST's response.
    pub fn login(&mut self, addr: SocketAddr, user: &str, password: &str, rd: &str) -> Response {
        let t = self.csrf(addr, "login");
        self.post(
            addr,
            &format!("{PORTAL}/login"),
            &format!(
                "csrf={t}&rd={}&username={}&password={}",
                enc(rd),
                enc(user),
                enc(password)
            ),
        )
    }
    /// Submits a second-factor code.
    pub fn second_factor(&mut self, addr: SocketAddr, code: &str, rd: &str) -> Response {
        let t = self.csrf(addr, &format!("second-factor?rd={}", enc(rd)));
        self.post(
            addr,
            &format!("{PORTAL}/second-factor"),
            &format!("csrf={t}&rd={}&code={}", enc(rd), enc(code)),
        )
    }
}

/// The value of hidden input `name` in a page.
pub fn hidden(page: &str, name: &str) -> Option<String> {
    let i = page.find(&format!("name=\"{name}\" value=\""))?;
    let rest = &page[i + name.len() + 15..];
    Some(rest[..rest.find('"')?].to_string())
}

/// Percent-encodes a form value.
pub fn enc(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

/// The current TOTP code of `secret`.
pub fn totp_now(secret: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    identity::totp::code_at(secret, now).unwrap()
}

/// Waits until the next TOTP step starts if fewer than `margin` seconds
/// are left in this one (so a code computed now is still current).
pub fn fresh_totp_window(margin: u64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let left = 30 - now % 30;
    if left < margin {
        std::thread::sleep(std::time::Duration::from_secs(left + 1));
    }
}

/// A raw request to `path` without cookies (`accept` header value).
pub fn anon(addr: SocketAddr, path: &str, accept: &str) -> Response {
    roundtrip(
        addr,
        format!(
            "GET {path} HTTP/1.1\r\nHost: app.test\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
}

/// The text of the element with `id` (up to its first `<`), HTML-unescaped.
pub fn element_text(page: &str, id: &str) -> Option<String> {
    let i = page.find(&format!("id=\"{id}\""))?;
    let rest = &page[i..];
    let rest = &rest[rest.find('>')? + 1..];
    Some(html_unescape(&rest[..rest.find('<')?]))
}

/// Undoes the portal's HTML escaping.
pub fn html_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// The `<svg>…</svg>` element of a page.
pub fn svg_of(page: &str) -> Option<&str> {
    let i = page.find("<svg")?;
    let j = page[i..].find("</svg>")?;
    Some(&page[i..i + j + 6])
}

/// The module grid of a portal QR SVG: its viewBox side `n` (modules,
/// quiet zone included) and the dark modules, from each `M x y h w v1 h-w z`
/// rectangle of the path.
pub fn svg_grid(svg: &str) -> (usize, Vec<bool>) {
    let vb = svg.split("viewBox=\"0 0 ").nth(1).expect("viewBox");
    let (a, rest) = vb.split_once(' ').unwrap();
    let b = rest.split('"').next().unwrap();
    assert_eq!(a, b, "a square viewBox");
    let n: usize = a.parse().unwrap();
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
        assert_eq!(rest, format!("{w}v1h-{w}z"), "unit-high rectangles");
        assert!(x + w <= n && y < n, "inside the viewBox");
        for i in x..x + w {
            g[y * n + i] = true;
        }
    }
    (n, g)
}

/// Decodes a portal QR SVG (quiet zone of 4 modules) to its text.
pub fn decode_qr_svg(svg: &str) -> String {
    let (n, g) = svg_grid(svg);
    let q = identity::totp::QR_QUIET_ZONE;
    let w = n - 2 * q;
    let grid = rqrr::SimpleGrid::from_func(w, |x, y| g[(y + q) * n + x + q]);
    let (_, text) = rqrr::Grid::new(grid).decode().expect("the QR code decodes");
    text
}

/// What the enrolment page showed.
pub struct EnrolPage {
    pub status: u16,
    pub body: String,
    pub secret: String,
    pub uri: String,
    pub svg: String,
    pub csrf: String,
}

impl Browser {
    /// GETs `{portal}/totp?rd=…` and parses the enrolment page.
    pub fn enrol_page(&mut self, addr: SocketAddr, rd: &str) -> EnrolPage {
        let r = self.get(addr, &format!("{PORTAL}/totp?rd={}", enc(rd)), "");
        let body = r.body_str();
        assert_eq!(r.status, 200, "{body}");
        EnrolPage {
            status: r.status,
            secret: element_text(&body, "secret")
                .unwrap_or_else(|| panic!("no secret in {body}"))
                .replace(' ', ""),
            uri: element_text(&body, "uri").unwrap(),
            svg: svg_of(&body).unwrap().to_string(),
            csrf: hidden(&body, "csrf").unwrap(),
            body,
        }
    }
    /// POSTs the enrolment form with `code`.
    pub fn enrol_confirm(
        &mut self,
        addr: SocketAddr,
        csrf: &str,
        code: &str,
        rd: &str,
    ) -> Response {
        self.post(
            addr,
            &format!("{PORTAL}/totp"),
            &format!("csrf={csrf}&rd={}&code={}", enc(rd), enc(code)),
        )
    }
}

/// The recovery codes listed on the "two-factor authentication is on" page.
pub fn recovery_codes_of(page: &str) -> Vec<String> {
    let i = page
        .find("id=\"recovery-codes\"")
        .expect("recovery code list");
    let list = &page[i..page[i..].find("</ol>").unwrap() + i];
    list.split("<li><code>")
        .skip(1)
        .map(|s| s.split('<').next().unwrap().to_string())
        .collect()
}

/// The UNIX time now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
