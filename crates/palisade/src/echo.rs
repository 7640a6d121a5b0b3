//! `palisade testing echo`: the backend of the CRS regression setup, an
//! HTTP/1 server that answers as the CRS project's albedo does.
//!
//! - `POST /reflect` (and `/reflect/`): the body is a JSON specification
//!   `{"status": 201, "headers": {"X-A": "1"}, "body": "…",
//!   "encodedBody": "<base64>", "logMessage": "…"}` and the answer is
//!   exactly that (status 0 or absent means 200; `body` wins over
//!   `encodedBody`; `logMessage` is logged; header names or values that are
//!   not valid HTTP are dropped). A body that is not JSON, a status outside
//!   100–599 or invalid base64 gets a 400. A body without a `Content-Type`
//!   gets one sniffed as Go's `net/http` does, which is what CRS response
//!   rules (phases 3–4) see behind albedo. The reflection logic is shared
//!   with the in-process target ([`ftw::inprocess::albedo`]), so both
//!   backends answer alike.
//! - `/capabilities` (and `/capabilities/`): a JSON document listing the
//!   endpoints; `?quiet=true` keeps only their paths, `?pretty=true`
//!   indents it.
//! - Anything else: an empty `200`.
//!
//! `--json` keeps the older behaviour instead: every request answered with
//! what it received, as JSON (see `gateway::demo`).
//!
//! Not implemented from albedo: `/configure_reflection`, `/reset` and
//! `/inspect` (the CRS suite does not use them; they answer an empty 200),
//! and Go's `ServeMux` redirect of non-canonical paths.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;

/// Largest request body read (default 16 MiB): bounds the echo server's
/// memory per request; a larger body gets a 400 like an unreadable one.
pub const MAX_REFLECT_BODY: usize = 16 * 1024 * 1024;

/// Binds `addr` and serves albedo's API in the background; returns the
/// bound address.
pub async fn spawn(addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                // EMFILE and friends: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service_fn(answer))
                    .await;
            });
        }
    });
    Ok(local)
}

fn query_flag(req: &Request<Incoming>, name: &str) -> bool {
    req.uri().query().is_some_and(|q| {
        q.split('&')
            .any(|kv| kv.split_once('=') == Some((name, "true")))
    })
}

async fn answer(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path();
    if path == "/capabilities" || path == "/capabilities/" {
        return Ok(capabilities(
            query_flag(&req, "quiet"),
            query_flag(&req, "pretty"),
        ));
    }
    let reflect = req.method() == http::Method::POST && (path == "/reflect" || path == "/reflect/");
    let method = req.method().as_str().as_bytes().to_vec();
    let uri = req.uri().to_string().into_bytes();
    // Every body is read, so a keep-alive connection stays usable.
    let body = match Limited::new(req.into_body(), MAX_REFLECT_BODY)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(plain(400, "Failed to parse request body")),
    };
    if !reflect {
        return Ok(plain(200, ""));
    }
    if let Some(msg) = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("logMessage")?.as_str().map(str::to_owned))
        .filter(|m| !m.is_empty())
    {
        tracing::info!(message = %msg, "reflect");
    }
    let parsed = ftw::http1::ParsedRequest {
        method,
        uri,
        body: body.to_vec(),
        ..Default::default()
    };
    let spec = ftw::inprocess::albedo(&parsed);
    let status = StatusCode::from_u16(spec.status).unwrap_or(StatusCode::OK);
    let mut resp = Response::new(Full::new(Bytes::from(spec.body)));
    *resp.status_mut() = status;
    for (n, v) in &spec.headers {
        // hyper frames the body itself.
        if n.eq_ignore_ascii_case("content-length") {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(n.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            resp.headers_mut().append(n, v);
        }
    }
    Ok(resp)
}

fn plain(status: u16, text: &'static str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    if !text.is_empty() {
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
    }
    resp
}

/// albedo's endpoint list (our own wording).
fn capabilities(quiet: bool, pretty: bool) -> Response<Full<Bytes>> {
    let endpoints = [
        ("/*", "any", "any", "Any other request: an empty 200."),
        (
            "/capabilities",
            "GET",
            "-",
            "This list; ?quiet=true lists only the paths, ?pretty=true indents.",
        ),
        (
            "/reflect",
            "POST",
            "application/json",
            "Answers with the status, headers and body (or base64 encodedBody) of the JSON specification in the request body; logMessage is logged.",
        ),
    ];
    let list: Vec<serde_json::Value> = endpoints
        .iter()
        .map(|(path, method, ctype, desc)| {
            if quiet {
                json!({ "path": path })
            } else {
                json!({ "path": path, "methods": [method], "contentType": ctype, "description": desc })
            }
        })
        .collect();
    let doc = json!({ "endpoints": list });
    let text = if pretty {
        serde_json::to_string_pretty(&doc).unwrap_or_default()
    } else {
        doc.to_string()
    };
    let mut resp = Response::new(Full::new(Bytes::from(text)));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn exchange(addr: SocketAddr, raw: String) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(raw.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
            .await
            .unwrap()
            .unwrap();
        String::from_utf8_lossy(&out).into_owned()
    }

    fn post(path: &str, body: &str) -> String {
        format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    }

    #[tokio::test]
    async fn reflect_answers_the_specification() {
        let addr = spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let r = exchange(
            addr,
            post(
                "/reflect",
                r#"{"status":503,"headers":{"X-Test":"yes","Bad Name":"x"},"body":"<html>down</html>","logMessage":"t-1"}"#,
            ),
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 503 "), "{r}");
        let lower = r.to_ascii_lowercase();
        assert!(lower.contains("x-test: yes\r\n"), "{r}");
        assert!(!lower.contains("bad name"), "{r}");
        assert!(
            lower.contains("content-type: text/html; charset=utf-8\r\n"),
            "{r}"
        );
        assert!(r.ends_with("\r\n\r\n<html>down</html>"), "{r}");

        let r = exchange(addr, post("/reflect/", r#"{"encodedBody":"aGVsbG8="}"#)).await;
        assert!(r.starts_with("HTTP/1.1 200 "), "{r}");
        assert!(r.ends_with("\r\n\r\nhello"), "{r}");

        let r = exchange(addr, post("/reflect", "not json")).await;
        assert!(r.starts_with("HTTP/1.1 400 "), "{r}");
        let r = exchange(addr, post("/reflect", r#"{"status":99}"#)).await;
        assert!(r.starts_with("HTTP/1.1 400 "), "{r}");
    }

    #[tokio::test]
    async fn other_requests_get_an_empty_200_and_capabilities_list_endpoints() {
        let addr = spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
        for raw in [
            post("/anything?x=y", r#"{"status":500}"#),
            "GET /reflect HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_owned(),
        ] {
            let r = exchange(addr, raw).await;
            assert!(r.starts_with("HTTP/1.1 200 "), "{r}");
            assert!(
                r.to_ascii_lowercase().contains("content-length: 0\r\n"),
                "{r}"
            );
        }
        let r = exchange(
            addr,
            "GET /capabilities?quiet=true HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".into(),
        )
        .await;
        let body = r.split("\r\n\r\n").nth(1).unwrap();
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        let paths: Vec<&str> = v["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["path"].as_str().unwrap())
            .collect();
        assert_eq!(paths, ["/*", "/capabilities", "/reflect"]);
        assert!(v["endpoints"][0].get("description").is_none());
    }
}
