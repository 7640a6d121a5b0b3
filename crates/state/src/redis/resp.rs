//! RESP2 encoding and an incremental, bounded decoder.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::{Error, Result};

/// Largest bulk string accepted from the server. Default 64 MiB: nothing this
/// crate stores comes near it; bounds memory if the peer is not Redis.
pub const MAX_BULK_LEN: usize = 64 * 1024 * 1024;

/// Deepest array nesting accepted. Default 8: our replies nest at most 2.
pub const MAX_DEPTH: usize = 8;

/// Most elements accepted in one array. Default 1,048,576: bounds memory of a
/// reply from a hostile or broken peer.
pub const MAX_ARRAY_LEN: usize = 1 << 20;

/// One RESP2 reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Value {
    Simple(Bytes),
    Error(String),
    Int(i64),
    Bulk(Option<Bytes>),
    Array(Option<Vec<Value>>),
}

impl Value {
    /// Turns an error reply into [`Error::Redis`].
    pub(crate) fn into_result(self) -> Result<Value> {
        match self {
            Value::Error(e) => Err(Error::Redis(e)),
            v => Ok(v),
        }
    }

    pub(crate) fn as_int(&self) -> Result<i64> {
        match self {
            Value::Int(i) => Ok(*i),
            other => Err(Error::Protocol(format!(
                "expected an integer reply, got {other:?}"
            ))),
        }
    }

    /// A bulk string (or nil) as owned bytes.
    pub(crate) fn into_bulk(self) -> Result<Option<Bytes>> {
        match self {
            Value::Bulk(b) => Ok(b),
            Value::Simple(s) => Ok(Some(s)),
            other => Err(Error::Protocol(format!(
                "expected a bulk reply, got {other:?}"
            ))),
        }
    }

    pub(crate) fn into_array(self) -> Result<Vec<Value>> {
        match self {
            Value::Array(Some(v)) => Ok(v),
            Value::Array(None) => Ok(Vec::new()),
            other => Err(Error::Protocol(format!(
                "expected an array reply, got {other:?}"
            ))),
        }
    }
}

/// Appends one command (an array of bulk strings) to `buf`.
pub(crate) fn encode(buf: &mut BytesMut, args: &[&[u8]]) {
    buf.put_u8(b'*');
    put_decimal(buf, args.len());
    for a in args {
        buf.put_u8(b'$');
        put_decimal(buf, a.len());
        buf.put_slice(a);
        buf.put_slice(b"\r\n");
    }
}

fn put_decimal(buf: &mut BytesMut, n: usize) {
    let mut tmp = itoa_buf(n);
    buf.put_slice(tmp.as_mut_slice());
    buf.put_slice(b"\r\n");
}

fn itoa_buf(mut n: usize) -> Vec<u8> {
    let mut d = Vec::with_capacity(20);
    loop {
        d.push(b'0' + (n % 10) as u8);
        n /= 10;
        if n == 0 {
            break;
        }
    }
    d.reverse();
    d
}

/// Decodes one complete reply from the front of `buf`, consuming it.
/// `Ok(None)`: more bytes are needed.
pub(crate) fn decode(buf: &mut BytesMut) -> Result<Option<Value>> {
    match parse(&buf[..], 0)? {
        None => Ok(None),
        Some((v, used)) => {
            buf.advance(used);
            Ok(Some(v))
        }
    }
}

fn line(b: &[u8]) -> Option<(&[u8], usize)> {
    let i = memchr::memchr(b'\n', b)?;
    if i == 0 || b[i - 1] != b'\r' {
        return Some((&[], usize::MAX));
    }
    Some((&b[..i - 1], i + 1))
}

fn int(s: &[u8]) -> Result<i64> {
    std::str::from_utf8(s)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::Protocol(format!("bad integer {:?}", String::from_utf8_lossy(s))))
}

fn parse(b: &[u8], depth: usize) -> Result<Option<(Value, usize)>> {
    if depth > MAX_DEPTH {
        return Err(Error::Protocol("reply nested too deeply".into()));
    }
    let Some(&tag) = b.first() else {
        return Ok(None);
    };
    let Some((head, used)) = line(&b[1..]) else {
        if b.len() > 64 * 1024 {
            return Err(Error::Protocol("reply line too long".into()));
        }
        return Ok(None);
    };
    if used == usize::MAX {
        return Err(Error::Protocol("line not terminated by CRLF".into()));
    }
    let used = used + 1;
    match tag {
        b'+' => Ok(Some((Value::Simple(Bytes::copy_from_slice(head)), used))),
        b'-' => Ok(Some((
            Value::Error(String::from_utf8_lossy(head).into_owned()),
            used,
        ))),
        b':' => Ok(Some((Value::Int(int(head)?), used))),
        b'$' => {
            let n = int(head)?;
            if n < 0 {
                return Ok(Some((Value::Bulk(None), used)));
            }
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            if n > MAX_BULK_LEN {
                return Err(Error::Protocol(format!(
                    "bulk reply of {n} bytes over MAX_BULK_LEN"
                )));
            }
            let end = used + n + 2;
            if b.len() < end {
                return Ok(None);
            }
            if &b[used + n..end] != b"\r\n" {
                return Err(Error::Protocol("bulk reply not terminated by CRLF".into()));
            }
            Ok(Some((
                Value::Bulk(Some(Bytes::copy_from_slice(&b[used..used + n]))),
                end,
            )))
        }
        b'*' => {
            let n = int(head)?;
            if n < 0 {
                return Ok(Some((Value::Array(None), used)));
            }
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            if n > MAX_ARRAY_LEN {
                return Err(Error::Protocol(format!(
                    "array reply of {n} items over MAX_ARRAY_LEN"
                )));
            }
            let mut items = Vec::with_capacity(n.min(1024));
            let mut pos = used;
            for _ in 0..n {
                match parse(&b[pos..], depth + 1)? {
                    None => return Ok(None),
                    Some((v, u)) => {
                        items.push(v);
                        pos += u;
                    }
                }
            }
            Ok(Some((Value::Array(Some(items)), pos)))
        }
        other => Err(Error::Protocol(format!(
            "unknown reply type byte {other:#04x}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &[u8]) -> Result<Option<Value>> {
        decode(&mut BytesMut::from(s))
    }

    #[test]
    fn encodes_binary_safe_commands() {
        let mut b = BytesMut::new();
        encode(&mut b, &[b"SET", b"k", b"a\r\nb"]);
        assert_eq!(&b[..], b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\na\r\nb\r\n");
    }

    #[test]
    fn decodes_every_type_and_waits_for_more() {
        assert_eq!(
            dec(b"+OK\r\n").unwrap(),
            Some(Value::Simple(Bytes::from_static(b"OK")))
        );
        assert_eq!(
            dec(b"-ERR x\r\n").unwrap(),
            Some(Value::Error("ERR x".into()))
        );
        assert_eq!(dec(b":-42\r\n").unwrap(), Some(Value::Int(-42)));
        assert_eq!(dec(b"$-1\r\n").unwrap(), Some(Value::Bulk(None)));
        assert_eq!(dec(b"*-1\r\n").unwrap(), Some(Value::Array(None)));
        let full = b"*2\r\n$3\r\na\r\n\r\n:1\r\n";
        for cut in 0..full.len() {
            assert_eq!(dec(&full[..cut]).unwrap(), None, "prefix of {cut} bytes");
        }
        let v = dec(full).unwrap().unwrap();
        assert_eq!(
            v,
            Value::Array(Some(vec![
                Value::Bulk(Some(Bytes::from_static(b"a\r\n"))),
                Value::Int(1)
            ]))
        );
        let mut two = BytesMut::from(&b":1\r\n:2\r\n"[..]);
        assert_eq!(decode(&mut two).unwrap(), Some(Value::Int(1)));
        assert_eq!(decode(&mut two).unwrap(), Some(Value::Int(2)));
        assert!(two.is_empty());
    }

    #[test]
    fn rejects_garbage_and_oversized_replies() {
        assert!(dec(b"!x\r\n").is_err());
        assert!(dec(b":12a\r\n").is_err());
        assert!(dec(b"$3\r\nabcXY").is_err());
        assert!(dec(b"+OK\n").is_err());
        assert!(dec(format!("${}\r\n", MAX_BULK_LEN + 1).as_bytes()).is_err());
        assert!(dec(format!("*{}\r\n", MAX_ARRAY_LEN + 1).as_bytes()).is_err());
        let deep = "*1\r\n".repeat(MAX_DEPTH + 2);
        assert!(dec(deep.as_bytes()).is_err());
        assert!(
            dec(&vec![b'+'; 70 * 1024]).is_err(),
            "unterminated line is bounded"
        );
    }
}
