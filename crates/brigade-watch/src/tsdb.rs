//! The bounded in-memory window of samples that rules are evaluated over.
//!
//! Each series keeps its samples for `retention` (the longest range any rule reads plus the
//! lookback), oldest dropped first, and the number of series is capped, so memory stays bounded
//! whatever the targets expose. Samples are grouped by metric name because every selector in
//! a rule names its metric.
//!
//! Like Prometheus, a series that a target stops exposing gets a *stale marker*, so instant
//! selectors stop returning it at once instead of for the five-minute lookback.

use std::collections::{BTreeSet, HashMap, VecDeque};

use crate::labels::{Labels, METRIC_NAME};

/// Prometheus's staleness-marker NaN bit pattern.
const STALE_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The value written when a series disappears from its target.
pub fn stale_marker() -> f64 {
    f64::from_bits(STALE_BITS)
}

/// Whether a value is a staleness marker (not just any NaN).
pub fn is_stale(value: f64) -> bool {
    value.to_bits() == STALE_BITS
}

/// One series' samples, oldest first: (milliseconds since the epoch, value).
#[derive(Debug, Default, Clone)]
pub struct Series {
    /// The samples.
    pub samples: VecDeque<(i64, f64)>,
}

/// The sample store.
#[derive(Debug)]
pub struct Tsdb {
    by_name: HashMap<String, HashMap<Labels, Series>>,
    retention_ms: i64,
    max_series: usize,
    series: usize,
    /// Series of each scrape source seen in its last successful scrape (for stale markers).
    last_seen: HashMap<String, BTreeSet<Labels>>,
}

/// What one append batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AppendReport {
    /// Samples stored.
    pub appended: usize,
    /// Samples dropped because the store's series limit was reached.
    pub dropped: usize,
}

impl Tsdb {
    /// A store keeping samples for `retention_ms` and at most `max_series` series.
    pub fn new(retention_ms: i64, max_series: usize) -> Self {
        Self {
            by_name: HashMap::new(),
            retention_ms,
            max_series,
            series: 0,
            last_seen: HashMap::new(),
        }
    }

    /// How long samples are kept, in milliseconds.
    pub fn retention_ms(&self) -> i64 {
        self.retention_ms
    }

    /// Number of series held.
    pub fn series_count(&self) -> usize {
        self.series
    }

    /// Appends one sample; returns false when a new series would exceed the series limit.
    pub fn append(&mut self, labels: &Labels, t: i64, value: f64) -> bool {
        let Some(name) = labels.get(METRIC_NAME) else {
            return false;
        };
        let at_limit = self.series >= self.max_series;
        let by_labels = self.by_name.entry(name.clone()).or_default();
        let series = match by_labels.get_mut(labels) {
            Some(series) => series,
            None if at_limit => return false,
            None => {
                self.series += 1;
                by_labels.entry(labels.clone()).or_default()
            }
        };
        // Out-of-order samples are ignored, as Prometheus rejects them.
        if series.samples.back().is_some_and(|(last, _)| *last >= t) {
            return true;
        }
        series.samples.push_back((t, value));
        let horizon = t - self.retention_ms;
        while series.samples.front().is_some_and(|(ts, _)| *ts < horizon) {
            series.samples.pop_front();
        }
        true
    }

    /// Appends the result of one scrape of `source` and writes stale markers for the series the
    /// source exposed last time but not now. `samples` must already carry target labels.
    pub fn append_scrape(
        &mut self,
        source: &str,
        t: i64,
        samples: &[(Labels, f64)],
    ) -> AppendReport {
        let mut report = AppendReport::default();
        let mut seen = BTreeSet::new();
        for (labels, value) in samples {
            if self.append(labels, t, *value) {
                report.appended += 1;
                seen.insert(labels.clone());
            } else {
                report.dropped += 1;
            }
        }
        let previous = self.last_seen.insert(source.to_owned(), seen);
        if let Some(previous) = previous {
            let current = &self.last_seen[source];
            let gone: Vec<Labels> = previous.difference(current).cloned().collect();
            for labels in gone {
                self.append(&labels, t, stale_marker());
            }
        }
        report
    }

    /// Marks every series of a source stale (the target failed or was removed).
    pub fn mark_source_stale(&mut self, source: &str, t: i64) {
        if let Some(previous) = self.last_seen.remove(source) {
            for labels in previous {
                self.append(&labels, t, stale_marker());
            }
        }
    }

    /// Every series of a metric.
    pub fn series_named(&self, name: &str) -> impl Iterator<Item = (&Labels, &Series)> {
        self.by_name.get(name).into_iter().flat_map(|m| m.iter())
    }

    /// Every series (for selectors that match the name by regex).
    pub fn all_series(&self) -> impl Iterator<Item = (&Labels, &Series)> {
        self.by_name.values().flat_map(|m| m.iter())
    }

    /// Drops samples older than the retention and series left empty.
    pub fn compact(&mut self, now: i64) {
        let horizon = now - self.retention_ms;
        let mut removed = 0;
        for by_labels in self.by_name.values_mut() {
            by_labels.retain(|_, series| {
                while series.samples.front().is_some_and(|(ts, _)| *ts < horizon) {
                    series.samples.pop_front();
                }
                // A series whose only remaining sample is its stale marker is gone for good.
                let only_stale = series.samples.len() == 1 && is_stale(series.samples[0].1);
                let keep = !series.samples.is_empty() && !only_stale;
                if !keep {
                    removed += 1;
                }
                keep
            });
        }
        self.by_name.retain(|_, by_labels| !by_labels.is_empty());
        self.series -= removed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::labels;

    #[test]
    fn retention_and_series_limit_bound_memory() {
        let mut db = Tsdb::new(10_000, 2);
        let a = labels([("__name__", "a")]);
        for t in 0..100 {
            assert!(db.append(&a, t * 1000, t as f64));
        }
        let (_, series) = db.series_named("a").next().unwrap();
        assert_eq!(
            series.samples.len(),
            11,
            "10 s window at 1 s steps, both ends"
        );
        assert!(db.append(&labels([("__name__", "b")]), 0, 1.0));
        assert!(
            !db.append(&labels([("__name__", "c")]), 0, 1.0),
            "third series dropped"
        );
        assert_eq!(db.series_count(), 2);
    }

    #[test]
    fn vanished_series_get_a_stale_marker() {
        let mut db = Tsdb::new(60_000, 10);
        let a = labels([("__name__", "a")]);
        let b = labels([("__name__", "b")]);
        db.append_scrape("t", 0, &[(a.clone(), 1.0), (b.clone(), 1.0)]);
        db.append_scrape("t", 1000, &[(a.clone(), 2.0)]);
        let (_, series) = db.series_named("b").next().unwrap();
        assert!(is_stale(series.samples.back().unwrap().1));
        db.compact(70_000);
        assert_eq!(db.series_count(), 0);
    }
}
