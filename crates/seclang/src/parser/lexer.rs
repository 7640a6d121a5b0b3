//! Splits a rules file into directives: joins `\`-newline continuations,
//! drops comments and blank lines, and splits each directive into its name
//! and arguments (`"..."` with `\"` escapes, `'...'` with `\'` escapes, or
//! bare words).
//!
//! Inside quotes only the escaped quote is unescaped: every other backslash
//! is kept, because regexes need it (`"@rx \d+"`).

/// Longest logical line (after joining continuations) accepted. Bounds memory
/// for hostile rule files; CRS's longest rule is about 20 KB. Default 1 MiB.
pub const MAX_DIRECTIVE_LEN: usize = 1 << 20;

/// One directive, before interpretation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawDirective {
    /// 1-based line of the directive's first physical line.
    pub line: usize,
    /// The directive name as written (`SecRule`).
    pub name: String,
    /// The arguments, quotes removed.
    pub args: Vec<String>,
}

/// Lexes a whole file. Errors carry the 1-based line.
pub fn lex(text: &str) -> Result<Vec<RawDirective>, (usize, String)> {
    let mut out = Vec::new();
    let mut logical = String::new();
    let mut start_line = 0;
    for (index, raw_line) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = raw_line.strip_suffix('\r').unwrap_or(raw_line);
        if logical.is_empty() {
            start_line = line_no;
            let trimmed = line.trim_start();
            if trimmed.starts_with('#') && !trimmed.ends_with('\\') {
                continue;
            }
        }
        let (content, continued) = match line.strip_suffix('\\') {
            Some(c) => (c, true),
            None => (line, false),
        };
        logical.push_str(content);
        if logical.len() > MAX_DIRECTIVE_LEN {
            return Err((start_line, "directive too long".into()));
        }
        if continued {
            continue;
        }
        let joined = std::mem::take(&mut logical);
        if let Some(d) = split_directive(&joined, start_line)? {
            out.push(d);
        }
    }
    if !logical.is_empty() {
        if let Some(d) = split_directive(&logical, start_line)? {
            out.push(d);
        }
    }
    Ok(out)
}

fn split_directive(line: &str, line_no: usize) -> Result<Option<RawDirective>, (usize, String)> {
    let trimmed = line.trim();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return Ok(None);
    }
    let mut words = split_words(trimmed).map_err(|e| (line_no, e))?;
    if words.is_empty() {
        return Ok(None);
    }
    let name = words.remove(0);
    Ok(Some(RawDirective {
        line: line_no,
        name,
        args: words,
    }))
}

/// Splits a logical line into words honouring quotes.
pub fn split_words(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&first) = chars.peek() else { break };
        let mut word = String::new();
        if first == '"' || first == '\'' {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                if c == '\\' {
                    match chars.peek() {
                        Some(&n) if n == first => {
                            word.push(n);
                            chars.next();
                        }
                        Some(&n) => {
                            word.push('\\');
                            word.push(n);
                            chars.next();
                        }
                        None => word.push('\\'),
                    }
                } else if c == first {
                    closed = true;
                    break;
                } else {
                    word.push(c);
                }
            }
            if !closed {
                return Err(format!("unterminated {first} quote"));
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                word.push(c);
                chars.next();
            }
        }
        out.push(word);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuation_and_quotes() {
        let text = "# comment\n\nSecRule ARGS \"@rx a\\\"b\\d\" \\\n    \"id:1,\\\n    deny\"\nSecMarker 'END'\n";
        let d = lex(text).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].line, 3);
        assert_eq!(d[0].args, vec!["ARGS", "@rx a\"b\\d", "id:1,    deny"]);
        assert_eq!(d[1].line, 6);
        assert_eq!(d[1].args, vec!["END"]);
    }

    #[test]
    fn unterminated_quote_reports_line() {
        let e = lex("\nSecRule ARGS \"@rx x").unwrap_err();
        assert_eq!(e.0, 2);
    }
}
