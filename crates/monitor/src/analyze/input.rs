//! Reading log files: plain or gzip (detected by its magic bytes, not the
//! file name), line by line within [`MAX_LINE_BYTES`], with a byte counter
//! on the file itself so progress is known even through decompression.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use flate2::read::MultiGzDecoder;

/// Longest log line analysed (default 64 KiB; nginx and Apache log lines
/// are rarely above 8 KiB). Longer lines are counted as too long and
/// skipped without being held in memory: a multi-gigabyte "line" (a binary
/// file, a log without newlines) cannot exhaust memory.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Size of the read buffer per input (default 256 KiB).
const READ_BUFFER_BYTES: usize = 256 * 1024;

/// Counts the bytes read from the underlying file (compressed bytes for
/// gzip input), for progress reporting.
#[derive(Debug)]
struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// An opened log: its lines and how far into the file reading is.
pub(crate) struct LogInput {
    reader: Box<dyn BufRead + Send>,
    /// Bytes of the file read so far.
    pub(crate) position: Arc<AtomicU64>,
    /// File size in bytes (0 when unknown, e.g. standard input).
    pub(crate) size: u64,
    /// Whether the file is gzip-compressed.
    pub(crate) gzip: bool,
}

impl std::fmt::Debug for LogInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogInput")
            .field("size", &self.size)
            .field("gzip", &self.gzip)
            .finish_non_exhaustive()
    }
}

/// One line as read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// The line is in the buffer (without its `\n` or `\r\n`).
    Complete,
    /// The line was longer than [`MAX_LINE_BYTES`]; it was skipped.
    TooLong,
}

impl LogInput {
    /// Opens `path` (`-`: standard input).
    pub(crate) fn open(path: &Path) -> io::Result<LogInput> {
        let position = Arc::new(AtomicU64::new(0));
        let (raw, size): (Box<dyn Read + Send>, u64) = if path.as_os_str() == "-" {
            (Box::new(io::stdin()), 0)
        } else {
            let file = File::open(path)?;
            let meta = file.metadata()?;
            if meta.is_dir() {
                return Err(io::Error::other("is a directory"));
            }
            (Box::new(file), meta.len())
        };
        let counted = Counting {
            inner: raw,
            read: position.clone(),
        };
        let mut buffered = BufReader::with_capacity(READ_BUFFER_BYTES, counted);
        let head = buffered.fill_buf()?;
        let gzip = head.len() >= 2 && head[0] == 0x1f && head[1] == 0x8b;
        let reader: Box<dyn BufRead + Send> = if gzip {
            Box::new(BufReader::with_capacity(
                READ_BUFFER_BYTES,
                MultiGzDecoder::new(buffered),
            ))
        } else {
            Box::new(buffered)
        };
        Ok(LogInput {
            reader,
            position,
            size,
            gzip,
        })
    }

    /// Reads the next line into `buf` (cleared first). `Ok(None)` at the end.
    pub(crate) fn next_line(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<Line>> {
        buf.clear();
        read_line_capped(&mut *self.reader, buf, MAX_LINE_BYTES)
    }
}

/// Reads one line into `buf`, keeping at most `cap` bytes of it; the rest
/// of an over-long line is read and dropped.
pub(crate) fn read_line_capped(
    r: &mut dyn BufRead,
    buf: &mut Vec<u8>,
    cap: usize,
) -> io::Result<Option<Line>> {
    let mut too_long = false;
    let mut any = false;
    loop {
        let chunk = match r.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            break;
        }
        any = true;
        let (part, consumed, done) = match memchr::memchr(b'\n', chunk) {
            Some(i) => (&chunk[..i], i + 1, true),
            None => (chunk, chunk.len(), false),
        };
        if !too_long {
            if buf.len() + part.len() > cap {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(part);
            }
        }
        r.consume(consumed);
        if done {
            break;
        }
    }
    if !any {
        return Ok(None);
    }
    if too_long {
        return Ok(Some(Line::TooLong));
    }
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Ok(Some(Line::Complete))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(data: &[u8], cap: usize) -> Vec<(Line, Vec<u8>)> {
        let mut r = io::BufReader::with_capacity(7, data);
        let mut out = Vec::new();
        let mut buf = Vec::new();
        while let Some(l) = read_line_capped(&mut r, &mut buf, cap).unwrap() {
            out.push((l, buf.clone()));
            buf.clear();
        }
        out
    }

    #[test]
    fn splits_lines_across_buffer_boundaries_and_caps_long_ones() {
        let got = lines(b"short\r\n0123456789abcdef\nlast", 10);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], (Line::Complete, b"short".to_vec()));
        assert_eq!(got[1].0, Line::TooLong);
        assert!(got[1].1.is_empty());
        assert_eq!(got[2], (Line::Complete, b"last".to_vec()));
        assert!(lines(b"", 10).is_empty());
        assert_eq!(lines(b"\n\n", 10).len(), 2);
    }
}
