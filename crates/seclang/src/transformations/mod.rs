//! Transformations (`t:lowercase`, `t:urlDecodeUni`, …): one file per
//! transformation behind the registry in [`lookup`], each with test vectors.
//!
//! A transformation returns `Cow::Borrowed` when it changes nothing, so a
//! chain over clean input allocates nothing; the engine caches results per
//! (variable, chain prefix) within a transaction.

use std::borrow::Cow;

/// The signature every transformation has.
pub type TransformFn = for<'a> fn(&'a [u8]) -> Cow<'a, [u8]>;

/// A named transformation.
#[derive(Clone, Copy)]
pub struct Transformation {
    /// Canonical name as ModSecurity spells it (`urlDecodeUni`).
    pub name: &'static str,
    /// The function.
    pub apply: TransformFn,
}

impl std::fmt::Debug for Transformation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "t:{}", self.name)
    }
}

/// Finds a transformation by name (case-insensitive). `none` is handled by
/// the parser (it clears the chain) and is not returned here.
pub fn lookup(name: &str) -> Option<Transformation> {
    let lower = name.to_ascii_lowercase();
    REGISTRY.iter().find(|t| t.name.eq_ignore_ascii_case(&lower)).copied()
}

const REGISTRY: &[Transformation] = &[Transformation {
    name: "lowercase",
    apply: lowercase,
}];

fn lowercase(input: &[u8]) -> Cow<'_, [u8]> {
    if input.iter().any(u8::is_ascii_uppercase) {
        Cow::Owned(input.to_ascii_lowercase())
    } else {
        Cow::Borrowed(input)
    }
}
