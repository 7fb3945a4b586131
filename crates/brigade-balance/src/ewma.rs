//! Peak-EWMA latency of one backend, kept without a lock.
//!
//! It is on every request's path under `peak_ewma`: read for both candidates of a pick (P2C
//! compares two backends) and written once per response. So the estimate and the time it was
//! set are two atomics instead of a mutex; a pick reads the clock once for both candidates
//! ([`now`]); and the decay factor `exp(-elapsed / 10 s)` is its Taylor polynomial while
//! `elapsed` is under 10 ms (relative error below 2·10⁻¹⁰; between two responses of a busy
//! backend it is microseconds), `exp` beyond. Two responses recorded at the same moment on two
//! worker threads may each decay from the same start; the estimate stays an estimate.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Decay time of the latency estimate (tower's `PeakEwma` default is 10 s too).
const DECAY_NS: f64 = 10_000_000_000.0;
/// Below this share of [`DECAY_NS`] the decay is computed by polynomial.
const POLYNOMIAL_BELOW: f64 = 1e-3;

use crate::clock::now;

/// `exp(-elapsed_ns / DECAY_NS)`.
fn decay(elapsed_ns: u64) -> f64 {
    let x = elapsed_ns as f64 / DECAY_NS;
    if x < POLYNOMIAL_BELOW {
        1.0 - x + 0.5 * x * x
    } else {
        (-x).exp()
    }
}

/// Peak-EWMA latency: a slower response raises the estimate at once, faster ones pull it down
/// gradually, and with no responses it decays towards zero so an idle backend is tried again.
#[derive(Debug)]
pub struct Ewma {
    /// The estimate in nanoseconds, as `f64` bits.
    ns: AtomicU64,
    /// When it was set ([`now`]'s scale).
    at: AtomicU64,
    /// False until the first response: that one replaces the seed instead of being averaged
    /// into it, so a guess never outweighs a measurement.
    measured: AtomicBool,
}

impl Ewma {
    /// An estimate of `ns` set now, not yet measured.
    pub fn new(ns: f64) -> Self {
        Self {
            ns: AtomicU64::new(ns.to_bits()),
            at: AtomicU64::new(now()),
            measured: AtomicBool::new(false),
        }
    }

    /// The estimate decayed to `now` (from [`now`]).
    pub fn at(&self, now: u64) -> f64 {
        let ns = f64::from_bits(self.ns.load(Ordering::Relaxed));
        ns * decay(now.saturating_sub(self.at.load(Ordering::Relaxed)))
    }

    /// Starts the estimate again at `ns`.
    pub fn seed(&self, ns: f64) {
        self.ns.store(ns.to_bits(), Ordering::Relaxed);
        self.at.store(now(), Ordering::Relaxed);
    }

    /// Feeds in one response time `rtt_ns`, received at `now`.
    pub fn observe(&self, rtt_ns: f64, now: u64) {
        let before = self.at.swap(now, Ordering::Relaxed);
        // One decay factor serves both the decay and the averaging weight.
        let w = decay(now.saturating_sub(before));
        let measured = self.measured.swap(true, Ordering::Relaxed);
        let _ = self
            .ns
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                let decayed = f64::from_bits(bits) * w;
                let next = if !measured || rtt_ns > decayed {
                    rtt_ns
                } else {
                    decayed * w + rtt_ns * (1.0 - w)
                };
                Some(next.to_bits())
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_polynomial_decay_matches_exp_where_it_is_used() {
        for elapsed_ns in [0, 1, 1_000, 1_000_000, 9_999_999, 10_000_000, 1_000_000_000] {
            let exact = (-(elapsed_ns as f64) / DECAY_NS).exp();
            let relative = (decay(elapsed_ns) - exact).abs() / exact;
            assert!(relative < 2e-10, "{elapsed_ns} ns: {relative}");
        }
    }

    #[test]
    fn a_slower_answer_raises_the_estimate_at_once_and_faster_ones_lower_it_slowly() {
        let ewma = Ewma::new(1_000_000.0);
        let t = now();
        ewma.observe(5_000_000.0, t);
        assert!(
            (ewma.at(t) - 5_000_000.0).abs() < 1.0,
            "the first answer replaces the seed"
        );
        ewma.observe(50_000_000.0, t + 1_000);
        assert!(
            ewma.at(t + 1_000) >= 49_999_000.0,
            "a peak is taken at once"
        );
        ewma.observe(1_000_000.0, t + 1_000_000_000);
        let after = ewma.at(t + 1_000_000_000);
        assert!(
            after < 50_000_000.0 && after > 1_000_000.0,
            "a faster answer pulls it down, gradually: {after}"
        );
    }

    #[test]
    fn an_idle_estimate_decays_towards_zero() {
        let ewma = Ewma::new(1_000_000.0);
        let t = now();
        ewma.observe(10_000_000.0, t);
        assert!(ewma.at(t + 60_000_000_000) < 10_000_000.0 * 0.01);
    }
}
