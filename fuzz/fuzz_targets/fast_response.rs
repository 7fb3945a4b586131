//! The fast core's response head: `httparse` plus brigade's framing rules, then the head the
//! client would receive. Properties: no panic; a usable head is written as a head that parses
//! again, whole, with the same status, a `Content-Length` only for a length-framed body and
//! `transfer-encoding: chunked` exactly when the body is re-framed chunked.
#![no_main]

use brigade_balance::fast::codec::{self, MAX_HEADERS, Parsed, ResponseFraming};
use brigade_balance::fast::write::{self, ResponseExtras};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Some((&first, bytes)) = bytes.split_first() else {
        return;
    };
    let head_request = first & 1 == 1;
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let Ok(Parsed::Complete(head)) =
        codec::parse_response(bytes, &mut headers, head_request, 65536)
    else {
        return;
    };
    let extras = ResponseExtras {
        request_id: b"rid",
        rate_limit: None,
        close: first & 2 == 2,
    };
    let mut out = Vec::new();
    write::response_head(&mut out, &head, &extras);
    let mut again = [httparse::EMPTY_HEADER; MAX_HEADERS + 8];
    let reparsed = match codec::parse_response(&out, &mut again, head_request, usize::MAX) {
        Ok(Parsed::Complete(reparsed)) => reparsed,
        other => panic!("the relayed head does not parse: {other:?}"),
    };
    assert_eq!(reparsed.len, out.len());
    assert_eq!(reparsed.status, head.status);
    let chunked = reparsed
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("transfer-encoding"))
        .count();
    let lengths = reparsed
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("content-length"))
        .count();
    match head.framing {
        ResponseFraming::Chunked | ResponseFraming::UntilClose => {
            assert_eq!((chunked, lengths), (1, 0));
            assert_eq!(reparsed.framing, ResponseFraming::Chunked);
        }
        ResponseFraming::Length(n) => {
            assert_eq!(chunked, 0);
            assert_eq!(reparsed.framing, ResponseFraming::Length(n));
        }
        ResponseFraming::Empty => assert_eq!(chunked, 0),
    }
});
