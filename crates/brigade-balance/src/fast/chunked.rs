//! The chunked transfer coding (RFC 9112 §7.1), decoded incrementally and strictly, and written
//! again in one canonical form.
//!
//! Decoding follows hyper's rules and is no looser anywhere: the size is hex digits only (at
//! least one, overflow refused), optionally followed by spaces or tabs, then extensions (at
//! most 16 KiB per body, no control bytes) and a CRLF; each chunk's data is followed by CRLF
//! exactly; trailer lines end in CRLF and are bounded to 16 KiB. A bare LF anywhere is an
//! error. What is forwarded is re-framed: one chunk per piece of data with an uppercase hex size
//! (as hyper writes it), no extensions and no trailers, so a recipient cannot read the framing
//! any other way than this decoder did.

/// Most bytes of chunk extensions in one body (hyper's limit).
const EXTENSIONS_LIMIT: u64 = 16 * 1024;
/// Most bytes of trailer fields in one body (hyper's limit).
const TRAILER_LIMIT: u64 = 16 * 1024;

/// Why a chunked body cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// A chunk size that is not hex, or is too large.
    #[error("invalid chunk size")]
    Size,
    /// A line that does not end in CRLF where one must.
    #[error("invalid line ending in the chunked body")]
    LineEnding,
    /// A control byte or too many bytes of chunk extensions.
    #[error("invalid or oversized chunk extension")]
    Extension,
    /// An invalid or oversized trailer section.
    #[error("invalid or oversized trailer section")]
    Trailer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading hex digits; `digits` so far.
    Size { digits: u8 },
    /// Spaces or tabs after the size.
    SizeSpace,
    /// Inside an extension.
    Extension,
    /// CR seen after the size line; LF next.
    SizeLf,
    /// Data of the current chunk.
    Data,
    /// CR after the data next.
    DataCr,
    /// LF after the data next.
    DataLf,
    /// Start of a trailer line (or the final empty line).
    TrailerStart,
    /// Inside a trailer line.
    Trailer,
    /// CR of a trailer line seen; LF next.
    TrailerLf,
    /// CR of the final empty line seen; LF next.
    EndLf,
    /// The body is complete.
    Done,
}

/// An incremental, strict decoder of one chunked body.
#[derive(Debug, Clone)]
pub struct Decoder {
    state: State,
    size: u64,
    extensions: u64,
    trailer: u64,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

/// Progress of one [`Decoder::decode`] call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes of the input consumed.
    pub consumed: usize,
    /// The body ended (its last byte was consumed).
    pub done: bool,
}

impl Decoder {
    /// A decoder at the start of a body.
    pub fn new() -> Self {
        Self {
            state: State::Size { digits: 0 },
            size: 0,
            extensions: 0,
            trailer: 0,
        }
    }

    /// The body has ended.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes from `input`, handing each run of data bytes to `data`, until the input is
    /// used up or the body ends. Bytes after the body's end are not consumed.
    pub fn decode(
        &mut self,
        input: &[u8],
        mut data: impl FnMut(&[u8]),
    ) -> Result<Progress, ChunkError> {
        let mut at = 0;
        while at < input.len() && self.state != State::Done {
            if self.state == State::Data {
                let take = usize::try_from(self.size)
                    .unwrap_or(usize::MAX)
                    .min(input.len() - at);
                data(&input[at..at + take]);
                at += take;
                self.size -= take as u64;
                if self.size == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            self.state = self.step(input[at])?;
            at += 1;
        }
        Ok(Progress {
            consumed: at,
            done: self.state == State::Done,
        })
    }

    /// One byte of framing (everything but chunk data).
    fn step(&mut self, byte: u8) -> Result<State, ChunkError> {
        Ok(match (self.state, byte) {
            (State::Size { digits }, b) if b.is_ascii_hexdigit() => {
                // 16 hex digits fill a u64; more would overflow (leading zeros included).
                if digits >= 16 {
                    return Err(ChunkError::Size);
                }
                let value = (b as char).to_digit(16).map_or(0, u64::from);
                self.size = (self.size << 4) | value;
                State::Size { digits: digits + 1 }
            }
            (State::Size { digits: 0 }, _) => return Err(ChunkError::Size),
            (State::Size { .. } | State::SizeSpace, b' ' | b'\t') => State::SizeSpace,
            (State::Size { .. } | State::SizeSpace, b';') => State::Extension,
            (State::Size { .. } | State::SizeSpace | State::Extension, b'\r') => State::SizeLf,
            (State::Size { .. } | State::SizeSpace, _) => return Err(ChunkError::Size),
            (State::Extension, b) if b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80 => {
                self.extensions += 1;
                if self.extensions > EXTENSIONS_LIMIT {
                    return Err(ChunkError::Extension);
                }
                State::Extension
            }
            (State::Extension, _) => return Err(ChunkError::Extension),
            (State::SizeLf, b'\n') if self.size == 0 => State::TrailerStart,
            (State::SizeLf, b'\n') => State::Data,
            (State::DataCr, b'\r') => State::DataLf,
            (State::DataLf, b'\n') => State::Size { digits: 0 },
            (State::SizeLf | State::DataCr | State::DataLf, _) => {
                return Err(ChunkError::LineEnding);
            }
            (State::TrailerStart, b'\r') => State::EndLf,
            (State::Trailer, b'\r') => State::TrailerLf,
            (State::EndLf, b'\n') => State::Done,
            (State::TrailerLf, b'\n') => State::TrailerStart,
            (State::EndLf | State::TrailerLf, _) => return Err(ChunkError::LineEnding),
            (State::TrailerStart | State::Trailer, b)
                if b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80 =>
            {
                self.trailer += 1;
                if self.trailer > TRAILER_LIMIT {
                    return Err(ChunkError::Trailer);
                }
                State::Trailer
            }
            (State::TrailerStart | State::Trailer, _) => return Err(ChunkError::Trailer),
            (State::Data | State::Done, _) => self.state,
        })
    }
}

/// Appends `data` as one chunk (nothing for empty data: an empty chunk would end the body).
pub fn encode_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    write_hex(out, data.len() as u64);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// The last chunk and the empty trailer section.
pub const END: &[u8] = b"0\r\n\r\n";

/// `n` in uppercase hex without leading zeros.
fn write_hex(out: &mut Vec<u8>, n: u64) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut digits = [0u8; 16];
    let mut at = digits.len();
    let mut rest = n;
    loop {
        at -= 1;
        digits[at] = HEX[(rest & 0xf) as usize];
        rest >>= 4;
        if rest == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `step` bytes; the data and what followed the body.
    fn decode(input: &[u8], step: usize) -> Result<(Vec<u8>, usize), ChunkError> {
        let mut decoder = Decoder::new();
        let mut data = Vec::new();
        let mut at = 0;
        while at < input.len() {
            let end = (at + step).min(input.len());
            let progress = decoder.decode(&input[at..end], |d| data.extend_from_slice(d))?;
            at += progress.consumed;
            if progress.done {
                return Ok((data, input.len() - at));
            }
        }
        Err(ChunkError::LineEnding)
    }

    #[test]
    fn valid_bodies_decode_the_same_in_any_pieces() {
        let body = b"5\r\nhello\r\nA;name=value\r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT";
        for step in [1, 2, 3, 7, 100] {
            let (data, rest) = decode(body, step).unwrap();
            assert_eq!(data, b"hello0123456789");
            assert_eq!(rest, 4, "the next request stays unread");
        }
        assert_eq!(decode(b"0\r\n\r\n", 1).unwrap().0, b"");
        assert_eq!(decode(b"3 \t;x\r\nabc\r\n0\r\n\r\n", 1).unwrap().0, b"abc");
        assert_eq!(decode(b"00003\r\nabc\r\n0\r\n\r\n", 4).unwrap().0, b"abc");
    }

    #[test]
    fn malformed_bodies_are_refused() {
        let cases: &[(&[u8], ChunkError)] = &[
            (b"zz\r\nhello\r\n0\r\n\r\n", ChunkError::Size),
            (b"\r\nhello\r\n0\r\n\r\n", ChunkError::Size),
            (b"+5\r\nhello\r\n0\r\n\r\n", ChunkError::Size),
            (b"0x5\r\nhello\r\n0\r\n\r\n", ChunkError::Size),
            (b"5 5\r\nhello\r\n0\r\n\r\n", ChunkError::Size),
            (b"11111111111111111\r\n", ChunkError::Size),
            (b"5\nhello\r\n0\r\n\r\n", ChunkError::Size),
            (b"5\r\nhelloXX0\r\n\r\n", ChunkError::LineEnding),
            (b"5\r\nhello\n0\r\n\r\n", ChunkError::LineEnding),
            (b"5\r\nhello\r\n0\r\n\n", ChunkError::Trailer),
            (b"5;a\nb\r\nhello\r\n0\r\n\r\n", ChunkError::Extension),
            (b"5;a\0\r\nhello\r\n0\r\n\r\n", ChunkError::Extension),
            (b"0\r\nX: a\nY: b\r\n\r\n", ChunkError::Trailer),
            (b"0\r\n\r\r", ChunkError::LineEnding),
        ];
        for (input, error) in cases {
            assert_eq!(
                decode(input, 1).unwrap_err(),
                *error,
                "{}",
                String::from_utf8_lossy(input)
            );
        }
        let mut long = b"1;".to_vec();
        long.extend(std::iter::repeat_n(b'x', 17 * 1024));
        assert_eq!(decode(&long, 1000).unwrap_err(), ChunkError::Extension);
    }

    #[test]
    fn chunks_are_written_in_uppercase_hex() {
        let mut out = Vec::new();
        encode_chunk(&mut out, &[b'x'; 26]);
        encode_chunk(&mut out, b"");
        out.extend_from_slice(END);
        assert_eq!(
            out,
            [b"1A\r\n".as_slice(), &[b'x'; 26], b"\r\n0\r\n\r\n"].concat()
        );
    }
}
