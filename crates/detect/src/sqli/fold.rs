//! Folding (collapsing the token stream into at most five tokens whose
//! kinds form the fingerprint) and the false-positive heuristics applied to
//! a fingerprint that is in the list.

use super::tokenize::{find_sub, Tokenizer};
use super::TokenKind::{self as K};
use super::{
    fingerprint_listed, lookup_word, Fingerprint, Flags, Token, MAX_FINGERPRINT_TOKENS,
    TOKEN_SLOTS, TOKEN_VALUE_MAX,
};

const MAX: usize = MAX_FINGERPRINT_TOKENS;

/// Words that are functions only when followed by `(`: SQL Server and MySQL
/// built-ins that are also common column names.
const CALLABLE_WORDS: [&[u8]; 11] = [
    b"USER_ID",
    b"USER_NAME",
    b"DATABASE",
    b"PASSWORD",
    b"USER",
    b"CURRENT_USER",
    b"CURRENT_DATE",
    b"CURRENT_TIME",
    b"CURRENT_TIMESTAMP",
    b"LOCALTIME",
    b"LOCALTIMESTAMP",
];

/// The folded tokens of one input under one set of flags.
#[derive(Debug, Clone)]
pub struct Folded {
    tokens: [Token; TOKEN_SLOTS],
    len: usize,
    stats_tokens: usize,
    mysql_comment_syntax: bool,
}

impl Folded {
    /// The folded tokens (at most [`MAX_FINGERPRINT_TOKENS`]).
    pub fn tokens(&self) -> &[Token] {
        &self.tokens[..self.len]
    }

    /// How many raw tokens (comments included) the tokenizer produced.
    pub fn raw_token_count(&self) -> usize {
        self.stats_tokens
    }
}

/// The result of checking one input under one set of flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Analysis {
    /// The fingerprint of the folded tokens (`X` when unparsable).
    pub fingerprint: Fingerprint,
    /// True when the fingerprint is listed and survives the heuristics.
    pub is_sqli: bool,
    /// True when the input used `#` or `--x`, which MySQL reads differently
    /// from ANSI SQL: [`super::detect_sqli`] then re-checks in MySQL mode.
    pub mysql_comment_syntax: bool,
}

struct Folder<'a> {
    tz: Tokenizer<'a>,
    t: [Token; TOKEN_SLOTS],
}

/// The part of a token value C string functions see (up to a NUL).
fn cstr(v: &[u8]) -> &[u8] {
    v.iter().position(|b| *b == 0).map_or(v, |i| &v[..i])
}

fn is_in(k: K, set: &[K]) -> bool {
    set.contains(&k)
}

impl<'a> Folder<'a> {
    fn new(input: &'a [u8], flags: Flags) -> Self {
        Folder {
            tz: Tokenizer::new(input, flags),
            t: [Token::EMPTY; TOKEN_SLOTS],
        }
    }

    /// Reads the next non-comment token into slot `pos`; comments are
    /// remembered in `last_comment` instead. Returns whether a token (of
    /// any kind) was read, and advances `pos` for non-comments.
    fn pull(&mut self, pos: &mut usize, last_comment: &mut Token) -> bool {
        let more = self.tz.next_into(&mut self.t[*pos]);
        if more {
            if self.t[*pos].kind == K::Comment {
                *last_comment = self.t[*pos];
            } else {
                last_comment.kind = K::None;
                *pos += 1;
            }
        }
        more
    }

    /// Joins two words into a known phrase (`UNION` + `ALL`); true on success.
    fn merge_words(&mut self, a: usize) -> bool {
        const FIRST: [K; 8] = [
            K::Keyword,
            K::Bareword,
            K::Operator,
            K::Union,
            K::Function,
            K::Expression,
            K::Tsql,
            K::SqlType,
        ];
        let (x, y) = (&self.t[a], &self.t[a + 1]);
        if !is_in(x.kind, &FIRST) || !(is_in(y.kind, &FIRST) || y.kind == K::LogicOperator) {
            return false;
        }
        let (v1, v2) = (x.value(), y.value());
        let n = v1.len() + v2.len() + 1;
        if n > TOKEN_VALUE_MAX {
            return false;
        }
        let mut buf = [0u8; TOKEN_VALUE_MAX];
        buf[..v1.len()].copy_from_slice(v1);
        buf[v1.len()] = b' ';
        buf[v1.len() + 1..n].copy_from_slice(v2);
        let kind = lookup_word(&buf[..n]);
        if kind == K::None {
            return false;
        }
        let p = self.t[a].pos;
        self.t[a].assign(kind, p, &buf[..n]);
        true
    }

    /// The five-token shapes that are common in benign input: start over
    /// with only their first token (and the look-ahead one).
    fn restart_shape(&self) -> bool {
        let k = |i: usize| self.t[i].kind;
        (k(0) == K::Number
            && matches!(k(1), K::Operator | K::Comma)
            && k(2) == K::LeftParens
            && k(3) == K::Number
            && k(4) == K::RightParens)
            || (k(0) == K::Bareword
                && k(1) == K::Operator
                && k(2) == K::LeftParens
                && matches!(k(3), K::Bareword | K::Number)
                && k(4) == K::RightParens)
            || (k(0) == K::Number
                && k(1) == K::RightParens
                && k(2) == K::Comma
                && k(3) == K::LeftParens
                && k(4) == K::Number)
            || (k(0) == K::Bareword
                && k(1) == K::RightParens
                && k(2) == K::Operator
                && k(3) == K::LeftParens
                && k(4) == K::Bareword)
    }

    /// libinjection's folding. Returns the number of folded tokens in `t`.
    fn fold(&mut self) -> usize {
        let mut last_comment = Token::EMPTY;

        // Leading comments, '(' , casts and unary operators say nothing.
        let mut more;
        loop {
            more = self.tz.next_into(&mut self.t[0]);
            let t = &self.t[0];
            let skip = t.kind == K::Comment
                || t.kind == K::LeftParens
                || t.kind == K::SqlType
                || t.is_unary_op();
            if !more || !skip {
                break;
            }
        }
        if !more {
            return 0;
        }
        let mut pos: usize = 1;
        let mut left: usize = 0;

        loop {
            if pos >= MAX && self.restart_shape() {
                if pos > MAX {
                    self.t[1] = self.t[MAX];
                    pos = 2;
                } else {
                    pos = 1;
                }
                left = 0;
            }

            if !more || left >= MAX {
                left = pos;
                break;
            }

            while more && pos <= MAX && pos.wrapping_sub(left) < 2 {
                more = self.pull(&mut pos, &mut last_comment);
            }
            if pos.wrapping_sub(left) < 2 {
                left = pos;
                continue;
            }

            match self.fold_two(left, &mut pos) {
                Step::Again(l) => {
                    left = l;
                    continue;
                }
                Step::Evil(n) => return n,
                Step::Next => {}
                Step::NextFromStart => left = 0,
            }

            while more && pos <= MAX && pos.wrapping_sub(left) < 3 {
                more = self.pull(&mut pos, &mut last_comment);
            }
            if pos.wrapping_sub(left) < 3 {
                left = pos;
                continue;
            }

            if let Some(l) = self.fold_three(left, &mut pos) {
                left = l;
                continue;
            }
            left += 1;
        }

        if left < MAX && last_comment.kind == K::Comment {
            self.t[left] = last_comment;
            left += 1;
        }
        left.min(MAX)
    }

    /// Two-token rules at `l`.
    fn fold_two(&mut self, l: usize, pos: &mut usize) -> Step {
        let a = self.t[l];
        let b = self.t[l + 1];
        let back = l.saturating_sub(1);

        if a.kind == K::String && b.kind == K::String {
            // "foo" "bar" is one string in SQL.
            *pos -= 1;
            return Step::Again(l);
        }
        if a.kind == K::Semicolon && b.kind == K::Semicolon {
            *pos -= 1;
            return Step::Again(l);
        }
        if matches!(a.kind, K::Operator | K::LogicOperator)
            && (b.is_unary_op() || b.kind == K::SqlType)
        {
            *pos -= 1;
            return Step::Again(0);
        }
        if a.kind == K::LeftParens && b.is_unary_op() {
            *pos -= 1;
            return Step::Again(back);
        }
        if self.merge_words(l) {
            *pos -= 1;
            return Step::Again(back);
        }
        if a.kind == K::Semicolon
            && b.kind == K::Function
            && b.value().len() >= 2
            && b.value()[..2].eq_ignore_ascii_case(b"IF")
        {
            // T-SQL's IF statement after ';', not the IF() function.
            self.t[l + 1].kind = K::Tsql;
            return Step::Again(l);
        }
        if matches!(a.kind, K::Bareword | K::Variable)
            && b.kind == K::LeftParens
            && CALLABLE_WORDS
                .iter()
                .any(|w| w.eq_ignore_ascii_case(a.value()))
        {
            self.t[l].kind = K::Function;
            return Step::Again(l);
        }
        if a.kind == K::Keyword
            && (a.value().eq_ignore_ascii_case(b"IN") || a.value().eq_ignore_ascii_case(b"NOT IN"))
        {
            // "x IN (…)" is a comparison; "IN BOOLEAN MODE" is not.
            self.t[l].kind = if b.kind == K::LeftParens {
                K::Operator
            } else {
                K::Bareword
            };
            return Step::Again(l);
        }
        if a.kind == K::Operator
            && (a.value().eq_ignore_ascii_case(b"LIKE")
                || a.value().eq_ignore_ascii_case(b"NOT LIKE"))
        {
            if b.kind == K::LeftParens {
                // "SELECT LIKE(…)": the function.
                self.t[l].kind = K::Function;
            }
            return Step::Next;
        }
        if a.kind == K::SqlType
            && matches!(
                b.kind,
                K::Bareword
                    | K::Number
                    | K::SqlType
                    | K::LeftParens
                    | K::Function
                    | K::Variable
                    | K::String
            )
        {
            self.t[l] = b;
            *pos -= 1;
            return Step::Again(0);
        }
        if a.kind == K::Collate && b.kind == K::Bareword {
            // Collation names are too many to list; ones with '_' are types.
            if cstr(b.value()).contains(&b'_') {
                self.t[l + 1].kind = K::SqlType;
                return Step::NextFromStart;
            }
            return Step::Next;
        }
        if a.kind == K::Backslash {
            if b.is_arithmetic_op() {
                // T-SQL reads "\%1" like "0 % 1".
                self.t[l].kind = K::Number;
            } else {
                // …and "\1" like "1".
                self.t[l] = b;
                *pos -= 1;
            }
            return Step::Again(0);
        }
        if a.kind == K::LeftParens && b.kind == K::LeftParens {
            *pos -= 1;
            return Step::Again(0);
        }
        if a.kind == K::RightParens && b.kind == K::RightParens {
            *pos -= 1;
            return Step::Again(0);
        }
        if a.kind == K::LeftBrace && b.kind == K::Bareword {
            if b.value().is_empty() {
                // MySQL's "{ ``.``.id }" magic: refuse to guess.
                self.t[l + 1].kind = K::Evil;
                return Step::Evil(l + 2);
            }
            // ODBC "{fn expr}": drop the "{ fn" part.
            *pos -= 2;
            return Step::Again(0);
        }
        if b.kind == K::RightBrace {
            *pos -= 1;
            return Step::Again(0);
        }
        Step::Next
    }

    /// Three-token rules at `l`; `Some(new_left)` re-runs the loop.
    fn fold_three(&mut self, l: usize, pos: &mut usize) -> Option<usize> {
        let (a, b, c) = (self.t[l], self.t[l + 1], self.t[l + 2]);
        let (ak, bk, ck) = (a.kind, b.kind, c.kind);
        let unary_b = b.is_unary_op();

        if ak == K::Number && bk == K::Operator && ck == K::Number {
            *pos -= 2;
            return Some(0);
        }
        if ak == K::Operator && bk != K::LeftParens && ck == K::Operator {
            *pos -= 2;
            return Some(0);
        }
        if ak == K::LogicOperator && ck == K::LogicOperator {
            *pos -= 2;
            return Some(0);
        }
        if ak == K::Variable
            && bk == K::Operator
            && matches!(ck, K::Variable | K::Number | K::Bareword)
        {
            *pos -= 2;
            return Some(0);
        }
        if matches!(ak, K::Bareword | K::Number)
            && bk == K::Operator
            && matches!(ck, K::Number | K::Bareword)
        {
            *pos -= 2;
            return Some(0);
        }
        if matches!(ak, K::Bareword | K::Number | K::Variable | K::String)
            && bk == K::Operator
            && b.value() == b"::"
            && ck == K::SqlType
        {
            // PostgreSQL cast "x::int".
            *pos -= 2;
            return Some(0);
        }
        if matches!(ak, K::Bareword | K::Number | K::String | K::Variable)
            && bk == K::Comma
            && matches!(ck, K::Number | K::Bareword | K::String | K::Variable)
        {
            *pos -= 2;
            return Some(0);
        }
        if matches!(ak, K::Expression | K::Group | K::Comma) && unary_b && ck == K::LeftParens {
            // "SELECT + (", "LIMIT + (": drop the unary operator.
            self.t[l + 1] = c;
            *pos -= 1;
            return Some(0);
        }
        if matches!(ak, K::Keyword | K::Expression | K::Group)
            && unary_b
            && matches!(
                ck,
                K::Number | K::Bareword | K::Variable | K::String | K::Function
            )
        {
            self.t[l + 1] = c;
            *pos -= 1;
            return Some(0);
        }
        if ak == K::Comma
            && unary_b
            && matches!(ck, K::Number | K::Bareword | K::Variable | K::String)
        {
            // "1,-1": drop the sign and back up so "1,1" folds further.
            self.t[l + 1] = c;
            *pos -= 3;
            return Some(0);
        }
        if ak == K::Comma && unary_b && ck == K::Function {
            self.t[l + 1] = c;
            *pos -= 1;
            return Some(0);
        }
        if ak == K::Bareword && bk == K::Dot && ck == K::Bareword {
            // "db.table"
            *pos -= 2;
            return Some(0);
        }
        if ak == K::Expression && bk == K::Dot && ck == K::Bareword {
            // "SELECT . `foo`"
            self.t[l + 1] = c;
            *pos -= 1;
            return Some(0);
        }
        if ak == K::Function
            && bk == K::LeftParens
            && ck != K::RightParens
            && a.value().eq_ignore_ascii_case(b"USER")
        {
            // USER() takes no arguments, so "user(x)" is not the function.
            self.t[l].kind = K::Bareword;
        }
        None
    }
}

/// What a two-token rule asks the folding loop to do next.
enum Step {
    /// Re-run the loop with this `left`.
    Again(usize),
    /// Stop folding: the token count to report (an unparsable shape).
    Evil(usize),
    /// Go on to the three-token rules with `left` unchanged.
    Next,
    /// Go on to the three-token rules with `left` reset to 0.
    NextFromStart,
}

fn fold_with(input: &[u8], flags: Flags) -> Folded {
    let mut f = Folder::new(input, flags);
    let len = f.fold();
    Folded {
        tokens: f.t,
        len,
        stats_tokens: f.tz.stats_tokens,
        mysql_comment_syntax: f.tz.stats_comment_ddx > 0 || f.tz.stats_comment_hash > 0,
    }
}

/// Tokenizes and folds `input` as libinjection's `libinjection_sqli_fold`
/// does. Allocates nothing.
pub fn fold(input: &[u8], flags: Flags) -> Folded {
    fold_with(input, flags)
}

/// Post-processes folded tokens into the fingerprint (libinjection's
/// `libinjection_sqli_fingerprint`).
fn finish(folded: &mut Folded) -> Fingerprint {
    let n = folded.len;
    if n > 2 {
        let last = &mut folded.tokens[n - 1];
        // A trailing, unclosed, empty backtick is PHP's magic comment.
        if last.kind == K::Bareword
            && last.str_open == b'`'
            && last.value().is_empty()
            && last.str_close == 0
        {
            last.kind = K::Comment;
        }
    }
    // The C fingerprint is a C string: a hole ends it.
    let kinds = folded.tokens[..n]
        .iter()
        .map(|t| t.kind)
        .take_while(|k| *k != K::None);
    let fp = Fingerprint::from_kinds(kinds);
    if fp.as_bytes().contains(&b'X') {
        let first = &mut folded.tokens[0];
        let pos = first.pos;
        first.assign_byte(K::Evil, pos, b'X');
        folded.tokens[1].kind = K::None;
        folded.len = 1;
        return Fingerprint::from_kinds(std::iter::once(K::Evil));
    }
    fp
}

/// The fingerprint of `input` under `flags`, e.g. `s&1c` (`X` when the
/// input holds unparsable comment syntax).
pub fn fingerprint(input: &[u8], flags: Flags) -> Fingerprint {
    let mut folded = fold_with(input, flags);
    finish(&mut folded)
}

/// The folded tokens of `input` after libinjection's fingerprint
/// post-processing (a trailing empty unclosed backtick becomes a comment;
/// any unparsable token collapses everything to one `X` token): their
/// kinds spell [`fingerprint`].
pub fn fingerprint_tokens(input: &[u8], flags: Flags) -> Folded {
    let mut folded = fold_with(input, flags);
    finish(&mut folded);
    folded
}

/// Fingerprints `input` under `flags` and decides whether it is SQLi: the
/// fingerprint must be listed and pass libinjection's false-positive
/// heuristics (`libinjection_sqli_blacklist` and `_not_whitelist`).
pub fn analyze(input: &[u8], flags: Flags) -> Analysis {
    let mut folded = fold_with(input, flags);
    let fp = finish(&mut folded);
    let is_sqli = fingerprint_listed(fp.as_bytes()) && not_benign(input, &folded, fp.as_bytes());
    Analysis {
        fingerprint: fp,
        is_sqli,
        mysql_comment_syntax: folded.mysql_comment_syntax,
    }
}

/// libinjection's `not_whitelist`: false for listed fingerprints that are
/// far more often benign text than injection.
fn not_benign(input: &[u8], folded: &Folded, fp: &[u8]) -> bool {
    let t = &folded.tokens;
    let n = fp.len();

    if n > 1 && fp[n - 1] == b'c' && find_sub(input, b"sp_password").is_some() {
        // SQL Server hides statements mentioning sp_password from its log.
        return true;
    }

    match n {
        2 => {
            if fp[1] == b'U' {
                // "1 union" alone is ordinary text; with folding it is not.
                return folded.stats_tokens != 2;
            }
            if t[1].first() == b'#' {
                return false;
            }
            if t[0].kind == K::Bareword && t[1].kind == K::Comment && t[1].first() != b'/' {
                return false;
            }
            if t[0].kind == K::Number && t[1].kind == K::Comment {
                if t[1].first() == b'/' {
                    return true;
                }
                if folded.stats_tokens > 2 {
                    return true;
                }
                // "1234--" is a probe, "1234-ABCDEF--" base64-ish text: look
                // at the byte right after the number in the raw input.
                let at = |i: usize| input.get(i).copied().unwrap_or(0);
                let after = t[0].value().len();
                let c = at(after);
                // Signed C char: bytes >= 0x80 count as "<= 32" too.
                if (c as i8) <= 32 {
                    return true;
                }
                if c == b'/' && at(after + 1) == b'*' {
                    return true;
                }
                if c == b'-' && at(after + 1) == b'-' {
                    return true;
                }
                return false;
            }
            // Text ending in "-- something" rather than a bare "--".
            if t[1].value().len() > 2 && t[1].first() == b'-' {
                return false;
            }
            true
        }
        3 => {
            if fp == b"sos" || fp == b"s&s" {
                // ...foo' + 'bar...: only when both ends are open strings.
                return t[0].str_open == 0
                    && t[2].str_close == 0
                    && t[0].str_close == t[2].str_open;
            }
            if matches!(fp, b"s&n" | b"n&1" | b"1&1" | b"1&v" | b"1&s") {
                // "sexy and 17" is text, "sexy and 17<18" is not.
                return folded.stats_tokens != 3;
            }
            if t[1].kind == K::Keyword {
                // Only MySQL's INTO OUTFILE / INTO DUMPFILE are dangerous.
                let v = t[1].value();
                return v.len() >= 5 && v[..4].eq_ignore_ascii_case(b"INTO");
            }
            true
        }
        _ => true,
    }
}
