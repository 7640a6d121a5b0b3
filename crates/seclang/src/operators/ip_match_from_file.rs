//! `@ipMatchFromFile` (alias `@ipMatchF`): `@ipMatch` with the addresses and
//! networks read from a file.
//!
//! Argument: a file name, resolved against the directory of the rules file
//! ([`CompileContext::base_dir`]) and read through [`CompileContext::files`].
//! The file holds one or more entries per line (comma-separated, as in
//! `@ipMatch`); everything from `#` to the end of a line is a comment; blank
//! lines are skipped.
//!
//! ```text
//! SecRule REMOTE_ADDR "@ipMatchFromFile blocked-ips.txt" "id:11,deny"
//! ```
//!
//! Differences from ModSecurity v3: `https://` URLs are refused (the engine
//! does no network I/O); white space around entries (and a trailing `\r`)
//! is trimmed. The matching is the same as `@ipMatch`.

use super::ip_match::IpSet;
use super::{CompileContext, Operator, OperatorContext};

/// Compiled `@ipMatchFromFile`.
#[derive(Debug)]
pub(crate) struct IpMatchFromFile {
    set: IpSet,
}

/// Reads an operator data file (shared with `@pmFromFile`).
pub(crate) fn read_data_file(
    operator: &str,
    argument: &str,
    ctx: &CompileContext<'_>,
) -> Result<Vec<u8>, String> {
    let name = argument.trim();
    if name.is_empty() {
        return Err(format!("@{operator} needs a file name"));
    }
    if name.starts_with("https://") || name.starts_with("http://") {
        return Err(format!(
            "@{operator}: remote data files are not supported ({name}); download the file and name it locally"
        ));
    }
    let path = ctx.base_dir.join(name);
    ctx.files
        .read(&path)
        .map_err(|e| format!("@{operator}: cannot read {}: {e}", path.display()))
}

pub(crate) fn new(argument: &str, ctx: &CompileContext<'_>) -> Result<IpMatchFromFile, String> {
    let data = read_data_file("ipMatchFromFile", argument, ctx)?;
    let text = String::from_utf8_lossy(&data);
    let mut set = IpSet::default();
    for (number, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("");
        set.add_list(line).map_err(|e| {
            format!(
                "@ipMatchFromFile {}: line {}: {e}",
                argument.trim(),
                number + 1
            )
        })?;
    }
    set.finish();
    Ok(IpMatchFromFile { set })
}

impl Operator for IpMatchFromFile {
    fn evaluate(&self, input: &[u8], _ctx: &mut dyn OperatorContext) -> bool {
        self.set.matches(input)
    }
}
