//! The balancer's Prometheus metrics: names, help texts and cached handles.
//!
//! Handles are made once per backend and pool and kept next to the state they describe, so a
//! request records without building label sets or hashing them in the recorder.

use std::sync::OnceLock;
use std::time::Duration;

use http::StatusCode;
use metrics::{Counter, Gauge, Histogram};

use crate::outcome::Outcome;

/// Requests answered to clients, by pool and status code, the balancer's own answers included.
pub const REQUESTS: &str = "brigade_balance_requests_total";
/// Time from a request's arrival to its response head, as the client sees it (retries and
/// waits included).
pub const REQUEST_DURATION: &str = "brigade_balance_request_duration_seconds";
/// Attempts sent upstream, by outcome.
pub const UPSTREAM_REQUESTS: &str = "brigade_balance_upstream_requests_total";
/// Time from sending an attempt to its response head.
pub const UPSTREAM_DURATION: &str = "brigade_balance_upstream_request_duration_seconds";
/// 1 when the backend passes active checks.
pub const BACKEND_HEALTHY: &str = "brigade_balance_backend_healthy";
/// Requests in flight per backend.
pub const BACKEND_IN_FLIGHT: &str = "brigade_balance_backend_in_flight";
/// Retries by reason.
pub const RETRIES: &str = "brigade_balance_retries_total";
/// Retries refused by the budget.
pub const BUDGET_EXHAUSTED: &str = "brigade_balance_retry_budget_exhausted_total";
/// Passive ejections.
pub const EJECTIONS: &str = "brigade_balance_ejections_total";
/// Requests answered 503 because no backend was usable.
pub const NO_HEALTHY: &str = "brigade_balance_no_healthy_backends_total";

/// Requests refused 429 by a rate limit, by rule and pool.
pub const RATE_LIMITED: &str = "brigade_balance_rate_limited_total";

/// The counter of requests rule `rule` refused on their way to `pool` (registered at zero when
/// a table is built, so `increase()` sees the first refusal).
pub fn rate_limited(rule: &str, pool: &str) -> Counter {
    metrics::counter!(RATE_LIMITED, "rule" => rule.to_owned(), "pool" => pool.to_owned())
}

/// Registers help texts so that `/metrics` passes `promtool check metrics`.
pub fn describe() {
    brigade_core::http_metrics::describe();
    metrics::describe_counter!(
        REQUESTS,
        "Requests answered to clients, by pool and status code (the balancer's own answers included)."
    );
    metrics::describe_histogram!(
        REQUEST_DURATION,
        metrics::Unit::Seconds,
        "Time from a request's arrival until its response head was ready, retries included."
    );
    metrics::describe_counter!(
        UPSTREAM_REQUESTS,
        "Attempts sent to a backend, by outcome (success, server_error, connect_error, timeout, error)."
    );
    metrics::describe_histogram!(
        UPSTREAM_DURATION,
        metrics::Unit::Seconds,
        "Time from sending an attempt to a backend until its response head arrived."
    );
    metrics::describe_gauge!(
        BACKEND_HEALTHY,
        "1 when the backend passes active health checks (or has none), else 0."
    );
    metrics::describe_gauge!(BACKEND_IN_FLIGHT, "Requests being served by the backend.");
    metrics::describe_counter!(RETRIES, "Attempts retried on another backend, by reason.");
    metrics::describe_counter!(
        BUDGET_EXHAUSTED,
        "Retries refused because the pool's retry budget was spent."
    );
    metrics::describe_counter!(EJECTIONS, "Passive outlier ejections of the backend.");
    metrics::describe_counter!(
        RATE_LIMITED,
        "Requests answered 429 by a rate limit of the balancer, by rule and pool."
    );
    metrics::describe_counter!(
        NO_HEALTHY,
        "Requests answered 503 because the pool had no usable backend."
    );
}

/// Handles for one backend.
#[derive(Debug)]
pub struct BackendMetrics {
    outcomes: [Counter; 5],
    /// Upstream duration histogram.
    pub duration: Histogram,
    /// Health gauge.
    pub healthy: Gauge,
    /// In-flight gauge.
    pub in_flight: Gauge,
    /// Ejection counter.
    pub ejections: Counter,
}

impl BackendMetrics {
    /// Registers the handles of one backend.
    pub fn new(pool: &str, backend: &str) -> Self {
        let labels = [("pool", pool.to_owned()), ("backend", backend.to_owned())];
        let outcome = |label: &'static str| metrics::counter!(UPSTREAM_REQUESTS, "pool" => pool.to_owned(), "backend" => backend.to_owned(), "outcome" => label);
        Self {
            outcomes: [
                outcome(Outcome::Success.label()),
                outcome(Outcome::ServerError.label()),
                outcome(Outcome::ConnectError.label()),
                outcome(Outcome::Timeout.label()),
                outcome(Outcome::Error.label()),
            ],
            duration: metrics::histogram!(UPSTREAM_DURATION, &labels),
            healthy: metrics::gauge!(BACKEND_HEALTHY, &labels),
            in_flight: metrics::gauge!(BACKEND_IN_FLIGHT, &labels),
            ejections: metrics::counter!(EJECTIONS, &labels),
        }
    }

    /// The counter of one outcome.
    pub fn outcome(&self, outcome: Outcome) -> &Counter {
        let index = match outcome {
            Outcome::Success => 0,
            Outcome::ServerError => 1,
            Outcome::ConnectError => 2,
            Outcome::Timeout => 3,
            Outcome::Error => 4,
        };
        &self.outcomes[index]
    }
}

/// Status codes a response can carry (hyper accepts 100–999), one counter slot each.
const STATUS_CODES: usize = 900;

/// The client-facing handles of one pool: a counter per status code, registered on first use
/// and then found by index, and the duration histogram.
pub struct RequestMetrics {
    pool: String,
    by_code: Box<[OnceLock<Counter>]>,
    duration: Histogram,
}

impl std::fmt::Debug for RequestMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestMetrics")
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

impl RequestMetrics {
    /// Registers the handles of one pool.
    pub fn new(pool: &str) -> Self {
        Self {
            pool: pool.to_owned(),
            by_code: (0..STATUS_CODES).map(|_| OnceLock::new()).collect(),
            duration: metrics::histogram!(REQUEST_DURATION, "pool" => pool.to_owned()),
        }
    }

    /// Counts one answered request and its time to the response head.
    pub fn record(&self, status: StatusCode, elapsed: Duration) {
        let index = usize::from(status.as_u16()).saturating_sub(100);
        if let Some(slot) = self.by_code.get(index) {
            slot.get_or_init(|| {
                metrics::counter!(REQUESTS, "pool" => self.pool.clone(), "code" => status.as_str().to_owned())
            })
            .increment(1);
        }
        self.duration.record(elapsed.as_secs_f64());
    }
}

/// Handles for one pool.
#[derive(Debug)]
pub struct PoolMetrics {
    /// Client-facing requests and durations.
    pub requests: RequestMetrics,
    retries: [Counter; 5],
    /// Budget exhaustion counter.
    pub budget_exhausted: Counter,
    /// No-usable-backend counter.
    pub no_healthy: Counter,
}

impl PoolMetrics {
    /// Registers the handles of one pool.
    pub fn new(pool: &str) -> Self {
        let retry = |reason: &'static str| metrics::counter!(RETRIES, "pool" => pool.to_owned(), "reason" => reason);
        Self {
            requests: RequestMetrics::new(pool),
            retries: [
                retry("connect_error"),
                retry("server_error"),
                retry("timeout"),
                retry("error"),
                retry("retry_after"),
            ],
            budget_exhausted: metrics::counter!(BUDGET_EXHAUSTED, "pool" => pool.to_owned()),
            no_healthy: metrics::counter!(NO_HEALTHY, "pool" => pool.to_owned()),
        }
    }

    /// The retry counter for a failed attempt's outcome.
    pub fn retry(&self, outcome: Outcome) -> &Counter {
        let index = match outcome {
            Outcome::ConnectError => 0,
            Outcome::ServerError => 1,
            Outcome::Timeout => 2,
            Outcome::Error => 3,
            // A non-failure answer is retried only when it asked to be (Retry-After).
            Outcome::Success => 4,
        };
        &self.retries[index]
    }
}
