//! The built-in demo upstream (behind `palisade serve` with no config) and the
//! echo/capture server of `palisade testing echo`: answers every request with
//! what it received, as JSON (or a friendly HTML page for browsers on `/` in
//! demo mode).
//!
//! Extras for tests: `?status=NNN` answers that status, `?delay_ms=N` waits
//! first; `Upgrade` requests get a 101 and then every byte is echoed back.
//! With a capture file, each request is also appended to it as a JSON line.

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::error::{Error, Result};

/// Largest body the echo server reads (bounds its memory).
pub const ECHO_MAX_BODY: usize = 16 * 1024 * 1024;
/// Longest `delay_ms` honoured.
pub const ECHO_MAX_DELAY_MS: u64 = 120_000;

/// Options of the echo server.
#[derive(Debug, Clone, Default)]
pub struct EchoOptions {
    /// Answer browsers on `/` with an HTML page (the demo upstream).
    pub demo_page: bool,
    /// Append each request as a JSON line to this file.
    pub capture: Option<PathBuf>,
}

struct EchoState {
    opts: EchoOptions,
    capture: Option<Mutex<std::fs::File>>,
}

/// Binds `addr` and serves the echo server in the background; returns the
/// bound address.
pub async fn spawn_echo(addr: SocketAddr, opts: EchoOptions) -> Result<SocketAddr> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::io("local address", e))?;
    let capture = match &opts.capture {
        Some(p) => Some(Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| Error::io(format!("cannot open capture file {}", p.display()), e))?,
        )),
        None => None,
    };
    let state = Arc::new(EchoState { opts, capture });
    tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            let _ = stream.set_nodelay(true);
            let state = state.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| echo(req, peer, state.clone()));
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(local)
}

fn query_param<'a>(q: Option<&'a str>, name: &str) -> Option<&'a str> {
    q?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then_some(v)
    })
}

async fn echo(
    mut req: Request<Incoming>,
    peer: SocketAddr,
    state: Arc<EchoState>,
) -> std::result::Result<Response<Full<Bytes>>, Infallible> {
    let q = req.uri().query().map(str::to_string);
    if let Some(ms) = query_param(q.as_deref(), "delay_ms").and_then(|v| v.parse::<u64>().ok()) {
        tokio::time::sleep(Duration::from_millis(ms.min(ECHO_MAX_DELAY_MS))).await;
    }
    let status = query_param(q.as_deref(), "status")
        .and_then(|v| v.parse::<u16>().ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);

    if req.headers().contains_key(header::UPGRADE) {
        let proto = req.headers().get(header::UPGRADE).cloned();
        let on = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(up) = on.await {
                let mut io = TokioIo::new(up);
                let (mut r, mut w) = tokio::io::split(&mut io);
                let _ = tokio::io::copy(&mut r, &mut w).await;
            }
        });
        let mut resp = Response::new(Full::new(Bytes::new()));
        *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        if let Some(p) = proto {
            resp.headers_mut().insert(header::UPGRADE, p);
        }
        resp.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("upgrade"),
        );
        return Ok(resp);
    }

    let (parts, body) = req.into_parts();
    let (body, body_error) = match Limited::new(body, ECHO_MAX_BODY).collect().await {
        Ok(b) => (b.to_bytes(), None),
        Err(e) => (Bytes::new(), Some(e.to_string())),
    };
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let info = serde_json::json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "version": format!("{:?}", parts.version),
        "peer": peer.to_string(),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
        "body_bytes": body.len(),
        "body_error": body_error,
    });
    // Requests whose body failed are not captured: they never completed.
    if body_error.is_none() {
        if let Some(c) = &state.capture {
            if let Ok(mut f) = c.lock() {
                let _ = writeln!(f, "{info}");
            }
        }
    }
    let wants_html = state.opts.demo_page
        && parts.uri.path() == "/"
        && parts
            .headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"));
    let (ctype, out) = if wants_html {
        let pretty = serde_json::to_string_pretty(&info).unwrap_or_default();
        ("text/html; charset=utf-8", Bytes::from(demo_page(&pretty)))
    } else {
        let mut s = info.to_string();
        s.push('\n');
        ("application/json", Bytes::from(s))
    };
    let mut resp = Response::new(Full::new(out));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(ctype),
    );
    Ok(resp)
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn demo_page(request_json: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>palisade is running</title>
<style>body{{font-family:system-ui,sans-serif;max-width:46rem;margin:3rem auto;padding:0 1rem;color:#222}}
pre{{background:#f4f4f4;padding:1rem;overflow:auto}}code{{background:#f4f4f4;padding:0 .2rem}}</style></head>
<body><h1>palisade is running</h1>
<p>This page comes from palisade's built-in demo application, reached <em>through</em> the
palisade reverse proxy. Below is the request exactly as the application received it: note the
<code>x-forwarded-for</code>, <code>x-forwarded-proto</code>, <code>x-forwarded-host</code> and
<code>x-request-id</code> headers the proxy added.</p>
<pre>{}</pre>
<p>Next steps: the metrics are on the admin listener at <code>/metrics</code>; run
<code>palisade check-config -c palisade.example.toml</code> and start palisade with your own
upstream using <code>palisade serve -c FILE</code>.</p>
</body></html>
"#,
        html_escape(request_json)
    )
}
