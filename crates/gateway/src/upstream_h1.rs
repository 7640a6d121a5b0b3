//! The gateway's own HTTP/1.1 upstream client, for the common case: a
//! request whose body is empty or already in memory, to a plain-TCP
//! HTTP/1.1 server, without an upgrade.
//!
//! Why not hyper's client here: hyper drives every upstream connection from
//! its own task and hands requests and responses over a channel; on the
//! proxy benchmark that task, the channel and its wake-ups cost more than a
//! third of the gateway's user-space instructions. This client is owned by
//! the request: the request task writes the request head (and a small body)
//! with one write, parses the response head straight out of the read buffer
//! with `httparse` (header values are slices of that buffer, not copies), and
//! the response body streams from the same buffer. The connection goes back
//! to its pool only once the body was read completely and correctly.
//!
//! Which path a request takes ([`Via::choose`]):
//! - no `Upgrade`, body empty or fully read by the WAF: this client;
//! - a body still streaming from the client: hyper's client (it writes the
//!   body while watching for an early response);
//! - an upgrade (WebSocket): hyper's client on a fresh connection, which
//!   hands over the upgraded stream.
//!
//! Upstreams are plain-TCP HTTP/1.1 servers (there are no TLS or h2
//! upstreams in the config), so every other request takes this client.
//!
//! Response framing follows RFC 9112 6.3, strictly: a response with both
//! `Content-Length` and `Transfer-Encoding`, several `Content-Length`
//! fields, a transfer coding other than a single `chunked`, bare CR or LF
//! in the head, obs-fold or whitespace before a colon is refused (the client
//! gets a 502), so a response cannot be split or smuggled through the pool.
//! A pooled connection the upstream closed meanwhile (no byte of a response
//! received) is retried once on a fresh connection when the request is safe
//! to replay: an idempotent method and no body.

use std::future::Future;
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::body::UpBody;
use crate::error::Error;
use crate::limits::{MAX_CHUNK_LINE_BYTES, MAX_HEADERS, MAX_HEADER_BYTES};
use crate::upstream::{connect_tcp, Checkout, Pool, Server};

/// Fixed 16: interim (1xx) responses skipped before the final response.
/// Bounds the work an upstream can cause by streaming `100`/`103` heads
/// (the response timeout bounds the time).
pub const MAX_INTERIM_RESPONSES: usize = 16;

/// Bytes reserved in a connection's read buffer when less than
/// [`MIN_READ_SPACE`] is free: one allocation serves several small responses.
const READ_BUF: usize = 16 * 1024;
/// Free space below which the read buffer is grown before a read.
const MIN_READ_SPACE: usize = 4 * 1024;

/// Which client sends a request upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// This module's client (pooled connections owned by the request).
    H1,
    /// hyper's client on a pooled connection (streamed request bodies).
    Hyper,
    /// hyper's client on a new connection (upgrades).
    HyperFresh,
}

impl Via {
    /// The path for a request: upgrades need hyper's upgrade hand-over,
    /// streamed bodies hyper's concurrent body writing; everything else
    /// takes [`Via::H1`].
    pub fn choose(upgrade: bool, req: &Option<Request<UpBody>>) -> Via {
        if upgrade {
            return Via::HyperFresh;
        }
        match req {
            Some(r) if r.body().in_memory().is_some() => Via::H1,
            _ => Via::Hyper,
        }
    }
}

/// One keep-alive connection to an upstream server.
#[derive(Debug)]
pub struct H1Conn {
    io: TcpStream,
    /// Bytes read and not consumed yet.
    buf: BytesMut,
    /// The request head being written (kept to reuse its allocation).
    out: Vec<u8>,
    /// Header offsets of the response head being parsed (reused).
    fields: Vec<Field>,
}

#[derive(Debug, Clone)]
struct Field {
    /// The name when it is one of [`known_name`]'s (no parsing needed later).
    known: Option<HeaderName>,
    name: (usize, usize),
    value: (usize, usize),
}

impl H1Conn {
    fn new(io: TcpStream) -> H1Conn {
        H1Conn {
            io,
            buf: BytesMut::new(),
            out: Vec::new(),
            fields: Vec::new(),
        }
    }

    /// Whether an idle connection still looks usable: no end of stream, no
    /// stray bytes. Costs no system call unless the reactor saw the socket
    /// become readable (a FIN or data from the upstream).
    fn idle_ok(&self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        match self.io.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            Poll::Ready(Ok(())) => {
                let mut probe = [0u8; 1];
                matches!(self.io.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
        }
    }

    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < MIN_READ_SPACE {
            self.buf.reserve(READ_BUF);
        }
        let fut = self.io.read_buf(&mut self.buf);
        std::pin::pin!(fut).poll(cx)
    }

    async fn fill(&mut self) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_fill(cx)).await
    }
}

/// An idle connection in a server's pool.
#[derive(Debug)]
pub(crate) struct H1Idle {
    conn: Box<H1Conn>,
    since: Instant,
}

/// An idle connection of server `s` younger than `idle_timeout` that still
/// looks open, if any; stale ones are closed on the way.
pub(crate) fn take_idle(s: &Server, idle_timeout: Duration) -> Option<Box<H1Conn>> {
    while let Some(idle) = s.h1_idle.pop() {
        if idle.since.elapsed() < idle_timeout && idle.conn.idle_ok() {
            return Some(idle.conn);
        }
    }
    None
}

fn checkin(pool: &Pool, i: usize, conn: Box<H1Conn>) {
    if let Some(s) = pool.servers.get(i) {
        // Full queue: the connection is dropped (closed), bounding idle sockets.
        let _ = s.h1_idle.push(H1Idle {
            conn,
            since: Instant::now(),
        });
    }
}

/// A connection of this client checked out for one request.
#[derive(Debug)]
pub struct H1Lease {
    conn: Option<Box<H1Conn>>,
    pool: Arc<Pool>,
    server: usize,
    connect_timeout: Duration,
    reused: bool,
}

impl H1Lease {
    pub(crate) fn new(
        io: Option<Box<H1Conn>>,
        stream: Option<TcpStream>,
        pool: Arc<Pool>,
        server: usize,
        connect_timeout: Duration,
    ) -> H1Lease {
        let reused = io.is_some();
        H1Lease {
            conn: io.or_else(|| stream.map(|s| Box::new(H1Conn::new(s)))),
            pool,
            server,
            connect_timeout,
            reused,
        }
    }
}

/// The connection behind a [`Checkout`].
#[derive(Debug)]
pub enum Conn {
    /// hyper's client (streamed bodies, upgrades).
    Hyper(SendRequest<UpBody>),
    /// This module's client.
    H1(H1Lease),
}

/// A request that could not be forwarded.
#[derive(Debug)]
pub struct SendError {
    msg: Option<Request<UpBody>>,
    err: SendErr,
}

impl SendError {
    /// The request, when it was not sent at all (it may go elsewhere).
    pub fn take_message(&mut self) -> Option<Request<UpBody>> {
        self.msg.take()
    }

    /// Why it failed.
    pub fn into_error(self) -> SendErr {
        self.err
    }
}

/// Why a request could not be forwarded; its `source` chain leads to the
/// gateway [`Error`] when there is one ([`Error::find_in`]).
#[derive(Debug)]
pub enum SendErr {
    /// hyper's client failed.
    Hyper(hyper::Error),
    /// This module's client failed.
    Gateway(Error),
}

impl std::fmt::Display for SendErr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendErr::Hyper(e) => e.fmt(f),
            SendErr::Gateway(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SendErr {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SendErr::Hyper(e) => Some(e),
            SendErr::Gateway(e) => Some(e),
        }
    }
}

impl Checkout {
    /// Sends `req` and returns the response head with its streaming body.
    pub async fn send(
        &mut self,
        req: Request<UpBody>,
    ) -> Result<Response<UpstreamBody>, SendError> {
        match &mut self.conn {
            Conn::Hyper(tx) => match tx.try_send_request(req).await {
                Ok(resp) => Ok(resp.map(UpstreamBody::Hyper)),
                Err(mut e) => Err(SendError {
                    msg: e.take_message(),
                    err: SendErr::Hyper(e.into_error()),
                }),
            },
            Conn::H1(lease) => send_h1(lease, req).await.map_err(|e| SendError {
                msg: None,
                err: SendErr::Gateway(e),
            }),
        }
    }

    /// hyper's sender, to pool once the response completed (hyper path only;
    /// this client's connections are pooled by their response body).
    pub fn into_hyper(self) -> Option<SendRequest<UpBody>> {
        match self.conn {
            Conn::Hyper(tx) => Some(tx),
            Conn::H1(_) => None,
        }
    }
}

/// RFC 9110 9.2.2 idempotent methods: safe to send again when the first
/// attempt may have reached a closing connection.
fn idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

fn upstream_err(pool: &Pool, i: usize, message: impl Into<String>) -> Error {
    Error::Upstream {
        server: pool
            .servers
            .get(i)
            .map(|s| s.label.to_string())
            .unwrap_or_default(),
        message: message.into(),
    }
}

/// How an attempt failed: `fresh_ok` when nothing of a response arrived
/// and the failure is one a closed keep-alive connection produces.
struct Failed {
    err: Error,
    fresh_ok: bool,
}

async fn send_h1(
    lease: &mut H1Lease,
    req: Request<UpBody>,
) -> Result<Response<UpstreamBody>, Error> {
    let pool = lease.pool.clone();
    let i = lease.server;
    let Some(body) = req.body().in_memory() else {
        return Err(upstream_err(
            &pool,
            i,
            "streamed body on the in-memory path",
        ));
    };
    let Some(mut conn) = lease.conn.take() else {
        return Err(upstream_err(&pool, i, "connection already used"));
    };
    let replay = body.is_empty() && idempotent(req.method());
    let head_only = req.method() == Method::HEAD;
    encode_head(&req, body.len(), &mut conn.out);
    let mut reused = lease.reused;
    loop {
        match exchange(&mut conn, &body, head_only, &pool, i).await {
            Ok(head) => return Ok(head.into_response(conn, pool, i)),
            Err(f) if f.fresh_ok && reused && replay => {
                // The upstream closed the pooled connection between requests:
                // the request never reached it, send it on a new connection.
                tracing::debug!(upstream = %pool.name(), error = %f.err, "pooled upstream connection was closed; retrying on a new one");
                let s = pool
                    .servers
                    .get(i)
                    .ok_or_else(|| upstream_err(&pool, i, "no such server"))?;
                let io = connect_tcp(s, lease.connect_timeout).await?;
                let out = std::mem::take(&mut conn.out);
                conn = Box::new(H1Conn::new(io));
                conn.out = out;
                reused = false;
            }
            Err(f) => return Err(f.err),
        }
    }
}

/// Serializes the request head: request line, the header map as is (minus
/// any `Content-Length`), the body length when there is a body or the client
/// framed one.
fn encode_head(req: &Request<UpBody>, body_len: usize, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(req.method().as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(
        req.uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
            .as_bytes(),
    );
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut had_length = false;
    for (name, value) in req.headers() {
        if name == http::header::CONTENT_LENGTH {
            had_length = true;
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let m = req.method();
    if body_len > 0 || had_length || *m == Method::POST || *m == Method::PUT || *m == Method::PATCH
    {
        out.extend_from_slice(b"content-length: ");
        let mut digits = [0u8; 20];
        let mut n = body_len;
        let mut k = digits.len();
        loop {
            k -= 1;
            digits[k] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        out.extend_from_slice(&digits[k..]);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

async fn write_request(io: &mut TcpStream, head: &[u8], body: &[u8]) -> io::Result<()> {
    if body.is_empty() {
        return io.write_all(head).await;
    }
    let (mut h, mut b) = (head, body);
    while !h.is_empty() {
        let n = io
            .write_vectored(&[IoSlice::new(h), IoSlice::new(b)])
            .await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        if n < h.len() {
            h = &h[n..];
        } else {
            b = &b[n - h.len()..];
            h = &[];
        }
    }
    io.write_all(b).await
}

/// A parsed final response head.
struct Head {
    status: StatusCode,
    headers: HeaderMap,
    framing: Framing,
    keep_alive: bool,
}

impl Head {
    fn into_response(self, conn: Box<H1Conn>, pool: Arc<Pool>, i: usize) -> Response<UpstreamBody> {
        let mut body = H1Body {
            conn: Some(conn),
            framing: self.framing,
            keep_alive: self.keep_alive,
            pool,
            server: i,
            deferred: None,
        };
        if body.is_end_stream() {
            body.complete();
        }
        let mut resp = Response::new(UpstreamBody::H1(body));
        *resp.status_mut() = self.status;
        *resp.headers_mut() = self.headers;
        resp
    }
}

async fn exchange(
    conn: &mut H1Conn,
    body: &Bytes,
    head_only: bool,
    pool: &Pool,
    i: usize,
) -> Result<Head, Failed> {
    let fail = |fresh_ok: bool, msg: String| Failed {
        err: upstream_err(pool, i, msg),
        fresh_ok,
    };
    if let Err(e) = write_request(&mut conn.io, &conn.out, body).await {
        let closed = matches!(
            e.kind(),
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset | io::ErrorKind::WriteZero
        );
        return Err(fail(closed, format!("writing the request: {e}")));
    }
    let mut received = !conn.buf.is_empty();
    let mut interim = 0usize;
    loop {
        if !conn.buf.is_empty() {
            match parse_head(conn, head_only) {
                Ok(Some(Parsed::Final(h))) => return Ok(h),
                Ok(Some(Parsed::Interim)) => {
                    interim += 1;
                    if interim > MAX_INTERIM_RESPONSES {
                        return Err(fail(false, "too many interim (1xx) responses".into()));
                    }
                    continue;
                }
                Ok(None) => {
                    if conn.buf.len() > MAX_HEADER_BYTES as usize {
                        return Err(fail(false, "response head too large".into()));
                    }
                }
                Err(m) => return Err(fail(false, m.into())),
            }
        }
        match conn.fill().await {
            Ok(0) => {
                return Err(fail(
                    !received,
                    "connection closed before the response head".into(),
                ))
            }
            Ok(_) => received = true,
            Err(e) => {
                let closed = !received && e.kind() == io::ErrorKind::ConnectionReset;
                return Err(fail(closed, format!("reading the response: {e}")));
            }
        }
    }
}

enum Parsed {
    Final(Head),
    Interim,
}

/// Every LF of `head` ends a CRLF (no bare LF: `httparse` accepts one as a
/// line end, RFC 9112 2.2 lets a recipient refuse it, and a proxy must,
/// or a value with a bare LF would become two fields here and one upstream).
fn crlf_only(head: &[u8]) -> bool {
    memchr::memchr_iter(b'\n', head).all(|p| p > 0 && head[p - 1] == b'\r')
}

fn eq_name(a: &[u8], b: &str) -> bool {
    a.eq_ignore_ascii_case(b.as_bytes())
}

/// Whether every comma-separated token of `v` is one of `tokens`
/// (case-insensitive; empty list elements are allowed, RFC 9110 5.6.1).
fn only_tokens(v: &[u8], tokens: &[&str]) -> bool {
    v.split(|&b| b == b',').all(|t| {
        let t = t.trim_ascii();
        t.is_empty() || tokens.iter().any(|k| t.eq_ignore_ascii_case(k.as_bytes()))
    })
}

/// The standard response header names upstreams send most, matched by
/// length and a case-insensitive compare; everything else goes through
/// `HeaderName::from_bytes`, which lower-cases and classifies every name.
fn known_name(n: &[u8]) -> Option<HeaderName> {
    use http::header as h;
    let eq = |s: &str| n.eq_ignore_ascii_case(s.as_bytes());
    let name = match n.len() {
        4 if eq("date") => h::DATE,
        4 if eq("etag") => h::ETAG,
        4 if eq("vary") => h::VARY,
        6 if eq("server") => h::SERVER,
        8 if eq("location") => h::LOCATION,
        10 if eq("set-cookie") => h::SET_COOKIE,
        12 if eq("content-type") => h::CONTENT_TYPE,
        13 if eq("last-modified") => h::LAST_MODIFIED,
        13 if eq("accept-ranges") => h::ACCEPT_RANGES,
        13 if eq("cache-control") => h::CACHE_CONTROL,
        14 if eq("content-length") => h::CONTENT_LENGTH,
        16 if eq("content-encoding") => h::CONTENT_ENCODING,
        17 if eq("transfer-encoding") => h::TRANSFER_ENCODING,
        _ => return None,
    };
    Some(name)
}

fn has_token(v: &[u8], token: &str) -> bool {
    v.split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// Parses a response head from `conn.buf`: `Ok(None)` when more bytes are
/// needed; on success the head is consumed from the buffer.
fn parse_head(conn: &mut H1Conn, head_only: bool) -> Result<Option<Parsed>, &'static str> {
    // Left uninitialised: httparse writes only the slots it fills, so a
    // response with 8 fields costs 8 slots, not the 3.2 KB of all of them.
    let mut storage = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut resp,
        &conn.buf,
        &mut storage,
    );
    let len = match parsed {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err("too many response header fields"),
        Err(_) => return Err("malformed response head"),
    };
    if len > MAX_HEADER_BYTES as usize {
        return Err("response head too large");
    }
    if !crlf_only(&conn.buf[..len]) {
        return Err("bare LF in the response head");
    }
    let code = resp.code.unwrap_or(0);
    let status = StatusCode::from_u16(code).map_err(|_| "invalid response status")?;
    let http10 = resp.version == Some(0);
    let base = conn.buf.as_ptr() as usize;
    conn.fields.clear();
    let (mut length, mut lengths, mut chunked, mut codings) = (None, 0usize, false, 0usize);
    let mut close = false;
    let mut keep = false;
    for h in resp.headers.iter() {
        let name = h.name.as_bytes();
        if eq_name(name, "content-length") {
            lengths += 1;
            let v = h.value;
            if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
                return Err("invalid Content-Length in the response");
            }
            length = Some(v.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')));
        } else if eq_name(name, "transfer-encoding") {
            codings += 1;
            chunked = h.value.trim_ascii().eq_ignore_ascii_case(b"chunked");
        } else if eq_name(name, "connection") {
            close |= has_token(h.value, "close");
            keep |= has_token(h.value, "keep-alive");
            // Only connection options: nothing for the proxy's hop-by-hop
            // removal to act on, so the field is not even built.
            if only_tokens(h.value, &["close", "keep-alive"]) {
                continue;
            }
        } else if eq_name(name, "keep-alive") {
            // Hop-by-hop, always removed before the client sees the response.
            continue;
        }
        conn.fields.push(Field {
            known: known_name(name),
            name: (name.as_ptr() as usize - base, name.len()),
            value: (h.value.as_ptr() as usize - base, h.value.len()),
        });
    }
    if status.is_informational() {
        if status == StatusCode::SWITCHING_PROTOCOLS {
            return Err("101 Switching Protocols without an upgrade request");
        }
        let _ = conn.buf.split_to(len);
        return Ok(Some(Parsed::Interim));
    }
    // RFC 9112 6.3: ambiguous framing is an error, not something to guess.
    if lengths > 1 {
        return Err("several Content-Length fields in the response");
    }
    if codings > 0 && lengths > 0 {
        return Err("both Content-Length and Transfer-Encoding in the response");
    }
    if codings > 1 || (codings == 1 && !chunked) {
        return Err("unsupported Transfer-Encoding in the response");
    }
    let mut keep_alive = !close && (!http10 || keep);
    let framing =
        if head_only || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
            Framing::Length(0)
        } else if chunked {
            Framing::Chunked(Chunk::Size)
        } else if let Some(n) = length {
            Framing::Length(n)
        } else {
            keep_alive = false;
            Framing::Close
        };
    let head = conn.buf.split_to(len).freeze();
    let mut headers = HeaderMap::with_capacity(conn.fields.len());
    for f in conn.fields.drain(..) {
        let name = match f.known {
            Some(n) => n,
            None => HeaderName::from_bytes(&head[f.name.0..f.name.0 + f.name.1])
                .map_err(|_| "invalid response header name")?,
        };
        let value = HeaderValue::from_maybe_shared(head.slice(f.value.0..f.value.0 + f.value.1))
            .map_err(|_| "invalid response header value")?;
        headers.append(name, value);
    }
    Ok(Some(Parsed::Final(Head {
        status,
        headers,
        framing,
        keep_alive,
    })))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// Bytes left of a `Content-Length` body (0: complete).
    Length(u64),
    /// A chunked body, in the given state.
    Chunked(Chunk),
    /// Read until the upstream closes.
    Close,
    /// Complete.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// Bytes left of chunk data.
    Data(u64),
    /// Expecting the CRLF after chunk data.
    DataEnd,
    /// Expecting the trailer section after the last chunk.
    Trailers,
}

/// A response body read by this client; it returns its connection to the
/// pool once the body ended correctly, and closes it otherwise (dropped
/// early, truncated, malformed).
#[derive(Debug)]
pub struct H1Body {
    conn: Option<Box<H1Conn>>,
    framing: Framing,
    keep_alive: bool,
    pool: Arc<Pool>,
    server: usize,
    /// A failure held back for one poll: see [`H1Body::poll_frame`].
    deferred: Option<Box<Error>>,
}

fn body_err(m: &str) -> Error {
    Error::Body(format!("upstream response body: {m}"))
}

/// Parses a chunk-size line (without its CRLF): hex size, then optional
/// extensions (`;` after optional whitespace) of visible characters.
fn chunk_size(line: &[u8]) -> Option<u64> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 16 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in &line[..digits] {
        let d = (b as char).to_digit(16)?;
        n = (n << 4) | u64::from(d);
    }
    let rest = &line[digits..];
    let ext = rest.trim_ascii_start();
    if ext.is_empty() && rest.is_empty() {
        return Some(n);
    }
    if ext.first() != Some(&b';') {
        return None;
    }
    ext.iter()
        .all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
        .then_some(n)
}

impl H1Body {
    fn complete(&mut self) {
        self.framing = Framing::Done;
        if let Some(conn) = self.conn.take() {
            // Stray bytes after the body mean the upstream sent more than one
            // response's worth: never reuse such a connection.
            if self.keep_alive && conn.buf.is_empty() {
                checkin(&self.pool, self.server, conn);
            }
        }
    }

    fn fail(&mut self, m: &str) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        self.framing = Framing::Done;
        self.conn = None;
        Poll::Ready(Some(Err(body_err(m))))
    }
}

impl Body for H1Body {
    type Data = Bytes;
    type Error = Error;

    /// A failure (truncated or malformed body) is reported one poll late:
    /// the server connection ends the moment its body errors, dropping
    /// whatever it had buffered but not yet written, so when the last
    /// bytes and the failure arrive together the client could lose the
    /// head and the bytes already read. Yielding once lets the server
    /// flush them first, so the client sees what nginx shows it: the
    /// head, the part of the body that arrived, then the abort.
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = self.get_mut();
        if let Some(e) = this.deferred.take() {
            return Poll::Ready(Some(Err(*e)));
        }
        match this.poll_body(cx) {
            Poll::Ready(Some(Err(e))) => {
                this.deferred = Some(Box::new(e));
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.deferred.is_none() && matches!(self.framing, Framing::Done | Framing::Length(0))
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Length(n) => SizeHint::with_exact(n),
            Framing::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

impl H1Body {
    fn poll_body(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = self;
        loop {
            if this.framing == Framing::Done || this.framing == Framing::Length(0) {
                if this.framing != Framing::Done {
                    this.complete();
                }
                return Poll::Ready(None);
            }
            let Some(conn) = this.conn.as_mut() else {
                return this.fail("connection lost");
            };
            let want_more = match this.framing {
                Framing::Length(rem) | Framing::Chunked(Chunk::Data(rem)) => {
                    if conn.buf.is_empty() {
                        true
                    } else {
                        let k = (conn.buf.len() as u64).min(rem);
                        let data = conn.buf.split_to(k as usize).freeze();
                        let left = rem - k;
                        match this.framing {
                            Framing::Length(_) if left == 0 => this.complete(),
                            Framing::Length(_) => this.framing = Framing::Length(left),
                            _ if left == 0 => this.framing = Framing::Chunked(Chunk::DataEnd),
                            _ => this.framing = Framing::Chunked(Chunk::Data(left)),
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
                Framing::Close => {
                    if conn.buf.is_empty() {
                        true
                    } else {
                        let data = conn.buf.split().freeze();
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
                Framing::Chunked(Chunk::Size) => {
                    let window = &conn.buf[..conn.buf.len().min(MAX_CHUNK_LINE_BYTES)];
                    match memchr::memchr(b'\n', window) {
                        Some(p) => {
                            if p == 0 || window[p - 1] != b'\r' {
                                return this.fail("chunk-size line without CRLF");
                            }
                            let Some(n) = chunk_size(&window[..p - 1]) else {
                                return this.fail("invalid chunk-size line");
                            };
                            let _ = conn.buf.split_to(p + 1);
                            this.framing = Framing::Chunked(if n == 0 {
                                Chunk::Trailers
                            } else {
                                Chunk::Data(n)
                            });
                            false
                        }
                        None if conn.buf.len() >= MAX_CHUNK_LINE_BYTES => {
                            return this.fail("chunk-size line too long")
                        }
                        None => true,
                    }
                }
                Framing::Chunked(Chunk::DataEnd) => {
                    if conn.buf.len() < 2 {
                        true
                    } else if &conn.buf[..2] == b"\r\n" {
                        let _ = conn.buf.split_to(2);
                        this.framing = Framing::Chunked(Chunk::Size);
                        false
                    } else {
                        return this.fail("chunk data longer than its size");
                    }
                }
                Framing::Chunked(Chunk::Trailers) => {
                    if conn.buf.starts_with(b"\r\n") {
                        let _ = conn.buf.split_to(2);
                        this.complete();
                        return Poll::Ready(None);
                    }
                    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
                    match httparse::parse_headers(&conn.buf, &mut storage) {
                        Ok(httparse::Status::Complete((n, fields))) => {
                            if n > MAX_HEADER_BYTES as usize || !crlf_only(&conn.buf[..n]) {
                                return this.fail("invalid trailer section");
                            }
                            let mut map = HeaderMap::with_capacity(fields.len());
                            for f in fields.iter() {
                                let (Ok(k), Ok(v)) = (
                                    HeaderName::from_bytes(f.name.as_bytes()),
                                    HeaderValue::from_bytes(f.value),
                                ) else {
                                    return this.fail("invalid trailer field");
                                };
                                map.append(k, v);
                            }
                            let _ = conn.buf.split_to(n);
                            this.complete();
                            return Poll::Ready(Some(Ok(Frame::trailers(map))));
                        }
                        Ok(httparse::Status::Partial) => {
                            if conn.buf.len() > MAX_HEADER_BYTES as usize {
                                return this.fail("trailer section too large");
                            }
                            true
                        }
                        Err(_) => return this.fail("invalid trailer section"),
                    }
                }
                Framing::Done => false,
            };
            if !want_more {
                continue;
            }
            match conn.poll_fill(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) => {
                    if this.framing == Framing::Close {
                        // End of a close-delimited body: complete, not reusable.
                        this.framing = Framing::Done;
                        this.conn = None;
                        return Poll::Ready(None);
                    }
                    return this.fail("connection closed before the end of the body");
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return this.fail(&e.to_string()),
            }
        }
    }
}

/// A response body from an upstream, whichever client read its head.
#[derive(Debug)]
pub enum UpstreamBody {
    /// Read by hyper's client.
    Hyper(Incoming),
    /// Read by this module's client.
    H1(H1Body),
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        match self.get_mut() {
            UpstreamBody::Hyper(b) => match Pin::new(b).poll_frame(cx) {
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Error::Body(e.to_string())))),
                Poll::Ready(Some(Ok(f))) => Poll::Ready(Some(Ok(f))),
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
            UpstreamBody::H1(b) => Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Hyper(b) => b.is_end_stream(),
            UpstreamBody::H1(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Hyper(b) => b.size_hint(),
            UpstreamBody::H1(b) => b.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_size_lines() {
        assert_eq!(chunk_size(b"1a"), Some(26));
        assert_eq!(chunk_size(b"0"), Some(0));
        assert_eq!(chunk_size(b"A;name=value"), Some(10));
        assert_eq!(chunk_size(b"a ; ext"), Some(10));
        assert_eq!(chunk_size(b""), None);
        assert_eq!(chunk_size(b"x"), None);
        assert_eq!(chunk_size(b"a b"), None);
        assert_eq!(chunk_size(b"12345678901234567"), None);
        assert_eq!(chunk_size(b"a;\x01"), None);
    }

    #[test]
    fn bare_lf_is_detected() {
        assert!(crlf_only(b"HTTP/1.1 200 OK\r\nA: b\r\n\r\n"));
        assert!(!crlf_only(b"HTTP/1.1 200 OK\r\nA: b\nC: d\r\n\r\n"));
        assert!(!crlf_only(b"\n"));
    }
}
