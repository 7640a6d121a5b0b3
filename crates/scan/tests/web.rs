#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `scan web` against sites this test serves on loopback: one with planted
//! issues (every one must be found, nothing else), a hardened one (no
//! finding), and hostile servers (each a finding or a clear error, within
//! the time budget).

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use scan::web::{self, Options};

#[derive(Clone, Copy)]
struct Site {
    hardened: bool,
    tls: bool,
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 3 <= b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz");
            if let Ok(v) = u8::from_str_radix(hex, 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn handle(site: Site, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let method = req.method().as_str().to_owned();
    let origin = req
        .headers()
        .get("origin")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut b = Response::builder();
    if site.hardened {
        b = b
            .header(
                "content-security-policy",
                "default-src 'self'; frame-ancestors 'none'",
            )
            .header("x-frame-options", "DENY")
            .header("x-content-type-options", "nosniff")
            .header("referrer-policy", "strict-origin-when-cross-origin")
            .header("permissions-policy", "camera=(), microphone=()")
            .header("strict-transport-security", "max-age=63072000")
            .header("server", "nginx");
    } else {
        b = b
            .header("server", "nginx/1.22.1")
            .header("x-powered-by", "PHP/8.1.2");
        if let Some(o) = &origin {
            b = b
                .header("access-control-allow-origin", o.as_str())
                .header("access-control-allow-credentials", "true");
        }
    }
    let html = |b: hyper::http::response::Builder, body: String| {
        b.header("content-type", "text/html; charset=utf-8")
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    };
    let text = |b: hyper::http::response::Builder, status: u16, ct: &str, body: &str| {
        b.status(status)
            .header("content-type", ct)
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap()
    };
    match method.as_str() {
        "OPTIONS" => {
            let allow = if site.hardened {
                "GET, HEAD, POST"
            } else {
                "GET, POST, PUT, DELETE, OPTIONS"
            };
            return b
                .status(204)
                .header("allow", allow)
                .body(Full::default())
                .unwrap();
        }
        "TRACE" if site.hardened => return text(b, 405, "text/plain", "no"),
        "TRACE" => {
            let mut echo = format!("TRACE {path} HTTP/1.1\r\n");
            for (n, v) in req.headers() {
                echo.push_str(&format!("{n}: {}\r\n", v.to_str().unwrap_or("")));
            }
            return text(b, 200, "message/http", &echo);
        }
        _ => {}
    }
    let cookie = if site.hardened {
        "session=abc123; Path=/; Secure; HttpOnly; SameSite=Strict"
    } else {
        "session=abc123; Path=/"
    };
    let mixed = if site.tls && !site.hardened {
        r#"<script src="http://cdn.example/lib.js"></script>"#
    } else {
        ""
    };
    let action = if site.tls && !site.hardened {
        "http://127.0.0.1/login"
    } else {
        "/login"
    };
    match path.as_str() {
        "/" => html(
            b.header("set-cookie", cookie),
            format!(
                r#"<!doctype html><html><head><title>Shop</title>{mixed}</head><body>
                <a href="/search?q=hello">search</a> <a href="about.html">about</a>
                <a href="/files/">files</a> <a href="/login">login</a>
                <a href="/error">error</a> <a href="/slow">slow</a>
                <a href="https://elsewhere.example/">offsite</a> <a href="mailto:x@y">mail</a>
                <img src="/logo.png"></body></html>"#
            ),
        ),
        "/search" => {
            let q = query
                .split('&')
                .find_map(|p| p.strip_prefix("q="))
                .map(percent_decode)
                .unwrap_or_default();
            let shown = if site.hardened { escape(&q) } else { q };
            html(b, format!("<html><body><p>Results for {shown}</p></body></html>"))
        }
        "/about.html" => html(b, "<html><body>About us</body></html>".into()),
        "/login" => html(
            b,
            format!(
                r#"<html><body><form method="post" action="{action}">
                <input name="user"><input type="password" name="pw"></form></body></html>"#
            ),
        ),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            html(b, "late".into())
        }
        "/files/" if !site.hardened => html(
            b,
            "<html><head><title>Index of /files/</title></head><body><h1>Index of /files/</h1>\
             <a href=\"../\">../</a><a href=\"a.txt\">a.txt</a></body></html>"
                .into(),
        ),
        "/error" if !site.hardened => text(
            b,
            500,
            "text/html",
            "<html><pre>Traceback (most recent call last):\n  File \"/srv/app.py\", line 3</pre></html>",
        ),
        "/.git/HEAD" if !site.hardened => {
            text(b, 200, "application/octet-stream", "ref: refs/heads/main\n")
        }
        "/.env" if !site.hardened => text(
            b,
            200,
            "application/octet-stream",
            "DB_PASSWORD=hunter2\nAPI_KEY=abc\n",
        ),
        "/about.html.bak" if !site.hardened => text(
            b,
            200,
            "application/octet-stream",
            "<?php $db = 'secret'; ?> old about page source",
        ),
        "/server-status" if !site.hardened => html(
            b,
            "<html><head><title>Apache Status</title></head><body>Server uptime</body></html>"
                .into(),
        ),
        _ => text(b, 404, "text/html", "<html><body>Not found</body></html>"),
    }
}

async fn serve(site: Site) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = site.tls.then(tls_acceptor);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| async move {
                    Ok::<_, Infallible>(handle(site, req).await)
                });
                let http = hyper::server::conn::http1::Builder::new();
                match acceptor {
                    Some(a) => {
                        if let Ok(s) = a.accept(stream).await {
                            let _ = http.serve_connection(TokioIo::new(s), svc).await;
                        }
                    }
                    None => {
                        let _ = http.serve_connection(TokioIo::new(stream), svc).await;
                    }
                }
            });
        }
    });
    port
}

fn tls_acceptor() -> tokio_rustls::TlsAcceptor {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(rustls_pki_types::PrivatePkcs8KeyDer::from(
        ck.key_pair.serialize_der(),
    ));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![ck.cert.der().clone()], key)
    .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// A plain-HTTP listener that redirects everything to `https_port`.
async fn redirector(https_port: u16) -> u16 {
    raw_server(move |_req| {
        format!(
            "HTTP/1.1 301 Moved Permanently\r\nLocation: https://127.0.0.1:{https_port}/\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .into_bytes()
    })
    .await
}

/// A raw TCP server: reads what arrives first, writes `respond(request)`.
async fn raw_server(respond: impl Fn(&[u8]) -> Vec<u8> + Send + Sync + 'static) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let respond = Arc::new(respond);
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let respond = respond.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let _ = s.write_all(&respond(&buf[..n])).await;
                let _ = s.shutdown().await;
            });
        }
    });
    port
}

fn opts() -> Options {
    Options {
        request_timeout: Duration::from_secs(2),
        time_budget: Duration::from_secs(60),
        concurrency: 8,
        ..Options::default()
    }
}

fn ids(r: &web::Report) -> BTreeSet<String> {
    r.findings.iter().map(|f| f.id.clone()).collect()
}

fn set(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_planted_issue_is_found_over_http() {
    let port = serve(Site {
        hardened: false,
        tls: false,
    })
    .await;
    let progress = Arc::new(scan::progress::Progress::new());
    let r = web::scan(
        &format!("http://127.0.0.1:{port}/"),
        &Options {
            progress: Some(progress.clone()),
            ..opts()
        },
    )
    .await
    .unwrap();
    // Progress counts requests and ends complete.
    let (done, total) = progress.get();
    assert_eq!(done, total);
    assert!(
        r.requests <= total && total <= r.requests + 5,
        "{r:?} {total}",
        r = r.requests
    );
    assert_eq!(
        ids(&r),
        set(&[
            "WEB-CORS-NULL",
            "WEB-CORS-REFLECT",
            "WEB-COOKIE-HTTPONLY",
            "WEB-COOKIE-SAMESITE",
            "WEB-DEBUG-EXPOSED",
            "WEB-DIR-LISTING",
            "WEB-EXPOSED-BACKUP",
            "WEB-EXPOSED-ENV",
            "WEB-EXPOSED-GIT",
            "WEB-FORM-PASSWORD-HTTP",
            "WEB-HDR-CSP",
            "WEB-HDR-FRAME",
            "WEB-HDR-PERMISSIONS",
            "WEB-HDR-REFERRER",
            "WEB-HDR-XCTO",
            "WEB-HTTP-NO-REDIRECT",
            "WEB-INFO-ERROR",
            "WEB-INFO-POWEREDBY",
            "WEB-INFO-SERVER",
            "WEB-METHOD-TRACE",
            "WEB-METHOD-UNSAFE",
            "WEB-REFLECTED-INPUT",
        ]),
        "{:#?}",
        r.findings
    );
    let f = |id: &str| r.findings.iter().find(|f| f.id == id).unwrap();
    assert!(f("WEB-EXPOSED-GIT")
        .evidence
        .contains("ref: refs/heads/main"));
    assert!(f("WEB-REFLECTED-INPUT").title.contains("parameter q"));
    assert!(f("WEB-DIR-LISTING").location.ends_with("/files/"));
    assert!(!f("WEB-COOKIE-HTTPONLY").evidence.contains("abc123"));
    assert!(!f("WEB-EXPOSED-ENV").evidence.contains("hunter2"));
    assert!(f("WEB-CORS-REFLECT").severity == scan::Severity::High);
    // The hanging page is an error entry; the scan went on.
    assert!(
        r.errors.iter().any(|e| e.url.ends_with("/slow")),
        "{:?}",
        r.errors
    );
    assert!(r.pages >= 6, "{} pages", r.pages);
    assert!(!r.budget_exhausted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_specific_issues_are_found() {
    let port = serve(Site {
        hardened: false,
        tls: true,
    })
    .await;
    let r = web::scan(&format!("https://127.0.0.1:{port}/"), &opts())
        .await
        .unwrap();
    let got = ids(&r);
    for id in [
        "WEB-HDR-HSTS",
        "WEB-COOKIE-SECURE",
        "WEB-MIXED-CONTENT",
        "WEB-FORM-ACTION-HTTP",
        "WEB-EXPOSED-GIT",
        "WEB-REFLECTED-INPUT",
    ] {
        assert!(got.contains(id), "{id} missing: {got:?}");
    }
    // A password over HTTPS is fine; no plain-HTTP port was given.
    assert!(!got.contains("WEB-FORM-PASSWORD-HTTP"));
    assert!(!got.contains("WEB-HTTP-NO-REDIRECT"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hardened_site_has_no_finding() {
    let port = serve(Site {
        hardened: true,
        tls: true,
    })
    .await;
    let http_port = redirector(port).await;
    let r = web::scan(
        &format!("https://127.0.0.1:{port}/"),
        &Options {
            http_port: Some(http_port),
            ..opts()
        },
    )
    .await
    .unwrap();
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
    assert!(r.pages >= 4, "{} pages", r.pages);

    // The same site without the redirect listener's help: plain HTTP
    // that answers 200 is a finding.
    let plain = raw_server(|_| {
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok".to_vec()
    })
    .await;
    let r = web::scan(
        &format!("https://127.0.0.1:{port}/"),
        &Options {
            http_port: Some(plain),
            ..opts()
        },
    )
    .await
    .unwrap();
    assert_eq!(ids(&r), set(&["WEB-HTTP-NO-REDIRECT"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_loop_is_a_finding() {
    let port = raw_server(|req| {
        let to = if req.starts_with(b"GET /a ") {
            "/b"
        } else {
            "/a"
        };
        format!(
            "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .into_bytes()
    })
    .await;
    let t = Instant::now();
    let r = web::scan(&format!("http://127.0.0.1:{port}/"), &opts())
        .await
        .unwrap();
    assert!(ids(&r).contains("WEB-REDIRECT-LOOP"), "{:#?}", r.findings);
    let f = r
        .findings
        .iter()
        .find(|f| f.id == "WEB-REDIRECT-LOOP")
        .unwrap();
    assert!(f.evidence.contains("/a -> "), "{}", f.evidence);
    assert!(t.elapsed() < Duration::from_secs(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_servers_give_clear_errors_in_time() {
    // Accepts, reads, never answers.
    let hang = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hang_port = hang.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = hang.accept().await {
            held.push(s);
        }
    });
    let garbage = raw_server(|_| b"SSH-2.0-OpenSSH_9.2\r\n\x00\x01\x02garbage".to_vec()).await;
    let huge_headers = raw_server(|_| {
        let mut r = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..20_000 {
            r.extend_from_slice(format!("X-Filler-{i}: {}\r\n", "a".repeat(50)).as_bytes());
        }
        r.extend_from_slice(b"\r\n");
        r
    })
    .await;
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    // Accepts, reads the request, closes without a byte.
    let closes = raw_server(|_| Vec::new()).await;
    let cases = [
        (format!("http://127.0.0.1:{closes}/"), "connection closed"),
        (
            format!("http://127.0.0.1:{hang_port}/"),
            "no response within",
        ),
        (
            format!("http://127.0.0.1:{garbage}/"),
            "not an HTTP response",
        ),
        (
            format!("http://127.0.0.1:{huge_headers}/"),
            "not an HTTP response",
        ),
        (format!("http://127.0.0.1:{refused}/"), "connection refused"),
        (
            format!("https://127.0.0.1:{garbage}/"),
            "TLS handshake failed",
        ),
        ("http://no-such-host.invalid/".to_owned(), "cannot resolve"),
        ("ftp://127.0.0.1/".to_owned(), "invalid URL"),
        ("http://127.0.0.1:99999/".to_owned(), "invalid URL"),
    ];
    for (url, want) in cases {
        let t = Instant::now();
        let err = tokio::time::timeout(Duration::from_secs(20), web::scan(&url, &opts()))
            .await
            .unwrap_or_else(|_| panic!("{url}: scan did not finish"))
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{url}: {err}");
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "{url}: {:?}",
            t.elapsed()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_body_is_cut_and_scan_goes_on() {
    // Headers, then an endless body (no length, never closes).
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let _ = s.read(&mut buf).await;
                let head = "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html><body>";
                if s.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![b'A'; 64 * 1024];
                while s.write_all(&chunk).await.is_ok() {}
            });
        }
    });
    let t = Instant::now();
    let r = web::scan(
        &format!("http://127.0.0.1:{port}/"),
        &Options {
            active: false,
            ..opts()
        },
    )
    .await
    .unwrap();
    assert_eq!(r.truncated, [format!("http://127.0.0.1:{port}/")]);
    assert!(ids(&r).contains("WEB-HDR-CSP"));
    assert!(t.elapsed() < Duration::from_secs(20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_and_rate_limits_hold() {
    let port = serve(Site {
        hardened: false,
        tls: false,
    })
    .await;
    // A 1.5 s budget ends the scan early (the /slow page alone takes 2 s),
    // and the report says so.
    let t = Instant::now();
    let r = web::scan(
        &format!("http://127.0.0.1:{port}/"),
        &Options {
            time_budget: Duration::from_millis(1500),
            ..opts()
        },
    )
    .await
    .unwrap();
    assert!(r.budget_exhausted);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    // 10 requests/s: n requests need at least (n-1) * 100 ms.
    let t = Instant::now();
    let r = web::scan(
        &format!("http://127.0.0.1:{port}/about.html"),
        &Options {
            rate: Some(10),
            max_pages: 1,
            ..opts()
        },
    )
    .await
    .unwrap();
    assert!(r.requests >= 11, "{} requests", r.requests);
    let min = Duration::from_millis(100 * (r.requests - 1));
    assert!(t.elapsed() >= min, "{:?} < {min:?}", t.elapsed());
}
