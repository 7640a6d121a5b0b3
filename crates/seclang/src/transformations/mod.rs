//! Transformations (`t:lowercase`, `t:urlDecodeUni`, …): one file per
//! transformation behind the registry in [`lookup`], each with test vectors.
//!
//! Every transformation reproduces ModSecurity v3 byte for byte, including
//! its quirks (each file documents them), works on arbitrary bytes (NULs,
//! invalid UTF-8), never panics and runs in linear time.
//!
//! Known deviations, both where ModSecurity cannot be matched: `t:hexDecode`
//! of a single byte (undefined behaviour in ModSecurity) yields the empty
//! string, and `t:urlDecodeUni` always uses the built-in `%uXXXX` reduction
//! (`SecUnicodeMapFile` is not supported).
//!
//! A transformation returns `Cow::Borrowed` exactly when its output equals its
//! input (and `Cow::Owned` otherwise), so a chain over clean input allocates
//! nothing and the engine can tell "unchanged" from the variant alone; the
//! engine caches results per (variable, chain prefix) within a transaction.

use std::borrow::Cow;

mod util;

mod base64_decode;
mod base64_decode_ext;
mod base64_encode;
mod cmd_line;
mod compress_whitespace;
mod css_decode;
mod escape_seq_decode;
mod hex_decode;
mod hex_encode;
mod html_entity_decode;
mod js_decode;
mod length;
mod lowercase;
mod md5;
mod normalize_path;
mod normalize_path_win;
mod parity;
mod remove_comments;
mod remove_comments_char;
mod remove_nulls;
mod remove_whitespace;
mod replace_comments;
mod replace_nulls;
mod sha1;
mod sql_hex_decode;
mod trim;
mod uppercase;
mod url_decode;
mod url_decode_uni;
mod url_encode;
mod utf8_to_unicode;

/// The signature every transformation has.
pub type TransformFn = for<'a> fn(&'a [u8]) -> Cow<'a, [u8]>;

/// A named transformation.
#[derive(Clone, Copy)]
pub struct Transformation {
    /// Name as ModSecurity spells it (`urlDecodeUni`). Aliases
    /// (`normalisePath`) are separate entries carrying their own spelling.
    pub name: &'static str,
    /// The function.
    pub apply: TransformFn,
}

impl std::fmt::Debug for Transformation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "t:{}", self.name)
    }
}

/// Finds a transformation by name (case-insensitive, like ModSecurity's
/// parser). `none` is handled by the parser (it clears the chain) and is not
/// returned here. Does not allocate: a binary search over [`all`].
pub fn lookup(name: &str) -> Option<Transformation> {
    REGISTRY
        .binary_search_by(|t| cmp_ignore_ascii_case(t.name, name))
        .ok()
        .map(|i| REGISTRY[i])
}

/// Every transformation this crate knows, sorted by ASCII-lowercased name
/// (a unit test checks the order [`lookup`] relies on).
pub fn all() -> &'static [Transformation] {
    REGISTRY
}

/// Applies `chain` left to right, as a rule's `t:` list does.
///
/// Allocates only when a step changes the value, and at most one buffer
/// per changing step; the result is `Cow::Borrowed` exactly when no step
/// changed anything (addition to the skeleton API, for the engine).
pub fn apply_chain<'a>(chain: &[Transformation], input: &'a [u8]) -> Cow<'a, [u8]> {
    let mut current: Cow<'a, [u8]> = Cow::Borrowed(input);
    for t in chain {
        match current {
            Cow::Borrowed(value) => current = (t.apply)(value),
            Cow::Owned(ref value) => {
                if let Cow::Owned(next) = (t.apply)(value) {
                    current = Cow::Owned(next);
                }
            }
        }
    }
    current
}

fn cmp_ignore_ascii_case(a: &str, b: &str) -> std::cmp::Ordering {
    let a = a.bytes().map(|c| c.to_ascii_lowercase());
    let b = b.bytes().map(|c| c.to_ascii_lowercase());
    a.cmp(b)
}

macro_rules! registry {
    ($($name:literal => $f:path,)*) => {
        const REGISTRY: &[Transformation] = &[
            $(Transformation { name: $name, apply: $f },)*
        ];
    };
}

registry! {
    "base64Decode" => base64_decode::base64_decode,
    "base64DecodeExt" => base64_decode_ext::base64_decode_ext,
    "base64Encode" => base64_encode::base64_encode,
    "cmdLine" => cmd_line::cmd_line,
    "compressWhitespace" => compress_whitespace::compress_whitespace,
    "cssDecode" => css_decode::css_decode,
    "escapeSeqDecode" => escape_seq_decode::escape_seq_decode,
    "hexDecode" => hex_decode::hex_decode,
    "hexEncode" => hex_encode::hex_encode,
    "htmlEntityDecode" => html_entity_decode::html_entity_decode,
    "jsDecode" => js_decode::js_decode,
    "length" => length::length,
    "lowercase" => lowercase::lowercase,
    "md5" => md5::md5,
    "normalisePath" => normalize_path::normalize_path,
    "normalisePathWin" => normalize_path_win::normalize_path_win,
    "normalizePath" => normalize_path::normalize_path,
    "normalizePathWin" => normalize_path_win::normalize_path_win,
    "parityEven7bit" => parity::parity_even_7bit,
    "parityOdd7bit" => parity::parity_odd_7bit,
    "parityZero7bit" => parity::parity_zero_7bit,
    "removeComments" => remove_comments::remove_comments,
    "removeCommentsChar" => remove_comments_char::remove_comments_char,
    "removeNulls" => remove_nulls::remove_nulls,
    "removeWhitespace" => remove_whitespace::remove_whitespace,
    "replaceComments" => replace_comments::replace_comments,
    "replaceNulls" => replace_nulls::replace_nulls,
    "sha1" => sha1::sha1,
    "sqlHexDecode" => sql_hex_decode::sql_hex_decode,
    "trim" => trim::trim,
    "trimLeft" => trim::trim_left,
    "trimRight" => trim::trim_right,
    "uppercase" => uppercase::uppercase,
    "urlDecode" => url_decode::url_decode,
    "urlDecodeUni" => url_decode_uni::url_decode_uni,
    "urlEncode" => url_encode::url_encode,
    "utf8toUnicode" => utf8_to_unicode::utf8_to_unicode,
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::TransformFn;
    use std::borrow::Cow;

    /// Checks each (input, expected) pair and that the result is borrowed
    /// exactly when it equals the input.
    pub(crate) fn check(f: TransformFn, cases: &[(&[u8], &[u8])]) {
        for (input, expected) in cases {
            let out = f(input);
            assert_eq!(
                &*out,
                *expected,
                "input {:?}: got {:?}, want {:?}",
                String::from_utf8_lossy(input),
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(expected)
            );
            assert_eq!(
                matches!(out, Cow::Borrowed(_)),
                input == expected,
                "input {:?}: Borrowed must mean unchanged",
                String::from_utf8_lossy(input)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_is_sorted_for_binary_search() {
        for w in REGISTRY.windows(2) {
            assert_eq!(
                cmp_ignore_ascii_case(w[0].name, w[1].name),
                std::cmp::Ordering::Less,
                "{} must sort before {}",
                w[0].name,
                w[1].name
            );
        }
    }

    #[test]
    fn lookup_is_case_insensitive_and_finds_every_entry() {
        for t in REGISTRY {
            assert_eq!(lookup(t.name).map(|x| x.name), Some(t.name));
            assert_eq!(
                lookup(&t.name.to_ascii_uppercase()).map(|x| x.name),
                Some(t.name)
            );
        }
        assert_eq!(lookup("URLDECODEUNI").map(|t| t.name), Some("urlDecodeUni"));
        assert_eq!(
            lookup("normalisepath").map(|t| t.name),
            Some("normalisePath")
        );
    }

    #[test]
    fn apply_chain_borrows_only_when_nothing_changed() {
        let chain = |names: &[&str]| -> Vec<Transformation> {
            names.iter().filter_map(|n| lookup(n)).collect()
        };
        let clean = chain(&["urlDecodeUni", "htmlEntityDecode", "lowercase"]);
        assert!(matches!(
            apply_chain(&clean, b"plain text"),
            Cow::Borrowed(b"plain text")
        ));
        let out = apply_chain(&clean, b"%26LT%3BScript");
        assert!(matches!(out, Cow::Owned(_)));
        assert_eq!(&*out, b"<script");
        // A later no-op step keeps the earlier owned result.
        let out = apply_chain(&chain(&["lowercase", "trim"]), b"ABC");
        assert_eq!(&*out, b"abc");
        assert!(matches!(apply_chain(&[], b"x"), Cow::Borrowed(b"x")));
    }

    #[test]
    fn lookup_rejects_unknown_and_none() {
        assert!(lookup("none").is_none());
        assert!(lookup("").is_none());
        assert!(lookup("urlDecodeUnii").is_none());
        assert!(lookup("lowercase ").is_none());
    }
}
