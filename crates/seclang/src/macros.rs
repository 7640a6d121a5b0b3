//! `%{COLLECTION.key}` macro strings, parsed once when rules load.
//!
//! ModSecurity expands macros in `msg`, `logdata`, `setvar`, `initcol` and in
//! the arguments of some operators (`@eq %{tx.x}`, `@within %{tx.allowed_methods}`).
//! A string without macros is a constant and expands without allocating.

use std::borrow::Cow;

use crate::variables::data::map_index;
use crate::variables::Var;

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
    /// Per part: for a reference, the variable it names and its key as
    /// looked up, both resolved once at parse time (the engine expands
    /// `%{tx.x}` thousands of times per request; matching the name against
    /// every variable name and lower-casing the key each time was a
    /// visible share of a benign request's cost).
    refs: Vec<Option<VarRef>>,
}

/// A `%{…}` reference resolved at parse time.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VarRef {
    /// The variable, when the name is one.
    pub var: Option<Var>,
    /// The key: lower-cased for `setvar` collections (TX, IP, …), whose
    /// keys are stored lower-cased; as written otherwise.
    pub key: Option<String>,
}

/// Looks up macro references during expansion (implemented by the transaction).
pub trait MacroResolver {
    /// Appends the value of `collection[.key]` to `out`; returns false (and
    /// appends nothing) when the variable does not exist.
    fn resolve(&self, collection: &str, key: Option<&str>, out: &mut Vec<u8>) -> bool;

    /// Like [`MacroResolver::resolve`] with the reference already resolved
    /// (`collection` is still the name as parsed). The default forwards to
    /// `resolve`.
    fn resolve_ref(&self, collection: &str, r: &VarRef, out: &mut Vec<u8>) -> bool {
        let _ = r.var;
        self.resolve(collection, r.key.as_deref(), out)
    }
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
        let refs = parts
            .iter()
            .map(|p| match p {
                Part::Literal(_) => None,
                Part::Var { collection, key } => {
                    let var = Var::from_name(collection);
                    let lower = var.and_then(map_index).is_some();
                    Some(VarRef {
                        var,
                        key: key.as_ref().map(|k| {
                            if lower {
                                k.to_ascii_lowercase()
                            } else {
                                k.clone()
                            }
                        }),
                    })
                }
            })
            .collect();
        MacroString { parts, refs }
    }

    /// The parts, for callers that need to inspect references.
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// The `%{…}` references, resolved.
    pub(crate) fn refs(&self) -> impl Iterator<Item = &VarRef> {
        self.refs.iter().flatten()
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
        for (part, r) in self.parts.iter().zip(&self.refs) {
            match (part, r) {
                (Part::Literal(l), _) => out.extend_from_slice(l),
                (Part::Var { collection, .. }, Some(r)) => {
                    resolver.resolve_ref(collection, r, &mut out);
                }
                (Part::Var { collection, key }, None) => {
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
