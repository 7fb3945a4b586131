//! watch.toml: `WatchConfig::from_toml` (figment's TOML, then validation of durations,
//! matchers and receivers).
#![no_main]

use brigade_watch::WatchConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let _ = WatchConfig::from_toml(text);
});
