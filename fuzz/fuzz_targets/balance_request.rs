//! One client connection's raw bytes through the balancer: request line and head parsing, the
//! head checks (`head::normalize`), routing, rate-limit keys, hop-by-hop removal, forwarding
//! and the answer. Several pipelined requests may share an input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    brigade_fuzz::exchange(bytes);
});
