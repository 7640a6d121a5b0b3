//! A small, lenient HTTP/1 request parser for test traffic.
//!
//! The CRS tests send deliberately malformed requests. This parser always
//! extracts what a WAF could see (request line, headers, body), and
//! separately records whether palisade's HTTP layer (hyper/httparse rules)
//! would refuse the request itself with a 4xx/5xx before the WAF runs: the
//! in-process target then answers that status and reports no rule.
//!
//! Strictness follows httparse as hyper uses it for requests: one SP
//! between request-line parts, a token method, a request-target of visible
//! ASCII or bytes >= 0x80, version `HTTP/1.0` or `HTTP/1.1`, token header
//! names directly followed by `:`, header values without control bytes
//! other than HTAB, no obs-fold, a valid and consistent Content-Length and
//! well-formed chunked framing. Like a proxy must (RFC 9112 6.3), it drops
//! Content-Length from a chunked request, so the WAF sees the message as it
//! would be forwarded.

/// Most header lines parsed (default 1,000): bounds work and memory on a
/// request made of empty-looking header lines.
pub const MAX_HEADERS: usize = 1000;

/// Largest decoded chunked body kept, in bytes (default 64 MiB).
pub const MAX_BODY: usize = 64 * 1024 * 1024;

/// A request as the WAF sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedRequest {
    /// Method bytes, verbatim.
    pub method: Vec<u8>,
    /// Request-target bytes, verbatim.
    pub uri: Vec<u8>,
    /// Protocol token (`HTTP/1.1`), empty for an HTTP/0.9-style line.
    pub version: Vec<u8>,
    /// Header fields in order, values trimmed of surrounding SP/HTAB.
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// The body after de-chunking / Content-Length framing.
    pub body: Vec<u8>,
    /// `Some((status, reason))` when the HTTP layer answers the request
    /// itself and the WAF never sees it.
    pub rejected: Option<(u16, &'static str)>,
}

impl ParsedRequest {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v.as_slice())
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_uri_byte(b: u8) -> bool {
    (0x21..=0x7e).contains(&b) || b >= 0x80
}

fn is_value_byte(b: u8) -> bool {
    b == b'\t' || (0x20..=0x7e).contains(&b) || b >= 0x80
}

/// Splits off one line ending in LF (CR before it removed). Returns the
/// line and the rest; `None` when no LF is left.
fn line(buf: &[u8]) -> Option<(&[u8], &[u8])> {
    let lf = buf.iter().position(|&b| b == b'\n')?;
    let mut l = &buf[..lf];
    if l.last() == Some(&b'\r') {
        l = &l[..l.len() - 1];
    }
    Some((l, &buf[lf + 1..]))
}

fn trim(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// Which HTTP layer to model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HttpModel {
    /// httparse's request rules only: what a gateway must accept to pass
    /// the CRS suite with few overrides (the default).
    #[default]
    Httparse,
    /// Stock hyper 1.x on top: the request-target must also be a valid
    /// `http::Uri` (no raw `<`, `>`, `"`, space or control byte in the
    /// query, no `<`, `>`, `` ` `` in the path, UTF-8 only, origin, `*`,
    /// absolute or authority form), and HTTP/1.0 may not carry
    /// Transfer-Encoding. palisade's gateway does not behave like this:
    /// its framing guard percent-encodes the target bytes `http::Uri`
    /// refuses before hyper parses them (the WAF sees them raw), which is
    /// the [`HttpModel::Httparse`] behaviour for the 32 CRS requests
    /// concerned.
    Hyper,
}

/// Parses `raw` under `model`. Never fails: problems are recorded in
/// `rejected`.
pub fn parse_with(raw: &[u8], model: HttpModel) -> ParsedRequest {
    let mut req = parse(raw);
    if model == HttpModel::Hyper && req.rejected.is_none() {
        if let Err(why) = check_hyper_uri(&req.uri) {
            req.rejected = Some((400, why));
        } else if req.version == b"HTTP/1.0" && req.header("transfer-encoding").is_some() {
            req.rejected = Some((400, "transfer-encoding in an HTTP/1.0 request"));
        }
    }
    req
}

fn path_byte_ok(b: u8) -> bool {
    matches!(b, 0x21 | 0x24..=0x3B | 0x3D | 0x40..=0x5F | 0x61..=0x7A | 0x7C | 0x7E | b'"' | b'{' | b'}')
        || b >= 0x80
}

fn query_byte_ok(b: u8) -> bool {
    matches!(b, 0x21 | 0x24..=0x3B | 0x3D | 0x3F..=0x7E) || b >= 0x80
}

fn authority_byte_ok(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@[]%".contains(&b)
}

fn check_path_and_query(p: &[u8]) -> Result<(), &'static str> {
    let mut in_query = false;
    for &b in p {
        match b {
            b'#' => break,
            b'?' if !in_query => in_query = true,
            _ if in_query && !query_byte_ok(b) => {
                return Err("invalid byte in the query (http::Uri)")
            }
            _ if !in_query && !path_byte_ok(b) => {
                return Err("invalid byte in the path (http::Uri)")
            }
            _ => {}
        }
    }
    let end = p.iter().position(|&b| b == b'#').unwrap_or(p.len());
    std::str::from_utf8(&p[..end]).map_err(|_| "request-target is not UTF-8 (http::Uri)")?;
    Ok(())
}

/// The request-target rules of `http::Uri::from_shared` as hyper applies
/// them to a request line.
fn check_hyper_uri(uri: &[u8]) -> Result<(), &'static str> {
    match uri.first() {
        None => Err("empty request-target (http::Uri)"),
        Some(_) if uri == b"*" => Ok(()),
        Some(b'/') => check_path_and_query(uri),
        Some(_) => {
            let (rest, absolute) = match uri.windows(3).position(|w| w == b"://") {
                Some(i) => {
                    let scheme = &uri[..i];
                    if scheme.is_empty()
                        || !scheme[0].is_ascii_alphabetic()
                        || !scheme
                            .iter()
                            .all(|&b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
                    {
                        return Err("invalid scheme (http::Uri)");
                    }
                    (&uri[i + 3..], true)
                }
                None => (uri, false),
            };
            let end = rest
                .iter()
                .position(|&b| matches!(b, b'/' | b'?' | b'#'))
                .unwrap_or(rest.len());
            let (authority, path) = rest.split_at(end);
            if authority.is_empty() && !absolute {
                return Err("invalid request-target (http::Uri)");
            }
            if !authority.iter().all(|&b| authority_byte_ok(b)) {
                return Err("invalid byte in the authority (http::Uri)");
            }
            if !absolute && !path.is_empty() {
                return Err("invalid request-target (http::Uri)");
            }
            check_path_and_query(path)
        }
    }
}

/// Parses `raw` with [`HttpModel::Httparse`]. Never fails: problems are
/// recorded in `rejected`.
pub fn parse(raw: &[u8]) -> ParsedRequest {
    let mut req = ParsedRequest::default();
    let mut reject = |req: &mut ParsedRequest, status: u16, why: &'static str| {
        if req.rejected.is_none() {
            req.rejected = Some((status, why));
        }
    };

    // httparse skips empty lines before the request line.
    let mut rest = raw;
    while let Some(r) = rest
        .strip_prefix(b"\r\n")
        .or_else(|| rest.strip_prefix(b"\n"))
    {
        rest = r;
    }
    let Some((request_line, after)) = line(rest) else {
        reject(&mut req, 400, "incomplete request line");
        req.method = rest.to_vec();
        return req;
    };
    rest = after;
    parse_request_line(request_line, &mut req, &mut reject);

    // Header block.
    let mut content_lengths: Vec<&[u8]> = Vec::new();
    let mut complete = false;
    while let Some((l, after)) = line(rest) {
        rest = after;
        if l.is_empty() {
            complete = true;
            break;
        }
        if req.headers.len() >= MAX_HEADERS {
            reject(&mut req, 431, "too many headers");
            continue;
        }
        if matches!(l.first(), Some(b' ' | b'\t')) {
            reject(&mut req, 400, "obsolete line folding");
            if let Some(last) = req.headers.last_mut() {
                last.1.push(b' ');
                last.1.extend_from_slice(trim(l));
            }
            continue;
        }
        let Some(colon) = l.iter().position(|&b| b == b':') else {
            reject(&mut req, 400, "header line without colon");
            continue;
        };
        let name = &l[..colon];
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            reject(&mut req, 400, "invalid header name");
        }
        let value = trim(&l[colon + 1..]);
        if !value.iter().all(|&b| is_value_byte(b)) {
            reject(&mut req, 400, "invalid byte in header value");
        }
        if trim(name).eq_ignore_ascii_case(b"content-length") {
            content_lengths.push(value);
        }
        req.headers.push((trim(name).to_vec(), value.to_vec()));
    }
    if !complete {
        reject(&mut req, 400, "incomplete header block");
    }

    // Body framing: chunked wins over Content-Length (RFC 9112 6.3).
    let te = req
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(b"transfer-encoding"))
        .map(|(_, v)| String::from_utf8_lossy(v).to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join(",");
    if !te.trim().is_empty() {
        let last = te.rsplit(',').next().unwrap_or("").trim().to_owned();
        if last != "chunked" {
            reject(&mut req, 400, "transfer-encoding without final chunked");
            req.body = rest.to_vec();
        } else {
            // RFC 9112 6.3: with Transfer-Encoding, Content-Length is
            // ignored and a proxy must remove it before forwarding; the
            // WAF sees the message as forwarded.
            req.headers
                .retain(|(n, _)| !n.eq_ignore_ascii_case(b"content-length"));
            match dechunk(rest) {
                Ok(body) => req.body = body,
                Err((partial, why)) => {
                    reject(&mut req, 400, why);
                    req.body = partial;
                }
            }
        }
        return req;
    }
    let mut length: Option<usize> = None;
    for cl in &content_lengths {
        let parsed = std::str::from_utf8(cl)
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<usize>().ok());
        match (parsed, length) {
            (None, _) => reject(&mut req, 400, "invalid content-length"),
            (Some(n), Some(prev)) if n != prev => {
                reject(&mut req, 400, "conflicting content-length")
            }
            (Some(n), _) => length = Some(n),
        }
    }
    if let Some(n) = length {
        req.body = rest[..n.min(rest.len())].to_vec();
    }
    req
}

fn parse_request_line(
    l: &[u8],
    req: &mut ParsedRequest,
    reject: &mut impl FnMut(&mut ParsedRequest, u16, &'static str),
) {
    // Lenient split: method up to the first SP, version after the last SP,
    // the request-target in between (it may itself contain spaces).
    let parts: Vec<&[u8]> = l.split(|&b| b == b' ').collect();
    let strict_ok = parts.len() == 3
        && !parts[0].is_empty()
        && parts[0].iter().all(|&b| is_tchar(b))
        && !parts[1].is_empty()
        && parts[1].iter().all(|&b| is_uri_byte(b));
    let words: Vec<&[u8]> = l
        .split(|&b| b == b' ' || b == b'\t')
        .filter(|w| !w.is_empty())
        .collect();
    match words.as_slice() {
        [] => reject(req, 400, "empty request line"),
        [m] => {
            req.method = m.to_vec();
            reject(req, 400, "request line without target");
        }
        [m, u] => {
            req.method = m.to_vec();
            req.uri = u.to_vec();
            reject(req, 400, "request line without version");
        }
        [m, middle @ .., v] => {
            req.method = m.to_vec();
            req.version = v.to_vec();
            let start = middle[0].as_ptr() as usize - l.as_ptr() as usize;
            let last = middle[middle.len() - 1];
            let end = last.as_ptr() as usize - l.as_ptr() as usize + last.len();
            req.uri = l[start..end].to_vec();
        }
    }
    if req.rejected.is_some() {
        return;
    }
    if !strict_ok {
        reject(req, 400, "malformed request line");
        return;
    }
    if req.version != b"HTTP/1.1" && req.version != b"HTTP/1.0" {
        reject(req, 400, "unsupported HTTP version");
    }
}

type Partial = (Vec<u8>, &'static str);

fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, Partial> {
    let mut body = Vec::new();
    loop {
        let Some((size_line, after)) = line(rest) else {
            return Err((body, "incomplete chunk size"));
        };
        let size_text = size_line
            .split(|&b| b == b';')
            .next()
            .map(trim)
            .unwrap_or_default();
        let size = std::str::from_utf8(size_text)
            .ok()
            .filter(|s| !s.is_empty() && s.len() <= 16)
            .and_then(|s| usize::from_str_radix(s, 16).ok());
        let Some(size) = size else {
            return Err((body, "invalid chunk size"));
        };
        rest = after;
        if size == 0 {
            // Trailers up to the empty line; a missing end is tolerated.
            while let Some((l, after)) = line(rest) {
                rest = after;
                if l.is_empty() {
                    break;
                }
            }
            return Ok(body);
        }
        if size > rest.len() {
            body.extend_from_slice(rest);
            return Err((body, "truncated chunk"));
        }
        if body.len() + size > MAX_BODY {
            return Err((body, "chunked body too large"));
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size..];
        match rest
            .strip_prefix(b"\r\n")
            .or_else(|| rest.strip_prefix(b"\n"))
        {
            Some(r) => rest = r,
            None => return Err((body, "missing CRLF after chunk")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_formed_request_with_body() {
        let r = parse(b"POST /a?b=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcdef");
        assert_eq!(r.rejected, None);
        assert_eq!(
            (&r.method[..], &r.uri[..], &r.version[..]),
            (&b"POST"[..], &b"/a?b=1"[..], &b"HTTP/1.1"[..])
        );
        assert_eq!(r.headers.len(), 2);
        assert_eq!(r.body, b"abc");
    }

    #[test]
    fn chunked_body_is_decoded() {
        let r = parse(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 99\r\n\r\n3\r\nHi \r\n3\r\nCRS\r\n0\r\n\r\n");
        assert_eq!(r.rejected, None);
        assert_eq!(r.body, b"Hi CRS");
        assert_eq!(r.header("content-length"), None, "dropped beside chunked");
    }

    #[test]
    fn malformed_requests_are_parsed_but_marked_rejected() {
        let r = parse(b"     GET /get HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(r.rejected.map(|r| r.0), Some(400));
        assert_eq!(r.method, b"GET");
        let r = parse(b"GET /a b HTTP/1.1\r\n\r\n");
        assert_eq!(r.uri, b"/a b");
        assert_eq!(r.rejected.map(|r| r.0), Some(400));
        let r = parse(b"GET / HTTP/3.0\r\n\r\n");
        assert_eq!(r.rejected.map(|r| r.1), Some("unsupported HTTP version"));
        let r = parse(b"GET / HTTP/1.1\r\nHost: a\x00b\r\n\r\n");
        assert_eq!(
            r.rejected.map(|r| r.1),
            Some("invalid byte in header value")
        );
        assert_eq!(r.header("host"), Some(&b"a\x00b"[..]));
        let r = parse(b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab");
        assert_eq!(r.rejected.map(|r| r.1), Some("conflicting content-length"));
        let r = parse(b"GET /");
        assert_eq!(r.rejected.map(|r| r.1), Some("incomplete request line"));
    }

    #[test]
    fn hyper_model_applies_http_uri_rules() {
        let hyper = |raw: &[u8]| parse_with(raw, HttpModel::Hyper).rejected.map(|r| r.1);
        for ok in [
            &b"GET /a/{b}|c^d\\e?x=`{|}^\\&y=%3C HTTP/1.1\r\n\r\n"[..],
            b"GET * HTTP/1.1\r\n\r\n",
            b"CONNECT www.example.org:80 HTTP/1.1\r\n\r\n",
            b"GET http://localhost HTTP/1.1\r\n\r\n",
            b"GET /#<frag> HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(hyper(ok), None, "{}", String::from_utf8_lossy(ok));
        }
        for (bad, why) in [
            (
                &b"GET /?x=<script> HTTP/1.1\r\n\r\n"[..],
                "invalid byte in the query (http::Uri)",
            ),
            (
                b"GET /a<b HTTP/1.1\r\n\r\n",
                "invalid byte in the path (http::Uri)",
            ),
            (
                b"GET /?q=\"a\" HTTP/1.1\r\n\r\n",
                "invalid byte in the query (http::Uri)",
            ),
            (
                b"GET /\xff HTTP/1.1\r\n\r\n",
                "request-target is not UTF-8 (http::Uri)",
            ),
            (
                b"GET \\ HTTP/1.1\r\n\r\n",
                "invalid byte in the authority (http::Uri)",
            ),
            (
                b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                "transfer-encoding in an HTTP/1.0 request",
            ),
        ] {
            assert_eq!(hyper(bad), Some(why), "{}", String::from_utf8_lossy(bad));
            assert_eq!(parse(bad).rejected, None, "httparse alone accepts it");
        }
    }

    #[test]
    fn hostile_chunk_sizes_do_not_panic() {
        let r =
            parse(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nab");
        assert_eq!(r.rejected.map(|r| r.1), Some("truncated chunk"));
        let r = parse(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
        assert_eq!(r.rejected.map(|r| r.1), Some("invalid chunk size"));
    }
}
