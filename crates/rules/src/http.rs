//! A minimal HTTP/1.1 GET client for downloads: HTTP and HTTPS (rustls,
//! Mozilla's roots), bounded redirects, body size cap, timeouts.

use std::sync::Arc;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::crs::{CONNECT_TIMEOUT, DOWNLOAD_TIMEOUT, MAX_REDIRECTS};
use crate::Error;

/// A parsed `http(s)://host[:port]/path` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Url {
    tls: bool,
    host: String,
    port: u16,
    /// Path and query, starting with `/`.
    target: String,
}

fn parse_url(url: &str) -> Result<Url, Error> {
    let bad = || Error::InvalidUrl(url.to_owned());
    let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(bad());
    };
    let (authority, target) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_owned()),
        Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
        None => (rest, "/".to_owned()),
    };
    let target = target.split('#').next().unwrap_or("/").to_owned();
    if authority.contains('@') || authority.is_empty() {
        return Err(bad());
    }
    let default_port = if tls { 443 } else { 80 };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let end = v6.find(']').ok_or_else(bad)?;
        let port = match &v6[end + 1..] {
            "" => default_port,
            p => p
                .strip_prefix(':')
                .and_then(|p| p.parse().ok())
                .ok_or_else(bad)?,
        };
        (v6[..end].to_owned(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), p.parse().map_err(|_| bad())?),
            None => (authority.to_owned(), default_port),
        }
    };
    if host.is_empty() || target.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(bad());
    }
    Ok(Url {
        tls,
        host,
        port,
        target,
    })
}

/// Resolves a `Location` header against the URL it came from.
fn resolve(base: &Url, location: &str) -> Result<String, Error> {
    if location.starts_with("http://") || location.starts_with("https://") {
        return Ok(location.to_owned());
    }
    let scheme = if base.tls { "https" } else { "http" };
    let host = if base.host.contains(':') {
        format!("[{}]", base.host)
    } else {
        base.host.clone()
    };
    if let Some(rest) = location.strip_prefix("//") {
        return Ok(format!("{scheme}://{rest}"));
    }
    if location.starts_with('/') {
        return Ok(format!("{scheme}://{host}:{}{location}", base.port));
    }
    Err(Error::InvalidUrl(location.to_owned()))
}

/// GETs `url`, following up to [`MAX_REDIRECTS`] redirects; the body must
/// be at most `limit` bytes.
pub(crate) async fn get(url: &str, limit: u64) -> Result<Vec<u8>, Error> {
    let work = async {
        let mut current = url.to_owned();
        for _ in 0..=MAX_REDIRECTS {
            let parsed = parse_url(&current)?;
            let resp = request(&parsed, &current).await?;
            let status = resp.status();
            if status.is_redirection() {
                let location = resp
                    .headers()
                    .get(hyper::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| Error::Download {
                        url: current.clone(),
                        reason: format!("{status} without a Location header"),
                    })?;
                current = resolve(&parsed, location)?;
                continue;
            }
            if !status.is_success() {
                return Err(Error::HttpStatus {
                    url: current,
                    status: status.as_u16(),
                });
            }
            return read_body(resp.into_body(), limit, &current).await;
        }
        Err(Error::TooManyRedirects {
            url: url.to_owned(),
            limit: MAX_REDIRECTS,
        })
    };
    tokio::time::timeout(DOWNLOAD_TIMEOUT, work)
        .await
        .map_err(|_| Error::Download {
            url: url.to_owned(),
            reason: format!("timed out after {} s", DOWNLOAD_TIMEOUT.as_secs()),
        })?
}

async fn read_body(mut body: Incoming, limit: u64, url: &str) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Error::Download {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
        if let Ok(data) = frame.into_data() {
            if (out.len() + data.len()) as u64 > limit {
                return Err(Error::TooLarge {
                    what: url.to_owned(),
                    limit,
                });
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}

async fn request(url: &Url, text: &str) -> Result<hyper::Response<Incoming>, Error> {
    let fail = |reason: String| Error::Download {
        url: text.to_owned(),
        reason,
    };
    let tcp = tokio::time::timeout(
        CONNECT_TIMEOUT,
        TcpStream::connect((url.host.as_str(), url.port)),
    )
    .await
    .map_err(|_| {
        fail(format!(
            "connect timed out after {} s",
            CONNECT_TIMEOUT.as_secs()
        ))
    })?
    .map_err(|e| fail(format!("cannot connect to {}:{}: {e}", url.host, url.port)))?;
    if url.tls {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let name = rustls_pki_types::ServerName::try_from(url.host.clone())
            .map_err(|e| fail(format!("invalid server name: {e}")))?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| fail(format!("TLS handshake: {e}")))?;
        send(tls, url, text).await
    } else {
        send(tcp, url, text).await
    }
}

async fn send<S>(stream: S, url: &Url, text: &str) -> Result<hyper::Response<Incoming>, Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let fail = |reason: String| Error::Download {
        url: text.to_owned(),
        reason,
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| fail(e.to_string()))?;
    tokio::spawn(async move {
        // The connection ends with the response body or an error the
        // request future reports.
        let _ = conn.await;
    });
    let host = match (url.tls, url.port) {
        (true, 443) | (false, 80) => url.host.clone(),
        _ if url.host.contains(':') => format!("[{}]:{}", url.host, url.port),
        _ => format!("{}:{}", url.host, url.port),
    };
    let req = hyper::Request::get(url.target.as_str())
        .header(hyper::header::HOST, host)
        .header(
            hyper::header::USER_AGENT,
            concat!("palisade/", env!("CARGO_PKG_VERSION")),
        )
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| fail(e.to_string()))?;
    sender
        .send_request(req)
        .await
        .map_err(|e| fail(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = parse_url("https://github.com/a/b.tar.gz?x=1").unwrap();
        assert_eq!(
            (u.tls, u.host.as_str(), u.port, u.target.as_str()),
            (true, "github.com", 443, "/a/b.tar.gz?x=1")
        );
        let u = parse_url("http://127.0.0.1:8080").unwrap();
        assert_eq!((u.port, u.target.as_str()), (8080, "/"));
        let u = parse_url("http://[::1]:9/x").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 9));
        assert!(parse_url("ftp://x/").is_err());
        assert!(parse_url("http://user@x/").is_err());
        assert!(parse_url("http://x:99999/").is_err());
        assert_eq!(resolve(&u, "/y").unwrap(), "http://[::1]:9/y");
        assert_eq!(resolve(&u, "https://o/z").unwrap(), "https://o/z");
        assert!(resolve(&u, "relative").is_err());
    }
}
