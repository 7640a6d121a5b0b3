//! The SQL tokenizer: one dispatch on the class of the current byte, then a
//! small scanner per class. Every scanner consumes at least one byte, so a
//! full pass is linear in the input.

use super::tables::CHAR_CLASS;
use super::{lookup_word, Dialect, Flags, QuoteContext, Token, TokenKind};

/// What a byte can start (libinjection's `CHAR_*` classes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CharClass {
    White,
    Word,
    Op1,
    Op2,
    Backslash,
    Dash,
    Quote,
    Hash,
    Number,
    Slash,
    /// Single-character tokens whose kind is the character: `; , ( ) { }`.
    Char,
    Variable,
    Other,
    Money,
    Tick,
    UString,
    QString,
    NqString,
    XString,
    BString,
    EString,
    BracketWord,
}

/// Bytes that end a bare word (NUL and Latin-1 NBSP included).
const WORD_STOP: &[u8] = b" []{}<>:\\?=@!#~+-*/&|^%(),';\t\n\x0b\x0c\r\"\xa0\0";
/// Bytes that end a variable name.
const VAR_STOP: &[u8] = b" <>:\\?=@!#~+-*/&|^%(),';\t\n\x0b\x0c\r'`\"\0";
const HEX_DIGITS: &[u8] = b"0123456789ABCDEFabcdef";
const BIN_DIGITS: &[u8] = b"01";
const MONEY_CHARS: &[u8] = b"0123456789.,";
const ASCII_LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// SQL whitespace: C isspace, NUL (Oracle ignores it) and Latin-1 NBSP.
pub(crate) fn is_white(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | 0xa0 | 0)
}

/// Length of the prefix made of bytes in `set`. A NUL byte always counts
/// as "in the set": libinjection tests membership with `strchr`, which
/// finds the terminator, and fingerprints depend on that quirk.
fn span(s: &[u8], set: &[u8]) -> usize {
    s.iter()
        .position(|b| *b != 0 && !set.contains(b))
        .unwrap_or(s.len())
}

/// Length of the prefix made of bytes not in `stop` (NUL always stops).
fn cspan(s: &[u8], stop: &[u8]) -> usize {
    s.iter()
        .position(|b| *b == 0 || stop.contains(b))
        .unwrap_or(s.len())
}

fn find_byte(s: &[u8], b: u8) -> Option<usize> {
    s.iter().position(|x| *x == b)
}

/// Index of the first `c0` immediately followed by `c1`.
pub(crate) fn find_pair(s: &[u8], c0: u8, c1: u8) -> Option<usize> {
    s.windows(2).position(|w| w[0] == c0 && w[1] == c1)
}

/// Index of the first occurrence of `needle` (non-empty) in `hay`.
pub(crate) fn find_sub(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A streaming SQL tokenizer over one input with one set of [`Flags`].
#[derive(Debug, Clone)]
pub(crate) struct Tokenizer<'a> {
    s: &'a [u8],
    pos: usize,
    flags: Flags,
    /// Tokens produced so far (comments included).
    pub(crate) stats_tokens: usize,
    /// `--x` comments read the ANSI way (MySQL would not).
    pub(crate) stats_comment_ddx: usize,
    /// `#` seen (a comment in MySQL, an operator in ANSI).
    pub(crate) stats_comment_hash: usize,
}

impl<'a> Tokenizer<'a> {
    pub(crate) fn new(s: &'a [u8], flags: Flags) -> Self {
        Tokenizer {
            s,
            pos: 0,
            flags,
            stats_tokens: 0,
            stats_comment_ddx: 0,
            stats_comment_hash: 0,
        }
    }

    /// Reads the next token into `tok`; false at the end of the input.
    pub(crate) fn next_into(&mut self, tok: &mut Token) -> bool {
        let s = self.s;
        if s.is_empty() {
            return false;
        }
        *tok = Token::EMPTY;

        if self.pos == 0 {
            let delim = match self.flags.quote {
                QuoteContext::None => 0,
                QuoteContext::Single => b'\'',
                QuoteContext::Double => b'"',
            };
            if delim != 0 {
                self.pos = self.string_core(tok, 0, delim, 0);
                self.stats_tokens += 1;
                return true;
            }
        }

        while self.pos < s.len() {
            let before = self.pos;
            let next = self.dispatch(tok);
            // Every scanner consumes at least one byte; the guard keeps that
            // a property of this loop rather than of each scanner.
            self.pos = next.max(before + 1);
            if tok.kind != TokenKind::None {
                self.stats_tokens += 1;
                return true;
            }
        }
        false
    }

    fn dispatch(&mut self, tok: &mut Token) -> usize {
        match CHAR_CLASS[self.s[self.pos] as usize] {
            CharClass::White => self.pos + 1,
            CharClass::Word => self.word(tok),
            CharClass::Op1 => self.operator1(tok),
            CharClass::Op2 => self.operator2(tok),
            CharClass::Backslash => self.backslash(tok),
            CharClass::Dash => self.dash(tok),
            CharClass::Quote => self.string(tok),
            CharClass::Hash => self.hash(tok),
            CharClass::Number => self.number(tok),
            CharClass::Slash => self.slash(tok),
            CharClass::Char => self.single_char(tok),
            CharClass::Variable => self.variable(tok),
            CharClass::Other => {
                tok.assign_byte(TokenKind::Unknown, self.pos, self.s[self.pos]);
                self.pos + 1
            }
            CharClass::Money => self.money(tok),
            CharClass::Tick => self.tick(tok),
            CharClass::UString => self.ustring(tok),
            CharClass::QString => self.qstring_core(tok, 0),
            CharClass::NqString => self.nqstring(tok),
            CharClass::XString => self.digit_string(tok, HEX_DIGITS),
            CharClass::BString => self.digit_string(tok, BIN_DIGITS),
            CharClass::EString => self.estring(tok),
            CharClass::BracketWord => self.bracket_word(tok),
        }
    }

    fn operator1(&mut self, tok: &mut Token) -> usize {
        tok.assign_byte(TokenKind::Operator, self.pos, self.s[self.pos]);
        self.pos + 1
    }

    fn single_char(&mut self, tok: &mut Token) -> usize {
        let c = self.s[self.pos];
        let kind = match c {
            b';' => TokenKind::Semicolon,
            b',' => TokenKind::Comma,
            b'(' => TokenKind::LeftParens,
            b')' => TokenKind::RightParens,
            b'{' => TokenKind::LeftBrace,
            b'}' => TokenKind::RightBrace,
            _ => TokenKind::Unknown,
        };
        tok.assign_byte(kind, self.pos, c);
        self.pos + 1
    }

    /// Comment to the end of the line (the newline is consumed, not kept).
    fn eol_comment(&mut self, tok: &mut Token) -> usize {
        let pos = self.pos;
        match find_byte(&self.s[pos..], b'\n') {
            None => {
                tok.assign(TokenKind::Comment, pos, &self.s[pos..]);
                self.s.len()
            }
            Some(i) => {
                tok.assign(TokenKind::Comment, pos, &self.s[pos..pos + i]);
                pos + i + 1
            }
        }
    }

    fn hash(&mut self, tok: &mut Token) -> usize {
        self.stats_comment_hash += 1;
        if self.flags.dialect == Dialect::Mysql {
            self.stats_comment_hash += 1;
            self.eol_comment(tok)
        } else {
            tok.assign_byte(TokenKind::Operator, self.pos, b'#');
            self.pos + 1
        }
    }

    fn dash(&mut self, tok: &mut Token) -> usize {
        let (s, pos) = (self.s, self.pos);
        let next_is_dash = s.get(pos + 1) == Some(&b'-');
        if next_is_dash && (pos + 2 == s.len() || s.get(pos + 2).is_some_and(|b| is_white(*b))) {
            // "-- " and a trailing "--" are comments in every dialect.
            self.eol_comment(tok)
        } else if next_is_dash && self.flags.dialect == Dialect::Ansi {
            // "--x": a comment to ANSI, two minus signs to MySQL.
            self.stats_comment_ddx += 1;
            self.eol_comment(tok)
        } else {
            tok.assign_byte(TokenKind::Operator, pos, b'-');
            pos + 1
        }
    }

    fn slash(&mut self, tok: &mut Token) -> usize {
        let (s, pos) = (self.s, self.pos);
        if s.get(pos + 1) != Some(&b'*') {
            return self.operator1(tok);
        }
        let close = find_pair(&s[pos + 2..], b'*', b'/').map(|i| pos + 2 + i);
        let end = match close {
            None => s.len(),
            Some(star) => star + 2,
        };
        // A "/*" inside the comment (PostgreSQL nests them) or a MySQL
        // "/*!" executable comment cannot be parsed consistently.
        let nested = close.is_some_and(|star| find_pair(&s[pos + 2..=star], b'/', b'*').is_some());
        let mysql = s.get(pos + 2) == Some(&b'!');
        let kind = if nested || mysql {
            TokenKind::Evil
        } else {
            TokenKind::Comment
        };
        tok.assign(kind, pos, &s[pos..end]);
        end
    }

    fn backslash(&mut self, tok: &mut Token) -> usize {
        let (s, pos) = (self.s, self.pos);
        if s.get(pos + 1) == Some(&b'N') {
            // MySQL's "\N" spelling of NULL.
            tok.assign(TokenKind::Number, pos, &s[pos..pos + 2]);
            pos + 2
        } else {
            tok.assign_byte(TokenKind::Backslash, pos, s[pos]);
            pos + 1
        }
    }

    fn operator2(&mut self, tok: &mut Token) -> usize {
        let (s, pos) = (self.s, self.pos);
        if pos + 1 >= s.len() {
            return self.operator1(tok);
        }
        if s[pos..].starts_with(b"<=>") {
            tok.assign(TokenKind::Operator, pos, &s[pos..pos + 3]);
            return pos + 3;
        }
        let kind = lookup_word(&s[pos..pos + 2]);
        if kind != TokenKind::None {
            tok.assign(kind, pos, &s[pos..pos + 2]);
            return pos + 2;
        }
        if s[pos] == b':' {
            tok.assign_byte(TokenKind::Colon, pos, b':');
            pos + 1
        } else {
            self.operator1(tok)
        }
    }

    /// Scans a string starting at `pos + offset` up to an unescaped `delim`.
    /// `offset == 0` means the opening quote is implied by the context.
    fn string_core(&mut self, tok: &mut Token, pos: usize, delim: u8, offset: usize) -> usize {
        let s = self.s;
        let start = pos + offset;
        tok.str_open = if offset > 0 { delim } else { 0 };
        let mut from = start;
        loop {
            let Some(q) = find_byte(&s[from..], delim).map(|i| from + i) else {
                tok.assign(TokenKind::String, start, &s[start..]);
                tok.str_close = 0;
                return s.len();
            };
            let backslashes = s[start..q]
                .iter()
                .rev()
                .take_while(|b| **b == b'\\')
                .count();
            if backslashes % 2 == 1 {
                from = q + 1;
            } else if s.get(q + 1) == Some(&delim) {
                // A doubled delimiter is an escaped delimiter.
                from = q + 2;
            } else {
                tok.assign(TokenKind::String, start, &s[start..q]);
                tok.str_close = delim;
                return q + 1;
            }
        }
    }

    fn string(&mut self, tok: &mut Token) -> usize {
        let pos = self.pos;
        self.string_core(tok, pos, self.s[pos], 1)
    }

    /// `E'…'` (PostgreSQL escape string), also `N'…'`.
    fn estring(&mut self, tok: &mut Token) -> usize {
        let (s, pos) = (self.s, self.pos);
        if pos + 2 >= s.len() || s[pos + 1] != b'\'' {
            return self.word(tok);
        }
        self.string_core(tok, pos, b'\'', 2)
    }

    /// `U&'…'` (unicode escape string).
    fn ustring(&mut self, tok: &mut Token) -> usize {
        let (s, pos) = (self.s, self.pos);
        if pos + 2 < s.len() && s[pos + 1] == b'&' && s[pos + 2] == b'\'' {
            let end = self.string_core(tok, pos + 2, b'\'', 1);
            tok.str_open = b'u';
            if tok.str_close == b'\'' {
                tok.str_close = b'u';
            }
            end
        } else {
            self.word(tok)
        }
    }

    /// Oracle's `q'<delim>…<delim>'` strings (`offset` 1 for `nq'…'`).
    fn qstring_core(&mut self, tok: &mut Token, offset: usize) -> usize {
        let s = self.s;
        let pos = self.pos + offset;
        if pos + 2 >= s.len() || !matches!(s[pos], b'q' | b'Q') || s[pos + 1] != b'\'' {
            return self.word(tok);
        }
        // Compared as a signed C char: control bytes, space and every byte
        // >= 0x80 cannot open a q-string.
        let open = s[pos + 2];
        if (open as i8) < 33 {
            return self.word(tok);
        }
        let close = match open {
            b'(' => b')',
            b'[' => b']',
            b'{' => b'}',
            b'<' => b'>',
            other => other,
        };
        let body = pos + 3;
        tok.str_open = b'q';
        match find_pair(&s[body..], close, b'\'') {
            None => {
                tok.assign(TokenKind::String, body, &s[body..]);
                tok.str_close = 0;
                s.len()
            }
            Some(i) => {
                tok.assign(TokenKind::String, body, &s[body..body + i]);
                tok.str_close = b'q';
                body + i + 2
            }
        }
    }

    fn nqstring(&mut self, tok: &mut Token) -> usize {
        let (s, pos) = (self.s, self.pos);
        if pos + 2 < s.len() && s[pos + 1] == b'\'' {
            return self.estring(tok);
        }
        self.qstring_core(tok, 1)
    }

    /// `X'1f'` and `B'0101'` literals; anything else is a word.
    fn digit_string(&mut self, tok: &mut Token, digits: &[u8]) -> usize {
        let (s, pos) = (self.s, self.pos);
        if pos + 2 >= s.len() || s[pos + 1] != b'\'' {
            return self.word(tok);
        }
        let n = span(&s[pos + 2..], digits);
        if pos + 2 + n >= s.len() || s[pos + 2 + n] != b'\'' {
            return self.word(tok);
        }
        tok.assign(TokenKind::Number, pos, &s[pos..pos + n + 3]);
        pos + n + 3
    }

    /// SQL Server `[name]` identifiers.
    fn bracket_word(&mut self, tok: &mut Token) -> usize {
        let (s, pos) = (self.s, self.pos);
        match find_byte(&s[pos..], b']') {
            None => {
                tok.assign(TokenKind::Bareword, pos, &s[pos..]);
                s.len()
            }
            Some(i) => {
                tok.assign(TokenKind::Bareword, pos, &s[pos..=pos + i]);
                pos + i + 1
            }
        }
    }

    pub(crate) fn word(&mut self, tok: &mut Token) -> usize {
        let (s, pos) = (self.s, self.pos);
        let wlen = cspan(&s[pos..], WORD_STOP);
        tok.assign(TokenKind::Bareword, pos, &s[pos..pos + wlen]);

        // "SELECT.1" or "SELECT`col`": a keyword before '.' or '`' is a
        // token of its own.
        for i in 0..tok.value().len() {
            if matches!(tok.value()[i], b'.' | b'`') {
                let kind = lookup_word(&tok.value()[..i]);
                if kind != TokenKind::None && kind != TokenKind::Bareword {
                    *tok = Token::EMPTY;
                    tok.assign(kind, pos, &s[pos..pos + i]);
                    return pos + i;
                }
            }
        }

        if wlen <= super::TOKEN_VALUE_MAX {
            let kind = lookup_word(tok.value());
            tok.kind = if kind == TokenKind::None {
                TokenKind::Bareword
            } else {
                kind
            };
        }
        pos + wlen
    }

    /// MySQL backtick identifiers: a bare word unless it names a function.
    fn tick(&mut self, tok: &mut Token) -> usize {
        let end = self.string_core(tok, self.pos, b'`', 1);
        tok.kind = if lookup_word(tok.value()) == TokenKind::Function {
            TokenKind::Function
        } else {
            TokenKind::Bareword
        };
        end
    }

    fn variable(&mut self, tok: &mut Token) -> usize {
        let s = self.s;
        let mut pos = self.pos + 1;
        if s.get(pos) == Some(&b'@') {
            pos += 1;
            tok.count = 2;
        } else {
            tok.count = 1;
        }
        match s.get(pos) {
            Some(b'`') => {
                // MySQL allows @@`version`.
                self.pos = pos;
                let end = self.tick(tok);
                tok.kind = TokenKind::Variable;
                return end;
            }
            Some(b'\'' | b'"') => {
                self.pos = pos;
                let end = self.string(tok);
                tok.kind = TokenKind::Variable;
                return end;
            }
            _ => {}
        }
        let n = cspan(&s[pos..], VAR_STOP);
        tok.assign(TokenKind::Variable, pos, &s[pos..pos + n]);
        pos + n
    }

    /// `$1,000.00` money, PostgreSQL `$$…$$` and `$tag$…$tag$` strings.
    fn money(&mut self, tok: &mut Token) -> usize {
        let (s, pos) = (self.s, self.pos);
        if pos + 1 == s.len() {
            tok.assign_byte(TokenKind::Bareword, pos, b'$');
            return s.len();
        }
        let n = span(&s[pos + 1..], MONEY_CHARS);
        if n == 1 && s[pos + 1] == b'.' {
            return self.word(tok);
        }
        if n > 0 {
            tok.assign(TokenKind::Number, pos, &s[pos..pos + 1 + n]);
            return pos + 1 + n;
        }
        if s[pos + 1] == b'$' {
            let body = pos + 2;
            tok.str_open = b'$';
            return match find_pair(&s[body..], b'$', b'$') {
                None => {
                    tok.assign(TokenKind::String, body, &s[body..]);
                    tok.str_close = 0;
                    s.len()
                }
                Some(i) => {
                    tok.assign(TokenKind::String, body, &s[body..body + i]);
                    tok.str_close = b'$';
                    body + i + 2
                }
            };
        }
        let tag = span(&s[pos + 1..], ASCII_LETTERS);
        if tag == 0 || pos + tag + 1 == s.len() || s[pos + tag + 1] != b'$' {
            tok.assign_byte(TokenKind::Bareword, pos, b'$');
            return pos + 1;
        }
        // "$tag$ … $tag$"
        let delim = &s[pos..pos + tag + 2];
        let body = pos + tag + 2;
        tok.str_open = b'$';
        match find_sub(&s[body..], delim) {
            None => {
                tok.assign(TokenKind::String, body, &s[body..]);
                tok.str_close = 0;
                s.len()
            }
            Some(i) => {
                tok.assign(TokenKind::String, body, &s[body..body + i]);
                tok.str_close = b'$';
                body + i + tag + 2
            }
        }
    }

    fn number(&mut self, tok: &mut Token) -> usize {
        let s = self.s;
        let start = self.pos;
        if s[start] == b'0' && start + 1 < s.len() {
            let digits = match s[start + 1] {
                b'x' | b'X' => Some(HEX_DIGITS),
                b'b' | b'B' => Some(BIN_DIGITS),
                _ => None,
            };
            if let Some(digits) = digits {
                let n = span(&s[start + 2..], digits);
                let kind = if n == 0 {
                    TokenKind::Bareword
                } else {
                    TokenKind::Number
                };
                tok.assign(kind, start, &s[start..start + 2 + n]);
                return start + 2 + n;
            }
        }

        let digits_from = |mut p: usize| {
            while p < s.len() && s[p].is_ascii_digit() {
                p += 1;
            }
            p
        };
        let mut pos = digits_from(start);
        if s.get(pos) == Some(&b'.') {
            pos = digits_from(pos + 1);
            if pos - start == 1 {
                tok.assign_byte(TokenKind::Dot, start, b'.');
                return pos;
            }
        }

        let mut have_e = false;
        let mut have_exp = false;
        if matches!(s.get(pos), Some(b'e' | b'E')) {
            have_e = true;
            pos += 1;
            if matches!(s.get(pos), Some(b'+' | b'-')) {
                pos += 1;
            }
            let end = digits_from(pos);
            have_exp = end > pos;
            pos = end;
        }

        // Oracle's float/double suffixes: "1.2f", and "1fUNION" as "1f UNION".
        if matches!(s.get(pos), Some(b'd' | b'D' | b'f' | b'F')) {
            match s.get(pos + 1) {
                None => pos += 1,
                Some(&c) if is_white(c) || c == b';' || c == b'u' || c == b'U' => pos += 1,
                Some(_) => {}
            }
        }

        // "1234.e", "10.10E": an exponent marker without digits is a word.
        let kind = if have_e && !have_exp {
            TokenKind::Bareword
        } else {
            TokenKind::Number
        };
        tok.assign(kind, start, &s[start..pos]);
        pos
    }
}

/// Iterator over the tokens of an input, as produced by [`tokenize`].
#[derive(Debug, Clone)]
pub struct Tokens<'a> {
    inner: Tokenizer<'a>,
}

impl Iterator for Tokens<'_> {
    type Item = Token;

    fn next(&mut self) -> Option<Token> {
        let mut tok = Token::EMPTY;
        self.inner.next_into(&mut tok).then_some(tok)
    }
}

/// Tokenizes `input` exactly as libinjection's `libinjection_sqli_tokenize`
/// does with the given flags (no folding). Allocates nothing.
pub fn tokenize(input: &[u8], flags: Flags) -> Tokens<'_> {
    Tokens {
        inner: Tokenizer::new(input, flags),
    }
}
