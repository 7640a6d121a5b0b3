//! The gateway's one error type, and the single place where errors become
//! HTTP status codes ([`Error::status`]).

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use http::StatusCode;

/// A configuration error located in its source: file, line, column and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file name (or `<embedded default>`).
    pub file: String,
    /// 1-based line, 0 when unknown.
    pub line: usize,
    /// 1-based column, 0 when unknown.
    pub column: usize,
    /// Dotted key path such as `listener.listen`, when it could be determined.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file)?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if let Some(key) = &self.key {
            write!(f, ": key `{key}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Everything that can go wrong in the gateway, from loading a config to
/// forwarding one request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    ConfigRead {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The config is invalid (syntax, type, value or cross-reference).
    #[error("invalid config: {0}")]
    Config(Box<ConfigError>),
    /// A certificate or key file is missing, unreadable or invalid.
    #[error("certificate {path}: {message}")]
    Certificate {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A listening socket could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why (for example "address already in use").
        source: io::Error,
    },
    /// Another I/O failure (data directory, pid file, log file).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Why it failed.
        source: io::Error,
    },
    /// Request rejected before forwarding: malformed or ambiguous framing.
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// Request target longer than `limits.max_uri_bytes`.
    #[error("request URI too long")]
    UriTooLong,
    /// Header block larger than `limits.max_header_bytes` or more than `limits.max_headers`.
    #[error("request header fields too large")]
    HeadersTooLarge,
    /// Request body larger than `limits.max_body_bytes`.
    #[error("request body too large")]
    BodyTooLarge,
    /// The client stopped sending its body (idle timeout or below the minimum rate).
    #[error("request body timeout: {0}")]
    BodyTimeout(&'static str),
    /// No route matches the request's host and path.
    #[error("no route for this host and path")]
    NoRoute,
    /// Every server of the upstream is unhealthy or ejected.
    #[error("no healthy server in upstream {0}")]
    NoHealthyUpstream(String),
    /// Connecting to the upstream server failed (refused, unreachable).
    #[error("cannot connect to upstream server {server}: {source}")]
    UpstreamConnect {
        /// The server.
        server: String,
        /// Why.
        source: io::Error,
    },
    /// Connecting to the upstream server did not finish within `upstream_connect_timeout`.
    #[error("timed out connecting to upstream server {0}")]
    UpstreamConnectTimeout(String),
    /// The upstream did not send response headers within `upstream_response_timeout`.
    #[error("upstream server {0} did not answer in time")]
    UpstreamTimeout(String),
    /// The upstream connection failed after it was established.
    #[error("upstream server {server} failed: {message}")]
    Upstream {
        /// The server.
        server: String,
        /// What happened.
        message: String,
    },
    /// The method is not supported by the proxy (CONNECT).
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A body stream failed.
    #[error("body stream: {0}")]
    Body(String),
    /// A route's WAF rules do not load (the message has the file and line).
    #[error("WAF rules of route `{route}`: {message}")]
    WafRules {
        /// The route.
        route: String,
        /// What is wrong, `file:line: …`.
        message: String,
    },
}

impl Error {
    /// The HTTP status a client receives for this error. This is the ONLY place
    /// where gateway errors are mapped to status codes.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::UriTooLong => StatusCode::URI_TOO_LONG,
            Error::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Error::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Error::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Error::NoRoute => StatusCode::NOT_FOUND,
            Error::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Error::NoHealthyUpstream(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::UpstreamConnect { .. } | Error::Upstream { .. } | Error::Body(_) => {
                StatusCode::BAD_GATEWAY
            }
            Error::UpstreamConnectTimeout(_) | Error::UpstreamTimeout(_) => {
                StatusCode::GATEWAY_TIMEOUT
            }
            Error::ConfigRead { .. }
            | Error::Config(_)
            | Error::Certificate { .. }
            | Error::Bind { .. }
            | Error::Io { .. }
            | Error::WafRules { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// True for errors in the configuration (exit code 2 in the CLI).
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            Error::ConfigRead { .. }
                | Error::Config(_)
                | Error::Certificate { .. }
                | Error::WafRules { .. }
        )
    }

    /// Builds an [`Error::Io`] with context.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// Finds a gateway error in an error's source chain (hyper wraps body errors).
    pub fn find_in<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a Error> {
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
        // Bounded walk: source chains are short, but never trust them to end.
        for _ in 0..16 {
            let e = cur?;
            if let Some(found) = e.downcast_ref::<Error>() {
                return Some(found);
            }
            // io::Error hides a custom payload from `source()`: look inside.
            if let Some(found) = e
                .downcast_ref::<io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<Error>())
            {
                return Some(found);
            }
            cur = e.source();
        }
        None
    }
}

/// Result alias of the gateway crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_mapped_in_one_place() {
        assert_eq!(Error::BadRequest("x").status(), 400);
        assert_eq!(Error::UriTooLong.status(), 414);
        assert_eq!(Error::HeadersTooLarge.status(), 431);
        assert_eq!(Error::BodyTooLarge.status(), 413);
        assert_eq!(Error::NoHealthyUpstream("a".into()).status(), 503);
        assert_eq!(Error::UpstreamTimeout("a".into()).status(), 504);
        let refused = Error::UpstreamConnect {
            server: "a".into(),
            source: io::Error::from(io::ErrorKind::ConnectionRefused),
        };
        assert_eq!(refused.status(), 502);
    }

    #[test]
    fn config_error_names_file_line_column_and_key() {
        let e = ConfigError {
            file: "p.toml".into(),
            line: 3,
            column: 10,
            key: Some("listener.listen".into()),
            message: "invalid socket address".into(),
        };
        assert_eq!(
            e.to_string(),
            "p.toml:3:10: key `listener.listen`: invalid socket address"
        );
    }
}
