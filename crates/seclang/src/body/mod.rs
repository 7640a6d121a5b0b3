//! Request body processors: URLENCODED, MULTIPART, JSON, XML.
//!
//! Each turns a buffered body into the variables rules inspect (ARGS_POST,
//! FILES, MULTIPART_*, XML) with bounded memory, and reports malformed input
//! as data (REQBODY_ERROR / MULTIPART_STRICT_ERROR flags), never as a panic.
//!
//! Everything here is a pure function of its inputs: no I/O, no clock, no
//! global state. Time is linear in the body size and the memory of the result
//! is bounded by a small multiple of the body size (see [`BodyLimits`]).
//!
//! # Using it from the engine
//!
//! ```
//! use seclang::body::{self, BodyLimits, Processor};
//!
//! let limits = BodyLimits::default();
//!
//! // Phase 1: pick the processor from Content-Type (ModSecurity only
//! // auto-selects URLENCODED and MULTIPART; JSON and XML come from
//! // `ctl:requestBodyProcessor=JSON|XML`, which the engine applies on top).
//! let ct = b"multipart/form-data; boundary=XyZ";
//! let processor = body::processor_for_content_type(ct);
//! assert_eq!(processor, Some(Processor::Multipart));
//!
//! // Phase 2: run it on the buffered body.
//! let raw = b"--XyZ\r\nContent-Disposition: form-data; name=\"q\"\r\n\r\n1 OR 1=1\r\n--XyZ--\r\n";
//! let out = body::process(Processor::Multipart, ct, raw, &limits);
//! assert_eq!(out.args, vec![(b"q".to_vec(), b"1 OR 1=1".to_vec())]); // ARGS_POST
//! assert!(out.error.is_none()); // REQBODY_ERROR = 0
//! let mp = out.multipart.as_ref().unwrap();
//! assert!(!mp.strict_error(out.error.is_some())); // MULTIPART_STRICT_ERROR = 0
//!
//! // The query string (ARGS_GET) uses the same decoder as URLENCODED bodies.
//! let get = body::urlencoded::parse(b"id=1&name=a+b%21", b'&', limits.max_args);
//! assert_eq!(get.args[1], (b"name".to_vec(), b"a b!".to_vec()));
//! ```
//!
//! How the engine maps a [`BodyOutcome`] to variables:
//!
//! | variable                         | source                                                   |
//! |----------------------------------|----------------------------------------------------------|
//! | REQBODY_PROCESSOR                | [`Processor::name`]                                      |
//! | ARGS_POST, ARGS (body part)      | [`BodyOutcome::args`] (order kept, duplicates kept)      |
//! | REQBODY_ERROR, REQBODY_PROCESSOR_ERROR | `error.is_some()` as `1`/`0`                       |
//! | REQBODY_ERROR_MSG, REQBODY_PROCESSOR_ERROR_MSG | [`BodyError::message`]                     |
//! | URLENCODED_ERROR                 | [`BodyOutcome::urlencoded_error`]                        |
//! | FILES (name → filename), FILES_NAMES, FILES_SIZES (name → size), FILES_TMP_CONTENT (name → content) | [`MultipartInfo::files`] |
//! | FILES_COMBINED_SIZE              | [`MultipartInfo::files_combined_size`]                   |
//! | MULTIPART_PART_HEADERS           | [`MultipartInfo::part_header_lines`] (key = part name)   |
//! | MULTIPART_NAME, MULTIPART_FILENAME | [`MultipartInfo::names`], [`MultipartInfo::filenames`] |
//! | MULTIPART_BOUNDARY_QUOTED, …, MULTIPART_UNMATCHED_BOUNDARY, MULTIPART_CRLF_LF_LINES, MULTIPART_STRICT_ERROR | [`MultipartInfo::flag_variables`] (all 14 by name, ModSecurity's values) |
//! | `XML:/*`                         | [`XmlDoc::root_text`] (ModSecurity: one value) or [`XmlDoc::texts`] (Coraza: one per text node) |
//! | `XML://@*`                       | [`XmlDoc::attributes`] values                            |
//!
//! Only the `/*` and `//@*` XPath targets (the ones CRS uses) are served;
//! other XPath expressions have no document tree to run on and should be
//! refused when rules are loaded. `SecRequestBodyNoFilesLimit` for
//! multipart compares [`MultipartInfo::no_files_length`].
//!
//! JSON arguments: Coraza puts them in ARGS_POST (and so ARGS); ModSecurity
//! v3 adds them to ARGS only. Putting them in both is what CRS expects from
//! either engine (its rules read ARGS).
//!
//! The arguments limit (`SecArgumentsLimit`) counts ARGS_GET and ARGS_POST
//! together in ModSecurity: pass the capacity still free (limit minus the
//! arguments already collected) as [`BodyLimits::max_args`].

pub mod json;
pub mod multipart;
pub mod urlencoded;
pub mod xml;

pub use multipart::{FilePart, MultipartFlags, MultipartInfo, PartHeaders};
pub use xml::XmlDoc;

/// Default for [`BodyLimits::max_args`]: 1000 arguments, the value
/// ModSecurity's recommended configuration uses for `SecArgumentsLimit`.
/// Bounds the number of (name, value) pairs one request can make every
/// ARGS rule iterate over.
pub const DEFAULT_MAX_ARGS: usize = 1000;

/// Default for [`BodyLimits::json_depth`]: 10000 nested containers, as
/// ModSecurity's compiled-in `SecRequestBodyJsonDepthLimit` default (its
/// recommended configuration sets 512). Bounds the parser's
/// explicit stack (never the thread stack) and the length of argument names
/// built from nested keys.
pub const DEFAULT_JSON_DEPTH: usize = 10_000;

/// Default for [`BodyLimits::xml_depth`]: 256 nested elements, libxml2's
/// default maximum depth (what ModSecurity runs with). Bounds the open-element
/// stack against `<a><a><a>…` bombs.
pub const DEFAULT_XML_DEPTH: usize = 256;

/// Default for [`BodyLimits::max_files`]: 100 file parts, as ModSecurity's
/// `SecUploadFileLimit`. Bounds the number of files whose content is kept for
/// FILES_TMP_CONTENT; further files are still listed in FILES.
pub const DEFAULT_MAX_FILES: usize = 100;

/// Default for [`BodyLimits::max_file_content`]: the first 64 KiB of each
/// uploaded file are kept (FILES_TMP_CONTENT). Bounds the memory a
/// transaction holds for uploads; sizes are always counted in full.
pub const DEFAULT_MAX_FILE_CONTENT: usize = 64 * 1024;

/// Limits applied by the body processors. Every field has a `DEFAULT_*`
/// constant; `BodyLimits::default()` uses them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimits {
    /// Maximum number of arguments one call may produce (`SecArgumentsLimit`
    /// minus the arguments already collected). Extra arguments are dropped
    /// and [`BodyOutcome::args_limit_exceeded`] is set; for JSON, as in
    /// ModSecurity, parsing also stops with a body error.
    pub max_args: usize,
    /// Maximum JSON container nesting (`SecRequestBodyJsonDepthLimit`).
    pub json_depth: usize,
    /// Maximum XML element nesting.
    pub xml_depth: usize,
    /// Maximum number of multipart file parts whose content is kept
    /// (`SecUploadFileLimit`, 0 = unlimited); one more sets
    /// MULTIPART_FILE_LIMIT_EXCEEDED and a body error.
    pub max_files: usize,
    /// Bytes of each uploaded file's content kept in [`FilePart::content`]
    /// (0 keeps none).
    pub max_file_content: usize,
}

impl Default for BodyLimits {
    fn default() -> Self {
        Self {
            max_args: DEFAULT_MAX_ARGS,
            json_depth: DEFAULT_JSON_DEPTH,
            xml_depth: DEFAULT_XML_DEPTH,
            max_files: DEFAULT_MAX_FILES,
            max_file_content: DEFAULT_MAX_FILE_CONTENT,
        }
    }
}

/// A request body processor, as named by REQBODY_PROCESSOR and
/// `ctl:requestBodyProcessor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Processor {
    /// `application/x-www-form-urlencoded`.
    Urlencoded,
    /// `multipart/form-data`.
    Multipart,
    /// JSON (selected by `ctl:requestBodyProcessor=JSON`).
    Json,
    /// XML (selected by `ctl:requestBodyProcessor=XML`).
    Xml,
}

impl Processor {
    /// The REQBODY_PROCESSOR value: `URLENCODED`, `MULTIPART`, `JSON`, `XML`.
    pub fn name(self) -> &'static str {
        match self {
            Processor::Urlencoded => "URLENCODED",
            Processor::Multipart => "MULTIPART",
            Processor::Json => "JSON",
            Processor::Xml => "XML",
        }
    }

    /// Parses a `ctl:requestBodyProcessor=` value (case-insensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Processor::Urlencoded,
            Processor::Multipart,
            Processor::Json,
            Processor::Xml,
        ]
        .into_iter()
        .find(|p| p.name().eq_ignore_ascii_case(name))
    }
}

/// The processor ModSecurity selects from a Content-Type header value: a
/// case-insensitive prefix match on `multipart/form-data` or
/// `application/x-www-form-urlencoded`. `None` for everything else (JSON and
/// XML are selected by rules through `ctl:requestBodyProcessor`).
pub fn processor_for_content_type(content_type: &[u8]) -> Option<Processor> {
    fn starts_with_ci(h: &[u8], p: &[u8]) -> bool {
        h.len() >= p.len() && h[..p.len()].eq_ignore_ascii_case(p)
    }
    if starts_with_ci(content_type, b"multipart/form-data") {
        Some(Processor::Multipart)
    } else if starts_with_ci(content_type, b"application/x-www-form-urlencoded") {
        Some(Processor::Urlencoded)
    } else {
        None
    }
}

/// A fatal body problem: REQBODY_ERROR = 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyError {
    /// The processor that failed.
    pub processor: Processor,
    /// REQBODY_ERROR_MSG verbatim, in ModSecurity's words, e.g.
    /// `Multipart parsing error: Multipart: Final boundary missing.` or
    /// `JSON parsing error: parse error: premature EOF`.
    pub message: String,
}

/// Everything a body processor extracted. Arguments found before an error
/// are kept, so rules still inspect a best-effort view of a broken body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BodyOutcome {
    /// ARGS_POST as (name, value), in body order, duplicates kept.
    pub args: Vec<(Vec<u8>, Vec<u8>)>,
    /// More arguments than [`BodyLimits::max_args`] were present; the extra
    /// ones are not in `args`.
    pub args_limit_exceeded: bool,
    /// URLENCODED_ERROR: an invalid `%` escape was seen (URLENCODED only).
    pub urlencoded_error: bool,
    /// Multipart details (MULTIPART processor only).
    pub multipart: Option<MultipartInfo>,
    /// The parsed document (XML processor only, `None` when malformed).
    pub xml: Option<XmlDoc>,
    /// REQBODY_ERROR / REQBODY_ERROR_MSG.
    pub error: Option<BodyError>,
}

/// Runs `processor` over a complete request body. `content_type` is the raw
/// Content-Type header value (only MULTIPART reads it, for the boundary).
pub fn process(
    processor: Processor,
    content_type: &[u8],
    body: &[u8],
    limits: &BodyLimits,
) -> BodyOutcome {
    match processor {
        Processor::Urlencoded => {
            let u = urlencoded::parse(body, b'&', limits.max_args);
            BodyOutcome {
                args: u.args,
                args_limit_exceeded: u.limit_exceeded,
                urlencoded_error: u.invalid_encoding,
                ..BodyOutcome::default()
            }
        }
        Processor::Multipart => {
            let m = multipart::parse(content_type, body, limits);
            BodyOutcome {
                args: m.args,
                args_limit_exceeded: m.args_limit_exceeded,
                error: m.error.map(|e| BodyError {
                    processor,
                    message: format!("Multipart parsing error: {e}"),
                }),
                multipart: Some(m.info),
                ..BodyOutcome::default()
            }
        }
        Processor::Json => {
            let j = json::parse(body, limits);
            BodyOutcome {
                args: j.args,
                args_limit_exceeded: j.args_limit_exceeded,
                error: j.error.map(|e| BodyError {
                    processor,
                    message: format!("JSON parsing error: {e}"),
                }),
                ..BodyOutcome::default()
            }
        }
        Processor::Xml => match xml::parse(body, limits) {
            Ok(doc) => BodyOutcome {
                xml: Some(doc),
                ..BodyOutcome::default()
            },
            Err(e) => BodyOutcome {
                error: Some(BodyError {
                    processor,
                    message: format!("XML parsing error: {e}"),
                }),
                ..BodyOutcome::default()
            },
        },
    }
}
