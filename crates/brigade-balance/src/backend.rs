//! One backend's live state: health, ejection, draining, load, latency and counters.
//!
//! Everything a request reads on the hot path is an atomic, so selection never takes a lock;
//! only the latency estimate (two numbers updated together) and the idle-connection stack sit
//! behind short mutexes. A backend is shared as `Arc<Backend>`: removing it from a pool stops new
//! requests while the ones in flight keep their `Arc` and finish.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use crate::api::{BackendState, BackendView};

use crate::clock::{self, uptime_ms};
use crate::config::OutlierConfig;
use crate::ewma::Ewma;
use crate::metrics::BackendMetrics;
use crate::upstream::idle::IdleConnections;

/// Bumped on every change a selection snapshot depends on (health, draining, ejection, weight,
/// role, membership): a pool compares it with the version its snapshot was built at and rebuilds
/// only then, so picking a backend never walks the pool. One counter for the whole process: such
/// changes are rare, and a spurious rebuild of another pool costs one walk of it.
static STATE_VERSION: AtomicU64 = AtomicU64::new(1);

/// The current version of every backend's selection-relevant state.
pub fn state_version() -> u64 {
    STATE_VERSION.load(Ordering::Acquire)
}

/// Marks selection snapshots stale.
pub fn bump_state_version() {
    STATE_VERSION.fetch_add(1, Ordering::AcqRel);
}

/// Estimate of a backend that has not answered yet: pessimistic enough not to attract every
/// request before its first response, small enough to be tried soon.
const EWMA_INITIAL_NS: f64 = 1_000_000.0;

pub use crate::outcome::Outcome;

/// A backend of one pool.
#[derive(Debug)]
pub struct Backend {
    /// Where it listens.
    pub address: SocketAddr,
    /// `address` as text, for labels and JSON.
    pub label: String,
    weight: AtomicU32,
    backup: AtomicBool,
    healthy: AtomicBool,
    draining: AtomicBool,
    checked: AtomicBool,
    check_passes: AtomicU32,
    check_failures: AtomicU32,
    in_flight: AtomicU64,
    requests_total: AtomicU64,
    failures_total: AtomicU64,
    consecutive_failures: AtomicU32,
    ejected_until_ms: AtomicU64,
    ejections: AtomicU32,
    admitted_at_ms: AtomicU64,
    ewma: Ewma,
    /// Pooled keep-alive connections to this backend.
    pub idle: IdleConnections,
    /// Cached metric handles.
    pub metrics: BackendMetrics,
}

impl Backend {
    /// A backend of pool `pool`, healthy until a check says otherwise.
    pub fn new(pool: &str, address: SocketAddr, weight: u32, backup: bool) -> Self {
        let label = address.to_string();
        let metrics = BackendMetrics::new(pool, &label);
        metrics.healthy.set(1.0);
        Self {
            address,
            label,
            weight: AtomicU32::new(weight),
            backup: AtomicBool::new(backup),
            healthy: AtomicBool::new(true),
            draining: AtomicBool::new(false),
            checked: AtomicBool::new(false),
            check_passes: AtomicU32::new(0),
            check_failures: AtomicU32::new(0),
            in_flight: AtomicU64::new(0),
            requests_total: AtomicU64::new(0),
            failures_total: AtomicU64::new(0),
            consecutive_failures: AtomicU32::new(0),
            ejected_until_ms: AtomicU64::new(0),
            ejections: AtomicU32::new(0),
            admitted_at_ms: AtomicU64::new(0),
            ewma: Ewma::new(EWMA_INITIAL_NS),
            idle: IdleConnections::default(),
            metrics,
        }
    }

    /// Relative share of traffic.
    pub fn weight(&self) -> u32 {
        self.weight.load(Ordering::Relaxed)
    }

    /// Whether it only serves while no primary is usable.
    pub fn is_backup(&self) -> bool {
        self.backup.load(Ordering::Relaxed)
    }

    /// Applies a new weight and role (configuration reload).
    pub fn set_role(&self, weight: u32, backup: bool) {
        self.weight.store(weight, Ordering::Relaxed);
        self.backup.store(backup, Ordering::Relaxed);
        bump_state_version();
    }

    /// Passes active checks (or has none).
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Takes no new requests.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Stops or resumes new requests.
    pub fn set_draining(&self, draining: bool) {
        if self.draining.swap(draining, Ordering::Relaxed) != draining {
            bump_state_version();
        }
    }

    /// Passively ejected at `now`.
    pub fn is_ejected(&self, now: u64) -> bool {
        self.ejected_until_ms.load(Ordering::Relaxed) > now
    }

    /// May take new requests when its tier is chosen: healthy, not ejected, not draining.
    pub fn is_usable(&self, now: u64) -> bool {
        self.is_healthy() && !self.is_draining() && !self.is_ejected(now)
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Counts a request as started. The in-flight gauge is set when `/metrics` is read
    /// ([`Self::publish_in_flight`]), not on every request.
    pub fn start_request(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.requests_total.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request as finished. Reaching zero is published at once, so a backend removed
    /// from its pool (which `/metrics` no longer visits) does not keep a stale count.
    pub fn end_request(&self) {
        let before = self.in_flight.fetch_sub(1, Ordering::Relaxed);
        if before <= 1 {
            self.metrics.in_flight.set(0.0);
        }
    }

    /// Sets the in-flight gauge to the current count (before `/metrics` is rendered).
    pub fn publish_in_flight(&self) {
        self.metrics.in_flight.set(self.in_flight() as f64);
    }

    /// When slow start ends (ms on the backend clock), or 0 when it is not running at `now`.
    pub fn slow_start_ends(&self, now: u64, window_ms: u64) -> u64 {
        let admitted = self
            .admitted_at_ms
            .load(Ordering::Relaxed)
            .max(self.ejected_until_ms.load(Ordering::Relaxed));
        if window_ms == 0 || admitted == 0 || now >= admitted + window_ms {
            0
        } else {
            admitted + window_ms
        }
    }

    /// When the current ejection ends (ms on the backend clock), or 0 when not ejected at `now`.
    pub fn ejection_ends(&self, now: u64) -> u64 {
        let until = self.ejected_until_ms.load(Ordering::Relaxed);
        if until > now { until } else { 0 }
    }

    /// The traffic share multiplier of slow start: from 0.1 right after admission up to 1 at
    /// the end of the window. Admission is the later of turning healthy and an ejection ending.
    pub fn slow_start_factor(&self, now: u64, window_ms: u64) -> f64 {
        if window_ms == 0 {
            return 1.0;
        }
        let admitted = self
            .admitted_at_ms
            .load(Ordering::Relaxed)
            .max(self.ejected_until_ms.load(Ordering::Relaxed));
        if admitted == 0 || now >= admitted + window_ms {
            return 1.0;
        }
        let elapsed = now.saturating_sub(admitted) as f64;
        (elapsed / window_ms as f64).clamp(0.1, 1.0)
    }

    /// The latency estimate in nanoseconds, decayed to now.
    pub fn ewma_ns(&self) -> f64 {
        self.ewma.at(clock::now())
    }

    /// What `peak_ewma` weighs this backend by at `now` ([`clock::now`]; a pick reads the clock
    /// once for both of its candidates): its latency estimate decayed to `now` times its
    /// requests in flight plus one (tower's `PeakEwma` cost).
    pub fn peak_ewma_cost(&self, now: u64) -> f64 {
        self.ewma.at(now) * (self.in_flight() as f64 + 1.0)
    }

    /// Starts the latency estimate at `ns`: a backend added to a busy pool starts at the
    /// pool's average, so peak-EWMA neither ignores it nor floods it before its first answer.
    pub fn seed_ewma(&self, ns: f64) {
        self.ewma.seed(ns);
    }

    /// Feeds one response time (to the response head) into the estimate and the histogram.
    pub fn observe_latency(&self, started: Instant) {
        self.observe_latency_at(started, Instant::now());
    }

    /// [`Self::observe_latency`] for a response head that arrived at `now` (a caller that
    /// has already read the clock saves reading it again).
    pub fn observe_latency_at(&self, started: Instant, now: Instant) {
        let rtt = now.saturating_duration_since(started);
        self.metrics.duration.record(rtt.as_secs_f64());
        self.ewma
            .observe(rtt.as_nanos() as f64, clock::since_epoch(now));
    }

    /// Records an attempt's outcome; returns true when this failure ejected the backend.
    pub fn record(&self, outcome: Outcome, outlier: &OutlierConfig) -> bool {
        self.metrics.outcome(outcome).increment(1);
        if !outcome.is_failure() {
            self.consecutive_failures.store(0, Ordering::Relaxed);
            return false;
        }
        self.failures_total.fetch_add(1, Ordering::Relaxed);
        let failures = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if outlier.consecutive_failures == 0 || failures < outlier.consecutive_failures {
            return false;
        }
        let now = uptime_ms();
        if self.is_ejected(now) {
            return false;
        }
        self.consecutive_failures.store(0, Ordering::Relaxed);
        let repeats = self.ejections.fetch_add(1, Ordering::Relaxed).min(20);
        let length = outlier
            .base_ejection_ms
            .saturating_mul(1u64 << repeats)
            .min(outlier.max_ejection_ms.max(outlier.base_ejection_ms));
        self.ejected_until_ms.store(now + length, Ordering::Relaxed);
        bump_state_version();
        self.metrics.ejections.increment(1);
        self.idle.clear();
        tracing::warn!(
            backend = %self.label,
            consecutive_failures = failures,
            ejection_ms = length,
            "backend ejected"
        );
        true
    }

    /// Feeds one active check result; returns the new health when it changed.
    /// The first check decides at once, so the first round leaves every backend in a known
    /// state without waiting for `rise` passes.
    pub fn record_check(&self, passed: bool, rise: u32, fall: u32) -> Option<bool> {
        if !self.checked.swap(true, Ordering::Relaxed) {
            let was = self.is_healthy();
            self.healthy.store(passed, Ordering::Relaxed);
            self.metrics.healthy.set(if passed { 1.0 } else { 0.0 });
            if was != passed {
                bump_state_version();
            }
            return (was != passed).then_some(passed);
        }
        if passed {
            self.check_failures.store(0, Ordering::Relaxed);
            let passes = self.check_passes.fetch_add(1, Ordering::Relaxed) + 1;
            if !self.is_healthy() && passes >= rise {
                self.set_healthy(true);
                return Some(true);
            }
        } else {
            self.check_passes.store(0, Ordering::Relaxed);
            let failures = self.check_failures.fetch_add(1, Ordering::Relaxed) + 1;
            if self.is_healthy() && failures >= fall {
                self.set_healthy(false);
                return Some(false);
            }
        }
        None
    }

    /// Sets the health directly (the first check round decides without waiting for rise/fall).
    pub fn set_healthy(&self, healthy: bool) {
        let was = self.healthy.swap(healthy, Ordering::Relaxed);
        self.metrics.healthy.set(if healthy { 1.0 } else { 0.0 });
        if was != healthy {
            bump_state_version();
        }
        if healthy && !was {
            self.admitted_at_ms.store(uptime_ms(), Ordering::Relaxed);
        }
        if !healthy {
            self.idle.clear();
        }
    }

    /// The admin API's view.
    pub fn view(&self) -> BackendView {
        let now = uptime_ms();
        let ejected = self.is_ejected(now);
        let state = if self.is_draining() {
            BackendState::Draining
        } else if !self.is_healthy() {
            BackendState::Unhealthy
        } else if ejected {
            BackendState::Ejected
        } else {
            BackendState::Healthy
        };
        BackendView {
            address: self.label.clone(),
            weight: self.weight(),
            backup: self.is_backup(),
            state,
            healthy: self.is_healthy(),
            draining: self.is_draining(),
            ejected,
            in_flight: self.in_flight(),
            ewma_ms: (self.ewma_ns() / 1e4).round() / 100.0,
            requests_total: self.requests_total.load(Ordering::Relaxed),
            failures_total: self.failures_total.load(Ordering::Relaxed),
            ejections_total: self.ejections.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend() -> Backend {
        Backend::new("t", "127.0.0.1:1".parse().unwrap(), 1, false)
    }

    #[test]
    fn ejection_grows_on_repeats() {
        let b = backend();
        let outlier = OutlierConfig {
            consecutive_failures: 2,
            base_ejection_ms: 1_000,
            max_ejection_ms: 10_000,
        };
        assert!(!b.record(Outcome::ConnectError, &outlier));
        assert!(b.record(Outcome::ServerError, &outlier));
        let first = b.ejected_until_ms.load(Ordering::Relaxed) - uptime_ms();
        assert!(b.is_ejected(uptime_ms()));
        b.ejected_until_ms.store(0, Ordering::Relaxed);
        b.record(Outcome::Timeout, &outlier);
        assert!(b.record(Outcome::Timeout, &outlier));
        let second = b.ejected_until_ms.load(Ordering::Relaxed) - uptime_ms();
        assert!(second > first + 500, "{first} {second}");
    }

    #[test]
    fn success_resets_the_failure_streak() {
        let b = backend();
        let outlier = OutlierConfig {
            consecutive_failures: 2,
            ..OutlierConfig::default()
        };
        b.record(Outcome::ConnectError, &outlier);
        b.record(Outcome::Success, &outlier);
        assert!(!b.record(Outcome::ConnectError, &outlier));
    }

    #[test]
    fn peak_ewma_jumps_up_and_slow_start_ramps() {
        let b = backend();
        let slow = Instant::now() - std::time::Duration::from_millis(50);
        b.observe_latency(slow);
        assert!(b.ewma_ns() > 40_000_000.0);
        b.set_healthy(false);
        b.set_healthy(true);
        let f = b.slow_start_factor(uptime_ms(), 10_000);
        assert!((0.1..0.2).contains(&f), "{f}");
        assert_eq!(b.slow_start_factor(uptime_ms() + 10_001, 10_000), 1.0);
    }
}
