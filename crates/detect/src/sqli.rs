//! SQL tokenizer, folding and fingerprint matcher (libinjection_sqli).

/// A libinjection fingerprint: up to five token-type characters, e.g. `s&1c`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Fingerprint {
    bytes: [u8; 8],
    len: u8,
}

impl Fingerprint {
    /// The fingerprint as text, e.g. `"s&1c"`.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("")
    }
}

impl std::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fingerprint({:?})", self.as_str())
    }
}

/// Returns the fingerprint when `input` looks like SQL injection.
pub fn detect_sqli(_input: &[u8]) -> Option<Fingerprint> {
    None
}
