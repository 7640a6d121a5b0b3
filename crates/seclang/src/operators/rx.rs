//! `@rx`: regular expression match, in linear time (`regex::bytes`).
//!
//! Argument: a PCRE pattern, as ModSecurity v3 compiles it: with
//! `PCRE_DOTALL | PCRE_MULTILINE` and **without** UTF mode, so the pattern
//! and the input are bytes: `.` matches any byte (newline included), `^`/`$`
//! match at line starts/ends, `\w`, `\d`, `\s`, `\b` and `(?i)` are ASCII
//! only, and invalid UTF-8 or NUL bytes in the input are ordinary bytes.
//! An empty pattern matches every input. A pattern holding `%{...}` is a
//! macro: it is expanded and compiled at each evaluation (ModSecurity does
//! the same); a macro pattern that does not compile does not match.
//!
//! With the `capture` action, `TX:0` is set to the whole match and `TX:1`
//! .. `TX:9` to the groups that took part in the match (a group that did
//! not participate leaves its `TX` variable as it was, like ModSecurity).
//!
//! ```text
//! SecRule ARGS "@rx (?i)\bunion\b.{1,100}?\bselect\b" "id:13,block,capture,logdata:'%{TX.0}'"
//! ```
//!
//! The PCRE syntax is translated to the `regex` crate's ([`translate_pcre`]):
//! non-ASCII pattern bytes become `\xHH`; `\/`, `\<`, `\-` and other escaped
//! punctuation are literals; `{` that does not start a counted repetition is
//! a literal; `\Q..\E`, `\e`, `\cX`, octal `\0nn`/`\o{}`, `\x{..}`, `\h`,
//! `\v` (vertical space, *not* VT), `\R`, `\N`, `\Z`, `\G` and `(?#..)` are
//! rewritten; in `(?x)` mode white space and `#` comments are dropped;
//! inside classes `[`, `&`, `~` and a `-` next to a class escape (`[\w-.]`)
//! are literals, as in PCRE1 (PCRE2 refuses `[\w-.]`; this engine accepts it
//! on purpose).
//!
//! Validation (one-off, against PCRE2 through `grep -P` with `(?sm)` in the
//! C locale): on all 318 CRS v4 `@rx` patterns, the translated regexes
//! match exactly the same records as PCRE2 among ~17,000 payloads of the
//! CRS regression tests and ~25,000 variants with embedded and trailing
//! newlines, and `TX:0` equals PCRE2's first match on all 280,438
//! (pattern, payload) matches.
//!
//! Differences from ModSecurity v3: constructs that need backtracking are
//! refused with an error naming the construct and the pattern —
//! backreferences (`\1`, `\k<n>`), lookaround (`(?=`, `(?!`, `(?<=`,
//! `(?<!`), atomic groups (`(?>`), possessive quantifiers (`a*+`),
//! recursion, conditionals, `\K` and Unicode properties (`\p{..}`). There is
//! no `SecPcreMatchLimit`: matching is linear, so it cannot be exceeded.
//! Capture groups follow leftmost-first semantics, which gives the same
//! groups as PCRE's backtracking for the supported syntax.
//!
//! PCRE's multi-line `^` never matches at the very end of an input that
//! ends with `\n` (the `regex` crate's does): `^$` does not match `"abc\n"`.
//! When every `^` of a pattern can only hold at the start of a match (`^$`,
//! `^(?:a|b)*$`, `x|^$`, `(?:^|[^\\])\\`, the forms CRS uses), an empty
//! match at that end is re-checked with a `^`-free copy of the pattern, which
//! gives PCRE's result. Known deviation: for a `^` elsewhere (`a\n^$`,
//! `(?:a)?^b`, a repeated `^`) the `regex` crate's `^` is kept.

use std::sync::OnceLock;

use regex::bytes::{CaptureLocations, Regex, RegexBuilder};
use regex_syntax::hir::literal::{ExtractKind, Extractor};
use regex_syntax::hir::{self, Class, ClassBytes, ClassBytesRange, Hir, HirKind};

use super::{Operator, OperatorContext};
use crate::macros::MacroString;

/// Compiled-program size limit for one `@rx` pattern (default of the
/// `regex` crate is 10 MiB). The largest CRS v4 patterns need a few MiB
/// once case-insensitivity multiplies their classes; 64 MiB bounds the
/// memory a pathological configured pattern (`(?:a{1000}){1000}`) can take.
pub const REGEX_SIZE_LIMIT: usize = 64 << 20;

/// Lazy-DFA cache size per regex and thread (crate default 2 MiB): bounds the
/// memory hostile inputs can make the DFA build before it falls back to
/// slower but still linear engines.
pub const REGEX_DFA_SIZE_LIMIT: usize = 2 << 20;

/// Compiled-program size limit for a pattern built from a macro at
/// evaluation time: its text may come from request data through `TX`, so it
/// is bounded much lower than configured patterns.
pub const MACRO_REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Most literals a required-literal set may hold (the `regex-syntax`
/// extractor's own default total); bigger sets are given up on, as a
/// prefilter that large gains little over running the regex.
pub const MAX_REQUIRED_LITERALS: usize = 250;

/// Captures stored by the `capture` action: `TX:0` .. `TX:9`.
const MAX_CAPTURES: usize = 10;

/// Compiled `@rx`.
#[derive(Debug)]
pub(crate) struct Rx {
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    /// Empty pattern: ModSecurity matches every input without running PCRE.
    Always,
    /// A constant pattern, compiled once.
    Compiled {
        regex: Regex,
        /// For [`Caret::Leading`] patterns: the pattern with `^` never
        /// matching, to re-check an empty match at the end of an input
        /// ending with `\n` (where PCRE's `^` is false). Compiled on first
        /// use: few inputs end with a newline.
        without_caret: Option<LazyRegex>,
        literals: Option<Vec<Vec<u8>>>,
        /// Bytes one of which every match holds ([`required_bytes_of`]).
        bytes: Option<[u64; 4]>,
    },
    /// A pattern with macros, expanded and compiled per evaluation.
    Macro(MacroString),
}

/// A translated pattern compiled on first use.
#[derive(Debug)]
struct LazyRegex {
    pattern: String,
    regex: OnceLock<Option<Regex>>,
}

impl LazyRegex {
    /// The compiled regex; `None` only if it does not compile, which
    /// cannot happen for a `^`-free copy of a pattern that compiled (it is
    /// the same pattern with an empty class in place of each `^`).
    fn get(&self) -> Option<&Regex> {
        self.regex
            .get_or_init(|| build(&self.pattern, REGEX_SIZE_LIMIT).ok())
            .as_ref()
    }
}

/// Builds a regex from an already translated pattern.
pub(crate) fn build(translated: &str, size_limit: usize) -> Result<Regex, regex::Error> {
    RegexBuilder::new(translated)
        .unicode(false)
        .dot_matches_new_line(true)
        .multi_line(true)
        .size_limit(size_limit)
        .dfa_size_limit(REGEX_DFA_SIZE_LIMIT)
        .build()
}

impl Rx {
    pub(crate) fn new(argument: &str) -> Result<Rx, String> {
        let parsed = MacroString::parse(argument);
        if !parsed.is_constant() {
            return Ok(Rx {
                kind: Kind::Macro(parsed),
            });
        }
        if argument.is_empty() {
            return Ok(Rx { kind: Kind::Always });
        }
        let translation =
            translate(argument.as_bytes(), "^").map_err(|e| format!("@rx {argument:?}: {e}"))?;
        let compile = |pattern: &str| {
            build(pattern, REGEX_SIZE_LIMIT)
                .map_err(|e| format!("@rx {argument:?}: cannot compile: {e}"))
        };
        let regex = compile(&translation.pattern)?;
        let without_caret = match translation.caret {
            Caret::Leading => {
                let never = translate(argument.as_bytes(), NEVER)
                    .map_err(|e| format!("@rx {argument:?}: {e}"))?;
                Some(LazyRegex {
                    pattern: never.pattern,
                    regex: OnceLock::new(),
                })
            }
            Caret::None | Caret::Other => None,
        };
        let literals = required_literals_of(&translation.pattern);
        let bytes = required_bytes_of(&translation.pattern);
        Ok(Rx {
            kind: Kind::Compiled {
                regex,
                without_caret,
                literals,
                bytes,
            },
        })
    }
}

/// An assertion that never holds, written for `^` in the re-check regex.
const NEVER: &str = r"[^\x00-\xFF]";

/// Stores the groups of a match as `TX:0`..`TX:9`.
fn store(locations: &CaptureLocations, input: &[u8], ctx: &mut dyn OperatorContext) {
    for index in 0..locations.len().min(MAX_CAPTURES) {
        if let Some((start, end)) = locations.get(index) {
            ctx.set_capture(index, &input[start..end]);
        }
    }
}

/// Runs `regex`, storing captures when the rule captures.
fn run(regex: &Regex, input: &[u8], ctx: &mut dyn OperatorContext) -> bool {
    // Most evaluations do not match: the lazy DFA answers those without
    // the capture engines or a capture-locations allocation.
    if !regex.is_match(input) {
        return false;
    }
    if !ctx.capturing() {
        return true;
    }
    let mut locations = regex.capture_locations();
    if regex.captures_read(&mut locations, input).is_none() {
        return false;
    }
    store(&locations, input, ctx);
    true
}

/// Runs a [`Caret::Leading`] pattern with PCRE's `^`: on an input ending
/// with `\n`, `^` is false at the end. Every `^` sits at the start of the
/// match, so only a match starting at the end can have used it there; the
/// leftmost match is kept when it starts earlier, else the `^`-free
/// pattern decides whether an empty match at the end exists.
fn run_pcre_caret(
    regex: &Regex,
    without_caret: &Regex,
    input: &[u8],
    ctx: &mut dyn OperatorContext,
) -> bool {
    let end = input.len();
    if !ctx.capturing() {
        return match regex.find(input) {
            None => false,
            Some(m) if m.start() < end => true,
            Some(_) => without_caret.find_at(input, end).is_some(),
        };
    }
    let mut locations = regex.capture_locations();
    match regex.captures_read(&mut locations, input) {
        None => false,
        Some(m) if m.start() < end => {
            store(&locations, input, ctx);
            true
        }
        Some(_) => {
            let mut locations = without_caret.capture_locations();
            if without_caret
                .captures_read_at(&mut locations, input, end)
                .is_some()
            {
                store(&locations, input, ctx);
                true
            } else {
                false
            }
        }
    }
}

impl Operator for Rx {
    fn evaluate(&self, input: &[u8], ctx: &mut dyn OperatorContext) -> bool {
        match &self.kind {
            Kind::Always => true,
            Kind::Compiled {
                regex,
                without_caret: Some(lazy),
                ..
            } if input.last() == Some(&b'\n') => match lazy.get() {
                Some(without_caret) => run_pcre_caret(regex, without_caret, input, ctx),
                None => run(regex, input, ctx),
            },
            Kind::Compiled { regex, .. } => run(regex, input, ctx),
            Kind::Macro(pattern) => {
                let expanded = ctx.expand(pattern);
                let Ok(translation) = translate(&expanded, "^") else {
                    return false;
                };
                let Ok(regex) = build(&translation.pattern, MACRO_REGEX_SIZE_LIMIT) else {
                    return false;
                };
                if translation.caret == Caret::Leading && input.last() == Some(&b'\n') {
                    let without_caret = translate(&expanded, NEVER)
                        .ok()
                        .and_then(|t| build(&t.pattern, MACRO_REGEX_SIZE_LIMIT).ok());
                    if let Some(without_caret) = without_caret {
                        return run_pcre_caret(&regex, &without_caret, input, ctx);
                    }
                }
                run(&regex, input, ctx)
            }
        }
    }

    fn required_literals(&self) -> Option<Vec<Vec<u8>>> {
        match &self.kind {
            Kind::Compiled { literals, .. } => literals.clone(),
            _ => None,
        }
    }

    fn literals_case_insensitive(&self) -> bool {
        true
    }

    fn required_bytes(&self) -> Option<[u64; 4]> {
        match &self.kind {
            Kind::Compiled { bytes, .. } => *bytes,
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------
// PCRE -> regex translation
// ---------------------------------------------------------------------------

/// Translates a PCRE pattern (non-UTF mode, bytes) to the syntax of the
/// `regex` crate with the same meaning when compiled with Unicode off,
/// `dot_matches_new_line` and `multi_line`. Constructs `regex` cannot run in
/// linear time are refused with a message naming them.
pub fn translate_pcre(pattern: &[u8]) -> Result<String, String> {
    translate(pattern, "^").map(|t| t.pattern)
}

/// How a pattern uses PCRE's multi-line `^`, which (unlike the `regex`
/// crate's) never matches at the end of an input ending with `\n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caret {
    /// No `^` outside a class.
    None,
    /// Every `^` can only hold where the match starts (it opens the pattern
    /// or an alternative of a leading group, and is not repeated): a match
    /// needing `^` at the end is the empty match there, which is re-checked.
    Leading,
    /// Some `^` may hold elsewhere in a match: the documented deviation.
    Other,
}

/// A translated pattern and how it uses `^`.
struct Translation {
    pattern: String,
    caret: Caret,
}

/// Translates `pattern`, writing `caret` for each `^` outside a class.
fn translate(pattern: &[u8], caret: &'static str) -> Result<Translation, String> {
    Translator {
        p: pattern,
        i: 0,
        out: String::with_capacity(pattern.len() + 16),
        after_quantifier: false,
        groups: 0,
        caret,
        leading: true,
        open: Vec::new(),
        extended: false,
        prev_has_caret: false,
        caret_seen: false,
        caret_elsewhere: false,
    }
    .run()
}

struct Translator<'a> {
    p: &'a [u8],
    i: usize,
    out: String,
    /// The previous token was a quantifier: a `+` now makes it possessive.
    after_quantifier: bool,
    /// Capturing groups opened so far: decides whether `\12` is a
    /// backreference or octal, as in PCRE.
    groups: usize,
    /// What to write for `^`.
    caret: &'static str,
    /// Nothing that consumes input can precede the cursor in a match.
    leading: bool,
    /// Open groups.
    open: Vec<Group>,
    /// PCRE's `x` flag is on: white space and `#` comments are skipped.
    extended: bool,
    /// The previous token is `^` or a group holding one (a quantifier on
    /// it repeats the `^`).
    prev_has_caret: bool,
    caret_seen: bool,
    caret_elsewhere: bool,
}

/// Appends byte `b` as a literal that means the same inside and outside a
/// class, whatever the flags (`x` mode included).
fn push_literal(out: &mut String, b: u8) {
    if b.is_ascii_alphanumeric() || b == b'_' {
        out.push(b as char);
    } else {
        out.push_str(&format!("\\x{b:02X}"));
    }
}

fn hex_value(b: u8) -> Option<u32> {
    (b as char).to_digit(16)
}

/// An open group while translating.
#[derive(Debug, Clone, Copy)]
struct Group {
    /// Nothing that consumes input can precede the group's start.
    leading: bool,
    /// The group holds a `^`.
    has_caret: bool,
    /// The `x` flag outside the group, restored at its `)`.
    outer_extended: bool,
}

/// What a backslash sequence inside a class stands for.
enum ClassAtom {
    /// One byte: may be a range endpoint.
    Byte(u8),
    /// A set written in `regex` syntax (`\d`, `[:alpha:]`, `\t\x20\xA0`).
    Set(String),
}

impl Translator<'_> {
    fn peek(&self, ahead: usize) -> Option<u8> {
        self.p.get(self.i + ahead).copied()
    }

    fn starts_with(&self, s: &[u8]) -> bool {
        self.p[self.i..].starts_with(s)
    }

    fn push_group(&mut self) {
        self.open.push(Group {
            leading: self.leading,
            has_caret: false,
            outer_extended: self.extended,
        });
    }

    /// Applies inline flags (`x`, `-x`, `ix-s`) to the `x` state.
    fn apply_flags(&mut self, flags: &[u8]) {
        let mut on = true;
        for &f in flags {
            match f {
                b'-' => on = false,
                b'x' => self.extended = on,
                _ => {}
            }
        }
    }

    fn run(mut self) -> Result<Translation, String> {
        while let Some(c) = self.peek(0) {
            if self.extended {
                // PCRE `x` mode: white space and `#` comments are not part
                // of the pattern (they do not even separate a quantifier).
                if matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
                    self.i += 1;
                    continue;
                }
                if c == b'#' {
                    let rest = &self.p[self.i..];
                    self.i += rest
                        .iter()
                        .position(|&b| b == b'\n')
                        .map_or(rest.len(), |n| n + 1);
                    continue;
                }
            }
            let was_quantifier = std::mem::replace(&mut self.after_quantifier, false);
            let prev_has_caret = std::mem::replace(&mut self.prev_has_caret, false);
            // Tokens that may consume input end the leading position;
            // the arms for `(`, `)`, `|` and `^` set it themselves.
            let was_leading = std::mem::replace(&mut self.leading, false);
            if matches!(c, b'*' | b'+' | b'?' | b'{') && prev_has_caret {
                // `^` under a quantifier can hold at any iteration.
                self.caret_elsewhere = true;
            }
            match c {
                b'\\' => self.escape()?,
                b'[' => self.class()?,
                b'(' => {
                    self.leading = was_leading;
                    self.group()?;
                }
                b')' => {
                    if let Some(group) = self.open.pop() {
                        self.prev_has_caret = group.has_caret;
                        self.extended = group.outer_extended;
                    }
                    self.out.push(')');
                    self.i += 1;
                }
                b'|' => {
                    self.leading = self.open.last().is_none_or(|g| g.leading);
                    self.out.push('|');
                    self.i += 1;
                }
                b'^' => {
                    self.caret_seen = true;
                    if !was_leading {
                        self.caret_elsewhere = true;
                    }
                    for group in &mut self.open {
                        group.has_caret = true;
                    }
                    self.leading = was_leading;
                    self.prev_has_caret = true;
                    self.out.push_str(self.caret);
                    self.i += 1;
                }
                b'*' | b'+' | b'?' => {
                    if was_quantifier {
                        if c == b'+' {
                            return Err("possessive quantifiers (`*+`, `++`, `?+`, `{n}+`) are not supported".into());
                        }
                        if c == b'?' {
                            // Lazy modifier; a following `+` is then a plain error.
                            self.out.push('?');
                            self.i += 1;
                            continue;
                        }
                    }
                    self.out.push(c as char);
                    self.i += 1;
                    self.after_quantifier = true;
                }
                b'{' => {
                    if let Some(len) = self.counted_repetition() {
                        let text = &self.p[self.i..self.i + len];
                        self.out.push_str(&String::from_utf8_lossy(text));
                        self.i += len;
                        self.after_quantifier = true;
                    } else {
                        self.out.push_str("\\{");
                        self.i += 1;
                    }
                }
                b'}' => {
                    self.out.push_str("\\}");
                    self.i += 1;
                }
                0x80..=0xff => {
                    push_literal(&mut self.out, c);
                    self.i += 1;
                }
                _ => {
                    self.out.push(c as char);
                    self.i += 1;
                }
            }
        }
        let caret = match (self.caret_seen, self.caret_elsewhere) {
            (false, _) => Caret::None,
            (true, false) => Caret::Leading,
            (true, true) => Caret::Other,
        };
        Ok(Translation {
            pattern: self.out,
            caret,
        })
    }

    /// Length of `{n}`, `{n,}` or `{n,m}` at the cursor, if that is what is there.
    fn counted_repetition(&self) -> Option<usize> {
        let rest = &self.p[self.i..];
        let mut j = 1;
        let digits = |from: usize| {
            rest[from..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count()
        };
        let n = digits(j);
        if n == 0 {
            return None;
        }
        j += n;
        if rest.get(j) == Some(&b',') {
            j += 1;
            j += digits(j);
        }
        (rest.get(j) == Some(&b'}')).then_some(j + 1)
    }

    fn group(&mut self) -> Result<(), String> {
        // At '('.
        if self.starts_with(b"(*") {
            return Err("PCRE verbs and options like `(*UTF)` are not supported".into());
        }
        if !self.starts_with(b"(?") {
            self.groups += 1;
            self.push_group();
            self.out.push('(');
            self.i += 1;
            return Ok(());
        }
        let rest = &self.p[self.i + 2..];
        let unsupported = |what: &str| Err(format!("{what} are not supported (not linear-time)"));
        match rest.first() {
            Some(b'#') => {
                // Comment group: dropped.
                match rest.iter().position(|&b| b == b')') {
                    Some(end) => {
                        self.i += 2 + end + 1;
                        Ok(())
                    }
                    None => Err("unterminated (?# comment".into()),
                }
            }
            Some(b'=') | Some(b'!') => unsupported("lookahead assertions `(?=`/`(?!`"),
            Some(b'<') if matches!(rest.get(1), Some(b'=') | Some(b'!')) => {
                unsupported("lookbehind assertions `(?<=`/`(?<!`")
            }
            Some(b'>') => unsupported("atomic groups `(?>`"),
            Some(b'|') => unsupported("branch reset groups `(?|`"),
            Some(b'(') => unsupported("conditional groups `(?(`"),
            Some(b'R') | Some(b'&') | Some(b'0'..=b'9') | Some(b'+') => {
                unsupported("recursion and subroutine calls")
            }
            Some(b'C') => Err("callouts `(?C` are not supported".into()),
            Some(b'P') if matches!(rest.get(1), Some(b'=') | Some(b'>')) => {
                unsupported("backreferences and subroutine calls `(?P=`/`(?P>`")
            }
            Some(b'\'') => {
                // (?'name'...) -> (?P<name>...)
                match rest[1..].iter().position(|&b| b == b'\'') {
                    Some(end) => {
                        let name = String::from_utf8_lossy(&rest[1..1 + end]).into_owned();
                        self.groups += 1;
                        self.push_group();
                        self.out.push_str("(?P<");
                        self.out.push_str(&name);
                        self.out.push('>');
                        self.i += 2 + 1 + end + 1;
                        Ok(())
                    }
                    None => Err("unterminated group name".into()),
                }
            }
            Some(b':') => {
                self.push_group();
                self.out.push_str("(?:");
                self.i += 3;
                Ok(())
            }
            Some(b'<') | Some(b'P') => {
                // Named group: copy `(?<name>` / `(?P<name>` as written.
                let Some(end) = rest.iter().position(|&b| b == b'>') else {
                    return Err("unterminated group name".into());
                };
                self.groups += 1;
                self.push_group();
                self.out.push_str("(?");
                self.out.push_str(&String::from_utf8_lossy(&rest[..=end]));
                self.i += 2 + end + 1;
                Ok(())
            }
            _ => {
                // Inline flags `(?i)`, `(?i-s:`; regex knows i, m, s, x, U.
                let flags_len = rest.iter().take_while(|&&b| b != b')' && b != b':').count();
                let flags = &rest[..flags_len];
                if let Some(bad) = flags
                    .iter()
                    .find(|&&b| !matches!(b, b'i' | b'm' | b's' | b'x' | b'U' | b'-'))
                {
                    return Err(format!(
                        "inline flag {:?} is not supported",
                        char::from(*bad)
                    ));
                }
                self.out.push_str("(?");
                self.out.push_str(&String::from_utf8_lossy(flags));
                self.i += 2 + flags_len;
                let flags = flags.to_vec();
                match self.peek(0) {
                    Some(b')') => {
                        // `(?i)`: flags for the rest of the group, no group.
                        self.apply_flags(&flags);
                        self.out.push(')');
                        self.i += 1;
                    }
                    Some(b':') => {
                        self.push_group();
                        self.apply_flags(&flags);
                        self.out.push(':');
                        self.i += 1;
                    }
                    _ => return Err("unterminated inline flag group".into()),
                }
                Ok(())
            }
        }
    }

    /// `\` outside a class.
    fn escape(&mut self) -> Result<(), String> {
        let Some(c) = self.peek(1) else {
            return Err("pattern ends with a lone backslash".into());
        };
        self.i += 2;
        match c {
            b'Q' => {
                let rest = &self.p[self.i..];
                let end = find(rest, b"\\E").unwrap_or(rest.len());
                for &b in &rest[..end] {
                    push_literal(&mut self.out, b);
                }
                self.i += (end + 2).min(rest.len());
            }
            b'E' => {}
            b'd' | b'D' | b'w' | b'W' | b's' | b'S' | b'b' | b'B' | b'A' | b'z' | b'f' | b'n'
            | b'r' | b't' => {
                self.out.push('\\');
                self.out.push(c as char);
            }
            b'Z' => self.out.push_str(r"(?:\n?\z)"),
            // Matching always starts at offset 0, where \G holds.
            b'G' => self.out.push_str(r"\A"),
            b'h' => self.out.push_str(r"[\t\x20\xA0]"),
            b'H' => self.out.push_str(r"[^\t\x20\xA0]"),
            b'v' => self.out.push_str(r"[\n\x0B\x0C\r\x85]"),
            b'V' => self.out.push_str(r"[^\n\x0B\x0C\r\x85]"),
            b'R' => self.out.push_str(r"(?:\r\n|[\n\x0B\x0C\r\x85])"),
            b'N' => {
                if self.peek(0) == Some(b'{') {
                    return Err(r"\N{...} is not supported".into());
                }
                self.out.push_str(r"[^\n]");
            }
            b'C' => self.out.push_str(r"(?s:.)"),
            b'K' => return Err(r"\K is not supported".into()),
            b'1'..=b'9' => {
                // PCRE: a decimal number below 10, or not above the number of
                // groups opened so far, is a backreference; otherwise up to
                // three octal digits.
                let digits = self.p[self.i - 1..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                let number: usize = std::str::from_utf8(&self.p[self.i - 1..self.i - 1 + digits])
                    .ok()
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(usize::MAX);
                if number < 10 || number <= self.groups || c >= b'8' {
                    return Err(format!(
                        "backreferences (\\{number}) are not supported (not linear-time)"
                    ));
                }
                let b = self.byte_escape(c)?;
                push_literal(&mut self.out, b);
            }
            b'g' | b'k' => {
                return Err(format!(
                    "backreferences (\\{}) are not supported (not linear-time)",
                    c as char
                ))
            }
            b'p' | b'P' | b'X' => {
                return Err(format!(
                    "Unicode escapes (\\{}) are not supported: patterns match bytes",
                    c as char
                ))
            }
            _ => {
                let b = self.byte_escape(c)?;
                push_literal(&mut self.out, b);
            }
        }
        Ok(())
    }

    /// The byte of a single-byte escape whose letter `c` was just consumed
    /// (`\x41`, `\0`, `\cA`, `\e`, `\.`, …).
    fn byte_escape(&mut self, c: u8) -> Result<u8, String> {
        let too_large =
            |v: u32| format!("character value {v:#x} is too large (patterns are bytes)");
        match c {
            b'a' => Ok(0x07),
            b'e' => Ok(0x1b),
            b'f' => Ok(0x0c),
            b'n' => Ok(b'\n'),
            b'r' => Ok(b'\r'),
            b't' => Ok(b'\t'),
            b'x' => {
                if self.peek(0) == Some(b'{') {
                    let rest = &self.p[self.i + 1..];
                    let end = rest
                        .iter()
                        .position(|&b| b == b'}')
                        .ok_or("unterminated \\x{")?;
                    let mut value: u32 = 0;
                    if end == 0 {
                        return Err("empty \\x{}".into());
                    }
                    for &d in &rest[..end] {
                        let d = hex_value(d).ok_or("non-hex digit in \\x{}")?;
                        value = value.saturating_mul(16).saturating_add(d);
                    }
                    self.i += end + 2;
                    u8::try_from(value).map_err(|_| too_large(value))
                } else {
                    let mut value = 0u32;
                    for _ in 0..2 {
                        match self.peek(0).and_then(hex_value) {
                            Some(d) => {
                                value = value * 16 + d;
                                self.i += 1;
                            }
                            None => break,
                        }
                    }
                    Ok(value as u8)
                }
            }
            b'o' => {
                if self.peek(0) != Some(b'{') {
                    return Err("\\o must be followed by {".into());
                }
                let rest = &self.p[self.i + 1..];
                let end = rest
                    .iter()
                    .position(|&b| b == b'}')
                    .ok_or("unterminated \\o{")?;
                let mut value: u32 = 0;
                for &d in &rest[..end] {
                    if !(b'0'..=b'7').contains(&d) {
                        return Err("non-octal digit in \\o{}".into());
                    }
                    value = value.saturating_mul(8).saturating_add(u32::from(d - b'0'));
                }
                self.i += end + 2;
                u8::try_from(value).map_err(|_| too_large(value))
            }
            b'0'..=b'7' => {
                // Octal: `\0` plus up to two digits outside a class; inside a
                // class `\1`..`\7` start octal too.
                let mut value = u32::from(c - b'0');
                for _ in 0..2 {
                    match self.peek(0) {
                        Some(d @ b'0'..=b'7') => {
                            value = value * 8 + u32::from(d - b'0');
                            self.i += 1;
                        }
                        _ => break,
                    }
                }
                u8::try_from(value).map_err(|_| too_large(value))
            }
            b'c' => {
                let Some(x) = self.peek(0) else {
                    return Err("\\c at the end of the pattern".into());
                };
                if !x.is_ascii() {
                    return Err("\\c must be followed by an ASCII character".into());
                }
                self.i += 1;
                Ok(x.to_ascii_uppercase() ^ 0x40)
            }
            _ if c.is_ascii_alphanumeric() => {
                Err(format!("unknown escape \\{} in a PCRE pattern", c as char))
            }
            // `\` before any other byte (punctuation, space, non-ASCII) is that byte.
            _ => Ok(c),
        }
    }

    /// A character class, from `[` to its closing `]`.
    fn class(&mut self) -> Result<(), String> {
        let start = self.i;
        self.i += 1;
        self.out.push('[');
        if self.peek(0) == Some(b'^') {
            self.out.push('^');
            self.i += 1;
        }
        let mut first = true;
        // The last atom emitted, when it was a single byte that a `-` may
        // turn into a range start.
        let mut range_start: Option<u8> = None;
        loop {
            let Some(c) = self.peek(0) else {
                return Err(format!(
                    "unterminated character class starting at offset {start}"
                ));
            };
            if c == b']' && !first {
                self.i += 1;
                break;
            }
            first = false;
            if c == b'-' && range_start.is_some() && self.peek(1).is_some_and(|n| n != b']') {
                // Possibly a range: only if the next atom is a single byte.
                let save = self.i;
                self.i += 1;
                match self.class_atom()? {
                    ClassAtom::Byte(end) => {
                        let begin = range_start.take().unwrap_or(end);
                        if begin > end {
                            return Err(format!(
                                "invalid range {:?}-{:?} in a character class",
                                char::from(begin),
                                char::from(end)
                            ));
                        }
                        self.out.push('-');
                        push_literal(&mut self.out, end);
                        continue;
                    }
                    ClassAtom::Set(_) => {
                        // `[a-\d]`: PCRE takes `-` literally.
                        self.i = save + 1;
                        push_literal(&mut self.out, b'-');
                        range_start = None;
                        continue;
                    }
                }
            }
            match self.class_atom()? {
                ClassAtom::Byte(b) => {
                    push_literal(&mut self.out, b);
                    range_start = Some(b);
                }
                ClassAtom::Set(s) => {
                    self.out.push_str(&s);
                    range_start = None;
                }
            }
        }
        self.out.push(']');
        Ok(())
    }

    /// One atom inside a class (a byte, an escape, a POSIX class); the
    /// cursor is moved past it.
    fn class_atom(&mut self) -> Result<ClassAtom, String> {
        let Some(c) = self.peek(0) else {
            return Err("unterminated character class".into());
        };
        if c == b'[' {
            if let Some(posix) = self.posix_class()? {
                return Ok(ClassAtom::Set(posix));
            }
            self.i += 1;
            return Ok(ClassAtom::Byte(b'['));
        }
        if c != b'\\' {
            self.i += 1;
            return Ok(ClassAtom::Byte(c));
        }
        let Some(e) = self.peek(1) else {
            return Err("pattern ends with a lone backslash".into());
        };
        self.i += 2;
        let set = |s: &str| Ok(ClassAtom::Set(s.to_string()));
        match e {
            b'd' | b'D' | b'w' | b'W' | b's' | b'S' => set(&format!("\\{}", e as char)),
            b'b' => Ok(ClassAtom::Byte(0x08)),
            b'h' => set(r"\t\x20\xA0"),
            b'v' => set(r"\n\x0B\x0C\r\x85"),
            b'Q' => {
                let rest = &self.p[self.i..];
                let end = find(rest, b"\\E").unwrap_or(rest.len());
                let mut s = String::new();
                for &b in &rest[..end] {
                    push_literal(&mut s, b);
                }
                self.i += (end + 2).min(rest.len());
                set(&s)
            }
            b'E' => set(""),
            b'H' | b'V' | b'N' | b'R' | b'X' | b'B' | b'A' | b'z' | b'Z' | b'G' | b'K' => Err(
                format!("\\{} is not supported inside a character class", e as char),
            ),
            b'p' | b'P' => Err("Unicode properties are not supported: patterns match bytes".into()),
            b'8' | b'9' => Err(format!(
                "invalid escape \\{} in a character class",
                e as char
            )),
            _ => self.byte_escape(e).map(ClassAtom::Byte),
        }
    }

    /// `[:alpha:]` / `[:^alpha:]` at the cursor inside a class; `None` when
    /// the `[` is a literal.
    fn posix_class(&mut self) -> Result<Option<String>, String> {
        let rest = &self.p[self.i..];
        if rest.len() < 2 || !matches!(rest[1], b':' | b'.' | b'=') {
            return Ok(None);
        }
        let delimiter = rest[1];
        let name_len = rest[2..]
            .iter()
            .take_while(|b| b.is_ascii_alphabetic() || **b == b'^')
            .count();
        if rest.get(2 + name_len) != Some(&delimiter) || rest.get(3 + name_len) != Some(&b']') {
            return Ok(None);
        }
        if delimiter != b':' {
            return Err("POSIX collating elements `[.x.]`/`[=x=]` are not supported".into());
        }
        let name = &rest[2..2 + name_len];
        let bare = name.strip_prefix(b"^").unwrap_or(name);
        const NAMES: &[&[u8]] = &[
            b"alnum", b"alpha", b"ascii", b"blank", b"cntrl", b"digit", b"graph", b"lower",
            b"print", b"punct", b"space", b"upper", b"word", b"xdigit",
        ];
        if !NAMES.contains(&bare) {
            return Err(format!(
                "unknown POSIX class [:{}:]",
                String::from_utf8_lossy(name)
            ));
        }
        self.i += 2 + name_len + 2;
        Ok(Some(format!("[:{}:]", String::from_utf8_lossy(name))))
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

// ---------------------------------------------------------------------------
// Required literals
// ---------------------------------------------------------------------------

/// Literals of which at least one occurs (ASCII-case-insensitively) in every
/// input the translated pattern matches, lower-cased; `None` when no useful
/// set (every literal at least 2 bytes, at most [`MAX_REQUIRED_LITERALS`])
/// is known.
/// Most "commonness" (see [`byte_weight`]) a required byte set may have:
/// a set holding most letters would almost never let a value be skipped,
/// so it is not worth checking.
const MAX_REQUIRED_BYTES_WEIGHT: u32 = 64;

/// How common a byte is in ordinary request data: letters, digits and space
/// are, punctuation less, control and non-ASCII bytes rarely.
fn byte_weight(b: u8) -> u32 {
    match b {
        b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b' ' => 10,
        0x21..=0x7e => 2,
        _ => 1,
    }
}

fn set_weight(set: &[u64; 4]) -> u32 {
    (0..=255u8)
        .filter(|&b| set[usize::from(b >> 6)] & (1 << (b & 63)) != 0)
        .map(byte_weight)
        .sum()
}

/// A set of bytes one of which occurs in every match of the (translated)
/// pattern, if a selective one exists: the prefilter for patterns without
/// a required literal (the large CRS command-injection and XSS patterns
/// all need some separator or `<`, `=`, `$` byte).
fn required_bytes_of(translated: &str) -> Option<[u64; 4]> {
    let hir = regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .dot_matches_new_line(true)
        .multi_line(true)
        .build()
        .parse(translated)
        .ok()?;
    let set = required_bytes(&hir)?;
    (set_weight(&set) <= MAX_REQUIRED_BYTES_WEIGHT).then_some(set)
}

/// Bytes one of which every match of `hir` holds: a literal's rarest byte,
/// a class's members, the most selective part of a concatenation, the
/// union over an alternation; nothing for what can match empty.
fn required_bytes(hir: &Hir) -> Option<[u64; 4]> {
    let single = |b: u8| {
        let mut set = [0u64; 4];
        set[usize::from(b >> 6)] |= 1 << (b & 63);
        set
    };
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => None,
        HirKind::Literal(hir::Literal(bytes)) => bytes
            .iter()
            .copied()
            .min_by_key(|&b| byte_weight(b))
            .map(single),
        HirKind::Class(Class::Bytes(class)) => {
            let mut set = [0u64; 4];
            for range in class.iter() {
                for b in range.start()..=range.end() {
                    set[usize::from(b >> 6)] |= 1 << (b & 63);
                }
            }
            Some(set)
        }
        HirKind::Class(Class::Unicode(_)) => None,
        HirKind::Repetition(rep) if rep.min == 0 => None,
        HirKind::Repetition(rep) => required_bytes(&rep.sub),
        HirKind::Capture(cap) => required_bytes(&cap.sub),
        HirKind::Concat(subs) => subs
            .iter()
            .filter_map(required_bytes)
            .min_by_key(set_weight),
        HirKind::Alternation(subs) => {
            let mut set = [0u64; 4];
            for sub in subs {
                let s = required_bytes(sub)?;
                for (w, x) in set.iter_mut().zip(s) {
                    *w |= x;
                }
            }
            Some(set)
        }
    }
}

fn required_literals_of(translated: &str) -> Option<Vec<Vec<u8>>> {
    let hir = regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .dot_matches_new_line(true)
        .multi_line(true)
        .build()
        .parse(translated)
        .ok()?;
    let folded = fold_case(&hir);
    let set = required(&folded)?;
    let min = set.iter().map(Vec::len).min()?;
    (min >= 2 && set.len() <= MAX_REQUIRED_LITERALS).then_some(set)
}

/// Rewrites `hir` so that it matches the ASCII-lower-cased form of every
/// input the original matches: literals are lower-cased and classes
/// replaced by their lower-cased image. Literals required by the result,
/// searched case-insensitively, are therefore required by the original.
fn fold_case(hir: &Hir) -> Hir {
    match hir.kind() {
        HirKind::Empty => Hir::empty(),
        HirKind::Literal(hir::Literal(bytes)) => Hir::literal(bytes.to_ascii_lowercase()),
        HirKind::Class(Class::Bytes(class)) => {
            let mut members = [false; 256];
            for range in class.iter() {
                for b in range.start()..=range.end() {
                    members[usize::from(b.to_ascii_lowercase())] = true;
                }
            }
            Hir::class(Class::Bytes(class_from_members(&members)))
        }
        // Not produced with Unicode off; any byte is a safe over-approximation.
        HirKind::Class(Class::Unicode(_)) => {
            Hir::class(Class::Bytes(ClassBytes::new([ClassBytesRange::new(
                0, 255,
            )])))
        }
        HirKind::Look(look) => Hir::look(*look),
        HirKind::Repetition(rep) => Hir::repetition(hir::Repetition {
            min: rep.min,
            max: rep.max,
            greedy: rep.greedy,
            sub: Box::new(fold_case(&rep.sub)),
        }),
        HirKind::Capture(cap) => Hir::capture(hir::Capture {
            index: cap.index,
            name: cap.name.clone(),
            sub: Box::new(fold_case(&cap.sub)),
        }),
        HirKind::Concat(subs) => Hir::concat(subs.iter().map(fold_case).collect()),
        HirKind::Alternation(subs) => Hir::alternation(subs.iter().map(fold_case).collect()),
    }
}

fn class_from_members(members: &[bool; 256]) -> ClassBytes {
    let mut ranges = Vec::new();
    let mut b = 0usize;
    while b < 256 {
        if members[b] {
            let start = b;
            while b + 1 < 256 && members[b + 1] {
                b += 1;
            }
            ranges.push(ClassBytesRange::new(start as u8, b as u8));
        }
        b += 1;
    }
    ClassBytes::new(ranges)
}

/// Ranks literal sets: longer shortest literal first (beyond 4 bytes all
/// are equally selective), then fewer literals.
fn score(set: &[Vec<u8>]) -> (usize, std::cmp::Reverse<usize>) {
    let min = set.iter().map(Vec::len).min().unwrap_or(0);
    (min.min(4), std::cmp::Reverse(set.len()))
}

fn better(a: Option<Vec<Vec<u8>>>, b: Option<Vec<Vec<u8>>>) -> Option<Vec<Vec<u8>>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if score(&b) > score(&a) { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// Drops duplicates and every literal containing another (if the longer
/// one occurs, so does the shorter), keeping the "at least one occurs"
/// condition unchanged.
fn minimise(mut set: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    set.sort_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
    set.dedup();
    let mut kept: Vec<Vec<u8>> = Vec::with_capacity(set.len());
    for lit in set {
        if !kept.iter().any(|k| find(&lit, k).is_some()) {
            kept.push(lit);
        }
    }
    kept
}

/// Literal set every match of `hir` must start with (prefix extraction).
fn prefixes(hir: &Hir) -> Option<Vec<Vec<u8>>> {
    let mut extractor = Extractor::new();
    extractor.kind(ExtractKind::Prefix);
    let seq = extractor.extract(hir);
    let literals = seq.literals()?;
    if literals.is_empty() {
        return None;
    }
    Some(minimise(
        literals.iter().map(|l| l.as_bytes().to_vec()).collect(),
    ))
}

/// A set of literals at least one of which occurs in any text `hir` matches.
fn required(hir: &Hir) -> Option<Vec<Vec<u8>>> {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => None,
        HirKind::Literal(hir::Literal(bytes)) => Some(vec![bytes.to_vec()]),
        HirKind::Class(_) => prefixes(hir),
        HirKind::Capture(cap) => required(&cap.sub),
        HirKind::Repetition(rep) if rep.min >= 1 => required(&rep.sub),
        HirKind::Repetition(_) => None,
        HirKind::Alternation(subs) => {
            let mut union = Vec::new();
            for sub in subs {
                union.extend(required(sub)?);
                if union.len() > MAX_REQUIRED_LITERALS * 4 {
                    return None;
                }
            }
            Some(minimise(union))
        }
        HirKind::Concat(subs) => {
            let mut best = None;
            for (i, sub) in subs.iter().enumerate() {
                let spanning = prefixes(&Hir::concat(subs[i..].to_vec()));
                best = better(best, spanning);
                best = better(best, required(sub));
            }
            best
        }
    }
}
