//! `@pm`: phrase match — true when any of the listed phrases occurs in the
//! input, compared ASCII-case-insensitively (one Aho-Corasick pass).
//!
//! Argument: phrases separated by white space (space, tab, CR, LF, VT, FF).
//! The argument is decoded first exactly as ModSecurity v3's
//! `parse_pm_content` does:
//! - leading spaces/tabs are skipped; if what remains starts and ends with
//!   `"`, the quotes are removed;
//! - `|4142|` inserts the bytes given in hex (`AB`); unlike ModSecurity v2,
//!   v3 accepts no space inside the block;
//! - `\:`, `\;`, `\\` and `\"` are escapes for the character itself;
//! - if a hex block holds a non-hex character or another character is
//!   escaped, the whole argument is used undecoded.
//!
//! Decoding happens before splitting, so `|20|` splits a phrase in two, as in
//! ModSecurity. With the `capture` action `TX:0` is set to the phrase found
//! (as written in the rule); the phrase reported is the one whose occurrence
//! ends first in the input.
//!
//! ```text
//! SecRule REQUEST_HEADERS:User-Agent "@pm nikto sqlmap nessus" "id:12,block,capture"
//! ```
//!
//! Same as ModSecurity v3 (an argument with no phrase is refused instead of
//! never matching).

use aho_corasick::{AhoCorasick, MatchKind};

use super::{is_c_space, Operator, OperatorContext};

/// Compiled `@pm` / `@pmFromFile`.
#[derive(Debug)]
pub(crate) struct Pm {
    automaton: AhoCorasick,
    /// The phrases as written, indexed by Aho-Corasick pattern id.
    phrases: Vec<Vec<u8>>,
}

/// ModSecurity's `parse_pm_content`, byte for byte.
fn decode_argument(argument: &[u8]) -> Vec<u8> {
    let Some(offset) = argument.iter().position(|&b| b != b' ' && b != b'\t') else {
        return argument.to_vec();
    };
    let mut content = &argument[offset..];
    if content.len() >= 2 && content[0] == b'"' && argument.last() == Some(&b'"') {
        content = &content[1..content.len() - 1];
    }
    if content.is_empty() {
        return argument.to_vec();
    }
    let mut out = Vec::with_capacity(content.len());
    let (mut bin, mut esc) = (false, false);
    let mut hex_digits: Vec<u8> = Vec::with_capacity(2);
    for &c in content {
        if c == b'|' {
            bin = !bin;
        } else if !esc && c == b'\\' {
            esc = true;
        } else if bin {
            let Some(digit) = (c as char).to_digit(16) else {
                return argument.to_vec();
            };
            hex_digits.push(digit as u8);
            if let [hi, lo] = hex_digits[..] {
                out.push(hi << 4 | lo);
                hex_digits.clear();
            }
        } else if esc {
            if matches!(c, b':' | b';' | b'\\' | b'"') {
                out.push(c);
            } else {
                return argument.to_vec();
            }
            esc = false;
        } else {
            out.push(c);
        }
    }
    out
}

impl Pm {
    /// `@pm` from its rule argument.
    pub(crate) fn new(argument: &str) -> Result<Pm, String> {
        let decoded = decode_argument(argument.as_bytes());
        let phrases: Vec<Vec<u8>> = decoded
            .split(|&b| is_c_space(b))
            .filter(|p| !p.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        Pm::from_phrases("pm", phrases)
    }

    /// Builds the automaton over `phrases` (none empty).
    pub(crate) fn from_phrases(operator: &str, phrases: Vec<Vec<u8>>) -> Result<Pm, String> {
        if phrases.is_empty() {
            return Err(format!("@{operator} needs at least one phrase"));
        }
        // The crate picks the automaton (a DFA for small phrase lists, a
        // contiguous NFA for big ones, bounding memory for large data files).
        let automaton = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            // Standard semantics report the occurrence that ends first, as
            // ModSecurity's ACMP returns at the first accepting state.
            .match_kind(MatchKind::Standard)
            .build(&phrases)
            .map_err(|e| format!("@{operator}: cannot build the phrase automaton: {e}"))?;
        Ok(Pm { automaton, phrases })
    }
}

impl Operator for Pm {
    fn evaluate(&self, input: &[u8], ctx: &mut dyn OperatorContext) -> bool {
        if !ctx.capturing() {
            return self.automaton.is_match(input);
        }
        match self.automaton.find(input) {
            Some(m) => {
                if let Some(phrase) = self.phrases.get(m.pattern().as_usize()) {
                    ctx.set_capture(0, phrase);
                }
                true
            }
            None => false,
        }
    }

    fn required_literals(&self) -> Option<Vec<Vec<u8>>> {
        let mut literals: Vec<Vec<u8>> = self
            .phrases
            .iter()
            .map(|p| p.to_ascii_lowercase())
            .collect();
        literals.sort();
        literals.dedup();
        Some(literals)
    }

    fn literals_case_insensitive(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::decode_argument;

    #[test]
    fn decodes_like_modsecurity() {
        assert_eq!(decode_argument(b"a b"), b"a b");
        assert_eq!(decode_argument(b"  \"a b\""), b"a b");
        assert_eq!(decode_argument(b"|4142|c"), b"ABc");
        // ModSecurity v3 allows no space inside a hex block (v2 did).
        assert_eq!(decode_argument(b"|41 42|c"), b"|41 42|c");
        assert_eq!(decode_argument(b"|4|"), b"");
        assert_eq!(decode_argument(b"a\\:b\\\\"), b"a:b\\");
        // Unsupported escape or bad hex: the argument is used as written.
        assert_eq!(decode_argument(b"a\\nb"), b"a\\nb");
        assert_eq!(decode_argument(b"|4g|"), b"|4g|");
        // Quotes: the last byte of the whole argument must be `"`.
        assert_eq!(decode_argument(b"\"\""), b"\"\"");
        assert_eq!(decode_argument(b"\"a"), b"\"a");
        assert_eq!(decode_argument(b"   "), b"   ");
    }
}
