//! Alerting and recording rule files (Prometheus's YAML format): `rules::parse`, which also
//! parses and checks every expression against the PromQL subset.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let _ = brigade_watch::rules::parse(text, "fuzz.yml");
});
