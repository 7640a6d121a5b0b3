//! The HTTP-independent parts of the login portal: CSRF tokens, form and
//! cookie parsing, the "return to" check, and the server-rendered pages
//! (accessible HTML, no JavaScript). The gateway's portal glue does the I/O.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{Error, Result};

/// 8 KiB: largest login/second-factor/logout form body read. A longer body
/// is refused (413) before parsing: bounds memory per portal request.
pub const MAX_FORM_BYTES: usize = 8 * 1024;
/// 16: most fields parsed from one form (bounds work on a hostile body).
pub const MAX_FORM_FIELDS: usize = 16;
/// 2048 bytes: longest "return to" URL kept (a longer one falls back to `/`).
pub const MAX_RETURN_TO_BYTES: usize = 2048;
/// 4096 bytes: cookie header bytes scanned for one cookie.
pub const MAX_COOKIE_SCAN_BYTES: usize = 4096;
/// Length of a pre-session (CSRF) cookie value: 32 random bytes, base64url.
pub const PRESESSION_LEN: usize = 43;

type HmacSha256 = Hmac<Sha256>;

/// CSRF tokens: `HMAC-SHA256(key, pre-session cookie)`. A form post is
/// accepted only with the token matching the browser's own pre-session
/// cookie, which another site can neither read nor set.
#[derive(Clone)]
pub struct Csrf {
    key: [u8; 32],
}

impl std::fmt::Debug for Csrf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Csrf { key: <redacted> }")
    }
}

fn random_b64(n: usize) -> Result<String> {
    let mut b = vec![0u8; n];
    getrandom::getrandom(&mut b).map_err(|e| Error::Corrupt(e.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(b))
}

impl Csrf {
    /// Keyed by `secret` (shared between nodes), or a random per-process key.
    pub fn new(secret: Option<&str>) -> Result<Csrf> {
        let mut key = [0u8; 32];
        match secret {
            Some(s) => {
                let mut h = Sha256::new();
                h.update(b"palisade identity csrf\0");
                h.update(s.as_bytes());
                key.copy_from_slice(&h.finalize());
            }
            None => getrandom::getrandom(&mut key).map_err(|e| Error::Corrupt(e.to_string()))?,
        }
        Ok(Csrf { key })
    }

    /// A fresh pre-session cookie value.
    pub fn new_presession() -> Result<String> {
        random_b64(32)
    }

    /// The form token for a pre-session value.
    pub fn token(&self, presession: &str) -> String {
        let mut m =
            <HmacSha256 as Mac>::new_from_slice(&self.key).unwrap_or_else(|_| unreachable_hmac());
        m.update(b"csrf\0");
        m.update(presession.as_bytes());
        URL_SAFE_NO_PAD.encode(m.finalize().into_bytes())
    }

    /// Whether `token` belongs to `presession` (constant-time compare).
    pub fn verify(&self, presession: &str, token: &str) -> bool {
        if presession.len() != PRESESSION_LEN || token.len() > 64 {
            return false;
        }
        let want = self.token(presession);
        bool::from(want.as_bytes().ct_eq(token.as_bytes()))
    }
}

/// HMAC accepts keys of any length, so `new_from_slice` cannot fail; this
/// keeps the call sites free of `expect`.
fn unreachable_hmac() -> HmacSha256 {
    #[allow(clippy::expect_used)]
    // HMAC-SHA256 takes keys of every length: this cannot fail.
    <HmacSha256 as Mac>::new_from_slice(&[0u8; 32]).expect("HMAC accepts any key length")
}

/// Percent-decodes `application/x-www-form-urlencoded` text (`+` is a space).
/// `None` when the result is not UTF-8.
pub fn form_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let h = |c: u8| (c as char).to_digit(16);
                match (h(b[i + 1]), h(b[i + 2])) {
                    (Some(x), Some(y)) => {
                        out.push((x * 16 + y) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Percent-encodes `s` for a query parameter.
pub fn pct_encode(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

/// A parsed form: at most [`MAX_FORM_FIELDS`] fields, first value wins.
#[derive(Debug, Default)]
pub struct Form(Vec<(String, String)>);

impl Form {
    /// Parses an urlencoded body (or query). Errors on invalid UTF-8 or too
    /// many fields.
    pub fn parse(body: &[u8]) -> std::result::Result<Form, &'static str> {
        let text = std::str::from_utf8(body).map_err(|_| "the form is not UTF-8")?;
        let mut v = Vec::new();
        for pair in text.split('&').filter(|p| !p.is_empty()) {
            if v.len() >= MAX_FORM_FIELDS {
                return Err("too many form fields");
            }
            let (k, val) = pair.split_once('=').unwrap_or((pair, ""));
            let k = form_decode(k).ok_or("the form is not UTF-8")?;
            let val = form_decode(val).ok_or("the form is not UTF-8")?;
            v.push((k, val));
        }
        Ok(Form(v))
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The value of cookie `name` in a `Cookie` header value.
pub fn find_cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    let h = &header[..floor_char(header, MAX_COOKIE_SCAN_BYTES)];
    h.split(';').find_map(|c| {
        let (k, v) = c.trim().split_once('=')?;
        (k.trim() == name).then(|| v.trim().trim_matches('"'))
    })
}

fn floor_char(s: &str, n: usize) -> usize {
    let mut n = n.min(s.len());
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    n
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Lax`, `Path=/`, `Secure` on
/// https; `max_age` makes it persistent ("remember me"); `Some(0)` deletes.
pub fn set_cookie(name: &str, value: &str, secure: bool, max_age: Option<u64>) -> String {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if secure {
        c.push_str("; Secure");
    }
    if let Some(a) = max_age {
        c.push_str(&format!("; Max-Age={a}"));
    }
    c
}

/// Lower-case host without port or trailing dot.
fn host_of(authority: &str) -> String {
    let a = authority.rsplit('@').next().unwrap_or(authority);
    let h = if let Some(rest) = a.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        a.rsplit_once(':')
            .filter(|(_, p)| p.bytes().all(|c| c.is_ascii_digit()))
            .map(|(h, _)| h)
            .unwrap_or(a)
    };
    h.trim_end_matches('.').to_ascii_lowercase()
}

/// The "return to" target after login, or `None` when it is not safe: a
/// path on this site (`/x`, not `//x` or `/\x`), or an absolute http(s) URL
/// whose host is `host` (the host the portal was reached on). Anything else
/// would make the portal an open redirect.
pub fn safe_return_to(rd: &str, host: &str) -> Option<String> {
    if rd.is_empty()
        || rd.len() > MAX_RETURN_TO_BYTES
        || rd.bytes().any(|b| b <= 0x20 || b == 0x7f || b == b'\\')
    {
        return None;
    }
    if rd.starts_with('/') {
        return (!rd.starts_with("//")).then(|| rd.to_owned());
    }
    let rest = rd
        .strip_prefix("https://")
        .or_else(|| rd.strip_prefix("http://"))?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let auth = &rest[..end];
    if auth.is_empty() || auth.contains('@') {
        return None;
    }
    (host_of(auth) == host_of(host)).then(|| rd.to_owned())
}

/// Escapes text for HTML element content and attribute values.
pub fn html_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
<meta name=\"robots\" content=\"noindex\">\n<title>{t} – palisade</title>\n<style>\n\
body{{font-family:system-ui,sans-serif;max-width:24rem;margin:3rem auto;padding:0 1rem;color:#111;background:#fff}}\n\
label{{display:block;margin-top:1rem;font-weight:600}}\n\
input[type=text],input[type=password]{{width:100%;padding:.5rem;font-size:1rem;box-sizing:border-box}}\n\
button{{margin-top:1.25rem;padding:.6rem 1.2rem;font-size:1rem}}\n\
.error{{color:#a00000;border:1px solid #a00000;padding:.5rem}}\n\
:focus{{outline:3px solid #1a5fb4}}\n\
svg{{display:block;max-width:100%;height:auto;margin:1rem 0}}\n\
code{{font-family:ui-monospace,monospace;word-break:break-all}}\n\
.secret{{display:block;font-size:1.2rem;padding:.5rem;background:#f2f2f2;user-select:all;word-break:normal}}\n\
</style>\n</head>\n<body>\n<main>\n<h1>{t}</h1>\n{body}</main>\n</body>\n</html>\n",
        t = html_escape(title)
    )
}

fn error_block(error: Option<&str>) -> String {
    match error {
        Some(e) => format!(
            "<p class=\"error\" role=\"alert\" id=\"error\">{}</p>\n",
            html_escape(e)
        ),
        None => String::new(),
    }
}

/// The login page. `action` is the form's target, `rd` the return URL.
pub fn login_page(action: &str, csrf: &str, rd: &str, error: Option<&str>) -> String {
    let described = if error.is_some() {
        " aria-describedby=\"error\""
    } else {
        ""
    };
    page(
        "Sign in",
        &format!(
            "{err}<form method=\"post\" action=\"{a}\">\n\
<input type=\"hidden\" name=\"csrf\" value=\"{c}\">\n\
<input type=\"hidden\" name=\"rd\" value=\"{r}\">\n\
<label for=\"username\">Username</label>\n\
<input type=\"text\" id=\"username\" name=\"username\" autocomplete=\"username\" required autofocus{d}>\n\
<label for=\"password\">Password</label>\n\
<input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" required>\n\
<label for=\"remember\"><input type=\"checkbox\" id=\"remember\" name=\"remember\" value=\"on\"> Remember me on this device</label>\n\
<button type=\"submit\" id=\"submit\">Sign in</button>\n</form>\n",
            err = error_block(error),
            a = html_escape(action),
            c = html_escape(csrf),
            r = html_escape(rd),
            d = described,
        ),
    )
}

/// The second-factor page (TOTP code or recovery code).
pub fn second_factor_page(
    action: &str,
    csrf: &str,
    rd: &str,
    user: &str,
    error: Option<&str>,
) -> String {
    page(
        "Two-factor authentication",
        &format!(
            "{err}<p>Signed in as <strong>{u}</strong>. Enter the 6-digit code from your authenticator app, or one of your recovery codes.</p>\n\
<form method=\"post\" action=\"{a}\">\n\
<input type=\"hidden\" name=\"csrf\" value=\"{c}\">\n\
<input type=\"hidden\" name=\"rd\" value=\"{r}\">\n\
<label for=\"code\">Code</label>\n\
<input type=\"text\" id=\"code\" name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" required autofocus>\n\
<button type=\"submit\" id=\"submit\">Verify</button>\n</form>\n",
            err = error_block(error),
            u = html_escape(user),
            a = html_escape(action),
            c = html_escape(csrf),
            r = html_escape(rd),
        ),
    )
}

/// The logout confirmation page (logging out is a POST, so a link on
/// another site cannot log the user out).
pub fn logout_page(action: &str, csrf: &str, user: Option<&str>) -> String {
    let who = match user {
        Some(u) => format!("<p>Signed in as <strong>{}</strong>.</p>\n", html_escape(u)),
        None => "<p>You are not signed in.</p>\n".into(),
    };
    page(
        "Sign out",
        &format!(
            "{who}<form method=\"post\" action=\"{a}\">\n\
<input type=\"hidden\" name=\"csrf\" value=\"{c}\">\n\
<button type=\"submit\" id=\"submit\">Sign out</button>\n</form>\n",
            a = html_escape(action),
            c = html_escape(csrf),
        ),
    )
}

/// What the TOTP enrolment page shows (all text is escaped when rendered).
#[derive(Debug)]
pub struct EnrollView<'a> {
    /// The form's target.
    pub action: &'a str,
    /// The CSRF token.
    pub csrf: &'a str,
    /// The return URL after enrolment.
    pub rd: &'a str,
    /// The signed-in user.
    pub user: &'a str,
    /// The base32 secret (shown grouped by four).
    pub secret: &'a str,
    /// The `otpauth://` URI.
    pub uri: &'a str,
    /// The QR code, an `<svg>` element from
    /// [`crate::totp::qr_svg_titled`] (inserted as is: it is generated,
    /// and its title is escaped there).
    pub svg: &'a str,
}

/// The TOTP enrolment page: QR code, the secret in text, the `otpauth`
/// URI (a link, which opens an authenticator app on a phone), and the
/// form that confirms with a current code.
pub fn totp_enroll_page(v: &EnrollView<'_>, error: Option<&str>) -> String {
    let described = if error.is_some() {
        " aria-describedby=\"error\""
    } else {
        ""
    };
    page(
        "Set up two-factor authentication",
        &format!(
            "{err}<p>Signed in as <strong>{u}</strong>.</p>\n\
<ol>\n<li>Scan this QR code with an authenticator app (for example Google Authenticator, Aegis or FreeOTP).</li>\n\
<li>Enter the 6-digit code the app shows, to confirm.</li>\n</ol>\n\
{svg}\n\
<p>Cannot scan? Type this key into the app (time-based, 6 digits, 30 seconds):</p>\n\
<code class=\"secret\" id=\"secret\">{sec}</code>\n\
<p><a href=\"{uri}\" id=\"otpauth\">Open in an authenticator app on this device</a></p>\n\
<details><summary>Setup URI</summary><p><code id=\"uri\">{uri}</code></p></details>\n\
<form method=\"post\" action=\"{a}\">\n\
<input type=\"hidden\" name=\"csrf\" value=\"{c}\">\n\
<input type=\"hidden\" name=\"rd\" value=\"{r}\">\n\
<label for=\"code\">Code from the app</label>\n\
<input type=\"text\" id=\"code\" name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" pattern=\"[0-9 ]*\" required{d}>\n\
<button type=\"submit\" id=\"submit\">Turn on two-factor authentication</button>\n</form>\n",
            err = error_block(error),
            u = html_escape(v.user),
            svg = v.svg,
            sec = html_escape(&crate::totp::group_secret(v.secret)),
            uri = html_escape(v.uri),
            a = html_escape(v.action),
            c = html_escape(v.csrf),
            r = html_escape(v.rd),
            d = described,
        ),
    )
}

/// The page after a successful enrolment: the recovery codes, shown once.
pub fn totp_enrolled_page(user: &str, codes: &[String], continue_to: &str) -> String {
    let list: String = codes
        .iter()
        .map(|c| format!("<li><code>{}</code></li>\n", html_escape(c)))
        .collect();
    page(
        "Two-factor authentication is on",
        &format!(
            "<p id=\"message\">Two-factor authentication is now on for <strong>{u}</strong>. From now on, signing in asks for a code from your authenticator app.</p>\n\
<h2 id=\"recovery-title\">Recovery codes</h2>\n\
<p>If you lose your phone, each of these codes signs you in once instead of an app code. Save them now (print them or keep them in a password manager): they are not shown again.</p>\n\
<ol id=\"recovery-codes\" aria-labelledby=\"recovery-title\">\n{list}</ol>\n\
<p><a href=\"{href}\" id=\"continue\">I have saved my recovery codes — continue</a></p>\n",
            u = html_escape(user),
            href = html_escape(continue_to),
        ),
    )
}

/// A page with a message and an optional link.
pub fn message_page(title: &str, message: &str, link: Option<(&str, &str)>) -> String {
    let link = match link {
        Some((href, text)) => format!(
            "<p><a href=\"{}\">{}</a></p>\n",
            html_escape(href),
            html_escape(text)
        ),
        None => String::new(),
    };
    page(
        title,
        &format!("<p id=\"message\">{}</p>\n{link}", html_escape(message)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_bind_to_the_presession() {
        let c = Csrf::new(Some("a shared secret, 16+ bytes")).unwrap();
        let pre = Csrf::new_presession().unwrap();
        assert_eq!(pre.len(), PRESESSION_LEN);
        let t = c.token(&pre);
        assert!(c.verify(&pre, &t));
        let other = Csrf::new_presession().unwrap();
        assert!(!c.verify(&other, &t));
        assert!(!c.verify(&pre, ""));
        assert!(!c.verify(&pre, &t[..t.len() - 1]));
        // Another key (another deployment) does not accept it.
        assert!(!Csrf::new(None).unwrap().verify(&pre, &t));
        // The same secret on another node does.
        assert!(Csrf::new(Some("a shared secret, 16+ bytes"))
            .unwrap()
            .verify(&pre, &t));
    }

    #[test]
    fn return_to_is_same_site_only() {
        let h = "app.example.com:8443";
        for ok in [
            "/",
            "/a/b?c=d",
            "https://app.example.com/x",
            "http://APP.example.com:8443/",
        ] {
            assert_eq!(safe_return_to(ok, h).as_deref(), Some(ok), "{ok}");
        }
        for bad in [
            "",
            "//evil.com/",
            "/\\evil.com",
            "https://evil.com/",
            "https://app.example.com.evil.com/",
            "https://app.example.com@evil.com/",
            "javascript:alert(1)",
            "ftp://app.example.com/",
            "/a b",
            "/a\r\nSet-Cookie: x=1",
        ] {
            assert_eq!(safe_return_to(bad, h), None, "{bad}");
        }
        assert_eq!(safe_return_to(&format!("/{}", "a".repeat(3000)), h), None);
    }

    #[test]
    fn forms_and_cookies() {
        let f = Form::parse(b"username=al%69ce&password=p+w%26d&x").unwrap();
        assert_eq!(f.get("username"), Some("alice"));
        assert_eq!(f.get("password"), Some("p w&d"));
        assert_eq!(f.get("x"), Some(""));
        assert_eq!(f.get("nope"), None);
        assert!(Form::parse(&[0xff, 0xfe]).is_err());
        assert!(Form::parse(b"a=%ff").is_err());
        assert!(Form::parse("a=1&".repeat(100).as_bytes()).is_err());
        assert_eq!(form_decode("100%"), Some("100%".into()));
        assert_eq!(form_decode("%4"), Some("%4".into()));
        assert_eq!(find_cookie("a=1; sid=xyz; b=2", "sid"), Some("xyz"));
        assert_eq!(find_cookie("asid=1", "sid"), None);
        let c = set_cookie("sid", "v", true, Some(60));
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Lax") && c.contains("Secure"));
        assert!(c.contains("Max-Age=60"));
        assert!(!set_cookie("sid", "v", false, None).contains("Secure"));
    }

    #[test]
    fn pages_escape_and_label() {
        let p = login_page("/auth/login", "tok", "/x?\"><script>", Some("bad <b>"));
        assert!(p.contains("lang=\"en\""));
        assert!(p.contains("<label for=\"username\">") && p.contains("id=\"username\""));
        assert!(p.contains("<label for=\"password\">"));
        assert!(!p.contains("<script>"));
        assert!(p.contains("bad &lt;b&gt;"));
        assert!(!p.contains("<script"), "no JavaScript in the portal");
    }

    #[test]
    fn enrolment_pages_escape_and_label() {
        let svg = crate::totp::qr_svg_titled("otpauth://totp/x?secret=AAAA", "QR").unwrap();
        let v = EnrollView {
            action: "/auth/totp",
            csrf: "tok\"",
            rd: "/x?\"><script>",
            user: "<b>eve</b>",
            secret: "ABCDEFGHIJKLMNOP",
            uri: "otpauth://totp/a:b?secret=ABCD&issuer=a\"><script>",
            svg: &svg,
        };
        let p = totp_enroll_page(&v, Some("bad <i>"));
        assert!(!p.contains("<script"), "{p}");
        assert!(p.contains("&lt;b&gt;eve&lt;/b&gt;") && p.contains("bad &lt;i&gt;"));
        assert!(p.contains("<code class=\"secret\" id=\"secret\">ABCD EFGH IJKL MNOP</code>"));
        assert!(p.contains("<label for=\"code\">") && p.contains("id=\"code\""));
        assert!(p.contains("aria-describedby=\"error\""));
        assert!(p.contains(&svg), "the QR code inline");
        assert!(p.contains("name=\"csrf\" value=\"tok&quot;\""));
        assert!(
            !p.contains("name=\"secret\""),
            "the secret is never a form field"
        );
        let codes = vec!["abcd-efgh-ijkl-mnop".to_string(), "<x>".to_string()];
        let d = totp_enrolled_page("bob", &codes, "/app?a=1&b=\"2");
        assert!(d.contains("<li><code>abcd-efgh-ijkl-mnop</code></li>"));
        assert!(d.contains("&lt;x&gt;") && !d.contains("<x>"));
        assert!(d.contains("href=\"/app?a=1&amp;b=&quot;2\""));
    }
}
