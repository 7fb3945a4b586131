//! Exemplars scraped with the samples: for each latency bucket, the trace of a request that
//! fell in it, so a chart's slow bucket opens a slow trace (`GET /api/v1/query_exemplars`).
//!
//! A target repeats a bucket's newest exemplar on every scrape until a newer request replaces
//! it, so one is kept only when it differs from the last one kept for its series. The store is
//! bounded by count ([`MAX_EXEMPLARS`], the oldest go first, as Prometheus's circular exemplar
//! storage does) and by age ([`MAX_AGE_MS`], the trace window's).

use std::collections::{HashMap, VecDeque};

use crate::contract::{ExemplarPoint, ExemplarSeries};
use crate::labels::Labels;
use crate::promql::Query;
use crate::textformat::ParsedExemplar;

/// Most exemplars kept.
pub const MAX_EXEMPLARS: usize = 10_000;
/// Oldest exemplar kept: as long as watch keeps traces, whose ids they name.
pub const MAX_AGE_MS: i64 = 60 * 60 * 1000;

/// One kept exemplar.
#[derive(Debug, Clone)]
struct Kept {
    series: Labels,
    exemplar: ParsedExemplar,
    /// Its time (the target's, else the scrape's), Unix milliseconds.
    t_ms: i64,
}

/// The exemplars watch holds.
#[derive(Debug, Default)]
pub struct ExemplarStore {
    kept: VecDeque<Kept>,
    /// The last exemplar kept per series, to skip the repeats of later scrapes.
    last: HashMap<Labels, (Labels, i64)>,
}

impl ExemplarStore {
    /// Keeps a scrape's new exemplars, scraped at `now_ms`; answers how many were new.
    pub fn append(&mut self, scraped: Vec<(Labels, ParsedExemplar)>, now_ms: i64) -> usize {
        let mut added = 0;
        for (series, exemplar) in scraped {
            let t_ms = exemplar
                .timestamp
                .filter(|t| t.is_finite())
                .map_or(now_ms, |t| (t * 1000.0).round() as i64);
            let identity = (exemplar.labels.clone(), t_ms);
            if self.last.get(&series) == Some(&identity) {
                continue;
            }
            self.last.insert(series.clone(), identity);
            self.kept.push_back(Kept {
                series,
                exemplar,
                t_ms,
            });
            added += 1;
        }
        while self.kept.len() > MAX_EXEMPLARS {
            self.kept.pop_front();
        }
        self.prune(now_ms - MAX_AGE_MS);
        added
    }

    /// Lets go of exemplars older than `before_ms`.
    fn prune(&mut self, before_ms: i64) {
        while self.kept.front().is_some_and(|k| k.t_ms < before_ms) {
            self.kept.pop_front();
        }
        self.last.retain(|_, (_, t_ms)| *t_ms >= before_ms);
    }

    /// Exemplars held.
    pub fn len(&self) -> usize {
        self.kept.len()
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }

    /// The exemplars of the series `query` selects, from `start_ms` to `end_ms` inclusive,
    /// grouped by series (sorted by labels), oldest first in each.
    pub fn select(&self, query: &Query, start_ms: i64, end_ms: i64) -> Vec<ExemplarSeries> {
        let mut by_series: std::collections::BTreeMap<&Labels, Vec<ExemplarPoint>> =
            std::collections::BTreeMap::new();
        for kept in &self.kept {
            if kept.t_ms < start_ms || kept.t_ms > end_ms || !query.selects(&kept.series) {
                continue;
            }
            by_series
                .entry(&kept.series)
                .or_default()
                .push(ExemplarPoint {
                    labels: kept.exemplar.labels.clone(),
                    value: kept.exemplar.value.to_string(),
                    timestamp: kept.t_ms as f64 / 1000.0,
                });
        }
        by_series
            .into_iter()
            .map(|(series, exemplars)| ExemplarSeries {
                series_labels: series.clone(),
                exemplars,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(name: &str, le: &str) -> Labels {
        [("__name__", name), ("le", le), ("job", "serve")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    fn exemplar(trace: &str, value: f64, t: f64) -> ParsedExemplar {
        ParsedExemplar {
            labels: [("trace_id".to_owned(), trace.to_owned())].into(),
            value,
            timestamp: Some(t),
        }
    }

    #[test]
    fn repeats_are_kept_once_and_queries_select_by_series() {
        let mut store = ExemplarStore::default();
        let bucket = series("d_seconds_bucket", "0.5");
        let scrape = vec![
            (bucket.clone(), exemplar("aa", 0.4, 1000.0)),
            (series("other_bucket", "1"), exemplar("bb", 0.9, 1000.5)),
        ];
        assert_eq!(store.append(scrape.clone(), 1_001_000), 2);
        assert_eq!(
            store.append(scrape, 1_016_000),
            0,
            "the same exemplars again"
        );
        let newer = vec![(bucket.clone(), exemplar("cc", 0.3, 1010.0))];
        assert_eq!(store.append(newer, 1_016_000), 1);

        let query = Query::parse(
            "histogram_quantile(0.99, sum by (le) (rate(d_seconds_bucket{job=\"serve\"}[1m])))",
        )
        .unwrap();
        let answer = store.select(&query, 0, 2_000_000);
        assert_eq!(answer.len(), 1);
        assert_eq!(answer[0].series_labels, bucket);
        let traces: Vec<&str> = answer[0]
            .exemplars
            .iter()
            .map(|e| e.labels["trace_id"].as_str())
            .collect();
        assert_eq!(traces, ["aa", "cc"]);
        assert_eq!(answer[0].exemplars[1].timestamp, 1010.0);
        assert!(store.select(&query, 1_005_000, 1_006_000).is_empty());
    }

    #[test]
    fn the_store_is_bounded_by_count_and_age() {
        let mut store = ExemplarStore::default();
        let now = 10 * MAX_AGE_MS;
        let many: Vec<_> = (0..MAX_EXEMPLARS + 5)
            .map(|i| {
                let t = (now - 1000) as f64 / 1000.0;
                (series("d_bucket", &i.to_string()), exemplar("aa", 1.0, t))
            })
            .collect();
        store.append(many, now);
        assert_eq!(store.len(), MAX_EXEMPLARS);
        store.append(Vec::new(), now + MAX_AGE_MS);
        assert!(store.is_empty());
        assert!(store.last.is_empty());
    }
}
