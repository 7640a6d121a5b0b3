//! Helpers shared by the transformations: a copy-on-write output builder and
//! the byte classes ModSecurity uses (`isspace` in the C locale, `VALID_HEX`,
//! `x2c`).

use std::borrow::Cow;

/// Builds a transformation's output without allocating while the output is
/// still identical to a prefix of the input.
///
/// Decoders mostly see clean input: as long as every pushed byte equals the
/// input byte at the same position we only count; the buffer is allocated at
/// the first divergence. [`Builder::finish`] returns `Cow::Borrowed` exactly
/// when the output equals the whole input.
#[derive(Debug)]
pub(crate) struct Builder<'a> {
    input: &'a [u8],
    /// `None` while the output is `input[..len]`.
    out: Option<Vec<u8>>,
    len: usize,
}

impl<'a> Builder<'a> {
    pub(crate) fn new(input: &'a [u8]) -> Self {
        Builder {
            input,
            out: None,
            len: 0,
        }
    }

    #[inline]
    pub(crate) fn push(&mut self, b: u8) {
        match &mut self.out {
            Some(v) => v.push(b),
            None => {
                if self.input.get(self.len) == Some(&b) {
                    self.len += 1;
                } else {
                    self.diverge().push(b);
                }
            }
        }
    }

    pub(crate) fn extend(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.push(b);
        }
    }

    /// Removes the last output byte (no-op on empty output).
    pub(crate) fn pop(&mut self) {
        match &mut self.out {
            Some(v) => {
                v.pop();
            }
            None => self.len = self.len.saturating_sub(1),
        }
    }

    fn diverge(&mut self) -> &mut Vec<u8> {
        let len = self.len;
        let input = self.input;
        self.out.get_or_insert_with(|| {
            // Decoders shrink; encoders grow and let the Vec reallocate.
            let mut v = Vec::with_capacity(input.len().max(16));
            v.extend_from_slice(&input[..len]);
            v
        })
    }

    pub(crate) fn finish(self) -> Cow<'a, [u8]> {
        match self.out {
            Some(v) => Cow::Owned(v),
            None if self.len == self.input.len() => Cow::Borrowed(self.input),
            None => Cow::Owned(self.input[..self.len].to_vec()),
        }
    }
}

/// `isspace()` in the C locale (ModSecurity never calls `setlocale`): space,
/// `\t`, `\n`, `\v`, `\f`, `\r`. Note: not NBSP.
#[inline]
pub(crate) fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// ModSecurity's `VALID_HEX`.
#[inline]
pub(crate) fn is_hex(b: u8) -> bool {
    b.is_ascii_hexdigit()
}

/// ModSecurity's `xsingle2c`: value of one hex digit. For non-hex bytes it
/// yields the same (wrapping) garbage ModSecurity does, which `t:hexDecode`
/// exposes because it never validates its input.
#[inline]
pub(crate) fn xsingle2c(b: u8) -> u8 {
    if b >= b'A' {
        (b & 0xdf).wrapping_sub(b'A').wrapping_add(10)
    } else {
        b.wrapping_sub(b'0')
    }
}

/// ModSecurity's `x2c`: two hex digits to one byte.
#[inline]
pub(crate) fn x2c(hi: u8, lo: u8) -> u8 {
    xsingle2c(hi).wrapping_mul(16).wrapping_add(xsingle2c(lo))
}

/// Lowercase hex digits, as ModSecurity's `c2x` writes them.
pub(crate) const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";

/// ModSecurity's IIS `%uXXXX` / JavaScript `\uXXXX` reduction to one byte:
/// the low byte of the code point, except that full-width ASCII
/// (`FF01`–`FF5E`) maps to `0x21`–`0x7E`. `digits` are the four hex digits.
#[inline]
pub(crate) fn unicode_low_byte(digits: [u8; 4]) -> u8 {
    let low = x2c(digits[2], digits[3]);
    let full_width = matches!(digits[0], b'f' | b'F') && matches!(digits[1], b'f' | b'F');
    if full_width && low > 0x00 && low < 0x5f {
        low + 0x20
    } else {
        low
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_borrows_when_identical() {
        let mut b = Builder::new(b"abc");
        b.extend(b"abc");
        assert!(matches!(b.finish(), Cow::Borrowed(b"abc")));
    }

    #[test]
    fn builder_owns_prefix_and_divergence() {
        let mut b = Builder::new(b"abc");
        b.extend(b"ab");
        assert_eq!(b.finish().into_owned(), b"ab");
        let mut b = Builder::new(b"abc");
        b.extend(b"aXc");
        assert_eq!(b.finish().into_owned(), b"aXc");
        let mut b = Builder::new(b"ab");
        b.extend(b"abcd");
        let out = b.finish();
        assert!(matches!(out, Cow::Owned(_)));
        assert_eq!(&*out, b"abcd");
    }

    #[test]
    fn builder_pop() {
        let mut b = Builder::new(b"a b");
        b.extend(b"a ");
        b.pop();
        b.push(b'b');
        assert_eq!(&*b.finish(), b"ab");
    }

    #[test]
    fn hex_helpers_match_modsecurity() {
        assert_eq!(x2c(b'4', b'1'), 0x41);
        assert_eq!(x2c(b'f', b'F'), 0xff);
        // Not hex: ModSecurity's arithmetic, e.g. "0z" -> '#'.
        assert_eq!(x2c(b'0', b'z'), b'#');
        assert_eq!(unicode_low_byte(*b"ff01"), b'!');
        assert_eq!(unicode_low_byte(*b"FF5E"), b'~');
        assert_eq!(unicode_low_byte(*b"ff5f"), 0x5f);
        assert_eq!(unicode_low_byte(*b"ff00"), 0x00);
        assert_eq!(unicode_low_byte(*b"1234"), 0x34);
    }
}
