//! The fast core's chunked decoder. Properties: no panic; the same input fed in pieces (sizes
//! from the first byte) decodes to the same data, end and error as fed whole; and decoded data
//! re-encoded the way the fast core forwards it decodes again to the same data.
#![no_main]

use brigade_balance::fast::chunked::{self, Decoder};
use libfuzzer_sys::fuzz_target;

/// Decodes `input` in pieces of `step`: the data, the bytes consumed, and the error if any.
fn decode(input: &[u8], step: usize) -> (Vec<u8>, usize, Option<chunked::ChunkError>, bool) {
    let mut decoder = Decoder::new();
    let mut data = Vec::new();
    let mut at = 0;
    while at < input.len() {
        let end = (at + step).min(input.len());
        match decoder.decode(&input[at..end], |d| data.extend_from_slice(d)) {
            Ok(progress) => {
                at += progress.consumed;
                if progress.done {
                    return (data, at, None, true);
                }
                assert_eq!(at, end, "an unfinished decoder consumes its whole input");
            }
            Err(error) => return (data, at, Some(error), false),
        }
    }
    (data, at, None, decoder.is_done())
}

fuzz_target!(|bytes: &[u8]| {
    let Some((&first, input)) = bytes.split_first() else {
        return;
    };
    let whole = decode(input, input.len().max(1));
    let pieces = decode(input, usize::from(first % 16) + 1);
    assert_eq!(whole.0, pieces.0, "data");
    assert_eq!(whole.2, pieces.2, "error");
    assert_eq!(whole.3, pieces.3, "end");
    if whole.3 {
        assert_eq!(whole.1, pieces.1, "consumed");
        let mut encoded = Vec::new();
        for piece in whole.0.chunks(usize::from(first) + 1) {
            chunked::encode_chunk(&mut encoded, piece);
        }
        encoded.extend_from_slice(chunked::END);
        let again = decode(&encoded, encoded.len());
        assert_eq!((again.0, again.1, again.3), (whole.0, encoded.len(), true));
    }
});
