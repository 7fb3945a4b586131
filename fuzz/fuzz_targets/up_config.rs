//! up.toml: `UpFile::parse`, then the `[jobs]` plan built from it (cron schedules, retention
//! and the like), as `brigade up` does at start.
#![no_main]

use brigade_up::UpFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    if let Ok(file) = UpFile::parse(text) {
        let _ = file.jobs_plan();
    }
});
