//! `@pmFromFile` (alias `@pmf`): `@pm` with the phrases read from a file,
//! one phrase per line.
//!
//! Argument: a file name, resolved against the directory of the rules file
//! ([`CompileContext::base_dir`]) and read through [`CompileContext::files`]
//! (CRS: `@pmFromFile scanners-user-agents.data`, next to the `.conf`).
//! Each line is one phrase, spaces inside included; a line whose first
//! non-white-space character is `#` is a comment. Matching is the same as
//! `@pm`: ASCII-case-insensitive, `TX:0` set to the phrase with `capture`.
//! The phrase lines are not decoded (no `|hex|`, no escapes).
//!
//! ```text
//! SecRule REQUEST_HEADERS:User-Agent "@pmFromFile scanners-user-agents.data" "id:913100,block"
//! ```
//!
//! Differences from ModSecurity v3: `https://` URLs are refused (no network
//! I/O); a trailing `\r` (CRLF files) is removed and lines holding only
//! white space are skipped, where ModSecurity would add them as phrases that
//! match any input containing that white space. A file with no phrase is
//! refused.

use super::ip_match_from_file::read_data_file;
use super::pm::Pm;
use super::CompileContext;

pub(crate) fn new(argument: &str, ctx: &CompileContext<'_>) -> Result<Pm, String> {
    let data = read_data_file("pmFromFile", argument, ctx)?;
    let phrases = data
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .filter(|line| {
            let first = line.iter().find(|b| !b.is_ascii_whitespace());
            !matches!(first, None | Some(b'#'))
        })
        .map(<[u8]>::to_vec)
        .collect();
    Pm::from_phrases("pmFromFile", phrases).map_err(|e| format!("{e} (file {})", argument.trim()))
}
