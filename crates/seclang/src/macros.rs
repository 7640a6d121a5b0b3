//! `%{COLLECTION.key}` macro strings, parsed once when rules load.
//!
//! ModSecurity expands macros in `msg`, `logdata`, `setvar`, `initcol` and in
//! the arguments of some operators (`@eq %{tx.x}`, `@within %{tx.allowed_methods}`).
//! A string without macros is a constant and expands without allocating.

use std::borrow::Cow;

/// One piece of a [`MacroString`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Bytes copied as they are.
    Literal(Vec<u8>),
    /// `%{COLLECTION}` or `%{COLLECTION.key}`; the collection name is
    /// upper-cased at parse time, the key kept as written.
    Var {
        /// Upper-case collection or variable name (`TX`, `MATCHED_VAR`, `RULE`).
        collection: String,
        /// The key after the first `.`, if any.
        key: Option<String>,
    },
}

/// A string that may reference transaction variables.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MacroString {
    parts: Vec<Part>,
}

/// Looks up macro references during expansion (implemented by the transaction).
pub trait MacroResolver {
    /// Appends the value of `collection[.key]` to `out`; returns false (and
    /// appends nothing) when the variable does not exist.
    fn resolve(&self, collection: &str, key: Option<&str>, out: &mut Vec<u8>) -> bool;
}

impl MacroString {
    /// Parses `text`; an unterminated `%{` is kept literally, as ModSecurity does.
    pub fn parse(text: &str) -> MacroString {
        let bytes = text.as_bytes();
        let mut parts = Vec::new();
        let mut literal = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' && bytes.get(i + 1) == Some(&b'{') {
                if let Some(end) = bytes[i + 2..].iter().position(|&b| b == b'}') {
                    let inner = &text[i + 2..i + 2 + end];
                    if !inner.is_empty() {
                        if !literal.is_empty() {
                            parts.push(Part::Literal(std::mem::take(&mut literal)));
                        }
                        let (collection, key) = match inner.split_once('.') {
                            Some((c, k)) => (c, Some(k.to_string())),
                            None => (inner, None),
                        };
                        parts.push(Part::Var {
                            collection: collection.to_ascii_uppercase(),
                            key,
                        });
                        i += end + 3;
                        continue;
                    }
                }
            }
            literal.push(bytes[i]);
            i += 1;
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        MacroString { parts }
    }

    /// The parts, for callers that need to inspect references.
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// The bytes when the string has no macro, without allocating.
    pub fn as_constant(&self) -> Option<&[u8]> {
        match self.parts.as_slice() {
            [] => Some(b""),
            [Part::Literal(l)] => Some(l),
            _ => None,
        }
    }

    /// True when the string contains no macro.
    pub fn is_constant(&self) -> bool {
        self.as_constant().is_some()
    }

    /// Expands every macro; a missing variable expands to nothing.
    pub fn expand<'a>(&'a self, resolver: &dyn MacroResolver) -> Cow<'a, [u8]> {
        if let Some(c) = self.as_constant() {
            return Cow::Borrowed(c);
        }
        let mut out = Vec::new();
        for part in &self.parts {
            match part {
                Part::Literal(l) => out.extend_from_slice(l),
                Part::Var { collection, key } => {
                    resolver.resolve(collection, key.as_deref(), &mut out);
                }
            }
        }
        Cow::Owned(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Tx;
    impl MacroResolver for Tx {
        fn resolve(&self, collection: &str, key: Option<&str>, out: &mut Vec<u8>) -> bool {
            match (collection, key) {
                ("TX", Some("score")) => {
                    out.extend_from_slice(b"5");
                    true
                }
                ("MATCHED_VAR", None) => {
                    out.extend_from_slice(b"x");
                    true
                }
                _ => false,
            }
        }
    }

    #[test]
    fn constant_borrows() {
        let m = MacroString::parse("GET HEAD");
        assert!(matches!(m.expand(&Tx), Cow::Borrowed(b"GET HEAD")));
    }

    #[test]
    fn expands_and_keeps_unknown_empty() {
        let m = MacroString::parse("s=%{tx.score} v=%{MATCHED_VAR} n=%{tx.none}.");
        assert_eq!(&*m.expand(&Tx), b"s=5 v=x n=.");
    }

    #[test]
    fn unterminated_is_literal() {
        let m = MacroString::parse("100%{tx");
        assert_eq!(m.as_constant(), Some(&b"100%{tx"[..]));
    }
}
