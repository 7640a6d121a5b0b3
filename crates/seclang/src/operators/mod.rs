//! Operators (`@rx`, `@pm`, `@detectSQLi`, …): one file per operator behind
//! the registry in [`compile`].
//!
//! An operator is compiled once per rule (regexes, phrase automata, IP sets
//! are built here) and evaluated many times with no allocation unless it
//! captures or its argument holds a macro.
//!
//! Every operator follows ModSecurity v3's implementation (`src/operators/*.cc`);
//! where we deliberately differ, the operator's module documentation says so.
//! Operators ModSecurity has but this engine does not (`@rbl`, `@geoLookup`,
//! `@inspectFile`, `@gsbLookup`, `@fuzzyHash`, …) are refused by [`compile`]
//! with an `unsupported operator @name` error, never silently ignored.
//!
//! | operator | matches when | argument |
//! |---|---|---|
//! | `@rx` | the PCRE pattern matches (bytes, DOTALL, MULTILINE) | pattern, macros allowed |
//! | `@pm` | one of the phrases occurs (ASCII case-insensitive) | phrases separated by spaces |
//! | `@pmFromFile`, `@pmf` | one of the file's phrases occurs | data file, one phrase a line |
//! | `@contains`, `@strmatch` | the argument occurs in the input | string, macros allowed |
//! | `@containsWord` | the argument occurs as a word (non-letters around) | string, macros allowed |
//! | `@beginsWith`, `@endsWith`, `@streq` | prefix / suffix / equality | string, macros allowed |
//! | `@within` | the input occurs in the argument (empty input: always) | string, macros allowed |
//! | `@eq`, `@ge`, `@gt`, `@le`, `@lt` | integer comparison (C `atoll`/`stoi` parsing) | integer, macros allowed |
//! | `@ipMatch` | the input address is in a listed address/network | IPv4/IPv6 addresses, CIDRs, comma-separated |
//! | `@ipMatchFromFile`, `@ipMatchF` | as `@ipMatch`, list from a file | data file |
//! | `@detectSQLi`, `@detectXSS` | libinjection-compatible detection | none |
//! | `@validateByteRange` | a byte is **outside** the ranges | `1-255`, `9,10,13,32-126` |
//! | `@validateUrlEncoding` | a `%` escape is **invalid** | none |
//! | `@validateUtf8Encoding` | the input is **not** valid UTF-8 | none |
//! | `@verifyCC`, `@verifyCPF`, `@verifySSN` | a regex candidate passes the checksum | candidate pattern |
//! | `@unconditionalMatch` / `@noMatch` | always / never | none |
//!
//! Data files are read through [`CompileContext::files`], relative to
//! [`CompileContext::base_dir`]. Each operator's module documents its exact
//! ModSecurity semantics and any difference.

use std::borrow::Cow;
use std::fmt;
use std::path::Path;

use crate::loader::FileLoader;
use crate::macros::MacroString;

mod begins_with;
mod contains;
mod contains_word;
mod detect_sqli;
mod detect_xss;
mod ends_with;
mod eq;
mod ge;
mod gt;
mod ip_match;
mod ip_match_from_file;
mod le;
mod lt;
mod no_match;
mod pm;
mod pm_from_file;
mod rx;
mod streq;
mod strmatch;
mod unconditional_match;
mod validate_byte_range;
mod validate_url_encoding;
mod validate_utf8_encoding;
mod verify_cc;
mod verify_cpf;
mod verify_ssn;
mod within;

pub use rx::{
    translate_pcre, MACRO_REGEX_SIZE_LIMIT, MAX_REQUIRED_LITERALS, REGEX_DFA_SIZE_LIMIT,
    REGEX_SIZE_LIMIT,
};
pub use verify_cc::MAX_CANDIDATE_BYTES;

/// What an operator may ask of the transaction while it evaluates.
pub trait OperatorContext {
    /// Expands a macro argument (`@eq %{tx.inbound_anomaly_score_threshold}`).
    fn expand<'a>(&self, arg: &'a MacroString) -> Cow<'a, [u8]>;
    /// Whether the rule has the `capture` action; operators skip capture work otherwise.
    fn capturing(&self) -> bool;
    /// Stores capture `index` (0..=9) as `TX:index`.
    fn set_capture(&mut self, index: usize, value: &[u8]);
}

/// A compiled operator.
pub trait Operator: Send + Sync + fmt::Debug {
    /// True when `input` matches. Negation (`!@`) is applied by the caller.
    fn evaluate(&self, input: &[u8], ctx: &mut dyn OperatorContext) -> bool;

    /// Byte strings of which at least one must occur in the input (ASCII case
    /// folded to lower case when [`Operator::literals_case_insensitive`]) for
    /// [`Operator::evaluate`] to return true. The engine runs one aho-corasick
    /// pass over all rules' literals and skips operators none of whose
    /// literals occur. `None` means no such set is known.
    ///
    /// Only the positive operator may be skipped this way: for a negated rule
    /// (`!@rx`) "no literal occurs" means the rule *matches*.
    fn required_literals(&self) -> Option<Vec<Vec<u8>>> {
        None
    }

    /// Whether [`Operator::required_literals`] must be matched ASCII-case-insensitively.
    fn literals_case_insensitive(&self) -> bool {
        false
    }

    /// A set of bytes (bit `b % 64` of word `b / 64`) at least one of
    /// which occurs in every input [`Operator::evaluate`] returns true for:
    /// the engine skips the operator on a value holding none of them (the
    /// same caveat as [`Operator::required_literals`] for negated rules).
    /// `None` means no useful set is known.
    fn required_bytes(&self) -> Option<[u64; 4]> {
        None
    }
}

/// Where an operator's data files are resolved from.
#[derive(Clone, Copy)]
pub struct CompileContext<'a> {
    /// Loader for `@pmFromFile`, `@ipMatchFromFile`.
    pub files: &'a dyn FileLoader,
    /// Directory of the rules file that holds the rule; relative data file
    /// names resolve against it.
    pub base_dir: &'a Path,
}

impl fmt::Debug for CompileContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompileContext")
            .field("base_dir", &self.base_dir)
            .finish_non_exhaustive()
    }
}

/// Operators ModSecurity knows that this engine refuses (they need network
/// access, external databases or programs, or are rarely used).
const UNSUPPORTED: &[&str] = &[
    "rbl",
    "geolookup",
    "inspectfile",
    "gsblookup",
    "fuzzyhash",
    "validatedtd",
    "validateschema",
    "validatehash",
    "verifysvnr",
    "rsub",
    "rxglobal",
];

/// Compiles operator `name` (without `@`, any case) with its raw `argument`.
/// The error is a message; the parser wraps it with file, line and rule id.
pub fn compile(
    name: &str,
    argument: &str,
    ctx: &CompileContext<'_>,
) -> Result<Box<dyn Operator>, String> {
    let lower = name.to_ascii_lowercase();
    let op: Box<dyn Operator> = match lower.as_str() {
        "rx" => Box::new(rx::Rx::new(argument)?),
        "pm" => Box::new(pm::Pm::new(argument)?),
        "pmfromfile" | "pmf" => Box::new(pm_from_file::new(argument, ctx)?),
        "contains" => Box::new(contains::Contains::new(argument)),
        "containsword" => Box::new(contains_word::ContainsWord::new(argument)),
        "beginswith" => Box::new(begins_with::BeginsWith::new(argument)),
        "endswith" => Box::new(ends_with::EndsWith::new(argument)),
        "streq" => Box::new(streq::StrEq::new(argument)),
        "strmatch" => Box::new(strmatch::StrMatch::new(argument)),
        "within" => Box::new(within::Within::new(argument)),
        "eq" => Box::new(eq::Eq::new(argument)),
        "ge" => Box::new(ge::Ge::new(argument)),
        "gt" => Box::new(gt::Gt::new(argument)),
        "le" => Box::new(le::Le::new(argument)),
        "lt" => Box::new(lt::Lt::new(argument)),
        "ipmatch" => Box::new(ip_match::IpMatch::new(argument)?),
        "ipmatchfromfile" | "ipmatchf" => Box::new(ip_match_from_file::new(argument, ctx)?),
        "detectsqli" => Box::new(detect_sqli::DetectSqli),
        "detectxss" => Box::new(detect_xss::DetectXss),
        "validatebyterange" => Box::new(validate_byte_range::ValidateByteRange::new(argument)?),
        "validateurlencoding" => Box::new(validate_url_encoding::ValidateUrlEncoding),
        "validateutf8encoding" => Box::new(validate_utf8_encoding::ValidateUtf8Encoding),
        "unconditionalmatch" => Box::new(unconditional_match::UnconditionalMatch),
        "nomatch" => Box::new(no_match::NoMatch),
        "verifycc" => Box::new(verify_cc::VerifyCc::new(argument)?),
        "verifycpf" => Box::new(verify_cpf::VerifyCpf::new(argument)?),
        "verifyssn" => Box::new(verify_ssn::VerifySsn::new(argument)?),
        other if UNSUPPORTED.contains(&other) => {
            return Err(format!(
                "unsupported operator @{name}: ModSecurity has it but this engine does not implement it"
            ))
        }
        _ => return Err(format!("unsupported operator @{name}: no such operator")),
    };
    Ok(op)
}

/// An operator argument that may hold macros: constant arguments are kept
/// as bytes, the others are expanded at each evaluation.
#[derive(Debug, Clone)]
pub(crate) enum Param {
    /// No `%{...}` in the argument.
    Const(Vec<u8>),
    /// Expanded through [`OperatorContext::expand`] when evaluated.
    Macro(MacroString),
}

impl Param {
    /// Parses `argument` once.
    pub(crate) fn new(argument: &str) -> Param {
        let parsed = MacroString::parse(argument);
        match parsed.as_constant() {
            Some(bytes) => Param::Const(bytes.to_vec()),
            None => Param::Macro(parsed),
        }
    }

    /// The argument's value; borrows (no allocation) when constant.
    pub(crate) fn value<'a>(&'a self, ctx: &dyn OperatorContext) -> Cow<'a, [u8]> {
        match self {
            Param::Const(bytes) => Cow::Borrowed(bytes),
            Param::Macro(m) => ctx.expand(m),
        }
    }

    /// The constant value, when the argument holds no macro.
    pub(crate) fn constant(&self) -> Option<&[u8]> {
        match self {
            Param::Const(bytes) => Some(bytes),
            Param::Macro(_) => None,
        }
    }

    /// `Some(vec![value])` for a constant of at least `min_len` bytes: the
    /// literal set of operators whose match implies the value occurs.
    pub(crate) fn literal_set(&self, min_len: usize) -> Option<Vec<Vec<u8>>> {
        self.constant()
            .filter(|c| c.len() >= min_len)
            .map(|c| vec![c.to_vec()])
    }
}

/// C `isspace` in the "C" locale: what `atoll`/`stoi` skip before a number.
pub(crate) fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Parses like C `atoll` (glibc): skips leading white space, optional sign,
/// then decimal digits up to the first non-digit; no digits gives 0, overflow
/// saturates at `i64::MIN`/`i64::MAX` (glibc's `strtoll`).
pub(crate) fn atoll(input: &[u8]) -> i64 {
    parse_c_integer(input).map_or(0, |(value, _)| value)
}

/// Parses like C++ `std::stoi` with ModSecurity's `catch (...) { 0 }`
/// around it: as [`atoll`], but a value outside the 32-bit `int` range
/// (which makes `stoi` throw) gives 0.
pub(crate) fn stoi(input: &[u8]) -> i64 {
    match parse_c_integer(input) {
        Some((value, false)) if i32::try_from(value).is_ok() => value,
        _ => 0,
    }
}

/// `strtoll`-style parse: `Some((value, overflowed))`, `None` without digits.
fn parse_c_integer(input: &[u8]) -> Option<(i64, bool)> {
    let mut i = 0;
    while i < input.len() && is_c_space(input[i]) {
        i += 1;
    }
    let negative = match input.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let start = i;
    let mut value: i64 = 0;
    let mut overflow = false;
    while let Some(&b) = input.get(i) {
        if !b.is_ascii_digit() {
            break;
        }
        let digit = i64::from(b - b'0');
        // Accumulate negatively so that i64::MIN is representable.
        match value.checked_mul(10).and_then(|v| v.checked_sub(digit)) {
            Some(v) => value = v,
            None => overflow = true,
        }
        i += 1;
    }
    if i == start {
        return None;
    }
    if overflow {
        return Some((if negative { i64::MIN } else { i64::MAX }, true));
    }
    if negative {
        Some((value, false))
    } else {
        match value.checked_neg() {
            Some(v) => Some((v, false)),
            None => Some((i64::MAX, true)),
        }
    }
}

/// A numeric operand compared by `@eq`, `@ge`, `@gt`, `@le`, `@lt`: parsed
/// once when constant, at each evaluation when it holds a macro.
#[derive(Debug, Clone)]
pub(crate) enum Number {
    /// The parsed constant.
    Const(i64),
    /// Expanded, then parsed, at each evaluation.
    Macro(MacroString),
}

impl Number {
    /// Parses `argument` with `parse` (either [`atoll`] or [`stoi`]).
    pub(crate) fn new(argument: &str, parse: fn(&[u8]) -> i64) -> Number {
        match Param::new(argument) {
            Param::Const(bytes) => Number::Const(parse(&bytes)),
            Param::Macro(m) => Number::Macro(m),
        }
    }

    /// The operand's value for this evaluation.
    pub(crate) fn value(&self, ctx: &dyn OperatorContext, parse: fn(&[u8]) -> i64) -> i64 {
        match self {
            Number::Const(v) => *v,
            Number::Macro(m) => parse(&ctx.expand(m)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atoll_like_c() {
        assert_eq!(atoll(b"42"), 42);
        assert_eq!(atoll(b"  \t-17abc"), -17);
        assert_eq!(atoll(b"+5"), 5);
        assert_eq!(atoll(b"abc"), 0);
        assert_eq!(atoll(b""), 0);
        assert_eq!(atoll(b"- 5"), 0);
        assert_eq!(atoll(b"99999999999999999999"), i64::MAX);
        assert_eq!(atoll(b"-99999999999999999999"), i64::MIN);
        assert_eq!(atoll(b"-9223372036854775808"), i64::MIN);
        assert_eq!(atoll(b"9223372036854775807"), i64::MAX);
        assert_eq!(atoll(b"12\x0034"), 12);
    }

    #[test]
    fn stoi_out_of_int_range_is_zero() {
        assert_eq!(stoi(b"2147483647"), 2_147_483_647);
        assert_eq!(stoi(b"2147483648"), 0);
        assert_eq!(stoi(b"-2147483648"), -2_147_483_648);
        assert_eq!(stoi(b" 7x"), 7);
        assert_eq!(stoi(b"x7"), 0);
    }
}
