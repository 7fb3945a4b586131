//! Scraping: finding targets (static ones, and the backends a `brigade balance` admin API
//! lists) and reading their Prometheus text into the sample store.
//!
//! Each sample gets `job` and `instance` labels (a target's own `job`/`instance` labels are
//! kept as `exported_job`/`exported_instance`, as Prometheus does without `honor_labels`), and
//! each scrape writes `up`, `scrape_duration_seconds`, `scrape_samples_scraped` and
//! `scrape_series_dropped`. A target exposing more series than `max_series_per_target` keeps
//! the first ones; the rest are dropped and reported, so one runaway target cannot exhaust
//! memory.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use brigade_balance::api::Pools;
use serde::Serialize;

use crate::config::{BalanceConfig, ScrapeConfig};
use crate::labels::{Labels, METRIC_NAME};
use crate::textformat::{self, ParsedExemplar};

/// A place to scrape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    /// The `job` label.
    pub job: String,
    /// The `instance` label (`host:port`).
    pub instance: String,
    /// The metrics URL.
    pub url: String,
    /// Extra labels.
    pub labels: BTreeMap<String, String>,
    /// `static` or the admin URL it was discovered from.
    pub discovered_by: String,
}

/// A target's health as Prometheus's targets API spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Not scraped yet.
    Unknown,
    /// The last scrape worked.
    Up,
    /// The last scrape failed.
    Down,
}

/// A target's health, as the API shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetHealth {
    /// The target.
    #[serde(flatten)]
    pub target: Target,
    /// Whether the last scrape worked.
    pub health: Health,
    /// The last error, if the last scrape failed.
    pub last_error: Option<String>,
    /// When it was last scraped (ms since the epoch).
    pub last_scrape_ms: Option<i64>,
    /// How long the last scrape took, in seconds.
    pub last_scrape_duration_seconds: Option<f64>,
    /// Series stored by the last scrape.
    pub series: usize,
    /// Series dropped by the last scrape (over the per-target limit).
    pub dropped: usize,
}

/// One scrape's result.
#[derive(Debug, Default)]
pub struct ScrapeResult {
    /// Samples with target labels, ready for the store.
    pub samples: Vec<(Labels, f64)>,
    /// Series dropped by the per-target limit.
    pub dropped: usize,
    /// The exemplars the samples carried, by their series (with target labels).
    pub exemplars: Vec<(Labels, ParsedExemplar)>,
}

/// What a scrape asks for: OpenMetrics first (it carries exemplars), as Prometheus does.
const ACCEPT: &str =
    "application/openmetrics-text;version=1.0.0;q=0.9,text/plain;version=0.0.4;q=0.5";

/// The static targets of a configuration.
pub fn static_targets(config: &ScrapeConfig) -> Vec<Target> {
    config
        .static_configs
        .iter()
        .flat_map(|s| {
            s.targets.iter().map(move |address| Target {
                job: s.job.clone(),
                instance: address.clone(),
                url: format!("{}://{}{}", s.scheme, address, s.metrics_path),
                labels: s.labels.clone(),
                discovered_by: "static".into(),
            })
        })
        .collect()
}

/// Reads one balancer's pools: each backend becomes a target with `job` = pool name, and the
/// balancer's own `/metrics` a target of job `balance`.
pub async fn discover_balance(
    http: &reqwest::Client,
    config: &BalanceConfig,
) -> Result<Vec<Target>, String> {
    let base = config.admin_url.trim_end_matches('/');
    let response = http
        .get(format!("{base}/admin/pools"))
        .send()
        .await
        .map_err(|e| crate::error_chain(&e.without_url()))?;
    if !response.status().is_success() {
        return Err(format!("{base}/admin/pools answered {}", response.status()));
    }
    let pools: Pools = response.json().await.map_err(|e| {
        format!(
            "{base}/admin/pools: {}",
            crate::error_chain(&e.without_url())
        )
    })?;
    let mut targets = Vec::new();
    if config.scrape_balancer {
        let instance = base
            .split_once("://")
            .map(|(_, rest)| rest)
            .unwrap_or(base)
            .to_owned();
        targets.push(Target {
            job: "balance".into(),
            instance,
            url: format!("{base}/metrics"),
            labels: BTreeMap::new(),
            discovered_by: base.to_owned(),
        });
    }
    for pool in pools.pools {
        for backend in pool.backends {
            targets.push(Target {
                job: pool.name.clone(),
                url: format!("http://{}{}", backend.address, config.metrics_path),
                instance: backend.address,
                labels: BTreeMap::new(),
                discovered_by: base.to_owned(),
            });
        }
    }
    Ok(targets)
}

/// Why a scrape failed; its text is the target's `lastError`, as in Prometheus.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    /// No answer: refused, timed out, reset (the client error's chain).
    #[error("{0}")]
    Transport(String),
    /// An answer other than 2xx.
    #[error("server answered {0}")]
    Status(reqwest::StatusCode),
    /// A body over `scrape.max_body_bytes`.
    #[error("body larger than {0} bytes")]
    TooLarge(usize),
    /// A body that is not text.
    #[error("body is not UTF-8")]
    NotUtf8,
    /// A body that is not exposition text.
    #[error(transparent)]
    Parse(#[from] textformat::ParseError),
}

/// Scrapes one target.
pub async fn scrape(
    http: &reqwest::Client,
    target: &Target,
    timeout: Duration,
    max_body_bytes: usize,
    max_series: usize,
) -> Result<ScrapeResult, ScrapeError> {
    let mut request = http
        .get(&target.url)
        .header("accept", ACCEPT)
        .timeout(timeout);
    // The scraped process's `GET /metrics` span becomes the child of this scrape's span.
    if let Some(traceparent) = brigade_core::traces::traceparent_of(&tracing::Span::current()) {
        request = request.header("traceparent", traceparent);
    }
    let mut response = request
        .send()
        .await
        .map_err(|e| ScrapeError::Transport(crate::error_chain(&e.without_url())))?;
    if !response.status().is_success() {
        return Err(ScrapeError::Status(response.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| ScrapeError::Transport(crate::error_chain(&e.without_url())))?
    {
        if body.len() + chunk.len() > max_body_bytes {
            return Err(ScrapeError::TooLarge(max_body_bytes));
        }
        body.extend_from_slice(&chunk);
    }
    let text = String::from_utf8(body).map_err(|_| ScrapeError::NotUtf8)?;
    let parsed = textformat::parse(&text)?;
    let mut result = ScrapeResult::default();
    for sample in parsed {
        if result.samples.len() >= max_series {
            result.dropped += 1;
            continue;
        }
        let labels = with_target_labels(sample.labels, target);
        if let Some(exemplar) = sample.exemplar {
            result.exemplars.push((labels.clone(), exemplar));
        }
        result.samples.push((labels, sample.value));
    }
    Ok(result)
}

/// Adds `job`, `instance` and the target's extra labels to a scraped series.
pub fn with_target_labels(mut labels: Labels, target: &Target) -> Labels {
    for (name, value) in [("job", &target.job), ("instance", &target.instance)] {
        if let Some(own) = labels.remove(name) {
            labels.insert(format!("exported_{name}"), own);
        }
        labels.insert(name.to_owned(), value.clone());
    }
    for (name, value) in &target.labels {
        labels.entry(name.clone()).or_insert_with(|| value.clone());
    }
    labels
}

/// The synthetic series Prometheus writes for every scrape.
pub fn report_series(
    target: &Target,
    up: bool,
    started: Instant,
    scraped: usize,
    dropped: usize,
) -> Vec<(Labels, f64)> {
    let series = |name: &str, value: f64| {
        let mut labels = Labels::new();
        labels.insert(METRIC_NAME.to_owned(), name.to_owned());
        (with_target_labels(labels, target), value)
    };
    vec![
        series("up", if up { 1.0 } else { 0.0 }),
        series("scrape_duration_seconds", started.elapsed().as_secs_f64()),
        series("scrape_samples_scraped", scraped as f64),
        series("scrape_series_dropped", dropped as f64),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::labels;

    #[test]
    fn target_labels_win_and_own_ones_are_kept_as_exported() {
        let target = Target {
            job: "orders".into(),
            instance: "127.0.0.1:3000".into(),
            url: String::new(),
            labels: [("env".to_owned(), "test".to_owned())].into(),
            discovered_by: "static".into(),
        };
        let out = with_target_labels(labels([("__name__", "m"), ("job", "inner")]), &target);
        assert_eq!(out["job"], "orders");
        assert_eq!(out["exported_job"], "inner");
        assert_eq!(out["instance"], "127.0.0.1:3000");
        assert_eq!(out["env"], "test");
    }
}
