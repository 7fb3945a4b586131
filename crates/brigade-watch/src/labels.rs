//! Label sets: the identity of a series and of an alert.
//!
//! A sorted map keeps two equal label sets equal however they were built, which is what series
//! lookup, vector matching and alert fingerprints all rely on.

use std::collections::BTreeMap;
use std::hash::Hasher;

/// The label holding a series' metric name.
pub const METRIC_NAME: &str = "__name__";

/// A set of labels, sorted by name.
pub type Labels = BTreeMap<String, String>;

/// Builds a label set from pairs (tests and rule code).
pub fn labels<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Labels {
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// A stable 64-bit fingerprint of a label set (FNV-1a over `name\xffvalue\xff` pairs), shown
/// as 16 hex digits like Alertmanager's alert fingerprints. Stable across restarts and builds,
/// which is why it is spelled out instead of using `DefaultHasher`.
pub fn fingerprint(labels: &Labels) -> String {
    let mut hasher = Fnv1a::default();
    for (name, value) in labels {
        hasher.write(name.as_bytes());
        hasher.write(&[0xff]);
        hasher.write(value.as_bytes());
        hasher.write(&[0xff]);
    }
    format!("{:016x}", hasher.finish())
}

/// FNV-1a, 64 bit.
struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv1a {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// A label set without its metric name (what functions and arithmetic return).
pub fn without_name(labels: &Labels) -> Labels {
    let mut labels = labels.clone();
    labels.remove(METRIC_NAME);
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_stable_and_order_free() {
        let a = labels([("alertname", "X"), ("job", "orders")]);
        let b = labels([("job", "orders"), ("alertname", "X")]);
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(fingerprint(&a), fingerprint(&labels([("alertname", "X")])));
        assert_eq!(fingerprint(&a).len(), 16);
    }
}
