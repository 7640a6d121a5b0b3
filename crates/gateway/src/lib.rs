//! palisade's gateway: a production TLS reverse proxy.
//!
//! - [`config`]: TOML config parsed into validated types (errors with file,
//!   line, column and key); [`limits`]: every resource limit with its default.
//! - [`server::Gateway`]: listeners (http/https), connection caps, graceful
//!   shutdown, atomic config reload.
//! - [`guard`]: HTTP/1 framing checks against request smuggling.
//! - [`proxy`]: routing ([`route`]), upstream pools ([`upstream`]), header
//!   handling, WebSocket pass-through, error answers.
//! - [`admin`], [`metrics`], [`accesslog`]: observability.
//! - [`demo`]: the built-in demo/echo upstream.

pub mod accesslog;
pub mod admin;
pub mod body;
pub mod config;
pub mod dashboard;
pub mod demo;
pub mod error;
pub mod events_glue;
pub mod guard;
pub mod identity_glue;
pub mod limits;
pub mod metrics;
pub mod portal;
pub mod proxy;
pub mod proxy_protocol;
pub mod route;
pub mod server;
pub mod shield_glue;
pub mod tls;
pub mod tunnel;
pub mod upstream;
pub mod upstream_h1;
pub mod waf;

pub use config::Config;
pub use error::{ConfigError, Error, Result};
pub use guard::RawHead;
pub use server::Gateway;
