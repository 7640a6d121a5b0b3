//! `application/x-www-form-urlencoded` bodies and query strings (ARGS_POST,
//! ARGS_GET), split and decoded the way ModSecurity v3 does it.
//!
//! - Pairs are separated by one byte, `&` unless `SecArgumentSeparator`
//!   says otherwise (`;` is *not* a separator by default).
//! - Each pair splits at its first `=`; without `=` the value is empty.
//! - An empty pair (`a&&b`, `&a`) is an argument with an empty name and an
//!   empty value, as in ModSecurity; a trailing separator adds nothing.
//! - Name and value are decoded: `+` → space, `%XY` → byte; an invalid or
//!   truncated escape is kept as-is and sets URLENCODED_ERROR.

/// The arguments parsed from one urlencoded string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UrlEncoded {
    /// (name, value) pairs, decoded, in input order, duplicates kept.
    pub args: Vec<(Vec<u8>, Vec<u8>)>,
    /// URLENCODED_ERROR: at least one `%` was not followed by two hex digits.
    pub invalid_encoding: bool,
    /// There were more than `max_args` pairs; the extra ones were skipped.
    pub limit_exceeded: bool,
}

/// Splits `input` on `separator` and decodes every pair, keeping at most
/// `max_args` of them (ModSecurity skips, not truncates, arguments over
/// `SecArgumentsLimit`; the flag lets the engine report it).
pub fn parse(input: &[u8], separator: u8, max_args: usize) -> UrlEncoded {
    let mut out = UrlEncoded::default();
    if input.is_empty() {
        return out;
    }
    // A trailing separator does not start an empty pair (std::getline
    // semantics in ModSecurity), a leading or doubled one does.
    let input = input.strip_suffix(&[separator]).unwrap_or(input);
    for pair in input.split(|&b| b == separator) {
        if out.args.len() >= max_args {
            out.limit_exceeded = true;
            break;
        }
        let (name, value) = match memchr::memchr(b'=', pair) {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &[][..]),
        };
        let (name, bad_name) = decode(name);
        let (value, bad_value) = decode(value);
        out.invalid_encoding |= bad_name || bad_value;
        out.args.push((name, value));
    }
    out
}

/// Non-strict URL decoding (`+` → space, `%XY` → byte). Returns the decoded
/// bytes and whether an invalid escape was kept verbatim.
pub fn decode(input: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::with_capacity(input.len());
    let mut invalid = false;
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'%' => match (
                input.get(i + 1).and_then(|&c| hex(c)),
                input.get(i + 2).and_then(|&c| hex(c)),
            ) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 3;
                    continue;
                }
                _ => {
                    invalid = true;
                    out.push(b'%');
                }
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    (out, invalid)
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}
