//! Body types: the request body streamed to an upstream (size limit, idle
//! timeout, minimum rate) and the response body streamed to the client
//! (which finishes the request's log record and metrics when dropped).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use crate::error::Error;
use crate::upstream_h1::UpstreamBody;

/// Grace period before the minimum body rate is enforced.
const MIN_RATE_GRACE: Duration = Duration::from_secs(1);

/// Maps a hyper body error to the gateway error it carries, if any.
fn map_hyper(e: hyper::Error) -> Error {
    match Error::find_in(&e) {
        Some(Error::BadRequest(r)) => Error::BadRequest(r),
        Some(Error::HeadersTooLarge) => Error::HeadersTooLarge,
        _ => Error::Body(e.to_string()),
    }
}

/// Request body forwarded upstream.
#[derive(Debug)]
pub struct UpBody {
    inner: Option<Incoming>,
    seen: u64,
    limit: u64,
    idle: Duration,
    min_rate: u64,
    waited: Duration,
    wait_start: Option<Instant>,
    sleep: Option<Pin<Box<Sleep>>>,
    counter: Option<Arc<AtomicU64>>,
    /// Bytes already read from the client (by the WAF), sent first.
    prefix: Option<Bytes>,
}

impl UpBody {
    /// An empty body (health checks, bodiless requests).
    pub fn empty() -> Self {
        UpBody {
            inner: None,
            seen: 0,
            limit: 0,
            idle: Duration::ZERO,
            min_rate: 0,
            waited: Duration::ZERO,
            wait_start: None,
            sleep: None,
            counter: None,
            prefix: None,
        }
    }

    /// Sends `prefix` (body bytes already read from the client) before the
    /// rest; it counts toward the size limit and in the bytes-received
    /// counter (`bytes_in`, created when the body had none because the
    /// prefix is all of it).
    pub fn with_prefix(mut self, prefix: Bytes, bytes_in: &mut Option<Arc<AtomicU64>>) -> Self {
        if prefix.is_empty() {
            return self;
        }
        let n = prefix.len() as u64;
        let counter = match (&self.counter, bytes_in.as_ref()) {
            (Some(c), _) | (None, Some(c)) => c.clone(),
            (None, None) => {
                let c = Arc::new(AtomicU64::new(0));
                *bytes_in = Some(c.clone());
                c
            }
        };
        counter.fetch_add(n, Ordering::Relaxed);
        self.counter = Some(counter);
        self.seen += n;
        self.prefix = Some(prefix);
        self
    }

    /// The whole body when it is in memory (no client body left to read):
    /// the prefix, or empty.
    pub fn in_memory(&self) -> Option<Bytes> {
        if self.inner.as_ref().is_some_and(|b| !b.is_end_stream()) {
            return None;
        }
        Some(self.prefix.clone().unwrap_or_default())
    }

    /// Wraps a client body with the limits; `counter` receives bytes seen.
    pub fn new(
        inner: Incoming,
        limit: u64,
        idle: Duration,
        min_rate: u64,
        counter: Option<Arc<AtomicU64>>,
    ) -> Self {
        UpBody {
            inner: Some(inner),
            limit,
            idle,
            min_rate,
            counter,
            ..UpBody::empty()
        }
    }
}

impl Body for UpBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = self.get_mut();
        if let Some(p) = this.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(p))));
        }
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(ws) = this.wait_start.take() {
                    this.waited += ws.elapsed();
                }
                if let Some(d) = frame.data_ref() {
                    let n = d.len() as u64;
                    this.seen += n;
                    if let Some(c) = &this.counter {
                        c.fetch_add(n, Ordering::Relaxed);
                    }
                    if this.seen > this.limit {
                        this.inner = None;
                        return Poll::Ready(Some(Err(Error::BodyTooLarge)));
                    }
                }
                if this.min_rate > 0 && this.waited > MIN_RATE_GRACE {
                    let budget =
                        (this.waited - MIN_RATE_GRACE).as_secs_f64() * this.min_rate as f64;
                    if (this.seen as f64) < budget {
                        this.inner = None;
                        return Poll::Ready(Some(Err(Error::BodyTimeout(
                            "below the minimum rate",
                        ))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.inner = None;
                Poll::Ready(Some(Err(map_hyper(e))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let now = Instant::now();
                if this.wait_start.is_none() {
                    this.wait_start = Some(now);
                    let deadline = now + this.idle;
                    match this.sleep.as_mut() {
                        Some(s) => s.as_mut().reset(deadline),
                        None => this.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
                    }
                }
                if let Some(s) = this.sleep.as_mut() {
                    if s.as_mut().poll(cx).is_ready() {
                        this.inner = None;
                        return Poll::Ready(Some(Err(Error::BodyTimeout("idle"))));
                    }
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none()
            && self
                .inner
                .as_ref()
                .map(|b| b.is_end_stream())
                .unwrap_or(true)
    }

    fn size_hint(&self) -> SizeHint {
        let inner = self
            .inner
            .as_ref()
            .map(|b| b.size_hint())
            .unwrap_or_else(|| SizeHint::with_exact(0));
        match &self.prefix {
            None => inner,
            Some(p) => {
                let n = p.len() as u64;
                let mut h = SizeHint::new();
                h.set_lower(inner.lower() + n);
                if let Some(u) = inner.upper() {
                    h.set_upper(u + n);
                }
                h
            }
        }
    }
}

/// Work done when a response body is finished or dropped (logging, metrics,
/// connection return to the pool).
pub trait Finish: Send + Sync + 'static {
    /// Called once with the body bytes sent and whether the body completed.
    fn finish(&mut self, bytes_out: u64, complete: bool);
}

/// Response body sent to the client.
pub struct RespBody {
    kind: Kind,
    bytes: u64,
    complete: bool,
    finish: Option<Box<dyn Finish>>,
}

enum Kind {
    Full(Option<Bytes>),
    Upstream(UpstreamBody),
    /// Bytes already read from the upstream (by the WAF), then the rest.
    Prefixed(Option<Bytes>, UpstreamBody),
}

impl std::fmt::Debug for RespBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RespBody")
            .field("bytes", &self.bytes)
            .finish()
    }
}

impl RespBody {
    /// A complete in-memory body.
    pub fn full(b: impl Into<Bytes>) -> Self {
        let b = b.into();
        RespBody {
            kind: Kind::Full(if b.is_empty() { None } else { Some(b) }),
            bytes: 0,
            complete: false,
            finish: None,
        }
    }

    /// A body streamed from an upstream response.
    pub fn upstream(b: UpstreamBody) -> Self {
        RespBody {
            kind: Kind::Upstream(b),
            bytes: 0,
            complete: false,
            finish: None,
        }
    }

    /// `prefix` (bytes already read from `rest`), then the rest of `rest`.
    pub fn prefixed(prefix: Bytes, rest: UpstreamBody) -> Self {
        RespBody {
            kind: Kind::Prefixed(Some(prefix), rest),
            bytes: 0,
            complete: false,
            finish: None,
        }
    }

    /// Attaches the finish hook.
    pub fn with_finish(mut self, f: Box<dyn Finish>) -> Self {
        self.finish = Some(f);
        self
    }

    fn done(&mut self) {
        self.complete = true;
        if let Some(mut f) = self.finish.take() {
            f.finish(self.bytes, true);
        }
    }
}

impl Drop for RespBody {
    fn drop(&mut self) {
        if let Some(mut f) = self.finish.take() {
            // hyper never polls a body that is empty from the start (HEAD,
            // 204, 304): it is complete, and its upstream connection can
            // go back to the pool.
            let complete = self.complete || self.is_end_stream();
            f.finish(self.bytes, complete);
        }
    }
}

impl Body for RespBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = self.get_mut();
        let res = match &mut this.kind {
            Kind::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Kind::Prefixed(p, _) if p.is_some() => {
                Poll::Ready(p.take().map(|b| Ok(Frame::data(b))))
            }
            Kind::Upstream(inner) | Kind::Prefixed(_, inner) => {
                match Pin::new(inner).poll_frame(cx) {
                    Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
                    Poll::Ready(Some(Ok(f))) => Poll::Ready(Some(Ok(f))),
                    Poll::Ready(None) => Poll::Ready(None),
                    Poll::Pending => Poll::Pending,
                }
            }
        };
        match &res {
            Poll::Ready(Some(Ok(f))) => {
                if let Some(d) = f.data_ref() {
                    this.bytes += d.len() as u64;
                }
                // hyper stops polling once a sized body is complete, so the
                // end is detected here rather than by a final `None`.
                if this.is_end_stream() {
                    this.done();
                }
            }
            Poll::Ready(None) => this.done(),
            _ => {}
        }
        res
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(b) => b.is_none(),
            Kind::Upstream(b) => b.is_end_stream(),
            Kind::Prefixed(p, b) => p.is_none() && b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(b) => SizeHint::with_exact(b.as_ref().map(|b| b.len() as u64).unwrap_or(0)),
            Kind::Upstream(b) => b.size_hint(),
            Kind::Prefixed(p, b) => {
                let n = p.as_ref().map(|p| p.len() as u64).unwrap_or(0);
                let inner = b.size_hint();
                let mut h = SizeHint::new();
                h.set_lower(inner.lower() + n);
                if let Some(u) = inner.upper() {
                    h.set_upper(u + n);
                }
                h
            }
        }
    }
}
