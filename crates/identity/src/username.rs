//! Username normalisation: NFKC, case-folded, trimmed, bounded.
//!
//! NFKC folds compatibility characters (fullwidth `ａｄｍｉｎ`, ligatures,
//! superscripts) onto their plain forms so `ａｄｍｉｎ` and `admin` are one
//! account, not a look-alike. Lower-casing after NFKC makes `Alice` and
//! `alice` the same user. Control characters, whitespace, `:` (used in
//! store keys) and `/` are refused.

use unicode_normalization::UnicodeNormalization;

use crate::error::{Error, Result};

/// 64 bytes (after normalisation): longest username. Bounds storage keys,
/// log lines and per-user counters.
pub const MAX_USERNAME_BYTES: usize = 64;
/// 256 bytes: longest raw input considered before normalisation (NFKC can
/// expand a character up to 18×; refusing early bounds that work).
pub const MAX_USERNAME_INPUT_BYTES: usize = 256;

/// Normalises a username (NFKC, lower case) or says why it is refused.
pub fn normalize_username(raw: &str) -> Result<String> {
    if raw.len() > MAX_USERNAME_INPUT_BYTES {
        return Err(Error::TooLong {
            what: "username",
            len: raw.len(),
            limit: MAX_USERNAME_INPUT_BYTES,
        });
    }
    let n: String = raw.trim().nfkc().collect::<String>().to_lowercase();
    if n.is_empty() {
        return Err(Error::InvalidUsername("empty".into()));
    }
    if n.len() > MAX_USERNAME_BYTES {
        return Err(Error::TooLong {
            what: "username",
            len: n.len(),
            limit: MAX_USERNAME_BYTES,
        });
    }
    if let Some(c) = n
        .chars()
        .find(|c| c.is_control() || c.is_whitespace() || matches!(c, ':' | '/' | '\\'))
    {
        return Err(Error::InvalidUsername(format!(
            "character {c:?} not allowed (no spaces, control characters, ':', '/', '\\')"
        )));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confusables_fold() {
        assert_eq!(normalize_username("ａｄｍｉｎ").unwrap(), "admin");
        assert_eq!(normalize_username(" Alice ").unwrap(), "alice");
        assert_eq!(normalize_username("ﬁona").unwrap(), "fiona");
        assert_eq!(normalize_username("bob²").unwrap(), "bob2");
    }

    #[test]
    fn refusals() {
        assert!(normalize_username("").is_err());
        assert!(normalize_username("   ").is_err());
        assert!(normalize_username("a b").is_err());
        assert!(normalize_username("a:b").is_err());
        assert!(normalize_username("a\u{0}b").is_err());
        assert!(matches!(
            normalize_username(&"a".repeat(65)),
            Err(Error::TooLong { .. })
        ));
        assert!(matches!(
            normalize_username(&"a".repeat(5000)),
            Err(Error::TooLong { .. })
        ));
        assert_eq!(normalize_username(&"a".repeat(64)).unwrap().len(), 64);
    }
}
