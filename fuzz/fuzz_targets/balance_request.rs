//! One client connection's raw bytes through the balancer: request line and head parsing, the
//! head checks (`head::normalize`), routing, rate-limit keys, hop-by-hop removal, forwarding
//! and the answer. Several pipelined requests may share an input. With `FUZZ_PRINT` set, the
//! balancer's answer is printed (to see what one input does).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let answer = brigade_fuzz::exchange(bytes);
    if std::env::var_os("FUZZ_PRINT").is_some() {
        eprintln!("{}", String::from_utf8_lossy(&answer));
    }
});
