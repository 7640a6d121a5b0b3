//! A small certificate authority for device identities.
//!
//! A PKI directory holds (see [`Layout`]):
//!
//! ```text
//! inventory.json        CA names, CRL number, every issued certificate
//! root-ca.crt           root CA (self-signed, ECDSA P-256, path length 1)
//! root-ca.key           its key: PKCS#8 "ENCRYPTED PRIVATE KEY" (PBES2:
//!                       scrypt N=2^14 r=8 p=4, AES-256-CBC)
//! issuing-ca.crt        issuing CA (signed by the root, path length 0)
//! issuing-ca.key        its key, encrypted the same way
//! ca-bundle.pem         issuing + root: the trust bundle for mTLS listeners
//! crl.pem               the CRL signed by the issuing CA (`Pki::write_crl`)
//! devices/NAME/         NAME.crt, NAME.key (PKCS#8, 0600), chain.pem
//!                       (leaf + issuing), NAME.p12 and NAME.p12.pass (0600)
//! ```
//!
//! The CA keys are encrypted with a [`Secret`]: a passphrase or the bytes
//! of a key file; both are the PBES2 password, so `openssl pkey -in
//! root-ca.key` opens them with the same passphrase. The keys are only ever
//! decrypted in memory, and error messages never contain key material.
//!
//! ```no_run
//! use pki::{IssueRequest, KeyType, Pki, Secret};
//! use std::path::Path;
//!
//! let secret = Secret::passphrase("correct horse battery staple".to_string().into())?;
//! let mut ca = Pki::init(Path::new("pki"), &secret, &Default::default())?;
//! let issued = ca.issue(&secret, &IssueRequest::new("sensor-01", KeyType::P256))?;
//! println!("{} serial {}", issued.files.p12.display(), issued.entry.serial);
//! ca.revoke("sensor-01", pki::Reason::KeyCompromise)?;
//! ca.write_crl(&secret)?;
//! # Ok::<(), pki::Error>(())
//! ```

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, CertificateRevocationListParams,
    DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair,
    KeyUsagePurpose, RevocationReason, RevokedCertParams, SanType, SerialNumber,
};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

pub mod lock;
mod p12;

pub use p12::build as build_pkcs12;

/// Inventory format version.
pub const INVENTORY_VERSION: u32 = 1;
/// Shortest passphrase accepted: 12 characters (NIST SP 800-63B asks for at
/// least 8; CA keys deserve more).
pub const MIN_PASSPHRASE_CHARS: usize = 12;
/// Shortest key file accepted: 32 bytes (256 bits of key material).
pub const MIN_KEY_FILE_BYTES: usize = 32;
/// Largest key, certificate, key file or inventory read: 16 MiB. Bounds
/// memory on a wrong path (a device file, a huge log) or a hostile file.
pub const MAX_FILE_BYTES: u64 = 16 << 20;
/// Longest device certificate validity: 825 days (the CA/B Forum's former
/// maximum; devices should renew, not carry decade-long certificates).
pub const MAX_DEVICE_DAYS: u32 = 825;
/// Longest device name: 64 characters (the X.520 CommonName upper bound).
pub const MAX_NAME_LEN: usize = 64;
/// Most SANs per certificate: 32.
pub const MAX_SANS: usize = 32;
/// Validity of a CRL written by [`Pki::write_crl`]: 7 days.
const DEFAULT_CRL_DAYS: u32 = 7;
/// Backdating of notBefore: 5 minutes, for devices whose clocks lag.
const BACKDATE: Duration = Duration::minutes(5);

/// The crate's error type. Messages never contain key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// An encrypted CA key did not decrypt: wrong passphrase or key file, or a corrupted file.
    #[error("cannot decrypt {path}: wrong passphrase or key file, or the file is corrupted")]
    Decrypt {
        /// The key file.
        path: PathBuf,
    },
    /// A file exists but does not have the expected content.
    #[error("{path}: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A request is invalid (bad name, SAN, validity, unknown certificate…).
    #[error("{0}")]
    Invalid(String),
    /// Certificate or CRL generation failed.
    #[error("{0}")]
    Crypto(String),
}

impl Error {
    fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

pub(crate) fn random(buf: &mut [u8]) -> Result<(), Error> {
    getrandom::getrandom(buf).map_err(|e| Error::Crypto(format!("random generator: {e}")))
}

/// What protects the CA keys at rest.
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// A passphrase (at least [`MIN_PASSPHRASE_CHARS`] characters; a
    /// trailing newline, as in a file, is removed).
    pub fn passphrase(p: Zeroizing<String>) -> Result<Self, Error> {
        let t = p.trim_end_matches(['\n', '\r']);
        if t.chars().count() < MIN_PASSPHRASE_CHARS {
            return Err(Error::Invalid(format!(
                "the passphrase is shorter than {MIN_PASSPHRASE_CHARS} characters"
            )));
        }
        Ok(Secret(Zeroizing::new(t.as_bytes().to_vec())))
    }

    /// The bytes of a key file (at least [`MIN_KEY_FILE_BYTES`]).
    pub fn key_file(path: &Path) -> Result<Self, Error> {
        let bytes = Zeroizing::new(read_limited(path)?);
        if bytes.len() < MIN_KEY_FILE_BYTES {
            return Err(Error::Invalid(format!(
                "key file {} holds fewer than {MIN_KEY_FILE_BYTES} bytes",
                path.display()
            )));
        }
        Ok(Secret(bytes))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Key algorithm of a device certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    /// ECDSA on P-256 with SHA-256.
    P256,
    /// Ed25519.
    Ed25519,
}

impl std::str::FromStr for KeyType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "p256" | "P256" | "ecdsa" => Ok(KeyType::P256),
            "ed25519" | "Ed25519" => Ok(KeyType::Ed25519),
            _ => Err(Error::Invalid(format!(
                "unknown key type {s:?} (p256 or ed25519)"
            ))),
        }
    }
}

impl KeyType {
    fn alg(self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            KeyType::P256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyType::Ed25519 => &rcgen::PKCS_ED25519,
        }
    }
}

/// Revocation reasons (RFC 5280 §5.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Reason {
    /// No reason given.
    Unspecified,
    /// The device key leaked.
    KeyCompromise,
    /// The device changed owner or role.
    AffiliationChanged,
    /// Replaced by a newer certificate.
    Superseded,
    /// The device was decommissioned.
    CessationOfOperation,
    /// Temporarily suspended.
    CertificateHold,
    /// Access withdrawn.
    PrivilegeWithdrawn,
}

impl std::str::FromStr for Reason {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Ok(match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "unspecified" => Reason::Unspecified,
            "key-compromise" | "keycompromise" => Reason::KeyCompromise,
            "affiliation-changed" => Reason::AffiliationChanged,
            "superseded" => Reason::Superseded,
            "cessation-of-operation" | "decommissioned" => Reason::CessationOfOperation,
            "certificate-hold" | "hold" => Reason::CertificateHold,
            "privilege-withdrawn" => Reason::PrivilegeWithdrawn,
            _ => {
                return Err(Error::Invalid(format!(
                    "unknown reason {s:?} (unspecified, key-compromise, affiliation-changed, \
                     superseded, cessation-of-operation, certificate-hold, privilege-withdrawn)"
                )))
            }
        })
    }
}

impl Reason {
    fn rcgen(self) -> RevocationReason {
        match self {
            Reason::Unspecified => RevocationReason::Unspecified,
            Reason::KeyCompromise => RevocationReason::KeyCompromise,
            Reason::AffiliationChanged => RevocationReason::AffiliationChanged,
            Reason::Superseded => RevocationReason::Superseded,
            Reason::CessationOfOperation => RevocationReason::CessationOfOperation,
            Reason::CertificateHold => RevocationReason::CertificateHold,
            Reason::PrivilegeWithdrawn => RevocationReason::PrivilegeWithdrawn,
        }
    }
}

/// Lifecycle state of an inventory entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Issued and not revoked (see [`Entry::status_at`] for expiry).
    Active,
    /// Revoked: listed in the next CRL.
    Revoked,
    /// Replaced by `pki renew` (not revoked: it simply expires).
    Superseded,
}

/// One issued certificate in the inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Device name (the subject CN).
    pub name: String,
    /// Serial number, lowercase hex.
    pub serial: String,
    /// Key type.
    pub key_type: KeyType,
    /// SANs as given (`dns:…`, `uri:…`, `ip:…`).
    pub sans: Vec<String>,
    /// notBefore, Unix seconds.
    pub not_before: i64,
    /// notAfter, Unix seconds.
    pub not_after: i64,
    /// State.
    pub status: Status,
    /// When revoked, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<i64>,
    /// Why revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
}

impl Entry {
    /// "active", "expired", "revoked" or "superseded" at `now` (Unix seconds).
    pub fn status_at(&self, now: i64) -> &'static str {
        match self.status {
            Status::Revoked => "revoked",
            Status::Superseded => "superseded",
            Status::Active if now > self.not_after => "expired",
            Status::Active => "active",
        }
    }
}

/// The inventory file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    /// Format version ([`INVENTORY_VERSION`]).
    pub version: u32,
    /// Organization (O) in every subject.
    pub organization: String,
    /// Root CA common name.
    pub root_cn: String,
    /// Issuing CA common name.
    pub issuing_cn: String,
    /// Number of the next CRL.
    pub next_crl_number: u64,
    /// Every certificate issued, oldest first.
    pub certificates: Vec<Entry>,
}

/// Options of [`Pki::init`].
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Organization (O) of every subject.
    pub organization: String,
    /// Root CA validity in days (default 3650).
    pub root_days: u32,
    /// Issuing CA validity in days (default 1825).
    pub issuing_days: u32,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            organization: "palisade".into(),
            root_days: 3650,
            issuing_days: 1825,
        }
    }
}

/// A device certificate request.
#[derive(Debug, Clone)]
pub struct IssueRequest {
    /// Device name: 1–64 of `A-Z a-z 0-9 . _ -`, not starting with `.` or `-`.
    pub name: String,
    /// Validity in days (default 90, at most [`MAX_DEVICE_DAYS`]).
    pub days: u32,
    /// SANs: `dns:NAME`, `uri:URI`, `ip:ADDR` or bare (IP, URI with `://`,
    /// else DNS). None: `dns:<name>`.
    pub sans: Vec<String>,
    /// Key type of the device key.
    pub key_type: KeyType,
    /// Start of validity (Unix seconds); `None`: now (backdated 5 minutes).
    /// An earlier start makes already-expired certificates for tests of
    /// the listeners' expiry checks.
    pub valid_from: Option<i64>,
}

impl IssueRequest {
    /// A request with the defaults (90 days, SAN `dns:<name>`).
    pub fn new(name: &str, key_type: KeyType) -> Self {
        IssueRequest {
            name: name.to_string(),
            days: 90,
            sans: Vec::new(),
            key_type,
            valid_from: None,
        }
    }
}

/// Paths of a PKI directory. Listeners use [`Layout::ca_bundle`] as the
/// client-certificate trust bundle and [`Layout::crl`] as the CRL.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The PKI directory.
    pub dir: PathBuf,
}

impl Layout {
    /// Layout of `dir`.
    pub fn new(dir: &Path) -> Self {
        Layout {
            dir: dir.to_path_buf(),
        }
    }
    /// inventory.json
    pub fn inventory(&self) -> PathBuf {
        self.dir.join("inventory.json")
    }
    /// root-ca.crt
    pub fn root_cert(&self) -> PathBuf {
        self.dir.join("root-ca.crt")
    }
    /// root-ca.key (encrypted)
    pub fn root_key(&self) -> PathBuf {
        self.dir.join("root-ca.key")
    }
    /// issuing-ca.crt
    pub fn issuing_cert(&self) -> PathBuf {
        self.dir.join("issuing-ca.crt")
    }
    /// issuing-ca.key (encrypted)
    pub fn issuing_key(&self) -> PathBuf {
        self.dir.join("issuing-ca.key")
    }
    /// ca-bundle.pem: issuing + root certificates.
    pub fn ca_bundle(&self) -> PathBuf {
        self.dir.join("ca-bundle.pem")
    }
    /// crl.pem
    pub fn crl(&self) -> PathBuf {
        self.dir.join("crl.pem")
    }
    /// devices/NAME
    pub fn device_dir(&self, name: &str) -> PathBuf {
        self.dir.join("devices").join(name)
    }
}

/// Files written for one device.
#[derive(Debug, Clone)]
pub struct DeviceFiles {
    /// NAME.crt (PEM)
    pub cert: PathBuf,
    /// NAME.key (PKCS#8 PEM, mode 0600)
    pub key: PathBuf,
    /// chain.pem: leaf + issuing CA
    pub chain: PathBuf,
    /// NAME.p12 (key + leaf + issuing + root)
    pub p12: PathBuf,
    /// NAME.p12.pass: the PKCS#12 password (mode 0600)
    pub p12_password: PathBuf,
}

/// The result of [`Pki::issue`] / [`Pki::renew`].
#[derive(Debug, Clone)]
pub struct Issued {
    /// The new inventory entry.
    pub entry: Entry,
    /// Where the files are.
    pub files: DeviceFiles,
}

/// An opened PKI directory.
#[derive(Debug)]
pub struct Pki {
    layout: Layout,
    inventory: Inventory,
}

impl Pki {
    /// Creates the root and issuing CAs in `dir` (created if needed; refused
    /// if it already holds a PKI).
    pub fn init(dir: &Path, secret: &Secret, opts: &InitOptions) -> Result<Pki, Error> {
        let layout = Layout::new(dir);
        // Checked before and after taking the lock: a plain file at `dir`
        // gets the clear message, and a concurrent `init` loses cleanly.
        if layout.inventory().exists() || layout.root_key().exists() {
            return Err(Error::Invalid(format!(
                "{} already holds a PKI (inventory.json or root-ca.key exists)",
                dir.display()
            )));
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
        let lock = lock::DirLock::acquire(dir, lock::LOCK_TIMEOUT)?;
        if layout.inventory().exists() || layout.root_key().exists() {
            return Err(Error::Invalid(format!(
                "{} already holds a PKI (inventory.json or root-ca.key exists)",
                dir.display()
            )));
        }
        if opts.organization.trim().is_empty() || opts.organization.len() > MAX_NAME_LEN {
            return Err(Error::Invalid(
                "organization must be 1-64 characters".into(),
            ));
        }
        let inv = Inventory {
            version: INVENTORY_VERSION,
            organization: opts.organization.clone(),
            root_cn: format!("{} Root CA", opts.organization),
            issuing_cn: format!("{} Device Issuing CA", opts.organization),
            next_crl_number: 1,
            certificates: Vec::new(),
        };
        let now = OffsetDateTime::now_utc();
        let gen = |e: rcgen::Error| Error::Crypto(format!("CA generation: {e}"));
        let root_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(gen)?;
        let issuing_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(gen)?;

        let mut root_params = ca_params(&inv, true)?;
        root_params.not_before = now - BACKDATE;
        root_params.not_after = now + Duration::days(i64::from(opts.root_days));
        root_params.serial_number = Some(random_serial()?.1);
        let root = root_params.self_signed(&root_key).map_err(gen)?;

        let mut iss_params = ca_params(&inv, false)?;
        iss_params.not_before = now - BACKDATE;
        iss_params.not_after =
            now + Duration::days(i64::from(opts.issuing_days.min(opts.root_days)));
        iss_params.serial_number = Some(random_serial()?.1);
        let issuing = iss_params
            .signed_by(&issuing_key, &root, &root_key)
            .map_err(gen)?;

        write_private(&layout.root_key(), &encrypt_key(&root_key, secret)?)?;
        write_private(&layout.issuing_key(), &encrypt_key(&issuing_key, secret)?)?;
        write_public(&layout.root_cert(), &root.pem())?;
        write_public(&layout.issuing_cert(), &issuing.pem())?;
        write_public(
            &layout.ca_bundle(),
            &format!("{}{}", issuing.pem(), root.pem()),
        )?;
        let mut pki = Pki {
            layout,
            inventory: inv,
        };
        pki.save()?;
        pki.write_crl_inner(secret, DEFAULT_CRL_DAYS)?;
        drop(lock);
        Ok(pki)
    }

    /// Opens an existing PKI directory (no secret needed to read it).
    ///
    /// Every change ([`Pki::issue`], [`Pki::renew`], [`Pki::revoke`],
    /// [`Pki::write_crl`]) locks the directory, re-reads the inventory from
    /// disk, applies itself and saves before unlocking: commands running at
    /// the same time (other processes or threads) wait up to
    /// [`lock::LOCK_TIMEOUT`] for each other and never lose an entry.
    pub fn open(dir: &Path) -> Result<Pki, Error> {
        let layout = Layout::new(dir);
        let inventory = read_inventory(&layout.inventory())?;
        Ok(Pki { layout, inventory })
    }

    /// Takes the directory lock and reloads the inventory under it, so the
    /// change about to be made applies to the latest saved state.
    fn lock_fresh(&mut self) -> Result<lock::DirLock, Error> {
        let l = lock::DirLock::acquire(&self.layout.dir, lock::LOCK_TIMEOUT)?;
        self.inventory = read_inventory(&self.layout.inventory())?;
        Ok(l)
    }

    /// The directory's paths.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The inventory.
    pub fn inventory(&self) -> &Inventory {
        &self.inventory
    }

    /// Issues a certificate for a device. A device may hold one active
    /// certificate: revoke it or use [`Pki::renew`] first.
    pub fn issue(&mut self, secret: &Secret, req: &IssueRequest) -> Result<Issued, Error> {
        check_name(&req.name)?;
        let _lock = self.lock_fresh()?;
        if self
            .inventory
            .certificates
            .iter()
            .any(|e| e.name == req.name && e.status == Status::Active)
        {
            return Err(Error::Invalid(format!(
                "device {:?} already has an active certificate (renew or revoke it)",
                req.name
            )));
        }
        self.issue_inner(secret, req)
    }

    /// Issues a fresh certificate (new key, new serial) for a device with
    /// the same SANs and key type; the old one becomes `superseded`.
    pub fn renew(
        &mut self,
        secret: &Secret,
        name: &str,
        days: Option<u32>,
    ) -> Result<Issued, Error> {
        let _lock = self.lock_fresh()?;
        let Some(idx) = self
            .inventory
            .certificates
            .iter()
            .rposition(|e| e.name == name && e.status == Status::Active)
        else {
            return Err(Error::Invalid(format!(
                "no active certificate for device {name:?}"
            )));
        };
        let old = self.inventory.certificates[idx].clone();
        let default_days = ((old.not_after - old.not_before) / 86_400).max(1);
        let req = IssueRequest {
            name: old.name.clone(),
            days: days.unwrap_or(u32::try_from(default_days).unwrap_or(90)),
            sans: old.sans.clone(),
            key_type: old.key_type,
            valid_from: None,
        };
        let issued = self.issue_inner(secret, &req)?;
        // issue_inner saved the new entry; mark the old one and save again.
        self.inventory.certificates[idx].status = Status::Superseded;
        self.save()?;
        Ok(issued)
    }

    fn issue_inner(&mut self, secret: &Secret, req: &IssueRequest) -> Result<Issued, Error> {
        if req.days == 0 || req.days > MAX_DEVICE_DAYS {
            return Err(Error::Invalid(format!(
                "validity must be 1-{MAX_DEVICE_DAYS} days"
            )));
        }
        let sans = if req.sans.is_empty() {
            vec![format!("dns:{}", req.name)]
        } else {
            req.sans.clone()
        };
        if sans.len() > MAX_SANS {
            return Err(Error::Invalid(format!("more than {MAX_SANS} SANs")));
        }
        let san_types = sans
            .iter()
            .map(|s| parse_san(s))
            .collect::<Result<Vec<_>, _>>()?;
        let (issuing, issuing_key) = self.issuing(secret)?;
        let gen = |e: rcgen::Error| Error::Crypto(format!("certificate generation: {e}"));
        let key = KeyPair::generate_for(req.key_type.alg()).map_err(gen)?;
        let now = OffsetDateTime::now_utc();
        let (serial_hex, serial) = random_serial()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::OrganizationName,
            self.inventory.organization.as_str(),
        );
        dn.push(DnType::OrganizationalUnitName, "devices");
        dn.push(DnType::CommonName, req.name.as_str());
        params.distinguished_name = dn;
        params.subject_alt_names = san_types;
        // No basicConstraints on leaves: rcgen's explicit `cA FALSE` encodes a
        // DEFAULT value, which strict DER parsers (Python cryptography) refuse.
        params.is_ca = IsCa::NoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ClientAuth,
            ExtendedKeyUsagePurpose::ServerAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        params.key_identifier_method = KeyIdMethod::Sha256;
        params.serial_number = Some(serial);
        let start = match req.valid_from {
            Some(t) => OffsetDateTime::from_unix_timestamp(t)
                .map_err(|_| Error::Invalid(format!("valid_from {t} is out of range")))?,
            None => now - BACKDATE,
        };
        params.not_before = start;
        params.not_after = start + Duration::days(i64::from(req.days));
        let not_before = params.not_before.unix_timestamp();
        let not_after = params.not_after.unix_timestamp();
        let cert = params
            .signed_by(&key, &issuing, &issuing_key)
            .map_err(gen)?;

        let dir = self.layout.device_dir(&req.name);
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
        let files = DeviceFiles {
            cert: dir.join(format!("{}.crt", req.name)),
            key: dir.join(format!("{}.key", req.name)),
            chain: dir.join("chain.pem"),
            p12: dir.join(format!("{}.p12", req.name)),
            p12_password: dir.join(format!("{}.p12.pass", req.name)),
        };
        let issuing_pem = read_text(&self.layout.issuing_cert())?;
        let root_pem = read_text(&self.layout.root_cert())?;
        let key_der = Zeroizing::new(key.serialize_der());
        let password = random_password()?;
        let chain_der = [
            cert.der().to_vec(),
            pem_to_der(&self.layout.issuing_cert(), &issuing_pem)?,
            pem_to_der(&self.layout.root_cert(), &root_pem)?,
        ];
        let refs: Vec<&[u8]> = chain_der.iter().map(Vec::as_slice).collect();
        let p12 = p12::build(&key_der, &refs, &req.name, &password)?;

        write_private(&files.key, key.serialize_pem().as_bytes())?;
        write_public(&files.cert, &cert.pem())?;
        write_public(&files.chain, &format!("{}{issuing_pem}", cert.pem()))?;
        write_private(&files.p12_password, format!("{}\n", &*password).as_bytes())?;
        write_private(&files.p12, &p12)?;

        let entry = Entry {
            name: req.name.clone(),
            serial: serial_hex,
            key_type: req.key_type,
            sans,
            not_before,
            not_after,
            status: Status::Active,
            revoked_at: None,
            reason: None,
        };
        self.inventory.certificates.push(entry.clone());
        self.save()?;
        Ok(Issued { entry, files })
    }

    /// Marks a certificate revoked, by device name (its active certificate)
    /// or serial (hex, any case, optional `0x` and colons). Publish with
    /// [`Pki::write_crl`].
    pub fn revoke(&mut self, selector: &str, reason: Reason) -> Result<Entry, Error> {
        let _lock = self.lock_fresh()?;
        let serial = normalize_serial(selector);
        let idx = self
            .inventory
            .certificates
            .iter()
            .rposition(|e| e.name == selector && e.status == Status::Active)
            .or_else(|| {
                serial.as_ref().and_then(|s| {
                    self.inventory
                        .certificates
                        .iter()
                        .position(|e| &e.serial == s)
                })
            })
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "no active certificate named {selector:?} and no certificate with that serial"
                ))
            })?;
        let e = &mut self.inventory.certificates[idx];
        if e.status == Status::Revoked {
            return Err(Error::Invalid(format!(
                "certificate {} ({}) is already revoked",
                e.serial, e.name
            )));
        }
        e.status = Status::Revoked;
        e.revoked_at = Some(OffsetDateTime::now_utc().unix_timestamp());
        e.reason = Some(reason);
        let out = e.clone();
        self.save()?;
        Ok(out)
    }

    /// Signs a new CRL (valid for 7 days) listing every revoked
    /// certificate, writes it to [`Layout::crl`] atomically; returns its number.
    pub fn write_crl(&mut self, secret: &Secret) -> Result<u64, Error> {
        self.write_crl_for(secret, DEFAULT_CRL_DAYS)
    }

    /// [`Pki::write_crl`] with an explicit validity (1–365 days).
    pub fn write_crl_for(&mut self, secret: &Secret, days: u32) -> Result<u64, Error> {
        if !(1..=365).contains(&days) {
            return Err(Error::Invalid("CRL validity must be 1-365 days".into()));
        }
        let _lock = self.lock_fresh()?;
        self.write_crl_inner(secret, days)
    }

    fn write_crl_inner(&mut self, secret: &Secret, days: u32) -> Result<u64, Error> {
        let (issuing, issuing_key) = self.issuing(secret)?;
        let now = OffsetDateTime::now_utc();
        let mut revoked = Vec::new();
        for e in &self.inventory.certificates {
            if e.status != Status::Revoked {
                continue;
            }
            let bytes = hex_to_bytes(&e.serial).ok_or_else(|| Error::Corrupt {
                path: self.layout.inventory(),
                message: format!("serial {:?} is not hex", e.serial),
            })?;
            let at = e
                .revoked_at
                .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
                .unwrap_or(now);
            revoked.push(RevokedCertParams {
                serial_number: SerialNumber::from_slice(&bytes),
                revocation_time: at,
                reason_code: e.reason.map(Reason::rcgen),
                invalidity_date: None,
            });
        }
        let number = self.inventory.next_crl_number;
        let params = CertificateRevocationListParams {
            this_update: now - BACKDATE,
            next_update: now + Duration::days(i64::from(days)),
            crl_number: SerialNumber::from_slice(&number.to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs: revoked,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params
            .signed_by(&issuing, &issuing_key)
            .map_err(|e| Error::Crypto(format!("CRL generation: {e}")))?;
        let pem = crl
            .pem()
            .map_err(|e| Error::Crypto(format!("CRL encoding: {e}")))?;
        write_public(&self.layout.crl(), &pem)?;
        self.inventory.next_crl_number += 1;
        self.save()?;
        Ok(number)
    }

    /// The issuing CA as an rcgen issuer: its key decrypted with `secret`
    /// and its parameters rebuilt from the inventory (same DN and key, so
    /// the same issuer name and key identifier as `issuing-ca.crt`).
    fn issuing(&self, secret: &Secret) -> Result<(Certificate, KeyPair), Error> {
        let key = decrypt_key(&self.layout.issuing_key(), secret)?;
        let params = ca_params(&self.inventory, false)?;
        let cert = params
            .self_signed(&key)
            .map_err(|e| Error::Crypto(format!("issuing CA: {e}")))?;
        Ok((cert, key))
    }

    /// Writes the inventory atomically.
    fn save(&self) -> Result<(), Error> {
        let text = serde_json::to_string_pretty(&self.inventory)
            .map_err(|e| Error::Crypto(format!("inventory encoding: {e}")))?;
        write_public(&self.layout.inventory(), &(text + "\n"))
    }
}

fn ca_params(inv: &Inventory, root: bool) -> Result<CertificateParams, Error> {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, inv.organization.as_str());
    dn.push(
        DnType::CommonName,
        if root {
            inv.root_cn.as_str()
        } else {
            inv.issuing_cn.as_str()
        },
    );
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(if root { 1 } else { 0 }));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.use_authority_key_identifier_extension = !root;
    p.key_identifier_method = KeyIdMethod::Sha256;
    Ok(p)
}

fn check_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with(['.', '-'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "device name {name:?}: use 1-{MAX_NAME_LEN} of A-Z a-z 0-9 . _ - (not starting with . or -)"
        )))
    }
}

fn parse_san(s: &str) -> Result<SanType, Error> {
    let bad = |why: &str| Error::Invalid(format!("SAN {s:?}: {why}"));
    let ia5 = |v: &str| rcgen::Ia5String::try_from(v.to_string()).map_err(|_| bad("not ASCII"));
    let (kind, value) = match s.split_once(':') {
        Some((k, v)) if matches!(k, "dns" | "DNS" | "uri" | "URI" | "ip" | "IP") => {
            (k.to_ascii_lowercase(), v)
        }
        _ if s.parse::<std::net::IpAddr>().is_ok() => ("ip".into(), s),
        _ if s.contains("://") => ("uri".into(), s),
        _ => ("dns".into(), s),
    };
    if value.is_empty() || value.len() > 1024 {
        return Err(bad("empty or too long"));
    }
    match kind.as_str() {
        "ip" => value
            .parse()
            .map(SanType::IpAddress)
            .map_err(|_| bad("not an IP address")),
        "uri" => {
            if !value.contains(':') || value.chars().any(char::is_whitespace) {
                return Err(bad("not a URI"));
            }
            Ok(SanType::URI(ia5(value)?))
        }
        _ => {
            let valid = value.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'*')
            });
            if !valid {
                return Err(bad("not a DNS name"));
            }
            Ok(SanType::DnsName(ia5(value)?))
        }
    }
}

/// 16 random bytes, first bit clear (positive) and first byte non-zero
/// (minimal DER), as hex and as an rcgen serial.
fn random_serial() -> Result<(String, SerialNumber), Error> {
    let mut b = [0u8; 16];
    random(&mut b)?;
    b[0] = (b[0] & 0x7f) | 0x01;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok((hex, SerialNumber::from_slice(&b)))
}

fn normalize_serial(s: &str) -> Option<String> {
    let s = s
        .trim()
        .trim_start_matches("0x")
        .replace(':', "")
        .to_ascii_lowercase();
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())).then_some(s)
}

fn hex_to_bytes(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A 24-character random password from an unambiguous alphabet (≈137 bits).
fn random_password() -> Result<Zeroizing<String>, Error> {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut out = Zeroizing::new(String::with_capacity(24));
    let mut buf = [0u8; 1];
    while out.len() < 24 {
        random(&mut buf)?;
        // Rejection sampling: no modulo bias.
        if usize::from(buf[0]) < 256 - 256 % ALPHABET.len() {
            out.push(char::from(ALPHABET[usize::from(buf[0]) % ALPHABET.len()]));
        }
    }
    Ok(out)
}

/// scrypt cost for CA keys: N = 2^14, r = 8, p = 4: 16 MiB of memory (under
/// OpenSSL's 32 MiB default limit, so `openssl pkey` opens the keys) and
/// twice the work of the RFC 7914 interactive setting (N = 2^15, p = 1).
const SCRYPT_LOG_N: u8 = 14;
const SCRYPT_P: u32 = 4;

fn encrypt_key(key: &KeyPair, secret: &Secret) -> Result<Vec<u8>, Error> {
    let der = Zeroizing::new(key.serialize_der());
    let mut salt = [0u8; 16];
    let mut iv = [0u8; 16];
    random(&mut salt)?;
    random(&mut iv)?;
    let sp = pkcs5::scrypt::Params::new(SCRYPT_LOG_N, 8, SCRYPT_P, 32)
        .map_err(|e| Error::Crypto(format!("scrypt parameters: {e}")))?;
    let params = pkcs5::pbes2::Parameters::scrypt_aes256cbc(sp, &salt, &iv)
        .map_err(|e| Error::Crypto(format!("PBES2 parameters: {e}")))?;
    let info = pkcs8::PrivateKeyInfo::try_from(der.as_slice())
        .map_err(|e| Error::Crypto(format!("key encoding: {e}")))?;
    let doc = info
        .encrypt_with_params(params, &*secret.0)
        .map_err(|e| Error::Crypto(format!("key encryption: {e}")))?;
    let pem = doc
        .to_pem("ENCRYPTED PRIVATE KEY", pkcs8::LineEnding::LF)
        .map_err(|e| Error::Crypto(format!("key encoding: {e}")))?;
    Ok(pem.as_bytes().to_vec())
}

fn decrypt_key(path: &Path, secret: &Secret) -> Result<KeyPair, Error> {
    use pkcs8::der::Decode;
    let text = read_text(path)?;
    let corrupt = |m: &str| Error::Corrupt {
        path: path.to_path_buf(),
        message: m.to_string(),
    };
    let (label, doc) = pkcs8::Document::from_pem(&text)
        .map_err(|_| corrupt("not a PEM \"ENCRYPTED PRIVATE KEY\""))?;
    if label != "ENCRYPTED PRIVATE KEY" {
        return Err(corrupt("not a PEM \"ENCRYPTED PRIVATE KEY\""));
    }
    let info = pkcs8::EncryptedPrivateKeyInfo::from_der(doc.as_bytes())
        .map_err(|_| corrupt("malformed encrypted key"))?;
    let plain = info.decrypt(&*secret.0).map_err(|_| Error::Decrypt {
        path: path.to_path_buf(),
    })?;
    KeyPair::try_from(plain.as_bytes()).map_err(|_| Error::Decrypt {
        path: path.to_path_buf(),
    })
}

fn pem_to_der(path: &Path, pem: &str) -> Result<Vec<u8>, Error> {
    let (label, doc) = pkcs8::Document::from_pem(pem).map_err(|_| Error::Corrupt {
        path: path.to_path_buf(),
        message: "not a PEM certificate".into(),
    })?;
    if label != "CERTIFICATE" {
        return Err(Error::Corrupt {
            path: path.to_path_buf(),
            message: format!("PEM label {label:?}, expected CERTIFICATE"),
        });
    }
    Ok(doc.as_bytes().to_vec())
}

fn read_limited(path: &Path) -> Result<Vec<u8>, Error> {
    use std::io::Read;
    let f = std::fs::File::open(path)
        .map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?;
    let mut buf = Vec::new();
    f.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    if buf.len() as u64 > MAX_FILE_BYTES {
        return Err(Error::Corrupt {
            path: path.to_path_buf(),
            message: format!("larger than {MAX_FILE_BYTES} bytes"),
        });
    }
    Ok(buf)
}

fn read_text(path: &Path) -> Result<String, Error> {
    String::from_utf8(read_limited(path)?).map_err(|_| Error::Corrupt {
        path: path.to_path_buf(),
        message: "not UTF-8 text".into(),
    })
}

fn read_inventory(path: &Path) -> Result<Inventory, Error> {
    let bytes = read_limited(path)?;
    let inventory: Inventory = serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
        path: path.to_path_buf(),
        message: format!("malformed inventory: {e}"),
    })?;
    if inventory.version != INVENTORY_VERSION {
        return Err(Error::Corrupt {
            path: path.to_path_buf(),
            message: format!(
                "inventory version {} (this build reads {INVENTORY_VERSION})",
                inventory.version
            ),
        });
    }
    Ok(inventory)
}

fn write_public(path: &Path, text: &str) -> Result<(), Error> {
    write_atomic(path, text.as_bytes(), 0o644)
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    write_atomic(path, bytes, 0o600)
}

/// Writes via a temporary file and a rename, so readers (listeners
/// reloading the CRL) never see a half-written file.
fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let ctx = |e| Error::io(format!("cannot write {}", path.display()), e);
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(format!(".tmp-{}", std::process::id()));
    let tmp = path.with_file_name(name);
    let _ = std::fs::remove_file(&tmp);
    let res = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(ctx(e));
    }
    Ok(())
}

/// Formats Unix seconds as `YYYY-MM-DD HH:MM:SSZ`.
pub fn format_time(t: i64) -> String {
    match OffsetDateTime::from_unix_timestamp(t) {
        Ok(d) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}Z",
            d.year(),
            u8::from(d.month()),
            d.day(),
            d.hour(),
            d.minute(),
            d.second()
        ),
        Err(_) => t.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_sans_are_validated() {
        for bad in ["", ".hidden", "-x", "a/b", "../x", "a b", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name("sensor-01.floor_2").is_ok());
        assert!(matches!(
            parse_san("10.0.0.1").unwrap(),
            SanType::IpAddress(_)
        ));
        assert!(matches!(
            parse_san("spiffe://palisade/device/a").unwrap(),
            SanType::URI(_)
        ));
        assert!(matches!(
            parse_san("dns:a.example").unwrap(),
            SanType::DnsName(_)
        ));
        assert!(parse_san("dns:a..b").is_err());
        assert!(parse_san("ip:nope").is_err());
        assert!(parse_san("uri:no spaces://x").is_err());
    }

    #[test]
    fn serials_and_passwords() {
        let (hex, _) = random_serial().unwrap();
        assert_eq!(hex.len(), 32);
        assert!(u8::from_str_radix(&hex[..2], 16).unwrap() & 0x80 == 0);
        assert_eq!(normalize_serial("0xAB:cd").as_deref(), Some("abcd"));
        assert_eq!(normalize_serial("sensor"), None);
        assert_eq!(hex_to_bytes("0aff"), Some(vec![10, 255]));
        assert_eq!(hex_to_bytes("0af"), None);
        let p = random_password().unwrap();
        assert_eq!(p.len(), 24);
        assert_ne!(*p, *random_password().unwrap());
    }

    #[test]
    fn secrets_are_checked_and_hidden() {
        assert!(Secret::passphrase(Zeroizing::new("short".into())).is_err());
        let s = Secret::passphrase(Zeroizing::new("long enough passphrase\n".into())).unwrap();
        assert_eq!(format!("{s:?}"), "Secret(..)");
        assert_eq!(format_time(0), "1970-01-01 00:00:00Z");
    }
}
