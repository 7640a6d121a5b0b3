//! `t:htmlEntityDecode` — decodes HTML character references.
//!
//! Example: `t:htmlEntityDecode` turns `&lt;script&#62;` into `<script>`.
//!
//! ModSecurity v3 behaviour, reproduced exactly:
//! - `&#DDD` (decimal, at most 3 digits) and `&#xHH` / `&#XHH` (hex, at most
//!   2 digits) become one byte (the value truncated to 8 bits, so `&#999`
//!   gives `0xE7`); further digits are left in place (`&#x414` → `A4`).
//!   The trailing `;` is optional and consumed when present.
//! - Named references: only `quot`, `amp`, `lt`, `gt` and `nbsp`
//!   (case-insensitive), `nbsp` giving the single byte `0xA0`. The name is
//!   the whole run of ASCII alphanumerics after `&`, and it matches if it
//!   merely *starts* with one of those names (`&ltx;` → `<`, `&amp2` → `&`).
//!   The `;` is optional. Any other name is copied as is.
//! - `&` without a usable reference (`&#`, `&#x`, `&;`, `& `) is kept.

use std::borrow::Cow;

use super::util::Builder;

/// Named entities ModSecurity decodes, in the order it tries them.
const NAMED: &[(&[u8], u8)] = &[
    (b"quot", b'"'),
    (b"amp", b'&'),
    (b"lt", b'<'),
    (b"gt", b'>'),
    (b"nbsp", 0xa0),
];

/// Applies `t:htmlEntityDecode`.
pub(crate) fn html_entity_decode(input: &[u8]) -> Cow<'_, [u8]> {
    let Some(first) = memchr::memchr(b'&', input) else {
        return Cow::Borrowed(input);
    };
    let len = input.len();
    let mut out = Builder::new(input);
    out.extend(&input[..first]);
    let mut i = first;
    while i < len {
        if input[i] != b'&' || i + 1 >= len {
            out.push(input[i]);
            i += 1;
            continue;
        }
        let mut j = i + 1;
        if input[j] == b'#' {
            j += 1;
            let hex = j < len && matches!(input[j], b'x' | b'X');
            if hex {
                j += 1;
            }
            let (radix, max) = if hex { (16, 2) } else { (10, 3) };
            let start = j;
            while j < len
                && j - start < max
                && (if hex {
                    input[j].is_ascii_hexdigit()
                } else {
                    input[j].is_ascii_digit()
                })
            {
                j += 1;
            }
            if j == start {
                // `&#` or `&#x` without digits: copy what was looked at.
                out.extend(&input[i..start.min(len)]);
                i = start.min(len);
                continue;
            }
            let value = input[start..j]
                .iter()
                .fold(0u32, |acc, &d| acc * radix + u32::from(hex_value(d)));
            out.push(value as u8);
            i = if j < len && input[j] == b';' {
                j + 1
            } else {
                j
            };
        } else {
            while j < len && input[j].is_ascii_alphanumeric() {
                j += 1;
            }
            let name = &input[i + 1..j];
            if name.is_empty() {
                out.push(b'&');
                i += 1;
                continue;
            }
            match NAMED
                .iter()
                .find(|(n, _)| name.len() >= n.len() && name[..n.len()].eq_ignore_ascii_case(n))
            {
                Some(&(_, byte)) => {
                    out.push(byte);
                    i = if j < len && input[j] == b';' {
                        j + 1
                    } else {
                        j
                    };
                }
                None => {
                    out.extend(&input[i..j]);
                    i = j;
                }
            }
        }
    }
    out.finish()
}

fn hex_value(d: u8) -> u8 {
    match d {
        b'0'..=b'9' => d - b'0',
        b'a'..=b'f' => d - b'a' + 10,
        b'A'..=b'F' => d - b'A' + 10,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::check;
    use super::html_entity_decode;

    #[test]
    fn vectors() {
        check(
            html_entity_decode,
            &[
                (b"", b""),
                (b"TestCase", b"TestCase"),
                (b"&lt;&gt;&amp;&quot;&nbsp;", b"<>&\"\xa0"),
                (b"&LT;&Gt;&AMP;", b"<>&"),
                (b"&lt&gt", b"<>"),
                (b"&ltx;", b"<"),
                (b"&amp2", b"&"),
                (b"&apos;", b"&apos;"),
                (b"&foo;bar", b"&foo;bar"),
                (b"&#65;&#x41;&#X41", b"AAA"),
                (b"&#0065;", b"\x065;"),
                (b"&#6500;", b"\x8a0;"),
                (b"&#x414;", b"A4;"),
                (b"&#999;", b"\xe7"),
                (b"&#256", b"\0"),
                (b"&#", b"&#"),
                (b"&#;", b"&#;"),
                (b"&#x", b"&#x"),
                (b"&#xg;", b"&#xg;"),
                (b"&", b"&"),
                (b"a&", b"a&"),
                (b"& ;", b"& ;"),
                (b"&&lt;", b"&<"),
                (b"&#x3c;script&#x3e;", b"<script>"),
            ],
        );
    }
}
