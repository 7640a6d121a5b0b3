//! `t:cmdLine` — normalises a shell/cmd.exe command line the way command
//! interpreters ignore obfuscation.
//!
//! Example: `t:cmdLine` turns `C^:\\Wi"nd"ows ,/c  ( dir ; ` into
//! `c:windows/c( dir `.
//!
//! ModSecurity v3 behaviour, reproduced exactly:
//! - deletes `\`, `"`, `'` and `^`;
//! - replaces each run of space, `,`, `;`, `\t`, `\r`, `\n` by one space
//!   (deleted characters do not break a run);
//! - deletes a space (from such a run) right before `/` or `(`;
//! - lowercases `A`–`Z` (C locale: bytes ≥ 0x80 unchanged).
//!
//! Leading and trailing runs stay as one space.

use std::borrow::Cow;

use super::util::Builder;

/// Applies `t:cmdLine`.
pub(crate) fn cmd_line(input: &[u8]) -> Cow<'_, [u8]> {
    let mut out = Builder::new(input);
    let mut space = false;
    for &b in input {
        match b {
            b'"' | b'\'' | b'\\' | b'^' => {}
            b' ' | b',' | b';' | b'\t' | b'\r' | b'\n' => {
                if !space {
                    out.push(b' ');
                    space = true;
                }
            }
            b'/' | b'(' => {
                if space {
                    out.pop();
                }
                space = false;
                out.push(b);
            }
            _ => {
                out.push(b.to_ascii_lowercase());
                space = false;
            }
        }
    }
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::super::testutil::check;
    use super::cmd_line;

    #[test]
    fn vectors() {
        check(
            cmd_line,
            &[
                (b"", b""),
                (b"test case", b"test case"),
                (b"TestCase", b"testcase"),
                (b"C^:\\Wi\"nd\"ows ,/c  ( dir ; ", b"c:windows/c( dir "),
                (b"c\"a't\\ /e^tc/pa\"sswd", b"cat/etc/passwd"),
                (b"a , ; \t\r\n b", b"a b"),
                (b"a \"\" b", b"a b"),
                (b" /", b"/"),
                (b"ping (", b"ping("),
                (b" a", b" a"),
                (b"\xc3\x89A", b"\xc3\x89a"),
                (b"\x0b\x0c", b"\x0b\x0c"),
            ],
        );
    }
}
