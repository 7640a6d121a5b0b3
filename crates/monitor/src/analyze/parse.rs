//! Log line parsers: nginx/Apache combined and common formats, and
//! palisade's JSON access log (one object per line).
//!
//! ```text
//! combined: 203.0.113.9 - bob [10/Oct/2026:13:55:36 +0200] "GET /a?b=c HTTP/1.1" 200 2326 "https://ref/" "Mozilla/5.0"
//! common:   the same without the two last quoted fields
//! json:     {"time":"2026-10-10T11:55:36.000Z","client_ip":"203.0.113.9","method":"GET","host":"x","path":"/a?b=c","status":200,...}
//! ```
//!
//! Quoted fields are unescaped the way nginx (`\xHH`) and Apache (`\"`,
//! `\\`, `\xHH`) escape them, so the WAF sees the bytes the client sent.

use std::borrow::Cow;

/// Which parser to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LogFormat {
    /// Per line: JSON when it starts with `{`, else combined or common.
    #[default]
    Auto,
    /// nginx/Apache combined (common is accepted too: the referer and
    /// user agent are then absent).
    Combined,
    /// nginx/Apache common (trailing fields ignored).
    Common,
    /// palisade's JSON access log (also nginx `escape=json` logs using
    /// `remote_addr`, `request_method`, `request_uri`, `status`,
    /// `http_referer`, `http_user_agent`).
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(LogFormat::Auto),
            "combined" => Ok(LogFormat::Combined),
            "common" => Ok(LogFormat::Common),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!(
                "log format `{s}`: expected auto, combined, common or json"
            )),
        }
    }
}

/// One request as the log recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    /// Client address as logged.
    pub client: Cow<'a, str>,
    /// Request time, seconds since the Unix epoch (when parseable).
    pub time: Option<i64>,
    /// Method; empty when the log has no request (`"-"`, a bare 400).
    pub method: Cow<'a, [u8]>,
    /// Request target as sent (path and query).
    pub uri: Cow<'a, [u8]>,
    /// Protocol (`HTTP/1.1`), `HTTP/1.1` when the log has none.
    pub protocol: Cow<'a, [u8]>,
    /// Response status.
    pub status: u16,
    /// Response bytes (0 for `-`).
    pub bytes: u64,
    /// Referer header, when logged and not `-`.
    pub referer: Option<Cow<'a, [u8]>>,
    /// User-Agent header, when logged and not `-`.
    pub user_agent: Option<Cow<'a, [u8]>>,
    /// Host, when logged (JSON access logs).
    pub host: Option<Cow<'a, [u8]>>,
}

impl Entry<'_> {
    /// Whether the log recorded a request line (nginx logs `"-"` for a
    /// connection closed before one, or for garbage it answered 400).
    pub fn has_request(&self) -> bool {
        !self.method.is_empty()
    }
}

/// Why a line was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Skip {
    /// Not in the expected format.
    Malformed,
    /// Ends before its status field (a cut-off write, a partial copy).
    Truncated,
    /// Holds NUL or control bytes: not a text log line.
    Binary,
    /// Longer than [`super::MAX_LINE_BYTES`].
    TooLong,
}

impl Skip {
    /// Lower-case name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Skip::Malformed => "malformed",
            Skip::Truncated => "truncated",
            Skip::Binary => "binary",
            Skip::TooLong => "too_long",
        }
    }
}

/// Parses one line (without its newline). Blank lines are `Ok(None)`.
pub fn parse_line(line: &[u8], format: LogFormat) -> Result<Option<Entry<'_>>, Skip> {
    if line.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(None);
    }
    // Text logs never hold control bytes (both servers escape them); a NUL
    // or an escape byte means a binary file or a corrupted write.
    if line.iter().any(|&b| b < 0x20 && b != b'\t') || line.contains(&0x7f) {
        return Err(Skip::Binary);
    }
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Auto => line.first() == Some(&b'{'),
        _ => false,
    };
    if json {
        parse_json(line).map(Some)
    } else {
        parse_text(line).map(Some)
    }
}

/// A cursor over a text line.
struct Cur<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Cur<'a> {
    fn at_end(&self) -> bool {
        self.i >= self.s.len()
    }

    fn spaces(&mut self) {
        while self.i < self.s.len() && self.s[self.i] == b' ' {
            self.i += 1;
        }
    }

    /// A space-delimited token; Truncated at the end of the line.
    fn token(&mut self) -> Result<&'a [u8], Skip> {
        self.spaces();
        if self.at_end() {
            return Err(Skip::Truncated);
        }
        let start = self.i;
        while self.i < self.s.len() && self.s[self.i] != b' ' {
            self.i += 1;
        }
        Ok(&self.s[start..self.i])
    }

    /// `[...]`.
    fn bracketed(&mut self) -> Result<&'a [u8], Skip> {
        self.spaces();
        if self.at_end() {
            return Err(Skip::Truncated);
        }
        if self.s[self.i] != b'[' {
            return Err(Skip::Malformed);
        }
        let start = self.i + 1;
        match memchr::memchr(b']', &self.s[start..]) {
            Some(n) => {
                self.i = start + n + 1;
                Ok(&self.s[start..start + n])
            }
            None => Err(Skip::Truncated),
        }
    }

    /// `"..."` with backslash escapes; returns the raw inside.
    fn quoted(&mut self) -> Result<&'a [u8], Skip> {
        self.spaces();
        if self.at_end() {
            return Err(Skip::Truncated);
        }
        if self.s[self.i] != b'"' {
            return Err(Skip::Malformed);
        }
        let start = self.i + 1;
        let mut j = start;
        while j < self.s.len() {
            match self.s[j] {
                b'\\' => j += 2,
                b'"' => {
                    self.i = j + 1;
                    return Ok(&self.s[start..j]);
                }
                _ => j += 1,
            }
        }
        Err(Skip::Truncated)
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Undoes the servers' log escaping: `\xHH`, `\"`, `\\` (other escapes
/// are kept as written).
pub fn unescape(raw: &[u8]) -> Cow<'_, [u8]> {
    if !raw.contains(&b'\\') {
        return Cow::Borrowed(raw);
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'\\' && i + 1 < raw.len() {
            match raw[i + 1] {
                b'"' | b'\\' => {
                    out.push(raw[i + 1]);
                    i += 2;
                    continue;
                }
                b'x' if i + 3 < raw.len() => {
                    if let (Some(h), Some(l)) = (hex(raw[i + 2]), hex(raw[i + 3])) {
                        out.push(h << 4 | l);
                        i += 4;
                        continue;
                    }
                }
                _ => {}
            }
        }
        out.push(raw[i]);
        i += 1;
    }
    Cow::Owned(out)
}

fn dash_none(raw: &[u8]) -> Option<Cow<'_, [u8]>> {
    if raw.is_empty() || raw == b"-" {
        None
    } else {
        Some(unescape(raw))
    }
}

fn parse_text(line: &[u8]) -> Result<Entry<'_>, Skip> {
    let mut c = Cur { s: line, i: 0 };
    let client = c.token()?;
    let client = std::str::from_utf8(client).map_err(|_| Skip::Malformed)?;
    let _ident = c.token()?;
    let _user = c.token()?;
    let time = c.bracketed()?;
    let request = c.quoted()?;
    let status = c.token()?;
    let status = parse_status(status).ok_or(Skip::Malformed)?;
    let bytes = match c.token() {
        Ok(b"-") | Err(Skip::Truncated) => 0,
        Ok(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or(Skip::Malformed)?,
        Err(e) => return Err(e),
    };
    // Combined adds referer and user agent; common ends here. A line cut
    // inside them still has its request and status: keep it, without them.
    let referer = c.quoted().ok();
    let user_agent = if referer.is_some() {
        c.quoted().ok()
    } else {
        None
    };
    let (method, uri, protocol) = split_request(request);
    Ok(Entry {
        client: Cow::Borrowed(client),
        time: parse_clf_time(time),
        method,
        uri,
        protocol,
        status,
        bytes,
        referer: referer.and_then(dash_none),
        user_agent: user_agent.and_then(dash_none),
        host: None,
    })
}

fn parse_status(s: &[u8]) -> Option<u16> {
    if s.len() != 3 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v = s.iter().fold(0u16, |a, &d| a * 10 + u16::from(d - b'0'));
    (100..=599).contains(&v).then_some(v)
}

type RequestParts<'a> = (Cow<'a, [u8]>, Cow<'a, [u8]>, Cow<'a, [u8]>);

/// `METHOD URI PROTOCOL`; the URI may hold spaces (both servers log the
/// request line as received), the protocol may be missing (HTTP/0.9 or a
/// cut line).
fn split_request(raw: &[u8]) -> RequestParts<'_> {
    const DEFAULT_PROTOCOL: &[u8] = b"HTTP/1.1";
    if raw.is_empty() || raw == b"-" {
        return (
            Cow::Borrowed(&[][..]),
            Cow::Borrowed(&[][..]),
            Cow::Borrowed(DEFAULT_PROTOCOL),
        );
    }
    let (method, rest) = match memchr::memchr(b' ', raw) {
        Some(i) => (&raw[..i], &raw[i + 1..]),
        None => (raw, &[][..]),
    };
    let (uri, protocol) = match memchr::memrchr(b' ', rest) {
        Some(i) if rest[i + 1..].starts_with(b"HTTP/") => (&rest[..i], &rest[i + 1..]),
        _ if rest.starts_with(b"HTTP/") && !rest.contains(&b' ') => (&[][..], rest),
        _ => (rest, DEFAULT_PROTOCOL),
    };
    (unescape(method), unescape(uri), unescape(protocol))
}

/// `10/Oct/2026:13:55:36 +0200` → Unix seconds.
fn parse_clf_time(t: &[u8]) -> Option<i64> {
    let t = std::str::from_utf8(t).ok()?;
    let (stamp, zone) = t.split_once(' ').unwrap_or((t, "+0000"));
    let mut it = stamp.split(['/', ':']);
    let day: i64 = it.next()?.parse().ok()?;
    let month = match it.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = it.next()?.parse().ok()?;
    let h: i64 = it.next()?.parse().ok()?;
    let m: i64 = it.next()?.parse().ok()?;
    let s: i64 = it.next()?.parse().ok()?;
    let offset = parse_offset(zone.trim())?;
    unix_seconds(year, month, day, h, m, s).map(|t| t - offset)
}

/// `+0200`, `-07:00`, `Z` → seconds east of UTC.
fn parse_offset(z: &str) -> Option<i64> {
    if z == "Z" || z == "z" {
        return Some(0);
    }
    let sign = match z.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    // `HHMM` or `HH:MM`, read in place (no allocation per log line).
    let mut d = [0i64; 4];
    let mut n = 0;
    for b in z[1..].bytes().filter(|&b| b != b':') {
        if n == 4 || !b.is_ascii_digit() {
            return None;
        }
        d[n] = i64::from(b - b'0');
        n += 1;
    }
    if n != 4 {
        return None;
    }
    Some(sign * ((d[0] * 10 + d[1]) * 3600 + (d[2] * 10 + d[3]) * 60))
}

/// Civil date and time (UTC) → Unix seconds; `None` when out of range.
fn unix_seconds(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64) -> Option<i64> {
    if !(1970..=9999).contains(&y)
        || !(1..=12).contains(&mo)
        || !(1..=31).contains(&d)
        || !(0..=23).contains(&h)
        || !(0..=59).contains(&mi)
        || !(0..=60).contains(&s)
    {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + s)
}

/// `2026-10-10T11:55:36.000Z` (RFC 3339) → Unix seconds.
fn parse_rfc3339(t: &str) -> Option<i64> {
    let b = t.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| t.get(r)?.parse::<i64>().ok();
    let secs = unix_seconds(
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    )?;
    let mut rest = &t[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        rest = &frac[n..];
    }
    let offset = if rest.is_empty() {
        0
    } else {
        parse_offset(rest)?
    };
    Some(secs - offset)
}

fn parse_json(line: &[u8]) -> Result<Entry<'static>, Skip> {
    let v: serde_json::Value = match serde_json::from_slice(line) {
        Ok(v) => v,
        Err(e) if e.is_eof() => return Err(Skip::Truncated),
        Err(_) => return Err(Skip::Malformed),
    };
    let obj = v.as_object().ok_or(Skip::Malformed)?;
    let text = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| obj.get(*k).and_then(|x| x.as_str()))
            .map(str::to_owned)
    };
    let client = text(&["client_ip", "remote_addr", "client"]).ok_or(Skip::Malformed)?;
    let status = ["status", "http_code"]
        .iter()
        .find_map(|k| match obj.get(*k)? {
            serde_json::Value::Number(n) => n.as_u64(),
            serde_json::Value::String(s) => s.parse().ok(),
            _ => None,
        })
        .and_then(|s| u16::try_from(s).ok())
        .filter(|s| (100..=599).contains(s))
        .ok_or(Skip::Malformed)?;
    let (method, uri, protocol) = match text(&["method", "request_method"]) {
        Some(m) => {
            let uri = text(&["path", "request_uri", "uri"]).ok_or(Skip::Malformed)?;
            let proto = text(&["protocol", "server_protocol"]).unwrap_or_else(|| "HTTP/1.1".into());
            (m.into_bytes(), uri.into_bytes(), proto.into_bytes())
        }
        None => {
            let request = text(&["request"]).ok_or(Skip::Malformed)?;
            let (m, u, p) = split_request(request.as_bytes());
            (m.into_owned(), u.into_owned(), p.into_owned())
        }
    };
    let bytes = ["bytes_out", "body_bytes_sent", "bytes"]
        .iter()
        .find_map(|k| obj.get(*k)?.as_u64())
        .unwrap_or(0);
    let owned_opt = |keys: &[&str]| {
        text(keys)
            .filter(|s| !s.is_empty() && s != "-")
            .map(|s| Cow::Owned(s.into_bytes()))
    };
    Ok(Entry {
        client: Cow::Owned(client),
        time: text(&["time", "time_iso8601", "timestamp"]).and_then(|t| parse_rfc3339(&t)),
        method: Cow::Owned(method),
        uri: Cow::Owned(uri),
        protocol: Cow::Owned(protocol),
        status,
        bytes,
        referer: owned_opt(&["referer", "http_referer"]),
        user_agent: owned_opt(&["user_agent", "http_user_agent"]),
        host: owned_opt(&["host"]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combined_line() {
        let l = br#"203.0.113.9 - bob [10/Oct/2026:13:55:36 +0200] "GET /a?q=1%27 HTTP/1.1" 200 2326 "https://r.example/" "Mozilla/5.0 (X11)""#;
        let e = parse_line(l, LogFormat::Auto).unwrap().unwrap();
        assert_eq!(e.client, "203.0.113.9");
        assert_eq!(&*e.method, b"GET");
        assert_eq!(&*e.uri, b"/a?q=1%27");
        assert_eq!(&*e.protocol, b"HTTP/1.1");
        assert_eq!(e.status, 200);
        assert_eq!(e.bytes, 2326);
        assert_eq!(e.referer.as_deref(), Some(&b"https://r.example/"[..]));
        assert_eq!(e.user_agent.as_deref(), Some(&b"Mozilla/5.0 (X11)"[..]));
        // 2026-10-10T11:55:36Z
        assert_eq!(e.time, Some(1_791_633_336));
    }

    #[test]
    fn common_line_escapes_and_spaces_in_the_target() {
        let l = br#"::1 - - [01/Jan/2026:00:00:00 +0000] "GET /x?a=<script>\x22 or 1=1 HTTP/1.0" 404 -"#;
        let e = parse_line(l, LogFormat::Common).unwrap().unwrap();
        assert_eq!(&*e.uri, b"/x?a=<script>\" or 1=1");
        assert_eq!(&*e.protocol, b"HTTP/1.0");
        assert_eq!(e.bytes, 0);
        assert_eq!(e.referer, None);
        assert_eq!(e.time, Some(1_767_225_600));
        let apache =
            br#"10.0.0.1 - - [01/Jan/2026:00:00:00 +0000] "GET /\"q\\ HTTP/1.1" 200 5 "-" "-""#;
        let e = parse_line(apache, LogFormat::Auto).unwrap().unwrap();
        assert_eq!(&*e.uri, b"/\"q\\");
        assert_eq!(e.user_agent, None);
    }

    #[test]
    fn no_request_line() {
        let l = br#"198.51.100.7 - - [01/Jan/2026:00:00:00 +0000] "-" 400 0 "-" "-""#;
        let e = parse_line(l, LogFormat::Auto).unwrap().unwrap();
        assert!(!e.has_request());
        assert_eq!(e.status, 400);
    }

    #[test]
    fn bad_lines_are_classified() {
        let ok = br#"1.2.3.4 - - [01/Jan/2026:00:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "ua""#;
        assert!(parse_line(ok, LogFormat::Auto).is_ok());
        // Cut after the status: kept, without the fields that follow.
        let e = parse_line(&ok[..ok.len() - 2], LogFormat::Auto)
            .unwrap()
            .unwrap();
        assert_eq!((e.status, e.user_agent), (200, None));
        for cut in [10, 30, 50, 57] {
            assert_eq!(
                parse_line(&ok[..cut], LogFormat::Auto),
                Err(Skip::Truncated),
                "cut at {cut}"
            );
        }
        assert_eq!(
            parse_line(b"hello world this is not a log", LogFormat::Auto),
            Err(Skip::Malformed)
        );
        assert_eq!(
            parse_line(
                b"1.2.3.4 - - [x] \"GET / HTTP/1.1\" 2000 5",
                LogFormat::Auto
            ),
            Err(Skip::Malformed)
        );
        assert_eq!(parse_line(b"ab\0cd", LogFormat::Auto), Err(Skip::Binary));
        assert_eq!(
            parse_line(b"\x1b[31mred", LogFormat::Auto),
            Err(Skip::Binary)
        );
        assert_eq!(parse_line(b"   ", LogFormat::Auto), Ok(None));
        assert_eq!(
            parse_line(b"{\"client_ip\":", LogFormat::Auto),
            Err(Skip::Truncated)
        );
        assert_eq!(
            parse_line(b"{\"a\":1}", LogFormat::Auto),
            Err(Skip::Malformed)
        );
    }

    #[test]
    fn palisade_json_line() {
        let l = br#"{"time":"2026-10-10T11:55:36.250Z","request_id":"r1","client_ip":"192.0.2.1","method":"POST","host":"app.example","path":"/login?next=%2F","status":302,"bytes_in":10,"bytes_out":0,"duration_ms":1.5,"route":"app","upstream":"-","upstream_ms":null,"complete":true}"#;
        let e = parse_line(l, LogFormat::Auto).unwrap().unwrap();
        assert_eq!(e.client, "192.0.2.1");
        assert_eq!(&*e.method, b"POST");
        assert_eq!(&*e.uri, b"/login?next=%2F");
        assert_eq!(e.status, 302);
        assert_eq!(e.host.as_deref(), Some(&b"app.example"[..]));
        assert_eq!(e.time, Some(1_791_633_336));
    }

    #[test]
    fn time_zones() {
        assert_eq!(parse_clf_time(b"01/Jan/1970:01:00:00 +0100"), Some(0));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00-01:00"), Some(3600));
        assert_eq!(parse_clf_time(b"31/Foo/2026:00:00:00 +0000"), None);
    }
}
