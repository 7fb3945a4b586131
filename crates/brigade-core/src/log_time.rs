//! The `timestamp` of JSON log lines: RFC 3339 in UTC with microseconds
//! (`2026-12-06T08:46:14.123456Z`), written straight into the line.
//!
//! Every request writes an access log line, and formatting a full date per line (calendar
//! arithmetic, a `String`, chrono's formatter) cost more than the rest of the line. The date
//! and time of day change once a second, so each thread keeps them formatted for the current
//! second and only the microseconds are written per line.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

thread_local! {
    /// The Unix second last formatted on this thread, and its `YYYY-MM-DDTHH:MM:SS`.
    static SECOND: RefCell<(i64, Vec<u8>)> = const { RefCell::new((i64::MIN, Vec::new())) };
}

/// Appends the current time to `out`.
pub fn write_now(out: &mut Vec<u8>) {
    write_at(out, SystemTime::now());
}

/// Appends `time` to `out`, as chrono's `to_rfc3339_opts(SecondsFormat::Micros, true)` would.
pub fn write_at(out: &mut Vec<u8>, time: SystemTime) {
    let (seconds, micros) = match time.duration_since(UNIX_EPOCH) {
        Ok(since) => (since.as_secs() as i64, since.subsec_micros()),
        // Before 1970 (a clock set far back): rare enough to format in full.
        Err(_) => {
            let formatted = chrono::DateTime::<chrono::Utc>::from(time)
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            out.extend_from_slice(formatted.as_bytes());
            return;
        }
    };
    SECOND.with_borrow_mut(|(cached, text)| {
        if *cached != seconds {
            *text = date_and_time(seconds);
            *cached = seconds;
        }
        out.extend_from_slice(text);
    });
    let mut digits = *b".000000Z";
    let mut rest = micros;
    for digit in digits[1..7].iter_mut().rev() {
        *digit = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    out.extend_from_slice(&digits);
}

/// `YYYY-MM-DDTHH:MM:SS` of a Unix second.
fn date_and_time(seconds: i64) -> Vec<u8> {
    let time = chrono::DateTime::from_timestamp(seconds, 0).unwrap_or_default();
    let mut text = time
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        .into_bytes();
    // Drop the `Z`: the fraction and the `Z` follow per line.
    text.pop();
    text
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn written(time: SystemTime) -> String {
        let mut out = Vec::new();
        write_at(&mut out, time);
        String::from_utf8(out).unwrap()
    }

    fn chrono_text(time: SystemTime) -> String {
        chrono::DateTime::<chrono::Utc>::from(time)
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    }

    #[test]
    fn matches_chrono_across_seconds_and_days() {
        let start = UNIX_EPOCH + Duration::from_secs(1_796_515_199); // a second before midnight
        for offset_micros in [0, 7, 999_999, 1_000_000, 1_000_001, 86_400_123_456] {
            let time = start + Duration::from_micros(offset_micros);
            assert_eq!(written(time), chrono_text(time));
        }
        // Back to an earlier second on the same thread: the cache follows.
        assert_eq!(written(start), chrono_text(start));
        let now = SystemTime::now();
        assert_eq!(written(now), chrono_text(now));
    }

    #[test]
    fn before_1970_is_formatted_in_full() {
        let time = UNIX_EPOCH - Duration::from_micros(1_500_000);
        assert_eq!(written(time), chrono_text(time));
        assert_eq!(written(time), "1969-12-31T23:59:58.500000Z");
    }
}
