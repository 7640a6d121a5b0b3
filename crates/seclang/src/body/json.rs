//! JSON bodies as ARGS_POST, named the way Coraza names them.
//!
//! - Object members: `json.<key>`, nested: `json.a.b`.
//! - Array elements: `json.a.0`, `json.a.1`, … and, after the elements, the
//!   array itself as `json.a` with the element count as value (`3`). An empty
//!   array or object produces nothing.
//! - A top-level array: `json.0`, `json.1`, …, then `json` = count. A
//!   top-level scalar is treated as a one-element array (`json.0`, `json` =
//!   `1`), as Coraza's iteration does.
//! - Values: strings unescaped (`\uXXXX` → UTF-8, a lone surrogate → U+FFFD),
//!   numbers as written (`1e999` stays `1e999`), `true`, `false`, and `null`
//!   as the empty string.
//! - Duplicate keys are all kept, in document order (Coraza keeps the last).
//!
//! The parser is a hand-written state machine over an explicit stack, so
//! nesting depth costs heap (bounded by [`BodyLimits::json_depth`]), never
//! thread stack. Syntax is strict (RFC 8259, UTF-8 strings) like
//! ModSecurity's yajl, and error texts follow yajl's. Arguments extracted
//! before an error are kept.

use super::BodyLimits;

/// Every body byte may produce at most this many bytes of argument names and
/// values (plus [`ARG_BYTES_BASE`]). Names repeat the whole key path, so
/// `[[[…[1,1,1,…]]]]` would otherwise turn 1 MB into gigabytes; legitimate
/// documents stay far below (a ratio of about 2 to 10).
pub const ARG_BYTES_PER_BODY_BYTE: usize = 32;

/// Allowance of argument bytes on top of [`ARG_BYTES_PER_BODY_BYTE`] × body
/// size, so small bodies are never cut: 1 MiB.
pub const ARG_BYTES_BASE: usize = 1 << 20;

const CANCELLED: &str = "parse error: client cancelled parse via callback return value";

/// What [`parse`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Json {
    /// (name, value) pairs in document order.
    pub args: Vec<(Vec<u8>, Vec<u8>)>,
    /// More than [`BodyLimits::max_args`] arguments: parsing stopped (and
    /// `error` says so, as in ModSecurity).
    pub args_limit_exceeded: bool,
    /// The syntax or limit error, yajl-style (e.g. `parse error: premature
    /// EOF`), without the `JSON parsing error: ` prefix.
    pub error: Option<String>,
}

/// Parses a JSON body. An empty body is not an error (ModSecurity).
pub fn parse(body: &[u8], limits: &BodyLimits) -> Json {
    let mut p = Parser {
        s: body,
        pos: 0,
        limits,
        out: Json::default(),
        path: b"json".to_vec(),
        stack: Vec::new(),
        arg_bytes: 0,
        max_arg_bytes: body
            .len()
            .saturating_mul(ARG_BYTES_PER_BODY_BYTE)
            .saturating_add(ARG_BYTES_BASE),
        scratch: Vec::new(),
    };
    if !body.is_empty() {
        if let Err(e) = p.run() {
            p.out.error = Some(e);
        }
    }
    p.out
}

#[derive(Debug)]
enum Frame {
    /// `base`: length of the container's own name in `path`.
    Object {
        base: usize,
    },
    Array {
        base: usize,
        count: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// A value must come (top level, after `:`, after `,` in an array).
    Value,
    /// After `[`: a value or `]`.
    ValueOrClose,
    /// After `{`: a key or `}`.
    KeyOrClose,
    /// After `,` in an object: a key.
    Key,
    /// After a key: `:`.
    Colon,
    /// After a value: `,` or the container's close, or the end.
    AfterValue,
}

#[derive(Debug)]
struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    limits: &'a BodyLimits,
    out: Json,
    /// The current argument name (`json.a.0.b`).
    path: Vec<u8>,
    stack: Vec<Frame>,
    arg_bytes: usize,
    max_arg_bytes: usize,
    /// Reused buffer for unescaped strings.
    scratch: Vec<u8>,
}

type R<T> = Result<T, String>;

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.s.get(self.pos) {
            self.pos += 1;
        }
    }

    fn run(&mut self) -> R<()> {
        let mut state = State::Value;
        let mut top_scalar = false;
        loop {
            self.skip_ws();
            let Some(&c) = self.s.get(self.pos) else {
                return if state == State::AfterValue && self.stack.is_empty() {
                    if top_scalar {
                        self.emit_at(4, b"1")?;
                    }
                    Ok(())
                } else {
                    Err("parse error: premature EOF".into())
                };
            };
            match state {
                State::Value | State::ValueOrClose => {
                    if state == State::ValueOrClose && c == b']' {
                        self.pos += 1;
                        self.close()?;
                        state = State::AfterValue;
                        continue;
                    }
                    match c {
                        b'{' => {
                            self.pos += 1;
                            self.open(Frame::Object {
                                base: self.path.len(),
                            })?;
                            state = State::KeyOrClose;
                        }
                        b'[' => {
                            self.pos += 1;
                            self.open(Frame::Array {
                                base: self.path.len(),
                                count: 0,
                            })?;
                            state = State::ValueOrClose;
                        }
                        _ => {
                            if self.stack.is_empty() {
                                // A scalar document: Coraza names it like
                                // the first element of an array.
                                top_scalar = true;
                                self.path.extend_from_slice(b".0");
                            }
                            self.scalar(c)?;
                            state = State::AfterValue;
                        }
                    }
                }
                State::KeyOrClose | State::Key => {
                    if state == State::KeyOrClose && c == b'}' {
                        self.pos += 1;
                        self.close()?;
                        state = State::AfterValue;
                        continue;
                    }
                    if c != b'"' {
                        return Err(if b"{}[]-0123456789tfn".contains(&c) {
                            "parse error: invalid object key (must be a string)".into()
                        } else {
                            "lexical error: invalid char in json text.".into()
                        });
                    }
                    self.pos += 1;
                    self.string()?;
                    let Some(Frame::Object { base }) = self.stack.last() else {
                        return Err(CANCELLED.into());
                    };
                    let base = *base;
                    self.path.truncate(base);
                    self.path.push(b'.');
                    let scratch = std::mem::take(&mut self.scratch);
                    self.path.extend_from_slice(&scratch);
                    self.scratch = scratch;
                    state = State::Colon;
                }
                State::Colon => {
                    if c != b':' {
                        return Err(
                            "parse error: object key and value must be separated by a colon (':')"
                                .into(),
                        );
                    }
                    self.pos += 1;
                    state = State::Value;
                }
                State::AfterValue => {
                    match self.stack.last() {
                        None => return Err("parse error: trailing garbage".into()),
                        Some(Frame::Object { .. }) => match c {
                            b',' => {
                                self.pos += 1;
                                state = State::Key;
                            }
                            b'}' => {
                                self.pos += 1;
                                self.close()?;
                            }
                            _ => return Err(
                                "parse error: after key and value, inside map, I expect ',' or '}'"
                                    .into(),
                            ),
                        },
                        Some(Frame::Array { .. }) => match c {
                            b',' => {
                                self.pos += 1;
                                state = State::Value;
                            }
                            b']' => {
                                self.pos += 1;
                                self.close()?;
                            }
                            _ => {
                                return Err(
                                    "parse error: after array element, I expect ',' or ']'".into()
                                )
                            }
                        },
                    }
                }
            }
            // Position the name for the next array element.
            if matches!(state, State::Value | State::ValueOrClose) {
                self.next_array_index();
            }
        }
    }

    /// Sets `path` to the next element's name when inside an array.
    fn next_array_index(&mut self) {
        if let Some(Frame::Array { base, count }) = self.stack.last() {
            let (base, count) = (*base, *count);
            self.path.truncate(base);
            self.path.push(b'.');
            self.path.extend_from_slice(count.to_string().as_bytes());
        }
    }

    fn open(&mut self, frame: Frame) -> R<()> {
        if self.stack.len() >= self.limits.json_depth {
            return Err(format!("{CANCELLED}. Parsing depth limit exceeded"));
        }
        self.stack.push(frame);
        Ok(())
    }

    /// Closes the innermost container, emitting an array's element count.
    fn close(&mut self) -> R<()> {
        let frame = self.stack.pop();
        let base = match frame {
            Some(Frame::Array { base, count }) => {
                if count > 0 {
                    self.emit_at(base, count.to_string().as_bytes())?;
                }
                base
            }
            Some(Frame::Object { base }) => base,
            None => return Err("parse error: unallowed token at this point in JSON text".into()),
        };
        self.path.truncate(base);
        self.element_done();
        Ok(())
    }

    /// Counts a finished value in the enclosing array.
    fn element_done(&mut self) {
        if let Some(Frame::Array { count, .. }) = self.stack.last_mut() {
            *count += 1;
        }
    }

    /// Emits an argument named `path[..name_len]`.
    fn emit_at(&mut self, name_len: usize, value: &[u8]) -> R<()> {
        if self.out.args.len() >= self.limits.max_args {
            self.out.args_limit_exceeded = true;
            return Err(format!("{CANCELLED}. Arguments limit exceeded"));
        }
        self.arg_bytes = self.arg_bytes.saturating_add(name_len + value.len());
        if self.arg_bytes > self.max_arg_bytes {
            return Err(format!("{CANCELLED}. Argument bytes limit exceeded"));
        }
        self.out
            .args
            .push((self.path[..name_len].to_vec(), value.to_vec()));
        Ok(())
    }

    fn scalar(&mut self, c: u8) -> R<()> {
        let start = self.pos;
        match c {
            b'"' => {
                self.pos += 1;
                self.string()?;
                let v = std::mem::take(&mut self.scratch);
                let r = self.emit_at(self.path.len(), &v);
                self.scratch = v;
                r?;
            }
            b't' | b'f' | b'n' => {
                let word: &[u8] = match c {
                    b't' => b"true",
                    b'f' => b"false",
                    _ => b"null",
                };
                let end = self.s.len().min(self.pos + word.len());
                if self.s[self.pos..end] != word[..end - self.pos] {
                    return Err("lexical error: invalid string in json text.".into());
                }
                if end - self.pos < word.len() {
                    return Err("parse error: premature EOF".into());
                }
                self.pos = end;
                let v: &[u8] = if c == b'n' { b"" } else { word };
                self.emit_at(self.path.len(), v)?;
            }
            b'-' | b'0'..=b'9' => {
                self.number()?;
                let s = self.s;
                self.emit_at(self.path.len(), &s[start..self.pos])?;
            }
            _ => return Err("lexical error: invalid char in json text.".into()),
        }
        self.element_done();
        Ok(())
    }

    fn digits(&mut self) -> usize {
        let n = self.s[self.pos..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        self.pos += n;
        n
    }

    fn number(&mut self) -> R<()> {
        if self.s.get(self.pos) == Some(&b'-') {
            self.pos += 1;
        }
        match self.s.get(self.pos) {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            Some(_) => {
                return Err(
                    "lexical error: malformed number, a digit is required after the minus sign."
                        .into(),
                )
            }
            None => return Err("parse error: premature EOF".into()),
        }
        if self.s.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(
                    "lexical error: malformed number, a digit is required after the decimal point."
                        .into(),
                );
            }
        }
        if let Some(b'e' | b'E') = self.s.get(self.pos) {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.s.get(self.pos) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(
                    "lexical error: malformed number, a digit is required after the exponent."
                        .into(),
                );
            }
        }
        Ok(())
    }

    fn hex4(&mut self) -> R<u32> {
        let Some(h) = self.s.get(self.pos..self.pos + 4) else {
            return Err("parse error: premature EOF".into());
        };
        let mut v = 0u32;
        for &c in h {
            let d = (c as char).to_digit(16).ok_or_else(|| {
                "lexical error: invalid (non-hex) character occurs after '\\u' inside string."
                    .to_string()
            })?;
            v = v << 4 | d;
        }
        self.pos += 4;
        Ok(v)
    }

    /// Reads a string body (after the opening quote) into `scratch`.
    fn string(&mut self) -> R<()> {
        self.scratch.clear();
        loop {
            // Copy the run of plain bytes at once.
            let run = self.s[self.pos..]
                .iter()
                .take_while(|&&c| c != b'"' && c != b'\\' && c >= 0x20)
                .count();
            self.scratch
                .extend_from_slice(&self.s[self.pos..self.pos + run]);
            self.pos += run;
            let Some(&c) = self.s.get(self.pos) else {
                return Err("parse error: premature EOF".into());
            };
            self.pos += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let Some(&e) = self.s.get(self.pos) else {
                        return Err("parse error: premature EOF".into());
                    };
                    self.pos += 1;
                    let b = match e {
                        b'"' => b'"',
                        b'\\' => b'\\',
                        b'/' => b'/',
                        b'b' => 0x08,
                        b'f' => 0x0c,
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'u' => {
                            let cp = self.unicode_escape()?;
                            let mut buf = [0u8; 4];
                            self.scratch
                                .extend_from_slice(cp.encode_utf8(&mut buf).as_bytes());
                            continue;
                        }
                        _ => {
                            return Err(
                                "lexical error: inside a string, '\\' occurs before a character which it may not."
                                    .into(),
                            )
                        }
                    };
                    self.scratch.push(b);
                }
                _ => {
                    return Err("lexical error: invalid character inside string.".into());
                }
            }
        }
        if std::str::from_utf8(&self.scratch).is_err() {
            return Err("lexical error: invalid bytes in UTF8 string.".into());
        }
        Ok(())
    }

    /// After `\u`: one code point, joining a surrogate pair.
    fn unicode_escape(&mut self) -> R<char> {
        let hi = self.hex4()?;
        if (0xD800..0xDC00).contains(&hi) {
            if self.s.get(self.pos..self.pos + 2) == Some(b"\\u") {
                let save = self.pos;
                self.pos += 2;
                let lo = self.hex4()?;
                if (0xDC00..0xE000).contains(&lo) {
                    let cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                    return Ok(char::from_u32(cp).unwrap_or('\u{FFFD}'));
                }
                // Not a low surrogate: it is its own escape.
                self.pos = save;
            }
            return Ok('\u{FFFD}');
        }
        Ok(char::from_u32(hi).unwrap_or('\u{FFFD}'))
    }
}
