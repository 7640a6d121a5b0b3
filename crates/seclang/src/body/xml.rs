//! XML bodies for the `XML` variable: a small, safe, non-validating parser.
//!
//! It checks well-formedness the way libxml2 (ModSecurity's parser) does for
//! the common cases (one root element, matching tags, quoted attributes, no
//! duplicate attributes, known entities, valid UTF-8, no control characters)
//! and extracts only what rules read:
//!
//! - `XML:/*` in ModSecurity is the text content of the root element (all
//!   descendant text and CDATA concatenated): [`XmlDoc::root_text`]. Coraza
//!   instead lists each non-blank text node, trimmed: [`XmlDoc::texts`].
//! - `XML://@*` is every attribute value: [`XmlDoc::attributes`].
//!
//! Safety: no DTD is processed (a DOCTYPE is skipped, its internal subset
//! included), so no external entity is ever resolved and no entity is
//! expanded (no billion laughs). A reference to an entity declared in a
//! skipped DTD is kept verbatim (`&name;`); without a DOCTYPE an unknown
//! entity is an error, as in libxml2. Nesting is bounded by
//! [`BodyLimits::xml_depth`] on a heap stack. Documents declaring a non-UTF-8
//! `encoding` are read byte-wise without UTF-8 validation.

use std::collections::HashSet;
use std::fmt;

use super::BodyLimits;

/// What the XML variable exposes from a well-formed document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XmlDoc {
    /// ModSecurity's `XML:/*`: the root element's text content (all text
    /// and CDATA inside it, concatenated, whitespace kept).
    pub root_text: Vec<u8>,
    /// Coraza's `XML:/*`: each text or CDATA node, trimmed, blank ones
    /// dropped, in document order.
    pub texts: Vec<Vec<u8>>,
    /// `XML://@*`: (attribute name, value) in document order; values have
    /// literal TAB/CR/LF normalised to spaces, then entities decoded (so
    /// `&#13;&#10;` stays CR LF, as XML 1.0 §3.3.3 says).
    pub attributes: Vec<(Vec<u8>, Vec<u8>)>,
}

/// A malformed document. Displays as ModSecurity's message,
/// `XML: Failed parsing document.`; the fields say what and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XmlError {
    /// Byte offset of the problem.
    pub offset: usize,
    /// What is wrong.
    pub reason: &'static str,
}

impl fmt::Display for XmlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("XML: Failed parsing document.")
    }
}

impl std::error::Error for XmlError {}

type R<T> = Result<T, XmlError>;

/// Parses a complete XML body.
pub fn parse(body: &[u8], limits: &BodyLimits) -> R<XmlDoc> {
    let mut p = Parser {
        s: body,
        pos: 0,
        doc: XmlDoc::default(),
        text: Vec::new(),
        dtd_seen: false,
        depth_limit: limits.xml_depth,
    };
    p.document()?;
    Ok(p.doc)
}

#[derive(Debug)]
struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    doc: XmlDoc,
    /// The current text node (for `texts`).
    text: Vec<u8>,
    dtd_seen: bool,
    depth_limit: usize,
}

fn is_name_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b':' || c >= 0x80
}

fn is_name_char(c: u8) -> bool {
    is_name_start(c) || c.is_ascii_digit() || c == b'-' || c == b'.'
}

fn is_ws(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r')
}

impl<'a> Parser<'a> {
    fn err<T>(&self, reason: &'static str) -> R<T> {
        Err(XmlError {
            offset: self.pos,
            reason,
        })
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn starts(&self, lit: &[u8]) -> bool {
        self.s[self.pos..].starts_with(lit)
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(is_ws) {
            self.pos += 1;
        }
    }

    /// Moves past the next `end`, or fails.
    fn skip_past(&mut self, end: &[u8], reason: &'static str) -> R<&'a [u8]> {
        let s: &'a [u8] = self.s;
        match memchr::memmem::find(&s[self.pos..], end) {
            Some(i) => {
                let inner = &s[self.pos..self.pos + i];
                self.pos += i + end.len();
                Ok(inner)
            }
            None => {
                self.pos = s.len();
                self.err(reason)
            }
        }
    }

    fn name(&mut self) -> R<&'a [u8]> {
        let s: &'a [u8] = self.s;
        let start = self.pos;
        if !self.peek().is_some_and(is_name_start) {
            return self.err("name expected");
        }
        while self.peek().is_some_and(is_name_char) {
            self.pos += 1;
        }
        Ok(&s[start..self.pos])
    }

    fn check_chars(&self) -> R<()> {
        if let Some(i) = self
            .s
            .iter()
            .position(|&c| c < 0x20 && !matches!(c, b'\t' | b'\n' | b'\r'))
        {
            return Err(XmlError {
                offset: i,
                reason: "control character",
            });
        }
        if self.declares_foreign_encoding() {
            return Ok(());
        }
        if let Err(e) = std::str::from_utf8(self.s) {
            return Err(XmlError {
                offset: e.valid_up_to(),
                reason: "invalid UTF-8",
            });
        }
        Ok(())
    }

    /// `<?xml … encoding="X"?>` with X other than UTF-8.
    fn declares_foreign_encoding(&self) -> bool {
        let s = self.s.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(self.s);
        if !s.starts_with(b"<?xml") {
            return false;
        }
        let decl = match memchr::memmem::find(s, b"?>") {
            Some(end) => &s[..end],
            None => return false,
        };
        let Some(at) = memchr::memmem::find(decl, b"encoding") else {
            return false;
        };
        let rest = &decl[at + 8..];
        let value: Vec<u8> = rest
            .iter()
            .copied()
            .skip_while(|&c| is_ws(c) || c == b'=' || c == b'"' || c == b'\'')
            .take_while(|&c| c != b'"' && c != b'\'')
            .collect();
        !(value.eq_ignore_ascii_case(b"utf-8") || value.eq_ignore_ascii_case(b"utf8"))
    }

    fn document(&mut self) -> R<()> {
        self.check_chars()?;
        if self.starts(b"\xEF\xBB\xBF") {
            self.pos += 3;
        }
        let mut root_done = false;
        loop {
            self.skip_ws();
            let Some(c) = self.peek() else {
                return if root_done {
                    Ok(())
                } else {
                    self.err("no root element")
                };
            };
            if c != b'<' {
                return self.err("content outside the root element");
            }
            if self.starts(b"<?") {
                self.pi()?;
            } else if self.starts(b"<!--") {
                self.comment()?;
            } else if self.starts(b"<!DOCTYPE") {
                if root_done || self.dtd_seen {
                    return self.err("misplaced DOCTYPE");
                }
                self.doctype()?;
            } else if root_done {
                return self.err("extra content after the root element");
            } else {
                self.root()?;
                root_done = true;
            }
        }
    }

    fn pi(&mut self) -> R<()> {
        let start = self.pos;
        self.pos += 2;
        let target = self.name()?;
        if target.eq_ignore_ascii_case(b"xml") {
            // The XML declaration is only allowed at the very start.
            let bom = if self.s.starts_with(b"\xEF\xBB\xBF") {
                3
            } else {
                0
            };
            if start != bom {
                return self.err("misplaced XML declaration");
            }
        }
        self.skip_past(b"?>", "unterminated processing instruction")?;
        Ok(())
    }

    fn comment(&mut self) -> R<()> {
        self.pos += 4;
        let inner = self.skip_past(b"-->", "unterminated comment")?;
        if memchr::memmem::find(inner, b"--").is_some() || inner.ends_with(b"-") {
            return self.err("'--' inside a comment");
        }
        Ok(())
    }

    /// Skips `<!DOCTYPE …>` including an internal subset, honouring quotes
    /// and comments so a `>` inside them does not end it.
    fn doctype(&mut self) -> R<()> {
        self.dtd_seen = true;
        self.pos += 9;
        let mut depth = 0usize;
        loop {
            let Some(c) = self.peek() else {
                return self.err("unterminated DOCTYPE");
            };
            match c {
                b'"' | b'\'' => {
                    self.pos += 1;
                    self.skip_past(&[c], "unterminated literal in DOCTYPE")?;
                    continue;
                }
                b'<' if self.starts(b"<!--") => {
                    self.comment()?;
                    continue;
                }
                b'[' => depth += 1,
                b']' => depth = depth.saturating_sub(1),
                b'>' if depth == 0 => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => {}
            }
            self.pos += 1;
        }
    }

    fn flush_text(&mut self) {
        let t = self.text.trim_ascii();
        if !t.is_empty() {
            self.doc.texts.push(t.to_vec());
        }
        self.text.clear();
    }

    /// The root element and everything inside it, iteratively.
    fn root(&mut self) -> R<()> {
        let mut stack: Vec<&'a [u8]> = Vec::new();
        let mut seen_attrs: HashSet<&'a [u8]> = HashSet::new();
        loop {
            // At a `<` that starts markup.
            if self.starts(b"</") {
                self.flush_text();
                self.pos += 2;
                let name = self.name()?;
                self.skip_ws();
                if self.peek() != Some(b'>') {
                    return self.err("'>' expected");
                }
                self.pos += 1;
                if stack.pop() != Some(name) {
                    return self.err("mismatched end tag");
                }
                if stack.is_empty() {
                    return Ok(());
                }
            } else if self.starts(b"<!--") {
                self.flush_text();
                self.comment()?;
            } else if self.starts(b"<![CDATA[") {
                if stack.is_empty() {
                    return self.err("CDATA outside the root element");
                }
                self.flush_text();
                self.pos += 9;
                let inner = self.skip_past(b"]]>", "unterminated CDATA section")?;
                self.doc.root_text.extend_from_slice(inner);
                self.text.extend_from_slice(inner);
                self.flush_text();
            } else if self.starts(b"<?") {
                self.flush_text();
                self.pi()?;
            } else if self.starts(b"<!") {
                return self.err("unexpected declaration");
            } else {
                self.flush_text();
                self.pos += 1;
                let name = self.name()?;
                if stack.len() >= self.depth_limit {
                    return self.err("maximum depth exceeded");
                }
                // clear() costs the table's capacity: after one huge tag,
                // start small again so many small tags stay cheap.
                if seen_attrs.capacity() > 256 {
                    seen_attrs = HashSet::new();
                } else {
                    seen_attrs.clear();
                }
                let empty = self.attributes(&mut seen_attrs)?;
                if !empty {
                    stack.push(name);
                } else if stack.is_empty() {
                    return Ok(());
                }
            }
            self.content()?;
        }
    }

    /// Attributes up to `>` or `/>`; returns whether the tag was `/>`.
    fn attributes(&mut self, seen: &mut HashSet<&'a [u8]>) -> R<bool> {
        loop {
            let had_ws = self.peek().is_some_and(is_ws);
            self.skip_ws();
            match self.peek() {
                None => return self.err("unterminated start tag"),
                Some(b'>') => {
                    self.pos += 1;
                    return Ok(false);
                }
                Some(b'/') => {
                    self.pos += 1;
                    if self.peek() != Some(b'>') {
                        return self.err("'>' expected after '/'");
                    }
                    self.pos += 1;
                    return Ok(true);
                }
                Some(_) if !had_ws => return self.err("whitespace expected before attribute"),
                Some(_) => {}
            }
            let name = self.name()?;
            self.skip_ws();
            if self.peek() != Some(b'=') {
                return self.err("'=' expected after attribute name");
            }
            self.pos += 1;
            self.skip_ws();
            let q = match self.peek() {
                Some(q @ (b'"' | b'\'')) => q,
                _ => return self.err("attribute value must be quoted"),
            };
            self.pos += 1;
            let start = self.pos;
            let Some(len) = memchr::memchr(q, &self.s[start..]) else {
                self.pos = self.s.len();
                return self.err("unterminated attribute value");
            };
            let raw = &self.s[start..start + len];
            if raw.contains(&b'<') {
                return self.err("'<' in attribute value");
            }
            // XML 1.0 §3.3.3: literal TAB/CR/LF become spaces, but a
            // character reference (`&#13;&#10;`) keeps the character it
            // names, so normalise before decoding. CRS 921120/932300-321
            // look for exactly such smuggled CR LF in attribute values.
            let normalised: std::borrow::Cow<'_, [u8]> =
                if raw.iter().any(|c| matches!(c, b'\t' | b'\n' | b'\r')) {
                    raw.iter()
                        .map(|&c| {
                            if matches!(c, b'\t' | b'\n' | b'\r') {
                                b' '
                            } else {
                                c
                            }
                        })
                        .collect::<Vec<u8>>()
                        .into()
                } else {
                    raw.into()
                };
            let mut value = Vec::with_capacity(raw.len());
            self.decode_into(&normalised, start, &mut value)?;
            self.pos = start + len + 1;
            if !seen.insert(name) {
                return self.err("duplicate attribute");
            }
            self.doc.attributes.push((name.to_vec(), value));
        }
    }

    /// Character data inside the root, up to the next `<`, which the caller
    /// then handles as markup.
    fn content(&mut self) -> R<()> {
        let start = self.pos;
        let len = memchr::memchr(b'<', &self.s[start..]).unwrap_or(self.s.len() - start);
        let raw = &self.s[start..start + len];
        let mut decoded = Vec::with_capacity(raw.len());
        self.decode_into(raw, start, &mut decoded)?;
        self.doc.root_text.extend_from_slice(&decoded);
        self.text.extend_from_slice(&decoded);
        self.pos = start + len;
        if self.pos >= self.s.len() {
            return self.err("premature end of data");
        }
        Ok(())
    }

    /// Decodes character and entity references of `raw` (found at `at`).
    fn decode_into(&self, raw: &[u8], at: usize, out: &mut Vec<u8>) -> R<()> {
        let mut i = 0;
        while let Some(amp) = memchr::memchr(b'&', &raw[i..]) {
            out.extend_from_slice(&raw[i..i + amp]);
            let ref_start = i + amp;
            let Some(semi) = memchr::memchr(b';', &raw[ref_start..]) else {
                return Err(XmlError {
                    offset: at + ref_start,
                    reason: "unterminated entity reference",
                });
            };
            let name = &raw[ref_start + 1..ref_start + semi];
            let bad = XmlError {
                offset: at + ref_start,
                reason: "invalid entity reference",
            };
            match name {
                b"lt" => out.push(b'<'),
                b"gt" => out.push(b'>'),
                b"amp" => out.push(b'&'),
                b"apos" => out.push(b'\''),
                b"quot" => out.push(b'"'),
                [b'#', num @ ..] => {
                    let (digits, radix) = match num {
                        [b'x', hex @ ..] => (hex, 16),
                        dec => (dec, 10),
                    };
                    if digits.is_empty() || digits.len() > 8 {
                        return Err(bad);
                    }
                    let cp = std::str::from_utf8(digits)
                        .ok()
                        .and_then(|d| u32::from_str_radix(d, radix).ok())
                        .and_then(char::from_u32)
                        .filter(|&c| {
                            matches!(c, '\t' | '\n' | '\r')
                                || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}')
                        })
                        .ok_or(bad)?;
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(cp.encode_utf8(&mut buf).as_bytes());
                }
                _ => {
                    let valid_name = name.first().is_some_and(|&c| is_name_start(c))
                        && name.iter().all(|&c| is_name_char(c));
                    if !valid_name || !self.dtd_seen {
                        return Err(bad);
                    }
                    // Declared (maybe) in a DTD we do not process: keep the
                    // reference verbatim rather than expand anything.
                    out.extend_from_slice(&raw[ref_start..=ref_start + semi]);
                }
            }
            i = ref_start + semi + 1;
        }
        out.extend_from_slice(&raw[i..]);
        Ok(())
    }
}
