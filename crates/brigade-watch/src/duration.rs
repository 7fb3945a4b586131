//! Durations in watch.toml (`15s`, `1m30s`, `500ms`): parsed once when the file is read, so a
//! bad one stops the load naming its key and line, and nothing re-parses text later with a
//! fallback that would hide it.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::rules::{DurationError, parse_duration_ms};

/// A Prometheus-style duration of the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConfigDuration(Duration);

impl ConfigDuration {
    /// `ms` milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        Self(Duration::from_millis(ms))
    }

    /// `secs` seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }

    /// As a [`Duration`].
    pub fn get(self) -> Duration {
        self.0
    }

    /// In milliseconds, as the TSDB and the rule evaluator count time.
    pub fn as_millis(self) -> i64 {
        i64::try_from(self.0.as_millis()).unwrap_or(i64::MAX)
    }
}

impl FromStr for ConfigDuration {
    type Err = DurationError;

    fn from_str(text: &str) -> Result<Self, DurationError> {
        let ms = parse_duration_ms(text)?;
        let ms = u64::try_from(ms).map_err(|_| DurationError {
            text: text.to_owned(),
            reason: "negative".to_owned(),
        })?;
        Ok(Self::from_millis(ms))
    }
}

/// The shortest Prometheus spelling: `90s`, `1500ms`, `0s`.
impl fmt::Display for ConfigDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms.is_multiple_of(1000) {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

impl Serialize for ConfigDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_spellings_and_writes_them_back() {
        for (text, ms, written) in [
            ("15s", 15_000, "15s"),
            ("1m30s", 90_000, "90s"),
            ("500ms", 500, "500ms"),
        ] {
            let parsed: ConfigDuration = text.parse().unwrap();
            assert_eq!(parsed.as_millis(), ms, "{text}");
            assert_eq!(parsed.to_string(), written);
            assert_eq!(written.parse::<ConfigDuration>().unwrap(), parsed);
        }
        for bad in ["-1", "soon", "5 minutes", "nan"] {
            assert!(bad.parse::<ConfigDuration>().is_err(), "{bad}");
        }
    }
}
