//! palisade identity: who may reach what.
//!
//! * [`password`]: argon2id hashing with bounded concurrency, rehash on
//!   parameter change, and the password policy (length, zxcvbn, breached
//!   list via [`breach`]);
//! * [`username`]: NFKC normalisation and limits;
//! * [`totp`]: RFC 6238 codes, enrollment URI and QR codes, recovery codes;
//! * [`enroll`]: TOTP self-enrolment through the portal (pending secrets);
//! * [`users`]: the SQLite user database;
//! * [`session`]: sessions in the state store (timeouts, rotation, revocation);
//! * [`bruteforce`]: failure counters and back-off locks;
//! * [`access`]: first-match access rules, default deny;
//! * [`replay`]: TOTP replay protection shared through the state store;
//! * [`web`]: the login portal's CSRF tokens, forms, cookies and pages.
//!
//! See docs/identity.md.

pub mod access;
pub mod breach;
pub mod bruteforce;
pub mod config;
pub mod enroll;
mod error;
pub mod password;
pub mod replay;
pub mod session;
pub mod totp;
pub mod username;
pub mod users;
pub mod web;

pub use access::{AccessRules, ClientCert, Decision, Policy, Request, RuleConfig, Subject};
pub use breach::BreachFilter;
pub use bruteforce::{BruteForceConfig, Factor, Regulator};
pub use config::{AccessConfig, IdentityConfig};
pub use error::{Error, Result};
pub use password::{HashParams, Hasher, Policy as PasswordPolicy, PolicyConfig};
pub use session::{Refusal, Session, SessionConfig, Sessions};
pub use username::normalize_username;
pub use users::{User, UserDb};
