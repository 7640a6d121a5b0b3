//! SQL tokenizer, folding and fingerprint matcher that behaves like
//! libinjection's `libinjection_sqli` (what ModSecurity's `@detectSQLi` runs).
//!
//! The pipeline, per start context:
//!
//! ```text
//! bytes ─► tokenize ─► fold (≤ 5 tokens) ─► fingerprint ("s&1c") ─► table + heuristics
//! ```
//!
//! [`detect_sqli`] tries the input as-is, then (when the input contains a
//! quote) as if it continued a single- or double-quoted string, and in
//! MySQL comment mode when the ANSI pass saw comment syntax MySQL reads
//! differently — exactly the sequence libinjection's `libinjection_is_sqli`
//! runs. Every step works on fixed-size arrays: one call allocates nothing
//! and runs in time linear in the input.
//!
//! The character classes, the keyword table and the fingerprint list are
//! libinjection data (BSD-3-Clause, see `NOTICE`), generated into
//! `sqli/tables.rs` by `sqli/gen_tables.py`; the code is an independent
//! implementation of libinjection's behaviour, checked against its test
//! suite and differentially against its C implementation.

mod fold;
mod tables;
mod tokenize;

pub use fold::{analyze, fingerprint, fingerprint_tokens, fold, Analysis, Folded};
pub use tokenize::{tokenize, Tokens};

/// Maximum number of bytes of a token's text that is kept (libinjection's
/// `val[32]` including its terminating NUL). Longer words, strings and
/// comments are truncated; their kind is still decided on the full input
/// where libinjection does so. Bounds the per-token copy to 31 bytes.
pub const TOKEN_VALUE_MAX: usize = 31;

/// Maximum number of tokens in a fingerprint (libinjection's
/// `LIBINJECTION_SQLI_MAX_TOKENS`). Folding stops after this many, which is
/// what keeps a call linear in the input and free of allocation.
pub const MAX_FINGERPRINT_TOKENS: usize = 5;

/// Size of the folding work area: five fingerprint tokens, plus one
/// look-ahead token, plus slack for the rules that peek one further.
const TOKEN_SLOTS: usize = 8;

/// The kind of a SQL token; [`TokenKind::as_char`] gives libinjection's
/// one-character code used in fingerprints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum TokenKind {
    /// No token (an empty slot).
    #[default]
    None,
    /// `k`: a keyword that is none of the more specific kinds.
    Keyword,
    /// `U`: `UNION`, `UNION ALL`, `EXCEPT`, `INTERSECT` …
    Union,
    /// `B`: `GROUP BY`, `ORDER BY`, `LIMIT`, `HAVING` …
    Group,
    /// `E`: statements such as `SELECT`, `INSERT`, `DELETE`.
    Expression,
    /// `t`: SQL types (`INT`, `CHAR`) and similar casts.
    SqlType,
    /// `f`: a function name.
    Function,
    /// `n`: a bare word (identifier) or unknown word.
    Bareword,
    /// `1`: a number.
    Number,
    /// `v`: a variable (`@x`, `@@version`) or variable-like keyword.
    Variable,
    /// `s`: a string literal.
    String,
    /// `o`: an operator.
    Operator,
    /// `&`: a logical operator (`AND`, `OR`, `&&`, `||`).
    LogicOperator,
    /// `c`: a comment.
    Comment,
    /// `A`: `COLLATE`.
    Collate,
    /// `(`
    LeftParens,
    /// `)`
    RightParens,
    /// `{`
    LeftBrace,
    /// `}`
    RightBrace,
    /// `.`
    Dot,
    /// `,`
    Comma,
    /// `:`
    Colon,
    /// `;`
    Semicolon,
    /// `T`: a Transact-SQL control word (`IF`, `WAITFOR` …).
    Tsql,
    /// `?`: a byte that starts no SQL token.
    Unknown,
    /// `X`: syntax that cannot be parsed consistently (nested or MySQL
    /// `/*!` comments); always reported as injection.
    Evil,
    /// `\`: a lone backslash.
    Backslash,
}

impl TokenKind {
    /// libinjection's one-character code for this kind (`'\0'` for `None`).
    pub const fn as_char(self) -> char {
        self.as_byte() as char
    }

    pub(crate) const fn as_byte(self) -> u8 {
        match self {
            TokenKind::None => 0,
            TokenKind::Keyword => b'k',
            TokenKind::Union => b'U',
            TokenKind::Group => b'B',
            TokenKind::Expression => b'E',
            TokenKind::SqlType => b't',
            TokenKind::Function => b'f',
            TokenKind::Bareword => b'n',
            TokenKind::Number => b'1',
            TokenKind::Variable => b'v',
            TokenKind::String => b's',
            TokenKind::Operator => b'o',
            TokenKind::LogicOperator => b'&',
            TokenKind::Comment => b'c',
            TokenKind::Collate => b'A',
            TokenKind::LeftParens => b'(',
            TokenKind::RightParens => b')',
            TokenKind::LeftBrace => b'{',
            TokenKind::RightBrace => b'}',
            TokenKind::Dot => b'.',
            TokenKind::Comma => b',',
            TokenKind::Colon => b':',
            TokenKind::Semicolon => b';',
            TokenKind::Tsql => b'T',
            TokenKind::Unknown => b'?',
            TokenKind::Evil => b'X',
            TokenKind::Backslash => b'\\',
        }
    }
}

/// How a string that the input may be continuing was opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum QuoteContext {
    /// Tokenize the input as it is.
    #[default]
    None,
    /// Pretend the input follows a `'` (e.g. `1' OR '1'='1`).
    Single,
    /// Pretend the input follows a `"`.
    Double,
}

/// Which SQL dialect decides how `#` and `--x` are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Dialect {
    /// `#` is an operator; `--` starts a comment even without a following space.
    #[default]
    Ansi,
    /// `#` starts a comment; `--` needs a following space (else two minus signs).
    Mysql,
}

/// Tokenizer settings (libinjection's `FLAG_QUOTE_*` and `FLAG_SQL_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Flags {
    /// The string context the input starts in.
    pub quote: QuoteContext,
    /// The comment dialect.
    pub dialect: Dialect,
}

impl Flags {
    /// As-is input, ANSI comments: what libinjection's test driver uses for
    /// its token and folding tests.
    pub const ANSI: Flags = Flags {
        quote: QuoteContext::None,
        dialect: Dialect::Ansi,
    };

    /// Builds flags from a quote context and a dialect.
    pub const fn new(quote: QuoteContext, dialect: Dialect) -> Flags {
        Flags { quote, dialect }
    }
}

/// One SQL token: its kind, where it starts, and up to
/// [`TOKEN_VALUE_MAX`] bytes of its text.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Token {
    /// The token's kind.
    pub kind: TokenKind,
    /// Byte offset in the input where the token's text starts (after any
    /// opening quote or prefix).
    pub pos: usize,
    /// Opening delimiter of a string-like token (`'`, `"`, `` ` ``, `q`,
    /// `u`, `$`), `0` when there was none (input started inside the string).
    pub str_open: u8,
    /// Closing delimiter, `0` when the string ran to the end of the input.
    pub str_close: u8,
    /// For variables: how many `@` preceded the name (1 or 2).
    pub count: u8,
    len: u8,
    val: [u8; TOKEN_VALUE_MAX + 1],
}

impl Default for Token {
    fn default() -> Self {
        Token::EMPTY
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("kind", &self.kind.as_char())
            .field("value", &String::from_utf8_lossy(self.value()))
            .field("pos", &self.pos)
            .finish()
    }
}

impl Token {
    pub(crate) const EMPTY: Token = Token {
        kind: TokenKind::None,
        pos: 0,
        str_open: 0,
        str_close: 0,
        count: 0,
        len: 0,
        val: [0; TOKEN_VALUE_MAX + 1],
    };

    /// The token's text, truncated to [`TOKEN_VALUE_MAX`] bytes. Strings
    /// and comments exclude their delimiters; folded phrases such as
    /// `UNION ALL` are joined by one space.
    pub fn value(&self) -> &[u8] {
        &self.val[..self.len as usize]
    }

    /// Sets kind, position and (truncated) text; leaves the string and
    /// variable decorations alone, as callers layer those on afterwards.
    pub(crate) fn assign(&mut self, kind: TokenKind, pos: usize, text: &[u8]) {
        let n = text.len().min(TOKEN_VALUE_MAX);
        self.kind = kind;
        self.pos = pos;
        self.val[..n].copy_from_slice(&text[..n]);
        // Mirrors the C NUL terminator so stale bytes never leak into the
        // 31-byte window that later lookups read.
        self.val[n] = 0;
        self.len = n as u8;
    }

    pub(crate) fn assign_byte(&mut self, kind: TokenKind, pos: usize, byte: u8) {
        self.assign(kind, pos, &[byte]);
    }

    /// True for `+ - ! ~ !! NOT` operators.
    pub(crate) fn is_unary_op(&self) -> bool {
        if self.kind != TokenKind::Operator {
            return false;
        }
        match self.value() {
            [b'+' | b'-' | b'!' | b'~'] => true,
            b"!!" => true,
            v if v.len() == 3 => v.eq_ignore_ascii_case(b"NOT"),
            _ => false,
        }
    }

    pub(crate) fn is_arithmetic_op(&self) -> bool {
        self.kind == TokenKind::Operator
            && matches!(self.value(), [b'*' | b'/' | b'-' | b'+' | b'%'])
    }

    /// First byte of the text, `0` when empty (C reads the terminator).
    pub(crate) fn first(&self) -> u8 {
        self.val[0]
    }
}

/// Words are compared as four big-endian `u64`s of their zero-padded,
/// upper-cased bytes: lexicographic order is kept (no keyword holds a NUL)
/// and a binary-search step costs integer compares, not a `memcmp` call.
type WordKey = [u64; 4];

const fn pack_word(word: &[u8]) -> WordKey {
    let mut key = [0u64; 4];
    let mut i = 0;
    while i < word.len() && i < 32 {
        key[i / 8] |= (word[i].to_ascii_uppercase() as u64) << (56 - 8 * (i % 8));
        i += 1;
    }
    key
}

/// Fingerprints (at most five codes) pack into one big-endian `u64`.
const fn pack_fingerprint(fp: &[u8]) -> u64 {
    let mut key = 0u64;
    let mut i = 0;
    while i < fp.len() && i < 8 {
        key |= (fp[i].to_ascii_uppercase() as u64) << (56 - 8 * i);
        i += 1;
    }
    key
}

static KEYWORD_KEYS: [WordKey; tables::KEYWORDS.len()] = {
    let mut out = [[0u64; 4]; tables::KEYWORDS.len()];
    let mut i = 0;
    while i < out.len() {
        out[i] = pack_word(tables::KEYWORDS[i].0);
        i += 1;
    }
    out
};

static KEYWORD_KINDS: [TokenKind; tables::KEYWORDS.len()] = {
    let mut out = [TokenKind::None; tables::KEYWORDS.len()];
    let mut i = 0;
    while i < out.len() {
        out[i] = tables::KEYWORDS[i].1;
        i += 1;
    }
    out
};

static FINGERPRINT_KEYS: [u64; tables::FINGERPRINTS.len()] = {
    let mut out = [0u64; tables::FINGERPRINTS.len()];
    let mut i = 0;
    while i < out.len() {
        out[i] = pack_fingerprint(tables::FINGERPRINTS[i]);
        i += 1;
    }
    out
};

/// Looks up a SQL word case-insensitively (ASCII) in libinjection's keyword
/// table; `None` when it is not a keyword. Words longer than
/// [`TOKEN_VALUE_MAX`] are never keywords.
pub fn keyword_kind(word: &[u8]) -> Option<TokenKind> {
    // No keyword is empty, longer than a token value, or holds a NUL (which
    // the zero padding could not tell from the end of the word).
    if word.is_empty() || word.len() > TOKEN_VALUE_MAX || word.contains(&0) {
        return None;
    }
    let key = pack_word(word);
    KEYWORD_KEYS
        .binary_search(&key)
        .ok()
        .map(|i| KEYWORD_KINDS[i])
}

/// Internal form of [`keyword_kind`] with libinjection's "no match" value.
pub(crate) fn lookup_word(word: &[u8]) -> TokenKind {
    keyword_kind(word).unwrap_or(TokenKind::None)
}

/// True when `fp` (token codes such as `s&1c`) is in libinjection's
/// fingerprint list. Matching ignores ASCII case, as libinjection's does.
pub fn fingerprint_listed(fp: &[u8]) -> bool {
    if fp.is_empty() || fp.len() > MAX_FINGERPRINT_TOKENS || fp.contains(&0) {
        return false;
    }
    FINGERPRINT_KEYS
        .binary_search(&pack_fingerprint(fp))
        .is_ok()
}

/// A libinjection fingerprint: up to five token-type characters, e.g. `s&1c`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Fingerprint {
    bytes: [u8; 8],
    len: u8,
}

impl Fingerprint {
    /// The fingerprint as text, e.g. `"s&1c"`.
    pub fn as_str(&self) -> &str {
        // Token codes are ASCII by construction, so this never fails.
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("")
    }

    /// The fingerprint's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    pub(crate) fn from_kinds(kinds: impl Iterator<Item = TokenKind>) -> Fingerprint {
        let mut fp = Fingerprint::default();
        // Folding can report one token more than the maximum when it gives
        // up on unparsable input; that fingerprint is then replaced by `X`.
        for k in kinds.take(MAX_FINGERPRINT_TOKENS + 2) {
            fp.bytes[fp.len as usize] = k.as_byte();
            fp.len += 1;
        }
        fp
    }
}

impl std::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fingerprint({:?})", self.as_str())
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Returns the fingerprint when `input` looks like SQL injection, as
/// libinjection's `libinjection_sqli` does (the same contexts, in the same
/// order, so the same fingerprint is reported).
///
/// ```
/// let fp = detect::detect_sqli(b"1' OR '1'='1").map(|f| f.as_str().to_owned());
/// assert_eq!(fp.as_deref(), Some("s&sos"));
/// assert_eq!(detect::detect_sqli(b"O'Reilly"), None);
/// ```
pub fn detect_sqli(input: &[u8]) -> Option<Fingerprint> {
    if input.is_empty() {
        return None;
    }
    let run = |quote, dialect| analyze(input, Flags::new(quote, dialect));
    // A pass that saw `#` or `--x` is repeated with MySQL's reading of them.
    let with_mysql_retry = |quote| {
        let first = run(quote, Dialect::Ansi);
        if first.is_sqli {
            return Some(first.fingerprint);
        }
        if first.mysql_comment_syntax {
            let again = run(quote, Dialect::Mysql);
            if again.is_sqli {
                return Some(again.fingerprint);
            }
        }
        None
    };

    if let Some(fp) = with_mysql_retry(QuoteContext::None) {
        return Some(fp);
    }
    if input.contains(&b'\'') {
        if let Some(fp) = with_mysql_retry(QuoteContext::Single) {
            return Some(fp);
        }
    }
    if input.contains(&b'"') {
        let run = run(QuoteContext::Double, Dialect::Mysql);
        if run.is_sqli {
            return Some(run.fingerprint);
        }
    }
    None
}

#[cfg(test)]
mod tests;
