//! Injected failures, so that alerts, dashboards, the balancer and runbooks can be drilled
//! against a real replica: a share of API requests answered with 500, a share delayed by a
//! fixed latency (a slow replica), and a payment provider outage (every provider call fails
//! inside the payment guards, so the circuit breaker opens as for a real outage).
//!
//! The error ratio is set at start with `faults.error_ratio` (`BRIGADE_FAULTS__ERROR_RATIO`);
//! everything is set at run time by an admin with `PUT /api/v1/admin/faults` (per replica: the
//! switch lives in this process; the routes are in `routes::faults`). Health, metrics and the faults route itself are never
//! affected, so a drill can always be stopped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use brigade_core::Problem;
use brigade_core::error_event::{ErrorKind, ServerError};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The path of the switch, exempt from the faults it switches.
const FAULTS_PATH: &str = "/api/v1/admin/faults";

/// Longest injected latency: a drill makes a replica slow, not hung past every timeout.
pub(crate) const MAX_LATENCY_MS: u64 = 60_000;

/// A share of requests picked evenly: a counter, not randomness, so a ratio of 0.5 picks
/// exactly every second request and drills repeat.
#[derive(Debug)]
struct Share {
    /// The ratio's `f64` bits: one atomic, no lock on the request path.
    ratio_bits: AtomicU64,
    /// Requests seen while the share was above zero.
    seen: AtomicU64,
}

impl Share {
    fn new(ratio: f64) -> Self {
        Self {
            ratio_bits: AtomicU64::new(ratio.clamp(0.0, 1.0).to_bits()),
            seen: AtomicU64::new(0),
        }
    }

    fn ratio(&self) -> f64 {
        f64::from_bits(self.ratio_bits.load(Ordering::Relaxed))
    }

    fn set(&self, ratio: f64) {
        self.ratio_bits.store(ratio.to_bits(), Ordering::Relaxed);
    }

    /// Whether this request is one of the share.
    fn strike(&self) -> bool {
        let ratio = self.ratio();
        if ratio <= 0.0 {
            return false;
        }
        let n = self.seen.fetch_add(1, Ordering::Relaxed) as f64;
        ((n + 1.0) * ratio).floor() > (n * ratio).floor()
    }
}

/// The fault switch of one process (the payment outage lives in
/// [`brigade_payments::Payments`], which owns the provider).
#[derive(Debug)]
pub struct Faults {
    /// Requests answered 500.
    errors: Share,
    /// Requests delayed by `latency_ms`.
    delayed: Share,
    /// The injected delay; 0 is off.
    latency_ms: AtomicU64,
}

impl Faults {
    /// A switch failing `ratio` of requests (0.0–1.0, validated by the settings), no latency.
    pub fn new(ratio: f64) -> Self {
        Self {
            errors: Share::new(ratio),
            delayed: Share::new(1.0),
            latency_ms: AtomicU64::new(0),
        }
    }

    /// The current share of requests failed.
    pub fn ratio(&self) -> f64 {
        self.errors.ratio()
    }

    /// The current injected latency and the share of requests it applies to.
    pub fn latency(&self) -> (u64, f64) {
        (
            self.latency_ms.load(Ordering::Relaxed),
            self.delayed.ratio(),
        )
    }

    /// Applies a switch set by an admin (`PUT /api/v1/admin/faults`).
    pub fn set(&self, switch: &FaultSwitch) {
        self.errors.set(switch.error_ratio);
        self.delayed.set(switch.latency_ratio);
        self.latency_ms.store(switch.latency_ms, Ordering::Relaxed);
    }

    /// Whether this request is one to fail.
    fn strike(&self) -> bool {
        self.errors.strike()
    }

    /// How long to hold this request before serving it, if at all.
    fn delay(&self) -> Option<Duration> {
        let latency = self.latency_ms.load(Ordering::Relaxed);
        (latency > 0 && self.delayed.strike()).then(|| Duration::from_millis(latency))
    }
}

/// Answers a share of `/api/` requests with 500 (the answer returned) and delays a share of
/// the rest while faults are on. A step of `per_request::steps`.
pub async fn inject(faults: &Faults, path: &str) -> Option<Response> {
    if !path.starts_with("/api/") || path == FAULTS_PATH {
        return None;
    }
    if faults.strike() {
        let mut response = Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "injected-fault",
            "Injected fault",
        )
        .with_detail("this replica is failing requests on purpose (faults.error_ratio)")
        .into_response();
        // Logged by the request middleware as an error event with the route.
        ServerError::new(ErrorKind::InjectedFault, "injected fault: answering 500")
            .attach(&mut response);
        return Some(response);
    }
    if let Some(delay) = faults.delay() {
        tokio::time::sleep(delay).await;
    }
    None
}

/// The fault switch's settings. A `PUT` replaces all of them: a field left out is off.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct FaultSwitch {
    /// Share of `/api/` requests answered with 500, 0.0–1.0.
    #[schema(minimum = 0, maximum = 1)]
    pub error_ratio: f64,
    /// Delay added to `/api/` requests in milliseconds (a slow replica), 0–60000; 0 is off.
    #[schema(minimum = 0, maximum = 60_000)]
    pub latency_ms: u64,
    /// Share of `/api/` requests the delay applies to, 0.0–1.0 (default 1.0: all).
    #[schema(minimum = 0, maximum = 1)]
    pub latency_ratio: f64,
    /// Every payment provider call fails (an outage) while true; the circuit breaker opens.
    pub payments_outage: bool,
}

impl Default for FaultSwitch {
    fn default() -> Self {
        Self {
            error_ratio: 0.0,
            latency_ms: 0,
            latency_ratio: 1.0,
            payments_outage: false,
        }
    }
}

/// The fault switch of a replica and what it caused.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FaultState {
    /// Share of `/api/` requests answered with 500.
    pub error_ratio: f64,
    /// Delay added to `/api/` requests in milliseconds; 0 is off.
    pub latency_ms: u64,
    /// Share of `/api/` requests the delay applies to.
    pub latency_ratio: f64,
    /// Whether the payment provider outage is on.
    pub payments_outage: bool,
    /// The payment circuit breaker: `closed`, `open` or `half_open` (drills wait for `closed`).
    pub payments_breaker: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_fails_that_share_evenly() {
        let faults = Faults::new(0.25);
        let struck = (0..100).filter(|_| faults.strike()).count();
        assert_eq!(struck, 25);
        let off = Faults::new(0.0);
        assert!((0..100).all(|_| !off.strike()));
        let all = Faults::new(1.0);
        assert!((0..100).all(|_| all.strike()));
    }

    #[test]
    fn latency_delays_its_share_and_a_put_replaces_the_whole_switch() {
        let faults = Faults::new(0.0);
        assert!((0..10).all(|_| faults.delay().is_none()), "off by default");
        faults.set(&FaultSwitch {
            latency_ms: 250,
            latency_ratio: 0.5,
            ..FaultSwitch::default()
        });
        let delayed: Vec<_> = (0..10).filter_map(|_| faults.delay()).collect();
        assert_eq!(delayed.len(), 5);
        assert!(delayed.iter().all(|d| *d == Duration::from_millis(250)));
        let body: FaultSwitch = serde_json::from_str(r#"{"error_ratio": 0.5}"#).unwrap();
        faults.set(&body);
        assert_eq!(faults.latency(), (0, 1.0), "fields left out are off");
        assert_eq!(faults.ratio(), 0.5);
    }
}
