//! A chunked request body through the balancer: the input is everything after a fixed
//! `Transfer-Encoding: chunked` head (chunk sizes, extensions, data, trailers and whatever
//! follows). Decoding is hyper's; what is fuzzed is brigade's handling of the decoded stream:
//! the body-size limit as it flows, replay buffering, errors blamed on the client, and the
//! connection's reuse afterwards.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// The head, alternating by the input's first byte between a streamed body and one that also
/// claims a `Content-Length` (which the parser must drop in favour of the chunked coding).
const HEADS: [&[u8]; 2] = [
    b"POST /api/v1/orders HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"PUT /api/v1/kitchen/shops/7 HTTP/1.1\r\nHost: shop\r\nContent-Length: 5\r\n\
      Transfer-Encoding: chunked\r\nIdempotency-Key: k\r\n\r\n",
];

fuzz_target!(|bytes: &[u8]| {
    let Some((&first, body)) = bytes.split_first() else {
        return;
    };
    let head = HEADS[usize::from(first & 1)];
    let mut request = Vec::with_capacity(head.len() + body.len());
    request.extend_from_slice(head);
    request.extend_from_slice(body);
    brigade_fuzz::exchange(&request);
});
