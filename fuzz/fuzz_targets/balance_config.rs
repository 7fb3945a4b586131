//! balance.toml: parsing and validation (`Config::parse`), and building the routing table,
//! pools and rate limiters from an accepted configuration, as a start or a reload does.
#![no_main]

use brigade_balance::Config;
use brigade_balance::state::Table;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    if let Ok(config) = Config::parse(text, "fuzz") {
        let _ = Table::new(config, None);
    }
});
