//! HTTP/1 request-smuggling guard: an I/O wrapper between the socket and
//! hyper that checks the framing of every request before hyper sees it.
//!
//! httparse is lenient where a proxy must not be (it accepts bare LF line
//! ends, for example), and a lenient proxy in front of a differently lenient
//! upstream is how requests are smuggled. So each request head is held back
//! until it is complete and has been checked:
//!
//! - lines end in CRLF (no bare LF, no bare CR, no NUL);
//! - no obs-fold (header line starting with SP/HT), no whitespace in or
//!   before the colon of a field name, no line without a colon;
//! - Content-Length is digits only, and repeated values agree; at most one
//!   Transfer-Encoding, and it is exactly `chunked`; never both CL and TE;
//!   no TE on HTTP/1.0;
//! - request target within `max_uri_bytes` (414), header block within
//!   `max_header_bytes` and `max_headers` (431).
//!
//! Bodies are followed (Content-Length bytes, or chunk by chunk with strict
//! chunk-size lines and trailers) so that the next request on a keep-alive
//! connection is found and checked too. A rejected request never reaches
//! hyper: in its place the guard hands hyper a synthetic request carrying a
//! per-process secret and the status to answer, so pipelined requests before
//! it are answered in order, then the connection closes. Invalid chunk data
//! that arrives together with its head rejects the request before anything
//! is forwarded; chunk errors arriving later fail the body stream, which
//! aborts the upstream request.
//!
//! ## Raw heads
//!
//! Every request head the guard hands hyper is also captured exactly as the
//! client sent it — request line and header lines with their case, order and
//! duplicates — as a [`RawHead`] (one `Bytes` copy of the head, sliced). It
//! is queued on the connection's [`ConnShared`] and [`take_raw_head`] (called
//! first thing in the request handler) moves it into the request's
//! extensions. One FIFO per connection stays aligned with hyper because
//! hyper serves HTTP/1 requests strictly in order and the guard pushes
//! exactly one entry per head it delivers: a checked head, or the synthetic
//! rejection request (whose entry carries [`RawHead::rejected`]). Heads hyper
//! would still refuse after the guard's checks are refused by the guard
//! instead (token method and header names, header value bytes, target
//! bytes), so hyper never drops a queued head and carries on. As a second
//! line of defence the handler checks the method of each entry against the
//! request's; on a mismatch (or a queue overflow) the connection's raw heads
//! are switched off rather than ever attached to the wrong request. HTTP/2
//! and passthrough (CONNECT, upgraded) traffic has no raw heads.
//!
//! ## Request-target leniency
//!
//! `http::Uri` refuses some visible ASCII bytes in an origin-form target
//! that nginx, Apache and ModSecurity accept as sent (`<`, `>`, `` ` `` in the
//! path; `"`, `<`, `>` in the query) and bytes >= 0x80 that are not UTF-8.
//! The guard percent-encodes exactly those bytes in the head it hands hyper
//! (so the upstream gets an equivalent, valid target) while the [`RawHead`]
//! keeps the target as sent for the WAF. Control bytes, DEL and whitespace in
//! the target are still refused (`malformed request line`).
//!
//! The guard also owns two connection timers: the header-read timeout (from
//! the first byte of a head, and from accept) and the keep-alive idle timeout
//! (between requests, only while no request is in flight).

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::limits::{MAX_CHUNK_LINE_BYTES, REQUEST_LINE_SLACK};

/// Size of the guard's read buffer. One per connection, allocated at first read.
const READ_BUF: usize = 8 * 1024;

/// Fixed 16: raw heads queued per connection between the guard and the
/// handlers. hyper holds at most one unanswered HTTP/1 head, so the queue
/// never has more than a couple of entries; the bound caps memory if that
/// ever stopped being true (the connection's raw heads are then switched off).
pub const MAX_QUEUED_HEADS: usize = 16;

/// Header carrying the rejection marker on the synthetic request.
pub const REJECT_HEADER: &str = "x-palisade-reject";

/// Why a request was rejected; the index travels in the marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reject {
    /// LF not preceded by CR.
    BareLf,
    /// CR not followed by LF, or a NUL byte.
    BadByte,
    /// Header line starting with whitespace.
    ObsFold,
    /// Whitespace in or before the colon of a field name.
    SpaceBeforeColon,
    /// Header line without a colon or empty name.
    NoColon,
    /// Malformed request line.
    RequestLine,
    /// Content-Length not digits.
    BadContentLength,
    /// Several Content-Length values that differ.
    ConflictingContentLength,
    /// Both Content-Length and Transfer-Encoding.
    ClAndTe,
    /// Transfer-Encoding other than one `chunked`, or on HTTP/1.0.
    BadTransferEncoding,
    /// Malformed chunk-size line, chunk terminator or trailer.
    BadChunk,
    /// Request target too long (414).
    UriTooLong,
    /// Header block too large or too many headers (431).
    HeadersTooLarge,
    /// Header name with a byte that is not a token character.
    HeaderName,
    /// Control byte (other than HTAB) or DEL in a header value.
    HeaderValue,
}

impl Reject {
    const ALL: [Reject; 15] = [
        Reject::BareLf,
        Reject::BadByte,
        Reject::ObsFold,
        Reject::SpaceBeforeColon,
        Reject::NoColon,
        Reject::RequestLine,
        Reject::BadContentLength,
        Reject::ConflictingContentLength,
        Reject::ClAndTe,
        Reject::BadTransferEncoding,
        Reject::BadChunk,
        Reject::UriTooLong,
        Reject::HeadersTooLarge,
        Reject::HeaderName,
        Reject::HeaderValue,
    ];

    /// Short reason for logs and the 4xx body.
    pub fn reason(self) -> &'static str {
        match self {
            Reject::BareLf => "bare LF line ending",
            Reject::BadByte => "bare CR or NUL byte",
            Reject::ObsFold => "obsolete line folding",
            Reject::SpaceBeforeColon => "whitespace in header name",
            Reject::NoColon => "malformed header line",
            Reject::RequestLine => "malformed request line",
            Reject::BadContentLength => "invalid Content-Length",
            Reject::ConflictingContentLength => "conflicting Content-Length",
            Reject::ClAndTe => "both Content-Length and Transfer-Encoding",
            Reject::BadTransferEncoding => "unsupported Transfer-Encoding",
            Reject::BadChunk => "invalid chunked encoding",
            Reject::UriTooLong => "request URI too long",
            Reject::HeadersTooLarge => "request header fields too large",
            Reject::HeaderName => "invalid header name",
            Reject::HeaderValue => "control byte in header value",
        }
    }

    /// The gateway error answered for it.
    pub fn to_error(self) -> crate::Error {
        match self {
            Reject::UriTooLong => crate::Error::UriTooLong,
            Reject::HeadersTooLarge => crate::Error::HeadersTooLarge,
            other => crate::Error::BadRequest(other.reason()),
        }
    }

    fn index(self) -> usize {
        Reject::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }

    /// Decodes the marker header value `"{secret} {index}"`.
    pub fn from_marker(value: &[u8], secret: &str) -> Option<Reject> {
        let rest = value.strip_prefix(secret.as_bytes())?.strip_prefix(b" ")?;
        let idx: usize = std::str::from_utf8(rest).ok()?.parse().ok()?;
        Reject::ALL.get(idx).copied()
    }
}

/// One HTTP/1 request head exactly as the client sent it (see the module
/// docs). All fields are slices of one buffer, bounded by the guard's
/// request-line and header limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawHead {
    /// The request line without its CRLF, e.g. `GET /a?b=<c> HTTP/1.1`.
    pub request_line: Bytes,
    /// Header fields in the order received: the name as sent (case kept),
    /// the value without surrounding SP/HTAB. Duplicates stay separate.
    pub headers: Vec<(Bytes, Bytes)>,
    /// Set when the guard refused this request: the handler got the
    /// synthetic rejection request in its place, and these are the lines
    /// received up to the problem (possibly none).
    pub rejected: Option<Reject>,
}

impl RawHead {
    fn part(&self, i: usize) -> &[u8] {
        self.request_line
            .split(|&b| b == b' ')
            .nth(i)
            .unwrap_or_default()
    }

    /// The method bytes.
    pub fn method(&self) -> &[u8] {
        self.part(0)
    }

    /// The request target as sent (not percent-encoded by the guard).
    pub fn target(&self) -> &[u8] {
        self.part(1)
    }

    /// The protocol token, e.g. `HTTP/1.1`.
    pub fn version(&self) -> &[u8] {
        self.part(2)
    }

    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &[u8]) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| &v[..])
    }
}

#[derive(Debug, Default)]
struct HeadQueue {
    heads: VecDeque<RawHead>,
    /// Alignment with hyper was lost: no more raw heads on this connection.
    off: bool,
}

/// State shared between a connection's guard and its request handlers.
#[derive(Debug, Default)]
pub struct ConnShared {
    /// Requests whose response has not finished; the idle timer never closes
    /// a connection with requests in flight.
    pub inflight: AtomicUsize,
    /// Raw heads delivered to hyper and not yet taken by a handler.
    heads: Mutex<HeadQueue>,
    /// While false, checked heads are queued as empty placeholders (no
    /// copy, nothing attached to the request); `None`: always captured.
    capture: Option<Arc<AtomicBool>>,
}

impl ConnShared {
    /// State for a connection whose raw heads are captured only while
    /// `capture` is set (the gateway sets it while some route has the WAF
    /// on). The queue keeps one entry per head either way, so flipping it
    /// between requests never shifts heads onto the wrong request.
    pub fn capturing_when(capture: Arc<AtomicBool>) -> ConnShared {
        ConnShared {
            capture: Some(capture),
            ..ConnShared::default()
        }
    }

    fn capturing(&self) -> bool {
        self.capture
            .as_ref()
            .is_none_or(|c| c.load(Ordering::Acquire))
    }

    fn push_head(&self, head: RawHead) {
        // A poisoned lock only means another thread panicked mid-push; the
        // queue itself is still a valid VecDeque.
        let mut q = self.heads.lock().unwrap_or_else(|e| e.into_inner());
        if q.off {
            return;
        }
        if q.heads.len() >= MAX_QUEUED_HEADS {
            tracing::debug!("raw head queue overflow: raw heads off for this connection");
            q.heads.clear();
            q.off = true;
            return;
        }
        q.heads.push_back(head);
    }

    fn pop_head(&self) -> Option<RawHead> {
        let mut q = self.heads.lock().unwrap_or_else(|e| e.into_inner());
        q.heads.pop_front()
    }

    fn switch_off(&self) {
        let mut q = self.heads.lock().unwrap_or_else(|e| e.into_inner());
        q.heads.clear();
        q.off = true;
    }
}

/// Moves the raw head of an HTTP/1 request from the connection's queue into
/// `req`'s extensions (as [`RawHead`]), once it is proven to belong to this
/// request. Call it once per request, first thing in the handler; HTTP/2
/// requests are left alone.
pub fn take_raw_head<B>(req: &mut http::Request<B>, conn: &ConnShared) {
    if req.version() == http::Version::HTTP_2 {
        return;
    }
    let Some(head) = conn.pop_head() else {
        return;
    };
    if head.rejected.is_none() && head.request_line.is_empty() {
        // A placeholder: capture was off when the guard checked this head.
        return;
    }
    let marker = req.headers().contains_key(REJECT_HEADER);
    let aligned = if head.rejected.is_some() {
        marker
    } else {
        head.method() == req.method().as_str().as_bytes()
    };
    if aligned {
        req.extensions_mut().insert(head);
    } else {
        tracing::debug!("raw head does not match its request: raw heads off for this connection");
        conn.switch_off();
    }
}

/// Limits the guard enforces.
#[derive(Debug, Clone, Copy)]
pub struct GuardLimits {
    /// Max request target bytes.
    pub max_uri_bytes: u64,
    /// Max header block bytes.
    pub max_header_bytes: u64,
    /// Max header fields.
    pub max_headers: usize,
    /// Header-read timeout.
    pub header_timeout: Duration,
    /// Keep-alive idle timeout.
    pub idle_timeout: Duration,
    /// Longest time a write to the client may make no progress (slow-read).
    pub write_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    Size {
        digits: u8,
        ext: bool,
        line: usize,
        size: u64,
    },
    SizeLf {
        size: u64,
    },
    Data(u64),
    DataCr,
    DataLf,
    TrailerStart,
    TrailerName,
    TrailerValue,
    TrailerLf,
    FinalLf,
}

const CHUNK_START: Chunk = Chunk::Size {
    digits: 0,
    ext: false,
    line: 0,
    size: 0,
};

/// Runs the chunked-body state machine over `data`. Returns bytes consumed and
/// whether the body ended; trailer bytes are counted in `trailer`.
fn step_chunk(
    st: &mut Chunk,
    trailer: &mut u64,
    max_trailer: u64,
    data: &[u8],
) -> Result<(usize, bool), Reject> {
    let mut i = 0;
    while i < data.len() {
        if let Chunk::Data(n) = *st {
            let take = (data.len() - i).min(usize::try_from(n).unwrap_or(usize::MAX));
            i += take;
            let left = n - take as u64;
            *st = if left == 0 {
                Chunk::DataCr
            } else {
                Chunk::Data(left)
            };
            continue;
        }
        let b = data[i];
        i += 1;
        if matches!(
            st,
            Chunk::TrailerStart | Chunk::TrailerName | Chunk::TrailerValue | Chunk::TrailerLf
        ) {
            *trailer += 1;
            if *trailer > max_trailer {
                return Err(Reject::HeadersTooLarge);
            }
        }
        *st = match (*st, b) {
            (Chunk::Size { line, .. }, _) if line >= MAX_CHUNK_LINE_BYTES => {
                return Err(Reject::BadChunk)
            }
            (
                Chunk::Size {
                    digits,
                    ext: false,
                    line,
                    size,
                },
                _,
            ) if b.is_ascii_hexdigit() => {
                if digits >= 16 {
                    return Err(Reject::BadChunk);
                }
                let v = (b as char).to_digit(16).unwrap_or(0) as u64;
                Chunk::Size {
                    digits: digits + 1,
                    ext: false,
                    line: line + 1,
                    size: size * 16 + v,
                }
            }
            (Chunk::Size { digits: 0, .. }, _) => return Err(Reject::BadChunk),
            (Chunk::Size { size, .. }, b'\r') => Chunk::SizeLf { size },
            (
                Chunk::Size {
                    digits, line, size, ..
                },
                b';',
            ) => Chunk::Size {
                digits,
                ext: true,
                line: line + 1,
                size,
            },
            (
                Chunk::Size {
                    digits,
                    ext: true,
                    line,
                    size,
                },
                _,
            ) if b == b'\t' || (b' '..0x7f).contains(&b) || b >= 0x80 => Chunk::Size {
                digits,
                ext: true,
                line: line + 1,
                size,
            },
            (Chunk::Size { .. }, _) => return Err(Reject::BadChunk),
            (Chunk::SizeLf { size: 0 }, b'\n') => Chunk::TrailerStart,
            (Chunk::SizeLf { size }, b'\n') => Chunk::Data(size),
            (Chunk::DataCr, b'\r') => Chunk::DataLf,
            (Chunk::DataLf, b'\n') => CHUNK_START,
            (Chunk::TrailerStart, b'\r') => Chunk::FinalLf,
            (Chunk::TrailerStart, b' ' | b'\t') => return Err(Reject::ObsFold),
            (Chunk::TrailerName, b':') => Chunk::TrailerValue,
            (Chunk::TrailerStart | Chunk::TrailerName, b':' | b'\r' | b'\n' | 0) => {
                return Err(Reject::BadChunk)
            }
            (Chunk::TrailerName, b' ' | b'\t') => return Err(Reject::SpaceBeforeColon),
            (Chunk::TrailerStart | Chunk::TrailerName, _) => Chunk::TrailerName,
            (Chunk::TrailerValue, b'\r') => Chunk::TrailerLf,
            (Chunk::TrailerValue, b'\n' | 0) => return Err(Reject::BareLf),
            (Chunk::TrailerValue, _) => Chunk::TrailerValue,
            (Chunk::TrailerLf, b'\n') => Chunk::TrailerStart,
            (Chunk::FinalLf, b'\n') => return Ok((i, true)),
            _ => return Err(Reject::BadChunk),
        };
    }
    Ok((i, false))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Head,
    Body(u64),
    Chunked(Chunk),
    Passthrough,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    Off,
    Header,
    Idle,
}

/// Per-request facts collected while checking a head.
#[derive(Debug, Default, Clone, Copy)]
struct HeadInfo {
    /// Offsets in `head` of the request line (without CRLF) and its target.
    line_start: usize,
    line_end: usize,
    target_start: usize,
    target_end: usize,
    /// The target has bytes `http::Uri` refuses: hyper gets it percent-encoded.
    encode_target: bool,
    /// The h2 prior-knowledge preface (no request of its own).
    preface: bool,
    request_line_end: usize,
    headers: usize,
    content_length: Option<u64>,
    chunked: bool,
    upgrade: bool,
    passthrough: bool,
    http10: bool,
}

/// The guard I/O wrapper. See the module docs.
#[derive(Debug)]
pub struct Guarded<T> {
    inner: T,
    limits: GuardLimits,
    shared: Arc<ConnShared>,
    secret: Arc<str>,
    phase: Phase,
    /// Passthrough once the current body ends (upgrade requests).
    upgrade_after_body: bool,
    trailer_bytes: u64,
    /// Read buffer (zeroed once at first read); valid input is `rbuf[rpos..rlen]`.
    rbuf: Vec<u8>,
    rlen: usize,
    rpos: usize,
    head: Vec<u8>,
    info: HeadInfo,
    /// Offsets in `head` of each header's name and (trimmed) value.
    fields: Vec<[usize; 4]>,
    /// Bytes ready for hyper (a checked head, or the rejection marker).
    hold: Vec<u8>,
    hold_pos: usize,
    /// After the marker: hyper gets no more bytes.
    halted: bool,
    timer: Pin<Box<Sleep>>,
    /// Where `timer` must fire; applied lazily when a read waits.
    deadline: Instant,
    timer_dirty: bool,
    timer_kind: Timer,
    /// Whether the first request line has been seen (h2 preface detection).
    first: bool,
    /// Armed while a write to the client makes no progress (allocated on the
    /// first stalled write only).
    wtimer: Option<Pin<Box<Sleep>>>,
    write_stalled: bool,
}

impl<T> Guarded<T> {
    /// Wraps a fresh connection. `h2` = the connection speaks HTTP/2 (ALPN):
    /// frames are checked by h2, the guard stays out of the way.
    pub fn new(
        inner: T,
        limits: GuardLimits,
        shared: Arc<ConnShared>,
        secret: Arc<str>,
        h2: bool,
    ) -> Self {
        let (phase, timer_kind) = if h2 {
            (Phase::Passthrough, Timer::Off)
        } else {
            (Phase::Head, Timer::Header)
        };
        Guarded {
            inner,
            limits,
            shared,
            secret,
            phase,
            upgrade_after_body: false,
            trailer_bytes: 0,
            rbuf: Vec::new(),
            rlen: 0,
            rpos: 0,
            head: Vec::new(),
            info: HeadInfo::default(),
            fields: Vec::new(),
            hold: Vec::new(),
            hold_pos: 0,
            halted: false,
            timer: Box::pin(tokio::time::sleep(limits.header_timeout)),
            deadline: Instant::now() + limits.header_timeout,
            timer_dirty: false,
            timer_kind,
            first: true,
            wtimer: None,
            write_stalled: false,
        }
    }

    /// The wrapped I/O.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    fn arm(&mut self, kind: Timer) {
        self.timer_kind = kind;
        let d = match kind {
            Timer::Off => return,
            Timer::Header => self.limits.header_timeout,
            Timer::Idle => self.limits.idle_timeout,
        };
        // The timer itself is only moved when a read has to wait: under
        // load most requests arrive without waiting, and a timer-wheel
        // update per arm would be wasted work.
        self.deadline = Instant::now() + d;
        self.timer_dirty = true;
    }

    /// The raw head collected so far: the request line once it has been
    /// checked, and the header lines checked so far.
    fn raw_head(&self, rejected: Option<Reject>) -> RawHead {
        if self.info.request_line_end == 0 {
            return RawHead {
                request_line: Bytes::new(),
                headers: Vec::new(),
                rejected,
            };
        }
        let end = self
            .fields
            .last()
            .map_or(self.info.line_end, |f| f[3])
            .max(self.info.line_end);
        let buf = Bytes::copy_from_slice(&self.head[..end]);
        RawHead {
            request_line: buf.slice(self.info.line_start..self.info.line_end),
            headers: self
                .fields
                .iter()
                .map(|f| (buf.slice(f[0]..f[1]), buf.slice(f[2]..f[3])))
                .collect(),
            rejected,
        }
    }

    fn reject(&mut self, why: Reject) {
        tracing::debug!(reason = why.reason(), "request rejected by framing guard");
        self.shared.push_head(self.raw_head(Some(why)));
        self.head.clear();
        self.hold.clear();
        self.hold_pos = 0;
        self.hold.extend_from_slice(
            format!(
                "GET / HTTP/1.1\r\nhost: palisade.invalid\r\n{REJECT_HEADER}: {} {}\r\n\r\n",
                self.secret,
                why.index()
            )
            .as_bytes(),
        );
        self.halted = true;
        self.timer_kind = Timer::Off;
    }

    fn request_done(&mut self) {
        if self.upgrade_after_body {
            self.phase = Phase::Passthrough;
            self.timer_kind = Timer::Off;
        } else {
            self.phase = Phase::Head;
            self.arm(Timer::Idle);
        }
    }

    /// Checks one complete line of the head (ending at `self.head.len()`).
    fn head_line(&mut self, start: usize) -> Result<bool, Reject> {
        let line = &self.head[start..];
        let n = line.len();
        if n < 2 || line[n - 2] != b'\r' {
            return Err(Reject::BareLf);
        }
        let content = &line[..n - 2];
        if content.iter().any(|&b| b == b'\r' || b == 0) {
            return Err(Reject::BadByte);
        }
        if self.info.request_line_end == 0 {
            if content.is_empty() {
                // Leading empty lines before a request line are tolerated
                // (RFC 9112 2.2); they count towards the request-line bound.
                return Ok(false);
            }
            let mut parts = content.split(|&b| b == b' ');
            let (Some(method), Some(target), Some(version), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(Reject::RequestLine);
            };
            if method.is_empty() || target.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
                return Err(Reject::RequestLine);
            }
            if target.len() as u64 > self.limits.max_uri_bytes {
                return Err(Reject::UriTooLong);
            }
            if target.iter().any(|&b| b < 0x21 || b == 0x7f) {
                return Err(Reject::RequestLine);
            }
            self.info.line_start = start;
            self.info.line_end = start + content.len();
            self.info.target_start = start + method.len() + 1;
            self.info.target_end = self.info.target_start + target.len();
            self.info.encode_target = method != b"CONNECT" && encoded_target(target).is_some();
            if self.first && method == b"PRI" && version == b"HTTP/2.0" {
                self.info.passthrough = true;
                self.info.preface = true;
                self.info.request_line_end = self.head.len();
                return Ok(true);
            }
            match version {
                b"HTTP/1.1" => {}
                b"HTTP/1.0" => self.info.http10 = true,
                _ => return Err(Reject::RequestLine),
            }
            if method == b"CONNECT" {
                self.info.passthrough = true;
            }
            self.info.request_line_end = self.head.len();
            return Ok(false);
        }
        if content.is_empty() {
            return Ok(true);
        }
        if content[0] == b' ' || content[0] == b'\t' {
            return Err(Reject::ObsFold);
        }
        let Some(colon) = memchr::memchr(b':', content) else {
            return Err(Reject::NoColon);
        };
        let name = &content[..colon];
        if name.is_empty() {
            return Err(Reject::NoColon);
        }
        if name.iter().any(|&b| b == b' ' || b == b'\t') {
            return Err(Reject::SpaceBeforeColon);
        }
        if !name.iter().all(|&b| is_tchar(b)) {
            return Err(Reject::HeaderName);
        }
        self.info.headers += 1;
        if self.info.headers > self.limits.max_headers {
            return Err(Reject::HeadersTooLarge);
        }
        let raw_value = &content[colon + 1..];
        if raw_value
            .iter()
            .any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f)
        {
            return Err(Reject::HeaderValue);
        }
        let (vs, ve) = ows_range(raw_value);
        let value = &raw_value[vs..ve];
        let value_start = start + colon + 1;
        self.fields
            .push([start, start + colon, value_start + vs, value_start + ve]);
        if name.eq_ignore_ascii_case(b"content-length") {
            if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
                return Err(Reject::BadContentLength);
            }
            let v: u64 = std::str::from_utf8(value)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or(Reject::BadContentLength)?;
            match self.info.content_length {
                Some(prev) if prev != v => return Err(Reject::ConflictingContentLength),
                _ => self.info.content_length = Some(v),
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            if self.info.chunked || !value.eq_ignore_ascii_case(b"chunked") {
                return Err(Reject::BadTransferEncoding);
            }
            self.info.chunked = true;
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            self.info.upgrade = true;
        }
        Ok(false)
    }

    /// Consumes input from `rbuf[rpos..]` while in the head phase. Returns
    /// when the head is complete (delivered to `hold`), rejected, or input
    /// runs out.
    fn scan_head(&mut self) {
        while self.rpos < self.rlen {
            if self.head.is_empty() {
                self.info = HeadInfo::default();
                self.fields.clear();
                // The deadline runs from accept for the first request (a
                // late first byte earns no extra time), from the first byte
                // for later ones.
                if self.timer_kind != Timer::Header {
                    self.arm(Timer::Header);
                }
            }
            let avail = &self.rbuf[self.rpos..self.rlen];
            let (take, line_end) = match memchr::memchr(b'\n', avail) {
                Some(i) => (i + 1, true),
                None => (avail.len(), false),
            };
            let line_start = self.head.len();
            self.head.extend_from_slice(&avail[..take]);
            self.rpos += take;
            // Size bounds, checked before the line is complete so a client
            // cannot grow the buffer by never sending LF.
            if self.info.request_line_end == 0 {
                if self.head.len() as u64 > self.limits.max_uri_bytes + REQUEST_LINE_SLACK {
                    return self.reject(Reject::UriTooLong);
                }
            } else if (self.head.len() - self.info.request_line_end) as u64
                > self.limits.max_header_bytes
            {
                return self.reject(Reject::HeadersTooLarge);
            }
            if !line_end {
                return;
            }
            // A line may have started in an earlier read: find its start.
            let start = self.head[..line_start]
                .iter()
                .rposition(|&b| b == b'\n')
                .map(|i| i + 1)
                .unwrap_or(0);
            match self.head_line(start) {
                Err(r) => return self.reject(r),
                Ok(false) => continue,
                Ok(true) => return self.finish_head(),
            }
        }
    }

    fn finish_head(&mut self) {
        let info = self.info;
        self.first = false;
        if info.passthrough {
            self.phase = Phase::Passthrough;
            self.timer_kind = Timer::Off;
        } else if info.chunked && info.content_length.is_some() {
            return self.reject(Reject::ClAndTe);
        } else if info.chunked && info.http10 {
            return self.reject(Reject::BadTransferEncoding);
        } else if info.chunked {
            // Look ahead at the body bytes already received: a bad chunk
            // that came with its head rejects the request before any of it
            // is forwarded.
            let mut st = CHUNK_START;
            let mut tb = 0;
            if let Err(r) = step_chunk(
                &mut st,
                &mut tb,
                self.limits.max_header_bytes,
                &self.rbuf[self.rpos..self.rlen],
            ) {
                return self.reject(r);
            }
            self.phase = Phase::Chunked(CHUNK_START);
            self.trailer_bytes = 0;
            self.timer_kind = Timer::Off;
        } else {
            match info.content_length {
                Some(n) if n > 0 => {
                    self.phase = Phase::Body(n);
                    self.timer_kind = Timer::Off;
                }
                _ => self.phase = Phase::Head,
            }
        }
        self.upgrade_after_body = info.upgrade;
        // The h2 preface is no request of its own: hyper switches protocol.
        if !info.preface {
            let head = if self.shared.capturing() {
                self.raw_head(None)
            } else {
                RawHead {
                    request_line: Bytes::new(),
                    headers: Vec::new(),
                    rejected: None,
                }
            };
            self.shared.push_head(head);
        }
        let encoded = if info.encode_target {
            encoded_target(&self.head[info.target_start..info.target_end])
        } else {
            None
        };
        if let Some(target) = encoded {
            self.hold.clear();
            self.hold.extend_from_slice(&self.head[..info.target_start]);
            self.hold.extend_from_slice(&target);
            self.hold.extend_from_slice(&self.head[info.target_end..]);
        } else {
            std::mem::swap(&mut self.hold, &mut self.head);
        }
        self.head.clear();
        self.hold_pos = 0;
        if self.phase == Phase::Head {
            self.request_done();
        }
    }
}

/// The range of `v` without leading and trailing SP/HTAB.
fn ows_range(v: &[u8]) -> (usize, usize) {
    let start = v
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map(|i| i + 1)
        .unwrap_or(start);
    (start, end.max(start))
}

/// RFC 9110 token characters (method, header name), one entry per byte
/// value: a header name costs one load per byte, not a scan of the
/// punctuation list for every `-`.
const TCHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        b += 1;
    }
    t
};

/// RFC 9110 token character (method, header name).
fn is_tchar(b: u8) -> bool {
    TCHAR[usize::from(b)]
}

/// Where the path of a request target starts: 0 for origin form, after the
/// authority for absolute form; `None` for authority form, `*` and anything
/// else (left to hyper as sent).
fn path_start(target: &[u8]) -> Option<usize> {
    if target.first() == Some(&b'/') {
        return Some(0);
    }
    let sep = memchr::memmem::find(target, b"://")?;
    let scheme = &target[..sep];
    let valid_scheme = scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    if !valid_scheme {
        return None;
    }
    let rest = sep + 3;
    let end = target[rest..]
        .iter()
        .position(|&b| matches!(b, b'/' | b'?' | b'#'))
        .map_or(target.len(), |i| rest + i);
    Some(end)
}

/// The target with every byte `http::Uri` refuses percent-encoded, or `None`
/// when hyper takes it as sent. Refused there (and accepted by nginx and
/// Apache): `<`, `>` and `` ` `` in the path, `"`, `<` and `>` in the query,
/// and bytes >= 0x80 that are not UTF-8. The fragment is not looked at
/// (hyper drops it).
fn encoded_target(target: &[u8]) -> Option<Vec<u8>> {
    // Common case first: none of the bytes that may need encoding anywhere.
    if !target
        .iter()
        .any(|&b| b >= 0x80 || matches!(b, b'"' | b'<' | b'>' | b'`'))
    {
        return None;
    }
    let start = path_start(target)?;
    let pq_end = memchr::memchr(b'#', &target[start..]).map_or(target.len(), |i| start + i);
    let pq = &target[start..pq_end];
    let high = std::str::from_utf8(pq).is_err();
    let mut in_query = false;
    let needs = |b: u8, q: bool| {
        (high && b >= 0x80)
            || if q {
                matches!(b, b'"' | b'<' | b'>')
            } else {
                matches!(b, b'<' | b'>' | b'`')
            }
    };
    let mut out: Option<Vec<u8>> = None;
    for (i, &b) in pq.iter().enumerate() {
        if needs(b, in_query) {
            let o = out.get_or_insert_with(|| {
                let mut v = Vec::with_capacity(target.len() + 16);
                v.extend_from_slice(&target[..start + i]);
                v
            });
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            o.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        } else if let Some(o) = out.as_mut() {
            o.push(b);
        }
        if b == b'?' {
            in_query = true;
        }
    }
    let mut o = out?;
    o.extend_from_slice(&target[pq_end..]);
    Some(o)
}

impl<T: AsyncRead + Unpin> AsyncRead for Guarded<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            // 1. Deliver a checked head or the marker.
            if this.hold_pos < this.hold.len() {
                let n = (this.hold.len() - this.hold_pos).min(buf.remaining());
                buf.put_slice(&this.hold[this.hold_pos..this.hold_pos + n]);
                this.hold_pos += n;
                if this.hold_pos == this.hold.len() {
                    this.hold.clear();
                    this.hold_pos = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if this.halted {
                // The marker request is answered with `Connection: close`;
                // hyper closes after writing it and never needs more input.
                return Poll::Pending;
            }
            // 2. Process buffered input.
            if this.rpos < this.rlen {
                match this.phase {
                    Phase::Head => {
                        this.scan_head();
                        continue;
                    }
                    Phase::Passthrough => {
                        let n = (this.rlen - this.rpos).min(buf.remaining());
                        buf.put_slice(&this.rbuf[this.rpos..this.rpos + n]);
                        this.rpos += n;
                        return Poll::Ready(Ok(()));
                    }
                    Phase::Body(left) => {
                        let avail = this.rlen - this.rpos;
                        let n = avail
                            .min(buf.remaining())
                            .min(usize::try_from(left).unwrap_or(usize::MAX));
                        buf.put_slice(&this.rbuf[this.rpos..this.rpos + n]);
                        this.rpos += n;
                        let left = left - n as u64;
                        if left == 0 {
                            this.request_done();
                        } else {
                            this.phase = Phase::Body(left);
                        }
                        return Poll::Ready(Ok(()));
                    }
                    Phase::Chunked(mut st) => {
                        let end = this.rlen.min(this.rpos + buf.remaining());
                        let mut tb = this.trailer_bytes;
                        let res = step_chunk(
                            &mut st,
                            &mut tb,
                            this.limits.max_header_bytes,
                            &this.rbuf[this.rpos..end],
                        );
                        this.trailer_bytes = tb;
                        match res {
                            Ok((n, done)) => {
                                buf.put_slice(&this.rbuf[this.rpos..this.rpos + n]);
                                this.rpos += n;
                                if done {
                                    this.request_done();
                                } else {
                                    this.phase = Phase::Chunked(st);
                                }
                            }
                            Err(r) => {
                                // Hyper gets nothing past the bad chunk: the
                                // body stream fails, the upstream request is
                                // aborted, and the connection ends.
                                this.halted = true;
                                this.rlen = 0;
                                this.rpos = 0;
                                return Poll::Ready(Err(io::Error::new(
                                    io::ErrorKind::InvalidData,
                                    r.to_error(),
                                )));
                            }
                        }
                        return Poll::Ready(Ok(()));
                    }
                }
            }
            // 3. Read more.
            if this.phase == Phase::Passthrough {
                // Fast path: no checking needed, read straight into hyper's buffer.
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            if this.rbuf.is_empty() {
                this.rbuf = vec![0; READ_BUF];
            }
            this.rlen = 0;
            this.rpos = 0;
            let mut rb = ReadBuf::new(&mut this.rbuf);
            match Pin::new(&mut this.inner).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) => {
                    let n = rb.filled().len();
                    this.rlen = n;
                    if n == 0 {
                        return Poll::Ready(Ok(()));
                    }
                }
                Poll::Ready(Err(e)) => {
                    return Poll::Ready(Err(e));
                }
                Poll::Pending => {
                    if this.timer_kind == Timer::Off {
                        return Poll::Pending;
                    }
                    if this.timer_dirty {
                        this.timer_dirty = false;
                        // Only an earlier deadline moves the registered
                        // timer. A later one (the idle deadline, pushed back
                        // after every request) waits for the timer to fire
                        // and is applied then: one timer-wheel update per
                        // timeout period instead of one per request.
                        if this.deadline < this.timer.deadline() {
                            this.timer.as_mut().reset(this.deadline);
                        }
                    }
                    ready!(this.timer.as_mut().poll(cx));
                    if Instant::now() < this.deadline {
                        // Fired at an older, earlier deadline.
                        this.timer.as_mut().reset(this.deadline);
                        ready!(this.timer.as_mut().poll(cx));
                    }
                    match this.timer_kind {
                        Timer::Header => {
                            this.timer_kind = Timer::Off;
                            return Poll::Ready(Err(io::Error::new(
                                io::ErrorKind::TimedOut,
                                "request header read timeout",
                            )));
                        }
                        Timer::Idle
                            if this.shared.inflight.load(Ordering::Acquire) == 0
                                && this.head.is_empty() =>
                        {
                            this.timer_kind = Timer::Off;
                            // EOF: hyper closes an idle connection cleanly.
                            return Poll::Ready(Ok(()));
                        }
                        _ => {
                            // A response is still in flight: look again later.
                            this.arm(Timer::Idle);
                            this.timer_dirty = false;
                            this.timer.as_mut().reset(this.deadline);
                            let _ = this.timer.as_mut().poll(cx);
                            return Poll::Pending;
                        }
                    }
                }
            }
        }
    }
}

impl<T> Guarded<T> {
    /// Bounds writes that make no progress: a client that stops reading
    /// (slow-read attack) is cut after `write_timeout`.
    fn write_progress<R>(
        &mut self,
        cx: &mut Context<'_>,
        res: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        match res {
            Poll::Ready(r) => {
                self.write_stalled = false;
                Poll::Ready(r)
            }
            Poll::Pending => {
                if !self.write_stalled {
                    self.write_stalled = true;
                    let deadline = Instant::now() + self.limits.write_timeout;
                    match self.wtimer.as_mut() {
                        Some(t) => t.as_mut().reset(deadline),
                        None => self.wtimer = Some(Box::pin(tokio::time::sleep_until(deadline))),
                    }
                }
                let fired = self
                    .wtimer
                    .as_mut()
                    .is_some_and(|t| t.as_mut().poll(cx).is_ready());
                if fired {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "client stopped reading (write timeout)",
                    )));
                }
                Poll::Pending
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Guarded<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.write_progress(cx, res)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let res = Pin::new(&mut self.inner).poll_flush(cx);
        self.write_progress(cx, res)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.write_progress(cx, res)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn limits() -> GuardLimits {
        GuardLimits {
            max_uri_bytes: 64,
            max_header_bytes: 256,
            max_headers: 5,
            header_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(5),
        }
    }

    /// Feeds `input` (in pieces of `step` bytes) and returns what hyper would see.
    async fn run(input: &[u8], step: usize) -> (Vec<u8>, Option<io::ErrorKind>) {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let data = input.to_vec();
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for piece in data.chunks(step.max(1)) {
                if client.write_all(piece).await.is_err() {
                    break;
                }
                tokio::task::yield_now().await;
            }
            // Keep the pipe open briefly so a halted guard shows as "no more bytes".
            tokio::time::sleep(Duration::from_millis(50)).await;
            drop(client);
        });
        let mut g = Guarded::new(server, limits(), Arc::default(), Arc::from("s3cr3t"), false);
        let mut out = Vec::new();
        let mut buf = [0u8; 7];
        let mut err = None;
        loop {
            match tokio::time::timeout(Duration::from_millis(200), g.read(&mut buf)).await {
                Ok(Ok(0)) | Err(_) => break,
                Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
                Ok(Err(e)) => {
                    err = Some(e.kind());
                    break;
                }
            }
        }
        let _ = writer.await;
        (out, err)
    }

    fn marker(r: Reject) -> Vec<u8> {
        format!(
            "GET / HTTP/1.1\r\nhost: palisade.invalid\r\n{REJECT_HEADER}: s3cr3t {}\r\n\r\n",
            r.index()
        )
        .into_bytes()
    }

    async fn check_all_steps(input: &[u8], expect: &[u8]) {
        for step in [1, 3, input.len()] {
            let (out, _) = run(input, step).await;
            assert_eq!(
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(expect),
                "step {step}"
            );
        }
    }

    const OK1: &[u8] = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
    const OK2: &[u8] = b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
    const OK3: &[u8] = b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nT: v\r\n\r\n";

    #[test]
    fn token_characters_are_exactly_rfc9110s() {
        for b in 0..=255u8 {
            let want = b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            assert_eq!(is_tchar(b), want, "byte {b:#04x}");
        }
    }

    #[tokio::test]
    async fn valid_pipelined_requests_pass_unchanged() {
        let input = [OK1, OK2, OK3, OK1].concat();
        check_all_steps(&input, &input).await;
    }

    #[tokio::test]
    async fn smuggling_attempts_are_replaced_by_the_marker() {
        let cases: &[(&[u8], Reject)] = &[
            (b"GET / HTTP/1.1\nHost: x\r\n\r\n", Reject::BareLf),
            (b"GET / HTTP/1.1\r\nHost: x\n\r\n", Reject::BareLf),
            (b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", Reject::ObsFold),
            (b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", Reject::SpaceBeforeColon),
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", Reject::ClAndTe),
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", Reject::ConflictingContentLength),
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc", Reject::BadContentLength),
            (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", Reject::BadTransferEncoding),
            (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", Reject::BadChunk),
            (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n", Reject::BadChunk),
            (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", Reject::BadChunk),
            (b"POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", Reject::BadTransferEncoding),
            (b"GET / HTTP/1.1\r\nHost: x\rY: z\r\n\r\n", Reject::BadByte),
            (b"GET /x HTTP/1.1 extra\r\n\r\n", Reject::RequestLine),
        ];
        for (input, why) in cases {
            if *why == Reject::BadChunk {
                // Arriving with its head: rejected before anything is delivered.
                let (out, _) = run(input, input.len()).await;
                assert_eq!(out, marker(*why));
                // Arriving later: the head went through, the stream fails.
                let (out, err) = run(input, 1).await;
                let head_end = input.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                assert!(out.len() < input.len() && out.starts_with(&input[..head_end]));
                assert_eq!(err, Some(io::ErrorKind::InvalidData));
            } else {
                check_all_steps(input, &marker(*why)).await;
            }
        }
    }

    #[tokio::test]
    async fn valid_requests_before_a_bad_one_are_delivered() {
        let bad = b"GET / HTTP/1.1\r\nHost: x\nX: y\r\n\r\n";
        let input = [OK1, OK2, bad.as_slice()].concat();
        let expect = [OK1, OK2, &marker(Reject::BareLf)].concat();
        check_all_steps(&input, &expect).await;
    }

    #[tokio::test]
    async fn limits_give_414_and_431() {
        let long_uri = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(100));
        check_all_steps(long_uri.as_bytes(), &marker(Reject::UriTooLong)).await;
        let big = format!(
            "GET / HTTP/1.1\r\nHost: x\r\nX: {}\r\n\r\n",
            "b".repeat(300)
        );
        check_all_steps(big.as_bytes(), &marker(Reject::HeadersTooLarge)).await;
        let many = "GET / HTTP/1.1\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\nF: 1\r\n\r\n";
        check_all_steps(many.as_bytes(), &marker(Reject::HeadersTooLarge)).await;
        // A head that never ends is cut at the bound, not buffered forever.
        let endless = vec![b'a'; 10_000];
        let (out, _) = run(&endless, 4096).await;
        assert_eq!(out, marker(Reject::UriTooLong));
    }

    #[tokio::test]
    async fn late_chunk_error_fails_the_stream() {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let mut g = Guarded::new(server, limits(), Arc::default(), Arc::from("s"), false);
        use tokio::io::AsyncWriteExt;
        let head = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
        client.write_all(head).await.unwrap();
        let mut buf = vec![0u8; 1024];
        let n = g.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], head);
        client.write_all(b"3\r\nabc\r\n").await.unwrap();
        let n = g.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"3\r\nabc\r\n");
        client.write_all(b"xyz\r\n").await.unwrap();
        let e = g.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }

    #[tokio::test(start_paused = true)]
    async fn header_timeout_cuts_slow_heads() {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut g = Guarded::new(server, limits(), Arc::default(), Arc::from("s"), false);
        use tokio::io::AsyncWriteExt;
        client.write_all(b"GET / HT").await.unwrap();
        let mut buf = vec![0u8; 64];
        let e = g.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test(start_paused = true)]
    async fn header_timeout_runs_from_accept() {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut g = Guarded::new(server, limits(), Arc::default(), Arc::from("s"), false);
        use tokio::io::AsyncWriteExt;
        let start = Instant::now();
        let writer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(4)).await;
            client.write_all(b"GET / HT").await.unwrap();
            client
        });
        let mut buf = vec![0u8; 64];
        let e = g.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(start.elapsed() < Duration::from_secs(6));
        drop(writer.await);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_timeout_closes_only_without_requests_in_flight() {
        let (mut client, server) = tokio::io::duplex(1024);
        let shared = Arc::new(ConnShared::default());
        let mut g = Guarded::new(server, limits(), shared.clone(), Arc::from("s"), false);
        use tokio::io::AsyncWriteExt;
        client.write_all(OK1).await.unwrap();
        let mut buf = vec![0u8; 64];
        assert_eq!(g.read(&mut buf).await.unwrap(), OK1.len());
        shared.inflight.store(1, Ordering::Release);
        let start = Instant::now();
        let r = tokio::time::timeout(Duration::from_secs(12), g.read(&mut buf)).await;
        assert!(r.is_err(), "must not close while a request is in flight");
        shared.inflight.store(0, Ordering::Release);
        assert_eq!(g.read(&mut buf).await.unwrap(), 0);
        assert!(start.elapsed() >= Duration::from_secs(12));
    }

    #[tokio::test(start_paused = true)]
    async fn idle_deadline_moves_with_each_request_and_header_deadline_cuts_it_short() {
        // limits(): idle 5 s, header 5 s.
        let (mut client, server) = tokio::io::duplex(1024);
        let mut g = Guarded::new(server, limits(), Arc::default(), Arc::from("s"), false);
        use tokio::io::AsyncWriteExt;
        let mut buf = vec![0u8; 64];
        client.write_all(OK1).await.unwrap();
        assert_eq!(g.read(&mut buf).await.unwrap(), OK1.len());
        // Idle 3 s (the timer is registered for t+5), then a second request:
        // the idle deadline is now t+8, not t+5.
        let r = tokio::time::timeout(Duration::from_secs(3), g.read(&mut buf)).await;
        assert!(r.is_err(), "closed before the idle timeout");
        client.write_all(OK1).await.unwrap();
        assert_eq!(g.read(&mut buf).await.unwrap(), OK1.len());
        let second = Instant::now();
        assert_eq!(g.read(&mut buf).await.unwrap(), 0, "idle close is EOF");
        let idle = second.elapsed();
        assert!(
            idle >= Duration::from_secs(5) && idle < Duration::from_secs(6),
            "closed {idle:?} after the last request"
        );
        // A partial head 1 s into an idle period: the header deadline (5 s
        // from its first byte) applies, not the idle one from before.
        let (mut client, server) = tokio::io::duplex(1024);
        let mut g = Guarded::new(server, limits(), Arc::default(), Arc::from("s"), false);
        client.write_all(OK1).await.unwrap();
        assert_eq!(g.read(&mut buf).await.unwrap(), OK1.len());
        tokio::time::sleep(Duration::from_secs(4)).await;
        client.write_all(b"GET / HT").await.unwrap();
        let part = Instant::now();
        let e = g.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        let waited = part.elapsed();
        assert!(
            waited >= Duration::from_secs(5) && waited < Duration::from_secs(6),
            "header timeout after {waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn write_timeout_cuts_clients_that_stop_reading() {
        use tokio::io::AsyncWriteExt;
        let (_client, server) = tokio::io::duplex(1024);
        let mut g = Guarded::new(server, limits(), Arc::default(), Arc::from("s"), false);
        let start = Instant::now();
        let e = g.write_all(&[0u8; 4096]).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(start.elapsed() >= Duration::from_secs(5));
    }

    /// Runs `input` through a guard in front of a real hyper HTTP/1 server
    /// whose handler answers the request's [`RawHead`] (or `none`) and the
    /// URI hyper parsed; returns everything the client read.
    async fn serve_raw_heads(input: &[u8]) -> String {
        serve_raw_heads_with(input, ConnShared::default()).await
    }

    async fn serve_raw_heads_with(input: &[u8], shared: ConnShared) -> String {
        use hyper::service::service_fn;
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let shared = Arc::new(shared);
        let io = Guarded::new(server, limits(), shared.clone(), Arc::from("s3"), false);
        let svc = service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
            let shared = shared.clone();
            async move {
                take_raw_head(&mut req, &shared);
                let text = match req.extensions().get::<RawHead>() {
                    Some(h) => {
                        let mut t = String::from_utf8_lossy(&h.request_line).into_owned();
                        for (n, v) in &h.headers {
                            t.push_str(&format!(
                                "|{}={}",
                                String::from_utf8_lossy(n),
                                String::from_utf8_lossy(v)
                            ));
                        }
                        if let Some(r) = h.rejected {
                            t.push_str(&format!("|rejected={}", r.reason()));
                        }
                        t
                    }
                    None => "none".to_owned(),
                };
                let body = format!("[{text}] uri={}", req.uri());
                let mut resp = http::Response::new(http_body_util::Full::new(Bytes::from(body)));
                // As the gateway does after a rejection: the connection ends.
                if req.headers().contains_key(REJECT_HEADER) {
                    resp.headers_mut().insert(
                        http::header::CONNECTION,
                        http::HeaderValue::from_static("close"),
                    );
                }
                Ok::<_, std::convert::Infallible>(resp)
            }
        });
        let conn = tokio::spawn(
            hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(io), svc),
        );
        client.write_all(input).await.unwrap();
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        // Read until the server closes (each input ends with a request it
        // closes after); the timeout only bounds a failing test.
        while let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_secs(10), client.read(&mut buf)).await
        {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        drop(client);
        conn.abort();
        String::from_utf8_lossy(&out).into_owned()
    }

    /// The handler answers of a response stream, in order.
    fn answers(out: &str) -> Vec<&str> {
        out.split("HTTP/1.1 ")
            .skip(1)
            .map(|r| r.split("\r\n\r\n").nth(1).unwrap_or(""))
            .collect()
    }

    #[tokio::test]
    async fn pipelined_requests_each_get_their_own_raw_head() {
        let input = b"GET /a?x=<b> HTTP/1.1\r\nHost: x\r\nX-Dup: 1\r\nx-dup:  2 \r\n\r\n\
POST /p HTTP/1.1\r\nHOST: y\r\nContent-Length: 3\r\n\r\nabc\
GET /c`d HTTP/1.1\r\nHost: z\r\nConnection: close\r\n\r\n";
        let out = serve_raw_heads(input).await;
        assert_eq!(
            answers(&out),
            vec![
                "[GET /a?x=<b> HTTP/1.1|Host=x|X-Dup=1|x-dup=2] uri=/a?x=%3Cb%3E",
                "[POST /p HTTP/1.1|HOST=y|Content-Length=3] uri=/p",
                "[GET /c`d HTTP/1.1|Host=z|Connection=close] uri=/c%60d",
            ],
            "{out}"
        );
    }

    #[tokio::test]
    async fn raw_heads_follow_the_capture_switch_and_rejections_are_always_kept() {
        let input = [
            OK1,
            OK2,
            b"DELETE /z HTTP/1.1\r\nHost: q\r\nBad Name: v\r\n\r\n".as_slice(),
        ]
        .concat();
        // Off (no route with the WAF): nothing attached, the queue stays
        // aligned, a rejection still carries its head.
        let off = Arc::new(AtomicBool::new(false));
        let out = serve_raw_heads_with(&input, ConnShared::capturing_when(off.clone())).await;
        assert_eq!(
            answers(&out),
            vec![
                "[none] uri=/a",
                "[none] uri=/b",
                "[DELETE /z HTTP/1.1|Host=q|rejected=whitespace in header name] uri=/",
            ],
            "{out}"
        );
        // Switched on (a reload turned the WAF on): heads are captured again.
        off.store(true, Ordering::Release);
        let out = serve_raw_heads_with(&input, ConnShared::capturing_when(off)).await;
        assert_eq!(
            answers(&out),
            vec![
                "[GET /a HTTP/1.1|Host=x] uri=/a",
                "[POST /b HTTP/1.1|Host=x|Content-Length=5] uri=/b",
                "[DELETE /z HTTP/1.1|Host=q|rejected=whitespace in header name] uri=/",
            ],
            "{out}"
        );
    }

    #[tokio::test]
    async fn rejected_request_keeps_the_queue_aligned() {
        // Two good requests, then one the guard refuses: the synthetic
        // request gets the refused head (flagged), never a neighbour's.
        let input = [
            OK1,
            OK2,
            b"DELETE /z HTTP/1.1\r\nHost: q\r\nBad Name: v\r\n\r\n".as_slice(),
        ]
        .concat();
        let out = serve_raw_heads(&input).await;
        assert_eq!(
            answers(&out),
            vec![
                "[GET /a HTTP/1.1|Host=x] uri=/a",
                "[POST /b HTTP/1.1|Host=x|Content-Length=5] uri=/b",
                "[DELETE /z HTTP/1.1|Host=q|rejected=whitespace in header name] uri=/",
            ],
            "{out}"
        );
    }

    #[test]
    fn a_head_for_another_request_is_never_attached() {
        let shared = ConnShared::default();
        let head = |line: &'static [u8]| RawHead {
            request_line: Bytes::from_static(line),
            headers: Vec::new(),
            rejected: None,
        };
        shared.push_head(head(b"POST / HTTP/1.1"));
        shared.push_head(head(b"GET /next HTTP/1.1"));
        let mut req = http::Request::get("/").body(()).unwrap();
        take_raw_head(&mut req, &shared);
        assert!(req.extensions().get::<RawHead>().is_none());
        // Alignment lost: later requests get none, even matching ones.
        let mut req = http::Request::get("/next").body(()).unwrap();
        take_raw_head(&mut req, &shared);
        assert!(req.extensions().get::<RawHead>().is_none());
        shared.push_head(head(b"GET /later HTTP/1.1"));
        assert_eq!(shared.pop_head(), None);
    }

    #[test]
    fn queue_overflow_switches_raw_heads_off() {
        let shared = ConnShared::default();
        for _ in 0..=MAX_QUEUED_HEADS {
            shared.push_head(RawHead {
                request_line: Bytes::from_static(b"GET / HTTP/1.1"),
                headers: Vec::new(),
                rejected: None,
            });
        }
        assert_eq!(shared.pop_head(), None);
    }

    #[test]
    fn raw_head_accessors() {
        let h = RawHead {
            request_line: Bytes::from_static(b"GET /a<b HTTP/1.0"),
            headers: vec![(Bytes::from_static(b"HoSt"), Bytes::from_static(b"x"))],
            rejected: None,
        };
        assert_eq!(h.method(), b"GET");
        assert_eq!(h.target(), b"/a<b");
        assert_eq!(h.version(), b"HTTP/1.0");
        assert_eq!(h.header(b"host"), Some(&b"x"[..]));
        assert_eq!(h.header(b"cookie"), None);
    }

    #[test]
    fn targets_are_encoded_only_where_http_uri_refuses_them() {
        let enc = |t: &[u8]| encoded_target(t).map(|v| String::from_utf8(v).unwrap());
        // Accepted by http::Uri as sent: untouched.
        for ok in [
            &b"/a/{b}|c^d\\e?x=`{|}^\\&y=%3C"[..],
            b"/caf\xc3\xa9?q=\xc3\xa9",
            b"/a\"b",
            b"/#<frag>",
            b"*",
            b"example.com:443",
            b"\\",
        ] {
            assert_eq!(enc(ok), None, "{}", String::from_utf8_lossy(ok));
        }
        assert_eq!(enc(b"/a<b>`c").as_deref(), Some("/a%3Cb%3E%60c"));
        assert_eq!(
            enc(b"/p?q=\"<x>\"&r=`").as_deref(),
            Some("/p?q=%22%3Cx%3E%22&r=`")
        );
        assert_eq!(enc(b"/\xff?\xe9#f").as_deref(), Some("/%FF?%E9#f"));
        assert_eq!(
            enc(b"http://h:1/a<b?c=>").as_deref(),
            Some("http://h:1/a%3Cb?c=%3E")
        );
        assert_eq!(enc(b"/x#frag<").as_deref(), None);
    }

    #[tokio::test]
    async fn control_bytes_and_non_tokens_are_still_refused() {
        let cases: &[(&[u8], Reject)] = &[
            (
                b"GET /a\x01b HTTP/1.1\r\nHost: x\r\n\r\n",
                Reject::RequestLine,
            ),
            (
                b"GET /a\x7fb HTTP/1.1\r\nHost: x\r\n\r\n",
                Reject::RequestLine,
            ),
            (
                b"GET /a\tb HTTP/1.1\r\nHost: x\r\n\r\n",
                Reject::RequestLine,
            ),
            (b"GET /a  HTTP/1.1\r\nHost: x\r\n\r\n", Reject::RequestLine),
            (b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n", Reject::RequestLine),
            (b"GET / HTTP/1.1\r\nHo(st: x\r\n\r\n", Reject::HeaderName),
            (
                b"GET / HTTP/1.1\r\nHost: x\x01y\r\n\r\n",
                Reject::HeaderValue,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: x\x7f\r\n\r\n",
                Reject::HeaderValue,
            ),
        ];
        for (input, why) in cases {
            check_all_steps(input, &marker(*why)).await;
        }
    }

    #[test]
    fn marker_decoding_requires_the_secret() {
        assert_eq!(Reject::from_marker(b"abc 2", "abc"), Some(Reject::ObsFold));
        assert_eq!(Reject::from_marker(b"abd 2", "abc"), None);
        assert_eq!(Reject::from_marker(b"abc 99", "abc"), None);
    }
}
