//! Variables (`ARGS`, `REQUEST_HEADERS`, `TX`, …) and rule targets.
//!
//! A rule's target list (`ARGS|!ARGS:foo|&TX:x|REQUEST_HEADERS:/^x-/`) is
//! parsed once into [`Target`]s. Variable names and key selectors are
//! case-insensitive, as in ModSecurity; `/regex/` selectors match keys
//! case-insensitively too.

use std::fmt;
use std::sync::Arc;

macro_rules! variables {
    ($( $(#[$doc:meta])* $variant:ident => $name:literal, $coll:literal; )*) => {
        /// Every variable the engine knows.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum Var {
            $( $(#[$doc])* #[doc = concat!("`", $name, "`")] $variant, )*
        }

        impl Var {
            /// Every variable, in declaration order.
            pub const ALL: &'static [Var] = &[$(Var::$variant,)*];

            /// The variable named `name` (any case).
            pub fn from_name(name: &str) -> Option<Var> {
                $( if name.eq_ignore_ascii_case($name) { return Some(Var::$variant); } )*
                None
            }

            /// The canonical (upper-case) name.
            pub fn name(self) -> &'static str {
                match self { $( Var::$variant => $name, )* }
            }

            /// True when the variable holds keyed values (a `:key` selector
            /// makes sense); false for scalars.
            pub fn is_collection(self) -> bool {
                match self { $( Var::$variant => $coll, )* }
            }
        }
    };
}

variables! {
    Args => "ARGS", true;
    ArgsGet => "ARGS_GET", true;
    ArgsPost => "ARGS_POST", true;
    ArgsNames => "ARGS_NAMES", true;
    ArgsGetNames => "ARGS_GET_NAMES", true;
    ArgsPostNames => "ARGS_POST_NAMES", true;
    ArgsCombinedSize => "ARGS_COMBINED_SIZE", false;
    RequestHeaders => "REQUEST_HEADERS", true;
    RequestHeadersNames => "REQUEST_HEADERS_NAMES", true;
    RequestCookies => "REQUEST_COOKIES", true;
    RequestCookiesNames => "REQUEST_COOKIES_NAMES", true;
    RequestUri => "REQUEST_URI", false;
    RequestUriRaw => "REQUEST_URI_RAW", false;
    RequestFilename => "REQUEST_FILENAME", false;
    RequestBasename => "REQUEST_BASENAME", false;
    RequestLine => "REQUEST_LINE", false;
    RequestMethod => "REQUEST_METHOD", false;
    RequestProtocol => "REQUEST_PROTOCOL", false;
    QueryString => "QUERY_STRING", false;
    PathInfo => "PATH_INFO", false;
    RequestBody => "REQUEST_BODY", false;
    RequestBodyLength => "REQUEST_BODY_LENGTH", false;
    FullRequest => "FULL_REQUEST", false;
    FullRequestLength => "FULL_REQUEST_LENGTH", false;
    Files => "FILES", true;
    FilesNames => "FILES_NAMES", true;
    FilesSizes => "FILES_SIZES", true;
    FilesCombinedSize => "FILES_COMBINED_SIZE", false;
    FilesTmpContent => "FILES_TMP_CONTENT", true;
    FilesTmpNames => "FILES_TMPNAMES", true;
    MultipartStrictError => "MULTIPART_STRICT_ERROR", false;
    MultipartUnmatchedBoundary => "MULTIPART_UNMATCHED_BOUNDARY", false;
    MultipartBoundaryQuoted => "MULTIPART_BOUNDARY_QUOTED", false;
    MultipartBoundaryWhitespace => "MULTIPART_BOUNDARY_WHITESPACE", false;
    MultipartDataBefore => "MULTIPART_DATA_BEFORE", false;
    MultipartDataAfter => "MULTIPART_DATA_AFTER", false;
    MultipartHeaderFolding => "MULTIPART_HEADER_FOLDING", false;
    MultipartLfLine => "MULTIPART_LF_LINE", false;
    MultipartCrlfLfLines => "MULTIPART_CRLF_LF_LINES", false;
    MultipartMissingSemicolon => "MULTIPART_MISSING_SEMICOLON", false;
    MultipartInvalidQuoting => "MULTIPART_INVALID_QUOTING", false;
    MultipartInvalidPart => "MULTIPART_INVALID_PART", false;
    MultipartInvalidHeaderFolding => "MULTIPART_INVALID_HEADER_FOLDING", false;
    MultipartFileLimitExceeded => "MULTIPART_FILE_LIMIT_EXCEEDED", false;
    MultipartFilename => "MULTIPART_FILENAME", true;
    MultipartName => "MULTIPART_NAME", true;
    MultipartPartHeaders => "MULTIPART_PART_HEADERS", true;
    ReqbodyError => "REQBODY_ERROR", false;
    ReqbodyErrorMsg => "REQBODY_ERROR_MSG", false;
    ReqbodyProcessor => "REQBODY_PROCESSOR", false;
    ReqbodyProcessorError => "REQBODY_PROCESSOR_ERROR", false;
    ReqbodyProcessorErrorMsg => "REQBODY_PROCESSOR_ERROR_MSG", false;
    InboundDataError => "INBOUND_DATA_ERROR", false;
    OutboundDataError => "OUTBOUND_DATA_ERROR", false;
    UrlencodedError => "URLENCODED_ERROR", false;
    Xml => "XML", true;
    ResponseStatus => "RESPONSE_STATUS", false;
    ResponseProtocol => "RESPONSE_PROTOCOL", false;
    ResponseHeaders => "RESPONSE_HEADERS", true;
    ResponseHeadersNames => "RESPONSE_HEADERS_NAMES", true;
    ResponseBody => "RESPONSE_BODY", false;
    ResponseContentType => "RESPONSE_CONTENT_TYPE", false;
    ResponseContentLength => "RESPONSE_CONTENT_LENGTH", false;
    Tx => "TX", true;
    Ip => "IP", true;
    Global => "GLOBAL", true;
    Session => "SESSION", true;
    User => "USER", true;
    Resource => "RESOURCE", true;
    Env => "ENV", true;
    MatchedVar => "MATCHED_VAR", false;
    MatchedVars => "MATCHED_VARS", true;
    MatchedVarName => "MATCHED_VAR_NAME", false;
    MatchedVarsNames => "MATCHED_VARS_NAMES", true;
    Rule => "RULE", true;
    HighestSeverity => "HIGHEST_SEVERITY", false;
    RemoteAddr => "REMOTE_ADDR", false;
    RemotePort => "REMOTE_PORT", false;
    RemoteHost => "REMOTE_HOST", false;
    ServerName => "SERVER_NAME", false;
    ServerAddr => "SERVER_ADDR", false;
    ServerPort => "SERVER_PORT", false;
    UniqueId => "UNIQUE_ID", false;
    Duration => "DURATION", false;
    Time => "TIME", false;
    TimeDay => "TIME_DAY", false;
    TimeEpoch => "TIME_EPOCH", false;
    TimeHour => "TIME_HOUR", false;
    TimeMin => "TIME_MIN", false;
    TimeMon => "TIME_MON", false;
    TimeSec => "TIME_SEC", false;
    TimeWday => "TIME_WDAY", false;
    TimeYear => "TIME_YEAR", false;
}

impl fmt::Display for Var {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which values of a variable a target selects.
#[derive(Clone)]
pub enum Selector {
    /// Every value.
    All,
    /// Values whose key equals this one, ASCII case-insensitively (stored
    /// lower-cased). For `XML` it is an XPath expression, kept as written.
    Key(String),
    /// Values whose key matches `/regex/` (compiled case-insensitively).
    Regex(Arc<regex::bytes::Regex>),
}

impl fmt::Debug for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::All => f.write_str("All"),
            Selector::Key(k) => write!(f, "Key({k:?})"),
            Selector::Regex(r) => write!(f, "Regex(/{}/)", r.as_str()),
        }
    }
}

impl PartialEq for Selector {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Selector::All, Selector::All) => true,
            (Selector::Key(a), Selector::Key(b)) => a == b,
            (Selector::Regex(a), Selector::Regex(b)) => a.as_str() == b.as_str(),
            _ => false,
        }
    }
}

impl Selector {
    /// Whether a value with `key` is selected.
    pub fn matches_key(&self, key: &[u8]) -> bool {
        match self {
            Selector::All => true,
            Selector::Key(k) => k.as_bytes().eq_ignore_ascii_case(key),
            Selector::Regex(r) => r.is_match(key),
        }
    }
}

/// One element of a rule's target list.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The variable.
    pub var: Var,
    /// Which of its values.
    pub selector: Selector,
    /// `!VAR:key`: removes values from the other targets instead of adding.
    pub exclude: bool,
    /// `&VAR`: the number of selected values instead of the values.
    pub count: bool,
}

/// Longest `/regex/` selector accepted; bounds regex compile time and memory
/// for hostile rule files. Default 4096 bytes.
pub const MAX_SELECTOR_REGEX_LEN: usize = 4096;

/// Parses a target list such as `ARGS|!ARGS:foo|&TX:x|REQUEST_HEADERS:/^x-/|XML:/*`.
/// The error names the offending variable.
pub fn parse_targets(text: &str) -> Result<Vec<Target>, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        while i < bytes.len() && (bytes[i] == b' ' || bytes[i] == b'\t') {
            i += 1;
        }
        if i >= bytes.len() {
            break;
        }
        let mut exclude = false;
        let mut count = false;
        match bytes[i] {
            b'!' => {
                exclude = true;
                i += 1;
            }
            b'&' => {
                count = true;
                i += 1;
            }
            _ => {}
        }
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
            i += 1;
        }
        let name = &text[start..i];
        if name.is_empty() {
            return Err(format!("expected a variable name in {text:?}"));
        }
        let var = Var::from_name(name).ok_or_else(|| format!("unknown variable {name}"))?;
        let mut selector = Selector::All;
        if i < bytes.len() && (bytes[i] == b':' || bytes[i] == b'.') {
            i += 1;
            let (sel, next) = parse_selector(text, i, var)?;
            selector = sel;
            i = next;
        }
        if !var.is_collection() && selector != Selector::All {
            // ModSecurity accepts `REQUEST_URI:x` silently and ignores the key;
            // refusing it would reject working rule sets, so keep the variable whole.
            selector = Selector::All;
        }
        out.push(Target {
            var,
            selector,
            exclude,
            count,
        });
        while i < bytes.len() && (bytes[i] == b' ' || bytes[i] == b'\t') {
            i += 1;
        }
        if i < bytes.len() {
            if bytes[i] != b'|' {
                return Err(format!(
                    "unexpected {:?} after variable {name}",
                    char::from(bytes[i])
                ));
            }
            i += 1;
        }
    }
    if out.is_empty() {
        return Err("empty variable list".into());
    }
    Ok(out)
}

fn parse_selector(text: &str, start: usize, var: Var) -> Result<(Selector, usize), String> {
    let bytes = text.as_bytes();
    let mut i = start;
    if var == Var::Xml {
        // An XPath expression: everything up to the next `|`.
        while i < bytes.len() && bytes[i] != b'|' {
            i += 1;
        }
        return Ok((Selector::Key(text[start..i].trim().to_string()), i));
    }
    match bytes.get(i) {
        Some(b'/') => {
            i += 1;
            let body_start = i;
            while i < bytes.len() && bytes[i] != b'/' {
                if bytes[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            if i >= bytes.len() {
                return Err(format!("unterminated /regex/ selector for {var}"));
            }
            let pattern = &text[body_start..i];
            i += 1;
            Ok((Selector::Regex(compile_selector_regex(pattern, var)?), i))
        }
        Some(b'\'') => {
            i += 1;
            let body_start = i;
            while i < bytes.len() && bytes[i] != b'\'' {
                i += 1;
            }
            if i >= bytes.len() {
                return Err(format!("unterminated quoted selector for {var}"));
            }
            let key = text[body_start..i].to_ascii_lowercase();
            Ok((Selector::Key(key), i + 1))
        }
        _ => {
            while i < bytes.len() && bytes[i] != b'|' {
                i += 1;
            }
            let key = text[start..i].trim().to_ascii_lowercase();
            if key.is_empty() {
                return Err(format!("empty key selector for {var}"));
            }
            Ok((Selector::Key(key), i))
        }
    }
}

/// Compiles a `/regex/` key selector (case-insensitive, as ModSecurity does).
pub fn compile_selector_regex(pattern: &str, var: Var) -> Result<Arc<regex::bytes::Regex>, String> {
    if pattern.len() > MAX_SELECTOR_REGEX_LEN {
        return Err(format!("regex selector for {var} is too long"));
    }
    regex::bytes::RegexBuilder::new(pattern)
        .case_insensitive(true)
        .build()
        .map(Arc::new)
        .map_err(|e| format!("bad regex selector /{pattern}/ for {var}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mixed_list() {
        let t = parse_targets("ARGS|!ARGS:Foo|&TX:x|REQUEST_HEADERS:/^x-|y/|XML:/*").unwrap();
        assert_eq!(t.len(), 5);
        assert_eq!(t[1].selector, Selector::Key("foo".into()));
        assert!(t[1].exclude && t[2].count);
        assert!(t[3].selector.matches_key(b"X-Forwarded"));
        assert!(t[3].selector.matches_key(b"Y"));
        assert_eq!(t[4].selector, Selector::Key("/*".into()));
    }

    #[test]
    fn unknown_variable_is_named() {
        let e = parse_targets("ARGS|NOPE_VAR").unwrap_err();
        assert!(e.contains("NOPE_VAR"), "{e}");
    }
}

pub(crate) mod data;
pub use data::severity_name;
