//! The fast core's request head: `httparse` plus brigade's framing checks, then the head a
//! backend would receive. Properties: no panic; an accepted head is written as a head that
//! parses again, whole, with the same method, target and body framing, and without bare LF,
//! hop-by-hop fields or a second framing field.
#![no_main]

use brigade_balance::fast::codec::{self, MAX_HEADERS, Parsed, RequestFraming};
use brigade_balance::fast::write::{self, Added};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let Ok(Parsed::Complete(head)) = codec::parse_request(bytes, &mut headers, 8192) else {
        return;
    };
    if head.problem.is_some() || head.hand_over {
        return;
    }
    let added = Added {
        request_id: Some(b"0190c3a0-0000-7000-8000-000000000000"),
        traceparent: None,
        peer: b"10.1.2.3",
        scheme: b"http",
        trusted: bytes.len() % 2 == 0,
    };
    let mut out = Vec::new();
    write::request_head(&mut out, &head, &added);
    let mut again = [httparse::EMPTY_HEADER; MAX_HEADERS + 8];
    let reparsed = match codec::parse_request(&out, &mut again, usize::MAX) {
        Ok(Parsed::Complete(reparsed)) => reparsed,
        other => panic!("the forwarded head does not parse: {other:?}"),
    };
    assert_eq!(reparsed.len, out.len(), "one head, nothing after it");
    assert_eq!(reparsed.method, head.method);
    assert_eq!(reparsed.target, head.target);
    assert_eq!(reparsed.framing, head.framing);
    assert!(reparsed.problem.is_none() && !reparsed.hand_over);
    let framing_fields = reparsed
        .headers
        .iter()
        .filter(|h| {
            h.name.eq_ignore_ascii_case("content-length")
                || h.name.eq_ignore_ascii_case("transfer-encoding")
        })
        .count();
    let expected = usize::from(head.framing != RequestFraming::Empty);
    assert_eq!(framing_fields, expected, "exactly one framing field");
    for header in reparsed.headers {
        let name = header.name.to_ascii_lowercase();
        assert!(
            name == "transfer-encoding" || !codec::is_hop_by_hop(&name),
            "hop-by-hop {name} forwarded"
        );
    }
});
