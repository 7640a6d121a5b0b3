//! `multipart/form-data` bodies with ModSecurity v3's strictness checks.
//!
//! The parser follows ModSecurity's line machine so that the MULTIPART_*
//! flags and REQBODY_ERROR come out the same for the same bytes: the body is
//! cut into "lines" at `\n` or after [`LINE_BUF`] bytes; a line starting with
//! `--` + boundary at a line start is a delimiter, anything else is part
//! header or part data depending on the state. The CRLF (or LF) that ends a
//! data line is held back and only becomes data when another data line
//! follows, so the delimiter's line break never ends up in a value.
//!
//! Like ModSecurity, most errors are recorded and parsing goes on (so rules
//! still see the arguments); delimiter errors stop it.
//!
//! Deviations from ModSecurity, all towards detection:
//! - a multi-line form value keeps its inner line breaks (ModSecurity v3
//!   drops them, turning `1\nOR\n1=1` into `1OR1=1`);
//! - an empty boundary (`boundary=""`, `boundary=`) is an error (ModSecurity
//!   silently skips the body);
//! - the file limit applies whether or not files are saved to disk;
//! - the first error is reported, not the last (ModSecurity's last one is
//!   mostly "Final boundary missing.", hiding the cause);
//! - [`MultipartInfo::strict_error`] also includes errors ModSecurity only
//!   reports through REQBODY_ERROR (bad part headers, missing final boundary).

use std::collections::HashMap;

use memchr::memmem;

use super::BodyLimits;

/// ModSecurity's `MULTIPART_BUF_SIZE`: a body "line" is cut after this many
/// bytes. Part header lines (and folded header values) longer than this are
/// an error; this bounds per-header memory against endless header lines.
pub const LINE_BUF: usize = 4096;

/// ModSecurity's limit on the Content-Type header value: longer is an error
/// ("Invalid boundary in C-T (length)"). Bounds the boundary length, hence the
/// cost of every delimiter comparison.
pub const MAX_CONTENT_TYPE_LEN: usize = 1024;

/// The strictness flags, one per MULTIPART_* variable (`true` = `1`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MultipartFlags {
    /// MULTIPART_BOUNDARY_QUOTED: `boundary="…"` in Content-Type.
    pub boundary_quoted: bool,
    /// MULTIPART_BOUNDARY_WHITESPACE: whitespace around `=` of the boundary
    /// parameter.
    pub boundary_whitespace: bool,
    /// MULTIPART_DATA_BEFORE: bytes before the first delimiter.
    pub data_before: bool,
    /// MULTIPART_DATA_AFTER: bytes after the final delimiter.
    pub data_after: bool,
    /// MULTIPART_HEADER_FOLDING: a part header continued on the next line.
    pub header_folding: bool,
    /// MULTIPART_LF_LINE: a line ended with a bare LF.
    pub lf_line: bool,
    /// A line ended with CRLF (with `lf_line`, gives MULTIPART_CRLF_LF_LINES).
    pub crlf_line: bool,
    /// MULTIPART_MISSING_SEMICOLON: no `;` before the boundary parameter.
    pub missing_semicolon: bool,
    /// MULTIPART_INVALID_QUOTING: single quotes in Content-Disposition.
    pub invalid_quoting: bool,
    /// MULTIPART_INVALID_PART: a part without name, or a delimiter where
    /// part data should start.
    pub invalid_part: bool,
    /// MULTIPART_INVALID_HEADER_FOLDING: folding with other whitespace than
    /// SP / HTAB.
    pub invalid_header_folding: bool,
    /// MULTIPART_FILE_LIMIT_EXCEEDED: more file parts than
    /// [`BodyLimits::max_files`].
    pub file_limit_exceeded: bool,
    /// A line looked like a delimiter but did not match the boundary
    /// (ModSecurity's MULTIPART_UNMATCHED_BOUNDARY = 1 case; see
    /// [`MultipartInfo::unmatched_boundary_value`] for its exact value).
    pub unmatched_boundary: bool,
}

impl MultipartFlags {
    /// MULTIPART_CRLF_LF_LINES: both CRLF and bare-LF line endings were seen.
    pub fn crlf_lf_lines(&self) -> bool {
        self.crlf_line && self.lf_line
    }
}

/// One uploaded file (a part with a non-empty `filename`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilePart {
    /// The part's `name` (FILES_NAMES, key of FILES / FILES_SIZES).
    pub name: Vec<u8>,
    /// The part's `filename` (FILES value).
    pub filename: Vec<u8>,
    /// Full content size in bytes (FILES_SIZES).
    pub size: u64,
    /// The first [`BodyLimits::max_file_content`] bytes (FILES_TMP_CONTENT).
    pub content: Vec<u8>,
    /// `content` holds less than `size` bytes.
    pub content_truncated: bool,
}

/// The header lines of one part (`MULTIPART_PART_HEADERS:<name>`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartHeaders {
    /// The part's `name` (empty for a part without one).
    pub name: Vec<u8>,
    /// Raw header lines without line ending; a folded header is one line,
    /// joined with a space.
    pub lines: Vec<Vec<u8>>,
}

/// Multipart-specific results.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MultipartInfo {
    /// The boundary from Content-Type (empty when it could not be found).
    pub boundary: Vec<u8>,
    /// Uploaded files, in body order.
    pub files: Vec<FilePart>,
    /// FILES_COMBINED_SIZE: sum of all file sizes.
    pub files_combined_size: u64,
    /// MULTIPART_PART_HEADERS, grouped by part (the name is stored once
    /// per part, not once per line, so many header lines under a long name
    /// cannot multiply memory). See [`MultipartInfo::part_header_lines`].
    pub part_headers: Vec<PartHeaders>,
    /// MULTIPART_NAME: every `name=` value seen in Content-Disposition.
    pub names: Vec<Vec<u8>>,
    /// MULTIPART_FILENAME: every `filename=` value seen.
    pub filenames: Vec<Vec<u8>>,
    /// Body bytes excluding file contents (for `SecRequestBodyNoFilesLimit`).
    pub no_files_length: u64,
    /// The strictness flags.
    pub flags: MultipartFlags,
    /// MULTIPART_UNMATCHED_BOUNDARY exactly as ModSecurity v3 sets it: 1 when
    /// a delimiter-like line did not match, overwritten by 2 whenever a
    /// delimiter matches after the first (so a well-formed body with a part
    /// reports 2; CRS tests `@eq 1`).
    pub unmatched_boundary_value: u8,
}

impl MultipartInfo {
    /// MULTIPART_PART_HEADERS as (part name, header line) pairs, in body
    /// order.
    pub fn part_header_lines(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.part_headers
            .iter()
            .flat_map(|p| p.lines.iter().map(move |l| (&p.name[..], &l[..])))
    }

    /// Every single-valued MULTIPART_* variable with its value as
    /// ModSecurity sets it, by variable name (upper case), e.g.
    /// `("MULTIPART_LF_LINE", 1)`. `reqbody_error` is whether the processor
    /// reported an error (for MULTIPART_STRICT_ERROR).
    pub fn flag_variables(&self, reqbody_error: bool) -> [(&'static str, u8); 14] {
        let f = &self.flags;
        [
            ("MULTIPART_BOUNDARY_QUOTED", f.boundary_quoted.into()),
            (
                "MULTIPART_BOUNDARY_WHITESPACE",
                f.boundary_whitespace.into(),
            ),
            ("MULTIPART_DATA_BEFORE", f.data_before.into()),
            ("MULTIPART_DATA_AFTER", f.data_after.into()),
            ("MULTIPART_HEADER_FOLDING", f.header_folding.into()),
            ("MULTIPART_LF_LINE", f.lf_line.into()),
            ("MULTIPART_MISSING_SEMICOLON", f.missing_semicolon.into()),
            ("MULTIPART_INVALID_QUOTING", f.invalid_quoting.into()),
            ("MULTIPART_INVALID_PART", f.invalid_part.into()),
            (
                "MULTIPART_INVALID_HEADER_FOLDING",
                f.invalid_header_folding.into(),
            ),
            (
                "MULTIPART_FILE_LIMIT_EXCEEDED",
                f.file_limit_exceeded.into(),
            ),
            (
                "MULTIPART_UNMATCHED_BOUNDARY",
                self.unmatched_boundary_value,
            ),
            ("MULTIPART_CRLF_LF_LINES", f.crlf_lf_lines().into()),
            (
                "MULTIPART_STRICT_ERROR",
                self.strict_error(reqbody_error).into(),
            ),
        ]
    }

    /// MULTIPART_STRICT_ERROR: any strictness flag (except the unmatched
    /// boundary and CRLF/LF mix, which ModSecurity leaves out) or a body
    /// error. Pass `reqbody_error` = whether the processor reported an error.
    pub fn strict_error(&self, reqbody_error: bool) -> bool {
        let f = &self.flags;
        reqbody_error
            || f.boundary_quoted
            || f.boundary_whitespace
            || f.data_before
            || f.data_after
            || f.header_folding
            || f.lf_line
            || f.missing_semicolon
            || f.invalid_quoting
            || f.invalid_part
            || f.invalid_header_folding
            || f.file_limit_exceeded
    }
}

/// What [`parse`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Multipart {
    /// Form fields (parts without filename) as ARGS_POST.
    pub args: Vec<(Vec<u8>, Vec<u8>)>,
    /// Form fields beyond [`BodyLimits::max_args`] were dropped.
    pub args_limit_exceeded: bool,
    /// Everything else.
    pub info: MultipartInfo,
    /// The fatal problem, in ModSecurity's words (e.g.
    /// `Multipart: Final boundary missing.`), without the
    /// `Multipart parsing error: ` prefix.
    pub error: Option<String>,
}

/// Parses a multipart body. `content_type` is the raw Content-Type value.
pub fn parse(content_type: &[u8], body: &[u8], limits: &BodyLimits) -> Multipart {
    let mut p = Parser {
        limits,
        out: Multipart::default(),
        boundary: Vec::new(),
        part: None,
        in_data: false,
        data_read: false,
        boundary_count: 0,
        complete: false,
        reserve: Vec::new(),
        prev_line_bare_lf: false,
        nfiles: 0,
        delimiter: Vec::new(),
    };
    match parse_content_type(content_type, &mut p.out.info.flags) {
        Ok(b) => {
            p.delimiter = [&b"--"[..], &b].concat();
            p.boundary = b;
            p.out.info.boundary = p.boundary.clone();
            p.run(body);
        }
        Err(e) => p.out.error = Some(e.to_owned()),
    }
    p.out
}

#[derive(Debug, Default)]
struct Part {
    name: Vec<u8>,
    filename: Vec<u8>,
    is_file: bool,
    /// (name, value) of the part headers.
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// Lower-cased header name → index in `headers`: duplicate checks stay
    /// O(1) however many headers a part has.
    header_index: HashMap<Vec<u8>, usize>,
    last_header: Option<usize>,
    last_header_line: Vec<u8>,
    /// The last header was folded: its MULTIPART_PART_HEADERS line is
    /// rebuilt from name and value once, when the header ends (rebuilding
    /// it at every continuation line would be quadratic).
    last_folded: bool,
    header_lines: Vec<Vec<u8>>,
    value: Vec<u8>,
    size: u64,
    content_truncated: bool,
    keep_content: bool,
    counted: bool,
}

impl Part {
    /// Records the last complete header line in `header_lines`.
    fn flush_last_line(&mut self) {
        if std::mem::take(&mut self.last_folded) {
            if let Some((name, value)) = self.last_header.and_then(|i| self.headers.get(i)) {
                let mut line = Vec::with_capacity(name.len() + 2 + value.len());
                line.extend_from_slice(name);
                line.extend_from_slice(b": ");
                line.extend_from_slice(value);
                self.header_lines.push(line);
                self.last_header_line.clear();
                return;
            }
        }
        if !self.last_header_line.is_empty() {
            self.header_lines
                .push(std::mem::take(&mut self.last_header_line));
        }
    }
}

#[derive(Debug)]
struct Parser<'a> {
    limits: &'a BodyLimits,
    out: Multipart,
    boundary: Vec<u8>,
    part: Option<Part>,
    /// Headers done, reading part data.
    in_data: bool,
    /// At least one data line seen for the current part.
    data_read: bool,
    boundary_count: usize,
    complete: bool,
    /// The held-back line ending of the previous data line.
    reserve: Vec<u8>,
    /// The last LF-terminated line ended with a bare LF (a delimiter after
    /// it means LF line endings even if the delimiter line has CRLF).
    prev_line_bare_lf: bool,
    nfiles: usize,
    /// `--` + boundary.
    delimiter: Vec<u8>,
}

/// A body slice cut by the line machine.
struct Line<'b> {
    bytes: &'b [u8],
    /// Cut at `\n` (otherwise the buffer filled up).
    ends_with_lf: bool,
}

impl Parser<'_> {
    /// Records a fatal problem. The first one is kept: ModSecurity keeps
    /// the last, which usually hides the cause behind "Final boundary
    /// missing."
    fn set_error(&mut self, msg: impl Into<String>) {
        if self.out.error.is_none() {
            self.out.error = Some(msg.into());
        }
    }

    fn run(&mut self, body: &[u8]) {
        let mut pos = 0;
        // Whether the current slice starts at the beginning of a line.
        let mut at_line_start = true;
        let mut stopped = false;
        let mut leftover: &[u8] = &[];
        while pos < body.len() {
            let window = &body[pos..body.len().min(pos + LINE_BUF)];
            let line = match memchr::memchr(b'\n', window) {
                Some(i) => Line {
                    bytes: &window[..=i],
                    ends_with_lf: true,
                },
                None if window.len() < LINE_BUF => {
                    // An unterminated last line: ModSecurity keeps it in its
                    // buffer for the final-boundary check.
                    leftover = window;
                    break;
                }
                None => {
                    // A full buffer; a CR is never its last byte so that a
                    // CRLF is not split.
                    let n = if window[LINE_BUF - 1] == b'\r' {
                        LINE_BUF - 1
                    } else {
                        LINE_BUF
                    };
                    Line {
                        bytes: &window[..n],
                        ends_with_lf: false,
                    }
                }
            };
            if !self.process_line(&line, at_line_start) {
                stopped = true;
                break;
            }
            pos += line.bytes.len();
            at_line_start = line.ends_with_lf;
            if line.ends_with_lf {
                let b = line.bytes;
                self.prev_line_bare_lf = !(b.len() >= 2 && b[b.len() - 2] == b'\r');
            }
            if self.complete && pos < body.len() {
                self.out.info.flags.data_after = true;
                break;
            }
        }
        self.finish(
            body.is_empty(),
            if stopped {
                None
            } else {
                Some((leftover, at_line_start))
            },
        );
    }

    /// Handles one line; `false` stops parsing (a delimiter error).
    fn process_line(&mut self, line: &Line<'_>, at_line_start: bool) -> bool {
        let buf = line.bytes;
        let blen = self.boundary.len();
        let mut is_delimiter = false;
        if at_line_start && buf.len() > 3 && buf.starts_with(b"--") {
            if buf.len() >= blen + 2 && buf[2..2 + blen] == self.boundary[..] {
                if self.prev_line_bare_lf {
                    self.out.info.flags.lf_line = true;
                }
                if !self.data_read && self.boundary_count > 0 {
                    // A delimiter where part data should start: treated as
                    // data, the part is suspect.
                    self.out.info.flags.invalid_part = true;
                } else {
                    if self.boundary_count > 0 {
                        self.out.info.unmatched_boundary_value = 2;
                    }
                    let mut rest = &buf[2 + blen..];
                    let is_final = rest.starts_with(b"--");
                    if is_final {
                        rest = &rest[2..];
                    }
                    match rest {
                        b"\r\n" => self.out.info.flags.crlf_line = true,
                        b"\n" => self.out.info.flags.lf_line = true,
                        _ => {
                            self.set_error(format!(
                                "Multipart: Invalid boundary: {}",
                                String::from_utf8_lossy(buf)
                            ));
                            return false;
                        }
                    }
                    self.process_boundary(is_final);
                    if is_final {
                        self.complete = true;
                    }
                    self.boundary_count += 1;
                    is_delimiter = true;
                }
            } else {
                // Looks like a delimiter but is not ours.
                if self.out.info.flags.boundary_quoted
                    && buf.len() > blen + 2
                    && buf[2] == b'"'
                    && buf[3..].starts_with(&self.boundary)
                {
                    self.set_error("Multipart: Invalid boundary (quotes).");
                    return false;
                }
                let ws = buf[2..].iter().take_while(|c| is_c_space(**c)).count();
                if ws > 0 && buf[2 + ws..].starts_with(&self.boundary) {
                    self.set_error("Multipart: Invalid boundary (whitespace).");
                    return false;
                }
                self.set_unmatched();
            }
        } else if at_line_start && memmem::find(buf, &self.delimiter).is_some() {
            self.set_unmatched();
        }

        if !is_delimiter {
            if self.part.is_none() {
                self.out.info.flags.data_before = true;
            } else if !self.in_data {
                // ModSecurity refuses a header line that fills the whole
                // buffer, even when its last byte is the LF.
                if !line.ends_with_lf || buf.len() >= LINE_BUF {
                    self.set_error(format!(
                        "Multipart: Part header line over {LINE_BUF} bytes long"
                    ));
                    return false;
                }
                self.process_header_line(buf);
            } else {
                self.process_data_line(buf);
            }
        }
        true
    }

    fn set_unmatched(&mut self) {
        self.out.info.flags.unmatched_boundary = true;
        self.out.info.unmatched_boundary_value = 1;
    }

    fn process_header_line(&mut self, buf: &[u8]) {
        if buf.contains(&0) {
            self.set_error("Multipart: Nul byte in part headers.");
            return;
        }
        self.out.info.no_files_length += buf.len() as u64;
        let flags = &mut self.out.info.flags;
        let content = if buf.len() > 1 && buf[buf.len() - 2] == b'\r' {
            flags.crlf_line = true;
            &buf[..buf.len() - 2]
        } else {
            flags.lf_line = true;
            &buf[..buf.len() - 1]
        };
        let Some(part) = self.part.as_mut() else {
            return;
        };
        if content.is_empty() {
            // End of the part headers.
            part.flush_last_line();
            let msg = self.end_of_headers();
            if let Err(msg) = msg {
                self.set_error(msg);
            }
            return;
        }
        if is_c_space(content[0]) {
            // A folded continuation of the previous header.
            flags.header_folding = true;
            let ws = content.iter().take_while(|c| is_c_space(**c)).count();
            // An all-blank continuation: ModSecurity's scan runs into the
            // line ending, which is not SP / HTAB.
            if ws == content.len() || content[..ws].iter().any(|&c| c != b' ' && c != b'\t') {
                flags.invalid_header_folding = true;
            }
            let Some(idx) = part.last_header else {
                self.set_error("Multipart: Invalid part header (folding error).");
                return;
            };
            let more = chomp(&content[ws..]);
            let value = &mut part.headers[idx].1;
            // Refused before growing, so the value stays bounded however
            // many continuation lines follow.
            if value.len() + 1 + more.len() > LINE_BUF {
                self.set_error("Multipart: Part header too long.");
                return;
            }
            value.push(b' ');
            value.extend_from_slice(more);
            part.last_folded = true;
            return;
        }
        part.flush_last_line();
        let Some(colon) = memchr::memchr(b':', content) else {
            let msg = format!(
                "Multipart: Invalid part header (colon missing): {}",
                String::from_utf8_lossy(buf)
            );
            self.set_error(msg);
            return;
        };
        let name = &content[..colon];
        if name.is_empty() {
            self.set_error("Multipart: Invalid part header (header name missing).");
            return;
        }
        if name.iter().any(|&c| !(33..=126).contains(&c)) {
            self.set_error("Multipart: Invalid part header (contains invalid character).");
            return;
        }
        let value = &content[colon + 1..];
        let ws = value
            .iter()
            .take_while(|&&c| c == b' ' || c == b'\t')
            .count();
        let value = chomp(&value[ws..]);
        let key = name.to_ascii_lowercase();
        if part.header_index.contains_key(&key) {
            // ModSecurity ignores a duplicate header without an error.
            return;
        }
        part.header_index.insert(key, part.headers.len());
        part.headers.push((name.to_vec(), value.to_vec()));
        part.last_header = Some(part.headers.len() - 1);
        part.last_header_line = content.to_vec();
    }

    /// The blank line after the part headers: validates Content-Disposition.
    fn end_of_headers(&mut self) -> Result<(), String> {
        let Some(part) = self.part.as_mut() else {
            return Ok(());
        };
        let Some(cd) = part
            .header_index
            .get(&b"content-disposition"[..])
            .and_then(|&i| part.headers.get(i))
            .map(|(_, v)| v.clone())
        else {
            return Err("Multipart: Part missing Content-Disposition header.".into());
        };
        let info = &mut self.out.info;
        if let Err(rc) = parse_content_disposition(&cd, part, info) {
            return Err(format!(
                "Multipart: Invalid Content-Disposition header ({rc}): {}",
                String::from_utf8_lossy(&cd)
            ));
        }
        if part.name.is_empty() {
            return Err("Multipart: Content-Disposition header missing name field.".into());
        }
        if !part.filename.is_empty() {
            // Crude parsers that do not understand the header as we do would
            // miss the file: refuse the ambiguity.
            if memmem::find(&cd, b"filename=").is_none() {
                return Err("Multipart: Invalid Content-Disposition header (filename).".into());
            }
            part.is_file = true;
        }
        self.in_data = true;
        self.data_read = false;
        part.last_header = None;
        Ok(())
    }

    fn process_data_line(&mut self, buf: &[u8]) {
        self.data_read = true;
        let (data, held) = if buf.ends_with(b"\r\n") {
            buf.split_at(buf.len() - 2)
        } else if buf.ends_with(b"\n") {
            buf.split_at(buf.len() - 1)
        } else {
            (buf, &[][..])
        };
        let reserve = std::mem::take(&mut self.reserve);
        let limits = self.limits;
        let Some(part) = self.part.as_mut() else {
            return;
        };
        let n = (reserve.len() + data.len()) as u64;
        if part.is_file {
            if !part.counted {
                part.counted = true;
                if limits.max_files != 0 && self.nfiles >= limits.max_files {
                    if !self.out.info.flags.file_limit_exceeded {
                        self.out.info.flags.file_limit_exceeded = true;
                        self.out.error.get_or_insert(format!(
                            "Multipart: Upload file limit exceeded {}. \
                             Use SecUploadFileLimit to change the limit.",
                            limits.max_files
                        ));
                    }
                } else {
                    self.nfiles += 1;
                    part.keep_content = true;
                }
            }
            part.size += n;
            if part.keep_content {
                for chunk in [&reserve[..], data] {
                    let room = limits.max_file_content.saturating_sub(part.value.len());
                    let take = room.min(chunk.len());
                    part.value.extend_from_slice(&chunk[..take]);
                    if take < chunk.len() {
                        part.content_truncated = true;
                    }
                }
            } else if n > 0 {
                part.content_truncated = true;
            }
        } else {
            self.out.info.no_files_length += n;
            part.value.extend_from_slice(&reserve);
            part.value.extend_from_slice(data);
        }
        self.reserve = held.to_vec();
    }

    /// A delimiter: finish the current part, start the next one.
    fn process_boundary(&mut self, last: bool) {
        if let Some(part) = self.part.take() {
            if !part.header_lines.is_empty() {
                self.out.info.part_headers.push(PartHeaders {
                    name: part.name.clone(),
                    lines: part.header_lines,
                });
            }
            if part.name.is_empty() {
                self.out.info.flags.invalid_part = true;
            } else if part.is_file {
                self.out.info.files_combined_size += part.size;
                self.out.info.files.push(FilePart {
                    name: part.name,
                    filename: part.filename,
                    size: part.size,
                    content: part.value,
                    content_truncated: part.content_truncated,
                });
            } else if self.out.args.len() >= self.limits.max_args {
                self.out.args_limit_exceeded = true;
            } else {
                self.out.args.push((part.name, part.value));
            }
        }
        if !last {
            self.part = Some(Part::default());
            self.in_data = false;
            self.data_read = false;
            self.reserve.clear();
        }
    }

    /// End of body: the final-delimiter-without-line-break case and the
    /// "missing final boundary" / "no boundaries" errors.
    fn finish(&mut self, empty: bool, leftover: Option<(&[u8], bool)>) {
        if empty || self.complete {
            return;
        }
        if self.boundary_count == 0 {
            self.set_error("Multipart: No boundaries found in payload.");
            return;
        }
        if let Some((buf, at_line_start)) = leftover {
            let blen = self.boundary.len();
            if at_line_start
                && buf.len() == blen + 4
                && buf.starts_with(b"--")
                && buf[2..2 + blen] == self.boundary[..]
                && buf.ends_with(b"--")
            {
                if self.prev_line_bare_lf {
                    self.out.info.flags.lf_line = true;
                }
                if !self.data_read {
                    self.out.info.flags.invalid_part = true;
                }
                self.process_boundary(true);
                self.complete = true;
                return;
            }
        }
        self.set_error("Multipart: Final boundary missing.");
    }
}

/// C `isspace`: SP, HT, LF, VT, FF, CR.
fn is_c_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Strips trailing CR/LF bytes.
fn chomp(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., b'\r' | b'\n'] = s {
        s = rest;
    }
    s
}

fn find_ci(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}

/// ModSecurity's count of `boundary` words followed (anywhere later) by `=`.
fn count_boundary_params(s: &[u8]) -> usize {
    let mut count = 0;
    let mut from = 0;
    while let Some(i) = find_ci(&s[from..], b"boundary") {
        from += i + 8;
        if s[from..].contains(&b'=') {
            count += 1;
        }
    }
    count
}

/// RFC 2046 boundary characters (space allowed, but not last).
fn boundary_chars_valid(b: &[u8]) -> bool {
    b.iter().enumerate().all(|(i, &c)| {
        c.is_ascii_alphanumeric() || (c == b' ' && i + 1 < b.len()) || b"'()+_,-./:=?".contains(&c)
    })
}

/// Extracts the boundary from Content-Type, setting the C-T flags.
fn parse_content_type(ct: &[u8], flags: &mut MultipartFlags) -> Result<Vec<u8>, &'static str> {
    if ct.is_empty() {
        return Err("Multipart: Content-Type header not available.");
    }
    if ct.len() > MAX_CONTENT_TYPE_LEN {
        return Err("Multipart: Invalid boundary in C-T (length).");
    }
    const MIME: &[u8] = b"multipart/form-data";
    if ct.len() < MIME.len() || !ct[..MIME.len()].eq_ignore_ascii_case(MIME) {
        return Err("Multipart: Invalid MIME type.");
    }
    if count_boundary_params(ct) > 1 {
        return Err("Multipart: Multiple boundary parameters in C-T.");
    }
    let Some(at) = memmem::find(ct, b"boundary") else {
        if count_boundary_params(ct) > 0 {
            return Err("Multipart: Invalid boundary in C-T (case sensitivity).");
        }
        return Err("Multipart: Boundary not found in C-T.");
    };
    // Between the MIME type and `boundary`: whitespace and one `;` only.
    let mut seen_semicolon = false;
    for &c in ct.get(MIME.len()..at).unwrap_or(&[]) {
        if is_c_space(c) {
            continue;
        }
        if c == b';' && !seen_semicolon {
            seen_semicolon = true;
        } else {
            return Err("Multipart: Invalid boundary in C-T (malformed).");
        }
    }
    if !seen_semicolon {
        flags.missing_semicolon = true;
    }
    let after_name = at + 8;
    let Some(eq) = memchr::memchr(b'=', &ct[after_name..]).map(|i| after_name + i) else {
        return Err("Multipart: Invalid boundary in C-T (malformed).");
    };
    for &c in &ct[after_name..eq] {
        if is_c_space(c) {
            flags.boundary_whitespace = true;
        } else {
            return Err("Multipart: Invalid boundary in C-T (parameter name).");
        }
    }
    // The value runs to the end of the header, leading space included.
    let value = &ct[eq + 1..];
    if value.first().is_some_and(|&c| is_c_space(c)) {
        flags.boundary_whitespace = true;
    }
    let mut boundary = if value.len() >= 2 && value[0] == b'"' && value[value.len() - 1] == b'"' {
        flags.boundary_quoted = true;
        value[1..value.len() - 1].to_vec()
    } else {
        if value.first() == Some(&b'"') || (value.len() >= 2 && value[value.len() - 1] == b'"') {
            return Err("Multipart: Invalid boundary in C-T (quote).");
        }
        value.to_vec()
    };
    if boundary.is_empty() {
        return Err("Multipart: Invalid boundary in C-T (empty).");
    }
    if count_boundary_params(&boundary) != 0 {
        return Err("Multipart: Invalid boundary in C-T (content).");
    }
    // Tolerated: a parameter after the boundary (`; charset=…`).
    if !boundary_chars_valid(&boundary) {
        if let Some(semi) = memchr::memchr(b';', &boundary) {
            boundary.truncate(semi);
        }
    }
    if !boundary_chars_valid(&boundary) {
        return Err("Multipart: Invalid boundary in C-T (characters).");
    }
    if boundary.is_empty() {
        return Err("Multipart: Invalid boundary in C-T (empty).");
    }
    Ok(boundary)
}

/// RFC 2045 token characters.
fn is_token_char(c: u8) -> bool {
    c > 32 && c < 127 && !b"()<>@,;:\\\"/[]?=".contains(&c)
}

/// Parses a Content-Disposition value into `part` (name, filename). On
/// failure returns ModSecurity's negative code, which appears in the message.
fn parse_content_disposition(
    cd: &[u8],
    part: &mut Part,
    info: &mut MultipartInfo,
) -> Result<(), i32> {
    if !cd.starts_with(b"form-data") {
        return Err(-1);
    }
    let at = |i: usize| cd.get(i).copied().unwrap_or(0);
    let skip_ws = |mut i: usize| {
        while matches!(at(i), b' ' | b'\t') {
            i += 1;
        }
        i
    };
    let mut p = skip_ws(9);
    if p >= cd.len() {
        return Ok(());
    }
    if at(p) != b';' {
        return Err(-2);
    }
    p += 1;
    let mut filename_star: Option<Vec<u8>> = None;
    while p < cd.len() {
        p = skip_ws(p);
        if p >= cd.len() {
            return Err(-3);
        }
        let start = p;
        while p < cd.len() && !matches!(cd[p], b'=' | b'\t' | b' ') {
            p += 1;
        }
        if p >= cd.len() {
            return Err(-4);
        }
        let name = &cd[start..p];
        p = skip_ws(p);
        if p >= cd.len() {
            return Err(-5);
        }
        if cd[p] != b'=' {
            return Err(-13);
        }
        p = skip_ws(p + 1);
        if p >= cd.len() {
            return Err(-6);
        }
        let mut quote = 0u8;
        let value: Vec<u8>;
        if name == b"filename*" {
            // charset'[language]'percent-encoded-name
            let cs = p;
            while p < cd.len()
                && (cd[p].is_ascii_alphanumeric() || b"!#$%&+-^_`{}~".contains(&cd[p]))
            {
                p += 1;
            }
            if at(p) != b'\'' || p == cs {
                return Err(-16);
            }
            p += 1;
            while p < cd.len() && cd[p] != b'\'' {
                p += 1;
            }
            if at(p) != b'\'' {
                return Err(-17);
            }
            p += 1;
            let fs = p;
            while p < cd.len() && cd[p] != b';' {
                if cd[p] == b'%' {
                    if !at(p + 1).is_ascii_hexdigit() || !at(p + 2).is_ascii_hexdigit() {
                        return Err(-18);
                    }
                    p += 3;
                } else if cd[p].is_ascii_alphanumeric() || b"!#$&+-.^_`~".contains(&cd[p]) {
                    p += 1;
                } else {
                    return Err(-19);
                }
            }
            value = cd[fs..p.min(cd.len())].to_vec();
        } else if cd[p] == b'"' || cd[p] == b'\'' {
            quote = cd[p];
            if quote == b'\'' {
                info.flags.invalid_quoting = true;
            }
            p += 1;
            if p >= cd.len() {
                return Err(-7);
            }
            let mut v = Vec::new();
            while p < cd.len() {
                if cd[p] == b'\\' {
                    if p + 1 >= cd.len() {
                        return Err(-8);
                    }
                    // Only the quote and backslash are escapes; anything else
                    // keeps its backslash (IE sends such names).
                    if cd[p + 1] == quote || cd[p + 1] == b'\\' {
                        p += 1;
                    }
                } else if cd[p] == quote {
                    break;
                }
                v.push(cd[p]);
                p += 1;
            }
            p += 1; // the closing quote (or past the end when unterminated)
            value = v;
        } else {
            let s = p;
            while p < cd.len() && is_token_char(cd[p]) {
                p += 1;
            }
            value = cd[s..p].to_vec();
        }

        match name {
            b"name" => {
                if quote != b'"' && value.contains(&b'\'') {
                    info.flags.invalid_quoting = true;
                }
                info.names.push(value.clone());
                if !part.name.is_empty() {
                    return Err(-14);
                }
                part.name = value;
            }
            b"filename" => {
                if quote != b'"' && value.contains(&b'\'') {
                    info.flags.invalid_quoting = true;
                }
                info.filenames.push(value.clone());
                if !part.filename.is_empty() {
                    return Err(-15);
                }
                part.filename = value;
            }
            b"filename*" => {
                if filename_star.as_ref().is_some_and(|v| !v.is_empty()) {
                    return Err(-20);
                }
                filename_star = Some(value);
            }
            _ => return Err(-11),
        }

        if p < cd.len() {
            p = skip_ws(p);
            if p < cd.len() {
                if cd[p] != b';' {
                    if p > 0 && matches!(cd[p - 1], b'\'' | b'"') {
                        info.flags.invalid_quoting = true;
                    }
                    return Err(-12);
                }
                p += 1;
            }
        }
    }
    if filename_star.is_some_and(|v| !v.is_empty()) && part.filename.is_empty() {
        return Err(-21);
    }
    Ok(())
}
