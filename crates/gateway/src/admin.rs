//! Admin listener (keep it on loopback): `GET /healthz`, `GET /metrics`
//! (Prometheus text), `POST /reload`, `/bans`, `GET /events`.

use std::convert::Infallible;
use std::fmt::Write as _;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::metrics::escape;
use crate::server::Gateway;
use crate::tls::now_unix;

pub(crate) fn spawn(listener: TcpListener, gw: Gateway) {
    if let Ok(a) = listener.local_addr() {
        tracing::info!(listen = %a, "admin listening");
    }
    tokio::spawn(async move {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let gw = gw.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    crate::dashboard::or_admin(req, gw.clone(), peer.ip(), answer)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
}

fn text(status: StatusCode, body: impl Into<Bytes>, ctype: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(ctype),
    );
    r
}

async fn answer(req: Request<Incoming>, gw: Gateway) -> Result<Response<Full<Bytes>>, Infallible> {
    const PLAIN: &str = "text/plain; charset=utf-8";
    Ok(match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/healthz") => text(StatusCode::OK, "ok\n", PLAIN),
        (&Method::GET, "/metrics") => text(
            StatusCode::OK,
            crate::events_glue::with_ban_gauges(&gw, render_metrics(&gw)).await,
            "text/plain; version=0.0.4; charset=utf-8",
        ),
        (&Method::POST, "/reload") => match gw.reload().await {
            Ok(()) => match crate::events_glue::restart_note(gw.monitor(), &gw.runtime().config) {
                Some(note) => text(StatusCode::OK, format!("reloaded\nnote: {note}\n"), PLAIN),
                None => text(StatusCode::OK, "reloaded\n", PLAIN),
            },
            Err(e) => text(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("reload rejected: {e}\n"),
                PLAIN,
            ),
        },
        (_, p) if crate::shield_glue::is_admin_path(p) => crate::shield_glue::admin(req, &gw).await,
        (_, "/events") => crate::events_glue::admin(req, &gw).await,
        (_, "/healthz" | "/metrics" | "/reload") => text(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed\n",
            PLAIN,
        ),
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /healthz, /metrics or POST /reload\n",
            PLAIN,
        ),
    })
}

/// Renders all metrics, including the config-dependent gauges.
pub fn render_metrics(gw: &Gateway) -> String {
    let mut out = String::with_capacity(8192);
    gw.metrics().render(&mut out);
    crate::shield_glue::render_metrics(gw, &mut out);
    crate::events_glue::render_metrics(gw, &mut out);
    let rt = gw.runtime();
    out.push_str("# HELP palisade_upstream_healthy 1 when the server is in rotation (health checks and passive ejection).\n");
    out.push_str("# TYPE palisade_upstream_healthy gauge\n");
    let mut pools: Vec<_> = rt.pools.values().collect();
    pools.sort_by(|a, b| a.name().cmp(b.name()));
    for p in pools {
        for s in p.servers.iter() {
            let up = u8::from(s.is_healthy() && !s.is_ejected());
            let _ = writeln!(
                out,
                "palisade_upstream_healthy{{upstream=\"{}\",server=\"{}\"}} {up}",
                escape(p.name()),
                escape(&s.label)
            );
        }
    }
    out.push_str("# HELP palisade_tls_certificate_expiry_seconds Seconds until the certificate's notAfter.\n");
    out.push_str("# TYPE palisade_tls_certificate_expiry_seconds gauge\n");
    let now = now_unix();
    let mut ls: Vec<_> = rt.listeners.values().collect();
    ls.sort_by(|a, b| a.cfg.name.cmp(&b.cfg.name));
    for l in ls {
        for c in &l.certs {
            let _ = writeln!(
                out,
                "palisade_tls_certificate_expiry_seconds{{listener=\"{}\",cert=\"{}\",names=\"{}\"}} {}",
                escape(&l.cfg.name),
                escape(&c.path.display().to_string()),
                escape(&c.names.join(",")),
                c.not_after - now
            );
        }
    }
    out
}
