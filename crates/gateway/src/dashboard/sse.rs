//! `/dashboard/feed`: new events as Server-Sent Events. Each client gets a
//! bus subscription drained by its own task into a bounded channel; a
//! browser that reads slower than events arrive loses events (counted and
//! announced with a `dropped` event), never grows memory.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body::Frame;
use http_body_util::BodyExt;
use tokio::sync::mpsc;

use super::{respond, Body, TEXT};
use crate::server::Gateway;

/// Fixed 256: messages buffered per feed client. Bounds the memory a slow
/// or stalled browser can hold.
pub const FEED_BUFFER: usize = 256;

/// Fixed 16: concurrent feed clients. Bounds bus subscriptions and tasks
/// an admin session (or a leaked cookie) can open.
pub const MAX_FEED_CLIENTS: usize = 16;

/// Fixed 15 s: keep-alive comment interval (also how soon a closed browser
/// is noticed when no events flow).
pub const KEEPALIVE: Duration = Duration::from_secs(15);

static CLIENTS: AtomicUsize = AtomicUsize::new(0);

struct Slot;

impl Drop for Slot {
    fn drop(&mut self) {
        CLIENTS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The SSE response body: frames from the forwarding task.
struct Feed {
    rx: mpsc::Receiver<Bytes>,
}

impl http_body::Body for Feed {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx.poll_recv(cx).map(|m| m.map(|b| Ok(Frame::data(b))))
    }
}

/// One event as an SSE message (JSON on one `data:` line; serde_json never
/// emits a raw newline, so the framing cannot be broken by event data).
pub fn message(json: &str) -> Bytes {
    Bytes::from(format!("data: {json}\n\n"))
}

/// Starts a feed for one browser.
pub fn feed(gw: &Gateway) -> Response<Body> {
    if CLIENTS.fetch_add(1, Ordering::SeqCst) >= MAX_FEED_CLIENTS {
        CLIENTS.fetch_sub(1, Ordering::SeqCst);
        return respond(
            StatusCode::SERVICE_UNAVAILABLE,
            TEXT,
            format!("503 Service Unavailable\nat most {MAX_FEED_CLIENTS} live feeds at once\n"),
        );
    }
    let slot = Slot;
    let (tx, rx) = mpsc::channel::<Bytes>(FEED_BUFFER);
    let mut sub = gw.monitor().bus.subscribe();
    let enabled = gw.monitor().enabled();
    tokio::spawn(async move {
        let _slot = slot;
        let dropped = Arc::new(AtomicUsize::new(0));
        if tx.try_send(Bytes::from_static(b"retry: 3000\n\n")).is_err() {
            return;
        }
        if !enabled {
            let _ = tx.try_send(Bytes::from_static(
                b"event: disabled\ndata: monitoring is off ([monitor] enabled = false)\n\n",
            ));
        }
        let mut tick = tokio::time::interval(KEEPALIVE);
        tick.tick().await;
        loop {
            tokio::select! {
                e = sub.recv() => {
                    let Some(e) = e else { break };
                    match tx.try_send(message(&e.to_json())) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            dropped.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => break,
                    }
                }
                _ = tick.tick() => {
                    let n = dropped.swap(0, Ordering::Relaxed);
                    let msg = if n > 0 {
                        Bytes::from(format!("event: dropped\ndata: {n}\n\n"))
                    } else {
                        Bytes::from_static(b": keepalive\n\n")
                    };
                    if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(msg) {
                        break;
                    }
                }
                _ = tx.closed() => break,
            }
        }
    });
    let mut r = respond(StatusCode::OK, "text/event-stream", Bytes::new());
    *r.body_mut() = Feed { rx }.boxed();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_data_cannot_break_sse_framing() {
        let e = monitor::Event::new(monitor::Kind::ShieldRefused {
            reason: "x\n\ndata: forged\r\n".into(),
            detail: "<script>".into(),
        });
        let m = message(&e.to_json());
        let s = std::str::from_utf8(&m).unwrap();
        assert!(s.starts_with("data: {"));
        assert_eq!(s.matches('\n').count(), 2, "one data line: {s}");
        assert!(!s.contains('\r'));
    }
}
